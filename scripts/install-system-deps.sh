#!/usr/bin/env bash
# Installs the Debian packages memshift and its tests use, when they are missing:
# memcached (servers for the demo and tests), tcpdump (live capture for mirror),
# gcc, libc6-dev and libpcap-dev (to build memshift-capture, the capture program mirror prefers),
# libmemcached-tools (memcslap, memccapable: real clients in tests), tmux (terminal UI tests),
# chromium (dashboard tests, headless), and the real client libraries the conformance tests
# drive: pylibmc, pymemcache, python-memcached (under /usr/bin/python3), php-memcached and PECL
# memcache, Ruby Dalli, Perl Cache::Memcached and Cache::Memcached::Fast.
set -euo pipefail

need=()
command -v memcached >/dev/null 2>&1 || need+=(memcached)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v memccapable >/dev/null 2>&1 || need+=(libmemcached-tools)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
[ -x /usr/bin/chromium ] || need+=(chromium)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in gcc libc6-dev libpcap-dev python3-pylibmc python3-pymemcache python3-memcache php8.2-cli php8.2-memcached \
  php8.2-memcache ruby ruby-dalli libcache-memcached-perl libcache-memcached-fast-perl; do
  installed "$pkg" || need+=("$pkg")
done

if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "memshift: missing packages (${need[*]}) and not root: run as root or install them with apt-get" >&2
    exit 1
  fi
fi
echo "system packages: installing ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null

#!/usr/bin/env bash
# Regenerates test/fixtures/placement: stores keys through the real client
# libraries against real memcached servers on loopback and records which
# server holds each key. Needs the Debian packages below and the npm
# devDependencies (memcached, memjs, memcache-plus); builds memshift first for the Node client.
#
#   bash scripts/placement/produce.sh            # every configuration
#   bash scripts/placement/produce.sh dalli php  # only rows whose name starts so
#   bash scripts/placement/produce.sh --sets=localhost  # only these server sets (ports, 11211, localhost)
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
for pkg in memcached php-cli php-memcached ruby ruby-dalli python3-pymemcache python3-pylibmc \
  python3-memcache libspymemcached-java nutcracker golang-go golang-github-bradfitz-gomemcache-dev \
  php8.2-memcache libcache-memcached-perl libcache-memcached-fast-perl; do
  dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
command -v javac >/dev/null || missing+=(default-jdk-headless)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi
command -v javac >/dev/null || { echo "javac is needed (default-jdk-headless)" >&2; exit 1; }
for mod in memcached memjs memcache-plus; do
  [ -d "node_modules/$mod" ] || { echo "run npm ci first (node_modules/$mod is missing)" >&2; exit 1; }
done

npx tsc -p . >/dev/null || true # type errors elsewhere do not stop the emit
test -f dist/scripts/placement/store-node.js

exec /usr/bin/python3 scripts/placement/produce.py "$@"

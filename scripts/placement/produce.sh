#!/usr/bin/env bash
# Regenerates test/fixtures/placement: stores keys through the real client
# libraries against real memcached servers on loopback and records which
# server holds each key. Needs the Debian packages below and the npm
# devDependencies (memcached, memjs); builds memshift first for the Node client.
#
#   bash scripts/placement/produce.sh            # every configuration
#   bash scripts/placement/produce.sh dalli php  # only rows whose name starts so
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
for pkg in memcached php-cli php-memcached ruby ruby-dalli python3-pymemcache python3-pylibmc \
  python3-memcache libspymemcached-java nutcracker golang-go golang-github-bradfitz-gomemcache-dev; do
  dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  apt-get install -y "${missing[@]}" >&2
fi
command -v javac >/dev/null || { echo "javac is needed (default-jdk-headless)" >&2; exit 1; }
[ -d node_modules/memcached ] && [ -d node_modules/memjs ] || { echo "run npm ci first" >&2; exit 1; }

npx tsc -p . >/dev/null || true # type errors elsewhere do not stop the emit
test -f dist/scripts/placement/store-node.js

exec /usr/bin/python3 scripts/placement/produce.py "$@"

#!/usr/bin/env bash
# Builds memshift-capture (native/memshift-capture.c on libpcap), the capture program mirror,
# top --keys and hot keys prefer to tcpdump: packets within milliseconds and a packed kernel ring.
# Fails soft: without a C compiler or libpcap-dev it says so in one line and memshift uses tcpdump.
set -uo pipefail
cd "$(dirname "$0")/.."
out=dist/bin/memshift-capture
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "memshift-capture not built (no C compiler: apt-get install gcc libc6-dev libpcap-dev); capture uses tcpdump"
  exit 0
fi
if [ ! -f /usr/include/pcap/pcap.h ] && [ ! -f /usr/include/pcap.h ]; then
  echo "memshift-capture not built (no libpcap headers: apt-get install libpcap-dev); capture uses tcpdump"
  exit 0
fi
mkdir -p dist/bin
if ! errors=$("$cc" -O2 -Wall -Wextra -o "$out.tmp" native/memshift-capture.c -lpcap 2>&1); then
  echo "memshift-capture not built ($(printf '%s' "$errors" | head -1)); capture uses tcpdump"
  rm -f "$out.tmp"
  exit 0
fi
[ -z "$errors" ] || printf '%s\n' "$errors" >&2
mv -f "$out.tmp" "$out"

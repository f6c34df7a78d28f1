#!/usr/bin/env bash
# Installs what bench/proxy.ts compares memshift proxy with, when missing: twemproxy (Debian
# `nutcracker`) and memcaslap (libmemcached-tools). Benchmarks only: the tests do not need them.
# The benchmark starts its own nutcracker on a free loopback port, so the package's service is
# kept from starting during the install and left stopped and disabled afterwards.
set -euo pipefail

need=()
command -v nutcracker >/dev/null 2>&1 || need+=(nutcracker)
command -v memcaslap >/dev/null 2>&1 || need+=(libmemcached-tools)

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "memshift: bench packages missing (${need[*]:-none}) and not root: run as root or install them with apt-get" >&2
    exit 1
  fi
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "bench packages: installing ${need[*]}"
  # policy-rc.d exit 101: maintainer scripts may not start services while it exists.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    own_policy=1
  fi
  cleanup() { if [ "$own_policy" -eq 1 ]; then $sudo rm -f "$policy"; fi; }
  trap cleanup EXIT
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "bench packages: all present"
fi

# Whatever the install did, no nutcracker service stays running or starts at boot.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now nutcracker.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/nutcracker ]; then
  $sudo /etc/init.d/nutcracker stop >/dev/null 2>&1 || true
  command -v update-rc.d >/dev/null 2>&1 && $sudo update-rc.d nutcracker disable >/dev/null 2>&1 || true
fi

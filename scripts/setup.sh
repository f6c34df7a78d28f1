#!/usr/bin/env bash
# The quick start: installs what memshift needs, builds it, and runs its main job on
# local memcached instances it starts (and stops) itself: `memshift demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
npm ci --no-audit --no-fund
npm run build --silent
node bin/memshift.js demo

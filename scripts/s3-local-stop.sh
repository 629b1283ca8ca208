#!/usr/bin/env bash
# Stop the server scripts/s3-local-start.sh started and remove its data (same DIR, default
# /tmp/mlrun-s3); `--keep` keeps the data.
set -uo pipefail
dir=${1:-/tmp/mlrun-s3}
keep=${2:-}
if [ -f "$dir/weed.pid" ]; then
  pid=$(cat "$dir/weed.pid")
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
fi
if [ "$keep" != "--keep" ]; then rm -rf "$dir"; fi
exit 0

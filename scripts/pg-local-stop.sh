#!/usr/bin/env bash
# Stop the server scripts/pg-local-start.sh started and remove its data (same DIR, default
# /tmp/mlrun-pg); `--keep` keeps the data directory.
set -uo pipefail
dir=${1:-/tmp/mlrun-pg}
keep=${2:-}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -f "$dir/data/PG_VERSION" ] && [ -n "$bin" ]; then
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  else
    "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
fi
if [ "$keep" != "--keep" ]; then rm -rf "$dir"; fi
exit 0

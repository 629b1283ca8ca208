#!/usr/bin/env bash
# Stop the cluster scripts/slurm-local-start.sh started (same DIR, default /tmp/mlrun-slurm).
set -uo pipefail
dir=${1:-/tmp/mlrun-slurm}
for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
exit 0

#!/usr/bin/env bash
# `mlrun runs --remote` on a PostgreSQL record of 10,000 runs (the synthetic store of
# scripts/bench-ui.sh, loaded as scripts/bench-remote-lineage.sh loads it:
# scripts/bench/remote-load.sh). For each form (the default page, and the filters and sorts
# that need every run: --sort, --metric, --since, --grep, --param, -n 0): the local and the
# remote answer compared, the number of SQL statements the remote answer took (from the
# server's log), and the median wall time of each (hyperfine). With BEFORE=PATH (an older
# mlrun binary) each remote form is also timed once with it (bounded by BEFORE_TIMEOUT, 600 s).
#
# Starts its own PostgreSQL (MLRUN_PG_PORT, default 54373) and stops it at the end.
#
#   scripts/bench-remote-runs.sh [ROUNDS]     (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
rounds=${1:-10}
command -v hyperfine >/dev/null || { echo "hyperfine not found" >&2; exit 1; }
cargo build --release --quiet --bin mlrun --example synth_store
mlrun=$repo/target/release/mlrun
synth=$repo/target/synth-store
if [ ! -f "$synth/lineage.db" ]; then
  target/release/examples/synth_store "$synth" --runs 10000 --chain 20 | tee "$synth.summary"
fi

work=$(mktemp -d /tmp/mlrun-bench-runs.XXXXXX)
chmod 0755 "$work"
cleanup() {
  if [ -n "${KEEP:-}" ]; then echo "kept: $work (stop: scripts/pg-local-stop.sh $work/pg)"; return; fi
  "$repo/scripts/pg-local-stop.sh" "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export MLRUN_PG_PORT=${MLRUN_PG_PORT:-54373} MLRUN_PG_PASSWORD=bench PGPASSWORD=bench
scripts/pg-local-start.sh "$work/pg" >/dev/null
export MLRUN_REMOTE_DB=postgres://mlrun@127.0.0.1:$MLRUN_PG_PORT/mlrun
export MLRUN_REMOTE_OBJECTS=s3://mlrun/bench-runs
psql_=(psql -h 127.0.0.1 -p "$MLRUN_PG_PORT" -U mlrun -d mlrun -v ON_ERROR_STOP=1 -qAt)

# the remote's schema, made by mlrun itself
"$mlrun" --store "$synth" runs --remote >/dev/null 2>&1 || true
"${psql_[@]}" -c "SELECT version FROM mlrun_schema" >/dev/null
source scripts/bench/remote-load.sh
t0=$(date +%s.%N)
load_synth_record "$synth"
"${psql_[@]}" -c "VACUUM ANALYZE"
echo "loaded into PostgreSQL in $(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')") s:" \
  "$("${psql_[@]}" -c "SELECT (SELECT count(*) FROM runs) || ' runs, ' || (SELECT count(*) FROM step_execs) || ' executions, ' || (SELECT count(*) FROM metrics) || ' metrics'")"

# every statement the server runs, logged (to count them per command)
"${psql_[@]}" -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
log=$work/pg/server.log

forms=(
  ""
  "--sort accuracy"
  "--sort loss:asc -n 5"
  "--metric accuracy>0.95"
  "--since 2023-11-20"
  "--grep dropout"
  "--param lr=0.1"
  "-n 0"
)
cd "$work"
for f in "${forms[@]}"; do
  # shellcheck disable=SC2086
  "$mlrun" --store "$synth" runs $f >local.txt
  start=$(wc -l <"$log")
  # shellcheck disable=SC2086
  "$mlrun" --store "$synth" runs $f --remote >remote.txt
  statements=$(tail -n +"$((start + 1))" "$log" | grep -c 'duration: .* execute ' || true)
  same=$(cmp -s local.txt remote.txt && echo "the same text" || echo "DIFFERENT text")
  echo "runs $f: $same from both ($(($(wc -l <local.txt) - 1)) runs); $statements statements on the server"
done
"${psql_[@]}" -c "ALTER SYSTEM RESET log_min_duration_statement" -c "SELECT pg_reload_conf()" >/dev/null

args=()
for f in "${forms[@]}"; do
  args+=(-n "local  runs $f" "$mlrun --store $synth runs $f")
  args+=(-n "remote runs $f" "$mlrun --store $synth runs $f --remote")
done
hyperfine -N --warmup 1 --runs "$rounds" --export-json "$work/runs.json" "${args[@]}" >/dev/null
python3 - "$work/runs.json" <<'EOF'
import json, statistics, sys
for r in json.load(open(sys.argv[1]))["results"]:
    t = sorted(x * 1000 for x in r["times"])
    print(f"{r['command']:40} median {statistics.median(t):8.1f} ms (min {t[0]:.1f}, max {t[-1]:.1f})")
EOF

if [ -n "${BEFORE:-}" ]; then
  for f in "${forms[@]}"; do
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    if timeout "${BEFORE_TIMEOUT:-600}" "$BEFORE" --store "$synth" runs $f --remote >/dev/null 2>&1; then
      echo "before: runs $f --remote: $(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')") s"
    else
      echo "before: runs $f --remote: not done after $(python3 -c "print(f'{$(date +%s.%N) - $t0:.0f}')") s"
    fi
  done
fi
echo "load average: $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores"

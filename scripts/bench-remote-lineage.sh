#!/usr/bin/env bash
# `mlrun lineage --remote` on a PostgreSQL record of 10,000 runs and 1,000,000 io edges.
#
# The record is the synthetic store of scripts/bench-ui.sh (examples/synth_store.rs: chains of
# 20 runs whose first step reads what the previous run made, four steps a run, ~23 tracked
# source files per step whose versions change every few commits, directory outputs, a raw dump
# at the start of each chain that nothing made), loaded straight into a fresh remote database
# with COPY, in the remote's own shape (executions keyed by run, step and attempt; versions by
# path and hash). Then, interleaved, `mlrun lineage model@RUN` (upstream of the model at the end
# of a chain) against the local synthetic store and with `--remote`: the median of each, and
# the two answers compared. Last, the plan of every statement of one remote lineage, from
# PostgreSQL's auto_explain (EXPLAIN ANALYZE of each statement the server ran).
#
# Starts its own PostgreSQL (MLRUN_PG_PORT, default 54372) and stops it at the end.
#
#   scripts/bench-remote-lineage.sh [ROUNDS]     (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
rounds=${1:-15}
cargo build --release --quiet --bin mlrun --example synth_store
mlrun=$repo/target/release/mlrun
synth=$repo/target/synth-store
if [ ! -f "$synth/lineage.db" ]; then
  target/release/examples/synth_store "$synth" --runs 10000 --chain 20 | tee "$synth.summary"
fi
[ -f "$synth.summary" ] || target/release/examples/synth_store "$synth" 2>/dev/null | tee "$synth.summary" || true
run=$(sed -n 's/^chain end: model@\([0-9a-f]*\).*/\1/p' "$synth.summary")
[ -n "$run" ] || { echo "no chain end in $synth.summary: remove $synth and run again" >&2; exit 1; }

work=$(mktemp -d /tmp/mlrun-bench-lineage.XXXXXX)
chmod 0755 "$work"
cleanup() {
  if [ -n "${KEEP:-}" ]; then echo "kept: $work (stop: scripts/pg-local-stop.sh $work/pg)"; return; fi
  "$repo/scripts/pg-local-stop.sh" "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export MLRUN_PG_PORT=${MLRUN_PG_PORT:-54372} MLRUN_PG_PASSWORD=bench PGPASSWORD=bench
scripts/pg-local-start.sh "$work/pg" >/dev/null
export MLRUN_REMOTE_DB=postgres://mlrun@127.0.0.1:$MLRUN_PG_PORT/mlrun
export MLRUN_REMOTE_OBJECTS=s3://mlrun/bench-lineage
psql_=(psql -h 127.0.0.1 -p "$MLRUN_PG_PORT" -U mlrun -d mlrun -v ON_ERROR_STOP=1 -qAt)

# the remote's schema, made by mlrun itself (any remote command migrates; this one finds nothing)
"$mlrun" --store "$synth" lineage 0000 --remote >/dev/null 2>&1 || true
"${psql_[@]}" -c "SELECT version FROM mlrun_schema" >/dev/null

source scripts/bench/remote-load.sh
t0=$(date +%s.%N)
load_synth_record "$synth"
"${psql_[@]}" -c "VACUUM ANALYZE"
t1=$(date +%s.%N)
echo "loaded into PostgreSQL in $(python3 -c "print(f'{$t1 - $t0:.1f}')") s:" \
  "$("${psql_[@]}" -c "SELECT (SELECT count(*) FROM runs) || ' runs, ' || (SELECT count(*) FROM step_execs) || ' executions, ' || (SELECT count(*) FROM io_edges) || ' io edges; database ' || pg_size_pretty(pg_database_size('mlrun'))")"

# the same answer from both backends (ids aside: the remote numbers them within its answer)
cd "$work"
"$mlrun" --store "$synth" lineage "model@$run" >local.txt
"$mlrun" --store "$synth" lineage "model@$run" --remote >remote.txt
if cmp -s local.txt remote.txt; then
  echo "lineage model@$run: the same text from both ($(wc -l <local.txt) lines)"
else
  echo "lineage model@$run: the answers differ:"
  diff local.txt remote.txt | head -20
fi

# interleaved: local, remote, local, remote, ... (wall and CPU time of the whole process)
python3 - "$mlrun" "$synth" "model@$run" "$rounds" <<'EOF'
import os, statistics, subprocess, sys, time
mlrun, synth, target, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cmds = {
    "local": [mlrun, "--store", synth, "lineage", target],
    "remote": [mlrun, "--store", synth, "lineage", target, "--remote"],
}
wall = {k: [] for k in cmds}
cpu = {k: [] for k in cmds}
for i in range(rounds + 2):
    for k, c in cmds.items():
        before = os.times()
        t = time.perf_counter()
        subprocess.run(c, stdout=subprocess.DEVNULL, check=True)
        dt = time.perf_counter() - t
        after = os.times()
        if i >= 2:  # two warm-up rounds
            wall[k].append(dt * 1000)
            cpu[k].append((after.children_user - before.children_user
                           + after.children_system - before.children_system) * 1000)
for k in cmds:
    w = sorted(wall[k])
    print(f"{k:6} lineage {target}: median {statistics.median(w):.1f} ms "
          f"(min {w[0]:.1f}, max {w[-1]:.1f}; {len(w)} runs), CPU of mlrun {statistics.median(cpu[k]):.1f} ms")
print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
EOF

# (`runs --remote` on this record: scripts/bench-remote-runs.sh)

# the plans, from the server: every statement of one `lineage --remote`, EXPLAIN ANALYZEd
"${psql_[@]}" -c "LOAD 'auto_explain'" -c "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'" \
  -c "ALTER SYSTEM SET auto_explain.log_min_duration = 0" \
  -c "ALTER SYSTEM SET auto_explain.log_analyze = on" \
  -c "ALTER SYSTEM SET auto_explain.log_buffers = on" -c "SELECT pg_reload_conf()" >/dev/null
log=$work/pg/server.log
[ -f "$log" ] || log=$(ls "$work"/pg/*.log | head -1)
start=$(wc -l <"$log")
"$mlrun" --store "$synth" lineage "model@$run" --remote >/dev/null
echo "--- plans of one lineage --remote (auto_explain, EXPLAIN ANALYZE):"
tail -n +"$((start + 1))" "$log" | sed -n '/duration: .* plan:/,$p' | grep -v 'statement: \|^\s*$' || true

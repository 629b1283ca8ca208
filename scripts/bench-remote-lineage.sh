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

# one table: the SELECT on the synthetic SQLite store, COPYed into PostgreSQL
load() {
  local table=$1 cols=$2 select=$3
  sqlite3 -csv -nullvalue '\N' "$synth/lineage.db" "$select" |
    "${psql_[@]}" -c "\\copy $table ($cols) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
}
hexof() { echo "CASE WHEN $1 IS NULL THEN NULL ELSE '\\x' || hex($1) END"; }
t0=$(date +%s.%N)
load runs 'id, pipeline, pipeline_file, root, spec_hash, plan, params, status, exit_code, started_at, ended_at, git_start, git_end, hostname, "user", mlrun_version, argv, pid, pid_start, boot_id, replay_of, replay_verdict, message' \
  'SELECT id, pipeline, pipeline_file, root, spec_hash, plan, params, status, exit_code, started_at, ended_at, git_start, git_end, hostname, "user", mlrun_version, argv, pid, pid_start, boot_id, replay_of, replay_verdict, message FROM runs'
load contents 'hash, size, data' "SELECT hash, size, $(hexof data) FROM contents"
load blobs 'hash, kind, size, nfiles' 'SELECT hash, kind, size, nfiles FROM blobs'
load git_snapshots 'id, is_repo, commit_sha, branch, dirty, diff_hash, changed, untracked, remote_url, workdir, error' \
  'SELECT id, is_repo, commit_sha, branch, dirty, diff_hash, changed, untracked, remote_url, workdir, error FROM git_snapshots'
load package_sets 'hash, count, data' "SELECT hash, count, $(hexof data) FROM package_sets"
load env_snapshots 'id, os, os_version, kernel, arch, cpu_model, cpu_cores, mem_bytes, hostname, "user", mlrun_version, interpreters, lockfiles, env_vars, packages' \
  'SELECT id, os, os_version, kernel, arch, cpu_model, cpu_cores, mem_bytes, hostname, "user", mlrun_version, interpreters, lockfiles, env_vars, packages FROM env_snapshots'
load step_execs 'run_id, step, attempt, seq, cmd, argv, cwd, status, exit_code, signal, error, started_at, ended_at, git_before, git_after, env_id, cache_key, cache_parts, reused_run, reused_step, reused_attempt, keep_outputs, repo_changes' \
  'SELECT s.run_id, s.step, s.attempt, s.seq, s.cmd, s.argv, s.cwd, s.status, s.exit_code, s.signal, s.error, s.started_at, s.ended_at, s.git_before, s.git_after, s.env_id, s.cache_key, s.cache_parts, r.run_id, r.step, r.attempt, s.keep_outputs, s.repo_changes FROM step_execs s LEFT JOIN step_execs r ON r.id = s.reused_exec'
load io_edges 'run_id, step, attempt, direction, path, blob_hash, first_seen, declared, origin, mode, link' \
  "SELECT s.run_id, s.step, s.attempt, x.direction, a.path, v.blob_hash, v.first_seen, x.declared, x.origin, x.mode, $(hexof x.link) FROM io_edges x JOIN step_execs s ON s.id = x.step_exec JOIN artifact_versions v ON v.id = x.av_id JOIN artifacts a ON a.id = v.artifact_id"
load params 'run_id, step, attempt, key, value' \
  'SELECT s.run_id, s.step, s.attempt, x.key, x.value FROM params x JOIN step_execs s ON s.id = x.step_exec'
load metrics 'run_id, step, attempt, key, value, source, exact' \
  'SELECT s.run_id, s.step, s.attempt, x.key, x.value, x.source, x.exact FROM metrics x JOIN step_execs s ON s.id = x.step_exec'
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

# `runs --remote` reads the records it shows into a throwaway local store: 20 runs by default,
# every run for a filter or sort that needs them all (bounded here at 10 minutes)
# (RUNS_ALL=0 leaves the every-run case out: it takes minutes)
all="runs -n 0"
[ "${RUNS_ALL:-1}" = 0 ] && all=
for args in "runs" "runs -n 500" ${all:+"$all"}; do
  t0=$(date +%s.%N)
  if timeout 600 "$mlrun" --store "$synth" $args --remote >/dev/null 2>"$work/runs.err"; then
    echo "$args --remote: $(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')") s"
  else
    echo "$args --remote: not done after $(python3 -c "print(f'{$(date +%s.%N) - $t0:.0f}')") s: $(head -c 300 "$work/runs.err")"
  fi
done

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

# shellcheck shell=bash
# The synthetic store of examples/synth_store.rs loaded straight into a fresh remote database
# with COPY, in the remote's own shape (executions keyed by run, step and attempt; versions by
# path and hash). Sourced by scripts/bench-remote-lineage.sh and scripts/bench-remote-runs.sh,
# which set `psql_` (the psql command for the remote database) first.

# one table: the SELECT on the synthetic SQLite store, COPYed into PostgreSQL
load() {
  local table=$1 cols=$2 select=$3
  sqlite3 -csv -nullvalue '\N' "$synth/lineage.db" "$select" |
    "${psql_[@]}" -c "\\copy $table ($cols) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
}
hexof() { echo "CASE WHEN $1 IS NULL THEN NULL ELSE '\\x' || hex($1) END"; }
# load_synth_record SYNTH: every table of the record
load_synth_record() {
  local synth=$1
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
}

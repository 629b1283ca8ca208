//! The team record's PostgreSQL schema, as append-only migrations (`mlrun_schema` holds the
//! version; `Record::migrate` applies them).

/// PostgreSQL migrations, in order. Never edit a released one: append.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the record of runs, as the local store keeps it (store/schema.rs), with step
    // executions named by (run_id, step, attempt) and artifact versions by (path, blob_hash);
    // `run_objects` lists the objects each run needs, which a push uploads before the run.
    r#"
CREATE TABLE contents (hash TEXT PRIMARY KEY, size BIGINT NOT NULL, data BYTEA NOT NULL);
CREATE TABLE blobs (
  hash TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
  size BIGINT NOT NULL, nfiles BIGINT NOT NULL);
CREATE TABLE package_sets (hash TEXT PRIMARY KEY, count BIGINT NOT NULL, data BYTEA NOT NULL);
CREATE TABLE git_snapshots (
  id TEXT PRIMARY KEY, is_repo BIGINT NOT NULL, commit_sha TEXT, branch TEXT,
  dirty BIGINT NOT NULL, diff_hash TEXT, changed TEXT NOT NULL, untracked TEXT NOT NULL,
  remote_url TEXT, workdir TEXT, error TEXT);
CREATE TABLE env_snapshots (
  id TEXT PRIMARY KEY, os TEXT NOT NULL, os_version TEXT NOT NULL, kernel TEXT NOT NULL,
  arch TEXT NOT NULL, cpu_model TEXT NOT NULL, cpu_cores BIGINT NOT NULL,
  mem_bytes BIGINT NOT NULL, hostname TEXT NOT NULL, "user" TEXT NOT NULL,
  mlrun_version TEXT NOT NULL, interpreters TEXT NOT NULL, lockfiles TEXT NOT NULL,
  env_vars TEXT NOT NULL, packages TEXT);
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  pipeline TEXT NOT NULL, pipeline_file TEXT NOT NULL, root TEXT NOT NULL,
  spec_hash TEXT NOT NULL, plan TEXT NOT NULL, params TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
  exit_code BIGINT, started_at BIGINT NOT NULL, ended_at BIGINT,
  git_start TEXT, git_end TEXT, hostname TEXT NOT NULL, "user" TEXT NOT NULL,
  mlrun_version TEXT NOT NULL, argv TEXT NOT NULL, pid BIGINT NOT NULL, pid_start BIGINT,
  boot_id TEXT, replay_of TEXT,
  replay_verdict TEXT CHECK (replay_verdict IN ('identical', 'differs', 'failed')),
  message TEXT,
  pushed_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX runs_started ON runs (started_at);
CREATE INDEX runs_pipeline ON runs (pipeline, started_at);
CREATE TABLE step_execs (
  run_id TEXT NOT NULL REFERENCES runs (id), step TEXT NOT NULL, attempt BIGINT NOT NULL,
  seq BIGINT, cmd TEXT NOT NULL, argv TEXT NOT NULL, cwd TEXT NOT NULL, status TEXT NOT NULL,
  exit_code BIGINT, signal BIGINT, error TEXT, started_at BIGINT, ended_at BIGINT,
  git_before TEXT, git_after TEXT, env_id TEXT, cache_key TEXT, cache_parts TEXT,
  reused_run TEXT, reused_step TEXT, reused_attempt BIGINT,
  keep_outputs BIGINT NOT NULL DEFAULT 0, repo_changes TEXT,
  PRIMARY KEY (run_id, step, attempt));
CREATE INDEX steps_cache ON step_execs (cache_key) WHERE cache_key IS NOT NULL;
CREATE TABLE io_edges (
  run_id TEXT NOT NULL, step TEXT NOT NULL, attempt BIGINT NOT NULL,
  direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
  path TEXT NOT NULL, blob_hash TEXT NOT NULL, first_seen BIGINT NOT NULL,
  declared BIGINT NOT NULL, origin TEXT, mode BIGINT, link BYTEA,
  PRIMARY KEY (run_id, step, attempt, direction, path, blob_hash),
  FOREIGN KEY (run_id, step, attempt) REFERENCES step_execs);
CREATE INDEX io_by_version ON io_edges (path, blob_hash, direction);
CREATE INDEX io_by_hash ON io_edges (blob_hash);
CREATE TABLE params (
  run_id TEXT NOT NULL, step TEXT NOT NULL, attempt BIGINT NOT NULL,
  key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (run_id, step, attempt, key),
  FOREIGN KEY (run_id, step, attempt) REFERENCES step_execs);
CREATE TABLE metrics (
  run_id TEXT NOT NULL, step TEXT NOT NULL, attempt BIGINT NOT NULL,
  key TEXT NOT NULL, value DOUBLE PRECISION, source TEXT NOT NULL, exact TEXT,
  PRIMARY KEY (run_id, step, attempt, key),
  FOREIGN KEY (run_id, step, attempt) REFERENCES step_execs);
CREATE TABLE step_logs (
  run_id TEXT NOT NULL, step TEXT NOT NULL, attempt BIGINT NOT NULL,
  stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
  content_hash TEXT NOT NULL, bytes BIGINT NOT NULL, tail_hash TEXT, full_hash TEXT,
  stored BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, step, attempt, stream),
  FOREIGN KEY (run_id, step, attempt) REFERENCES step_execs);
CREATE TABLE run_objects (
  run_id TEXT NOT NULL REFERENCES runs (id), name TEXT NOT NULL,
  PRIMARY KEY (run_id, name));
CREATE INDEX run_objects_name ON run_objects (name);
"#,
    // 2: the objects uploads put there (`pack` NULL: on its own; else small objects packed
    // together, `remote::objects`: one upload `PREFIX/packs/<id>.pack` holds many, each read
    // back by its byte range and verified by its hash); what a run
    // brings besides its record: model versions and alias moves (by model name and version
    // label, never a local id), output determinism findings (newest `checked_at` kept), and
    // removals (`mlrun rm` of a pushed run: the tombstone, its record deleted, objects kept).
    r#"
CREATE TABLE objects (name TEXT PRIMARY KEY, pack TEXT, pos BIGINT, len BIGINT);
CREATE TABLE model_versions (
  name TEXT NOT NULL, label TEXT NOT NULL, semver TEXT NOT NULL, major BIGINT NOT NULL,
  path TEXT NOT NULL, blob_hash TEXT NOT NULL, run_id TEXT REFERENCES runs (id),
  step TEXT, attempt BIGINT, registered_at BIGINT NOT NULL, registered_by TEXT NOT NULL,
  message TEXT, auto BIGINT NOT NULL,
  PRIMARY KEY (name, semver));
CREATE INDEX model_versions_run ON model_versions (run_id);
CREATE TABLE model_alias_log (
  name TEXT NOT NULL, alias TEXT NOT NULL, from_label TEXT, to_label TEXT,
  at BIGINT NOT NULL, by TEXT NOT NULL, message TEXT,
  PRIMARY KEY (name, alias, at, by));
CREATE TABLE output_determinism (
  pipeline TEXT NOT NULL, step TEXT NOT NULL, path TEXT NOT NULL,
  verdict TEXT NOT NULL CHECK (verdict IN ('deterministic', 'nondeterministic')),
  since_run TEXT NOT NULL, last_run TEXT NOT NULL,
  found_by TEXT NOT NULL CHECK (found_by IN ('check', 'replay')), checked_at BIGINT NOT NULL,
  PRIMARY KEY (pipeline, step, path));
CREATE TABLE run_removals (
  run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, status TEXT NOT NULL,
  started_at BIGINT NOT NULL, git_commit TEXT, message TEXT, replay_of TEXT,
  steps BIGINT NOT NULL, removed_at BIGINT NOT NULL, removed_by TEXT NOT NULL, reason TEXT);
"#,
    // 3: when a version was first recorded, read from the index: `lineage --remote` shows it
    // for every version it found, and a source file read by thousands of steps has as many
    // edges (with `direction` before it, the index also finds a version's producers as
    // directly as `io_by_version`, which the planner might otherwise pass over for it)
    "CREATE INDEX io_by_version_seen ON io_edges (path, blob_hash, direction, first_seen);",
    // 4: objects `fsck --remote --repair` found damaged or missing (and the directories
    // holding them): their `objects` rows are gone, and until a push sends them again the
    // remote does not count them as there, though runs (`run_objects`) name them
    "CREATE TABLE objects_damaged (name TEXT PRIMARY KEY, found_at TIMESTAMPTZ NOT NULL DEFAULT now());",
];

-- A new store's whole schema at once: what the migrations in schema.rs leave (sqlite_master,
-- in creation order), generated from them. Test `store::schema::tests::a_new_store_gets_the_migrated_schema`
-- keeps the two identical; a new migration also updates this file.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE blobs (
  hash TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
  size INTEGER NOT NULL,
  nfiles INTEGER NOT NULL,
  stored INTEGER NOT NULL DEFAULT 0  -- bytes kept in .mlrun/objects (restorable)
) WITHOUT ROWID;
CREATE TABLE artifacts (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE artifact_versions (
  id INTEGER PRIMARY KEY,
  artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  blob_hash TEXT NOT NULL REFERENCES blobs(hash),
  first_seen INTEGER NOT NULL,
  UNIQUE (artifact_id, blob_hash));
CREATE TABLE step_execs (
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL REFERENCES runs(id),
  step TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 1,
  seq INTEGER,                               -- the step's position in the plan (topological)
  cmd TEXT NOT NULL,                         -- as shown to people
  argv TEXT NOT NULL,                        -- JSON array actually executed
  cwd TEXT NOT NULL,
  -- cached: skipped, outputs on disk matched; restored: outputs restored from the object store.
  -- Both reuse the execution in reused_exec and carry copies of its io edges.
  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out', 'interrupted', 'not_run', 'cached', 'restored')),
  exit_code INTEGER, signal INTEGER, error TEXT,
  started_at INTEGER, ended_at INTEGER,
  git_before TEXT REFERENCES git_snapshots(id), git_after TEXT REFERENCES git_snapshots(id),
  env_id TEXT REFERENCES env_snapshots(id),
  cache_key TEXT,                            -- sha256 of cache_parts
  cache_parts TEXT,                          -- JSON: command, cwd, input hashes, params, env, outputs
  reused_exec INTEGER REFERENCES step_execs(id), keep_outputs INTEGER NOT NULL DEFAULT 0, repo_changes TEXT,
  UNIQUE (run_id, step, attempt));
CREATE TABLE io_edges (
  step_exec INTEGER NOT NULL REFERENCES step_execs(id),
  direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
  av_id INTEGER NOT NULL REFERENCES artifact_versions(id),
  declared INTEGER NOT NULL DEFAULT 1,       -- 0: observed by tracing, not declared
  -- for inputs: where this version came from. 'step': an output of a step of the same
  -- pipeline; 'git': tracked and unmodified at the recorded commit; 'external': neither
  -- (untracked, ignored or modified: only mlrun's own record can say what it was).
  origin TEXT CHECK (origin IN ('step', 'git', 'external')),
  mode INTEGER, link BLOB,                              -- file mode of a file version (dirs: in dir_entries)
  PRIMARY KEY (step_exec, direction, av_id)) WITHOUT ROWID;
CREATE TABLE params (
  step_exec INTEGER NOT NULL REFERENCES step_execs(id),
  key TEXT NOT NULL, value TEXT NOT NULL,    -- canonical JSON
  PRIMARY KEY (step_exec, key)) WITHOUT ROWID;
CREATE TABLE step_logs (
  step_exec INTEGER NOT NULL REFERENCES step_execs(id),
  stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
  content_hash TEXT NOT NULL REFERENCES contents(hash),
  bytes INTEGER NOT NULL, tail_hash TEXT REFERENCES contents(hash), full_hash TEXT, stored INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (step_exec, stream)) WITHOUT ROWID;
CREATE TABLE stat_cache (
  dir TEXT PRIMARY KEY,                      -- absolute path of a directory
  entries BLOB NOT NULL                      -- its files' stats and hashes, packed
);
CREATE TABLE "metrics" (
  step_exec INTEGER NOT NULL REFERENCES step_execs(id),
  key TEXT NOT NULL,
  value REAL,                                -- NULL: NaN (see exact)
  source TEXT NOT NULL,
  exact TEXT,                                -- the value when a REAL cannot hold it: 'nan', '-0.0'
  PRIMARY KEY (step_exec, key)) WITHOUT ROWID;
CREATE TABLE models (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL);
CREATE TABLE model_versions (
  id INTEGER PRIMARY KEY,
  model_id INTEGER NOT NULL REFERENCES models(id),
  label TEXT NOT NULL,                       -- as written: v3, v1.2.0
  semver TEXT NOT NULL,                      -- canonical: vN is N.0.0
  major INTEGER NOT NULL,
  av_id INTEGER NOT NULL REFERENCES artifact_versions(id),
  step_exec INTEGER REFERENCES step_execs(id),  -- the execution that produced it, if recorded
  run_id TEXT REFERENCES runs(id),
  registered_at INTEGER NOT NULL,
  registered_by TEXT NOT NULL,
  message TEXT,
  auto INTEGER NOT NULL DEFAULT 0,           -- 1: by a step's `model` key
  UNIQUE (model_id, semver),
  UNIQUE (model_id, av_id));
CREATE TABLE model_alias_log (
  id INTEGER PRIMARY KEY,
  model_id INTEGER NOT NULL REFERENCES models(id),
  alias TEXT NOT NULL,
  from_version INTEGER REFERENCES model_versions(id),
  to_version INTEGER REFERENCES model_versions(id),
  at INTEGER NOT NULL,
  by TEXT NOT NULL,
  message TEXT);
CREATE TABLE openlineage_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    event_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    body TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'rejected')),
    done_at INTEGER,
    UNIQUE (event_key)
);
CREATE TABLE output_determinism (
  pipeline TEXT NOT NULL, step TEXT NOT NULL, path TEXT NOT NULL,
  verdict TEXT NOT NULL CHECK (verdict IN ('deterministic', 'nondeterministic')),
  since_run TEXT NOT NULL,                   -- the run (a check or replay) that first found it
  last_run TEXT NOT NULL,                    -- the run that last confirmed it
  found_by TEXT NOT NULL CHECK (found_by IN ('check', 'replay')),
  checked_at INTEGER NOT NULL,               -- ms since the epoch
  PRIMARY KEY (pipeline, step, path)) WITHOUT ROWID;
CREATE TABLE run_removals (
  run_id TEXT PRIMARY KEY,
  pipeline TEXT NOT NULL,
  status TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  git_commit TEXT,
  message TEXT,
  replay_of TEXT,
  steps INTEGER NOT NULL,
  removed_at INTEGER NOT NULL,
  removed_by TEXT NOT NULL,
  reason TEXT) WITHOUT ROWID;
CREATE TABLE step_jobs (
  step_exec INTEGER PRIMARY KEY REFERENCES step_execs(id),
  executor TEXT NOT NULL,
  job_id TEXT NOT NULL,
  submitted_at INTEGER NOT NULL,
  node TEXT,
  started_at INTEGER,
  ended_at INTEGER,
  state TEXT,
  reason TEXT,
  gpus TEXT,
  cancelled_at INTEGER);
CREATE TABLE remote_runs (
  remote TEXT NOT NULL,
  run_id TEXT NOT NULL,
  how TEXT NOT NULL CHECK (how IN ('pushed', 'pulled')),
  at INTEGER NOT NULL,                       -- ms since the epoch
  PRIMARY KEY (remote, run_id)) WITHOUT ROWID;
CREATE TABLE remote_objects (
  remote TEXT NOT NULL,
  name TEXT NOT NULL,
  PRIMARY KEY (remote, name)) WITHOUT ROWID;
CREATE TABLE remote_items (
  remote TEXT NOT NULL,
  item TEXT NOT NULL,
  PRIMARY KEY (remote, item)) WITHOUT ROWID;
CREATE TABLE "contents" (
  hash TEXT NOT NULL PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE "runs" (
  id TEXT NOT NULL PRIMARY KEY,                       -- UUIDv7, 32 lowercase hex digits
  pipeline TEXT NOT NULL, pipeline_file TEXT NOT NULL, root TEXT NOT NULL,
  spec_hash TEXT NOT NULL REFERENCES contents(hash),  -- pipeline.toml as it was
  plan TEXT NOT NULL,                        -- JSON of the resolved plan
  params TEXT NOT NULL,                      -- JSON object of all params after overrides
  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
  exit_code INTEGER,
  started_at INTEGER NOT NULL, ended_at INTEGER,   -- ms since the Unix epoch
  git_start TEXT REFERENCES git_snapshots(id), git_end TEXT REFERENCES git_snapshots(id),
  hostname TEXT NOT NULL, user TEXT NOT NULL, mlrun_version TEXT NOT NULL,
  argv TEXT NOT NULL,                        -- JSON array: how mlrun was invoked
  pid INTEGER NOT NULL, pid_start INTEGER, boot_id TEXT,
  replay_of TEXT REFERENCES runs(id),
  replay_verdict TEXT CHECK (replay_verdict IN ('identical', 'differs', 'failed'))
, message TEXT, targets TEXT, sweep_id TEXT);
CREATE TABLE "env_snapshots" (
  id TEXT NOT NULL PRIMARY KEY, os TEXT NOT NULL, os_version TEXT NOT NULL, kernel TEXT NOT NULL,
  arch TEXT NOT NULL, cpu_model TEXT NOT NULL, cpu_cores INTEGER NOT NULL,
  mem_bytes INTEGER NOT NULL, hostname TEXT NOT NULL, user TEXT NOT NULL,
  mlrun_version TEXT NOT NULL,
  interpreters TEXT NOT NULL,  -- JSON object program -> version
  lockfiles TEXT NOT NULL,     -- JSON object file -> sha256
  env_vars TEXT NOT NULL       -- JSON object, secrets redacted
, packages TEXT);
CREATE TABLE "git_snapshots" (
  id TEXT NOT NULL PRIMARY KEY, is_repo INTEGER NOT NULL, commit_sha TEXT, branch TEXT,
  dirty INTEGER NOT NULL, diff_hash TEXT REFERENCES contents(hash),
  changed TEXT NOT NULL, untracked TEXT NOT NULL, remote_url TEXT, workdir TEXT, error TEXT
);
CREATE TABLE "package_sets" (
  hash TEXT NOT NULL PRIMARY KEY,                     -- sha256 of data
  count INTEGER NOT NULL,
  data BLOB NOT NULL                         -- JSON array of {name, version, source}, sorted
);
CREATE TABLE "package_scan_cache" (
  executable TEXT NOT NULL PRIMARY KEY,               -- as found in PATH
  stamp TEXT NOT NULL,                       -- the scanned directories' paths, inodes, mtimes
  scanned_at_ns INTEGER NOT NULL,            -- trusted only when the mtimes are 2 s older
  env TEXT NOT NULL,                         -- JSON of the PackageEnv it gave
  set_hash TEXT NOT NULL REFERENCES package_sets(hash)
);
CREATE INDEX av_blob ON artifact_versions(blob_hash);
CREATE INDEX steps_cache ON step_execs(cache_key);
CREATE INDEX steps_by_name ON step_execs(step, id);
CREATE INDEX io_by_av ON io_edges(av_id, direction, step_exec);
CREATE INDEX params_kv ON params(key, value);
CREATE INDEX metrics_kv ON metrics(key, value);
CREATE INDEX step_logs_full ON step_logs(full_hash) WHERE full_hash IS NOT NULL;
CREATE INDEX model_versions_av ON model_versions(av_id);
CREATE INDEX model_alias_log_alias ON model_alias_log(model_id, alias, id);
CREATE INDEX openlineage_outbox_pending ON openlineage_outbox (seq) WHERE state = 'pending';
CREATE INDEX openlineage_outbox_run ON openlineage_outbox (run_id);
CREATE INDEX step_jobs_running ON step_jobs(step_exec) WHERE ended_at IS NULL;
CREATE INDEX steps_by_run_seq ON step_execs(run_id, seq, id);
CREATE INDEX runs_started ON runs(started_at);
CREATE INDEX runs_pipeline ON runs(pipeline, started_at);
CREATE INDEX runs_running ON runs(status) WHERE status = 'running';
CREATE INDEX runs_sweep ON runs (sweep_id) WHERE sweep_id IS NOT NULL;
CREATE TRIGGER model_versions_immutable BEFORE UPDATE ON model_versions
  BEGIN SELECT RAISE(ABORT, 'model versions are immutable'); END;
CREATE TRIGGER model_versions_kept BEFORE DELETE ON model_versions
  BEGIN SELECT RAISE(ABORT, 'model versions are never deleted'); END;
CREATE TRIGGER model_alias_log_no_update BEFORE UPDATE ON model_alias_log
  BEGIN SELECT RAISE(ABORT, 'the alias log is append-only'); END;
CREATE TRIGGER model_alias_log_no_delete BEFORE DELETE ON model_alias_log
  BEGIN SELECT RAISE(ABORT, 'the alias log is append-only'); END;

//! Schema migrations, applied in order inside one transaction and tracked by
//! `PRAGMA user_version`. Never edit a released migration: append a new one.

pub const MIGRATIONS: &[&str] = &[
    // 1: the lineage record
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

-- texts kept inside the database: pipeline specs, git diffs, step logs (content-addressed)
CREATE TABLE contents (
  hash TEXT PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID;

-- fingerprinted content: a file, or a directory as its manifest
CREATE TABLE blobs (
  hash TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
  size INTEGER NOT NULL,
  nfiles INTEGER NOT NULL,
  stored INTEGER NOT NULL DEFAULT 0  -- bytes kept in .mlrun/objects (restorable)
) WITHOUT ROWID;
CREATE TABLE dir_entries (
  dir_hash TEXT NOT NULL REFERENCES blobs(hash),
  relpath TEXT NOT NULL, mode INTEGER NOT NULL, file_hash TEXT NOT NULL, size INTEGER NOT NULL,
  PRIMARY KEY (dir_hash, relpath)) WITHOUT ROWID;
CREATE INDEX dir_entries_file ON dir_entries(file_hash);

CREATE TABLE artifacts (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE artifact_versions (
  id INTEGER PRIMARY KEY,
  artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  blob_hash TEXT NOT NULL REFERENCES blobs(hash),
  first_seen INTEGER NOT NULL,
  UNIQUE (artifact_id, blob_hash));
CREATE INDEX av_blob ON artifact_versions(blob_hash);

CREATE TABLE git_snapshots (
  id TEXT PRIMARY KEY, is_repo INTEGER NOT NULL, commit_sha TEXT, branch TEXT,
  dirty INTEGER NOT NULL, diff_hash TEXT REFERENCES contents(hash),
  changed TEXT NOT NULL, untracked TEXT NOT NULL, remote_url TEXT, workdir TEXT, error TEXT
) WITHOUT ROWID;

CREATE TABLE env_snapshots (
  id TEXT PRIMARY KEY, os TEXT NOT NULL, os_version TEXT NOT NULL, kernel TEXT NOT NULL,
  arch TEXT NOT NULL, cpu_model TEXT NOT NULL, cpu_cores INTEGER NOT NULL,
  mem_bytes INTEGER NOT NULL, hostname TEXT NOT NULL, user TEXT NOT NULL,
  mlrun_version TEXT NOT NULL,
  interpreters TEXT NOT NULL,  -- JSON object program -> version
  lockfiles TEXT NOT NULL,     -- JSON object file -> sha256
  env_vars TEXT NOT NULL       -- JSON object, secrets redacted
) WITHOUT ROWID;

CREATE TABLE runs (
  id TEXT PRIMARY KEY,                       -- UUIDv7, 32 lowercase hex digits
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
) WITHOUT ROWID;
CREATE INDEX runs_started ON runs(started_at);
CREATE INDEX runs_pipeline ON runs(pipeline, started_at);

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
  reused_exec INTEGER REFERENCES step_execs(id),
  UNIQUE (run_id, step, attempt));
CREATE INDEX steps_cache ON step_execs(cache_key);
CREATE INDEX steps_by_name ON step_execs(step, id);
CREATE INDEX steps_by_run ON step_execs(run_id);

CREATE TABLE io_edges (
  step_exec INTEGER NOT NULL REFERENCES step_execs(id),
  direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
  av_id INTEGER NOT NULL REFERENCES artifact_versions(id),
  declared INTEGER NOT NULL DEFAULT 1,       -- 0: observed by tracing, not declared
  -- for inputs: where this version came from. 'step': an output of a step of the same
  -- pipeline; 'git': tracked and unmodified at the recorded commit; 'external': neither
  -- (untracked, ignored or modified: only mlrun's own record can say what it was).
  origin TEXT CHECK (origin IN ('step', 'git', 'external')),
  mode INTEGER,                              -- file mode of a file version (dirs: in dir_entries)
  PRIMARY KEY (step_exec, direction, av_id)) WITHOUT ROWID;
CREATE INDEX io_by_av ON io_edges(av_id, direction, step_exec);

CREATE TABLE params (
  step_exec INTEGER NOT NULL REFERENCES step_execs(id),
  key TEXT NOT NULL, value TEXT NOT NULL,    -- canonical JSON
  PRIMARY KEY (step_exec, key)) WITHOUT ROWID;
CREATE INDEX params_kv ON params(key, value);

CREATE TABLE metrics (
  step_exec INTEGER NOT NULL REFERENCES step_execs(id),
  key TEXT NOT NULL, value REAL NOT NULL, source TEXT NOT NULL,
  PRIMARY KEY (step_exec, key)) WITHOUT ROWID;
CREATE INDEX metrics_kv ON metrics(key, value);

-- stat cache: a file whose identity and timestamps are unchanged is not read again
CREATE TABLE hash_cache (
  path TEXT PRIMARY KEY,                     -- absolute
  dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
  hash TEXT NOT NULL,
  hashed_at_ns INTEGER NOT NULL              -- when it was read, for the racy-edit rule
) WITHOUT ROWID;

CREATE TABLE step_logs (
  step_exec INTEGER NOT NULL REFERENCES step_execs(id),
  stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
  content_hash TEXT NOT NULL REFERENCES contents(hash),
  bytes INTEGER NOT NULL,
  PRIMARY KEY (step_exec, stream)) WITHOUT ROWID;
"#,
];

pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_apply_to_an_empty_database() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::super::migrate(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, super::latest());
        // applying again is a no-op
        super::super::migrate(&mut conn).unwrap();
    }
}

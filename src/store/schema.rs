//! Schema migrations, applied in order inside one transaction and tracked by
//! `PRAGMA user_version`. Never edit a released migration: append a new one.

use rusqlite::{Connection, params};

use crate::fingerprint::hash::{Entry, manifest};

/// One schema version: data moved by code first (if any), then SQL.
pub struct Migration {
    pub code: Option<fn(&Connection) -> rusqlite::Result<()>>,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        code: None,
        sql: V1,
    },
    Migration {
        code: Some(manifests_into_contents),
        sql: V2,
    },
    Migration {
        code: None,
        sql: V_OUTPUT_LINKS,
    },
    Migration {
        code: Some(forget_the_marker_salt),
        sql: "",
    },
    Migration {
        code: None,
        sql: V5,
    },
    Migration {
        code: None,
        sql: V6_PACKAGES,
    },
    Migration {
        code: None,
        sql: V7_LOGS,
    },
    Migration {
        code: None,
        sql: V_RUN_MESSAGES,
    },
    Migration {
        code: None,
        sql: V_MODELS,
    },
    Migration {
        code: None,
        sql: V_OPENLINEAGE_OUTBOX,
    },
    Migration {
        code: None,
        sql: V_DETERMINISM,
    },
    Migration {
        code: None,
        sql: V_RUN_REMOVALS,
    },
    Migration {
        code: None,
        sql: V_STEP_JOBS,
    },
    Migration {
        code: None,
        sql: V_RUN_TARGETS_SWEEPS,
    },
    Migration {
        code: None,
        sql: V_STEPS_BY_RUN_SEQ,
    },
    Migration {
        code: None,
        sql: V_REMOTE,
    },
    Migration {
        code: None,
        sql: V_REMOTE_ITEMS,
    },
    Migration {
        code: Some(large_rows_with_rowid),
        sql: "",
    },
];

// 18: the tables whose rows can be large rebuilt with a rowid. A WITHOUT ROWID table is a
// b-tree of whole rows, and SQLite compares a key it searches for with a row that spills onto
// overflow pages by reading all of it: every lookup of a run id read, in full, the resolved plan
// (~20 KB) of each run the search passed (a 50-step no-op made 4,144 page reads of a 677-page
// store, from finding each step's reusable execution and its run's short id), and every lookup of
// a hash the manifests (1.9 MB for 20,000 files) it passed. With a rowid, the search goes through
// the key's index, which holds keys only; a row is read when it is asked for. Rebuilt the way
// SQLite documents for a change ALTER TABLE cannot make, from each table's own recorded
// definition (so every column added since is kept), its indexes made again; `migrate` runs
// migrations with foreign keys off, so the drop deletes nothing other tables refer to, and the
// rename keeps their `REFERENCES`.
pub(super) const WITH_ROWID: &[&str] = &[
    "contents",
    "runs",
    "env_snapshots",
    "git_snapshots",
    "package_sets",
    "package_scan_cache",
];

fn large_rows_with_rowid(tx: &Connection) -> rusqlite::Result<()> {
    for table in WITH_ROWID {
        let sql: String = tx.query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        let indexes: Vec<String> = tx
            .prepare(
                "SELECT sql FROM sqlite_schema WHERE tbl_name = ?1 AND type IN ('index', 'trigger')
                 AND sql IS NOT NULL",
            )?
            .query_map([table], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let unexpected = || {
            rusqlite::Error::InvalidParameterName(format!("{table}: unexpected definition {sql}"))
        };
        let body = sql
            .trim_end()
            .strip_suffix("WITHOUT ROWID")
            .ok_or_else(unexpected)?;
        let head = format!("CREATE TABLE {table} (");
        let rest = body.strip_prefix(&head).ok_or_else(unexpected)?;
        // a rowid table's TEXT PRIMARY KEY would take a NULL key (a WITHOUT ROWID one does not)
        let key = " TEXT PRIMARY KEY";
        if !rest.contains(key) {
            return Err(unexpected());
        }
        let rest = rest.replacen(key, " TEXT NOT NULL PRIMARY KEY", 1);
        let new = format!("{table}_by_rowid");
        tx.execute_batch(&format!(
            "CREATE TABLE {new} ({rest};
             INSERT INTO {new} SELECT * FROM {table};
             DROP TABLE {table};
             ALTER TABLE {new} RENAME TO {table};"
        ))?;
        for index in indexes {
            tx.execute_batch(&index)?;
        }
    }
    Ok(())
}

// 17: what besides runs was sent to (or came from) which remote (`store::shared`): model
// versions, alias moves, determinism findings, removals, each by a key naming it there.
const V_REMOTE_ITEMS: &str = r#"
CREATE TABLE remote_items (
  remote TEXT NOT NULL,
  item TEXT NOT NULL,
  PRIMARY KEY (remote, item)) WITHOUT ROWID;
"#;

// 13: steps run as Slurm jobs (`exec::slurm`, `store::jobs`): one row per execution submitted,
// written when it is submitted (so a killed mlrun leaves the job id to cancel) and completed when
// the job ends. No row: the step ran locally. Times are milliseconds since the epoch, as seen by
// mlrun (submitted) and by the scheduler (started, ended); `state` is Slurm's final job state,
// `reason` the scheduler's reason when the job failed for the cluster's sake; `gpus` what the
// job's node showed it (the wrapper's record), `cancelled_at` set by `mlrun cancel`.
const V_STEP_JOBS: &str = r#"
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
CREATE INDEX step_jobs_running ON step_jobs(step_exec) WHERE ended_at IS NULL;
"#;

// 14: what a run was asked to make and which sweep it belongs to. `targets`: the steps and
// outputs named on the command line (`mlrun run train`), a JSON array as typed; NULL: the whole
// pipeline. `sweep_id`: the runs of one `-p a=1,2 -p b=x,y` sweep share it; NULL: not a sweep.
const V_RUN_TARGETS_SWEEPS: &str = r#"
ALTER TABLE runs ADD COLUMN targets TEXT;
ALTER TABLE runs ADD COLUMN sweep_id TEXT;
CREATE INDEX runs_sweep ON runs (sweep_id) WHERE sweep_id IS NOT NULL;
"#;

// 15: a run's steps in plan order, in the index: a run's value of a metric (the step latest in
// the plan that reports it, `query::RUN_METRIC`) is read from the index and the metrics' key
// alone, without a row of `step_execs` per step, so sorting or filtering 10,000 runs by a metric
// stays fast. It serves every lookup `steps_by_run` did (same first column), which it replaces.
const V_STEPS_BY_RUN_SEQ: &str = r#"
CREATE INDEX steps_by_run_seq ON step_execs(run_id, seq, id);
DROP INDEX steps_by_run;
"#;

// 16: the team remote (`mlrun push` / `pull`, see `remote`). `remote_runs`: the runs this store
// knows to be on a remote (pushed from here, or pulled from there), so `push` sends only the
// others; runs keep their UUIDv7 `id`, which is their key on every remote. `remote_objects`: the
// objects (`sha256/<hash>`, `logs/<hash>`) known to be on a remote, so a push with nothing new
// asks the object server nothing. A remote is named by its record and objects URLs (passwords
// masked) and endpoint.
const V_REMOTE: &str = r#"
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
"#;

// 10: the OpenLineage outbox (`store::outbox`): events made while a run ran, queued once per
// event (type + OpenLineage run id), delivered in `seq` order to the server configured when they
// are sent (`endpoint`: where the last attempt went). `state`: pending, sent (body dropped) or
// rejected (refused by the server for good, with its reason).
const V_OPENLINEAGE_OUTBOX: &str = r#"
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
CREATE INDEX openlineage_outbox_pending ON openlineage_outbox (seq) WHERE state = 'pending';
CREATE INDEX openlineage_outbox_run ON openlineage_outbox (run_id);
"#;

// 11: which outputs of a step are known to come out different from one run to the next with the
// same inputs (found by `mlrun check` or by a replay's second run), so that later replays expect
// them to differ. One row per (pipeline, step, output path): the latest finding; `since_run` is
// the run that first found the current verdict (kept while later checks agree). No foreign keys:
// the runs named may be removed later, and the finding stays true.
const V_DETERMINISM: &str = r#"
CREATE TABLE output_determinism (
  pipeline TEXT NOT NULL, step TEXT NOT NULL, path TEXT NOT NULL,
  verdict TEXT NOT NULL CHECK (verdict IN ('deterministic', 'nondeterministic')),
  since_run TEXT NOT NULL,                   -- the run (a check or replay) that first found it
  last_run TEXT NOT NULL,                    -- the run that last confirmed it
  found_by TEXT NOT NULL CHECK (found_by IN ('check', 'replay')),
  checked_at INTEGER NOT NULL,               -- ms since the epoch
  PRIMARY KEY (pipeline, step, path)) WITHOUT ROWID;
"#;

// 12: `mlrun rm RUN`: a removed run's rows are deleted (so `gc` frees what only it referenced),
// and this tombstone says what it was, when and by whom it was removed, so history does not
// silently lose it. `reason`: what `--force` overrode (other runs' reuse), NULL otherwise.
const V_RUN_REMOVALS: &str = r#"
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
"#;

// 8: a message on a run (`mlrun run -m TEXT`, `mlrun note RUN TEXT`): what the person running it
// meant to try, shown by `runs` and `show` and searched by `runs --grep`. NULL: no message.
const V_RUN_MESSAGES: &str = r#"
ALTER TABLE runs ADD COLUMN message TEXT;
"#;

// 9: model names (`store::models`). A registered version binds NAME@LABEL to one artifact version
// (path x content) and the execution that produced it; versions are immutable (no UPDATE, no
// DELETE). An alias is the last row of its append-only log (`to_version` NULL: removed).
const V_MODELS: &str = r#"
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
CREATE INDEX model_versions_av ON model_versions(av_id);
CREATE TABLE model_alias_log (
  id INTEGER PRIMARY KEY,
  model_id INTEGER NOT NULL REFERENCES models(id),
  alias TEXT NOT NULL,
  from_version INTEGER REFERENCES model_versions(id),
  to_version INTEGER REFERENCES model_versions(id),
  at INTEGER NOT NULL,
  by TEXT NOT NULL,
  message TEXT);
CREATE INDEX model_alias_log_alias ON model_alias_log(model_id, alias, id);
CREATE TRIGGER model_versions_immutable BEFORE UPDATE ON model_versions
  BEGIN SELECT RAISE(ABORT, 'model versions are immutable'); END;
CREATE TRIGGER model_versions_kept BEFORE DELETE ON model_versions
  BEGIN SELECT RAISE(ABORT, 'model versions are never deleted'); END;
CREATE TRIGGER model_alias_log_no_update BEFORE UPDATE ON model_alias_log
  BEGIN SELECT RAISE(ABORT, 'the alias log is append-only'); END;
CREATE TRIGGER model_alias_log_no_delete BEFORE DELETE ON model_alias_log
  BEGIN SELECT RAISE(ABORT, 'the alias log is append-only'); END;
"#;

// 3: a declared path that was itself a symbolic link (`best.pkl -> ckpt/epoch10.pkl`): its
// version is the content the link leads to, and `link` keeps the link's own target, as the link
// held it, so a restore recreates the link rather than a copy. NULL: not a link (every older row).
const V_OUTPUT_LINKS: &str = r#"
ALTER TABLE io_edges ADD COLUMN link BLOB;
"#;

/// 4: redaction markers are keyed with a secret kept outside the store (`fingerprint::key`).
/// The old per-store salt sat beside the salted markers it made, so anyone holding the store
/// could test guesses against them; it is erased (its bytes overwritten, not only unlinked), so
/// the markers recorded with it can no longer be checked against anything.
fn forget_the_marker_salt(conn: &Connection) -> rusqlite::Result<()> {
    let was: i64 = conn.pragma_query_value(None, "secure_delete", |r| r.get(0))?;
    conn.pragma_update(None, "secure_delete", 1)?;
    let done = conn.execute("DELETE FROM meta WHERE key = 'salt'", []);
    conn.pragma_update(None, "secure_delete", was)?;
    done.map(|_| ())
}

#[cfg(test)]
pub const V1_FOR_TESTS: &str = V1;

// 1: the lineage record
const V1: &str = r#"
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
"#;

// 2: compact directories. A directory version was one `dir_entries` row per file (plus a
// `blobs` row per file), so recording a 20,000-file dataset wrote 60,000 rows. Its canonical
// manifest (the bytes its hash is the SHA-256 of) now lives in `contents` under that hash: one
// row per distinct directory version, verifiable like every other content. The stat cache
// becomes one row per directory, packed (see fingerprint::cache), instead of one per file; its
// old rows are dropped (a cache: the next run hashes those files once more). Runs left
// `running` get an index of their own.
const V2: &str = r#"
DROP INDEX dir_entries_file;
DROP TABLE dir_entries;
DELETE FROM blobs WHERE kind = 'file'
  AND NOT EXISTS (SELECT 1 FROM artifact_versions v WHERE v.blob_hash = blobs.hash);
DROP TABLE hash_cache;
-- every command looks for runs left `running` by a dead mlrun: without an index that read every
-- run row (each with its plan), so opening the store slowed down as history grew
CREATE INDEX runs_running ON runs(status) WHERE status = 'running';
CREATE TABLE stat_cache (
  dir TEXT PRIMARY KEY,                      -- absolute path of a directory
  entries BLOB NOT NULL                      -- its files' stats and hashes, packed
);
"#;

// 5: the record tells the whole truth. Metric values: SQLite stores a REAL exactly, but it
// cannot hold NaN (it becomes NULL, which `value NOT NULL` refused) nor the sign of -0.0; `exact`
// keeps the value as text when the REAL cannot ('nan', '-0.0'), `value` stays what filters and
// sorts compare (NULL for NaN). Step executions record whether the step kept its outputs in
// place (`keep-outputs = true`, not moved aside before it ran) and the git refs it moved.
const V5: &str = r#"
CREATE TABLE metrics_v3 (
  step_exec INTEGER NOT NULL REFERENCES step_execs(id),
  key TEXT NOT NULL,
  value REAL,                                -- NULL: NaN (see exact)
  source TEXT NOT NULL,
  exact TEXT,                                -- the value when a REAL cannot hold it: 'nan', '-0.0'
  PRIMARY KEY (step_exec, key)) WITHOUT ROWID;
INSERT INTO metrics_v3 (step_exec, key, value, source) SELECT step_exec, key, value, source FROM metrics;
DROP INDEX metrics_kv;
DROP TABLE metrics;
ALTER TABLE metrics_v3 RENAME TO metrics;
CREATE INDEX metrics_kv ON metrics(key, value);
-- 1: the step ran with `keep-outputs = true` (its declared outputs were left in place)
ALTER TABLE step_execs ADD COLUMN keep_outputs INTEGER NOT NULL DEFAULT 0;
-- JSON [{ref, from, to}] of the git refs (and HEAD) the step moved, created or deleted; NULL: none
ALTER TABLE step_execs ADD COLUMN repo_changes TEXT;
"#;

// 6: the packages installed for each step's interpreters (see fingerprint::packages). A list
// of distributions is kept once, under the SHA-256 of its canonical JSON, however many runs
// used it; an environment snapshot names its interpreters' environments (prefix, kind, the
// list's hash) in a new column. The scan cache remembers, per interpreter executable, the
// scanned directories' identities and the list they gave, so a later run in an unchanged
// environment reads no metadata at all.
const V6_PACKAGES: &str = r#"
CREATE TABLE package_sets (
  hash TEXT PRIMARY KEY,                     -- sha256 of data
  count INTEGER NOT NULL,
  data BLOB NOT NULL                         -- JSON array of {name, version, source}, sorted
) WITHOUT ROWID;
-- JSON object program -> {executable, real_path, prefix, kind, version, dirs, hash, count};
-- NULL for snapshots taken before packages were recorded
ALTER TABLE env_snapshots ADD COLUMN packages TEXT;
CREATE TABLE package_scan_cache (
  executable TEXT PRIMARY KEY,               -- as found in PATH
  stamp TEXT NOT NULL,                       -- the scanned directories' paths, inodes, mtimes
  scanned_at_ns INTEGER NOT NULL,            -- trusted only when the mtimes are 2 s older
  env TEXT NOT NULL,                         -- JSON of the PackageEnv it gave
  set_hash TEXT NOT NULL REFERENCES package_sets(hash)
) WITHOUT ROWID;
"#;

// 7: logs in bounded memory. A step's stdout and stderr were kept whole in `contents`, so a step
// printing more than SQLite's 1 GB limit for a value lost its whole record. A log longer than
// what the database keeps (see exec::capture) now keeps its first bytes in `content_hash`, its
// last bytes in `tail_hash`, and the SHA-256 of the whole log in `full_hash`, whose bytes are in
// `.mlrun/objects/logs/` while `stored` is 1. Earlier rows (NULL tail and full hash) are whole.
const V7_LOGS: &str = r#"
ALTER TABLE step_logs ADD COLUMN tail_hash TEXT REFERENCES contents(hash);
ALTER TABLE step_logs ADD COLUMN full_hash TEXT;
ALTER TABLE step_logs ADD COLUMN stored INTEGER NOT NULL DEFAULT 0;
CREATE INDEX step_logs_full ON step_logs(full_hash) WHERE full_hash IS NOT NULL;
"#;

/// Migration 2, before its SQL: rebuild every directory's manifest from its `dir_entries` rows
/// and keep it in `contents` (an empty directory has an empty manifest).
fn manifests_into_contents(tx: &Connection) -> rusqlite::Result<()> {
    let mut insert =
        tx.prepare("INSERT OR IGNORE INTO contents (hash, size, data) VALUES (?1, ?2, ?3)")?;
    let mut put = |hash: &str, entries: &mut Vec<Entry>| -> rusqlite::Result<()> {
        entries.sort_by(|a, b| a.bytes().cmp(b.bytes()));
        let m = manifest(entries);
        insert.execute(params![hash, m.len() as i64, m])?;
        entries.clear();
        Ok(())
    };
    let mut rows = tx.prepare(
        "SELECT dir_hash, relpath, mode, file_hash, size FROM dir_entries ORDER BY dir_hash",
    )?;
    let mut rows = rows.query([])?;
    let mut current: Option<String> = None;
    let mut entries = Vec::new();
    while let Some(r) = rows.next()? {
        let dir: String = r.get(0)?;
        if current.as_deref() != Some(dir.as_str()) {
            if let Some(prev) = current.take() {
                put(&prev, &mut entries)?;
            }
            current = Some(dir);
        }
        entries.push(Entry {
            relpath: r.get(1)?,
            raw: None,
            mode: r.get::<_, i64>(2)? as u32,
            hash: r.get(3)?,
            size: r.get::<_, i64>(4)? as u64,
        });
    }
    if let Some(prev) = current {
        put(&prev, &mut entries)?;
    }
    let mut empty = tx.prepare("SELECT hash FROM blobs WHERE kind = 'dir' AND nfiles = 0")?;
    let empty: Vec<String> = empty
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for h in empty {
        put(&h, &mut Vec::new())?;
    }
    Ok(())
}

pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// The schema every migration above leaves, for a new database in one batch (`store::migrate`).
/// Adding a migration: update `schema_new.sql` too (test `a_new_store_gets_the_migrated_schema`
/// prints what it must hold).
pub const NEW: &str = include_str!("schema_new.sql");

/// A database with nothing in it yet (no table, index, view or trigger).
pub fn is_empty(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) = 0 FROM sqlite_master", [], |r| r.get(0))
}

#[cfg(test)]
mod tests;

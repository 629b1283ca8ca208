//! The lineage store: `.mlrun/lineage.db` (SQLite, WAL) beside pipeline.toml.
//!
//! `open` creates or migrates the database and refuses one written by a newer mlrun or one that
//! is not a database, without touching it. Every connection gets the same pragmas. Writes go
//! through `record`, reads through `query`.

pub mod incomplete;
pub mod lineage;
pub mod lock;
pub mod logs;
pub mod objects;
pub mod query;
pub mod record;
pub mod schema;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{Error, Result};

pub const STORE_DIR: &str = ".mlrun";
pub const DB_FILE: &str = "lineage.db";

pub struct Store {
    pub conn: Connection,
    pub dir: PathBuf,
    /// per-store salt for redaction markers
    pub salt: String,
}

/// Called by SQLite while another connection holds the write lock: back off exponentially (1 ms
/// doubling to 100 ms, with jitter so waiting writers do not wake in step) for about a minute in
/// all before giving up with `database is locked`. Write transactions are short and begin with
/// BEGIN IMMEDIATE, so waiting here is always enough.
/// How long a connection waits for another one's lock in all, about: see `busy_backoff`.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn busy_backoff(attempt: i32) -> bool {
    if attempt >= 600 {
        return false;
    }
    let base = 1u64 << attempt.clamp(0, 7) as u64;
    let jitter = u64::from(std::process::id() % 7) + (attempt as u64 % 5);
    std::thread::sleep(std::time::Duration::from_millis(base.min(100) + jitter));
    true
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(busy_backoff))?;
    // Switching to WAL (a no-op once the file is in WAL mode) can meet SQLITE_BUSY without the
    // busy handler being called, e.g. while the last connection of another mlrun closes and
    // checkpoints: wait on the same backoff. Seen with 8 mlruns sharing one store.
    // One deadline for all attempts: a busy handler may already have waited inside each.
    let deadline = std::time::Instant::now() + BUSY_WAIT;
    let mut attempt = 0;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                busy_backoff(attempt.min(7));
                attempt += 1;
            }
            other => break other?,
        }
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A step's record runs about 20 distinct statements (`record`, `incremental`, the stat
    // cache); rusqlite keeps 16 by default, so a run would keep recompiling some of them.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Apply pending migrations in one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > schema::latest() {
        return Err(Error::store(format!(
            "the lineage store was written by a newer mlrun (schema version {version}; this mlrun knows up to {})",
            schema::latest()
        ))
        .hint("upgrade mlrun; the store was left untouched"));
    }
    for (i, m) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
        m.code
            .map_or(Ok(()), |code| code(&tx))
            .and_then(|()| tx.execute_batch(m.sql))
            .map_err(|e| Error::store(format!("migration {} failed", i + 1)).cause(e))?;
    }
    if version < schema::latest() {
        tx.pragma_update(None, "user_version", schema::latest())?;
    }
    tx.commit()?;
    Ok(())
}

impl Store {
    /// Open (creating when missing) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::store(format!(
                "cannot create the store directory `{}`",
                dir.display()
            ))
            .cause(e)
        })?;
        // Keep the store out of git status and out of the user's commits.
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            let _ = std::fs::write(
                &ignore,
                "# created by mlrun: the lineage store is local\n*\n",
            );
        }
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            Error::store(format!(
                "cannot open the lineage store `{}`",
                path.display()
            ))
            .cause(e)
        })?;
        configure(&conn).map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::store(format!(
                    "the lineage store `{}` stayed locked by another process for over a minute",
                    path.display()
                ))
                .cause(e)
                .hint("another mlrun (or a program holding the database open) is using it; try again when it is done")
            }
            _ => not_a_store(&path, e),
        })?;
        migrate(&mut conn).map_err(|e| {
            if e.message
                .starts_with("the lineage store was written by a newer")
            {
                e
            } else {
                not_a_store(&path, e)
            }
        })?;
        let salt = Self::salt(&conn)?;
        let store = Store {
            conn,
            dir: dir.to_path_buf(),
            salt,
        };
        store.recover_abandoned_runs()?;
        Ok(store)
    }

    /// Open an existing store for reading; a missing one is an error that says how to make one.
    pub fn open_existing(dir: &Path) -> Result<Store> {
        if !dir.join(DB_FILE).is_file() {
            return Err(Error::other(format!("no lineage store at `{}`", dir.display()))
                .hint("run a pipeline first (`mlrun pipeline.toml`), or point at a store with --store DIR"));
        }
        Self::open(dir)
    }

    fn salt(conn: &Connection) -> Result<String> {
        let existing: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'salt'", [], |r| {
                r.get(0)
            })
            .ok();
        if let Some(s) = existing {
            return Ok(s);
        }
        let salt =
            uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('salt', ?1)",
            [&salt],
        )?;
        Ok(
            conn.query_row("SELECT value FROM meta WHERE key = 'salt'", [], |r| {
                r.get(0)
            })?,
        )
    }

    /// Runs left `running` by an mlrun process that no longer exists (killed, machine rebooted)
    /// are marked `interrupted`, with their running steps, so no run keeps a false status; or
    /// `failed`, when that mlrun noted it could not write their record (`incomplete`).
    fn recover_abandoned_runs(&self) -> Result<()> {
        let me = record::ProcessId::current();
        let mut stmt = self.conn.prepare(
            "SELECT id, hostname, pid, pid_start, boot_id FROM runs WHERE status = 'running'",
        )?;
        let stale: Vec<String> = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?
            .filter_map(|r| r.ok())
            .filter(|(_, host, pid, start, boot)| {
                host == &me.hostname
                    && !record::ProcessId::is_alive(*pid, *start, boot.as_deref(), &me)
            })
            .map(|(id, ..)| id)
            .collect();
        drop(stmt);
        for id in stale {
            // an mlrun that could not write its record left a note saying why
            if let Some(reason) = incomplete::noted(&self.dir, &id) {
                record::mark_record_failed(&self.conn, &id, &reason)?;
                incomplete::clear(&self.dir, &id);
                continue;
            }
            record::mark_interrupted(
                &self.conn,
                &id,
                "mlrun stopped without finishing the run (killed or crashed)",
            )?;
        }
        Ok(())
    }
}

fn not_a_store(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::store(format!("`{}` is not a usable lineage store", path.display()))
        .cause(e)
        .hint("it may be corrupt or not an mlrun database; mlrun left it untouched. Move it aside to start a new store")
}

/// Where the store of a project lives: `--store`/`MLRUN_STORE`, else `.mlrun` beside the file.
pub fn dir_for_pipeline(pipeline_file: &Path, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(d) => d.to_path_buf(),
        None => pipeline_file
            .parent()
            .unwrap_or(Path::new("."))
            .join(STORE_DIR),
    }
}

/// For read commands: `--store`, else the nearest `.mlrun/lineage.db` from the current directory up.
pub fn find_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = explicit {
        return Ok(d.to_path_buf());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Error::other("cannot read the current directory").cause(e))?;
    for dir in cwd.ancestors() {
        let candidate = dir.join(STORE_DIR);
        if candidate.join(DB_FILE).is_file() {
            return Ok(candidate);
        }
    }
    Err(
        Error::other("no lineage store found in this directory or its parents").hint(
            "run a pipeline first (`mlrun pipeline.toml`), or point at a store with --store DIR",
        ),
    )
}

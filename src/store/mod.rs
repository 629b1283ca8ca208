//! The lineage store: `.mlrun/lineage.db` (SQLite, WAL) beside pipeline.toml.
//!
//! `open` creates or migrates the database and refuses one written by a newer mlrun or one that
//! is not a database, without touching it. Every connection gets the same pragmas. Writes go
//! through `record`, reads through `query`.
//!
//! The connection is private: the rest of mlrun reads and writes only through `Store`'s typed
//! methods (defined beside the SQL they run, one `impl Store` block per file), which take and
//! return plain Rust types and keep each transaction inside one method. That one interface is
//! where a second backend would go. A failed statement says which operation it was part of
//! (`During`).

pub mod aside;
pub mod browse;
pub mod checkout;
pub mod determinism;
mod diagnose;
pub mod filter;
mod fsck;
mod gc;
pub mod incomplete;
pub mod jobs;
pub mod lineage;
pub mod lock;
pub mod logs;
pub mod marks;
pub mod models;
pub mod objects;
pub mod outbox;
pub mod overrides;
pub mod owner;
pub mod packages;
pub mod portable;
pub mod query;
pub mod record;
mod replay;
pub mod replayable;
pub mod reuse;
pub mod reused;
pub mod rm;
pub mod schema;
pub mod shared;
mod statcache;
pub mod sweeps;
pub mod verified;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{Error, Result};

pub const STORE_DIR: &str = ".mlrun";
pub const DB_FILE: &str = "lineage.db";

use diagnose::{
    Diagnosis, diagnose, has_objects, integrity_messages, open_read_only, refuse_lost_database,
};
pub use diagnose::{disk_full, lost_database, start_over_keeping};
pub use gc::Kept;
pub use replay::RecordedRun;

pub struct Store {
    conn: Connection,
    pub dir: PathBuf,
}

/// The generic message of a failed statement (`From<rusqlite::Error>` in `error`), and the start
/// of the one for a damaged database: `During` names the operation in them.
const QUERY_FAILED: &str = "lineage store query failed";
const DAMAGED_STOPPED: &str = "the lineage store is damaged; SQLite stopped this operation";

/// Name the operation a failed statement was part of: "lineage store query failed while reading
/// the runs list", the SQLite error kept as the cause. Errors that already say what went wrong
/// (no such run, an invalid name) and ones already named pass through unchanged, so the
/// innermost operation is the one named.
pub(crate) trait During<T> {
    fn during(self, what: impl std::fmt::Display) -> Result<T>;
}

pub(crate) fn name_operation(mut e: Error, what: impl std::fmt::Display) -> Error {
    if e.kind != crate::error::Kind::Store {
        return e;
    }
    if e.message == QUERY_FAILED {
        e.message = format!("{QUERY_FAILED} while {what}");
    } else if let Some(rest) = e.message.strip_prefix(DAMAGED_STOPPED)
        && !rest.starts_with(" (")
    {
        e.message = format!("{DAMAGED_STOPPED} ({what}){rest}");
    }
    e
}

impl<T> During<T> for Result<T> {
    fn during(self, what: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| name_operation(e, what))
    }
}

impl<T> During<T> for rusqlite::Result<T> {
    fn during(self, what: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| name_operation(Error::from(e), what))
    }
}

/// A write the store could not make, where the caller acts on why: `gc` deletes first when the
/// disk is full. Shown as the database's own message.
#[derive(Debug)]
pub struct WriteError {
    source: rusqlite::Error,
}

impl WriteError {
    /// The store could not even be opened for writing for lack of space.
    pub fn disk_full() -> Self {
        WriteError {
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                None,
            ),
        }
    }

    pub fn is_disk_full(&self) -> bool {
        self.source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
    }
}

impl From<rusqlite::Error> for WriteError {
    fn from(source: rusqlite::Error) -> Self {
        WriteError { source }
    }
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        Error::from(e.source)
    }
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

/// Apply pending migrations in one transaction (none: no transaction, no write lock taken). A
/// new (empty) database gets the schema they leave in one batch instead (`schema::NEW`, kept
/// identical to them by a test): a fresh clone's first `run` spent ~30 ms replaying 17
/// migrations' table rebuilds.
fn migrate(conn: &mut Connection) -> Result<()> {
    let newer = |version: i64| {
        Error::store(format!(
            "the lineage store was written by a newer mlrun (schema version {version}; this mlrun knows up to {})",
            schema::latest()
        ))
        .hint("upgrade mlrun; the store was left untouched")
    };
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > schema::latest() {
        return Err(newer(version));
    }
    if version == schema::latest() {
        return Ok(());
    }
    // A migration may rebuild a table others refer to (a new table, the rows copied, the old
    // one dropped, the new one renamed: SQLite's way for changes ALTER TABLE cannot make). With
    // foreign keys on, the drop would first delete the referenced rows and fail. They are off
    // while migrations run (the pragma does nothing inside a transaction) and on again after,
    // whatever happened.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // read again under the write lock: another mlrun may have migrated meanwhile
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > schema::latest() {
            return Err(newer(version));
        }
        if version == 0 && schema::is_empty(&tx)? {
            tx.execute_batch(schema::NEW)
                .map_err(|e| Error::store("creating the store's tables failed").cause(e))?;
            tx.pragma_update(None, "user_version", schema::latest())?;
            tx.commit()?;
            return Ok(());
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
    })();
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrated
}

impl Store {
    /// Open (creating when missing) the store in `dir`, for writing.
    pub fn open(dir: &Path) -> Result<Store> {
        refuse_lost_database(dir)?;
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
        Self::open_writable(dir, &path).map_err(|e| diagnose(&path, e).error)
    }

    fn open_writable(dir: &Path, path: &Path) -> Result<Store> {
        let mut conn = Connection::open_with_flags(
            path,
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
        // SQLite opens a file it cannot write read-only without saying so: writing would fail
        // later, half-way. Say it now (`diagnose` tells why).
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            return Err(Error::store(format!(
                "the lineage store `{}` cannot be written",
                path.display()
            )));
        }
        configure(&conn).map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::store(format!(
                    "the lineage store `{}` stayed locked by another process for over a minute",
                    path.display()
                ))
                .cause(e)
                .hint("another mlrun (or a program holding the database open) is using it; try again when it is done")
            }
            _ => Error::store(format!("cannot open the lineage store `{}`", path.display())).cause(e),
        })?;
        migrate(&mut conn)?;
        let store = Store {
            conn,
            dir: dir.to_path_buf(),
        };
        store.recover_abandoned_runs()?;
        // what killed mlruns left behind (scratch space, partial objects, replay trees)
        owner::sweep_leftovers(dir);
        Ok(store)
    }

    /// Open an existing store, for writing (`gc`, `fsck --repair`); a missing one is an error
    /// that says how to make one.
    pub fn open_existing(dir: &Path) -> Result<Store> {
        refuse_lost_database(dir)?;
        if !dir.join(DB_FILE).is_file() {
            return Err(Error::other(format!("no lineage store at `{}`", dir.display()))
                .hint("run a pipeline first (`mlrun pipeline.toml`), or point at a store with --store DIR"));
        }
        Self::open(dir)
    }

    /// Open an existing store for the read commands: for writing when it can be written (runs
    /// left by a killed mlrun are then marked `interrupted`, leftovers removed), else read-only
    /// (a full disk, a read-only file system, a store owned by another user). A damaged
    /// database is never opened for writing.
    pub fn open_read(dir: &Path) -> Result<Store> {
        Self::open_any(dir, false).map(|(s, _)| s)
    }

    /// Like `open_read`; the flag says whether the store could be opened for writing.
    pub fn open_maybe_writable(dir: &Path) -> Result<(Store, bool)> {
        Self::open_any(dir, false)
    }

    /// Open a store to check it (`fsck`): `PRAGMA integrity_check` runs on a read-only
    /// connection first; a sound database is then opened as `open_maybe_writable` does, a damaged
    /// one stays read-only (never written). Returns the store, whether it can be written, and
    /// the integrity check's messages (`["ok"]` when sound).
    pub fn open_for_check(dir: &Path) -> Result<(Store, bool, Vec<String>)> {
        refuse_lost_database(dir)?;
        let path = dir.join(DB_FILE);
        let Some(ro) = path.is_file().then(|| open_read_only(&path)).flatten() else {
            let (store, writable) = Self::open_any(dir, true)?;
            let messages = integrity_messages(&store.conn);
            return Ok((store, writable, messages));
        };
        let messages = integrity_messages(&ro);
        if messages == ["ok"] {
            drop(ro);
            let (store, writable) = Self::open_any(dir, false)?;
            Ok((store, writable, messages))
        } else {
            Ok((Self::read_only(dir, ro), false, messages))
        }
    }

    fn open_any(dir: &Path, allow_damaged: bool) -> Result<(Store, bool)> {
        refuse_lost_database(dir)?;
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(Error::other(format!("no lineage store at `{}`", dir.display()))
                .hint("run a pipeline first (`mlrun pipeline.toml`), or point at a store with --store DIR"));
        }
        match Self::open_writable(dir, &path) {
            Ok(s) => Ok((s, true)),
            Err(e) => match diagnose(&path, e) {
                Diagnosis {
                    conn: Some(conn),
                    damaged,
                    ..
                } if allow_damaged || !damaged => {
                    // the space killed mlruns left may be what fills the disk
                    owner::sweep_leftovers(dir);
                    let store = Self::read_only(dir, conn);
                    if !damaged {
                        store.recover_read_only();
                    }
                    Ok((store, false))
                }
                d => Err(d.error),
            },
        }
    }

    fn read_only(dir: &Path, conn: Connection) -> Store {
        Store {
            conn,
            dir: dir.to_path_buf(),
        }
    }

    /// A run's row holds its resolved plan (kilobytes of JSON), so reading a thousand runs walks
    /// thousands of overflow pages: mapped, they cost no system call each (measured: 11,000
    /// `pread`s, most of the time of `compare` over 1,000 runs). Only for this connection; a
    /// store that cannot map keeps reading.
    pub fn map_for_large_reads(&self) {
        let _ = self
            .conn
            .pragma_update(None, "mmap_size", 256 * 1024 * 1024);
    }

    /// Run `f`'s reads in one read transaction: one snapshot of the store, and one shared lock
    /// taken and checked for them all instead of one per statement (`run --dry-run` makes a
    /// few hundred small queries). Nothing is written: the transaction is ended either way.
    pub fn reading<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .during("starting a read of the store")?;
        let out = f(self);
        // a read transaction has nothing to lose: ending it cannot undo anything
        let _ = self.conn.execute_batch("COMMIT");
        out
    }

    /// A migrated store in memory, for unit tests.
    #[cfg(test)]
    pub(crate) fn in_memory() -> Store {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrate(&mut conn).expect("migrations");
        Store {
            conn,
            dir: PathBuf::from("/nowhere"),
        }
    }

    /// Raw SQL, for unit tests that build a store's rows by hand.
    #[cfg(test)]
    pub(crate) fn execute_batch_for_test(&self, sql: &str) {
        self.conn.execute_batch(sql).expect("test SQL");
    }

    /// Runs left `running` by an mlrun process that no longer exists (killed, machine rebooted)
    /// are marked `interrupted`, with their running steps, so no run keeps a false status; or
    /// `failed`, when that mlrun noted it could not write their record (`incomplete`).
    fn recover_abandoned_runs(&self) -> Result<()> {
        for (id, replay) in self.abandoned_runs()? {
            // jobs it submitted to a cluster do not die with it: name them (`mlrun cancel`)
            let jobs = jobs::open_jobs(&self.conn, &id).unwrap_or_default();
            if !jobs.is_empty() {
                eprintln!("note: {}", jobs::left_running(&id, &jobs));
            }
            // an mlrun that could not write its record left a note saying why
            if let Some(reason) = incomplete::noted(&self.dir, &id) {
                record::mark_record_failed(&self.conn, &id, &reason)?;
                incomplete::clear(&self.dir, &id);
            } else {
                record::mark_interrupted(
                    &self.conn,
                    &id,
                    "mlrun stopped without finishing the run (killed or crashed)",
                )?;
            }
            if replay {
                // its scratch tree is thrown away: nothing of the user's to put back
                aside::forget(&self.dir, &id);
                continue;
            }
            // outputs its steps had moved aside come back (see `aside`)
            for line in aside::recover(&self.dir, &id) {
                eprintln!("note: {line}");
            }
        }
        Ok(())
    }

    /// On a store that cannot be written (a full disk, a read-only mount): the runs left
    /// `running` by a dead mlrun cannot be recorded `interrupted` yet, but the previous outputs
    /// their steps had moved aside are the user's files: put them back now where that works (a
    /// rename needs no space), and say why such a run still shows as running.
    fn recover_read_only(&self) {
        let Ok(abandoned) = self.abandoned_runs() else {
            return;
        };
        for (id, replay) in abandoned {
            if !replay {
                for line in aside::recover(&self.dir, &id) {
                    eprintln!("note: {line}");
                }
            }
            eprintln!(
                "note: run {} was stopped (mlrun was killed or crashed) but the store cannot be written, so it shows as running until a command can write the store",
                &id[..16.min(id.len())]
            );
        }
    }

    /// Runs left `running` by an mlrun process of this host that no longer exists: (id, is a
    /// replay).
    fn abandoned_runs(&self) -> Result<Vec<(String, bool)>> {
        let me = record::ProcessId::current();
        let mut stmt = self.conn.prepare(
            "SELECT id, hostname, pid, pid_start, boot_id, replay_of IS NOT NULL FROM runs WHERE status = 'running'",
        )?;
        let stale: Vec<(String, bool)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })?
            .filter_map(|r| r.ok())
            .filter(|(_, host, pid, start, boot, _)| {
                host == &me.hostname
                    && !record::ProcessId::is_alive(*pid, *start, boot.as_deref(), &me)
            })
            .map(|(id, .., replay)| (id, replay))
            .collect();
        Ok(stale)
    }
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
        // a store whose database was lost is still found, so the command can say so
        if candidate.join(DB_FILE).is_file() || has_objects(&candidate).is_some() {
            return Ok(candidate);
        }
    }
    Err(
        Error::other("no lineage store found in this directory or its parents").hint(
            "run a pipeline first (`mlrun pipeline.toml`), or point at a store with --store DIR",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_statement_names_its_operation_once() {
        let e = name_operation(Error::store(QUERY_FAILED).cause("boom"), "reading X");
        assert_eq!(e.message, "lineage store query failed while reading X");
        assert_eq!(
            e.causes.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            ["boom"]
        );
        // the innermost operation is the one named
        let e = name_operation(e, "reading Y");
        assert_eq!(e.message, "lineage store query failed while reading X");
        let damaged = Error::store(format!("{DAMAGED_STOPPED} and wrote nothing for it"));
        let e = name_operation(damaged, "recording step train");
        assert_eq!(
            e.message,
            "the lineage store is damaged; SQLite stopped this operation (recording step train) and wrote nothing for it"
        );
        let again = name_operation(Error::store(e.message.clone()), "again");
        assert_eq!(again.message, e.message);
        // errors that already say what went wrong pass through
        let e = name_operation(Error::other("no run matches `x`"), "resolving run `x`");
        assert_eq!(e.message, "no run matches `x`");
    }

    #[test]
    fn the_rusqlite_errors_message_is_what_a_write_error_shows() {
        let full = || {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                None,
            )
        };
        let e = WriteError::from(full());
        assert!(e.is_disk_full());
        assert_eq!(e.to_string(), full().to_string());
        assert!(std::error::Error::source(&e).is_some());
        assert!(WriteError::disk_full().is_disk_full());
        let busy = WriteError::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        assert!(!busy.is_disk_full());
        assert!(Error::from(busy).message.starts_with(QUERY_FAILED));
    }
}

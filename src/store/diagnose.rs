//! A store that cannot be opened, found by looking rather than guessing: a database lost beside
//! stored objects (refused, or started over keeping them), one that is not a database or is
//! damaged, or a sound one that cannot be written (full disk, read-only, another user's).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::*;
use crate::error::{Error, Result};

/// The database is missing or empty while the store holds objects: how (`is missing`, `is
/// empty (0 bytes)`) and how many objects.
pub fn lost_database(dir: &Path) -> Option<(&'static str, usize)> {
    let what = match std::fs::metadata(dir.join(DB_FILE)) {
        Ok(m) if m.len() > 0 => return None,
        Ok(_) => "is empty (0 bytes)",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "is missing",
        Err(_) => return None,
    };
    Some((what, has_objects(dir)?))
}

/// `fsck --repair` of a lost database: move what is left of it aside (`lineage.db.lost-<ms>`,
/// with its WAL, which may still hold data) and start a new database that records every intact
/// object as a stored blob, so nothing deletes them unasked (`gc` deletes nothing while no run is
/// recorded). Returns the new store and where the old files went.
pub fn start_over_keeping(dir: &Path, objects: &[(String, u64)]) -> Result<(Store, Vec<PathBuf>)> {
    let stamp = record::now_ms();
    let mut moved = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let from = dir.join(format!("{DB_FILE}{suffix}"));
        if from.exists() {
            let to = dir.join(format!("{DB_FILE}.lost-{stamp}{suffix}"));
            std::fs::rename(&from, &to).map_err(|e| {
                Error::store(format!("cannot move `{}` aside", from.display())).cause(e)
            })?;
            moved.push(to);
        }
    }
    let path = dir.join(DB_FILE);
    let mut store = Store::open_writable(dir, &path).map_err(|e| diagnose(&path, e).error)?;
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare(
            "INSERT OR IGNORE INTO blobs (hash, kind, size, nfiles, stored) VALUES (?1, 'file', ?2, 1, 1)",
        )?;
        for (hash, size) in objects {
            stmt.execute(rusqlite::params![hash, *size as i64])?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('recovered', ?1)",
            [format!(
                "{stamp}: a new database started by fsck --repair beside {} objects whose lineage was lost",
                objects.len()
            )],
        )?;
    }
    tx.commit()?;
    Ok((store, moved))
}

/// Does the store hold any object?
pub(super) fn has_objects(dir: &Path) -> Option<usize> {
    let fans = std::fs::read_dir(dir.join("objects").join("sha256")).ok()?;
    let n: usize = fans
        .flatten()
        .filter_map(|f| std::fs::read_dir(f.path()).ok())
        .map(|files| files.count())
        .sum();
    (n > 0).then_some(n)
}

/// A missing or empty database beside stored objects is a lost one, not a new store: opening it
/// would start an empty history, and `gc` would then delete every object.
pub(super) fn refuse_lost_database(dir: &Path) -> Result<()> {
    let Some((what, n)) = lost_database(dir) else {
        return Ok(());
    };
    let path = dir.join(DB_FILE);
    Err(Error::store(format!(
        "the lineage store's database `{}` {what}, but the store holds {n} stored object{}: the database was lost or truncated; mlrun will not start a new, empty history over them, and left everything untouched",
        path.display(),
        if n == 1 { "" } else { "s" },
    ))
    .hint("put the database back from a backup if you have one; else `mlrun fsck --repair` starts a new database that keeps the objects (the lineage that named them is lost)"))
}

/// Why a database could not be opened for writing, found by looking rather than guessing: not a
/// database at all, damaged (`PRAGMA integrity_check` fails: never written to), or sound but not
/// writable (full disk, read-only, another user's), in which case a read-only connection is
/// returned with the error.
pub(super) struct Diagnosis {
    pub(super) error: Error,
    /// a read-only connection, when the file is a database of this mlrun's schema
    pub(super) conn: Option<Connection>,
    pub(super) damaged: bool,
}

pub(super) fn diagnose(path: &Path, e: Error) -> Diagnosis {
    let fail = |error| Diagnosis {
        error,
        conn: None,
        damaged: false,
    };
    if e.message
        .starts_with("the lineage store was written by a newer")
        || e.message.starts_with("the lineage store `") && e.message.contains("stayed locked")
    {
        return fail(e);
    }
    let mut header = [0u8; 16];
    let read = std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read;
        f.read(&mut header)
    });
    if let Ok(n) = read
        && n > 0
        && header[..n.min(16)] != b"SQLite format 3\0"[..n.min(16)]
    {
        return fail(
            Error::store(format!(
                "`{}` is not a usable lineage store: it is not an SQLite database",
                path.display()
            ))
            .hint("mlrun left it untouched; point --store (or MLRUN_STORE) at the right place, or move the file aside to start a new store"),
        );
    }
    let Some(conn) = open_read_only(path) else {
        return fail(
            Error::store(format!(
                "cannot open the lineage store `{}`",
                path.display()
            ))
            .cause(e),
        );
    };
    if let Err(first) = integrity(&conn) {
        return Diagnosis {
            error: Error::store(format!(
                "the lineage store `{}` is damaged (integrity check: {first}); mlrun did not write to it",
                path.display()
            ))
            .hint("`mlrun fsck` shows the damage; put the database back from a backup, or move it aside to start a new store (the stored objects are kept)"),
            conn: Some(conn),
            damaged: true,
        };
    }
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap_or(-1);
    if version != schema::latest() {
        return fail(
            Error::store(format!(
                "the lineage store `{}` needs an upgrade this mlrun cannot write",
                path.display()
            ))
            .cause(e)
            .hint("run any mlrun command where the store can be written (free space, or with write permission) to upgrade it"),
        );
    }
    let why = unwritable_reason(path, &e);
    Diagnosis {
        error: Error::store(format!(
            "cannot write to the lineage store `{}`: {why}",
            path.display()
        ))
        .cause(e)
        .hint("the store is sound; read commands (`mlrun runs`, `show`, `fsck`) still work"),
        conn: Some(conn),
        damaged: false,
    }
}

/// Is the file system holding the store out of space?
pub fn disk_full(dir: &Path) -> bool {
    nix::sys::statvfs::statvfs(dir).is_ok_and(|s| s.blocks_available() == 0)
}

/// The full disk, read-only file system or permission that stopped a write, as far as can be
/// told.
pub(super) fn unwritable_reason(path: &Path, e: &Error) -> String {
    let text = e.to_string();
    if text.contains("disk is full") || text.contains("No space left") {
        return "the disk is full".into();
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) if s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) => {
            return "it is on a read-only file system".into();
        }
        Ok(s) if s.blocks_available() == 0 => return "the disk is full".into(),
        _ => {}
    }
    if nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_err()
        || nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_err()
    {
        return "no permission to write it (another user's store?)".into();
    }
    "it cannot be written".into()
}

/// A read-only connection, for a store that cannot be written. Where the WAL index cannot be
/// created either (a read-only directory), the file is opened as immutable: nothing can write
/// it there.
pub(super) fn open_read_only(path: &Path) -> Option<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let usable = |c: &Connection| {
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok()
    };
    if let Ok(c) = Connection::open_with_flags(path, flags)
        && usable(&c)
    {
        let _ = c.busy_handler(Some(busy_backoff));
        return Some(c);
    }
    let uri = format!(
        "file:{}?immutable=1",
        path.to_string_lossy()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23")
    );
    let c = Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI).ok()?;
    usable(&c).then_some(c)
}

/// Every message of `PRAGMA integrity_check` (`["ok"]` for a sound database); an error that
/// stops the check is its message.
pub(super) fn integrity_messages(conn: &Connection) -> Vec<String> {
    let run = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        stmt.query_map([], |r| r.get(0))?.collect()
    };
    run().unwrap_or_else(|e| vec![e.to_string()])
}

/// `PRAGMA integrity_check`: `Err` with its first message when the database is damaged.
fn integrity(conn: &Connection) -> std::result::Result<(), String> {
    let first: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if first == "ok" { Ok(()) } else { Err(first) }
}

impl super::Store {
    /// An error unless the database is sound (`PRAGMA integrity_check`: `quick_check` does not
    /// compare an index with its table, and gc reads run ids from their index). For `gc`,
    /// before it deletes by what the database says: a damaged page, or an index missing a
    /// run, could hide a run that needs an object.
    pub fn refuse_if_damaged(&self) -> Result<()> {
        let first: std::result::Result<String, String> = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| e.to_string());
        match first {
            Ok(ok) if ok == "ok" => Ok(()),
            Ok(first) | Err(first) => Err(Error::store(format!(
                "the lineage store `{}` is damaged (integrity check: {first}); nothing was deleted",
                self.dir.join(super::DB_FILE).display()
            ))
            .hint("`mlrun fsck` shows the damage; put the database back from a backup, or move it aside to start a new store (the stored objects are kept)")),
        }
    }
}

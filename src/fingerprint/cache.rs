//! The stat cache: a file whose (device, inode, size, mtime, ctime) are unchanged since it was
//! hashed is not read again. Entries live in the store (`hash_cache`) so they survive across runs.
//!
//! Racy edits: a file modified in the same instant it was hashed could change again without its
//! timestamps moving past the recorded ones (coarse clocks, same-size rewrites). As git does for
//! racy index entries, an entry is only trusted when the file's mtime is at least 2 s older than
//! the moment it was hashed; otherwise the file is read again (and then recorded afresh).

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, params};

use crate::error::Result;

const RACY_NS: i64 = 2_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub dev: i64,
    pub ino: i64,
    pub size: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stat {
    pub fn of(meta: &Metadata) -> Stat {
        Stat {
            dev: meta.dev() as i64,
            ino: meta.ino() as i64,
            size: meta.size() as i64,
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    stat: Stat,
    hash: String,
    hashed_at_ns: i64,
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[derive(Default)]
pub struct HashCache {
    entries: Mutex<HashMap<PathBuf, Entry>>,
    pending: Mutex<Vec<(PathBuf, Entry)>>,
    /// false: never consult or fill the cache (e.g. `fsck`)
    enabled: bool,
}

impl HashCache {
    /// A cache that remembers nothing.
    pub fn disabled() -> Self {
        HashCache::default()
    }

    /// Load the entries for files under `root`.
    pub fn load(conn: &Connection, root: &Path) -> Result<Self> {
        let lo = format!("{}/", root.display());
        let hi = format!("{}0", root.display()); // '0' sorts right after '/'
        let mut stmt = conn.prepare_cached(
            "SELECT path, dev, ino, size, mtime_ns, ctime_ns, hash, hashed_at_ns FROM hash_cache
             WHERE path >= ?1 AND path < ?2",
        )?;
        let rows = stmt.query_map(params![lo, hi], |r| {
            Ok((
                PathBuf::from(r.get::<_, String>(0)?),
                Entry {
                    stat: Stat {
                        dev: r.get(1)?,
                        ino: r.get(2)?,
                        size: r.get(3)?,
                        mtime_ns: r.get(4)?,
                        ctime_ns: r.get(5)?,
                    },
                    hash: r.get(6)?,
                    hashed_at_ns: r.get(7)?,
                },
            ))
        })?;
        let entries = rows.collect::<rusqlite::Result<HashMap<_, _>>>()?;
        Ok(HashCache {
            entries: Mutex::new(entries),
            pending: Mutex::new(Vec::new()),
            enabled: true,
        })
    }

    /// The cached hash of `path`, if its stat is unchanged and the entry is not racy.
    pub fn get(&self, path: &Path, meta: &Metadata) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let stat = Stat::of(meta);
        let entries = self.entries.lock().expect("cache lock");
        let e = entries.get(path)?;
        (e.stat == stat && stat.mtime_ns + RACY_NS < e.hashed_at_ns).then(|| e.hash.clone())
    }

    /// Remember a hash computed from a read that started at `hashed_at_ns`, with `meta` taken
    /// before the read.
    pub fn put(&self, path: &Path, meta: &Metadata, hash: &str, hashed_at_ns: i64) {
        if !self.enabled {
            return;
        }
        let e = Entry {
            stat: Stat::of(meta),
            hash: hash.to_string(),
            hashed_at_ns,
        };
        self.entries
            .lock()
            .expect("cache lock")
            .insert(path.to_path_buf(), e.clone());
        self.pending
            .lock()
            .expect("cache lock")
            .push((path.to_path_buf(), e));
    }

    /// Write the entries learnt since the last flush (inside the caller's transaction).
    pub fn flush(&self, conn: &Connection) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("cache lock"));
        if pending.is_empty() {
            return Ok(());
        }
        let mut stmt = conn.prepare_cached(
            "INSERT OR REPLACE INTO hash_cache (path, dev, ino, size, mtime_ns, ctime_ns, hash, hashed_at_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (p, e) in pending {
            stmt.execute(params![
                p.to_string_lossy(),
                e.stat.dev,
                e.stat.ino,
                e.stat.size,
                e.stat.mtime_ns,
                e.stat.ctime_ns,
                e.hash,
                e.hashed_at_ns
            ])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (Connection, HashCache) {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let c = HashCache::load(&conn, Path::new("/nowhere")).unwrap();
        (conn, c)
    }

    #[test]
    fn fresh_entries_are_racy_and_old_ones_hit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        let (_conn, c) = cache();
        // hashed right after it was written: not trusted
        c.put(&p, &meta, "h", now_ns());
        assert_eq!(c.get(&p, &meta), None);
        // hashed well after its last modification: trusted
        c.put(&p, &meta, "h", now_ns() + 3 * RACY_NS);
        assert_eq!(c.get(&p, &meta).as_deref(), Some("h"));
        // any change to the file's stat misses
        std::fs::write(&p, b"yy").unwrap();
        let meta2 = std::fs::metadata(&p).unwrap();
        assert_eq!(c.get(&p, &meta2), None);
    }

    #[test]
    fn entries_survive_a_flush_and_reload() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let c = HashCache::load(&conn, d.path()).unwrap();
        c.put(&p, &meta, "h", now_ns() + 3 * RACY_NS);
        c.flush(&conn).unwrap();
        let again = HashCache::load(&conn, d.path()).unwrap();
        assert_eq!(again.get(&p, &meta).as_deref(), Some("h"));
        let elsewhere = HashCache::load(&conn, Path::new("/other")).unwrap();
        assert_eq!(elsewhere.get(&p, &meta), None);
    }
}

//! The stat cache's rows (`stat_cache`: one per directory, its files' entries packed by
//! `fingerprint::cache`). Loading a project's rows is on the path of every run and `status`;
//! flushing runs inside the write transaction of the step that learnt the entries.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use super::{During, Store};
use std::io::Write;

use crate::error::{Error, Result};
use crate::fingerprint::cache::HashCache;

impl Store {
    /// The stat cache of `root` and of the directories under it.
    pub fn load_stat_cache(&self, root: &Path) -> Result<HashCache> {
        load(&self.conn, root).during("reading the stat cache")
    }

    /// Write the entries `cache` learnt since its last flush (`status`; a run flushes inside
    /// each step's record). One statement per directory learnt, each its own write: with
    /// nothing learnt, nothing waits for the write lock.
    pub fn flush_stat_cache(&self, cache: &HashCache) -> Result<()> {
        flush(&self.conn, cache)
    }
}

/// The bytes of a packed row; anything else a damaged store may hold reads as no row.
fn blob(v: ValueRef<'_>) -> Option<&[u8]> {
    match v {
        ValueRef::Blob(b) => Some(b),
        _ => None,
    }
}

fn load(conn: &Connection, root: &Path) -> Result<HashCache> {
    let exact = root.display().to_string();
    let lo = format!("{exact}/");
    let hi = format!("{exact}0"); // '0' sorts right after '/'
    let mut stmt = conn.prepare_cached(
        "SELECT dir, entries FROM stat_cache WHERE dir = ?1 OR (dir >= ?2 AND dir < ?3)",
    )?;
    let mut dirs = Vec::new();
    let mut rows = stmt.query(params![exact, lo, hi])?;
    while let Some(r) = rows.next()? {
        // a row that is not what mlrun writes (a damaged store) is ignored: a cache
        if let (ValueRef::Text(dir), Some(packed)) = (r.get_ref(0)?, blob(r.get_ref(1)?)) {
            let dir = PathBuf::from(OsStr::from_bytes(dir));
            dirs.push((dir, packed.to_vec()));
        }
    }
    Ok(HashCache::from_packed_rows(dirs))
}

/// Write what `cache` learnt, inside the caller's write transaction.
pub(super) fn flush(conn: &Connection, cache: &HashCache) -> Result<()> {
    let mut read = conn
        .prepare_cached("SELECT entries FROM stat_cache WHERE dir = ?1")
        .during("reading the stat cache")?;
    let mut write = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO stat_cache (dir, entries) VALUES (?1, zeroblob(?2))",
        )
        .during("writing the stat cache")?;
    cache.flush_with(
        |dir, found| {
            read.query_row([dir], |r| {
                if let Some(row) = blob(r.get_ref(0)?) {
                    found(row);
                }
                Ok(())
            })
            .optional()
            .during("reading the stat cache")?;
            Ok(())
        },
        |dir, len, pack| {
            // the row is made at its size, then written in place (incremental blob I/O)
            write
                .execute(params![dir, len as i64])
                .during("writing the stat cache")?;
            let row = conn.last_insert_rowid();
            let mut blob = conn
                .blob_open("main", "stat_cache", "entries", row, false)
                .during("writing the stat cache")?;
            let mut out = std::io::BufWriter::with_capacity(64 << 10, &mut blob);
            pack(&mut out)
                .and_then(|()| out.flush())
                .map_err(|e| Error::store("cannot write the stat cache").cause(e))?;
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::fingerprint::cache::{RACY_NS, now_ns, unpack};

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn entries_round_trip_through_the_store() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        let store = Store::in_memory();
        let c = store.load_stat_cache(d.path()).unwrap();
        c.put(&p, &meta, H, now_ns() + 3 * RACY_NS);
        store.flush_stat_cache(&c).unwrap();
        // flushed again with nothing learnt: the row stays as it is
        store.flush_stat_cache(&c).unwrap();
        let again = store.load_stat_cache(d.path()).unwrap();
        assert_eq!(again.get(&p, &meta).as_deref(), Some(H));
        // a sibling whose name extends the root's is not the root's
        let sibling = PathBuf::from(format!("{}x", d.path().display()));
        let other = store.load_stat_cache(&sibling).unwrap();
        assert_eq!(other.get(&p, &meta), None);
    }

    #[test]
    fn a_flush_keeps_entries_another_process_wrote_meanwhile() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let store = Store::in_memory();
        let first = store.load_stat_cache(d.path()).unwrap();
        let second = store.load_stat_cache(d.path()).unwrap();
        let later = now_ns() + 3 * RACY_NS;
        first.put(&a, &std::fs::metadata(&a).unwrap(), H, later);
        second.put(&b, &std::fs::metadata(&b).unwrap(), H, later);
        store.flush_stat_cache(&first).unwrap();
        store.flush_stat_cache(&second).unwrap();
        let n: i64 = store
            .conn
            .query_row("SELECT count(*) FROM stat_cache", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "one row for the directory");
        let again = store.load_stat_cache(d.path()).unwrap();
        for p in [&a, &b] {
            assert_eq!(
                again.get(p, &std::fs::metadata(p).unwrap()).as_deref(),
                Some(H)
            );
        }
    }

    #[test]
    fn a_rewritten_row_forgets_files_that_are_gone() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        for p in [&a, &b, &c] {
            std::fs::write(p, b"x").unwrap();
        }
        let store = Store::in_memory();
        let later = now_ns() + 3 * RACY_NS;
        let first = store.load_stat_cache(d.path()).unwrap();
        first.put(&a, &std::fs::metadata(&a).unwrap(), H, later);
        first.put(&b, &std::fs::metadata(&b).unwrap(), H, later);
        store.flush_stat_cache(&first).unwrap();
        std::fs::remove_file(&b).unwrap();
        let second = store.load_stat_cache(d.path()).unwrap();
        second.walked(d.path(), 2);
        second.put(&c, &std::fs::metadata(&c).unwrap(), H, later);
        store.flush_stat_cache(&second).unwrap();
        let row: Vec<u8> = store
            .conn
            .query_row("SELECT entries FROM stat_cache", [], |r| r.get(0))
            .unwrap();
        let mut names: Vec<OsString> = unpack(&row).into_keys().collect();
        names.sort();
        assert_eq!(names, [OsString::from("a"), OsString::from("c")]);
    }

    #[test]
    fn rows_of_the_wrong_type_are_ignored_not_fatal() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let store = Store::in_memory();
        let dir = d.path().display().to_string();
        store.conn.execute(
            "INSERT INTO stat_cache (dir, entries) VALUES (?1, 'garbage text'), (CAST(?1 || '/sub' AS BLOB), X'01')",
            [&dir],
        )
        .unwrap();
        let c = store.load_stat_cache(d.path()).unwrap();
        assert_eq!(c.get(&f, &std::fs::metadata(&f).unwrap()), None);
        c.put(
            &f,
            &std::fs::metadata(&f).unwrap(),
            H,
            now_ns() + 3 * RACY_NS,
        );
        store.flush_stat_cache(&c).unwrap();
        let again = store.load_stat_cache(d.path()).unwrap();
        assert_eq!(
            again.get(&f, &std::fs::metadata(&f).unwrap()).as_deref(),
            Some(H),
            "the damaged row was replaced"
        );
    }
}

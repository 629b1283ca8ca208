//! The stat cache: a file whose (device, inode, size, mtime, ctime) are unchanged since it was
//! hashed is not read again. Entries live in the store so they survive across runs: one
//! `stat_cache` row per directory, its files packed into one blob (a dataset of 20,000 files is
//! one row to read and one to write, not 20,000).
//!
//! Racy edits: a file modified in the same instant it was hashed could change again without its
//! timestamps moving past the recorded ones (coarse clocks, same-size rewrites). As git does for
//! racy index entries, an entry is only trusted when the file's mtime is at least 2 s older than
//! the moment it was hashed; otherwise the file is read again (and then recorded afresh).
//!
//! This module owns the entries and their packed form; the rows are read and written by the
//! store (`Store::load_stat_cache`, `Store::flush_stat_cache`).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::Result;

pub(crate) const RACY_NS: i64 = 2_000_000_000;

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

    /// The same fields from a `stat(2)` result (`fstatat` relative to a directory).
    pub fn of_raw(st: &libc::stat) -> Stat {
        Stat {
            dev: st.st_dev as i64,
            ino: st.st_ino as i64,
            size: st.st_size,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    stat: Stat,
    hash: [u8; 32],
    hashed_at_ns: i64,
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The files of one directory: file name → entry.
/// (Fx-hashed: file names are not attacker-chosen keys here, and SipHash was half the cost of
/// decoding and looking up 20,000 entries.)
pub(crate) type Files = HashMap<OsString, Entry, rustc_hash::FxBuildHasher>;

/// A directory's row as loaded: decoded the first time one of its files is looked up, so a run
/// that touches one directory does not decode the others.
enum DirRow {
    Packed(Vec<u8>),
    Files(Arc<Files>),
}

/// Packed form of a directory's entries (format version 1): for each file, its name's length
/// (u32) and bytes, then dev, ino, size, mtime_ns, ctime_ns, hashed_at_ns (i64 each) and the
/// 32-byte SHA-256, all little-endian.
const FORMAT: u8 = 1;
const FIXED: usize = 6 * 8 + 32;

/// The length of the packed form of `files`.
fn packed_len(files: &Files) -> usize {
    1 + files.keys().map(|n| 4 + n.len() + FIXED).sum::<usize>()
}

/// Write the packed form of `files` (exactly [`packed_len`] bytes) to `out`.
fn pack_into(files: &Files, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    out.write_all(&[FORMAT])?;
    let mut fixed = [0u8; FIXED];
    for (name, e) in files {
        let name = name.as_bytes();
        out.write_all(&(name.len() as u32).to_le_bytes())?;
        out.write_all(name)?;
        for (i, v) in [
            e.stat.dev,
            e.stat.ino,
            e.stat.size,
            e.stat.mtime_ns,
            e.stat.ctime_ns,
            e.hashed_at_ns,
        ]
        .into_iter()
        .enumerate()
        {
            fixed[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        fixed[48..].copy_from_slice(&e.hash);
        out.write_all(&fixed)?;
    }
    Ok(())
}

#[cfg(test)]
fn pack(files: &Files) -> Vec<u8> {
    let mut out = Vec::with_capacity(packed_len(files));
    pack_into(files, &mut out).expect("writing to a Vec");
    assert_eq!(out.len(), packed_len(files));
    out
}

/// The entries of a packed row; a row in an unknown format or cut short is ignored as a whole
/// (it is only a cache: those files are hashed again).
pub(crate) fn unpack(data: &[u8]) -> Files {
    fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = data.split_at_checked(n)?;
        *data = rest;
        Some(head)
    }
    fn parse(mut data: &[u8]) -> Option<Files> {
        if take(&mut data, 1)? != [FORMAT] {
            return None;
        }
        // sized for the row (names of ~10 bytes): growing a map of 20,000 entries rehashed it
        // a dozen times (3% of a no-op run)
        let mut files =
            Files::with_capacity_and_hasher(data.len() / (4 + FIXED + 10), Default::default());
        while !data.is_empty() {
            let len = u32::from_le_bytes(take(&mut data, 4)?.try_into().ok()?) as usize;
            let name = OsString::from_vec(take(&mut data, len)?.to_vec());
            let fixed = take(&mut data, FIXED)?;
            let int = |i: usize| {
                i64::from_le_bytes(fixed[i * 8..i * 8 + 8].try_into().unwrap_or_default())
            };
            let e = Entry {
                stat: Stat {
                    dev: int(0),
                    ino: int(1),
                    size: int(2),
                    mtime_ns: int(3),
                    ctime_ns: int(4),
                },
                hashed_at_ns: int(5),
                hash: fixed[48..].try_into().ok()?,
            };
            files.insert(name, e);
        }
        Some(files)
    }
    parse(data).unwrap_or_default()
}

fn split(path: &Path) -> Option<(&Path, &OsStr)> {
    Some((path.parent()?, path.file_name()?))
}

#[derive(Default)]
pub struct HashCache {
    dirs: Mutex<HashMap<PathBuf, DirRow>>,
    /// learnt since the last flush: directory → file name → entry
    pending: Mutex<HashMap<PathBuf, Files>>,
    /// directory → how many files a walk of it found in this run
    walked: Mutex<HashMap<PathBuf, usize>>,
    /// false: never consult or fill the cache (e.g. `fsck`)
    enabled: bool,
}

impl Drop for HashCache {
    /// Decoded directories are freed on another thread: 20,000 entries are 20,000 allocations,
    /// and the cache is dropped at a run's end, when nothing else runs (a few ms of a no-op run
    /// over 20,000 files). Small caches are freed here.
    fn drop(&mut self) {
        let dirs = std::mem::take(self.dirs.get_mut().unwrap_or_else(|e| e.into_inner()));
        let decoded: usize = dirs
            .values()
            .map(|d| match d {
                DirRow::Files(f) => f.len(),
                DirRow::Packed(_) => 0,
            })
            .sum();
        if decoded > 1000 {
            rayon::spawn(move || drop(dirs));
        }
    }
}

impl HashCache {
    /// A cache that remembers nothing.
    pub fn disabled() -> Self {
        HashCache::default()
    }

    /// A cache over the packed rows the store holds for a project (directory → packed entries),
    /// each decoded the first time one of its files is looked up.
    pub fn from_packed_rows(rows: impl IntoIterator<Item = (PathBuf, Vec<u8>)>) -> Self {
        HashCache {
            dirs: Mutex::new(
                rows.into_iter()
                    .map(|(d, p)| (d, DirRow::Packed(p)))
                    .collect(),
            ),
            pending: Mutex::new(HashMap::new()),
            walked: Mutex::new(HashMap::new()),
            enabled: true,
        }
    }

    /// The cached hash of `path`, if its stat is unchanged and the entry is not racy.
    pub fn get(&self, path: &Path, meta: &Metadata) -> Option<String> {
        let (dir, name) = split(path)?;
        self.dir(dir).get(name, &Stat::of(meta))
    }

    /// Does the cache record a hash of this very file (same device, inode and size) taken at
    /// another stat? Then `touch` or a copy back probably left its bytes as they were, and
    /// work done before its hash is known (copying it ahead, `Objects::copy_ahead`) is likely
    /// wasted.
    pub fn knows_file(&self, path: &Path, meta: &Metadata) -> bool {
        let Some((dir, name)) = split(path) else {
            return false;
        };
        let now = Stat::of(meta);
        self.enabled
            && self
                .dir(dir)
                .stored
                .as_ref()
                .and_then(|f| f.get(name))
                .is_some_and(|e| {
                    e.stat.dev == now.dev && e.stat.ino == now.ino && e.stat.size == now.size
                })
    }

    /// False: the cache never vouches for a file (`--no-cache`, a sweep's variants).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Is `dir`'s stored row large and not decoded yet (worth decoding while its directory is
    /// listed)?
    pub(crate) fn dir_is_large_and_packed(&self, dir: &Path) -> bool {
        self.enabled
            && matches!(
                self.dirs.lock().expect("cache lock").get(dir),
                Some(DirRow::Packed(p)) if p.len() > 64 << 10
            )
    }

    /// The entries of one directory, to look up its files without taking a lock per file (a
    /// walk of 20,000 files made two lock and two map lookups keyed by the directory's full path
    /// per file: 10% of a no-op run).
    pub(crate) fn dir(&self, dir: &Path) -> DirLookup<'_> {
        if !self.enabled {
            return DirLookup {
                cache: self,
                dir: PathBuf::new(),
                stored: None,
                learnt: false,
            };
        }
        let learnt = self.pending.lock().expect("cache lock").contains_key(dir);
        let mut dirs = self.dirs.lock().expect("cache lock");
        let stored = dirs.get_mut(dir).map(|row| {
            if let DirRow::Packed(data) = row {
                *row = DirRow::Files(Arc::new(unpack(data)));
            }
            match row {
                DirRow::Files(files) => files.clone(),
                DirRow::Packed(_) => Arc::default(),
            }
        });
        DirLookup {
            cache: self,
            dir: if learnt {
                dir.to_path_buf()
            } else {
                PathBuf::new()
            },
            stored,
            learnt,
        }
    }

    /// Remember a hash computed from a read that started at `hashed_at_ns`, with `meta` taken
    /// before the read. A hash that is not 64 hex digits is not remembered.
    pub fn put(&self, path: &Path, meta: &Metadata, hash: &str, hashed_at_ns: i64) {
        if let Some((dir, name)) = split(path) {
            self.put_stat(dir, name, Stat::of(meta), hash, hashed_at_ns);
        }
    }

    /// [`HashCache::put`] for the file `name` of `dir`, stat'ed as `stat` before the read.
    pub(crate) fn put_stat(&self, dir: &Path, name: &OsStr, stat: Stat, hash: &str, at: i64) {
        if !self.enabled {
            return;
        }
        let Ok(hash) = hex::FromHex::from_hex(hash) else {
            return;
        };
        let e = Entry {
            stat,
            hash,
            hashed_at_ns: at,
        };
        let mut pending = self.pending.lock().expect("cache lock");
        match pending.get_mut(dir) {
            Some(files) => {
                files.insert(name.to_os_string(), e);
            }
            None => {
                pending.insert(
                    dir.to_path_buf(),
                    Files::from_iter([(name.to_os_string(), e)]),
                );
            }
        }
    }

    /// A walk listed `dir` and found `files` regular files in it.
    pub fn walked(&self, dir: &Path, files: usize) {
        if self.enabled {
            self.walked
                .lock()
                .expect("cache lock")
                .insert(dir.to_path_buf(), files);
        }
    }

    /// Write the entries learnt since the last flush, through the store's row access (inside
    /// its write transaction): `read` hands the directory's stored row, if any, to the callback;
    /// `write` replaces the row with one of the given length, which the callback it is handed
    /// writes (the row is streamed into the store rather than built in memory: 1.9 MB for a
    /// directory of 20,000 files, which SQLite would copy twice more). Each directory's row is
    /// read again here, so entries another mlrun wrote since this one loaded the cache are kept.
    pub fn flush_with(
        &self,
        mut read: impl FnMut(&str, &mut dyn FnMut(&[u8])) -> Result<()>,
        mut write: impl FnMut(&str, usize, &mut PackInto<'_>) -> Result<()>,
    ) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("cache lock"));
        let mut dirs = self.dirs.lock().expect("cache lock");
        for (dir, learnt) in pending {
            let key = dir.to_string_lossy();
            let mut files = Files::default();
            read(&key, &mut |row| files = unpack(row))?;
            files.extend(learnt);
            // Names no longer in the directory (deleted, renamed) are dropped as the row is
            // rewritten, so a directory whose files come and go does not grow its row forever.
            // The listing is read only when this run's walk saw fewer files than the row holds.
            let walked = self.walked.lock().expect("cache lock").get(&dir).copied();
            if walked.is_some_and(|n| files.len() > n)
                && let Ok(listing) = std::fs::read_dir(&dir)
            {
                let present: std::collections::HashSet<OsString> =
                    listing.flatten().map(|e| e.file_name()).collect();
                files.retain(|name, _| present.contains(name));
            }
            write(&key, packed_len(&files), &mut |out| pack_into(&files, out))?;
            // what this run learnt stays visible to it after the flush
            dirs.insert(dir, DirRow::Files(Arc::new(files)));
        }
        Ok(())
    }
}

/// `hex::encode` of a hash, by table: once per file of a no-op run, and `hex`'s per-character
/// encoder with a UTF-8 check after it was 7% of that run's instructions over 20,000 files.
fn hex32(hash: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // into a fixed buffer, then one allocation: pushing 64 chars one by one was 7% of a no-op
    // run over 20,000 files
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(hash) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// Writes a directory's packed row to the writer it is given.
pub type PackInto<'a> = dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()> + 'a;

/// One directory's entries, taken from a [`HashCache`] at once (see [`HashCache::dir`]).
pub(crate) struct DirLookup<'a> {
    cache: &'a HashCache,
    /// the directory, when this run learnt entries for it before the lookup was taken
    dir: PathBuf,
    stored: Option<Arc<Files>>,
    learnt: bool,
}

impl DirLookup<'_> {
    /// The cached hash of the file `name`, if its stat is `stat` and the entry is not racy. An
    /// entry learnt in this run comes before the stored one.
    pub(crate) fn get(&self, name: &OsStr, stat: &Stat) -> Option<String> {
        let trusted = |e: &Entry| {
            (e.stat == *stat && stat.mtime_ns + RACY_NS < e.hashed_at_ns).then(|| hex32(&e.hash))
        };
        if self.learnt
            && let Some(e) = self
                .cache
                .pending
                .lock()
                .expect("cache lock")
                .get(&self.dir)
                .and_then(|f| f.get(name))
        {
            return trusted(e);
        }
        trusted(self.stored.as_ref()?.get(name)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn cache() -> (Store, HashCache) {
        let store = Store::in_memory();
        let c = store.load_stat_cache(Path::new("/nowhere")).unwrap();
        (store, c)
    }

    #[test]
    fn hex32_is_hex_encode() {
        let h: [u8; 32] = std::array::from_fn(|i| (i * 37 + 11) as u8);
        assert_eq!(hex32(&h), hex::encode(h));
    }

    #[test]
    fn a_touched_file_is_known_by_its_inode_and_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        let (_conn, c) = cache();
        assert!(!c.knows_file(&p, &meta));
        c.put(&p, &meta, H, now_ns() + 3 * RACY_NS);
        let store = Store::in_memory();
        store.flush_stat_cache(&c).unwrap();
        let c = store.load_stat_cache(d.path()).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let touched = std::fs::metadata(&p).unwrap();
        assert_eq!(c.get(&p, &touched), None, "a new stat: not vouched for");
        assert!(c.knows_file(&p, &touched), "but the same file");
        std::fs::write(&p, b"longer").unwrap();
        assert!(!c.knows_file(&p, &std::fs::metadata(&p).unwrap()));
    }

    #[test]
    fn fresh_entries_are_racy_and_old_ones_hit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        let (_conn, c) = cache();
        // hashed right after it was written: not trusted
        c.put(&p, &meta, H, now_ns());
        assert_eq!(c.get(&p, &meta), None);
        // hashed well after its last modification: trusted
        c.put(&p, &meta, H, now_ns() + 3 * RACY_NS);
        assert_eq!(c.get(&p, &meta).as_deref(), Some(H));
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
        let store = Store::in_memory();
        let c = store.load_stat_cache(d.path()).unwrap();
        c.put(&p, &meta, H, now_ns() + 3 * RACY_NS);
        store.flush_stat_cache(&c).unwrap();
        let again = store.load_stat_cache(d.path()).unwrap();
        assert_eq!(again.get(&p, &meta).as_deref(), Some(H));
        let elsewhere = store.load_stat_cache(Path::new("/other")).unwrap();
        assert_eq!(elsewhere.get(&p, &meta), None);
    }

    #[test]
    fn packed_rows_round_trip_any_file_name() {
        let mut files = Files::default();
        for (i, name) in [&b"a"[..], b"with space", b"\xff\xfe not utf-8", b""]
            .iter()
            .enumerate()
        {
            files.insert(
                OsString::from_vec(name.to_vec()),
                Entry {
                    stat: Stat {
                        dev: i as i64,
                        ino: -1,
                        size: i64::MAX,
                        mtime_ns: 7,
                        ctime_ns: 8,
                    },
                    hash: [i as u8; 32],
                    hashed_at_ns: 9,
                },
            );
        }
        assert_eq!(unpack(&pack(&files)), files);
    }

    #[test]
    fn a_damaged_row_is_ignored_not_misread() {
        let mut files = Files::default();
        files.insert(
            OsString::from("f"),
            Entry {
                stat: Stat {
                    dev: 1,
                    ino: 2,
                    size: 3,
                    mtime_ns: 4,
                    ctime_ns: 5,
                },
                hash: [7; 32],
                hashed_at_ns: 6,
            },
        );
        let packed = pack(&files);
        for cut in 0..packed.len() {
            assert!(unpack(&packed[..cut]).is_empty(), "cut at {cut}");
        }
        let mut other_format = packed.clone();
        other_format[0] = FORMAT + 1;
        assert!(unpack(&other_format).is_empty());
    }

    #[test]
    fn subdirectories_load_with_their_root_and_siblings_do_not() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("proj/data/x");
        std::fs::create_dir_all(&sub).unwrap();
        let sibling = d.path().join("proj2");
        std::fs::create_dir_all(&sibling).unwrap();
        let (f, g) = (sub.join("f"), sibling.join("g"));
        std::fs::write(&f, b"f").unwrap();
        std::fs::write(&g, b"g").unwrap();
        let store = Store::in_memory();
        let c = store.load_stat_cache(d.path()).unwrap();
        let later = now_ns() + 3 * RACY_NS;
        c.put(&f, &std::fs::metadata(&f).unwrap(), H, later);
        c.put(&g, &std::fs::metadata(&g).unwrap(), H, later);
        store.flush_stat_cache(&c).unwrap();
        let proj = store.load_stat_cache(&d.path().join("proj")).unwrap();
        assert_eq!(
            proj.get(&f, &std::fs::metadata(&f).unwrap()).as_deref(),
            Some(H)
        );
        assert_eq!(proj.get(&g, &std::fs::metadata(&g).unwrap()), None);
    }
}

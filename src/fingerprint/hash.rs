//! Content fingerprints: SHA-256 of files, and of directories as a canonical manifest.
//!
//! A file is streamed through the hasher in large chunks, so memory stays constant whatever its
//! size. A directory's fingerprint is the SHA-256 of its manifest: one record per entry, sorted
//! by relative path (bytewise), each `mode SP hash SP size SP relpath NUL`. The relpath is the
//! name's bytes exactly as the filesystem gives them: UTF-8 for nearly every name, and for a name
//! that is not valid UTF-8 its raw bytes, which by definition differ from the bytes of every
//! UTF-8 name (so `a\xff` and `a\u{FFFD}` hash differently, and every all-UTF-8 directory keeps
//! the hash it always had). Files inside a
//! directory are hashed on all cores. Symlinks inside a directory are recorded as links (the
//! hash of their target text, like git), never followed, so a link loop cannot hang a run;
//! FIFOs, sockets and devices are refused rather than read, so they cannot block a run either.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::cache::{DirLookup, HashCache, Stat, now_ns};
use crate::error::{Error, Result};

/// What progress lines report while a long fingerprint runs (the reader counts every byte).
pub use super::reader::bytes_read;

/// Mode recorded for a directory entry.
pub const MODE_FILE: u32 = 0o100644;
pub const MODE_EXEC: u32 = 0o100755;
pub const MODE_LINK: u32 = 0o120000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// path relative to the directory, `/`-separated; for a path that is not valid UTF-8, its
    /// lossy form (`\u{FFFD}` for each bad byte), for people: the exact bytes are in `raw`
    pub relpath: String,
    /// the path's bytes when they are not valid UTF-8; `None`: `relpath` is exact
    pub raw: Option<Vec<u8>>,
    pub mode: u32,
    pub hash: String,
    pub size: u64,
}

impl Entry {
    /// The path's exact bytes (what the manifest holds).
    pub fn bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.relpath.as_bytes())
    }

    /// The path, exactly, to join to the directory's path.
    pub fn path(&self) -> &Path {
        Path::new(std::ffi::OsStr::from_bytes(self.bytes()))
    }
}

/// A relative path's bytes as `Entry::relpath` and `Entry::raw`.
pub fn relpath_of(bytes: &[u8]) -> (String, Option<Vec<u8>>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(bytes.to_vec()),
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fingerprint {
    File {
        hash: String,
        size: u64,
        mode: u32,
    },
    Dir {
        hash: String,
        size: u64,
        /// shared: a step's inputs are held by its attempts, the copy into the object store and
        /// its record at once, and a directory of 20,000 files has 4 MB of entries
        entries: Arc<Vec<Entry>>,
    },
}

impl Fingerprint {
    pub fn hash(&self) -> &str {
        match self {
            Fingerprint::File { hash, .. } | Fingerprint::Dir { hash, .. } => hash,
        }
    }
    pub fn size(&self) -> u64 {
        match self {
            Fingerprint::File { size, .. } | Fingerprint::Dir { size, .. } => *size,
        }
    }
    /// number of files: 1 for a file
    pub fn nfiles(&self) -> usize {
        match self {
            Fingerprint::File { .. } => 1,
            Fingerprint::Dir { entries, .. } => entries.len(),
        }
    }
    pub fn is_dir(&self) -> bool {
        matches!(self, Fingerprint::Dir { .. })
    }
}

pub fn hex(digest: &[u8]) -> String {
    hex::encode(digest)
}

/// A content hash as people see it: its first 10 hex digits.
pub fn short_hash(h: &str) -> &str {
    &h[..h.len().min(10)]
}

pub fn sha256_bytes(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Stream a file through SHA-256. Returns (hash, bytes read).
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    super::reader::hash_path(path)
}

/// Stream an open file (named `path` in errors) through SHA-256.
fn hash_open(f: &mut File, path: &Path) -> Result<(String, u64)> {
    super::reader::hash_stream(f, path, |_| Ok(()))
}

fn file_mode(meta: &Metadata) -> u32 {
    if meta.mode() & 0o111 != 0 {
        MODE_EXEC
    } else {
        MODE_FILE
    }
}

fn refuse_special(path: &Path, meta: &Metadata) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_fifo() || ft.is_socket() || ft.is_block_device() || ft.is_char_device() {
        return Err(special(path, meta.mode() & libc::S_IFMT));
    }
    Ok(())
}

/// The refusal of a file that is not a regular file, a directory or a link (`kind`: the type
/// bits of its mode).
fn special(path: &Path, kind: u32) -> Error {
    let what = match kind {
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFBLK | libc::S_IFCHR => "a device",
        _ => "not a regular file",
    };
    Error::other(format!(
        "`{}` is {what}, not a regular file or directory; mlrun fingerprints only files and directories",
        path.display()
    ))
}

/// Fingerprint a file or a directory. The top-level path is followed if it is a symlink. Files
/// whose stat is unchanged since they were hashed are taken from `cache`.
pub fn fingerprint(path: &Path, cache: &HashCache) -> Result<Fingerprint> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::other(format!("cannot read `{}`", path.display())).cause(e))?;
    if meta.is_dir() {
        fingerprint_dir(path, cache)
    } else {
        refuse_special(path, &meta)?;
        let (hash, size) = hash_cached(path, &meta, cache)?;
        Ok(Fingerprint::File {
            hash,
            size,
            mode: file_mode(&meta),
        })
    }
}

fn hash_cached(path: &Path, meta: &Metadata, cache: &HashCache) -> Result<(String, u64)> {
    if let Some(h) = cache.get(path, meta) {
        return Ok((h, meta.len()));
    }
    let at = now_ns();
    let stat = Stat::of(meta);
    let (hash, size) = hash_unchanged(path, &stat, || File::open(path))?;
    cache.put(path, meta, &hash, at);
    Ok((hash, size))
}

/// Hash the file `open` opens, which was stat'ed as `stat` (named `path` in errors).
fn hash_unchanged(
    path: &Path,
    stat: &Stat,
    open: impl FnOnce() -> std::io::Result<File>,
) -> Result<(String, u64)> {
    let cannot = |e| Error::other(format!("cannot read `{}`", path.display())).cause(e);
    let mut f = open().map_err(cannot)?;
    let (hash, size) = hash_open(&mut f, path)?;
    // A file another process wrote while it was being read has no single version: say so. (The
    // open file is stat'ed: the same inode, without walking the path again; a file replaced
    // between the first stat and the open shows up as a different inode.)
    let after = f.metadata().map_err(cannot)?;
    if Stat::of(&after) != *stat || size as i64 != stat.size {
        return Err(Error::other(format!(
            "`{}` changed while it was being hashed; another process is writing it",
            path.display()
        )));
    }
    Ok((hash, size))
}

/// A directory a walk listed, open, so its files are stat'ed and opened relative to it: by full
/// path, every `statx` walked the directory's own path again (path lookup was ~10% of a no-op
/// run over 20,000 files), and its stat cache entries are taken once for all its files.
struct Dir<'a> {
    path: std::path::PathBuf,
    fd: File,
    cached: DirLookup<'a>,
}

enum Found<'a> {
    /// not a directory or a link when listed: a regular file, or a special file refused once
    /// stat'ed (its directory, its name there, its path relative to the root)
    File(Arc<Dir<'a>>, OsString, Vec<u8>),
    Link(Vec<u8>, String),
}

/// At most this many directories are held open at once: a tree of many directories is
/// fingerprinted in batches, so a walk never runs out of file descriptors.
const OPEN_DIRS: usize = 64;

/// What a walk found so far, and the entries of the batches already fingerprinted.
struct Walk<'a> {
    cache: &'a HashCache,
    found: Vec<Found<'a>>,
    open_dirs: usize,
    entries: Vec<Entry>,
}

impl<'a> Walk<'a> {
    /// Stat and hash (on all cores) the files found so far, closing their directories.
    fn flush(&mut self) -> Result<()> {
        let found = std::mem::take(&mut self.found);
        self.open_dirs = 0;
        let batch = found
            .into_par_iter()
            .map(|f| match f {
                Found::File(dir, name, relpath) => file_entry(&dir, &name, relpath, self.cache),
                Found::Link(rel, hash) => {
                    let (relpath, raw) = relpath_of(&rel);
                    Ok(Entry {
                        relpath,
                        raw,
                        mode: MODE_LINK,
                        hash,
                        size: 0,
                    })
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if self.entries.is_empty() {
            // one directory's files (the usual case): kept as collected, not copied (1.8 MB
            // for 20,000 files)
            self.entries = batch;
        } else {
            self.entries.extend(batch);
        }
        Ok(())
    }

    /// List a directory tree (`rel`: its path relative to the root, empty for the root). Entry
    /// types come from readdir (d_type) where the filesystem gives them, so the walk itself does
    /// no per-file stat: that is done by the parallel hashing that follows (on a flat directory
    /// of 20,000 files the serial statx calls were most of a no-op run; see BENCHMARKS.md).
    fn walk(&mut self, dir: &Path, rel: &[u8]) -> Result<()> {
        let cannot = |e| Error::other(format!("cannot list `{}`", dir.display())).cause(e);
        let list = || std::fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>();
        // A large directory's stat cache row is decoded (20,000 entries: ~4 ms) on another
        // core while the directory is listed, not before.
        let (cached, listed) = if self.cache.dir_is_large_and_packed(dir) {
            rayon::join(|| self.cache.dir(dir), list)
        } else {
            (self.cache.dir(dir), list())
        };
        let listed = listed.map_err(cannot)?;
        let fd = File::open(dir).map_err(cannot)?;
        if self.open_dirs >= OPEN_DIRS {
            self.flush()?;
        }
        self.open_dirs += 1;
        let this = Arc::new(Dir {
            path: dir.to_path_buf(),
            fd,
            cached,
        });
        let mut files = 0;
        for entry in listed {
            let name = entry.file_name();
            let mut relpath = Vec::with_capacity(rel.len() + 1 + name.len());
            if !rel.is_empty() {
                relpath.extend_from_slice(rel);
                relpath.push(b'/');
            }
            relpath.extend_from_slice(name.as_bytes());
            // like DirEntry::metadata, this never follows a symlink
            let ft = entry.file_type().map_err(|e| {
                Error::other(format!("cannot read `{}`", entry.path().display())).cause(e)
            })?;
            if ft.is_symlink() {
                self.found
                    .push(Found::Link(relpath, link_hash(&entry.path())?));
            } else if ft.is_dir() {
                self.walk(&entry.path(), &relpath)?;
            } else {
                files += 1;
                self.found.push(Found::File(this.clone(), name, relpath));
            }
        }
        self.cache.walked(dir, files);
        Ok(())
    }
}

fn link_hash(path: &Path) -> Result<String> {
    let target = std::fs::read_link(path)
        .map_err(|e| Error::other(format!("cannot read link `{}`", path.display())).cause(e))?;
    Ok(sha256_bytes(target.as_os_str().as_bytes()))
}

/// Stat and hash one file found by the walk, relative to its open directory.
fn file_entry(dir: &Dir<'_>, name: &OsStr, rel: Vec<u8>, cache: &HashCache) -> Result<Entry> {
    use nix::fcntl::{AtFlags, OFlag};
    let path = || dir.path.join(name);
    let cannot = |e: nix::Error| {
        Error::other(format!("cannot read `{}`", path().display())).cause(std::io::Error::from(e))
    };
    let (relpath, raw) = relpath_of(&rel);
    let st =
        nix::sys::stat::fstatat(&dir.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(cannot)?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind == libc::S_IFLNK {
        // replaced by a link since it was listed: record it as the link it now is
        return Ok(Entry {
            relpath,
            raw,
            mode: MODE_LINK,
            hash: link_hash(&path())?,
            size: 0,
        });
    }
    if kind == libc::S_IFDIR {
        return Err(Error::other(format!(
            "`{}` changed from a file to a directory while it was being fingerprinted",
            path().display()
        )));
    }
    if kind != libc::S_IFREG {
        return Err(special(&path(), kind));
    }
    let stat = Stat::of_raw(&st);
    let mode = if st.st_mode & 0o111 != 0 {
        MODE_EXEC
    } else {
        MODE_FILE
    };
    if let Some(hash) = dir.cached.get(name, &stat) {
        let size = stat.size as u64;
        return Ok(Entry {
            relpath,
            raw,
            mode,
            hash,
            size,
        });
    }
    let at = now_ns();
    let open = || {
        let fd = nix::fcntl::openat(
            &dir.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        Ok(File::from(fd))
    };
    let (hash, size) = hash_unchanged(&path(), &stat, open)?;
    cache.put_stat(&dir.path, name, stat, &hash, at);
    Ok(Entry {
        relpath,
        raw,
        mode,
        hash,
        size,
    })
}

fn fingerprint_dir(path: &Path, cache: &HashCache) -> Result<Fingerprint> {
    let mut walk = Walk {
        cache,
        found: Vec::new(),
        open_dirs: 0,
        entries: Vec::new(),
    };
    walk.walk(path, b"")?;
    walk.flush()?;
    let mut entries = walk.entries;
    // relative paths are unique: an unstable sort gives the same order, without a scratch copy
    // of the entries (1.8 MB for 20,000 files)
    // (on all cores: sorting 20,000 entries was 9% of a no-op run's instructions)
    entries.par_sort_unstable_by(|a, b| a.bytes().cmp(b.bytes()));
    let hash = manifest_hash(&entries);
    let size = entries.iter().map(|e| e.size).sum();
    Ok(Fingerprint::Dir {
        hash,
        size,
        entries: Arc::new(entries),
    })
}

/// The SHA-256 of the manifest of `entries`, streamed into the hasher record by record rather
/// than built in memory first (1.8 MB for 20,000 files).
fn manifest_hash(entries: &[Entry]) -> String {
    let mut h = Sha256::new();
    each_record(entries, |part| h.update(part));
    hex(&h.finalize())
}

/// Hand the manifest of `entries` to `out`, in pieces of whole records (~64 KiB: hashing
/// them as one buffer, not four small pieces per record, and numbers written without `fmt`,
/// took a no-op run over 20,000 files 10% fewer instructions).
fn each_record(entries: &[Entry], mut out: impl FnMut(&[u8])) {
    const CHUNK: usize = 64 << 10;
    let mut buf = Vec::with_capacity(CHUNK + 512);
    for e in entries {
        push_record(&mut buf, e);
        if buf.len() >= CHUNK {
            out(&buf);
            buf.clear();
        }
    }
    if !buf.is_empty() {
        out(&buf);
    }
}

/// Append one record: `mode SP hash SP size SP relpath NUL`, mode in octal, size in decimal.
fn push_record(buf: &mut Vec<u8>, e: &Entry) {
    push_number(buf, e.mode.into(), 8);
    buf.push(b' ');
    buf.extend_from_slice(e.hash.as_bytes());
    buf.push(b' ');
    push_number(buf, e.size, 10);
    buf.push(b' ');
    buf.extend_from_slice(e.bytes());
    buf.push(0);
}

/// Append `v` in `base` (8 or 10), as `{:o}` / `{}` write it.
fn push_number(buf: &mut Vec<u8>, mut v: u64, base: u64) {
    let mut digits = [0u8; 22];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % base) as u8;
        v /= base;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

/// The length of the manifest of `entries`, without writing it.
fn manifest_len(entries: &[Entry]) -> usize {
    fn digits(mut v: u64, base: u64) -> usize {
        let mut n = 1;
        while v >= base {
            v /= base;
            n += 1;
        }
        n
    }
    entries
        .iter()
        .map(|e| {
            digits(e.mode.into(), 8)
                + 1
                + e.hash.len()
                + 1
                + digits(e.size, 10)
                + 1
                + e.bytes().len()
                + 1
        })
        .sum()
}

/// The canonical manifest bytes a directory hash is computed from.
pub fn manifest(entries: &[Entry]) -> Vec<u8> {
    let mut m = Vec::with_capacity(manifest_len(entries));
    for e in entries {
        push_record(&mut m, e);
    }
    m
}

/// One record of a manifest (`mode SP hash SP size SP relpath`, without its NUL).
fn parse_record(rec: &[u8]) -> Option<Entry> {
    let mut parts = rec.splitn(4, |&b| b == b' ');
    let mode = u32::from_str_radix(std::str::from_utf8(parts.next()?).ok()?, 8).ok()?;
    let hash = std::str::from_utf8(parts.next()?).ok()?;
    let size = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let rel = parts.next()?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) || rel.is_empty() {
        return None;
    }
    let (relpath, raw) = relpath_of(rel);
    Some(Entry {
        relpath,
        raw,
        mode,
        hash: hash.to_string(),
        size,
    })
}

/// The entries of a manifest written by [`manifest`]; `None` if the bytes are not one.
pub fn parse_manifest(data: &[u8]) -> Option<Vec<Entry>> {
    let Some(body) = data.strip_suffix(&[0]) else {
        return data.is_empty().then(Vec::new);
    };
    body.split(|&b| b == 0).map(parse_record).collect()
}

/// The entry for `relpath` in a manifest, found without parsing the others (a manifest of a
/// large dataset holds tens of thousands of records).
pub fn manifest_lookup(data: &[u8], relpath: &str) -> Option<Entry> {
    let mut needle = Vec::with_capacity(relpath.len() + 2);
    needle.push(b' ');
    needle.extend_from_slice(relpath.as_bytes());
    needle.push(0);
    for at in memchr::memmem::find_iter(data, &needle) {
        let end = at + needle.len() - 1;
        let start = memchr::memrchr(0, &data[..at]).map_or(0, |i| i + 1);
        // " relpath\0" can also end a longer path that contains a space: check the record
        if let Some(e) = parse_record(&data[start..end])
            && e.relpath == relpath
        {
            return Some(e);
        }
    }
    None
}

#[cfg(test)]
mod tests;

//! The content-addressed object store: `.mlrun/objects/sha256/ab/cdef…` keeps the bytes of every
//! output version a run produced and of every input that no commit can give back, so a past
//! version can be restored (and a run replayed).
//!
//! How bytes get there: a reflink (copy-on-write clone) where the filesystem supports it, else a
//! copy. Never a hardlink: mlrun usually runs as the user who owns the outputs (often root in CI),
//! for whom read-only permissions do not stop a later step from rewriting a file in place, which
//! would silently change the stored object too.
//!
//! Writes are atomic: bytes go to `objects/tmp/<id>/` (scratch space owned by this process, see
//! `store::owner`: a killed writer's partial files are removed by the next command) and are renamed to their final name only after
//! the copy has been checked (hashed on the way, or, for a file the stat cache vouches for, its
//! stat unchanged across the copy), so a crash never leaves a half-written object under its
//! final name, and a file that changed while being stored is caught. Objects are made read-only.
//! Every restore verifies the hash again, so a corrupted object is detected and never used.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::beneath;
use crate::error::{Error, Result};
use crate::fingerprint::cache::{HashCache, Stat};
use crate::fingerprint::hash::{Entry, Fingerprint, MODE_EXEC, MODE_LINK, sha256_bytes};
use crate::fingerprint::reader;
use crate::store::record::Io;

mod ahead;

pub struct Objects {
    root: PathBuf,
    /// Cleared by the first reflink the filesystem refuses (ext4, tmpfs, ...): each failed
    /// attempt creates and unlinks a file, which for a directory of 20,000 files cost more
    /// than copying them.
    try_reflink: AtomicBool,
    /// copies of large inputs made while they are hashed (see `copy_ahead`); declared before
    /// `scratch` (fields are dropped in order), so they are stopped before their scratch space
    /// is removed
    ahead: ahead::Aheads,
    /// `objects/tmp/<id>/`, created on the first write, removed when this is dropped
    scratch: std::sync::Mutex<Option<crate::store::owner::Owned>>,
}

/// A directory of files named by the hash of their content ([`Objects`], and the step logs'
/// `LogObjects`): what `fsck` needs to re-hash each one and set a corrupt one aside.
pub trait Checked: Sync {
    /// Re-hash object `hash`: `Ok(())` when it is intact.
    fn verify(&self, hash: &str) -> std::result::Result<(), Problem>;
    /// Move a corrupt object out of the way, to `objects/corrupt/` (kept for inspection).
    /// While it sits under its name, every later store of that content would take it for a
    /// good copy and not write one. True when it was moved.
    fn quarantine(&self, hash: &str) -> bool;
}

/// Re-hash the objects `hashes` of `store` (on all cores) and move each one whose bytes do not
/// match its name to `objects/corrupt/`. Returns the corrupt ones, each with whether it was
/// moved; a missing object is not corrupt (whoever expects it reports it).
pub fn quarantine_corrupt<'a>(
    store: &impl Checked,
    hashes: impl IntoParallelIterator<Item = &'a str>,
) -> Vec<(String, bool)> {
    hashes
        .into_par_iter()
        .filter_map(|hash| match store.verify(hash) {
            Err(Problem::Corrupt { .. }) => Some((hash.to_string(), store.quarantine(hash))),
            _ => None,
        })
        .collect()
}

/// Move `file` into the store's `corrupt/` directory `dir` as `name`. True when it was moved.
pub(super) fn set_aside(file: &Path, dir: &Path, name: &str) -> bool {
    std::fs::create_dir_all(dir).is_ok() && std::fs::rename(file, dir.join(name)).is_ok()
}

/// Why an object could not be used.
#[derive(Debug)]
pub enum Problem {
    Missing,
    Corrupt { actual: String },
}

impl Objects {
    pub fn new(store_dir: &Path) -> Objects {
        Objects {
            root: store_dir.join("objects"),
            try_reflink: AtomicBool::new(true),
            ahead: ahead::Aheads::default(),
            scratch: std::sync::Mutex::new(None),
        }
    }

    /// The store directory these objects belong to.
    pub fn store_dir(&self) -> &Path {
        self.root.parent().unwrap_or(Path::new("."))
    }

    pub fn path_of(&self, hash: &str) -> PathBuf {
        let (a, b) = hash.split_at(2.min(hash.len()));
        self.root.join("sha256").join(a).join(b)
    }

    pub fn has(&self, hash: &str) -> bool {
        self.path_of(hash).is_file()
    }

    fn tmp_path(&self) -> Result<PathBuf> {
        let mut scratch = self.scratch.lock().expect("scratch lock");
        if scratch.is_none() {
            let parent = self.root.join("tmp");
            let id = uuid::Uuid::new_v4().simple().to_string();
            *scratch = Some(
                crate::store::owner::Owned::create_dir(&parent, &id).map_err(|e| {
                    Error::store(format!("cannot create `{}`", parent.join(&id).display())).cause(e)
                })?,
            );
        }
        let dir = scratch.as_ref().expect("created above").path();
        Ok(dir.join(uuid::Uuid::new_v4().simple().to_string()))
    }

    /// Mark an object as just used, so a `gc` running meanwhile leaves it alone (it keeps
    /// objects modified since the oldest running run started). Best effort.
    fn touch(&self, hash: &str) {
        if let Ok(f) = File::open(self.path_of(hash)) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    /// Move a verified temporary file to its final name.
    fn commit(&self, tmp: &Path, hash: &str) -> Result<()> {
        let dest = self.path_of(hash);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::store(format!("cannot create `{}`", parent.display())).cause(e)
            })?;
        }
        let _ = std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o444));
        std::fs::rename(tmp, &dest)
            .map_err(|e| Error::store(format!("cannot store object {hash}")).cause(e))
    }

    /// A new file in this process's scratch space, for bytes that are stored once verified
    /// (`adopt_verified`).
    pub fn scratch_file(&self) -> Result<(PathBuf, File)> {
        let tmp = self.tmp_path()?;
        let f = File::create(&tmp)
            .map_err(|e| Error::store(format!("cannot write `{}`", tmp.display())).cause(e))?;
        Ok((tmp, f))
    }

    /// Store the scratch file `tmp`, whose bytes the caller hashed to `hash` while writing it.
    pub fn adopt_verified(&self, tmp: &Path, hash: &str) -> Result<()> {
        if self.has(hash) {
            let _ = std::fs::remove_file(tmp);
            self.touch(hash);
            return Ok(());
        }
        self.commit(tmp, hash)
    }

    /// Keep bytes that are already in memory.
    pub fn put_bytes(&self, data: &[u8], hash: &str) -> Result<()> {
        if self.has(hash) {
            self.touch(hash);
            return Ok(());
        }
        let tmp = self.tmp_path()?;
        std::fs::write(&tmp, data)
            .map_err(|e| Error::store("cannot write to the object store").cause(e))?;
        self.commit(&tmp, hash)
    }

    /// Keep a copy of the file at `src`, which was fingerprinted as `expected`.
    ///
    /// The copy must hold the bytes that were hashed. If `cache` vouches for the file (its stat
    /// is unchanged since it was hashed, and it had not been modified for 2 s before: the stat
    /// cache's rule) and the stat is still the same after the copy, no write happened in
    /// between, so the copy is made by the kernel (reflink, else `copy_file_range`) without
    /// reading the bytes again. Otherwise they are hashed on the way and compared.
    ///
    /// A copy started ahead of the hash (`copy_ahead`) is taken if it holds those bytes.
    pub fn put_file(&self, src: &Path, expected: &str, cache: &HashCache) -> Result<()> {
        let ahead = self.ahead.take(src);
        if self.has(expected) {
            drop(ahead); // stopped and removed
            self.touch(expected);
            return Ok(());
        }
        // the file's stat is taken once the copy has ended: a write while it ran shows there
        if let Some(a) = ahead.and_then(ahead::Ahead::wait)
            && let Ok(now) = std::fs::metadata(src)
            && cache.get(src, &now).as_deref() == Some(expected)
            && let Some(tmp) = a.take_if_unchanged(&Stat::of(&now))
        {
            let committed = self.commit(&tmp, expected);
            if committed.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            return committed;
        }
        let tmp = self.tmp_path()?;
        let result = (|| {
            let cannot = |e| Error::other(format!("cannot read `{}`", src.display())).cause(e);
            let before = std::fs::metadata(src).map_err(cannot)?;
            // a sparse file goes through `copy_hashing`, which keeps its holes
            let sparse = before.blocks() * 512 < before.len();
            let actual = if !sparse && cache.get(src, &before).as_deref() == Some(expected) {
                if !self.reflink(src, &tmp) {
                    std::fs::copy(src, &tmp).map_err(|e| {
                        Error::store(format!("cannot write `{}`", tmp.display())).cause(e)
                    })?;
                }
                let after = std::fs::metadata(src).map_err(cannot)?;
                if Stat::of(&after) == Stat::of(&before) {
                    expected.to_string()
                } else {
                    // written to meanwhile: say what the copy holds
                    hash_of(&tmp)?
                }
            } else if self.reflink(src, &tmp) {
                hash_of(&tmp)?
            } else {
                copy_hashing(src, &tmp)?
            };
            if actual != expected {
                return Err(Error::other(format!(
                    "`{}` changed while it was being stored (hashed {}, then read {})",
                    src.display(),
                    &expected[..12],
                    &actual[..12]
                )));
            }
            self.commit(&tmp, expected)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Start copying the large file `src` into scratch space while it is hashed: its hash is
    /// not known yet, and `put_file` takes the copy if it holds the bytes that were hashed (see
    /// `objects/ahead.rs`). Small, sparse or unreadable files, and a file already being copied,
    /// are left to `put_file`; so is every file where the filesystem clones (a clone is
    /// instant).
    pub fn copy_ahead(&self, src: &Path) {
        let Ok(meta) = std::fs::metadata(src) else {
            return;
        };
        if !meta.is_file()
            || meta.len() < ahead::MIN_SIZE
            || meta.blocks() * 512 < meta.len()
            || self.ahead.len() >= ahead::MAX_RUNNING
        {
            return;
        }
        self.ahead.start_unless_running(src, || {
            let tmp = self.tmp_path().ok()?;
            if self.reflink(src, &tmp) {
                // a clone is instant: nothing to overlap, and `put_file` clones again
                let _ = std::fs::remove_file(&tmp);
                return None;
            }
            ahead::Ahead::start(src, tmp)
        });
    }

    /// Stop the copy ahead of `src`, if any, and remove it: it will not be needed.
    pub fn cancel_ahead(&self, src: &Path) {
        drop(self.ahead.take(src));
    }

    /// Clone `src` to the new file `tmp` if the filesystem can; false: copy it instead.
    fn reflink(&self, src: &Path, tmp: &Path) -> bool {
        if !self.try_reflink.load(Ordering::Relaxed) {
            return false;
        }
        match reflink_copy::reflink(src, tmp) {
            Ok(()) => true,
            Err(e) => {
                if cannot_clone_here(&e) {
                    self.try_reflink.store(false, Ordering::Relaxed);
                }
                false
            }
        }
    }

    /// Keep a fingerprinted path: a file, or a directory's files (its manifest is in the
    /// lineage store).
    /// `cache` is the one the fingerprint was taken with (see `put_file`).
    pub fn put(&self, path: &Path, fp: &Fingerprint, cache: &HashCache) -> Result<()> {
        match fp {
            Fingerprint::File { hash, .. } => self.put_file(path, hash, cache),
            Fingerprint::Dir { entries, .. } => entries.par_iter().try_for_each(|e| {
                let p = path.join(e.path());
                if e.mode == MODE_LINK {
                    let target = std::fs::read_link(&p).map_err(|err| {
                        Error::other(format!("cannot read link `{}`", p.display())).cause(err)
                    })?;
                    self.put_bytes(target.as_os_str().as_bytes(), &e.hash)
                } else {
                    self.put_file(&p, &e.hash, cache)
                }
            }),
        }
    }

    /// Is every object needed to restore `fp` present?
    pub fn can_restore(&self, fp: &Fingerprint) -> bool {
        match fp {
            Fingerprint::File { hash, .. } => self.has(hash),
            Fingerprint::Dir { entries, .. } => entries.iter().all(|e| self.has(&e.hash)),
        }
    }

    /// Materialise `fp` at `rel` beneath `root` (the project, or replay's scratch tree),
    /// replacing what is there. Every byte is verified against its hash first; on any problem
    /// the destination is left as it was.
    ///
    /// Nothing is written outside `root`: the path, and every name of a directory's manifest,
    /// is resolved by `beneath` (a symlinked parent leading out is refused, as are `..` and
    /// absolute names), and every write is made relative to an open directory.
    pub fn restore(&self, fp: &Fingerprint, root: &Path, rel: &str) -> Result<()> {
        let (parent, name) = beneath::parent_or_error(root, Path::new(rel), true)?;
        let dest = parent.shown(&name);
        let staging = OsString::from(format!(
            ".{}.mlrun-restore-{}",
            name.to_string_lossy(),
            uuid::Uuid::new_v4().simple()
        ));
        let result = match fp {
            Fingerprint::File { hash, mode, .. } => self.copy_out(hash, *mode, &parent, &staging),
            Fingerprint::Dir { entries, .. } => (|| {
                parent.mkdir(&staging).map_err(|e| {
                    Error::other(format!(
                        "cannot create `{}`",
                        parent.shown(&staging).display()
                    ))
                    .cause(e)
                })?;
                let top = parent.open_dir(&staging).map_err(|e| {
                    Error::other(format!(
                        "cannot open `{}`",
                        parent.shown(&staging).display()
                    ))
                    .cause(e)
                })?;
                entries
                    .par_iter()
                    .try_for_each(|e| self.restore_entry(e, &top, rel))
            })(),
        };
        if let Err(e) = result {
            parent.remove_all(&staging);
            return Err(e);
        }
        // Swap into place: the old content is moved aside first so a failure can put it back.
        let aside = OsString::from(format!(
            ".{}.mlrun-old-{}",
            name.to_string_lossy(),
            uuid::Uuid::new_v4().simple()
        ));
        let cannot_replace = |e: std::io::Error| {
            Error::other(format!("cannot replace `{}`", dest.display())).cause(e)
        };
        let had_old = parent.lstat(&name).map_err(cannot_replace)?.is_some();
        if had_old {
            parent.rename(&name, &aside).map_err(cannot_replace)?;
        }
        if let Err(e) = parent.rename(&staging, &name) {
            if had_old {
                let _ = parent.rename(&aside, &name);
            }
            parent.remove_all(&staging);
            return Err(cannot_replace(e));
        }
        if had_old {
            parent.remove_all(&aside);
        }
        Ok(())
    }

    /// Restore a recorded input or output at its path beneath `root`: its content, or, for a
    /// path that was a symbolic link, the link (and the content where it leads, if that is not
    /// there already).
    pub fn restore_io(&self, io: &Io, root: &Path) -> Result<()> {
        match &io.link {
            None => self.restore(&io.fp, root, &io.path),
            Some(target) => self.restore_link(&io.fp, root, &io.path, OsStr::from_bytes(target)),
        }
    }

    /// Make `rel` the link to `target` again, with `fp` at the place it leads to. The target is
    /// resolved beneath `root` like any path restored: a link leading out of the project is
    /// not restored.
    fn restore_link(&self, fp: &Fingerprint, root: &Path, rel: &str, target: &OsStr) -> Result<()> {
        let target_path = Path::new(target);
        let refused = || {
            Error::other(format!(
                "`{rel}` was a link to `{}`, outside the project; it is not restored",
                target_path.display()
            ))
        };
        // where it leads, relative to the root
        let real_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let led_to = if target_path.is_absolute() {
            target_path
                .strip_prefix(&real_root)
                .or_else(|_| target_path.strip_prefix(root))
                .map_err(|_| refused())?
                .to_path_buf()
        } else {
            Path::new(rel)
                .parent()
                .unwrap_or(Path::new(""))
                .join(target_path)
        };
        let led_to = led_to.to_str().ok_or_else(refused)?.to_string();
        if beneath::stays_beneath(root, Path::new(&led_to)).is_err() {
            return Err(refused());
        }
        let here =
            crate::fingerprint::hash::fingerprint(&root.join(&led_to), &HashCache::disabled()).ok();
        if here.as_ref().map(Fingerprint::hash) != Some(fp.hash()) {
            self.restore(fp, root, &led_to)?;
        }
        // the link itself, swapped into place
        let (parent, name) = beneath::parent_or_error(root, Path::new(rel), true)?;
        let dest = parent.shown(&name);
        let staging = OsString::from(format!(
            ".{}.mlrun-restore-{}",
            name.to_string_lossy(),
            uuid::Uuid::new_v4().simple()
        ));
        parent.symlink(target, &staging).map_err(|e| {
            Error::other(format!("cannot create link `{}`", dest.display())).cause(e)
        })?;
        let is_dir = parent.lstat(&name).ok().flatten().is_some_and(|st| {
            nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT
                == nix::sys::stat::SFlag::S_IFDIR
        });
        if is_dir {
            // a directory cannot be renamed over: move it aside first
            let aside = OsString::from(format!(
                ".{}.mlrun-old-{}",
                name.to_string_lossy(),
                uuid::Uuid::new_v4().simple()
            ));
            if let Err(e) = parent.rename(&name, &aside) {
                parent.remove_file(&staging);
                return Err(Error::other(format!("cannot replace `{}`", dest.display())).cause(e));
            }
            parent.remove_all(&aside);
        }
        parent.rename(&staging, &name).map_err(|e| {
            parent.remove_file(&staging);
            Error::other(format!("cannot replace `{}`", dest.display())).cause(e)
        })
    }

    /// One file or link of a directory being restored into `top` (its staging directory).
    fn restore_entry(&self, e: &Entry, top: &beneath::Dir, dir: &str) -> Result<()> {
        let relpath = e.path();
        if let Err(why) = beneath::check_relative(relpath) {
            return Err(Error::other(format!(
                "the manifest of `{dir}` lists `{}`, which {why}; it was not restored",
                relpath.display()
            ))
            .hint("the store has been edited or damaged; `mlrun fsck` checks every manifest"));
        }
        let (d, n) = beneath::parent_in_dir(top, relpath, true).map_err(|p| {
            Error::other(format!(
                "cannot restore `{dir}/{}`: {}",
                relpath.display(),
                p.describe()
            ))
        })?;
        if e.mode == MODE_LINK {
            let link = std::fs::read(self.path_of(&e.hash)).map_err(|err| {
                Error::other(format!("object {} is missing", &e.hash[..12])).cause(err)
            })?;
            if sha256_bytes(&link) != e.hash {
                return Err(Error::other(format!(
                    "object {} is corrupt; the link `{dir}/{}` was not restored",
                    &e.hash[..12],
                    relpath.display()
                ))
                .hint("`mlrun fsck` checks every stored object"));
            }
            d.symlink(OsStr::from_bytes(&link), &n).map_err(|err| {
                Error::other(format!("cannot create link `{}`", d.shown(&n).display())).cause(err)
            })
        } else {
            self.copy_out(&e.hash, e.mode, &d, &n)
        }
    }

    /// Write object `hash` to the new file `name` in `dir`, verifying its hash on the way; or
    /// the bytes this process verified as they arrived (`store::verified`), as they were.
    fn copy_out(&self, hash: &str, mode: u32, dir: &beneath::Dir, name: &OsStr) -> Result<()> {
        let src = self.path_of(hash);
        let dest = dir.shown(name);
        let mut file = dir
            .create_file(name)
            .map_err(|e| Error::other(format!("cannot create `{}`", dest.display())).cause(e))?;
        let copied = match crate::store::verified::take(hash) {
            Some(bytes) => file
                .write_all((*bytes).as_ref())
                .map(|()| hash.to_string())
                .map_err(|e| Error::store(format!("cannot write `{}`", dest.display())).cause(e)),
            None => copy_hashing_to(&src, &mut file, &dest),
        };
        let copied = copied.map_err(|e| {
            Error::other(format!(
                "object {} cannot be read",
                &hash[..12.min(hash.len())]
            ))
            .cause(e.message)
        });
        let actual = match copied {
            Ok(a) => a,
            Err(e) => {
                dir.remove_file(name);
                return Err(e);
            }
        };
        if actual != hash {
            drop(file);
            dir.remove_file(name);
            let moved = self.quarantine(hash);
            return Err(Error::other(format!(
                "object {} is corrupt (its bytes hash to {}); it was not used{}",
                &hash[..12],
                &actual[..12],
                if moved {
                    " and was moved to objects/corrupt/, so the next run that produces it stores it again"
                } else {
                    ""
                }
            ))
            .hint("`mlrun fsck` checks every stored object"));
        }
        let perm = if mode == MODE_EXEC { 0o755 } else { 0o644 };
        file.set_permissions(std::fs::Permissions::from_mode(perm))
            .map_err(|e| {
                Error::other(format!("cannot set permissions on `{}`", dest.display())).cause(e)
            })
    }

    /// Every object file: (hash, path, size, modified).
    pub fn list(&self) -> Vec<(String, PathBuf, u64, std::time::SystemTime)> {
        let mut out = Vec::new();
        let Ok(fans) = std::fs::read_dir(self.root.join("sha256")) else {
            return out;
        };
        for fan in fans.flatten() {
            let prefix = fan.file_name().to_string_lossy().into_owned();
            let Ok(files) = std::fs::read_dir(fan.path()) else {
                continue;
            };
            for f in files.flatten() {
                if let Ok(meta) = f.metadata() {
                    let hash = format!("{prefix}{}", f.file_name().to_string_lossy());
                    out.push((
                        hash,
                        f.path(),
                        meta.len(),
                        meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    ));
                }
            }
        }
        out
    }

    pub fn remove(&self, hash: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.path_of(hash))
    }
}

/// The filesystem (not this one file) cannot clone: no point trying again for the next file.
impl Checked for Objects {
    fn verify(&self, hash: &str) -> std::result::Result<(), Problem> {
        let p = self.path_of(hash);
        if !p.is_file() {
            return Err(Problem::Missing);
        }
        match hash_of(&p) {
            Ok(actual) if actual == hash => Ok(()),
            Ok(actual) => Err(Problem::Corrupt { actual }),
            Err(_) => Err(Problem::Missing),
        }
    }

    fn quarantine(&self, hash: &str) -> bool {
        set_aside(&self.path_of(hash), &self.root.join("corrupt"), hash)
    }
}

/// EXDEV is left out: it depends on where the source lives, which differs between files.
fn cannot_clone_here(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(c) if c == Errno::ENOTTY as i32 || c == Errno::EINVAL as i32 || c == Errno::EOPNOTSUPP as i32)
}

fn hash_of(p: &Path) -> Result<String> {
    reader::hash_path(p).map(|(h, _)| h)
}

/// Copy `src` to a new file `dest`, hashing the bytes on the way. Returns the hash.
///
/// Chunks that are all zeros are skipped over rather than written, so a sparse file (a
/// preallocated dataset, `truncate -s 6G`) stays sparse in the store and when restored.
fn copy_hashing(src: &Path, dest: &Path) -> Result<String> {
    let mut output = File::create(dest)
        .map_err(|e| Error::store(format!("cannot write `{}`", dest.display())).cause(e))?;
    copy_hashing_to(src, &mut output, dest)
}

/// As [`copy_hashing`], into the open new file `output` (named `dest` in messages).
fn copy_hashing_to(src: &Path, output: &mut File, dest: &Path) -> Result<String> {
    use std::io::{Seek, SeekFrom};
    let mut input = File::open(src)
        .map_err(|e| Error::other(format!("cannot read `{}`", src.display())).cause(e))?;
    let cannot_write = |e| Error::store(format!("cannot write `{}`", dest.display())).cause(e);
    let (hash, total) = reader::hash_stream(&mut input, src, |chunk| {
        if chunk.iter().all(|&b| b == 0) {
            output
                .seek(SeekFrom::Current(chunk.len() as i64))
                .map_err(cannot_write)?;
        } else {
            output.write_all(chunk).map_err(cannot_write)?;
        }
        Ok(())
    })?;
    // a trailing run of zeros was only skipped over: give the file its length
    output.set_len(total).map_err(cannot_write)?;
    output.flush().map_err(cannot_write)?;
    Ok(hash)
}

#[cfg(test)]
mod tests;

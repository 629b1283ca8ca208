//! One run of a pipeline at a time: two runs in the same directory would overwrite each other's
//! outputs. The lock is an OS file lock (released by the kernel when the process dies, so a killed
//! mlrun never leaves a stale lock) on `.mlrun/locks/<pipeline>.lock`; the holder writes its run
//! id and pid into the file so the next one can say which run it is waiting for.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Kind, Result};
use crate::fingerprint::hash::sha256_bytes;

pub struct PipelineLock {
    file: File,
}

impl PipelineLock {
    /// Take the lock for `pipeline_file`, waiting for the holder when `wait` is set; `waiting`
    /// is called once with a description of the holder before blocking.
    pub fn acquire(
        store_dir: &Path,
        pipeline_file: &Path,
        wait: bool,
        waiting: impl FnOnce(&str),
    ) -> Result<PipelineLock> {
        let dir = store_dir.join("locks");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::store(format!("cannot create `{}`", dir.display())).cause(e))?;
        let name = sha256_bytes(pipeline_file.as_os_str().as_encoded_bytes());
        let path = dir.join(format!("{}.lock", &name[..16]));
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                Error::store(format!("cannot open the lock `{}`", path.display())).cause(e)
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let (who, what) = if holder.is_empty() {
                    (
                        "another mlrun".to_string(),
                        "being run by another mlrun".to_string(),
                    )
                } else {
                    (holder.to_string(), format!("running as {holder}"))
                };
                if !wait {
                    return Err(Error::new(
                        Kind::Locked,
                        format!("`{}` is already {what}", pipeline_file.display()),
                    )
                    .hint("two runs in one directory would overwrite each other's outputs; wait for it, or pass --wait-lock"));
                }
                waiting(&who);
                file.lock().map_err(|e| {
                    Error::store(format!("cannot lock `{}`", path.display())).cause(e)
                })?;
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::store(format!("cannot lock `{}`", path.display())).cause(e));
            }
        }
        Ok(PipelineLock { file })
    }

    /// Say who holds the lock (shown to a second mlrun).
    pub fn describe(&mut self, text: &str) {
        let _ = self.file.set_len(0);
        let _ = self.file.rewind();
        let _ = self.file.write_all(text.as_bytes());
        let _ = self.file.flush();
    }
}

/// Storing and `gc` exclude each other: a run holds this store-wide lock *shared* while it puts
/// objects and until the record that references them is committed (or while it decides to reuse
/// an earlier execution, until that record is committed); `gc` holds it *exclusive* while it
/// decides what to delete, updates the database and deletes. These windows are short (copying a
/// step's files, one transaction), so gc never waits for a run to end, only for its storing.
///
/// Objects a run put before a gc starts but records only when its step ends (the inputs it kept
/// before running a step) are protected differently: storing or finding an object sets its
/// modification time, and gc keeps every object modified since the oldest running run started.
///
/// A `gc` waiting for the lock must not be starved by runs taking it shared one after the other,
/// so a second lock, the turnstile, is taken exclusively by gc for its whole work and briefly by a
/// run before it takes the shared lock. Within one process the shared lock is taken once and
/// counted (`ObjectsHold` clones), so a run never waits for itself. Both are OS file locks in
/// `locks/`: a killed process never leaves them held.
#[derive(Clone)]
pub struct ObjectsHold {
    _file: std::sync::Arc<File>,
}

fn lock_file(store_dir: &Path, name: &str) -> Result<File> {
    let dir = store_dir.join("locks");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::store(format!("cannot create `{}`", dir.display())).cause(e))?;
    let path = dir.join(name);
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::store(format!("cannot open the lock `{}`", path.display())).cause(e))
}

type Held = std::sync::Mutex<Vec<(std::path::PathBuf, std::sync::Weak<File>)>>;

fn held() -> &'static Held {
    static HELD: std::sync::OnceLock<Held> = std::sync::OnceLock::new();
    HELD.get_or_init(Default::default)
}

impl ObjectsHold {
    /// Take the store's objects lock shared (blocking while a gc works; `waiting` is called
    /// first then). Blocking: call it off the async runtime's worker threads.
    pub fn take(store_dir: &Path, waiting: impl FnOnce()) -> Result<ObjectsHold> {
        let key = store_dir.to_path_buf();
        let mut held = held().lock().expect("held locks");
        held.retain(|(_, w)| w.strong_count() > 0);
        if let Some(file) = held
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(ObjectsHold { _file: file });
        }
        let cannot = |e| Error::store("cannot lock the object store").cause(e);
        let turnstile = lock_file(store_dir, "objects.turnstile")?;
        match turnstile.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                waiting();
                turnstile.lock().map_err(cannot)?;
            }
            Err(TryLockError::Error(e)) => return Err(cannot(e)),
        }
        let file = lock_file(store_dir, "objects.lock")?;
        file.lock_shared()
            .map_err(|e| Error::store("cannot lock the object store").cause(e))?;
        drop(turnstile);
        let file = std::sync::Arc::new(file);
        held.push((key, std::sync::Arc::downgrade(&file)));
        Ok(ObjectsHold { _file: file })
    }
}

/// `gc`'s exclusive hold of the objects lock (see `ObjectsHold`).
pub struct ObjectsExclusive {
    _turnstile: File,
    _file: File,
}

impl ObjectsExclusive {
    /// `waiting` is called with what is waited for, once before blocking on it.
    pub fn take(store_dir: &Path, mut waiting: impl FnMut(&str)) -> Result<ObjectsExclusive> {
        let cannot = |e| Error::store("cannot lock the object store").cause(e);
        let turnstile = lock_file(store_dir, "objects.turnstile")?;
        match turnstile.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                waiting("another mlrun gc");
                turnstile.lock().map_err(cannot)?;
            }
            Err(TryLockError::Error(e)) => return Err(cannot(e)),
        }
        let file = lock_file(store_dir, "objects.lock")?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                waiting("runs storing their files in the object store");
                file.lock().map_err(cannot)?;
            }
            Err(TryLockError::Error(e)) => return Err(cannot(e)),
        }
        Ok(ObjectsExclusive {
            _turnstile: turnstile,
            _file: file,
        })
    }
}

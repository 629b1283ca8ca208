//! Copies of large input files started before their hash is known (`Objects::copy_ahead`).
//!
//! An input that no step or commit can give back is kept in the object store once it is hashed
//! (`exec::input_copy`), the copy overlapping the step. On a filesystem without reflinks, though,
//! copying a large file takes longer than hashing it (2 GiB here: ~1.7 s hashing, ~3.4 s
//! copying), and a first run paid for the two one after the other. So a large input the stat
//! cache cannot vouch for (it is about to be hashed) is also copied, on a thread of its own, into
//! the object store's scratch space while it is hashed. `put_file` takes the copy once the hash
//! is known, and only if it holds the bytes that were hashed: the file's stat is the same from
//! before the copy started until the copy is taken, the file had not been modified for the stat
//! cache's 2 s before the copy started (the cache's own rule: a write within the same clock tick
//! would not show in the stat), and the cache vouches for the hash at that stat. Otherwise, or
//! when the store already has the object, or the step is reused, the copy is stopped and removed
//! and the usual path runs.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::fingerprint::cache::{RACY_NS, Stat, now_ns};

/// Smaller inputs are copied after their hash, as before: a thread is not worth it for them.
pub(super) const MIN_SIZE: u64 = 64 << 20;
/// The copy checks whether it was cancelled after each chunk (copied by the kernel).
const CHUNK: u64 = 16 << 20;

/// One copy ahead of its hash.
pub(super) struct Ahead {
    tmp: PathBuf,
    /// the file's stat before its bytes were read, from the open file
    before: Stat,
    started_ns: i64,
    cancel: Arc<AtomicBool>,
    /// None once joined
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Ahead {
    /// Start copying `src` to the new file `tmp`, on a thread. None when `src` cannot be opened.
    pub(super) fn start(src: &Path, tmp: PathBuf) -> Option<Ahead> {
        let started_ns = now_ns();
        let from = File::open(src).ok()?;
        let before = Stat::of(&from.metadata().ok()?);
        let cancel = Arc::new(AtomicBool::new(false));
        let thread = {
            let (tmp, cancel) = (tmp.clone(), cancel.clone());
            Some(std::thread::spawn(move || copy(from, &tmp, &cancel)))
        };
        Some(Ahead {
            tmp,
            before,
            started_ns,
            cancel,
            thread,
        })
    }

    /// Wait for the copy; its path when it is complete and holds the bytes of a file whose stat
    /// is `now`: unchanged since before the copy started, and not modified for 2 s before that.
    /// The copy is removed otherwise.
    pub(super) fn finish(mut self, now: &Stat) -> Option<PathBuf> {
        let copied = self
            .thread
            .take()
            .is_none_or(|t| matches!(t.join(), Ok(Ok(()))));
        let unchanged = *now == self.before && self.before.mtime_ns + RACY_NS < self.started_ns;
        if copied && unchanged {
            Some(std::mem::take(&mut self.tmp))
        } else {
            None // dropped: removed
        }
    }
}

impl Drop for Ahead {
    /// Not taken: stop the copy and remove what it wrote.
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn copy(mut from: File, tmp: &Path, cancel: &AtomicBool) -> std::io::Result<()> {
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)?;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("cancelled"));
        }
        // `io::copy` between files is `copy_file_range`: the kernel copies, as `fs::copy` does
        if std::io::copy(&mut (&mut from).take(CHUNK), &mut to)? == 0 {
            return Ok(());
        }
    }
}

/// The copies running ahead, by source path.
#[derive(Default)]
pub(super) struct Aheads(Mutex<HashMap<PathBuf, Ahead>>);

impl Aheads {
    pub(super) fn contains(&self, src: &Path) -> bool {
        self.0.lock().expect("ahead lock").contains_key(src)
    }

    pub(super) fn insert(&self, src: &Path, ahead: Ahead) {
        self.0
            .lock()
            .expect("ahead lock")
            .insert(src.to_path_buf(), ahead);
    }

    pub(super) fn take(&self, src: &Path) -> Option<Ahead> {
        self.0.lock().expect("ahead lock").remove(src)
    }
}

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
/// At most this many copies run ahead at once (each is a thread writing as fast as the disk
/// takes it); other large inputs are copied after their hash, as before.
pub(super) const MAX_RUNNING: usize = 2;
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
    /// Start copying `src` to the new file `tmp`, on a thread. None when `src` cannot be opened
    /// or no thread can be started.
    pub(super) fn start(src: &Path, tmp: PathBuf) -> Option<Ahead> {
        let started_ns = now_ns();
        let from = File::open(src).ok()?;
        let before = Stat::of(&from.metadata().ok()?);
        let cancel = Arc::new(AtomicBool::new(false));
        let thread = {
            let (tmp, cancel) = (tmp.clone(), cancel.clone());
            std::thread::Builder::new()
                .name("mlrun-copy-ahead".into())
                .spawn(move || copy(from, &tmp, &cancel))
                .ok()?
        };
        Some(Ahead {
            tmp,
            before,
            started_ns,
            cancel,
            thread: Some(thread),
        })
    }

    /// Wait for the copy to end. None (and the copy removed) when it failed.
    pub(super) fn wait(mut self) -> Option<Ahead> {
        let copied = self
            .thread
            .take()
            .is_none_or(|t| matches!(t.join(), Ok(Ok(()))));
        copied.then_some(self)
    }

    /// The complete copy's path, if the file's stat now (taken after the copy ended: see
    /// `wait`) is `now` and shows no write since before the copy started nor in the 2 s before
    /// that; then the copy holds the bytes the file has had all along. Else None, and the copy
    /// is removed.
    pub(super) fn take_if_unchanged(mut self, now: &Stat) -> Option<PathBuf> {
        let unchanged = self.thread.is_none()
            && *now == self.before
            && self.before.mtime_ns + RACY_NS < self.started_ns;
        unchanged.then(|| std::mem::take(&mut self.tmp))
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
    /// How many copies are running.
    pub(super) fn len(&self) -> usize {
        self.0.lock().expect("ahead lock").len()
    }

    /// Start a copy of `src` with `start` unless one is running (one lock held for both).
    pub(super) fn start_unless_running(&self, src: &Path, start: impl FnOnce() -> Option<Ahead>) {
        let mut running = self.0.lock().expect("ahead lock");
        if !running.contains_key(src)
            && let Some(a) = start()
        {
            running.insert(src.to_path_buf(), a);
        }
    }

    pub(super) fn take(&self, src: &Path) -> Option<Ahead> {
        self.0.lock().expect("ahead lock").remove(src)
    }
}

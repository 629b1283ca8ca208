//! One run of a pipeline at a time: two runs in the same directory would overwrite each other's
//! outputs. The lock is an OS file lock (released by the kernel when the process dies, so a killed
//! mlrun never leaves a stale lock) on `.mlrun/locks/<pipeline>.lock`; the holder writes its pid
//! and run id into the file so the next one can say who it is waiting for.

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
                let who = if holder.is_empty() {
                    "another mlrun".to_string()
                } else {
                    holder.to_string()
                };
                if !wait {
                    return Err(Error::new(
                        Kind::Locked,
                        format!("`{}` is already being run by {who}", pipeline_file.display()),
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

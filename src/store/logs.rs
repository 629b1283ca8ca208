//! Full step logs in the object store: `.mlrun/objects/logs/ab/cdef….zst` holds the log whose
//! SHA-256 is `abcdef…`, zstd-compressed (`zstd -dc FILE` reads one without mlrun). The
//! database keeps each log's first and last bytes (what `mlrun show --logs` prints) and, when
//! the log was longer than those, the hash naming its object here (`step_logs.full_hash`).
//!
//! Logs live apart from `objects/sha256/`, whose files are the bytes of their hash: a
//! compressed file there would fail its own check, and an output with the same content as a
//! log would restore as compressed bytes. A log file is written while the step runs (in the
//! run's scratch space, see `exec::capture`) and moved here when it ends; like every object
//! it is read-only, and reading it back checks its hash.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::objects::{Checked, Problem, set_aside};
use crate::error::{Error, Result};

pub struct LogObjects {
    root: PathBuf,
}

const SUFFIX: &str = ".zst";

impl LogObjects {
    pub fn new(store_dir: &Path) -> LogObjects {
        LogObjects {
            root: store_dir.join("objects").join("logs"),
        }
    }

    pub fn path_of(&self, hash: &str) -> PathBuf {
        let (a, b) = hash.split_at(2.min(hash.len()));
        self.root.join(a).join(format!("{b}{SUFFIX}"))
    }

    pub fn has(&self, hash: &str) -> bool {
        self.path_of(hash).is_file()
    }

    /// Keep the compressed log `file` (on the store's filesystem) as the object of `hash`: it
    /// is moved into place. When that log is already kept, `file` is removed and the kept one
    /// gets a fresh modification time, so a `gc` running now sees it as in use (it leaves
    /// objects newer than the oldest running run alone).
    pub fn adopt(&self, file: &Path, hash: &str) -> Result<()> {
        let dest = self.path_of(hash);
        if dest.is_file() {
            let _ = std::fs::remove_file(file);
            let _ = File::open(&dest).and_then(|f| f.set_modified(SystemTime::now()));
            return Ok(());
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::store(format!("cannot create `{}`", parent.display())).cause(e)
            })?;
        }
        let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o444));
        std::fs::rename(file, &dest)
            .map_err(|e| Error::store(format!("cannot store log object {hash}")).cause(e))
    }

    /// The log's bytes, decompressed as they are read. The reader fails at the end (an
    /// `InvalidData` error) if they do not hash to `hash`, so nothing corrupt passes silently.
    pub fn open(&self, hash: &str) -> Result<impl Read + use<>> {
        let path = self.path_of(hash);
        let file = File::open(&path).map_err(|e| {
            Error::other(format!(
                "the full log (object sha256:{hash}) is not in the store"
            ))
            .cause(e)
        })?;
        let decoder = zstd::stream::read::Decoder::new(file)
            .map_err(|e| Error::other(format!("cannot read log object {hash}")).cause(e))?;
        Ok(Verified {
            inner: BufReader::with_capacity(256 * 1024, decoder),
            hasher: Sha256::new(),
            expected: hash.to_string(),
            checked: false,
        })
    }

    /// Every log object: (hash, path, size on disk, modified).
    pub fn list(&self) -> Vec<(String, PathBuf, u64, SystemTime)> {
        let mut out = Vec::new();
        let Ok(fans) = std::fs::read_dir(&self.root) else {
            return out;
        };
        for fan in fans.flatten() {
            let prefix = fan.file_name().to_string_lossy().into_owned();
            let Ok(files) = std::fs::read_dir(fan.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_suffix(SUFFIX) else {
                    continue;
                };
                if let Ok(meta) = f.metadata() {
                    out.push((
                        format!("{prefix}{rest}"),
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

impl Checked for LogObjects {
    /// Decompress and re-hash the log: `Ok(())` when it is intact.
    fn verify(&self, hash: &str) -> std::result::Result<(), Problem> {
        let Ok(mut r) = self.open(hash) else {
            return Err(Problem::Missing);
        };
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Problem::Corrupt {
                        actual: e.to_string(),
                    });
                }
            }
        }
    }

    /// Kept as `objects/corrupt/<hash>.log.zst`, so the next step printing that log stores a
    /// good copy.
    fn quarantine(&self, hash: &str) -> bool {
        let dir = self.root.with_file_name("corrupt");
        set_aside(&self.path_of(hash), &dir, &format!("{hash}.log{SUFFIX}"))
    }
}

/// What `mlrun gc` did (or, dry, would do) to the log objects.
#[derive(Debug, Default)]
pub struct Collected {
    pub deleted: usize,
    pub bytes: u64,
}

impl LogObjects {
    /// `mlrun gc` for logs: delete the log objects no kept run references (`keep_last`: the N
    /// most recent runs and the running ones; `None`: every run), except those modified after
    /// `guard` (a run in progress may be storing them). The logs are marked not stored before
    /// their objects are deleted, so a gc killed midway never leaves the database claiming a
    /// log it deleted. The database keeps each log's head, tail and hash.
    pub(super) fn collect_garbage(
        &self,
        conn: &Connection,
        keep_last: Option<crate::store::marks::KeepLast>,
        guard: Option<SystemTime>,
        dry_run: bool,
    ) -> Result<Collected> {
        let kept = crate::store::marks::kept_runs_sql(keep_last);
        let mut stmt = conn.prepare(&format!(
            "WITH kept(id) AS ({kept})
             SELECT DISTINCT l.full_hash FROM step_logs l JOIN step_execs s ON s.id = l.step_exec
             JOIN kept k ON k.id = s.run_id WHERE l.full_hash IS NOT NULL"
        ))?;
        let referenced: HashSet<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        let mut out = Collected::default();
        let doomed: Vec<(String, u64)> = self
            .list()
            .into_iter()
            .filter(|(hash, _, _, modified)| {
                !referenced.contains(hash) && guard.is_none_or(|g| *modified < g)
            })
            .map(|(hash, _, size, _)| (hash, size))
            .collect();
        if dry_run {
            out.deleted = doomed.len();
            out.bytes = doomed.iter().map(|d| d.1).sum();
            return Ok(out);
        }
        let tx = conn.unchecked_transaction()?;
        for (hash, _) in &doomed {
            tx.execute(
                "UPDATE step_logs SET stored = 0 WHERE full_hash = ?1 AND stored = 1",
                [hash],
            )?;
        }
        tx.commit()?;
        for (hash, size) in doomed {
            if self.remove(&hash).is_ok() {
                out.deleted += 1;
                out.bytes += size;
            }
        }
        Ok(out)
    }

    /// The logs the database says are stored: (hash, "RUN:STEP stream" of one log that has it).
    pub(super) fn expected(conn: &Connection) -> Result<Vec<(String, String)>> {
        let mut stmt = conn.prepare(
            "SELECT l.full_hash, min(substr(s.run_id, 1, 10) || ':' || s.step || ' ' || l.stream)
             FROM step_logs l JOIN step_execs s ON s.id = l.step_exec
             WHERE l.full_hash IS NOT NULL AND l.stored = 1 GROUP BY l.full_hash ORDER BY l.full_hash",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

/// Hashes what passes through; at the end, an error unless it was the expected content.
struct Verified<R> {
    inner: R,
    hasher: Sha256,
    expected: String,
    checked: bool,
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            let actual = crate::fingerprint::hash::hex(&self.hasher.finalize_reset());
            if actual != self.expected {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "log object {} is corrupt: its content hashes to {}",
                        &self.expected[..12.min(self.expected.len())],
                        &actual[..12]
                    ),
                ));
            }
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn compressed(dir: &Path, data: &[u8]) -> PathBuf {
        let p = dir.join("log.tmp");
        let mut e = zstd::stream::write::Encoder::new(File::create(&p).unwrap(), 3).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap();
        p
    }

    #[test]
    fn a_kept_log_reads_back_and_a_damaged_one_is_caught() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = LogObjects::new(tmp.path());
        let data = b"line 1\nline 2\n".repeat(1000);
        let hash = crate::fingerprint::hash::sha256_bytes(&data);
        logs.adopt(&compressed(tmp.path(), &data), &hash).unwrap();
        assert!(logs.has(&hash));
        assert_eq!(logs.list().len(), 1);
        assert_eq!(logs.list()[0].0, hash);
        let mut back = Vec::new();
        logs.open(&hash).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert!(logs.verify(&hash).is_ok());

        // the same log again: nothing new is written, the temporary file is gone
        let again = compressed(tmp.path(), &data);
        logs.adopt(&again, &hash).unwrap();
        assert!(!again.exists());

        // other content under that name: reading it fails at the end, verify says corrupt
        let p = logs.path_of(&hash);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(compressed(tmp.path(), b"something else\n"), &p).unwrap();
        let mut back = Vec::new();
        let err = logs
            .open(&hash)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(matches!(logs.verify(&hash), Err(Problem::Corrupt { .. })));
        assert!(logs.quarantine(&hash));
        assert!(!logs.has(&hash));
        assert!(matches!(logs.verify(&hash), Err(Problem::Missing)));
    }
}

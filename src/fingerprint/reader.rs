//! The one loop that reads a file to hash it: fingerprints (`hash`) and the object store
//! (`store::objects`, which also copies what it reads) both stream files through it.
//!
//! Reads are [`CHUNK`] bytes into a buffer reused by each thread. The size is chosen for the
//! CPU cache, not for fewer system calls: `read(2)` copies out of the page cache into the
//! buffer, and SHA-256 then reads the buffer again. With 1 MiB reads the buffer no longer stayed
//! in the core's cache between the two, the kernel's copy (`_copy_to_iter`) took ~20% of the
//! samples hashing a large file, and the process used more CPU than `openssl dgst` (which reads
//! 8 KiB at a time); 32–128 KiB reads took 9% less CPU than 1 MiB ones (see BENCHMARKS.md).

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Bytes per `read(2)`.
pub(crate) const CHUNK: usize = 128 << 10;

/// Bytes read from files to hash or store them, by this process so far: what progress lines
/// report while a long fingerprint runs.
static BYTES_READ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn bytes_read() -> u64 {
    BYTES_READ.load(std::sync::atomic::Ordering::Relaxed)
}

thread_local! {
    /// One read buffer per thread, reused for every file: allocating (and zeroing) a fresh
    /// buffer per file cost more than hashing a 10 KiB file (see BENCHMARKS.md).
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Stream the open `file` (named `path` in errors) through SHA-256 from where it stands to its
/// end, handing each chunk to `sink` after hashing it (`sink` must not call this again on the
/// same thread: the buffer is the thread's one). Returns the hex digest and the bytes read.
pub(crate) fn hash_stream(
    file: &mut File,
    path: &Path,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    READ_BUF.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < CHUNK {
            buf.resize(CHUNK, 0);
        }
        let buf = &mut buf[..CHUNK];
        loop {
            let n = match file.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::other(format!("cannot read `{}`", path.display())).cause(e));
                }
            };
            if total == 0 && n == CHUNK {
                // Larger than one chunk: ask for a wider readahead window when the file is not
                // in the page cache (one call per large file, none for small ones).
                let _ = nix::fcntl::posix_fadvise(
                    &*file,
                    0,
                    0,
                    nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
                );
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            BYTES_READ.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            sink(&buf[..n])?;
        }
        Ok(())
    })?;
    Ok((hex::encode(hasher.finalize()), total))
}

/// The SHA-256 of the file at `path` and its length.
pub fn hash_path(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path)
        .map_err(|e| Error::other(format!("cannot read `{}`", path.display())).cause(e))?;
    hash_stream(&mut f, path, |_| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_buffer_carries_nothing_between_files_and_sinks_see_every_byte() {
        let d = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..3 * CHUNK + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(d.path().join("big"), &big).unwrap();
        std::fs::write(d.path().join("small"), b"abc").unwrap();
        let mut seen = Vec::new();
        let mut f = File::open(d.path().join("big")).unwrap();
        let got = hash_stream(&mut f, Path::new("big"), |c| {
            seen.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, (hex::encode(Sha256::digest(&big)), big.len() as u64));
        assert_eq!(seen, big);
        // a file longer than the buffer, then a short one on the same thread
        assert_eq!(
            hash_path(&d.path().join("small")).unwrap(),
            (hex::encode(Sha256::digest(b"abc")), 3)
        );
    }

    #[test]
    fn a_sink_error_stops_the_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), vec![1u8; 2 * CHUNK]).unwrap();
        let mut f = File::open(d.path().join("f")).unwrap();
        let mut calls = 0;
        let err = hash_stream(&mut f, Path::new("f"), |_| {
            calls += 1;
            Err(Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(err.message.contains("disk full"), "{err}");
    }
}

//! Helpers shared by the criterion benches: where generated data lives, and deterministic data.
//!
//! Generated inputs go under `target/bench-data/` (or `$CARGO_TARGET_DIR/bench-data/`), never
//! into the source tree. Sizes can be changed with environment variables, so a quick run on a
//! small machine stays short: see BENCHMARKS.md.

#![allow(dead_code)] // each bench binary uses a different subset

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// `target/bench-data`, created if needed.
pub fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    dir
}

/// A numeric knob from the environment, e.g. `MLRUN_BENCH_FILES=20000`.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: fast, deterministic filler bytes (incompressible enough for hashing benches).
pub struct Filler(u64);

impl Filler {
    pub fn new(seed: u64) -> Self {
        Filler(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Write `bytes` deterministic bytes to `path`.
pub fn write_file(path: &Path, bytes: u64, seed: u64) {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("create file"));
    let mut filler = Filler::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        filler.fill(&mut buf[..n]);
        out.write_all(&buf[..n]).expect("write");
        left -= n as u64;
    }
    out.flush().expect("flush");
}

/// `n` files of `size` bytes in `dir` (`f00000.bin`, …), like the shared workload (d).
pub fn write_small_files(dir: &Path, n: u64, size: u64) {
    std::fs::create_dir_all(dir).expect("create dir");
    let mut filler = Filler::new(42);
    let mut buf = vec![0u8; size as usize];
    for i in 0..n {
        filler.fill(&mut buf);
        std::fs::write(dir.join(format!("f{i:05}.bin")), &buf).expect("write small file");
    }
}

/// Set every file's mtime under `dir` an hour back, so stat-cache entries made now are not
/// "racy" (mlrun distrusts entries for files modified within 2 s of being hashed).
pub fn age_files(dir: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(old))
            .expect("set mtime");
    }
}

pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{}GiB", n >> 30)
    } else if n >= 1 << 20 {
        format!("{}MiB", n >> 20)
    } else if n >= 1 << 10 {
        format!("{}KiB", n >> 10)
    } else {
        format!("{n}B")
    }
}

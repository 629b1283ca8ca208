//! Hashing micro-benchmarks (issue 7, part 1): a large file, a directory of many small files
//! (all cores and one core), and the stat-cache hit path.
//!
//!     cargo bench --bench hashing
//!
//! Knobs: MLRUN_BENCH_BIG_MIB (256), MLRUN_BENCH_FILES (5000), MLRUN_BENCH_FILE_BYTES (10240).
//! Inputs are generated under target/bench-data/ and deleted afterwards; timings are
//! page-cache hot (the file was just written), like the whole-process figures.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

use mlrun::fingerprint::cache::HashCache;
use mlrun::fingerprint::hash::{fingerprint, hash_file};
use mlrun::store::Store;

fn big_file(c: &mut Criterion) {
    let mib = common::knob("MLRUN_BENCH_BIG_MIB", 256);
    let bytes = mib << 20;
    let dir = tempfile::tempdir_in(common::data_dir()).expect("tempdir");
    let path = dir.path().join("big.bin");
    common::write_file(&path, bytes, 7);

    let mut g = c.benchmark_group("hash");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(BenchmarkId::new("file", common::human_bytes(bytes)), |b| {
        b.iter(|| black_box(hash_file(&path).expect("hash")))
    });
    // The compute floor: SHA-256 of bytes already in memory (no read(2) copies).
    let buf_len = (64u64 << 20).min(bytes) as usize;
    let mut buf = vec![0u8; buf_len];
    common::Filler::new(7).fill(&mut buf);
    g.throughput(Throughput::Bytes(buf_len as u64));
    g.bench_function(
        BenchmarkId::new("in_memory", common::human_bytes(buf_len as u64)),
        |b| b.iter(|| black_box(Sha256::digest(&buf))),
    );
    g.finish();
}

fn small_files(c: &mut Criterion) {
    let n = common::knob("MLRUN_BENCH_FILES", 5000);
    let size = common::knob("MLRUN_BENCH_FILE_BYTES", 10240);
    let tmp = tempfile::tempdir_in(common::data_dir()).expect("tempdir");
    let data = tmp.path().join("data");
    common::write_small_files(&data, n, size);
    common::age_files(&data);
    let label = format!("{n}x{}", common::human_bytes(size));

    let mut g = c.benchmark_group("dir");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(n * size));
    // No stat cache: every file is read and hashed, on all cores (rayon's default pool).
    g.bench_function(BenchmarkId::new("cold_all_cores", &label), |b| {
        b.iter(|| black_box(fingerprint(&data, &HashCache::disabled()).expect("fingerprint")))
    });
    // The same on one core: the parallel speed-up is the ratio of the two.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    g.bench_function(BenchmarkId::new("cold_one_core", &label), |b| {
        b.iter(|| {
            one.install(|| {
                black_box(fingerprint(&data, &HashCache::disabled()).expect("fingerprint"))
            })
        })
    });
    g.finish();

    // Stat-cache path: hash once with a cache backed by a real store, flush it, then load it
    // back the way `mlrun run`/`status` do and fingerprint again: every file is a hit.
    let store = Store::open(&tmp.path().join("store")).expect("store");
    let first = {
        let cache = store.load_stat_cache(tmp.path()).expect("load");
        let fp = fingerprint(&data, &cache).expect("fingerprint");
        store.flush_stat_cache(&cache).expect("flush");
        fp
    };
    let warm = store.load_stat_cache(tmp.path()).expect("load");
    for entry in std::fs::read_dir(&data).expect("read dir") {
        let path = entry.expect("dir entry").path();
        let meta = std::fs::metadata(&path).expect("stat");
        assert!(warm.get(&path, &meta).is_some(), "cache miss for {path:?}");
    }
    assert_eq!(
        fingerprint(&data, &warm).expect("fingerprint").hash(),
        first.hash()
    );

    let mut g = c.benchmark_group("stat_cache");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(n));
    // walk + stat + lookup of every file, nothing read
    g.bench_function(BenchmarkId::new("hit", &label), |b| {
        b.iter(|| black_box(fingerprint(&data, &warm).expect("fingerprint")))
    });
    // reading the cache's rows for the project from SQLite (done once per run / status)
    g.bench_function(BenchmarkId::new("load", &label), |b| {
        b.iter(|| black_box(store.load_stat_cache(tmp.path()).expect("load")))
    });
    g.finish();
}

criterion_group!(benches, big_file, small_files);
criterion_main!(benches);

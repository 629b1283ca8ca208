//! Recording a step's installed packages (issue 12, point 3): a virtualenv with 300
//! distributions, built on disk here (`*.dist-info/METADATA` with a long description after the
//! header, as real ones have).
//!
//!     cargo bench --bench packages
//!
//! - `first_scan`: the first step of a run in an environment the store has not seen: find the
//!   interpreter and its layout, read 300 METADATA headers, hash the list (budget: 20 ms);
//! - `store_new_set`: writing that list into the store (once per distinct environment);
//! - `later_run`: a later run in the same environment: the store's remembered scans are read
//!   and the directories' inodes and mtimes compared, nothing else (budget: 2 ms);
//! - `next_step`: another step of the same run (the run's own memory).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

use mlrun::fingerprint::packages::PackageCache;
use mlrun::fingerprint::system::Installed;
use mlrun::store::Store;

const N: usize = 300;

/// A virtualenv at `dir/venv` with `N` distributions; returns the step's variables.
fn fake_venv(dir: &Path) -> BTreeMap<String, String> {
    let venv = dir.join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::fs::write(venv.join("bin/python3"), b"\x7fELF not really").unwrap();
    std::fs::write(
        venv.join("pyvenv.cfg"),
        "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n",
    )
    .unwrap();
    let site = venv.join("lib/python3.11/site-packages");
    let description = "A long description, as in real METADATA files. ".repeat(100);
    for i in 0..N {
        let name = format!("package_{i:03}");
        let d = site.join(format!("{name}-1.{i}.0.dist-info"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("METADATA"),
            format!(
                "Metadata-Version: 2.1\nName: {name}\nVersion: 1.{i}.0\nSummary: test\nRequires-Python: >=3.8\nClassifier: Programming Language :: Python\n\n{description}\n"
            ),
        )
        .unwrap();
        std::fs::write(d.join("RECORD"), "x,,\n").unwrap();
        std::fs::create_dir_all(site.join(&name)).unwrap();
    }
    [
        (
            "PATH".to_string(),
            venv.join("bin").to_string_lossy().into_owned(),
        ),
        (
            "HOME".to_string(),
            dir.join("home").to_string_lossy().into_owned(),
        ),
    ]
    .into()
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let vars = fake_venv(tmp.path());
    let programs = vec!["python3".to_string()];
    let cwd = tmp.path();
    let mut g = c.benchmark_group("packages");

    g.bench_function("first_scan", |b| {
        b.iter(|| {
            let found = PackageCache::default().inspect(&programs, cwd, &vars);
            assert_eq!(found["python3"].env.count, N);
            black_box(found)
        })
    });

    let first = Installed(PackageCache::default().inspect(&programs, cwd, &vars));
    g.bench_function("store_new_set", |b| {
        b.iter_batched(
            || {
                let d = tempfile::tempdir().unwrap();
                let s = Store::open(&d.path().join(".mlrun")).unwrap();
                (d, s)
            },
            |(d, s)| {
                s.put_packages(&first).unwrap();
                (d, s)
            },
            BatchSize::PerIteration,
        )
    });

    // the store remembers the scan, made (as far as the 2 s rule is concerned) long after the
    // directories last changed
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&d.path().join(".mlrun")).unwrap();
    let mut remembered = first.clone();
    for i in remembered.0.values_mut() {
        if let Some(r) = &mut i.remember {
            r.scanned_at_ns += 10_000_000_000;
        }
    }
    store.put_packages(&remembered).unwrap();
    g.bench_function("later_run", |b| {
        b.iter(|| {
            let cache = PackageCache::new(store.remembered_scans().unwrap());
            let found = cache.inspect(&programs, cwd, &vars);
            assert!(found["python3"].set.is_none(), "remembered, not scanned");
            black_box(found)
        })
    });

    let same_run = PackageCache::default();
    same_run.inspect(&programs, cwd, &vars);
    g.bench_function("next_step", |b| {
        b.iter(|| black_box(same_run.inspect(&programs, cwd, &vars)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

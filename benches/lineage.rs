//! Read-side benchmarks on a synthetic store of 10,000 runs and 1,000,000 io edges (see
//! examples/synth_store.rs): lineage traversals, the runs listing, a run diff and a model card.
//! Targets from the issue: lineage < 50 ms, `runs` of 10,000 runs < 200 ms, diff < 100 ms.
//! `MLRUN_BENCH_RUNS` makes a smaller store for a quick look.

#[path = "../examples/synth_store.rs"]
#[allow(dead_code)]
mod synth_store;

use criterion::{Criterion, criterion_group, criterion_main};

use mlrun::report::ColorChoice;
use mlrun::store::Store;
use mlrun::store::lineage::{Direction, Seed};
use mlrun::store::query::{Cmp, RunFilter};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join(".mlrun");
    let runs = std::env::var("MLRUN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let cfg = synth_store::Config {
        runs,
        ..Default::default()
    };
    let s = synth_store::fill_store(&store_dir, &cfg).expect("synthetic store");
    eprintln!(
        "synthetic store: {} runs, {} executions, {} edges, {} versions",
        s.runs, s.execs, s.edges, s.versions
    );
    let store = Store::open(&store_dir).expect("store");
    let model = Seed::Version(s.chain_end.1);

    let g = store.traverse(&model, Direction::Up, None).unwrap();
    eprintln!(
        "upstream of the model at the end of a {}-run chain: {} nodes, {} edges",
        cfg.chain,
        g.nodes.len(),
        g.edges.len()
    );
    c.bench_function("lineage upstream (graph)", |b| {
        b.iter(|| store.traverse(&model, Direction::Up, None).unwrap())
    });
    c.bench_function("lineage upstream (graph + json)", |b| {
        b.iter(|| {
            let g = store.traverse(&model, Direction::Up, None).unwrap();
            serde_json::to_string(&g).unwrap()
        })
    });
    c.bench_function("lineage upstream --depth 3", |b| {
        b.iter(|| store.traverse(&model, Direction::Up, Some(3)).unwrap())
    });
    let raw = Seed::Version(s.chain_start);
    c.bench_function("lineage downstream of a chain's raw data", |b| {
        b.iter(|| store.traverse(&raw, Direction::Down, None).unwrap())
    });
    c.bench_function("model card", |b| {
        b.iter(|| store.card(s.chain_end.1).unwrap())
    });
    let all = RunFilter::default();
    c.bench_function("runs: list all", |b| {
        b.iter(|| store.list_runs(&all).unwrap())
    });
    let filtered = RunFilter {
        metrics: vec![("accuracy".into(), Cmp::Gt, 0.9)],
        sort: Some(("accuracy".into(), false)),
        pipeline: Some("pipeline-1".into()),
        ..Default::default()
    };
    c.bench_function("runs: --pipeline --metric --sort", |b| {
        b.iter(|| store.list_runs(&filtered).unwrap())
    });
    let (a, last) = (s.chain_end.0.clone(), s.last_run.clone());
    c.bench_function("diff two runs", |b| {
        b.iter(|| mlrun::cmd::diff::compute(&store, &a, &last, false, ColorChoice::Never).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);

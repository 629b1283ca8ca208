//! Store micro-benchmarks (issue 7, part 1): recording a step execution in SQLite the way
//! `exec` does, finding a reusable execution, and lineage queries on a large synthetic store.
//!
//!     cargo bench --bench store
//!
//! The lineage store (~1,000,000 io_edges by default; MLRUN_BENCH_RUNS=12800 runs of a 10-step
//! chain) takes a while to generate, so it is kept in target/bench-data/ and reused while the
//! schema and the generator are unchanged. The lineage queries are the recursive CTEs of
//! ../shared/docs/schema-reference.sql adapted to src/store/schema.rs; they are measured on the
//! store as mlrun leaves it (no ANALYZE) and after ANALYZE, where SQLite's planner has been seen
//! to choose a much worse plan (see BENCHMARKS.md).

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use rusqlite::{Connection, params};

use mlrun::fingerprint::cache::HashCache;
use mlrun::fingerprint::git::GitState;
use mlrun::fingerprint::hash::{Entry, Fingerprint, MODE_FILE, sha256_bytes};
use mlrun::fingerprint::system::{EnvSnapshot, SystemInfo};
use mlrun::store::Store;
use mlrun::store::record::{self, Io, Origin, StepBegin, StepRecord, StepStatus};

// ---------------------------------------------------------------- recording a step

fn git_state() -> GitState {
    GitState {
        is_repo: true,
        commit: Some(sha256_bytes(b"commit")[..40].to_string()),
        branch: Some("main".into()),
        dirty: false,
        diff: String::new(),
        changed: Vec::new(),
        untracked: vec!["data/raw.csv".into()],
        remote_url: Some("https://example.invalid/project.git".into()),
        workdir: Some("/project".into()),
        error: None,
    }
}

fn env_snapshot() -> EnvSnapshot {
    EnvSnapshot {
        system: SystemInfo::read(),
        interpreters: [("python3".to_string(), "Python 3.11.2".to_string())].into(),
        lockfiles: [("uv.lock".to_string(), sha256_bytes(b"uv.lock"))].into(),
        // a typical shell environment: a few dozen variables
        vars: (0..40)
            .map(|i| {
                (
                    format!("VAR_{i:02}"),
                    format!("value of variable number {i}"),
                )
            })
            .collect(),
        packages: Default::default(),
    }
}

fn file_io(path: &str, seed: &str, origin: Option<Origin>) -> Io {
    let mut io = Io::new(
        path.to_string(),
        Fingerprint::File {
            hash: sha256_bytes(seed.as_bytes()),
            size: 4096,
            mode: MODE_FILE,
        },
    );
    io.origin = origin;
    io
}

fn dir_io(path: &str, seed: &str, files: usize) -> Io {
    let entries: Vec<Entry> = (0..files)
        .map(|f| Entry {
            relpath: format!("f{f:05}.bin"),
            raw: None,
            mode: MODE_FILE,
            hash: sha256_bytes(format!("{seed} {f}").as_bytes()),
            size: 10240,
        })
        .collect();
    let hash = sha256_bytes(&mlrun::fingerprint::hash::manifest(&entries));
    Io::new(
        path.to_string(),
        Fingerprint::Dir {
            hash,
            size: 10240 * files as u64,
            entries: std::sync::Arc::new(entries),
        },
    )
}

/// The record of a typical successful step: two inputs, outputs as given, two params, two
/// metrics, 1 KiB of stdout.
fn step_record(key: &str, outputs: Vec<Io>, env: &EnvSnapshot, reused: Option<i64>) -> StepRecord {
    StepRecord {
        status: if reused.is_some() {
            StepStatus::Cached
        } else {
            StepStatus::Succeeded
        },
        exit_code: Some(0),
        signal: None,
        error: None,
        ended_at: record::now_ms(),
        inputs: vec![
            file_io("data/raw.csv", "raw", Some(Origin::External)),
            file_io("src/train.py", "train.py", Some(Origin::Git)),
        ],
        outputs,
        params: [
            ("train.lr".to_string(), serde_json::json!(0.01)),
            ("train.epochs".to_string(), serde_json::json!(10)),
        ]
        .into(),
        metrics: [
            ("accuracy".to_string(), (0.92, "metrics.json".to_string())),
            ("loss".to_string(), (0.31, "metrics.json".to_string())),
        ]
        .into(),
        git_after: git_state(),
        env: env.clone(),
        stdout: mlrun::store::record::StepLog {
            bytes: 1024,
            head: vec![b'x'; 1024],
            ..Default::default()
        },
        stderr: Default::default(),
        cache_key: Some(key.to_string()),
        cache_parts: Some("{}".into()),
        reused_exec: reused,
        keep_outputs: false,
        repo_changes: Vec::new(),
    }
}

fn new_run(store: &mut Store, git: &GitState) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    store
        .insert_run(&record::RunStart {
            id: &id,
            pipeline: "bench",
            pipeline_file: "/project/pipeline.toml",
            root: "/project",
            spec: "[steps.train]\ncmd = \"python3 src/train.py\"\n",
            plan_json: "{}",
            params_json: "{}",
            started_at: record::now_ms(),
            git,
            hostname: "bench",
            user: "bench",
            argv_json: "[]",
            replay_of: None,
            message: None,
            targets_json: None,
            sweep_id: None,
        })
        .expect("insert run");
    id
}

/// What `exec::run_step` writes for a step that runs: `begin_step` (its own transaction), then
/// `finish_step` with everything else.
fn run_step(store: &mut Store, run_id: &str, step: &str, git: &GitState, rec: &StepRecord) -> i64 {
    let begin = StepBegin {
        attempt: 1,
        seq: 0,
        run_id,
        step,
        cmd: "python3 src/train.py",
        argv_json: r#"["sh","-c","python3 src/train.py"]"#,
        cwd: "",
        started_at: record::now_ms(),
        git_before: git,
    };
    let id = store.begin_step(&begin).expect("begin");
    store
        .finish_step(id, rec, &HashCache::disabled())
        .expect("finish");
    id
}

fn step_key(step: &str) -> String {
    sha256_bytes(format!("key of {step}").as_bytes())
}

fn recording(c: &mut Criterion) {
    let tmp = tempfile::tempdir_in(common::data_dir()).expect("tempdir");
    let mut store = Store::open(&tmp.path().join("store")).expect("store");
    let git = git_state();
    let env = env_snapshot();
    // History: 100 earlier runs of a 20-step pipeline, each step with its own cache key (the
    // key of step s07 therefore has 100 executions, as after 99 no-op re-runs).
    for r in 0..100 {
        let run_id = new_run(&mut store, &git);
        for k in 0..20 {
            let step = format!("s{k:02}");
            let out = file_io("model.pkl", &format!("{r} {k}"), None);
            let rec = step_record(&step_key(&step), vec![out], &env, None);
            run_step(&mut store, &run_id, &step, &git, &rec);
        }
    }
    let run_id = new_run(&mut store, &git);
    let mut n = 0u64;
    let mut next_step = move || {
        n += 1;
        format!("new{n}")
    };

    let mut g = c.benchmark_group("record");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("run_step_small", |b| {
        b.iter_batched(
            || {
                let name = next_step();
                let out = file_io("model.pkl", &name, None);
                let rec = step_record(&step_key(&name), vec![out], &env, None);
                (name, rec)
            },
            |(name, rec)| run_step(&mut store, &run_id, &name, &git, &rec),
            BatchSize::SmallInput,
        )
    });
    // A step whose output is a new directory of 1,000 files: its manifest becomes one row. (The
    // name is the seed: criterion calls this closure more than once, and a directory version
    // recorded before would skip its entries.)
    g.bench_function("run_step_dir_1000", |b| {
        b.iter_batched(
            || {
                let name = next_step();
                let out = dir_io("out/", &name, 1000);
                let rec = step_record(&step_key(&name), vec![out], &env, None);
                (name, rec)
            },
            |(name, rec)| run_step(&mut store, &run_id, &name, &git, &rec),
            BatchSize::SmallInput,
        )
    });
    // The no-op path of a step: look up an earlier execution by key, then record the reuse
    // in one transaction.
    let key = step_key("s07");
    let found = store
        .find_reusable(&key, false)
        .expect("find")
        .expect("a reusable execution");
    g.bench_function("find_reusable", |b| {
        b.iter(|| black_box(store.find_reusable(&key, false).expect("find")))
    });
    g.bench_function("record_reuse", |b| {
        b.iter_batched(
            || {
                let rec = step_record(&key, found.outputs.clone(), &env, Some(found.exec_id));
                (next_step(), rec)
            },
            |(name, rec)| {
                let begin = StepBegin {
                    attempt: 1,
                    seq: 0,
                    run_id: &run_id,
                    step: &name,
                    cmd: "python3 src/train.py",
                    argv_json: r#"["sh","-c","python3 src/train.py"]"#,
                    cwd: "",
                    started_at: record::now_ms(),
                    git_before: &git,
                };
                store
                    .record_reuse(&begin, &rec, &HashCache::disabled())
                    .expect("reuse")
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

// ---------------------------------------------------------------- lineage on a large store

/// Bump when the generated shape changes, so a stale cached store is not reused.
const GEN_VERSION: u32 = 1;
const STEPS: usize = 10;
const OUTS: usize = 3;
/// the dataset file changes every DATA_EVERY runs, the code every CODE_EVERY runs
const DATA_EVERY: usize = 100;
const CODE_EVERY: usize = 50;

fn out_hash(run: usize, step: usize, j: usize) -> String {
    sha256_bytes(format!("out {run} {step} {j}").as_bytes())
}

fn data_hash(version: usize) -> String {
    sha256_bytes(format!("data {version}").as_bytes())
}

/// A store holding `runs` runs of a 10-step chain: step 0 reads `data/raw.csv` (a new version
/// every 100 runs), step k>0 reads the 3 outputs of step k-1; every step also reads its own
/// script and a shared module (new versions every 50 runs) and writes 3 new output versions.
/// 7.8 io_edges per step on average: 12,800 runs ≈ 1,000,000 edges.
fn lineage_store(runs: usize, analyzed: bool) -> PathBuf {
    let base = common::data_dir().join(format!(
        "lineage-{runs}r-s{}-g{GEN_VERSION}",
        mlrun::store::schema::latest()
    ));
    let dir = if analyzed {
        base.with_extension("analyzed")
    } else {
        base.clone()
    };
    if dir.join("complete").is_file() {
        return dir;
    }
    if analyzed {
        let plain = lineage_store(runs, false);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy(
            plain.join(mlrun::store::DB_FILE),
            dir.join(mlrun::store::DB_FILE),
        )
        .expect("copy store");
        let conn = Connection::open(dir.join(mlrun::store::DB_FILE)).expect("open");
        conn.execute_batch("ANALYZE").expect("analyze");
        drop(conn);
        std::fs::write(dir.join("complete"), b"").expect("mark");
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let t = Instant::now();
    eprintln!(
        "generating a lineage store of {runs} runs in {}",
        dir.display()
    );
    // schema via mlrun itself, then a bulk load with journaling and FK checks off
    drop(Store::open(&dir).expect("create store"));
    let mut conn = Connection::open(dir.join(mlrun::store::DB_FILE)).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF;",
    )
    .expect("pragmas");
    let edges = generate(&mut conn, runs).expect("generate");
    conn.execute_batch("PRAGMA journal_mode = WAL;")
        .expect("wal");
    drop(conn);
    std::fs::write(dir.join("complete"), b"").expect("mark");
    eprintln!(
        "generated {edges} io_edges in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    dir
}

fn generate(conn: &mut Connection, runs: usize) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let now = 1_700_000_000_000i64;
    let spec = sha256_bytes(b"spec");
    tx.execute(
        "INSERT INTO contents (hash, size, data) VALUES (?1, 4, x'00000000')",
        [&spec],
    )?;
    let mut artifacts: BTreeMap<String, i64> = BTreeMap::new();
    let mut versions: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let mut edges = 0usize;
    {
        let mut art = tx.prepare("INSERT INTO artifacts (id, path) VALUES (?1, ?2)")?;
        let mut blob = tx.prepare(
            "INSERT INTO blobs (hash, kind, size, nfiles, stored) VALUES (?1, 'file', 4096, 1, 1)",
        )?;
        let mut av = tx.prepare(
            "INSERT INTO artifact_versions (id, artifact_id, blob_hash, first_seen) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut run = tx.prepare(
            "INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, exit_code,
                               started_at, ended_at, hostname, user, mlrun_version, argv, pid)
             VALUES (?1, 'bench', '/project/pipeline.toml', '/project', ?2, '{}', '{}', 'succeeded', 0,
                     ?3, ?3, 'bench', 'bench', '0.1.0', '[]', 1)",
        )?;
        let mut step = tx.prepare(
            "INSERT INTO step_execs (id, run_id, step, cmd, argv, cwd, status, exit_code, started_at, ended_at, cache_key)
             VALUES (?1, ?2, ?3, ?4, '[]', '', 'succeeded', 0, ?5, ?5, ?6)",
        )?;
        let mut edge = tx.prepare(
            "INSERT INTO io_edges (step_exec, direction, av_id, declared, origin, mode) VALUES (?1, ?2, ?3, 1, ?4, 33188)",
        )?;
        // get-or-create the version of `path` with content `hash`
        let mut version = |path: &str, hash: &str, at: i64| -> rusqlite::Result<i64> {
            let next_art = artifacts.len() as i64 + 1;
            let a = *artifacts.entry(path.to_string()).or_insert(next_art);
            if a == next_art {
                art.execute(params![a, path])?;
            }
            let next_av = versions.len() as i64 + 1;
            let v = *versions.entry((a, hash.to_string())).or_insert(next_av);
            if v == next_av {
                blob.execute([hash])?;
                av.execute(params![v, a, hash, at])?;
            }
            Ok(v)
        };
        let mut exec_id = 0i64;
        for r in 0..runs {
            let at = now + r as i64 * 60_000;
            let run_id = format!("{:032x}", r + 1);
            run.execute(params![run_id, spec, at])?;
            let mut prev: Vec<i64> = Vec::new();
            for k in 0..STEPS {
                exec_id += 1;
                let name = format!("s{k}");
                step.execute(params![
                    exec_id,
                    run_id,
                    name,
                    format!("python3 src/{name}.py"),
                    at,
                    sha256_bytes(format!("key {r} {k}").as_bytes())
                ])?;
                let mut ins: Vec<(i64, &str)> = prev.iter().map(|&v| (v, "step")).collect();
                if k == 0 {
                    ins.push((
                        version("data/raw.csv", &data_hash(r / DATA_EVERY), at)?,
                        "external",
                    ));
                }
                let code = sha256_bytes(format!("src/{name}.py {}", r / CODE_EVERY).as_bytes());
                ins.push((version(&format!("src/{name}.py"), &code, at)?, "git"));
                let common = sha256_bytes(format!("src/common.py {}", r / CODE_EVERY).as_bytes());
                ins.push((version("src/common.py", &common, at)?, "git"));
                for (v, origin) in ins {
                    edge.execute(params![exec_id, "in", v, origin])?;
                    edges += 1;
                }
                prev.clear();
                for j in 0..OUTS {
                    let path = format!("out/{name}/{}", ["a", "b", "c"][j]);
                    let v = version(&path, &out_hash(r, k, j), at)?;
                    edge.execute(params![exec_id, "out", v, Option::<&str>::None])?;
                    edges += 1;
                    prev.push(v);
                }
            }
        }
    }
    tx.commit()?;
    Ok(edges)
}

/// Q1 of schema-reference.sql: every ancestor version of one artifact version, with the step
/// that produced it.
const ANCESTORS: &str = "
WITH RECURSIVE up(av_id) AS (
  SELECT ?1
  UNION
  SELECT i.av_id FROM up
  JOIN io_edges o ON o.av_id = up.av_id AND o.direction = 'out'
  JOIN io_edges i ON i.step_exec = o.step_exec AND i.direction = 'in')
SELECT a.path, av.blob_hash, o.step_exec
FROM up JOIN artifact_versions av ON av.id = up.av_id
JOIN artifacts a ON a.id = av.artifact_id
LEFT JOIN io_edges o ON o.av_id = up.av_id AND o.direction = 'out'
WHERE up.av_id <> ?1";

/// Q2: every version derived from any path holding content ?1.
const DESCENDANTS: &str = "
WITH RECURSIVE down(av_id) AS (
  SELECT id FROM artifact_versions WHERE blob_hash = ?1
  UNION
  SELECT o.av_id FROM down
  JOIN io_edges i ON i.av_id = down.av_id AND i.direction = 'in'
  JOIN io_edges o ON o.step_exec = i.step_exec AND o.direction = 'out')
SELECT av_id FROM down";

/// Q3: what produced a file: the step, its commit, params and input versions.
const PRODUCED_BY: &str = "
SELECT s.step, g.commit_sha, g.dirty, s.env_id,
  (SELECT json_group_object(key, value) FROM params p WHERE p.step_exec = s.id) AS params,
  (SELECT json_group_array(a2.path || '@' || av2.blob_hash) FROM io_edges i
     JOIN artifact_versions av2 ON av2.id = i.av_id JOIN artifacts a2 ON a2.id = av2.artifact_id
     WHERE i.step_exec = s.id AND i.direction = 'in') AS inputs
FROM artifacts a JOIN artifact_versions av ON av.artifact_id = a.id AND av.blob_hash = ?2
JOIN io_edges o ON o.av_id = av.id AND o.direction = 'out'
JOIN step_execs s ON s.id = o.step_exec
LEFT JOIN git_snapshots g ON g.id = s.git_before
WHERE a.path = ?1";

fn count_rows(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> usize {
    let mut stmt = conn.prepare_cached(sql).expect("prepare");
    let mut rows = stmt.query(p).expect("query");
    let mut n = 0;
    while rows.next().expect("row").is_some() {
        n += 1;
    }
    n
}

fn plan_of(conn: &Connection, sql: &str) -> String {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("explain");
    let n = stmt.parameter_count();
    let args: Vec<rusqlite::types::Value> =
        (0..n).map(|_| rusqlite::types::Value::Integer(1)).collect();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
        .expect("plan");
    rows.map(|r| r.expect("plan row"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn lineage(c: &mut Criterion) {
    let runs = common::knob("MLRUN_BENCH_RUNS", 12_800) as usize;
    for analyzed in [false, true] {
        let dir = lineage_store(runs, analyzed);
        // opened by mlrun first (migrations check); the queries below are this benchmark's own
        // SQL, on a connection of its own with mlrun's pragmas
        drop(Store::open(&dir).expect("open lineage store"));
        let conn = &Connection::open(dir.join(mlrun::store::DB_FILE)).expect("open");
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .expect("pragmas");
        let edges: i64 = conn
            .query_row("SELECT count(*) FROM io_edges", [], |r| r.get(0))
            .expect("count");
        let mid = runs / 2;
        let target_av: i64 = conn
            .query_row(
                "SELECT id FROM artifact_versions WHERE blob_hash = ?1",
                [out_hash(mid, STEPS - 1, 0)],
                |r| r.get(0),
            )
            .expect("target version");
        // sanity: 27 outputs of steps 0..8, 10 scripts + common.py, the dataset = 39 versions
        let n_up = count_rows(conn, ANCESTORS, [target_av]);
        assert_eq!(n_up, (STEPS - 1) * OUTS + STEPS + 1 + 1, "ancestors");
        let data = data_hash(mid / DATA_EVERY);
        let n_down = count_rows(conn, DESCENDANTS, [&data]);
        let final_path = format!("out/s{}/a", STEPS - 1);
        let final_hash = out_hash(mid, STEPS - 1, 0);
        assert_eq!(
            count_rows(conn, PRODUCED_BY, params![final_path, final_hash]),
            1
        );
        let label = if analyzed { "analyzed" } else { "as_recorded" };
        eprintln!(
            "lineage store {label}: {edges} io_edges; ancestors {n_up} rows, descendants {n_down} rows\n  \
             ancestors plan: {}\n  descendants plan: {}",
            plan_of(conn, ANCESTORS),
            plan_of(conn, DESCENDANTS)
        );

        let mut g = c.benchmark_group(format!("lineage_{label}"));
        g.sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2));
        let edges_label = format!("{}k_edges", edges / 1000);
        g.bench_function(BenchmarkId::new("ancestors", &edges_label), |b| {
            b.iter(|| black_box(count_rows(conn, ANCESTORS, [target_av])))
        });
        g.bench_function(BenchmarkId::new("descendants", &edges_label), |b| {
            b.iter(|| black_box(count_rows(conn, DESCENDANTS, [&data])))
        });
        g.bench_function(BenchmarkId::new("produced_by", &edges_label), |b| {
            b.iter(|| {
                black_box(count_rows(
                    conn,
                    PRODUCED_BY,
                    params![final_path, final_hash],
                ))
            })
        });
        g.finish();
    }
}

criterion_group!(benches, recording, lineage);
criterion_main!(benches);

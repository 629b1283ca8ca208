//! Build a synthetic lineage store for benchmarks: `cargo run --release --example synth_store --
//! DIR [--runs 10000] [--chain 20]`.
//!
//! The shape follows real use: runs form chains in which each run's first step consumes the data
//! the previous run of its chain produced (data versions flow across runs, as when today's
//! training reads last week's features). A run has four steps (ingest → features → train →
//! evaluate); each reads its data plus ~23 tracked source files whose versions change every few
//! commits, and writes one output (directories of 10 files, or a metrics file). 10,000 runs give
//! 40,000 step executions and 1,000,000 io edges. The schema comes from mlrun's own migrations
//! (`Store::open`), so the store is exactly what mlrun writes. The first run of each chain reads a
//! raw dump produced by nothing: a lineage gap, as in real projects.

use std::collections::HashMap;
use std::path::Path;

use mlrun::fingerprint::hash::{self, Entry};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

pub struct Config {
    pub runs: usize,
    /// runs per chain
    pub chain: usize,
    /// tracked source files each step reads
    pub sources_per_step: usize,
    /// files in each directory output
    pub files_per_dir: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            runs: 10_000,
            chain: 20,
            sources_per_step: 23,
            files_per_dir: 10,
        }
    }
}

#[derive(Debug, Default)]
pub struct Summary {
    pub runs: usize,
    pub execs: usize,
    pub edges: usize,
    pub versions: usize,
    /// the newest run, and the path of its model
    pub last_run: String,
    /// (run id, model av id) of the last run of the longest chain
    pub chain_end: (String, i64),
    /// the raw dump av id at the start of that chain
    pub chain_start: i64,
}

const STEPS: [&str; 4] = ["ingest", "features", "train", "evaluate"];

fn h(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

struct Gen<'c> {
    conn: &'c Connection,
    artifacts: HashMap<String, i64>,
    versions: HashMap<(i64, String), i64>,
    summary: Summary,
}

impl Gen<'_> {
    fn artifact(&mut self, path: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.artifacts.get(path) {
            return Ok(*id);
        }
        self.conn
            .prepare_cached("INSERT INTO artifacts (path) VALUES (?1)")?
            .execute([path])?;
        let id = self.conn.last_insert_rowid();
        self.artifacts.insert(path.to_string(), id);
        Ok(id)
    }

    /// The version of `path` with content `key`; a directory gets `files` entries.
    fn version(&mut self, path: &str, key: &str, files: usize, at: i64) -> rusqlite::Result<i64> {
        let art = self.artifact(path)?;
        // a directory's hash is that of its manifest, as mlrun records it
        let manifest = (files > 0).then(|| {
            let entries: Vec<Entry> = (0..files)
                .map(|f| Entry {
                    relpath: format!("part-{f:03}.parquet"),
                    raw: None,
                    mode: 0o100644,
                    hash: h(&format!("{key}/{f}")),
                    size: 40_000,
                })
                .collect();
            hash::manifest(&entries)
        });
        let hash = manifest
            .as_deref()
            .map_or_else(|| h(key), hash::sha256_bytes);
        if let Some(id) = self.versions.get(&(art, hash.clone())) {
            return Ok(*id);
        }
        let (kind, size) = if files > 0 {
            ("dir", 40_000 * files as i64)
        } else {
            ("file", 2_000)
        };
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO blobs (hash, kind, size, nfiles) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![hash, kind, size, files.max(1) as i64])?;
        if let Some(m) = manifest {
            self.conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO contents (hash, size, data) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![hash, m.len() as i64, m])?;
        }
        self.conn
            .prepare_cached(
                "INSERT INTO artifact_versions (artifact_id, blob_hash, first_seen) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![art, hash, at])?;
        let id = self.conn.last_insert_rowid();
        self.versions.insert((art, hash), id);
        self.summary.versions += 1;
        Ok(id)
    }

    fn edge(
        &mut self,
        exec: i64,
        dir: &str,
        av: i64,
        origin: Option<&str>,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO io_edges (step_exec, direction, av_id, declared, origin) VALUES (?1, ?2, ?3, 1, ?4)",
            )?
            .execute(params![exec, dir, av, origin])?;
        self.summary.edges += 1;
        Ok(())
    }
}

/// Fill the store in `dir` with `cfg.runs` runs: mlrun makes (or migrates) it, then its rows are
/// written directly, as no mlrun interface writes made-up lineage.
pub fn fill_store(dir: &Path, cfg: &Config) -> Result<Summary, String> {
    drop(mlrun::store::Store::open(dir).map_err(|e| e.to_string())?);
    let conn = Connection::open(dir.join(mlrun::store::DB_FILE)).map_err(|e| e.to_string())?;
    fill(&conn, cfg).map_err(|e| e.to_string())
}

/// Fill `conn` (an mlrun store, already migrated) with `cfg.runs` runs.
pub fn fill(conn: &Connection, cfg: &Config) -> rusqlite::Result<Summary> {
    conn.execute_batch("BEGIN")?;
    let mut g = Gen {
        conn,
        artifacts: HashMap::new(),
        versions: HashMap::new(),
        summary: Summary::default(),
    };
    conn.execute(
        "INSERT OR IGNORE INTO contents (hash, size, data) VALUES ('synthetic', 0, x'')",
        [],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO env_snapshots (id, os, os_version, kernel, arch, cpu_model, cpu_cores, mem_bytes, hostname, user,
            mlrun_version, interpreters, lockfiles, env_vars) VALUES ('env', 'Linux', '12', '6.1', 'x86_64', 'cpu', 8, 16000000000, 'bench', 'bench', '0.1.0',
            '{\"python3\":\"Python 3.11.2\"}', '{\"requirements.txt\":\"abc\"}', '{\"PATH\":\"/usr/bin\",\"OMP_NUM_THREADS\":\"1\"}')",
        [],
    )?;
    let start: i64 = 1_700_000_000_000;
    let chains = cfg.runs.div_ceil(cfg.chain);
    // the previous run's features output, per chain
    let mut prev_features: Vec<Option<i64>> = vec![None; chains];
    let mut chain_start = vec![0i64; chains];
    for r in 0..cfg.runs {
        let chain = r % chains;
        let t = start + r as i64 * 60_000;
        // a commit every 10 runs
        let commit = r / 10;
        let git = format!("git{commit}");
        conn.prepare_cached(
            "INSERT OR IGNORE INTO git_snapshots (id, is_repo, commit_sha, branch, dirty, changed, untracked, workdir)
             VALUES (?1, 1, ?2, 'main', 0, '[]', '[]', '/synthetic')",
        )?
        .execute(params![git, &h(&format!("commit {commit}"))[..40]])?;
        let run_id = format!("{:012x}{:020x}", t, r);
        let lr = [0.1, 0.05, 0.01, 0.2][r % 4];
        conn.prepare_cached(
            "INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, exit_code,
                               started_at, ended_at, git_start, git_end, hostname, user, mlrun_version, argv, pid)
             VALUES (?1, ?2, '/synthetic/pipeline.toml', '/synthetic', 'synthetic', '{}', ?3, 'succeeded', 0,
                     ?4, ?5, ?6, ?6, 'bench', 'bench', '0.1.0', '[]', 1)",
        )?
        .execute(params![
            run_id,
            format!("pipeline-{}", chain % 5),
            format!("{{\"lr\":{lr},\"seed\":{chain},\"epochs\":10}}"),
            t,
            t + 50_000,
            git
        ])?;
        let mut data_in: Vec<(i64, &str)> = Vec::new();
        for (s, step) in STEPS.iter().enumerate() {
            let st = t + s as i64 * 10_000;
            conn.prepare_cached(
                "INSERT INTO step_execs (run_id, step, cmd, argv, cwd, status, exit_code, started_at, ended_at, git_before, git_after, env_id)
                 VALUES (?1, ?2, ?3, '[]', '', 'succeeded', 0, ?4, ?5, ?6, ?6, 'env')",
            )?
            .execute(params![
                run_id,
                step,
                format!("python3 src/{step}/main.py --lr {lr}"),
                st,
                st + 9_000,
                git
            ])?;
            let exec = conn.last_insert_rowid();
            g.summary.execs += 1;
            // data inputs
            let inputs: Vec<(i64, &str)> = match s {
                0 => match prev_features[chain] {
                    Some(av) => vec![(av, "step")],
                    None => {
                        let raw = g.version(
                            &format!("raw/dump-{chain}.csv"),
                            &format!("raw {chain}"),
                            0,
                            t,
                        )?;
                        chain_start[chain] = raw;
                        vec![(raw, "external")]
                    }
                },
                3 => data_in.clone(),
                _ => data_in[..1].to_vec(),
            };
            for (av, origin) in &inputs {
                g.edge(exec, "in", *av, Some(origin))?;
            }
            // tracked sources: file j changes every (j % 7 + 1) commits
            for j in 0..cfg.sources_per_step.saturating_sub(inputs.len() - 1) {
                let epoch = commit / (j % 7 + 1);
                let av = g.version(
                    &format!("src/{step}/mod{j:02}.py"),
                    &format!("src {step} {j} {epoch}"),
                    0,
                    t,
                )?;
                g.edge(exec, "in", av, Some("git"))?;
            }
            let (out_path, files) = match s {
                0 => ("data/clean", cfg.files_per_dir),
                1 => ("data/features", cfg.files_per_dir),
                2 => ("model", 2),
                _ => ("eval/metrics.json", 0),
            };
            let out = g.version(out_path, &format!("{out_path} run {r}"), files, st)?;
            g.edge(exec, "out", out, None)?;
            for (k, v) in [("lr", lr.to_string()), ("seed", chain.to_string())] {
                conn.prepare_cached(
                    "INSERT INTO params (step_exec, key, value) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![exec, k, v])?;
            }
            let metrics: &[(&str, f64)] = match s {
                2 => &[("loss", 1.0 / (1.0 + (r % 97) as f64))],
                3 => &[
                    ("accuracy", 0.7 + (r * 7919 % 300) as f64 / 1000.0),
                    ("f1", 0.6 + (r * 104_729 % 390) as f64 / 1000.0),
                ],
                _ => &[],
            };
            for (k, v) in metrics {
                conn.prepare_cached(
                    "INSERT INTO metrics (step_exec, key, value, source) VALUES (?1, ?2, ?3, 'synthetic')",
                )?
                .execute(params![exec, k, v])?;
            }
            match s {
                0 => data_in = vec![(out, "step")],
                1 => {
                    data_in = vec![(out, "step")];
                    prev_features[chain] = Some(out);
                }
                2 => data_in.insert(0, (out, "step")),
                _ => {}
            }
            if s == 2 && r + chains >= cfg.runs && g.summary.chain_end.1 == 0 {
                g.summary.chain_end = (run_id.clone(), out);
                g.summary.chain_start = chain_start[chain];
            }
        }
        g.summary.runs += 1;
        g.summary.last_run = run_id;
    }
    conn.execute_batch("COMMIT")?;
    // what a long-lived store looks like after `PRAGMA optimize`: statistics present (the
    // planner trap in FINDINGS needs them)
    conn.execute_batch("ANALYZE")?;
    Ok(g.summary)
}

#[allow(dead_code)]
fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut cfg = Config::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => cfg.runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(cfg.runs),
            "--chain" => {
                cfg.chain = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(cfg.chain)
            }
            other => dir = Some(std::path::PathBuf::from(other)),
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: synth_store DIR [--runs N] [--chain L]");
        std::process::exit(2);
    };
    if dir.join("lineage.db").exists() {
        eprintln!("{} already holds a store; remove it first", dir.display());
        std::process::exit(1);
    }
    let t = std::time::Instant::now();
    match fill_store(Path::new(&dir), &cfg) {
        Ok(s) => {
            println!(
                "{} runs, {} step executions, {} io edges, {} artifact versions in {:.1}s",
                s.runs,
                s.execs,
                s.edges,
                s.versions,
                t.elapsed().as_secs_f64()
            );
            println!("newest run: {}", s.last_run);
            println!("chain end: model@{} (av {})", s.chain_end.0, s.chain_end.1);
            println!("chain start: av {}", s.chain_start);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

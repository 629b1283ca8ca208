//! Everything recorded about one run (`mlrun show RUN`): its steps, their inputs, outputs,
//! git, environment and logs.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::*;
use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct GitInfo {
    pub is_repo: bool,
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub dirty: bool,
    pub changed: Vec<String>,
    pub untracked: Vec<String>,
    pub remote_url: Option<String>,
    /// the uncommitted diff (only with `show --patch`; otherwise its size)
    pub diff: Option<String>,
    pub diff_bytes: i64,
    pub error: Option<String>,
}

pub(in crate::store) fn git_info(
    conn: &Connection,
    id: &str,
    with_diff: bool,
) -> Result<Option<GitInfo>> {
    conn.query_row(
        "SELECT g.is_repo, g.commit_sha, g.branch, g.dirty, g.changed, g.untracked, g.remote_url,
                CASE WHEN ?2 THEN c.data END, COALESCE(c.size, 0), g.error
         FROM git_snapshots g LEFT JOIN contents c ON c.hash = g.diff_hash WHERE g.id = ?1",
        params![id, with_diff],
        |r| {
            Ok(GitInfo {
                is_repo: r.get(0)?,
                commit: r.get(1)?,
                branch: r.get(2)?,
                dirty: r.get(3)?,
                changed: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                untracked: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                remote_url: r.get(6)?,
                diff: r
                    .get::<_, Option<Vec<u8>>>(7)?
                    // masked again when shown: a diff recorded by an older mlrun was not
                    .map(|d| crate::fingerprint::env::mask_patch(&String::from_utf8_lossy(&d))),
                diff_bytes: r.get(8)?,
                error: r.get(9)?,
            })
        },
    )
    .optional()
    .map_err(Into::into)
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvInfo {
    pub id: String,
    pub os: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub cpu_cores: i64,
    pub mem_bytes: i64,
    pub hostname: String,
    pub user: String,
    pub mlrun_version: String,
    pub interpreters: BTreeMap<String, String>,
    pub lockfiles: BTreeMap<String, String>,
    pub env_vars: BTreeMap<String, String>,
    /// program → the interpreter's environment (prefix, kind) and installed packages
    pub packages: BTreeMap<String, crate::store::packages::EnvPackages>,
}

pub(in crate::store) fn env_info(conn: &Connection, id: &str) -> Result<Option<EnvInfo>> {
    conn.query_row(
        "SELECT id, os, os_version, kernel, arch, cpu_model, cpu_cores, mem_bytes, hostname, user, mlrun_version,
                interpreters, lockfiles, env_vars, packages FROM env_snapshots WHERE id = ?1",
        [id],
        |r| {
            let json = |i: usize| -> rusqlite::Result<BTreeMap<String, String>> {
                Ok(serde_json::from_str(&r.get::<_, String>(i)?).unwrap_or_default())
            };
            Ok(EnvInfo {
                id: r.get(0)?,
                os: r.get(1)?,
                os_version: r.get(2)?,
                kernel: r.get(3)?,
                arch: r.get(4)?,
                cpu_model: r.get(5)?,
                cpu_cores: r.get(6)?,
                mem_bytes: r.get(7)?,
                hostname: r.get(8)?,
                user: r.get(9)?,
                mlrun_version: r.get(10)?,
                interpreters: json(11)?,
                lockfiles: json(12)?,
                env_vars: json(13)?,
                packages: BTreeMap::new(),
            })
            .and_then(|e| Ok((e, r.get::<_, Option<String>>(14)?)))
        },
    )
    .optional()?
    .map(|(mut e, p)| {
        e.packages = crate::store::packages::env_packages(conn, p.as_deref())?;
        Ok(e)
    })
    .transpose()
}

#[derive(Debug, Clone, Serialize)]
pub struct IoInfo {
    pub path: String,
    pub hash: String,
    pub kind: String,
    pub size: i64,
    pub nfiles: i64,
    /// the bytes are in the object store, so this version can be restored
    pub stored: bool,
    /// seen by `--trace` but not declared in pipeline.toml (`io_edges.declared = 0`)
    pub observed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepInfo {
    pub exec_id: i64,
    pub name: String,
    pub attempt: i64,
    pub status: String,
    pub cmd: String,
    pub argv: Vec<String>,
    pub cwd: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<IoInfo>,
    pub params: BTreeMap<String, serde_json::Value>,
    #[serde(serialize_with = "crate::fingerprint::metrics::ser_map")]
    pub metrics: BTreeMap<String, f64>,
    pub git_before: Option<String>,
    pub git_after: Option<String>,
    /// the step changed tracked files (git state differs before and after)
    pub changed_tracked_files: bool,
    pub env_id: Option<String>,
    pub stdout_bytes: i64,
    pub stderr_bytes: i64,
    /// for `cached` / `restored` steps: the run whose execution was reused
    pub reused_run: Option<String>,
    /// its id as mlrun shows it (see `short_id`)
    pub reused_run_short: Option<String>,
    /// `keep-outputs = true`: its outputs were left in place while it ran, not checked to be
    /// newly written
    pub keep_outputs: bool,
    /// git refs (and HEAD) the step created, moved or deleted: `[{ref, from, to}]`
    pub repo_changes: Vec<crate::fingerprint::git::RefChange>,
    /// how each captured stream is kept, by stream name (`stdout`, `stderr`)
    pub logs: BTreeMap<String, LogInfo>,
    /// where it ran: `local`, or `slurm` (then `job` says which job)
    pub executor: String,
    /// the cluster job it ran as: id, node, queue wait, run time, Slurm's state
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<crate::store::jobs::JobInfo>,
}

/// How one stream of a step's output is kept.
#[derive(Debug, Clone, Serialize)]
pub struct LogInfo {
    /// bytes the step printed
    pub bytes: i64,
    /// bytes the database does not hold (between its head and tail); 0 for a whole log
    pub cut_bytes: i64,
    /// when cut: the SHA-256 of the whole log, whose bytes are in `.mlrun/objects/logs/`
    pub object: Option<String>,
    /// the whole log is in the object store (false for a cut log that could not be kept, or
    /// that `mlrun gc` deleted)
    pub stored: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub id: String,
    pub short_id: String,
    pub pipeline: String,
    pub pipeline_file: String,
    pub root: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub hostname: String,
    pub user: String,
    pub mlrun_version: String,
    pub argv: Vec<String>,
    pub params: BTreeMap<String, serde_json::Value>,
    pub replay_of: Option<String>,
    /// the replayed run's id as mlrun shows it (see `short_id`)
    pub replay_of_short: Option<String>,
    pub replay_verdict: Option<String>,
    /// `mlrun run -m` / `mlrun note`: what the run was for
    pub message: Option<String>,
    /// `mlrun run TARGET...`: the steps and outputs asked for; null: the whole pipeline
    pub targets: Option<Vec<String>>,
    /// the sweep (`-p lr=0.1,0.2`) the run is a variant of
    pub sweep_id: Option<String>,
    pub git: Option<GitInfo>,
    pub git_end: Option<GitInfo>,
    pub steps: Vec<StepInfo>,
    /// environment snapshots referenced by the steps, by id
    pub environments: BTreeMap<String, EnvInfo>,
    /// what `mlrun check` (or a replay) found about the steps' outputs: step → findings
    /// (see `determinism`); filled by `show`
    pub determinism: BTreeMap<String, Vec<Finding>>,
}

/// The latest finding about one output of one step (`output_determinism`, written by
/// `determinism`).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub step: String,
    pub path: String,
    /// `deterministic` or `nondeterministic`
    pub verdict: String,
    /// the run that first found this verdict (kept while later findings agree)
    pub since_run: String,
    /// its id as mlrun shows it
    pub since_run_short: String,
    /// `check` or `replay`
    pub found_by: String,
}

impl Finding {
    pub fn nondeterministic(&self) -> bool {
        self.verdict == "nondeterministic"
    }
}

pub(super) fn io_of(conn: &Connection, exec: i64, dir: &str) -> Result<Vec<IoInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.path, b.hash, b.kind, b.size, b.nfiles, b.stored, e.declared = 0 FROM io_edges e
         JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
         JOIN blobs b ON b.hash = v.blob_hash
         WHERE e.step_exec = ?1 AND e.direction = ?2 ORDER BY a.path",
    )?;
    let rows = stmt
        .query_map(params![exec, dir], |r| {
            Ok(IoInfo {
                path: r.get(0)?,
                hash: r.get(1)?,
                kind: r.get(2)?,
                size: r.get(3)?,
                nfiles: r.get(4)?,
                stored: r.get(5)?,
                observed: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(in crate::store) fn run_detail(
    conn: &Connection,
    id: &str,
    with_diff: bool,
) -> Result<RunDetail> {
    run_detail_of(conn, id, with_diff, None)
}

/// `run_detail` with only the step executions named in `only` (step, attempt), when given.
pub(in crate::store) fn run_detail_of(
    conn: &Connection,
    id: &str,
    with_diff: bool,
    only: Option<&[(String, i64)]>,
) -> Result<RunDetail> {
    let (mut d, git_start, git_end) = run_row(conn, id)?;
    d.short_id = short_id(conn, &d.id)?;
    if let Some(r) = &d.replay_of {
        d.replay_of_short = Some(short_id(conn, r)?);
    }
    if let Some(g) = git_start {
        d.git = git_info(conn, &g, with_diff)?;
    }
    if let Some(g) = git_end {
        d.git_end = git_info(conn, &g, with_diff)?;
    }
    let steps = step_rows(conn, id, only)?;
    let mut jobs: BTreeMap<i64, crate::store::jobs::JobRecord> =
        crate::store::jobs::jobs_of_run(conn, id)?
            .into_iter()
            .collect();
    for mut s in steps {
        if let Some(r) = &s.reused_run {
            s.reused_run_short = Some(short_id(conn, r)?);
        }
        s.inputs = io_of(conn, s.exec_id, "in")?;
        s.logs = log_infos(conn, s.exec_id)?;
        if let Some(j) = jobs.remove(&s.exec_id) {
            s.executor = j.executor.clone();
            s.job = Some(crate::store::jobs::JobInfo::of(j));
        }
        s.outputs = io_of(conn, s.exec_id, "out")?;
        params_and_metrics(conn, &mut s)?;
        s.changed_tracked_files = changed_tracked_files(conn, &s)?;
        if let Some(env) = &s.env_id
            && !d.environments.contains_key(env)
            && let Some(info) = env_info(conn, env)?
        {
            d.environments.insert(env.clone(), info);
        }
        d.steps.push(s);
    }
    Ok(d)
}

/// The run's own row (its steps, git states and environments not yet read), and the ids of its
/// git snapshots at the start and the end.
fn run_row(conn: &Connection, id: &str) -> Result<(RunDetail, Option<String>, Option<String>)> {
    Ok(conn.query_row(
        "SELECT id, pipeline, pipeline_file, root, status, exit_code, started_at, ended_at, hostname, user,
                mlrun_version, argv, params, replay_of, git_start, git_end, replay_verdict, message, targets, sweep_id FROM runs WHERE id = ?1",
        [id],
        |r| {
            let started: i64 = r.get(6)?;
            let ended: Option<i64> = r.get(7)?;
            Ok((
                RunDetail {
                    id: r.get(0)?,
                    short_id: String::new(),
                    pipeline: r.get(1)?,
                    pipeline_file: r.get(2)?,
                    root: r.get(3)?,
                    status: r.get(4)?,
                    exit_code: r.get(5)?,
                    started_at: started,
                    ended_at: ended,
                    duration_ms: ended.map(|e| e - started),
                    hostname: r.get(8)?,
                    user: r.get(9)?,
                    mlrun_version: r.get(10)?,
                    argv: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
                    params: serde_json::from_str(&r.get::<_, String>(12)?).unwrap_or_default(),
                    replay_of: r.get(13)?,
                    replay_of_short: None,
                    replay_verdict: r.get(16)?,
                    message: r.get(17)?,
                    targets: r
                        .get::<_, Option<String>>(18)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                    sweep_id: r.get(19)?,
                    git: None,
                    git_end: None,
                    steps: Vec::new(),
                    environments: BTreeMap::new(),
                    determinism: BTreeMap::new(),
                },
                r.get(14)?,
                r.get(15)?,
            ))
        },
    )?)
}

/// The step executions of a run (only those named in `only`, when given), in the order they
/// started, their inputs, outputs, params and metrics not yet read.
fn step_rows(conn: &Connection, id: &str, only: Option<&[(String, i64)]>) -> Result<Vec<StepInfo>> {
    let mut stmt = conn.prepare(
        "SELECT id, step, attempt, status, cmd, argv, cwd, exit_code, signal, error, started_at, ended_at,
                git_before, git_after, env_id,
                (SELECT bytes FROM step_logs l WHERE l.step_exec = s.id AND stream = 'stdout'),
                (SELECT bytes FROM step_logs l WHERE l.step_exec = s.id AND stream = 'stderr'),
                (SELECT o.run_id FROM step_execs o WHERE o.id = s.reused_exec),
                keep_outputs, repo_changes
         FROM step_execs s WHERE run_id = ?1
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(?2) j
                WHERE json_extract(j.value, '$[0]') = s.step AND json_extract(j.value, '$[1]') = s.attempt))
         ORDER BY COALESCE(started_at, 9223372036854775807), id",
    )?;
    let only = only.map(|o| serde_json::to_string(o).unwrap_or_default());
    let steps: Vec<StepInfo> = stmt
        .query_map(rusqlite::params![id, only], |r| {
            let started: Option<i64> = r.get(10)?;
            let ended: Option<i64> = r.get(11)?;
            let before: Option<String> = r.get(12)?;
            let after: Option<String> = r.get(13)?;
            Ok(StepInfo {
                exec_id: r.get(0)?,
                name: r.get(1)?,
                attempt: r.get(2)?,
                status: r.get(3)?,
                cmd: r.get(4)?,
                argv: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                cwd: r.get(6)?,
                exit_code: r.get(7)?,
                signal: r.get(8)?,
                error: r.get(9)?,
                started_at: started,
                ended_at: ended,
                duration_ms: started.zip(ended).map(|(s, e)| e - s),
                inputs: Vec::new(),
                outputs: Vec::new(),
                params: BTreeMap::new(),
                metrics: BTreeMap::new(),
                changed_tracked_files: false,
                git_before: before,
                git_after: after,
                env_id: r.get(14)?,
                stdout_bytes: r.get::<_, Option<i64>>(15)?.unwrap_or(0),
                stderr_bytes: r.get::<_, Option<i64>>(16)?.unwrap_or(0),
                reused_run: r.get(17)?,
                reused_run_short: None,
                keep_outputs: r.get(18)?,
                repo_changes: r
                    .get::<_, Option<String>>(19)?
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .unwrap_or_default(),
                logs: BTreeMap::new(),
                executor: "local".into(),
                job: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(steps)
}

/// A step execution's params and metrics.
fn params_and_metrics(conn: &Connection, s: &mut StepInfo) -> Result<()> {
    let mut params_q =
        conn.prepare_cached("SELECT key, value FROM params WHERE step_exec = ?1 ORDER BY key")?;
    let mut metrics_q = conn.prepare_cached(
        "SELECT key, value, exact FROM metrics WHERE step_exec = ?1 ORDER BY key",
    )?;
    for row in params_q.query_map([s.exec_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })? {
        let (k, v) = row?;
        s.params.insert(
            k,
            serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v)),
        );
    }
    for row in metrics_q.query_map([s.exec_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            crate::fingerprint::metrics::from_columns(
                r.get(1)?,
                r.get::<_, Option<String>>(2)?.as_deref(),
            ),
        ))
    })? {
        let (k, v) = row?;
        s.metrics.insert(k, v);
    }
    Ok(())
}

/// Whether a step changed tracked files: HEAD or the tracked-file diff differ between the git
/// states before and after it (untracked outputs do not count).
fn changed_tracked_files(conn: &Connection, s: &StepInfo) -> Result<bool> {
    let (Some(b), Some(a)) = (&s.git_before, &s.git_after) else {
        return Ok(false);
    };
    if b == a {
        return Ok(false);
    }
    let q = |id: &str| -> Result<Option<(Option<String>, Option<String>)>> {
        Ok(conn
            .query_row(
                "SELECT commit_sha, diff_hash FROM git_snapshots WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    };
    Ok(q(b)? != q(a)?)
}

/// How a step execution's streams are kept.
pub(super) fn log_infos(conn: &Connection, exec_id: i64) -> Result<BTreeMap<String, LogInfo>> {
    let mut q = conn.prepare_cached(
        "SELECT l.stream, l.bytes, h.size, t.size, l.full_hash, l.stored FROM step_logs l
         LEFT JOIN contents h ON h.hash = l.content_hash LEFT JOIN contents t ON t.hash = l.tail_hash
         WHERE l.step_exec = ?1",
    )?;
    let rows = q.query_map([exec_id], |r| {
        let bytes: i64 = r.get(1)?;
        let head: Option<i64> = r.get(2)?;
        let tail: Option<i64> = r.get(3)?;
        let object: Option<String> = r.get(4)?;
        let cut_bytes = if object.is_some() {
            (bytes - head.unwrap_or(0) - tail.unwrap_or(0)).max(0)
        } else {
            0
        };
        Ok((
            r.get::<_, String>(0)?,
            LogInfo {
                bytes,
                cut_bytes,
                stored: object.is_some() && r.get::<_, i64>(5)? != 0,
                object,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One stream of a step's output as recorded.
#[derive(Debug, Clone, Default)]
pub struct StepLogData {
    /// bytes the step printed
    pub bytes: i64,
    /// the whole log, or its first bytes when it was cut
    pub head: Vec<u8>,
    /// when cut: its last bytes
    pub tail: Option<Vec<u8>>,
    /// when cut: the SHA-256 of the whole log (its object in `objects/logs/`)
    pub full_hash: Option<String>,
    /// the whole log is in the object store
    pub stored: bool,
}

/// Captured output of a step execution (empty when it has none).
pub(in crate::store) fn step_log(
    conn: &Connection,
    exec_id: i64,
    stream: &str,
) -> Result<StepLogData> {
    Ok(conn
        .query_row(
            "SELECT l.bytes, h.data, t.data, l.full_hash, l.stored FROM step_logs l
             LEFT JOIN contents h ON h.hash = l.content_hash LEFT JOIN contents t ON t.hash = l.tail_hash
             WHERE l.step_exec = ?1 AND l.stream = ?2",
            params![exec_id, stream],
            |r| {
                let full_hash: Option<String> = r.get(3)?;
                Ok(StepLogData {
                    bytes: r.get(0)?,
                    head: content_bytes(r.get_ref(1)?).unwrap_or_default().to_vec(),
                    tail: full_hash
                        .as_ref()
                        .map(|_| Ok::<_, rusqlite::Error>(content_bytes(r.get_ref(2)?).unwrap_or_default().to_vec()))
                        .transpose()?,
                    stored: full_hash.is_some() && r.get::<_, i64>(4)? != 0,
                    full_hash,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

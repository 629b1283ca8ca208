//! Writes to the lineage store. Each step's facts are written in one transaction, so a step is
//! either fully recorded or not at all; a run row exists from the moment the run starts
//! (`running`) and always ends with a true status.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::During;
use crate::error::Result;
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::git::GitState;
use crate::fingerprint::hash::{Fingerprint, manifest, manifest_lookup, sha256_bytes};
use crate::fingerprint::system::EnvSnapshot;

mod status;

pub use status::{RunStatus, StepStatus};

/// The time mlrun records (a run's and a step's start and end), in ms since the epoch.
///
/// Test-only: `MLRUN_TEST_NOW` (RFC 3339, e.g. `2026-01-01T00:00:00Z`) starts this clock at
/// that instant and advances it by one millisecond per reading, so the times and durations a
/// test's snapshot shows are the same on every machine and events keep their order. Ignored
/// unless set; read here only.
pub fn now_ms() -> i64 {
    static FIXED: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    static TICKS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let fixed = FIXED.get_or_init(|| {
        let v = std::env::var("MLRUN_TEST_NOW").ok()?;
        match v.parse::<jiff::Timestamp>() {
            Ok(t) => Some(t.as_millisecond()),
            Err(e) => {
                eprintln!(
                    "warning: MLRUN_TEST_NOW=`{v}` is not an RFC 3339 time ({e}); using the real clock"
                );
                None
            }
        }
    });
    match fixed {
        Some(t) => t + TICKS.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    }
}

/// Identifies the mlrun process that owns a running run, to tell later whether it still lives.
pub struct ProcessId {
    pub hostname: String,
    pub pid: i64,
    pub start: Option<i64>,
    pub boot_id: Option<String>,
}

fn proc_start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may contain spaces: fields are counted after its ')'
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

impl ProcessId {
    pub fn current() -> Self {
        let pid = std::process::id() as i64;
        ProcessId {
            hostname: crate::fingerprint::system::host_name(),
            pid,
            start: proc_start_time(pid),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_string()),
        }
    }

    /// Same boot, the pid exists, and it started at the recorded time (not a reused pid).
    pub fn is_alive(pid: i64, start: Option<i64>, boot: Option<&str>, me: &ProcessId) -> bool {
        if boot.is_some() && me.boot_id.is_some() && boot != me.boot_id.as_deref() {
            return false;
        }
        match proc_start_time(pid) {
            None => false,
            Some(now) => start.is_none_or(|s| s == now),
        }
    }
}

pub struct RunStart<'a> {
    pub id: &'a str,
    pub pipeline: &'a str,
    pub pipeline_file: &'a str,
    pub root: &'a str,
    pub spec: &'a str,
    pub plan_json: &'a str,
    pub params_json: &'a str,
    pub started_at: i64,
    pub git: &'a GitState,
    pub hostname: &'a str,
    pub user: &'a str,
    pub argv_json: &'a str,
    pub replay_of: Option<&'a str>,
    /// `mlrun run -m TEXT`, secrets already masked
    pub message: Option<&'a str>,
    /// the targets asked for (`mlrun run train`), as JSON; None: the whole pipeline
    pub targets_json: Option<&'a str>,
    /// the sweep the run is a variant of
    pub sweep_id: Option<&'a str>,
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

pub(super) fn put_content(tx: &Connection, data: &[u8]) -> Result<String> {
    let hash = sha256_bytes(data);
    tx.prepare_cached("INSERT OR IGNORE INTO contents (hash, size, data) VALUES (?1, ?2, ?3)")?
        .execute(params![hash, data.len() as i64, data])?;
    Ok(hash)
}

pub(super) fn put_git(tx: &Connection, g: &GitState) -> Result<String> {
    let id = g.id();
    let exists: bool = tx
        .prepare_cached("SELECT 1 FROM git_snapshots WHERE id = ?1")?
        .query_row([&id], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        let diff = if g.diff.is_empty() {
            None
        } else {
            Some(put_content(tx, g.diff.as_bytes())?)
        };
        tx.execute(
            "INSERT INTO git_snapshots (id, is_repo, commit_sha, branch, dirty, diff_hash, changed, untracked, remote_url, workdir, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                id,
                g.is_repo,
                g.commit,
                g.branch,
                g.dirty,
                diff,
                serde_json::to_string(&g.changed).unwrap_or_default(),
                serde_json::to_string(&g.untracked).unwrap_or_default(),
                g.remote_url,
                g.workdir,
                g.error,
            ],
        )?;
    }
    Ok(id)
}

pub(super) fn put_env(tx: &Connection, e: &EnvSnapshot) -> Result<String> {
    let id = e.id();
    let s = &e.system;
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO env_snapshots (id, os, os_version, kernel, arch, cpu_model, cpu_cores, mem_bytes, hostname, user, mlrun_version, interpreters, lockfiles, env_vars, packages)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    stmt.execute(params![
        id,
        s.os,
        s.os_version,
        s.kernel,
        s.arch,
        s.cpu_model,
        s.cpu_cores as i64,
        s.mem_bytes as i64,
        s.hostname,
        s.user,
        s.mlrun_version,
        serde_json::to_string(&e.interpreters).unwrap_or_default(),
        serde_json::to_string(&e.lockfiles).unwrap_or_default(),
        serde_json::to_string(&e.vars).unwrap_or_default(),
        (!e.packages.is_empty()).then(|| serde_json::to_string(&e.packages).unwrap_or_default()),
    ])?;
    super::packages::put(tx, &e.packages)?;
    Ok(id)
}

/// Record a path's version (blob, a directory's manifest, artifact, artifact version); returns
/// the artifact version id.
pub(super) fn put_version(tx: &Connection, path: &str, fp: &Fingerprint, now: i64) -> Result<i64> {
    let (kind, nfiles) = match fp {
        Fingerprint::File { .. } => ("file", 1),
        Fingerprint::Dir { entries, .. } => ("dir", entries.len() as i64),
    };
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO blobs (hash, kind, size, nfiles) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![fp.hash(), kind, fp.size() as i64, nfiles])?;
    // The manifest is the content the directory's hash is the SHA-256 of. It is written
    // whenever it is missing, not only with a new blob row, so a store that lost one (damage,
    // or a version recorded without entries) heals the next time the directory is recorded.
    if let Fingerprint::Dir { hash, entries, .. } = fp
        && (inserted > 0
            || tx
                .prepare_cached("SELECT 1 FROM contents WHERE hash = ?1")?
                .query_row([hash], |_| Ok(()))
                .optional()?
                .is_none())
    {
        // SQLite copies a bound value, then builds the row from that copy: the manifest is
        // dropped once bound, so it is held twice at most, not three times (1.8 MB each for
        // 20,000 files, at the first run's peak of memory)
        let m = manifest(entries);
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO contents (hash, size, data) VALUES (?1, ?2, ?3)",
        )?;
        insert.raw_bind_parameter(1, hash)?;
        insert.raw_bind_parameter(2, m.len() as i64)?;
        insert.raw_bind_parameter(3, &m)?;
        drop(m);
        insert.raw_execute()?;
    }
    tx.prepare_cached("INSERT OR IGNORE INTO artifacts (path) VALUES (?1)")?
        .execute([path])?;
    let artifact: i64 = tx
        .prepare_cached("SELECT id FROM artifacts WHERE path = ?1")?
        .query_row([path], |r| r.get(0))?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO artifact_versions (artifact_id, blob_hash, first_seen) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![artifact, fp.hash(), now])?;
    Ok(tx
        .prepare_cached(
            "SELECT id FROM artifact_versions WHERE artifact_id = ?1 AND blob_hash = ?2",
        )?
        .query_row(params![artifact, fp.hash()], |r| r.get(0))?)
}

pub(super) fn insert_run(conn: &mut Connection, r: &RunStart<'_>) -> Result<()> {
    let me = ProcessId::current();
    let tx = immediate(conn)?;
    let spec = put_content(&tx, r.spec.as_bytes())?;
    let git = put_git(&tx, r.git)?;
    tx.execute(
        "INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, git_start,
                           hostname, user, mlrun_version, argv, pid, pid_start, boot_id, replay_of, message, targets, sweep_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?19, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?20, ?21)",
        params![
            r.id,
            r.pipeline,
            r.pipeline_file,
            r.root,
            spec,
            r.plan_json,
            r.params_json,
            r.started_at,
            git,
            r.hostname,
            r.user,
            env!("CARGO_PKG_VERSION"),
            r.argv_json,
            me.pid,
            me.start,
            me.boot_id,
            r.replay_of,
            r.message,
            RunStatus::Running,
            r.targets_json,
            r.sweep_id,
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// Set (or, with `None`, clear) a run's message (`mlrun note`); returns the message it replaced.
pub(super) fn set_message(
    conn: &mut Connection,
    run_id: &str,
    message: Option<&str>,
) -> Result<Option<String>> {
    let tx = immediate(conn)?;
    let old: Option<String> =
        tx.query_row("SELECT message FROM runs WHERE id = ?1", [run_id], |r| {
            r.get(0)
        })?;
    tx.execute(
        "UPDATE runs SET message = ?2 WHERE id = ?1",
        params![run_id, message],
    )?;
    tx.commit()?;
    Ok(old)
}

pub(super) fn finish_run(
    conn: &mut Connection,
    id: &str,
    status: RunStatus,
    exit_code: i32,
    git_end: &GitState,
    ended_at: i64,
) -> Result<()> {
    let tx = immediate(conn)?;
    let git = put_git(&tx, git_end)?;
    tx.execute(
        "UPDATE runs SET status = ?2, exit_code = ?3, git_end = ?4, ended_at = ?5 WHERE id = ?1",
        params![id, status, exit_code, git, ended_at],
    )?;
    tx.commit()?;
    Ok(())
}

pub struct StepBegin<'a> {
    pub run_id: &'a str,
    pub step: &'a str,
    /// 1 for the first attempt; retries count up
    pub attempt: u32,
    /// position of the step in the plan: where several steps report one metric, the run's value
    /// is the one from the step latest in the plan, whatever order parallel steps ended in
    pub seq: usize,
    pub cmd: &'a str,
    pub argv_json: &'a str,
    pub cwd: &'a str,
    pub started_at: i64,
    pub git_before: &'a GitState,
}

/// A `running` row for a step execution that starts now.
fn insert_exec(tx: &Transaction<'_>, b: &StepBegin<'_>) -> Result<i64> {
    let git = put_git(tx, b.git_before)?;
    tx.prepare_cached(
        "INSERT INTO step_execs (run_id, step, cmd, argv, cwd, status, started_at, git_before, attempt, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?10, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![b.run_id, b.step, b.cmd, b.argv_json, b.cwd, b.started_at, git, b.attempt, b.seq as i64, StepStatus::Running])?;
    Ok(tx.last_insert_rowid())
}

pub(super) fn begin_step(conn: &mut Connection, b: &StepBegin<'_>) -> Result<i64> {
    let tx = immediate(conn)?;
    let id = insert_exec(&tx, b)?;
    tx.commit()?;
    Ok(id)
}

/// Where an input version came from (see the `io_edges.origin` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Step,
    Git,
    External,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Step => "step",
            Origin::Git => "git",
            Origin::External => "external",
        }
    }
}

/// A fingerprinted input or output of a step.
#[derive(Debug, Clone)]
pub struct Io {
    pub path: String,
    pub fp: Fingerprint,
    /// inputs only
    pub origin: Option<Origin>,
    /// its bytes are in the object store
    pub stored: bool,
    /// declared in pipeline.toml; false: observed by `--trace` only (`io_edges.declared = 0`)
    pub declared: bool,
    /// the path was itself a symbolic link: its target text (`fp` is what it leads to)
    pub link: Option<Vec<u8>>,
}

impl Io {
    pub fn new(path: String, fp: Fingerprint) -> Io {
        Io {
            path,
            fp,
            origin: None,
            stored: false,
            declared: true,
            link: None,
        }
    }

    /// Note the target of `path` (where this version was read) if it is a symbolic link.
    pub fn with_link_of(mut self, path: &std::path::Path) -> Io {
        use std::os::unix::ffi::OsStrExt;
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link && let Ok(target) = std::fs::read_link(path) {
            self.link = Some(target.as_os_str().as_bytes().to_vec());
        }
        self
    }
}

/// One stream of a step's output as the database records it (see `exec::capture`).
#[derive(Debug, Clone, Default)]
pub struct StepLog {
    /// bytes the step printed on the stream
    pub bytes: u64,
    /// the whole log, or its first bytes when it was cut
    pub head: Vec<u8>,
    /// when the log was cut: its last bytes
    pub tail: Option<Vec<u8>>,
    /// when the log was cut: the SHA-256 of the whole log (its object in `objects/logs/`)
    pub full_hash: Option<String>,
    /// the whole log is in the object store
    pub stored: bool,
}

/// Everything known about a step once it has ended.
pub struct StepRecord {
    pub status: StepStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    pub ended_at: i64,
    pub inputs: Vec<Io>,
    /// only for a step that succeeded: partial outputs of a failed step are not versions
    pub outputs: Vec<Io>,
    pub params: BTreeMap<String, serde_json::Value>,
    /// key → (value, source)
    pub metrics: BTreeMap<String, (f64, String)>,
    pub git_after: GitState,
    pub env: EnvSnapshot,
    pub stdout: StepLog,
    pub stderr: StepLog,
    pub cache_key: Option<String>,
    pub cache_parts: Option<String>,
    /// for cached/restored steps: the execution whose results were reused
    pub reused_exec: Option<i64>,
    /// `keep-outputs = true`: its outputs were left in place, not checked to be newly written
    pub keep_outputs: bool,
    /// git refs (and HEAD) the step moved, created or deleted
    pub repo_changes: Vec<crate::fingerprint::git::RefChange>,
}

pub(super) fn finish_step(
    conn: &mut Connection,
    exec_id: i64,
    r: &StepRecord,
    cache: &HashCache,
) -> Result<()> {
    let tx = immediate(conn)?;
    write_step(&tx, exec_id, r)?;
    super::statcache::flush(&tx, cache)?;
    tx.commit()?;
    Ok(())
}

/// A step that reused an earlier execution: its whole record in one transaction.
pub(super) fn record_reuse(
    conn: &mut Connection,
    b: &StepBegin<'_>,
    r: &StepRecord,
    cache: &HashCache,
) -> Result<i64> {
    let tx = immediate(conn)?;
    let id = insert_exec(&tx, b)?;
    write_step(&tx, id, r)?;
    super::statcache::flush(&tx, cache)?;
    tx.commit()?;
    Ok(id)
}

/// A step read one file of a directory another step of the same run produced (`inputs =
/// ["feat/a.csv"]` against `outputs = ["feat/"]`): record that the producer generated this file
/// version too, so lineage connects the file to the step that made it instead of showing a gap.
fn link_file_to_producer(
    tx: &Transaction<'_>,
    consumer: i64,
    path: &str,
    hash: &str,
    av: i64,
    manifests: &mut BTreeMap<String, Vec<u8>>,
) -> Result<()> {
    let mut candidates = tx.prepare_cached(
        "SELECT e.step_exec, v.blob_hash, a.path FROM step_execs c JOIN step_execs s ON s.run_id = c.run_id
         JOIN io_edges e ON e.step_exec = s.id AND e.direction = 'out'
         JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
         JOIN blobs b ON b.hash = v.blob_hash AND b.kind = 'dir'
         WHERE c.id = ?1 AND s.id != ?1 AND substr(?2, 1, length(a.path) + 1) = a.path || '/'
         ORDER BY s.id DESC",
    )?;
    let found: Vec<(i64, String, String)> = candidates
        .query_map(params![consumer, path], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (producer, dir_hash, dir) in found {
        if !manifests.contains_key(&dir_hash) {
            // a manifest missing from a damaged store matches nothing (fsck reports it)
            let m = crate::store::query::dir_manifest(tx, &dir_hash).unwrap_or_default();
            manifests.insert(dir_hash.clone(), m);
        }
        let m = &manifests[&dir_hash];
        if manifest_lookup(m, &path[dir.len() + 1..]).is_some_and(|e| e.hash == hash) {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO io_edges (step_exec, direction, av_id, declared, origin) VALUES (?1, 'out', ?2, 1, NULL)",
            )?
            .execute(params![producer, av])?;
            break;
        }
    }
    Ok(())
}

fn write_step(tx: &Transaction<'_>, exec_id: i64, r: &StepRecord) -> Result<()> {
    // manifests read for this step's inputs, by directory hash
    let mut manifests = BTreeMap::new();
    let git = put_git(tx, &r.git_after)?;
    let env = put_env(tx, &r.env)?;
    tx.prepare_cached(
        "UPDATE step_execs SET status = ?2, exit_code = ?3, signal = ?4, error = ?5, ended_at = ?6,
                git_after = ?7, env_id = ?8, cache_key = ?9, cache_parts = ?10, reused_exec = ?11,
                keep_outputs = ?12, repo_changes = ?13
         WHERE id = ?1",
    )?
    .execute(params![
        exec_id,
        r.status,
        r.exit_code,
        r.signal,
        r.error,
        r.ended_at,
        git,
        env,
        r.cache_key,
        r.cache_parts,
        r.reused_exec,
        r.keep_outputs,
        (!r.repo_changes.is_empty())
            .then(|| serde_json::to_string(&r.repo_changes).unwrap_or_default()),
    ])?;
    let mut edge = tx.prepare_cached(
        "INSERT OR IGNORE INTO io_edges (step_exec, direction, av_id, declared, origin, mode, link)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (dir, list) in [("in", &r.inputs), ("out", &r.outputs)] {
        for io in list {
            let av = put_version(tx, &io.path, &io.fp, r.ended_at)?;
            if io.stored {
                tx.prepare_cached("UPDATE blobs SET stored = 1 WHERE hash = ?1")?
                    .execute([io.fp.hash()])?;
            }
            let mode = match &io.fp {
                Fingerprint::File { mode, .. } => Some(*mode as i64),
                Fingerprint::Dir { .. } => None,
            };
            edge.execute(params![
                exec_id,
                dir,
                av,
                io.declared,
                io.origin.map(Origin::as_str),
                mode,
                io.link
            ])?;
            if dir == "in" && io.origin == Some(Origin::Step) && !io.fp.is_dir() {
                link_file_to_producer(tx, exec_id, &io.path, io.fp.hash(), av, &mut manifests)?;
            }
        }
    }
    let mut p =
        tx.prepare_cached("INSERT INTO params (step_exec, key, value) VALUES (?1, ?2, ?3)")?;
    for (k, v) in &r.params {
        p.execute(params![exec_id, k, v.to_string()])?;
    }
    let mut m = tx.prepare_cached(
        "INSERT INTO metrics (step_exec, key, value, source, exact) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (k, (v, src)) in &r.metrics {
        let (value, exact) = crate::fingerprint::metrics::to_columns(*v);
        m.execute(params![exec_id, k, value, src, exact])?;
    }
    // a reused step printed nothing: its logs are those of the execution it reused
    if r.reused_exec.is_none() {
        for (stream, log) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            let h = put_content(tx, &log.head)?;
            let tail = log
                .tail
                .as_deref()
                .map(|t| put_content(tx, t))
                .transpose()?;
            tx.prepare_cached(
                "INSERT INTO step_logs (step_exec, stream, content_hash, bytes, tail_hash, full_hash, stored)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                exec_id,
                stream,
                h,
                log.bytes as i64,
                tail,
                log.full_hash,
                log.stored
            ])?;
        }
    }
    Ok(())
}

/// A step that never started (a dependency failed, or the run stopped first).
pub(super) fn record_not_run(
    conn: &mut Connection,
    run_id: &str,
    step: &str,
    cmd: &str,
    argv_json: &str,
    cwd: &str,
    reason: &str,
) -> Result<()> {
    let tx = immediate(conn)?;
    tx.execute(
        "INSERT INTO step_execs (run_id, step, cmd, argv, cwd, status, error) VALUES (?1, ?2, ?3, ?4, ?5, ?7, ?6)",
        params![run_id, step, cmd, argv_json, cwd, reason, StepStatus::NotRun],
    )?;
    tx.commit()?;
    Ok(())
}

/// A step whose record could not be written (`finish_step` failed): close its `running` row as
/// `failed` with the reason, in the smallest write there is, so that it does not stay
/// `running`. Its inputs, outputs and logs are not recorded.
pub(super) fn close_unrecorded(
    conn: &mut Connection,
    exec_id: i64,
    error: &str,
    ended_at: i64,
) -> Result<()> {
    let tx = immediate(conn)?;
    tx.execute(
        "UPDATE step_execs SET status = ?4, error = ?2, ended_at = ?3 WHERE id = ?1",
        params![exec_id, error, ended_at, StepStatus::Failed],
    )?;
    tx.commit()?;
    Ok(())
}

/// Close a run whose mlrun ended without recording all of it (see `store::incomplete`): the run
/// and its steps still `running` are `failed`, with `reason`.
pub(super) fn mark_record_failed(conn: &Connection, run_id: &str, reason: &str) -> Result<()> {
    let now = now_ms();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let res = (|| -> rusqlite::Result<()> {
        conn.execute(
            "UPDATE step_execs SET status = ?4, error = ?2, ended_at = COALESCE(ended_at, ?3)
             WHERE run_id = ?1 AND status = ?5",
            params![run_id, reason, now, StepStatus::Failed, StepStatus::Running],
        )?;
        conn.execute(
            "UPDATE runs SET status = ?3, exit_code = COALESCE(exit_code, 1), ended_at = COALESCE(ended_at, ?2)
             WHERE id = ?1 AND status = ?4",
            params![run_id, now, RunStatus::Failed, RunStatus::Running],
        )?;
        Ok(())
    })();
    match res {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}

/// Close a run that can no longer finish on its own.
pub(super) fn mark_interrupted(conn: &Connection, run_id: &str, reason: &str) -> Result<()> {
    let now = now_ms();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let res = (|| -> rusqlite::Result<()> {
        conn.execute(
            "UPDATE step_execs SET status = ?4, error = ?2, ended_at = COALESCE(ended_at, ?3)
             WHERE run_id = ?1 AND status = ?5",
            params![
                run_id,
                reason,
                now,
                StepStatus::Interrupted,
                StepStatus::Running
            ],
        )?;
        conn.execute(
            "UPDATE runs SET status = ?3, ended_at = COALESCE(ended_at, ?2) WHERE id = ?1 AND status = ?4",
            params![run_id, now, RunStatus::Interrupted, RunStatus::Running],
        )?;
        Ok(())
    })();
    match res {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}

/// Several steps that reused earlier executions, recorded in one transaction: each one gets
/// exactly what `record_reuse` writes, so every step's record is whole or absent, and one commit
/// serves them all. Returns their execution ids, in the order given.
pub(super) fn record_reuses(
    conn: &mut Connection,
    steps: &[(StepBegin<'_>, &StepRecord)],
    cache: &HashCache,
) -> Result<Vec<i64>> {
    let tx = immediate(conn)?;
    let mut ids = Vec::with_capacity(steps.len());
    for (b, r) in steps {
        let id = insert_exec(&tx, b)?;
        write_step(&tx, id, r)?;
        ids.push(id);
    }
    super::statcache::flush(&tx, cache)?;
    tx.commit()?;
    Ok(ids)
}

impl super::Store {
    /// Record a run's start (`running`).
    pub fn insert_run(&mut self, r: &RunStart<'_>) -> Result<()> {
        insert_run(&mut self.conn, r).during(format_args!("recording the start of run {}", r.id))
    }

    /// Set or clear a run's message; returns the one it had.
    pub fn set_message(&mut self, run_id: &str, message: Option<&str>) -> Result<Option<String>> {
        set_message(&mut self.conn, run_id, message)
            .during(format_args!("setting the message of run {run_id}"))
    }

    /// Record a run's end.
    pub fn finish_run(
        &mut self,
        id: &str,
        status: RunStatus,
        exit_code: i32,
        git_end: &GitState,
        ended_at: i64,
    ) -> Result<()> {
        finish_run(&mut self.conn, id, status, exit_code, git_end, ended_at)
            .during(format_args!("recording the end of run {id}"))
    }

    /// Record a step's start (`running`, its own transaction); returns its execution id.
    pub fn begin_step(&mut self, b: &StepBegin<'_>) -> Result<i64> {
        begin_step(&mut self.conn, b).during(format_args!("recording the start of step {}", b.step))
    }

    /// Complete a step's record in one transaction (flushing what the stat cache learnt).
    pub fn finish_step(&mut self, exec_id: i64, r: &StepRecord, cache: &HashCache) -> Result<()> {
        finish_step(&mut self.conn, exec_id, r, cache)
            .during(format_args!("recording step execution {exec_id}"))
    }

    /// Record a reused step whole, in one transaction.
    pub fn record_reuse(
        &mut self,
        b: &StepBegin<'_>,
        r: &StepRecord,
        cache: &HashCache,
    ) -> Result<i64> {
        record_reuse(&mut self.conn, b, r, cache)
            .during(format_args!("recording the reuse of step {}", b.step))
    }

    /// Record several reused steps in one transaction: all or none.
    pub fn record_reuses(
        &mut self,
        steps: &[(StepBegin<'_>, &StepRecord)],
        cache: &HashCache,
    ) -> Result<Vec<i64>> {
        record_reuses(&mut self.conn, steps, cache)
            .during(format_args!("recording {} reused steps", steps.len()))
    }

    /// Record a step that was not run, and why.
    pub fn record_not_run(
        &mut self,
        run_id: &str,
        step: &str,
        cmd: &str,
        argv_json: &str,
        cwd: &str,
        reason: &str,
    ) -> Result<()> {
        record_not_run(&mut self.conn, run_id, step, cmd, argv_json, cwd, reason)
            .during(format_args!("recording that step {step} did not run"))
    }

    /// Close a step whose record could not be written as `failed`, with the reason.
    pub fn close_unrecorded(&mut self, exec_id: i64, error: &str, ended_at: i64) -> Result<()> {
        close_unrecorded(&mut self.conn, exec_id, error, ended_at)
            .during(format_args!("closing step execution {exec_id}"))
    }
}

//! Running a `Plan`: schedule steps in dependency order (parallel up to `-j`), supervise each
//! one's process, fingerprint around it, and record everything in the store.
//!
//! Around every step: inputs are hashed before it starts; after it exits, its declared outputs
//! and metrics are read, the git state is taken again and the environment snapshot is built.
//! The step's record is then written in one transaction. A step that reuses an earlier execution
//! runs nothing: its record is queued and committed together with the other reused steps' (see
//! `Writer`), before anything else is written. A failed or interrupted step never records
//! outputs as artifact versions.

pub mod aside;
pub mod capture;
pub mod child;
pub mod incremental;
mod input_copy;
mod model;
pub mod output;
pub mod recorded;
mod records;
pub mod trace;
pub mod unix;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::error::{Error, Result, exit};
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::env::Redactor;
use crate::fingerprint::git::{self, GitState};
use crate::fingerprint::hash::{self, Fingerprint};
use crate::fingerprint::metrics::Metrics;
use crate::fingerprint::system::{EnvSnapshot, InterpreterCache, LockSearch, SystemInfo};
use crate::pipeline::{Plan, Step, TraceMode, params};
use crate::report;
use crate::store::lock::ObjectsHold;
use crate::store::objects::Objects;
use crate::store::record::{self, Io, Origin, RunStatus, StepStatus, now_ms};
use crate::store::{self, Store};
use child::{ChildSpec, Interrupt};
use incremental::CacheParts;
use output::Printer;

pub struct RunOptions {
    pub jobs: usize,
    pub keep_going: bool,
    pub grace: Duration,
    /// how mlrun was invoked, recorded with the run
    pub argv: Vec<String>,
    pub replay_of: Option<String>,
    pub force: Force,
    /// reuse executions recorded by replays too (`mlrun run --reuse-replays`)
    pub reuse_replays: bool,
    /// keep no bytes in the object store (hashes are still recorded)
    pub no_store: bool,
    /// neither consult nor fill the stat cache (a replay's scratch tree is thrown away)
    pub no_cache: bool,
    /// record this git state instead of reading one (a replay's scratch tree is the recorded
    /// commit plus the recorded diff, not a repository of its own)
    pub git_fixed: Option<GitState>,
    /// record the run at this (project root, pipeline file) instead of where it executes: a
    /// replay runs in a scratch tree but is the same project, so its artifacts keep their names
    pub recorded_location: Option<(PathBuf, PathBuf)>,
    /// `--trace[=MODE]`, over pipeline.toml's `trace` settings
    pub trace: Option<TraceMode>,
    /// the run's id, when the caller chose it (to name the run in the pipeline lock first)
    pub run_id: Option<String>,
    /// `mlrun run -m TEXT`: the run's message
    pub message: Option<String>,
}

/// Which steps run even when an earlier execution could be reused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Force {
    #[default]
    None,
    All,
    Steps(Vec<String>),
}

impl Force {
    pub fn applies_to(&self, step: &str) -> bool {
        match self {
            Force::None => false,
            Force::All => true,
            Force::Steps(s) => s.iter().any(|n| n == step),
        }
    }
}

/// Per-step result, also the `steps[]` entries of `mlrun run --json`.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    pub name: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub outputs: Vec<OutputSummary>,
    #[serde(serialize_with = "crate::fingerprint::metrics::ser_map")]
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputSummary {
    pub path: String,
    pub hash: String,
    pub kind: &'static str,
    pub size: u64,
    pub files: usize,
    /// seen by `--trace`, not declared
    pub observed: bool,
}

/// The `mlrun run --json` document.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run_id: String,
    pub short_id: String,
    pub pipeline: String,
    pub status: String,
    pub exit_code: i32,
    pub duration_ms: i64,
    pub commit: Option<String>,
    pub dirty: bool,
    pub store: String,
    pub steps: Vec<StepOutcome>,
}

struct Ctx {
    plan: Plan,
    run_id: String,
    store: Mutex<Writer>,
    /// a flush of the reused steps' pending records is scheduled
    flush_armed: std::sync::atomic::AtomicBool,
    printer: Arc<Printer>,
    system: SystemInfo,
    lockfiles: BTreeMap<String, String>,
    interpreters: InterpreterCache,
    redactor: Redactor,
    /// the plan with its secrets replaced by markers: what is recorded and shown
    recorded: recorded::Recorded,
    inherited: InheritedEnv,
    git_latest: Mutex<GitState>,
    tracked: Option<git::Tracked>,
    git_fixed: Option<GitState>,
    cache: HashCache,
    /// what each step is doing that can take long before or after it runs (see `progress`)
    busy: Mutex<BTreeMap<String, Phase>>,
    /// per step: time spent hashing and storing its files, part of the step's time
    files_time: Mutex<BTreeMap<String, Duration>>,
    objects: Objects,
    force: Force,
    reuse_replays: bool,
    no_store: bool,
    interrupt: watch::Receiver<Interrupt>,
    grace: Duration,
    tmp: PathBuf,
    trace: Option<TraceMode>,
    /// per step: the git refs its last attempt moved (taken by `finish` into the record)
    repo_changes: Mutex<BTreeMap<String, Vec<git::RefChange>>>,
    /// the repository's refs, compared around each step (`None`: no repository, or a replay)
    refs: Option<git::RefWatch>,
    /// logs kept in the object store, and the record writes that failed
    records: records::Records,
    /// copies of untracked inputs made while their step runs (`input_copy`)
    input_copies: input_copy::InputCopies,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done(StepStatus),
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

impl Ctx {
    /// Keep `gc` from deleting objects while this is held; `None` (after a warning) when the
    /// lock cannot be taken: storing then goes on, as it did before there was a lock. Blocking.
    fn hold_objects(&self) -> Option<ObjectsHold> {
        ObjectsHold::take(self.objects.store_dir(), || {
            self.printer
                .note("waiting for `mlrun gc` to finish with the object store…")
        })
        .map_err(|e| self.printer.warn(&e.to_string()))
        .ok()
    }

    /// The git state now, or the fixed one a replay reconstructed.
    fn git_snapshot(&self) -> GitState {
        match &self.git_fixed {
            Some(g) => g.clone(),
            None => git::snapshot(&self.plan.root),
        }
    }

    /// Write to the store. The records of reused steps still pending are written first, so the
    /// store never holds a later write without the earlier ones.
    fn with_store<T>(&self, f: impl FnOnce(&mut rusqlite::Connection) -> Result<T>) -> Result<T> {
        let mut w = self.store.lock().expect("store lock");
        self.flush_reused(&mut w);
        f(&mut w.store.conn)
    }

    /// Read from the store, leaving pending records pending.
    fn read_store<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        let w = self.store.lock().expect("store lock");
        f(&w.store.conn)
    }

    /// Queue a reused step's record; it is committed with the others queued near it (see
    /// `Writer`).
    fn record_reused(&self, r: PendingReuse) {
        self.store.lock().expect("store lock").reused.push(r);
    }

    /// Commit the queued records of reused steps in one transaction. Should that fail, each is
    /// tried in a transaction of its own, so one bad record does not cost the others theirs.
    fn flush_reused(&self, w: &mut Writer) {
        if w.reused.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut w.reused);
        let conn = &mut w.store.conn;
        let batch: Vec<_> = pending
            .iter()
            .map(|p| (p.begin(&self.run_id), &p.rec))
            .collect();
        if batch.len() > 1 && record::record_reuses(conn, &batch, &self.cache).is_ok() {
            return;
        }
        for (p, (begin, rec)) in pending.iter().zip(&batch) {
            if let Err(e) = record::record_reuse(conn, begin, rec, &self.cache) {
                self.record_failed(&p.step, &e);
            }
        }
    }
}

/// Reused steps change nothing on disk but their own outputs' restores, and their records are
/// many and small in a no-op run: committing each alone made the commit, not the work, the cost
/// of a cached step. So their records wait in `reused` until anything else is written (a step
/// starting, a step not run, the run's end) or `REUSED_FLUSH_AFTER` has passed, whichever comes
/// first, and are then committed together. Each record is still whole or absent: a crash loses
/// at most the records of steps that were reused in that short window, never part of one.
struct Writer {
    store: Store,
    reused: Vec<PendingReuse>,
}

const REUSED_FLUSH_AFTER: Duration = Duration::from_millis(100);

/// A reused step's record, owned until it is written.
struct PendingReuse {
    step: String,
    attempt: u32,
    seq: usize,
    cmd: String,
    argv_json: String,
    cwd: String,
    started_at: i64,
    git_before: GitState,
    rec: record::StepRecord,
    /// keeps `gc` out until this record is committed (see `store::lock::ObjectsHold`)
    _hold: Option<ObjectsHold>,
}

impl PendingReuse {
    fn new(b: &record::StepBegin<'_>, rec: record::StepRecord) -> Self {
        PendingReuse {
            step: b.step.to_string(),
            attempt: b.attempt,
            seq: b.seq,
            cmd: b.cmd.to_string(),
            argv_json: b.argv_json.to_string(),
            cwd: b.cwd.to_string(),
            started_at: b.started_at,
            git_before: b.git_before.clone(),
            rec,
            _hold: None,
        }
    }

    fn begin<'a>(&'a self, run_id: &'a str) -> record::StepBegin<'a> {
        record::StepBegin {
            run_id,
            step: &self.step,
            attempt: self.attempt,
            seq: self.seq,
            cmd: &self.cmd,
            argv_json: &self.argv_json,
            cwd: &self.cwd,
            started_at: self.started_at,
            git_before: &self.git_before,
        }
    }
}

/// Make sure the pending records of reused steps are committed within `REUSED_FLUSH_AFTER`.
fn arm_flush(ctx: &Arc<Ctx>) {
    use std::sync::atomic::Ordering;
    if ctx.flush_armed.swap(true, Ordering::SeqCst) {
        return;
    }
    let c = ctx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(REUSED_FLUSH_AFTER).await;
        c.flush_armed.store(false, Ordering::SeqCst);
        let c2 = c.clone();
        blocking(move || {
            let mut w = c2.store.lock().expect("store lock");
            c2.flush_reused(&mut w);
        })
        .await;
    });
}

/// Something a step is doing besides running: hashing or storing its files.
struct Phase {
    what: &'static str,
    since: std::time::Instant,
    /// `hash::bytes_read()` when it began
    bytes_at_start: u64,
}

/// A phase in `Ctx::busy` until dropped.
struct Busy<'a> {
    ctx: &'a Ctx,
    step: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut busy = self.ctx.busy.lock().expect("busy lock");
        if let Some(p) = busy.remove(&self.step) {
            *self
                .ctx
                .files_time
                .lock()
                .expect("files time lock")
                .entry(self.step.clone())
                .or_default() += p.since.elapsed();
        }
        // the last phase over: take its progress line off now, not at the next tick
        if busy.is_empty() {
            drop(busy);
            self.ctx.printer.progress(None);
        }
    }
}

impl Ctx {
    fn busy(&self, step: &str, what: &'static str) -> Busy<'_> {
        if !self.printer.live() && crate::report::progress::announce() {
            self.printer
                .note(&crate::report::progress::started_line(&format!(
                    "{what} `{step}`"
                )));
        }
        self.busy.lock().expect("busy lock").insert(
            step.to_string(),
            Phase {
                what,
                since: std::time::Instant::now(),
                bytes_at_start: hash::bytes_read(),
            },
        );
        Busy {
            ctx: self,
            step: step.to_string(),
        }
    }
}

/// Say what is taking long while no step output shows the run is alive: hashing or storing
/// that has lasted 1 s (on a terminal, one line redrawn 4 times a second) or one
/// `log_progress_every` period (elsewhere, a line each period).
async fn progress(ctx: Arc<Ctx>) {
    let live = ctx.printer.live();
    let (every, after) = crate::report::progress::cadence(live);
    loop {
        tokio::time::sleep(every).await;
        let line = progress_line(&ctx, after);
        if live {
            ctx.printer.progress(line);
        } else if let Some(l) = line {
            ctx.printer.note(&l);
        }
    }
}

/// "hashing the inputs of `train` · 12s · 3.2 GB read at 1.9 GB/s", for the phases that have
/// lasted at least `after`.
fn progress_line(ctx: &Ctx, after: Duration) -> Option<String> {
    let now = std::time::Instant::now();
    let busy = ctx.busy.lock().expect("busy lock");
    let long: Vec<(&String, &Phase)> = busy
        .iter()
        .filter(|(_, p)| now.duration_since(p.since) >= after)
        .collect();
    let oldest = long.iter().map(|(_, p)| p).min_by_key(|p| p.since)?;
    let what = long
        .iter()
        .map(|(step, p)| format!("{} `{step}`", p.what))
        .collect::<Vec<_>>()
        .join(", ");
    Some(crate::report::progress::line(
        &what,
        now.duration_since(oldest.since),
        hash::bytes_read().saturating_sub(oldest.bytes_at_start),
    ))
}

/// `-j` when not given: the number of cores.
pub fn default_jobs(jobs: Option<u16>) -> usize {
    jobs.map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Run the plan to completion on a runtime of its own (the only async part of mlrun).
pub fn run_blocking(
    plan: Plan,
    store: Store,
    opts: RunOptions,
    printer: Arc<Printer>,
) -> Result<RunOutcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.jobs.clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| Error::other("cannot start the async runtime").cause(e))?;
    runtime.block_on(run(plan, store, opts, printer))
}

/// Run the plan, recording it in `store`. Returns the outcome; the caller prints JSON if asked.
pub async fn run(
    plan: Plan,
    store: Store,
    opts: RunOptions,
    printer: Arc<Printer>,
) -> Result<RunOutcome> {
    let started = now_ms();
    let run_id = opts
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let root = plan.root.clone();
    let fixed = opts.git_fixed.clone();
    let search = LockSearch::of(&plan);
    let (system, git_start, locks, tracked) = blocking(move || {
        let git = fixed.unwrap_or_else(|| git::snapshot(&root));
        let locks = search.find(git.workdir.as_deref().map(std::path::Path::new));
        (SystemInfo::read(), git, locks, git::Tracked::load(&root))
    })
    .await;
    let key = crate::fingerprint::key::SecretKey::load()?;
    if let Some(w) = key.warning() {
        printer.warn(&w);
    }
    let redactor = Redactor::new(&key, &plan.redact, &plan.keep);
    let recorded = recorded::Recorded::of(&redactor, &plan);
    // This run's own scratch space: runs sharing a store never remove each other's.
    let scratch =
        store::owner::Owned::create_dir(&store.dir.join("tmp"), &run_id).map_err(|e| {
            Error::store("cannot create the run's directory in the store's tmp/").cause(e)
        })?;
    let tmp = scratch.path().to_path_buf();
    let store_dir = store.dir.clone();
    let cache = if opts.no_cache {
        HashCache::disabled()
    } else {
        HashCache::load(&store.conn, &plan.root)?
    };
    let scans = store::packages::remembered_scans(&store.conn)?;

    let (int_tx, int_rx) = watch::channel(Interrupt::None);
    let signals = tokio::spawn(watch_signals(int_tx, printer.clone(), opts.grace));

    let ctx = Arc::new(Ctx {
        run_id: run_id.clone(),
        store: Mutex::new(Writer {
            store,
            reused: Vec::new(),
        }),
        flush_armed: std::sync::atomic::AtomicBool::new(false),
        printer: printer.clone(),
        system,
        lockfiles: locks,
        interpreters: InterpreterCache::with_scans(scans),
        inherited: InheritedEnv::capture(&redactor),
        redactor,
        recorded,
        git_latest: Mutex::new(git_start.clone()),
        tracked,
        git_fixed: opts.git_fixed.clone(),
        cache,
        busy: Mutex::new(BTreeMap::new()),
        files_time: Mutex::new(BTreeMap::new()),
        objects: Objects::new(&store_dir),
        force: opts.force.clone(),
        reuse_replays: opts.reuse_replays,
        no_store: opts.no_store,
        interrupt: int_rx.clone(),
        grace: opts.grace,
        tmp,
        trace: opts.trace,
        repo_changes: Mutex::new(BTreeMap::new()),
        refs: opts
            .git_fixed
            .is_none()
            .then(|| git::RefWatch::new(&plan.root))
            .flatten(),
        records: records::Records::new(&store_dir),
        input_copies: Default::default(),
        plan,
    });
    {
        // Secrets of pipeline.toml and the params (see `recorded`) are masked in the recorded
        // spec and plan, and in mlrun's own recorded command line (`-p password=…`).
        let mut recorded = ctx.recorded.plan.clone();
        if let Some((root, file)) = &opts.recorded_location {
            recorded.root = root.clone();
            recorded.file = file.clone();
        }
        let spec = crate::fingerprint::env::mask(&ctx.plan.source, &ctx.recorded.secrets);
        let plan_json = serde_json::to_string(&recorded).unwrap_or_default();
        let params_json = serde_json::to_string(&recorded.params).unwrap_or_default();
        let argv_json = serde_json::to_string(&ctx.recorded.argv(&ctx.redactor, &opts.argv))
            .unwrap_or_default();
        let file = recorded.file.to_string_lossy();
        let root = recorded.root.to_string_lossy();
        let message = opts
            .message
            .as_deref()
            .map(|m| crate::fingerprint::env::mask(m, &ctx.recorded.secrets));
        ctx.with_store(|c| {
            record::insert_run(
                c,
                &record::RunStart {
                    id: &run_id,
                    pipeline: &ctx.plan.name,
                    pipeline_file: &file,
                    root: &root,
                    spec: &spec,
                    plan_json: &plan_json,
                    params_json: &params_json,
                    started_at: started,
                    git: &git_start,
                    hostname: &ctx.system.hostname,
                    user: &ctx.system.user,
                    argv_json: &argv_json,
                    replay_of: opts.replay_of.as_deref(),
                    message: message.as_deref(),
                },
            )
        })?;
    }

    let short = ctx.with_store(|c| store::query::short_id(c, &run_id))?;
    let style = printer.style();
    let commit_note = describe_commit(&git_start);
    printer.event(&format!(
        "{} {} {} · {} step{} · {}",
        style.bold("run"),
        style.cyan(&short),
        ctx.plan.name,
        ctx.plan.steps.len(),
        if ctx.plan.steps.len() == 1 { "" } else { "s" },
        commit_note
    ));

    let progress = tokio::spawn(progress(ctx.clone()));
    let (outcomes, first_failed) = schedule(&ctx, &opts, int_rx).await;
    signals.abort();
    progress.abort();
    printer.progress(None);

    let interrupted = *ctx.interrupt.borrow();
    // The first step to fail decides the exit code: its own, 124 for a timeout (as `timeout(1)`
    // does), 1 when it exited 0 but broke a promise (a missing output).
    let first_failure = first_failed.map(|i| {
        let o = &outcomes[i];
        match o.status.as_str() {
            "timed_out" => exit::TIMED_OUT,
            _ => o.exit_code.filter(|c| *c != 0).unwrap_or(exit::FAILURE),
        }
    });
    // A run whose record is incomplete is mlrun's own failure, whatever its steps did.
    let unrecorded = ctx.records.failures();
    let (status, exit_code) = match interrupted {
        Interrupt::Graceful(sig) | Interrupt::Kill(sig) => (RunStatus::Interrupted, 128 + sig),
        Interrupt::None if !unrecorded.is_empty() => (RunStatus::Failed, exit::FAILURE),
        Interrupt::None => match first_failure {
            Some(code) => (RunStatus::Failed, code),
            None => (RunStatus::Succeeded, exit::OK),
        },
    };
    // One metric name from several steps: the run-level value is the latest step's in the plan.
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in &outcomes {
        for k in o.metrics.keys() {
            by_key.entry(k).or_default().push(&o.name);
        }
    }
    for (k, steps) in by_key.iter().filter(|(_, s)| s.len() > 1) {
        let list = steps
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        printer.warn(&format!(
            "metric `{k}` is reported by steps {list}; `mlrun runs` shows and filters on the value from `{}`, the latest in the plan (give the metrics distinct names to compare them)",
            steps.last().copied().unwrap_or_default()
        ));
    }
    let c = ctx.clone();
    let git_end = blocking(move || c.git_snapshot()).await;
    let ended = now_ms();
    if let Err(e) =
        ctx.with_store(|c| record::finish_run(c, &run_id, status, exit_code, &git_end, ended))
    {
        ctx.records.run_unrecorded(&run_id, &e);
        return Err(e.hint(
            "the run's record is incomplete; the next mlrun command that opens the store marks it failed, with the reason",
        ));
    }
    ctx.records.run_recorded(&run_id);
    if !unrecorded.is_empty() {
        printer.warn(&format!(
            "the record of this run is incomplete ({}); it is recorded as failed",
            unrecorded.join("; ")
        ));
    }

    let ok = outcomes.iter().filter(|o| o.status == "succeeded").count();
    let reused = outcomes
        .iter()
        .filter(|o| o.status == "cached" || o.status == "restored")
        .count();
    let failed = outcomes.iter().filter(|o| o.status == "failed").count();
    let timed_out = outcomes.iter().filter(|o| o.status == "timed_out").count();
    let not_run = outcomes.iter().filter(|o| o.status == "not_run").count();
    let stopped = outcomes
        .iter()
        .filter(|o| o.status == "interrupted")
        .count();
    let store_shown = store_dir
        .join(store::DB_FILE)
        .strip_prefix(std::env::current_dir().unwrap_or_default())
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|_| store_dir.join(store::DB_FILE));
    let took = report::duration_ms(ended - started);
    let line = match status {
        RunStatus::Succeeded => {
            let total = ok + reused;
            let detail = match (ok, reused) {
                (_, 0) => String::new(),
                (0, _) => " (all up to date)".to_string(),
                (ran, r) => format!(" ({ran} ran, {r} up to date)"),
            };
            format!(
                "{} {} finished: {total} step{} ok{detail} in {took} · {commit_note} · store {}",
                style.bold("run"),
                style.cyan(&short),
                if total == 1 { "" } else { "s" },
                store_shown.display()
            )
        }
        _ => {
            let mut parts = Vec::new();
            for (n, what) in [
                (ok, "ok"),
                (reused, "up to date"),
                (failed, "failed"),
                (timed_out, "timed out"),
                (stopped, "interrupted"),
                (not_run, "not run"),
            ] {
                if n > 0 {
                    parts.push(format!("{n} {what}"));
                }
            }
            let verb = if status == RunStatus::Interrupted {
                "interrupted"
            } else {
                "failed"
            };
            format!(
                "{} {} {}: {} in {took} · exit code {exit_code} · store {}",
                style.bold("run"),
                style.cyan(&short),
                style.status(verb),
                parts.join(", "),
                store_shown.display()
            )
        }
    };
    printer.event(&line);
    drop(scratch);

    Ok(RunOutcome {
        run_id: run_id.clone(),
        short_id: short,
        pipeline: ctx.plan.name.clone(),
        status: status.as_str().to_string(),
        exit_code,
        duration_ms: ended - started,
        commit: git_start.commit.clone(),
        dirty: git_start.dirty,
        store: store_dir
            .join(store::DB_FILE)
            .to_string_lossy()
            .into_owned(),
        steps: outcomes,
    })
}

fn describe_commit(g: &GitState) -> String {
    if !g.is_repo {
        "no git repository".into()
    } else if g.commit.is_none() {
        "no commit yet".into()
    } else if g.dirty {
        format!("commit {} (dirty)", g.short_commit())
    } else {
        format!("commit {}", g.short_commit())
    }
}

/// First SIGINT/SIGTERM: graceful stop. Second: kill at once.
async fn watch_signals(tx: watch::Sender<Interrupt>, printer: Arc<Printer>, grace: Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let mut count = 0;
    loop {
        let sig = tokio::select! {
            _ = int.recv() => 2,
            _ = term.recv() => 15,
        };
        count += 1;
        if count == 1 {
            printer.warn(&format!(
                "interrupted: stopping running steps (SIGTERM, SIGKILL after {}); interrupt again to kill them now",
                report::duration_ms(grace.as_millis() as i64)
            ));
            let _ = tx.send(Interrupt::Graceful(sig));
        } else {
            printer.warn("interrupted again: killing the running steps now");
            let _ = tx.send(Interrupt::Kill(sig));
        }
    }
}

/// Run every step that can run; returns the outcomes in plan order and the index of the step
/// that failed first (in time), whose exit code mlrun passes on.
async fn schedule(
    ctx: &Arc<Ctx>,
    opts: &RunOptions,
    mut int_rx: watch::Receiver<Interrupt>,
) -> (Vec<StepOutcome>, Option<usize>) {
    let n = ctx.plan.steps.len();
    let mut state = vec![State::Pending; n];
    let mut outcomes: Vec<Option<StepOutcome>> = vec![None; n];
    let mut running = tokio::task::JoinSet::new();
    let mut stop_reason: Option<String> = None;
    let mut first_failed = None;
    let jobs = opts.jobs.max(1);

    loop {
        if stop_reason.is_none() {
            for i in 0..n {
                if state[i] != State::Pending {
                    continue;
                }
                let step = &ctx.plan.steps[i];
                let blocked = step
                    .deps
                    .iter()
                    .find(|&&d| matches!(state[d], State::Done(s) if !s.ok()));
                if let Some(&d) = blocked {
                    let reason = format!("not run: `{}` did not succeed", ctx.plan.steps[d].name);
                    state[i] = State::Done(StepStatus::NotRun);
                    outcomes[i] = Some(not_run(ctx, i, &reason));
                    continue;
                }
                let ready = step
                    .deps
                    .iter()
                    .all(|&d| matches!(state[d], State::Done(s) if s.ok()));
                if ready && running.len() < jobs {
                    state[i] = State::Running;
                    let c = ctx.clone();
                    running.spawn(async move { (i, run_step(c, i).await) });
                }
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { break };
                let (i, outcome) = joined.expect("step task panicked");
                let status = match outcome.status.as_str() {
                    "succeeded" => StepStatus::Succeeded,
                    "cached" => StepStatus::Cached,
                    "timed_out" => StepStatus::TimedOut,
                    "restored" => StepStatus::Restored,
                    "interrupted" => StepStatus::Interrupted,
                    _ => StepStatus::Failed,
                };
                state[i] = State::Done(status);
                if matches!(status, StepStatus::Failed | StepStatus::TimedOut) && first_failed.is_none() {
                    first_failed = Some(i);
                }
                if matches!(status, StepStatus::Failed | StepStatus::TimedOut) && !opts.keep_going && stop_reason.is_none() {
                    stop_reason = Some(format!("not run: the run stopped after `{}` failed", ctx.plan.steps[i].name));
                }
                outcomes[i] = Some(outcome);
            }
            changed = int_rx.changed(), if stop_reason.is_none() => {
                if changed.is_ok() && *int_rx.borrow() != Interrupt::None {
                    stop_reason = Some("not run: mlrun was interrupted".into());
                }
            }
        }
    }
    let reason = stop_reason.unwrap_or_else(|| "not run".into());
    for i in 0..n {
        if state[i] == State::Pending {
            outcomes[i] = Some(not_run(ctx, i, &reason));
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.expect("every step has an outcome"))
        .collect();
    (outcomes, first_failed)
}

fn not_run(ctx: &Ctx, i: usize, reason: &str) -> StepOutcome {
    let step = &ctx.recorded.plan.steps[i];
    let argv = serde_json::to_string(&step.cmd.argv()).unwrap_or_default();
    if let Err(e) = ctx.with_store(|c| {
        record::record_not_run(
            c,
            &ctx.run_id,
            &step.name,
            &step.cmd.display(),
            &argv,
            &step.cwd,
            reason,
        )
    }) {
        ctx.record_failed(&step.name, &e);
    }
    let style = ctx.printer.style();
    ctx.printer.event(&format!(
        "{} {:<w$}  {}",
        style.yellow("-"),
        step.name,
        style.dim(reason),
        w = ctx.printer.width()
    ));
    StepOutcome {
        name: step.name.clone(),
        status: StepStatus::NotRun.as_str().into(),
        exit_code: None,
        signal: None,
        duration_ms: None,
        error: Some(reason.to_string()),
        outputs: Vec::new(),
        metrics: BTreeMap::new(),
    }
}

fn fingerprint_all(
    root: &std::path::Path,
    decls: &[crate::pipeline::PathDecl],
    cache: &HashCache,
) -> Result<Vec<Io>> {
    decls
        .iter()
        .map(|d| {
            let path = root.join(&d.path);
            hash::fingerprint(&path, cache)
                .map(|fp| Io::new(d.path.clone(), fp).with_link_of(&path))
        })
        .collect()
}

fn io_note(list: &[Io]) -> String {
    match list {
        [] => String::new(),
        [io] if io.fp.is_dir() => {
            format!("{}/ ({})", io.path, report::files(io.fp.nfiles() as u64))
        }
        [io] => io.path.clone(),
        many => {
            let files: usize = many.iter().map(|io| io.fp.nfiles()).sum();
            let bytes: u64 = many.iter().map(|io| io.fp.size()).sum();
            format!("{} ({})", report::files(files as u64), report::size(bytes))
        }
    }
}

/// Where an input version came from: another step of this pipeline, the git commit, or neither.
fn origin_of(ctx: &Ctx, io: &Io, git_before: &GitState) -> Origin {
    if ctx.plan.steps.iter().flat_map(|s| &s.outputs).any(|o| {
        crate::pipeline::plan::within(&io.path, &o.path)
            || crate::pipeline::plan::within(&o.path, &io.path)
    }) {
        return Origin::Step;
    }
    let entries: Option<Vec<String>> = match &io.fp {
        Fingerprint::Dir { entries, .. } => {
            Some(entries.iter().map(|e| e.relpath.clone()).collect())
        }
        Fingerprint::File { .. } => None,
    };
    match &ctx.tracked {
        Some(t) if t.clean(&io.path, entries.as_deref(), &git_before.changed) => Origin::Git,
        _ => Origin::External,
    }
}

/// The environment a step runs with (mlrun's own, then `[env]`, then the step's `env`, then the
/// MLRUN_* variables), its redacted record, and the secret values to mask in its output.
fn step_env(
    ctx: &Ctx,
    step: &Step,
    metrics_file: &std::path::Path,
) -> (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    Vec<String>,
) {
    let mut env: BTreeMap<String, String> = step.env.clone();
    env.insert("MLRUN_RUN_ID".into(), ctx.run_id.clone());
    env.insert("MLRUN_STEP".into(), step.name.clone());
    env.insert(
        "MLRUN_METRICS".into(),
        metrics_file.to_string_lossy().into_owned(),
    );
    for (k, v) in &step.params {
        env.insert(params::env_name(k), params::render(v));
    }
    // mlrun's own environment was judged once for the run (`InheritedEnv`); only what the step
    // sets is judged here.
    let mut vars = BTreeMap::new();
    let mut secrets = Vec::new();
    for (k, recorded, secret) in ctx
        .inherited
        .0
        .iter()
        .filter(|(k, ..)| !env.contains_key(k))
    {
        vars.insert(k.clone(), recorded.clone());
        secrets.extend(secret.iter().cloned());
    }
    let (own, own_secrets) = ctx
        .redactor
        .capture(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    vars.extend(own);
    secrets.extend(own_secrets);
    // params are judged as params (`MLRUN_PARAM_*` follow them); what the plan holds secret
    // (in params, env, commands) is masked in this step's output too
    secrets.extend(recorded::param_vars(&ctx.redactor, step, &mut vars));
    secrets.extend(ctx.recorded.secrets.iter().cloned());
    (env, vars, secrets)
}

/// mlrun's own environment as every step records it: (name, recorded value, the secret value
/// when it is one), in the order the process environment lists it. It does not change during a
/// run, so the secret tests on every variable run once per run instead of once per step.
struct InheritedEnv(Vec<(String, String, Option<String>)>);

impl InheritedEnv {
    fn capture(redactor: &Redactor) -> Self {
        InheritedEnv(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .filter_map(|(k, v)| {
                    let (recorded, secret) = redactor.capture_one(&k, &v)?;
                    Some((k, recorded, secret))
                })
                .collect(),
        )
    }
}

/// Keep copies of `ios` in the object store, marking each one kept; a failure is reported and
/// leaves that version recorded but not restorable.
async fn store_objects(ctx: &Arc<Ctx>, step: &str, ios: Vec<Io>, what: &'static str) -> Vec<Io> {
    let c = ctx.clone();
    let step_name = step.to_string();
    let (ios, errors) = blocking(move || {
        let _busy = c.busy(
            &step_name,
            if what == "input" {
                "storing the inputs of"
            } else {
                "storing the outputs of"
            },
        );
        let mut errors = Vec::new();
        let mut ios = ios;
        let _hold = (!ios.is_empty()).then(|| c.hold_objects());
        for io in &mut ios {
            match c.objects.put(&c.plan.root.join(&io.path), &io.fp, &c.cache) {
                Ok(()) => io.stored = true,
                Err(e) => errors.push(format!(
                    "could not keep a copy of {what} `{}` in the object store: {}{}; its hash is recorded but this version cannot be restored",
                    io.path,
                    e.message,
                    e.causes.iter().map(|c| format!(": {c}")).collect::<String>()
                )),
            }
        }
        (ios, errors)
    })
    .await;
    for e in errors {
        ctx.printer.warn(&format!("{step}: {e}"));
    }
    ios
}

async fn run_step(ctx: Arc<Ctx>, i: usize) -> StepOutcome {
    let step = ctx.plan.steps[i].clone();
    let style = ctx.printer.style();
    let w = ctx.printer.width();
    let started = now_ms();
    let git_before = ctx.git_latest.lock().expect("git lock").clone();
    // the command as recorded and shown: secrets as markers
    let shown = &ctx.recorded.plan.steps[i].cmd;
    let argv_json = serde_json::to_string(&shown.argv()).unwrap_or_default();
    let cmd_display = shown.display();
    let metrics_file = ctx
        .tmp
        .join(format!("{}-{}.metrics", ctx.run_id, step.name));
    let (env, vars, secrets) = step_env(&ctx, &step, &metrics_file);

    // Inputs are fingerprinted before the step runs. Whether an earlier execution can be
    // reused is decided, and a reuse recorded, in the same blocking task: a cached step costs
    // one hand-off between threads.
    let c = ctx.clone();
    let forced = ctx.force.applies_to(&step.name);
    let (prepared, pre) = blocking(move || {
        let pre = PreStep {
            argv_json,
            cmd_display,
            git_before,
            vars,
        };
        let begin = pre.begin(&c, i, started);
        let prepared = prepare(&c, i, &begin, &pre.vars, forced);
        (prepared, pre)
    })
    .await;
    let PreStep {
        argv_json,
        cmd_display,
        git_before,
        vars,
    } = pre;
    let begin = record::StepBegin {
        run_id: &ctx.run_id,
        step: &step.name,
        attempt: 1,
        seq: i,
        cmd: &cmd_display,
        argv_json: &argv_json,
        cwd: &step.cwd,
        started_at: started,
        git_before: &git_before,
    };
    let (inputs, parts) = match prepared {
        Prepared::Reused(outcome) => {
            arm_flush(&ctx);
            return outcome;
        }
        Prepared::Run { inputs, parts } => (inputs, parts),
        Prepared::NoInputs(e) => {
            let msg = format!("could not fingerprint the inputs: {}", e.message);
            let exec_id = match ctx.with_store(|c| record::begin_step(c, &begin)) {
                Ok(id) => id,
                Err(e) => return failed_unrecorded(&ctx, &step.name, e),
            };
            let f = Finish::failed(exit::FAILURE, None, msg, Vec::new());
            return finish(
                &ctx,
                &step,
                exec_id,
                started,
                f,
                vars,
                Default::default(),
                Default::default(),
                None,
            )
            .await;
        }
    };

    // Inputs that neither a step nor the commit can give back are kept, so a replay can: copied
    // while the step runs, waited for by `finish` (input_copy).
    if !ctx.no_store {
        input_copy::start(&ctx, &step.name, &inputs).await;
    }

    let mut attempt = 1;
    loop {
        let attempt_started = if attempt == 1 { started } else { now_ms() };
        let git_now = ctx.git_latest.lock().expect("git lock").clone();
        let begin = record::StepBegin {
            attempt,
            started_at: attempt_started,
            git_before: &git_now,
            ..begin
        };
        let a = Attempt {
            step: &step,
            begin: &begin,
            inputs: inputs.clone(),
            env: &env,
            vars: vars.clone(),
            secrets: &secrets,
            metrics_file: &metrics_file,
            parts: parts.clone(),
        };
        let outcome = run_attempt(&ctx, i, a).await;
        let retryable = matches!(outcome.status.as_str(), "failed" | "timed_out")
            && outcome.exit_code != Some(127);
        if !retryable || attempt > step.retries || *ctx.interrupt.borrow() != Interrupt::None {
            return outcome;
        }
        attempt += 1;
        let delay = if step.retry_delay.is_zero() {
            String::new()
        } else {
            format!(
                " in {}",
                report::duration_ms(step.retry_delay.as_millis() as i64)
            )
        };
        ctx.printer.event(&format!(
            "{} {:<w$}  attempt {attempt} of {}{delay}",
            style.yellow("↻"),
            step.name,
            step.retries + 1,
        ));
        let mut int = ctx.interrupt.clone();
        tokio::select! {
            _ = tokio::time::sleep(step.retry_delay) => {}
            _ = int.changed() => return outcome,
        }
    }
}

/// What `prepare` borrows in its blocking task, handed back afterwards.
struct PreStep {
    argv_json: String,
    cmd_display: String,
    git_before: GitState,
    vars: BTreeMap<String, String>,
}

impl PreStep {
    fn begin<'a>(&'a self, ctx: &'a Ctx, i: usize, started: i64) -> record::StepBegin<'a> {
        let step = &ctx.plan.steps[i];
        record::StepBegin {
            run_id: &ctx.run_id,
            step: &step.name,
            attempt: 1,
            seq: i,
            cmd: &self.cmd_display,
            argv_json: &self.argv_json,
            cwd: &step.cwd,
            started_at: started,
            git_before: &self.git_before,
        }
    }
}

enum Prepared {
    /// the inputs could not be fingerprinted
    NoInputs(Error),
    /// an earlier execution was reused (and its record queued)
    Reused(StepOutcome),
    /// the step must run
    Run { inputs: Vec<Io>, parts: CacheParts },
}

/// Fingerprint a step's inputs and reuse an earlier execution if one fits (unless `forced`).
/// Blocking: it hashes files and may restore outputs.
fn prepare(
    ctx: &Arc<Ctx>,
    i: usize,
    begin: &record::StepBegin<'_>,
    vars: &BTreeMap<String, String>,
    forced: bool,
) -> Prepared {
    let step = &ctx.plan.steps[i];
    let busy = ctx.busy(&step.name, "hashing the inputs of");
    let inputs = fingerprint_all(&ctx.plan.root, &step.inputs, &ctx.cache);
    drop(busy);
    let mut inputs = match inputs {
        Ok(v) => v,
        Err(e) => return Prepared::NoInputs(e),
    };
    for io in &mut inputs {
        io.origin = Some(origin_of(ctx, io, begin.git_before));
    }
    let parts =
        CacheParts::of(&ctx.recorded.plan.steps[i], &inputs).marked_with(&ctx.recorded.marker_key);
    if !forced && let Some(outcome) = try_reuse(ctx, step, begin, &inputs, &parts, vars) {
        return Prepared::Reused(outcome);
    }
    Prepared::Run { inputs, parts }
}

/// What one attempt at running a step needs.
struct Attempt<'a> {
    step: &'a Step,
    begin: &'a record::StepBegin<'a>,
    inputs: Vec<Io>,
    env: &'a BTreeMap<String, String>,
    vars: BTreeMap<String, String>,
    secrets: &'a [String],
    metrics_file: &'a std::path::Path,
    parts: CacheParts,
}

/// Run the step's process once and record that execution.
async fn run_attempt(ctx: &Arc<Ctx>, i: usize, a: Attempt<'_>) -> StepOutcome {
    let Attempt {
        step,
        begin,
        mut inputs,
        env,
        vars,
        secrets,
        metrics_file,
        parts,
    } = a;
    let style = ctx.printer.style();
    let w = ctx.printer.width();
    let started = begin.started_at;
    let argv = step.cmd.argv();
    let exec_id = match ctx.with_store(|c| record::begin_step(c, begin)) {
        Ok(id) => id,
        Err(e) => return failed_unrecorded(ctx, &step.name, e),
    };
    ctx.printer.event(&format!(
        "{} {:<w$}  {}",
        style.cyan("▸"),
        step.name,
        style.dim(begin.cmd)
    ));
    let _ = std::fs::write(metrics_file, b"");
    // Its declared outputs are moved aside while it runs, so that it is never credited with a
    // file it did not write; they come back unless it succeeds (`aside`: dropped = put back).
    let root = ctx.plan.root.clone();
    let aside = match aside::Aside::move_aside(
        ctx.objects.store_dir(),
        &ctx.run_id,
        step,
        begin.attempt,
        &root,
    ) {
        Ok(a) => a,
        Err(msg) => {
            let f = Finish::failed(exit::FAILURE, None, msg, inputs);
            let (o, e) = (Default::default(), Default::default());
            return finish(ctx, step, exec_id, started, f, vars, o, e, Some(parts)).await;
        }
    };
    let refs_before = ctx.refs.as_ref().and_then(|r| r.now());

    let cwd = ctx.plan.root.join(&step.cwd);
    // --trace: the step runs under the tracer helper (exec/trace)
    let tracer = trace::Tracer::new(&ctx.tmp, &ctx.run_id, step, &ctx.plan, ctx.trace);
    let run_argv = tracer.as_ref().map(|t| t.wrap(&argv));
    let spec = ChildSpec {
        step: &step.name,
        argv: run_argv.as_deref().unwrap_or(&argv),
        cwd: &cwd,
        env,
        secrets,
        log_dir: &ctx.tmp,
        grace: ctx.grace,
        timeout: step.timeout,
    };
    let outcome = child::run(&spec, &ctx.printer, ctx.interrupt.clone()).await;
    let (outcome, observed) = trace::collect(tracer, outcome, &argv);
    if let Some(before) = &refs_before {
        note_repo_changes(ctx, step, before);
    }
    let metrics_lines = std::fs::read_to_string(metrics_file).unwrap_or_default();
    let _ = std::fs::remove_file(metrics_file);
    let key = Some(parts);
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let f = Finish::failed(127, None, e.message, inputs);
            return finish(
                ctx,
                step,
                exec_id,
                started,
                f,
                vars,
                Default::default(),
                Default::default(),
                key,
            )
            .await;
        }
    };
    let (stdout, stderr) = (outcome.stdout, outcome.stderr);

    if outcome.timed_out {
        let limit = step
            .timeout
            .map(|t| humantime::format_duration(t).to_string())
            .unwrap_or_default();
        let f = Finish {
            status: StepStatus::TimedOut,
            exit_code: Some(outcome.exit_code),
            signal: outcome.signal,
            error: Some(format!("timed out after {limit}")),
            inputs,
            outputs: Vec::new(),
            metrics: Metrics::new(),
        };
        return finish(ctx, step, exec_id, started, f, vars, stdout, stderr, key).await;
    }
    if let Some(sig) = outcome.interrupted {
        let f = Finish {
            status: StepStatus::Interrupted,
            exit_code: Some(outcome.exit_code),
            signal: outcome.signal,
            error: Some(format!("interrupted by {}", unix::signal_name(sig))),
            inputs,
            outputs: Vec::new(),
            metrics: Metrics::new(),
        };
        return finish(ctx, step, exec_id, started, f, vars, stdout, stderr, key).await;
    }
    // --trace: warn about undeclared files, record them as observed, decide strict mode
    let mut traced = trace::conclude(
        ctx,
        step,
        observed,
        begin.git_before,
        outcome.exit_code == 0,
    )
    .await;
    inputs.append(&mut traced.inputs);
    if outcome.exit_code != 0 {
        let msg = match outcome.signal {
            Some(s) => format!("killed by {}", unix::signal_name(s)),
            None => child::exit_reason(&step.cmd, outcome.exit_code, stderr.end()),
        };
        let msg = traced.explain(msg);
        let f = Finish::failed(outcome.exit_code, outcome.signal, msg, inputs);
        return finish(ctx, step, exec_id, started, f, vars, stdout, stderr, key).await;
    }

    // Success so far: every declared output and metrics file must exist.
    let missing: Vec<String> = step
        .outputs
        .iter()
        .filter(|o| {
            let p = ctx.plan.root.join(&o.path);
            !p.exists() || (o.dir && !p.is_dir())
        })
        .map(|o| {
            if o.dir {
                format!("{}/", o.path)
            } else {
                o.path.clone()
            }
        })
        .chain(aside.unwritten_dirs())
        .chain(aside.unwritten_links())
        .chain(
            step.metrics
                .iter()
                .filter(|m| !ctx.plan.root.join(m).is_file())
                .cloned(),
        )
        .collect();
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut msg = format!("exited 0 but did not produce declared output {list}");
        if aside.moved() {
            msg += "; the previous outputs are put back";
        }
        let f = Finish::failed(exit::FAILURE, None, msg, inputs);
        return finish(ctx, step, exec_id, started, f, vars, stdout, stderr, key).await;
    }
    if let Some(msg) = traced.strict_failure.take() {
        let f = Finish::failed(exit::FAILURE, None, msg, inputs);
        return finish(ctx, step, exec_id, started, f, vars, stdout, stderr, key).await;
    }
    let c = ctx.clone();
    let outputs = blocking(move || {
        let _busy = c.busy(&c.plan.steps[i].name, "hashing the outputs of");
        fingerprint_all(&c.plan.root, &c.plan.steps[i].outputs, &c.cache)
    })
    .await;
    let _hold;
    let mut outputs = match outputs {
        Ok(o) => o,
        Err(e) => {
            let msg = format!("could not fingerprint the outputs: {}", e.message);
            let f = Finish::failed(exit::FAILURE, None, msg, inputs);
            return finish(ctx, step, exec_id, started, f, vars, stdout, stderr, key).await;
        }
    };
    if !ctx.no_store {
        let (keep, skip): (Vec<Io>, Vec<Io>) = outputs
            .into_iter()
            .partition(|io| step.outputs.iter().any(|d| d.path == io.path && d.store));
        // held until the step's record (which references them) is committed, in `finish`
        let c = ctx.clone();
        _hold = if keep.is_empty() {
            None
        } else {
            blocking(move || c.hold_objects()).await
        };
        outputs = store_objects(ctx, &step.name, keep, "output").await;
        outputs.extend(skip);
        outputs.sort_by(|a, b| a.path.cmp(&b.path));
    }
    let mut metrics = Metrics::new();
    for m in &step.metrics {
        if let Err(w) = metrics.read_file(&ctx.plan.root.join(m), m) {
            metrics.warnings.push(w);
        }
    }
    metrics.read_lines(&metrics_lines);
    for e in blocking(move || aside.discard()).await {
        ctx.printer.warn(&format!("{}: {e}", step.name));
    }
    outputs.append(&mut traced.outputs);
    let f = Finish {
        status: StepStatus::Succeeded,
        exit_code: Some(0),
        signal: None,
        error: None,
        inputs,
        outputs,
        metrics,
    };
    finish(ctx, step, exec_id, started, f, vars, stdout, stderr, key).await
}

/// Reuse an earlier execution with the same cache key when its outputs are on disk (`cached`) or
/// can be restored from the object store (`restored`). `None`: the step must run. Blocking.
fn try_reuse(
    ctx: &Arc<Ctx>,
    step: &Step,
    begin: &record::StepBegin<'_>,
    inputs: &[Io],
    parts: &CacheParts,
    vars: &BTreeMap<String, String>,
) -> Option<StepOutcome> {
    let key = parts.key();
    // From reading what is stored until the record is committed, gc must not delete it.
    let hold = ctx.hold_objects();
    let reusable = ctx
        .read_store(|c| incremental::find_reusable(c, &key, ctx.reuse_replays))
        .ok()??;
    let on_disk: Vec<Option<String>> = step
        .outputs
        .iter()
        .map(|d| {
            hash::fingerprint(&ctx.plan.root.join(&d.path), &ctx.cache)
                .ok()
                .map(|f| f.hash().to_string())
        })
        .collect();
    let mut restored = Vec::new();
    for (decl, now) in step.outputs.iter().zip(on_disk) {
        let recorded = reusable.outputs.iter().find(|o| o.path == decl.path)?;
        if now.as_deref() == Some(recorded.fp.hash()) {
            continue;
        }
        if !ctx.objects.can_restore(&recorded.fp) {
            return None;
        }
        if let Err(e) = ctx.objects.restore_io(recorded, &ctx.plan.root) {
            ctx.printer.warn(&format!(
                "{}: cannot restore `{}`: {}; running the step instead",
                step.name, decl.path, e.message
            ));
            return None;
        }
        restored.push(decl.path.clone());
    }
    let status = if restored.is_empty() {
        StepStatus::Cached
    } else {
        StepStatus::Restored
    };
    let interpreters = ctx.interpreters.versions(
        &step.cmd.programs(),
        &ctx.plan.root.join(&step.cwd),
        vars.get("PATH").map(String::as_str),
    );
    let packages =
        ctx.interpreters
            .packages(&step.cmd.programs(), &ctx.plan.root.join(&step.cwd), vars);
    let ended = now_ms();
    let rec = record::StepRecord {
        status,
        exit_code: Some(0),
        signal: None,
        error: None,
        ended_at: ended,
        inputs: inputs.to_vec(),
        outputs: reusable.outputs.clone(),
        params: ctx.redactor.params(&step.params).0,
        metrics: reusable.metrics.clone(),
        git_after: begin.git_before.clone(),
        env: EnvSnapshot {
            system: ctx.system.clone(),
            interpreters,
            lockfiles: ctx.lockfiles.clone(),
            vars: vars.clone(),
            packages,
        },
        stdout: Default::default(),
        stderr: Default::default(),
        cache_key: Some(key),
        cache_parts: Some(parts.json()),
        reused_exec: Some(reusable.exec_id),
        keep_outputs: step.keep_outputs,
        repo_changes: Vec::new(),
    };
    let outputs: Vec<OutputSummary> = rec.outputs.iter().map(OutputSummary::of).collect();
    let metrics: BTreeMap<String, f64> = rec
        .metrics
        .iter()
        .map(|(k, (v, _))| (k.clone(), *v))
        .collect();
    ctx.record_reused(PendingReuse {
        _hold: hold,
        ..PendingReuse::new(begin, rec)
    });
    let style = ctx.printer.style();
    let w = ctx.printer.width();
    let short_run = &reusable.short_id;
    let line = if restored.is_empty() {
        format!(
            "{} {:<w$}  {}  {}",
            style.green("="),
            step.name,
            style.dim("cached"),
            style.dim(&format!("(outputs of run {short_run})"))
        )
    } else {
        format!(
            "{} {:<w$}  {}  {}",
            style.green("↺"),
            step.name,
            "restored",
            restored.join(", ")
        )
    };
    ctx.printer.event(&line);
    Some(StepOutcome {
        name: step.name.clone(),
        status: status.as_str().into(),
        exit_code: Some(0),
        signal: None,
        duration_ms: Some(ended - begin.started_at),
        error: None,
        outputs,
        metrics,
    })
}

impl OutputSummary {
    fn of(io: &Io) -> OutputSummary {
        OutputSummary {
            path: io.path.clone(),
            hash: io.fp.hash().to_string(),
            kind: if io.fp.is_dir() { "dir" } else { "file" },
            size: io.fp.size(),
            files: io.fp.nfiles(),
            observed: !io.declared,
        }
    }
}

struct Finish {
    status: StepStatus,
    exit_code: Option<i32>,
    signal: Option<i32>,
    error: Option<String>,
    inputs: Vec<Io>,
    outputs: Vec<Io>,
    metrics: Metrics,
}

impl Finish {
    fn failed(code: i32, signal: Option<i32>, error: String, inputs: Vec<Io>) -> Self {
        Finish {
            status: StepStatus::Failed,
            exit_code: Some(code),
            signal,
            error: Some(error),
            inputs,
            outputs: Vec::new(),
            metrics: Metrics::new(),
        }
    }
}

fn failed_unrecorded(ctx: &Ctx, name: &str, e: Error) -> StepOutcome {
    ctx.record_failed(name, &e);
    StepOutcome {
        name: name.to_string(),
        status: StepStatus::Failed.as_str().into(),
        exit_code: Some(exit::FAILURE),
        signal: None,
        duration_ms: None,
        error: Some(e.message),
        outputs: Vec::new(),
        metrics: BTreeMap::new(),
    }
}

/// Compare the repository's refs with `before` (taken just before the step's process started):
/// a step that committed, moved a branch or HEAD, or created or deleted refs gets a warning naming
/// each, and the changes go into its record (`finish`).
fn note_repo_changes(ctx: &Ctx, step: &Step, before: &git::RefsAt) {
    let Some(watch) = &ctx.refs else {
        return;
    };
    let changes = watch.changes_since(before);
    if changes.is_empty() {
        return;
    }
    ctx.printer.warn(&format!(
        "{} changed the repository: {}",
        step.name,
        git::describe_ref_changes(&changes)
    ));
    ctx.repo_changes
        .lock()
        .expect("repo changes lock")
        .insert(step.name.clone(), changes);
}

/// Take the after-state (git, environment), write the step's record in one transaction, print
/// its result line.
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of one step's record, gathered by run_step"
)]
async fn finish(
    ctx: &Arc<Ctx>,
    step: &Step,
    exec_id: i64,
    started: i64,
    f: Finish,
    vars: BTreeMap<String, String>,
    stdout: capture::LogCapture,
    stderr: capture::LogCapture,
    parts: Option<CacheParts>,
) -> StepOutcome {
    let mut f = f;
    // the copies of its untracked inputs, made while it ran (input_copy)
    input_copy::settle(ctx, &step.name, &mut f.inputs).await;
    // a step whose whole logs cannot be kept is not recorded as a success
    let (stdout, stderr, logs_lost) = ctx.keep_logs(stdout, stderr);
    if let Some(why) = logs_lost {
        if f.status == StepStatus::Succeeded {
            f.status = StepStatus::Failed;
            f.exit_code = Some(exit::FAILURE);
        }
        f.error = Some(match f.error {
            Some(e) => format!("{e}; {why}"),
            None => why,
        });
        f.outputs.clear();
    }
    let c = ctx.clone();
    let programs = step.cmd.programs();
    let cwd = ctx.plan.root.join(&step.cwd);
    let path_var = vars.get("PATH").cloned();
    let step_vars = vars.clone();
    let (git_after, interpreters, packages) = blocking(move || {
        let g = c.git_snapshot();
        let i = c
            .interpreters
            .versions(&programs, &cwd, path_var.as_deref());
        let p = c.interpreters.packages(&programs, &cwd, &step_vars);
        (g, i, p)
    })
    .await;
    *ctx.git_latest.lock().expect("git lock") = git_after.clone();
    let ended = now_ms();
    for w in &f.metrics.warnings {
        ctx.printer.warn(&format!("{}: {w}", step.name));
    }
    // Only a success can be reused later.
    let (cache_key, cache_parts) = match (&parts, f.status) {
        (Some(p), StepStatus::Succeeded) => (Some(p.key()), Some(p.json())),
        _ => (None, None),
    };
    let rec = record::StepRecord {
        status: f.status,
        exit_code: f.exit_code,
        signal: f.signal,
        error: f.error.clone(),
        ended_at: ended,
        inputs: f.inputs,
        outputs: f.outputs,
        params: ctx.redactor.params(&step.params).0,
        metrics: f.metrics.values.clone(),
        git_after,
        env: EnvSnapshot {
            system: ctx.system.clone(),
            interpreters,
            lockfiles: ctx.lockfiles.clone(),
            vars,
            packages,
        },
        stdout,
        stderr,
        cache_key,
        cache_parts,
        reused_exec: None,
        keep_outputs: step.keep_outputs,
        repo_changes: ctx
            .repo_changes
            .lock()
            .expect("repo changes lock")
            .remove(&step.name)
            .unwrap_or_default(),
    };
    if let Some(why) = ctx.write_step_record(&step.name, exec_id, &rec) {
        f.status = StepStatus::Failed;
        f.exit_code = Some(exit::FAILURE);
        f.error = Some(why);
    }

    let style = ctx.printer.style();
    let w = ctx.printer.width();
    let took = report::duration_ms(ended - started);
    let metrics: BTreeMap<String, f64> = rec
        .metrics
        .iter()
        .map(|(k, (v, _))| (k.clone(), *v))
        .collect();
    let line = match f.status {
        StepStatus::Succeeded => {
            let mut parts = vec![format!("{} {:<w$}  {took:>6}", style.green("✓"), step.name)];
            // a step's time includes hashing and storing its files: say how much, when it counts
            let files = ctx
                .files_time
                .lock()
                .expect("files time lock")
                .get(&step.name)
                .copied()
                .unwrap_or_default();
            if files >= Duration::from_secs(1) {
                parts.push(style.dim(&format!(
                    "({} of it hashing and storing files)",
                    report::duration_ms(files.as_millis() as i64)
                )));
            }
            let ins = io_note(&rec.inputs);
            if !ins.is_empty() {
                parts.push(format!("in: {ins}"));
            }
            // declared outputs are the step's outputs; what --trace saw it write besides is
            // counted apart
            let (declared, undeclared): (Vec<Io>, Vec<Io>) =
                rec.outputs.iter().cloned().partition(|io| io.declared);
            let outs = io_note(&declared);
            if !outs.is_empty() {
                parts.push(format!("out: {outs}"));
            }
            let extra = io_note(&undeclared);
            if !extra.is_empty() {
                parts.push(style.yellow(&format!("undeclared writes: {extra}")));
            }
            if !metrics.is_empty() {
                let shown = report::metrics_line(metrics.iter().take(4));
                let more = if metrics.len() > 4 {
                    format!(" (+{})", metrics.len() - 4)
                } else {
                    String::new()
                };
                parts.push(format!("metrics: {}{more}", shown));
            }
            parts.join("  ")
        }
        StepStatus::Interrupted | StepStatus::TimedOut => format!(
            "{} {:<w$}  {took:>6}  {}",
            style.yellow("!"),
            step.name,
            style.yellow(f.error.as_deref().unwrap_or("interrupted"))
        ),
        _ => format!(
            "{} {:<w$}  {took:>6}  {}",
            style.red("✗"),
            step.name,
            style.red(&format!(
                "failed: {}",
                f.error.as_deref().unwrap_or("failed")
            ))
        ),
    };
    ctx.printer.event(&line);
    model::register_output(ctx, step, exec_id, f.status, &rec.outputs);

    StepOutcome {
        name: step.name.clone(),
        status: f.status.as_str().into(),
        exit_code: f.exit_code,
        signal: f.signal,
        duration_ms: Some(ended - started),
        error: f.error,
        outputs: if f.status == StepStatus::Succeeded {
            rec.outputs.iter().map(OutputSummary::of).collect()
        } else {
            Vec::new()
        },
        metrics,
    }
}

//! Running a `Plan`: schedule steps in dependency order (parallel up to `-j`), supervise each
//! one's process, fingerprint around it, and record everything in the store.
//!
//! The runner is split by concern: `schedule` decides which step runs when; `step` is one
//! step's life (hash inputs, `reuse` or run it, retries, its end); `record` assembles and writes
//! what the store keeps; `phase` tracks long hashing and storing; and everything a person (or a
//! script) is told goes out as typed `event`s to the run's sinks (`reporter` renders them).
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
mod env;
pub mod event;
pub mod incremental;
mod input_copy;
mod model;
mod openlineage;
pub mod output;
mod phase;
mod record;
pub mod recorded;
mod records;
pub mod reporter;
pub mod reuse;
mod schedule;
pub mod slurm;
mod step;
pub mod trace;
pub mod unix;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::env::Redactor;
use crate::fingerprint::git::{self, GitState};
use crate::fingerprint::hash::{self, Fingerprint};
use crate::fingerprint::system::{InterpreterCache, LockSearch, SystemInfo};
use crate::pipeline::{Plan, TraceMode};
use crate::report;
use crate::store::lock::ObjectsHold;
use crate::store::objects::Objects;
use crate::store::record::{Io, Origin, RunStatus, StepStatus, now_ms};
use crate::store::{self, Store};
use child::Interrupt;
use event::{Event, Sinks};

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
    pub recorded_location: Option<PathBuf>,
    /// `--trace[=MODE]`, over pipeline.toml's `trace` settings
    pub trace: Option<TraceMode>,
    /// the run's id, when the caller chose it (to name the run in the pipeline lock first)
    pub run_id: Option<String>,
    /// `mlrun run -m TEXT`: the run's message
    pub message: Option<String>,
    /// `mlrun run TARGET...`: the steps and outputs asked for, as typed (None: all of them)
    pub targets: Option<Vec<String>>,
    /// the sweep this run is a variant of (`-p lr=0.1,0.2`)
    pub sweep_id: Option<String>,
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
    pub status: StepStatus,
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
    pub status: RunStatus,
    pub exit_code: i32,
    pub duration_ms: i64,
    pub commit: Option<String>,
    pub dirty: bool,
    pub store: String,
    pub steps: Vec<StepOutcome>,
}

struct Ctx {
    plan: Plan,
    /// Sends the run's lineage live to an OpenLineage server (`crate::live`), when one is
    /// configured: told by a sink of the run's events (`openlineage`), never waited for on a
    /// step's path.
    live: Mutex<Option<crate::live::LiveRun>>,
    run_id: String,
    /// the store, and the records of reused steps waiting to be committed (`record::Writer`)
    store: Mutex<record::Writer>,
    /// where everything the run says goes
    events: Sinks,
    system: SystemInfo,
    lockfiles: BTreeMap<String, String>,
    interpreters: InterpreterCache,
    redactor: Redactor,
    /// the plan with its secrets replaced by markers: what is recorded and shown
    recorded: recorded::Recorded,
    inherited: env::Inherited,
    git_latest: Mutex<GitState>,
    tracked: Option<git::Tracked>,
    git_fixed: Option<GitState>,
    cache: HashCache,
    /// what each step is doing that can take long before or after it runs
    phases: phase::Phases,
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
            self.events
                .note("waiting for `mlrun gc` to finish with the object store…")
        })
        .map_err(|e| self.events.warn(&e.to_string()))
        .ok()
    }

    /// The git state now, or the fixed one a replay reconstructed.
    fn git_snapshot(&self) -> GitState {
        match &self.git_fixed {
            Some(g) => g.clone(),
            None => git::snapshot(self.plan.root()),
        }
    }
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
    events: Sinks,
) -> Result<RunOutcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.jobs.clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| Error::other("cannot start the async runtime").cause(e))?;
    runtime.block_on(run(plan, store, opts, events))
}

/// Run the plan, recording it in `store` and telling `events` what happens. Returns the
/// outcome, also given to the sinks in `Event::RunFinished`.
pub async fn run(plan: Plan, store: Store, opts: RunOptions, events: Sinks) -> Result<RunOutcome> {
    let started = now_ms();
    let run_id = opts
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let setup = Setup::read(&plan, &store, &opts, &run_id, &events).await?;

    let (int_tx, int_rx) = watch::channel(Interrupt::None);
    let signals = tokio::spawn(watch_signals(int_tx, events.clone(), opts.grace));

    let store_dir = store.dir.clone();
    let (ctx, scratch, git_start) =
        context(plan, store, &opts, events, setup, &run_id, int_rx.clone())?;
    let events = ctx.events.clone();
    record::run_start(&ctx, &opts, started, &git_start)?;

    let short = ctx.with_store(|c| Store::short_id(c, &run_id))?;
    events.emit(&Event::RunStarted {
        short_id: &short,
        pipeline: ctx.plan.name(),
        steps: ctx.plan.steps().len(),
        git: &git_start,
    });

    let progress = tokio::spawn(phase::report(ctx.clone()));
    let (outcomes, first_failed) = schedule::run(&ctx, opts.jobs, opts.keep_going, int_rx).await;
    signals.abort();
    progress.abort();
    events.emit(&Event::Progress(None));

    let outcome = end(
        &ctx,
        started,
        short,
        outcomes,
        first_failed,
        &git_start,
        &store_dir,
    )
    .await?;
    drop(scratch);
    Ok(outcome)
}

/// What a run's context is made of, read before any step starts.
struct Setup {
    redactor: Redactor,
    recorded: recorded::Recorded,
    /// this run's own scratch space, removed when the run is over
    scratch: store::owner::Owned,
    cache: HashCache,
    scans: Vec<crate::fingerprint::packages::CachedScan>,
    git_start: GitState,
    locks: BTreeMap<String, String>,
    system: SystemInfo,
    tracked: Option<git::Tracked>,
}

impl Setup {
    async fn read(
        plan: &Plan,
        store: &Store,
        opts: &RunOptions,
        run_id: &str,
        events: &Sinks,
    ) -> Result<Setup> {
        let root = plan.root().to_path_buf();
        let fixed = opts.git_fixed.clone();
        let search = LockSearch::of(plan);
        // What the run's records need from git and the machine is read on other threads while
        // this one masks the plan and reads the stat cache: a no-op run is mostly such setup,
        // and it was all serial (the lock file search alone lists every declared input
        // directory).
        let git_and_locks = tokio::task::spawn_blocking(move || {
            let git = fixed.unwrap_or_else(|| git::snapshot(&root));
            let locks = search.find(git.workdir.as_deref().map(std::path::Path::new));
            (git, locks)
        });
        let root = plan.root().to_path_buf();
        let system_and_tracked =
            tokio::task::spawn_blocking(move || (SystemInfo::read(), git::Tracked::load(&root)));
        let key = crate::fingerprint::key::SecretKey::load()?;
        if let Some(w) = key.warning() {
            events.warn(&w);
        }
        let redactor = Redactor::new(&key, plan.redact(), plan.keep());
        let recorded = recorded::Recorded::of(&redactor, plan);
        // This run's own scratch space: runs sharing a store never remove each other's.
        let scratch =
            store::owner::Owned::create_dir(&store.dir.join("tmp"), run_id).map_err(|e| {
                Error::store("cannot create the run's directory in the store's tmp/").cause(e)
            })?;
        let cache = if opts.no_cache {
            HashCache::disabled()
        } else {
            store.load_stat_cache(plan.root())?
        };
        let scans = store.remembered_scans()?;
        let (git_start, locks) = git_and_locks.await.expect("git snapshot task panicked");
        let (system, tracked) = system_and_tracked
            .await
            .expect("system information task panicked");

        Ok(Setup {
            redactor,
            recorded,
            scratch,
            cache,
            scans,
            git_start,
            locks,
            system,
            tracked,
        })
    }
}

/// The run's context, with the live OpenLineage sender when one is configured; also the
/// scratch space to keep until the run is over and the git state it started from.
fn context(
    plan: Plan,
    store: Store,
    opts: &RunOptions,
    events: Sinks,
    setup: Setup,
    run_id: &str,
    int_rx: watch::Receiver<Interrupt>,
) -> Result<(Arc<Ctx>, store::owner::Owned, GitState)> {
    let store_dir = store.dir.clone();
    // A mistake in the project's mlrun.toml stops the run before anything is recorded. A replay
    // (and `mlrun check`) runs in a scratch tree: its events would tell the lineage server the
    // project's files were written again, so it sends nothing live (`export --send` sends it).
    let live = crate::config::Config::load(&store_dir)?
        .openlineage
        .filter(|_| opts.replay_of.is_none())
        .map(|cfg| crate::live::LiveRun::start(&store_dir, run_id, cfg));
    let events = openlineage::with_sink(events, live.as_ref());
    let Setup {
        redactor,
        recorded,
        scratch,
        cache,
        scans,
        git_start,
        locks,
        system,
        tracked,
    } = setup;
    let tmp = scratch.path().to_path_buf();
    let ctx = Arc::new(Ctx {
        live: Mutex::new(live),
        run_id: run_id.to_string(),
        store: Mutex::new(record::Writer::new(store)),
        events: events.clone(),
        system,
        lockfiles: locks,
        interpreters: InterpreterCache::with_scans(scans),
        inherited: env::Inherited::capture(&redactor),
        redactor,
        recorded,
        git_latest: Mutex::new(git_start.clone()),
        tracked,
        git_fixed: opts.git_fixed.clone(),
        cache,
        phases: phase::Phases::default(),
        objects: Objects::new(&store_dir),
        force: opts.force.clone(),
        reuse_replays: opts.reuse_replays,
        no_store: opts.no_store,
        interrupt: int_rx,
        grace: opts.grace,
        tmp,
        trace: opts.trace,
        repo_changes: Mutex::new(BTreeMap::new()),
        refs: opts
            .git_fixed
            .is_none()
            .then(|| git::RefWatch::new(plan.root()))
            .flatten(),
        records: records::Records::new(&store_dir),
        input_copies: Default::default(),
        plan,
    });
    Ok((ctx, scratch, git_start))
}

/// The run's end: its status from the steps' outcomes, an interrupt and the record writes that
/// failed, recorded and told to the sinks.
async fn end(
    ctx: &Arc<Ctx>,
    started: i64,
    short: String,
    outcomes: Vec<StepOutcome>,
    first_failed: Option<usize>,
    git_start: &GitState,
    store_dir: &std::path::Path,
) -> Result<RunOutcome> {
    let events = &ctx.events;
    let unrecorded = ctx.records.failures();
    let interrupted = *ctx.interrupt.borrow();
    let first_failed = first_failed.map(|i| &outcomes[i]);
    let (status, exit_code) =
        schedule::run_status(interrupted, first_failed, !unrecorded.is_empty());
    warn_shared_metrics(events, &outcomes);
    let c = ctx.clone();
    let git_end = blocking(move || c.git_snapshot()).await;
    let ended = now_ms();
    record::run_end(ctx, status, exit_code, &git_end, ended, &unrecorded)?;

    let outcome = RunOutcome {
        run_id: ctx.run_id.clone(),
        short_id: short,
        pipeline: ctx.plan.name().to_string(),
        status,
        exit_code,
        duration_ms: ended - started,
        commit: git_start.commit.clone(),
        dirty: git_start.dirty,
        store: store_dir
            .join(store::DB_FILE)
            .to_string_lossy()
            .into_owned(),
        steps: outcomes,
    };
    events.emit(&Event::RunFinished {
        outcome: &outcome,
        git: git_start,
    });
    openlineage::finish(ctx, &outcome.short_id, events);
    Ok(outcome)
}

/// One metric name from several steps: the run-level value is the latest step's in the plan.
fn warn_shared_metrics(events: &Sinks, outcomes: &[StepOutcome]) {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in outcomes {
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
        events.warn(&format!(
            "metric `{k}` is reported by steps {list}; `mlrun runs` shows and filters on the value from `{}`, the latest in the plan (give the metrics distinct names to compare them)",
            steps.last().copied().unwrap_or_default()
        ));
    }
}

/// First SIGINT/SIGTERM: graceful stop. Second: kill at once.
async fn watch_signals(tx: watch::Sender<Interrupt>, events: Sinks, grace: Duration) {
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
            events.warn(&format!(
                "interrupted: stopping running steps (SIGTERM, SIGKILL after {}); interrupt again to kill them now",
                report::duration_ms(grace.as_millis() as i64)
            ));
            let _ = tx.send(Interrupt::Graceful(sig));
        } else {
            events.warn("interrupted again: killing the running steps now");
            let _ = tx.send(Interrupt::Kill(sig));
        }
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

/// Is `path` (or a path it is in, or one in it) an output of a step of this pipeline?
fn from_a_step(ctx: &Ctx, path: &str) -> bool {
    ctx.plan.steps().iter().flat_map(|s| &s.outputs).any(|o| {
        crate::pipeline::plan::within(path, &o.path) || crate::pipeline::plan::within(&o.path, path)
    })
}

/// Start copying into the object store the large input files of `step` that are about to be
/// hashed (the stat cache cannot vouch for them) and will be kept (from no step, not clean in
/// the commit: what `origin_of` will call external), while they are hashed (see
/// `Objects::copy_ahead`). What is not taken is stopped by `drop_copies_ahead`.
fn copy_inputs_ahead(ctx: &Ctx, step: &crate::pipeline::Step, git_before: &GitState) {
    // without a stat cache to vouch for the hash, a copy made ahead is never taken
    if ctx.no_store || !ctx.cache.is_enabled() {
        return;
    }
    for d in &step.inputs {
        let clean = |t: &git::Tracked| {
            t.clean(&d.path, None::<std::iter::Empty<&str>>, &git_before.changed)
        };
        if from_a_step(ctx, &d.path) || ctx.tracked.as_ref().is_some_and(clean) {
            continue;
        }
        let path = ctx.plan.root().join(&d.path);
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.is_file()
            && ctx.cache.get(&path, &meta).is_none()
            && !ctx.cache.knows_file(&path, &meta)
        {
            ctx.objects.copy_ahead(&path);
        }
    }
}

/// Stop the copies `copy_inputs_ahead` started for `inputs` that will not be kept.
fn drop_copies_ahead<'a>(ctx: &Ctx, inputs: impl IntoIterator<Item = &'a str>) {
    for p in inputs {
        ctx.objects.cancel_ahead(&ctx.plan.root().join(p));
    }
}

/// Where an input version came from: another step of this pipeline, the git commit, or neither.
fn origin_of(ctx: &Ctx, io: &Io, git_before: &GitState) -> Origin {
    if from_a_step(ctx, &io.path) {
        return Origin::Step;
    }
    // a directory's entries are read in place (cloning 20,000 names was 2% of a no-op run)
    let entries = match &io.fp {
        Fingerprint::Dir { entries, .. } => Some(entries.iter().map(|e| e.relpath.as_str())),
        Fingerprint::File { .. } => None,
    };
    match &ctx.tracked {
        Some(t) if t.clean(&io.path, entries, &git_before.changed) => Origin::Git,
        _ => Origin::External,
    }
}

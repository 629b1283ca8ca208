//! `mlrun run --sweep -p lr=0.1,0.2,0.5 -p depth=3,5`: one run per combination of the listed
//! values (the cross product), all sharing a sweep id.
//!
//! Why `--sweep` and not every comma: `-p msg=a,b` has always been the string `a,b`, so a comma
//! splits a value only when `--sweep` asks for it; there, `\,` is a literal comma, and a value
//! written as a TOML array, table or quoted string (`[1,2]`, `{a=1}`, `"a,b"`) is never split.
//!
//! How it runs: each variant runs in a scratch copy of the project (under the store's `tmp/`,
//! the declared outputs left out) and is recorded as a run of the project itself (like a
//! replay, `recorded_location`), so two variants never write each other's files and the
//! workspace is left as it was; every output is kept in the object store, so the best
//! variant's outputs can be put back with `mlrun checkout RUN`. The steps that no swept param
//! reaches (the shared prefix) run once, in the first variant; the other variants start when
//! those are done and reuse them through the ordinary cache (restored from the object store
//! into their scratch tree). At most `-j` steps run at once across the sweep: up to `-j`
//! variants at a time, each with `-j / variants at a time` steps (at least 1).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::exec::event::{Event, Sink, Sinks};
use crate::exec::{self, Force, RunOptions, RunOutcome};
use crate::pipeline::Plan;
use crate::report::{ColorChoice, Role, Style};
use crate::store::lock::PipelineLock;
use crate::store::owner::Owned;
use crate::store::record::{RunStatus, StepStatus};
use crate::store::{self, Store};

/// One `-p` of a sweep: a key and its values (one value: the same in every variant).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// Read the `-p KEY=V1,V2` arguments of a sweep, in order.
pub fn parse(params: &[String]) -> Result<Vec<Axis>> {
    let mut axes: Vec<Axis> = Vec::new();
    for p in params {
        let Some((key, value)) = p.split_once('=') else {
            return Err(Error::invalid(format!(
                "`-p {p}`: expected KEY=VALUE (a sweep lists values: `-p {p}=0.1,0.2`)"
            )));
        };
        let key = key.trim().to_string();
        let values = split_values(value);
        if let Some(i) = values.iter().position(|v| v.trim().is_empty()) {
            return Err(
                Error::invalid(format!("`-p {p}`: value {} of `{key}` is empty", i + 1))
                    .hint("remove the extra comma; a value that holds a comma is written `\\,`"),
            );
        }
        if axes.iter().any(|a| a.key == key) {
            return Err(
                Error::invalid(format!("`-p {key}=…` is given twice in the sweep"))
                    .hint(format!("list every value once: `-p {key}=A,B,C`")),
            );
        }
        axes.push(Axis { key, values });
    }
    if !axes.iter().any(|a| a.values.len() > 1) {
        return Err(Error::invalid("`--sweep` has nothing to sweep: no `-p` lists several values")
            .hint("list the values to try, comma-separated: `mlrun run --sweep -p train.lr=0.1,0.2,0.5`"));
    }
    Ok(axes)
}

/// `0.1,0.2` → two values; `a\,b` → one (`a,b`); a TOML array, table or quoted string → one.
fn split_values(value: &str) -> Vec<String> {
    let t = value.trim_start();
    if t.starts_with(['[', '{', '"', '\'']) {
        return vec![value.to_string()];
    }
    let mut out = vec![String::new()];
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                out.last_mut().expect("one value").push(',');
                chars.next();
            }
            ',' => out.push(String::new()),
            c => out.last_mut().expect("one value").push(c),
        }
    }
    out
}

/// Every combination, the first axis varying slowest: each a list of `KEY=VALUE`, one per axis.
pub fn combinations(axes: &[Axis]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for a in axes {
        out = out
            .into_iter()
            .flat_map(|done| {
                a.values.iter().map(move |v| {
                    let mut d = done.clone();
                    d.push(format!("{}={v}", a.key));
                    d
                })
            })
            .collect();
    }
    out
}

/// What the sweep's caller decided from the command line (`cmd::run`).
pub struct Sweep<'a> {
    pub args: &'a super::run::RunArgs,
    pub pipeline: &'a Path,
    pub targets: &'a [String],
}

/// The `mlrun run --sweep --json` document.
#[derive(Debug, Serialize)]
struct SweepDoc {
    sweep_id: String,
    pipeline: String,
    /// the swept keys, in order
    params: Vec<String>,
    status: &'static str,
    exit_code: i32,
    /// the steps no swept param reaches, run once for the whole sweep
    shared_steps: Vec<String>,
    variants: Vec<VariantDoc>,
}

#[derive(Debug, Serialize)]
struct VariantDoc {
    /// this variant's values of the swept keys, as written
    params: BTreeMap<String, String>,
    run_id: Option<String>,
    short_id: Option<String>,
    /// the run's status, `not_run` (never started) or `error` (mlrun could not run it)
    status: String,
    exit_code: Option<i32>,
    error: Option<String>,
    #[serde(serialize_with = "crate::fingerprint::metrics::ser_map")]
    metrics: BTreeMap<String, f64>,
}

pub fn sweep(s: Sweep<'_>, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let args = s.args;
    let err_style = Style::stderr(color);
    let out_style = if args.json {
        err_style
    } else {
        Style::stdout(color)
    };
    let axes = parse(&args.params)?;
    refuse_conflicts(args)?;
    let combos = combinations(&axes);
    // Every variant's plan is checked before anything runs: a bad value fails the sweep.
    let mut plans = Vec::with_capacity(combos.len());
    for (n, c) in combos.iter().enumerate() {
        let plan = crate::pipeline::load(&crate::pipeline::LoadOptions {
            file: &crate::pipeline::locate(s.pipeline),
            overrides: c,
            missing_inputs_ok: false,
        })?;
        if n == 0 {
            crate::report::print_warnings(plan.warnings(), err_style);
        }
        plans.push(plan);
    }
    let full = plans[0].clone();
    let selected = super::select::resolve(&full, s.targets)?;
    if !s.targets.is_empty() {
        plans = plans
            .into_iter()
            .map(|p| p.selecting(&selected, args.downstream))
            .collect();
    }
    let swept: BTreeSet<&str> = axes
        .iter()
        .filter(|a| a.values.len() > 1)
        .map(|a| a.key.as_str())
        .collect();
    check_swept_keys_are_read(&full, &plans[0], &swept, s.targets)?;
    let shared = shared_steps(&plans[0], &swept);

    let root = full.root().to_path_buf();
    let dir = store::dir_for_pipeline(full.file(), store_dir);
    drop(Store::open(&dir)?);
    let _lock = PipelineLock::acquire(&dir, full.file(), args.wait_lock, |who| {
        eprintln!(
            "waiting for {who} to finish running `{}`…",
            s.pipeline.display()
        );
    })?;
    let sweep_id = uuid::Uuid::now_v7().simple().to_string();
    let short = sweep_id[..16].to_string();
    let git = crate::fingerprint::git::snapshot(&root);
    let jobs = exec::default_jobs(args.exec.jobs);
    let at_once = jobs.min(combos.len()).max(1);
    let per_run = (jobs / at_once).max(1);
    let exclude = excluded(&full, &dir);
    let labels: Vec<String> = combos.iter().map(|c| label(c, &axes)).collect::<Vec<_>>();
    let say = Arc::new(Say {
        style: out_style,
        json: args.json,
        lock: Mutex::new(()),
    });
    say.line(&format!(
        "{} {} · {} variants of `{}` ({}) · at most {jobs} step{} at once{}",
        out_style.paint(Role::Strong, "sweep"),
        out_style.paint(Role::Accent, &short),
        combos.len(),
        full.name(),
        axes.iter()
            .filter(|a| a.values.len() > 1)
            .map(|a| format!("{} × {}", a.key, a.values.len()))
            .collect::<Vec<_>>()
            .join(", "),
        if jobs == 1 { "" } else { "s" },
        if shared.is_empty() {
            String::new()
        } else {
            format!(
                " · shared, run once: {}",
                shared.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        }
    ));

    let argv: Vec<String> = std::env::args().collect();
    let ctx = Arc::new(Shared {
        plans: Mutex::new(plans.into_iter().map(Some).collect()),
        combos: combos.clone(),
        labels: labels.clone(),
        results: Mutex::new((0..combos.len()).map(|_| None).collect()),
        next: AtomicUsize::new(1),
        stop: AtomicBool::new(false),
        interrupted: AtomicBool::new(false),
        gate: Arc::new(Gate::new(shared.is_empty())),
        shared: shared.clone(),
        root: root.clone(),
        dir: dir.clone(),
        exclude,
        git,
        per_run,
        sweep_id: sweep_id.clone(),
        argv,
        say: say.clone(),
        targets: (!s.targets.is_empty()).then(|| s.targets.to_vec()),
        message: args.message.clone().filter(|m| !m.trim().is_empty()),
        keep_going: args.keep_going,
        grace: args.exec.grace,
        reuse_replays: args.reuse_replays,
    });
    // An interrupt stops the variants running (each run sees it) and starts no other: this
    // listener covers the moments between two variants too.
    {
        let c = ctx.clone();
        std::thread::spawn(move || stop_on_signal(&c));
    }
    // the first variant runs the shared steps; the others start once those are done
    let mut workers = Vec::new();
    {
        let c = ctx.clone();
        workers.push(std::thread::spawn(move || {
            c.run_variant(0);
            c.work();
        }));
    }
    let opened = ctx.gate.wait();
    if opened {
        for _ in 1..at_once {
            let c = ctx.clone();
            workers.push(std::thread::spawn(move || c.work()));
        }
    } else {
        ctx.stop.store(true, Ordering::SeqCst);
    }
    for w in workers {
        let _ = w.join();
    }
    drop(_lock);

    let results: Vec<Option<std::result::Result<RunOutcome, String>>> =
        std::mem::take(&mut *ctx.results.lock().expect("results lock"));
    finish(&FinishArgs {
        args,
        store_dir: &dir,
        sweep_id: &sweep_id,
        pipeline: full.name(),
        axes: &axes,
        combos: &combos,
        shared: &shared,
        results,
        opened,
        interrupted: ctx.interrupted.load(Ordering::SeqCst),
        color,
        say: &say,
    })
}

/// Wait for SIGINT or SIGTERM, then let no further variant start.
fn stop_on_signal(ctx: &Shared) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    });
    ctx.interrupted.store(true, Ordering::SeqCst);
    ctx.stop.store(true, Ordering::SeqCst);
    ctx.gate.set(false);
}

/// Flags a sweep cannot honour, refused before anything runs.
fn refuse_conflicts(args: &super::run::RunArgs) -> Result<()> {
    if let Some(f) = &args.force {
        let named: Vec<&str> = f
            .iter()
            .filter(|n| !n.is_empty())
            .map(String::as_str)
            .collect();
        let what = if named.is_empty() {
            "`--force`".to_string()
        } else {
            format!("`--force={}`", named.join(","))
        };
        return Err(Error::invalid(format!(
            "{what} cannot be combined with `--sweep`: the variants reuse the steps they share, and a forced step would run again in every variant"
        ))
        .hint(format!(
            "run `mlrun run {}` first, then the sweep, which reuses what it made",
            what.trim_matches('`')
        )));
    }
    if args.no_store {
        return Err(Error::invalid(
            "`--no-store` cannot be combined with `--sweep`: each variant's outputs are kept in the object store, so that the best one can be checked out (and the variants reuse the shared steps from it)",
        ));
    }
    if matches!(
        args.trace,
        Some(super::run::TraceArg::On | super::run::TraceArg::Strict)
    ) {
        return Err(Error::invalid(
            "`--trace` cannot be combined with `--sweep`: variants run in scratch copies of the project, whose paths tracing would report",
        )
        .hint("trace one variant: `mlrun run --trace -p KEY=VALUE`"));
    }
    if args.dry_run {
        return Err(Error::invalid(
            "`--dry-run` cannot be combined with `--sweep`: each variant's plan depends on what the ones before it make",
        )
        .hint("ask for one variant's plan: `mlrun run --dry-run -p KEY=VALUE`"));
    }
    Ok(())
}

/// A swept key that no (selected) step reads would make identical variants: refuse it.
fn check_swept_keys_are_read(
    full: &Plan,
    plan: &Plan,
    swept: &BTreeSet<&str>,
    targets: &[String],
) -> Result<()> {
    for key in swept {
        if plan.steps().iter().any(|s| s.params.contains_key(*key)) {
            continue;
        }
        let readers: Vec<String> = full
            .steps()
            .iter()
            .filter(|s| s.params.contains_key(*key))
            .map(|s| format!("`{}`", s.name))
            .collect();
        let mut e = Error::invalid(if readers.is_empty() {
            format!(
                "`-p {key}=…`: no step of `{}` declares param `{key}`, so every variant would be the same run",
                plan.name()
            )
        } else {
            format!(
                "`-p {key}=…`: no step the targets ({}) need declares param `{key}` (only {} do), so every variant would be the same run",
                targets.join(" "),
                readers.join(", ")
            )
        });
        let used: BTreeSet<&str> = full
            .steps()
            .iter()
            .flat_map(|s| s.params.keys())
            .map(String::as_str)
            .collect();
        if let Some(close) = crate::pipeline::diag::did_you_mean(key, used.iter().copied())
            && close != *key
        {
            e = e.hint(format!("did you mean `{close}`?"));
        }
        e = e.hint(if used.is_empty() {
            "no step declares a param: a step depends on one through `params = [\"KEY\"]` or `{params.KEY}` in its cmd".to_string()
        } else {
            format!(
                "params the steps declare: {}",
                used.into_iter().collect::<Vec<_>>().join(", ")
            )
        });
        return Err(e);
    }
    Ok(())
}

/// The steps no swept param reaches, directly or through a step they depend on.
fn shared_steps(plan: &Plan, swept: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut varies = vec![false; plan.steps().len()];
    for (i, s) in plan.steps().iter().enumerate() {
        varies[i] = s.params.keys().any(|k| swept.contains(k.as_str()))
            || s.deps.iter().any(|&d| varies[d]);
    }
    plan.steps()
        .iter()
        .zip(&varies)
        .filter(|(_, v)| !**v)
        .map(|(s, _)| s.name.clone())
        .collect()
}

/// `lr=0.1 depth=3`: the swept values of a variant.
fn label(combo: &[String], axes: &[Axis]) -> String {
    combo
        .iter()
        .zip(axes)
        .filter(|(_, a)| a.values.len() > 1)
        .map(|(c, _)| c.clone())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the project copy leaves out: the store, `.git`, and every declared output (each
/// variant makes its own, or has it restored).
fn excluded(plan: &Plan, store_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = plan
        .steps()
        .iter()
        .flat_map(|s| &s.outputs)
        .map(|o| plan.root().join(&o.path))
        .collect();
    out.push(plan.root().join(".git"));
    out.push(std::path::absolute(store_dir).unwrap_or_else(|_| store_dir.to_path_buf()));
    if let Ok(c) = store_dir.canonicalize() {
        out.push(c);
    }
    out
}

/// Copy the project at `from` to `to`, leaving out `exclude`: files are copied (the kernel
/// clones them where the filesystem can), symbolic links are copied as links.
fn copy_project(from: &Path, to: &Path, exclude: &[PathBuf]) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let src = e.path();
        if exclude.contains(&src) {
            continue;
        }
        let dst = to.join(e.file_name());
        let t = e.file_type()?;
        if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if t.is_dir() {
            copy_project(&src, &dst, exclude)?;
        } else if t.is_file() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Opens once the first variant's shared steps are done: `true` when they all succeeded.
struct Gate {
    state: Mutex<Option<bool>>,
    cv: Condvar,
}

impl Gate {
    fn new(open: bool) -> Gate {
        Gate {
            state: Mutex::new(open.then_some(true)),
            cv: Condvar::new(),
        }
    }
    fn set(&self, ok: bool) {
        let mut s = self.state.lock().expect("gate lock");
        if s.is_none() {
            *s = Some(ok);
            self.cv.notify_all();
        }
    }
    fn wait(&self) -> bool {
        let mut s = self.state.lock().expect("gate lock");
        while s.is_none() {
            s = self.cv.wait(s).expect("gate lock");
        }
        s.unwrap_or(false)
    }
}

/// Lines about the variants, one at a time.
struct Say {
    style: Style,
    json: bool,
    lock: Mutex<()>,
}

impl Say {
    fn line(&self, text: &str) {
        let _g = self.lock.lock().expect("say lock");
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// Everything the worker threads share.
struct Shared {
    plans: Mutex<Vec<Option<Plan>>>,
    combos: Vec<Vec<String>>,
    labels: Vec<String>,
    results: Mutex<Vec<Option<std::result::Result<RunOutcome, String>>>>,
    next: AtomicUsize,
    stop: AtomicBool,
    /// mlrun was interrupted (SIGINT or SIGTERM)
    interrupted: AtomicBool,
    gate: Arc<Gate>,
    shared: BTreeSet<String>,
    root: PathBuf,
    dir: PathBuf,
    exclude: Vec<PathBuf>,
    git: crate::fingerprint::git::GitState,
    per_run: usize,
    sweep_id: String,
    argv: Vec<String>,
    say: Arc<Say>,
    targets: Option<Vec<String>>,
    message: Option<String>,
    keep_going: bool,
    grace: std::time::Duration,
    reuse_replays: bool,
}

impl Shared {
    /// Take variants from the queue until it is empty (or the sweep stops).
    fn work(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            let n = self.next.fetch_add(1, Ordering::SeqCst);
            if n >= self.combos.len() {
                break;
            }
            self.run_variant(n);
        }
    }

    fn run_variant(&self, n: usize) {
        let result = self.variant(n);
        if n == 0 {
            // whatever happened, the others are no longer waiting for the shared steps
            self.gate.set(matches!(&result, Ok(o) if o.steps.iter()
                .filter(|s| self.shared.contains(&s.name))
                .all(|s| s.status.ok())));
        }
        match &result {
            Ok(o) if o.status == RunStatus::Interrupted => {
                self.interrupted.store(true, Ordering::SeqCst);
                self.stop.store(true, Ordering::SeqCst);
            }
            Err(_) if n == 0 => self.stop.store(true, Ordering::SeqCst),
            _ => {}
        }
        self.results.lock().expect("results lock")[n] = Some(result);
    }

    fn variant(&self, n: usize) -> std::result::Result<RunOutcome, String> {
        let total = self.combos.len();
        let tag = format!("[{}/{total} {}]", n + 1, self.labels[n]);
        let plan = self.plans.lock().expect("plans lock")[n]
            .take()
            .ok_or_else(|| "variant taken twice".to_string())?;
        let scratch = Owned::create_dir(
            &self.dir.join("tmp"),
            &format!("sweep-{}-{}", &self.sweep_id[..16], n + 1),
        )
        .map_err(|e| format!("cannot create the variant's scratch directory: {e}"))?;
        let tree = scratch.path().join("project");
        copy_project(&self.root, &tree, &self.exclude)
            .map_err(|e| format!("cannot copy the project into the variant's scratch tree: {e}"))?;
        let plan = plan.relocated(&tree);
        let store = Store::open(&self.dir).map_err(|e| e.to_string())?;
        let opts = RunOptions {
            jobs: self.per_run,
            keep_going: self.keep_going,
            grace: self.grace,
            argv: variant_argv(&self.argv, &self.combos[n]),
            replay_of: None,
            force: Force::None,
            reuse_replays: self.reuse_replays,
            no_store: false,
            no_cache: true,
            git_fixed: Some(self.git.clone()),
            recorded_location: Some(self.root.clone()),
            trace: Some(crate::pipeline::TraceMode::Off),
            run_id: None,
            message: self.message.clone(),
            targets: self.targets.clone(),
            sweep_id: Some(self.sweep_id.clone()),
        };
        let mut events = Sinks::new();
        events.push(Arc::new(VariantLines {
            tag: tag.clone(),
            say: self.say.clone(),
        }));
        if n == 0 && !self.shared.is_empty() {
            events.push(Arc::new(GateSink {
                shared: self.shared.clone(),
                done: Mutex::new(BTreeSet::new()),
                gate: self.gate.clone(),
            }));
        }
        let outcome = exec::run_blocking(plan, store, opts, events).map_err(|e| e.to_string());
        drop(scratch);
        if let Err(e) = &outcome {
            self.say.line(&format!(
                "{tag} {} {e}",
                self.say.style.paint(Role::Bad, "error:")
            ));
        }
        outcome
    }
}

/// The command line recorded for a variant: the sweep's, with each `-p` holding the variant's
/// value and without `--sweep`, so it says how to make that one run again.
fn variant_argv(argv: &[String], combo: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut k = 0;
    let mut it = argv.iter().peekable();
    while let Some(a) = it.next() {
        let mut value = || {
            k += 1;
            combo.get(k - 1).cloned().unwrap_or_default()
        };
        match a.as_str() {
            "--sweep" => {}
            "-p" | "--param" => {
                out.push(a.clone());
                it.next();
                out.push(value());
            }
            s if s.starts_with("--param=") => out.push(format!("--param={}", value())),
            s if s.starts_with("-p") && s.len() > 2 => out.push(format!("-p{}", value())),
            _ => out.push(a.clone()),
        }
    }
    out
}

/// A variant's events as lines tagged with its values.
struct VariantLines {
    tag: String,
    say: Arc<Say>,
}

impl Sink for VariantLines {
    fn emit(&self, event: &Event<'_>) {
        let st = &self.say.style;
        let tag = st.paint(Role::Muted, &self.tag);
        let text = match event {
            Event::RunStarted { short_id, .. } => {
                format!("{tag} run {}", st.paint(Role::Accent, short_id))
            }
            Event::StepStarted { step, .. } => {
                format!("{tag} {} {step}", st.paint(Role::Accent, "▸"))
            }
            Event::StepReused {
                step,
                status,
                from_run,
                ..
            } => format!(
                "{tag} {} {step}  {} from run {from_run}",
                st.paint(Role::Good, "="),
                status.as_str()
            ),
            Event::StepFinished(f) => {
                let o = f.outcome;
                let took = o
                    .duration_ms
                    .map(crate::report::duration_ms)
                    .unwrap_or_default();
                if o.status == StepStatus::Succeeded {
                    format!("{tag} {} {}  {took}", st.paint(Role::Good, "✓"), o.name)
                } else {
                    format!(
                        "{tag} {} {}  {}{}",
                        st.paint(Role::Bad, "✗"),
                        o.name,
                        o.status.as_str(),
                        o.error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    )
                }
            }
            Event::StepNotRun { step, reason } => {
                format!("{tag} {} {step}  {reason}", st.paint(Role::Warn, "-"))
            }
            Event::Warning(w) => format!("{tag} {} {w}", st.paint(Role::Warn, "warning:")),
            Event::RunFinished { outcome, .. } => format!(
                "{tag} run {} {} in {}",
                st.paint(Role::Accent, &outcome.short_id),
                st.status(outcome.status.as_str()),
                crate::report::duration_ms(outcome.duration_ms)
            ),
            _ => return,
        };
        self.say.line(&text);
    }
}

/// Opens the gate once every shared step of the first variant has ended.
struct GateSink {
    shared: BTreeSet<String>,
    done: Mutex<BTreeSet<String>>,
    gate: Arc<Gate>,
}

impl Sink for GateSink {
    fn emit(&self, event: &Event<'_>) {
        let (step, ok) = match event {
            Event::StepReused { step, .. } => (*step, true),
            Event::StepFinished(f) => (f.outcome.name.as_str(), f.outcome.status.ok()),
            Event::StepNotRun { step, .. } => (*step, false),
            _ => return,
        };
        if !self.shared.contains(step) {
            return;
        }
        if !ok {
            self.gate.set(false);
            return;
        }
        let mut done = self.done.lock().expect("gate sink lock");
        done.insert(step.to_string());
        if done.len() == self.shared.len() {
            self.gate.set(true);
        }
    }
}

struct FinishArgs<'a> {
    args: &'a super::run::RunArgs,
    store_dir: &'a Path,
    sweep_id: &'a str,
    pipeline: &'a str,
    axes: &'a [Axis],
    combos: &'a [Vec<String>],
    shared: &'a BTreeSet<String>,
    results: Vec<Option<std::result::Result<RunOutcome, String>>>,
    opened: bool,
    interrupted: bool,
    color: ColorChoice,
    say: &'a Say,
}

/// The sweep's end: what became of each variant, the table of variants × metrics, the exit code.
fn finish(f: &FinishArgs<'_>) -> Result<i32> {
    let short = &f.sweep_id[..16];
    let mut exit_code = 0;
    let mut variants = Vec::new();
    let mut not_run = 0;
    for (combo, r) in f.combos.iter().zip(&f.results) {
        let params: BTreeMap<String, String> = combo
            .iter()
            .filter_map(|c| c.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let v = match r {
            None => {
                not_run += 1;
                VariantDoc {
                    params,
                    run_id: None,
                    short_id: None,
                    status: "not_run".into(),
                    exit_code: None,
                    error: None,
                    metrics: BTreeMap::new(),
                }
            }
            Some(Err(e)) => {
                if exit_code == 0 {
                    exit_code = crate::error::exit::FAILURE;
                }
                VariantDoc {
                    params,
                    run_id: None,
                    short_id: None,
                    status: "error".into(),
                    exit_code: None,
                    error: Some(e.clone()),
                    metrics: BTreeMap::new(),
                }
            }
            Some(Ok(o)) => {
                if exit_code == 0 && o.exit_code != 0 {
                    exit_code = o.exit_code;
                }
                let mut metrics = BTreeMap::new();
                for s in &o.steps {
                    metrics.extend(s.metrics.iter().map(|(k, v)| (k.clone(), *v)));
                }
                VariantDoc {
                    params,
                    run_id: Some(o.run_id.clone()),
                    short_id: Some(o.short_id.clone()),
                    status: o.status.as_str().to_string(),
                    exit_code: Some(o.exit_code),
                    error: None,
                    metrics,
                }
            }
        };
        variants.push(v);
    }
    if f.interrupted && exit_code == 0 {
        exit_code = 130;
    }
    if not_run > 0 && exit_code == 0 {
        exit_code = crate::error::exit::FAILURE;
    }
    let style = f.say.style;
    if f.interrupted {
        f.say.line(&format!(
            "{} {not_run} variant{} not run",
            style.paint(Role::Bad, "sweep interrupted:"),
            if not_run == 1 { " was" } else { "s were" }
        ));
    } else if !f.opened {
        f.say.line(&format!(
            "{} the steps the variants share ({}) did not succeed in the first variant: the other {} variants were not run",
            style.paint(Role::Bad, "sweep stopped:"),
            f.shared.iter().cloned().collect::<Vec<_>>().join(", "),
            f.combos.len() - 1
        ));
    }
    let ok = variants.iter().filter(|v| v.status == "succeeded").count();
    f.say.line(&format!(
        "sweep {} finished: {ok} of {} variants succeeded · `mlrun runs --sweep {short}` · `mlrun compare --sweep {short}` · `mlrun checkout RUN` puts a variant's outputs back",
        style.paint(Role::Accent, short),
        f.combos.len()
    ));
    if f.args.json {
        let doc = SweepDoc {
            sweep_id: f.sweep_id.to_string(),
            pipeline: f.pipeline.to_string(),
            params: f
                .axes
                .iter()
                .filter(|a| a.values.len() > 1)
                .map(|a| a.key.clone())
                .collect(),
            status: if exit_code == 0 {
                "succeeded"
            } else {
                "failed"
            },
            exit_code,
            shared_steps: f.shared.iter().cloned().collect(),
            variants,
        };
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(exit_code);
    }
    // the table of variants × metrics, as `mlrun compare --sweep` prints it
    if variants.iter().any(|v| v.run_id.is_some()) {
        println!();
        super::compare::compare(
            super::compare::CompareArgs::of_sweep(f.sweep_id),
            Some(f.store_dir),
            f.color,
        )?;
    }
    Ok(exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_split_on_commas_but_not_escaped_ones_nor_toml_values() {
        assert_eq!(split_values("0.1,0.2"), ["0.1", "0.2"]);
        assert_eq!(split_values("a\\,b,c"), ["a,b", "c"]);
        assert_eq!(split_values("[1,2]"), ["[1,2]"]);
        assert_eq!(split_values("\"a,b\""), ["\"a,b\""]);
        assert_eq!(split_values("0.1,"), ["0.1", ""]);
    }

    #[test]
    fn the_cross_product_varies_the_last_axis_fastest() {
        let axes = parse(&strings(&["lr=1,2", "seed=7", "depth=3,5"])).unwrap();
        assert_eq!(
            combinations(&axes),
            [
                strings(&["lr=1", "seed=7", "depth=3"]),
                strings(&["lr=1", "seed=7", "depth=5"]),
                strings(&["lr=2", "seed=7", "depth=3"]),
                strings(&["lr=2", "seed=7", "depth=5"]),
            ]
        );
        assert_eq!(label(&combinations(&axes)[1], &axes), "lr=1 depth=5");
        assert!(parse(&strings(&["lr=1", "lr=2,3"])).is_err());
    }

    #[test]
    fn a_variant_records_the_command_line_that_makes_it() {
        let argv = strings(&[
            "mlrun",
            "run",
            "--sweep",
            "-p",
            "lr=1,2",
            "--param=seed=7",
            "-pdepth=3,5",
            "train",
        ]);
        let combo = strings(&["lr=2", "seed=7", "depth=5"]);
        assert_eq!(
            variant_argv(&argv, &combo),
            strings(&[
                "mlrun",
                "run",
                "-p",
                "lr=2",
                "--param=seed=7",
                "-pdepth=5",
                "train"
            ])
        );
    }
}

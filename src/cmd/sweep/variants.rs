//! The variants running: each in a scratch copy of the project, a thread per variant slot
//! taking the next variant from a queue, the first variant running the shared steps and a gate
//! holding the others until those are done; their events as lines tagged with their values.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::exec::event::{Event, Sink, Sinks};
use crate::exec::{self, Force, RunOptions, RunOutcome};
use crate::pipeline::Plan;
use crate::report::{Role, Style};
use crate::store::Store;
use crate::store::owner::Owned;
use crate::store::record::{RunStatus, StepStatus};

/// A variant's end: its run's outcome, or why mlrun could not run it.
pub(super) type VariantResult = std::result::Result<RunOutcome, String>;

/// Run every variant: the first at once, the others (up to `at_once` together) once the shared
/// steps are done; `false` when those did not all succeed (the others were not started).
pub(super) fn run_all(ctx: &Arc<Shared>, at_once: usize) -> bool {
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
    opened
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
/// What the project copy leaves out: the store, `.git`, and every declared output (each
/// variant makes its own, or has it restored).
pub(super) fn excluded(plan: &Plan, store_dir: &Path) -> Vec<PathBuf> {
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
pub(super) struct Gate {
    state: Mutex<Option<bool>>,
    cv: Condvar,
}

impl Gate {
    pub(super) fn new(open: bool) -> Gate {
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
pub(super) struct Say {
    pub style: Style,
    pub json: bool,
    pub lock: Mutex<()>,
}

impl Say {
    pub(super) fn line(&self, text: &str) {
        let _g = self.lock.lock().expect("say lock");
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// Everything the worker threads share.
pub(super) struct Shared {
    pub plans: Mutex<Vec<Option<Plan>>>,
    pub combos: Vec<Vec<String>>,
    pub labels: Vec<String>,
    pub results: Mutex<Vec<Option<VariantResult>>>,
    pub next: AtomicUsize,
    pub stop: AtomicBool,
    /// mlrun was interrupted (SIGINT or SIGTERM)
    pub interrupted: AtomicBool,
    pub gate: Arc<Gate>,
    pub shared: BTreeSet<String>,
    pub root: PathBuf,
    pub dir: PathBuf,
    pub exclude: Vec<PathBuf>,
    pub git: crate::fingerprint::git::GitState,
    pub per_run: usize,
    pub sweep_id: String,
    pub argv: Vec<String>,
    pub say: Arc<Say>,
    pub targets: Option<Vec<String>>,
    pub message: Option<String>,
    pub keep_going: bool,
    pub grace: std::time::Duration,
    pub reuse_replays: bool,
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

    fn variant(&self, n: usize) -> VariantResult {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
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

//! The run's events rendered: `Human` for people (the lines `mlrun run` prints, through
//! `output::Printer`, which keeps parallel steps' lines whole and the progress line at the
//! bottom), `Json` for `--json` (the run's document on stdout once it has ended).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::event::{Event, Progress, Sink, StepFinished};
use super::output::Printer;
use crate::fingerprint::git::GitState;
use crate::report::Role;
use crate::report::{self, progress};
use crate::store::record::{Io, RunStatus, StepStatus};

/// What people see of a run.
pub struct Human {
    printer: Arc<Printer>,
}

impl Human {
    pub fn new(printer: Arc<Printer>) -> Human {
        Human { printer }
    }
}

impl Sink for Human {
    fn live(&self) -> bool {
        self.printer.live()
    }

    fn emit(&self, event: &Event<'_>) {
        let p = &self.printer;
        let style = p.style();
        let w = p.width();
        match *event {
            Event::Output { step, stream, line } => p.step_line(step, stream, line),
            Event::RunStarted {
                short_id,
                pipeline,
                steps,
                git,
            } => p.event(&format!(
                "{} {} {pipeline} · {steps} step{} · {}",
                style.paint(Role::Strong, "run"),
                style.paint(Role::Accent, short_id),
                if steps == 1 { "" } else { "s" },
                describe_commit(git)
            )),
            Event::StepStarted { step, cmd, .. } => p.event(&format!(
                "{} {step:<w$}  {}",
                style.paint(Role::Accent, "▸"),
                style.paint(Role::Muted, cmd)
            )),
            Event::StepRetrying {
                step,
                attempt,
                attempts,
                delay,
            } => {
                let delay = if delay.is_zero() {
                    String::new()
                } else {
                    format!(" in {}", report::duration_ms(delay.as_millis() as i64))
                };
                p.event(&format!(
                    "{} {step:<w$}  attempt {attempt} of {attempts}{delay}",
                    style.paint(Role::Warn, "↻"),
                ));
            }
            Event::StepReused {
                step,
                status,
                from_run,
                restored,
            } => p.event(&if status == StepStatus::Cached {
                format!(
                    "{} {step:<w$}  {}  {}",
                    style.paint(Role::Good, "="),
                    style.paint(Role::Muted, "cached"),
                    style.paint(Role::Muted, &format!("(outputs of run {from_run})"))
                )
            } else {
                format!(
                    "{} {step:<w$}  {}  {}",
                    style.paint(Role::Good, "↺"),
                    "restored",
                    restored.join(", ")
                )
            }),
            Event::StepNotRun { step, reason } => p.event(&format!(
                "{} {step:<w$}  {}",
                style.paint(Role::Warn, "-"),
                style.paint(Role::Muted, reason),
            )),
            Event::StepFinished(f) => p.event(&self.finished_line(f)),
            Event::ModelRegistered {
                model,
                version,
                path,
                dir,
                ..
            } => p.event(&format!(
                "  {} {model}@{version} registered ({path}{})",
                style.paint(Role::Muted, "model"),
                if dir { "/" } else { "" }
            )),
            Event::PhaseStarted { step, what } => {
                if !p.live() && progress::announce() {
                    p.note(&progress::started_line(&format!("{what} `{step}`")));
                }
            }
            Event::Progress(shown) => {
                let line = shown.map(progress_line);
                if p.live() {
                    p.progress(line);
                } else if let Some(l) = line {
                    p.note(&l);
                }
            }
            Event::RunFinished { outcome, git } => {
                p.event(&finished_run_line(self, outcome, git));
            }
            Event::Warning(text) => p.warn(text),
            Event::Hint(text) => p.hint(text),
            Event::Note(text) => p.note(text),
        }
    }
}

impl Human {
    /// "✓ train  1.2s  in: data/ (3 files)  out: model.pkl  metrics: acc=0.91", or the failure.
    fn finished_line(&self, f: &StepFinished<'_>) -> String {
        let style = self.printer.style();
        let w = self.printer.width();
        let o = f.outcome;
        let (name, took) = (&o.name, report::duration_ms(o.duration_ms.unwrap_or(0)));
        match o.status {
            StepStatus::Succeeded => {
                let mut parts = vec![format!(
                    "{} {name:<w$}  {took:>6}",
                    style.paint(Role::Good, "✓")
                )];
                // a step's time includes hashing and storing its files: say how much, when it
                // counts
                if f.files_time >= Duration::from_secs(1) {
                    parts.push(style.paint(
                        Role::Muted,
                        &format!(
                            "({} of it hashing and storing files)",
                            report::duration_ms(f.files_time.as_millis() as i64)
                        ),
                    ));
                }
                let ins = io_note(f.inputs.iter());
                if !ins.is_empty() {
                    parts.push(format!("in: {ins}"));
                }
                // declared outputs are the step's outputs; what --trace saw it write besides is
                // counted apart
                let outs = io_note(f.outputs.iter().filter(|io| io.declared));
                if !outs.is_empty() {
                    parts.push(format!("out: {outs}"));
                }
                let extra = io_note(f.outputs.iter().filter(|io| !io.declared));
                if !extra.is_empty() {
                    parts.push(style.paint(Role::Warn, &format!("undeclared writes: {extra}")));
                }
                if !f.metrics.is_empty() {
                    let shown = report::metrics_line(f.metrics.iter().take(4));
                    let more = if f.metrics.len() > 4 {
                        format!(" (+{})", f.metrics.len() - 4)
                    } else {
                        String::new()
                    };
                    parts.push(format!("metrics: {shown}{more}"));
                }
                parts.join("  ")
            }
            StepStatus::Interrupted | StepStatus::TimedOut => format!(
                "{} {name:<w$}  {took:>6}  {}",
                style.paint(Role::Warn, "!"),
                style.paint(Role::Warn, o.error.as_deref().unwrap_or("interrupted"))
            ),
            _ => format!(
                "{} {name:<w$}  {took:>6}  {}",
                style.paint(Role::Bad, "✗"),
                style.paint(
                    Role::Bad,
                    &format!("failed: {}", o.error.as_deref().unwrap_or("failed"))
                )
            ),
        }
    }
}

/// "run 0190… finished: 3 steps ok (1 ran, 2 up to date) in 1.2s · commit abc1234 · store …",
/// or what failed.
fn finished_run_line(h: &Human, outcome: &super::RunOutcome, git: &GitState) -> String {
    let style = h.printer.style();
    let count =
        |f: &dyn Fn(StepStatus) -> bool| outcome.steps.iter().filter(|o| f(o.status)).count();
    let ok = count(&|s| s == StepStatus::Succeeded);
    let reused = count(&|s| matches!(s, StepStatus::Cached | StepStatus::Restored));
    let failed = count(&|s| s == StepStatus::Failed);
    let timed_out = count(&|s| s == StepStatus::TimedOut);
    let not_run = count(&|s| s == StepStatus::NotRun);
    let stopped = count(&|s| s == StepStatus::Interrupted);
    let db = PathBuf::from(&outcome.store);
    let store_shown = db
        .strip_prefix(std::env::current_dir().unwrap_or_default())
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|_| db.clone());
    let took = report::duration_ms(outcome.duration_ms);
    let short = &outcome.short_id;
    match outcome.status {
        RunStatus::Succeeded => {
            let total = ok + reused;
            let detail = match (ok, reused) {
                (_, 0) => String::new(),
                (0, _) => " (all up to date)".to_string(),
                (ran, r) => format!(" ({ran} ran, {r} up to date)"),
            };
            format!(
                "{} {} finished: {total} step{} ok{detail} in {took} · {} · store {}",
                style.paint(Role::Strong, "run"),
                style.paint(Role::Accent, short),
                if total == 1 { "" } else { "s" },
                describe_commit(git),
                store_shown.display()
            )
        }
        status => {
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
                "{} {} {}: {} in {took} · exit code {} · store {}",
                style.paint(Role::Strong, "run"),
                style.paint(Role::Accent, short),
                style.status(verb),
                parts.join(", "),
                outcome.exit_code,
                store_shown.display()
            )
        }
    }
}

/// "hashing the inputs of `train` · 12s · 3.2 GB read at 1.9 GB/s"
fn progress_line(p: &Progress) -> String {
    let what = p
        .phases
        .iter()
        .map(|(step, what)| format!("{what} `{step}`"))
        .collect::<Vec<_>>()
        .join(", ");
    progress::line(&what, p.elapsed, p.bytes)
}

pub(super) fn describe_commit(g: &GitState) -> String {
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

/// "data/ (3 files)", "model.pkl" or "4 files (1.2 MB)".
fn io_note<'a>(list: impl Iterator<Item = &'a Io>) -> String {
    let list: Vec<&Io> = list.collect();
    match list.as_slice() {
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

/// `--json`: the run's document, rendered when the run has ended and printed on stdout by the
/// command (`print`) once it has let go of the pipeline's lock, so that a script reading it can
/// start the next run at once. People's lines go to stderr then (`Printer`).
#[derive(Default)]
pub struct Json {
    document: std::sync::Mutex<Option<super::RunOutcome>>,
}

impl Json {
    /// Print the document, if the run got as far as ending, with a `url` field when given (a
    /// link to the run in `mlrun ui`).
    pub fn print(&self, url: Option<&str>) {
        if let Some(doc) = self.document.lock().expect("json lock").take() {
            println!("{}", report::json_with_url(&doc, url));
        }
    }
}

impl Sink for Json {
    fn emit(&self, event: &Event<'_>) {
        if let Event::RunFinished { outcome, .. } = event {
            *self.document.lock().expect("json lock") = Some((*outcome).clone());
        }
    }
}

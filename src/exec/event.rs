//! What a run says while it runs, as typed events. The runner (`exec`) decides what happens;
//! it never formats a line for people. Each event goes, in the order it happened, to every sink
//! of the run's `Sinks`: today `reporter::Human` (the text, colours and progress line people
//! see) and, with `--json`, `reporter::Json` (the document on stdout at the end).
//!
//! Subscribing later: a sink is anything that implements `Sink` and is pushed on the list the
//! caller hands to `exec::run` (`Sinks::push`). Events borrow the runner's data, so emitting one
//! costs no allocation (a step's output line is passed as the `&str` the capture already
//! holds); a sink that must keep or send an event elsewhere copies what it needs:
//! - a live OpenLineage sender maps `StepStarted` / `StepFinished` / `StepReused` / `StepNotRun`
//!   to START / COMPLETE / FAIL / ABORT run events and hands them to a thread of its own (the
//!   runner must not wait on a network);
//! - a live web view forwards the same events (and `Output` lines, if it shows logs) over a
//!   bounded channel to its server task, dropping lines rather than blocking when it lags;
//! - a Slurm (or other) executor runs a step's process elsewhere and reports through the same
//!   events, so every sink above works unchanged for it; its own scheduler status can be a
//!   sink too.
//!
//! `emit` is called on the thread that produced the event (a step's output reader, the
//! scheduler, a blocking hashing task), so a sink must be quick and must never block.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::output::Stream;
use super::{RunOutcome, StepOutcome};
use crate::fingerprint::git::GitState;
use crate::store::record::{Io, StepStatus};

/// One thing that happened in a run.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The run is recorded as `running`; steps are about to be scheduled.
    RunStarted {
        short_id: &'a str,
        pipeline: &'a str,
        steps: usize,
        git: &'a GitState,
    },
    /// An attempt at running a step's command begins (its `running` row is written).
    StepStarted {
        step: &'a str,
        attempt: u32,
        /// the command as recorded and shown: secrets as markers
        cmd: &'a str,
    },
    /// A line a step printed, masked, without its line ending.
    Output {
        step: &'a str,
        stream: Stream,
        line: &'a str,
    },
    /// A failed attempt is tried again after `delay`.
    StepRetrying {
        step: &'a str,
        attempt: u32,
        attempts: u32,
        delay: Duration,
    },
    /// A step reused an earlier execution: `Cached` (its outputs are on disk) or `Restored`
    /// (the ones in `restored` came back from the object store, written as declared: a
    /// directory with its trailing `/`).
    StepReused {
        step: &'a str,
        status: StepStatus,
        from_run: &'a str,
        restored: &'a [String],
    },
    /// A step was never started: a dependency did not succeed, or the run stopped.
    StepNotRun { step: &'a str, reason: &'a str },
    /// A step that started has ended and its record is written (or known to be incomplete).
    StepFinished(&'a StepFinished<'a>),
    /// A step's model output was registered as a new version.
    ModelRegistered {
        step: &'a str,
        model: &'a str,
        version: &'a str,
        path: &'a str,
        dir: bool,
    },
    /// A step began hashing or storing its files (`what`: "hashing the inputs of", …).
    PhaseStarted { step: &'a str, what: &'a str },
    /// Phases that have lasted long (`None`: none any more).
    Progress(Option<&'a Progress>),
    /// The run's record is closed; `outcome` is the `--json` document.
    RunFinished {
        outcome: &'a RunOutcome,
        git: &'a GitState,
    },
    /// Something the user should know about (not a failure of the run by itself).
    Warning(&'a str),
    /// Something worth changing, nothing wrong.
    Hint(&'a str),
    /// What mlrun is waiting for.
    Note(&'a str),
}

/// The end of a step that started.
#[derive(Debug, Clone, Copy)]
pub struct StepFinished<'a> {
    pub outcome: &'a StepOutcome,
    /// its inputs and outputs as recorded (outputs only for a success)
    pub inputs: &'a [Io],
    pub outputs: &'a [Io],
    pub metrics: &'a BTreeMap<String, f64>,
    /// the part of its time spent hashing and storing its files
    pub files_time: Duration,
}

/// Long hashing or storing: the phases that have lasted, since when the oldest began.
#[derive(Debug, Clone)]
pub struct Progress {
    /// (step, what) of each phase shown
    pub phases: Vec<(String, &'static str)>,
    pub elapsed: Duration,
    /// bytes hashed since the oldest phase began
    pub bytes: u64,
}

/// Something that wants a run's events.
pub trait Sink: Send + Sync {
    fn emit(&self, event: &Event<'_>);

    /// Progress is redrawn in place (a terminal), so it is worth refreshing often.
    fn live(&self) -> bool {
        false
    }
}

/// The sinks of one run, each given every event in order.
#[derive(Clone, Default)]
pub struct Sinks(Vec<Arc<dyn Sink>>);

impl Sinks {
    pub fn new() -> Sinks {
        Sinks(Vec::new())
    }

    pub fn push(&mut self, sink: Arc<dyn Sink>) {
        self.0.push(sink);
    }

    pub fn emit(&self, event: &Event<'_>) {
        for s in &self.0 {
            s.emit(event);
        }
    }

    /// Some sink redraws progress in place.
    pub fn live(&self) -> bool {
        self.0.iter().any(|s| s.live())
    }

    pub fn warn(&self, text: &str) {
        self.emit(&Event::Warning(text));
    }

    pub fn hint(&self, text: &str) {
        self.emit(&Event::Hint(text));
    }

    pub fn note(&self, text: &str) {
        self.emit(&Event::Note(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that keeps a copy of what it is told, as a forwarding sink would.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>, bool);

    impl Sink for Log {
        fn emit(&self, event: &Event<'_>) {
            let line = match event {
                Event::StepStarted { step, attempt, .. } => format!("start {step} {attempt}"),
                Event::Output { step, line, .. } => format!("{step}: {line}"),
                Event::StepNotRun { step, .. } => format!("not run {step}"),
                Event::Warning(w) => format!("warning {w}"),
                other => format!("{other:?}"),
            };
            self.0.lock().unwrap().push(line);
        }

        fn live(&self) -> bool {
            self.1
        }
    }

    #[test]
    fn every_sink_gets_every_event_in_order() {
        let (a, b) = (
            Arc::new(Log::default()),
            Arc::new(Log(Mutex::default(), true)),
        );
        let mut sinks = Sinks::new();
        assert!(!sinks.live());
        sinks.push(a.clone());
        assert!(!sinks.live(), "no sink redraws");
        sinks.push(b.clone());
        assert!(sinks.live(), "one sink redraws");
        let line = String::from("epoch 1");
        sinks.emit(&Event::StepStarted {
            step: "train",
            attempt: 1,
            cmd: "python train.py",
        });
        sinks.emit(&Event::Output {
            step: "train",
            stream: Stream::Stdout,
            line: &line,
        });
        sinks.warn("disk almost full");
        sinks.emit(&Event::StepNotRun {
            step: "eval",
            reason: "not run: `train` did not succeed",
        });
        let want = [
            "start train 1",
            "train: epoch 1",
            "warning disk almost full",
            "not run eval",
        ];
        assert_eq!(*a.0.lock().unwrap(), want);
        assert_eq!(*b.0.lock().unwrap(), want);
    }
}

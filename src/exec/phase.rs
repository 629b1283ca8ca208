//! What each step is doing that can take long besides running: hashing or storing its files.
//! A phase lives in `Ctx::busy` while its `Busy` guard does; its time is added to the step's
//! `files_time` (shown in the step's line when it counts). A task of the run looks at the
//! phases periodically and reports the long ones (`Event::Progress`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Ctx;
use super::event::{Event, Progress};
use crate::fingerprint::hash;

/// Something a step is doing besides running.
pub(super) struct Phase {
    what: &'static str,
    since: Instant,
    /// `hash::bytes_read()` when it began
    bytes_at_start: u64,
}

/// The phases of a run's steps and the time each step spent in them.
#[derive(Default)]
pub(super) struct Phases {
    busy: std::sync::Mutex<BTreeMap<String, Phase>>,
    /// per step: time spent hashing and storing its files, part of the step's time
    files_time: std::sync::Mutex<BTreeMap<String, Duration>>,
}

impl Phases {
    /// The time `step` has spent hashing and storing its files.
    pub(super) fn files_time(&self, step: &str) -> Duration {
        self.files_time
            .lock()
            .expect("files time lock")
            .get(step)
            .copied()
            .unwrap_or_default()
    }

    /// The phases that have lasted at least `after`, as one progress report.
    fn long(&self, after: Duration) -> Option<Progress> {
        let now = Instant::now();
        let busy = self.busy.lock().expect("busy lock");
        let long: Vec<(&String, &Phase)> = busy
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= after)
            .collect();
        let oldest = long.iter().map(|(_, p)| p).min_by_key(|p| p.since)?;
        Some(Progress {
            phases: long.iter().map(|(s, p)| ((*s).clone(), p.what)).collect(),
            elapsed: now.duration_since(oldest.since),
            bytes: hash::bytes_read().saturating_sub(oldest.bytes_at_start),
        })
    }
}

/// A phase in `Ctx::phases` until dropped.
pub(super) struct Busy<'a> {
    ctx: &'a Ctx,
    step: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let phases = &self.ctx.phases;
        let mut busy = phases.busy.lock().expect("busy lock");
        if let Some(p) = busy.remove(&self.step) {
            *phases
                .files_time
                .lock()
                .expect("files time lock")
                .entry(self.step.clone())
                .or_default() += p.since.elapsed();
        }
        // the last phase over: take its progress line off now, not at the next tick
        if busy.is_empty() {
            drop(busy);
            self.ctx.events.emit(&Event::Progress(None));
        }
    }
}

impl Ctx {
    /// `step` is `what` ("hashing the inputs of") until the guard is dropped.
    pub(super) fn busy(&self, step: &str, what: &'static str) -> Busy<'_> {
        self.events.emit(&Event::PhaseStarted { step, what });
        self.phases.busy.lock().expect("busy lock").insert(
            step.to_string(),
            Phase {
                what,
                since: Instant::now(),
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
pub(super) async fn report(ctx: Arc<Ctx>) {
    let live = ctx.events.live();
    let (every, after) = crate::report::progress::cadence(live);
    loop {
        tokio::time::sleep(every).await;
        let long = ctx.phases.long(after);
        // elsewhere than on a terminal, nothing to say is said by no line at all
        if live || long.is_some() {
            ctx.events.emit(&Event::Progress(long.as_ref()));
        }
    }
}

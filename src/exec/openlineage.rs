//! The run's events, told to the live OpenLineage sender (`crate::live`): a sink that turns a
//! step's start and end, a reused step and the run's start and end into a note on the sender's
//! channel (step name and attempt). It never waits: the sender reads what it needs of that one
//! step execution on its own thread and posts it from there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Ctx;
use super::event::{Event, Sink, Sinks};
use crate::live::{Finished, LiveRun, Notifier};

struct LiveSink {
    to: Notifier,
    /// step → the attempt that started last (a step's end names no attempt)
    attempts: Mutex<HashMap<String, u32>>,
}

impl Sink for LiveSink {
    fn emit(&self, event: &Event<'_>) {
        match event {
            Event::RunStarted { .. } => self.to.run_started(),
            Event::StepStarted { step, attempt, .. } => {
                self.attempts
                    .lock()
                    .expect("attempts lock")
                    .insert(step.to_string(), *attempt);
                self.to.step(step, i64::from(*attempt));
            }
            Event::StepFinished(f) => {
                let attempt = self
                    .attempts
                    .lock()
                    .expect("attempts lock")
                    .get(&f.outcome.name)
                    .copied()
                    .unwrap_or(1);
                self.to.step(&f.outcome.name, i64::from(attempt));
            }
            // a reused step's record is its first (and only) attempt
            Event::StepReused { step, .. } => self.to.step(step, 1),
            Event::RunFinished { .. } => self.to.run_ended(),
            _ => {}
        }
    }
}

/// `events` with a sink telling `live` what happens, when there is a live sender.
pub(super) fn with_sink(mut events: Sinks, live: Option<&LiveRun>) -> Sinks {
    if let Some(l) = live {
        events.push(Arc::new(LiveSink {
            to: l.notifier(),
            attempts: Mutex::default(),
        }));
    }
    events
}

/// How long the end of a run waits for the OpenLineage sender when it makes no progress.
const LIVE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Give the OpenLineage sender its last chance to deliver, and say what is left pending. A
/// sender stuck on a server that does not answer has not queued the run's last events: they are
/// queued here, so that the next command (or `export --send`) delivers them.
pub(super) fn finish(ctx: &Ctx, short: &str, events: &Sinks) {
    let Some(live) = ctx.live.lock().expect("live lock").take() else {
        return;
    };
    let url = live.shown_url().to_string();
    let cfg = live.config().clone();
    let (pending, why) = match live.finish(LIVE_GRACE) {
        Finished::Done(d) if d.pending == 0 => return,
        Finished::Done(d) => (
            d.pending.to_string(),
            d.error.unwrap_or_else(|| "not delivered yet".into()),
        ),
        Finished::Stuck { sent } => {
            let queued = ctx.with_store(|s| {
                let sent: Vec<_> = sent
                    .into_iter()
                    .map(|(k, b)| (k, b, crate::store::outbox::Posted::Sent))
                    .collect();
                let now = crate::store::record::now_ms();
                s.outbox_record(&ctx.run_id, &sent, &cfg.shown_url(), now)?;
                crate::live::queue_run(s, &cfg, &ctx.run_id)?;
                Ok(s.outbox_pending(Some(&ctx.run_id))?.events)
            });
            (
                queued.map_or_else(|_| "some".to_string(), |n| n.to_string()),
                format!("{url} is still busy or not answering"),
            )
        }
    };
    events.warn(&format!(
        "OpenLineage: {pending} events not delivered ({why}); they are kept in the store and sent, in order, by the next mlrun command or `mlrun export {short} --send`"
    ));
}

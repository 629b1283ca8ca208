//! A submitted job's end: waiting for it (the scheduler's word, the wrapper's status file, an
//! interrupt, the step's timeout, a scheduler that lost the job), then the job's record and, when
//! the job did not end by exiting, the status and reason to record instead of an exit code.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::wrapper::{self, ExitStatus, NodeEnv};
use super::{JobSpec, LOST_WAIT, cancel, poll, read_json, status_wait};
use crate::exec::child::Interrupt;
use crate::store::jobs::JobRecord;
use crate::store::record::{StepStatus, now_ms};
use poll::Seen;

/// Why mlrun stopped the job itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    Interrupt(i32),
    Timeout,
}

/// The wrapper's exit status file as read: absent (not yet, or never), or unreadable.
pub(super) type StatusRead = std::result::Result<Option<ExitStatus>, String>;

/// How the wait ended.
pub(super) struct Ended {
    /// the exit status, or why there is none (Err: unreadable, or the scheduler lost the job)
    pub status: StatusRead,
    /// the scheduler's last word on the job
    pub last: Option<poll::JobState>,
    /// mlrun stopped the job itself
    pub stopped: Option<Stop>,
    /// what `scancel` said when it failed
    pub cancel_error: Option<String>,
}

/// What is known while waiting for the job's end.
struct Waiting {
    stopped: Option<Stop>,
    cancel_error: Option<String>,
    last: Option<poll::JobState>,
    /// when the step's timeout ends it (set once the job leaves PENDING)
    deadline: Option<Instant>,
    /// when the scheduler was last heard from about this job (or the job was last seen)
    heard: Instant,
    /// once the scheduler says the job is over: when to give up on its status file
    status_by: Option<Instant>,
    file_delay: Duration,
    /// when mlrun cancelled the job (it waits a bounded time for the cancel to take)
    stop_at: Option<Instant>,
    lost: Option<String>,
}

/// After a look at the status file: wait on, end with that status, or end with the job lost.
enum Next {
    Wait,
    End,
    Lost(String),
}

impl Waiting {
    /// Whether the job is over, from the scheduler's last word and the status file.
    fn next(&mut self, status: &StatusRead, grace: Duration) -> Next {
        let has_status = matches!(status, Ok(Some(_)));
        match self.last.as_ref() {
            // ended by the cluster or by mlrun: the job's state says how, nothing to wait for
            Some(s)
                if s.ended()
                    && (self.stopped.is_some()
                        || !matches!(s.state.as_str(), "COMPLETED" | "FAILED")) =>
            {
                return Next::End;
            }
            // ended by itself: its exit status says how (a shared filesystem may show it late)
            Some(s) if s.ended() => {
                if has_status {
                    return Next::End;
                }
                self.status_by
                    .get_or_insert_with(|| Instant::now() + status_wait());
            }
            _ if has_status && self.status_by.is_none() => {
                // the step is over: ask the scheduler now, and wait for the job's end briefly
                poll::nudge();
                self.status_by = Some(Instant::now() + status_wait());
            }
            _ => {}
        }
        if let Some(by) = self.status_by
            && Instant::now() >= by
        {
            return Next::End;
        }
        if let Some(at) = self.stop_at
            && at.elapsed() > grace + Duration::from_secs(30)
        {
            return Next::End;
        }
        if let Some(why) = &self.lost {
            return Next::Lost(why.clone());
        }
        Next::Wait
    }

    /// What the scheduler said about the job.
    fn seen(&mut self, seen: Seen, status: &StatusRead, job_id: &str, timeout: Option<Duration>) {
        match seen {
            Seen::Job(s) => {
                self.heard = Instant::now();
                if self.deadline.is_none()
                    && self.stopped.is_none()
                    && s.state != "PENDING"
                    && let Some(t) = timeout
                {
                    self.deadline = Some(Instant::now() + t);
                }
                self.last = Some(s);
            }
            Seen::Unknown => {
                if status.as_ref().is_ok_and(|s| s.is_some()) {
                    // the controller forgot it; the wrapper said how it ended
                    self.status_by.get_or_insert_with(Instant::now);
                } else if self.heard.elapsed() > LOST_WAIT {
                    self.lost = Some(format!(
                        "the scheduler no longer knows job {job_id} and it left no exit status"
                    ));
                }
            }
            Seen::Unreachable(msg) => {
                if self.heard.elapsed() > LOST_WAIT {
                    self.lost = Some(format!(
                        "the scheduler could not be asked about job {job_id} for {}: {msg}",
                        crate::report::duration_ms(LOST_WAIT.as_millis() as i64)
                    ));
                }
            }
            Seen::Nothing => {}
        }
    }

    /// mlrun stops the job: cancel it, and ask the scheduler soon.
    async fn stop(&mut self, why: Stop, job_id: &str) {
        self.stopped = Some(why);
        self.stop_at = Some(Instant::now());
        self.cancel_error = cancel(job_id).await.err();
        poll::nudge();
    }
}

/// Wait for the job's end: the scheduler watched, the status file looked at with backoff, an
/// interrupt or the step's timeout cancelling the job.
pub(super) async fn wait(
    spec: &JobSpec<'_>,
    job_id: &str,
    mut interrupt: watch::Receiver<Interrupt>,
) -> Ended {
    let mut watch = poll::watch(job_id);
    let mut w = Waiting {
        stopped: None,
        cancel_error: None,
        last: None,
        deadline: None,
        heard: Instant::now(),
        status_by: None,
        file_delay: Duration::from_millis(100),
        stop_at: None,
        lost: None,
    };
    let at_start = *interrupt.borrow_and_update();
    if let Interrupt::Graceful(s) | Interrupt::Kill(s) = at_start {
        w.stopped = Some(Stop::Interrupt(s));
        w.stop_at = Some(Instant::now());
        w.cancel_error = cancel(job_id).await.err();
    }
    let status: StatusRead = loop {
        let status = read_json::<ExitStatus>(&spec.dir, wrapper::STATUS);
        match w.next(&status, spec.child.grace) {
            Next::End => break status,
            Next::Lost(why) => break Err(why),
            Next::Wait => {}
        }
        let timeout_at = w.deadline;
        let interrupted = matches!(w.stopped, Some(Stop::Interrupt(_)));
        let timing = timeout_at.is_some() && w.stopped.is_none();
        tokio::select! {
            changed = watch.rx.changed() => {
                if changed.is_err() { continue; }
                let seen = watch.rx.borrow_and_update().clone();
                w.seen(seen, &status, job_id, spec.child.timeout);
            }
            changed = interrupt.changed(), if !interrupted => {
                if changed.is_err() { continue; }
                let now = *interrupt.borrow();
                if let Interrupt::Graceful(s) | Interrupt::Kill(s) = now {
                    w.stop(Stop::Interrupt(s), job_id).await;
                }
            }
            _ = async { tokio::time::sleep_until(timeout_at.unwrap_or_else(Instant::now)).await }, if timing => {
                w.stop(Stop::Timeout, job_id).await;
            }
            _ = tokio::time::sleep(w.file_delay) => {
                w.file_delay = (w.file_delay * 3 / 2).min(Duration::from_millis(500));
            }
        }
    };
    drop(watch);
    Ended {
        status,
        last: w.last,
        stopped: w.stopped,
        cancel_error: w.cancel_error,
    }
}

/// The job's record: where and when it ran, from the wrapper's files, else the scheduler's word.
pub(super) fn job_record(
    job_id: &str,
    submitted_at: i64,
    last: Option<&poll::JobState>,
    node: Option<&NodeEnv>,
    exit: Option<ExitStatus>,
) -> JobRecord {
    JobRecord {
        executor: "slurm".into(),
        job_id: job_id.to_string(),
        submitted_at,
        node: last
            .and_then(|s| s.node.clone())
            .or_else(|| node.and_then(|n| n.system.as_ref().map(|s| s.hostname.clone()))),
        started_at: exit
            .map(|e| e.started_at)
            .or_else(|| last.and_then(|s| s.start).map(|t| t * 1000)),
        ended_at: exit
            .map(|e| e.ended_at)
            .or_else(|| last.and_then(|s| s.end).map(|t| t * 1000))
            .or_else(|| Some(now_ms())),
        state: last.map(|s| s.state.clone()),
        reason: None,
        gpus: node
            .filter(|n| !n.gpus.is_empty())
            .map(|n| n.gpus.join(",")),
    }
}

/// The status and reason to record when the job did not end by exiting: stopped by mlrun, ended
/// by the cluster, or without a readable exit status (a failure's reason also goes on the job).
pub(super) fn how_it_stopped(
    spec: &JobSpec<'_>,
    job_id: &str,
    ended: &Ended,
    job: &mut JobRecord,
) -> Option<(StepStatus, String)> {
    let cancel_note = ended
        .cancel_error
        .as_ref()
        .filter(|e| !e.is_empty())
        .map(|e| format!(" (scancel said: {e})"))
        .unwrap_or_default();
    let stop: Option<(StepStatus, String)> = match (ended.stopped, ended.last.as_ref()) {
        (Some(Stop::Interrupt(sig)), _) => Some((
            StepStatus::Interrupted,
            format!(
                "interrupted by {}; job {job_id} cancelled{cancel_note}",
                crate::exec::unix::signal_name(sig)
            ),
        )),
        (Some(Stop::Timeout), _) => Some((
            StepStatus::TimedOut,
            format!(
                "timed out after {}; job {job_id} cancelled{cancel_note}",
                spec.child
                    .timeout
                    .map(|t| humantime::format_duration(t).to_string())
                    .unwrap_or_default()
            ),
        )),
        (None, Some(s)) if s.ended() && !matches!(s.state.as_str(), "COMPLETED" | "FAILED") => {
            let (status, why) = ended_by_cluster(job_id, s);
            job.reason = Some(why.clone());
            Some((status, why))
        }
        _ => no_exit_status(spec, job_id, &ended.status, job.state.as_ref()),
    };
    if let Some((StepStatus::Failed, why)) = &stop
        && job.reason.is_none()
    {
        job.reason = Some(why.clone());
    }
    stop
}

/// A job the cluster ended for its own reasons (its time limit, a node failure, …).
fn ended_by_cluster(job_id: &str, s: &poll::JobState) -> (StepStatus, String) {
    let said = if s.reason.is_empty() || s.reason == "None" {
        String::new()
    } else {
        format!(", reason {}", s.reason)
    };
    let node = s.node.clone().unwrap_or_else(|| "its node".into());
    match s.state.as_str() {
        "TIMEOUT" => (
            StepStatus::TimedOut,
            format!("timed out: Slurm ended job {job_id} at its time limit (TIMEOUT)"),
        ),
        "NODE_FAIL" => (
            StepStatus::Failed,
            format!("job {job_id} failed because its node {node} failed (NODE_FAIL{said})"),
        ),
        "OUT_OF_MEMORY" => (
            StepStatus::Failed,
            format!("job {job_id} ran out of memory on {node} (OUT_OF_MEMORY)"),
        ),
        "CANCELLED" => (
            StepStatus::Failed,
            format!(
                "job {job_id} was cancelled by the scheduler or an administrator (CANCELLED{said})"
            ),
        ),
        "PREEMPTED" => (
            StepStatus::Failed,
            format!("job {job_id} was preempted by the scheduler (PREEMPTED)"),
        ),
        other => (
            StepStatus::Failed,
            format!("job {job_id} was ended by the cluster ({other}{said})"),
        ),
    }
}

/// A job that ended by itself: a failure when its exit status is missing or unreadable.
fn no_exit_status(
    spec: &JobSpec<'_>,
    job_id: &str,
    status: &StatusRead,
    state: Option<&String>,
) -> Option<(StepStatus, String)> {
    let state = state.map(|s| format!(" ({s})")).unwrap_or_default();
    match status {
        Ok(Some(_)) => None,
        Ok(None) => Some((
            StepStatus::Failed,
            format!(
                "job {job_id} ended{state} but its exit status file {} is missing after waiting {}",
                spec.dir.join(wrapper::STATUS).display(),
                crate::report::duration_ms(status_wait().as_millis() as i64)
            ),
        )),
        Err(e) => Some((
            StepStatus::Failed,
            format!("job {job_id} ended{state} but its exit status cannot be read: {e}"),
        )),
    }
}

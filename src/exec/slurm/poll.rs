//! Asking the scheduler how the jobs in flight are doing: one `squeue` for all of them at a
//! time (so fifty jobs cost what one does), at growing intervals (200 ms after a change, up to
//! 2 s), woken early when a job's exit-status file appears. Never a tight loop.
//!
//! Accounting (`sacct`) is often off, and `squeue --states=all` keeps answering for a finished
//! job for the controller's `MinJobAge`; a job it no longer knows is reported `Unknown`, and
//! the waiter goes by the job's status file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};

pub const MIN_DELAY: Duration = Duration::from_millis(200);
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// What the scheduler last said about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// not asked yet
    Nothing,
    Job(JobState),
    /// the scheduler does not know the job (any more)
    Unknown,
    /// the scheduler could not be asked: its message
    Unreachable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// `PENDING`, `RUNNING`, `COMPLETING`, `COMPLETED`, `FAILED`, `TIMEOUT`, …
    pub state: String,
    pub reason: String,
    pub node: Option<String>,
    /// seconds since the epoch
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl JobState {
    /// The job is over (no process of it is left to end).
    pub fn ended(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "COMPLETING"
                | "CONFIGURING"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SUSPENDED"
                | "STOPPED"
                | "SIGNALING"
                | "STAGE_OUT"
                | "RESV_DEL_HOLD"
        )
    }
}

struct Inner {
    jobs: HashMap<String, watch::Sender<Seen>>,
    running: bool,
}

pub struct Poller {
    inner: Mutex<Inner>,
    nudge: Notify,
}

fn poller() -> &'static Arc<Poller> {
    static P: OnceLock<Arc<Poller>> = OnceLock::new();
    P.get_or_init(|| {
        Arc::new(Poller {
            inner: Mutex::new(Inner {
                jobs: HashMap::new(),
                running: false,
            }),
            nudge: Notify::new(),
        })
    })
}

/// A job being watched; dropping it stops asking about it.
pub struct Watch {
    id: String,
    pub rx: watch::Receiver<Seen>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        poller()
            .inner
            .lock()
            .expect("poller lock")
            .jobs
            .remove(&self.id);
    }
}

/// Start watching `job`. The polling task runs while any job is watched (within the caller's
/// runtime).
pub fn watch(job: &str) -> Watch {
    let p = poller();
    let (tx, rx) = watch::channel(Seen::Nothing);
    let start = {
        let mut inner = p.inner.lock().expect("poller lock");
        inner.jobs.insert(job.to_string(), tx);
        !std::mem::replace(&mut inner.running, true)
    };
    if start {
        tokio::spawn(poll_loop(p.clone()));
    }
    p.nudge.notify_one();
    Watch {
        id: job.to_string(),
        rx,
    }
}

/// Ask again soon (a job's status file appeared, or it was cancelled).
pub fn nudge() {
    poller().nudge.notify_one();
}

async fn poll_loop(p: Arc<Poller>) {
    let mut delay = MIN_DELAY;
    loop {
        let ids: Vec<String> = {
            let mut inner = p.inner.lock().expect("poller lock");
            if inner.jobs.is_empty() {
                inner.running = false;
                return;
            }
            inner.jobs.keys().cloned().collect()
        };
        let seen = query(&ids).await;
        {
            let inner = p.inner.lock().expect("poller lock");
            for (id, tx) in &inner.jobs {
                let s = match &seen {
                    Ok(map) => map.get(id).cloned().map_or(Seen::Unknown, Seen::Job),
                    Err(e) => Seen::Unreachable(e.clone()),
                };
                tx.send_replace(s);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => delay = (delay * 2).min(MAX_DELAY),
            _ = p.nudge.notified() => delay = MIN_DELAY,
        }
    }
}

/// One `squeue` for `ids`: job id → its state. Err: the scheduler's own message.
async fn query(ids: &[String]) -> Result<HashMap<String, JobState>, String> {
    let out = tokio::process::Command::new("squeue")
        .args(["-h", "--states=all", "-o", "%i|%T|%r|%N|%S|%e", "-j"])
        .arg(ids.join(","))
        .env("SLURM_TIME_FORMAT", "%s")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(60), out).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(format!("cannot run `squeue`: {e}")),
        Err(_) => return Err("`squeue` did not answer within 60 s".into()),
    };
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        // a single id the controller no longer knows is an error, not an empty answer
        if stderr.contains("Invalid job id") {
            return Ok(HashMap::new());
        }
        return Err(if stderr.is_empty() {
            format!("`squeue` failed ({})", out.status)
        } else {
            stderr
        });
    }
    Ok(parse(&String::from_utf8_lossy(&out.stdout)))
}

fn parse(text: &str) -> HashMap<String, JobState> {
    let time = |s: &str| s.trim().parse::<i64>().ok().filter(|t| *t > 0);
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let [id, state, reason, node, start, end] = f[..] else {
                return None;
            };
            Some((
                id.trim().to_string(),
                JobState {
                    // `CANCELLED by 0` in some versions: the state is the first word
                    state: state.split_whitespace().next().unwrap_or("").to_string(),
                    reason: reason.trim().to_string(),
                    node: Some(node.trim().to_string()).filter(|n| !n.is_empty()),
                    start: time(start),
                    end: time(end),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_are_read_with_epoch_times() {
        let m = parse("7|RUNNING|None|node1|1796572438|NONE\n8|PENDING|Resources||N/A|N/A\n");
        assert_eq!(
            m["7"],
            JobState {
                state: "RUNNING".into(),
                reason: "None".into(),
                node: Some("node1".into()),
                start: Some(1796572438),
                end: None,
            }
        );
        assert!(!m["7"].ended());
        assert_eq!(m["8"].node, None);
        let done = parse("9|NODE_FAIL|NodeDown|n|1|2\n");
        assert!(done["9"].ended());
    }
}

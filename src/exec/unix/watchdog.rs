//! The watchdog: a small process that stops the steps' process groups if mlrun dies without
//! stopping them itself (SIGKILL, a crash, the OOM killer).
//!
//! mlrun starts it with the first step it runs (`mlrun __mlrun-watchdog`, its own process group,
//! its stdin a pipe whose other end only mlrun holds; the end is close-on-exec, so no step
//! inherits it). Through the pipe mlrun says `+PGID GRACE_MS` when a step's group starts and
//! `-PGID` when `exec::child` is done with it. When the pipe reaches end-of-file, mlrun has
//! exited: normally nothing is registered and the watchdog just exits; otherwise it sends the
//! registered groups SIGTERM, then SIGKILL to those still there after their grace period,
//! exactly what Ctrl-C does, minus the recording (the next mlrun command marks the run
//! `interrupted`). It ignores SIGINT, SIGTERM and SIGHUP (a Ctrl-C or a closed terminal is for
//! mlrun, which then stops the steps itself) and runs in its own process group, so a signal to
//! mlrun's group (a CI job's timeout) does not take it down with mlrun.
//!
//! A process group id is not reused while any process is in the group, and a group is
//! unregistered as soon as mlrun has stopped it, so the watchdog signals only steps' groups.
//!
//! Only the mlrun binary starts one (`enable`, from `main_entry`): in another program, such as
//! a test harness, the current executable is not mlrun.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal, killpg};
use nix::unistd::Pid;

/// First argument that makes `mlrun` the watchdog instead of the CLI.
pub const ARG: &str = "__mlrun-watchdog";

/// How often the watchdog looks whether the groups it stopped are gone.
const POLL: Duration = Duration::from_millis(20);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// mlrun's side: the pipe to the watchdog and what it has been told.
struct State {
    link: Option<(Child, ChildStdin)>,
    /// registered groups and their grace periods in ms, re-sent to a restarted watchdog
    groups: BTreeMap<u32, u64>,
    warned: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    link: None,
    groups: BTreeMap::new(),
    warned: false,
});

/// This process is the mlrun binary: steps it runs are watched.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// A step's process group, registered with the watchdog until `finish` (or drop).
pub struct Watched {
    pgid: u32,
    done: bool,
}

/// Register `pgid` (a step's group, just started) with the watchdog, starting it if needed.
pub fn watch(pgid: u32, grace: Duration) -> Watched {
    if pgid != 0 && ENABLED.load(Ordering::Relaxed) {
        let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
        let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        s.groups.insert(pgid, ms);
        s.send(&format!("+{pgid} {ms}\n"));
    }
    Watched { pgid, done: false }
}

impl Watched {
    /// mlrun is done with the group (stopped or drained): the watchdog forgets it.
    pub fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for Watched {
    /// Dropped before `finish`: the step was abandoned (mlrun is failing); its main process is
    /// killed on drop, and so is the rest of its group.
    fn drop(&mut self) {
        if self.pgid == 0 {
            return;
        }
        if !self.done {
            super::kill_group(self.pgid);
        }
        if ENABLED.load(Ordering::Relaxed) {
            let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
            // with no watchdog running, there is nobody to tell
            if s.groups.remove(&self.pgid).is_some() && s.link.is_some() {
                s.send(&format!("-{}\n", self.pgid));
            }
        }
    }
}

impl State {
    /// Tell the watchdog `msg`; a watchdog that is gone is restarted and told every registered
    /// group. Writes are a few bytes, far below the pipe's capacity.
    fn send(&mut self, msg: &str) {
        if let Some((_, pipe)) = &mut self.link
            && pipe.write_all(msg.as_bytes()).is_ok()
        {
            return;
        }
        // Never started, or its end of the pipe is closed: it died (a write to a live one does
        // not fail). Reap it and start another.
        if let Some((mut old, _)) = self.link.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        match start() {
            Ok((child, mut pipe)) => {
                let all: String = self
                    .groups
                    .iter()
                    .map(|(pgid, ms)| format!("+{pgid} {ms}\n"))
                    .collect();
                if pipe.write_all(all.as_bytes()).is_ok() {
                    self.link = Some((child, pipe));
                }
            }
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    eprintln!(
                        "warning: cannot start mlrun's watchdog ({e}): if mlrun is killed, the steps' child processes may keep running"
                    );
                }
            }
        }
    }
}

fn start() -> std::io::Result<(Child, ChildStdin)> {
    use std::os::unix::process::CommandExt;
    // /proc/self/exe still runs this binary if its file was replaced since mlrun started
    let exe = if cfg!(target_os = "linux") {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe()?
    };
    let mut child = Command::new(exe)
        .arg0("mlrun")
        .arg(ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .process_group(0)
        .spawn()?;
    let pipe = child.stdin.take().expect("stdin is piped");
    Ok((child, pipe))
}

/// The watchdog process: `mlrun __mlrun-watchdog`, reading mlrun's messages on stdin.
pub fn main() -> i32 {
    // Blocked signals are never delivered (and nothing here execs, so the mask stays here).
    let mut mask = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(sig);
    }
    let _ = mask.thread_block();
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_name(c"mlrun-watchdog");

    let mut groups: BTreeMap<i32, Duration> = BTreeMap::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix('+') {
            let mut parts = rest.split(' ');
            if let (Some(Ok(pgid)), Some(Ok(ms))) = (
                parts.next().map(str::parse::<i32>),
                parts.next().map(str::parse::<u64>),
            ) && pgid > 0
            {
                groups.insert(pgid, Duration::from_millis(ms));
            }
        } else if let Some(Ok(pgid)) = line.strip_prefix('-').map(str::parse::<i32>) {
            groups.remove(&pgid);
        }
    }
    // mlrun has exited; whatever is still registered it did not stop
    stop(groups);
    0
}

/// SIGTERM to every group, then SIGKILL to each one still there after its grace period.
fn stop(mut groups: BTreeMap<i32, Duration>) {
    let started = Instant::now();
    for &pgid in groups.keys() {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    }
    while !groups.is_empty() {
        groups.retain(|&pgid, grace| {
            let group = Pid::from_raw(pgid);
            // signal 0: does the group still have a member (zombies count until reaped)
            if killpg(group, None).is_err() {
                return false;
            }
            if started.elapsed() >= *grace {
                let _ = killpg(group, Signal::SIGKILL);
                return false;
            }
            true
        });
        std::thread::sleep(POLL);
    }
}

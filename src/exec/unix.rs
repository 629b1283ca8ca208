//! Process groups and signals: the only place that speaks to the OS about processes.
//!
//! Steps die with mlrun. A step runs in its own process group, which mlrun stops on Ctrl-C,
//! SIGTERM, a timeout or the end of its main process (`exec::child`). When mlrun cannot do that
//! because it is gone (SIGKILL, a crash, the OOM killer), two things stop the step instead:
//!
//! 1. the **watchdog** (`watchdog`), a small process started with the first step, is told every
//!    step's process group; when mlrun's end of the pipe to it closes while groups are still
//!    registered, it sends them SIGTERM and, after `--grace`, SIGKILL: the whole group, so
//!    `sh -c 'python train.py'` and anything else the step started in its group;
//! 2. on Linux, each step's main process also has **PR_SET_PDEATHSIG** = SIGTERM (`spawn`): the
//!    kernel signals it when mlrun dies, even if the watchdog died too or was never started.
//!
//! PDEATHSIG fires when the *thread* that forked the child exits, not the process, and tokio
//! runs tasks on worker and blocking threads it may retire. So steps are forked by one thread
//! that lives as long as mlrun (`spawner`), never by a tokio thread.
//!
//! Not covered: processes that leave the step's process group (`setsid`, `setpgid`, daemons),
//! unless the step is traced (the `--trace` helper is in the group, and when the watchdog kills
//! it, PTRACE_O_EXITKILL kills every tracee); a watchdog killed together with mlrun (then only
//! PDEATHSIG remains: the main process gets SIGTERM, what it started runs on, and a traced step
//! runs on, since its helper ignores SIGTERM); set-user-ID programs (exec clears PDEATHSIG).

pub mod watchdog;

use std::process::ExitStatus;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Send a signal to a whole process group; a group that is already gone is not an error.
pub fn signal_group(pgid: u32, sig: Signal) {
    let _ = killpg(Pid::from_raw(pgid as i32), sig);
}

pub fn terminate_group(pgid: u32) {
    signal_group(pgid, Signal::SIGTERM);
}

pub fn kill_group(pgid: u32) {
    signal_group(pgid, Signal::SIGKILL);
}

/// Start a step's process (`cmd` already says: own process group). On Linux it gets
/// PR_SET_PDEATHSIG = SIGTERM and is forked by the spawner thread; elsewhere it is started here.
/// Must be called inside a tokio runtime.
pub async fn spawn(cmd: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    #[cfg(target_os = "linux")]
    {
        spawner::spawn(cmd).await
    }
    #[cfg(not(target_os = "linux"))]
    {
        let mut cmd = cmd;
        cmd.spawn()
    }
}

#[cfg(target_os = "linux")]
mod spawner {
    use std::io;
    use std::panic::AssertUnwindSafe;
    use std::sync::OnceLock;
    use std::sync::mpsc;

    use nix::sys::signal::{SigHandler, Signal};
    use nix::unistd::{Pid, getpid, getppid};
    use tokio::process::{Child, Command};
    use tokio::sync::oneshot;

    struct Request {
        cmd: Command,
        /// the runtime the caller's `Child` belongs to (its SIGCHLD driver)
        runtime: tokio::runtime::Handle,
        reply: oneshot::Sender<io::Result<Child>>,
    }

    /// The spawner thread's queue; `None` if the thread could not be started.
    static QUEUE: OnceLock<Option<mpsc::Sender<Request>>> = OnceLock::new();

    pub async fn spawn(mut cmd: Command) -> io::Result<Child> {
        let queue = QUEUE.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("mlrun-spawner".into())
                .spawn(move || serve(rx))
                .ok()
                .map(|_| tx)
        });
        let Some(queue) = queue else {
            // No long-lived thread: PDEATHSIG from this (tokio) thread could fire while mlrun
            // is alive, so the step goes without it; the watchdog still covers it.
            return cmd.spawn();
        };
        arm_pdeathsig(&mut cmd);
        let (reply, answer) = oneshot::channel();
        let request = Request {
            cmd,
            runtime: tokio::runtime::Handle::current(),
            reply,
        };
        queue
            .send(request)
            .map_err(|_| io::Error::other("the process spawner thread is gone"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the process spawner thread is gone"))?
    }

    /// The spawner thread: never returns (the queue's sender is a static), so it exits only
    /// with the process, which is when the steps' PDEATHSIG must fire.
    fn serve(queue: mpsc::Receiver<Request>) {
        for Request {
            mut cmd,
            runtime,
            reply,
        } in queue
        {
            let _in_runtime = runtime.enter();
            // a panic must not end this thread: that would signal every running step
            let spawned = std::panic::catch_unwind(AssertUnwindSafe(|| cmd.spawn()))
                .unwrap_or_else(|_| Err(io::Error::other("starting the process panicked")));
            // a caller that went away drops the child, which kills it (kill_on_drop)
            let _ = reply.send(spawned);
        }
    }

    #[expect(
        unsafe_code,
        reason = "pre_exec, to set PR_SET_PDEATHSIG between fork and exec"
    )]
    fn arm_pdeathsig(cmd: &mut Command) {
        let parent = getpid();
        // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
        // functions may be called. `in_child` makes three system calls (sigaction, prctl,
        // getppid), takes no lock and allocates nothing (an `io::Error` from an errno does not).
        unsafe {
            cmd.pre_exec(move || in_child(parent));
        }
    }

    /// In the forked child: have the kernel send SIGTERM when mlrun dies, and close the race
    /// where it already has.
    #[expect(unsafe_code, reason = "sigaction in the forked child")]
    fn in_child(parent: Pid) -> io::Result<()> {
        // The child still runs mlrun's signal handlers until exec; tokio's SIGTERM handler
        // would swallow a parent-death signal arriving now. With the default action it ends the
        // child, as it will after exec. SAFETY: SIG_DFL installs no handler.
        unsafe { nix::sys::signal::signal(Signal::SIGTERM, SigHandler::SigDfl) }?;
        nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
        // mlrun died before the line above: no signal will come, so do not start the step
        if getppid() != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    }
}

/// (exit code, signal) of a finished process; a signal gives code 128+signal, as shells do.
pub fn exit_parts(status: ExitStatus) -> (i32, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => (c, None),
        (None, Some(s)) => (128 + s, Some(s)),
        (None, None) => (1, None),
    }
}

pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Duration;

    /// Running (a zombie is a process that died and was not reaped yet).
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().starts_with('Z')))
            .is_some_and(|zombie| !zombie)
    }

    /// The PR_SET_PDEATHSIG pitfall: the signal fires when the *thread* that forked the child
    /// exits. A step started from a thread that then ends (a retired tokio thread) must live on.
    #[test]
    fn a_step_outlives_the_thread_that_started_it() {
        let pid = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut cmd = tokio::process::Command::new("sleep");
                cmd.arg("30");
                let child = super::spawn(cmd).await.expect("sleep starts");
                child.id().expect("running") as i32
            })
        })
        .join()
        .unwrap();
        // the thread and its runtime are gone; a parent-death signal would be immediate
        std::thread::sleep(Duration::from_millis(300));
        let survived = alive(pid);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        assert!(survived, "the step died with the thread that started it");
    }
}

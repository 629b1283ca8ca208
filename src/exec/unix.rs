//! Process groups and signals: the only place that speaks to the OS about processes.
//!
//! Steps die with mlrun. A step runs in its own process group, which mlrun stops on Ctrl-C,
//! SIGTERM, a timeout or the end of its main process (`exec::child`). When mlrun cannot do that
//! because it is gone (SIGKILL, a crash, the OOM killer), the **watchdog** (`watchdog`) does: a
//! small process started with the first step, told every step's process group; when mlrun's end
//! of the pipe to it closes while groups are still registered, it sends them SIGTERM and, after
//! `--grace`, SIGKILL: the whole group, so `sh -c 'python train.py'` and anything else the step
//! started in its group.
//!
//! Not covered: processes that leave the step's process group (`setsid`, `setpgid`, daemons),
//! unless the step is traced (the `--trace` helper is in the group, and when the watchdog kills
//! it, PTRACE_O_EXITKILL kills every tracee); a watchdog killed together with mlrun (`pkill -9
//! -f mlrun`). PR_SET_PDEATHSIG on each step's main process would cover the latter for the
//! main process only, but setting it needs code between fork and exec, which makes std fork
//! mlrun instead of using posix_spawn: measured on the 50-step chain, 1 ms more CPU per step
//! (half the whole per-step overhead), so it is not used.

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

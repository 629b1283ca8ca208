//! Process groups and signals: the only place that speaks to the OS about processes.

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

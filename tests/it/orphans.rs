//! mlrun killed outright (SIGKILL: no handler runs) must not leave its steps running: the
//! watchdog stops each step's whole process group. The next mlrun command records the run
//! interrupted.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::{Env, finish, one, signal, wait_until};

/// A step whose shell starts a background child, a grandchild through another shell, a process
/// that ignores SIGTERM, and waits in the foreground; every pid it starts is written down.
fn pipeline(env: &Env) {
    env.write(
        "pipeline.toml",
        r#"
[steps.slow]
cmd = "sleep 30 & echo $! > bg.pid; sh -c 'sleep 31 & echo $! > grandchild.pid; wait' & (trap '' TERM; sleep 32) & echo $! > stubborn.pid; echo $$ > main.pid; touch started; sleep 33"
outputs = ["never.txt"]
"#,
    );
    env.commit("p");
}

/// Fields of /proc/PID/stat after the command name: state, ppid, pgrp, …
fn stat(pid: i32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(String::from).collect())
}

/// Running (a zombie is dead; its reaper may take its time).
fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|f| f[0] != "Z")
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Every live process in process group `pgid`.
fn group(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if stat(pid).is_some_and(|f| f[0] != "Z" && f[2] == pgid.to_string()) {
            out.push(pid);
        }
    }
    out
}

fn read_pid(env: &Env, name: &str) -> i32 {
    let path = env.path(name);
    assert!(
        wait_until(10, || std::fs::read_to_string(&path)
            .is_ok_and(|s| s.ends_with('\n'))),
        "{name} written"
    );
    std::fs::read_to_string(&path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Poll until none of `pids` runs; the time it took, or the ones still running.
fn wait_gone(pids: &[i32], within: Duration) -> Result<Duration, Vec<String>> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if !pids.iter().any(|&p| alive(p)) {
            return Ok(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // name them, then do not leave them running after a failed test
    let left = pids
        .iter()
        .filter(|&&p| alive(p))
        .map(|&p| format!("{p} ({})", comm(p)))
        .collect();
    for &p in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), Signal::SIGKILL);
    }
    Err(left)
}

/// Kills mlrun and the step's process group when a test ends, passed or failed, so that a
/// failing test does not leave them running.
struct Cleanup {
    mlrun: i32,
    pgid: i32,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.mlrun), Signal::SIGKILL);
        if self.pgid > 0 {
            let _ =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pgid), Signal::SIGKILL);
        }
    }
}

/// Start the pipeline, wait for every process of the step, and return (mlrun, the step's
/// process group members, the pids the step wrote down, the cleanup guard).
fn start(env: &Env, args: &[&str]) -> (std::process::Child, Vec<i32>, Vec<i32>, Cleanup) {
    let child = env.spawn_mlrun(args);
    let mut cleanup = Cleanup {
        mlrun: child.id() as i32,
        pgid: 0,
    };
    assert!(
        wait_until(10, || env.path("started").exists()),
        "the step started"
    );
    let named: Vec<i32> = ["main.pid", "bg.pid", "grandchild.pid", "stubborn.pid"]
        .iter()
        .map(|n| read_pid(env, n))
        .collect();
    // the group is the main process's (untraced) or the trace helper's (traced)
    let pgid: i32 = stat(named[0]).expect("the step runs")[2].parse().unwrap();
    cleanup.pgid = pgid;
    let members = group(pgid);
    for p in &named {
        assert!(members.contains(p), "{p} in group {pgid}: {members:?}");
    }
    (child, members, named, cleanup)
}

fn assert_recorded_interrupted(env: &Env) {
    assert_eq!(
        one::<String>(&env.db(), "SELECT status FROM runs"),
        "running",
        "nobody closed the run yet"
    );
    let listed = env.mlrun(&["runs", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(v[0]["status"], "interrupted", "{listed:?}");
    assert_eq!(
        one::<String>(
            &env.db(),
            "SELECT status FROM step_execs WHERE step = 'slow'"
        ),
        "interrupted"
    );
}

fn killed_mlrun_takes_the_whole_group(args: &[&str]) {
    let env = Env::git();
    pipeline(&env);
    let (child, members, named, _cleanup) = start(&env, args);
    signal(&child, Signal::SIGKILL);
    assert_eq!(finish(child).code, 137);
    // SIGTERM at once; the process ignoring it gets SIGKILL after the grace period (1 s)
    // SIGKILL 1 s after the SIGTERM: well within the bound, which only stops a hang
    wait_gone(&members, Duration::from_secs(120))
        .unwrap_or_else(|left| panic!("still running after mlrun was killed: {left:?}"));
    assert!(named.iter().all(|&p| !alive(p)));
    assert_recorded_interrupted(&env);
}

#[test]
fn a_killed_mlrun_stops_its_steps_and_everything_they_started() {
    killed_mlrun_takes_the_whole_group(&["run", "--grace", "1s"]);
}

#[test]
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn a_killed_mlrun_stops_traced_steps_too() {
    killed_mlrun_takes_the_whole_group(&["run", "--trace", "--grace", "1s"]);
}

#[test]
#[cfg(target_os = "linux")]
fn a_run_that_ends_normally_leaves_no_watchdog_behind() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.quick]\ncmd = \"echo ok > ok.txt\"\noutputs = [\"ok.txt\"]\n",
    );
    env.commit("p");
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    // this test's watchdog (it has the test's HOME) saw the pipe close and exited
    let home = format!("HOME={}\0", env.home.display());
    let ours = |p: i32| {
        comm(p) == "mlrun-watchdog"
            && std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|e| e.windows(home.len()).any(|w| w == home.as_bytes()))
    };
    let gone = wait_until(10, || {
        !std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .any(|p| alive(p) && ours(p))
    });
    assert!(gone, "the watchdog exited with mlrun");
}

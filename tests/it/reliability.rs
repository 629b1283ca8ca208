//! Whatever happens, every run ends with a true status: interrupts, timeouts, retries, mlrun
//! itself killed, several mlruns at once, files changing under it.

use nix::sys::signal::Signal;

use crate::common::{Env, finish, one, rows, signal, wait_until};

fn long_pipeline(env: &Env, body: &str) {
    env.write(
        "pipeline.toml",
        &format!(
            r#"
[steps.slow]
cmd = "{body}"
outputs = ["partial.txt"]
[steps.after]
cmd = "cp partial.txt done.txt"
inputs = ["partial.txt"]
outputs = ["done.txt"]
"#
        ),
    );
    env.commit("p");
}

fn started(env: &Env) -> bool {
    env.path("started").exists()
}

#[test]
fn sigint_stops_steps_and_records_the_run_as_interrupted() {
    let env = Env::git();
    long_pipeline(&env, "echo partial > partial.txt; touch started; sleep 30");
    let child = env.spawn_mlrun(&[]);
    assert!(wait_until(10, || started(&env)), "the step started");
    signal(&child, Signal::SIGINT);
    let out = finish(child);
    assert_eq!(out.code, 130, "{out:?}");
    assert!(out.stdout.contains("interrupted by SIGINT"), "{out:?}");
    let db = env.db();
    assert_eq!(one::<String>(&db, "SELECT status FROM runs"), "interrupted");
    assert_eq!(
        rows(&db, "SELECT step, status FROM step_execs ORDER BY id"),
        [["slow", "interrupted"], ["after", "not_run"]]
    );
    // the partial output exists on disk but is not a recorded version
    assert!(env.path("partial.txt").exists());
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM io_edges WHERE direction = 'out'"),
        0
    );
}

#[test]
fn sigterm_exits_143() {
    let env = Env::git();
    long_pipeline(&env, "touch started; sleep 30");
    let child = env.spawn_mlrun(&[]);
    assert!(wait_until(10, || started(&env)));
    signal(&child, Signal::SIGTERM);
    let out = finish(child);
    assert_eq!(out.code, 143, "{out:?}");
    assert_eq!(
        one::<String>(&env.db(), "SELECT status FROM runs"),
        "interrupted"
    );
}

/// The step ignores SIGTERM and would sleep for ten minutes, then leave `slept`: if it was
/// killed, `slept` never appears, however slow the machine is.
const STUBBORN: &str = "trap '' TERM; touch started; sleep 600; touch slept";

fn recorded_signal(env: &Env) -> (String, Option<i64>) {
    env.db()
        .query_row(
            "SELECT status, signal FROM step_execs WHERE step = 'slow' ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

#[test]
fn a_step_ignoring_sigterm_is_killed_after_the_grace_period() {
    let env = Env::git();
    long_pipeline(&env, STUBBORN);
    let child = env.spawn_mlrun(&["--grace", "1s"]);
    assert!(wait_until(10, || started(&env)));
    signal(&child, Signal::SIGINT);
    let out = finish(child);
    assert_eq!(out.code, 130, "{out:?}");
    assert!(
        !env.path("slept").exists(),
        "mlrun waited for the step's sleep"
    );
    assert_eq!(recorded_signal(&env), ("interrupted".into(), Some(9)));
}

#[test]
fn a_second_interrupt_kills_at_once() {
    let env = Env::git();
    long_pipeline(&env, STUBBORN);
    // a grace period longer than the step: only the second interrupt can end it early
    let mut child = env.spawn_mlrun(&["--grace", "1h"]);
    assert!(wait_until(10, || started(&env)));
    signal(&child, Signal::SIGINT);
    // the second interrupt only after mlrun has taken the first one
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("interrupt again to kill them now") {
        let n = std::io::BufRead::read_line(&mut stderr, &mut seen).unwrap();
        assert!(n > 0, "mlrun ended before it took the interrupt: {seen}");
    }
    signal(&child, Signal::SIGINT);
    std::io::Read::read_to_string(&mut stderr, &mut seen).unwrap();
    let out = finish(child);
    assert_eq!(out.code, 130, "{out:?}");
    assert!(
        seen.contains("interrupted again: killing the running steps now"),
        "{seen}"
    );
    assert!(!env.path("slept").exists());
    assert_eq!(recorded_signal(&env), ("interrupted".into(), Some(9)));
}

#[test]
fn a_killed_mlrun_leaves_a_run_that_the_next_command_marks_interrupted() {
    let env = Env::git();
    long_pipeline(&env, "touch started; sleep 30");
    let child = env.spawn_mlrun(&[]);
    assert!(wait_until(10, || started(&env)));
    signal(&child, Signal::SIGKILL);
    let out = finish(child);
    assert_eq!(out.code, 137);
    assert_eq!(
        one::<String>(&env.db(), "SELECT status FROM runs"),
        "running",
        "nobody closed it yet"
    );
    let listed = env.mlrun(&["runs", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(v[0]["status"], "interrupted", "{listed:?}");
    let db = env.db();
    assert_eq!(
        one::<String>(&db, "SELECT status FROM step_execs WHERE step = 'slow'"),
        "interrupted"
    );
    assert_eq!(one::<String>(&db, "PRAGMA integrity_check"), "ok");
    // and the next run is not blocked by a stale lock
    env.write(
        "pipeline.toml",
        "[steps.quick]\ncmd = \"echo ok > ok.txt\"\noutputs = [\"ok.txt\"]\n",
    );
    assert_eq!(env.mlrun(&[]).code, 0);
}

#[test]
fn a_step_past_its_timeout_is_stopped_and_recorded_as_timed_out() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.slow]\ncmd = \"sleep 600; touch slept\"\ntimeout = \"500ms\"\n",
    );
    let out = env.mlrun(&["--grace", "1s"]);
    assert_eq!(out.code, 124, "{out:?}");
    assert!(!env.path("slept").exists(), "the step ran to its end");
    assert!(out.stdout.contains("timed out after 500ms"), "{out:?}");
    let db = env.db();
    assert_eq!(
        rows(&db, "SELECT status, error FROM step_execs"),
        [["timed_out", "timed out after 500ms"]]
    );
    assert_eq!(one::<String>(&db, "SELECT status FROM runs"), "failed");
}

#[test]
fn retries_record_every_attempt() {
    let env = Env::git();
    // fails twice, then succeeds; the counter lives outside the declared outputs
    env.write(
        "pipeline.toml",
        r#"
[steps.flaky]
cmd = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ] && echo ok > out.txt"
outputs = ["out.txt"]
retries = 3
retry-delay = "10ms"
"#,
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("attempt 2 of 4") && out.stdout.contains("attempt 3 of 4"),
        "{out:?}"
    );
    assert_eq!(
        rows(
            &env.db(),
            "SELECT attempt, status FROM step_execs ORDER BY attempt"
        ),
        [["1", "failed"], ["2", "failed"], ["3", "succeeded"]]
    );
    // exhausted: the run fails with the step's code after every attempt is recorded
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.bad]\ncmd = \"exit 7\"\nretries = 1\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(
        rows(
            &env.db(),
            "SELECT attempt, status FROM step_execs ORDER BY attempt"
        ),
        [["1", "failed"], ["2", "failed"]]
    );
}

#[test]
fn a_second_run_of_the_same_pipeline_refuses_or_waits() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"touch started; while [ ! -e release ]; do sleep 0.01; done; rm -f release; echo x > o.txt\"\noutputs = [\"o.txt\"]\n",
    );
    // the first run holds the lock until the test releases its step
    let first = env.spawn_mlrun(&[]);
    assert!(wait_until(10, || started(&env)));
    let holder: String = one(&env.db(), "SELECT id FROM runs WHERE status = 'running'");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 75, "{out:?}");
    // the message names the run holding the lock, so `mlrun show` can be pointed at it
    assert!(
        out.stderr
            .contains(&format!("is already running as run {holder} (mlrun pid")),
        "{out:?}"
    );
    assert!(out.stderr.contains("--wait-lock"), "{out:?}");
    // the second waits; released once it says so, it runs after the first
    let log = env.home.join("waiter.err");
    let waiter = env
        .command(&["--wait-lock"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(10, || said()
            .contains(&format!("waiting for run {holder} (mlrun pid"))),
        "{}",
        said()
    );
    env.write("release", "");
    assert_eq!(finish(first).code, 0);
    let waited = finish(waiter);
    assert_eq!(waited.code, 0, "{waited:?}\n{}", said());
    assert_eq!(
        one::<i64>(
            &env.db(),
            "SELECT count(*) FROM runs WHERE status = 'succeeded'"
        ),
        2
    );
}

#[test]
fn concurrent_mlruns_share_one_store_without_errors() {
    let env = Env::git();
    let store = env.path("shared-store");
    let store = store.to_str().unwrap();
    for p in 0..8 {
        env.write(
            &format!("p{p}/pipeline.toml"),
            &format!("[params]\nk = 0\n[steps.a]\ncmd = \"echo {p}-{{params.k}} > a.txt\"\noutputs = [\"a.txt\"]\nparams = [\"k\"]\n[steps.b]\ncmd = \"cat a.txt a.txt > b.txt\"\ninputs = [\"a.txt\"]\noutputs = [\"b.txt\"]\n"),
        );
    }
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|p| {
                let (env, dir) = (&env, env.path(&format!("p{p}")));
                scope.spawn(move || {
                    (0..20)
                        .map(|k| env.mlrun_in(&dir, &["--store", store, "-p", &format!("k={k}")]))
                        .filter(|out| out.code != 0)
                        .map(|out| out.stderr)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} failed runs, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    let db = crate::common::open_db(&env.path("shared-store/lineage.db"));
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM runs WHERE status = 'succeeded'"),
        160
    );
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT count(*) FROM step_execs WHERE status = 'succeeded'"
        ),
        320
    );
    assert_eq!(one::<String>(&db, "PRAGMA integrity_check"), "ok");
}

#[test]
fn an_output_written_during_hashing_is_detected() {
    let env = Env::git();
    // a process outside the step's group keeps appending to the output after the step exits
    let marker = format!("mlrun-writer-{}", std::process::id());
    env.write(
        "pipeline.toml",
        &format!(
            "[steps.s]\ncmd = \"head -c 50000000 /dev/zero > big.bin; setsid sh -c 'echo {marker} >> big.bin; touch writing; while :; do echo {marker} >> big.bin; done' & while [ ! -e writing ]; do sleep 0.01; done\"\noutputs = [\"big.bin\"]\n"
        ),
    );
    let out = env.mlrun(&["--no-store"]);
    let _ = std::process::Command::new("pkill")
        .args(["-f", &marker])
        .status();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("changed while it was being hashed"),
        "{out:?}"
    );
    assert_eq!(
        one::<String>(&env.db(), "SELECT status FROM step_execs"),
        "failed"
    );
}

/// Reused steps' records are committed together, but never after a later write: when a step
/// starts running, the cached steps before it are already in the store, so killing mlrun while
/// it runs loses none of them.
#[test]
fn cached_steps_are_recorded_before_a_later_step_starts() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        r#"
[steps.a]
cmd = "echo a > a.txt"
outputs = ["a.txt"]
[steps.b]
cmd = "cp a.txt b.txt"
inputs = ["a.txt"]
outputs = ["b.txt"]
[steps.slow]
cmd = "cat b.txt trigger.txt > s.txt; if grep -q 2 trigger.txt; then touch started; sleep 30; fi"
inputs = ["b.txt", "trigger.txt"]
outputs = ["s.txt"]
"#,
    );
    env.write("trigger.txt", "1\n");
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    env.write("trigger.txt", "2\n");
    let child = env.spawn_mlrun(&[]);
    assert!(wait_until(10, || started(&env)), "the step started");
    signal(&child, Signal::SIGKILL);
    assert_eq!(finish(child).code, 137);
    let db = env.db();
    assert_eq!(
        rows(
            &db,
            "SELECT s.step, s.status, (SELECT count(*) FROM io_edges e WHERE e.step_exec = s.id)
             FROM step_execs s JOIN runs r ON r.id = s.run_id
             WHERE r.started_at = (SELECT max(started_at) FROM runs) ORDER BY s.id"
        ),
        [
            ["a", "cached", "1"],
            ["b", "cached", "2"],
            ["slow", "running", "0"]
        ]
    );
    assert_eq!(one::<String>(&db, "PRAGMA integrity_check"), "ok");
}

//! Execution semantics: failures pass through, dependants wait or are skipped, parallel steps
//! overlap, and the JSON summary tells a script what happened.

use crate::common::{Env, finish, one, rows, wait_until};

fn chain_with(first_cmd: &str) -> Env {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        &format!(
            r#"
[steps.first]
cmd = "{first_cmd}"
outputs = ["a.txt"]
[steps.second]
cmd = "cp a.txt b.txt"
inputs = ["a.txt"]
outputs = ["b.txt"]
"#
        ),
    );
    env.commit("p");
    env
}

#[test]
fn a_failing_step_passes_its_exit_code_and_stops_dependants() {
    let env = chain_with("echo partial > a.txt; echo boom >&2; exit 3");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("failed: exited with code 3"), "{out:?}");
    assert!(out.stderr.contains("first │ boom"), "{out:?}");
    let db = env.db();
    assert_eq!(one::<String>(&db, "SELECT status FROM runs"), "failed");
    assert_eq!(one::<i64>(&db, "SELECT exit_code FROM runs"), 3);
    assert_eq!(
        rows(
            &db,
            "SELECT step, status, COALESCE(exit_code, '-') FROM step_execs ORDER BY id"
        ),
        [["first", "failed", "3"], ["second", "not_run", "-"]]
    );
    // a failed step's partial output is not recorded as a version
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM io_edges WHERE direction = 'out'"),
        0
    );
    assert!(!env.path("b.txt").exists());
}

#[test]
fn a_step_killed_by_a_signal_is_recorded_with_the_signal() {
    let env = chain_with("kill -9 $$");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 137, "{out:?}");
    assert!(out.stdout.contains("killed by SIGKILL"), "{out:?}");
    let db = env.db();
    assert_eq!(
        rows(
            &db,
            "SELECT status, exit_code, signal FROM step_execs WHERE step = 'first'"
        ),
        [["failed", "137", "9"]]
    );
    assert_eq!(
        one::<String>(&db, "SELECT status FROM step_execs WHERE step = 'second'"),
        "not_run"
    );
}

#[test]
fn a_missing_declared_output_fails_the_step_naming_it() {
    let env = chain_with("echo nothing written");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains("did not produce declared output `a.txt`"),
        "{out:?}"
    );
    let db = env.db();
    assert_eq!(
        rows(
            &db,
            "SELECT status, error FROM step_execs WHERE step = 'first'"
        ),
        [[
            "failed",
            "exited 0 but did not produce declared output `a.txt`"
        ]]
    );
    assert_eq!(one::<String>(&db, "SELECT status FROM runs"), "failed");
}

/// Two independent steps and one that joins them. With `barrier`, each of the two waits (up to
/// 10 minutes, so a broken scheduler fails instead of hanging) until the other has started: they
/// can only both succeed if they ran at the same time, however slow the machine is.
fn parallel_env(barrier: bool) -> Env {
    let wait = |other: &str| {
        if barrier {
            format!(
                "i=0; while [ ! -e {other}.on ] && [ $i -lt 60000 ]; do sleep 0.01; i=$((i+1)); done; [ -e {other}.on ] &&"
            )
        } else {
            String::new()
        }
    };
    let env = Env::git();
    env.write(
        "pipeline.toml",
        &format!(
            r#"
[steps.left]
cmd = "touch left.on; {wait_right} echo l > left.txt"
outputs = ["left.txt"]
[steps.right]
cmd = "touch right.on; {wait_left} echo r > right.txt"
outputs = ["right.txt"]
[steps.join]
cmd = "cat left.txt right.txt > both.txt"
inputs = ["left.txt", "right.txt"]
outputs = ["both.txt"]
"#,
            wait_right = wait("right"),
            wait_left = wait("left"),
        ),
    );
    env.commit("p");
    env
}

fn times(db: &rusqlite::Connection, step: &str) -> (i64, i64) {
    db.query_row(
        "SELECT started_at, ended_at FROM step_execs WHERE step = ?1",
        [step],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn independent_steps_overlap_and_dependants_wait() {
    let env = parallel_env(true);
    let out = env.mlrun(&["-j", "2"]);
    assert_eq!(out.code, 0, "{out:?}");
    let db = env.db();
    let (l0, l1) = times(&db, "left");
    let (r0, r1) = times(&db, "right");
    let (j0, _) = times(&db, "join");
    assert!(
        l0 < r1 && r0 < l1,
        "left {l0}..{l1} and right {r0}..{r1} should overlap"
    );
    assert!(
        j0 >= l1 && j0 >= r1,
        "join started at {j0} before its inputs were done ({l1}, {r1})"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("both.txt")).unwrap(),
        "l\nr\n"
    );
}

#[test]
fn jobs_one_runs_steps_one_at_a_time() {
    let env = parallel_env(false);
    let out = env.mlrun(&["-j", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    let db = env.db();
    let (l0, l1) = times(&db, "left");
    let (r0, r1) = times(&db, "right");
    assert!(
        l1 <= r0 || r1 <= l0,
        "with -j 1 steps must not overlap: {l0}..{l1} {r0}..{r1}"
    );
}

#[test]
fn keep_going_runs_everything_not_downstream_of_the_failure() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        r#"
[steps.bad]
cmd = "exit 4"
outputs = ["bad.txt"]
[steps.after_bad]
cmd = "cp bad.txt x.txt"
inputs = ["bad.txt"]
outputs = ["x.txt"]
[steps.good]
cmd = "echo ok > good.txt"
outputs = ["good.txt"]
"#,
    );
    env.commit("p");
    let out = env.mlrun(&["-k", "-j", "1"]);
    assert_eq!(out.code, 4, "{out:?}");
    let db = env.db();
    assert_eq!(
        rows(&db, "SELECT step, status FROM step_execs ORDER BY step"),
        [
            ["after_bad", "not_run"],
            ["bad", "failed"],
            ["good", "succeeded"]
        ]
    );
    // without --keep-going, nothing new starts after the failure
    let env2 = Env::git();
    std::fs::copy(env.path("pipeline.toml"), env2.path("pipeline.toml")).unwrap();
    let out = env2.mlrun(&["-j", "1"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(
        one::<String>(
            &env2.db(),
            "SELECT status FROM step_execs WHERE step = 'good'"
        ),
        "not_run"
    );
}

#[test]
fn json_summary_is_machine_readable() {
    let env = chain_with("echo a > a.txt");
    let out = env.mlrun(&["run", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is only JSON");
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["run_id"].as_str().unwrap().len(), 32);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["name"], "first");
    assert_eq!(steps[0]["outputs"][0]["path"], "a.txt");
    assert_eq!(steps[0]["outputs"][0]["hash"], env.sha256sum("a.txt"));
    assert!(steps[1]["duration_ms"].as_i64().is_some());
    // progress went to stderr
    assert!(out.stderr.contains("✓ first"), "{out:?}");
}

#[test]
fn output_is_plain_when_not_a_terminal() {
    let env = chain_with("echo a > a.txt");
    let out = env.mlrun(&["--color", "auto"]);
    assert!(
        !out.all().contains('\x1b'),
        "no escape codes in piped output: {out:?}"
    );
    let out = env.mlrun(&["--color", "always"]);
    assert!(
        out.stdout.contains('\x1b'),
        "--color always forces colour: {out:?}"
    );
}

#[test]
fn a_command_that_cannot_start_is_a_failed_step() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = [\"no-such-program-xyz\"]\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(
        out.stdout
            .contains("could not start `no-such-program-xyz`: not found on PATH"),
        "{out:?}"
    );
    assert_eq!(
        one::<String>(&env.db(), "SELECT status FROM step_execs"),
        "failed"
    );
}

#[test]
fn the_first_step_to_fail_in_time_decides_the_exit_code() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.a_slow]\ncmd = \"touch a.on; while [ ! -e go ]; do sleep 0.01; done\"\noutputs = [\"never.txt\"]\n[steps.b_missing]\ncmd = [\"no-such-program-xyz\"]\n",
    );
    // a_slow fails (no output) only once b_missing's failure is in the store
    let child = env.spawn_mlrun(&["-j", "2"]);
    let b_failed = || {
        env.path(".mlrun/lineage.db").exists()
            && env
                .db()
                .query_row(
                    "SELECT count(*) FROM step_execs WHERE step = 'b_missing' AND status = 'failed'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .is_ok_and(|n| n == 1)
    };
    assert!(wait_until(60, || env.path("a.on").exists() && b_failed()));
    env.write("go", "");
    let out = finish(child);
    assert_eq!(out.code, 127, "b_missing failed first: {out:?}");
    assert_eq!(
        one::<String>(
            &env.db(),
            "SELECT status FROM step_execs WHERE step = 'a_slow'"
        ),
        "failed"
    );
}

#[test]
fn a_pipeline_path_through_dotdot_works_from_a_subdirectory() {
    let env = chain_with("echo a > a.txt");
    std::fs::create_dir_all(env.path("src")).unwrap();
    let out = env.mlrun_in(&env.path("src"), &["../pipeline.toml"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.mlrun_in(&env.path("src"), &["status", "../pipeline.toml"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("all 2 steps up to date"), "{out:?}");
}

#[test]
fn a_file_read_from_another_steps_output_directory_links_to_its_producer() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        r#"
[steps.prep]
cmd = "mkdir -p feat && echo 1 > feat/a.csv && echo 2 > feat/b.csv"
outputs = ["feat/"]
[steps.train]
cmd = "cat feat/a.csv > model.txt"
inputs = ["feat/a.csv"]
outputs = ["model.txt"]
"#,
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    let tree = env.mlrun(&["lineage", "model.txt"]);
    assert_eq!(tree.code, 0, "{tree:?}");
    assert!(
        !tree.stdout.contains("produced outside mlrun"),
        "no false gap: {tree:?}"
    );
    let after_file: String = tree
        .stdout
        .lines()
        .skip_while(|l| !l.contains("feat/a.csv"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        after_file.contains("prep"),
        "feat/a.csv is made by prep: {tree:?}"
    );
    // and again when both steps are reused from the cache
    assert_eq!(env.mlrun(&[]).code, 0);
    let tree = env.mlrun(&["lineage", "model.txt"]);
    assert!(!tree.stdout.contains("produced outside mlrun"), "{tree:?}");
}

#[test]
fn run_and_status_find_pipeline_toml_in_a_parent_directory() {
    let env = chain_with("echo a > a.txt");
    std::fs::create_dir_all(env.path("src/deep")).unwrap();
    let out = env.mlrun_in(&env.path("src/deep"), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        env.path("b.txt").exists(),
        "paths stay relative to pipeline.toml's directory"
    );
    let out = env.mlrun_in(&env.path("src/deep"), &["status"]);
    assert!(out.stdout.contains("all 2 steps up to date"), "{out:?}");
}

#[test]
fn progress_lines_in_a_log_name_each_phase_and_stay_off_stdout() {
    let mut env = Env::git();
    // not in git: hashed, then stored
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(env.path("big.bin"), &data).unwrap();
    env.write(".gitignore", "/big.bin\n");
    env.write(
        "pipeline.toml",
        "[steps.big]\ncmd = \"wc -c < big.bin > n.txt\"\ninputs = [\"big.bin\"]\noutputs = [\"n.txt\"]\n",
    );
    env.commit("p");
    // 0: a line as each phase begins, however fast this machine hashes
    env.set_env("MLRUN_PROGRESS_SECS", "0");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.ends_with(" · started"))
        .collect();
    assert_eq!(
        lines,
        [
            "hashing the inputs of `big` · started",
            "hashing the outputs of `big` · started",
            "storing the outputs of `big` · started",
            // copied while the step ran; its record waits for that copy last
            "storing the inputs of `big` · started"
        ],
        "{out:?}"
    );
    // plain lines for a log: no terminal control sequences
    assert!(
        !out.stderr.contains('\x1b') && !out.stderr.contains('\r'),
        "{out:?}"
    );
    assert!(
        !out.stdout.contains("· started"),
        "progress stays off stdout: {out:?}"
    );
    // status and fsck, which hash too, say so the same way
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(env.path("big.bin"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let out = env.mlrun(&["status", "--json"]);
    assert!(
        out.stderr
            .contains("hashing the pipeline's files · started"),
        "{out:?}"
    );
    serde_json::from_str::<serde_json::Value>(&out.stdout).expect("stdout is only JSON");
    let out = env.mlrun(&["fsck"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("checking the stored objects · started"),
        "{out:?}"
    );

    // with a period no test run reaches, none: the periodic line is for long work only
    let mut quiet = Env::git();
    quiet.write(
        "pipeline.toml",
        "[steps.a]\ncmd = \"echo 1 > a.txt\"\noutputs = [\"a.txt\"]\n",
    );
    quiet.commit("p");
    quiet.set_env("MLRUN_PROGRESS_SECS", "100000");
    let out = quiet.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("hashing the"), "{out:?}");
}

#[test]
fn a_carriage_return_progress_bar_shows_its_last_state_and_is_stored_whole() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.bar]\ncmd = \"printf ' 10%%\\\\r 50%%\\\\r100%%\\\\n' && printf 'crlf\\\\r\\\\n' && echo ok > o.txt\"\noutputs = [\"o.txt\"]\n",
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("bar │ 100%\n"), "{out:?}");
    assert!(out.stdout.contains("bar │ crlf\n"), "{out:?}");
    assert!(!out.stdout.contains('\r'), "{out:?}");
    let log: Vec<u8> = one(
        &env.db(),
        "SELECT c.data FROM step_logs l JOIN contents c ON c.hash = l.content_hash WHERE l.stream = 'stdout'",
    );
    assert_eq!(log, b" 10%\r 50%\r100%\ncrlf\r\n");
}

//! Steps run as Slurm jobs, against the real single-node cluster of
//! `scripts/slurm-local-start.sh` (`SLURM_CONF`, default `/tmp/mlrun-slurm/slurm.conf`): real
//! `sbatch`, `squeue`, `scancel`, real jobs running the `mlrun __job-step` wrapper. Outside CI,
//! without a cluster, each test says why and returns (`skip_unless_ci`).
//!
//! The node-failure test stops the node's slurmd, which every other job would notice: it holds
//! the cluster alone (`CLUSTER` write lock), the others share it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::RwLock;

use crate::common::{Env, Out, one, rows, signal, skip_unless_ci, wait_until};

static CLUSTER: RwLock<()> = RwLock::new(());

fn slurm_conf() -> PathBuf {
    std::env::var_os("SLURM_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/mlrun-slurm/slurm.conf"))
}

/// The cluster answers `sinfo` with a usable node; else why not.
fn cluster_up() -> Result<(), String> {
    let conf = slurm_conf();
    if !conf.is_file() {
        return Err(format!(
            "no Slurm cluster ({} missing; start one with scripts/slurm-local-start.sh)",
            conf.display()
        ));
    }
    let out = Command::new("sinfo")
        .args(["-h", "-N", "-o", "%t"])
        .env("SLURM_CONF", &conf)
        .output()
        .map_err(|e| format!("cannot run sinfo: {e}"))?;
    let state = String::from_utf8_lossy(&out.stdout);
    if !out.status.success()
        || !state
            .lines()
            .any(|s| s.starts_with("idle") || s.starts_with("mix") || s.starts_with("alloc"))
    {
        return Err(format!(
            "the Slurm cluster of {} is not up: {}{}",
            conf.display(),
            state.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// A git project whose mlrun talks to the test cluster; `None` (after saying why) without one.
fn slurm_env() -> Option<Env> {
    if let Err(why) = cluster_up() {
        skip_unless_ci(&why);
        return None;
    }
    let mut env = Env::git();
    env.set_env("SLURM_CONF", &slurm_conf().to_string_lossy());
    Some(env)
}

fn slurm_cmd(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .env("SLURM_CONF", slurm_conf())
        .output()
        .expect("slurm command runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Slurm's state of a job, as `squeue --states=all` says it.
fn job_state(job: &str) -> String {
    slurm_cmd("squeue", &["-h", "--states=all", "-o", "%T", "-j", job])
        .trim()
        .to_string()
}

fn run_json(env: &Env, args: &[&str]) -> (Out, serde_json::Value) {
    let mut all = vec!["run", "--json"];
    all.extend_from_slice(args);
    let out = env.mlrun(&all);
    let v = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (out, v)
}

fn show_json(env: &Env) -> serde_json::Value {
    let out = env.mlrun(&["show", "latest", "--json"]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn step<'a>(show: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {show}"))
}

/// The job id recorded for `step`'s latest execution, once it is recorded.
fn wait_for_job(env: &Env, step: &str) -> String {
    let mut id = String::new();
    assert!(
        wait_until(120, || {
            let Ok(db) = rusqlite::Connection::open(env.path(".mlrun/lineage.db")) else {
                return false;
            };
            id = db
                .query_row(
                    "SELECT j.job_id FROM step_jobs j JOIN step_execs e ON e.id = j.step_exec WHERE e.step = ?1 ORDER BY j.step_exec DESC LIMIT 1",
                    [step],
                    |r| r.get(0),
                )
                .unwrap_or_default();
            !id.is_empty()
        }),
        "no job recorded for {step}"
    );
    id
}

#[test]
fn steps_run_as_jobs_with_the_same_record_and_cache_hits_submit_nothing() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    env.write("raw.txt", "data\n");
    env.write(
        "pipeline.toml",
        r#"[pipeline]
executor = "slurm"
cpus = 1
mem = "100M"

[steps.prep]
cmd = "echo preparing on $(hostname); echo to-stderr >&2; tr a-z A-Z < raw.txt > prep.txt"
inputs = ["raw.txt"]
outputs = ["prep.txt"]

[steps.other]
cmd = ["sh", "-c", "echo other > other.txt"]
outputs = ["other.txt"]
time = "5m"

[steps.train]
cmd = "cat prep.txt other.txt > model.txt; echo '{\"acc\": 0.5}' > metrics.json"
inputs = ["prep.txt", "other.txt"]
outputs = ["model.txt"]
metrics = ["metrics.json"]
"#,
    );
    env.commit("pipeline");
    let jobs = each_step_runs_as_a_job(&env);
    reuse_submits_nothing(&env, jobs);
    the_local_executor_runs_the_same_steps_here(&env);
}

/// The first run: each step a job, recorded as a local step is, plus its job; the number of
/// jobs recorded.
fn each_step_runs_as_a_job(env: &Env) -> i64 {
    let (out, v) = run_json(env, &["-j", "2"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(v["status"], "succeeded");
    // the job's output is shown live, tagged with its step, like a local step's
    assert!(out.stderr.contains("prep │ preparing on"), "{out:?}");
    assert!(out.stderr.contains("prep │ to-stderr"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(env.path("model.txt")).unwrap(),
        "DATA\nother\n"
    );
    let show = show_json(env);
    for name in ["prep", "other", "train"] {
        let s = step(&show, name);
        assert_eq!(s["executor"], "slurm", "{s}");
        let job = &s["job"];
        assert!(job["job_id"].as_str().is_some_and(|j| !j.is_empty()), "{s}");
        assert_eq!(job["state"], "COMPLETED", "{s}");
        assert!(job["node"].as_str().is_some_and(|n| !n.is_empty()), "{s}");
        assert!(job["queue_wait_ms"].as_i64().is_some_and(|w| w >= 0), "{s}");
        assert!(job["run_ms"].as_i64().is_some_and(|w| w >= 0), "{s}");
    }
    // outputs fingerprinted as for a local step; metrics read; logs stored
    let train = step(&show, "train");
    assert_eq!(train["metrics"]["acc"], 0.5);
    assert_eq!(
        step(&show, "prep")["outputs"][0]["hash"],
        env.sha256sum("prep.txt")
    );
    let logs = env.mlrun(&["show", "latest:prep", "--log", "stdout"]);
    assert!(logs.stdout.starts_with("preparing on"), "{logs:?}");
    let logs = env.mlrun(&["show", "latest:prep", "--log", "stderr"]);
    assert_eq!(logs.stdout, "to-stderr\n", "{logs:?}");
    // the text form says where each step ran
    let text = env.mlrun(&["show", "latest"]);
    assert!(text.stdout.contains("job     slurm job "), "{text:?}");
    let jobs_before: i64 = one(&env.db(), "SELECT count(*) FROM step_jobs");
    assert_eq!(jobs_before, 3);
    jobs_before
}

/// Nothing changed: every step is reused and no job is submitted; an output deleted is
/// restored from the object store, still without a job.
fn reuse_submits_nothing(env: &Env, jobs_before: i64) {
    let (out, v) = run_json(env, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    for s in v["steps"].as_array().unwrap() {
        assert_eq!(s["status"], "cached", "{s}");
    }
    let jobs_after: i64 = one(&env.db(), "SELECT count(*) FROM step_jobs");
    assert_eq!(jobs_after, jobs_before);
    // an output deleted: restored from the object store, still no job
    std::fs::remove_file(env.path("model.txt")).unwrap();
    let (out, v) = run_json(env, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let train = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "train")
        .unwrap();
    assert_eq!(train["status"], "restored", "{out:?}");
    assert_eq!(
        std::fs::read_to_string(env.path("model.txt")).unwrap(),
        "DATA\nother\n"
    );
    let jobs_after: i64 = one(&env.db(), "SELECT count(*) FROM step_jobs");
    assert_eq!(jobs_after, jobs_before);
}

/// `--executor local` runs the same pipeline here: no job, and diff and compare say where each
/// step ran.
fn the_local_executor_runs_the_same_steps_here(env: &Env) {
    let out = env.mlrun(&["run", "--force", "--executor", "local"]);
    assert_eq!(out.code, 0, "{out:?}");
    let show = show_json(env);
    assert_eq!(step(&show, "train")["executor"], "local");
    assert!(step(&show, "train").get("job").is_none());
    let ids = env.run_ids();
    let (first, last) = (ids[0].as_str(), ids[ids.len() - 1].as_str());
    let diff = env.mlrun(&["diff", first, last]);
    assert!(
        diff.stdout.contains("train  ran: slurm job ") && diff.stdout.contains("in A, local in B"),
        "{diff:?}"
    );
    let diff_json: serde_json::Value =
        serde_json::from_str(&env.mlrun(&["diff", first, last, "--json"]).stdout).unwrap();
    assert_eq!(diff_json["steps"]["where_ran"].as_array().unwrap().len(), 3);
    let cmp: serde_json::Value =
        serde_json::from_str(&env.mlrun(&["compare", "--json"]).stdout).unwrap();
    let with_jobs: Vec<usize> = cmp["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["jobs"].as_array().unwrap().len())
        .collect();
    assert!(with_jobs.contains(&3) && with_jobs.contains(&0), "{cmp}");
    let cmp_text = env.mlrun(&["compare"]);
    assert!(cmp_text.stdout.contains("jobs of "), "{cmp_text:?}");
}

#[test]
fn a_jobs_output_is_shown_while_it_runs() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    // the job says it is ready, then waits (bounded) for the test to answer: the answer only
    // comes if mlrun showed the line while the job was still running
    one_step(
        &env,
        "echo ready-now; i=0; while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; test -e go && echo went",
        "",
    );
    // (with --json, the steps' lines go to stderr)
    let mut child = env.spawn_mlrun(&["run", "--json"]);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("a │ ready-now") {
                let _ = tx.send(());
            }
            all += &line;
            all += "\n";
        }
        all
    });
    let seen = rx.recv_timeout(std::time::Duration::from_secs(180)).is_ok();
    env.write("go", "");
    let status = child.wait().unwrap();
    let all = reader.join().unwrap();
    assert!(seen, "the line was not shown while the job ran:\n{all}");
    assert!(status.success(), "{all}");
    assert!(all.contains("a │ went"), "{all}");
}

#[test]
fn bad_executor_keys_are_refused_with_their_place() {
    // no cluster needed: the plan is checked before anything is submitted
    let env = Env::git();
    env.write(
        "pipeline.toml",
        r#"[pipeline]
executor = "kubernetes"

[steps.a]
cmd = "true"
mem = "lots"
gpus = "a100:x"
cpus = 0
sbatch_args = ["--output=/tmp/x", "qos=long"]
"#,
    );
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 2, "{out:?}");
    for want in [
        "`pipeline.executor` must be \"local\" or \"slurm\", not \"kubernetes\"",
        "pipeline.toml:2:",
        "`steps.a.mem` is not an amount of memory: \"lots\"",
        "pipeline.toml:6:",
        "`steps.a.gpus` is not a number of GPUs",
        "`steps.a.cpus` must be a number of CPUs",
        "mlrun sets `--output` itself",
        "\"qos=long\" is not an sbatch option",
    ] {
        assert!(out.stderr.contains(want), "missing {want:?} in {out:?}");
    }
    assert!(!env.path(".mlrun/lineage.db").exists() || env.run_ids().is_empty());
}

/// A one-step Slurm pipeline with extra step keys.
fn one_step(env: &Env, cmd: &str, extra: &str) {
    env.write(
        "pipeline.toml",
        &format!("[steps.a]\nexecutor = \"slurm\"\ncmd = {cmd:?}\n{extra}\n"),
    );
    env.commit("pipeline");
}

fn failed_with(env: &Env, status: &str, why: &[&str]) -> serde_json::Value {
    let (out, v) = run_json(env, &[]);
    assert_ne!(out.code, 0, "{out:?}");
    let s = &v["steps"][0];
    assert_eq!(s["status"], status, "{out:?}");
    let err = s["error"].as_str().unwrap_or_default();
    for w in why {
        assert!(err.contains(w), "{w:?} not in {err:?}\n{out:?}");
    }
    s.clone()
}

#[test]
fn submission_failures_name_the_step_with_slurms_message() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    // a partition that does not exist
    one_step(&env, "true", "partition = \"nosuchpart\"");
    failed_with(
        &env,
        "failed",
        &["could not submit step `a` to Slurm", "invalid partition"],
    );
    // an option sbatch rejects
    one_step(&env, "true", "sbatch-args = [\"--no-such-option\"]");
    failed_with(
        &env,
        "failed",
        &["could not submit step `a` to Slurm", "--no-such-option"],
    );
    // the controller does not answer: a configuration naming a port nobody listens on
    let conf = std::fs::read_to_string(slurm_conf()).unwrap();
    let down: String = conf
        .lines()
        .map(|l| {
            if l.starts_with("SlurmctldPort=") {
                "SlurmctldPort=1".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut env = Env::git();
    let down_conf = env.home.join("down.conf");
    std::fs::write(&down_conf, down).unwrap();
    env.set_env("SLURM_CONF", &down_conf.to_string_lossy());
    one_step(&env, "true", "");
    failed_with(
        &env,
        "failed",
        &["could not submit step `a` to Slurm", "sbatch: error"],
    );
}

#[test]
fn sbatch_missing_from_path_is_a_clear_error() {
    let Some(mut env) = slurm_env() else { return };
    // a PATH with git and sh only
    let bin = env.home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for prog in ["git", "sh"] {
        let real = String::from_utf8(
            Command::new("sh")
                .args(["-c", &format!("command -v {prog}")])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        std::os::unix::fs::symlink(real.trim(), bin.join(prog)).unwrap();
    }
    one_step(&env, "true", "");
    env.set_env("PATH", &bin.to_string_lossy());
    failed_with(
        &env,
        "failed",
        &[
            "could not submit step `a` to Slurm",
            "`sbatch` is not on PATH",
        ],
    );
}

#[test]
fn a_job_that_exits_non_zero_fails_and_is_retried() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    one_step(&env, "echo attempt >> tries.txt; exit 3", "retries = 1");
    let s = failed_with(&env, "failed", &["exited with code 3"]);
    assert_eq!(s["exit_code"], 3);
    // both attempts ran as jobs of their own
    let jobs = rows(
        &env.db(),
        "SELECT e.attempt, j.job_id, j.state FROM step_jobs j JOIN step_execs e ON e.id = j.step_exec ORDER BY e.attempt",
    );
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_ne!(jobs[0][1], jobs[1][1]);
    assert_eq!(jobs[1][2], "FAILED");
    assert_eq!(
        std::fs::read_to_string(env.path("tries.txt")).unwrap(),
        "attempt\nattempt\n"
    );
}

#[test]
fn a_job_cancelled_by_the_scheduler_is_recorded_with_that_reason() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    one_step(&env, "touch started; sleep 300", "");
    let child = env.spawn_mlrun(&["run", "--json"]);
    let job = wait_for_job(&env, "a");
    assert!(wait_until(120, || env.path("started").exists()));
    slurm_cmd("scancel", &[&job]);
    let out = crate::common::finish(child);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let s = &v["steps"][0];
    assert_eq!(s["status"], "failed", "{out:?}");
    let err = s["error"].as_str().unwrap();
    assert!(
        err.contains(&format!(
            "job {job} was cancelled by the scheduler or an administrator"
        )),
        "{err}"
    );
    let show = show_json(&env);
    assert_eq!(step(&show, "a")["job"]["state"], "CANCELLED");
}

#[test]
fn a_step_timeout_ends_its_job_as_timed_out() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    one_step(&env, "sleep 300", "timeout = \"2s\"");
    let s = failed_with(&env, "timed_out", &["timed out after 2s", "cancelled"]);
    let job = step(&show_json(&env), "a")["job"]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(s["error"].as_str().unwrap().contains(&job));
    assert!(
        wait_until(120, || job_state(&job) == "CANCELLED"),
        "{}",
        job_state(&job)
    );
}

#[test]
fn a_job_past_its_slurm_time_limit_is_timed_out() {
    // Slurm counts time limits in minutes: this test takes a minute or two
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    one_step(&env, "sleep 600", "time = \"1m\"");
    failed_with(
        &env,
        "timed_out",
        &["Slurm ended job", "at its time limit (TIMEOUT)"],
    );
    assert_eq!(step(&show_json(&env), "a")["job"]["state"], "TIMEOUT");
}

#[test]
fn a_missing_or_unreadable_exit_status_fails_the_step_after_a_bounded_wait() {
    let Some(mut env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    env.set_env("MLRUN_SLURM_STATUS_WAIT", "2s");
    // the wrapper is killed: it cannot write the exit status
    one_step(&env, "kill -9 $PPID; sleep 5", "");
    failed_with(
        &env,
        "failed",
        &["exit status file", "is missing after waiting 2"],
    );
    // the status file is a directory: it cannot be read (nor written by the wrapper)
    one_step(
        &env,
        "d=$(echo .mlrun/tmp/*/slurm/a.1); mkdir $d/status.json",
        "",
    );
    failed_with(
        &env,
        "failed",
        &["exit status cannot be read", "status.json"],
    );
}

#[test]
fn interrupting_mlrun_cancels_its_jobs_and_records_them_interrupted() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    one_step(&env, "touch started; sleep 300", "");
    let child = env.spawn_mlrun(&["run", "--json"]);
    let job = wait_for_job(&env, "a");
    assert!(wait_until(120, || env.path("started").exists()));
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = crate::common::finish(child);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["status"], "interrupted", "{out:?}");
    assert_eq!(v["steps"][0]["status"], "interrupted");
    assert!(
        v["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("job {job} cancelled")),
        "{out:?}"
    );
    assert!(
        wait_until(120, || job_state(&job) == "CANCELLED"),
        "{}",
        job_state(&job)
    );
}

#[test]
fn after_a_kill_9_the_next_command_names_the_jobs_and_cancel_cancels_them() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    one_step(&env, "touch started; sleep 300", "");
    let mut child = env.spawn_mlrun(&["run"]);
    let job = wait_for_job(&env, "a");
    assert!(wait_until(120, || env.path("started").exists()));
    child.kill().unwrap();
    child.wait().unwrap();
    let out = env.mlrun(&["runs"]);
    assert!(
        out.stderr
            .contains(&format!("they may still be running: {job} (step a)"))
            && out.stderr.contains("mlrun cancel"),
        "{out:?}"
    );
    assert_eq!(step(&show_json(&env), "a")["status"], "interrupted");
    assert_eq!(job_state(&job), "RUNNING");
    let out = env.mlrun(&["cancel", "latest"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("cancelled job {job} (step a)")),
        "{out:?}"
    );
    assert!(wait_until(120, || job_state(&job) == "CANCELLED"));
    // nothing is left to cancel
    let out = env.mlrun(&["cancel", "latest"]);
    assert!(
        out.stdout
            .contains("no Slurm jobs that may still be running"),
        "{out:?}"
    );
}

#[test]
fn independent_steps_run_as_parallel_jobs_within_the_jobs_bound() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    // x and y each wait for the other to have started: they only finish if both run at once
    let meet = |me: &str, other: &str| {
        format!(
            "touch {me}.up; i=0; while [ ! -e {other}.up ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; [ -e {other}.up ] && echo {me} > {me}.txt"
        )
    };
    env.write(
        "pipeline.toml",
        &format!(
            "[pipeline]\nexecutor = \"slurm\"\n[steps.x]\ncmd = {:?}\noutputs = [\"x.txt\"]\n[steps.y]\ncmd = {:?}\noutputs = [\"y.txt\"]\n\
             [steps.z]\ncmd = \"ls *.up > z.txt\"\nafter = [\"x\", \"y\"]\noutputs = [\"z.txt\"]\n",
            meet("x", "y"),
            meet("y", "x")
        ),
    );
    env.commit("pipeline");
    let (out, v) = run_json(&env, &["-j", "2"]);
    assert_eq!(v["status"], "succeeded", "{out:?}");
    // with -j 1, never two jobs at once: the first one gives up waiting and fails
    std::fs::remove_file(env.path("x.up")).unwrap();
    std::fs::remove_file(env.path("y.up")).unwrap();
    let (out, v) = run_json(&env, &["-j", "1", "--force", "-k"]);
    assert_eq!(v["status"], "failed", "{out:?}");
}

#[test]
fn traced_slurm_steps_report_what_they_read() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    env.write("extra.txt", "undeclared\n");
    one_step(&env, "cat extra.txt > out.txt", "outputs = [\"out.txt\"]");
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("extra.txt"), "{out:?}");
    let show = show_json(&env);
    let inputs = step(&show, "a")["inputs"].as_array().unwrap().clone();
    assert!(
        inputs
            .iter()
            .any(|i| i["path"] == "extra.txt" && i["observed"] == true),
        "{inputs:?}"
    );
}

#[test]
fn a_recorded_slurm_step_replays_locally_or_on_slurm() {
    let Some(env) = slurm_env() else { return };
    let _shared = CLUSTER.read();
    env.write("in.txt", "x\n");
    one_step(
        &env,
        "tr x y < in.txt > out.txt",
        "inputs = [\"in.txt\"]\noutputs = [\"out.txt\"]",
    );
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    let run = env.run_ids()[0].clone();
    for executor in ["local", "slurm"] {
        let out = env.mlrun(&["replay", &run, "--executor", executor]);
        assert_eq!(out.code, 0, "{executor}: {out:?}");
        assert!(
            out.stdout.contains("identical") || out.stderr.contains("identical"),
            "{out:?}"
        );
    }
    let replays = rows(
        &env.db(),
        "SELECT r.id, (SELECT count(*) FROM step_jobs j JOIN step_execs e ON e.id = j.step_exec WHERE e.run_id = r.id) FROM runs r WHERE r.replay_of IS NOT NULL ORDER BY r.started_at",
    );
    assert_eq!(replays.len(), 2, "{replays:?}");
    assert_eq!(replays[0][1], "0");
    assert_eq!(replays[1][1], "1");
}

/// The node's slurmd stops: the controller marks the node down and the job `NODE_FAIL`. The
/// daemon is started again afterwards (and the node resumed), whatever the test found.
#[test]
fn a_job_whose_node_disappears_is_recorded_as_a_node_failure() {
    let Some(env) = slurm_env() else { return };
    let _alone = CLUSTER.write();
    struct Restart;
    impl Drop for Restart {
        fn drop(&mut self) {
            let conf = slurm_conf();
            let _ = Command::new("slurmd")
                .arg("-f")
                .arg(&conf)
                .env("SLURM_CONF", &conf)
                .status();
            let host = slurm_cmd("sinfo", &["-h", "-N", "-o", "%N"]);
            let host = host.trim();
            wait_until(120, || {
                slurm_cmd(
                    "scontrol",
                    &["update", &format!("nodename={host}"), "state=resume"],
                );
                cluster_up().is_ok()
            });
        }
    }
    one_step(&env, "touch started; sleep 600", "");
    let child = env.spawn_mlrun(&["run", "--json"]);
    let job = wait_for_job(&env, "a");
    assert!(wait_until(120, || env.path("started").exists()));
    let _restart = Restart;
    let pidfile = slurm_conf().with_file_name("slurmd.pid");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("slurmd.pid")
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = crate::common::finish(child);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let s = &v["steps"][0];
    assert_eq!(s["status"], "failed", "{out:?}");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains(&format!("job {job} failed because its node")),
        "{out:?}"
    );
    assert_eq!(step(&show_json(&env), "a")["job"]["state"], "NODE_FAIL");
    // (the job's processes outlived their slurmd; the controller has them stopped when the
    // restarted slurmd registers)
}

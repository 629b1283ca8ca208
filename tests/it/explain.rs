//! A replay explains what differs: the differing steps run once more in the scratch tree with
//! the same inputs; an output that differs again is nondeterministic here, one that is stable is
//! caused by a change (ranked candidates: variables, packages, …). `mlrun check` records
//! nondeterministic outputs so later replays expect them, and `status`/`show` mark them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{Env, Out, one, stdout_json};
use crate::packages::{pip, run, wheel};

/// A step writing the time it ran (nondeterministic), and a deterministic step that also counts
/// its executions in a file outside the project (and outside every scratch tree).
const STAMP: &str = r#"
[steps.stamp]
cmd = "python3 -c \"import datetime; open('stamp.txt', 'w').write('model v1\\nbuilt at ' + datetime.datetime.now().isoformat() + '\\n')\""
outputs = ["stamp.txt"]

[steps.same]
cmd = "echo same > same.txt; echo ran >> \"$COUNTER\""
outputs = ["same.txt"]
"#;

/// The verdict lines and the explanations under them, as a person sees them.
fn explanation(out: &Out) -> String {
    out.stdout
        .lines()
        // the verdicts (not the progress lines, which carry durations) and what is under them
        .filter(|l| l.starts_with("✗ ") || l.starts_with("✓ ") || l.starts_with("    "))
        .filter(|l| !l.contains("  out: ") && !l.contains("  in: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Snapshot settings for `env` (fixed): its run ids, and the real times the `stamp` step
/// writes into its file, are replaced; hashes stay.
fn settings(env: &Env) -> insta::Settings {
    let mut s = crate::common::fixed_settings(env, &env.run_ids());
    s.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?", "[time]");
    s
}

fn stamp_project() -> (Env, PathBuf) {
    let mut env = Env::fixed();
    let counter = env.home.join("same-ran");
    env.set_env("COUNTER", counter.to_str().unwrap());
    env.write(".gitignore", "/.mlrun/\n/*.txt\n");
    env.write("pipeline.toml", STAMP);
    env.commit("pipeline");
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    (env, counter)
}

fn lines_in(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |t| t.lines().count())
}

#[test]
fn a_timestamp_is_nondeterministic_and_a_deterministic_step_runs_once() {
    let (env, counter) = stamp_project();
    assert_eq!(lines_in(&counter), 1);
    let r = env.mlrun(&["replay"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains(
            "running `stamp` once more with the same inputs, to tell nondeterminism from a change"
        ),
        "{r:?}"
    );
    settings(&env).bind(|| insta::assert_snapshot!("explain_timestamp", explanation(&r)));
    // the deterministic step ran once in the replay, never a second time
    assert_eq!(lines_in(&counter), 2, "{r:?}");
    let db = env.db();
    let n: i64 = one(&db, "SELECT count(*) FROM step_execs WHERE step = 'same'");
    assert_eq!(n, 2);
    let n: i64 = one(&db, "SELECT count(*) FROM step_execs WHERE step = 'stamp'");
    assert_eq!(n, 3);
    // the second run is a replay of the same run, says why it ran, and ran only `stamp`
    let second: String = one(
        &db,
        "SELECT id FROM runs WHERE message LIKE 'second run of replay %'",
    );
    let steps: String = one(
        &db,
        &format!("SELECT group_concat(step) FROM step_execs WHERE run_id = '{second}'"),
    );
    assert_eq!(steps, "stamp");
    let first: String = one(&db, "SELECT id FROM runs WHERE replay_of IS NULL");
    let of: String = one(
        &db,
        &format!("SELECT replay_of FROM runs WHERE id = '{second}'"),
    );
    assert_eq!(of, first);

    // the finding is kept: the next replay expects the difference (exit 0) and does not run
    // `stamp` a third time to explain it
    let r2 = env.mlrun(&["replay", "--json"]);
    assert_eq!(r2.code, 0, "{r2:?}");
    let v = stdout_json(&r2);
    assert_eq!(v["verdict"], "differs");
    assert_eq!(v["all_expected"], true);
    assert_eq!(v["explain"]["second_run"], Value::Null, "{v}");
    let o = &v["steps"][0]["outputs"][0];
    assert_eq!(o["explanation"]["kind"], "expected", "{v}");
    let replay1: String = one(
        &db,
        "SELECT id FROM runs WHERE replay_of IS NOT NULL AND message IS NULL ORDER BY started_at LIMIT 1",
    );
    assert_eq!(o["explanation"]["since_run"], replay1.as_str());
    // the content difference of the recorded file: the time on line 2
    let c = &o["explanation"]["content"];
    assert_eq!(c["format"], "text");
    assert_eq!(c["summary"], "1 line removed, 1 added");
    assert_eq!(c["timestamps"].as_array().unwrap().len(), 2, "{c}");
    assert_eq!(v["steps"][1]["outputs"][0]["explanation"], Value::Null);
    assert_eq!(lines_in(&counter), 3);
}

#[test]
fn explain_and_no_explain_choose_whether_anything_runs_a_second_time() {
    let (env, counter) = stamp_project();
    // --no-explain: nothing runs twice, the verdict alone
    let r = env.mlrun(&["replay", "--no-explain", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let v = stdout_json(&r);
    assert_eq!(v["explain"], Value::Null);
    assert_eq!(v["steps"][0]["outputs"][0]["explanation"], Value::Null);
    let n: i64 = one(&env.db(), "SELECT count(*) FROM runs");
    assert_eq!(n, 2);
    // --explain: the identical step runs again too, and is found stable
    let r = env.mlrun(&["replay", "--explain", "--step", "same"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("    same.txt: the same again in a second run with the same inputs"),
        "{r:?}"
    );
    assert_eq!(lines_in(&counter), 4);
}

#[test]
fn a_changed_environment_variable_is_named_and_a_secret_value_never_shown() {
    let env = Env::fixed();
    env.write(".gitignore", "/.mlrun/\n/conf.json\n");
    env.write(
        "pipeline.toml",
        r#"
[steps.conf]
cmd = "python3 conf.py"
inputs = ["conf.py"]
outputs = ["conf.json"]
"#,
    );
    env.write(
        "conf.py",
        "import os, json\njson.dump({'mode': os.environ.get('TRAIN_MODE', 'none'), 'lr': 0.1}, open('conf.json', 'w'))\n",
    );
    env.commit("pipeline");
    let mut rec = env;
    rec.set_env("TRAIN_MODE", "fast");
    rec.set_env("SERVICE_TOKEN", "first-Secret-value-81");
    let out = rec.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    rec.set_env("TRAIN_MODE", "careful");
    rec.set_env("SERVICE_TOKEN", "second-Secret-value-92");
    let r = rec.mlrun(&["replay"]);
    assert_eq!(r.code, 1, "{r:?}");
    settings(&rec).bind(|| insta::assert_snapshot!("explain_env_var", explanation(&r)));
    let rj = rec.mlrun(&["replay", "--json"]);
    let v = stdout_json(&rj);
    let e = &v["steps"][0]["outputs"][0]["explanation"];
    assert_eq!(e["kind"], "changed", "{v}");
    let c = &e["causes"][0];
    assert_eq!(
        (&c["kind"], &c["name"], &c["before"], &c["after"]),
        (
            &Value::from("env_var"),
            &Value::from("TRAIN_MODE"),
            &Value::from("fast"),
            &Value::from("careful")
        ),
        "{v}"
    );
    assert_eq!(e["content"]["keys"][0]["path"], "mode");
    for o in [&r, &rj] {
        for secret in ["first-Secret-value-81", "second-Secret-value-92"] {
            assert!(!o.all().contains(secret), "{o:?}");
        }
    }
}

fn pip_install(venv: &Path, wheel: &Path) {
    let wheel = wheel.to_string_lossy();
    pip(venv, &["install", "-q", &wheel]);
}

#[test]
fn a_changed_package_version_is_named_with_both_versions() {
    let mut env = Env::fixed();
    let venv = env.home.join("venv");
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    let wheels = env.home.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    pip_install(&venv, &wheel(&wheels, "1.0"));
    env.set_env(
        "PATH",
        &format!(
            "{}:{}",
            venv.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    env.write(".gitignore", "/.mlrun/\n/model.txt\n");
    env.write(
        "pipeline.toml",
        r#"
[steps.train]
cmd = "python3 train.py"
inputs = ["train.py"]
outputs = ["model.txt"]
"#,
    );
    env.write(
        "train.py",
        "import tinypkg\nopen('model.txt', 'w').write('weights 0.5\\nmade with tinypkg ' + tinypkg.__version__ + '\\n')\n",
    );
    env.commit("pipeline");
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    pip_install(&venv, &wheel(&wheels, "2.0"));
    let r = env.mlrun(&["replay"]);
    assert_eq!(r.code, 1, "{r:?}");
    settings(&env).bind(|| insta::assert_snapshot!("explain_package", explanation(&r)));
    let v = stdout_json(&env.mlrun(&["replay", "--json"]));
    let e = &v["steps"][0]["outputs"][0]["explanation"];
    assert_eq!(e["kind"], "changed", "{v}");
    let c = &e["causes"][0];
    assert_eq!(
        (&c["kind"], &c["name"], &c["before"], &c["after"]),
        (
            &Value::from("package"),
            &Value::from("tinypkg"),
            &Value::from("1.0"),
            &Value::from("2.0")
        ),
        "{v}"
    );
}

#[test]
fn check_records_nondeterministic_outputs_for_later_replays_status_and_show() {
    let (env, counter) = stamp_project();
    let bad = env.mlrun(&["check", "stmap"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr.contains("run ") && bad.stderr.contains("has no recorded step `stmap` to check"),
        "{bad:?}"
    );
    assert!(bad.stderr.contains("did you mean `stamp`?"), "{bad:?}");

    let c = env.mlrun(&["check", "stamp", "same"]);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(
        c.stdout
            .contains("check stamp: nondeterministic: stamp.txt\n"),
        "{c:?}"
    );
    assert!(
        c.stdout.contains("check same: the same twice: same.txt\n"),
        "{c:?}"
    );
    // `same` ran twice in the check (and once in the run)
    assert_eq!(lines_in(&counter), 3);
    let check_run: String = one(
        &env.db(),
        "SELECT id FROM runs WHERE replay_of IS NOT NULL AND message IS NULL",
    );
    let rows = crate::common::rows(
        &env.db(),
        "SELECT step, path, verdict, found_by, since_run FROM output_determinism ORDER BY step",
    );
    assert_eq!(
        rows,
        [
            [
                "same",
                "same.txt",
                "deterministic",
                "check",
                check_run.as_str()
            ],
            [
                "stamp",
                "stamp.txt",
                "nondeterministic",
                "check",
                check_run.as_str()
            ]
        ]
    );

    let s = env.mlrun(&["status"]);
    assert!(
        s.stdout
            .contains("stamp.txt is nondeterministic (since run ",)
            && !s.stdout.contains("same.txt is nondeterministic"),
        "{s:?}"
    );
    let sj = stdout_json(&env.mlrun(&["status", "--json"]));
    assert_eq!(sj["steps"][0]["nondeterministic"][0]["path"], "stamp.txt");
    assert_eq!(sj["steps"][1]["nondeterministic"], Value::Array(vec![]));
    let show = env.mlrun(&["show", "latest"]);
    let marked: Vec<&str> = show
        .stdout
        .lines()
        .filter(|l| l.contains("(nondeterministic, since run"))
        .collect();
    assert_eq!(marked.len(), 1, "{show:?}");
    assert!(marked[0].contains("stamp.txt"), "{show:?}");
    let shown = stdout_json(&env.mlrun(&["show", "latest", "--json"]));
    assert_eq!(
        shown["determinism"]["stamp"][0]["verdict"],
        "nondeterministic"
    );
    assert_eq!(shown["determinism"]["same"][0]["verdict"], "deterministic");

    let r = env.mlrun(&["replay"]);
    assert_eq!(r.code, 0, "{r:?}");
    settings(&env)
        .bind(|| insta::assert_snapshot!("explain_expected_after_check", explanation(&r)));
    assert!(
        r.stdout.contains(
            "every difference was expected: those outputs are known to be nondeterministic"
        ),
        "{r:?}"
    );
}

#[test]
fn a_step_fed_by_a_nondeterministic_one_is_blamed_on_it() {
    let env = Env::git();
    env.write(".gitignore", "/.mlrun/\n/*.txt\n");
    env.write(
        "pipeline.toml",
        r#"
[steps.clock]
cmd = "date +%s%N > clock.txt"
outputs = ["clock.txt"]

[steps.copy]
cmd = "cp clock.txt copy.txt"
inputs = ["clock.txt"]
outputs = ["copy.txt"]
"#,
    );
    env.commit("pipeline");
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    let r = env.mlrun(&["replay", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let v = stdout_json(&r);
    assert_eq!(
        v["explain"]["steps_rerun"],
        serde_json::json!(["clock", "copy"]),
        "{v}"
    );
    let kind = |i: usize| v["steps"][i]["outputs"][0]["explanation"]["kind"].clone();
    assert_eq!(
        (kind(0), kind(1)),
        ("nondeterministic".into(), "upstream".into()),
        "{v}"
    );
    // a Unix time in nanoseconds is found as a time
    let c = &v["steps"][0]["outputs"][0]["explanation"]["causes"][0];
    assert_eq!(c["kind"], "timestamp", "{v}");
    // only the nondeterministic step is remembered as such
    let rows = crate::common::rows(&env.db(), "SELECT step FROM output_determinism");
    assert_eq!(rows, [["clock"]]);
}

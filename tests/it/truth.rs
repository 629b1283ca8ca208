//! The record tells the whole truth: a step is never credited with a file it did not write,
//! metric values are exact, steps that rewrite the repository are noticed, and tool state is not
//! lineage.

use proptest::strategy::{Strategy, ValueTree};
use serde_json::Value;

use crate::common::{Env, finish, one, rows, stdout_json, wait_until};

fn project(pipeline: &str, files: &[(&str, &str)]) -> Env {
    fill(Env::git(), pipeline, files)
}

/// As [`project`], in the fixed environment, for the tests that snapshot mlrun's output.
fn fixed_project(pipeline: &str, files: &[(&str, &str)]) -> Env {
    fill(Env::fixed(), pipeline, files)
}

fn fill(env: Env, pipeline: &str, files: &[(&str, &str)]) -> Env {
    for (path, content) in files {
        env.write(path, content);
    }
    env.write("pipeline.toml", pipeline);
    env.commit("fixture");
    env
}

fn read(env: &Env, rel: &str) -> String {
    std::fs::read_to_string(env.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Snapshot the output of mlrun in the fixed `env`: hashes and commits stay real; only the
/// number of files git wrote under .git/ (up to git's version) is replaced.
fn snapshot(env: &Env, name: &str, text: &str) {
    let mut s = crate::common::fixed_settings(env, &env.run_ids());
    s.add_filter(r"\d+ files under \.git/", "[n] files under .git/");
    s.bind(|| insta::assert_snapshot!(name, text));
}

// --- 12.0: a step is never credited with a file it did not write ---------------------------

/// `train` writes model.txt (and out/ files, and model/) unless the MODE param says otherwise.
const TRAIN: &str = r#"
[params]
mode = "ok"

[steps.train]
cmd = "sh train.sh"
inputs = ["train.sh"]
outputs = ["model.txt"]
params = ["mode"]
"#;

const TRAIN_SH: &str = r#"case "$MLRUN_PARAM_MODE" in
  ok) echo "model v1" > model.txt ;;
  typo) echo "model v2" > modle.txt ;;
  partial) echo "half a model" > model.txt; exit 3 ;;
  hang) echo "half a model" > model.txt; touch started; sleep 60 ;;
esac
"#;

#[test]
fn a_step_that_exits_0_without_writing_its_output_fails_and_the_old_output_comes_back() {
    let env = fixed_project(TRAIN, &[("train.sh", TRAIN_SH)]);
    let first = env.mlrun(&["run"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(read(&env, "model.txt"), "model v1\n");

    // a typo in the script: exit 0, model.txt not written. The file of the first run must not
    // be recorded as this execution's output, under the new params.
    let out = env.mlrun(&["run", "-p", "mode=typo"]);
    assert_eq!(
        out.code, 1,
        "a missing declared output is exit code 1: {out:?}"
    );
    assert!(
        out.all()
            .contains("failed: exited 0 but did not produce declared output `model.txt`"),
        "{out:?}"
    );
    snapshot(
        &env,
        "missing_output",
        out.all()
            .lines()
            .filter(|l| l.contains("train"))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    );
    // the previous version is back where it was, untouched
    assert_eq!(read(&env, "model.txt"), "model v1\n");
    let db = env.db();
    let produced: i64 = one(
        &db,
        "SELECT count(*) FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
         WHERE e.direction = 'out' AND s.status != 'succeeded'",
    );
    assert_eq!(produced, 0, "a failed step records no outputs");
    let status: String = one(
        &db,
        "SELECT status FROM step_execs ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(status, "failed");
    // nothing is left aside in the store
    assert!(
        !env.path(".mlrun/tmp/aside").exists()
            || std::fs::read_dir(env.path(".mlrun/tmp/aside"))
                .unwrap()
                .next()
                .is_none(),
        "aside copies are cleaned up"
    );

    // and reuse still works: the put-back model is the first run's, so it is up to date
    let again = env.mlrun(&["run"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.all().contains("cached"), "{again:?}");
}

#[test]
fn a_failed_retried_or_timed_out_step_gets_the_previous_outputs_back() {
    let env = project(
        &TRAIN.replace(
            "params = [\"mode\"]",
            "params = [\"mode\"]\nretries = 1\ntimeout = \"2s\"",
        ),
        &[("train.sh", TRAIN_SH)],
    );
    assert_eq!(env.mlrun(&["run"]).code, 0);

    // writes half a model, exits 3, twice (one retry): the previous model is back each time
    let out = env.mlrun(&["run", "-p", "mode=partial"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.all().contains("attempt 2 of 2"), "{out:?}");
    assert_eq!(read(&env, "model.txt"), "model v1\n");
    let attempts: i64 = one(
        &env.db(),
        "SELECT count(*) FROM step_execs WHERE status = 'failed'",
    );
    assert_eq!(attempts, 2);

    // runs past its timeout after writing half a model
    let out = env.mlrun(&["run", "-p", "mode=hang"]);
    assert_eq!(out.code, 124, "{out:?}");
    assert_eq!(read(&env, "model.txt"), "model v1\n");
}

#[test]
fn outputs_in_one_directory_and_directory_outputs_are_moved_aside_and_put_back() {
    let env = project(
        r#"
[params]
mode = "ok"

[steps.split]
cmd = "sh split.sh"
inputs = ["split.sh"]
outputs = ["out/a.txt", "out/b.txt", "model/"]
params = ["mode"]
"#,
        &[(
            "split.sh",
            r#"if [ "$MLRUN_PARAM_MODE" = ok ]; then
  echo a1 > out/a.txt; echo b1 > out/b.txt; echo w1 > model/weights
elif [ "$MLRUN_PARAM_MODE" = no-b ]; then
  echo a2 > out/a.txt; echo w2 > model/weights
else
  echo a3 > out/a.txt; echo b3 > out/b.txt
fi
"#,
        )],
    );
    std::fs::create_dir_all(env.path("out")).unwrap();
    std::fs::create_dir_all(env.path("model")).unwrap();
    env.write("out/notes.txt", "not an output\n");
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");

    // out/b.txt not written: it is named, and all three come back as they were
    let out = env.mlrun(&["run", "-p", "mode=no-b"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.all()
            .contains("did not produce declared output `out/b.txt`"),
        "{out:?}"
    );
    assert_eq!(read(&env, "out/a.txt"), "a1\n");
    assert_eq!(read(&env, "out/b.txt"), "b1\n");
    assert_eq!(read(&env, "model/weights"), "w1\n");
    assert_eq!(read(&env, "out/notes.txt"), "not an output\n");

    // the step found model/ there (empty) but wrote nothing into it: not produced either
    let out = env.mlrun(&["run", "-p", "mode=no-model"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.all()
            .contains("did not produce declared output `model/`"),
        "{out:?}"
    );
    assert_eq!(read(&env, "model/weights"), "w1\n");
    assert_eq!(read(&env, "out/a.txt"), "a1\n");
    let files: Vec<_> = std::fs::read_dir(env.path("model")).unwrap().collect();
    assert_eq!(files.len(), 1, "model/ is the previous one, whole");
}

/// A store on another filesystem (here tmpfs) cannot take the outputs by a rename: they are set
/// aside beside themselves instead, and come back the same way.
#[test]
fn outputs_are_set_aside_beside_them_when_the_store_is_on_another_filesystem() {
    use std::os::unix::fs::MetadataExt;
    let Ok(store) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("no /dev/shm here: nothing to test");
        return;
    };
    let mut env = project(TRAIN, &[("train.sh", TRAIN_SH)]);
    let dev = |p: &std::path::Path| std::fs::metadata(p).unwrap().dev();
    if dev(store.path()) == dev(&env.root) {
        eprintln!("/dev/shm is on the project's filesystem: nothing to test");
        return;
    }
    env.set_env("MLRUN_STORE", &store.path().join("s").to_string_lossy());
    assert_eq!(env.mlrun(&["run"]).code, 0);
    let out = env.mlrun(&["run", "-p", "mode=typo"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.all().contains(
            "did not produce declared output `model.txt`; the previous outputs are put back"
        ),
        "set aside (not refused): {out:?}"
    );
    assert_eq!(read(&env, "model.txt"), "model v1\n");
    let left: Vec<_> = std::fs::read_dir(&env.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("mlrun-aside"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let out = env.mlrun(&["run", "-p", "mode=ok"]);
    assert!(out.all().contains("cached"), "{out:?}");
}

#[test]
fn a_metrics_file_the_step_did_not_write_is_not_its_metrics() {
    let env = project(
        r#"
[params]
mode = "ok"

[steps.evaluate]
cmd = "if [ \"$MLRUN_PARAM_MODE\" = ok ]; then echo '{\"acc\": 0.9}' > m.json; fi"
metrics = ["m.json"]
params = ["mode"]
"#,
        &[],
    );
    assert_eq!(env.mlrun(&["run"]).code, 0);
    let out = env.mlrun(&["run", "-p", "mode=skip"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.all()
            .contains("did not produce declared output `m.json`"),
        "{out:?}"
    );
    assert_eq!(read(&env, "m.json"), "{\"acc\": 0.9}\n", "put back");
    let recorded: i64 = one(&env.db(), "SELECT count(*) FROM metrics");
    assert_eq!(recorded, 1, "only the first run's");
}

#[test]
fn keep_outputs_lets_a_step_update_an_output_in_place_and_the_record_says_so() {
    let env = project(
        r#"
[steps.append]
cmd = "echo run >> history.log"
outputs = ["history.log"]
keep-outputs = true

[steps.fresh]
cmd = "echo x > fresh.txt"
outputs = ["fresh.txt"]
"#,
        &[],
    );
    assert_eq!(env.mlrun(&["run"]).code, 0);
    let out = env.mlrun(&["run", "--force"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(read(&env, "history.log"), "run\nrun\n", "updated in place");

    let show = env.mlrun(&["show", "--json"]);
    let j = stdout_json(&show);
    let step = |name: &str| {
        j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(step("append")["keep_outputs"], true, "{j}");
    assert_eq!(step("fresh")["keep_outputs"], false, "{j}");
    let text = env.mlrun(&["show"]);
    assert!(
        text.stdout
            .contains("outputs kept in place (keep-outputs): not checked to be newly written"),
        "{text:?}"
    );
}

#[test]
fn keep_outputs_must_be_a_boolean() {
    let env = project(
        "[steps.a]\ncmd = \"echo > a.txt\"\noutputs = [\"a.txt\"]\nkeep-outputs = \"yes\"\n",
        &[],
    );
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!("keep_outputs_type_error", out.stderr);
}

#[test]
fn outputs_aside_when_mlrun_is_interrupted_or_killed_come_back() {
    let env = project(TRAIN, &[("train.sh", TRAIN_SH)]);
    assert_eq!(env.mlrun(&["run"]).code, 0);

    // Ctrl-C while the step runs (after it overwrote model.txt)
    let _ = std::fs::remove_file(env.path("started"));
    let child = env.spawn_mlrun(&["run", "-p", "mode=hang", "--grace", "1s"]);
    assert!(wait_until(60, || env.path("started").exists()));
    crate::common::signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = finish(child);
    assert_eq!(out.code, 130, "{out:?}");
    assert_eq!(read(&env, "model.txt"), "model v1\n");

    // SIGKILL: mlrun cannot put anything back itself; the next command that opens the store does
    let _ = std::fs::remove_file(env.path("started"));
    let child = env.spawn_mlrun(&["run", "-p", "mode=hang", "--grace", "1s"]);
    assert!(wait_until(60, || env.path("started").exists()));
    crate::common::signal(&child, nix::sys::signal::Signal::SIGKILL);
    let killed = finish(child);
    assert_eq!(killed.code, 137, "{killed:?}");
    assert_eq!(
        read(&env, "model.txt"),
        "half a model\n",
        "the step had written it"
    );
    let out = env.mlrun(&["runs"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.all().contains("put back `model.txt`"),
        "the recovery says what it did: {out:?}"
    );
    assert_eq!(read(&env, "model.txt"), "model v1\n");
    let out = env.mlrun(&["run"]);
    assert!(out.all().contains("cached"), "{out:?}");
}

// --- 12.2: metric values are stored exactly -----------------------------------------------

#[test]
fn metric_values_round_trip_exactly_through_the_store_json_filters_diff_and_export() {
    let env = project(
        r#"
[params]
auc = "0.9114273274303613"

[steps.evaluate]
cmd = "printf '{\"roc_auc\": %s, \"n_test\": 1500, \"loss\": NaN}' {params.auc} > metrics.json && echo 'peak=inf' >> \"$MLRUN_METRICS\""
outputs = ["metrics.json"]
metrics = ["metrics.json"]
"#,
        &[],
    );
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    // the text rounds for people
    assert!(out.all().contains("loss=nan"), "{out:?}");
    assert!(out.all().contains("n_test=1500"), "{out:?}");

    let show = env.mlrun(&["show", "--json"]);
    assert!(
        show.stdout.contains("\"roc_auc\": 0.9114273274303613"),
        "{}",
        show.stdout
    );
    let j = stdout_json(&show);
    let m = &j["steps"][0]["metrics"];
    assert_eq!(
        m["roc_auc"].as_f64().unwrap().to_bits(),
        0.9114273274303613_f64.to_bits()
    );
    assert_eq!(m["n_test"], 1500, "integers stay integers: {m}");
    assert_eq!(m["loss"], "nan", "{m}");
    assert_eq!(m["peak"], "inf", "{m}");
    let db = env.db();
    let stored: f64 = one(&db, "SELECT value FROM metrics WHERE key = 'roc_auc'");
    assert_eq!(stored.to_bits(), 0.9114273274303613_f64.to_bits());

    let found = env.mlrun(&["runs", "--json", "--metric", "roc_auc>=0.9114273274303613"]);
    assert_eq!(
        stdout_json(&found).as_array().unwrap().len(),
        1,
        "{found:?}"
    );
    let none = env.mlrun(&["runs", "--json", "--metric", "roc_auc>0.9114273274303613"]);
    assert_eq!(stdout_json(&none).as_array().unwrap().len(), 0, "{none:?}");

    let export = env.mlrun(&["export", "latest", "--format", "openlineage"]);
    assert!(
        export.stdout.contains("\"roc_auc\":0.9114273274303613"),
        "{export:?}"
    );
    let prov = env.mlrun(&["export", "latest", "--format", "prov"]);
    assert!(prov.stdout.contains("0.9114273274303613"), "{prov:?}");

    // one ulp more: a different value, which diff reports exactly (and shows in full)
    let first: String = one(&db, "SELECT id FROM runs");
    let out = env.mlrun(&["run", "-p", "auc=\"0.9114273274303614\""]);
    assert_eq!(out.code, 0, "{out:?}");
    let diff = env.mlrun(&["diff", &first, "latest", "--json"]);
    let d = stdout_json(&diff);
    let changed = d["metrics"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "nan and inf are unchanged: {d}");
    assert_eq!(changed[0]["a"].as_f64().unwrap(), 0.9114273274303613);
    assert_eq!(changed[0]["b"].as_f64().unwrap(), 0.9114273274303614);
    let text = env.mlrun(&["diff", &first, "latest"]);
    assert!(
        text.stdout.contains("0.9114273274303613") && text.stdout.contains("0.9114273274303614"),
        "{text:?}"
    );
}

/// Random doubles (any bit pattern proptest makes, infinities and NaN included), written by
/// Python (`repr`, `json.dump`) as JSON, YAML, TOML and `$MLRUN_METRICS` lines by one real
/// step, come back bit for bit from `mlrun show --json` and `mlrun runs --json`.
#[test]
fn random_doubles_written_by_python_round_trip_bit_for_bit() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let values: Vec<f64> = proptest::collection::vec(proptest::num::f64::ANY, 250)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let mut values = values;
    values.extend([0.9114273274303613, -0.0, 5e-324, f64::MAX, 1e16, 1500.0]);
    let hex: String = values
        .iter()
        .map(|v| format!("{:016x}\n", v.to_bits()))
        .collect();
    let env = project(
        r#"
[steps.write]
cmd = "python3 write.py"
inputs = ["write.py", "bits.txt"]
outputs = ["m.json", "m.yaml", "m.toml"]
metrics = ["m.json", "m.yaml", "m.toml"]
"#,
        &[
            ("bits.txt", &hex),
            (
                "write.py",
                r#"import json, math, os, struct
vals = [struct.unpack('>d', bytes.fromhex(h))[0] for h in open('bits.txt').read().split()]
json.dump({'j%d' % i: v for i, v in enumerate(vals)}, open('m.json', 'w'))
def text(v, nan, inf):
    if math.isnan(v): return nan
    if math.isinf(v): return inf if v > 0 else '-' + inf
    return repr(v)
with open('m.yaml', 'w') as f:
    for i, v in enumerate(vals): f.write('y%d: %s\n' % (i, text(v, '.nan', '.inf')))
with open('m.toml', 'w') as f:
    for i, v in enumerate(vals): f.write('t%d = %s\n' % (i, text(v, 'nan', 'inf')))
with open(os.environ['MLRUN_METRICS'], 'a') as f:
    for i, v in enumerate(vals): f.write('l%d=%r\n' % (i, v))
"#,
            ),
        ],
    );
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains("warning"), "{out:?}");
    let show = stdout_json(&env.mlrun(&["show", "--json"]));
    let runs = stdout_json(&env.mlrun(&["runs", "--json"]));
    for (metrics, what) in [
        (&show["steps"][0]["metrics"], "show --json"),
        (&runs[0]["metrics"], "runs --json"),
    ] {
        for (i, v) in values.iter().enumerate() {
            for prefix in ["j", "y", "t", "l"] {
                let key = format!("{prefix}{i}");
                let got = &metrics[&key];
                let back = match got {
                    Value::String(s) if s == "nan" => f64::NAN,
                    Value::String(s) if s == "inf" => f64::INFINITY,
                    Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
                    Value::Number(n) => n.as_f64().unwrap(),
                    other => panic!("{what}: {key} = {other}"),
                };
                assert!(
                    back.to_bits() == v.to_bits() || (back.is_nan() && v.is_nan()),
                    "{what}: {key}: wrote {v:e} ({:016x}), read back {back:e} ({:016x})",
                    v.to_bits(),
                    back.to_bits()
                );
            }
        }
    }
}

// --- 12.5: steps that rewrite the repository are noticed -----------------------------------

#[test]
fn a_step_that_commits_and_moves_refs_is_noticed_and_recorded() {
    // the step's own commit has a fixed date too (`D`), so its hash is the same on every run
    let env = fixed_project(
        r#"
[steps.track]
cmd = "echo 1 > model.txt && GIT_AUTHOR_DATE=$D GIT_COMMITTER_DATE=$D git commit -q --allow-empty -m 'experiment 1' && git update-ref refs/tags/exp-1 HEAD"
env = { D = "@1767312000 +0000" }
outputs = ["model.txt"]
"#,
        &[],
    );
    env.write(".gitignore", "/.mlrun/\nmodel.txt\n");
    env.commit("ignore the model");
    let before = env.git_cmd(&["rev-parse", "HEAD"]);
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    let after = env.git_cmd(&["rev-parse", "HEAD"]);
    assert_ne!(before, after);
    let line = format!(
        "warning: track changed the repository: refs/heads/main moved {} → {}; refs/tags/exp-1 created at {}",
        &before[..10],
        &after[..10],
        &after[..10]
    );
    assert!(out.all().contains(&line), "{line}\n{out:?}");
    // --trace: the writes under .git/ are one line, not one per file, and never outputs
    let all = out.all();
    let repo_lines: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("repository changed"))
        .collect();
    assert_eq!(repo_lines.len(), 1, "{out:?}");
    assert!(
        !all.contains(".git/objects") && !all.contains(".git/refs") && !all.contains(".git/index"),
        "no file of .git/ is named: {out:?}"
    );
    snapshot(
        &env,
        "repository_changed",
        all.lines()
            .filter(|l| l.contains("repository"))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    );
    let observed: i64 = one(
        &env.db(),
        "SELECT count(*) FROM io_edges e JOIN artifact_versions v ON v.id = e.av_id
         JOIN artifacts a ON a.id = v.artifact_id WHERE a.path LIKE '%.git/%' OR a.path = '.gitignore'",
    );
    assert_eq!(observed, 0);

    let j = stdout_json(&env.mlrun(&["show", "--json"]));
    let changes = &j["steps"][0]["repo_changes"];
    assert_eq!(
        changes,
        &serde_json::json!([
            {"ref": "refs/heads/main", "from": before, "to": after},
            {"ref": "refs/tags/exp-1", "from": null, "to": after},
        ]),
        "{j}"
    );
    let text = env.mlrun(&["show"]);
    assert!(
        text.stdout.contains(&format!(
            "repo    refs/heads/main moved {} → {}",
            &before[..10],
            &after[..10]
        )),
        "{text:?}"
    );

    // a step that leaves the repository alone says nothing and records nothing
    let out = env.mlrun(&["run", "--force", "--trace"]);
    assert!(
        out.all().contains("changed the repository"),
        "it commits again: {out:?}"
    );
    env.write(
        "pipeline.toml",
        "[steps.quiet]\ncmd = \"echo 1 > model.txt\"\noutputs = [\"model.txt\"]\n",
    );
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains("repository"), "{out:?}");
    let j = stdout_json(&env.mlrun(&["show", "--json"]));
    assert_eq!(j["steps"][0]["repo_changes"], serde_json::json!([]), "{j}");
}

// --- 12.6: tool state is not lineage -------------------------------------------------------

const TRACKER: &str = r#"import os
os.makedirs('mlruns/0/run1', exist_ok=True)
open('mlruns/0/run1/meta.yaml', 'a').write('x\n')
os.makedirs('wandb/run-1', exist_ok=True)
open('wandb/run-1/state', 'a').write('x\n')
os.makedirs('.cache/lib', exist_ok=True)
open('.cache/lib/blob', 'a').write('x\n')
open('train.lock', 'a').write('x\n')
os.makedirs('.ipynb_checkpoints', exist_ok=True)
open('.ipynb_checkpoints/n.ipynb', 'a').write('x\n')
open('model.txt', 'w').write('model\n')
open('notes.txt', 'w').write('undeclared\n')
"#;

const READER: &str = r#"import os
for p in ['mlruns/0/run1/meta.yaml', 'wandb/run-1/state', '.cache/lib/blob', 'train.lock', '.ipynb_checkpoints/n.ipynb']:
    open(p).read()
open('report.txt', 'w').write(open('model.txt').read())
"#;

fn trackers(defaults: &str) -> Env {
    project(
        &format!(
            r#"
[pipeline]
trace = true
{defaults}

[steps.train]
cmd = "python3 train.py"
inputs = ["train.py"]
outputs = ["model.txt"]

[steps.report]
cmd = "python3 report.py"
inputs = ["report.py", "model.txt"]
outputs = ["report.txt"]
"#
        ),
        &[("train.py", TRACKER), ("report.py", READER)],
    )
}

fn observed(env: &Env) -> Vec<Vec<String>> {
    rows(
        &env.db(),
        "SELECT s.step, e.direction, a.path FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
         JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
         WHERE e.declared = 0 ORDER BY s.step, e.direction, a.path",
    )
}

#[test]
fn tool_state_is_not_lineage_and_undeclared_writes_are_counted_apart() {
    let env = trackers("");
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    // only the real undeclared file is reported and recorded
    assert_eq!(
        observed(&env),
        vec![vec![
            "train".to_string(),
            "out".to_string(),
            "notes.txt".to_string()
        ]],
        "{out:?}"
    );
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out:?}");
    // the summary counts the declared output as the output, the undeclared write apart
    let all = out.all();
    let line = all.lines().find(|l| l.starts_with("✓ train")).unwrap();
    assert!(
        line.contains("out: model.txt  undeclared writes: notes.txt"),
        "{line}"
    );

    // the defaults can be switched off: then the tracker's files are lineage again
    let env = trackers("trace-ignore-defaults = false");
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    let seen = observed(&env);
    for p in [
        "mlruns/0/run1/meta.yaml",
        "wandb/run-1/state",
        ".cache/lib/blob",
        "train.lock",
    ] {
        assert!(
            seen.iter()
                .any(|r| r[0] == "report" && r[1] == "in" && r[2] == p),
            "{p}: {seen:?}"
        );
    }
}

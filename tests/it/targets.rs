//! `mlrun run [PIPELINE] [STEP|OUTPUT ...]` (and `mlrun train`): a target and the stale steps
//! it needs, `--downstream`, and `--dry-run`, which says what a run would do and does nothing.

use crate::common::{Env, json, one, rows};

/// prep → train → eval, and `other` on the side. `train` reads `lr`.
const CHAIN: &str = r#"
[pipeline]
name = "chain"
[params]
lr = 0.1
[steps.prep]
cmd = "mkdir -p data && cat raw.csv > data/x.txt"
inputs = ["raw.csv"]
outputs = ["data/"]
[steps.train]
cmd = "cat data/x.txt > model.txt; echo {params.lr} >> model.txt"
inputs = ["data/"]
outputs = ["model.txt"]
params = ["lr"]
[steps.eval]
cmd = "cat model.txt > eval.txt"
inputs = ["model.txt"]
outputs = ["eval.txt"]
[steps.other]
cmd = "echo o > other.txt"
outputs = ["other.txt"]
"#;

fn chain() -> Env {
    let env = Env::fixed();
    env.write("pipeline.toml", CHAIN);
    env.write("raw.csv", "a,b\n1,2\n");
    env.commit("pipeline");
    env
}

/// step → status, in the latest run, by step name: steps that start together (`prep` and
/// `other`) are shown in the order they started, which under the tests' clock that stands still
/// is a tie either way
fn latest_steps(env: &Env) -> Vec<(String, String)> {
    let v = json(&env.mlrun(&["show", "latest", "--json"]));
    let mut steps: Vec<(String, String)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    steps.sort();
    steps
}

/// the expected step → status pairs, by step name (as `latest_steps`)
fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = v
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    p.sort();
    p
}

#[test]
fn a_step_target_runs_it_and_the_stale_steps_it_needs_only() {
    let env = chain();
    let out = env.mlrun(&["train"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        latest_steps(&env),
        pairs(&[("prep", "succeeded"), ("train", "succeeded")])
    );
    assert!(env.path("model.txt").exists() && !env.path("eval.txt").exists());
    let v = json(&env.mlrun(&["show", "latest", "--json"]));
    assert_eq!(v["targets"], serde_json::json!(["train"]));
    assert!(v["sweep_id"].is_null());
    // the whole pipeline's run says no targets
    assert_eq!(env.mlrun(&["run"]).code, 0);
    let v = json(&env.mlrun(&["show", "latest", "--json"]));
    assert!(v["targets"].is_null(), "{v}");
    // an up-to-date upstream step is reused, the changed one runs
    let out = env.mlrun(&["run", "pipeline.toml", "train", "-p", "lr=0.5"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        latest_steps(&env),
        pairs(&[("prep", "cached"), ("train", "succeeded")])
    );
    let show = env.mlrun(&["show", "latest"]);
    assert!(
        show.stdout
            .contains("  targets   train (and the steps they need)\n"),
        "{show:?}"
    );
}

#[test]
fn an_output_target_runs_the_step_that_declares_it() {
    let env = chain();
    // from a subdirectory, a path is relative to where you are
    std::fs::create_dir_all(env.path("sub")).unwrap();
    let out = env.mlrun_in(&env.path("sub"), &["run", "../model.txt"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        latest_steps(&env),
        pairs(&[("prep", "succeeded"), ("train", "succeeded")])
    );
    // an existing output file given first is a target, not a pipeline file
    let out = env.mlrun(&["model.txt"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        latest_steps(&env),
        pairs(&[("prep", "cached"), ("train", "cached")])
    );
    // a file inside an output directory names the step that makes the directory
    let out = env.mlrun(&["run", "data/x.txt", "other"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        latest_steps(&env),
        pairs(&[("prep", "cached"), ("other", "succeeded")])
    );
    let v = json(&env.mlrun(&["show", "latest", "--json"]));
    assert_eq!(v["targets"], serde_json::json!(["data/x.txt", "other"]));
}

#[test]
fn downstream_also_runs_what_depends_on_the_targets() {
    let env = chain();
    let out = env.mlrun(&["run", "prep", "--downstream"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        latest_steps(&env),
        pairs(&[
            ("prep", "succeeded"),
            ("train", "succeeded"),
            ("eval", "succeeded")
        ])
    );
    let out = env.mlrun(&["run", "--downstream"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("`--downstream` needs a target"),
        "{out:?}"
    );
}

#[test]
fn a_pipeline_file_named_first_keeps_working() {
    let env = chain();
    env.write("nightly", CHAIN);
    // an existing file the pipeline here does not name is a pipeline file, as always
    let out = env.mlrun(&["./nightly", "eval"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = json(&env.mlrun(&["show", "latest", "--json"]));
    assert!(
        v["pipeline_file"].as_str().unwrap().ends_with("/nightly"),
        "{v}"
    );
    assert_eq!(v["targets"], serde_json::json!(["eval"]));
}

#[test]
fn unknown_targets_say_what_they_are_not() {
    let env = chain();
    // close to a step: did you mean
    let out = env.mlrun(&["trian"]);
    assert_eq!(out.code, 2, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "target_unknown_step", &out.stderr);
    // close to a command, and no step or output: still the mistyped command
    let out = env.mlrun(&["rnus"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("unknown command `rnus`; did you mean `runs`?"),
        "{out:?}"
    );
    // an input no step makes: nothing to run for it
    let out = env.mlrun(&["raw.csv"]);
    assert_eq!(out.code, 2, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "target_is_an_input", &out.stderr);
    // a file that is no output of any step
    env.write("notes.txt", "x");
    let out = env.mlrun(&["run", "pipeline.toml", "notes.txt"]);
    assert_eq!(out.code, 2, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "target_no_step_declares", &out.stderr);
    // none of these recorded anything
    assert!(!env.path(".mlrun/lineage.db").exists());
}

/// `--dry-run` runs nothing, records nothing, restores nothing, and leaves the store's files
/// as they were.
#[test]
fn dry_run_runs_and_records_nothing() {
    let env = chain();
    assert_eq!(env.mlrun(&["run"]).code, 0);
    std::fs::remove_file(env.path("model.txt")).unwrap();
    env.write("raw.csv", "a,b\n3,4\n");
    let db = env.db();
    let before: i64 = one(&db, "SELECT count(*) FROM step_execs");
    let objects_before = listing(&env.path(".mlrun/objects"));
    drop(db);
    let db_bytes = std::fs::read(env.path(".mlrun/lineage.db")).unwrap();
    let out = env.mlrun(&["run", "--dry-run", "eval"]);
    assert_eq!(out.code, 0, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "dry_run_changed_input", &out.stdout);
    assert!(!env.path("model.txt").exists(), "nothing is restored");
    assert_eq!(
        std::fs::read(env.path(".mlrun/lineage.db")).unwrap(),
        db_bytes
    );
    assert_eq!(listing(&env.path(".mlrun/objects")), objects_before);
    let db = env.db();
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM step_execs"), before);
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM runs"), 1);
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// Each reason a run gives, in the plan: what the runner then does agrees.
#[test]
fn dry_run_says_why_each_step_would_run_or_be_reused() {
    let env = chain();
    let out = env.mlrun(&["--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "dry_run_never_run", &out.stdout);
    assert_eq!(env.mlrun(&["run"]).code, 0);
    // a param, a command, a missing output and --force
    env.write("pipeline.toml", &CHAIN.replace("echo o >", "echo oo >"));
    std::fs::remove_file(env.path("eval.txt")).unwrap();
    let v = json(&env.mlrun(&["run", "--dry-run", "--json", "-p", "lr=0.2", "--force=prep"]));
    let step = |name: &str| {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(v["targets"], serde_json::json!([]));
    assert_eq!((v["run"].as_u64(), v["reuse"].as_u64()), (Some(4), Some(0)));
    assert_eq!(
        step("prep")["reasons"],
        serde_json::json!(["forced (`--force`)"])
    );
    assert_eq!(
        step("train")["reasons"],
        serde_json::json!(["upstream `prep` will run first"])
    );
    assert_eq!(
        step("other")["reasons"],
        serde_json::json!(["command changed"])
    );
    // without --force: the param, and a restorable output
    let v = json(&env.mlrun(&["run", "--dry-run", "--json", "-p", "lr=0.2"]));
    let step = |name: &str| {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(step("prep")["action"], "cached");
    assert_eq!(
        step("train")["reasons"],
        serde_json::json!(["param lr 0.1 → 0.2"])
    );
    assert_eq!(step("train")["action"], "run");
    // lr as it was: eval.txt is put back from the store, and the record agrees
    let v = json(&env.mlrun(&["run", "--dry-run", "--json", "eval"]));
    let eval = v["steps"][2].clone();
    assert_eq!(eval["name"], "eval");
    assert_eq!(eval["action"], "restored");
    assert_eq!(eval["restore"], serde_json::json!(["eval.txt"]));
    assert_eq!(v["steps"][3]["action"], "not_needed");
    assert_eq!(env.mlrun(&["run", "eval"]).code, 0);
    assert_eq!(
        latest_steps(&env),
        pairs(&[
            ("prep", "cached"),
            ("train", "cached"),
            ("eval", "restored")
        ])
    );
    let db = env.db();
    let from: Vec<Vec<String>> = rows(&db, "SELECT count(*) FROM runs");
    assert_eq!(from, [["2"]]);
}

#[test]
fn dry_run_refuses_a_message() {
    let env = chain();
    let out = env.mlrun(&["run", "--dry-run", "-m", "try"]);
    assert_eq!(out.code, 2, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "dry_run_with_message", &out.stderr);
}

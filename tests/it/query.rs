//! The read side: `runs` and `show`, run id prefixes and `latest`.

use crate::common::{Env, one};

fn two_runs() -> Env {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[params]\nk = 1\n[steps.s]\ncmd = \"echo v={params.k} > o.txt; echo acc=0.{params.k} >> $MLRUN_METRICS\"\noutputs = [\"o.txt\"]\nparams = [\"k\"]\n",
    );
    env.commit("p");
    assert_eq!(env.mlrun(&["-p", "k=1"]).code, 0);
    assert_eq!(env.mlrun(&["-p", "k=2"]).code, 0);
    env
}

#[test]
fn runs_lists_newest_first_with_metrics() {
    let env = two_runs();
    let out = env.mlrun(&["runs"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(lines[0].contains("ID") && lines[0].contains("METRICS"));
    assert!(
        lines[1].contains("acc=0.2") && lines[2].contains("acc=0.1"),
        "{out:?}"
    );
    let json = env.mlrun(&["runs", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["metrics"]["acc"], 0.2);
    assert_eq!(v[0]["status"], "succeeded");
}

#[test]
fn show_resolves_prefixes_and_latest() {
    let env = two_runs();
    let latest: String = one(
        &env.db(),
        "SELECT id FROM runs ORDER BY started_at DESC LIMIT 1",
    );
    let by_prefix = env.mlrun(&["show", &latest[..12]]);
    let by_latest = env.mlrun(&["show", "latest"]);
    assert_eq!(by_prefix.code, 0, "{by_prefix:?}");
    assert_eq!(by_prefix.stdout, by_latest.stdout);
    assert!(by_latest.stdout.contains("params    k=2"), "{by_latest:?}");
    assert!(by_latest.stdout.contains("out     o.txt"), "{by_latest:?}");
    let json = env.mlrun(&["show", "latest", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["id"], latest.as_str());
    assert_eq!(v["steps"][0]["outputs"][0]["hash"], env.sha256sum("o.txt"));
    assert_eq!(v["steps"][0]["metrics"]["acc"], 0.2);
    // logs are kept
    let logs = env.mlrun(&["show", "latest", "--logs"]);
    assert_eq!(logs.code, 0);
}

#[test]
fn unknown_and_ambiguous_ids_are_clear_errors() {
    let env = two_runs();
    let out = env.mlrun(&["show", "ffffffff"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        // `show` also takes artifacts, so a hex string may be a run or a content hash
        out.stderr
            .contains("no run, content hash or recorded path matches `ffffffff`")
            && out.stderr.contains("mlrun runs"),
        "{out:?}"
    );
    // both runs were made within the same second: their ids share a prefix
    let a: String = one(&env.db(), "SELECT id FROM runs ORDER BY id LIMIT 1");
    let b: String = one(&env.db(), "SELECT id FROM runs ORDER BY id DESC LIMIT 1");
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let out = env.mlrun(&["show", &a[..common]]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is ambiguous"), "{out:?}");
    assert!(
        out.stderr.contains(&a) && out.stderr.contains(&b),
        "candidates are listed: {out:?}"
    );
}

#[test]
fn read_commands_find_the_store_from_a_subdirectory() {
    let env = two_runs();
    std::fs::create_dir_all(env.path("sub/dir")).unwrap();
    let out = env.mlrun_in(&env.path("sub/dir"), &["runs"]);
    assert_eq!(out.code, 0, "{out:?}");
    let none = crate::common::Env::plain();
    let out = none.mlrun(&["runs"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no lineage store found"), "{out:?}");
}

#[test]
fn help_and_version() {
    let env = Env::plain();
    let out = env.mlrun(&["--version"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("mlrun "), "{out:?}");
    let out = env.mlrun(&["--help"]);
    assert_eq!(out.code, 0);
    for word in [
        "run",
        "runs",
        "show",
        "Exit codes",
        "--store",
        "--jobs",
        "--keep-going",
        "--param",
    ] {
        assert!(
            out.stdout.contains(word),
            "help mentions {word}: {}",
            out.stdout
        );
    }
}

#[test]
fn a_metric_from_parallel_steps_takes_the_value_of_the_latest_step_in_the_plan() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.train_a]\ncmd = \"echo loss=0.1 >> $MLRUN_METRICS; echo a > a.txt\"\noutputs = [\"a.txt\"]\n\
         [steps.train_b]\ncmd = \"echo loss=0.9 >> $MLRUN_METRICS; echo b > b.txt\"\noutputs = [\"b.txt\"]\n",
    );
    env.commit("p");
    for _ in 0..3 {
        let out = env.mlrun(&["--force", "-j", "2"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stderr
                .contains("metric `loss` is reported by steps `train_a`, `train_b`"),
            "{out:?}"
        );
    }
    let v: serde_json::Value =
        serde_json::from_str(&env.mlrun(&["runs", "--json"]).stdout).unwrap();
    for run in v.as_array().unwrap() {
        assert_eq!(run["metrics"]["loss"], 0.9, "{run}");
    }
    let filtered = env.mlrun(&["runs", "--metric", "loss>0.5", "--json"]);
    let f: serde_json::Value = serde_json::from_str(&filtered.stdout).unwrap();
    assert_eq!(f.as_array().unwrap().len(), 3);
}

#[test]
fn show_run_colon_step_shows_only_that_step() {
    let env = Env::git();
    env.write("pipeline.toml", "[steps.first]\ncmd = \"echo 1 > a.txt\"\noutputs = [\"a.txt\"]\n[steps.second]\ncmd = \"cat a.txt > b.txt\"\ninputs = [\"a.txt\"]\noutputs = [\"b.txt\"]\n");
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    let id: String = one(&env.db(), "SELECT id FROM runs");
    let out = env.mlrun(&["show", &format!("{}:second", &id[..10])]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("second  succeeded"), "{out:?}");
    assert!(!out.stdout.contains("first  succeeded"), "{out:?}");
}

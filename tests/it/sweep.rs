//! `mlrun run --sweep -p a=1,2 -p b=x,y`: the cross product as runs sharing a sweep id, the
//! shared steps run once, each variant in its own scratch tree, `runs --sweep`, `compare
//! --sweep`, and the sweep's bad input.

use serde_json::Value;

use crate::common::{Env, json, one, rows};

/// a → b (no params) → c → d (both read lr and depth); d reports `acc` = lr × depth.
const FOUR: &str = r#"
[pipeline]
name = "four"
[params]
lr = 0.1
depth = 3
seed = 7
[steps.a]
cmd = "mkdir -p data && cat raw.csv > data/a.txt"
inputs = ["raw.csv"]
outputs = ["data/"]
[steps.b]
cmd = "cat data/a.txt data/a.txt > feat.txt"
inputs = ["data/"]
outputs = ["feat.txt"]
[steps.c]
cmd = "cat feat.txt > model.txt; echo {params.lr} {params.depth} >> model.txt"
inputs = ["feat.txt"]
outputs = ["model.txt"]
params = ["lr", "depth"]
[steps.d]
cmd = "cat model.txt > eval.txt; python3 -c 'print(\"acc=%s\" % ({params.lr} * {params.depth}))' >> $MLRUN_METRICS"
inputs = ["model.txt"]
outputs = ["eval.txt"]
params = ["lr", "depth"]
"#;

fn four(env: Env) -> Env {
    env.write("pipeline.toml", FOUR);
    env.write("raw.csv", "a,b\n1,2\n");
    env.commit("pipeline");
    env
}

#[test]
fn a_sweep_runs_each_combination_once_and_the_shared_steps_once() {
    let env = four(Env::git());
    let out = env.mlrun(&[
        "run",
        "--sweep",
        "-p",
        "lr=0.1,0.2,0.5",
        "-p",
        "depth=3,5,7",
        "-j",
        "2",
        "--json",
    ]);
    let v = json(&out);
    let sweep = v["sweep_id"].as_str().unwrap().to_string();
    assert_eq!(v["shared_steps"], serde_json::json!(["a", "b"]));
    assert_eq!(v["variants"].as_array().unwrap().len(), 9);
    assert!(
        v["variants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "succeeded"),
        "{v}"
    );
    let db = env.db();
    // nine runs sharing the sweep id
    assert_eq!(
        one::<i64>(
            &db,
            &format!("SELECT count(*) FROM runs WHERE sweep_id = '{sweep}'")
        ),
        9
    );
    // the shared steps ran once; the other variants reused them; the swept steps ran 9 times
    let counts = rows(
        &db,
        "SELECT step, status, count(*) FROM step_execs GROUP BY step, status ORDER BY step, status",
    );
    assert_eq!(
        counts,
        [
            ["a", "restored", "8"],
            ["a", "succeeded", "1"],
            ["b", "restored", "8"],
            ["b", "succeeded", "1"],
            ["c", "succeeded", "9"],
            ["d", "succeeded", "9"],
        ]
    );
    // each variant made its own model: nine different versions of model.txt
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT count(DISTINCT v.blob_hash) FROM io_edges e JOIN artifact_versions v ON v.id = e.av_id
             JOIN artifacts a ON a.id = v.artifact_id WHERE a.path = 'model.txt' AND e.direction = 'out'"
        ),
        9
    );
    // never more than -j steps at once across the sweep (real times, from the record)
    let spans: Vec<(i64, i64)> = rows(&db, "SELECT started_at, ended_at FROM step_execs")
        .into_iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect();
    for (s, _) in &spans {
        let at_once = spans.iter().filter(|(a, b)| a <= s && s < b).count();
        assert!(at_once <= 2, "{at_once} steps at once at {s}: {spans:?}");
    }
    // the workspace is as it was: the variants ran in scratch trees
    assert!(!env.path("model.txt").exists() && !env.path("data").exists());
    assert!(
        std::fs::read_dir(env.path(".mlrun/tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );

    // runs --sweep lists them; compare --sweep (and compare's default) compares them
    let listed = json(&env.mlrun(&["runs", "--sweep", &sweep[..8], "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 9);
    for run in listed.as_array().unwrap() {
        assert_eq!(run["sweep_id"], sweep.as_str(), "{run}");
    }
    let cmp = json(&env.mlrun(&["compare", "--json", "--sort", "acc"]));
    assert_eq!(cmp["sweep_id"], sweep.as_str());
    assert_eq!(cmp["runs"].as_array().unwrap().len(), 9);
    assert_eq!(cmp["params"], serde_json::json!(["depth", "lr"]));
    let best = &cmp["runs"][0];
    assert_eq!(best["metrics"]["acc"], 3.5);
    // the best variant's outputs can be checked out
    let id = best["id"].as_str().unwrap();
    let out = env.mlrun(&["checkout", id]);
    assert_eq!(out.code, 0, "{out:?}");
    let model = std::fs::read_to_string(env.path("model.txt")).unwrap();
    assert!(model.ends_with("0.5 7\n"), "{model:?}");
    // a variant is recorded with its own values as its command line
    let shown = json(&env.mlrun(&["show", id, "--json"]));
    assert_eq!(shown["sweep_id"], sweep.as_str());
    let argv: Vec<String> = serde_json::from_value(shown["argv"].clone()).unwrap();
    assert!(
        argv.contains(&"lr=0.5".to_string()) && argv.contains(&"depth=7".to_string()),
        "{argv:?}"
    );
    assert!(!argv.contains(&"--sweep".to_string()), "{argv:?}");
}

#[test]
fn the_sweep_prints_a_table_of_variants_and_metrics() {
    let env = four(Env::fixed());
    let out = env.mlrun(&[
        "run",
        "--sweep",
        "-p",
        "lr=0.1,0.2",
        "-p",
        "depth=3",
        "-j",
        "1",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let shown = json(&env.mlrun(&["show", "latest", "--json"]));
    let sweep = shown["sweep_id"].as_str().unwrap();
    let table = out.stdout[out.stdout.find("comparing").expect("a table")..]
        .replace(&sweep[..16], "[sweep]");
    crate::assert_fixed_snapshot!(&env, "sweep_table", &table);
}

#[test]
fn a_backslash_comma_is_a_literal_comma() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[params]\nname = \"x\"\n[steps.s]\ncmd = \"echo '{params.name}' > out.txt\"\noutputs = [\"out.txt\"]\nparams = [\"name\"]\n",
    );
    env.commit("pipeline");
    let v = json(&env.mlrun(&["run", "--sweep", "-p", "name=a\\,b,c", "--json"]));
    let names: Vec<&str> = v["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["params"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a,b", "c"]);
}

#[test]
fn a_failing_shared_step_stops_the_sweep_before_the_other_variants() {
    let env = four(Env::git());
    env.write(
        "pipeline.toml",
        &FOUR.replace("cat raw.csv >", "false && cat raw.csv >"),
    );
    let out = env.mlrun(&["run", "--sweep", "-p", "lr=0.1,0.2,0.5", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let statuses: Vec<&str> = v["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "not_run", "not_run"]);
    assert!(
        out.stderr
            .contains("did not succeed in the first variant: the other 2 variants were not run"),
        "{out:?}"
    );
    assert_eq!(one::<i64>(&env.db(), "SELECT count(*) FROM runs"), 1);
}

#[test]
fn bad_sweeps_are_refused_before_anything_runs() {
    let env = four(Env::fixed());
    let cases: &[(&str, &[&str])] = &[
        (
            "sweep_empty_value",
            &["run", "--sweep", "-p", "lr=0.1,,0.5"],
        ),
        ("sweep_trailing_comma", &["run", "--sweep", "-p", "lr=0.1,"]),
        (
            "sweep_param_no_step_declares",
            &["run", "--sweep", "-p", "seed=1,2"],
        ),
        (
            "sweep_param_the_targets_do_not_read",
            &["run", "b", "--sweep", "-p", "lr=0.1,0.2"],
        ),
        (
            "sweep_with_force_step",
            &["run", "--sweep", "--force=c", "-p", "lr=0.1,0.2"],
        ),
        (
            "sweep_with_dry_run",
            &["run", "--sweep", "--dry-run", "-p", "lr=0.1,0.2"],
        ),
        (
            "sweep_nothing_to_sweep",
            &["run", "--sweep", "-p", "lr=0.1"],
        ),
        (
            "sweep_unknown_target",
            &["run", "trian", "--sweep", "-p", "lr=0.1,0.2"],
        ),
    ];
    for (name, args) in cases {
        let out = env.mlrun(args);
        assert_eq!(out.code, 2, "{name}: {out:?}");
        crate::assert_fixed_snapshot!(&env, name, &out.stderr);
    }
    assert!(!env.path(".mlrun/lineage.db").exists());
    // an unknown sweep id names the recorded ones
    assert_eq!(env.mlrun(&["run", "--sweep", "-p", "lr=0.1,0.2"]).code, 0);
    let out = env.mlrun(&["runs", "--sweep", "ffff"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("no sweep has an id starting with `ffff`"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("recorded sweeps, newest first: "),
        "{out:?}"
    );
}

/// An interrupt stops the variant running, records it interrupted (never succeeded), and
/// starts no other variant.
#[test]
fn an_interrupted_sweep_starts_no_other_variant() {
    let env = Env::git();
    let marks = env.path("../marks");
    std::fs::create_dir_all(&marks).unwrap();
    env.write(
        "pipeline.toml",
        &format!(
            "[params]\nlr = 1\n[steps.train]\ncmd = \"touch {}/started-{{params.lr}}; sleep 60; echo done > model.txt\"\noutputs = [\"model.txt\"]\nparams = [\"lr\"]\n",
            marks.display()
        ),
    );
    env.commit("pipeline");
    let child = env.spawn_mlrun(&[
        "run", "--sweep", "-p", "lr=1,2,3", "-j", "1", "--grace", "2s",
    ]);
    assert!(
        crate::common::wait_until(60, || marks.join("started-1").exists()),
        "the first variant never started"
    );
    crate::common::signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = crate::common::finish(child);
    assert_eq!(out.code, 130, "{out:?}");
    assert!(
        out.stdout
            .contains("sweep interrupted: 2 variants were not run"),
        "{out:?}"
    );
    assert!(!marks.join("started-2").exists() && !marks.join("started-3").exists());
    let db = env.db();
    assert_eq!(
        rows(&db, "SELECT status FROM runs"),
        [["interrupted"]],
        "{out:?}"
    );
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT count(*) FROM step_execs WHERE status = 'succeeded'"
        ),
        0
    );
}

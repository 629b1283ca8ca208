//! A replay is not the workspace's history, and a printed run id keeps working.
//!
//! Replays run in a scratch tree: they stay queryable (`runs`, `show`, `PATH@RUN`) but never
//! become the baseline of `status`, nor a source of `cached` / `restored` steps unless asked
//! (`--reuse-replays`); `latest` is the newest run that is not a replay.

use serde_json::Value;

use crate::common::{Env, json, ok, one};

const PIPELINE: &str = r#"
[params]
lr = 0.1
[steps.train]
cmd = "sh train.sh {params.lr}"
inputs = ["data.txt", "train.sh"]
outputs = ["model.txt"]
params = ["lr"]
[steps.evaluate]
cmd = "sh evaluate.sh"
inputs = ["model.txt", "evaluate.sh"]
outputs = ["metrics.json"]
metrics = ["metrics.json"]
"#;

fn project() -> Env {
    let env = Env::fixed();
    env.write(".gitignore", "/.mlrun/\n/model.txt\n/metrics.json\n");
    env.write("pipeline.toml", PIPELINE);
    env.write("data.txt", "1 2 3\n");
    env.write("train.sh", "echo \"lr=$1 $(cat data.txt)\" > model.txt\n");
    env.write(
        "evaluate.sh",
        "printf '{\"size\": %s}\\n' \"$(wc -c < model.txt | tr -d ' ')\" > metrics.json\n",
    );
    env.commit("pipeline");
    env
}

fn newest_run(env: &Env) -> String {
    one(
        &env.db(),
        "SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT 1",
    )
}

/// The run a command line names, by `show NAME --json`.
fn named(env: &Env, name: &str) -> String {
    json(&env.mlrun(&["show", name, "--json"]))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The run whose results step `step` of run `run` reused.
fn reused_by(env: &Env, run: &str, step: &str) -> Value {
    let v = json(&env.mlrun(&["show", run, "--json"]));
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {v}"))["reused_run"]
        .clone()
}

#[test]
fn a_replay_is_never_the_baseline_of_status_latest_or_reuse() {
    let env = project();
    ok(env.mlrun(&[]));
    let run1 = newest_run(&env);
    ok(env.mlrun(&["-p", "lr=0.2"]));
    let run2 = newest_run(&env);
    // the files on disk are run 2's; replaying run 1 records lr=0.1 executions, newer than both
    let out = ok(env.mlrun(&["replay", &run1[..16]]));
    assert!(out.stdout.contains("all 2 steps reproduced"), "{out:?}");
    let replay1 = newest_run(&env);
    assert_ne!(replay1, run2);

    // status explains against the run that made the files on disk, not the replay
    let out = ok(env.mlrun(&["status", "-p", "lr=0.3"]));
    assert!(
        out.stdout.contains("param lr 0.2 → 0.3"),
        "status compares with run 2 (lr=0.2), the workspace's last run: {out:?}"
    );
    assert!(!out.stdout.contains("0.1 → 0.3"), "{out:?}");
    crate::assert_fixed_snapshot!(&env, "status_after_a_replay", &out.stdout);
    // asked for, the replay counts (it is the newest execution of the step)
    let out = ok(env.mlrun(&["status", "-p", "lr=0.3", "--reuse-replays"]));
    assert!(out.stdout.contains("param lr 0.1 → 0.3"), "{out:?}");

    // `latest` is the newest run that is not a replay; replays have their own name
    assert_eq!(named(&env, "latest"), run2);
    assert_eq!(named(&env, "latest~1"), run1);
    assert_eq!(named(&env, "latest-replay"), replay1);
    assert_eq!(
        named(&env, &format!("{}~1", &run2[..16])),
        run1,
        "RUN~N counts back from any run"
    );

    // a run with run 1's params reuses run 1's execution, not the replay's
    let out = ok(env.mlrun(&[]));
    let run3 = newest_run(&env);
    assert!(
        !out.all().contains(&replay1[..12]),
        "the replay is not named as the source of reuse: {out:?}"
    );
    assert_eq!(reused_by(&env, &run3, "train"), run1.as_str());
    assert_eq!(named(&env, "latest~2"), run1);

    // asked for explicitly, a replay is a source of reuse
    let out = ok(env.mlrun(&["replay", &run2[..16]]));
    assert!(out.stdout.contains("all 2 steps reproduced"), "{out:?}");
    let replay2 = newest_run(&env);
    assert_eq!(named(&env, "latest-replay"), replay2);
    assert_eq!(named(&env, "latest-replay~1"), replay1);
    let out = ok(env.mlrun(&["-p", "lr=0.2", "--reuse-replays"]));
    let run4 = newest_run(&env);
    assert_eq!(reused_by(&env, &run4, "train"), replay2.as_str(), "{out:?}");
    assert_eq!(named(&env, "latest"), run4);

    // replays stay queryable: listed (and filtered), shown, their outputs' lineage
    let ids = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["runs", "--json"];
        a.extend_from_slice(args);
        json(&env.mlrun(&a))
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&[]).len(), 6, "by default every run is listed");
    assert_eq!(ids(&["--replays"]), [replay2.clone(), replay1.clone()]);
    assert_eq!(
        ids(&["--no-replays"]),
        [run4.clone(), run3.clone(), run2.clone(), run1.clone()]
    );
    let out = ok(env.mlrun(&["runs", "--no-replays"]));
    assert!(!out.stdout.contains("replay"), "{out:?}");
    let out = ok(env.mlrun(&["show", "latest-replay"]));
    assert!(out.stdout.contains("replay    of run"), "{out:?}");
    let v = json(&env.mlrun(&[
        "lineage",
        &format!("model.txt@{}", &replay1[..16]),
        "--json",
    ]));
    assert_eq!(v["direction"], "upstream");
    // the version both made names the workspace's run as its producer
    let card = json(&env.mlrun(&["show", &format!("model.txt@{}", &run1[..16]), "--json"]));
    assert_eq!(card["produced_by"]["run_id"], run1.as_str());
    let also: Vec<&str> = card["also_produced_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["run_id"].as_str().unwrap())
        .collect();
    assert!(also.contains(&replay1.as_str()), "{card}");
}

#[test]
fn relative_run_names_that_name_nothing_say_why() {
    let env = project();
    ok(env.mlrun(&[]));
    let out = env.mlrun(&["show", "latest-replay"]);
    assert_eq!(out.code, 1, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "no_replay_yet", &out.stderr);
    let out = env.mlrun(&["show", "latest~3"]);
    assert_eq!(out.code, 1, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "latest_too_far_back", &out.stderr);
    let out = env.mlrun(&["show", "latest~x"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("`~x` is not a number of runs"),
        "{out:?}"
    );
    // RUN:STEP and PATH@RUN take relative names too
    ok(env.mlrun(&["-p", "lr=0.5"]));
    let out = ok(env.mlrun(&["show", "latest~1:train"]));
    assert!(out.stdout.contains("sh train.sh 0.1"), "{out:?}");
    let card = json(&env.mlrun(&["show", "model.txt@latest~1", "--json"]));
    assert_eq!(card["produced_by"]["cmd"], "sh train.sh 0.1");
}

/// The id `mlrun run` prints is still unambiguous after more runs (they all start within the
/// same minute, so they share the first 8 hex digits of their UUIDv7 ids).
#[test]
fn a_printed_run_id_stays_unambiguous() {
    let env = project();
    let out = ok(env.mlrun(&[]));
    let first_line = out.stdout.lines().next().unwrap_or_default().to_string();
    let printed = first_line
        .strip_prefix("run ")
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the run prints its id first: {out:?}"))
        .to_string();
    let first = newest_run(&env);
    assert!(
        first.starts_with(&printed),
        "{printed} is a prefix of {first}"
    );
    assert!(
        printed.len() >= 16,
        "the shown id covers the whole 48-bit timestamp and some random bits: {printed}"
    );
    for lr in ["0.2", "0.3", "0.4"] {
        ok(env.mlrun(&["-p", &format!("lr={lr}")]));
    }
    // the runs share their first 8 digits (unless a 65 s boundary fell between them): an
    // 8-digit id would now be ambiguous; the printed one is not
    assert_eq!(named(&env, &printed), first);
    let v = json(&env.mlrun(&["runs", "--json"]));
    for r in v.as_array().unwrap() {
        let short = r["short_id"].as_str().unwrap();
        assert!(short.len() >= 16, "{r}");
        assert_eq!(named(&env, short), r["id"].as_str().unwrap());
    }
    // the reuse line names the reused run by a shown id too
    let out = ok(env.mlrun(&["-p", "lr=0.4"]));
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("(outputs of run"))
        .unwrap_or_else(|| panic!("a reused step: {out:?}"))
        .to_string();
    let shown = line
        .split("(outputs of run ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')');
    assert!(shown.len() >= 16, "{line}");
    ok(env.mlrun(&["show", shown]));
}

/// `gc --keep-last N` keeps the N most recent runs of the workspace: replays are not counted
/// (they would push the workspace's own latest run out of the kept set).
#[test]
fn gc_keep_last_counts_the_workspaces_runs_not_replays() {
    let env = project();
    ok(env.mlrun(&[]));
    let first = env.sha256sum("model.txt");
    ok(env.mlrun(&["-p", "lr=0.2"]));
    let second = env.sha256sum("model.txt");
    assert_ne!(first, second);
    let run1 = named(&env, "latest~1");
    ok(env.mlrun(&["replay", &run1]));
    let object = |h: &str| env.path(&format!(".mlrun/objects/sha256/{}/{}", &h[..2], &h[2..]));
    assert!(object(&first).is_file() && object(&second).is_file());
    ok(env.mlrun(&["gc", "--keep-last", "1"]));
    assert!(
        object(&second).is_file(),
        "the model on disk, made by the workspace's latest run, is kept"
    );
    assert!(!object(&first).is_file(), "run 1's model is not kept");
    ok(env.mlrun(&["fsck"]));
}

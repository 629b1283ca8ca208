//! `mlrun replay`: a past run reproduced from its commit, diff and stored inputs, with a verdict.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{Env, one, rows};

const PIPELINE: &str = r#"
[params]
factor = 3
[steps.prepare]
cmd = "python3 src/prepare.py data/raw.csv prepared/ {params.factor}"
inputs = ["data/raw.csv", "src/prepare.py"]
outputs = ["prepared/"]
params = ["factor"]
[steps.train]
cmd = "python3 src/train.py prepared/ model.txt metrics.json"
inputs = ["prepared/", "src/train.py"]
outputs = ["model.txt", "metrics.json"]
metrics = ["metrics.json"]
"#;

const PREPARE: &str = r#"import sys, os
src, out, factor = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out, exist_ok=True)
rows = [int(x) for x in open(src).read().split()]
open(os.path.join(out, "a.txt"), "w").write("\n".join(str(r * factor) for r in rows) + "\n")
open(os.path.join(out, "n.txt"), "w").write(f"{len(rows)}\n")
"#;

const TRAIN: &str = r#"import sys, json, os
src, model, metrics = sys.argv[1:4]
vals = [int(x) for x in open(os.path.join(src, "a.txt")).read().split()]
open(model, "w").write(f"mean={sum(vals) / len(vals)}\n")
json.dump({"score": round(sum(vals) / 1000, 4)}, open(metrics, "w"), sort_keys=True)
"#;

/// A repository whose input data is untracked (gitignored): only the store can give it back.
fn project() -> Env {
    let env = Env::git();
    env.write(
        ".gitignore",
        "/.mlrun/\n/data/\n/prepared/\n/model.txt\n/metrics.json\n",
    );
    env.write("pipeline.toml", PIPELINE);
    env.write("src/prepare.py", PREPARE);
    env.write("src/train.py", TRAIN);
    env.write("data/raw.csv", "1 2 3 4 5\n");
    env.commit("pipeline");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    env
}

/// Every file of the working tree (including .git's index and refs) with its hash, except the store.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if rel == ".mlrun" || rel.starts_with(".git/objects") || rel == ".git/logs" {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn a_clean_run_replays_bit_for_bit_and_touches_nothing_of_the_user() {
    let env = project();
    let original: String = one(&env.db(), "SELECT id FROM runs");
    let before = snapshot(&env.root);
    let counts = |db: &rusqlite::Connection| -> (i64, String, i64) {
        (
            one(db, "SELECT count(*) FROM runs"),
            one(
                db,
                "SELECT coalesce(group_concat(dir || ':' || hex(entries), ' '), '') FROM (SELECT * FROM stat_cache ORDER BY dir)",
            ),
            one(db, "SELECT count(*) FROM blobs WHERE stored = 1"),
        )
    };
    let (runs0, cache0, stored0) = counts(&env.db());
    let objects0 = std::fs::read_dir(env.path(".mlrun/objects/sha256"))
        .unwrap()
        .count();

    let out = env.mlrun(&["replay", &original[..12]]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("replaying run {}", &original[..8])),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("✓ prepare  identical  prepared/ (2 files)"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("✓ train    identical  model.txt, metrics.json"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("all 2 steps reproduced bit for bit"),
        "{out:?}"
    );

    assert_eq!(
        snapshot(&env.root),
        before,
        "the user's tree, index and refs are unchanged"
    );
    let db = env.db();
    let (runs1, cache1, stored1) = counts(&db);
    assert_eq!(
        (runs1, cache1, stored1),
        (runs0 + 1, cache0, stored0),
        "only the replay run was added"
    );
    assert_eq!(
        std::fs::read_dir(env.path(".mlrun/objects/sha256"))
            .unwrap()
            .count(),
        objects0
    );
    assert_eq!(
        rows(
            &db,
            "SELECT replay_of, replay_verdict FROM runs WHERE replay_of IS NOT NULL"
        ),
        [[original.as_str(), "identical"]]
    );
    // the replay really ran the steps
    assert_eq!(
        rows(
            &db,
            "SELECT s.status FROM step_execs s JOIN runs r ON r.id = s.run_id WHERE r.replay_of IS NOT NULL"
        ),
        [["succeeded"], ["succeeded"]]
    );
    assert!(env.mlrun(&["runs"]).stdout.contains("(replay: identical)"));
    // the replay is recorded under the project's own root, not the scratch directory
    assert_eq!(rows(&db, "SELECT DISTINCT root FROM runs").len(), 1);
    // `latest` is the workspace's run; the replay has its own name
    assert!(!env.mlrun(&["show"]).stdout.contains("replay    of run"));
    assert!(
        env.mlrun(&["show", "latest-replay"])
            .stdout
            .contains("replay    of run")
    );
}

#[test]
fn a_dirty_tree_replays_from_the_recorded_diff_after_the_tree_moved_on() {
    let env = project();
    // run from a dirty tree: an uncommitted change to the code
    env.write(
        "src/train.py",
        &TRAIN.replace("round(sum(vals) / 1000, 4)", "round(sum(vals) / 100, 4)"),
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    let dirty_run: String = one(
        &env.db(),
        "SELECT id FROM runs ORDER BY started_at DESC LIMIT 1",
    );
    let model = std::fs::read(env.path("metrics.json")).unwrap();
    // the working tree moves on by several commits and the input data is overwritten
    env.git_cmd(&["checkout", "--", "src/train.py"]);
    for i in 0..3 {
        env.write("src/prepare.py", &format!("{PREPARE}# revision {i}\n"));
        env.commit(&format!("move on {i}"));
    }
    env.write("data/raw.csv", "9 9 9\n");
    let out = env.mlrun(&["replay", &dirty_run, "--into", "reproduced"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("+ uncommitted diff"), "{out:?}");
    assert!(
        out.stdout.contains("all 2 steps reproduced bit for bit"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read(env.path("reproduced/metrics.json")).unwrap(),
        model
    );
    assert_eq!(
        std::fs::read_to_string(env.path("data/raw.csv")).unwrap(),
        "9 9 9\n",
        "user's data untouched"
    );
}

#[test]
fn replaying_an_artifact_finds_the_run_that_produced_it() {
    let env = project();
    let out = env.mlrun(&["replay", "model.txt", "--step", "prepare"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("1 step)"),
        "only prepare and what it needs: {out:?}"
    );
    assert!(out.stdout.contains("✓ prepare"), "{out:?}");
}

#[test]
fn a_step_writing_the_time_replays_as_differs_naming_the_output_and_metric() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.stamp]\ncmd = \"date +%s%N > stamp.txt; echo '{\\\"t\\\":' $(date +%N | sed 's/^0*//;s/^$/1/') '}' > m.json\"\noutputs = [\"stamp.txt\", \"m.json\"]\nmetrics = [\"m.json\"]\n[steps.fixed]\ncmd = \"echo same > fixed.txt\"\noutputs = [\"fixed.txt\"]\n",
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    let out = env.mlrun(&["replay"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("✗ stamp  differs"), "{out:?}");
    assert!(out.stdout.contains("stamp.txt"), "{out:?}");
    assert!(
        out.stdout.contains("m.json (t "),
        "the metric that changed is named: {out:?}"
    );
    assert!(out.stdout.contains("✓ fixed  identical"), "{out:?}");
    assert!(
        out.stdout
            .contains("1 of 2 steps reproduced bit for bit; 1 differs; 2 outputs differ: stamp.txt, m.json (see `mlrun diff"),
        "{out:?}"
    );
    assert_eq!(
        one::<String>(
            &env.db(),
            "SELECT replay_verdict FROM runs WHERE replay_of IS NOT NULL"
        ),
        "differs"
    );
    let json = env.mlrun(&["replay", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["verdict"], "differs");
    assert_eq!(v["steps"][0]["outputs"][0]["identical"], false);
}

#[test]
fn a_missing_object_stops_the_replay_before_anything_runs() {
    let env = project();
    let original: String = one(&env.db(), "SELECT id FROM runs");
    let raw_hash = env.sha256sum("data/raw.csv");
    std::fs::remove_file(env.path(&format!(
        ".mlrun/objects/sha256/{}/{}",
        &raw_hash[..2],
        &raw_hash[2..]
    )))
    .unwrap();
    let runs_before: i64 = one(&env.db(), "SELECT count(*) FROM runs");
    let out = env.mlrun(&["replay", &original]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("1 input version cannot be restored; nothing was run"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains(&format!("data/raw.csv {}", &raw_hash[..12])),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains(&format!("recorded by run {}", &original[..8])),
        "{out:?}"
    );
    assert_eq!(
        one::<i64>(&env.db(), "SELECT count(*) FROM runs"),
        runs_before,
        "no run was recorded"
    );
}

#[test]
fn a_commit_missing_from_the_repository_says_what_to_fetch() {
    let env = project();
    let original: String = one(&env.db(), "SELECT id FROM runs");
    // rewrite history so the recorded commit is gone
    env.git_cmd(&["checkout", "-q", "--orphan", "fresh"]);
    env.commit("rewritten");
    env.git_cmd(&["branch", "-D", "main"]);
    env.git_cmd(&["reflog", "expire", "--expire=now", "--all"]);
    env.git_cmd(&["gc", "-q", "--prune=now"]);
    let out = env.mlrun(&["replay", &original]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is not in this repository"), "{out:?}");
    assert!(out.stderr.contains("git fetch"), "{out:?}");
}

/// The plan JSON in `runs.plan` is what `show --json` reads, not what a replay runs: the
/// replay checks the recorded pipeline text and params again. An edited plan (here a step's
/// command) changes nothing, and the replay comes out identical.
#[test]
fn a_replay_runs_the_recorded_pipeline_not_an_edited_plan_json() {
    let env = project();
    let run: String = one(&env.db(), "SELECT id FROM runs");
    let plan: String = one(&env.db(), "SELECT plan FROM runs");
    let mut v: serde_json::Value = serde_json::from_str(&plan).unwrap();
    for s in v["steps"].as_array_mut().unwrap() {
        s["cmd"] = serde_json::json!({"shell": "touch edited-plan-ran"});
    }
    env.db()
        .execute(
            "UPDATE runs SET plan = ?1 WHERE id = ?2",
            rusqlite::params![v.to_string(), run],
        )
        .unwrap();
    let out = env.mlrun(&["replay", "--keep", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let verdict: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(verdict["verdict"], "identical", "{out:?}");
    assert!(!out.all().contains("edited-plan-ran"), "{out:?}");
    let kept = verdict["scratch"].as_str().map(std::path::PathBuf::from);
    if let Some(dir) = kept {
        let found = walkdir_has(&dir, "edited-plan-ran");
        assert!(!found, "the edited command ran in {}", dir.display());
    }
}

/// A recorded pipeline text that no longer checks (the store edited so a step depends on
/// itself) is refused before anything runs, naming the run and the problem.
#[test]
fn a_replay_of_a_recorded_pipeline_that_does_not_check_runs_nothing() {
    let env = project();
    let db = env.db();
    let hash: String = one(&db, "SELECT spec_hash FROM runs");
    db.execute(
        "UPDATE contents SET data = CAST(?1 AS BLOB) WHERE hash = ?2",
        rusqlite::params![
            PIPELINE.replace("[steps.train]", "[steps.train]\nafter = [\"train\"]"),
            hash
        ],
    )
    .unwrap();
    drop(db);
    let out = env.mlrun(&["replay"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("was recorded in a form this mlrun cannot replay"),
        "{out:?}"
    );
    assert!(out.stderr.contains("cannot run after itself"), "{out:?}");
    let replays: i64 = one(
        &env.db(),
        "SELECT COUNT(*) FROM runs WHERE replay_of IS NOT NULL",
    );
    assert_eq!(replays, 0);
}

fn walkdir_has(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let p = e.path();
            p.file_name().is_some_and(|n| n == name) || (p.is_dir() && walkdir_has(&p, name))
        })
}

//! The read side on a small fixed history: two pipelines in one repository and one store.
//!
//! `prep` cleans `raw/input.csv` (git-ignored and produced by nothing: a lineage gap) with a
//! tracked script into `data/clean.csv`. `train` (a different pipeline) reads `data/clean.csv`,
//! so lineage crosses runs and pipelines: it fits `model/` and evaluates it into `eval.json`.
//! Runs: prep; train lr=0.1; train lr=0.2; then `fit.sh` changes (committed) and `evaluate.sh`
//! gets an uncommitted edit, and train lr=0.2 runs again (same model content as before).

use serde_json::Value;

use crate::common::{Env, json, one};

pub struct History {
    pub env: Env,
    /// run ids, oldest first: prep, train 0.1, train 0.2, train 0.2 after the code change
    pub runs: Vec<String>,
}

const PREP: &str = r#"[pipeline]
name = "prep"

[steps.clean]
cmd = "sh tools/clean.sh raw/input.csv data/clean.csv"
inputs = ["raw/input.csv", "tools/clean.sh"]
outputs = ["data/clean.csv"]
"#;

const TRAIN: &str = r#"[pipeline]
name = "train"

[params]
lr = 0.1
epochs = 3

[steps.fit]
cmd = "sh fit.sh {params.lr} {params.epochs}"
inputs = ["data/clean.csv", "fit.sh"]
outputs = ["model/"]
params = ["lr", "epochs"]

[steps.evaluate]
cmd = "sh evaluate.sh"
inputs = ["model/", "data/clean.csv", "evaluate.sh"]
outputs = ["eval.json"]
metrics = ["eval.json"]
"#;

const FIT: &str = r#"mkdir -p model
echo "lr=$1 epochs=$2" > model/weights.txt
wc -l < data/clean.csv | tr -d ' ' > model/rows.txt
case $1 in 0.1) l=0.4;; 0.2) l=0.3;; *) l=1;; esac
echo "loss=$l" >> "$MLRUN_METRICS"
"#;

const EVALUATE: &str = r#"lr=$(sed 's/lr=\([^ ]*\).*/\1/' model/weights.txt)
case $lr in 0.1) a=0.8;; 0.2) a=0.85;; *) a=0.5;; esac
printf '{"accuracy": %s, "n": 3}\n' "$a" > eval.json
"#;

pub fn history() -> History {
    let env = Env::fixed();
    env.write(
        ".gitignore",
        "/.mlrun/\n/raw/\n/data/\n/model/\n/eval.json\n",
    );
    env.write("prep.toml", PREP);
    env.write("train.toml", TRAIN);
    env.write(
        "tools/clean.sh",
        "mkdir -p \"$(dirname \"$2\")\"\ntr a-z A-Z < \"$1\" > \"$2\"\n",
    );
    env.write("fit.sh", FIT);
    env.write("evaluate.sh", EVALUATE);
    env.commit("pipelines");
    env.write("raw/input.csv", "id,text\n1,hello\n2,world\n");
    let mut runs = Vec::new();
    let mut run = |args: &[&str]| {
        let out = env.mlrun(args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        let id: String = one(
            &env.db(),
            "SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT 1",
        );
        runs.push(id);
    };
    run(&["prep.toml"]);
    run(&["train.toml"]);
    run(&["train.toml", "-p", "lr=0.2"]);
    env.write("fit.sh", &format!("# tuned\n{FIT}"));
    env.commit("tune fit");
    env.write("evaluate.sh", &format!("{EVALUATE}# local edit\n"));
    run(&["train.toml", "-p", "lr=0.2"]);
    History { env, runs }
}

fn short(id: &str) -> &str {
    &id[..12]
}

#[test]
fn lineage_crosses_runs_and_pipelines_and_marks_the_gap() {
    let h = history();
    let out = h.env.mlrun(&["lineage", "eval.json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let t = &out.stdout;
    // the train run's evaluate, its fit, and the prep run's clean: one connected history
    for want in [
        "evaluate",
        "fit",
        "clean",
        "data/clean.csv",
        "tools/clean.sh",
        "tracked in git",
    ] {
        assert!(t.contains(want), "{want} in:\n{t}");
    }
    assert!(
        t.contains("raw/input.csv")
            && t.contains("⚠ produced outside mlrun; not in git; copy stored (sha256 "),
        "the gap is visible, with what mlrun kept of it:\n{t}"
    );
    assert!(
        !t.contains("data version unknown"),
        "its version is known:\n{t}"
    );
    assert!(t.contains("1 lineage gap"), "{t}");
    crate::assert_fixed_snapshot!(&h.env, "lineage_tree_upstream", t);

    // JSON: the documented shape, every edge between declared nodes
    let v = json(&h.env.mlrun(&["lineage", "eval.json", "--format", "json"]));
    assert_eq!(v["direction"], "upstream");
    let nodes = v["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&v["root"].as_str().unwrap()));
    for e in v["edges"].as_array().unwrap() {
        for end in ["from", "to"] {
            assert!(
                ids.contains(&e[end].as_str().unwrap()),
                "edge {e} names an undeclared node"
            );
        }
    }
    let kinds: std::collections::BTreeSet<&str> =
        nodes.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["artifact_version", "commit", "run", "step_exec"]
    );
    let pipelines: std::collections::BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n["kind"] == "run")
        .map(|n| n["pipeline"].as_str().unwrap())
        .collect();
    assert_eq!(
        pipelines.into_iter().collect::<Vec<_>>(),
        ["prep", "train"],
        "lineage crosses pipelines"
    );
    let gaps: Vec<&Value> = nodes.iter().filter(|n| n["gap"] == true).collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["path"], "raw/input.csv");
    assert_eq!(
        gaps[0]["gap_reason"],
        format!(
            "produced outside mlrun; not in git; copy stored (sha256 {}…)",
            &h.env.sha256sum("raw/input.csv")[..12]
        )
    );
    assert_eq!(gaps[0]["hash"], h.env.sha256sum("raw/input.csv"));
    // the clean step used the gap; the prep run generated data/clean.csv
    let gap_id = gaps[0]["id"].as_str().unwrap();
    let used = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == gap_id && e["kind"] == "used")
        .expect("the gap is used by a step");
    assert_eq!(used["origin"], "external");

    // dot and mermaid say it too
    for fmt in ["dot", "mermaid"] {
        let out = h.env.mlrun(&["lineage", "eval.json", "--format", fmt]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stdout
                .contains("produced outside mlrun; not in git; copy stored"),
            "{fmt}:\n{}",
            out.stdout
        );
    }
    // the drawings of a small neighbourhood, as people will paste them
    for fmt in ["dot", "mermaid"] {
        let out = h
            .env
            .mlrun(&["lineage", "model/", "--depth", "1", "--format", fmt]);
        assert_eq!(out.code, 0, "{out:?}");
        crate::assert_fixed_snapshot!(&h.env, &format!("lineage_{fmt}"), &out.stdout);
    }
    let dot = h
        .env
        .mlrun(&["lineage", "eval.json", "--format", "dot"])
        .stdout;
    assert!(dot.starts_with("digraph lineage {") && dot.trim_end().ends_with('}'));
    assert!(dot.contains("color=red"), "{dot}");
    let mermaid = h
        .env
        .mlrun(&["lineage", "eval.json", "--format", "mermaid"])
        .stdout;
    assert!(mermaid.starts_with("flowchart LR"));
    assert!(
        mermaid.contains("class ") && mermaid.contains(" gap;"),
        "{mermaid}"
    );
}

#[test]
fn lineage_down_depth_and_other_targets() {
    let h = history();
    // everything made from the prep output: both fits, the evaluations, their outputs
    let v = json(
        &h.env
            .mlrun(&["lineage", "data/clean.csv", "--down", "--json"]),
    );
    assert_eq!(v["direction"], "downstream");
    let execs: Vec<&Value> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "step_exec")
        .collect();
    let fits = execs.iter().filter(|e| e["step"] == "fit").count();
    let evals = execs.iter().filter(|e| e["step"] == "evaluate").count();
    assert_eq!((fits, evals), (3, 3), "{execs:?}");
    let down = h.env.mlrun(&["lineage", "data/clean.csv", "--down"]);
    crate::assert_fixed_snapshot!(&h.env, "lineage_tree_downstream", &down.stdout);

    // --depth 1: the producer and its inputs, not what made them
    let out = h.env.mlrun(&["lineage", "eval.json", "--depth", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("evaluate") && out.stdout.contains("model/"));
    assert!(!out.stdout.contains("clean.sh"), "{}", out.stdout);
    assert!(out.stdout.contains("beyond --depth 1"), "{}", out.stdout);

    // a step execution, a run, a version a run saw, a hash prefix
    let run2 = short(&h.runs[1]);
    let out = h.env.mlrun(&["lineage", &format!("{run2}:fit"), "--json"]);
    let v = json(&out);
    assert!(v["root"].as_str().unwrap().starts_with("exec:"));
    let out = h.env.mlrun(&["lineage", run2]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("run "), "{}", out.stdout);
    let at = h
        .env
        .mlrun(&["lineage", &format!("model@{run2}"), "--json"]);
    let v = json(&at);
    let root = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == v["root"])
        .unwrap()
        .clone();
    assert_eq!(root["path"], "model");
    let hash = root["hash"].as_str().unwrap();
    let by_hash = json(&h.env.mlrun(&["lineage", &hash[..12], "--json"]));
    assert_eq!(by_hash["root"], v["root"]);
    // a tracked file read with uncommitted edits is no gap: the run recorded its diff
    let run4 = short(&h.runs[3]);
    let out = h.env.mlrun(&["lineage", &format!("{run4}:evaluate")]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("evaluate.sh"))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.contains("uncommitted edits"), "{line}");
    assert!(!line.contains("⚠"), "{line}");
    let v = json(
        &h.env
            .mlrun(&["lineage", &format!("{run4}:evaluate"), "--json"]),
    );
    let node = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["path"] == "evaluate.sh")
        .unwrap()
        .clone();
    assert_eq!(
        (node["uncommitted"].clone(), node["gap"].clone()),
        (true.into(), false.into())
    );
    // a file inside a recorded directory is named on its own, then its directory's lineage
    let out = h.env.mlrun(&["lineage", "model/weights.txt"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("model/weights.txt  ") && out.stdout.contains("a file of model/ "),
        "{out:?}"
    );
}

#[test]
fn lineage_of_changed_or_unknown_paths() {
    let h = history();
    // current content never recorded: say so, fall back to the latest recorded version
    h.env.write("eval.json", "{\"accuracy\": 1}\n");
    let out = h.env.mlrun(&["lineage", "eval.json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("was never recorded by mlrun")
            && out.stderr.contains("latest recorded version"),
        "{out:?}"
    );
    // never recorded at all
    h.env.write("notes.txt", "x\n");
    for target in ["notes.txt", "nothing/here.csv"] {
        let out = h.env.mlrun(&["lineage", target]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr
                .contains(&format!("`{target}` was never recorded by mlrun"))
                && out.stderr.contains("mlrun runs"),
            "{out:?}"
        );
    }
    // a step that does not exist, and a path the run did not touch
    let run = short(&h.runs[1]);
    let out = h.env.mlrun(&["lineage", &format!("{run}:fitt")]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("did you mean"), "{out:?}");
    let out = h.env.mlrun(&["lineage", &format!("raw/input.csv@{run}")]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("did not read or write `raw/input.csv`")
            && out.stderr.contains("`model`"),
        "{out:?}"
    );
    // from a subdirectory, paths are relative to where you are
    std::fs::create_dir_all(h.env.path("model")).unwrap();
    let out = h
        .env
        .mlrun_in(&h.env.path("model"), &["lineage", "weights.txt"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("fit"), "{out:?}");
}

#[test]
fn show_artifact_is_a_model_card() {
    let h = history();
    let out = h.env.mlrun(&["show", "model/"]);
    assert_eq!(out.code, 0, "{out:?}");
    let t = &out.stdout;
    assert!(t.starts_with("artifact model/"), "{t}");
    // made by run 3 (the first real producer of this content); run 4 made the same content
    assert!(
        t.contains(&format!("step `fit` of run {}", &h.runs[2][..10])),
        "{t}"
    );
    assert!(t.contains("params    epochs=3 lr=0.2"), "{t}");
    assert!(t.contains("metrics   loss=0.3"), "{t}");
    assert!(t.contains("same content also made by"), "{t}");
    assert!(t.contains("accuracy=0.85"), "evaluations are shown: {t}");
    assert!(t.contains("versions of model/ (2)"), "{t}");
    crate::assert_fixed_snapshot!(&h.env, "show_model_card", t);

    let v = json(&h.env.mlrun(&["show", "model/", "--json"]));
    assert_eq!(v["version"]["path"], "model");
    assert_eq!(v["version"]["type"], "dir");
    assert_eq!(v["produced_by"]["step"], "fit");
    assert_eq!(v["run"]["id"], h.runs[2].as_str());
    assert_eq!(v["run"]["pipeline"], "train");
    assert_eq!(v["gap"], false);
    assert_eq!(
        v["git"]["commit"],
        h.env.git_cmd(&["rev-parse", "HEAD~1"]).as_str()
    );
    let inputs = v["inputs"].as_array().unwrap();
    let data = inputs
        .iter()
        .find(|i| i["path"] == "data/clean.csv")
        .unwrap();
    assert_eq!(data["produced_by"]["step"], "clean");
    assert_eq!(data["produced_by"]["run_id"], h.runs[0].as_str());
    assert_eq!(data["origin"], "external", "not made by the train pipeline");
    assert_eq!(data["hash"], h.env.sha256sum("data/clean.csv"));
    let fit = inputs.iter().find(|i| i["path"] == "fit.sh").unwrap();
    assert_eq!(fit["origin"], "git");
    assert_eq!(v["also_produced_by"][0]["run_id"], h.runs[3].as_str());
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);

    // the gap's own card says so
    let out = h.env.mlrun(&["show", "raw/input.csv"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("made by   ⚠ produced outside mlrun; not in git; copy stored (sha256 "),
        "{out:?}"
    );
    // PATH@RUN names the older version
    let out = h
        .env
        .mlrun(&["show", &format!("model@{}", short(&h.runs[1]))]);
    assert!(out.stdout.contains("params    epochs=3 lr=0.1"), "{out:?}");
    // runs still show as runs
    let out = h.env.mlrun(&["show", short(&h.runs[0])]);
    assert!(out.stdout.starts_with("run "), "{out:?}");
}

#[test]
fn diff_two_runs_section_by_section() {
    let h = history();
    let (a, b) = (short(&h.runs[1]), short(&h.runs[2]));
    let out = h.env.mlrun(&["diff", a, b]);
    assert_eq!(out.code, 0, "{out:?}");
    let t = &out.stdout;
    assert!(t.contains("lr  0.1 → 0.2"), "{t}");
    assert!(t.contains("code         unchanged"), "{t}");
    // the param is a param difference; the variable mlrun sets for it is not the environment
    assert!(
        t.contains("environment  unchanged") && !t.contains("MLRUN_PARAM_LR"),
        "{t}"
    );
    // the command embeds the param, so it differs too
    assert!(
        t.contains("- sh fit.sh 0.1 3") && t.contains("+ sh fit.sh 0.2 3"),
        "{t}"
    );
    crate::assert_fixed_snapshot!(&h.env, "diff_params_and_metrics", t);

    let v = json(&h.env.mlrun(&["diff", a, b, "--json"]));
    assert_eq!(v["same_pipeline"], true);
    assert_eq!(v["params"]["changed"][0]["key"], "lr");
    assert_eq!(v["params"]["changed"][0]["a"], 0.1);
    assert_eq!(v["params"]["changed"][0]["b"], 0.2);
    let metrics = v["metrics"]["changed"].as_array().unwrap();
    let acc = metrics.iter().find(|m| m["key"] == "accuracy").unwrap();
    assert_eq!(
        (acc["a"].as_f64(), acc["b"].as_f64()),
        (Some(0.8), Some(0.85))
    );
    assert!((acc["delta"].as_f64().unwrap() - 0.05).abs() < 1e-9);
    assert!((acc["pct"].as_f64().unwrap() - 6.25).abs() < 1e-9);
    let model = v["data"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "model")
        .unwrap()
        .clone();
    assert_eq!(model["role"], "output");
    assert_eq!(
        model["files"]["changed"],
        serde_json::json!(["weights.txt"])
    );
    assert_eq!(v["code"]["same_commit"], true);

    // code changed (committed) and an uncommitted edit, same params
    let (b2, c) = (short(&h.runs[2]), short(&h.runs[3]));
    let out = h.env.mlrun(&["diff", b2, c]);
    let t = &out.stdout;
    assert!(t.contains("params       unchanged (2 params)"), "{t}");
    assert!(t.contains("(1 commit), 1 file changed"), "{t}");
    assert!(t.contains("~ fit.sh  modified"), "{t}");
    assert!(t.contains("uncommitted in B: evaluate.sh"), "{t}");
    assert!(t.contains("~ fit.sh  input"), "{t}");
    crate::assert_fixed_snapshot!(&h.env, "diff_code", t);
    let out = h.env.mlrun(&["diff", b2, c, "--patch"]);
    assert!(out.stdout.contains("+# tuned"), "{out:?}");
    assert!(out.stdout.contains("+# local edit"), "{out:?}");

    // two artifact versions resolve to their producing runs; pipelines differ: said so
    let v = json(
        &h.env
            .mlrun(&["diff", "data/clean.csv", &format!("model@{a}"), "--json"]),
    );
    assert_eq!(v["a"]["id"], h.runs[0].as_str());
    assert_eq!(v["b"]["id"], h.runs[1].as_str());
    assert_eq!(v["same_pipeline"], false);
    let out = h
        .env
        .mlrun(&["diff", "data/clean.csv", &format!("model@{a}")]);
    assert!(out.stdout.contains("different pipelines"), "{out:?}");
    // a gap has no producing run to diff
    let out = h.env.mlrun(&["diff", "raw/input.csv", a]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no recorded producer"), "{out:?}");
}

#[test]
fn runs_filters_and_sorting() {
    let h = history();
    let ids = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["runs", "--json"];
        a.extend_from_slice(args);
        json(&h.env.mlrun(&a))
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let r: Vec<&str> = h.runs.iter().map(String::as_str).collect();
    assert_eq!(ids(&[]), [r[3], r[2], r[1], r[0]]);
    assert_eq!(ids(&["--pipeline", "prep"]), [r[0]]);
    assert_eq!(ids(&["--param", "lr=0.2"]), [r[3], r[2]]);
    assert_eq!(ids(&["--metric", "accuracy>0.8"]), [r[3], r[2]]);
    assert_eq!(ids(&["--metric", "accuracy<=0.8"]), [r[1]]);
    assert_eq!(
        ids(&["--metric", "loss!=0.3", "--pipeline", "train"]),
        [r[1]]
    );
    assert_eq!(ids(&["--sort", "accuracy:asc", "-n", "2"]), [r[1], r[3]]);
    assert_eq!(ids(&["--sort", "loss"]), [r[1], r[3], r[2], r[0]]);
    assert_eq!(ids(&["--status", "succeeded", "--since", "1h"]).len(), 4);
    assert!(ids(&["--since", "2999-01-01"]).is_empty());
    let out = h.env.mlrun(&["runs", "--status", "failed"]);
    assert_eq!(out.stdout, "no run matches these filters\n");
    let out = h
        .env
        .mlrun(&["runs", "--pipeline", "train", "--sort", "accuracy"]);
    crate::assert_fixed_snapshot!(&h.env, "runs_filtered", &out.stdout);
    // bad syntax: exit 2 with an example
    for bad in [
        ["--metric", "accuracy>>0.9"],
        ["--metric", "accuracy"],
        ["--since", "soon"],
        ["--sort", "accuracy:up"],
        ["--status", "done"],
        ["--param", "lr"],
    ] {
        let out = h.env.mlrun(&["runs", bad[0], bad[1]]);
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
        assert!(out.stderr.contains(bad[1]), "{bad:?}: {out:?}");
    }
}

//! Reports show what is recorded: `diff` leaves out what mlrun itself sets and lists unchanged
//! data with `--all`; a file inside a recorded directory can be named on its own; `runs` never
//! drops a metric silently; an input made outside mlrun says what mlrun kept of it; a replay
//! names every differing output and calls steps that never started `not run`.

use serde_json::Value;

use crate::common::{Env, json, ok, one};

const PIPELINE: &str = r#"
[params]
n = 2
[steps.featurize]
cmd = "sh featurize.sh {params.n}"
inputs = ["data/raw.csv", "featurize.sh"]
outputs = ["data/features/"]
params = ["n"]
[steps.train]
cmd = "sh train.sh"
inputs = ["data/features/", "train.sh"]
outputs = ["model.txt", "metrics.json"]
metrics = ["metrics.json"]
"#;

const FEATURIZE: &str = "mkdir -p data/features
head -n \"$1\" data/raw.csv > data/features/train.csv
tail -n 1 data/raw.csv > data/features/test.csv
";

const TRAIN: &str = "cat data/features/train.csv > model.txt
echo '{\"acc\": 0.9, \"f1\": 0.8, \"loss\": 0.1, \"precision\": 0.7, \"recall\": 0.6}' > metrics.json
";

/// A project whose raw data is git-ignored and produced by no step.
fn project() -> Env {
    let env = Env::fixed();
    env.write(
        ".gitignore",
        "/.mlrun/\n/data/\n/model.txt\n/metrics.json\n",
    );
    env.write("pipeline.toml", PIPELINE);
    env.write("featurize.sh", FEATURIZE);
    env.write("train.sh", TRAIN);
    env.commit("pipeline");
    env.write("data/raw.csv", "a,1\nb,2\nc,3\n");
    env
}

#[test]
fn diff_leaves_out_what_mlrun_sets_and_lists_unchanged_files_with_all() {
    let env = project();
    ok(env.mlrun(&[]));
    ok(env.mlrun(&["-p", "n=3"]));
    // the param changed: it is a param difference, not an environment one
    let out = ok(env.mlrun(&["diff", "latest~1", "latest"]));
    assert!(out.stdout.contains("n  2 → 3"), "{out:?}");
    assert!(!out.stdout.contains("MLRUN_PARAM"), "{out:?}");
    assert!(out.stdout.contains("environment  unchanged"), "{out:?}");
    let v = json(&env.mlrun(&["diff", "latest~1", "latest", "--json"]));
    assert_eq!(v["environment"]["env_vars"], serde_json::json!([]), "{v}");
    assert!(
        v["data"].get("unchanged_paths").is_none(),
        "only with --all"
    );

    // a code change: the features are reused, the model is retrained
    env.write("train.sh", &format!("{TRAIN}echo retrained >> model.txt\n"));
    ok(env.mlrun(&["-p", "n=3"]));
    let out = ok(env.mlrun(&["diff", "latest~1", "latest", "--all"]));
    let t = &out.stdout;
    for (rel, line_start) in [
        ("data/raw.csv", "  = data/raw.csv  input  "),
        ("featurize.sh", "  = featurize.sh  input  "),
    ] {
        let h = env.sha256sum(rel);
        assert!(
            t.lines()
                .any(|l| l.starts_with(line_start) && l.contains(&h[..10])),
            "{rel} listed with its hash:\n{t}"
        );
    }
    assert!(t.contains("  = data/features/  output  "), "{t}");
    for f in ["train.csv", "test.csv"] {
        let h = env.sha256sum(&format!("data/features/{f}"));
        assert!(
            t.lines()
                .any(|l| l.trim_start().starts_with(f) && l.contains(&h[..10])),
            "{f} listed file by file with its hash:\n{t}"
        );
    }
    crate::assert_fixed_snapshot!(&env, "diff_all", t);
    let v = json(&env.mlrun(&["diff", "latest~1", "latest", "--all", "--json"]));
    let same = v["data"]["unchanged_paths"].as_array().unwrap();
    assert_eq!(same.len() as u64, v["data"]["unchanged"].as_u64().unwrap());
    let feats = same
        .iter()
        .find(|p| p["path"] == "data/features")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(feats["role"], "output");
    assert_eq!(feats["type"], "dir");
    let files = feats["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        let rel = format!("data/features/{}", f["path"].as_str().unwrap());
        assert_eq!(f["hash"], env.sha256sum(&rel).as_str());
    }
}

#[test]
fn a_file_inside_a_directory_output_is_named_on_its_own() {
    let env = project();
    ok(env.mlrun(&[]));
    let run: String = one(&env.db(), "SELECT id FROM runs");
    let hash = env.sha256sum("data/features/train.csv");

    let out = ok(env.mlrun(&["show", "data/features/train.csv"]));
    let t = &out.stdout;
    assert!(
        t.starts_with(&format!(
            "artifact data/features/train.csv  {}  8 B\n",
            &hash[..10]
        )),
        "the file's own hash and size:\n{t}"
    );
    assert!(t.contains(&format!("  content   {hash}\n")), "{t}");
    assert!(t.contains("  part of   data/features/  "), "{t}");
    assert!(t.contains("  made by   step `featurize` of run "), "{t}");
    assert!(
        out.stderr.is_empty(),
        "no note: this is exactly the file: {out:?}"
    );
    crate::assert_fixed_snapshot!(&env, "show_file_in_dir", t);
    let v = json(&env.mlrun(&["show", "data/features/train.csv", "--json"]));
    assert_eq!(v["file"]["path"], "data/features/train.csv");
    assert_eq!(v["file"]["hash"], hash.as_str());
    assert_eq!(v["file"]["size"], 8);
    assert_eq!(v["file"]["dir"], "data/features");
    assert_eq!(v["produced_by"]["step"], "featurize");
    assert_eq!(v["produced_by"]["run_id"], run.as_str());

    // PATH@RUN, and a file no longer on disk, name the file too
    let v = json(&env.mlrun(&[
        "show",
        &format!("data/features/train.csv@{}", &run[..16]),
        "--json",
    ]));
    assert_eq!(v["file"]["hash"], hash.as_str());

    // lineage starts at the file
    let out = ok(env.mlrun(&["lineage", "data/features/train.csv"]));
    let first = out.stdout.lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with(&format!("data/features/train.csv  {}  8 B", &hash[..10])),
        "{out:?}"
    );
    assert!(out.stdout.contains("featurize"), "{out:?}");
    let v = json(&env.mlrun(&["lineage", "data/features/train.csv", "--json"]));
    assert_eq!(v["file"]["hash"], hash.as_str());

    // --files lists a directory version file by file
    let out = ok(env.mlrun(&["show", "data/features/", "--files"]));
    assert!(
        out.stdout.contains("files of data/features/ (2)"),
        "{out:?}"
    );
    for f in ["train.csv", "test.csv"] {
        let h = env.sha256sum(&format!("data/features/{f}"));
        assert!(
            out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(f) && l.contains(&h[..10])),
            "{out:?}"
        );
    }
    let v = json(&env.mlrun(&["show", "data/features/", "--files", "--json"]));
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert!(
        files
            .iter()
            .any(|f| f["path"] == "train.csv" && f["hash"] == hash.as_str())
    );

    // replay takes it too: the run that made the directory holding it
    let out = ok(env.mlrun(&["replay", "data/features/train.csv"]));
    assert!(
        out.stdout
            .contains(&format!("replaying run {}", &run[..16])),
        "{out:?}"
    );

    std::fs::remove_file(env.path("data/features/train.csv")).unwrap();
    let out = ok(env.mlrun(&["show", "data/features/train.csv"]));
    assert!(
        out.stdout.starts_with("artifact data/features/train.csv  "),
        "{out:?}"
    );
    assert!(out.stderr.contains("is not on disk"), "{out:?}");
}

#[test]
fn runs_never_drops_a_metric_silently() {
    let env = project();
    ok(env.mlrun(&[]));
    let out = ok(env.mlrun(&["runs"]));
    assert!(out.stdout.contains("+2 more"), "{out:?}");
    assert!(
        out.stdout
            .contains("`mlrun show RUN` or `mlrun runs --json` lists them all"),
        "{out:?}"
    );
    // the sort metric comes first, the rest are counted
    let out = ok(env.mlrun(&["runs", "--sort", "recall"]));
    let row = out.stdout.lines().nth(1).unwrap_or_default().to_string();
    assert!(row.contains("recall=0.6 acc=0.9 f1=0.8 +2 more"), "{out:?}");
}

#[test]
fn an_input_made_outside_mlrun_says_what_was_kept_of_it() {
    let env = project();
    ok(env.mlrun(&[]));
    let first_raw = env.sha256sum("data/raw.csv");
    let out = ok(env.mlrun(&["lineage", "model.txt"]));
    let t = &out.stdout;
    let copy = format!(
        "⚠ produced outside mlrun; not in git; copy stored (sha256 {}…)",
        &first_raw[..12]
    );
    assert!(
        t.lines()
            .any(|l| l.contains("data/raw.csv") && l.contains(&copy)),
        "{t}"
    );
    assert!(!t.contains("data version unknown"), "{t}");
    crate::assert_fixed_snapshot!(&env, "lineage_gap_copy_stored", t);
    let v = json(&env.mlrun(&["lineage", "model.txt", "--json"]));
    let gap = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["gap"] == true)
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(gap["path"], "data/raw.csv");
    assert_eq!(gap["gap_reason"], copy.trim_start_matches("⚠ "));
    // the model card of the features says it of its input too
    let out = ok(env.mlrun(&["show", "data/features/"]));
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("data/raw.csv") && l.contains(&copy)),
        "{out:?}"
    );
    let v = json(&env.mlrun(&["show", "data/features/", "--json"]));
    assert_eq!(v["inputs"][0]["path"], "data/raw.csv");
    assert_eq!(v["inputs"][0]["gap"], true);
    assert_eq!(v["inputs"][0]["gap_reason"], copy.trim_start_matches("⚠ "));

    // new raw data, recorded without a copy
    env.write("data/raw.csv", "a,1\nb,2\nc,3\nd,4\n");
    ok(env.mlrun(&["--no-store"]));
    let out = ok(env.mlrun(&["lineage", "data/features/"]));
    assert!(
        out.stdout.lines().any(|l| l.contains("data/raw.csv")
            && l.contains(
                "⚠ produced outside mlrun; not in git; no copy stored: replay will need it"
            )),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("1 with no stored copy, which a replay will need"),
        "{out:?}"
    );

    // the first version's copy is gone from the store: its data version is unknown now
    let object = env.path(&format!(
        ".mlrun/objects/sha256/{}/{}",
        &first_raw[..2],
        &first_raw[2..]
    ));
    assert!(object.is_file(), "{}", object.display());
    std::fs::remove_file(&object).unwrap();
    let out = ok(env.mlrun(&["lineage", "data/features/@latest~1"]));
    assert!(
        out.stdout.lines().any(|l| l.contains("data/raw.csv")
            && l.contains("⚠ data version unknown: produced outside mlrun")),
        "{out:?}"
    );
}

const REPLAY_PIPELINE: &str = r#"
[steps.prepare]
cmd = "sh prepare.sh"
inputs = ["prepare.sh"]
outputs = ["prepared.txt"]
[steps.stamp]
cmd = "sh stamp.sh"
inputs = ["prepared.txt", "stamp.sh"]
outputs = ["o01.txt", "o02.txt", "o03.txt", "o04.txt", "o05.txt", "o06.txt", "o07.txt", "o08.txt", "o09.txt", "o10.txt", "o11.txt", "o12.txt"]
[steps.report]
cmd = "cat o01.txt > report.txt"
inputs = ["o01.txt"]
outputs = ["report.txt"]
"#;

/// A pipeline whose first step needs an undeclared, untracked file (absent from a replay's
/// scratch tree) when `strict.mode` is committed, and whose second step writes 12 outputs that
/// differ every time (and so does the third, from one of them).
fn replay_project() -> Env {
    let env = Env::fixed();
    env.write(".gitignore", "/.mlrun/\n*.txt\n/flag\n");
    env.write("pipeline.toml", REPLAY_PIPELINE);
    env.write(
        "prepare.sh",
        "if [ -f strict.mode ]; then test -f flag || exit 3; fi\necho ok > prepared.txt\n",
    );
    env.write(
        "stamp.sh",
        "for i in 01 02 03 04 05 06 07 08 09 10 11 12; do echo \"$$ $i $(date +%s%N)\" > o$i.txt; done\n",
    );
    env.commit("pipeline");
    env
}

#[test]
fn a_replay_names_every_differing_output() {
    let env = replay_project();
    ok(env.mlrun(&[]));
    let out = env.mlrun(&["replay"]);
    assert_eq!(out.code, 1, "{out:?}");
    let last = out.stdout.lines().last().unwrap_or_default().to_string();
    assert!(
        last.contains(
            "13 outputs differ: o01.txt, o02.txt, o03.txt, o04.txt, o05.txt, o06.txt, o07.txt, o08.txt, o09.txt, o10.txt and 3 more (`mlrun replay --json` lists them all)"
        ),
        "{out:?}"
    );
    // every one of them is on the step's line and in the JSON
    let stamp = out
        .stdout
        .lines()
        .find(|l| l.starts_with("✗ stamp"))
        .unwrap_or_default();
    for i in 1..=12 {
        assert!(stamp.contains(&format!("o{i:02}.txt")), "{stamp}");
    }
    let out = env.mlrun(&["replay", "latest", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let differing: usize = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["outputs"].as_array().unwrap())
        .filter(|o| o["identical"] == false)
        .count();
    assert_eq!(differing, 13, "{v}");
}

#[test]
fn steps_a_replay_never_started_are_not_run() {
    let env = replay_project();
    // the recorded run had `flag`; the replay's scratch tree does not
    env.write("strict.mode", "");
    env.commit("strict");
    env.write("flag", "");
    ok(env.mlrun(&[]));
    let out = env.mlrun(&["replay"]);
    assert_eq!(out.code, 3, "{out:?}");
    // the verdicts: the three lines before the last
    let lines: Vec<&str> = out.stdout.lines().collect();
    let verdicts = &lines[lines.len().saturating_sub(4)..lines.len().saturating_sub(1)];
    assert_eq!(
        verdicts,
        [
            "✗ prepare  failed",
            "- stamp    not run",
            "- report   not run"
        ],
        "{out:?}"
    );
    let last = out.stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("a step failed (exit code 3), 2 steps after it not run"),
        "{out:?}"
    );
    // the verdict part (the run's own lines above hold durations of varying width)
    crate::assert_fixed_snapshot!(&env, "replay_not_run", &lines[lines.len() - 4..].join("\n"));
    let out = env.mlrun(&["replay", "--json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let got: Vec<(&str, &str)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("prepare", "failed"),
            ("stamp", "not_run"),
            ("report", "not_run")
        ]
    );
}

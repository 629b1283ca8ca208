//! Model names: `model register`, a step's `model` key, aliases and their log, NAME@vN and
//! NAME@ALIAS as targets, `model list/show --json`, `model export-tags` (GTO's tag format), and
//! every bad input. Real pipelines in temporary git repositories.

use serde_json::Value;

use crate::common::{Env, Out, json, ok, one};

/// `train` writes `model/weights.txt` from the param `k` (so the same `k` gives the same
/// content) and a log nobody registers.
fn project(model_key: &str) -> Env {
    let env = Env::fixed();
    env.write(".gitignore", "/.mlrun/\n/model/\n/train.log\n");
    env.write(
        "pipeline.toml",
        &format!(
            r#"[params]
k = 1

[steps.train]
cmd = "mkdir -p model && echo weights-{{params.k}} > model/weights.txt"
outputs = ["model/"]
params = ["k"]
{model_key}
"#
        ),
    );
    env.commit("pipeline");
    env
}

fn run(env: &Env, args: &[&str]) -> Out {
    ok(env.mlrun(args))
}

fn run_ids(env: &Env) -> Vec<String> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT id FROM runs WHERE replay_of IS NULL ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_step_model_key_registers_each_new_version_once() {
    let env = project(r#"model = "churn""#);
    let first = run(&env, &["run"]);
    assert!(
        first.stdout.contains("model churn@v1 registered (model/)"),
        "{first:?}"
    );
    // same inputs: cached, nothing new
    let again = run(&env, &["run"]);
    assert!(again.stdout.contains("cached"), "{again:?}");
    assert!(!again.stdout.contains("registered"), "{again:?}");
    // new content: v2
    let second = run(&env, &["run", "-p", "k=2"]);
    assert!(
        second.stdout.contains("model churn@v2 registered"),
        "{second:?}"
    );
    // runs again but makes the same bytes: already v2, nothing new
    let forced = run(&env, &["run", "-p", "k=2", "--force"]);
    assert!(forced.stdout.contains("✓ train"), "{forced:?}");
    assert!(!forced.stdout.contains("registered"), "{forced:?}");
    // back to k=1: restored or cached, and that content is v1 already
    let back = run(&env, &["run"]);
    assert!(!back.stdout.contains("registered"), "{back:?}");
    // a failed run registers nothing
    env.write(
        "pipeline.toml",
        &std::fs::read_to_string(env.path("pipeline.toml"))
            .unwrap()
            .replace("> model/weights.txt\"", "> model/weights.txt && false\""),
    );
    let failed = env.mlrun(&["run", "-p", "k=3"]);
    assert_ne!(failed.code, 0, "{failed:?}");
    assert!(!failed.stdout.contains("registered"), "{failed:?}");

    let runs = run_ids(&env);
    let show = json(&env.mlrun(&["model", "show", "churn", "--json"]));
    let versions = show["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{show:#}");
    // newest first
    assert_eq!(versions[0]["version"], "v2");
    assert_eq!(versions[1]["version"], "v1");
    assert_eq!(versions[1]["run_id"], runs[0].as_str());
    assert_eq!(versions[0]["run_id"], runs[2].as_str());
    assert_eq!(versions[0]["step"], "train");
    assert_eq!(versions[0]["auto"], true);
    assert_eq!(versions[0]["registered_by"], "tester");
    assert_eq!(versions[0]["path"], "model");
    assert_eq!(versions[0]["type"], "dir");
    assert_eq!(versions[0]["semver"], "2.0.0");
    let n: i64 = one(&env.db(), "SELECT count(*) FROM model_versions");
    assert_eq!(n, 2);
}

#[test]
fn replays_register_nothing() {
    let env = project(r#"model = "churn""#);
    run(&env, &["run"]);
    let replay = run(&env, &["replay", "churn@v1"]);
    assert!(replay.stdout.contains("identical"), "{replay:?}");
    let n: i64 = one(&env.db(), "SELECT count(*) FROM model_versions");
    assert_eq!(n, 1);
    let replayed: String = one(
        &env.db(),
        "SELECT replay_of FROM runs WHERE replay_of IS NOT NULL",
    );
    assert_eq!(replayed, run_ids(&env)[0]);
}

#[test]
fn register_names_recorded_versions_and_is_idempotent() {
    let env = project("");
    run(&env, &["run"]);
    run(&env, &["run", "-p", "k=2"]);
    let runs = run_ids(&env);

    // the current content of model/ (k=2)
    let r = run(
        &env,
        &["model", "register", "churn", "model/", "-m", "first cut"],
    );
    assert!(
        r.stdout.starts_with("registered churn@v1: `model/` "),
        "{r:?}"
    );
    assert!(
        r.stdout.contains(&format!("in run {}", &runs[1][..16])),
        "{r:?}"
    );
    // again: the same version, nothing written
    let again = run(&env, &["model", "register", "churn", "model/"]);
    assert!(again.stdout.contains("already registered"), "{again:?}");
    assert!(again.stdout.contains("is churn@v1"), "{again:?}");
    // an older run's version, with a semantic version of its own
    let older = json(&env.mlrun(&[
        "model",
        "register",
        "churn",
        &format!("model/@{}", &runs[0][..16]),
        "--version",
        "1.2.0",
        "--json",
    ]));
    assert_eq!(older["new"], true);
    assert_eq!(older["version"]["version"], "v1.2.0");
    assert_eq!(older["version"]["run_id"], runs[0].as_str());
    assert_eq!(older["version"]["auto"], false);
    // the next number continues after the highest major: 1.2.0 → v2
    env.write("x/data.txt", "hello\n");
    run(&env, &["run", "-p", "k=3"]);
    let next = json(&env.mlrun(&["model", "register", "churn", "model/@latest", "--json"]));
    assert_eq!(next["version"]["version"], "v2");
    let again = json(&env.mlrun(&["model", "register", "churn", "model/@latest", "--json"]));
    assert_eq!(again["new"], false);
    assert_eq!(again["version"]["version"], "v2");

    let show = json(&env.mlrun(&["model", "show", "churn", "--json"]));
    let labels: Vec<&str> = show["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["v2", "v1.2.0", "v1"]);
    assert_eq!(show["versions"][2]["message"], "first cut");
}

#[test]
fn aliases_move_and_every_move_is_logged() {
    let env = project(r#"model = "churn""#);
    run(&env, &["run"]);
    run(&env, &["run", "-p", "k=2"]);

    let set = run(
        &env,
        &[
            "model",
            "alias",
            "churn",
            "production",
            "v1",
            "-m",
            "first release",
        ],
    );
    assert_eq!(set.stdout, "churn@production → v1 (new alias)\n");
    let moved = json(&env.mlrun(&["model", "alias", "churn", "production", "v2", "--json"]));
    assert_eq!(moved["from"], "v1");
    assert_eq!(moved["to"], "v2");
    assert_eq!(moved["by"], "tester");
    // to where it already points: nothing is logged
    let same = run(&env, &["model", "alias", "churn", "production", "2"]);
    assert!(same.stdout.contains("already points at v2"), "{same:?}");
    // another alias names the version it points at
    let promoted =
        json(&env.mlrun(&["model", "alias", "churn", "staging", "production", "--json"]));
    assert_eq!(promoted["to"], "v2");
    let removed = run(
        &env,
        &[
            "model", "alias", "churn", "staging", "--remove", "-m", "retired",
        ],
    );
    assert_eq!(removed.stdout, "churn@staging removed (it was v2)\n");

    let show = json(&env.mlrun(&["model", "show", "churn", "--json"]));
    assert_eq!(show["aliases"], serde_json::json!({"production": "v2"}));
    assert_eq!(
        show["versions"][0]["aliases"],
        serde_json::json!(["production"])
    );
    let history: Vec<(String, Value, Value, Value)> = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert_eq!(h["by"], "tester");
            assert!(h["at"].as_i64().unwrap() > 0);
            (
                h["alias"].as_str().unwrap().to_string(),
                h["from"].clone(),
                h["to"].clone(),
                h["message"].clone(),
            )
        })
        .collect();
    use serde_json::json as j;
    assert_eq!(
        history,
        [
            (
                "production".into(),
                Value::Null,
                j!("v1"),
                j!("first release")
            ),
            ("production".into(), j!("v1"), j!("v2"), Value::Null),
            ("staging".into(), Value::Null, j!("v2"), Value::Null),
            ("staging".into(), j!("v2"), Value::Null, j!("retired")),
        ]
    );
    // the log cannot be rewritten, even with SQL
    let db = env.db();
    assert!(db.execute("DELETE FROM model_alias_log", []).is_err());
    assert!(
        db.execute("UPDATE model_versions SET av_id = 1", [])
            .is_err()
    );

    let text = run(&env, &["model", "show", "churn"]);
    crate::assert_fixed_snapshot!(&env, "model_show_text", &text.stdout);
    let list = run(&env, &["model", "list"]);
    crate::assert_fixed_snapshot!(&env, "model_list_text", &list.stdout);
}

#[test]
fn model_versions_and_aliases_are_targets() {
    let env = project(r#"model = "churn""#);
    run(&env, &["run"]);
    run(&env, &["run", "-p", "k=2"]);
    let runs = run_ids(&env);
    run(&env, &["model", "alias", "churn", "production", "v2"]);
    let v1 = json(&env.mlrun(&["model", "show", "churn", "--json"]))["versions"][1]["hash"]
        .as_str()
        .unwrap()
        .to_string();

    let card = json(&env.mlrun(&["show", "churn@v1", "--json"]));
    assert_eq!(card["version"]["hash"], v1.as_str());
    assert_eq!(card["run"]["id"], runs[0].as_str());
    let card = json(&env.mlrun(&["show", "churn@production", "--json"]));
    assert_eq!(card["run"]["id"], runs[1].as_str());
    // the card says which names the version has
    assert_eq!(
        card["models"],
        serde_json::json!([{"name": "churn", "version": "v2", "aliases": ["production"]}])
    );
    let text = run(&env, &["show", "model/"]);
    assert!(
        text.stdout
            .contains("\n  model     churn@v2 (production)\n"),
        "{text:?}"
    );
    let card = json(&env.mlrun(&["show", "models:/churn@v1", "--json"]));
    assert_eq!(card["version"]["hash"], v1.as_str());

    let lineage = json(&env.mlrun(&["lineage", "churn@production", "--json"]));
    let root = lineage["root"].as_str().unwrap();
    let node = lineage["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == root)
        .unwrap();
    assert_eq!(node["path"], "model");

    let diff = json(&env.mlrun(&["diff", "churn@v1", "churn@production", "--json"]));
    assert_eq!(diff["a"]["id"], runs[0].as_str());
    assert_eq!(diff["b"]["id"], runs[1].as_str());
    assert_eq!(diff["params"]["changed"][0]["key"], "k");

    let replay = run(&env, &["replay", "churn@v1"]);
    assert!(replay.stdout.contains("identical"), "{replay:?}");
    let replayed: String = one(
        &env.db(),
        "SELECT replay_of FROM runs WHERE replay_of IS NOT NULL",
    );
    assert_eq!(replayed, runs[0]);

    let prov = run(&env, &["export", "churn@production", "--format", "prov"]);
    assert!(prov.stdout.contains(&runs[1]), "{prov:?}");
    assert!(!prov.stdout.contains(&runs[0]), "{prov:?}");

    // PATH@RUN still works; a recorded path named like a model keeps `PATH@RUN`
    let card = json(&env.mlrun(&["show", "model/@latest~1", "--json"]));
    assert_eq!(card["version"]["hash"], v1.as_str());
    run(&env, &["model", "register", "model", "model/@latest~1"]);
    let card = json(&env.mlrun(&["show", "model@latest", "--json"]));
    assert_eq!(
        card["run"]["id"],
        runs[1].as_str(),
        "PATH@RUN: latest is a run"
    );
    let card = json(&env.mlrun(&["show", "model@v1", "--json"]));
    assert_eq!(card["version"]["hash"], v1.as_str(), "NAME@VERSION wins");
    // a path on disk literally named NAME@VERSION is that path; models:/ still means the model
    env.write("churn@v1", "a file\n");
    let out = env.mlrun(&["show", "churn@v1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("never recorded"), "{out:?}");
    let card = json(&env.mlrun(&["show", "models:/churn@v1", "--json"]));
    assert_eq!(card["version"]["hash"], v1.as_str());
}

#[test]
fn pipeline_model_keys_are_checked_before_running() {
    let env = Env::git();
    let cases = [
        (
            "bad name",
            r#"[steps.train]
cmd = "true"
outputs = ["m.pkl"]
model = "Churn_Model"
"#,
        ),
        (
            "two outputs",
            r#"[steps.train]
cmd = "true"
outputs = ["m.pkl", "log.txt"]
model = "churn"
"#,
        ),
        (
            "not an output",
            r#"[steps.train]
cmd = "true"
outputs = ["m.pkl", "log.txt"]
model = { name = "churn", output = "model.pkl" }
"#,
        ),
        (
            "no outputs",
            r#"[steps.train]
cmd = "true"
model = "churn"
"#,
        ),
        (
            "two steps",
            r#"[steps.a]
cmd = "true"
outputs = ["a.pkl"]
model = "churn"
[steps.b]
cmd = "true"
outputs = ["b.pkl"]
model = "churn"
"#,
        ),
        (
            "wrong type",
            r#"[steps.train]
cmd = "true"
outputs = ["m.pkl"]
model = 3
"#,
        ),
        (
            "no name",
            r#"[steps.train]
cmd = "true"
outputs = ["m.pkl"]
model = { output = "m.pkl" }
"#,
        ),
    ];
    let mut all = String::new();
    for (what, toml) in cases {
        env.write("pipeline.toml", toml);
        let out = env.mlrun(&["run"]);
        assert_eq!(out.code, 2, "{what}: {out:?}");
        assert!(!env.path("m.pkl").exists());
        all += &format!("## {what}\n{}\n", out.stderr);
    }
    crate::assert_fixed_snapshot!(&env, "pipeline_model_key_errors", &all);
    // the long form picks one of several outputs
    env.write(
        "pipeline.toml",
        r#"[steps.train]
cmd = "echo m > m.pkl && echo log > log.txt"
outputs = ["m.pkl", "log.txt"]
model = { name = "churn", output = "./m.pkl" }
"#,
    );
    let out = run(&env, &["run"]);
    assert!(
        out.stdout.contains("model churn@v1 registered (m.pkl)"),
        "{out:?}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let env = project("");
    run(&env, &["run"]);
    run(&env, &["run", "-p", "k=2"]);
    env.write("notes.txt", "never recorded\n");
    run(&env, &["model", "register", "churn", "model/@latest~1"]);
    let cases: &[(&[&str], i32)] = &[
        (&["model", "register", "Churn", "model/"], 2),
        (&["model", "register", "churn_model", "model/"], 2),
        (&["model", "register", "c", "model/"], 2),
        (&["model", "register", "team//churn", "model/"], 2),
        (&["model", "register", "churn", "notes.txt"], 1),
        (&["model", "register", "churn", "nowhere/model.pkl"], 1),
        (&["model", "register", "churn", "latest"], 2),
        (&["model", "register", "churn", "model/weights.txt"], 1),
        (
            &["model", "register", "churn", "model/", "--version", "1.2"],
            2,
        ),
        (
            &["model", "register", "churn", "model/", "--version", "1"],
            1,
        ),
        (
            &[
                "model",
                "register",
                "churn",
                "model/@latest~1",
                "--version",
                "3",
            ],
            1,
        ),
        (&["model", "alias", "churn", "Production", "v1"], 2),
        (&["model", "alias", "churn", "v2", "v1"], 2),
        (&["model", "alias", "churn", "latest", "v1"], 2),
        (&["model", "alias", "churn", "production", "v7"], 1),
        (&["model", "alias", "churn", "production", "best"], 1),
        (&["model", "alias", "churn", "production", "--remove"], 1),
        (&["model", "alias", "nope", "production", "v1"], 1),
        (&["model", "show", "chrun"], 1),
        (&["show", "churn@v7"], 1),
        (&["show", "models:/nope@v1"], 1),
        (&["show", "models:/churn"], 2),
    ];
    let mut all = String::new();
    for (args, code) in cases {
        let out = env.mlrun(args);
        assert_eq!(out.code, *code, "{args:?}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{out:?}");
        all += &format!("$ mlrun {}\n{}\n", args.join(" "), out.stderr);
    }
    // a modified model/ on disk was never recorded: registering it would name another version
    env.write("model/weights.txt", "edited by hand\n");
    let out = env.mlrun(&["model", "register", "churn", "model/"]);
    assert_eq!(out.code, 1, "{out:?}");
    all += &format!(
        "$ mlrun model register churn model/  (edited)\n{}\n",
        out.stderr
    );
    crate::assert_fixed_snapshot!(&env, "model_bad_input", &all);
    let n: i64 = one(&env.db(), "SELECT count(*) FROM model_versions");
    assert_eq!(n, 1, "no error wrote anything");
    let n: i64 = one(&env.db(), "SELECT count(*) FROM model_alias_log");
    assert_eq!(n, 0);
}

#[test]
fn json_shapes() {
    let env = project(r#"model = "churn""#);
    run(&env, &["run"]);
    run(&env, &["model", "alias", "churn", "production", "v1"]);
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let list = json(&env.mlrun(&["model", "list", "--json"]));
    assert_eq!(
        keys(&list[0]),
        ["aliases", "created_at", "history", "name", "versions"]
    );
    assert_eq!(
        keys(&list[0]["versions"][0]),
        [
            "aliases",
            "auto",
            "av_id",
            "commit",
            "dirty",
            "exec_id",
            "hash",
            "message",
            "name",
            "nfiles",
            "path",
            "registered_at",
            "registered_by",
            "run_id",
            "semver",
            "short_id",
            "size",
            "step",
            "type",
            "version"
        ]
    );
    assert_eq!(
        keys(&list[0]["history"][0]),
        ["alias", "at", "by", "from", "message", "name", "to"]
    );
    let show = json(&env.mlrun(&["model", "show", "churn", "--json"]));
    assert_eq!(show, list[0]);
    let reg = json(&env.mlrun(&["model", "register", "churn", "model/", "--json"]));
    assert_eq!(keys(&reg), ["new", "version"]);
    let commit = env.git_cmd(&["rev-parse", "HEAD"]);
    assert_eq!(reg["version"]["commit"], commit.as_str());
    assert_eq!(reg["version"]["dirty"], false);
    let empty = Env::git();
    empty.write("pipeline.toml", "[steps.a]\ncmd = \"true\"\n");
    ok(empty.mlrun(&["run"]));
    assert_eq!(
        json(&empty.mlrun(&["model", "list", "--json"])),
        Value::Array(vec![])
    );
}

/// `export-tags` writes GTO's tags: `NAME@vX.Y.Z` on the commit of the run that made each
/// version, `NAME#STAGE#N` (and `NAME#STAGE!#N` for a removal) on the commit of the version the
/// stage moved to; a second export writes only what is new. Read back with git; and with `gto`
/// itself when the environment provides it (`MLRUN_TEST_GTO`: the path of a `gto` executable).
#[test]
fn export_tags_writes_gto_tags() {
    let env = project(r#"model = "churn""#);
    run(&env, &["run"]);
    let c1 = env.git_cmd(&["rev-parse", "HEAD"]);
    env.write(
        "pipeline.toml",
        &std::fs::read_to_string(env.path("pipeline.toml"))
            .unwrap()
            .replace("k = 1", "k = 2"),
    );
    env.commit("k = 2");
    let c2 = env.git_cmd(&["rev-parse", "HEAD"]);
    run(&env, &["run"]);
    run(
        &env,
        &["model", "alias", "churn", "prod", "v1", "-m", "ship it"],
    );
    run(&env, &["model", "alias", "churn", "prod", "v2"]);

    let out = run(&env, &["model", "export-tags"]);
    assert!(out.stdout.contains("4 tags written"), "{out:?}");
    let tags = env.git_cmd(&["tag", "--list"]);
    assert_eq!(
        tags.lines().collect::<Vec<_>>(),
        [
            "churn#prod#1",
            "churn#prod#2",
            "churn@v1.0.0",
            "churn@v2.0.0"
        ]
    );
    for (tag, commit) in [
        ("churn@v1.0.0", &c1),
        ("churn@v2.0.0", &c2),
        ("churn#prod#1", &c1),
        ("churn#prod#2", &c2),
    ] {
        assert_eq!(
            env.git_cmd(&["cat-file", "-t", tag]),
            "tag",
            "{tag} is annotated"
        );
        assert_eq!(&env.git_cmd(&["rev-list", "-n1", tag]), commit, "{tag}");
    }
    let msg = env.git_cmd(&["tag", "-l", "--format=%(contents)", "churn#prod#1"]);
    assert!(msg.starts_with("ship it"), "{msg}");
    // nothing new: nothing written
    let again = run(&env, &["model", "export-tags"]);
    assert!(
        again.stdout.contains("0 tags written, 4 already there"),
        "{again:?}"
    );
    let gto = std::env::var("MLRUN_TEST_GTO").ok();
    let gto_show = |gto: &str| -> Value {
        let out = std::process::Command::new(gto)
            .args(["show", "--json"])
            .current_dir(&env.root)
            .output()
            .expect("gto runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    if let Some(gto) = &gto {
        let shown = gto_show(gto);
        assert_eq!(shown["churn"]["version"], "v2.0.0", "{shown:#}");
        assert_eq!(
            shown["churn"]["stage"],
            serde_json::json!({"prod": "v2.0.0"})
        );
    }
    // a removal unassigns the stage from every version it was assigned to (GTO would otherwise
    // fall back to v1), continuing the count
    run(&env, &["model", "alias", "churn", "prod", "--remove"]);
    let dry = json(&env.mlrun(&["model", "export-tags", "--dry-run", "--json"]));
    let would: Vec<&str> = dry["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "would-write")
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(would, ["churn#prod!#3", "churn#prod!#4"]);
    assert!(!env.git_cmd(&["tag", "--list"]).contains('!'));
    run(&env, &["model", "export-tags"]);
    assert_eq!(env.git_cmd(&["rev-list", "-n1", "churn#prod!#3"]), c1);
    assert_eq!(env.git_cmd(&["rev-list", "-n1", "churn#prod!#4"]), c2);
    let again = run(&env, &["model", "export-tags"]);
    assert!(
        again.stdout.contains("0 tags written, 6 already there"),
        "{again:?}"
    );
    // reading our own tags back changes nothing
    let back = run(&env, &["model", "import-tags"]);
    assert!(back.stdout.contains("0 changes (6 tags read)"), "{back:?}");
    // a move made after the export is not undone by reading the (older) tags back, however
    // their dates were spaced out
    run(&env, &["model", "alias", "churn", "prod", "v1"]);
    let back = run(&env, &["model", "import-tags"]);
    assert!(back.stdout.contains("0 changes (6 tags read)"), "{back:?}");
    let show = json(&env.mlrun(&["model", "show", "churn", "--json"]));
    assert_eq!(show["aliases"], serde_json::json!({"prod": "v1"}));
    run(&env, &["model", "alias", "churn", "prod", "--remove"]);
    match &gto {
        Some(gto) => {
            let shown = gto_show(gto);
            assert_eq!(shown["churn"]["version"], "v2.0.0", "{shown:#}");
            assert_eq!(shown["churn"]["stage"], serde_json::json!({}), "{shown:#}");
        }
        None => crate::common::skip_unless_ci(
            "the check with gto itself: MLRUN_TEST_GTO is not set (the tags were checked with git only)",
        ),
    }
}

/// `gc --keep-last N` keeps the objects of the runs that made registered versions: a
/// production model stays restorable (and its run replayable) however many runs follow.
#[test]
fn gc_keeps_what_registered_versions_need() {
    let env = project("");
    run(&env, &["run"]);
    let first = run_ids(&env)[0].clone();
    run(&env, &["run", "-p", "k=2"]);
    run(&env, &["run", "-p", "k=3"]);
    run(
        &env,
        &["model", "register", "churn", &format!("model/@{first}")],
    );
    run(&env, &["model", "alias", "churn", "production", "v1"]);
    run(&env, &["gc", "--keep-last", "1"]);
    // k=2's bytes are gone (nothing registered them): the step runs again
    let k2 = run(&env, &["run", "-p", "k=2"]);
    assert!(k2.stdout.contains("✓ train"), "{k2:?}");
    assert!(!k2.stdout.contains("restored"), "{k2:?}");
    // v1's bytes are kept: back to k=1 restores rather than runs
    let back = run(&env, &["run"]);
    assert!(back.stdout.contains("restored"), "{back:?}");
    let replay = run(&env, &["replay", "churn@production"]);
    assert!(replay.stdout.contains("identical"), "{replay:?}");
}

/// Two registrations of the same name at once (two terminals, two CI jobs) both succeed, with
/// distinct numbers: the next number is taken inside the writing transaction.
#[test]
fn concurrent_registrations_get_distinct_versions() {
    let env = project("");
    run(&env, &["run"]);
    run(&env, &["run", "-p", "k=2"]);
    let runs = run_ids(&env);
    let a = format!("model/@{}", runs[0]);
    let b = format!("model/@{}", runs[1]);
    let first = env.spawn_mlrun(&["model", "register", "churn", &a, "--json"]);
    let second = env.spawn_mlrun(&["model", "register", "churn", &b, "--json"]);
    let (first, second) = (crate::common::finish(first), crate::common::finish(second));
    let mut got = vec![
        json(&first)["version"]["version"]
            .as_str()
            .unwrap()
            .to_string(),
        json(&second)["version"]["version"]
            .as_str()
            .unwrap()
            .to_string(),
    ];
    got.sort();
    assert_eq!(got, ["v1", "v2"]);
}

/// `import-tags` reads GTO's tags back: a registration binds to the version a recorded run at
/// the tag's commit produced of the path GTO's `artifacts.yaml` gives (or the `PATH HASH` line
/// `export-tags` writes), and each stage ends where GTO's tags leave it.
// One history in named steps: the tags (registrations and stage moves dated in order) that the
// dry run, the import, the model's state and a second import are all checked against.
#[test]
fn import_tags_reads_gto_tags_back() {
    let env = project("");
    let (c1, c2) = two_runs_at_two_commits(&env);
    gto_tags(&env, &c1, &c2);
    import_binds_versions_and_stages(&env);
}

/// The artifact declared for GTO, and a run at each of two commits: their commits.
fn two_runs_at_two_commits(env: &Env) -> (String, String) {
    env.write("artifacts.yaml", "churn:\n  type: model\n  path: model\n");
    env.commit("declare the artifact for GTO");
    let c1 = env.git_cmd(&["rev-parse", "HEAD"]);
    run(env, &["run"]);
    env.write(
        "pipeline.toml",
        &std::fs::read_to_string(env.path("pipeline.toml"))
            .unwrap()
            .replace("k = 1", "k = 2"),
    );
    env.commit("k = 2");
    let c2 = env.git_cmd(&["rev-parse", "HEAD"]);
    run(env, &["run"]);
    (c1, c2)
}

/// A tag as `gto register` / `gto assign` write it, dated `secs`.
fn tag(env: &Env, name: &str, commit: &str, secs: i64, msg: &str) {
    let out = env
        .hermetic("git")
        .args(["tag", "-a", name, "-m", msg, commit])
        .env("GIT_COMMITTER_NAME", "alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.invalid")
        .env("GIT_COMMITTER_DATE", format!("@{secs} +0000"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Registrations (by gto itself when the environment provides it) and stage moves, in order.
fn gto_tags(env: &Env, c1: &str, c2: &str) {
    let t0 = 4_000_000_000; // later than any move made by this test
    match std::env::var("MLRUN_TEST_GTO") {
        // registrations made by gto itself when the environment provides it
        Ok(gto) => {
            for (version, commit) in [("v1.0.0", c1), ("v1.1.0", c2)] {
                let out = std::process::Command::new(&gto)
                    .args(["register", "churn", commit, "--version", version])
                    .current_dir(&env.root)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .env("GIT_COMMITTER_NAME", "alice")
                    .env("GIT_COMMITTER_EMAIL", "alice@example.invalid")
                    .env("GIT_AUTHOR_NAME", "alice")
                    .env("GIT_AUTHOR_EMAIL", "alice@example.invalid")
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Err(_) => {
            crate::common::skip_unless_ci(
                "registrations by gto itself: MLRUN_TEST_GTO is not set (tags written with git instead)",
            );
            tag(
                env,
                "churn@v1.0.0",
                c1,
                t0,
                "Registering artifact churn version v1.0.0",
            );
            tag(
                env,
                "churn@v1.1.0",
                c2,
                t0 + 1,
                "Registering artifact churn version v1.1.0",
            );
        }
    }
    tag(
        env,
        "churn#prod#1",
        c1,
        t0 + 2,
        "Assigning stage prod to artifact churn version v1.0.0",
    );
    tag(
        env,
        "churn#prod#2",
        c2,
        t0 + 3,
        "Assigning stage prod to artifact churn version v1.1.0",
    );
    tag(
        env,
        "churn#dev#3",
        c2,
        t0 + 4,
        "Assigning stage dev to artifact churn version v1.1.0",
    );
    tag(
        env,
        "churn#dev!#4",
        c2,
        t0 + 5,
        "Unassigning stage dev from artifact churn version v1.1.0",
    );
    tag(env, "other@v1.0.0", c1, t0, "no artifacts.yaml entry");
}

/// The dry run writes nothing; the import binds each version to its run and leaves each stage
/// where the tags do; a second import changes nothing.
fn import_binds_versions_and_stages(env: &Env) {
    let dry = json(&env.mlrun(&["model", "import-tags", "--dry-run", "--json"]));
    assert!(
        dry.as_array()
            .unwrap()
            .iter()
            .any(|d| d["status"] == "would-register"),
        "{dry:#}"
    );
    let n: i64 = one(&env.db(), "SELECT count(*) FROM model_versions");
    assert_eq!(n, 0, "--dry-run writes nothing");

    let out = run(env, &["model", "import-tags"]);
    let show = json(&env.mlrun(&["model", "show", "churn", "--json"]));
    let labels: Vec<&str> = show["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["v1.1.0", "v1"], "{out:?}");
    let runs = run_ids(env);
    assert_eq!(show["versions"][1]["run_id"], runs[0].as_str());
    assert_eq!(show["versions"][0]["run_id"], runs[1].as_str());
    assert_eq!(show["aliases"], serde_json::json!({"prod": "v1.1.0"}));
    assert!(
        show["history"][0]["message"]
            .as_str()
            .unwrap()
            .contains("churn#prod#2 (by alice"),
        "{show:#}"
    );
    assert!(
        out.stdout.contains("skipped        other@v1.0.0"),
        "{out:?}"
    );
    // a second import changes nothing
    let again = run(env, &["model", "import-tags"]);
    assert!(
        again.stdout.contains("0 changes (7 tags read)"),
        "{again:?}"
    );
    assert_eq!(
        json(&env.mlrun(&["model", "show", "churn", "--json"]))["history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

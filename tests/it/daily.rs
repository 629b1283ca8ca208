//! Daily use: `compare`, messages on runs (`run -m`, `note`, `runs --grep`), `init`,
//! `completions`, and the rough edges a new user hits first.

use serde_json::Value;

use crate::common::{Env, json};

/// A one-step pipeline whose metrics follow its params: `acc` depends on `lr`, `size` on
/// `depth`, `epochs` is reported the same by every run.
const SWEEPABLE: &str = r#"
[pipeline]
name = "tune"
[params]
lr = 0.1
depth = 3
seed = 1
[steps.train]
cmd = "echo {params.lr} {params.depth} > model.txt; echo acc={params.lr} >> $MLRUN_METRICS; echo size={params.depth}0 >> $MLRUN_METRICS; echo epochs=5 >> $MLRUN_METRICS"
outputs = ["model.txt"]
params = ["lr", "depth", "seed"]
"#;

fn tuned(runs: &[(&str, &str)]) -> Env {
    let env = Env::fixed();
    env.write("pipeline.toml", SWEEPABLE);
    env.commit("pipeline");
    for (lr, depth) in runs {
        let out = env.mlrun(&["-p", &format!("lr={lr}"), "-p", &format!("depth={depth}")]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    env
}

#[test]
fn compare_shows_only_the_columns_that_differ() {
    let env = tuned(&[("0.1", "3"), ("0.5", "3"), ("0.3", "3")]);
    let out = env.mlrun(&["compare"]);
    assert_eq!(out.code, 0, "{out:?}");
    // depth, seed and epochs are the same in every run: not columns, but said once
    let header = out.stdout.lines().nth(1).unwrap();
    assert!(header.contains("lr") && header.contains("acc"), "{out:?}");
    assert!(
        !header.contains("depth") && !header.contains("epochs"),
        "{out:?}"
    );
    crate::assert_fixed_snapshot!(&env, "compare_default", &out.stdout);
    let all = env.mlrun(&["compare", "--all"]);
    let header = all.stdout.lines().nth(1).unwrap();
    for col in ["depth", "lr", "seed", "acc", "epochs", "size"] {
        assert!(header.contains(col), "{col}: {all:?}");
    }
}

#[test]
fn compare_sorts_by_a_metric_and_takes_the_last_n() {
    let env = tuned(&[("0.1", "3"), ("0.5", "4"), ("0.3", "5"), ("0.2", "6")]);
    let v = json(&env.mlrun(&["compare", "-n", "3", "--sort", "acc", "--json"]));
    let accs: Vec<f64> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metrics"]["acc"].as_f64().unwrap())
        .collect();
    // the last three runs (0.1 is older), best first
    assert_eq!(accs, [0.5, 0.3, 0.2]);
    assert_eq!(v["pipeline"], "tune");
    assert_eq!(v["params"], serde_json::json!(["depth", "lr"]));
    assert_eq!(v["metrics"], serde_json::json!(["acc", "size"]));
    assert_eq!(v["same"]["params"]["seed"], 1);
    assert_eq!(v["same"]["metrics"]["epochs"], 5.0);
    assert_eq!(v["runs"][0]["params"]["lr"], 0.5);
    let asc = json(&env.mlrun(&["compare", "-n", "0", "--sort", "acc:asc", "--json"]));
    assert_eq!(asc["runs"].as_array().unwrap().len(), 4);
    assert_eq!(asc["runs"][0]["metrics"]["acc"], 0.1);
}

#[test]
fn compare_named_runs_as_csv() {
    let env = tuned(&[("0.1", "3"), ("0.5", "3"), ("0.3", "3")]);
    env.mlrun(&["note", "latest~2", "baseline, first \"try\""]);
    let out = env.mlrun(&["compare", "latest~2", "latest", "--csv"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.split("\r\n").collect();
    assert_eq!(lines[0], "run,pipeline,status,started_at,lr,acc,message");
    // in the order named; a message with a comma and quotes is quoted
    assert!(
        lines[1].contains(",tune,succeeded,")
            && lines[1].ends_with(",0.1,0.1,\"baseline, first \"\"try\"\"\""),
        "{out:?}"
    );
    assert!(lines[2].ends_with(",0.3,0.3,"), "{out:?}");
    assert_eq!(lines[3], "");
}

#[test]
fn compare_leaves_replays_out_and_refuses_unknown_names() {
    let env = tuned(&[("0.1", "3"), ("0.5", "3")]);
    assert_eq!(env.mlrun(&["replay", "latest"]).code, 0);
    let v = json(&env.mlrun(&["compare", "--json"]));
    assert_eq!(v["runs"].as_array().unwrap().len(), 2, "{v}");
    let out = env.mlrun(&["compare", "--sort", "accuracy"]);
    assert_eq!(out.code, 1, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "compare_unknown_metric", &out.stderr);
    let out = env.mlrun(&["compare", "--pipeline", "tnue"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("did you mean `tune`?"), "{out:?}");
}

/// Terminal columns `s` takes: two for CJK and emoji (the ranges this file's tests use), else one.
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF => 2,
            0xFF00..=0xFF60 | 0x1F300..=0x1F64F | 0x1F680..=0x1F6FF | 0x1F900..=0x1F9FF => 2,
            _ => 1,
        })
        .sum()
}

#[test]
fn runs_aligns_columns_by_display_width_with_wide_characters() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        r#"
[params]
k = "acc"
[steps.train]
cmd = "echo {params.k}=0.9 >> $MLRUN_METRICS"
params = ["k"]
"#,
    );
    env.commit("pipeline");
    // a metric named in Japanese (two columns a character), then one in ASCII
    let out = env.mlrun(&["-p", "k=精度", "-m", "学習率を上げた 🚀"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(env.mlrun(&["-p", "k=acc", "-m", "plain"]).code, 0);
    for color in ["never", "always"] {
        let out = env.mlrun(&["runs", "--color", color]);
        assert_eq!(out.code, 0, "{out:?}");
        let plain = strip_ansi(&out.stdout);
        // MESSAGE, after the wide metric, starts at the same terminal column on every line
        let starts: Vec<usize> = plain
            .lines()
            .map(|l| {
                let at = ["MESSAGE", "学習率", "plain"]
                    .iter()
                    .find_map(|m| l.find(m))
                    .unwrap_or_else(|| panic!("{plain}"));
                display_width(&l[..at])
            })
            .collect();
        assert_eq!(starts.len(), 3, "{plain}");
        assert!(
            starts.iter().all(|s| *s == starts[0]),
            "{starts:?}\n{plain}"
        );
        assert!(plain.contains("  精度=0.9  学習率を上げた 🚀\n"), "{plain}");
        assert!(plain.contains("  acc=0.9   plain\n"), "{plain}");
    }
}

fn strip_ansi(s: &str) -> String {
    regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(s, "")
        .into_owned()
}

#[test]
fn messages_from_run_and_note_are_shown_and_searched() {
    let env = Env::git();
    env.write("pipeline.toml", SWEEPABLE);
    env.commit("pipeline");
    assert_eq!(
        env.mlrun(&["-m", "Baseline with the old tokenizer"]).code,
        0
    );
    assert_eq!(env.mlrun(&["-p", "lr=0.2"]).code, 0);
    // no message yet: no MESSAGE column
    let out = env.mlrun(&["runs", "-n", "1"]);
    assert!(!out.stdout.contains("MESSAGE"), "{out:?}");
    let out = env.mlrun(&["note", "latest", "higher lr"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.mlrun(&["runs"]);
    assert!(
        out.stdout.lines().next().unwrap().contains("MESSAGE"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("higher lr") && out.stdout.contains("Baseline with"),
        "{out:?}"
    );
    let v = json(&env.mlrun(&["runs", "--grep", "TOKENIZER", "--json"]));
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["message"], "Baseline with the old tokenizer");
    let v = json(&env.mlrun(&["runs", "--json", "-n", "1"]));
    assert_eq!(v[0]["message"], "higher lr");
    let out = env.mlrun(&["runs", "--grep", "nothing like it"]);
    assert!(out.stdout.contains("no run matches"), "{out:?}");
    let show = env.mlrun(&["show", "latest~1"]);
    assert!(
        show.stdout
            .contains("  message   Baseline with the old tokenizer\n"),
        "{show:?}"
    );
    // a note replaces the message and says what it replaced; `--clear` removes it
    let out = env.mlrun(&["note", "latest~1", "baseline"]);
    assert!(
        out.stdout
            .contains("replaces: Baseline with the old tokenizer"),
        "{out:?}"
    );
    assert_eq!(env.mlrun(&["note", "latest~1"]).stdout, "baseline\n");
    assert_eq!(env.mlrun(&["note", "latest~1", "--clear"]).code, 0);
    assert!(
        env.mlrun(&["note", "latest~1"])
            .stdout
            .contains("has no message")
    );
    let v = json(&env.mlrun(&["show", "latest~1", "--json"]));
    assert_eq!(v["message"], Value::Null);
    // an unknown run is an error, and nothing is written
    let out = env.mlrun(&["note", "ffffffffffff", "x"]);
    assert_eq!(out.code, 1, "{out:?}");
}

#[test]
fn a_secret_in_a_message_is_masked() {
    let env = Env::git();
    env.write("pipeline.toml", SWEEPABLE);
    env.commit("pipeline");
    let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    assert_eq!(env.mlrun(&["-m", &format!("with token {token}")]).code, 0);
    assert_eq!(
        env.mlrun(&["note", "latest", &format!("token {token} again")])
            .code,
        0
    );
    let db = std::fs::read(env.path(".mlrun/lineage.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
}

#[test]
fn runs_filters_naming_what_no_run_has_list_the_known_names() {
    let env = tuned(&[("0.1", "3")]);
    for (args, snap) in [
        (
            &["runs", "--metric", "accuracy>0.5"][..],
            "runs_unknown_metric",
        ),
        (&["runs", "--param", "deph=3"][..], "runs_unknown_param"),
        (&["runs", "--pipeline", "tuen"][..], "runs_unknown_pipeline"),
    ] {
        let out = env.mlrun(args);
        assert_eq!(out.code, 1, "{out:?}");
        crate::assert_fixed_snapshot!(&env, snap, &out.stderr);
    }
    // known names that no run matches are still a plain empty answer
    let out = env.mlrun(&["runs", "--metric", "acc>0.5"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("no run matches these filters"),
        "{out:?}"
    );
}

#[test]
fn init_writes_a_pipeline_that_runs_and_ignores_the_store_once() {
    let env = Env::plain();
    env.git_cmd(&["init", "-q", "-b", "main"]);
    env.write(".gitignore", "target/");
    let out = env.mlrun(&["init"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(env.path(".gitignore")).unwrap(),
        "target/\n# mlrun's lineage store and object store\n.mlrun/\n"
    );
    let text = std::fs::read_to_string(env.path("pipeline.toml")).unwrap();
    assert!(text.contains("name = \"project\""), "{text}");
    // it refuses to overwrite, and adds nothing twice
    let again = env.mlrun(&["init"]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("already exists"), "{again:?}");
    std::fs::remove_file(env.path("pipeline.toml")).unwrap();
    assert_eq!(env.mlrun(&["init"]).code, 0);
    assert_eq!(
        std::fs::read_to_string(env.path(".gitignore"))
            .unwrap()
            .matches(".mlrun/")
            .count(),
        1
    );
    // the skeleton is a valid pipeline that runs, and the store is not seen by git
    let run = env.mlrun(&[]);
    assert_eq!(run.code, 0, "{run:?}");
    let status = env.git_cmd(&["status", "--porcelain"]);
    assert!(!status.contains(".mlrun"), "{status}");
}

#[test]
fn init_creates_a_gitignore() {
    let env = Env::plain();
    assert_eq!(env.mlrun(&["init"]).code, 0);
    assert_eq!(
        std::fs::read_to_string(env.path(".gitignore")).unwrap(),
        "# mlrun's lineage store and object store\n.mlrun/\n"
    );
}

#[test]
fn completions_for_each_shell() {
    let env = Env::plain();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef mlrun"),
        ("fish", "complete -c mlrun"),
    ] {
        let out = env.mlrun(&["completions", shell]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains(marker), "{shell}: {out:?}");
        assert!(out.stdout.contains("compare"), "{shell}");
    }
    let out = env.mlrun(&["completions", "tcsh"]);
    assert_eq!(out.code, 2, "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// rough edges

#[test]
fn a_mistyped_command_is_not_read_as_a_pipeline_path() {
    let env = tuned(&[("0.1", "3")]);
    let out = env.mlrun(&["rnus"]);
    assert_eq!(out.code, 2, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "mistyped_command", &out.stderr);
    // a file of that name is a pipeline, as always
    env.write("rnus", SWEEPABLE);
    let out = env.mlrun(&["rnus"]);
    assert_eq!(out.code, 0, "{out:?}");
    // a word close to no command is a target (`mlrun train`): it names no step or output
    let out = env.mlrun(&["xyzzy"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("`xyzzy` is no step of `pipeline.toml` and no output a step declares"),
        "{out:?}"
    );
    // without a pipeline here, it says both what it looked for and how the word was taken
    std::fs::remove_file(env.path("pipeline.toml")).unwrap();
    let out = env.mlrun(&["xyzzy"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("cannot read pipeline file `pipeline.toml`")
            && out.stderr.contains(
                "`xyzzy` was taken as a step or output to run: there is no file of that name"
            ),
        "{out:?}"
    );
}

#[test]
fn diff_with_one_run_compares_with_the_run_before_it() {
    let env = tuned(&[("0.1", "3"), ("0.5", "3")]);
    let one = env.mlrun(&["diff", "latest", "--json"]);
    let two = env.mlrun(&["diff", "latest~1", "latest", "--json"]);
    assert_eq!(one.code, 0, "{one:?}");
    assert_eq!(one.stdout, two.stdout);
    let v = json(&one);
    assert_eq!(v["params"]["changed"][0]["key"], "lr", "{v}");
    let out = env.mlrun(&["diff", "latest~1"]);
    assert_eq!(out.code, 1, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "diff_first_run", &out.stderr);
}

#[test]
fn export_defaults_to_openlineage() {
    let env = tuned(&[("0.1", "3")]);
    let plain = env.mlrun(&["export"]);
    let explicit = env.mlrun(&["export", "latest", "--format", "openlineage"]);
    assert_eq!(plain.code, 0, "{plain:?}");
    // eventTime and the run's facets are recorded, so both exports are the same bytes
    assert_eq!(plain.stdout, explicit.stdout);
    let first: Value = serde_json::from_str(plain.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["eventType"], "START");
}

#[test]
fn one_file_is_not_files() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.a]\ncmd = \"mkdir -p out && echo x > out/only.txt\"\noutputs = [\"out/\"]\n",
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.all().contains("out/ (1 file)"), "{out:?}");
    assert!(!out.all().contains("1 files"), "{out:?}");
    let show = env.mlrun(&["show", "latest"]);
    assert!(show.stdout.contains("1 file,"), "{show:?}");
    assert!(!show.stdout.contains("1 files"), "{show:?}");
}

#[test]
fn force_naming_no_step_lists_the_steps() {
    let env = tuned(&[]);
    let out = env.mlrun(&["--force=nosuch"]);
    assert_eq!(out.code, 2, "{out:?}");
    crate::assert_fixed_snapshot!(&env, "force_unknown_step", &out.stderr);
}

#[test]
fn a_timeout_without_a_unit_says_how_to_write_it() {
    let env = Env::git();
    env.write("pipeline.toml", "[steps.a]\ncmd = \"true\"\ntimeout = 5\n");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("write `\"5s\"`"), "{out:?}");
    env.write(
        "pipeline.toml",
        "[steps.a]\ncmd = \"true\"\ntimeout = \"x5\"\nretry-delay = \"5\"\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!out.stderr.contains("at 0"), "{out:?}");
    // nothing here varies between test runs (and the durations are the point)
    insta::assert_snapshot!("duration_errors", out.stderr);
    let out = env.mlrun(&["--grace", "1h min"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("a number is missing before `min`"),
        "{out:?}"
    );
}

#[test]
fn a_shell_command_whose_program_is_missing_says_so() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.a]\ncmd = \"echo starting; no-such-program-zz --fast\"\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(
        out.all()
            .contains("could not start `no-such-program-zz`: not found on PATH"),
        "{out:?}"
    );
    let v = json(&env.mlrun(&["show", "latest", "--json"]));
    assert!(
        v["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not found on PATH"),
        "{v}"
    );
    // a script that itself exits 127 is only an exit code
    env.write("pipeline.toml", "[steps.a]\ncmd = \"exit 127\"\n");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(
        out.all().contains("exited with code 127") && !out.all().contains("not found"),
        "{out:?}"
    );
}

#[test]
fn compare_takes_the_pipeline_of_the_newest_run_unless_told() {
    let env = tuned(&[("0.1", "3"), ("0.2", "3")]);
    env.write(
        "other.toml",
        "[pipeline]\nname = \"other\"\n[params]\nk = 1\n[steps.s]\ncmd = \"echo {params.k} > o.txt\"\noutputs = [\"o.txt\"]\nparams = [\"k\"]\n",
    );
    assert_eq!(env.mlrun(&["other.toml"]).code, 0);
    assert_eq!(env.mlrun(&["other.toml", "-p", "k=2"]).code, 0);
    let v = json(&env.mlrun(&["compare", "--json"]));
    assert_eq!(v["pipeline"], "other");
    assert_eq!(v["params"], serde_json::json!(["k"]));
    assert_eq!(v["runs"].as_array().unwrap().len(), 2);
    let out = env.mlrun(&["compare", "--pipeline", "tune"]);
    assert!(
        out.stdout
            .starts_with("comparing the last 2 runs of `tune`"),
        "{out:?}"
    );
    // runs of two pipelines, named: every param either has is a column
    let v = json(&env.mlrun(&["compare", "latest", "latest~2", "--json"]));
    assert_eq!(v["pipeline"], Value::Null);
    assert_eq!(v["params"], serde_json::json!(["depth", "k", "lr", "seed"]));
    let out = env.mlrun(&["compare", "latest", "--pipeline", "tune"]);
    assert_eq!(out.code, 2, "{out:?}");
}

/// The objects under `.mlrun/objects/sha256/`, by hash.
fn object_hashes(env: &Env) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let base = env.path(".mlrun/objects/sha256");
    for a in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            out.insert(format!(
                "{}{}",
                a.file_name().to_string_lossy(),
                b.file_name().to_string_lossy()
            ));
        }
    }
    out
}

fn run_id(env: &Env, name: &str) -> String {
    let v = json(&env.mlrun(&["show", name, "--json"]));
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn rm_removes_a_run_recorded_as_removed_and_gc_frees_its_objects() {
    let env = tuned(&[("0.1", "3"), ("0.5", "3")]);
    let first = run_id(&env, "latest~1");
    let old_model = crate::common::one::<String>(
        &env.db(),
        &format!(
            "SELECT v.blob_hash FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
             JOIN artifact_versions v ON v.id = e.av_id WHERE s.run_id = '{first}' AND e.direction = 'out'"
        ),
    );
    let new_model = env.sha256sum("model.txt");
    assert!(object_hashes(&env).contains(&old_model));
    let out = env.mlrun(&["rm", "latest~1", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("would remove run"), "{out:?}");
    assert_eq!(
        json(&env.mlrun(&["runs", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let out = env.mlrun(&["rm", "latest~1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("removed run"), "{out:?}");
    assert!(out.stdout.contains("mlrun gc"), "{out:?}");
    // gone from the history, which says it was removed
    let runs = json(&env.mlrun(&["runs", "--json"]));
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    let shown = env.mlrun(&["show", &first[..16]]);
    assert_eq!(shown.code, 1, "{shown:?}");
    assert!(shown.stderr.contains("was removed by tester@"), "{shown:?}");
    assert!(shown.stderr.contains("`mlrun rm`"), "{shown:?}");
    let tomb: i64 = crate::common::one(
        &env.db(),
        &format!(
            "SELECT COUNT(*) FROM run_removals WHERE run_id = '{first}' AND pipeline = 'tune' AND steps = 1"
        ),
    );
    assert_eq!(tomb, 1);
    let left: i64 = crate::common::one(
        &env.db(),
        &format!("SELECT COUNT(*) FROM step_execs WHERE run_id = '{first}'"),
    );
    assert_eq!(left, 0);
    // gc frees what only the removed run referenced, and keeps the rest
    let gc = env.mlrun(&["gc"]);
    assert_eq!(gc.code, 0, "{gc:?}");
    let objects = object_hashes(&env);
    assert!(!objects.contains(&old_model), "{gc:?}");
    assert!(objects.contains(&new_model), "{gc:?}");
    // removing the last run leaves a store gc still works on (not taken for a lost database)
    let out = env.mlrun(&["rm", "latest"]);
    assert_eq!(out.code, 0, "{out:?}");
    let gc = env.mlrun(&["gc"]);
    assert!(gc.stdout.starts_with("deleted"), "{gc:?}");
    assert!(!object_hashes(&env).contains(&new_model), "{gc:?}");
}

#[test]
fn rm_refuses_a_run_other_runs_reused_unless_forced() {
    // the third run reuses the first run's `train` (same params)
    let env = tuned(&[("0.1", "3"), ("0.5", "3"), ("0.1", "3")]);
    let first = run_id(&env, "latest~2");
    let third = run_id(&env, "latest");
    let out = env.mlrun(&["rm", "latest~2"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("other runs reused steps of run"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(&format!(
            "run {} reused `train` from run {}",
            &third[..16],
            &first[..16]
        )),
        "{out:?}"
    );
    assert!(out.stderr.contains("--force"), "{out:?}");
    crate::assert_fixed_snapshot!(&env, "rm_reused", &out.stderr);
    assert_eq!(
        json(&env.mlrun(&["runs", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // both together: nothing outside the set points at them
    let out = env.mlrun(&["rm", "latest~2", "latest", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.mlrun(&["rm", "latest~2", "--force", "--json"]);
    let v = json(&out);
    assert_eq!(v["forced"][0]["step"], "train", "{v}");
    assert_eq!(v["removed"][0]["id"], first.as_str(), "{v}");
    // the run that reused it still shows, and still replays its steps' record
    let show = env.mlrun(&["show", &third[..16]]);
    assert_eq!(show.code, 0, "{show:?}");
    let reason: String = crate::common::one(
        &env.db(),
        &format!("SELECT reason FROM run_removals WHERE run_id = '{first}'"),
    );
    assert!(reason.contains(&third), "{reason}");
}

#[test]
fn rm_refuses_a_running_run_and_one_that_made_a_model_version() {
    let env = tuned(&[("0.1", "3")]);
    let out = env.mlrun(&["model", "register", "tuner", "model.txt@latest"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.mlrun(&["rm", "latest"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("made a registered model version"),
        "{out:?}"
    );
    assert!(out.stderr.contains("tuner@v1"), "{out:?}");
    crate::assert_fixed_snapshot!(&env, "rm_model_version", &out.stderr);
    assert_eq!(
        json(&env.mlrun(&["runs", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(env.mlrun(&["model", "show", "tuner"]).code, 0);

    // a run still running
    env.write(
        "slow.toml",
        "[steps.wait]\ncmd = \"cat gate > waited.txt\"\noutputs = [\"waited.txt\"]\n",
    );
    crate::common::mkfifo(&env.path("gate"));
    let child = env.spawn_mlrun(&["slow.toml"]);
    let writer = crate::common::fifo_writer(&env.path("gate"), 60);
    let out = env.mlrun(&["rm", "latest"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is still running"), "{out:?}");
    drop(writer);
    let done = crate::common::finish(child);
    assert_eq!(done.code, 0, "{done:?}");
    let out = env.mlrun(&["rm", "latest"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn runs_columns_choose_params_and_metrics_and_never_drop_one_silently() {
    let env = tuned(&[("0.1", "3"), ("0.5", "4")]);
    let out = env.mlrun(&[
        "runs",
        "--columns",
        "params.lr,metrics.acc",
        "--columns",
        "status",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["ID", "lr", "acc", "STATUS"], "{out:?}");
    let newest: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&newest[1..4], ["0.5", "0.5", "succeeded"], "{out:?}");
    // the metrics without a column are counted, not dropped silently
    assert!(
        out.stdout.contains(
            "+2 metrics not shown (epochs, size): add `metrics.NAME` or `metrics` to --columns"
        ),
        "{out:?}"
    );
    crate::assert_fixed_snapshot!(&env, "runs_columns", &out.stdout);
    // the METRICS column keeps the others, without repeating the ones with a column
    let out = env.mlrun(&["runs", "--columns", "metrics.acc,metrics"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .nth(1)
            .unwrap()
            .contains("epochs=5 size=40"),
        "{out:?}"
    );
    assert!(
        !out.stdout.lines().nth(1).unwrap().contains("acc="),
        "{out:?}"
    );
    assert!(!out.stdout.contains("not shown"), "{out:?}");
    // unknown names: a column, a param
    let out = env.mlrun(&["runs", "--columns", "stauts"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("did you mean `status`?"), "{out:?}");
    let out = env.mlrun(&["runs", "--columns", "params.lrr"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("did you mean `lr`?"), "{out:?}");
}

#[test]
fn runs_metrics_column_says_how_many_more_and_points_at_columns() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.m]\ncmd = \"for k in a b c d e; do echo $k=1 >> $MLRUN_METRICS; done; echo x > o.txt\"\noutputs = [\"o.txt\"]\n",
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    let out = env.mlrun(&["runs"]);
    assert!(out.stdout.contains("a=1 b=1 c=1 +2 more"), "{out:?}");
    assert!(
        out.stdout.contains("`--columns metrics.NAME,...`"),
        "{out:?}"
    );
}

#[test]
fn replay_takes_every_target_form_show_takes() {
    let env = tuned(&[("0.1", "3"), ("0.5", "3")]);
    let first = run_id(&env, "latest~1");
    for target in ["model.txt@latest~1", "latest~1:train"] {
        let shown = env.mlrun(&["show", target, "--json"]);
        assert_eq!(shown.code, 0, "{target}: {shown:?}");
        let out = env.mlrun(&["replay", target, "--json"]);
        let v = json(&out);
        assert!(
            first.starts_with(v["original"].as_str().unwrap()),
            "{target}: {v}"
        );
        assert_eq!(v["verdict"], "identical", "{target}: {v}");
    }
    // a version the named run did not produce or read is the error `show` gives
    let out = env.mlrun(&["replay", "nosuch.txt@latest"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("did not read or write `nosuch.txt`"),
        "{out:?}"
    );
}

#[test]
fn show_of_a_failed_run_prints_the_tail_of_the_failing_steps_stderr() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.boom]\ncmd = \"for i in $(seq 1 25); do echo problem-$i >&2; done; exit 3\"\n",
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 3);
    let out = env.mlrun(&["show"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("problem-25"), "{out:?}");
    assert!(out.stdout.contains("problem-6\n"), "{out:?}");
    assert!(!out.stdout.contains("problem-5\n"), "{out:?}");
    assert!(out.stdout.contains("its last 20 lines"), "{out:?}");
    // the step's fields line up: `why` like `cmd`
    let why = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("why"))
        .unwrap();
    let cmd = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("cmd"))
        .unwrap();
    assert_eq!(
        why.find("why").unwrap(),
        cmd.find("cmd").unwrap(),
        "{out:?}"
    );
    let col = |l: &str, label: &str| {
        l.find(label).unwrap()
            + label.len()
            + l[l.find(label).unwrap() + label.len()..]
                .chars()
                .take_while(|c| *c == ' ')
                .count()
    };
    assert_eq!(col(why, "why"), col(cmd, "cmd"), "{out:?}");
}

#[test]
fn show_logs_of_a_reused_run_shows_the_logs_of_the_executions_it_reused() {
    let env = tuned(&[("0.1", "3")]);
    let first = run_id(&env, "latest");
    env.write(
        "pipeline.toml",
        &SWEEPABLE.replace("cmd = \"echo", "cmd = \"echo training-now; echo"),
    );
    env.commit("louder");
    // the command changed: runs again, then a second run reuses it
    assert_eq!(env.mlrun(&[]).code, 0);
    let ran = run_id(&env, "latest");
    assert_ne!(ran, first);
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.mlrun(&["show", "latest", "--logs"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("training-now"), "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "(from run {}: this run reused that execution, cached)",
            &ran[..16]
        )),
        "{out:?}"
    );
}

#[test]
fn status_after_an_override_names_the_param_and_runs_marks_the_run() {
    let env = Env::git();
    env.write("pipeline.toml", SWEEPABLE);
    env.commit("pipeline");
    assert_eq!(env.mlrun(&[]).code, 0);
    let out = env.mlrun(&["-p", "lr=0.5"]);
    assert_eq!(out.code, 0, "{out:?}");
    let id = run_id(&env, "latest");
    let st = env.mlrun(&["status"]);
    assert_eq!(st.code, 0, "{st:?}");
    assert!(
        st.stdout.contains(&format!(
            "output model.txt holds what run {} made with `lr=0.5` (now `lr=0.1`: an `-p` override then or now)",
            &id[..16]
        )),
        "{st:?}"
    );
    let runs = env.mlrun(&["runs"]);
    let lines: Vec<&str> = runs.stdout.lines().collect();
    assert!(lines[1].contains("succeeded (-p lr=0.5)"), "{runs:?}");
    assert!(!lines[2].contains("(-p"), "{runs:?}");
}

#[test]
fn diff_compares_what_steps_made_not_whether_they_ran_or_were_reused() {
    // the third run reuses what the first run's `train` made
    let env = tuned(&[("0.1", "3"), ("0.5", "3"), ("0.1", "3")]);
    let v = json(&env.mlrun(&["diff", "latest~2", "latest", "--json"]));
    let steps = &v["steps"];
    assert_eq!(steps["status"].as_array().unwrap().len(), 0, "{steps}");
    assert_eq!(steps["made"].as_array().unwrap().len(), 0, "{steps}");
    assert_eq!(steps["unchanged"], 1, "{steps}");
    assert_eq!(steps["ran"][0]["key"], "train", "{steps}");
    assert_eq!(steps["ran"][0]["a"], "succeeded", "{steps}");
    let out = env.mlrun(&["diff", "latest~2", "latest"]);
    assert!(
        out.stdout
            .contains("unchanged (1 step, same commands, same outputs)"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("(how it ran; not a difference)"),
        "{out:?}"
    );
    // different params: the step made something else
    let out = env.mlrun(&["diff", "latest~1", "latest"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("train  made other outputs"), "{out:?}");
    assert!(out.stdout.contains("- model.txt "), "{out:?}");
}

#[test]
fn rm_removes_a_runs_replays_with_it() {
    let env = tuned(&[("0.1", "3")]);
    let out = env.mlrun(&["replay", "latest"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.mlrun(&["rm", "latest"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("(a replay of"), "{out:?}");
    assert_eq!(out.stdout.matches("removed run").count(), 2, "{out:?}");
    let runs = json(&env.mlrun(&["runs", "--json"]));
    assert_eq!(runs.as_array().unwrap().len(), 0, "{runs}");
    let n: i64 = crate::common::one(
        &env.db(),
        "SELECT COUNT(*) FROM run_removals WHERE replay_of IS NOT NULL",
    );
    assert_eq!(n, 1);
}

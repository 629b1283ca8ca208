//! Every validation error names the file, line and column, shows the line with a caret, says how
//! to fix it, exits 2 and runs nothing. Messages are snapshot-tested: they are what users read.

use crate::common::Env;

/// Run mlrun on `toml` in a fresh repository; return (exit code, stderr). Asserts nothing ran.
fn check(toml: &str) -> (i32, String) {
    let env = Env::git();
    env.write("exists.txt", "x\n");
    env.write("pipeline.toml", toml);
    let out = env.mlrun(&[]);
    assert!(
        !env.path(".mlrun/lineage.db").exists() || out.code == 0,
        "nothing may be recorded: {out:?}"
    );
    assert!(
        !env.path("ran.txt").exists(),
        "no step may run on invalid input"
    );
    (out.code, out.stderr)
}

fn invalid(toml: &str) -> String {
    let (code, stderr) = check(toml);
    assert_eq!(code, 2, "{stderr}");
    stderr
}

#[test]
fn unknown_keys_are_warned_with_their_location_but_run() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[pipeline]\nname = \"x\"\ncolour = 1\n[steps.a]\ncmd = \"echo > ran.txt\"\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!("unknown_keys", out.stderr);
}

#[test]
fn an_unknown_key_inside_a_step_is_an_error_with_did_you_mean() {
    let env = Env::git();
    // `output` for `outputs` would drop the step's outputs: nothing runs
    env.write(
        "pipeline.toml",
        "[steps.a]\ncmd = \"echo > ran.txt\"\noutput = [\"ran.txt\"]\n[steps.b]\ncmd = \"true\"\noutputs = [{ path = \"b.txt\", stor = false }]\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!env.path("ran.txt").exists(), "{out:?}");
    assert!(out.stderr.contains("did you mean `outputs`?"), "{out:?}");
    assert!(out.stderr.contains("did you mean `store`?"), "{out:?}");
    insta::assert_snapshot!("unknown_step_key", out.stderr);
}

#[test]
fn type_error() {
    insta::assert_snapshot!(invalid("[steps.a]\ncmd = 3\n"));
}

#[test]
fn string_where_a_list_is_expected() {
    insta::assert_snapshot!(invalid(
        "[steps.a]\ncmd = \"echo > ran.txt\"\ninputs = \"exists.txt\"\n"
    ));
}

#[test]
fn not_toml() {
    insta::assert_snapshot!(invalid("[steps.a]\ncmd = \"echo\n"));
}

#[test]
fn empty_file() {
    insta::assert_snapshot!(invalid(""));
}

#[test]
fn missing_cmd() {
    insta::assert_snapshot!(invalid("[steps.train]\ninputs = [\"exists.txt\"]\n"));
}

#[test]
fn dependency_cycle_is_printed() {
    insta::assert_snapshot!(invalid(
        r#"[steps.a]
cmd = "cp c.txt a.txt"
inputs = ["c.txt"]
outputs = ["a.txt"]

[steps.b]
cmd = "cp a.txt b.txt"
inputs = ["a.txt"]
outputs = ["b.txt"]

[steps.c]
cmd = "cp b.txt c.txt"
inputs = ["b.txt"]
outputs = ["c.txt"]
"#
    ));
}

#[test]
fn two_steps_declare_the_same_output() {
    insta::assert_snapshot!(invalid(
        "[steps.a]\ncmd = \"echo > ran.txt\"\noutputs = [\"model.pkl\"]\n\n[steps.b]\ncmd = \"echo\"\noutputs = [\"model.pkl\"]\n"
    ));
}

#[test]
fn overlapping_outputs() {
    insta::assert_snapshot!(invalid(
        "[steps.a]\ncmd = \"echo\"\noutputs = [\"data/\"]\n\n[steps.b]\ncmd = \"echo\"\noutputs = [\"data/x.csv\"]\n"
    ));
}

#[test]
fn after_names_a_missing_step_with_a_suggestion() {
    insta::assert_snapshot!(invalid(
        "[steps.train]\ncmd = \"echo > ran.txt\"\n\n[steps.evaluate]\ncmd = \"echo\"\nafter = [\"trian\"]\n"
    ));
}

#[test]
fn undefined_placeholder() {
    insta::assert_snapshot!(invalid(
        "[params]\nlr = 0.1\n\n[steps.train]\ncmd = \"python train.py --lr {params.lr} --seed {params.sed}\"\n"
    ));
}

#[test]
fn undefined_param_dependency() {
    insta::assert_snapshot!(invalid(
        "[params.train]\nlr = 0.1\n\n[steps.train]\ncmd = \"echo\"\nparams = [\"train.rl\", \"eval.*\"]\n"
    ));
}

#[test]
fn missing_input_that_no_step_produces() {
    insta::assert_snapshot!(invalid(
        "[steps.train]\ncmd = \"echo\"\ninputs = [\"exists.txt\", \"data/raw.csv\"]\n"
    ));
}

#[test]
fn path_outside_the_project() {
    insta::assert_snapshot!(invalid(
        "[steps.train]\ncmd = \"echo\"\noutputs = [\"../elsewhere.txt\"]\n"
    ));
}

#[test]
fn input_that_is_also_an_output() {
    insta::assert_snapshot!(invalid(
        "[steps.s]\ncmd = \"echo\"\ninputs = [\"exists.txt\"]\noutputs = [\"exists.txt\"]\n"
    ));
}

#[test]
fn several_problems_are_reported_together() {
    insta::assert_snapshot!(invalid(
        "[steps.a]\ncmd = \"echo {params.nope}\"\nafter = [\"zzz\"]\n\n[steps.b]\ncmd = \"\"\n"
    ));
}

#[test]
fn unknown_param_override() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[params]\nlr = 1\n[steps.a]\ncmd = \"echo > ran.txt\"\n",
    );
    let out = env.mlrun(&["-p", "rl=2"]);
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn missing_pipeline_file() {
    let env = Env::git();
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn non_utf8_file() {
    let env = Env::git();
    std::fs::write(
        env.path("pipeline.toml"),
        b"[steps.a]\ncmd = \"echo \xff\"\n",
    )
    .unwrap();
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 2, "{out:?}");
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn env_value_of_the_wrong_type() {
    insta::assert_snapshot!(invalid("[env]\nX = [1]\n\n[steps.a]\ncmd = \"echo\"\n"));
}

#[test]
fn bad_step_name() {
    insta::assert_snapshot!(invalid("[steps.\"has space\"]\ncmd = \"echo\"\n"));
}

#[test]
fn misspelt_section() {
    insta::assert_snapshot!(invalid("[step.train]\ncmd = \"echo\"\n"));
}

#[test]
fn json_mode_prints_a_document_even_for_an_invalid_pipeline() {
    let env = Env::git();
    env.write("pipeline.toml", "[steps.a]\ncmd = 3\n");
    let out = env.mlrun(&["run", "--json"]);
    assert_eq!(out.code, 2, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["status"], "invalid");
    assert_eq!(v["exit_code"], 2);
    assert!(v["error"].as_str().unwrap().contains("steps.a.cmd"), "{v}");
}

#[test]
fn param_overrides_name_groups_and_warn_about_type_changes() {
    let env = Env::git();
    env.write("pipeline.toml", "[params.train]\nlr = 0.1\nepochs = 3\n[steps.a]\ncmd = \"echo {params.train.lr} > o.txt\"\noutputs = [\"o.txt\"]\n");
    let out = env.mlrun(&["-p", "train=5"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("`train` is a group of params (train.epochs, train.lr), not one param"),
        "{out:?}"
    );
    let out = env.mlrun(&["-p", "train.lr=abc"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("replaces the number 0.1 of `train.lr` with the text \"abc\""),
        "{out:?}"
    );
}

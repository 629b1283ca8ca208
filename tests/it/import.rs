//! `mlrun import dvc.yaml`: DVC pipelines written here, one construct each, converted (the
//! pipeline.toml is snapshot-tested), then run by mlrun: outputs and recorded lineage checked.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::{Env, one, rows};

/// Write the files, convert `dvc.yaml`, check it succeeded, and return pipeline.toml.
fn convert(env: &Env, files: &[(&str, &str)]) -> String {
    for (p, c) in files {
        env.write(p, c);
    }
    let out = env.mlrun(&["import", "dvc.yaml"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("run it with `mlrun pipeline.toml`"),
        "the result did not validate: {out:?}"
    );
    std::fs::read_to_string(env.path("pipeline.toml")).unwrap()
}

fn snapshot(name: &str, text: &str) {
    insta::assert_snapshot!(name, text);
}

fn run_ok(env: &Env, args: &[&str]) -> String {
    let out = env.mlrun(args);
    assert_eq!(out.code, 0, "{out:?}");
    out.all()
}

/// Producer → consumer step edges recorded in the store for the latest run: a step that used a
/// version another step of the run generated (the path itself, or a file inside that directory).
fn recorded_edges(env: &Env) -> BTreeSet<(String, String)> {
    rows(
        &env.db(),
        "SELECT DISTINCT p.step, c.step FROM io_edges o
           JOIN step_execs p ON p.id = o.step_exec
           JOIN artifact_versions ov ON ov.id = o.av_id
           JOIN artifacts oa ON oa.id = ov.artifact_id
           JOIN step_execs c ON c.run_id = p.run_id
           JOIN io_edges i ON i.step_exec = c.id AND i.direction = 'in'
           JOIN artifact_versions iv ON iv.id = i.av_id
           JOIN artifacts ia ON ia.id = iv.artifact_id
          WHERE o.direction = 'out'
            AND (ia.path = oa.path OR ia.path LIKE oa.path || '/%')
            AND p.run_id = (SELECT id FROM runs ORDER BY started_at DESC LIMIT 1)",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

fn edges(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn read(env: &Env, p: &str) -> String {
    std::fs::read_to_string(env.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

#[test]
fn stages_deps_outs_params_and_metrics() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[
            (
                "params.yaml",
                "prepare:\n  rows: 4\ntrain:\n  lr: 0.5\n  epochs: 2\n",
            ),
            ("raw.txt", "a\nb\nc\nd\ne\nf\n"),
            (
                "dvc.yaml",
                r#"stages:
  prepare:
    cmd: head -n 4 raw.txt > prepared.txt
    deps:
      - raw.txt
    params:
      - prepare.rows
    outs:
      - prepared.txt
  train:
    cmd: >-
      python3 -c "import json; n=len(open('prepared.txt').read().split());
      open('model.txt','w').write(str(n)); json.dump({'rows': n}, open('scores.json','w'))"
    deps:
      - prepared.txt
    params:
      - train
    outs:
      - model.txt
    metrics:
      - scores.json:
          cache: false
"#,
            ),
        ],
    );
    snapshot("import_basic", &toml);
    run_ok(&env, &["pipeline.toml"]);
    assert_eq!(read(&env, "model.txt"), "4");
    assert_eq!(recorded_edges(&env), edges(&[("prepare", "train")]));
    let db = env.db();
    let params = rows(
        &db,
        "SELECT p.key FROM params p JOIN step_execs s ON s.id = p.step_exec WHERE s.step = 'train' ORDER BY p.key",
    );
    assert_eq!(params, [["train.epochs"], ["train.lr"]]);
    assert_eq!(
        one::<f64>(&db, "SELECT value FROM metrics WHERE key = 'rows'"),
        4.0
    );
}

#[test]
fn a_list_of_commands_runs_in_sequence_and_stops_at_a_failure() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[(
            "dvc.yaml",
            r#"stages:
  build:
    cmd:
      - mkdir -p out
      - echo one > out/a.txt
      - cat out/a.txt out/a.txt > out/b.txt
    outs:
      - out
"#,
        )],
    );
    snapshot("import_cmd_list", &toml);
    run_ok(&env, &["pipeline.toml"]);
    assert_eq!(read(&env, "out/b.txt"), "one\none\n");

    // the commands are joined with && : a failing one stops the rest, as in DVC
    env.write(
        "dvc.yaml",
        "stages:\n  build:\n    cmd:\n      - mkdir -p out2\n      - 'false'\n      - touch out2/never\n    outs:\n      - out2\n",
    );
    let out = env.mlrun(&["import", "dvc.yaml", "--force"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.mlrun(&["pipeline.toml"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!env.path("out2/never").exists());
}

#[test]
fn output_options_cache_persist_and_plots() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[(
            "dvc.yaml",
            r#"stages:
  fit:
    cmd: printf 'epoch,loss\n1,0.5\n' > loss.csv && echo w > weights.bin && echo c > cache.bin
    outs:
      - weights.bin:
          persist: true
          desc: the trained weights
      - cache.bin:
          cache: false
    plots:
      - loss.csv:
          x: epoch
          y: loss
          cache: false
    always_changed: true
    desc: fit the model
  log:
    cmd: echo run >> history.log
    outs:
      - history.log:
          persist: true
"#,
        )],
    );
    snapshot("import_outs_options", &toml);
    run_ok(&env, &["pipeline.toml"]);
    // persist: the step appends to what the last run left
    run_ok(&env, &["pipeline.toml", "--force=log"]);
    assert_eq!(read(&env, "history.log"), "run\nrun\n");
    // store = false: hashed, no copy kept
    let stored = rows(
        &env.db(),
        "SELECT DISTINCT a.path, b.stored FROM io_edges e JOIN artifact_versions v ON v.id = e.av_id
           JOIN artifacts a ON a.id = v.artifact_id JOIN blobs b ON b.hash = v.blob_hash
          WHERE e.direction = 'out' ORDER BY a.path",
    );
    assert_eq!(
        stored,
        [
            ["cache.bin", "0"],
            ["history.log", "1"],
            ["loss.csv", "0"],
            ["weights.bin", "1"]
        ]
    );
}

#[test]
fn params_files_whole_and_keyed() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[
            ("params.yaml", "seed: 7\nmodel:\n  depth: 3\n  width: 8\n"),
            ("extra.yaml", "threshold: 0.25\nlabel: spam\n"),
            ("tuning.json", "{\"grid\": [1, 2]}\n"),
            (
                "dvc.yaml",
                r#"stages:
  whole:
    cmd: echo "$MLRUN_PARAM_SEED $MLRUN_PARAM_MODEL_DEPTH" > whole.txt
    params:
      - params.yaml:
    outs:
      - whole.txt
  keyed:
    cmd: cat extra.yaml tuning.json > keyed.txt
    params:
      - seed
      - model.width
      - extra.yaml:
          - threshold
      - tuning.json:
    outs:
      - keyed.txt
"#,
            ),
        ],
    );
    snapshot("import_params", &toml);
    run_ok(&env, &["pipeline.toml"]);
    assert_eq!(read(&env, "whole.txt"), "7 3\n");
    let db = env.db();
    let keys = |step: &str| {
        rows(
            &db,
            &format!(
                "SELECT p.key FROM params p JOIN step_execs s ON s.id = p.step_exec WHERE s.step = '{step}' ORDER BY p.key"
            ),
        )
    };
    assert_eq!(keys("whole").len(), 3);
    assert_eq!(keys("keyed"), [["model.width"], ["seed"]]);
    // the other params files are inputs: a change to one reruns the step
    env.write("extra.yaml", "threshold: 0.5\nlabel: spam\n");
    let out = run_ok(&env, &["pipeline.toml"]);
    assert!(out.contains("✓ keyed"), "{out}");
    assert!(out.contains("= whole"), "{out}");
}

#[test]
fn wdir_becomes_cwd_and_paths_are_rebased() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[
            ("src/params.yaml", "scale: 3\n"),
            ("src/input.txt", "x\n"),
            (
                "dvc.yaml",
                r#"stages:
  make:
    wdir: src
    cmd: cat input.txt input.txt input.txt > ../build/out.txt
    deps:
      - input.txt
    params:
      - scale
    outs:
      - ../build/out.txt
  use:
    cmd: wc -l < build/out.txt > lines.txt
    deps:
      - build/out.txt
    outs:
      - lines.txt
"#,
            ),
        ],
    );
    std::fs::create_dir_all(env.path("build")).unwrap();
    snapshot("import_wdir", &toml);
    run_ok(&env, &["pipeline.toml"]);
    assert_eq!(read(&env, "lines.txt").trim(), "3");
    assert_eq!(recorded_edges(&env), edges(&[("make", "use")]));
}

#[test]
fn vars_inline_and_from_files_fill_templates() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[
            (
                "config/paths.yaml",
                "dirs:\n  data: data\n  out: results\nunused: 1\n",
            ),
            ("params.yaml", "greeting: hello\n"),
            ("data/in.txt", "payload\n"),
            (
                "dvc.yaml",
                r#"vars:
  - config/paths.yaml:dirs
  - name: report
    ext: md
stages:
  render:
    vars:
      - title: Weekly
    cmd: mkdir -p ${dirs.out} && echo "${greeting} ${title}" | cat - ${dirs.data}/in.txt > ${dirs.out}/${name}.${ext}
    deps:
      - ${dirs.data}/in.txt
    outs:
      - ${dirs.out}/${name}.${ext}
"#,
            ),
        ],
    );
    snapshot("import_vars", &toml);
    run_ok(&env, &["pipeline.toml"]);
    assert_eq!(read(&env, "results/report.md"), "hello Weekly\npayload\n");
    // `greeting` comes from params.yaml: mlrun fills it in at run time, so -p changes it
    run_ok(&env, &["pipeline.toml", "-p", "greeting=bye"]);
    assert_eq!(read(&env, "results/report.md"), "bye Weekly\npayload\n");
}

#[test]
fn foreach_over_a_list_expands_one_step_per_item() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[
            ("params.yaml", "cities: [paris, oslo, san jose]\n"),
            (
                "dvc.yaml",
                r#"stages:
  fetch:
    foreach: ${cities}
    do:
      cmd: mkdir -p raw && echo "${item}" > "raw/${item}.txt"
      outs:
        - raw/${item}.txt
  merge:
    cmd: cat raw/paris.txt raw/oslo.txt "raw/san jose.txt" > all.txt
    deps:
      - raw/paris.txt
      - raw/oslo.txt
      - raw/san jose.txt
    outs:
      - all.txt
"#,
            ),
        ],
    );
    snapshot("import_foreach_list", &toml);
    run_ok(&env, &["pipeline.toml"]);
    assert_eq!(read(&env, "all.txt"), "paris\noslo\nsan jose\n");
    assert_eq!(
        recorded_edges(&env),
        edges(&[
            ("fetch.oslo", "merge"),
            ("fetch.paris", "merge"),
            ("fetch.san_jose", "merge"),
        ])
    );
}

#[test]
fn foreach_over_a_dict_and_a_list_of_dicts() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[(
            "dvc.yaml",
            r#"vars:
  - sizes:
      - {n: 2, tag: small}
      - {n: 5, tag: big}
stages:
  region:
    foreach:
      eu: {rate: 0.2, currency: EUR}
      us: {rate: 0.1, currency: USD}
    do:
      cmd: echo "${key} ${item.rate} ${item.currency}" > tax-${key}.txt
      outs:
        - tax-${key}.txt
  sample:
    foreach: ${sizes}
    do:
      cmd: seq ${item.n} > sample-${item.tag}.txt
      outs:
        - sample-${item.tag}.txt
"#,
        )],
    );
    snapshot("import_foreach_dict", &toml);
    run_ok(&env, &["pipeline.toml"]);
    assert_eq!(read(&env, "tax-eu.txt"), "eu 0.2 EUR\n");
    assert_eq!(read(&env, "tax-us.txt"), "us 0.1 USD\n");
    assert_eq!(read(&env, "sample-big.txt"), "1\n2\n3\n4\n5\n");
    let steps = rows(&env.db(), "SELECT step FROM step_execs ORDER BY seq");
    assert_eq!(
        steps,
        [["region.eu"], ["region.us"], ["sample.0"], ["sample.1"]]
    );
}

#[test]
fn matrix_expands_every_combination() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[
            ("data.txt", "1\n2\n3\n"),
            (
                "dvc.yaml",
                r#"stages:
  train:
    matrix:
      model: [linear, tree]
      lr: [0.1, 0.01]
    cmd: echo "${item.model} ${item.lr}" | cat - data.txt > model-${key}.txt
    deps:
      - data.txt
    outs:
      - model-${key}.txt
  compare:
    cmd: cat model-linear-0.1.txt model-tree-0.01.txt > best.txt
    deps:
      - model-linear-0.1.txt
      - model-tree-0.01.txt
    outs:
      - best.txt
"#,
            ),
        ],
    );
    snapshot("import_matrix", &toml);
    run_ok(&env, &["pipeline.toml"]);
    assert_eq!(read(&env, "model-tree-0.1.txt"), "tree 0.1\n1\n2\n3\n");
    assert_eq!(
        recorded_edges(&env),
        edges(&[
            ("train.linear-0.1", "compare"),
            ("train.tree-0.01", "compare")
        ])
    );
    assert_eq!(one::<i64>(&env.db(), "SELECT count(*) FROM step_execs"), 5);
}

#[test]
fn frozen_stages_are_kept_commented_out() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[
            ("labels.csv", "id,label\n1,a\n"),
            (
                "dvc.yaml",
                r#"stages:
  label:
    cmd: curl -o labels.csv https://example.invalid/labels.csv
    frozen: true
    outs:
      - labels.csv
  count:
    cmd: wc -l < labels.csv > count.txt
    deps:
      - labels.csv
    outs:
      - count.txt
"#,
            ),
        ],
    );
    snapshot("import_frozen", &toml);
    let out = run_ok(&env, &["pipeline.toml"]);
    assert!(!out.contains("curl"), "{out}");
    assert_eq!(read(&env, "count.txt").trim(), "2");
}

#[test]
fn params_in_cmd_stay_params_and_dicts_unpack() {
    let env = Env::git();
    let toml = convert(
        &env,
        &[
            (
                "params.yaml",
                "train:\n  epochs: 3\n  lr: 0.05\nflags:\n  verbose: true\n  quiet: false\n  name: my run\n",
            ),
            (
                "train.py",
                "import sys\nopen('args.txt', 'w').write(' '.join(sys.argv[1:]) + '\\n')\n",
            ),
            (
                "dvc.yaml",
                r#"stages:
  train:
    cmd: python3 train.py --epochs ${train.epochs} --lr ${train.lr} ${flags}
    deps:
      - train.py
    outs:
      - args.txt
"#,
            ),
        ],
    );
    snapshot("import_cmd_params", &toml);
    run_ok(&env, &["pipeline.toml"]);
    assert_eq!(
        read(&env, "args.txt"),
        "--epochs 3 --lr 0.05 --verbose --name my run\n"
    );
    // the params used in cmd are recorded, and a change to them reruns the step
    let keys = rows(&env.db(), "SELECT key FROM params ORDER BY key");
    assert_eq!(keys, [["train.epochs"], ["train.lr"]]);
    env.write(
        "params.yaml",
        "train:\n  epochs: 4\n  lr: 0.05\nflags:\n  verbose: true\n  quiet: false\n  name: my run\n",
    );
    run_ok(&env, &["pipeline.toml"]);
    assert!(read(&env, "args.txt").starts_with("--epochs 4 "));
}

#[test]
fn a_dvc_yaml_in_a_subdirectory_is_rebased_onto_the_output() {
    let env = Env::git();
    env.write("ml/params.yaml", "k: 2\n");
    env.write("ml/in.txt", "in\n");
    env.write(
        "ml/dvc.yaml",
        "stages:\n  copy:\n    cmd: cp in.txt out.txt && echo ${k} >> out.txt\n    deps: [in.txt]\n    params: [k]\n    outs: [out.txt]\n",
    );
    let out = env.mlrun(&["import", "ml/dvc.yaml", "-o", "pipeline.toml"]);
    assert_eq!(out.code, 0, "{out:?}");
    let toml = read(&env, "pipeline.toml");
    snapshot("import_subdirectory", &toml);
    run_ok(&env, &["pipeline.toml"]);
    assert_eq!(read(&env, "ml/out.txt"), "in\n2\n");
    // writing below dvc.yaml's directory cannot express its paths
    std::fs::create_dir_all(env.path("ml/deeper")).unwrap();
    let out = env.mlrun(&["import", "ml/dvc.yaml", "-o", "ml/deeper/p.toml"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("directory or above it"), "{out:?}");
}

#[test]
fn bad_input_is_located_and_nothing_is_overwritten() {
    let env = Env::git();
    let case = |yaml: &str| {
        env.write("dvc.yaml", yaml);
        let out = env.mlrun(&["import", "dvc.yaml", "-o", "bad.toml"]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(!env.path("bad.toml").exists());
        out.stderr
    };
    let e = case("stages:\n  a:\n    cmd: [unclosed\n");
    assert!(e.contains("error: dvc.yaml:4:1: not valid YAML"), "{e}");
    let e =
        case("stages:\n  a:\n    cmd: echo\n  b:\n    outs: [x]\n    cmd: echo ${missing.key}\n");
    assert!(
        e.contains("dvc.yaml:6: stage `b`, `cmd`: `${missing.key}` is not defined"),
        "{e}"
    );
    let e = case("stages:\n  a:\n    cmd: echo\n    dep: [x]\n");
    assert!(
        e.contains("dvc.yaml:4: stage `a`, `dep`: is not a DVC stage key"),
        "{e}"
    );
    assert!(e.contains("did you mean `deps`?"), "{e}");
    let e = case("stagse:\n  a:\n    cmd: echo\n");
    assert!(e.contains("did you mean `stages`?"), "{e}");
    let e = case("stages:\n  a:\n    outs: [x]\n");
    assert!(
        e.contains("stage `a`, `cmd`: the stage has no `cmd`"),
        "{e}"
    );
    let e = case("stages:\n  a:\n    cmd: echo\n    params: [nope]\n");
    assert!(
        e.contains("params file `params.yaml` does not exist"),
        "{e}"
    );

    // data DVC would pull is not here: the file is written, and mlrun says why it cannot run yet
    env.write(
        "dvc.yaml",
        "stages:\n  a:\n    cmd: wc -l data.csv > n.txt\n    deps: [data.csv]\n    outs: [n.txt]\n",
    );
    let out = env.mlrun(&["import", "dvc.yaml", "-o", "pulled.toml"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("input `data.csv` of step `a` does not exist"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("mlrun will refuse to run it until"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("run it with"), "{out:?}");
    env.write("data.csv", "x\n");
    let run = env.mlrun(&["pulled.toml"]);
    assert_eq!(run.code, 0, "{run:?}");

    // an existing output is never overwritten without --force
    env.write(
        "dvc.yaml",
        "stages:\n  a:\n    cmd: echo hi > a.txt\n    outs: [a.txt]\n",
    );
    env.write("pipeline.toml", "# mine\n");
    let out = env.mlrun(&["import", "dvc.yaml"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("already exists"), "{out:?}");
    assert_eq!(read(&env, "pipeline.toml"), "# mine\n");
    // `-o -` prints it and writes nothing
    let out = env.mlrun(&["import", "dvc.yaml", "-o", "-"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("[steps.a]\ncmd = \"echo hi > a.txt\""),
        "{out:?}"
    );
    assert_eq!(read(&env, "pipeline.toml"), "# mine\n");
    let out = env.mlrun(&["import", "dvc.yaml", "--force"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(read(&env, "pipeline.toml").contains("[steps.a]"));
}

/// A pipeline with fan-out, fan-in, foreach, matrix, wdir and a directory output: mlrun's recorded
/// edges match the hand-computed DAG, and `dvc dag --dot` when DVC is installed.
#[test]
fn edges_match_dvc_dag() {
    let env = Env::git();
    let dvc_yaml = r#"stages:
  ingest:
    cmd: mkdir -p data && echo raw > data/raw.txt && echo ref > data/ref.txt
    outs:
      - data
  clean:
    foreach: [raw, ref]
    do:
      cmd: mkdir -p clean && tr a-z A-Z < data/${item}.txt > clean/${item}.txt
      deps:
        - data/${item}.txt
      outs:
        - clean/${item}.txt
  features:
    wdir: clean
    cmd: cat raw.txt ref.txt > ../features.txt
    deps:
      - raw.txt
      - ref.txt
    outs:
      - ../features.txt
  fit:
    matrix:
      algo: [a, b]
    cmd: cp features.txt model-${item.algo}.txt
    deps:
      - features.txt
    outs:
      - model-${item.algo}.txt
  report:
    cmd: cat model-a.txt model-b.txt data/ref.txt > report.txt
    deps:
      - model-a.txt
      - model-b.txt
      - data/ref.txt
    outs:
      - report.txt
"#;
    // the wdir of `features` is kept in the repository, as DVC needs it to exist too
    convert(&env, &[("clean/.keep", ""), ("dvc.yaml", dvc_yaml)]);
    run_ok(&env, &["pipeline.toml"]);
    let expected = edges(&[
        ("ingest", "clean.raw"),
        ("ingest", "clean.ref"),
        ("ingest", "report"),
        ("clean.raw", "features"),
        ("clean.ref", "features"),
        ("features", "fit.a"),
        ("features", "fit.b"),
        ("fit.a", "report"),
        ("fit.b", "report"),
    ]);
    assert_eq!(recorded_edges(&env), expected);

    let Some(dvc) = dvc_command() else {
        crate::common::skip_unless_ci(
            "the comparison with `dvc dag`: DVC is not installed (put `dvc` on PATH or set MLRUN_TEST_DVC to its path)",
        );
        return;
    };
    let run = |args: &[&str]| {
        let out = Command::new(&dvc)
            .args(args)
            .current_dir(&env.root)
            .env("HOME", &env.home)
            .env("DVC_NO_ANALYTICS", "1")
            .output()
            .expect("dvc runs");
        assert!(
            out.status.success(),
            "dvc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["init", "-q"]);
    let dot = run(&["dag", "--dot"]);
    // `"a" -> "b";` lines, DVC's stage names made into mlrun's
    let dvc_edges: BTreeSet<(String, String)> = dot
        .lines()
        .filter_map(|l| {
            let (a, b) = l.trim().trim_end_matches(';').split_once(" -> ")?;
            let name = |s: &str| s.trim_matches('"').replace('@', ".");
            Some((name(a), name(b)))
        })
        .collect();
    assert_eq!(dvc_edges, expected, "dvc dag --dot:\n{dot}");
    eprintln!("`dvc dag --dot` has the same {} edges", dvc_edges.len());
}

/// `dvc`, from MLRUN_TEST_DVC or PATH, if it runs.
fn dvc_command() -> Option<String> {
    let candidate = std::env::var("MLRUN_TEST_DVC").unwrap_or_else(|_| "dvc".into());
    let ok = Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(candidate)
}

/// Names and commands of matrix, foreach, dict unpacking, params and `\${` come out as DVC
/// renders them: checked against DVC's own rendering when DVC is installed.
#[test]
fn rendered_commands_match_dvc() {
    let env = Env::git();
    convert(
        &env,
        &[
            (
                "params.yaml",
                "lrs: [0.1, 1.0e-5]\ntrain: {epochs: 3}\nargs: {depth: 2, fast: true, slow: false, name: a b, ids: [1, 2]}\n",
            ),
            (
                "dvc.yaml",
                r#"stages:
  fit:
    matrix:
      lr: ${lrs}
      cfg: [{a: 1}, {a: 2}]
    cmd: echo ${item.lr} ${item.cfg.a} ${key} ${train.epochs} ${args}
  each:
    foreach: [{n: 1}, {n: 2}]
    do:
      cmd: echo ${item.n} \${literal}
"#,
            ),
        ],
    );
    run_ok(&env, &["pipeline.toml"]);
    let ours: BTreeSet<(String, String)> = rows(&env.db(), "SELECT step, cmd FROM step_execs")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let unpacked = "--depth 2 --fast --name 'a b' --ids 1 2";
    let expected: BTreeSet<(String, String)> = [
        ("fit.0.1-cfg0", format!("echo 0.1 1 0.1-cfg0 3 {unpacked}")),
        ("fit.0.1-cfg1", format!("echo 0.1 2 0.1-cfg1 3 {unpacked}")),
        (
            "fit.1e-05-cfg0",
            format!("echo 1e-05 1 1e-05-cfg0 3 {unpacked}"),
        ),
        (
            "fit.1e-05-cfg1",
            format!("echo 1e-05 2 1e-05-cfg1 3 {unpacked}"),
        ),
        ("each.0", "echo 1 ${literal}".to_string()),
        ("each.1", "echo 2 ${literal}".to_string()),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect();
    assert_eq!(ours, expected);

    // DVC's own rendering, through the Python beside the `dvc` it installed
    let dvc = dvc_command();
    let python = dvc
        .as_ref()
        .map(|d| std::path::Path::new(d).with_file_name("python"))
        .filter(|p| p.is_file());
    let (Some(dvc), Some(python)) = (dvc, python) else {
        crate::common::skip_unless_ci(
            "the comparison with DVC's rendering: no DVC virtualenv (set MLRUN_TEST_DVC to the `dvc` of one)",
        );
        return;
    };
    let init = Command::new(dvc)
        .args(["init", "-q"])
        .current_dir(&env.root)
        .env("HOME", &env.home)
        .env("DVC_NO_ANALYTICS", "1")
        .status()
        .expect("dvc runs");
    assert!(init.success());
    let out = Command::new(python)
        .args([
            "-c",
            "from dvc.repo import Repo\nfor s in Repo('.').index.stages: print(s.addressing.replace('@', '.') + '\\t' + s.cmd)",
        ])
        .current_dir(&env.root)
        .env("HOME", &env.home)
        .env("DVC_NO_ANALYTICS", "1")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: BTreeSet<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(theirs, expected);
    eprintln!("DVC renders the same {} commands", theirs.len());
}

//! `runs --remote`, answered by PostgreSQL itself: every filter, sort, limit and column form
//! prints what the local `runs` prints over the same runs (text and `--json`), and bad input
//! gives the same one-line error.

use super::*;

const TEAM: &str = r#"
[pipeline]
name = "team"

[steps.prep]
cmd = "mkdir -p out && cp data/in.txt out/n.txt && echo rows=3 >> $MLRUN_METRICS"
inputs = ["data"]
outputs = ["out/n.txt"]

[steps.train]
cmd = "cat out/n.txt > model.txt && echo accuracy=$MLRUN_PARAM_LR >> $MLRUN_METRICS && echo rows=4 >> $MLRUN_METRICS"
inputs = ["out/n.txt"]
outputs = ["model.txt"]
params = ["lr", "name", "flag", "layers"]

[params]
lr = 0.1
name = "a"
flag = true
layers = [1, 2]
"#;

const FLAKY: &str = r#"
[pipeline]
name = "flaky"

[steps.measure]
cmd = "echo loss=0.5 >> $MLRUN_METRICS && echo m > m.txt"
outputs = ["m.txt"]

[steps.go]
cmd = "cat m.txt && exit 3"
inputs = ["m.txt"]
"#;

/// A project with runs of every kind, pushed: params of each type, metrics reported by two
/// steps (the later one counts), messages, a failed run of a second pipeline, a replay and a
/// sweep of two variants.
fn pushed_project(r: &Remote) -> Env {
    let mut env = Env::git();
    r.configure(&mut env);
    env.write("pipeline.toml", TEAM);
    env.write("flaky.toml", FLAKY);
    env.write("data/in.txt", "a\n1\n");
    env.commit("project");
    ok(&env.mlrun(&["run"]));
    env.write("data/in.txt", "b\n2\n");
    ok(&env.mlrun(&[
        "run",
        "-p",
        "lr=0.3",
        "-p",
        "name=b",
        "-m",
        "Second TRY with Dropout",
    ]));
    ok(&env.mlrun(&[
        "run",
        "-p",
        "flag=false",
        "-p",
        "layers=[3]",
        "-m",
        "third\nwith a second line",
    ]));
    let failed = env.mlrun(&["run", "flaky.toml"]);
    assert_ne!(failed.code, 0, "{failed:?}");
    let second = env.run_ids()[1].clone();
    ok(&env.mlrun(&["replay", &second]));
    ok(&env.mlrun(&["run", "--sweep", "-p", "lr=0.4,0.5"]));
    ok(&env.mlrun(&["push"]));
    env
}

/// `runs --json` without what a push does not send: the sweep a run was part of.
fn without_sweep(mut v: serde_json::Value) -> serde_json::Value {
    for r in v.as_array_mut().into_iter().flatten() {
        r["sweep_id"] = serde_json::Value::Null;
    }
    v
}

#[test]
fn runs_on_the_remote_answer_every_filter_and_sort_as_the_local_list() {
    let Some(r) = Remote::new() else { return };
    let env = pushed_project(&r);
    let all = json(&env.mlrun(&["runs", "-n", "0", "--json"]));
    assert_eq!(all.as_array().unwrap().len(), 7, "{all}");
    // a time between the runs: the third run's start
    let third = all.as_array().unwrap()[4]["started_at"].as_i64().unwrap();
    let since = jiff::Timestamp::from_millisecond(third)
        .unwrap()
        .to_string();
    let forms: Vec<Vec<&str>> = vec![
        vec![],
        vec!["-n", "0"],
        vec!["-n", "2"],
        vec!["--pipeline", "team"],
        vec!["--pipeline", "flaky"],
        vec!["--status", "failed"],
        vec!["--status", "succeeded", "-n", "3"],
        vec!["--since", &since],
        vec!["--since", "2d"],
        vec!["--since", "2999-01-01"],
        vec!["--param", "lr=0.3"],
        vec!["--param", "lr=0.1", "--param", "name=a"],
        vec!["--param", "name=b"],
        vec!["--param", "name=0.3"],
        vec!["--param", "flag=false"],
        // as SQLite's json_extract reads it, true is 1
        vec!["--param", "flag=1"],
        vec!["--param", "layers=[1, 2]"],
        vec!["--param", "layers=[3]"],
        vec!["--metric", "accuracy>0.15"],
        vec!["--metric", "accuracy<=0.3", "--metric", "rows=4"],
        vec!["--metric", "accuracy!=0.1"],
        vec!["--metric", "rows==3"],
        vec!["--metric", "loss>0"],
        vec!["--sort", "accuracy"],
        vec!["--sort", "accuracy:asc"],
        vec!["--sort", "accuracy", "-n", "2"],
        vec!["--sort", "loss:desc"],
        vec!["--sort", "no_such_metric"],
        vec!["--grep", "dropout"],
        vec!["--grep", "TRY WITH"],
        vec!["--grep", "second line"],
        vec!["--grep", "nowhere"],
        vec!["--replays"],
        vec!["--no-replays"],
        vec!["--replays", "--sort", "accuracy"],
        vec!["--columns", "status,params.lr,params.name,metrics.accuracy"],
        vec![
            "--columns",
            "message",
            "--columns",
            "params.layers,metrics.rows",
        ],
        vec!["--columns", "started,duration,commit"],
        vec![
            "--pipeline",
            "team",
            "--no-replays",
            "--sort",
            "accuracy:asc",
            "--since",
            "2d",
            "-n",
            "3",
        ],
    ];
    for form in forms {
        for json_out in [false, true] {
            let mut args = vec!["runs"];
            args.extend(&form);
            if json_out {
                args.push("--json");
            }
            let local = env.mlrun(&args);
            ok(&local);
            args.push("--remote");
            let remote = env.mlrun(&args);
            ok(&remote);
            if json_out {
                assert_eq!(
                    without_sweep(json(&local)),
                    json(&remote),
                    "{args:?}\n{}",
                    local.stdout
                );
            } else {
                assert_eq!(local.stdout, remote.stdout, "{args:?}");
            }
        }
    }
    // a teammate's clone, with no store, sees the same list
    let clone = clone_of(&env, &r);
    for form in [vec!["runs", "-n", "0"], vec!["runs", "--sort", "rows"]] {
        let mut remote = form.clone();
        remote.push("--remote");
        assert_eq!(env.mlrun(&form).stdout, clone.mlrun(&remote).stdout);
    }
    assert!(
        !clone.path(".mlrun/lineage.db").exists(),
        "a query made a store"
    );
}

#[test]
fn bad_runs_filters_on_the_remote_give_the_local_one_line_errors() {
    let Some(r) = Remote::new() else { return };
    let env = pushed_project(&r);
    let bad: Vec<Vec<&str>> = vec![
        vec!["--metric", "acuracy>0.1"],
        vec!["--param", "lrr=0.1"],
        vec!["--pipeline", "teem"],
        vec!["--columns", "metrics.nope"],
        vec!["--columns", "params.nope"],
        vec!["--since", "yesterday-ish"],
        vec!["--metric", "accuracy>high"],
        vec!["--sort", "accuracy:up"],
    ];
    for form in bad {
        let mut args = vec!["runs"];
        args.extend(&form);
        let local = env.mlrun(&args);
        assert_ne!(local.code, 0, "{args:?}: {local:?}");
        args.push("--remote");
        let remote = env.mlrun(&args);
        assert_eq!(
            (local.code, &local.stdout, &local.stderr),
            (remote.code, &remote.stdout, &remote.stderr),
            "{args:?}"
        );
    }
    // which sweep a run was part of stays where it ran: said in one line
    let out = env.mlrun(&["runs", "--sweep", "0", "--remote"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("a push does not send which sweep"),
        "{out:?}"
    );
    assert_eq!(
        out.stderr.lines().next().map(|l| l.starts_with("error")),
        Some(true),
        "{out:?}"
    );
}

#[test]
fn show_diff_compare_by_id_or_pipeline_on_the_remote_print_what_they_print_locally() {
    // (no sweep's run is shown: which sweep a run was part of is not pushed)
    let Some(r) = Remote::new() else { return };
    let env = pushed_project(&r);
    let ids = env.run_ids();
    let (first, second, third) = (ids[0].as_str(), ids[1].as_str(), ids[2].as_str());
    let forms: Vec<Vec<&str>> = vec![
        vec!["show", first, "--json"],
        vec!["show", second],
        // its first step reused the second run's: said as locally
        vec!["show", third],
        vec!["diff", first, second],
        vec!["diff", second],
        vec!["compare", first, second, "--json"],
        vec![
            "compare",
            "--pipeline",
            "team",
            "-n",
            "3",
            "--sort",
            "accuracy:asc",
        ],
        vec!["compare", "--pipeline", "team", "-n", "4", "--json"],
        vec!["compare", "--pipeline", "flaky"],
    ];
    for args in forms {
        let local = env.mlrun(&args);
        ok(&local);
        let mut remote_args = args.clone();
        remote_args.push("--remote");
        let remote = env.mlrun(&remote_args);
        ok(&remote);
        if args.contains(&"show") && args.contains(&"--json") {
            let (mut l, mut m) = (json(&local), json(&remote));
            strip(&mut l);
            strip(&mut m);
            assert_eq!(l, m, "{args:?}");
        } else {
            assert_eq!(local.stdout, remote.stdout, "{args:?}");
        }
    }
}

#[test]
fn show_and_diff_of_latest_n_past_the_twentieth_run_on_the_remote_print_what_they_print_locally() {
    let Some(r) = Remote::new() else { return };
    let mut env = Env::git();
    r.configure(&mut env);
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo $MLRUN_PARAM_K > o.txt\"\noutputs = [\"o.txt\"]\nparams = [\"k\"]\n\n[params]\nk = 0\n",
    );
    env.commit("project");
    for k in 0..24 {
        ok(&env.mlrun(&["run", "-p", &format!("k={k}")]));
    }
    ok(&env.mlrun(&["push"]));
    for args in [
        // (not `show o.txt@latest~21`: a view holds the runs it needs, so an artifact's list of
        // versions would count only theirs)
        vec!["show", "latest~22"],
        vec!["diff", "latest~22"],
        vec!["diff", "latest~23", "latest"],
    ] {
        let local = env.mlrun(&args);
        ok(&local);
        let mut remote_args = args.clone();
        remote_args.push("--remote");
        let remote = env.mlrun(&remote_args);
        ok(&remote);
        assert_eq!(local.stdout, remote.stdout, "{args:?}");
    }
}

//! `mlrun checkout`: recorded versions put back into the working tree from the object store,
//! never over content the store does not hold (unless `--force`); and `status` pointing at it.

use serde_json::Value;

use crate::common::{Env, json};

fn read(env: &Env, rel: &str) -> String {
    std::fs::read_to_string(env.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `prep` reads an untracked file (an external input) and writes a directory; `train` writes a
/// file from a param; `report` depends on nothing.
const PIPELINE: &str = r#"
[pipeline]
name = "co"
[params]
lr = 0.1
[steps.prep]
cmd = "mkdir -p feats && cp raw.csv feats/a.csv && echo {params.lr} > feats/b.txt"
inputs = ["raw.csv"]
outputs = ["feats/"]
params = ["lr"]
[steps.train]
cmd = "cat feats/a.csv > model.txt && echo lr={params.lr} >> model.txt"
inputs = ["feats/"]
outputs = ["model.txt"]
params = ["lr"]
[steps.report]
cmd = "echo hello > report.txt"
outputs = ["report.txt"]
"#;

/// Two runs: lr=0.1 with raw.csv `one`, then lr=0.5 with raw.csv `two`.
fn two_runs() -> Env {
    let env = Env::fixed();
    env.write("pipeline.toml", PIPELINE);
    env.write(".gitignore", "/.mlrun/\nraw.csv\n");
    env.commit("pipeline");
    env.write("raw.csv", "one\n");
    let out = env.mlrun(&["-p", "lr=0.1"]);
    assert_eq!(out.code, 0, "{out:?}");
    env.write("raw.csv", "two\n");
    let out = env.mlrun(&["-p", "lr=0.5"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(read(&env, "model.txt"), "two\nlr=0.5\n");
    env
}

#[test]
fn checkout_path_at_run_puts_an_older_version_back() {
    let env = two_runs();
    let out = env.mlrun(&["checkout", "model.txt@latest~1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(read(&env, "model.txt"), "one\nlr=0.1\n");
    assert!(out.stdout.contains("restored"), "{out:?}");
    crate::assert_fixed_snapshot!(&env, "checkout_path_at_run", &out.stdout);
    // a bare path is its latest recorded version
    let v = json(&env.mlrun(&["checkout", "model.txt", "--json"]));
    assert_eq!(read(&env, "model.txt"), "two\nlr=0.5\n");
    assert_eq!(v["restored"], 1, "{v}");
    assert_eq!(v["paths"][0]["action"], "restored", "{v}");
    assert_eq!(v["paths"][0]["role"], "output", "{v}");
    assert_eq!(v["paths"][0]["step"], "train", "{v}");
    // again: nothing to do
    let v = json(&env.mlrun(&["checkout", "model.txt", "--json"]));
    assert_eq!(v["unchanged"], 1, "{v}");
    assert_eq!(v["restored"], 0, "{v}");
    // a directory comes back from its manifest, file by file, extra files gone
    env.write("feats/extra.txt", "x");
    let hash = env.mlrun(&["show", "feats/@latest~1", "--json"]);
    assert_eq!(hash.code, 0, "{hash:?}");
    std::fs::remove_file(env.path("feats/extra.txt")).unwrap();
    let out = env.mlrun(&["checkout", "feats/@latest~1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(read(&env, "feats/a.csv"), "one\n");
    assert_eq!(read(&env, "feats/b.txt"), "0.1\n");
    assert_eq!(std::fs::read_dir(env.path("feats")).unwrap().count(), 2);
    // a file inside a recorded directory
    let out = env.mlrun(&["checkout", "feats/a.csv@latest"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(read(&env, "feats/a.csv"), "two\n");
    assert_eq!(read(&env, "feats/b.txt"), "0.1\n");
}

#[test]
fn checkout_refuses_to_overwrite_a_change_the_store_does_not_hold() {
    let env = two_runs();
    env.write("model.txt", "my hand edit\n");
    let out = env.mlrun(&["checkout", "model.txt@latest~1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("would overwrite a change"), "{out:?}");
    assert!(out.stderr.contains("--force"), "{out:?}");
    assert_eq!(read(&env, "model.txt"), "my hand edit\n");
    crate::assert_fixed_snapshot!(&env, "checkout_refused", &out.stderr);
    // a run's checkout writes nothing when one of its paths is refused
    std::fs::remove_file(env.path("report.txt")).unwrap();
    let out = env.mlrun(&["checkout", "latest~1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!env.path("report.txt").exists(), "{out:?}");
    // content the store holds (another recorded version) is replaced without --force
    let out = env.mlrun(&["checkout", "model.txt@latest", "--force", "--json"]);
    let v = json(&out);
    assert_eq!(v["paths"][0]["overwrote"], true, "{v}");
    assert_eq!(read(&env, "model.txt"), "two\nlr=0.5\n");
    let out = env.mlrun(&["checkout", "model.txt@latest~1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(read(&env, "model.txt"), "one\nlr=0.1\n");
    // a directory with a file the store does not have is refused too
    env.write("feats/mine.txt", "keep me");
    let out = env.mlrun(&["checkout", "feats/@latest~1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(env.path("feats/mine.txt").exists());
}

#[test]
fn checkout_run_puts_back_its_outputs_and_external_inputs() {
    let env = two_runs();
    for p in ["raw.csv", "model.txt", "report.txt"] {
        std::fs::remove_file(env.path(p)).unwrap();
    }
    std::fs::remove_dir_all(env.path("feats")).unwrap();
    // `status` reports every step, and points at checkout for the missing external input
    let st = env.mlrun(&["status"]);
    assert_eq!(st.code, 0, "{st:?}");
    assert!(
        st.stdout
            .contains("input raw.csv does not exist; the store holds its last recorded version"),
        "{st:?}"
    );
    assert!(st.stdout.contains("`mlrun checkout raw.csv`"), "{st:?}");
    assert!(st.stdout.contains("report"), "{st:?}");
    assert!(st.stdout.contains("train"), "{st:?}");
    let stj: Value = serde_json::from_str(&env.mlrun(&["status", "--json"]).stdout).unwrap();
    assert_eq!(stj["steps"].as_array().unwrap().len(), 3, "{stj}");

    let v = json(&env.mlrun(&["checkout", "latest~1", "--json"]));
    assert_eq!(read(&env, "raw.csv"), "one\n");
    assert_eq!(read(&env, "model.txt"), "one\nlr=0.1\n");
    assert_eq!(read(&env, "feats/b.txt"), "0.1\n");
    assert_eq!(read(&env, "report.txt"), "hello\n");
    assert_eq!(v["restored"], 4, "{v}");
    let roles: Vec<(String, String)> = v["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(roles.contains(&("raw.csv".into(), "input".into())), "{v}");
    assert!(roles.contains(&("feats".into(), "output".into())), "{v}");
    // the checked-out run is up to date again: its cache entries match
    let st = env.mlrun(&["status", "-p", "lr=0.1"]);
    assert!(st.stdout.contains("all 3 steps up to date"), "{st:?}");
    // one step's execution
    let out = env.mlrun(&["checkout", "latest:train", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("would restore"), "{out:?}");
    assert_eq!(read(&env, "model.txt"), "one\nlr=0.1\n");
    let out = env.mlrun(&["checkout", "latest:train"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(read(&env, "model.txt"), "two\nlr=0.5\n");
}

#[test]
fn checkout_says_what_it_cannot_put_back() {
    let env = two_runs();
    let out = env.mlrun(&["checkout", "nosuch.txt"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("never recorded"), "{out:?}");
    let out = env.mlrun(&["checkout", "model.txt@nosuchrun"]);
    assert_ne!(out.code, 0, "{out:?}");
    let out = env.mlrun(&["checkout", "latest:tran"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("did you mean `latest:train`"),
        "{out:?}"
    );
    // after gc with --keep-last 1, the first run's model is gone from the store
    let gc = env.mlrun(&["gc", "--keep-last", "1"]);
    assert_eq!(gc.code, 0, "{gc:?}");
    let out = env.mlrun(&["checkout", "model.txt@latest~1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("unavailable"), "{out:?}");
    assert!(out.stdout.contains("mlrun gc"), "{out:?}");
    assert_eq!(read(&env, "model.txt"), "two\nlr=0.5\n");
}

#[test]
fn gc_names_the_runs_that_will_no_longer_replay_and_keep_last_counts_successful_runs() {
    let env = two_runs();
    let first = json(&env.mlrun(&["show", "latest~1", "--json"]))["short_id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = json(&env.mlrun(&["show", "latest", "--json"]))["short_id"]
        .as_str()
        .unwrap()
        .to_string();
    // a newer failed run does not push a successful one out of --keep-last
    env.write("fail.toml", "[steps.f]\ncmd = \"exit 1\"\n");
    assert_eq!(env.mlrun(&["fail.toml"]).code, 1);
    let dry = env.mlrun(&["gc", "--keep-last", "1", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains(&format!(
            "1 run would no longer replay (the stored copies of inputs it read would be deleted): {first}"
        )),
        "{dry:?}"
    );
    assert!(dry.stdout.contains("most recent successful run"), "{dry:?}");
    // counting every run, the failed one is the last: both good runs go
    let all = env.mlrun(&["gc", "--keep-last", "1", "--count-all", "--dry-run"]);
    assert!(
        all.stdout.contains("2 runs would no longer replay") && all.stdout.contains(&second),
        "{all:?}"
    );
    let gc = env.mlrun(&["gc", "--keep-last", "1"]);
    assert_eq!(gc.code, 0, "{gc:?}");
    assert!(
        gc.stdout.contains("1 run will no longer replay") && gc.stdout.contains(&first),
        "{gc:?}"
    );
    // the second run's copies were kept: it still checks out whole
    let out = env.mlrun(&["checkout", &second]);
    assert_eq!(out.code, 0, "{out:?}");
}

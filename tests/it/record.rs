//! The demo pipeline runs and every fact it promises is in the store, with the right values.

use crate::common::{Env, one, rows};

fn demo() -> Env {
    let env = Env::git();
    env.copy_from_repo("pipeline.toml");
    env.copy_from_repo("demo");
    env.write(".gitignore", "/.mlrun/\n/data/\n/model/\n/eval/\n");
    env.write("requirements.txt", "numpy==2.0\n");
    env.commit("demo");
    env
}

// One run of the demo, and every part of its record read back from the database, one
// function per part.
#[test]
fn demo_pipeline_records_hashes_git_params_metrics_and_env() {
    let env = demo();
    let out = env.mlrun(&["pipeline.toml"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("finished: 3 steps ok"), "{out:?}");

    let db = env.db();
    assert_eq!(one::<String>(&db, "SELECT status FROM runs"), "succeeded");
    assert_eq!(one::<i64>(&db, "SELECT exit_code FROM runs"), 0);
    assert_eq!(
        rows(
            &db,
            "SELECT step, status, exit_code FROM step_execs ORDER BY started_at"
        ),
        [
            ["generate", "succeeded", "0"],
            ["train", "succeeded", "0"],
            ["evaluate", "succeeded", "0"]
        ]
    );

    file_and_directory_hashes_match_the_disk(&env, &db);
    lineage_edges_and_origins(&db);
    git_params_and_metrics(&env, &db);
    environment_and_logs(&env, &db);
}

/// Every recorded file hash matches coreutils' sha256sum of the file on disk, and every entry
/// of a directory output too.
fn file_and_directory_hashes_match_the_disk(env: &Env, db: &rusqlite::Connection) {
    // every recorded file hash matches coreutils' sha256sum of the file on disk
    let files = rows(
        db,
        "SELECT a.path, v.blob_hash FROM io_edges e JOIN artifact_versions v ON v.id = e.av_id
         JOIN artifacts a ON a.id = v.artifact_id JOIN blobs b ON b.hash = v.blob_hash WHERE b.kind = 'file'",
    );
    assert!(files.iter().any(|r| r[0] == "eval/metrics.json"));
    for r in &files {
        assert_eq!(r[1], env.sha256sum(&r[0]), "hash of {}", r[0]);
    }
    // directory outputs: every entry is listed with its own correct hash
    let mut entries = Vec::new();
    for r in rows(
        db,
        "SELECT a.path, v.blob_hash, hex(c.data) FROM artifacts a JOIN artifact_versions v ON v.artifact_id = a.id
         JOIN contents c ON c.hash = v.blob_hash WHERE a.path IN ('data', 'model')",
    ) {
        let manifest = hex::decode(&r[2]).unwrap();
        // a directory's hash is the SHA-256 of its manifest
        assert_eq!(mlrun::fingerprint::hash::sha256_bytes(&manifest), r[1]);
        for e in mlrun::fingerprint::hash::parse_manifest(&manifest).expect("a manifest") {
            entries.push([format!("{}/{}", r[0], e.relpath), e.hash]);
        }
    }
    let names: Vec<&str> = entries.iter().map(|r| r[0].as_str()).collect();
    assert!(
        names.contains(&"data/train.csv") && names.contains(&"model/model.json"),
        "{names:?}"
    );
    for r in &entries {
        assert_eq!(r[1], env.sha256sum(&r[0]), "hash of {}", r[0]);
    }
}

/// Lineage edges (train used data/ and generated model/), and where each input came from.
fn lineage_edges_and_origins(db: &rusqlite::Connection) {
    // lineage edges: train used data/ and generated model/
    let edges = rows(
        db,
        "SELECT s.step, e.direction, a.path FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
         JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
         WHERE s.step = 'train' ORDER BY e.direction, a.path",
    );
    assert!(
        edges.contains(&vec!["train".into(), "in".into(), "data".into()]),
        "{edges:?}"
    );
    assert!(
        edges.contains(&vec!["train".into(), "out".into(), "model".into()]),
        "{edges:?}"
    );

    // where each input version came from: the commit, or another step
    let origins = rows(
        db,
        "SELECT DISTINCT a.path, e.origin FROM io_edges e JOIN artifact_versions v ON v.id = e.av_id
         JOIN artifacts a ON a.id = v.artifact_id WHERE e.direction = 'in' ORDER BY a.path",
    );
    assert!(
        origins.contains(&vec!["demo/train.py".into(), "git".into()]),
        "{origins:?}"
    );
    assert!(
        origins.contains(&vec!["data".into(), "step".into()]),
        "{origins:?}"
    );
}

/// The git state at the start, params per step (substituted in the command), and metrics.
fn git_params_and_metrics(env: &Env, db: &rusqlite::Connection) {
    // git: the commit is HEAD, clean tree
    let head = env.git_cmd(&["rev-parse", "HEAD"]);
    let git = rows(
        db,
        "SELECT g.commit_sha, g.branch, g.dirty, g.is_repo FROM runs r JOIN git_snapshots g ON g.id = r.git_start",
    );
    assert_eq!(git, [[head.as_str(), "main", "0", "1"]]);

    // params per step, after substitution in the command
    assert_eq!(
        rows(
            db,
            "SELECT p.key, p.value FROM params p JOIN step_execs s ON s.id = p.step_exec WHERE s.step = 'generate' ORDER BY key"
        ),
        [["data.rows", "2000"], ["seed", "42"]]
    );
    assert_eq!(
        one::<String>(db, "SELECT argv FROM step_execs WHERE step = 'generate'"),
        r#"["sh","-c","python3 demo/generate.py --rows 2000 --seed 42 --out data/"]"#
    );

    // metrics from the declared file and from $MLRUN_METRICS
    let metrics = rows(
        db,
        "SELECT key, value, source FROM metrics m JOIN step_execs s ON s.id = m.step_exec WHERE s.step = 'evaluate' ORDER BY key",
    );
    assert!(
        metrics.contains(&vec![
            "accuracy".into(),
            "0.89".into(),
            "eval/metrics.json".into()
        ]),
        "{metrics:?}"
    );
    assert!(
        metrics.contains(&vec!["n_test".into(), "500".into(), "MLRUN_METRICS".into()]),
        "{metrics:?}"
    );
}

/// The environment (interpreter, lock file hash, machine facts), and the logs captured in full.
fn environment_and_logs(env: &Env, db: &rusqlite::Connection) {
    // environment: interpreter version, lock file hash, machine facts
    let (interp, locks, os, cores): (String, String, String, i64) = db
        .query_row(
            "SELECT e.interpreters, e.lockfiles, e.os, e.cpu_cores FROM env_snapshots e JOIN step_execs s ON s.env_id = e.id WHERE s.step = 'train'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert!(interp.contains("Python 3"), "{interp}");
    assert!(
        locks.contains(&env.sha256sum("requirements.txt")),
        "{locks}"
    );
    assert!(!os.is_empty() && cores >= 1);

    // logs are captured in full
    let log: String = one(
        db,
        "SELECT CAST(c.data AS TEXT) FROM step_logs l JOIN contents c ON c.hash = l.content_hash JOIN step_execs s ON s.id = l.step_exec
         WHERE s.step = 'evaluate' AND l.stream = 'stdout'",
    );
    assert!(log.contains("accuracy=0.89"), "{log}");
}

#[test]
fn dirty_tree_diff_and_untracked_files_are_recorded() {
    let env = demo();
    let train = std::fs::read_to_string(env.path("demo/train.py")).unwrap();
    std::fs::write(
        env.path("demo/train.py"),
        format!("{train}\n# tweak: try a smaller step\n"),
    )
    .unwrap();
    env.write("notes.txt", "scratch\n");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("(dirty)"), "{out:?}");
    let db = env.db();
    let (dirty, changed, untracked, diff): (bool, String, String, String) = db
        .query_row(
            "SELECT g.dirty, g.changed, g.untracked, CAST(c.data AS TEXT) FROM runs r JOIN git_snapshots g ON g.id = r.git_start
             JOIN contents c ON c.hash = g.diff_hash",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert!(dirty);
    assert_eq!(changed, r#"["demo/train.py"]"#);
    assert!(untracked.contains("notes.txt"), "{untracked}");
    assert!(diff.contains("+# tweak: try a smaller step"), "{diff}");
    // a modified tracked input is not recoverable from the commit
    assert_eq!(
        one::<String>(&db, "SELECT DISTINCT e.origin FROM io_edges e JOIN artifact_versions v ON v.id = e.av_id
                            JOIN artifacts a ON a.id = v.artifact_id WHERE a.path = 'demo/train.py'"),
        "external"
    );
    // the recorded diff applies cleanly to the recorded commit
    env.git_cmd(&["stash", "-q"]);
    std::fs::write(env.home.join("tmp/p.diff"), &diff).unwrap();
    env.git_cmd(&[
        "apply",
        "--check",
        env.home.join("tmp/p.diff").to_str().unwrap(),
    ]);
}

#[test]
fn secrets_never_reach_the_store() {
    let mut env = Env::git();
    env.set_env("MY_API_TOKEN", "s3cr3t");
    env.set_env("innocent_looking", "ghp_0123456789abcdefghijklmnopqrstuv");
    env.write(
        "pipeline.toml",
        r#"
[pipeline]
name = "secrets"
[env]
DB_PASSWORD = "hunter2-pw"
[steps.leak]
cmd = "echo ${#MY_API_TOKEN} ${#DB_PASSWORD} > out.txt; echo token=$MY_API_TOKEN pw=$DB_PASSWORD; echo $innocent_looking >&2"
outputs = ["out.txt"]
"#,
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.all().contains("s3cr3t"),
        "live output is masked: {out:?}"
    );
    // the step saw the real values
    assert_eq!(
        std::fs::read_to_string(env.path("out.txt")).unwrap(),
        "6 10\n"
    );
    // nothing in the store directory contains a secret (database, WAL, objects, anything else)
    for entry in walk(&env.path(".mlrun")) {
        let bytes = std::fs::read(&entry).unwrap();
        for secret in [
            "s3cr3t",
            "hunter2-pw",
            "ghp_0123456789abcdefghijklmnopqrstuv",
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {}",
                entry.display()
            );
        }
    }
    // but the variable itself is recorded, redacted
    let vars: String = one(&env.db(), "SELECT env_vars FROM env_snapshots");
    assert!(vars.contains(r#""MY_API_TOKEN":"<redacted:"#), "{vars}");
    assert!(vars.contains(r#""DB_PASSWORD":"<redacted:"#), "{vars}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[test]
fn a_run_outside_any_git_repository_works() {
    let env = Env::plain();
    env.write("in.txt", "hello\n");
    env.write(
        "pipeline.toml",
        "[steps.copy]\ncmd = [\"cp\", \"in.txt\", \"out.txt\"]\ninputs = [\"in.txt\"]\noutputs = [\"out.txt\"]\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("no git repository"), "{out:?}");
    let db = env.db();
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT g.is_repo FROM runs r JOIN git_snapshots g ON g.id = r.git_start"
        ),
        0
    );
    assert_eq!(
        one::<String>(
            &db,
            "SELECT v.blob_hash FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id WHERE a.path = 'out.txt'"
        ),
        env.sha256sum("out.txt")
    );
}

#[test]
fn params_reach_the_step_by_placeholder_env_and_override() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        r#"
[params]
lr = 0.01
[params.model]
depth = 3
[steps.show]
cmd = "echo lr={params.lr} depth=$MLRUN_PARAM_MODEL_DEPTH step=$MLRUN_STEP run=$MLRUN_RUN_ID > out.txt; echo loss=0.25 >> $MLRUN_METRICS"
params = ["model.*"]
outputs = ["out.txt"]
"#,
    );
    env.commit("p");
    let out = env.mlrun(&["run", "-p", "lr=0.5", "--param", "model.depth=7"]);
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(env.path("out.txt")).unwrap();
    let run_id: String = one(&env.db(), "SELECT id FROM runs");
    assert_eq!(text, format!("lr=0.5 depth=7 step=show run={run_id}\n"));
    let db = env.db();
    assert_eq!(
        rows(&db, "SELECT key, value FROM params ORDER BY key"),
        [["lr", "0.5"], ["model.depth", "7"]]
    );
    assert_eq!(
        one::<f64>(&db, "SELECT value FROM metrics WHERE key = 'loss'"),
        0.25
    );
}

#[test]
fn params_file_in_yaml_json_and_toml() {
    for (file, text) in [
        ("params.yaml", "train:\n  n_est: 50\n"),
        ("params.json", r#"{"train": {"n_est": 50}}"#),
        ("params.toml", "[train]\nn_est = 50\n"),
    ] {
        let env = Env::git();
        env.write(file, text);
        env.write(
            "pipeline.toml",
            &format!("[pipeline]\nparams-file = \"{file}\"\n[steps.s]\ncmd = \"echo {{params.train.n_est}} > o\"\noutputs = [\"o\"]\n"),
        );
        let out = env.mlrun(&[]);
        assert_eq!(out.code, 0, "{file}: {out:?}");
        assert_eq!(
            std::fs::read_to_string(env.path("o")).unwrap(),
            "50\n",
            "{file}"
        );
    }
}

#[test]
fn the_text_classify_example_runs_with_parallel_steps() {
    let env = Env::git();
    env.copy_from_repo("examples/text-classify");
    env.commit("example");
    let out = env.mlrun(&["examples/text-classify/pipeline.toml", "-j", "2"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("finished: 5 steps ok"), "{out:?}");
    let db = crate::common::open_db(&env.path("examples/text-classify/.mlrun/lineage.db"));
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT count(*) FROM step_execs WHERE status = 'succeeded'"
        ),
        5
    );
    // params from the params-file are recorded per step
    assert_eq!(
        one::<String>(
            &db,
            "SELECT value FROM params p JOIN step_execs s ON s.id = p.step_exec WHERE s.step = 'ngrams' AND key = 'ngrams.min_count'"
        ),
        "3"
    );
}

/// Twenty kinds of planted secrets: by name, by value, in pipeline.toml, in the git remote URL,
/// echoed by the step. None may appear anywhere under .mlrun/ (database, WAL, objects).
#[test]
fn twenty_kinds_of_secrets_never_reach_the_store() {
    let secrets: &[(&str, &str)] = &[
        ("MY_API_TOKEN", "tok-value-0001"),
        ("SERVICE_SECRET", "sec-value-0002"),
        ("DB_PASSWORD", "pw-value-0003"),
        ("LDAP_PASSWD", "pw-value-0004"),
        ("SIGNING_KEY", "key-value-0005"),
        ("GCP_CREDENTIALS", "cred-value-0006"),
        ("HTTP_AUTH_HEADER", "auth-value-0007"),
        ("SSH_PRIVATE", "priv-value-0008"),
        ("SESSION_COOKIE", "cookie-value-0009"),
        ("SENTRY_DSN", "dsn-value-0010"),
        ("CUSTOM_THING", "custom-redacted-0011"),
        ("X1", "AKIAIOSFODNN7EXAMPLE"),
        ("X2", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
        (
            "X3",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        ),
        (
            "X4",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
        ("X5", "-----BEGIN RSA PRIVATE KEY-----MIIEpAIBAAKCAQEA"),
        ("X6", "postgres://admin:hunter2secret@db.internal:5432/prod"),
        ("X7", "xoxb-123456789012-abcdefghijkl"),
        ("X8", "glpat-abcdefghij0123456789"),
    ];
    let mut env = Env::git();
    for (k, v) in secrets {
        env.set_env(k, v);
    }
    env.git_cmd(&[
        "remote",
        "add",
        "origin",
        "https://deploy:ghp_remotetoken0123456789abcdefghij@example.invalid/r.git",
    ]);
    env.write(
        "pipeline.toml",
        r#"
[pipeline]
redact = ["CUSTOM_*"]
[env]
API_KEY = "inline-secret-0020"
[steps.leak]
cmd = "env > /dev/null; for v in MY_API_TOKEN SERVICE_SECRET DB_PASSWORD LDAP_PASSWD SIGNING_KEY GCP_CREDENTIALS HTTP_AUTH_HEADER SSH_PRIVATE SESSION_COOKIE SENTRY_DSN CUSTOM_THING X1 X2 X3 X4 X5 X6 X7 X8 API_KEY; do eval echo \\$v=\\$$v; eval echo \\$$v >&2; done; echo done > out.txt"
outputs = ["out.txt"]
"#,
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let mut all: Vec<&str> = secrets.iter().map(|(_, v)| *v).collect();
    all.push("inline-secret-0020");
    all.push("ghp_remotetoken0123456789abcdefghij");
    assert_eq!(all.len(), 21);
    for entry in walk(&env.path(".mlrun")) {
        let bytes = std::fs::read(&entry).unwrap();
        for secret in &all {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {}",
                entry.display()
            );
        }
    }
    for secret in &all {
        assert!(!out.all().contains(secret), "{secret} shown live: {out:?}");
    }
    // the remote is recorded, without its credentials
    let remote: String = one(&env.db(), "SELECT remote_url FROM git_snapshots LIMIT 1");
    assert_eq!(remote, "https://example.invalid/r.git");
}

/// mlrun's own environment is judged once per run; a step's `env` still replaces an inherited
/// variable in that step's record (and only there), and its own secrets are still redacted.
#[test]
fn a_steps_env_overrides_the_inherited_variable_in_its_record_only() {
    let mut env = Env::git();
    env.set_env("MY_SETTING", "outer-value");
    env.set_env("OUTER_TOKEN", "outer-token-0001");
    env.write(
        "pipeline.toml",
        r#"
[steps.a]
cmd = "echo a > a.txt"
outputs = ["a.txt"]
env = { MY_SETTING = "inner-value", STEP_PASSWORD = "inner-pw-0002" }
[steps.b]
cmd = "cat a.txt > b.txt"
inputs = ["a.txt"]
outputs = ["b.txt"]
"#,
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    let recorded = |step: &str| -> serde_json::Value {
        let json: String = one(
            &env.db(),
            &format!(
                "SELECT e.env_vars FROM step_execs s JOIN env_snapshots e ON e.id = s.env_id WHERE s.step = '{step}'"
            ),
        );
        serde_json::from_str(&json).unwrap()
    };
    let (a, b) = (recorded("a"), recorded("b"));
    assert_eq!(a["MY_SETTING"], "inner-value");
    assert_eq!(b["MY_SETTING"], "outer-value");
    for vars in [&a, &b] {
        assert!(
            vars["OUTER_TOKEN"]
                .as_str()
                .unwrap()
                .starts_with("<redacted:")
        );
    }
    assert!(
        a["STEP_PASSWORD"]
            .as_str()
            .unwrap()
            .starts_with("<redacted:")
    );
    assert!(b.get("STEP_PASSWORD").is_none());
}

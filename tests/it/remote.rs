//! The team remote against REAL servers: PostgreSQL and an S3-compatible object server
//! (SeaweedFS), both started by `.ci/run` (scripts/pg-local-start.sh, scripts/s3-local-start.sh).
//! The tests read MLRUN_TEST_PG_URL (a database the test role may CREATE DATABASE from),
//! PGPASSWORD, MLRUN_TEST_S3_ENDPOINT, MLRUN_TEST_S3_BUCKET, AWS_ACCESS_KEY_ID and
//! AWS_SECRET_ACCESS_KEY. Each test gets its own database and its own key prefix in the bucket,
//! so they run in parallel. Without them: a failure in CI, skipped (with the reason) elsewhere.

use std::process::Command;

use crate::common::{Env, Out, skip_unless_ci};

pub(crate) struct Servers {
    pg_url: String,
    pg_password: String,
    endpoint: String,
    bucket: String,
    key: String,
    secret: String,
}

fn servers() -> Option<Servers> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let s = (|| {
        Some(Servers {
            pg_url: get("MLRUN_TEST_PG_URL")?,
            pg_password: get("PGPASSWORD")?,
            endpoint: get("MLRUN_TEST_S3_ENDPOINT")?,
            bucket: get("MLRUN_TEST_S3_BUCKET")?,
            key: get("AWS_ACCESS_KEY_ID")?,
            secret: get("AWS_SECRET_ACCESS_KEY")?,
        })
    })();
    if s.is_none() {
        skip_unless_ci(
            "no PostgreSQL / S3 test servers (MLRUN_TEST_PG_URL, PGPASSWORD, MLRUN_TEST_S3_ENDPOINT, MLRUN_TEST_S3_BUCKET, AWS keys)",
        );
    }
    s
}

/// One test's remote: a fresh database and a fresh prefix.
pub(crate) struct Remote {
    s: Servers,
    db_url: String,
    prefix: String,
}

impl Remote {
    pub(crate) fn new() -> Option<Remote> {
        let s = servers()?;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = pg(&s.pg_url, &s.pg_password);
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        let base = s.pg_url.rsplit_once('/').expect("a database in the URL").0;
        Some(Remote {
            db_url: format!("{base}/{name}"),
            prefix: format!("tests/{name}"),
            s,
        })
    }

    /// Point `env`'s mlrun at this remote (environment only: nothing in a committed file).
    pub(crate) fn configure(&self, env: &mut Env) {
        env.set_env("MLRUN_REMOTE_DB", &self.db_url);
        env.set_env(
            "MLRUN_REMOTE_OBJECTS",
            &format!("s3://{}/{}", self.s.bucket, self.prefix),
        );
        env.set_env("AWS_ENDPOINT_URL", &self.s.endpoint);
        env.set_env("AWS_ACCESS_KEY_ID", &self.s.key);
        env.set_env("AWS_SECRET_ACCESS_KEY", &self.s.secret);
        env.set_env("AWS_REGION", "us-east-1");
        env.set_env("PGPASSWORD", &self.s.pg_password);
    }

    pub(crate) fn client(&self) -> postgres::Client {
        pg(&self.db_url, &self.s.pg_password)
    }

    pub(crate) fn count(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).expect(sql).get(0)
    }

    /// Replace object `name` (`sha256/<hash>`) on the remote with other bytes: the object on
    /// its own, or its bytes inside the pack the record says holds it.
    pub(crate) fn damage(&self, name: &str) {
        use object_store::{ObjectStoreExt, PutPayload};
        let (_, hash) = name.split_once('/').unwrap();
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&self.s.bucket)
            .with_endpoint(&self.s.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(&self.s.key)
            .with_secret_access_key(&self.s.secret)
            .build()
            .unwrap();
        let packed = self
            .client()
            .query_opt(
                "SELECT pack, pos, len FROM objects WHERE name = $1 AND pack IS NOT NULL",
                &[&name],
            )
            .unwrap()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2),
                )
            });
        let key = object_store::path::Path::from(match &packed {
            Some((pack, _, _)) => format!("{}/packs/{pack}.pack", self.prefix),
            None => format!("{}/sha256/{}/{}", self.prefix, &hash[..2], &hash[2..]),
        });
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let bytes = match &packed {
                Some((_, pos, len)) => {
                    let mut b = store
                        .get(&key)
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap()
                        .to_vec();
                    for x in &mut b[*pos as usize..(*pos + *len) as usize] {
                        *x ^= 0x55;
                    }
                    b
                }
                None => b"not what it was".to_vec(),
            };
            store.delete(&key).await.unwrap();
            store.put(&key, PutPayload::from(bytes)).await.unwrap();
        });
    }
}

fn pg(url: &str, password: &str) -> postgres::Client {
    let mut cfg: postgres::Config = url.parse().expect("a PostgreSQL URL");
    cfg.password(password);
    cfg.connect(postgres::NoTls)
        .expect("connect to the test PostgreSQL")
}

const PIPELINE: &str = r#"
[pipeline]
name = "team"

[steps.prep]
cmd = "mkdir -p out && cp -r data out/d && wc -l data/in.txt > out/n.txt && seq 1 30000"
inputs = ["data"]
outputs = ["out/n.txt", "out/d"]

[steps.train]
cmd = "cat out/n.txt out/n.txt > model.txt && echo accuracy=$MLRUN_PARAM_LR >> $MLRUN_METRICS"
inputs = ["out/n.txt"]
outputs = ["model.txt"]
params = ["lr"]

[params]
lr = 0.1
"#;

fn project(files: usize, tag: &str) -> Env {
    let env = Env::git();
    env.write("pipeline.toml", PIPELINE);
    env.write("data/in.txt", &format!("{tag}\n1\n2\n"));
    for i in 0..files {
        env.write(&format!("data/f{i}.txt"), &format!("{tag} file {i}\n"));
    }
    env.commit("project");
    env
}

pub(crate) fn ok(out: &Out) {
    assert_eq!(out.code, 0, "{out:?}");
}

pub(crate) fn json(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// A clone of `env`'s repository, as a CI runner or a teammate has it: no `.mlrun`.
pub(crate) fn clone_of(env: &Env, r: &Remote) -> Env {
    let mut other = Env::plain();
    let out = Command::new("git")
        .args(["clone", "-q"])
        .arg(&env.root)
        .arg(&other.root)
        .output()
        .unwrap();
    assert!(out.status.success());
    // clone into an existing empty directory
    r.configure(&mut other);
    other
}

/// Drop what is local to a store from `show --json`: row ids, whether bytes are kept here.
fn strip(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| {
                !["exec_id", "stored", "restorable", "determinism"].contains(&k.as_str())
            });
            m.values_mut().for_each(strip);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

#[test]
fn push_pull_and_replay_on_a_fresh_clone() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(20, "a");
    r.configure(&mut env);
    ok(&env.mlrun(&["run"]));
    let id = env.run_ids()[0].clone();

    let pushed = json(&env.mlrun(&["push", "--json"]));
    assert_eq!(pushed["runs"][0]["run"], id.as_str(), "{pushed}");
    assert_eq!(pushed["runs"][0]["written"], true);
    assert!(
        pushed["runs"][0]["uploaded"].as_u64().unwrap() >= 22,
        "{pushed}"
    );
    // nothing new: the remote is not even asked
    assert_eq!(
        json(&env.mlrun(&["push", "--json"]))["runs"],
        serde_json::json!([])
    );
    // pushing the same run again writes nothing and is no error
    let again = json(&env.mlrun(&["push", &id, "--json"]));
    assert_eq!(again["runs"][0]["written"], false, "{again}");
    assert_eq!(again["runs"][0]["uploaded"], 0, "{again}");
    assert_eq!(r.count("SELECT count(*) FROM runs"), 1);
    assert_eq!(r.count("SELECT count(*) FROM step_execs"), 2);
    ok(&env.mlrun(&["fsck", "--remote"]));

    // a teammate's fresh clone replays the run that exists only on the remote
    let clone = clone_of(&env, &r);
    let out = clone.mlrun(&["replay", &id[..12]]);
    ok(&out);
    assert!(out.all().contains("reproduced bit for bit"), "{out:?}");
    // the record came whole: same steps, params, metrics
    let show = |e: &Env| {
        let mut v = json(&e.mlrun(&["show", &id, "--json"]));
        strip(&mut v);
        v
    };
    assert_eq!(show(&env), show(&clone));
    // pull is idempotent; with --objects the outputs can be checked out
    let p = json(&clone.mlrun(&["pull", "--objects", "--json"]));
    assert_eq!(p["runs"][0]["written"], false, "{p}");
    ok(&clone.mlrun(&["pull"]));
    std::fs::remove_file(clone.path("model.txt")).ok();
    ok(&clone.mlrun(&["checkout", &format!("model.txt@{id}")]));
    assert_eq!(
        std::fs::read(clone.path("model.txt")).unwrap(),
        std::fs::read(env.path("model.txt")).unwrap()
    );
    let runs: i64 = clone
        .db()
        .query_row("SELECT count(*) FROM runs WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(runs, 1);
}

#[test]
fn run_push_flag_and_config_setting_push_at_the_end_of_a_run() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(2, "b");
    r.configure(&mut env);
    let out = env.mlrun(&["run", "--push"]);
    ok(&out);
    assert!(out.stderr.contains("pushed run"), "{out:?}");
    assert_eq!(r.count("SELECT count(*) FROM runs"), 1);
    env.write(
        "mlrun.toml",
        "[remote]\ndb = \"postgres://nobody@127.0.0.1:1/x\"\nobjects = \"s3://x\"\npush = true\n",
    );
    env.write("data/in.txt", "changed\n");
    // the environment overrides the file's URLs; `push = true` pushes every run
    ok(&env.mlrun(&["run"]));
    assert_eq!(r.count("SELECT count(*) FROM runs"), 2);
}

#[test]
fn an_object_that_does_not_hash_to_its_name_is_refused_and_reported() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(1, "c");
    r.configure(&mut env);
    ok(&env.mlrun(&["run", "--push"]));
    let id = env.run_ids()[0].clone();
    let model = env.sha256sum("model.txt");
    r.damage(&format!("sha256/{model}"));

    let f = env.mlrun(&["fsck", "--remote", "--json"]);
    assert_eq!(f.code, 1, "{f:?}");
    let v = json(&f);
    assert_eq!(v["corrupt"][0]["name"], format!("sha256/{model}"), "{v}");

    let clone = clone_of(&env, &r);
    let out = clone.mlrun(&["pull", &id, "--objects"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("refused object sha256/{model}")),
        "{out:?}"
    );
    let stored = clone.path(&format!(
        ".mlrun/objects/sha256/{}/{}",
        &model[..2],
        &model[2..]
    ));
    assert!(!stored.exists(), "a corrupt object entered the local store");
}

#[test]
fn servers_down_or_misconfigured_give_one_line_errors_and_leave_the_store_untouched() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(3, "d");
    r.configure(&mut env);
    ok(&env.mlrun(&["run"]));
    let before = std::fs::read(env.path(".mlrun/lineage.db")).unwrap().len();

    let attempt = |vars: &[(&str, &str)], expect: &str| {
        let mut cmd = env.command(&["push"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = Out::of(cmd.output().unwrap());
        assert_eq!(out.code, 1, "{out:?}");
        let first = out.stderr.lines().next().unwrap_or("");
        assert!(first.contains(expect), "{expect:?} not in {out:?}");
        assert!(!out.all().contains(&r.s.pg_password), "{out:?}");
        assert!(!out.all().contains(&r.s.secret), "{out:?}");
    };
    // S3 down (nothing listens there)
    attempt(
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
        "cannot reach the remote objects",
    );
    // PostgreSQL down
    attempt(
        &[("MLRUN_REMOTE_DB", "postgres://mlrun@127.0.0.1:9/x")],
        "cannot reach the remote record postgres://mlrun@127.0.0.1:9/x",
    );
    attempt(&[("PGPASSWORD", "wrong")], "refused the credentials");
    attempt(
        &[("AWS_SECRET_ACCESS_KEY", "wrong")],
        "refused the credentials",
    );
    attempt(
        &[("MLRUN_REMOTE_OBJECTS", "s3://no-such-bucket-mlrun/x")],
        "the bucket does not exist",
    );
    let missing_db = format!("{}_missing", r.db_url);
    attempt(&[("MLRUN_REMOTE_DB", &missing_db)], "does not exist");
    // a password in the URL is never shown
    let with_pw = r
        .db_url
        .replacen("://mlrun@", "://mlrun:hunter2@", 1)
        .replace("127.0.0.1:", "127.0.0.1:9");
    let mut cmd = env.command(&["push"]);
    cmd.env("MLRUN_REMOTE_DB", &with_pw);
    let out = Out::of(cmd.output().unwrap());
    assert!(
        !out.all().contains("hunter2") && out.all().contains("mlrun:***@"),
        "{out:?}"
    );

    // nothing reached the record without its objects, the local store did not change, and
    // the next push completes
    // (the tables may be there: the run looked its steps up in the shared cache)
    if r.count("SELECT count(*) FROM pg_tables WHERE tablename = 'runs'") > 0 {
        assert_eq!(
            r.count("SELECT count(*) FROM runs"),
            0,
            "a failed push wrote a run"
        );
    }
    assert_eq!(
        std::fs::read(env.path(".mlrun/lineage.db")).unwrap().len(),
        before
    );
    ok(&env.mlrun(&["push"]));
    ok(&env.mlrun(&["fsck", "--remote"]));
    assert_eq!(r.count("SELECT count(*) FROM runs"), 1);
}

#[test]
fn a_remote_with_a_newer_schema_is_refused() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(1, "e");
    r.configure(&mut env);
    ok(&env.mlrun(&["run", "--push"]));
    r.client()
        .batch_execute("UPDATE mlrun_schema SET version = 999")
        .unwrap();
    env.write("data/in.txt", "e2\n");
    ok(&env.mlrun(&["run"]));
    let out = env.mlrun(&["push"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("written by a newer mlrun (remote schema version 999"),
        "{out:?}"
    );
    assert_eq!(r.count("SELECT version FROM mlrun_schema"), 999);
}

#[test]
fn eight_pushes_at_once_and_the_same_run_twice_at_once() {
    let Some(r) = Remote::new() else { return };
    // 8 CI jobs: 8 projects, each its own run, all sharing some content
    let envs: Vec<Env> = (0..8)
        .map(|i| {
            let mut env = project(5, if i % 2 == 0 { "even" } else { "odd" });
            env.write("data/own.txt", &format!("{i}\n"));
            r.configure(&mut env);
            ok(&env.mlrun(&["run"]));
            env
        })
        .collect();
    let children: Vec<_> = envs
        .iter()
        .map(|e| {
            let mut c = e.command(&["push"]);
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    // the same run pushed by two processes at once
    let id = envs[0].run_ids()[0].clone();
    let twice: Vec<_> = (0..2)
        .map(|_| {
            let mut c = envs[0].command(&["push", &id, "--json"]);
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for c in twice {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(r.count("SELECT count(*) FROM runs"), 8);
    assert_eq!(r.count("SELECT count(DISTINCT run_id) FROM step_execs"), 8);
    assert_eq!(r.count("SELECT count(*) FROM step_execs"), 16);
    let f = json(&envs[0].mlrun(&["fsck", "--remote", "--json"]));
    assert_eq!(f["ok"], true, "{f}");
    assert_eq!(f["duplicate_rows"], 0, "{f}");
}

/// `mlrun push` killed with SIGKILL at 20+ moments: the remote stays whole (every object a run
/// names is there and hashes right), and the next push completes.
#[test]
fn push_killed_at_random_moments_leaves_a_whole_remote() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(0, "k");
    r.configure(&mut env);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..22 {
        // each round a run with new content, so every push has objects and a record to write
        for i in 0..150 {
            env.write(
                &format!("data/f{i}.txt"),
                &format!("round {round} file {i}\n"),
            );
        }
        ok(&env.mlrun(&["run"]));
        let mut child = env.command(&["push"]).spawn().unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // a moment somewhere in the push: connecting, uploading, or writing the record
        std::thread::sleep(std::time::Duration::from_millis(rng % 400));
        let _ = child.kill();
        let _ = child.wait();
        let f = env.mlrun(&["fsck", "--remote", "--json"]);
        assert_eq!(json(&f)["ok"], true, "round {round}: {f:?}");
    }
    ok(&env.mlrun(&["push"]));
    let f = json(&env.mlrun(&["fsck", "--remote", "--json"]));
    assert_eq!(f["ok"], true, "{f}");
    assert_eq!(f["runs"], 22, "{f}");
    assert_eq!(
        json(&env.mlrun(&["push", "--json"]))["runs"],
        serde_json::json!([])
    );
}

#[test]
fn shared_cache_restores_a_teammates_outputs_verified() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(4, "s");
    r.configure(&mut env);
    ok(&env.mlrun(&["run", "--push"]));
    let id = env.run_ids()[0].clone();

    // a CI job on a fresh clone: nothing runs, every output comes from the remote
    let clone = clone_of(&env, &r);
    let out = clone.mlrun(&["run", "--json"]);
    ok(&out);
    let latest = json(&clone.mlrun(&["show", "latest", "--json"]));
    for s in latest["steps"].as_array().unwrap() {
        assert_eq!(s["status"], "restored", "{latest}");
        assert_eq!(s["reused_run"], id.as_str(), "{latest}");
    }
    assert_eq!(
        std::fs::read(clone.path("model.txt")).unwrap(),
        std::fs::read(env.path("model.txt")).unwrap()
    );
    // where it came from: the pulled run names the machine it ran on
    let origin = json(&clone.mlrun(&["show", &id, "--json"]));
    assert_eq!(
        origin["hostname"],
        json(&env.mlrun(&["show", &id, "--json"]))["hostname"]
    );

    // --no-remote-cache: the steps run
    let other = clone_of(&env, &r);
    ok(&other.mlrun(&["run", "--no-remote-cache"]));
    let v = json(&other.mlrun(&["show", "latest", "--json"]));
    assert_eq!(v["steps"][0]["status"], "succeeded", "{v}");

    // a damaged object on the remote is refused: the step runs instead, with a warning
    let model = env.sha256sum("model.txt");
    r.damage(&format!("sha256/{model}"));
    let third = clone_of(&env, &r);
    let out = third.mlrun(&["run"]);
    ok(&out);
    assert!(
        out.stderr.contains("shared cache off for this run"),
        "{out:?}"
    );
    assert!(out.stderr.contains("refused"), "{out:?}");
    let v = json(&third.mlrun(&["show", "latest", "--json"]));
    let train = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "train")
        .unwrap();
    assert_eq!(train["status"], "succeeded", "{v}");
    assert_eq!(third.sha256sum("model.txt"), model);
}

#[test]
fn runs_show_diff_compare_on_the_remote_print_what_they_print_locally() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(3, "q");
    r.configure(&mut env);
    ok(&env.mlrun(&["run"]));
    env.write("data/in.txt", "q2\n");
    ok(&env.mlrun(&["run", "-p", "lr=0.2", "-m", "second try"]));
    ok(&env.mlrun(&["push"]));
    let id = env.run_ids()[0].clone();
    for args in [
        vec!["runs"],
        vec!["runs", "--json"],
        vec!["runs", "--metric", "accuracy>0.15"],
        vec!["show", "latest"],
        vec!["show", &id, "--json"],
        vec!["diff", "latest"],
        vec!["diff", &id, "latest", "--json"],
        vec!["compare"],
    ] {
        let local = env.mlrun(&args);
        ok(&local);
        let mut remote_args = args.clone();
        remote_args.push("--remote");
        let remote = env.mlrun(&remote_args);
        ok(&remote);
        assert_eq!(local.stdout, remote.stdout, "{args:?}");
    }
    // from a clone with no local store at all
    let clone = clone_of(&env, &r);
    let out = clone.mlrun(&["runs", "--remote"]);
    ok(&out);
    assert_eq!(out.stdout, env.mlrun(&["runs"]).stdout);
    assert!(
        !clone.path(".mlrun/lineage.db").exists(),
        "a query made a store"
    );
}

#[test]
fn model_versions_aliases_and_determinism_findings_go_with_push_and_come_back_with_pull() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(2, "m");
    r.configure(&mut env);
    ok(&env.mlrun(&["run"]));
    let id = env.run_ids()[0].clone();
    ok(&env.mlrun(&["model", "register", "churn", "model.txt@latest"]));
    ok(&env.mlrun(&["model", "alias", "churn", "production", "v1"]));
    // `train` run twice: a finding, recorded by the check's own run
    ok(&env.mlrun(&["check", "train"]));
    let findings = |db: &rusqlite::Connection| {
        crate::common::rows(
            db,
            "SELECT pipeline, step, path, verdict, since_run, checked_at FROM output_determinism ORDER BY step, path",
        )
    };
    let here = findings(&env.db());
    assert!(!here.is_empty());

    let p = json(&env.mlrun(&["push", "--json"]));
    // the run, and the check's runs
    assert!(p["runs"].as_array().unwrap().len() >= 2, "{p}");
    assert_eq!(p["sent"]["model_versions"], 1, "{p}");
    assert_eq!(p["sent"]["alias_moves"], 1, "{p}");
    assert_eq!(p["sent"]["determinism"], here.len(), "{p}");
    assert_eq!(
        r.count("SELECT count(*) FROM model_versions WHERE name = 'churn' AND label = 'v1'"),
        1
    );
    assert_eq!(
        r.count(&format!(
            "SELECT count(*) FROM model_versions WHERE run_id = '{id}' AND path = 'model.txt'"
        )),
        1
    );
    assert_eq!(
        r.count(
            "SELECT count(*) FROM model_alias_log WHERE alias = 'production' AND to_label = 'v1'"
        ),
        1
    );
    assert_eq!(
        r.count("SELECT count(*) FROM output_determinism"),
        here.len() as i64
    );
    // sent once: the next push has nothing to send
    let again = json(&env.mlrun(&["push", "--json"]));
    assert_eq!(again["runs"], serde_json::json!([]), "{again}");
    assert_eq!(again["sent"]["model_versions"], 0, "{again}");
    assert_eq!(again["sent"]["determinism"], 0, "{again}");
    // an alias moved later is sent by the next push
    ok(&env.mlrun(&["model", "alias", "churn", "staging", "v1"]));
    let later = json(&env.mlrun(&["push", "--json"]));
    assert_eq!(later["sent"]["alias_moves"], 1, "{later}");

    // a teammate's clone pulls the runs and, with them, the registry and the findings
    let clone = clone_of(&env, &r);
    ok(&clone.mlrun(&["pull"]));
    let show = |e: &Env| {
        let v = json(&e.mlrun(&["model", "show", "churn", "--json"]));
        (
            v["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| (x["label"].clone(), x["hash"].clone(), x["run"].clone()))
                .collect::<Vec<_>>(),
            v["aliases"].clone(),
        )
    };
    assert_eq!(show(&clone), show(&env));
    assert_eq!(findings(&clone.db()), here);
    // pulling again adds nothing
    ok(&clone.mlrun(&["pull"]));
    let moves: i64 = clone
        .db()
        .query_row("SELECT count(*) FROM model_alias_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(moves, 2);
    // what came from the remote is not sent back to it
    let back = json(&clone.mlrun(&["push", "--json"]));
    assert_eq!(back["runs"], serde_json::json!([]), "{back}");
    assert_eq!(back["sent"]["model_versions"], 0, "{back}");
}

#[test]
fn a_run_removed_after_its_push_is_removed_from_the_remote_record_and_its_objects_kept() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(3, "rm");
    r.configure(&mut env);
    ok(&env.mlrun(&["run"]));
    env.write("data/in.txt", "rm\nchanged\n");
    ok(&env.mlrun(&["run"]));
    let ids = env.run_ids();
    let (kept, gone) = (ids[1].clone(), ids[0].clone());
    ok(&env.mlrun(&["push"]));
    assert_eq!(r.count("SELECT count(*) FROM runs"), 2);
    // a teammate pulled both before the removal
    let teammate = clone_of(&env, &r);
    ok(&teammate.mlrun(&["pull"]));
    let objects = r.count("SELECT count(*) FROM objects");

    ok(&env.mlrun(&["rm", &gone]));
    let p = json(&env.mlrun(&["push", "--json"]));
    assert_eq!(p["runs"], serde_json::json!([]), "{p}");
    assert_eq!(p["sent"]["removals"], 1, "{p}");
    assert_eq!(r.count("SELECT count(*) FROM runs"), 1);
    assert_eq!(
        r.count(&format!("SELECT count(*) FROM runs WHERE id = '{kept}'")),
        1
    );
    for t in [
        "step_execs",
        "io_edges",
        "params",
        "metrics",
        "step_logs",
        "run_objects",
    ] {
        assert_eq!(
            r.count(&format!("SELECT count(*) FROM {t} WHERE run_id = '{gone}'")),
            0,
            "{t}"
        );
    }
    assert_eq!(
        r.count(&format!(
            "SELECT count(*) FROM run_removals WHERE run_id = '{gone}' AND removed_by IS NOT NULL"
        )),
        1
    );
    // shared objects stay: nothing is deleted from the object store or its index
    assert_eq!(r.count("SELECT count(*) FROM objects"), objects);
    ok(&env.mlrun(&["fsck", "--remote"]));
    // sent once
    let again = json(&env.mlrun(&["push", "--json"]));
    assert_eq!(again["sent"]["removals"], 0, "{again}");

    // the teammate's copy cannot bring it back
    let back = json(&teammate.mlrun(&["push", &gone, "--json"]));
    assert_eq!(back["runs"][0]["written"], false, "{back}");
    assert_eq!(r.count("SELECT count(*) FROM runs"), 1);
    // a fresh clone pulls the kept run and the tombstone of the removed one
    let clone = clone_of(&env, &r);
    ok(&clone.mlrun(&["pull"]));
    let db = clone.db();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM runs"), 1);
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM run_removals WHERE run_id = '{gone}'"
        )),
        1
    );
    let show = clone.mlrun(&["show", &gone]);
    assert_ne!(show.code, 0, "{show:?}");
    assert!(show.all().contains("removed"), "{show:?}");
}

/// A pipeline with an input no commit holds (a lineage gap whose copy is stored).
const LINEAGE_PIPELINE: &str = r#"
[pipeline]
name = "lin"

[steps.prep]
cmd = "mkdir -p out && cp -r data out/d && cat ext.txt data/in.txt > out/n.txt"
inputs = ["data", "ext.txt"]
outputs = ["out/n.txt", "out/d"]

[steps.train]
cmd = "cat out/n.txt out/n.txt > model.txt && echo accuracy=$MLRUN_PARAM_LR >> $MLRUN_METRICS"
inputs = ["out/n.txt"]
outputs = ["model.txt"]
params = ["lr"]

[params]
lr = 0.1
"#;

/// `text` with every `av:N` / `exec:N` node id (`av_N` in Mermaid) replaced by what `ids` says
/// it names.
fn relabel(text: &str, ids: &std::collections::HashMap<String, String>) -> String {
    let re = regex::Regex::new(r"\b(av|exec)[:_]([0-9]+)\b").unwrap();
    re.replace_all(text, |c: &regex::Captures| {
        let id = format!("{}:{}", &c[1], &c[2]);
        ids.get(&id).cloned().unwrap_or(id)
    })
    .into_owned()
}

/// A lineage answer's node ids (row ids of one store, or numbers within one remote answer)
/// mapped to what they name: a version's path and hash, an execution's run, step and start.
fn node_names(g: &serde_json::Value) -> std::collections::HashMap<String, String> {
    let mut ids = std::collections::HashMap::new();
    for n in g["nodes"].as_array().unwrap() {
        let name = match n["kind"].as_str().unwrap() {
            "artifact_version" => format!(
                "version {}@{}",
                n["path"].as_str().unwrap(),
                n["hash"].as_str().unwrap()
            ),
            "step_exec" => format!(
                "exec {}/{}/{}",
                n["run_id"].as_str().unwrap(),
                n["step"].as_str().unwrap(),
                n["started_at"]
            ),
            _ => continue,
        };
        ids.insert(n["id"].as_str().unwrap().to_string(), name);
    }
    ids
}

/// A `lineage --json` answer with its ids replaced by what they name (edges sorted again: the
/// order of ids was theirs).
fn canonical(g: &serde_json::Value) -> serde_json::Value {
    let ids = node_names(g);
    let mut v: serde_json::Value = serde_json::from_str(&relabel(&g.to_string(), &ids)).unwrap();
    fn fields(v: &mut serde_json::Value, ids: &std::collections::HashMap<String, String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    let prefix = match k.as_str() {
                        "av_id" => "av",
                        "exec_id" | "reused_exec" => "exec",
                        _ => {
                            fields(x, ids);
                            continue;
                        }
                    };
                    if let Some(n) = x.as_i64() {
                        *x = serde_json::Value::String(
                            ids.get(&format!("{prefix}:{n}"))
                                .cloned()
                                .unwrap_or_default(),
                        );
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| fields(x, ids)),
            _ => {}
        }
    }
    fields(&mut v, &ids);
    if let Some(edges) = v["edges"].as_array_mut() {
        edges.sort_by_key(|e| e.to_string());
    }
    v
}

#[test]
fn lineage_on_the_remote_prints_what_lineage_prints_locally() {
    let Some(r) = Remote::new() else { return };
    let mut env = Env::git();
    r.configure(&mut env);
    env.write("pipeline.toml", LINEAGE_PIPELINE);
    env.write("data/in.txt", "l\n1\n2\n");
    env.write("data/f0.txt", "f0\n");
    env.commit("project");
    env.write("ext.txt", "outside\n");
    ok(&env.mlrun(&["run"]));
    // a tracked input with uncommitted edits, and a second version of every output
    env.write("data/in.txt", "l2\n");
    ok(&env.mlrun(&["run", "-p", "lr=0.2"]));
    // every step reused
    ok(&env.mlrun(&["run", "-p", "lr=0.2"]));
    ok(&env.mlrun(&["push"]));
    let ids = env.run_ids();
    let (first, second) = (ids[0].clone(), ids[1].clone());
    let model = json(&env.mlrun(&["lineage", "model.txt", "--json"]));
    let model_hash = model["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["path"] == "model.txt")
        .unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();

    // a teammate's fresh clone, with no local store, asks the remote
    let clone = clone_of(&env, &r);
    let model_at_first = format!("model.txt@{}", &first[..12]);
    let in_at_second = format!("data/in.txt@{second}");
    let prep = format!("{}:prep", &second[..16]);
    let forms: Vec<Vec<&str>> = vec![
        vec!["lineage", "model.txt"],
        vec!["lineage", "model.txt", "--json"],
        vec!["lineage", &model_at_first],
        vec!["lineage", &model_at_first, "--json"],
        vec!["lineage", "model.txt", "--depth", "1"],
        vec!["lineage", "model.txt", "--format", "dot"],
        vec!["lineage", &model_hash[..12], "--format", "mermaid"],
        vec!["lineage", "latest"],
        vec!["lineage", "latest", "--json"],
        vec!["lineage", "latest~1", "--down"],
        vec!["lineage", &prep, "--down", "--json"],
        vec!["lineage", &in_at_second, "--down"],
        vec!["lineage", &in_at_second, "--down", "--json"],
        vec!["lineage", "out/d/f0.txt"],
        vec!["lineage", "out/d/f0.txt", "--json"],
        vec!["lineage", "ext.txt", "--down", "--depth", "1", "--json"],
    ];
    for args in forms {
        let local = env.mlrun(&args);
        ok(&local);
        let mut remote_args = args.clone();
        remote_args.push("--remote");
        let remote = clone.mlrun(&remote_args);
        ok(&remote);
        if args.contains(&"--json") {
            assert_eq!(
                canonical(&json(&local)),
                canonical(&json(&remote)),
                "{args:?}"
            );
        } else if args.contains(&"--format") {
            // ids in drawings: relabelled from each side's own JSON answer
            let names = |e: &Env, extra: &[&str]| {
                let mut a: Vec<&str> = args
                    .iter()
                    .copied()
                    .filter(|x| !["--format", "dot", "mermaid"].contains(x))
                    .collect();
                a.extend_from_slice(extra);
                a.push("--json");
                node_names(&json(&e.mlrun(&a)))
            };
            // (lines in the order of their ids)
            let sorted = |t: String| {
                let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
                lines.sort();
                lines
            };
            let l = sorted(relabel(&local.stdout, &names(&env, &[])));
            let m = sorted(relabel(&remote.stdout, &names(&clone, &["--remote"])));
            assert_eq!(l, m, "{args:?}");
        } else {
            assert_eq!(local.stdout, remote.stdout, "{args:?}");
        }
    }
    // the gap is said to be on the remote, the reused step to have reused
    let down = json(&clone.mlrun(&["lineage", "ext.txt", "--down", "--json", "--remote"]));
    assert!(down.to_string().contains("copy stored"), "{down}");
    let text = clone.mlrun(&["lineage", "model.txt", "--remote"]).stdout;
    assert!(text.contains("reusing a result"), "{text}");
    assert!(
        !clone.path(".mlrun/lineage.db").exists(),
        "a remote query made a store"
    );
    // what the remote does not have is said in one line
    let out = clone.mlrun(&["lineage", "nothing.txt", "--remote"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not in the remote's record"), "{out:?}");
}

#[test]
fn model_names_on_the_remote_answer_lineage_as_the_local_registry_does() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(1, "n");
    r.configure(&mut env);
    ok(&env.mlrun(&["run"]));
    ok(&env.mlrun(&["model", "register", "churn", "model.txt@latest"]));
    env.write("data/in.txt", "n2\n3\n");
    ok(&env.mlrun(&["run"]));
    ok(&env.mlrun(&["model", "register", "churn", "model.txt@latest"]));
    ok(&env.mlrun(&["model", "alias", "churn", "production", "v1"]));
    ok(&env.mlrun(&["push"]));

    // a fresh clone with no registry of its own asks the remote by model name
    let clone = clone_of(&env, &r);
    for target in [
        "churn@v1",
        "churn@v2",
        "churn@production",
        "models:/churn@1.0.0",
    ] {
        for json_flag in [false, true] {
            let mut args = vec!["lineage", target];
            if json_flag {
                args.push("--json");
            }
            let local = env.mlrun(&args);
            ok(&local);
            args.push("--remote");
            let remote = clone.mlrun(&args);
            ok(&remote);
            if json_flag {
                assert_eq!(
                    canonical(&json(&local)),
                    canonical(&json(&remote)),
                    "{args:?}"
                );
            } else {
                assert_eq!(local.stdout, remote.stdout, "{args:?}");
            }
        }
    }
    // the two versions are different contents: v1 is not v2
    assert_ne!(
        clone.mlrun(&["lineage", "churn@v1", "--remote"]).stdout,
        clone.mlrun(&["lineage", "churn@v2", "--remote"]).stdout
    );
    // a version or a model the remote does not have is one line naming what it has
    let out = clone.mlrun(&["lineage", "churn@v9", "--remote"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no version `v9`"), "{out:?}");
    assert!(out.stderr.contains("v1, v2"), "{out:?}");
    let out = clone.mlrun(&["lineage", "models:/fraud@v1", "--remote"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no model `fraud`"), "{out:?}");
}

#[test]
fn lineage_on_an_unreachable_or_refusing_remote_is_a_one_line_error() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(1, "e");
    r.configure(&mut env);
    let attempt = |vars: &[(&str, &str)], expect: &str| {
        let mut cmd = env.command(&["lineage", "model.txt", "--remote"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = Out::of(cmd.output().unwrap());
        assert!(out.code == 1 || out.code == 2, "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let first = out.stderr.lines().next().unwrap_or("");
        assert!(first.contains(expect), "{expect:?} not in {out:?}");
        assert!(!out.all().contains(&r.s.pg_password), "{out:?}");
    };
    attempt(
        &[("MLRUN_REMOTE_DB", "postgres://mlrun@127.0.0.1:9/x")],
        "cannot reach the remote record postgres://mlrun@127.0.0.1:9/x",
    );
    attempt(&[("PGPASSWORD", "wrong")], "refused the credentials");
    attempt(
        &[("MLRUN_REMOTE_DB", "not a url")],
        "is not a PostgreSQL URL",
    );
    let missing_db = format!("{}_missing", r.db_url);
    attempt(&[("MLRUN_REMOTE_DB", &missing_db)], "does not exist");
}
mod runs;
mod tls;

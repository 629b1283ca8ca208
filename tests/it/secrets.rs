//! No secret in the record: secrets planted in the environment, pipeline.toml, params, commands,
//! argv, step output and the uncommitted diff never reach the store, the live terminal, or what
//! `show`, `diff`, `export`, `status` and `lineage` print; markers are keyed outside the store.

use std::path::{Path, PathBuf};

use crate::common::{Env, Out, one, rows};

fn walk(dir: &Path) -> Vec<PathBuf> {
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

/// Every secret absent from every byte under `.mlrun/` (database, WAL, objects, anything).
fn assert_store_clean(env: &Env, secrets: &[&str]) {
    for entry in walk(&env.path(".mlrun")) {
        let bytes = std::fs::read(&entry).unwrap();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "`{secret}` found in {}",
                entry.display()
            );
        }
    }
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "`{secret}` in {what}:\n{text}");
    }
}

const PEM_FILE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEplantedfilebody0036
QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0037
-----END OPENSSH PRIVATE KEY-----
";

/// The review's attack: at least 27 secrets of every kind, planted at once; none may be found
/// in the store, in the live output of the runs, or in any read command's output.
// One attack in named steps: every kind of secret is planted at once (the table alone is 30
// lines), then the store and every command's output are searched for all of them; as separate
// tests each would plant them again and no longer show that none leaks from the same runs.
#[test]
fn planted_secrets_are_found_nowhere() {
    // by name (each name rule), by value (each credential pattern), both inherited by mlrun
    let vars: &[(&str, &str)] = &[
        ("MY_API_TOKEN", "name-token-0001"),
        ("SERVICE_SECRET", "name-secret-0002"),
        ("DB_PASSWORD", "name-password-0003"),
        ("LDAP_PASSWD", "name-passwd-0004"),
        ("SIGNING_KEY", "name-key-0005"),
        ("GCP_CREDENTIALS", "name-credential-0006"),
        ("HTTP_AUTH_HEADER", "name-auth-0007"),
        ("SSH_PRIVATE", "name-private-0008"),
        ("WEB_COOKIE", "name-cookie-0009"),
        ("SENTRY_DSN", "name-dsn-0010"),
        ("MYSQL_PWD", "name-mysqlpwd-0011"),
        ("API_PASS", "name-apipass-0012"),
        ("TWILIO_SID", "name-sid-0013"),
        ("GPG_PASSPHRASE", "name-passphrase-0014"),
        ("CUSTOM_THING", "name-redactglob-0015"),
        ("X16", "AKIAPLANTED000000016"),
        ("X17", "ghp_planted0017abcdefghijklmnopqrstuv"),
        ("X18", "github_pat_planted0018_abcdefghijklmnopqrstuvwxyz"),
        ("X19", "glpat-planted0019abcdefghij"),
        ("X20", "xoxb-planted0020-abcdefghijkl"),
        (
            "X21",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkMDAyMSJ9.planted0021signature",
        ),
        ("X22", "postgres://admin:urlpass0022@db.internal:5432/prod"),
        ("X23", "host=db password=valuepw0023 sslmode=require"),
        (
            "X24",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEplantedenvbody0024AAAA\n-----END RSA PRIVATE KEY-----",
        ),
    ];
    let env = plant(vars);
    let first = env.mlrun(&["run", "-p", "api_key=cli-param-0027"]);
    assert_eq!(first.code, 0, "{first:?}");
    let second = env.mlrun(&["run", "-p", "api_key=cli-param-0039"]);
    assert_eq!(second.code, 0, "{second:?}");
    // the step saw the real values
    assert_eq!(
        std::fs::read_to_string(env.path("out.txt")).unwrap(),
        "ok\n"
    );

    let planted = planted_values(vars);
    assert_store_clean(&env, &planted);
    for (what, out) in [("the first run", &first), ("the second run", &second)] {
        assert_clean(what, &out.all(), &planted);
    }
    // the lines after a masked block still reach the terminal
    assert!(first.stdout.contains("substituted <redacted"), "{first:?}");

    let db = env.db();
    no_read_command_shows_them(&env, &db, &planted);
    markers_are_recorded_in_their_place(&env, &db);
}

/// A project whose environment, remote URL, files, params, commands and argv hold the secrets,
/// with uncommitted edits holding more.
fn plant(vars: &[(&str, &str)]) -> Env {
    let mut env = Env::git();
    for (k, v) in vars {
        env.set_env(k, v);
    }
    env.git_cmd(&[
        "remote",
        "add",
        "origin",
        "https://deploy:remotepw0035@example.invalid/r.git",
    ]);
    env.write(".gitignore", "/.mlrun/\n/keys/\n");
    env.write("keys/id_rsa", PEM_FILE);
    env.write("params.yaml", "token: param-tok-0028\n");
    env.write("config.ini", "[db]\nhost = x\n");
    env.write(
        "pipeline.toml",
        r#"
[pipeline]
name = "planted"
params-file = "params.yaml"
redact = ["CUSTOM_*"]

[params]
db.password = "param-pw-0026"
api_key = "placeholder"

[env]
API_KEY = "inline-env-0034"

[steps.leak]
cmd = '''
DEPLOY_TOKEN=cmd-assign-0031 true
printf '%s\n' 'Authorization: Bearer cmdbearer0029xyz' > /dev/null
for v in MY_API_TOKEN SERVICE_SECRET DB_PASSWORD LDAP_PASSWD SIGNING_KEY GCP_CREDENTIALS HTTP_AUTH_HEADER SSH_PRIVATE WEB_COOKIE SENTRY_DSN MYSQL_PWD API_PASS TWILIO_SID GPG_PASSPHRASE CUSTOM_THING X16 X17 X18 X19 X20 X21 X22 X23 API_KEY; do eval echo \$v=\$$v; eval echo \$$v >&2; done
echo "$X24"
cat keys/id_rsa
echo password=$MLRUN_PARAM_DB_PASSWORD api_key=$MLRUN_PARAM_API_KEY token=$MLRUN_PARAM_TOKEN >&2
echo substituted {params.db.password} {params.api_key}
[ "$MLRUN_PARAM_DB_PASSWORD" = "param-pw-0026" ] && echo ok > out.txt
'''
outputs = ["out.txt"]
params = ["db.*", "api_key", "token"]

[steps.argv]
cmd = ["sh", "-c", "echo argv > argv.txt", "sh", "--password", "argvpw0030"]
outputs = ["argv.txt"]
"#,
    );
    env.commit("pipeline");
    // uncommitted edits holding secrets: recorded as the run's diff
    env.write(
        "config.ini",
        "[db]\nhost = x\npassword = diffpw0032\ngithub = ghp_diff0033abcdefghijklmnopqrstuvw\n-----BEGIN PRIVATE KEY-----\nMIIEdiffbody0038AAAA\n-----END PRIVATE KEY-----\n",
    );

    env
}

/// Every planted value to search for.
fn planted_values<'a>(vars: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    let mut planted: Vec<&str> = vars.iter().map(|(_, v)| *v).collect();
    // the PEM blocks: judged by their body and END lines, not their (public) BEGIN line
    planted.retain(|v| !v.starts_with("-----BEGIN"));
    planted.extend([
        "MIIEplantedenvbody0024AAAA",
        "b3BlbnNzaC1rZXktdjEplantedfilebody0036",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0037",
        "END OPENSSH PRIVATE KEY",
        "END RSA PRIVATE KEY",
        "param-pw-0026",
        "cli-param-0027",
        "param-tok-0028",
        "cmdbearer0029xyz",
        "argvpw0030",
        "cmd-assign-0031",
        "diffpw0032",
        "ghp_diff0033abcdefghijklmnopqrstuvw",
        "inline-env-0034",
        "remotepw0035",
        "MIIEdiffbody0038AAAA",
        "cli-param-0039",
    ]);
    assert!(planted.len() >= 27, "{}", planted.len());

    planted
}

/// No read command's output holds a planted value.
fn no_read_command_shows_them(env: &Env, db: &rusqlite::Connection, planted: &[&str]) {
    let ids: Vec<String> = rows(db, "SELECT id FROM runs ORDER BY started_at")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let (a, b) = (ids[0].as_str(), ids[1].as_str());
    let mut reads: Vec<Vec<&str>> = vec![
        vec!["show"],
        vec!["show", "--json"],
        vec!["show", "--logs"],
        vec!["show", "--patch"],
        vec!["show", a, "--logs", "--patch", "--json"],
        vec!["show", "out.txt"],
        vec!["show", "out.txt", "--json"],
        vec!["runs", "--json"],
        vec!["diff", a, b],
        vec!["diff", a, b, "--json"],
        vec!["diff", a, b, "--patch", "--json"],
        vec!["export", b, "--format", "openlineage"],
        vec!["export", b, "--format", "prov"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["status", "-p", "api_key=cli-param-0039"],
        vec!["lineage", "out.txt", "--json"],
        vec!["lineage", "out.txt"],
    ];
    reads.push(vec!["lineage", "argv.txt", "--json"]);
    for args in &reads {
        let out: Out = env.mlrun(args);
        assert!(out.code == 0 || args[0] == "status", "{args:?}: {out:?}");
        assert_clean(&format!("`mlrun {}`", args.join(" ")), &out.all(), planted);
    }
}

/// What was recorded in their place is a marker, for params, commands and argv alike; the
/// recorded diff still applies to the commit (with the secrets masked).
fn markers_are_recorded_in_their_place(env: &Env, db: &rusqlite::Connection) {
    let params = rows(
        db,
        "SELECT key, value FROM params WHERE key IN ('db.password', 'api_key', 'token')",
    );
    assert_eq!(params.len(), 6, "{params:?}");
    assert!(
        params.iter().all(|r| r[1].contains("<redacted:")),
        "{params:?}"
    );
    let argv: String = one(
        db,
        "SELECT argv FROM step_execs WHERE step = 'argv' LIMIT 1",
    );
    assert!(argv.contains(r#""--password","<redacted:"#), "{argv}");
    // the recorded diff still applies to the commit (with the secrets masked)
    let diff = env.mlrun(&["show", "--patch"]);
    let patch = &diff.stdout[diff.stdout.find("diff --git").expect("a patch")..];
    env.git_cmd(&["stash", "-q"]);
    std::fs::write(env.home.join("tmp/p.diff"), patch).unwrap();
    env.git_cmd(&[
        "apply",
        "--check",
        env.home.join("tmp/p.diff").to_str().unwrap(),
    ]);
}

/// 13.8: a token in a command is recorded (command, argv, plan) and shown (the live `▸` line,
/// `show`) as a marker; the marker follows the token, so a new token still reruns the step.
#[test]
fn a_token_in_a_command_is_a_marker_that_still_keys_the_cache() {
    let env = Env::git();
    let pipeline = |token: &str| {
        format!(
            "[steps.fetch]\ncmd = 'echo fetched > out.txt # curl -H \"Authorization: Bearer {token}\" https://api.invalid/x'\noutputs = [\"out.txt\"]\n"
        )
    };
    let one_token = "ghp_commandtoken01abcdefghijklmnopqrs";
    env.write("pipeline.toml", &pipeline(one_token));
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains(one_token), "{out:?}");
    assert!(
        out.stdout.contains("Authorization: Bearer <redacted:"),
        "{out:?}"
    );
    let db = env.db();
    let (cmd, argv): (String, String) = db
        .query_row("SELECT cmd, argv FROM step_execs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let plan: String = one(&db, "SELECT plan FROM runs");
    let parts: String = one(&db, "SELECT cache_parts FROM step_execs");
    for (what, text) in [
        ("cmd", &cmd),
        ("argv", &argv),
        ("plan", &plan),
        ("cache parts", &parts),
    ] {
        assert!(!text.contains(one_token), "{what}: {text}");
        assert!(text.contains("Bearer <redacted:"), "{what}: {text}");
    }
    assert_store_clean(&env, &[one_token]);
    let show = env.mlrun(&["show"]);
    assert!(show.stdout.contains("Bearer <redacted:"), "{show:?}");

    // the same token: reused; another token: the command changed, so the step runs again
    assert!(env.mlrun(&[]).stdout.contains("cached"));
    let other = "ghp_commandtoken02abcdefghijklmnopqrs";
    env.write("pipeline.toml", &pipeline(other));
    let status = env.mlrun(&["status"]);
    assert!(status.stdout.contains("command changed"), "{status:?}");
    let again = env.mlrun(&[]);
    assert!(again.stdout.contains("✓ fetch"), "{again:?}");
    assert_store_clean(&env, &[one_token, other]);
}

/// 13.9: params whose keys look secret are markers in the params table, the command, argv,
/// `MLRUN_PARAM_*`, `status` and the live output; the step still gets the value; `redact`
/// and `keep` decide as for variables.
#[test]
fn secret_params_are_markers_everywhere_but_in_the_step() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        r#"
[pipeline]
redact = ["region"]
keep = ["public.api_key"]
[params]
password = "toppw-0001"
region = "eu-secret-0002"
public.api_key = "shown-0003"
lr = 0.5
token = "file-0008"
[params.db]
password = "dbpw-0004"
[steps.use]
cmd = ["sh", "-c", "[ \"$MLRUN_PARAM_DB_PASSWORD\" = dbpw-0004 ] && [ \"$1\" = toppw-0001 ] && echo ok > out.txt; echo got $1 $MLRUN_PARAM_REGION", "sh", "{params.password}"]
params = ["db.password", "region", "public.api_key", "lr", "token"]
outputs = ["out.txt"]
"#,
    );
    env.commit("p");
    let out = env.mlrun(&["run", "-p", "token=cli-0005"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(env.path("out.txt")).unwrap(),
        "ok\n"
    );
    let secrets = ["toppw-0001", "eu-secret-0002", "dbpw-0004", "cli-0005"];
    assert_clean("the live output", &out.all(), &secrets);
    assert_store_clean(&env, &secrets);
    let db = env.db();
    let params = rows(&db, "SELECT key, value FROM params ORDER BY key");
    let value = |k: &str| {
        params
            .iter()
            .find(|r| r[0] == k)
            .map(|r| r[1].clone())
            .unwrap()
    };
    assert!(value("password").contains("<redacted:"), "{params:?}");
    assert!(value("db.password").contains("<redacted:"), "{params:?}");
    assert!(value("region").contains("<redacted:"), "{params:?}");
    assert_eq!(value("public.api_key"), "\"shown-0003\"");
    assert_eq!(value("lr"), "0.5");
    // the variable carries the param's own marker; a kept param's variable its value
    let vars: String = one(
        &db,
        "SELECT e.env_vars FROM step_execs s JOIN env_snapshots e ON e.id = s.env_id",
    );
    let vars: serde_json::Value = serde_json::from_str(&vars).unwrap();
    assert_eq!(
        format!("\"{}\"", vars["MLRUN_PARAM_DB_PASSWORD"].as_str().unwrap()),
        value("db.password")
    );
    assert_eq!(vars["MLRUN_PARAM_PUBLIC_API_KEY"], "shown-0003");
    // the run's params and mlrun's own command line
    let (run_params, run_argv): (String, String) = db
        .query_row("SELECT params, argv FROM runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(run_params.contains("shown-0003"), "{run_params}");
    assert!(run_argv.contains("token=<redacted:"), "{run_argv}");
    // status names the changed secret without its values
    let status = env.mlrun(&["status", "-p", "db.password=dbpw-0006"]);
    assert!(
        status
            .stdout
            .contains("param db.password changed (a secret, not shown)"),
        "{status:?}"
    );
    assert_clean("status", &status.all(), &["dbpw-0004", "dbpw-0006"]);
}

/// 13.10: a private key printed by a step is masked whole, not only its BEGIN line.
#[test]
fn a_private_key_block_in_the_output_is_masked_whole() {
    let env = Env::git();
    env.write(".gitignore", "/.mlrun/\n/keys/\n");
    env.write("keys/id_rsa", PEM_FILE);
    env.write(
        "pipeline.toml",
        "[steps.leak]\ncmd = \"echo before; cat keys/id_rsa; echo after; cat keys/id_rsa >&2; echo done > out.txt\"\noutputs = [\"out.txt\"]\n",
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let body = [
        "b3BlbnNzaC1rZXktdjEplantedfilebody0036",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0037",
        "END OPENSSH PRIVATE KEY",
    ];
    assert_clean("the live output", &out.all(), &body);
    assert!(
        out.stdout.contains("leak │ before") && out.stdout.contains("leak │ after"),
        "{out:?}"
    );
    assert_store_clean(&env, &body);
    let logs = env.mlrun(&["show", "--logs"]);
    assert_clean("show --logs", &logs.all(), &body);
    // one masked line per line of the key: the log keeps its shape
    assert_eq!(logs.stdout.matches("<redacted>").count(), 8, "{logs:?}");
}

/// 13.11: more secret names (`MYSQL_PWD`, `*_PASS`, `*_PWD`, `*_SID`, `*_COOKIE`), `password=…`
/// in output, and secrets in the uncommitted diff, which still applies.
#[test]
fn more_secret_names_values_and_the_uncommitted_diff() {
    let mut env = Env::git();
    let vars = [
        ("MYSQL_PWD", "mysqlpwd-0001"),
        ("API_PASS", "apipass-0002"),
        ("SMTP_PASS", "smtppass-0003"),
        ("DB_PWD", "dbpwd-0004"),
        ("ACCOUNT_SID", "accsid-0005"),
        ("WEB_COOKIE", "cookie-0006"),
    ];
    for (k, v) in vars {
        env.set_env(k, v);
    }
    env.set_env("OUTER", "x");
    env.write("app.cfg", "host = db\n");
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo password=printedpw0007 'api_key: printedkey0008'; echo done > out.txt\"\noutputs = [\"out.txt\"]\n",
    );
    env.commit("p");
    env.write(
        "app.cfg",
        "host = db\npassword = diffpw0009\ntoken: ghp_diffdiff0010abcdefghijklmnopqrstu\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let mut secrets: Vec<&str> = vars.iter().map(|(_, v)| *v).collect();
    secrets.extend([
        "printedpw0007",
        "printedkey0008",
        "diffpw0009",
        "ghp_diffdiff0010abcdefghijklmnopqrstu",
    ]);
    assert_clean("the live output", &out.all(), &secrets);
    assert!(
        out.stdout
            .contains("password=<redacted> api_key: <redacted>"),
        "{out:?}"
    );
    assert_store_clean(&env, &secrets);
    let recorded: String = one(&env.db(), "SELECT env_vars FROM env_snapshots");
    for (k, _) in vars {
        assert!(
            recorded.contains(&format!("\"{k}\":\"<redacted:")),
            "{k}: {recorded}"
        );
    }
    assert!(recorded.contains("\"OUTER\":\"x\""), "{recorded}");
    let run: String = one(&env.db(), "SELECT id FROM runs");
    for args in [
        vec!["show", "--patch"],
        vec!["show", "--json"],
        vec!["diff", &run, &run, "--json", "--patch"],
    ] {
        let o = env.mlrun(&args);
        assert_eq!(o.code, 0, "{args:?} {o:?}");
        assert_clean(&format!("{args:?}"), &o.all(), &secrets);
    }
    let patch = env.mlrun(&["show", "--patch"]).stdout;
    assert!(
        patch.contains("+password = <redacted>\n+token: <redacted>\n"),
        "{patch}"
    );
    // the masked diff still applies to the recorded commit
    let patch = &patch[patch.find("diff --git").unwrap()..];
    env.git_cmd(&["stash", "-q"]);
    std::fs::write(env.home.join("tmp/p.diff"), patch).unwrap();
    env.git_cmd(&["apply", env.home.join("tmp/p.diff").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(env.path("app.cfg")).unwrap(),
        "host = db\npassword = <redacted>\ntoken: <redacted>\n"
    );
}

/// HMAC-SHA256 (hex) computed by Python's standard library, not by mlrun.
fn python_hmac(key: &[u8], msg: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hmac, hashlib, sys; k = bytes.fromhex(sys.argv[1]); print(hmac.new(k, sys.argv[2].encode().replace(b'|', b'\\0'), hashlib.sha256).hexdigest())",
            &hex(key),
            msg,
        ])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_hex(data: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib, sys; [print(hashlib.sha256(l.encode().replace(b'|', b'\\0')).hexdigest()) for l in sys.stdin.read().split('\\n') if l]",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap()
}

/// 13.12: the marker of a weak secret cannot be found from the store and a list of guesses
/// (the review recovered `Summer2024` in 595 guesses from the salted hash); it is an HMAC under
/// the user's key file, which is the only way to reproduce it.
#[test]
fn a_weak_secrets_marker_cannot_be_guessed_from_the_store() {
    let mut env = Env::git();
    env.set_env("DB_PASSWORD", "Summer2024");
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo x > out.txt\"\noutputs = [\"out.txt\"]\n",
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    let db = env.db();
    let vars: String = one(&db, "SELECT env_vars FROM env_snapshots");
    let vars: serde_json::Value = serde_json::from_str(&vars).unwrap();
    let marker = vars["DB_PASSWORD"].as_str().unwrap();
    let hash = &marker["<redacted:".len()..marker.len() - 1];
    assert_eq!(hash.len(), 16, "{marker}");

    // everything the store could offer as a salt or key, against 600 guesses
    let mut candidates: Vec<String> = rows(&db, "SELECT value FROM meta")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(
        rows(&db, "SELECT key FROM meta WHERE key = 'salt'").is_empty(),
        "no salt is kept in the store"
    );
    candidates.push(String::new());
    let mut guesses: Vec<String> = (0..599).map(|i| format!("Guess{i:03}")).collect();
    guesses.push("Summer2024".into());
    let mut lines = String::new();
    for c in &candidates {
        for g in &guesses {
            lines += &format!("{c}|DB_PASSWORD|{g}\n{c}|DB_PASSWORD|{g}|\nDB_PASSWORD|{g}|\n{g}\n");
        }
    }
    let hashes = sha256_hex(&lines);
    assert!(hashes.lines().count() >= 2400);
    assert!(
        !hashes.lines().any(|h| h.starts_with(hash)),
        "the marker was reproduced from the store"
    );
    for c in &candidates {
        assert!(!python_hmac(c.as_bytes(), "DB_PASSWORD|Summer2024|").starts_with(hash));
    }

    // with the key file, and only with it, the marker is reproduced
    let key_file = env.home.join(".config/mlrun/key");
    let key = std::fs::read(&key_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        &python_hmac(key.trim_ascii_end(), "DB_PASSWORD|Summer2024|")[..16],
        hash
    );
}

/// Two users (two homes, two keys) sharing one store get different markers for the same secret,
/// so a secret-holding step is not reused across them; a shared `MLRUN_SECRET_KEY_FILE` (a team
/// or CI key) makes the markers, and so the cache, agree again.
#[test]
fn a_shared_key_file_lets_two_users_share_the_cache() {
    let mut env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo x > out.txt\"\noutputs = [\"out.txt\"]\nenv = { API_TOKEN = \"team-token-0001\" }\n",
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    // another user: another home, another key
    let other_home = env.home.join("other-user");
    std::fs::create_dir_all(&other_home).unwrap();
    env.set_env("HOME", other_home.to_str().unwrap());
    let out = env.mlrun(&[]);
    assert!(
        out.stdout.contains("✓ s"),
        "a new key means a new marker: {out:?}"
    );
    let status = env.mlrun(&["status"]);
    assert!(status.stdout.contains("up to date"), "{status:?}");

    // both point at one key file: markers agree
    let shared = env.home.join("team.key");
    std::fs::write(&shared, "0123456789abcdef0123456789abcdef\n").unwrap();
    env.set_env("MLRUN_SECRET_KEY_FILE", shared.to_str().unwrap());
    assert!(env.mlrun(&[]).stdout.contains("✓ s"));
    let own_home = env.home.to_str().unwrap().to_string();
    env.set_env("HOME", &own_home);
    let out = env.mlrun(&[]);
    assert!(out.stdout.contains("cached"), "{out:?}");
}

/// A key file that cannot be used is a clear error before anything runs; with no place for a
/// key at all, the run goes on with a one-off key and says what that costs.
#[test]
fn a_bad_key_file_is_an_error_and_no_home_a_warning() {
    let mut env = Env::git();
    env.set_env("DB_PASSWORD", "pw-0001");
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo x > out.txt\"\noutputs = [\"out.txt\"]\n",
    );
    env.commit("p");
    let short = env.home.join("short.key");
    std::fs::write(&short, "abc\n").unwrap();
    env.set_env("MLRUN_SECRET_KEY_FILE", short.to_str().unwrap());
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("short.key") && out.stderr.contains("at least 16"),
        "{out:?}"
    );
    assert!(out.stderr.contains("MLRUN_SECRET_KEY_FILE"), "{out:?}");
    assert!(!env.path("out.txt").exists());
    assert_eq!(one::<i64>(&env.db(), "SELECT count(*) FROM runs"), 0);
    // a key file that cannot be read (here: a directory) is named too
    let dir = env.home.join("a-dir.key");
    std::fs::create_dir_all(&dir).unwrap();
    env.set_env("MLRUN_SECRET_KEY_FILE", dir.to_str().unwrap());
    let out = env.mlrun(&["status"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot read the secret key file") && out.stderr.contains("a-dir.key"),
        "{out:?}"
    );

    // HOME under a regular file: no key file can be made there, even by root
    let blocker = env.home.join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    env.set_env("MLRUN_SECRET_KEY_FILE", "");
    env.set_env("HOME", blocker.join("home").to_str().unwrap());
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("one-off key"), "{out:?}");
    assert_store_clean(&env, &["pw-0001"]);
}

/// A replay runs the recorded plan, which holds markers, not secrets: it says which steps get a
/// marker instead of their secret, and records nothing secret either.
#[test]
fn a_replay_says_which_steps_lost_their_secret() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[params]\npassword = \"replaypw-0001\"\n[steps.s]\ncmd = \"echo {params.password} | wc -c > out.txt\"\noutputs = [\"out.txt\"]\n",
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    let out = env.mlrun(&["replay"]);
    assert!(
        out.stderr
            .contains("step `s` had a secret in its command or params, recorded as a marker"),
        "{out:?}"
    );
    assert_clean("replay", &out.all(), &["replaypw-0001"]);
    assert_store_clean(&env, &["replaypw-0001"]);
}

/// `diff --patch` prints the committed changes between two runs' commits from git: credentials
/// in committed code are masked there too.
#[test]
fn committed_changes_shown_by_diff_are_masked() {
    let env = Env::git();
    env.write("pipeline.toml", "[steps.s]\ncmd = \"cat conf.txt > out.txt\"\ninputs = [\"conf.txt\"]\noutputs = [\"out.txt\"]\n");
    env.write("conf.txt", "a = 1\n");
    env.commit("one");
    assert_eq!(env.mlrun(&[]).code, 0);
    env.write("conf.txt", "a = 1\npassword = committedpw0001\n");
    env.commit("two");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let ids: Vec<String> = rows(&env.db(), "SELECT id FROM runs ORDER BY started_at")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    for json in [false, true] {
        let mut args = vec!["diff", ids[0].as_str(), ids[1].as_str(), "--patch"];
        if json {
            args.push("--json");
        }
        let d = env.mlrun(&args);
        assert_eq!(d.code, 0, "{d:?}");
        assert!(d.stdout.contains("password = <redacted>"), "{d:?}");
        assert_clean("diff --patch", &d.all(), &["committedpw0001"]);
    }
}

/// A secret `env` value of pipeline.toml is recorded as a marker (and masked in the recorded
/// pipeline text); the replay, which checks that text again, gives the step this environment's
/// value of the variable, or says that it cannot.
#[test]
fn a_replay_takes_a_secret_env_value_from_the_environment() {
    let mut env = Env::git();
    env.write(
        "pipeline.toml",
        "[env]\nAPI_TOKEN = \"envpw-0001\"\n[steps.s]\ncmd = \"printf %s \\\"$API_TOKEN\\\" | sha256sum > out.txt\"\noutputs = [\"out.txt\"]\n",
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.mlrun(&["replay", "--json"]);
    assert!(
        out.stdout.contains("\"differs\""),
        "the step got the marker: {out:?}"
    );
    assert!(
        out.stderr
            .contains("`API_TOKEN` was redacted when recorded and is not set now"),
        "{out:?}"
    );
    env.set_env("API_TOKEN", "envpw-0001");
    let out = env.mlrun(&["replay", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stderr.contains("was redacted when recorded"),
        "{out:?}"
    );
    assert!(out.stdout.contains("\"identical\""), "{out:?}");
    assert_store_clean(&env, &["envpw-0001"]);
}

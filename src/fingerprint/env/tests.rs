use std::borrow::Cow;

use super::*;

fn r() -> Redactor {
    Redactor::new(
        &SecretKey::from_bytes(b"a test key of some length"),
        &["*_URL".into()],
        &["PUBLIC_KEY_ID".into()],
    )
}

#[test]
fn secret_names_and_values_are_redacted() {
    let r = r();
    let (vars, secrets) = r.capture([
        ("MY_API_TOKEN", "s3cr3t"),
        ("HOME", "/root"),
        ("DB_URL", "postgres://host/db"),
        ("PUBLIC_KEY_ID", "abc"),
        ("INNOCENT", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
        ("MLRUN_RUN_ID", "x"),
    ]);
    assert!(vars["MY_API_TOKEN"].starts_with("<redacted:"));
    assert_eq!(vars["HOME"], "/root");
    assert!(vars["DB_URL"].starts_with("<redacted:"));
    assert_eq!(vars["PUBLIC_KEY_ID"], "abc");
    assert!(vars["INNOCENT"].starts_with("<redacted:"));
    assert!(!vars.contains_key("MLRUN_RUN_ID"));
    assert_eq!(secrets.len(), 3);
    assert!(!format!("{vars:?}").contains("s3cr3t"));
}

#[test]
fn more_secret_names() {
    let r = r();
    for name in [
        "MYSQL_PWD",
        "API_PASS",
        "SMTP_PASS",
        "DB_PW",
        "TWILIO_SID",
        "SESSION_COOKIE",
        "my.db.pass",
    ] {
        assert!(r.name_is_secret(name), "{name}");
    }
    for name in [
        "PWD",
        "OLDPWD",
        "PATH",
        "PASSES",
        "GIT_ASKPASS",
        "SIDE_CAR",
        "LANG",
    ] {
        assert!(!r.name_is_secret(name), "{name}");
    }
}

#[test]
fn secret_params_follow_the_name_rules_redact_and_keep() {
    let r = Redactor::new(
        &SecretKey::from_bytes(b"a test key of some length"),
        &["db.host".into()],
        &["train.keys".into()],
    );
    let v = |s: &str| serde_json::Value::from(s);
    assert!(r.param_is_secret("password", &v("x1")));
    assert!(r.param_is_secret("db.password", &v("x1")));
    assert!(r.param_is_secret("api_key", &v("x1")));
    assert!(r.param_is_secret("token", &serde_json::json!(1234)));
    assert!(r.param_is_secret("mysql.pwd", &v("x1")));
    assert!(r.param_is_secret("db.host", &v("h")));
    assert!(r.param_is_secret("url", &v("https://u:pw@h/")));
    assert!(!r.param_is_secret("train.keys", &v("x1")));
    for secret in [
        "apiKey",
        "dbPassword",
        "auth_token",
        "client_secret",
        "api.key",
        "key",
        "authtoken",
        "gcp.credentials",
    ] {
        assert!(r.param_is_secret(secret, &v("x1")), "{secret}");
    }
    // words, not substrings: the params of a language model stay readable
    for plain in [
        "max_tokens",
        "tokenizer",
        "num_tokens",
        "monkey",
        "author",
        "train.keys_per_batch",
        "pwd",
        "sid",
    ] {
        let r = Redactor::new(
            &SecretKey::from_bytes(b"a test key of some length"),
            &[],
            &[],
        );
        assert!(!r.param_is_secret(plain, &v("x1")), "{plain}");
    }
    assert!(!r.param_is_secret("train.lr", &serde_json::json!(0.1)));
    assert!(!r.param_is_secret("password", &v("")));
    // a recorded plan (replay) holds markers: they stay as they are
    let marker = r.marker("password", "x1");
    assert!(!r.param_is_secret("password", &v(&marker)));
    assert!(!r.is_secret("DB_PASSWORD", &marker));
    let (rec, found) = r.params(&[("db.password".to_string(), v("hunter2"))].into());
    assert!(
        rec["db.password"]
            .as_str()
            .unwrap()
            .starts_with("<redacted:")
    );
    assert_eq!(found, [("db.password".to_string(), "hunter2".to_string())]);
}

#[test]
fn markers_change_with_the_value_and_the_key() {
    let r = r();
    assert_ne!(r.marker("A_TOKEN", "one"), r.marker("A_TOKEN", "two"));
    assert_eq!(r.marker("A_TOKEN", "one"), r.marker("A_TOKEN", "one"));
    let other = Redactor::new(
        &SecretKey::from_bytes(b"another key, same length!"),
        &[],
        &[],
    );
    assert_ne!(r.marker("A_TOKEN", "one"), other.marker("A_TOKEN", "one"));
}

#[test]
fn logs_are_masked() {
    let out = mask(
        "token is s3cr3t; url https://bob:pw@h/x",
        &["s3cr3t".into()],
    );
    assert_eq!(out, "token is <redacted>; url https://<redacted>@h/x");
}

#[test]
fn values_after_secret_words_are_masked() {
    for (line, want) in [
        ("password=hunter2 user=bob", "password=<redacted> user=bob"),
        ("--db-password hunter2", "--db-password hunter2"),
        ("--api-key=abc123", "--api-key=<redacted>"),
        (
            r#"{"client_secret": "two words"}"#,
            r#"{"client_secret": "<redacted>"}"#,
        ),
        ("MYSQL_PWD=pw1234 mysql", "MYSQL_PWD=<redacted> mysql"),
        ("API_PASS: 'xyz99'", "API_PASS: '<redacted>'"),
        (
            "https://h/x?token=abc&x=1",
            "https://h/x?token=<redacted>&x=1",
        ),
        (
            "curl -H 'Authorization: Bearer abcdefgh1234'",
            "curl -H 'Authorization: Bearer <redacted>'",
        ),
        ("Bearer abcdefgh12345678", "Bearer <redacted>"),
        (
            "Bearer authentication is used",
            "Bearer authentication is used",
        ),
        // ML logs keep their numbers
        (
            "max_tokens=512 num_tokens: 77 pad_token=<pad>",
            "max_tokens=512 num_tokens: 77 pad_token=<pad>",
        ),
        ("password: $DB_PASSWORD", "password: $DB_PASSWORD"),
    ] {
        assert_eq!(mask(line, &[]), want, "{line}");
    }
}

#[test]
fn a_private_key_block_is_masked_whole_across_lines() {
    let mut m = Masker::new(&[]);
    let lines = [
        "before\n",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "MIIEpAIBAAKCAQEA1234567890abcdef\n",
        "Proc-Type: 4,ENCRYPTED\n",
        "\n",
        "ZmFrZSBrZXkgYm9keQ==\n",
        "-----END RSA PRIVATE KEY----- after\n",
        "MIIEnotakeyanymore\n",
    ];
    let out: Vec<String> = lines.iter().map(|l| m.line(l).into_owned()).collect();
    assert_eq!(
        out,
        [
            "before\n",
            "<redacted>\n",
            "<redacted>\n",
            "<redacted>\n",
            "\n",
            "<redacted>\n",
            "<redacted> after\n",
            "MIIEnotakeyanymore\n",
        ]
    );
    // a block that never ends stops at the first line that cannot be part of a key
    let text = mask(
        "-----BEGIN PRIVATE KEY-----MIIE\nQUJD\nepoch 1: loss 0.5\n",
        &[],
    );
    assert_eq!(text, "<redacted>\n<redacted>\nepoch 1: loss 0.5\n");
}

#[test]
fn raw_lines_keep_every_byte_but_their_secrets() {
    let mut m = Masker::new(&["s3cr3t".into()]);
    let binary = b"\xff\xfe plain\n";
    assert!(matches!(m.bytes(binary), Cow::Borrowed(b) if b == binary));
    let leaky = b"\xff s3cr3t\n";
    assert_eq!(&*m.bytes(leaky), b"\xff <redacted>\n");
    assert_eq!(&*m.bytes(b"token=abc1\n"), b"token=<redacted>\n");
}

#[test]
fn a_patch_keeps_its_shape() {
    let patch = "diff --git a/c b/c\n--- a/c\n+++ b/c\n@@ -1,1 +1,4 @@\n x\n+password=hunter2\n+-----BEGIN OPENSSH PRIVATE KEY-----\n+b3BlbnNzaC1rZXk\n+-----END OPENSSH PRIVATE KEY-----\n";
    let out = mask_patch(patch);
    assert_eq!(out.lines().count(), patch.lines().count());
    assert!(
        !out.contains("hunter2") && !out.contains("b3BlbnNz"),
        "{out}"
    );
    assert!(
        out.contains("\n+password=<redacted>\n+<redacted>\n+<redacted>\n+<redacted>\n"),
        "{out}"
    );
}

#[test]
fn commands_get_markers_that_follow_the_secret() {
    let r = r();
    let known = [("db.password".to_string(), "hunter2".to_string())];
    let cmd = "curl -H 'Authorization: Bearer ghp_abcdefghijklmnopqrstuvwxyz0123' --pw hunter2 && DB_TOKEN=xyz1 run --n=3";
    let a = r.redact_text(cmd, &known, &mut Vec::new());
    assert!(
        !a.contains("ghp_") && !a.contains("hunter2") && !a.contains("xyz1"),
        "{a}"
    );
    assert!(
        a.contains(&format!("--pw {}", r.marker("db.password", "hunter2"))),
        "{a}"
    );
    assert!(a.ends_with(" run --n=3"), "{a}");
    let mut found = Vec::new();
    let b = r.redact_text(&cmd.replace("xyz1", "xyz2"), &known, &mut found);
    assert_ne!(a, b);
    assert_eq!(a, r.redact_text(cmd, &known, &mut Vec::new()));
    assert!(found.contains(&"xyz2".to_string()), "{found:?}");
    // placeholders and variables are not secrets
    let t = "run --password={params.pw} $TOKEN MY_TOKEN=$MY_TOKEN --token $T";
    assert_eq!(r.redact_text(t, &[], &mut Vec::new()), t);
    // a value after a secret flag, in a shell string or as the next argument
    let s = r.redact_text("mysql --password 'pw 99' -u x", &[], &mut Vec::new());
    assert!(!s.contains("pw 99") && s.ends_with(" -u x"), "{s}");
    let argv: Vec<String> = ["mysql", "--password", "pw99", "--max-tokens", "512"]
        .map(String::from)
        .into();
    let a = r.redact_argv(&argv, &[], &mut Vec::new());
    assert!(a[2].starts_with("<redacted:") && a[4] == "512", "{a:?}");
}

/// What the lines of `the_prefilter_never_hides_a_match` are built from: pieces of the credential
/// patterns and of what surrounds a secret, and two non-ASCII letters that Unicode case folding
/// maps to ASCII ones (KELVIN SIGN, LONG S).
const PIECES: &[&str] = &[
    "AKIA",
    "ASIA",
    "AGPA",
    "AIDA",
    "AROA",
    "ANPA",
    "gh",
    "p_",
    "ithub_pat_",
    "glpat-",
    "xox",
    "b-",
    "sk-",
    "AIza",
    "eyJ",
    ".eyJ",
    "-----BEGIN ",
    "RSA ",
    "PRIVATE KEY",
    "-----",
    "END ",
    "://",
    "u:pw@",
    "Authorization",
    "author",
    "ization",
    "Bearer ",
    "bear",
    "er",
    "basic ",
    "pass",
    "wd",
    "word",
    "phrase",
    "sec",
    "ret",
    "api",
    "_",
    "key",
    "access",
    "private",
    "auth",
    "to",
    "ken",
    "-token",
    "pwd",
    "p",
    "w",
    "d",
    "--",
    "-",
    "=",
    ":",
    "\"",
    "'",
    " ",
    "\t",
    "0123456789abcdefghij",
    "ABCDEFGHIJKLMNOP0123",
    "x",
    ".",
    "/",
    "@",
    "\u{212A}",
    "\u{17F}",
];

/// `may_hold_secret` may skip the credential patterns only where they cannot match: lines built
/// from pieces of those patterns (and of what surrounds a secret), in any case, with a few
/// non-ASCII letters that Unicode case folding maps to ASCII ones.
#[test]
fn the_prefilter_never_hides_a_match() {
    use proptest::prelude::*;
    let line = proptest::collection::vec((0..PIECES.len(), any::<bool>()), 1..10).prop_map(|v| {
        v.into_iter()
            .map(|(i, upper)| {
                if upper {
                    PIECES[i].to_uppercase()
                } else {
                    PIECES[i].to_lowercase()
                }
            })
            .collect::<String>()
    });
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 4000,
        ..Default::default()
    });
    runner
        .run(&line, |s| {
            if !may_hold_secret(&s) {
                prop_assert!(!any_secret().is_match(&s), "ANY_SECRET matches {s:?}");
                prop_assert!(!FLAG_VALUE.is_match(&s), "FLAG_VALUE matches {s:?}");
            }
            Ok(())
        })
        .unwrap();
}

/// The patterns' own examples, one per needle among them, all pass the prefilter and match.
#[test]
fn the_prefilter_keeps_every_patterns_examples() {
    for s in [
        "AKIAABCDEF0123456789",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
        "https://u:p@host/x",
        "Authorization: Bearer abc",
        "bearer abcdef0123456789xyz",
        "DB_PASS=hunter22",
        "--api-key hunter22",
        "x -----BEGIN RSA PRIVATE KEY----- y",
        "eyJhbGciOi.eyJzdWIiOi.sig",
        // one per needle, matching through it alone
        "ASIAABCDEF0123456789",
        "AGPAABCDEF0123456789",
        "AIDAABCDEF0123456789",
        "AROAABCDEF0123456789",
        "ANPAABCDEF0123456789",
        "glpat-abcdefghijklmnopqrstuv",
        "xoxb-1234567890",
        "sk-0123456789012345678901",
        "AIza01234567890123456789012345678901234",
        "x.pwd=hunter22",
        "secret: hunter22",
        "refresh_token=hunter22",
        "passwd=hunter22",
        "--token hunter22",
    ] {
        assert!(may_hold_secret(s), "{s}");
        assert!(any_secret_in(s) || FLAG_VALUE.is_match(s), "{s}");
    }
}

/// A command with nothing secret-looking is recorded as it is, and one with a secret is still
/// masked, whichever comes first in a process (the credential pattern is compiled on need).
#[test]
fn commands_without_secret_words_are_left_as_they_are() {
    let r = r();
    let mut found = Vec::new();
    assert_eq!(
        r.redact_text("cp s0.bin s1.bin", &[], &mut found),
        "cp s0.bin s1.bin"
    );
    assert!(found.is_empty());
    let masked = r.redact_text(
        "curl -H 'Authorization: Bearer abcdefghijklmnop' https://x",
        &[],
        &mut found,
    );
    assert!(!masked.contains("abcdefghijklmnop"), "{masked}");
    assert_eq!(found, ["abcdefghijklmnop"]);
}

//! TLS to the remote record, against the REAL test server: scripts/pg-local-start.sh gives it
//! `ssl = on` with a throwaway CA, whose certificate's path is MLRUN_TEST_PG_CA.

use super::*;

/// The test server's CA, or `None` (skipped, a failure in CI).
fn ca() -> Option<String> {
    let ca = std::env::var("MLRUN_TEST_PG_CA")
        .ok()
        .filter(|v| !v.is_empty());
    if ca.is_none() {
        skip_unless_ci("no MLRUN_TEST_PG_CA (the test PostgreSQL's CA certificate)");
    }
    ca
}

/// `runs --remote` with the record URL (or a TLS variable) changed: exit `code`, a one-line
/// error with `expect`.
fn fails(env: &Env, r: &Remote, vars: &[(&str, &str)], code: i32, expect: &str) {
    let mut cmd = env.command(&["runs", "--remote"]);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = Out::of(cmd.output().unwrap());
    assert_eq!(out.code, code, "{out:?}");
    let first = out.stderr.lines().next().unwrap_or("");
    assert!(first.contains(expect), "{expect:?} not in {out:?}");
    assert!(!out.all().contains(&r.s.pg_password), "{out:?}");
}

#[test]
fn every_sslmode_reaches_the_test_server_as_libpq_would() {
    let Some(r) = Remote::new() else { return };
    let Some(ca) = ca() else { return };
    let mut env = project(2, "tls");
    r.configure(&mut env);
    ok(&env.mlrun(&["run"]));

    // require: encrypted, the certificate not checked
    env.set_env("MLRUN_REMOTE_DB", &format!("{}?sslmode=require", r.db_url));
    ok(&env.mlrun(&["push"]));
    let runs = json(&env.mlrun(&["runs", "--remote", "--json"]));
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    env.set_env("MLRUN_REMOTE_DB", &r.db_url);

    let with = |query: &str| {
        let mut cmd = env.command(&["runs", "--remote", "--json"]);
        cmd.env("MLRUN_REMOTE_DB", format!("{}?{query}", r.db_url));
        Out::of(cmd.output().unwrap())
    };
    // verify-full against the CA given in the URL (127.0.0.1 is in the certificate)
    ok(&with(&format!("sslmode=verify-full&sslrootcert={ca}")));
    // disable: plain, as before
    ok(&with("sslmode=disable"));
    // the URL's other settings stay
    ok(&with("application_name=tls-test&sslmode=prefer"));
    // PGSSLMODE / PGSSLROOTCERT when the URL says nothing
    let mut cmd = env.command(&["runs", "--remote", "--json"]);
    cmd.env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &ca);
    ok(&Out::of(cmd.output().unwrap()));
    // verify-ca: the chain checked, not the host name (connect to 127.0.0.1 under another name)
    let (scheme_user, rest) = r.db_url.split_once('@').unwrap();
    let (_, port_db) = rest.split_once(':').unwrap();
    let renamed = format!("{scheme_user}@wrong-name.invalid:{port_db}?hostaddr=127.0.0.1");
    let mut cmd = env.command(&["runs", "--remote", "--json"]);
    cmd.env(
        "MLRUN_REMOTE_DB",
        format!("{renamed}&sslmode=verify-ca&sslrootcert={ca}"),
    );
    ok(&Out::of(cmd.output().unwrap()));

    // verify-full under a name the certificate does not list
    fails(
        &env,
        &r,
        &[(
            "MLRUN_REMOTE_DB",
            &format!("{renamed}&sslmode=verify-full&sslrootcert={ca}"),
        )],
        1,
        "certificate is not for this host name",
    );
    // verify-full with the system's roots: the throwaway CA is not among them
    fails(
        &env,
        &r,
        &[(
            "MLRUN_REMOTE_DB",
            &format!("{}?sslmode=verify-full", r.db_url),
        )],
        1,
        "not signed by a trusted CA",
    );
    // require given a root file checks the chain (libpq's rule): the CA passes, others fail
    ok(&with(&format!("sslmode=require&sslrootcert={ca}")));
    let system_bundle = "/etc/ssl/certs/ca-certificates.crt";
    if std::path::Path::new(system_bundle).exists() {
        fails(
            &env,
            &r,
            &[(
                "MLRUN_REMOTE_DB",
                &format!("{}?sslmode=require&sslrootcert={system_bundle}", r.db_url),
            )],
            1,
            "not signed by a trusted CA",
        );
    }
    fails(
        &env,
        &r,
        &[
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/no/such/ca.pem"),
        ],
        2,
        "cannot read sslrootcert `/no/such/ca.pem`",
    );
}

#[test]
fn an_unknown_sslmode_is_a_one_line_error_naming_the_allowed_ones() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(1, "bogus");
    r.configure(&mut env);
    ok(&env.mlrun(&["run"]));
    let with_pw = r.db_url.replacen("://mlrun@", "://mlrun:hunter2@", 1);
    let url = format!("{with_pw}?sslmode=bogus");
    let mut cmd = env.command(&["push"]);
    cmd.env("MLRUN_REMOTE_DB", &url);
    let out = Out::of(cmd.output().unwrap());
    assert_eq!(out.code, 2, "{out:?}");
    let first = out.stderr.lines().next().unwrap_or("");
    assert!(
        first.contains("unknown sslmode `bogus`")
            && first.contains("allowed: disable, prefer, require, verify-ca, verify-full")
            && first.contains("mlrun:***@"),
        "{out:?}"
    );
    assert!(!out.all().contains("hunter2"), "{out:?}");
    fails(
        &env,
        &r,
        &[("PGSSLMODE", "sometimes")],
        2,
        "unknown sslmode `sometimes` (from PGSSLMODE)",
    );
}

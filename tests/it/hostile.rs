//! Broken and hostile input: every case gets a clear message and exit code 2, never a panic,
//! a hang or a record. (Snapshot tests in `validate.rs` pin the exact rendering of the main
//! kinds; this table covers the breadth.)

use crate::common::Env;

/// (pipeline.toml, a phrase the message must contain)
const CASES: &[(&str, &str)] = &[
    ("", "the pipeline has no steps"),
    ("   \n\n# only a comment\n", "the pipeline has no steps"),
    ("[pipeline]\nname = \"x\"\n", "the pipeline has no steps"),
    ("[steps]\n", "the pipeline has no steps"),
    ("this is not toml", "not valid TOML"),
    ("[steps.a\ncmd = \"x\"\n", "not valid TOML"),
    ("[steps.a]\ncmd = \"x\"\ncmd = \"y\"\n", "not valid TOML"),
    ("[steps.a]\ncmd = \"unterminated\n", "not valid TOML"),
    (
        "[steps.a]\ncmd = 'x'\n[steps.a]\ncmd = 'y'\n",
        "not valid TOML",
    ),
    ("steps = 3\n", "`steps` must be a table"),
    (
        "pipeline = []\n[steps.a]\ncmd = \"x\"\n",
        "`pipeline` must be a table",
    ),
    (
        "params = \"x\"\n[steps.a]\ncmd = \"x\"\n",
        "`params` must be a table",
    ),
    ("env = 1\n[steps.a]\ncmd = \"x\"\n", "`env` must be a table"),
    ("[steps]\na = 1\n", "`steps.a` must be a table"),
    ("[steps.a]\n", "has no `cmd`"),
    ("[steps.a]\ncmd = 1\n", "`steps.a.cmd` must be a string"),
    ("[steps.a]\ncmd = true\n", "`steps.a.cmd` must be a string"),
    (
        "[steps.a]\ncmd = [1, 2]\n",
        "`steps.a.cmd[]` must be a string",
    ),
    ("[steps.a]\ncmd = []\n", "has an empty `cmd`"),
    ("[steps.a]\ncmd = \"   \"\n", "has an empty `cmd`"),
    (
        "[steps.a]\ncmd = { x = 1 }\n",
        "`steps.a.cmd` must be a string",
    ),
    (
        "[steps.a]\ncmd = \"x\"\ninputs = \"a.txt\"\n",
        "must be an array of strings",
    ),
    (
        "[steps.a]\ncmd = \"x\"\ninputs = [1]\n",
        "`steps.a.inputs[]` must be a string",
    ),
    (
        "[steps.a]\ncmd = \"x\"\noutputs = \"o\"\n",
        "must be an array of paths",
    ),
    (
        "[steps.a]\ncmd = \"x\"\noutputs = [1]\n",
        "must be a path or a table",
    ),
    (
        "[steps.a]\ncmd = \"x\"\noutputs = [{ store = false }]\n",
        "has no `path`",
    ),
    (
        "[steps.a]\ncmd = \"x\"\noutputs = [{ path = \"o\", store = \"no\" }]\n",
        "must be true or false",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nparams = \"lr\"\n",
        "must be an array of strings",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nafter = \"b\"\n",
        "must be an array of strings",
    ),
    (
        "[steps.a]\ncmd = \"x\"\ncwd = 1\n",
        "`steps.a.cwd` must be a string",
    ),
    (
        "[steps.a]\ncmd = \"x\"\ncwd = \"missing-dir\"\n",
        "is not a directory",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nenv = [\"A=1\"]\n",
        "`steps.a.env` must be a table",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nenv = { A = [1] }\n",
        "`steps.a.env.A` must be a string",
    ),
    (
        "[env]\n\"A=B\" = \"1\"\n[steps.a]\ncmd = \"x\"\n",
        "invalid variable name",
    ),
    (
        "[env]\n\"\" = \"1\"\n[steps.a]\ncmd = \"x\"\n",
        "invalid variable name",
    ),
    (
        "[steps.a]\ncmd = \"x\"\ntimeout = \"soon\"\n",
        "is not a duration",
    ),
    (
        "[steps.a]\ncmd = \"x\"\ntimeout = 30\n",
        "`steps.a.timeout` must be a string",
    ),
    (
        "[steps.a]\ncmd = \"x\"\ntimeout = \"0s\"\n",
        "must be longer than zero",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nretries = -1\n",
        "must be between 0 and 100",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nretries = \"3\"\n",
        "`steps.a.retries` must be an integer",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nretry-delay = \"later\"\n",
        "is not a duration",
    ),
    (
        "[steps.\"a b\"]\ncmd = \"x\"\n",
        "step name `a b` is not allowed",
    ),
    (
        "[steps.\"a/b\"]\ncmd = \"x\"\n",
        "step name `a/b` is not allowed",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nafter = [\"a\"]\n",
        "cannot run after itself",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nafter = [\"b\"]\n",
        "which does not exist",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nafter = [\"b\"]\n[steps.b]\ncmd = \"y\"\nafter = [\"a\"]\n",
        "cycle: ",
    ),
    (
        "[steps.a]\ncmd = \"x\"\noutputs = [\"o\"]\n[steps.b]\ncmd = \"y\"\noutputs = [\"./o\"]\n",
        "both declare output `o`",
    ),
    (
        "[steps.a]\ncmd = \"x\"\noutputs = [\"o\", \"o\"]\n",
        "declares output `o` twice",
    ),
    (
        "[steps.a]\ncmd = \"x\"\noutputs = [\"d/\"]\n[steps.b]\ncmd = \"y\"\noutputs = [\"d/sub/f\"]\n",
        "overlaps output",
    ),
    (
        "[steps.a]\ncmd = \"x\"\ninputs = [\"nope.csv\"]\n",
        "does not exist, and no step produces it",
    ),
    ("[steps.a]\ncmd = \"x\"\ninputs = [\"\"]\n", "is empty"),
    (
        "[steps.a]\ncmd = \"x\"\noutputs = [\"../up.txt\"]\n",
        "outside the project directory",
    ),
    (
        "[steps.a]\ncmd = \"x\"\noutputs = [\"/tmp/abs.txt\"]\n",
        "outside the project directory",
    ),
    (
        "[steps.a]\ncmd = \"x\"\noutputs = [\".\"]\n",
        "is the project directory itself",
    ),
    (
        "[steps.a]\ncmd = \"x\"\ninputs = [\"ok.txt\"]\noutputs = [\"ok.txt\"]\n",
        "both an input and an output",
    ),
    (
        "[steps.a]\ncmd = \"echo {params.x}\"\n",
        "no param `x` is defined",
    ),
    (
        "[params]\nlr = 1\n[steps.a]\ncmd = [\"echo\", \"{params.rl}\"]\n",
        "did you mean `{params.lr}`?",
    ),
    (
        "[steps.a]\ncmd = \"x\"\nparams = [\"lr\"]\n",
        "depends on param `lr`, which is not defined",
    ),
    (
        "[params]\nlr = 1\n[steps.a]\ncmd = \"x\"\nparams = [\"train.*\"]\n",
        "matches no param",
    ),
    (
        "[pipeline]\nparams-file = \"missing.yaml\"\n[steps.a]\ncmd = \"x\"\n",
        "cannot read params-file",
    ),
    (
        "[pipeline]\nparams-file = \"bad.yaml\"\n[steps.a]\ncmd = \"x\"\n",
        "is not valid YAML",
    ),
    (
        "[pipeline]\nparams-file = \"params.ini\"\n[steps.a]\ncmd = \"x\"\n",
        "has an unknown format",
    ),
    (
        "[pipeline]\nparams-file = \"list.json\"\n[steps.a]\ncmd = \"x\"\n",
        "must hold a mapping",
    ),
    (
        "[pipeline]\nname = 3\n[steps.a]\ncmd = \"x\"\n",
        "`pipeline.name` must be a string",
    ),
    (
        "[pipeline]\nallow-outside = \"yes\"\n[steps.a]\ncmd = \"x\"\n",
        "must be true or false",
    ),
    (
        "[pipeline]\nredact = \"X\"\n[steps.a]\ncmd = \"x\"\n",
        "must be an array of strings",
    ),
];

fn project() -> Env {
    let env = Env::git();
    env.write("ok.txt", "x\n");
    env.write("bad.yaml", "a: [1, 2\n");
    env.write("params.ini", "[a]\nb=1\n");
    env.write("list.json", "[1, 2]\n");
    env
}

#[test]
fn each_malformed_pipeline_gets_its_message_and_exit_2() {
    assert!(CASES.len() >= 50);
    let env = project();
    let mut wrong = Vec::new();
    for (toml, expected) in CASES {
        env.write("pipeline.toml", toml);
        let out = env.mlrun(&[]);
        let ok = out.code == 2 && out.stderr.contains(expected) && !out.stderr.contains("panicked");
        if !ok {
            wrong.push(format!(
                "--- pipeline.toml:\n{toml}\n--- expected `{expected}`, got {out:?}"
            ));
        }
    }
    assert!(
        !env.path(".mlrun/lineage.db").exists(),
        "nothing was recorded"
    );
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        CASES.len(),
        wrong.join("\n")
    );
}

#[test]
fn huge_and_deeply_nested_files_are_refused_cleanly() {
    let env = project();
    // 10 MB: parsed, and reported like any other file
    let big = format!(
        "# {}\n[steps.a]\ncmd = \"echo {{params.nope}}\"\n",
        "x".repeat(10_000_000)
    );
    env.write("pipeline.toml", &big);
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 2, "exit {}", out.code);
    assert!(out.stderr.contains("no param `nope`"));
    // deep nesting hits the parser's recursion limit, not the stack
    for deep in [
        format!(
            "[steps.a]\ncmd = \"x\"\nv = {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
        format!("a = {}1{}\n", "{b = ".repeat(5_000), "}".repeat(5_000)),
        format!("[{}]\n", vec!["a"; 20_000].join(".")),
    ] {
        env.write("pipeline.toml", &deep);
        let out = env.mlrun(&[]);
        assert_eq!(out.code, 2, "{}", &out.stderr[..out.stderr.len().min(300)]);
        assert!(
            out.stderr.contains("not valid TOML"),
            "{}",
            &out.stderr[..out.stderr.len().min(300)]
        );
        assert!(out.stderr.len() < 2_000, "long lines are shown as a window");
    }
}

#[test]
fn fifos_and_devices_as_inputs_are_refused_not_read() {
    let env = project();
    nix::unistd::mkfifo(&env.path("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    for input in ["pipe", "/dev/zero"] {
        env.write(
            "pipeline.toml",
            &format!("[pipeline]\nallow-outside = true\n[steps.a]\ncmd = \"echo ran > ran.txt\"\ninputs = [\"{input}\"]\n"),
        );
        let out = env.mlrun(&[]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stdout.contains("not a regular file or directory"),
            "{out:?}"
        );
        assert!(!env.path("ran.txt").exists());
    }
}

#[test]
fn odd_file_names_are_fingerprinted() {
    let env = project();
    std::fs::create_dir(env.path("data")).unwrap();
    std::fs::write(env.path("data/with\nnewline.txt"), "a").unwrap();
    std::fs::write(env.path("data/tab\tand space.txt"), "b").unwrap();
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(
        env.path("data")
            .join(std::ffi::OsStr::from_bytes(b"latin1-\xe9.txt")),
        "c",
    )
    .unwrap();
    std::os::unix::fs::symlink("..", env.path("data/loop")).unwrap();
    env.write("pipeline.toml", "[steps.a]\ncmd = \"ls data | wc -l > n.txt\"\ninputs = [\"data/\"]\noutputs = [\"n.txt\"]\n");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let n: i64 = crate::common::one(&env.db(), "SELECT nfiles FROM blobs WHERE kind = 'dir'");
    assert_eq!(n, 4);
    let m: Vec<u8> = crate::common::one(
        &env.db(),
        "SELECT c.data FROM blobs b JOIN contents c ON c.hash = b.hash WHERE b.kind = 'dir'",
    );
    let entries = mlrun::fingerprint::hash::parse_manifest(&m).expect("a manifest");
    let names: Vec<&str> = entries.iter().map(|e| e.relpath.as_str()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names.contains(&"loop") && names.contains(&"latin1-\u{fffd}.txt"),
        "{names:?}"
    );
}

#[test]
fn a_store_from_a_newer_mlrun_or_a_corrupt_one_is_refused_and_left_untouched() {
    let env = project();
    env.write(
        "pipeline.toml",
        "[steps.a]\ncmd = \"echo > o.txt\"\noutputs = [\"o.txt\"]\n",
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    env.db().pragma_update(None, "user_version", 999).unwrap();
    let before = std::fs::read(env.path(".mlrun/lineage.db")).unwrap();
    for args in [vec![], vec!["runs"]] {
        let out = env.mlrun(&args);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr
                .contains("written by a newer mlrun (schema version 999"),
            "{out:?}"
        );
        assert!(out.stderr.contains("upgrade mlrun"), "{out:?}");
    }
    assert_eq!(
        std::fs::read(env.path(".mlrun/lineage.db")).unwrap(),
        before
    );

    std::fs::write(
        env.path(".mlrun/lineage.db"),
        b"this is not a database, just some bytes....".repeat(200),
    )
    .unwrap();
    let _ = std::fs::remove_file(env.path(".mlrun/lineage.db-wal"));
    let _ = std::fs::remove_file(env.path(".mlrun/lineage.db-shm"));
    let before = std::fs::read(env.path(".mlrun/lineage.db")).unwrap();
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("is not a usable lineage store"),
        "{out:?}"
    );
    assert!(out.stderr.contains("left it untouched"), "{out:?}");
    assert_eq!(
        std::fs::read(env.path(".mlrun/lineage.db")).unwrap(),
        before
    );
}

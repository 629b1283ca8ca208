//! The team remote's objects against REAL servers (see `remote`): large objects uploaded in
//! parts and downloaded streamed; damaged objects repaired by `fsck --remote --repair` and the
//! next push.

use crate::common::Env;
use crate::remote::{Remote, clone_of, json, ok};

/// A project whose step writes `big.bin` (`size` bytes) and `small.txt` (packed on push).
fn project(size: usize) -> Env {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "objects"

[steps.make]
cmd = "yes objects-$(cat seed.txt) | head -c {size} > big.bin && cat seed.txt seed.txt > small.txt"
inputs = ["seed.txt"]
outputs = ["big.bin", "small.txt"]
"#
        ),
    );
    env.write("seed.txt", "1\n");
    env.write(".gitignore", "/big.bin\n/small.txt\n");
    env.commit("project");
    env
}

#[test]
fn a_large_object_is_uploaded_in_parts_and_downloaded_whole_and_verified() {
    let Some(r) = Remote::new() else { return };
    let mut env = project(40 << 20);
    r.configure(&mut env);
    ok(&env.mlrun(&["run", "--push"]));
    let big = env.sha256sum("big.bin");
    // on its own (not packed), and the remote's index says so
    assert_eq!(
        r.count(&format!(
            "SELECT count(*) FROM objects WHERE name = 'sha256/{big}' AND pack IS NULL"
        )),
        1
    );
    ok(&env.mlrun(&["fsck", "--remote"]));
    // the shared cache on a fresh clone brings it back, and so does pull --objects
    let clone = clone_of(&env, &r);
    ok(&clone.mlrun(&["run"]));
    assert_eq!(clone.sha256sum("big.bin"), big);
    let other = clone_of(&env, &r);
    ok(&other.mlrun(&["pull", "--objects"]));
    let stored = other.path(&format!(
        ".mlrun/objects/sha256/{}/{}",
        &big[..2],
        &big[2..]
    ));
    assert_eq!(
        std::fs::read(stored).unwrap(),
        std::fs::read(env.path("big.bin")).unwrap()
    );
    // pushing again sends nothing (create-if-absent: it is there)
    let again = json(&env.mlrun(&["push", &env.run_ids()[0], "--json"]));
    assert_eq!(again["runs"][0]["uploaded"], 0, "{again}");
}

#[test]
fn a_damaged_object_is_repaired_by_fsck_remote_repair_and_the_next_push() {
    let Some(r) = Remote::new() else { return };
    // big.bin (2 MiB) is stored on its own, small.txt packed
    let mut env = project(2 << 20);
    r.configure(&mut env);
    ok(&env.mlrun(&["run", "--push"]));
    let id = env.run_ids()[0].clone();
    let (big, small) = (env.sha256sum("big.bin"), env.sha256sum("small.txt"));
    r.damage(&format!("sha256/{big}"));
    r.damage(&format!("sha256/{small}"));

    let f = env.mlrun(&["fsck", "--remote", "--json"]);
    assert_eq!(f.code, 1, "{f:?}");
    let v = json(&f);
    assert_eq!(v["corrupt"].as_array().unwrap().len(), 2, "{v}");
    // the remote's index still counts them, so a push alone would not send them
    let fixed = env.mlrun(&["fsck", "--remote", "--repair", "--json"]);
    assert_eq!(fixed.code, 0, "{fixed:?}");
    let v = json(&fixed);
    assert_eq!(v["repaired"]["deleted"], 1, "{v}");
    assert_eq!(v["repaired"]["runs_to_push"], 1, "{v}");
    // until the push: missing, and still a problem
    let f = env.mlrun(&["fsck", "--remote", "--json"]);
    assert_eq!(f.code, 1, "{f:?}");

    let pushed = json(&env.mlrun(&["push", "--json"]));
    assert_eq!(pushed["runs"][0]["run"], id.as_str(), "{pushed}");
    assert_eq!(pushed["runs"][0]["uploaded"], 2, "{pushed}");
    assert_eq!(pushed["runs"][0]["written"], false, "{pushed}");
    ok(&env.mlrun(&["fsck", "--remote"]));
    assert_eq!(r.count("SELECT count(*) FROM objects_damaged"), 0);
    // the packed one went on its own
    assert_eq!(
        r.count(&format!(
            "SELECT count(*) FROM objects WHERE name = 'sha256/{small}' AND pack IS NULL"
        )),
        1
    );

    // a fresh clone gets the good bytes and replays the run
    let clone = clone_of(&env, &r);
    ok(&clone.mlrun(&["pull", "--objects"]));
    let out = clone.mlrun(&["replay", &id[..12]]);
    ok(&out);
    assert!(out.all().contains("reproduced bit for bit"), "{out:?}");
    let third = clone_of(&env, &r);
    ok(&third.mlrun(&["run"]));
    assert_eq!(third.sha256sum("big.bin"), big);
    assert_eq!(third.sha256sum("small.txt"), small);
}

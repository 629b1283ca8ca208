//! Never writing outside the project: symlinked parents (restore, validation), recorded paths
//! edited in the store (replay), replay leaving `.git` alone, file names that are not UTF-8,
//! and outputs that are symbolic links.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::common::{Env, one, rows};

/// A directory next to the project (inside the test's temporary directory), outside it.
fn outside(env: &Env, name: &str) -> PathBuf {
    let p = env.root.parent().unwrap().join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn restore_never_writes_through_a_parent_replaced_by_a_link_out_of_the_project() {
    let env = Env::git();
    // the step succeeds once; run again it fails, so a restore is the only way to "succeed"
    env.write(
        "pipeline.toml",
        r#"[pipeline]
allow-outside = true
[steps.make]
cmd = "test ! -e .ran || exit 3; touch .ran; mkdir -p linkdir && echo hello > linkdir/out.txt"
outputs = ["linkdir/out.txt"]
"#,
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    // the output's parent is replaced by a link to a directory outside the project
    let elsewhere = outside(&env, "elsewhere");
    std::fs::remove_dir_all(env.path("linkdir")).unwrap();
    symlink(&elsewhere, env.path("linkdir")).unwrap();

    let out = env.mlrun(&[]);
    assert!(
        listing(&elsewhere).is_empty(),
        "nothing was restored outside the project: {:?} {out:?}",
        listing(&elsewhere)
    );
    assert_ne!(out.code, 0, "the step ran again (and failed): {out:?}");
    assert!(
        out.stderr.contains("cannot restore `linkdir/out.txt`")
            && out.stderr.contains("is a symbolic link to")
            && out.stderr.contains("outside the project"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("outside the project directory"),
        "validation warned: {out:?}"
    );
}

#[test]
fn validation_refuses_a_path_whose_parent_is_a_link_out_of_the_project() {
    let env = Env::git();
    let elsewhere = outside(&env, "elsewhere");
    symlink(&elsewhere, env.path("linkdir")).unwrap();
    std::fs::create_dir(env.path("real")).unwrap();
    symlink("real", env.path("inside")).unwrap();
    env.write(
        "pipeline.toml",
        r#"[steps.make]
cmd = "echo hello > linkdir/out.txt"
outputs = ["linkdir/out.txt", "inside/ok.txt"]
"#,
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "output `linkdir/out.txt` is outside the project directory: `linkdir` is a symbolic link to"
        ),
        "{out:?}"
    );
    assert!(out.stderr.contains("pipeline.toml:3:"), "located: {out:?}");
    assert!(
        !out.stderr.contains("output `inside/ok.txt`") && !out.stderr.contains("problems"),
        "a link inside the project is fine: {out:?}"
    );
    assert!(listing(&elsewhere).is_empty(), "nothing ran");
}

/// A project whose input `data/` (a directory) and `raw.txt` are git-ignored: replay restores
/// them from the store.
fn replay_project() -> Env {
    let env = Env::git();
    env.write(".gitignore", "/.mlrun/\n/data/\n/raw.txt\n/out.txt\n");
    env.write(
        "pipeline.toml",
        r#"[steps.make]
cmd = "cat raw.txt data/a.txt > out.txt"
inputs = ["raw.txt", "data/"]
outputs = ["out.txt"]
"#,
    );
    env.write("raw.txt", "raw\n");
    env.write("data/a.txt", "a\n");
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    env
}

#[test]
fn replay_refuses_recorded_paths_edited_to_leave_the_project() {
    let env = replay_project();
    let tmp = env.root.parent().unwrap().to_path_buf();
    let absolute = tmp.join("absolute.txt");
    for edited in ["../../escaped.txt", absolute.to_str().unwrap()] {
        let db = env.db();
        db.execute(
            "UPDATE artifacts SET path = ?1 WHERE path = 'raw.txt' OR path = '../../escaped.txt'",
            [edited],
        )
        .unwrap();
        drop(db);
        let out = env.mlrun(&["replay"]);
        assert_eq!(out.code, 1, "{edited}: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("records the path `{edited}`, which")),
            "{out:?}"
        );
        assert!(out.stderr.contains("nothing was replayed"), "{out:?}");
    }
    // the scratch tree is $TMPDIR/mlrun-replay-*: `../../escaped.txt` would land in HOME
    for p in [
        env.home.join("escaped.txt"),
        env.home.join("tmp/escaped.txt"),
        tmp.join("escaped.txt"),
        absolute,
    ] {
        assert!(!p.exists(), "{} was written", p.display());
    }
}

#[test]
fn replay_refuses_a_directory_manifest_edited_to_leave_the_scratch_tree() {
    let env = replay_project();
    let db = env.db();
    let hash: String = one(
        &db,
        "SELECT v.blob_hash FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id WHERE a.path = 'data'",
    );
    let manifest: Vec<u8> = db
        .query_row("SELECT data FROM contents WHERE hash = ?1", [&hash], |r| {
            r.get(0)
        })
        .unwrap();
    let text = String::from_utf8(manifest).unwrap();
    assert!(text.ends_with(" a.txt\0"), "{text:?}");
    let edited = text.replace(" a.txt\0", " ../../../planted.txt\0");
    db.execute(
        "UPDATE contents SET data = ?2 WHERE hash = ?1",
        rusqlite::params![hash, edited.as_bytes()],
    )
    .unwrap();
    drop(db);
    let out = env.mlrun(&["replay"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("`../../../planted.txt`, which climbs out"),
        "{out:?}"
    );
    let tmp = env.root.parent().unwrap();
    for p in [
        env.home.join("planted.txt"),
        env.home.join("tmp/planted.txt"),
        tmp.join("planted.txt"),
    ] {
        assert!(!p.exists(), "{} was written", p.display());
    }
}

/// Every file under `dir` with its bytes (and every directory, as an empty entry).
fn snapshot_all(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(rel, None);
                walk(base, &p, out);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn replay_of_a_dirty_run_writes_nothing_into_git_even_while_another_git_holds_its_lock() {
    let env = Env::git();
    env.write(".gitignore", "/.mlrun/\n/out.txt\n");
    env.write(
        "pipeline.toml",
        "[steps.make]\ncmd = \"sh src/make.sh\"\ninputs = [\"src/make.sh\"]\noutputs = [\"out.txt\"]\n",
    );
    env.write("src/make.sh", "echo committed > out.txt\n");
    env.write("src/other.txt", "unchanged\n");
    env.commit("p");
    // an uncommitted change, recorded as the run's diff
    env.write("src/make.sh", "echo uncommitted > out.txt\n");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    // the working tree moves on; another git command holds the index lock meantime
    env.git_cmd(&["checkout", "--", "src/make.sh"]);
    std::fs::write(env.path(".git/index.lock"), b"held by another git").unwrap();
    let before = snapshot_all(&env.path(".git"));

    let out = env.mlrun(&["replay", "--into", "reproduced"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("+ uncommitted diff"), "{out:?}");
    assert!(out.stdout.contains("✓ make  identical"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(env.path("reproduced/out.txt")).unwrap(),
        "uncommitted\n"
    );
    let after = snapshot_all(&env.path(".git"));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "no file added to or removed from .git"
    );
    assert!(before == after, "every file of .git is byte-identical");
}

/// `python3 -c CODE` as a TOML array.
fn py(code: &str) -> String {
    format!(
        "[\"python3\", \"-c\", {}]",
        serde_json::to_string(code).unwrap()
    )
}

#[test]
fn a_non_utf8_name_is_not_the_same_input_as_its_replacement_character_twin() {
    let env = Env::git();
    env.write(".gitignore", "/.mlrun/\n/data/\n/n.txt\n");
    std::fs::create_dir(env.path("data")).unwrap();
    let bad = env.path("data").join(OsStr::from_bytes(b"a\xff"));
    std::fs::write(&bad, "same bytes\n").unwrap();
    env.write(
        "pipeline.toml",
        "[steps.count]\ncmd = \"ls data | wc -l > n.txt\"\ninputs = [\"data/\"]\noutputs = [\"n.txt\"]\n",
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    // the same bytes under the name that the lossy form of `a\xff` would give
    std::fs::rename(&bad, env.path("data/a\u{FFFD}")).unwrap();
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stdout.contains("cached") && !out.stderr.contains("cached"),
        "a renamed file is a changed input: {out:?}"
    );
    let statuses = rows(&env.db(), "SELECT status FROM step_execs ORDER BY id");
    assert_eq!(statuses, [["succeeded"], ["succeeded"]]);
}

#[test]
fn a_directory_holding_a_non_utf8_name_is_stored_and_restored_byte_exactly() {
    let env = Env::git();
    env.write(".gitignore", "/.mlrun/\n/out/\n");
    env.write(
        "pipeline.toml",
        &format!(
            "[steps.make]\ncmd = {}\noutputs = [\"out/\"]\n",
            py("import os\nos.makedirs('out/sub', exist_ok=True)\n\
                open(b'out/b\\xfe', 'w').write('latin-1 name\\n')\n\
                open('out/sub/plain.txt', 'w').write('plain\\n')\n")
        ),
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stderr.contains("cannot"),
        "stored without a problem: {out:?}"
    );
    assert_eq!(
        one::<i64>(&env.db(), "SELECT stored FROM blobs WHERE kind = 'dir'"),
        1,
        "the directory's bytes are kept"
    );
    std::fs::remove_dir_all(env.path("out")).unwrap();
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("restored"), "{out:?}");
    let name = env.path("out").join(OsStr::from_bytes(b"b\xfe"));
    assert_eq!(std::fs::read_to_string(name).unwrap(), "latin-1 name\n");
    assert_eq!(
        std::fs::read_to_string(env.path("out/sub/plain.txt")).unwrap(),
        "plain\n"
    );
    assert_eq!(listing(&env.path("out")).len(), 2);
    let out = env.mlrun(&["fsck"]);
    assert_eq!(out.code, 0, "{out:?}");
}

/// Validation finds overlapping outputs and producers through an index rather than by comparing
/// every pair (its speed is measured by scripts/bench/validate-scale.sh, not here): the findings
/// must be the same ones, in the same order, however many steps there are.
#[test]
fn a_large_pipeline_reports_every_overlap_and_producer_as_before() {
    let env = Env::git();
    env.write("shared.txt", "s\n");
    let mut toml = String::new();
    for i in 0..3000 {
        let input = if i == 0 {
            String::new()
        } else {
            format!(", \"out/s{}.txt\"", i - 1)
        };
        toml += &format!(
            "[steps.s{i}]\ncmd = \"true\"\ninputs = [\"shared.txt\"{input}]\noutputs = [\"out/s{i}.txt\"]\n"
        );
    }
    toml += "[steps.whole]\ncmd = \"true\"\noutputs = [\"out/s5.txt/inner\"]\n";
    toml += "[steps.again]\ncmd = \"true\"\noutputs = [\"out/s7.txt\", \"out/s7.txt\"]\n";
    toml += "[steps.reader]\ncmd = \"true\"\ninputs = [\"out/s2999.txt\", \"nowhere.txt\"]\noutputs = [\"r.txt\"]\n";
    env.write("pipeline.toml", &toml);
    // (`status` reports a missing input on its step instead: `run` validates it)
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 2, "{out:?}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error"))
        .collect();
    // what the pairwise checks reported
    assert_eq!(
        errors,
        [
            "error: output `out/s5.txt/inner` of step `whole` overlaps output `out/s5.txt` of step `s5`",
            "error: steps `s7` and `again` both declare output `out/s7.txt`",
            "error: steps `s7` and `again` both declare output `out/s7.txt`",
            "error: step `again` declares output `out/s7.txt` twice",
            "error: input `nowhere.txt` of step `reader` does not exist, and no step produces it",
            "error: 5 problems in `pipeline.toml`; nothing was run",
        ],
        "{out:?}"
    );
}

#[test]
fn an_output_that_is_a_symbolic_link_is_restored_as_that_link() {
    let env = Env::git();
    env.write(".gitignore", "/.mlrun/\n/ckpt/\n/best.bin\n");
    env.write(
        "pipeline.toml",
        r#"[steps.train]
cmd = "mkdir -p ckpt && echo epoch3 > ckpt/e3.bin && ln -sfn ckpt/e3.bin best.bin"
outputs = ["ckpt/", "best.bin"]
"#,
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");

    // both outputs gone: the link comes back as a link, its target with its content
    std::fs::remove_dir_all(env.path("ckpt")).unwrap();
    std::fs::remove_file(env.path("best.bin")).unwrap();
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("restored"), "{out:?}");
    assert_eq!(
        std::fs::read_link(env.path("best.bin")).unwrap(),
        Path::new("ckpt/e3.bin")
    );
    assert_eq!(
        std::fs::read_to_string(env.path("best.bin")).unwrap(),
        "epoch3\n"
    );

    // only the link replaced by a file of other bytes: the link again, not a copy
    std::fs::remove_file(env.path("best.bin")).unwrap();
    std::fs::write(env.path("best.bin"), "edited\n").unwrap();
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        std::fs::symlink_metadata(env.path("best.bin"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("ckpt/e3.bin")).unwrap(),
        "epoch3\n"
    );
    // the link's own target is part of the record
    assert_eq!(
        one::<Vec<u8>>(
            &env.db(),
            "SELECT DISTINCT e.link FROM io_edges e JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id WHERE a.path = 'best.bin'"
        ),
        b"ckpt/e3.bin"
    );
}

#[test]
fn replay_never_writes_through_links_committed_in_the_repository() {
    let env = Env::git();
    // the real data lives outside the project, behind a committed link
    let real = outside(&env, "real-data");
    std::fs::write(real.join("raw.csv"), "1 2 3\n").unwrap();
    symlink(&real, env.path("data")).unwrap();
    let shared = outside(&env, "shared").join("pipeline.toml");
    std::fs::write(
        &shared,
        "[pipeline]\nallow-outside = true\n[steps.sum]\ncmd = \"cat data/raw.csv > out.txt\"\ninputs = [\"data/raw.csv\"]\noutputs = [\"out.txt\"]\n",
    )
    .unwrap();
    symlink(&shared, env.path("pipeline.toml")).unwrap();
    env.write(".gitignore", "/.mlrun/\n/out.txt\n");
    env.commit("links");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    // the real pipeline file moves on: the replay writes the recorded one into its scratch
    // tree, where the committed link to the real one stands
    std::fs::write(&shared, "# edited since\n").unwrap();
    let out = env.mlrun(&["replay"]);
    assert_eq!(
        std::fs::read_to_string(&shared).unwrap(),
        "# edited since\n",
        "the real pipeline file was not overwritten: {out:?}"
    );
    assert_eq!(out.code, 0, "{out:?}");

    // the real data moves on: the recorded version must be restored, but not through the link
    std::fs::write(real.join("raw.csv"), "4 5 6\n").unwrap();
    let out = env.mlrun(&["replay"]);
    assert_eq!(
        std::fs::read_to_string(real.join("raw.csv")).unwrap(),
        "4 5 6\n",
        "the real data was not overwritten with the recorded version: {out:?}"
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("cannot restore input `data/raw.csv` into the scratch tree"),
        "{out:?}"
    );
    assert!(out.stderr.contains("outside the project"), "{out:?}");
}

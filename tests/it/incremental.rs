//! Incremental runs: unchanged steps are skipped, deleted outputs restored, and every kind of
//! change makes the step run again, with `status` saying why.

use crate::common::{Env, one, rows};

const PIPELINE: &str = r#"
[params]
scale = 2
[env]
MODE = "fast"
[steps.prepare]
cmd = "tr a-z A-Z < raw.txt > prepared.txt"
inputs = ["raw.txt"]
outputs = ["prepared.txt"]
[steps.train]
cmd = "echo scale={params.scale} mode=$MODE > model.txt; cat prepared.txt >> model.txt; echo acc=0.9 >> $MLRUN_METRICS"
inputs = ["prepared.txt"]
outputs = ["model.txt"]
"#;

fn project() -> Env {
    let env = Env::git();
    env.write("raw.txt", "hello\n");
    env.write("pipeline.toml", PIPELINE);
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    env
}

fn statuses(env: &Env) -> Vec<Vec<String>> {
    rows(
        &env.db(),
        "SELECT step, status FROM step_execs WHERE run_id = (SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT 1) ORDER BY id",
    )
}

fn status_of(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["status", "--json"];
    a.extend_from_slice(args);
    let out = env.mlrun(&a);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn reasons(v: &serde_json::Value, step: &str) -> Vec<String> {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == step)
        .unwrap()["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_unchanged_pipeline_is_skipped_and_recorded_as_reuse() {
    let env = project();
    let before = env.sha256sum("model.txt");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("= prepare  cached"), "{out:?}");
    assert!(out.stdout.contains("(all up to date)"), "{out:?}");
    assert!(
        !out.all().contains("train │"),
        "the step did not run: {out:?}"
    );
    assert_eq!(statuses(&env), [["prepare", "cached"], ["train", "cached"]]);
    assert_eq!(env.sha256sum("model.txt"), before);
    let db = env.db();
    // the reuse points at the original execution and carries its lineage and metrics
    let (orig, reused): (i64, i64) = db
        .query_row(
            "SELECT o.id, c.reused_exec FROM step_execs o JOIN step_execs c ON c.step = o.step
             WHERE o.step = 'train' AND o.status = 'succeeded' AND c.status = 'cached'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(orig, reused);
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT count(*) FROM io_edges e JOIN step_execs s ON s.id = e.step_exec WHERE s.status = 'cached'"
        ),
        4
    );
    assert_eq!(
        one::<f64>(
            &db,
            "SELECT value FROM metrics m JOIN step_execs s ON s.id = m.step_exec WHERE s.status = 'cached'"
        ),
        0.9
    );
    let st = status_of(&env, &[]);
    assert_eq!(st["stale"], 0, "{st}");
}

#[test]
fn a_deleted_output_is_restored_from_the_object_store() {
    let env = project();
    let before = env.sha256sum("model.txt");
    std::fs::remove_file(env.path("model.txt")).unwrap();
    assert!(
        reasons(&status_of(&env, &[]), "train")[0]
            .starts_with("output model.txt is missing (mlrun will restore it)")
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("↺ train    restored  model.txt"),
        "{out:?}"
    );
    assert_eq!(env.sha256sum("model.txt"), before);
    assert_eq!(
        statuses(&env),
        [["prepare", "cached"], ["train", "restored"]]
    );
}

/// A directory output is named as it is declared, with its trailing `/`, when restored.
#[test]
fn a_restored_directory_output_is_shown_with_its_trailing_slash() {
    let env = Env::git();
    env.write("raw.txt", "hello\n");
    env.write(
        "pipeline.toml",
        "[steps.train]\ncmd = \"mkdir -p model && cp raw.txt model/w.txt && cp raw.txt log.txt\"\ninputs = [\"raw.txt\"]\noutputs = [\"model/\", \"log.txt\"]\n",
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    std::fs::remove_dir_all(env.path("model")).unwrap();
    std::fs::remove_file(env.path("log.txt")).unwrap();
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("↺ train  restored  model/, log.txt\n"),
        "{out:?}"
    );
    assert_eq!(env.sha256sum("model/w.txt"), env.sha256sum("raw.txt"));
}

#[test]
fn each_kind_of_change_reruns_the_step_and_status_says_why() {
    let env = project();
    // never run: a new step
    env.write("pipeline.toml", &format!("{PIPELINE}\n[steps.report]\ncmd = \"cat model.txt > report.txt\"\ninputs = [\"model.txt\"]\noutputs = [\"report.txt\"]\n"));
    assert_eq!(reasons(&status_of(&env, &[]), "report"), ["never run"]);
    env.write("pipeline.toml", PIPELINE);

    // input changed
    let old = env.sha256sum("raw.txt");
    env.write("raw.txt", "world\n");
    let new = env.sha256sum("raw.txt");
    let st = status_of(&env, &["--check"]);
    assert_eq!(
        reasons(&st, "prepare"),
        [format!(
            "input raw.txt changed ({}… → {}…)",
            &old[..8],
            &new[..8]
        )]
    );
    assert_eq!(reasons(&st, "train"), ["depends on stale step `prepare`"]);
    assert_eq!(env.mlrun(&["status", "--check"]).code, 1);
    assert_eq!(env.mlrun(&[]).code, 0);
    assert_eq!(
        statuses(&env),
        [["prepare", "succeeded"], ["train", "succeeded"]]
    );
    assert_eq!(env.mlrun(&["status", "--check"]).code, 0);

    // param changed
    assert_eq!(
        reasons(&status_of(&env, &["-p", "scale=3"]), "train"),
        ["param scale 2 → 3"]
    );
    assert_eq!(env.mlrun(&["-p", "scale=3"]).code, 0);
    assert_eq!(
        statuses(&env),
        [["prepare", "cached"], ["train", "succeeded"]]
    );
    assert!(
        std::fs::read_to_string(env.path("model.txt"))
            .unwrap()
            .starts_with("scale=3")
    );
    // and back: the earlier result is restored, not recomputed
    let out = env.mlrun(&[]);
    assert_eq!(
        statuses(&env),
        [["prepare", "cached"], ["train", "restored"]],
        "{out:?}"
    );

    // command changed
    env.write(
        "pipeline.toml",
        &PIPELINE.replace("tr a-z A-Z", "tr a-z A-Z "),
    );
    assert_eq!(
        reasons(&status_of(&env, &[]), "prepare"),
        ["command changed"]
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    assert_eq!(statuses(&env)[0], ["prepare", "succeeded"]);

    // env changed
    env.write("pipeline.toml", &PIPELINE.replace("\"fast\"", "\"slow\""));
    // [env] is part of every step's key
    let st = status_of(&env, &[]);
    assert_eq!(
        reasons(&st, "prepare"),
        ["command changed", "env MODE changed"]
    );
    assert_eq!(
        reasons(&st, "train"),
        ["env MODE changed", "depends on stale step `prepare`"]
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    assert!(
        std::fs::read_to_string(env.path("model.txt"))
            .unwrap()
            .contains("mode=slow")
    );

    // output modified by hand: status says so, a run restores the recorded result
    env.write("model.txt", "edited by hand\n");
    assert_eq!(
        reasons(&status_of(&env, &[]), "train"),
        ["output model.txt modified since last run (mlrun will restore it)"]
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    assert!(
        std::fs::read_to_string(env.path("model.txt"))
            .unwrap()
            .contains("mode=slow")
    );
}

#[test]
fn force_reruns_all_or_named_steps() {
    let env = project();
    let out = env.mlrun(&["--force"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        statuses(&env),
        [["prepare", "succeeded"], ["train", "succeeded"]]
    );
    let out = env.mlrun(&["--force=train"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        statuses(&env),
        [["prepare", "cached"], ["train", "succeeded"]]
    );
    let out = env.mlrun(&["--force=trian"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("did you mean `train`?"), "{out:?}");
}

#[test]
fn a_same_size_edit_that_keeps_the_mtime_is_detected() {
    let env = project();
    // rewrite the input within the same second, same size, and put its mtime back
    let raw = env.path("raw.txt");
    let mtime = std::fs::metadata(&raw).unwrap().modified().unwrap();
    std::fs::write(&raw, "jello\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&raw)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&raw).unwrap().modified().unwrap(), mtime);
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        statuses(&env)[0],
        ["prepare", "succeeded"],
        "the edit was seen: {out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("prepared.txt")).unwrap(),
        "JELLO\n"
    );
}

#[test]
fn outputs_with_store_false_keep_hashes_but_no_bytes() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.big]\ncmd = \"echo huge > big.bin\"\noutputs = [{ path = \"big.bin\", store = false }]\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let db = env.db();
    assert_eq!(one::<i64>(&db, "SELECT stored FROM blobs"), 0);
    assert!(
        env.mlrun(&["show"])
            .stdout
            .contains("(bytes not stored: cannot be restored)")
    );
    std::fs::remove_file(env.path("big.bin")).unwrap();
    env.mlrun(&[]);
    assert_eq!(
        statuses(&env),
        [["big", "succeeded"]],
        "not restorable: it ran again"
    );
    // --no-store for a whole run
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo x > o.txt\"\noutputs = [\"o.txt\"]\n",
    );
    assert_eq!(env.mlrun(&["--no-store"]).code, 0);
    assert!(!env.path(".mlrun/objects/sha256").exists());
}

#[test]
fn an_unwritable_object_store_still_records_the_step() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo x > o.txt\"\noutputs = [\"o.txt\"]\n",
    );
    std::fs::create_dir_all(env.path(".mlrun")).unwrap();
    // a file where the objects directory should be: every store attempt fails
    std::fs::write(env.path(".mlrun/objects"), "not a directory").unwrap();
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("could not keep a copy of output `o.txt`"),
        "{out:?}"
    );
    let db = env.db();
    assert_eq!(
        one::<String>(&db, "SELECT status FROM step_execs"),
        "succeeded"
    );
    assert_eq!(
        one::<String>(&db, "SELECT blob_hash FROM artifact_versions"),
        env.sha256sum("o.txt")
    );
    assert_eq!(one::<i64>(&db, "SELECT stored FROM blobs"), 0);
    assert_eq!(
        std::fs::read_to_string(env.path(".mlrun/objects")).unwrap(),
        "not a directory"
    );
}

fn object_of(env: &Env, hash: &str) -> std::path::PathBuf {
    env.path(&format!(
        ".mlrun/objects/sha256/{}/{}",
        &hash[..2],
        &hash[2..]
    ))
}

#[test]
fn fsck_finds_a_corrupt_object_and_restore_refuses_it() {
    let env = project();
    let hash = env.sha256sum("model.txt");
    let obj = object_of(&env, &hash);
    let aside = env.path(&format!(".mlrun/objects/corrupt/{hash}"));
    assert!(obj.is_file());
    assert_eq!(env.mlrun(&["fsck"]).code, 0);

    // fsck reports it and moves it aside
    std::fs::write(&obj, "tampered\n").unwrap();
    let out = env.mlrun(&["fsck"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("corrupt {}  model.txt", &hash[..12])),
        "{out:?}"
    );
    assert!(
        !obj.exists() && aside.is_file(),
        "moved to objects/corrupt/"
    );
    assert!(
        out.stdout.contains("1 problem:") && !out.stdout.contains("missing"),
        "reported once, as corrupt: {out:?}"
    );
    let again = env.mlrun(&["fsck"]);
    assert!(
        again.stdout.contains(&format!("missing {}", &hash[..12]))
            && !again.stdout.contains("were moved"),
        "now it is missing, and nothing more was moved: {again:?}"
    );

    // a restore that meets a corrupt object refuses it, moves it aside, and the step runs
    // instead, storing a good copy under the same name
    std::fs::remove_file(&aside).unwrap();
    assert_eq!(env.mlrun(&["--force"]).code, 0);
    assert!(obj.is_file(), "a rerun stored the object again");
    std::fs::set_permissions(&obj, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&obj, "tampered\n").unwrap();
    std::fs::remove_file(env.path("model.txt")).unwrap();
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("is corrupt"), "{out:?}");
    assert_eq!(
        statuses(&env)[1],
        ["train", "succeeded"],
        "the step ran instead"
    );
    assert_eq!(env.sha256sum("model.txt"), hash);
    assert!(aside.is_file(), "the corrupt copy was moved aside");
    assert_eq!(
        env.mlrun(&["fsck"]).code,
        0,
        "the rerun stored a good copy: {:?}",
        env.mlrun(&["fsck"])
    );
}

#[test]
fn gc_keeps_what_kept_runs_reference() {
    let env = project();
    let first = env.sha256sum("model.txt");
    assert_eq!(env.mlrun(&["-p", "scale=5"]).code, 0);
    let second = env.sha256sum("model.txt");
    assert_ne!(first, second);
    let out = env.mlrun(&["gc", "--dry-run"]);
    assert!(out.stdout.contains("would delete 0 objects"), "{out:?}");
    let out = env.mlrun(&["gc", "--keep-last", "1", "--dry-run"]);
    assert!(out.stdout.contains("would delete 1 object"), "{out:?}");
    assert!(object_of(&env, &first).exists(), "dry run deletes nothing");
    let out = env.mlrun(&["gc", "--keep-last", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!object_of(&env, &first).exists());
    assert!(object_of(&env, &second).exists());
    assert!(
        object_of(&env, &env.sha256sum("prepared.txt")).exists(),
        "shared by the kept run"
    );
    assert_eq!(
        env.mlrun(&["fsck"]).code,
        0,
        "the database knows what was deleted"
    );
    // the old version is still in the lineage, but can no longer be restored
    std::fs::remove_file(env.path("model.txt")).unwrap();
    env.mlrun(&[]);
    assert_eq!(statuses(&env)[1], ["train", "succeeded"]);
}

#[test]
fn status_names_the_step_that_makes_a_missing_input() {
    let env = project();
    std::fs::remove_file(env.path("prepared.txt")).unwrap();
    let st = status_of(&env, &[]);
    assert!(
        reasons(&st, "train")
            .contains(&"input prepared.txt does not exist yet (`prepare` makes it)".to_string()),
        "{st}"
    );
}

/// A pipeline whose step writes a directory: `shards/a.txt` changes with `k`, `shards/b.txt`
/// does not.
fn dir_project() -> Env {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[params]\nk = 1\n[steps.shard]\ncmd = \"mkdir -p shards && echo {params.k} > shards/a.txt && echo same > shards/b.txt\"\noutputs = [\"shards/\"]\n",
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    env
}

#[test]
fn fsck_finds_a_damaged_directory_manifest() {
    let env = dir_project();
    assert_eq!(env.mlrun(&["fsck"]).code, 0);
    let dir: String = one(&env.db(), "SELECT hash FROM blobs WHERE kind = 'dir'");
    env.db()
        .execute(
            "UPDATE contents SET data = CAST('100644 x 1 a.txt' AS BLOB) || X'00' WHERE hash = ?1",
            [&dir],
        )
        .unwrap();
    let out = env.mlrun(&["fsck"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("manifest corrupt {}  shards", &dir[..12])),
        "{out:?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.mlrun(&["fsck", "--json"]).stdout).unwrap();
    assert_eq!(json["findings"][0]["problem"], "manifest corrupt");
}

#[test]
fn gc_marks_a_directory_version_unrestorable_when_one_of_its_files_goes() {
    let env = dir_project();
    let first: String = one(&env.db(), "SELECT hash FROM blobs WHERE kind = 'dir'");
    let old_a = env.sha256sum("shards/a.txt");
    let b = env.sha256sum("shards/b.txt");
    assert_eq!(env.mlrun(&["-p", "k=2"]).code, 0);
    let out = env.mlrun(&["gc", "--keep-last", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("deleted 1 object"), "{out:?}");
    assert!(!object_of(&env, &old_a).exists());
    assert!(object_of(&env, &b).exists(), "shared with the kept version");
    let stored = |hash: &str| -> i64 {
        env.db()
            .query_row("SELECT stored FROM blobs WHERE hash = ?1", [hash], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(
        stored(&first),
        0,
        "the old version can no longer be restored"
    );
    let kept: String = one(
        &env.db(),
        "SELECT hash FROM blobs WHERE kind = 'dir' AND stored = 1",
    );
    assert_ne!(kept, first);
    assert_eq!(env.mlrun(&["fsck"]).code, 0, "consistent after gc");
    // the model card says so
    let run: String = one(
        &env.db(),
        "SELECT id FROM runs ORDER BY started_at, id LIMIT 1",
    );
    let target = format!("shards@{}", &run[..12]);
    let out = env.mlrun(&["show", &target]);
    assert!(
        out.stdout.contains("this version cannot be restored"),
        "{out:?}"
    );
    let card: serde_json::Value =
        serde_json::from_str(&env.mlrun(&["show", &target, "--json"]).stdout).unwrap();
    assert_eq!(card["stored"], false);
    let latest: serde_json::Value =
        serde_json::from_str(&env.mlrun(&["show", "shards", "--json"]).stdout).unwrap();
    assert_eq!(latest["stored"], true);
}

#[test]
fn a_lost_directory_manifest_is_reported_and_healed_by_the_next_run() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.shard]\ncmd = \"mkdir -p shards && echo 1 > shards/a.txt\"\noutputs = [\"shards/\"]\n[steps.use]\ncmd = \"cat shards/a.txt > used.txt\"\ninputs = [\"shards/a.txt\"]\noutputs = [\"used.txt\"]\n",
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    let dir: String = one(&env.db(), "SELECT hash FROM blobs WHERE kind = 'dir'");
    env.db()
        .execute("DELETE FROM contents WHERE hash = ?1", [&dir])
        .unwrap();

    let out = env.mlrun(&["fsck"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("manifest missing {}", &dir[..12])),
        "{out:?}"
    );
    let out = env.mlrun(&["gc"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("nothing was deleted"), "{out:?}");
    // reading the rest of the record still works
    assert_eq!(env.mlrun(&["lineage", "used.txt"]).code, 0);
    assert_eq!(env.mlrun(&["lineage", "shards/a.txt"]).code, 0);

    // rerunning records every step and writes the manifest again
    let out = env.mlrun(&["--force"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("could not be recorded"), "{out:?}");
    assert_eq!(
        statuses(&env),
        [["shard", "succeeded"], ["use", "succeeded"]]
    );
    let out = env.mlrun(&["fsck"]);
    assert_eq!(out.code, 0, "healed: {out:?}");
}

#[test]
fn status_names_the_files_that_changed_inside_an_input_directory() {
    let env = Env::git();
    env.write("data/a.txt", "1\n");
    env.write("data/b.txt", "2\n");
    env.write(
        "pipeline.toml",
        "[steps.count]\ncmd = \"cat data/* > n.txt\"\ninputs = [\"data/\"]\noutputs = [\"n.txt\"]\n",
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);
    env.write("data/a.txt", "changed\n");
    env.write("data/new.txt", "3\n");
    std::fs::remove_file(env.path("data/b.txt")).unwrap();
    let r = reasons(&status_of(&env, &[]), "count");
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("input data changed ("), "{r:?}");
    assert!(
        r[0].ends_with("): a.txt changed, new.txt added, b.txt removed"),
        "{r:?}"
    );
}

//! The store under stress: runs sharing it, gc racing runs or killed half-way, a lost database,
//! full and read-only disks, damaged databases, and what killed processes leave behind.
//! Runs are held in a known state by steps blocked on a FIFO the test controls, never by sleeps.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::common::*;

/// Every file under `dir`, recursively.
fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn objects(store: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(fans) = std::fs::read_dir(store.join("objects/sha256")) {
        for fan in fans.flatten() {
            for f in std::fs::read_dir(fan.path()).unwrap().flatten() {
                out.push(format!(
                    "{}{}",
                    fan.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                ));
            }
        }
    }
    out.sort();
    out
}

/// Read a child's stderr until a line contains `needle`; returns the lines read.
fn read_until(stderr: &mut impl BufRead, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).expect("stderr readable");
        assert!(n > 0, "stderr closed before {needle:?}: {seen}");
        seen.push_str(&line);
        if line.contains(needle) {
            return seen;
        }
    }
}

#[test]
fn runs_sharing_a_store_keep_their_own_scratch_space() {
    // Two projects, one store. The first run's step is held between starting and writing its
    // metric while the second run starts and finishes: the second must not remove the scratch
    // space the first is using (it used to remove the shared `<store>/tmp`).
    let env = Env::git();
    let store = env.path("shared-store");
    let store_s = store.to_str().unwrap();
    for p in ["a", "b"] {
        env.write(
            &format!("{p}/pipeline.toml"),
            &format!(
                "[steps.{p}]\ncmd = \"cat ../fifo-{p} > /dev/null; echo n=1 >> $MLRUN_METRICS; echo {p} > out.txt\"\noutputs = [\"out.txt\"]\n"
            ),
        );
        mkfifo(&env.path(&format!("fifo-{p}")));
    }
    let a = env
        .command(&["--store", store_s, "a/pipeline.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let hold_a = fifo_writer(&env.path("fifo-a"), 60);
    // the first run's own scratch space, with its owner marker beside it
    let run_a: String = one(
        &open_db(&store.join("lineage.db")),
        "SELECT id FROM runs WHERE status = 'running'",
    );
    assert!(store.join("tmp").join(&run_a).is_dir());
    assert!(store.join(format!("tmp/{run_a}.owner")).is_file());

    let b = env
        .command(&["--store", store_s, "b/pipeline.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(fifo_writer(&env.path("fifo-b"), 60));
    let b = finish(b);
    assert_eq!(b.code, 0, "{b:?}");
    assert!(
        store.join("tmp").join(&run_a).is_dir(),
        "the second run left the first one's scratch space alone"
    );

    drop(hold_a);
    let a = finish(a);
    assert_eq!(a.code, 0, "{a:?}");
    let db = open_db(&store.join("lineage.db"));
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT count(*) FROM metrics m JOIN step_execs s ON s.id = m.step_exec WHERE m.key = 'n'"
        ),
        2,
        "both runs recorded their metric"
    );
    assert_eq!(entries(&store.join("tmp")), Vec::<String>::new());
    assert_eq!(entries(&store.join("objects/tmp")), Vec::<String>::new());
}

/// Two pipelines in one project: `first.toml` stores `data.txt` (an untracked input, so its bytes
/// are kept) and `second.toml` reads it in a step held on `fifo`.
fn gc_race_project() -> Env {
    let env = Env::git();
    env.write("data.txt", "the training data\n");
    env.write(
        "first.toml",
        "[steps.first]\ncmd = \"cp data.txt first.txt\"\ninputs = [\"data.txt\"]\noutputs = [\"first.txt\"]\n",
    );
    env.write(
        "second.toml",
        "[steps.second]\ncmd = \"cat fifo > /dev/null; cp data.txt second.txt\"\ninputs = [\"data.txt\"]\noutputs = [\"second.txt\"]\n",
    );
    mkfifo(&env.path("fifo"));
    env
}

#[test]
fn gc_during_a_run_keeps_the_objects_the_run_stored() {
    let env = gc_race_project();
    assert_eq!(env.mlrun(&["first.toml"]).code, 0);
    let data = env.sha256sum("data.txt");
    let obj = env.path(&format!(
        ".mlrun/objects/sha256/{}/{}",
        &data[..2],
        &data[2..]
    ));
    assert!(obj.is_file());
    // as if the first run were long ago
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::open(&obj)
        .unwrap()
        .set_modified(old)
        .unwrap();

    // The second run keeps `data.txt` (already stored: the same object) before its step runs,
    // and records that only when the step ends. gc runs in between, keeping only the newest
    // run: the running one, which has recorded nothing yet.
    let second = env.spawn_mlrun(&["second.toml"]);
    let hold = fifo_writer(&env.path("fifo"), 60);
    let gc = env.mlrun(&["gc", "--keep-last", "1"]);
    assert_eq!(gc.code, 0, "{gc:?}");
    assert!(
        obj.is_file(),
        "gc deleted an object a running run stored: {gc:?}"
    );
    drop(hold);
    let out = finish(second);
    assert_eq!(out.code, 0, "{out:?}");

    // the run's record claims the object, and it is there
    let fsck = env.mlrun(&["fsck"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
    assert!(obj.is_file());
}

#[test]
fn gc_waits_for_a_run_that_is_storing_objects() {
    let env = gc_race_project();
    assert_eq!(env.mlrun(&["first.toml"]).code, 0);
    // hold the store's objects lock as a run does while it stores files and records them
    let lock = std::fs::File::open(env.path(".mlrun/locks/objects.lock")).unwrap();
    lock.lock_shared().unwrap();
    let mut gc = env.spawn_mlrun(&["gc"]);
    let mut err = BufReader::new(gc.stderr.take().unwrap());
    let seen = read_until(&mut err, "waiting for");
    assert!(
        seen.contains("waiting for runs storing their files in the object store to finish"),
        "{seen}"
    );
    drop(lock);
    let status = gc.wait().unwrap();
    assert!(status.success());
}

#[test]
fn a_gc_killed_half_way_leaves_no_claim_without_its_object() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[params]\nv = 1\n[steps.s]\ncmd = \"mkdir -p out; for i in 1 2 3; do echo {params.v}-$i > out/f$i; done\"\noutputs = [\"out/\"]\nparams = [\"v\"]\n",
    );
    for v in ["1", "2", "3"] {
        let out = env.mlrun(&["-p", &format!("v={v}")]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    let before = objects(&env.path(".mlrun"));
    assert_eq!(before.len(), 9);

    // gc stops after its first deletion (a test-only pause) and is killed there
    let mut gc = env
        .command(&["gc", "--keep-last", "1"])
        .env("MLRUN_TEST_GC_PAUSE_AFTER", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(gc.stderr.take().unwrap());
    read_until(&mut err, "gc: paused after 1 deletions");
    signal(&gc, nix::sys::signal::Signal::SIGKILL);
    gc.wait().unwrap();
    assert_eq!(objects(&env.path(".mlrun")).len(), 8, "one object deleted");

    // what the database claims is there
    let fsck = env.mlrun(&["fsck"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
    assert_eq!(
        one::<i64>(
            &env.db(),
            "SELECT count(*) FROM blobs WHERE kind = 'dir' AND stored = 1"
        ),
        1,
        "only the kept run's directory version is still restorable"
    );
    // the next gc finishes the job
    let out = env.mlrun(&["gc", "--keep-last", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("deleted 5 objects"), "{out:?}");
    assert_eq!(env.mlrun(&["fsck"]).code, 0);
    // the kept run is whole: its output can be restored
    std::fs::remove_dir_all(env.path("out")).unwrap();
    let out = env.mlrun(&["-p", "v=3"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.all().contains("restored"), "{out:?}");
}

#[test]
fn a_run_storing_during_a_gc_waits_for_it_and_stores_again_what_gc_deleted() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[params]\nv = 1\n[steps.s]\ncmd = \"echo {params.v} > out.txt; touch reached\"\noutputs = [\"out.txt\"]\nparams = [\"v\"]\n",
    );
    for v in ["1", "2"] {
        assert_eq!(env.mlrun(&["-p", &format!("v={v}")]).code, 0);
    }
    let before = objects(&env.path(".mlrun"));
    assert_eq!(before.len(), 2);

    // gc has decided to delete the first run's object and told the database; it is held there
    let mut gc = env
        .command(&["gc", "--keep-last", "1"])
        .env("MLRUN_TEST_GC_PAUSE_AFTER", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(gc.stderr.take().unwrap());
    read_until(&mut err, "gc: paused after 0 deletions");
    // a run produces that same content again: its step ends, and its storing must wait
    std::fs::remove_file(env.path("reached")).unwrap();
    let mut run = env.spawn_mlrun(&["-p", "v=1", "--force"]);
    let mut run_err = BufReader::new(run.stderr.take().unwrap());
    let seen = read_until(&mut run_err, "waiting for");
    assert!(
        seen.contains("waiting for `mlrun gc` to finish with the object store"),
        "{seen}"
    );
    assert!(env.path("reached").exists(), "the step ran");
    drop(gc.stdin.take()); // gc goes on: it deletes the object, then lets the run store
    assert!(gc.wait().unwrap().success());
    let out = finish(run);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("✓ s"), "{out:?}");

    // the run's version is stored, and really there
    assert_eq!(objects(&env.path(".mlrun")), before);
    let fsck = env.mlrun(&["fsck"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
    std::fs::remove_file(env.path("out.txt")).unwrap();
    let out = env.mlrun(&["-p", "v=1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.all().contains("restored"), "{out:?}");
}

#[test]
fn fsck_repair_corrects_claims_whose_objects_are_gone() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo model > model.txt\"\noutputs = [\"model.txt\"]\n",
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    let hash = env.sha256sum("model.txt");
    // what a gc of an earlier mlrun killed half-way left: the object gone, still claimed
    std::fs::remove_file(env.path(&format!(
        ".mlrun/objects/sha256/{}/{}",
        &hash[..2],
        &hash[2..]
    )))
    .unwrap();
    let out = env.mlrun(&["fsck"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("missing {}  model.txt", &hash[..12])),
        "{out:?}"
    );
    assert!(out.stdout.contains("mlrun fsck --repair"), "{out:?}");

    let out = env.mlrun(&["fsck", "--repair", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["findings"][0]["repaired"], true, "{json}");
    assert_eq!(
        one::<i64>(
            &env.db(),
            &format!("SELECT stored FROM blobs WHERE hash = '{hash}'")
        ),
        0
    );
    let out = env.mlrun(&["fsck"]);
    assert_eq!(out.code, 0, "fsck passes again: {out:?}");
    // and a rerun stores the bytes again
    let out = env.mlrun(&["--force"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        one::<i64>(
            &env.db(),
            &format!("SELECT stored FROM blobs WHERE hash = '{hash}'")
        ),
        1
    );
}

fn project_with_objects() -> (Env, Vec<String>) {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"mkdir -p out; echo a > out/a; echo b > out/b\"\noutputs = [\"out/\"]\n",
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    let objs = objects(&env.path(".mlrun"));
    assert_eq!(objs.len(), 2);
    (env, objs)
}

#[test]
fn an_empty_or_missing_database_beside_objects_is_not_a_new_store() {
    let (env, objs) = project_with_objects();
    let db = env.path(".mlrun/lineage.db");
    for f in ["lineage.db-wal", "lineage.db-shm"] {
        let _ = std::fs::remove_file(env.path(&format!(".mlrun/{f}")));
    }
    std::fs::File::create(&db).unwrap(); // truncated to 0 bytes

    for args in [vec![], vec!["runs"], vec!["gc"], vec!["show"]] {
        let out = env.mlrun(&args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(
            out.stderr
                .contains("lineage.db` is empty (0 bytes), but the store holds 2 stored objects"),
            "{args:?}: {out:?}"
        );
        assert!(out.stderr.contains("mlrun fsck --repair"), "{out:?}");
    }
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left untouched");
    assert_eq!(objects(&env.path(".mlrun")), objs, "every object kept");

    let out = env.mlrun(&["fsck"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("database: lost"), "{out:?}");
    assert!(out.stdout.contains("2 intact"), "{out:?}");

    let out = env.mlrun(&["fsck", "--repair"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("started a new database that keeps the 2 intact objects"),
        "{out:?}"
    );
    assert_eq!(
        one::<i64>(&env.db(), "SELECT count(*) FROM blobs WHERE stored = 1"),
        2
    );
    // no run recorded, objects present: gc deletes nothing
    let out = env.mlrun(&["gc"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("deleted nothing: the database records no runs"),
        "{out:?}"
    );
    assert_eq!(objects(&env.path(".mlrun")), objs);
    assert_eq!(env.mlrun(&["fsck"]).code, 0);

    // a database that is missing altogether is refused the same way
    let (env, objs) = project_with_objects();
    for f in ["lineage.db", "lineage.db-wal", "lineage.db-shm"] {
        let _ = std::fs::remove_file(env.path(&format!(".mlrun/{f}")));
    }
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("lineage.db` is missing"), "{out:?}");
    assert!(!env.path(".mlrun/lineage.db").exists());
    let out = env.mlrun(&["runs"]);
    assert!(out.stderr.contains("lineage.db` is missing"), "{out:?}");
    assert_eq!(objects(&env.path(".mlrun")), objs);
}

#[test]
fn a_full_disk_store_still_answers_and_gc_frees_space() {
    let env = Env::git();
    let Some(fs) = env.small_fs(4 << 20) else {
        return;
    };
    let store = fs.path.join("store");
    let store_s = store.to_str().unwrap().to_string();
    env.write(
        "pipeline.toml",
        "[params]\nv = 1\n[steps.s]\ncmd = \"head -c 300000 /dev/urandom > big.bin; echo {params.v} > small.txt\"\noutputs = [\"big.bin\", \"small.txt\"]\nparams = [\"v\"]\n",
    );
    for v in ["1", "2"] {
        let out = env.mlrun(&["--store", &store_s, "run", "-p", &format!("v={v}")]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    let filled = fill_fs(&fs.path);
    assert!(filled > 0);
    let free = || {
        nix::sys::statvfs::statvfs(&fs.path)
            .unwrap()
            .blocks_available()
    };
    assert_eq!(free(), 0, "the disk is full");

    for args in [
        vec!["runs"],
        vec!["show"],
        vec!["show", "small.txt"],
        vec!["fsck"],
    ] {
        let mut a = vec!["--store", &store_s];
        a.extend(args.iter().copied());
        let out = env.mlrun(&a);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(!out.all().contains("corrupt"), "{args:?}: {out:?}");
    }
    let out = env.mlrun(&["--store", &store_s, "gc", "--keep-last", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("deleted 2 objects"), "{out:?}");
    assert!(free() > 0, "gc freed space");
    let out = env.mlrun(&["--store", &store_s, "fsck"]);
    assert_eq!(out.code, 0, "{out:?}");
    drop(fs);
}

#[test]
fn a_read_only_store_is_read_and_never_called_corrupt() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo 1 > o.txt\"\noutputs = [\"o.txt\"]\n",
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    let store = env.path(".mlrun");
    let Some(ro) = env.read_only(&store) else {
        return;
    };
    for args in [
        vec!["runs"],
        vec!["show"],
        vec!["lineage", "o.txt"],
        vec!["status"],
        vec!["fsck"],
    ] {
        let out = env.mlrun(&args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(!out.all().contains("corrupt"), "{args:?}: {out:?}");
    }
    let out = env.mlrun(&["--force"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("read-only file system"), "{out:?}");
    assert!(out.stderr.contains("the store is sound"), "{out:?}");
    assert!(
        !out.stderr.contains("corrupt") && !out.stderr.contains("aside"),
        "{out:?}"
    );
    // gc cannot delete here either, and says why
    let out = env.mlrun(&["gc"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("read-only file system"), "{out:?}");
    assert!(!out.all().contains("disk is full"), "{out:?}");
    drop(ro);
}

#[test]
fn a_store_owned_by_another_user_is_read_and_never_called_corrupt() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo 1 > o.txt\"\noutputs = [\"o.txt\"]\n",
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    if !nix::unistd::geteuid().is_root() {
        crate::common::skip_unless_ci("this test runs mlrun as another user, which needs root");
        return;
    }
    // the test's directory is private; let the other user in (the store stays root's, 0644)
    use std::os::unix::fs::PermissionsExt;
    let private = env.root.parent().unwrap();
    std::fs::set_permissions(private, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    for args in [vec!["runs"], vec!["show"], vec!["fsck"]] {
        let out = env.mlrun_under(&nobody, &args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(!out.all().contains("corrupt"), "{args:?}: {out:?}");
    }
    let out = env.mlrun_under(&nobody, &["run"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no permission to write it"), "{out:?}");
    assert!(out.stderr.contains("the store is sound"), "{out:?}");
    assert!(
        !out.stderr.contains("corrupt") && !out.stderr.contains("aside"),
        "{out:?}"
    );
}

#[test]
fn a_damaged_database_is_never_written_and_points_at_fsck() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo 1 > o.txt\"\noutputs = [\"o.txt\"]\n",
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    let db_path = env.path(".mlrun/lineage.db");
    let (root, page_size) = {
        let db = env.db();
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let root: i64 = one(
            &db,
            "SELECT rootpage FROM sqlite_master WHERE name = 'runs'",
        );
        let page_size: i64 = one(&db, "PRAGMA page_size");
        (root, page_size)
    };
    // scribble over the runs table's root page
    let mut bytes = std::fs::read(&db_path).unwrap();
    let start = ((root - 1) * page_size) as usize;
    for b in &mut bytes[start..start + page_size as usize] {
        *b = 0xa5;
    }
    std::fs::write(&db_path, &bytes).unwrap();
    let _ = std::fs::remove_file(env.path(".mlrun/lineage.db-wal"));
    let _ = std::fs::remove_file(env.path(".mlrun/lineage.db-shm"));

    for args in [vec!["--force"], vec!["runs"], vec!["gc"]] {
        let out = env.mlrun(&args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(out.stderr.contains("is damaged"), "{args:?}: {out:?}");
        assert!(out.stderr.contains("mlrun fsck"), "{args:?}: {out:?}");
    }
    let out = env.mlrun(&["fsck", "--repair"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("database: damaged"), "{out:?}");
    assert_eq!(std::fs::read(&db_path).unwrap(), bytes, "never written");
}

#[test]
fn leftovers_of_killed_processes_are_removed_by_the_next_command() {
    let env = Env::git();
    let fifo = env.path("fifo");
    env.write("data.txt", "untracked input, so it is stored\n");
    env.write(
        "pipeline.toml",
        &format!(
            "[steps.s]\ncmd = \"cat {} > /dev/null; cp data.txt o.txt\"\ninputs = [\"data.txt\"]\noutputs = [\"o.txt\"]\n",
            fifo.display()
        ),
    );
    mkfifo(&fifo);
    let store = env.path(".mlrun");

    // a run that has stored its input, killed while its step runs
    let run = env.spawn_mlrun(&[]);
    let hold = fifo_writer(&fifo, 60);
    let scratch: Vec<PathBuf> = std::fs::read_dir(store.join("objects/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(scratch.len(), 1, "the run's object scratch space");
    // as if it had been killed while copying a large file
    std::fs::write(scratch[0].join("partial"), vec![1u8; 1 << 20]).unwrap();
    // and another live mlrun's space, which must stay
    let live = store.join("objects/tmp/live");
    std::fs::create_dir(&live).unwrap();
    std::fs::write(
        store.join("objects/tmp/live.owner"),
        std::fs::read(scratch[0].with_extension("owner")).unwrap(),
    )
    .unwrap();
    signal(&run, nix::sys::signal::Signal::SIGKILL);
    let _ = finish(run);
    drop(hold);
    assert_eq!(
        entries(&store.join("tmp")).len(),
        2,
        "the run's scratch space and marker"
    );
    // the live one is this test's "owner" now: the killed mlrun's pid, rewritten to this process
    let me = std::process::id();
    let text = std::fs::read_to_string(store.join("objects/tmp/live.owner")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let start = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
    let start: i64 = start[start.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let mut v = v;
    v["pid"] = me.into();
    v["start"] = start.into();
    std::fs::write(store.join("objects/tmp/live.owner"), v.to_string()).unwrap();

    // the next command removes what the killed run left, at once
    let out = env.mlrun(&["runs"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(entries(&store.join("tmp")), Vec::<String>::new());
    assert_eq!(
        entries(&store.join("objects/tmp")),
        vec!["live".to_string(), "live.owner".to_string()],
        "only the space of a live owner is left"
    );

    // a replay killed while its step runs leaves its scratch tree, until the next command
    let run = env.spawn_mlrun(&[]);
    drop(fifo_writer(&fifo, 60));
    assert_eq!(finish(run).code, 0);
    let tmpdir = env.home.join("tmp");
    let replay = env.spawn_mlrun(&["replay"]);
    let hold = fifo_writer(&fifo, 60);
    let trees: Vec<String> = entries(&tmpdir)
        .into_iter()
        .filter(|n| n.starts_with("mlrun-replay-"))
        .collect();
    assert_eq!(trees.len(), 2, "a tree and its owner marker: {trees:?}");
    signal(&replay, nix::sys::signal::Signal::SIGKILL);
    let _ = finish(replay);
    drop(hold);
    assert_eq!(
        entries(&tmpdir)
            .iter()
            .filter(|n| n.starts_with("mlrun-replay-"))
            .count(),
        2
    );
    let out = env.mlrun(&["runs"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !entries(&tmpdir)
            .iter()
            .any(|n| n.starts_with("mlrun-replay-")),
        "{:?}",
        entries(&tmpdir)
    );
}

#[test]
fn a_finished_run_or_replay_leaves_no_scratch_space() {
    let env = Env::git();
    env.write("data.txt", "untracked\n");
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"echo m=1 >> $MLRUN_METRICS; cp data.txt o.txt\"\ninputs = [\"data.txt\"]\noutputs = [\"o.txt\"]\n",
    );
    assert_eq!(env.mlrun(&[]).code, 0);
    assert_eq!(env.mlrun(&["replay"]).code, 0);
    assert_eq!(entries(&env.path(".mlrun/tmp")), Vec::<String>::new());
    assert_eq!(
        entries(&env.path(".mlrun/objects/tmp")),
        Vec::<String>::new()
    );
    assert!(
        !entries(&env.home.join("tmp"))
            .iter()
            .any(|n| n.starts_with("mlrun-replay-"))
    );
    // --keep keeps the tree, and no later command removes it
    let out = env.mlrun(&["replay", "--keep"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(env.mlrun(&["runs"]).code, 0);
    let kept: Vec<String> = entries(&env.home.join("tmp"))
        .into_iter()
        .filter(|n| n.starts_with("mlrun-replay-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(!kept[0].ends_with(".owner"));
}

/// A project whose step reads the untracked `data.bin` and then rewrites it, as a step that
/// updates its input in place does. Returns the project and the hash of the original bytes.
fn step_rewriting_its_input() -> (Env, String) {
    step_rewriting_an_input_of(3 << 18)
}

/// Write `data` to `rel`, last modified ten minutes ago: hashed long after its last write, the
/// stat cache vouches for it, so a copy of it may be made by the kernel (or ahead of its hash)
/// and is then checked by the file's stat.
fn write_long_ago(env: &Env, rel: &str, data: &[u8]) {
    std::fs::write(env.path(rel), data).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(env.path(rel))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

/// `step_rewriting_its_input` with an input of `size` bytes.
fn step_rewriting_an_input_of(size: u32) -> (Env, String) {
    let env = Env::git();
    env.write(".gitignore", "/.mlrun/\n/data.bin\n");
    let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    write_long_ago(&env, "data.bin", &data);
    env.write(
        "pipeline.toml",
        "[steps.update]\ncmd = \"wc -c < data.bin > n.txt && echo rewritten > data.bin\"\ninputs = [\"data.bin\"]\noutputs = [\"n.txt\"]\n",
    );
    env.commit("p");
    let hash = env.sha256sum("data.bin");
    (env, hash)
}

/// (recorded hash, stored) of the step's input `data.bin`.
fn recorded_input(env: &Env) -> (String, i64) {
    let db = env.db();
    let row = rows(
        &db,
        "SELECT v.blob_hash, b.stored FROM io_edges e
         JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
         JOIN blobs b ON b.hash = v.blob_hash
         WHERE e.direction = 'in' AND a.path = 'data.bin'",
    );
    assert_eq!(row.len(), 1, "{row:?}");
    (row[0][0].clone(), row[0][1].parse().unwrap())
}

#[test]
fn an_input_changed_before_its_copy_is_kept_is_not_stored_under_its_old_hash() {
    let (mut env, hash) = step_rewriting_its_input();
    // the copy made only once the step is over: after the step rewrote its input
    env.set_env("MLRUN_TEST_INPUT_COPY_AFTER_STEP", "1");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "the step itself succeeded: {out:?}");
    assert!(
        out.stderr
            .contains("input `data.bin` changed while the step ran"),
        "{out:?}"
    );
    // recorded as the step found it, and said not to be restorable
    assert_eq!(recorded_input(&env), (hash.clone(), 0));
    let store = env.path(".mlrun");
    assert!(
        !objects(&store).contains(&hash),
        "no object under the hash of bytes that are gone"
    );
    let rewritten = env.sha256sum("data.bin");
    assert!(
        !objects(&store).contains(&rewritten),
        "the rewritten bytes were not kept as what the step read"
    );
    let fsck = env.mlrun(&["fsck"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
}

#[test]
fn an_input_its_step_rewrites_while_it_is_copied_is_kept_only_if_intact() {
    // The copy runs beside the step, which rewrites the input: whichever finishes first, the
    // record holds the hash the step started from, and claims an object only if that object
    // holds exactly those bytes.
    rewritten_input_is_kept_only_if_intact(3 << 18);
}

#[test]
fn a_large_input_its_step_rewrites_is_kept_only_if_intact() {
    // 64 MiB and more: the copy starts while the input is hashed (`Objects::copy_ahead`) and
    // may be complete before the step starts, or not
    rewritten_input_is_kept_only_if_intact((64 << 20) + 7);
}

fn rewritten_input_is_kept_only_if_intact(size: u32) {
    let (env, hash) = step_rewriting_an_input_of(size);
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let (recorded, stored) = recorded_input(&env);
    assert_eq!(recorded, hash);
    let obj = env.path(&format!(
        ".mlrun/objects/sha256/{}/{}",
        &hash[..2],
        &hash[2..]
    ));
    if stored == 1 {
        let rel = obj.strip_prefix(env.path("")).unwrap().to_str().unwrap();
        assert_eq!(
            env.sha256sum(rel),
            hash,
            "the object holds the original bytes"
        );
    } else {
        assert!(!obj.exists());
        assert!(
            out.stderr
                .contains("input `data.bin` changed while the step ran"),
            "{out:?}"
        );
    }
    let fsck = env.mlrun(&["fsck"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
}

#[test]
fn a_large_untracked_input_copied_while_it_is_hashed_is_kept_and_restorable() {
    let env = Env::git();
    env.write(".gitignore", "/.mlrun/\n/data.bin\n/n.txt\n");
    let data: Vec<u8> = (0..(64u32 << 20) + 5).map(|i| (i % 251) as u8).collect();
    write_long_ago(&env, "data.bin", &data);
    env.write(
        "pipeline.toml",
        "[steps.count]\ncmd = \"wc -c < data.bin > n.txt\"\ninputs = [\"data.bin\"]\noutputs = [\"n.txt\"]\n",
    );
    env.commit("p");
    let hash = env.sha256sum("data.bin");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("warning"), "{out:?}");
    assert_eq!(recorded_input(&env), (hash.clone(), 1));
    let rel = format!(".mlrun/objects/sha256/{}/{}", &hash[..2], &hash[2..]);
    assert_eq!(env.sha256sum(&rel), hash);
    // nothing of the copy is left in scratch space
    let left: Vec<_> = walk_files(&env.path(".mlrun/objects/tmp"))
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "owner"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // and it is what a checkout of that version gives back
    std::fs::remove_file(env.path("data.bin")).unwrap();
    let back = env.mlrun(&["checkout", "data.bin@latest"]);
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(env.sha256sum("data.bin"), hash);
    let fsck = env.mlrun(&["fsck"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
}

#[test]
fn an_untracked_input_copied_while_its_step_runs_is_restorable() {
    let env = Env::git();
    env.write(".gitignore", "/.mlrun/\n/data.txt\n");
    env.write("data.txt", "version one\n");
    env.write(
        "pipeline.toml",
        "[steps.use]\ncmd = \"cp data.txt copy.txt\"\ninputs = [\"data.txt\"]\noutputs = [\"copy.txt\"]\n",
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let hash = env.sha256sum("data.txt");
    let db = env.db();
    assert_eq!(
        one::<i64>(
            &db,
            &format!("SELECT stored FROM blobs WHERE hash = '{hash}'")
        ),
        1
    );
    assert!(objects(&env.path(".mlrun")).contains(&hash));
    assert_eq!(env.mlrun(&["fsck"]).code, 0);
}

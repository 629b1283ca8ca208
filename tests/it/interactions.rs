//! Where two features meet: outputs moved aside while a step runs, replays in scratch trees,
//! recovery of abandoned runs, the leftovers sweep, read-only stores.

use crate::common::*;

fn replay_trees(env: &Env) -> Vec<String> {
    entries(&env.home.join("tmp"))
        .into_iter()
        .filter(|n| n.starts_with("mlrun-replay-"))
        .collect()
}

/// A replay killed while its step runs had moved the step's committed output aside (inside its
/// scratch tree). That copy belongs to a throwaway tree: the next command neither claims to have
/// put a previous version "back" nor rebuilds the scratch tree to put it there, even when another
/// project's mlrun already swept the tree away.
#[test]
fn a_killed_replay_s_outputs_moved_aside_are_not_put_back_into_a_swept_scratch_tree() {
    let env = Env::git();
    let fifo = env.path("fifo");
    env.write(
        "pipeline.toml",
        &format!(
            "[steps.s]\ncmd = \"cat {} > /dev/null; echo new > out.txt\"\noutputs = [\"out.txt\"]\n",
            fifo.display()
        ),
    );
    // the output is committed (as small outputs such as metrics often are): a replay's scratch
    // tree has it, so the replayed step moves it aside
    env.write("out.txt", "committed\n");
    env.commit("pipeline and its committed output");
    mkfifo(&fifo);
    let run = env.spawn_mlrun(&[]);
    drop(fifo_writer(&fifo, 60));
    assert_eq!(finish(run).code, 0);
    env.git_cmd(&["checkout", "out.txt"]);

    for other_project_first in [false, true] {
        let replay = env.spawn_mlrun(&["replay"]);
        let hold = fifo_writer(&fifo, 60);
        assert!(
            !entries(&env.path(".mlrun/aside")).is_empty(),
            "the replayed step's output was moved aside"
        );
        signal(&replay, nix::sys::signal::Signal::SIGKILL);
        let _ = finish(replay);
        drop(hold);
        if other_project_first {
            // any mlrun command (here another project's) sweeps the dead replay's tree
            env.write("other/pipeline.toml", "[steps.t]\ncmd = \"true\"\n");
            let other = env.mlrun(&["other/pipeline.toml"]);
            assert_eq!(other.code, 0, "{other:?}");
            assert_eq!(replay_trees(&env), Vec::<String>::new());
        }
        let out = env.mlrun(&["runs"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            !out.stderr.contains("put back"),
            "nothing of the user's was put back: {out:?}"
        );
        assert_eq!(
            replay_trees(&env),
            Vec::<String>::new(),
            "no scratch tree left behind (other project first: {other_project_first})"
        );
        assert_eq!(entries(&env.path(".mlrun/aside")), Vec::<String>::new());
        assert_eq!(
            std::fs::read_to_string(env.path("out.txt")).unwrap(),
            "committed\n",
            "the user's own file is untouched"
        );
    }
}

/// An output that is a link to a file (kept as a link, and restored as one) is left in place
/// while its step runs, for the step to write through; a step that exits 0 leaving the link and
/// the file it leads to exactly as they were did not produce it, and is not credited with it.
#[test]
fn a_step_that_leaves_a_linked_output_untouched_is_not_credited_with_it() {
    let env = Env::git();
    let pipeline =
        |cmd: &str| format!("[steps.train]\ncmd = \"{cmd}\"\noutputs = [\"best.pkl\"]\n");
    env.write(
        "pipeline.toml",
        &pipeline("mkdir -p ckpt && echo epoch1 > ckpt/e1.pkl && ln -sfn ckpt/e1.pkl best.pkl"),
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        std::fs::symlink_metadata(env.path("best.pkl"))
            .unwrap()
            .is_symlink()
    );

    // a broken script: exits 0, writes nothing
    env.write("pipeline.toml", &pipeline("echo training; true"));
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.all()
            .contains("exited 0 but did not produce declared output `best.pkl`"),
        "{out:?}"
    );
    let db = env.db();
    assert_eq!(
        one::<String>(
            &db,
            "SELECT status FROM runs ORDER BY started_at DESC LIMIT 1"
        ),
        "failed"
    );
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT count(*) FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
             WHERE e.direction = 'out' AND s.run_id = (SELECT id FROM runs ORDER BY started_at DESC LIMIT 1)"
        ),
        0,
        "no output credited to the failed step"
    );

    // writing through the link, or replacing it, is producing it
    for cmd in [
        "echo epoch2 > best.pkl",
        "echo epoch3 > ckpt/e3.pkl && ln -sfn ckpt/e3.pkl best.pkl",
    ] {
        env.write("pipeline.toml", &pipeline(cmd));
        let out = env.mlrun(&[]);
        assert_eq!(out.code, 0, "{cmd}: {out:?}");
    }
    assert_eq!(
        std::fs::read_to_string(env.path("best.pkl")).unwrap(),
        "epoch3\n"
    );
}

/// The previous output a failed step's attempt is put back where it was, resolved beneath the
/// project: when the step replaced the output's parent directory by a link leading out of the
/// project, nothing outside is deleted or overwritten; the previous version is kept in the
/// store and the message says where.
#[test]
fn putting_a_previous_output_back_never_writes_through_a_link_out_of_the_project() {
    let env = Env::git();
    let outside = env.home.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("model.pkl"), "precious, not mlrun's\n").unwrap();
    let pipeline =
        |cmd: &str| format!("[steps.train]\ncmd = \"{cmd}\"\noutputs = [\"data/model.pkl\"]\n");
    env.write(
        "pipeline.toml",
        &pipeline("mkdir -p data && echo v1 > data/model.pkl"),
    );
    env.commit("p");
    assert_eq!(env.mlrun(&[]).code, 0);

    env.write(
        "pipeline.toml",
        &pipeline(&format!(
            "rm -rf data && ln -s {} data && exit 3",
            outside.display()
        )),
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(outside.join("model.pkl")).unwrap(),
        "precious, not mlrun's\n",
        "nothing outside the project is replaced: {out:?}"
    );
    assert!(
        out.stderr
            .contains("could not put back the previous `data/model.pkl`")
            && out.stderr.contains("outside the project")
            && out.stderr.contains("it is kept at"),
        "{out:?}"
    );
}

/// Markers are keyed with a key file outside the store, and stores made by an older mlrun hold
/// markers made with a salt: a marker made with another key differs whatever its secret is.
/// `status` says that, rather than claiming the secret changed; a secret that did change under
/// the same key is still named.
#[test]
fn a_secret_marked_with_another_key_is_not_reported_as_changed() {
    let mut env = Env::git();
    let key1 = env.home.join("key1");
    let key2 = env.home.join("key2");
    std::fs::write(&key1, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::write(&key2, "fedcba9876543210fedcba9876543210\n").unwrap();
    let pipeline = |pw: &str| {
        format!(
            "[env]\nDB_PASSWORD = \"{pw}\"\n[steps.s]\ncmd = \"echo connected > out.txt\"\noutputs = [\"out.txt\"]\n"
        )
    };
    env.write("pipeline.toml", &pipeline("Summer2024"));
    env.commit("p");
    env.set_env("MLRUN_SECRET_KEY_FILE", key1.to_str().unwrap());
    assert_eq!(env.mlrun(&[]).code, 0);
    let same = env.mlrun(&["status"]);
    assert!(same.stdout.contains("up to date"), "{same:?}");

    // another user's key (the later setting wins)
    env.set_env("MLRUN_SECRET_KEY_FILE", key2.to_str().unwrap());
    let status = env.mlrun(&["status"]);
    assert!(
        !status.stdout.contains("env DB_PASSWORD changed"),
        "the secret did not change: {status:?}"
    );
    assert!(
        status.stdout.contains(
            "its secrets were marked with another key (recorded with another secret key file)"
        ),
        "{status:?}"
    );

    // a real change under the same key is still named
    env.set_env("MLRUN_SECRET_KEY_FILE", key1.to_str().unwrap());
    env.write("pipeline.toml", &pipeline("Winter2025"));
    let changed = env.mlrun(&["status"]);
    assert!(
        changed.stdout.contains("env DB_PASSWORD changed"),
        "{changed:?}"
    );
    assert!(!changed.stdout.contains("another key"), "{changed:?}");
}

/// A run killed while its step ran, with the step's previous output moved aside, then the store
/// made read-only (a full disk, a read-only mount): read commands work, say why the dead run
/// still shows as running and where the previous output is (put back where a rename can do it,
/// else kept in the store); once the store can be written again, the next command records the
/// run interrupted and the previous output is back.
#[test]
fn a_killed_run_on_a_store_that_became_read_only() {
    let env = Env::git();
    let fifo = env.path("fifo");
    env.write(
        "pipeline.toml",
        &format!(
            "[steps.s]\ncmd = \"cat {} > /dev/null; echo new > out.txt\"\noutputs = [\"out.txt\"]\n",
            fifo.display()
        ),
    );
    env.commit("p");
    mkfifo(&fifo);
    let run = env.spawn_mlrun(&[]);
    drop(fifo_writer(&fifo, 60));
    assert_eq!(finish(run).code, 0);
    let run = env.spawn_mlrun(&["--force"]);
    let hold = fifo_writer(&fifo, 60);
    assert!(
        !env.path("out.txt").exists(),
        "moved aside while the step runs"
    );
    signal(&run, nix::sys::signal::Signal::SIGKILL);
    let _ = finish(run);
    drop(hold);

    let store = env.path(".mlrun");
    {
        let Some(_ro) = env.read_only(&store) else {
            return;
        };
        for args in [vec!["runs"], vec!["show"]] {
            let out = env.mlrun(&args);
            assert_eq!(out.code, 0, "{args:?}: {out:?}");
            assert!(
                out.stderr.contains("was stopped (mlrun was killed or crashed) but the store cannot be written, so it shows as running"),
                "{args:?}: {out:?}"
            );
            // a read-only mount of the store is another mount: the copy cannot be renamed out
            // of it, and the message says where it is
            assert!(
                out.stderr
                    .contains("could not put back the previous `out.txt`")
                    && out.stderr.contains(".mlrun/aside/"),
                "{args:?}: {out:?}"
            );
        }
    }
    let out = env.mlrun(&["runs"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("interrupted"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(env.path("out.txt")).unwrap(),
        "new\n"
    );
}

/// A store from the previous release, migrated: its environment snapshots name the interpreters
/// the steps ran but hold no packages (the column migration 6 added is NULL). `show --packages`
/// does not claim that no step ran Python.
#[test]
fn show_packages_of_a_run_recorded_before_packages_were() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.s]\ncmd = \"python3 -c 'open(\\\"o.txt\\\", \\\"w\\\").write(\\\"x\\\")'\"\noutputs = [\"o.txt\"]\n",
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let db = env.db();
    let interpreters: String = one(&db, "SELECT interpreters FROM env_snapshots");
    assert!(interpreters.contains("python3"), "{interpreters}");
    // as the previous release left it
    db.execute("UPDATE env_snapshots SET packages = NULL", [])
        .unwrap();
    drop(db);
    let show = env.mlrun(&["show", "--packages"]);
    assert_eq!(show.code, 0, "{show:?}");
    assert!(
        !show.stdout.contains("no step ran a Python interpreter"),
        "{show:?}"
    );
    assert!(
        show.stdout.contains(
            "no packages recorded, though its steps ran `python3`: the run was recorded by an mlrun from before packages were recorded"
        ),
        "{show:?}"
    );
}

/// A port on loopback with nothing listening on it (for now).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn lineage_project(url: &str) -> Env {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.train]\ncmd = \"cat a.txt > model.txt\"\ninputs = [\"a.txt\"]\noutputs = [\"model.txt\"]\n",
    );
    env.write("a.txt", "a\n");
    env.write("mlrun.toml", &format!("[openlineage]\nurl = \"{url}\"\n"));
    env.commit("pipeline");
    env
}

/// The run id as it appears in OpenLineage events (a UUID with hyphens).
fn uuid(run: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &run[0..8],
        &run[8..12],
        &run[12..16],
        &run[16..20],
        &run[20..32]
    )
}

/// Events a run could not deliver wait in the outbox; removing the run removes them too: the next
/// command does not deliver the lineage of a run the user removed, and does not count it among
/// the runs whose events are waiting (a removed run's events cannot be sent with `export --send`).
#[test]
fn removing_a_run_drops_its_undelivered_lineage_events() {
    use crate::live::{Mode, Receiver};
    let port = closed_port();
    let env = lineage_project(&format!("http://127.0.0.1:{port}"));
    for force in [false, true] {
        let out = env.mlrun(if force { &["--force"][..] } else { &[][..] });
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("events not delivered"), "{out:?}");
    }
    let ids = env.run_ids();
    let (removed, kept) = (&ids[0], &ids[1]);
    let out = env.mlrun(&["rm", &removed[..16]]);
    assert_eq!(out.code, 0, "{out:?}");

    let runs = env.mlrun(&["show", "latest"]);
    assert!(runs.stderr.contains("of this run not sent yet"), "{runs:?}");
    let server = Receiver::on(
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
        Mode::Accept,
    );
    let runs = env.mlrun(&["runs"]);
    assert_eq!(runs.code, 0, "{runs:?}");
    assert!(!runs.stderr.contains("not sent yet"), "{runs:?}");
    let events: Vec<String> = server
        .events()
        .iter()
        .map(|g| g.event.to_string())
        .collect();
    assert!(!events.is_empty(), "the kept run's events are delivered");
    for e in &events {
        assert!(e.contains(&uuid(kept)), "only the kept run's events: {e}");
        assert!(!e.contains(&uuid(removed)), "not the removed run's: {e}");
    }
}

/// A replay (and each run of `mlrun check`) runs in a scratch tree: sent live, its events would
/// tell the lineage server that the pipeline's job ran again and wrote new versions of the
/// project's own files, which it did not. Replays send nothing live; `export --send` still sends
/// one on request.
#[test]
fn replays_and_checks_send_no_live_lineage() {
    use crate::live::{Mode, Receiver};
    let server = Receiver::start(Mode::Accept);
    let env = lineage_project(&server.url());
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    // whatever the run could not deliver before it ended goes out with the next command
    assert_eq!(env.mlrun(&["runs"]).code, 0);
    let sent = server.events().len();
    assert!(sent > 0, "the run's events were sent");

    let replay = env.mlrun(&["replay"]);
    assert_eq!(replay.code, 0, "{replay:?}");
    assert!(!replay.stderr.contains("not delivered"), "{replay:?}");
    let check = env.mlrun(&["check", "train"]);
    assert_eq!(check.code, 0, "{check:?}");
    let runs = env.mlrun(&["runs"]);
    assert_eq!(runs.code, 0, "{runs:?}");
    assert!(!runs.stderr.contains("not sent yet"), "{runs:?}");
    assert_eq!(server.events().len(), sent, "no replay's events were sent");

    let out = env.mlrun(&["export", "latest-replay", "--send"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(server.events().len() > sent, "a replay is sent on request");
}

/// The versions a removed run made go with its record: they are not left behind as lineage gaps
/// ("produced outside mlrun"), which would be false: mlrun did make them, in a run since removed.
#[test]
fn the_outputs_of_a_removed_run_are_not_shown_as_made_outside_mlrun() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.gen]\ncmd = \"echo one > out.txt\"\noutputs = [\"out.txt\"]\n",
    );
    env.commit("p");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.mlrun(&["rm", "latest"]);
    assert_eq!(out.code, 0, "{out:?}");
    for args in [&["show", "out.txt"][..], &["lineage", "out.txt"][..]] {
        let out = env.mlrun(args);
        assert!(
            !out.all().contains("produced outside mlrun"),
            "{args:?}: {out:?}"
        );
        assert!(!out.all().contains("lineage gap"), "{args:?}: {out:?}");
    }
    // gc then frees its bytes, and the store is consistent
    assert_eq!(env.mlrun(&["gc"]).code, 0);
    let fsck = env.mlrun(&["fsck"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
}

/// Events left waiting when the project then stops naming a server (mlrun.toml's `[openlineage]`
/// removed): the note no longer promises that the next command retries, it says that no server
/// is configured and how to name one.
#[test]
fn waiting_events_without_a_configured_server_say_so() {
    let env = lineage_project(&format!("http://127.0.0.1:{}", closed_port()));
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let runs = env.mlrun(&["runs"]);
    assert!(
        runs.stderr.contains("the next mlrun command retries"),
        "{runs:?}"
    );

    std::fs::remove_file(env.path("mlrun.toml")).unwrap();
    for args in [&["runs"][..], &["show", "latest"][..]] {
        let out = env.mlrun(args);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("not sent yet"), "{out:?}");
        assert!(!out.stderr.contains("retries"), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("no OpenLineage server is configured"),
            "{args:?}: {out:?}"
        );
    }
}

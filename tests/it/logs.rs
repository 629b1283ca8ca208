//! Step logs in bounded memory (a long log is streamed to the object store, the database keeps
//! its head and tail) and records that cannot be written (a full store) failing the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{Env, Out};

/// `mlrun ARGS` with its stdout (the live output of a step printing hundreds of MB) thrown away.
fn run_quietly(env: &Env, args: &[&str]) -> Out {
    Out::of(
        env.command(args)
            .stdout(Stdio::null())
            .output()
            .expect("mlrun runs"),
    )
}

/// `mlrun ARGS`, stdout as bytes.
fn bytes_of(env: &Env, args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = env.command(args).output().expect("mlrun runs");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sha256_of(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A step printing `mb` MB of numbered 4 KiB lines on stdout, then a few binary bytes; it
/// writes the SHA-256 of everything it printed to `printed.sha256`.
fn big_printer(env: &Env, mb: usize) {
    env.write(
        "print.py",
        &format!(
            r#"import hashlib, sys
h = hashlib.sha256()
out = sys.stdout.buffer
for i in range({mb} * 256):
    line = (f"{{i:08d}} " + "abcdefghijklmnopqrstuvwxyz"[i % 26] * 4086 + "\n").encode()
    out.write(line)
    h.update(line)
tail = b"last line \xff\xfe\x00 binary\n"
out.write(tail)
h.update(tail)
out.flush()
open("printed.sha256", "w").write(h.hexdigest())
"#
        ),
    );
    env.write(
        "pipeline.toml",
        "[steps.big]\ncmd = \"python3 print.py\"\ninputs = [\"print.py\"]\noutputs = [\"printed.sha256\"]\n",
    );
    env.commit("big printer");
}

#[test]
fn a_step_printing_200_mb_is_recorded_fully() {
    let env = Env::git();
    big_printer(&env, 200);
    let out = run_quietly(&env, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let printed = std::fs::read_to_string(env.path("printed.sha256")).unwrap();

    // the whole log, from the object store, is what the step printed, byte for byte
    let (code, log, err) = bytes_of(&env, &["show", "latest:big", "--log", "stdout"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(log.len(), 200 * 1024 * 1024 + 21);
    assert_eq!(sha256_of(&log), printed);
    drop(log);

    // the database keeps only its head and tail, and the hash of the whole
    let db = env.db();
    let (bytes, head, tail, full, stored): (i64, i64, i64, String, bool) = db
        .query_row(
            "SELECT l.bytes, h.size, t.size, l.full_hash, l.stored FROM step_logs l
             JOIN contents h ON h.hash = l.content_hash JOIN contents t ON t.hash = l.tail_hash
             WHERE l.stream = 'stdout'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(bytes, 200 * 1024 * 1024 + 21);
    assert!(head <= 64 * 1024 && tail <= 64 * 1024, "{head} {tail}");
    assert_eq!(full, printed);
    assert!(stored);
    let in_db: i64 = db
        .query_row("SELECT sum(size) FROM contents", [], |r| r.get(0))
        .unwrap();
    assert!(in_db < 1024 * 1024, "{in_db} bytes of contents");
    // compressed in the store
    let object = env.path(&format!(
        ".mlrun/objects/logs/{}/{}.zst",
        &full[..2],
        &full[2..]
    ));
    let on_disk = std::fs::metadata(&object).unwrap().len();
    assert!(on_disk < 20 * 1024 * 1024, "{on_disk}");

    // `show --logs`: the head, a line saying what was cut and where the whole log is, the tail
    let (code, shown, err) = bytes_of(&env, &["show", "--logs"]);
    assert_eq!(code, 0, "{err}");
    let shown = String::from_utf8_lossy(&shown);
    assert!(shown.contains("00000000 aaaa"), "{}", &shown[..2000]);
    let cut = shown
        .lines()
        .find(|l| l.starts_with("… "))
        .expect("a line says the log was cut");
    assert!(
        cut.contains(" cut: the whole log (209.7 MB) is object sha256:")
            && cut.contains(&printed)
            && cut.contains(":big --logs --full` prints it"),
        "{cut}"
    );
    assert!(shown.contains("00051199 "), "the tail is shown");
    assert!(shown.len() < 300 * 1024, "{}", shown.len());
    assert!(
        shown.contains("(whole log in the object store)"),
        "{shown:.3000}"
    );

    // `fsck` re-hashes the log object too
    let fsck = env.mlrun(&["fsck"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
}

// One long log (4 MB with a secret in it) followed through its life, one function per stage:
// stored, shown, damaged and caught by fsck, stored again by a rerun, collected by gc.
#[test]
fn long_logs_are_masked_kept_out_of_the_database_checked_and_collected() {
    let mut env = Env::git();
    env.set_env("API_TOKEN", "tok-1234567890-secret");
    // 4 MB with the secret in the middle of the log and inside an endless line
    env.write(
        "print.py",
        r#"import os, sys
s = os.environ["API_TOKEN"]
for i in range(50000):
    print(f"{i:06d} " + "x" * 70)
    if i == 25000:
        print("the token is " + s)
sys.stdout.write(("." * 1000 + s) * 400)
sys.stdout.flush()
"#,
    );
    env.write(
        "pipeline.toml",
        "[steps.p]\ncmd = \"python3 print.py {params.n}\"\n[params]\nn = 1\n",
    );
    env.commit("p");
    let (first, object) = the_log_is_stored_masked(&env);
    a_damaged_log_is_caught_by_fsck(&env, &object);
    // a rerun prints the same log and stores it again
    let out = run_quietly(&env, &["--force"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(object.exists());

    gc_collects_the_log_no_kept_run_printed(&env, &first, &object);
}

/// The log is kept whole in the object store, the secret masked; its whole-log hash and the
/// object's path.
fn the_log_is_stored_masked(env: &Env) -> (String, std::path::PathBuf) {
    let out = run_quietly(env, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let (code, log, err) = bytes_of(env, &["show", "latest:p", "--log", "stdout"]);
    assert_eq!(code, 0, "{err}");
    let log = String::from_utf8(log).unwrap();
    assert!(log.contains("025000 xxx"));
    assert!(
        !log.contains("tok-1234567890-secret"),
        "a secret reached the stored log"
    );
    assert_eq!(log.matches("<redacted>").count(), 401);
    let (_, full, _) = bytes_of(env, &["show", "--logs", "--full"]);
    assert_eq!(
        String::from_utf8_lossy(&full).matches("<redacted>").count(),
        401
    );

    let first: String = env
        .db()
        .query_row(
            "SELECT full_hash FROM step_logs WHERE stream = 'stdout'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let object = env.path(&format!(
        ".mlrun/objects/logs/{}/{}.zst",
        &first[..2],
        &first[2..]
    ));

    (first, object)
}

/// A damaged log object is caught by fsck and moved aside; show says the log is gone.
fn a_damaged_log_is_caught_by_fsck(env: &Env, object: &std::path::Path) {
    let good = std::fs::read(object).unwrap();
    let mut perm = std::fs::metadata(object).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
    std::fs::set_permissions(object, perm).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(object, &bad).unwrap();
    let fsck = env.mlrun(&["fsck"]);
    assert_eq!(fsck.code, 1, "{fsck:?}");
    assert!(
        fsck.stdout.contains("log corrupt") && fsck.stdout.contains(":p stdout"),
        "{fsck:?}"
    );
    assert!(!object.exists());
    let fsck = env.mlrun(&["fsck", "--json"]);
    assert!(fsck.stdout.contains("\"log missing\""), "{fsck:?}");
    let (code, _, err) = bytes_of(env, &["show", "latest:p", "--log", "stdout"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not in the store"), "{err}");
}

/// gc --keep-last 1 keeps the newest run's log; a run printing another log makes the first one
/// garbage: it is deleted, marked not stored, and fsck is happy with that.
fn gc_collects_the_log_no_kept_run_printed(env: &Env, first: &str, object: &std::path::Path) {
    let out = run_quietly(env, &["-p", "n=2"]);
    assert_eq!(out.code, 0, "{out:?}");
    let gc = env.mlrun(&["gc", "--keep-last", "1"]);
    assert_eq!(gc.code, 0, "{gc:?}");
    // the same log (same content) is printed by the newest run too: nothing to delete
    assert!(object.exists(), "{gc:?}");
    env.write("print.py", "print('short now')\n");
    env.commit("short");
    let out = run_quietly(env, &["-p", "n=3"]);
    assert_eq!(out.code, 0, "{out:?}");
    let gc = env.mlrun(&["gc", "--keep-last", "1"]);
    assert_eq!(gc.code, 0, "{gc:?}");
    assert!(gc.stdout.contains("and 1 step log"), "{gc:?}");
    assert!(!object.exists());
    let stored: i64 = env
        .db()
        .query_row(
            "SELECT max(stored) FROM step_logs WHERE full_hash = ?1",
            [first],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 0);
    let fsck = env.mlrun(&["fsck"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
    let first_run: String = env
        .db()
        .query_row("SELECT id FROM runs ORDER BY started_at LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let shown = env.mlrun(&["show", &first_run, "--logs"]);
    assert!(
        shown
            .stdout
            .contains("is not in the store: it could not be kept, or `mlrun gc` deleted it"),
        "{shown:?}"
    );
    assert!(
        shown
            .stdout
            .contains("(only its first and last 64 KiB kept)")
    );
}

#[test]
fn binary_output_is_stored_as_bytes_and_escaped_on_a_terminal() {
    let env = Env::git();
    env.write(
        "print.py",
        "import sys\nsys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff\\xfe raw\\n\\x1b[2J\\x1b]0;title\\x07 \\x1b[31mred\\x1b[0m\\n50%\\r100%\\n\\x9b')\n",
    );
    env.write("pipeline.toml", "[steps.bin]\ncmd = \"python3 print.py\"\n");
    env.commit("bin");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let printed: &[u8] =
        b"caf\xc3\xa9 \xff\xfe raw\n\x1b[2J\x1b]0;title\x07 \x1b[31mred\x1b[0m\n50%\r100%\n\x9b";
    // piped: the bytes as printed
    let (code, log, err) = bytes_of(&env, &["show", "latest:bin", "--log", "stdout"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(log, printed);
    let (_, shown, _) = bytes_of(&env, &["show", "--logs"]);
    assert!(shown.windows(printed.len()).any(|w| w == printed));

    // to a terminal: nothing is replayed raw
    if Command::new("script").arg("--version").output().is_err() {
        crate::common::skip_unless_ci("the terminal half: `script` (util-linux) is not installed");
        return;
    }
    let cmd = format!("{} show --logs --color never", crate::common::bin());
    let out = env
        .hermetic("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(!screen.contains('\x1b'), "{screen:?}");
    assert!(!screen.contains('\x07'), "{screen:?}");
    assert!(screen.contains("café \u{fffd}\u{fffd} raw"), "{screen:?}");
    assert!(
        screen.contains("^[[2J^[]0;title^G ^[[31mred^[[0m"),
        "{screen:?}"
    );
    assert!(
        screen.contains("100%") && !screen.contains("50%"),
        "{screen:?}"
    );
    assert!(
        screen.contains("\\u{9b}") || screen.contains('\u{fffd}'),
        "{screen:?}"
    );
}

/// A small tmpfs, unmounted when dropped: a store on it fills up for real.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (with the reason printed) where mounting is not permitted, except in CI, where
    /// these tests must run.
    fn mount(env: &Env, size: &str) -> Option<Tmpfs> {
        let dir = env.home.join(format!("tmpfs-{size}"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir)),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var("CI").is_err(),
                    "CI must be able to mount a tmpfs for the full-disk tests: {why}"
                );
                eprintln!("skipped: cannot mount a tmpfs here ({why}); CI runs this test");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_log_the_full_store_cannot_take_fails_the_step_and_the_run() {
    let env = Env::git();
    let Some(fs) = Tmpfs::mount(&env, "3m") else {
        return;
    };
    let store = fs.path().join("store");
    // 8 MB of random hex: about 4 MB compressed, more than the store has room for
    env.write(
        "print.py",
        "import os\nfor i in range(100000):\n    print(os.urandom(40).hex())\nprint('the end')\n",
    );
    env.write(
        "pipeline.toml",
        "[steps.noisy]\ncmd = \"python3 print.py\"\noutputs = []\n[steps.after]\ncmd = \"true\"\nafter = [\"noisy\"]\n",
    );
    env.commit("noisy");
    let store_arg = store.to_str().unwrap();
    let out = run_quietly(&env, &["--store", store_arg]);
    assert_eq!(out.code, 1, "{out:?}");

    let runs = env.mlrun(&["--store", store_arg, "runs", "--json"]);
    assert!(runs.stdout.contains("\"status\": \"failed\""), "{runs:?}");
    let show = env.mlrun(&["--store", store_arg, "show", "--logs"]);
    assert_eq!(show.code, 0, "{show:?}");
    assert!(
        show.stdout
            .contains("its whole stdout could not be kept (cannot write its log to"),
        "{show:?}"
    );
    assert!(show.stdout.contains("No space left on device"), "{show:?}");
    // what could be kept is: the head and the tail, saying the rest is missing
    assert!(
        show.stdout
            .contains("(only its first and last 64 KiB kept)"),
        "{show:?}"
    );
    assert!(show.stdout.contains("the end\n"), "{show:?}");
    assert!(show.stdout.contains("not in the store"), "{show:?}");
    assert!(
        show.stdout
            .contains("not run: the run stopped after `noisy` failed"),
        "{show:?}"
    );
    // the partial log file was removed, giving its space back
    let left: Vec<_> = std::fs::read_dir(store.join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_store_that_fills_up_fails_the_run_and_the_next_command_says_why() {
    let mut env = Env::git();
    let Some(fs) = Tmpfs::mount(&env, "2m") else {
        return;
    };
    let store = fs.path().join("store");
    env.set_env("FILLER", fs.path().join("filler").to_str().unwrap());
    // the step fills the store's file system to the last byte, as another process could
    env.write(
        "pipeline.toml",
        "[steps.fill]\ncmd = \"head -c 10000000 /dev/zero > $FILLER 2>/dev/null; echo filled\"\n",
    );
    env.commit("fill");
    let store_arg = store.to_str().unwrap();
    let out = env.mlrun(&["--store", store_arg]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("the record of step `fill` could not be written"),
        "{out:?}"
    );
    assert!(out.stderr.contains("full"), "{out:?}");
    assert!(!out.stdout.contains("finished"), "{out:?}");

    // space is freed; the next command closes the run as failed, with the reason
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let runs = env.mlrun(&["--store", store_arg, "runs", "--json"]);
    assert_eq!(runs.code, 0, "{runs:?}");
    assert!(runs.stdout.contains("\"status\": \"failed\""), "{runs:?}");
    let show = env.mlrun(&["--store", store_arg, "show", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    let step = &v["steps"][0];
    assert_eq!(step["status"], "failed", "{show:?}");
    let error = step["error"].as_str().unwrap();
    assert!(
        error.starts_with("mlrun could not record this step, so the run's record is incomplete")
            && error.contains("full"),
        "{error}"
    );
    assert_eq!(v["exit_code"], 1);
    // nothing is left for a later command to do
    assert!(
        !std::fs::read_dir(&store)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
    );
}

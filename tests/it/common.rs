//! A hermetic test environment: a temporary git repository, a cleared environment (HOME, TMPDIR
//! and git config inside the temp dir), and helpers to run the real `mlrun` binary and to read
//! the real SQLite store it wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Env {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    extra_env: Vec<(String, String)>,
    /// In an [`Env::fixed`]: how many commands it has built, each of which gets its own fixed
    /// time, a minute after the previous one's.
    clock: Option<std::sync::atomic::AtomicI64>,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// A finished process's exit code (128 + the signal that killed it, as a shell reports it)
    /// and output.
    pub fn of(out: Output) -> Out {
        use std::os::unix::process::ExitStatusExt;
        Out {
            code: out
                .status
                .code()
                .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `out`, after checking the command succeeded (exit 0; the output is shown if not).
pub fn ok(out: Out) -> Out {
    assert_eq!(out.code, 0, "{out:?}");
    out
}

/// The JSON a successful command printed (`--json`); fails the test showing the output if the
/// command failed or its stdout is not JSON.
pub fn json(out: &Out) -> serde_json::Value {
    assert_eq!(out.code, 0, "{out:?}");
    stdout_json(out)
}

/// The JSON a command printed, whatever its exit code (a replay that differs exits 1).
pub fn stdout_json(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The names in `dir`, sorted (none if it cannot be read).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mlrun")
}

impl Env {
    /// An empty project directory that is a git repository with one commit.
    pub fn git() -> Env {
        let env = Env::plain();
        env.init_git();
        env
    }

    /// As [`Env::git`], with everything that differs between two runs of a test fixed: the
    /// clock mlrun records, the host and user (mlrun's test-only variables, see
    /// ARCHITECTURE.md), git's commit dates (so commit hashes are the same every time) and the
    /// time zone. The clock of each command the test runs (mlrun, git) stands still at its own
    /// instant: the N-th at N minutes past [`FIXED_NOW`], so runs and commits are apart and in
    /// order, whatever the machine's speed. For snapshots: times, commits and hashes in them are
    /// real; only run ids (random) need replacing ([`fixed_settings`]).
    pub fn fixed() -> Env {
        let mut env = Env::plain();
        env.clock = Some(std::sync::atomic::AtomicI64::new(0));
        for (k, v) in [
            ("MLRUN_TEST_HOST", "test-host"),
            ("MLRUN_TEST_USER", "tester"),
            ("TZ", "UTC"),
        ] {
            env.set_env(k, v);
        }
        env.init_git();
        env
    }

    fn init_git(&self) {
        self.git_cmd(&["init", "-q", "-b", "main"]);
        self.write(".gitignore", "/.mlrun/\n");
        self.commit("init");
    }

    /// Every recorded run's id, oldest first.
    pub fn run_ids(&self) -> Vec<String> {
        if !self.path(".mlrun").exists() {
            return Vec::new();
        }
        let out = self.mlrun(&["runs", "--json", "-n", "0"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("runs --json");
        let mut ids: Vec<String> = v
            .as_array()
            .expect("a list of runs")
            .iter()
            .map(|r| r["id"].as_str().expect("an id").to_string())
            .collect();
        ids.reverse();
        ids
    }

    /// An empty project directory, not in any git repository.
    pub fn plain() -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("project");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(home.join("tmp")).unwrap();
        Env {
            _tmp: tmp,
            root,
            home,
            extra_env: Vec::new(),
            clock: None,
        }
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        self.extra_env.push((k.into(), v.into()));
    }

    /// `program` in the project with the hermetic environment (and what `set_env` added), not
    /// yet started: every command a test runs is built here.
    pub fn hermetic(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(&program);
        cmd.current_dir(&self.root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("TMPDIR", self.home.join("tmp"))
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
            .env("LC_ALL", "C")
            .env("USER", "tester");
        // pyenv shims need their root to find python3
        if let Ok(v) = std::env::var("PYENV_ROOT") {
            cmd.env("PYENV_ROOT", v);
        }
        if let Some(clock) = &self.clock {
            let n = clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let start: jiff::Timestamp = FIXED_NOW.parse().expect("FIXED_NOW is RFC 3339");
            let now = jiff::Timestamp::from_second(start.as_second() + 60 * n).unwrap();
            cmd.env("MLRUN_TEST_NOW", now.to_string());
            if program.as_ref() == "git" {
                let date = format!("@{} +0000", now.as_second());
                cmd.env("GIT_AUTHOR_DATE", &date)
                    .env("GIT_COMMITTER_DATE", &date);
            }
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn git_cmd(&self, args: &[&str]) -> String {
        let out = self.hermetic("git").args(args).output().expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn commit(&self, msg: &str) {
        self.git_cmd(&["add", "-A"]);
        self.git_cmd(&["commit", "-q", "--allow-empty", "-m", msg]);
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// Copy a file or directory from the repository into the project.
    pub fn copy_from_repo(&self, rel: &str) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        copy_tree(&src, &self.path(rel));
    }

    pub fn mlrun(&self, args: &[&str]) -> Out {
        self.mlrun_in(&self.root, args)
    }

    /// The `mlrun` command in the project, with the hermetic environment, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.hermetic(bin());
        cmd.args(args);
        cmd
    }

    /// `mlrun ARGS` run by another program, e.g. `strace -f mlrun run`.
    pub fn mlrun_under(&self, wrapper: &[&str], args: &[&str]) -> Out {
        let out = self
            .hermetic(wrapper[0])
            .args(&wrapper[1..])
            .arg(bin())
            .args(args)
            .output()
            .expect("the wrapper runs");
        Out::of(out)
    }

    pub fn mlrun_in(&self, dir: &Path, args: &[&str]) -> Out {
        let out = self
            .command(args)
            .current_dir(dir)
            .output()
            .expect("mlrun runs");
        Out::of(out)
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path(".mlrun/lineage.db")).expect("store exists")
    }

    /// sha256 of a file, computed by coreutils, not by mlrun
    pub fn sha256sum(&self, rel: &str) -> String {
        let out = Command::new("sha256sum")
            .arg(self.path(rel))
            .output()
            .expect("sha256sum runs");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    if src.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            if e.file_name() == "__pycache__" || e.file_name() == ".mlrun" {
                continue;
            }
            copy_tree(&e.path(), &dst.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src, dst).unwrap();
    }
}

/// Query helpers
pub fn one<T: rusqlite::types::FromSql>(db: &rusqlite::Connection, sql: &str) -> T {
    db.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn rows(db: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    let mut stmt = db.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                let v: rusqlite::types::Value = r.get(i)?;
                Ok(match v {
                    rusqlite::types::Value::Null => "NULL".to_string(),
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Real(f) => f.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
                })
            })
            .collect()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

pub fn open_db(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("store exists")
}

impl Env {
    /// Start mlrun without waiting for it (for signal and concurrency tests).
    pub fn spawn_mlrun(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("mlrun starts")
    }
}

/// Wait for a spawned mlrun and collect its output.
pub fn finish(child: std::process::Child) -> Out {
    Out::of(child.wait_with_output().expect("mlrun finishes"))
}

/// Poll until `cond` holds; used to wait for a step to have started. The limit only keeps a
/// broken build from hanging the suite: it is never under two minutes, so a slow, loaded machine
/// cannot fail a test by being slow (`secs` says what the test expects at most; a larger value
/// is honoured).
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let limit = std::time::Duration::from_secs(secs.max(120));
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

pub fn signal(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig)
        .expect("signal sent");
}

/// A file system mounted for a test (a small tmpfs, a read-only bind mount), unmounted when
/// dropped. Declare it after the `Env` whose directory holds it, so it is dropped first.
pub struct Mounted {
    pub path: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Run `mount ARGS`; on failure, outside CI, print why the test is skipped and return false (in
/// CI, where the suite must run whole, panic).
fn mount(args: &[&std::ffi::OsStr], purpose: &str) -> bool {
    let out = Command::new("mount").args(args).output();
    let why = match out {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    let msg = format!("cannot mount {purpose} here ({why}); this test needs root or CAP_SYS_ADMIN");
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    false
}

impl Env {
    /// A tmpfs of `bytes` bytes in the test's temporary directory, for a full disk: point a store
    /// at it (`--store`, `MLRUN_STORE`), then `fill_fs` it. `None` (after printing why) where
    /// mounting is not permitted, unless `CI` is set.
    pub fn small_fs(&self, bytes: u64) -> Option<Mounted> {
        let path = self._tmp.path().join(format!("small-fs-{bytes}"));
        std::fs::create_dir_all(&path).unwrap();
        let size = format!("size={bytes}");
        mount(
            &[
                "-t".as_ref(),
                "tmpfs".as_ref(),
                "-o".as_ref(),
                size.as_ref(),
                "tmpfs".as_ref(),
                path.as_os_str(),
            ],
            "a tmpfs",
        )
        .then_some(Mounted { path })
    }

    /// Make `dir` read-only (a read-only bind mount of it over itself): even root cannot write
    /// it then. `None` (after printing why) where mounting is not permitted, unless `CI` is set.
    pub fn read_only(&self, dir: &Path) -> Option<Mounted> {
        if !mount(
            &["--bind".as_ref(), dir.as_os_str(), dir.as_os_str()],
            "a bind mount",
        ) {
            return None;
        }
        let m = Mounted {
            path: dir.to_path_buf(),
        };
        mount(
            &["-o".as_ref(), "remount,bind,ro".as_ref(), dir.as_os_str()],
            "a read-only bind mount",
        )
        .then_some(m)
    }
}

/// Fill the file system holding `dir` until a write fails for lack of space (a file `filler`
/// in `dir`). Returns how many bytes it took.
pub fn fill_fs(dir: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler file");
    let chunk = vec![0x5au8; 4096];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    let _ = f.sync_all();
    n
}

/// Make a FIFO at `path`: a step that reads it (`cat fifo`) waits until the test writes to it
/// and closes it, which holds a run in a known state without sleeping.
pub fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
}

/// Open the FIFO at `path` for writing once a reader (the step) has opened it: on return, the
/// step is running and blocked on it, until the returned file is dropped. Panics after `secs`.
pub fn fifo_writer(path: &Path, secs: u64) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = None;
    let opened = wait_until(secs, || {
        // without a reader a non-blocking open for writing fails (ENXIO)
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => {
                file = Some(f);
                true
            }
            Err(_) => false,
        }
    });
    assert!(opened, "nothing opened {} for reading", path.display());
    file.unwrap()
}

/// The note a step's line gets once hashing and storing its files took a second.
const HASHING_NOTE: &str = r" ?\(\S+ of it hashing and storing files\)";

/// A test part that needs a tool this machine lacks: skipped with the reason outside CI; in CI
/// (`CI` set), where `.ci/run` installs every such tool, a failure.
pub fn skip_unless_ci(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}; CI must run this (see .ci/run)");
    }
    eprintln!("skipped: {why}");
}

/// The instant [`Env::fixed`] starts its clock at.
pub const FIXED_NOW: &str = "2026-01-01T00:00:00Z";

/// Snapshot settings for the output of mlrun in an [`Env::fixed`] environment. Only what
/// cannot be fixed is replaced: each of `runs` (random UUIDv7s; in full or as shown, 16 hex
/// digits) by `[run N]`, N its place in `runs`; the test's temporary directory by `[tmp]`;
/// replay's scratch directory (named at random); the machine's lines in `show`; and the note a
/// step's line gets once hashing its files took a second (measured by a real clock). Recorded
/// times and durations stay (the clock is fixed), as does every hash, so a wrong one fails.
pub fn fixed_settings(env: &Env, runs: &[String]) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    for (i, id) in runs.iter().enumerate() {
        let hex: String = id.chars().filter(|c| *c != '-').collect();
        s.add_filter(&regex::escape(id), format!("[run {}]", i + 1));
        s.add_filter(&hex[..16], format!("[run {}]", i + 1));
    }
    let tmp = env._tmp.path().to_string_lossy().into_owned();
    s.add_filter(&regex::escape(&tmp), "[tmp]");
    // replay's scratch directory, named at random
    s.add_filter(r"mlrun-replay-[0-9a-z]+", "mlrun-replay-[scratch]");
    // the machine the test runs on, in `show`
    s.add_filter(
        r"(?m)^  (system|machine|env vars)( +).*$",
        "  $1$2[this machine]",
    );
    s.add_filter(
        r"(?m)^(  host +tester@test-host) · .*$",
        "$1 · [this machine]",
    );
    s.add_filter(HASHING_NOTE, "");
    s
}

/// `insta::assert_snapshot!(name, text)` for the output of mlrun in an [`Env::fixed`] `env`,
/// under [`fixed_settings`] for the runs `env` recorded: only run ids and what names the
/// machine or a random directory are replaced, never a hash.
#[macro_export]
macro_rules! assert_fixed_snapshot {
    ($env:expr, $name:expr, $text:expr) => {{
        let (env, name, text): (&$crate::common::Env, &str, &str) = ($env, $name, $text);
        $crate::common::fixed_settings(env, &env.run_ids())
            .bind(|| insta::assert_snapshot!(name, text));
    }};
}

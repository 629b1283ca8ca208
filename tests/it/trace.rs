//! `--trace`: what a step really read and wrote, through children, static binaries, dirfds,
//! renames and symlinks, compared with its declaration and recorded as observed lineage.

use std::path::{Path, PathBuf};

use crate::common::{Env, Out, one, rows};

fn project(pipeline: &str, files: &[(&str, &str)]) -> Env {
    let env = Env::git();
    for (path, content) in files {
        env.write(path, content);
    }
    env.write("pipeline.toml", pipeline);
    env.commit("fixture");
    env
}

fn undeclared_read(step: &str, path: &str) -> String {
    format!(
        "warning: {step} read {path}, which is not a declared input; its version is recorded, add it to inputs to make it part of the cache key"
    )
}

fn undeclared_write(step: &str, path: &str) -> String {
    format!(
        "warning: {step} wrote {path}, which is not a declared output; its version is recorded, add it to outputs to make it part of the cache key"
    )
}

/// (direction, path, declared, hash) of every edge of `step`'s execution.
fn edges(env: &Env, step: &str) -> Vec<Vec<String>> {
    rows(
        &env.db(),
        &format!(
            "SELECT e.direction, a.path, e.declared, v.blob_hash FROM io_edges e
             JOIN step_execs s ON s.id = e.step_exec JOIN artifact_versions v ON v.id = e.av_id
             JOIN artifacts a ON a.id = v.artifact_id WHERE s.step = '{step}'
             ORDER BY e.direction, a.path"
        ),
    )
}

fn edge(dir: &str, path: &str, declared: bool, hash: String) -> Vec<String> {
    vec![
        dir.into(),
        path.into(),
        if declared { "1" } else { "0" }.into(),
        hash,
    ]
}

fn warnings(out: &Out) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect()
}

#[test]
fn an_undeclared_python_read_is_warned_about_and_recorded_as_observed() {
    let env = project(
        r#"
[steps.train]
cmd = "python3 train.py"
inputs = ["train.py", "data/train.csv"]
outputs = ["model.txt"]
"#,
        &[
            (
                "train.py",
                "rows = open('data/train.csv').read()\nextra = open('data/extra.csv').read()\nopen('model.txt', 'w').write(rows + extra)\n",
            ),
            ("data/train.csv", "a,b\n1,2\n"),
            ("data/extra.csv", "3,4\n"),
        ],
    );
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    // python's own files (stdlib, site-packages, the pyenv shim) are outside the project
    assert_eq!(
        warnings(&out),
        [undeclared_read("train", "data/extra.csv")],
        "{out:?}"
    );
    assert_eq!(
        edges(&env, "train"),
        [
            edge(
                "in",
                "data/extra.csv",
                false,
                env.sha256sum("data/extra.csv")
            ),
            edge(
                "in",
                "data/train.csv",
                true,
                env.sha256sum("data/train.csv")
            ),
            edge("in", "train.py", true, env.sha256sum("train.py")),
            edge("out", "model.txt", true, env.sha256sum("model.txt")),
        ]
    );
    // an observed input is committed to git: its origin says so, like a declared one
    assert_eq!(
        one::<String>(
            &env.db(),
            "SELECT e.origin FROM io_edges e JOIN artifact_versions v ON v.id = e.av_id
             JOIN artifacts a ON a.id = v.artifact_id WHERE a.path = 'data/extra.csv'"
        ),
        "git"
    );
    let show = env.mlrun(&["show"]);
    let line = show
        .stdout
        .lines()
        .find(|l| l.contains("data/extra.csv"))
        .unwrap_or_else(|| panic!("{show:?}"));
    assert!(
        line.trim_start().starts_with("in ") && line.ends_with("(observed)"),
        "{line}"
    );
    assert!(
        !show
            .stdout
            .lines()
            .any(|l| l.contains("data/train.csv") && l.contains("observed")),
        "{show:?}"
    );
    let json = env.mlrun(&["show", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let inputs = v["steps"][0]["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["path"], "data/extra.csv");
    assert_eq!(inputs[0]["observed"], true);
    assert_eq!(inputs[1]["observed"], false);
}

#[test]
fn many_undeclared_files_are_listed_up_to_five_then_counted_with_the_covering_directory() {
    let env = project(
        r#"
[steps.s]
cmd = "cat data/* > /dev/null && mkdir -p out && for i in 1 2 3 4 5 6; do echo $i > out/$i; done"
"#,
        &[
            ("data/1", "1"),
            ("data/2", "2"),
            ("data/3", "3"),
            ("data/4", "4"),
            ("data/5", "5"),
            ("data/6", "6"),
            ("data/7", "7"),
        ],
    );
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    let w = warnings(&out);
    let reads: Vec<_> = w
        .iter()
        .filter(|l| l.contains(", which is not a declared input"))
        .collect();
    let writes: Vec<_> = w
        .iter()
        .filter(|l| l.contains(", which is not a declared output"))
        .collect();
    assert_eq!((reads.len(), writes.len()), (5, 5), "{out:?}");
    assert!(w.contains(&"warning: s read 2 more undeclared files (see `mlrun show`); declaring `data/` as an input covers them"), "{out:?}");
    assert!(w.contains(&"warning: s wrote 1 more undeclared file (see `mlrun show`); declaring `out/` as an output covers them"), "{out:?}");
    assert_eq!(w.len(), 12, "{out:?}");
}

#[test]
fn untraced_runs_record_nothing_observed() {
    let env = project(
        "[steps.s]\ncmd = \"cat extra.txt > out.txt\"\noutputs = [\"out.txt\"]\n",
        &[("extra.txt", "x\n")],
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(warnings(&out).is_empty(), "{out:?}");
    assert_eq!(
        one::<i64>(
            &env.db(),
            "SELECT count(*) FROM io_edges WHERE declared = 0"
        ),
        0
    );
}

#[test]
fn a_shell_pipeline_is_followed_into_every_child() {
    let env = project(
        r#"
[pipeline]
trace = true
[steps.sort]
cmd = "cat a.txt b.txt | sort > sorted.txt; (sort -r a.txt > sub/rev.txt) && wc -l < sorted.txt"
inputs = ["a.txt"]
outputs = ["sorted.txt"]
"#,
        &[("a.txt", "b\na\n"), ("b.txt", "c\n"), ("sub/.keep", "")],
    );
    // `trace = true` in [pipeline]: no flag needed
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("sort │ 3"), "{out:?}");
    assert_eq!(
        warnings(&out),
        [
            undeclared_read("sort", "b.txt"),
            undeclared_write("sort", "sub/rev.txt")
        ],
        "{out:?}"
    );
    assert_eq!(
        edges(&env, "sort"),
        [
            edge("in", "a.txt", true, env.sha256sum("a.txt")),
            edge("in", "b.txt", false, env.sha256sum("b.txt")),
            edge("out", "sorted.txt", true, env.sha256sum("sorted.txt")),
            edge("out", "sub/rev.txt", false, env.sha256sum("sub/rev.txt")),
        ]
    );
}

/// A program that `--trace` cannot miss by preloading: no dynamic loader at all.
fn static_busybox() -> Option<PathBuf> {
    let path = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())?;
    let elf = std::fs::read(&path).ok()?;
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().ok()?) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    // PT_INTERP = 3: a dynamically linked program names its loader
    let dynamic = (0..count).any(|i| {
        let o = phoff + i * size;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3
    });
    (!dynamic).then_some(path)
}

/// A prerequisite that `.ci/run` installs: in CI its absence fails the test, elsewhere it skips.
fn require(what: &str, found: bool) -> bool {
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is missing (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {what} is not installed (apt-get install it, or run .ci/run)");
    }
    found
}

#[test]
fn a_statically_linked_binary_is_traced() {
    let busybox = static_busybox();
    if !require("busybox-static", busybox.is_some()) {
        return;
    }
    let bb = busybox.unwrap();
    let env = project(
        &format!(
            "[steps.copy]\ncmd = [\"{}\", \"cp\", \"in.txt\", \"copy.txt\"]\ninputs = [\"in.txt\"]\n",
            bb.display()
        ),
        &[("in.txt", "static\n")],
    );
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        warnings(&out),
        [undeclared_write("copy", "copy.txt")],
        "{out:?}"
    );
    assert_eq!(
        edges(&env, "copy"),
        [
            edge("in", "in.txt", true, env.sha256sum("in.txt")),
            edge("out", "copy.txt", false, env.sha256sum("copy.txt")),
        ]
    );
}

#[test]
fn openat_with_a_directory_descriptor_resolves_against_that_directory() {
    let script = r#"
import os
d = os.open("data", os.O_RDONLY | os.O_DIRECTORY)
os.chdir("/")  # the cwd is no help: only the dirfd says where these files are
fd = os.open("extra.csv", os.O_RDONLY, dir_fd=d)
os.read(fd, 100)
w = os.open("made.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=d)
os.write(w, b"made\n")
"#;
    let env = project(
        "[steps.dirfd]\ncmd = [\"python3\", \"dirfd.py\"]\ninputs = [\"dirfd.py\"]\n",
        &[("dirfd.py", script), ("data/extra.csv", "1\n")],
    );
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        warnings(&out),
        [
            undeclared_read("dirfd", "data/extra.csv"),
            undeclared_write("dirfd", "data/made.txt")
        ],
        "{out:?}"
    );
}

#[test]
fn a_file_renamed_into_place_is_recorded_under_its_final_name() {
    let script = r#"
import os
for name in ["model.bin", "report.json"]:
    with open(name + ".tmp", "w") as f:
        f.write(name)
    os.replace(name + ".tmp", name)
os.makedirs("scratch", exist_ok=True)
open("scratch/t", "w").write("gone")
os.unlink("scratch/t")
"#;
    let env = project(
        "[steps.save]\ncmd = [\"python3\", \"save.py\"]\ninputs = [\"save.py\"]\noutputs = [\"model.bin\"]\n",
        &[("save.py", script)],
    );
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    // the declared one is silent; the undeclared one is named by its final name; temporaries
    // (renamed away, or created and deleted) are not mentioned
    assert_eq!(
        warnings(&out),
        [undeclared_write("save", "report.json")],
        "{out:?}"
    );
    assert_eq!(
        edges(&env, "save"),
        [
            edge("in", "save.py", true, env.sha256sum("save.py")),
            edge("out", "model.bin", true, env.sha256sum("model.bin")),
            edge("out", "report.json", false, env.sha256sum("report.json")),
        ]
    );
    assert_eq!(
        one::<i64>(
            &env.db(),
            "SELECT count(*) FROM artifacts WHERE path LIKE '%.tmp' OR path LIKE 'scratch%'"
        ),
        0
    );
}

#[test]
fn reads_through_a_symlinked_directory_are_matched_and_named_by_the_real_path() {
    let env = project(
        r#"
[steps.declared]
cmd = "cat data/x.csv > a.txt"
inputs = ["data"]
outputs = ["a.txt"]
[steps.undeclared]
cmd = "cat data/y.csv > b.txt"
outputs = ["b.txt"]
"#,
        &[("datasets/v2/x.csv", "x\n"), ("datasets/v2/y.csv", "y\n")],
    );
    std::os::unix::fs::symlink("datasets/v2", env.path("data")).unwrap();
    env.commit("link");
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    // `data` is declared (a symlink to a directory): reading through it is covered and it is
    // not reported as untouched; the undeclared read is named as the kernel resolved it
    assert_eq!(
        warnings(&out),
        [undeclared_read("undeclared", "datasets/v2/y.csv")],
        "{out:?}"
    );
    assert!(!out.stderr.contains("hint:"), "{out:?}");
}

#[test]
fn a_background_process_left_running_is_stopped_when_the_step_ends() {
    let env = project(
        "[steps.bg]\ncmd = \"cat in.txt > out.txt; (sleep 600; touch slept) & echo $! > bg.pid\"\ninputs = [\"in.txt\"]\noutputs = [\"out.txt\"]\ntrace-ignore = [\"*.pid\"]\n",
        &[("in.txt", "i\n")],
    );
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    // the tracer must not wait for the background sleep: it was stopped before its end
    assert!(
        !env.path("slept").exists(),
        "the run waited for the background process"
    );
    assert!(warnings(&out).is_empty(), "{out:?}");
    let pid = std::fs::read_to_string(env.path("bg.pid")).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    crate::common::wait_until(60, || !alive(&proc_dir));
    assert!(
        !alive(&proc_dir),
        "background process {} still runs",
        pid.trim()
    );
}

/// Exists and is not a zombie.
fn alive(proc_dir: &Path) -> bool {
    std::fs::read_to_string(proc_dir.join("stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn strict_mode_fails_a_step_that_uses_undeclared_files() {
    let env = project(
        r#"
[steps.train]
cmd = "cat data/train.csv data/extra.csv > model.txt"
inputs = ["data/train.csv"]
outputs = ["model.txt"]
[steps.eval]
cmd = "cat model.txt > eval.txt"
inputs = ["model.txt"]
outputs = ["eval.txt"]
"#,
        &[("data/train.csv", "t\n"), ("data/extra.csv", "e\n")],
    );
    let out = env.mlrun(&["run", "--trace=strict"]);
    assert_eq!(out.code, 1, "{out:?}");
    let why = "strict tracing: it used undeclared files: read data/extra.csv; declare them (inputs, outputs) or match them with `trace-ignore`";
    assert!(out.stdout.contains(&format!("failed: {why}")), "{out:?}");
    let db = env.db();
    assert_eq!(
        rows(
            &db,
            "SELECT step, status, exit_code, error FROM step_execs ORDER BY id"
        ),
        [
            vec!["train", "failed", "1", why],
            vec![
                "eval",
                "not_run",
                "NULL",
                "not run: the run stopped after `train` failed"
            ],
        ]
    );
    // what it read is recorded (observed), its outputs are not versions
    assert_eq!(
        edges(&env, "train"),
        [
            edge(
                "in",
                "data/extra.csv",
                false,
                env.sha256sum("data/extra.csv")
            ),
            edge(
                "in",
                "data/train.csv",
                true,
                env.sha256sum("data/train.csv")
            ),
        ]
    );
    // ignoring the file makes the step pass
    let p = std::fs::read_to_string(env.path("pipeline.toml")).unwrap();
    env.write(
        "pipeline.toml",
        &p.replace(
            "[steps.train]",
            "[steps.train]\ntrace-ignore = [\"extra.csv\"]",
        ),
    );
    let out = env.mlrun(&["run", "--trace=strict"]);
    assert_eq!(out.code, 0, "{out:?}");
    // and `--trace=off` turns tracing off even when pipeline.toml asks for strict
    env.write(
        "pipeline.toml",
        &format!("[pipeline]\ntrace = \"strict\"\n{p}"),
    );
    let out = env.mlrun(&["run", "--trace=off", "--force"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_declared_input_the_step_never_opens_gets_a_hint() {
    let env = project(
        "[steps.s]\ncmd = \"cat used.txt > out.txt\"\ninputs = [\"used.txt\", \"unused.txt\"]\noutputs = [\"out.txt\"]\n",
        &[("used.txt", "u\n"), ("unused.txt", "n\n")],
    );
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(
            "hint: s never opened its declared input unused.txt (seen by --trace); if it is not needed, removing it avoids needless reruns"
        ),
        "{out:?}"
    );
}

#[test]
fn a_step_using_ptrace_says_it_cannot_run_under_trace() {
    let found = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require("strace", found) {
        return;
    }
    let env = project(
        "[steps.debug]\ncmd = \"strace -o /dev/null cat in.txt\"\ninputs = [\"in.txt\"]\n",
        &[("in.txt", "i\n")],
    );
    let out = env.mlrun(&["run", "--trace"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("`strace` uses ptrace and cannot run under --trace"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("set `trace = false` on step `debug` to run it untraced"),
        "{out:?}"
    );
    // and that is the way out: a step's own `trace = false` wins over --trace
    let p = std::fs::read_to_string(env.path("pipeline.toml")).unwrap();
    env.write("pipeline.toml", &format!("{p}trace = false\n"));
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn when_ptrace_is_not_permitted_the_step_fails_saying_why() {
    let found = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require("strace", found) {
        return;
    }
    let env = project(
        "[steps.s]\ncmd = \"echo ran > out.txt\"\noutputs = [\"out.txt\"]\n",
        &[],
    );
    // mlrun itself under `strace -f`: the step's process is already traced, so it cannot be
    // traced again, as in a container that forbids ptrace
    let out = env.mlrun_under(&["strace", "-f", "-o", "/dev/null"], &["run", "--trace"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains("`--trace` could not trace it: ptrace is not permitted here"),
        "{out:?}"
    );
    assert!(
        !env.path("out.txt").exists(),
        "the step must not run untraced"
    );
}

#[test]
fn interrupting_a_traced_step_stops_it_and_records_it_interrupted() {
    // the step says when SIGTERM reaches it: then it is stopped by it, not by SIGKILL later
    let env = project(
        "[steps.slow]\ncmd = \"trap 'echo term > term.txt; exit 1' TERM; echo started; sleep 600 & wait\"\n",
        &[],
    );
    let mut child = env
        .command(&["run", "--trace"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the step runs (its output line streams live through the tracer)
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("slow │ started") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "mlrun ended before the step printed");
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(
        env.path("term.txt").exists(),
        "SIGTERM did not reach the traced step"
    );
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        rows(&env.db(), "SELECT status, error FROM step_execs"),
        [["interrupted", "interrupted by SIGINT"]]
    );
}

#[test]
fn a_missing_program_under_trace_fails_as_without_it() {
    let env = project("[steps.s]\ncmd = [\"no-such-program-xyz\"]\n", &[]);
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(
        out.stdout
            .contains("could not start `no-such-program-xyz`: not found on PATH"),
        "{out:?}"
    );
}

#[test]
fn a_step_killed_by_a_signal_under_trace_reports_the_signal() {
    let env = project("[steps.s]\ncmd = \"kill -9 $$\"\n", &[]);
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 137, "{out:?}");
    assert!(out.stdout.contains("killed by SIGKILL"), "{out:?}");
}

#[test]
fn bad_trace_settings_point_at_the_file() {
    let env = project(
        "[pipeline]\ntrace = \"loud\"\n[steps.s]\ncmd = \"true\"\ntrace-ignore = [\"a[\"]\ntracee = true\n",
        &[],
    );
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("error: `pipeline.trace` must be true, false or \"strict\", found \"loud\"")
            && out.stderr.contains("pipeline.toml:2:9"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("`steps.s.trace-ignore` pattern `a[` is not a valid glob")
            && out.stderr.contains("pipeline.toml:5:17"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("unknown key `steps.s.tracee`")
            && out.stderr.contains("did you mean `trace`?"),
        "{out:?}"
    );
}

#[test]
fn a_reused_step_is_not_traced_and_the_run_says_so() {
    let env = project(
        "[steps.s]\ncmd = \"cat in.txt extra.txt > out.txt; echo s > side.txt\"\ninputs = [\"in.txt\"]\noutputs = [\"out.txt\"]\n",
        &[("in.txt", "i\n"), ("extra.txt", "e\n")],
    );
    let out = env.mlrun(&["run", "--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("not traced"), "{out:?}");
    let out = env.mlrun(&["run", "--trace=strict"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("= s"), "{out:?}");
    assert!(
        out.stderr.contains(
            "hint: steps reused from an earlier run did not run, so they were not traced; `--force` runs (and traces) them again"
        ),
        "{out:?}"
    );
    // the cached step carries the outputs of the execution it reused, the observed one still
    // marked observed; its inputs are fingerprinted anew, from the declaration only
    assert_eq!(
        rows(
            &env.db(),
            "SELECT e.direction, a.path, e.declared FROM io_edges e
             JOIN step_execs s ON s.id = e.step_exec JOIN artifact_versions v ON v.id = e.av_id
             JOIN artifacts a ON a.id = v.artifact_id WHERE s.status = 'cached'
             ORDER BY e.direction, a.path"
        ),
        [
            ["in", "in.txt", "1"],
            ["out", "out.txt", "1"],
            ["out", "side.txt", "0"]
        ]
    );
    let out = env.mlrun(&["run", "--trace=strict", "--force"]);
    assert_eq!(out.code, 1, "{out:?}");
}

#[test]
fn lineage_shows_observed_edges_apart_from_declared_ones() {
    let env = project(
        "[steps.s]\ncmd = \"cat extra.txt declared.txt > out.txt\"\ninputs = [\"declared.txt\"]\noutputs = [\"out.txt\"]\n",
        &[("extra.txt", "x\n"), ("declared.txt", "d\n")],
    );
    let out = env.mlrun(&["--trace"]);
    assert_eq!(out.code, 0, "{out:?}");
    let tree = env.mlrun(&["lineage", "out.txt"]);
    assert_eq!(tree.code, 0, "{tree:?}");
    let line = |p: &str| {
        tree.stdout
            .lines()
            .find(|l| l.contains(p))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("extra.txt").contains("(observed, not declared)"),
        "{tree:?}"
    );
    assert!(!line("declared.txt").contains("observed"), "{tree:?}");
    let json = env.mlrun(&["lineage", "out.txt", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let observed: Vec<&serde_json::Value> = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["observed"] == true)
        .collect();
    assert_eq!(observed.len(), 1, "{v}");
    assert_eq!(observed[0]["kind"], "used");
    let dot = env.mlrun(&["lineage", "out.txt", "--format", "dot"]);
    assert!(dot.stdout.contains("label=\"observed\""), "{dot:?}");
}

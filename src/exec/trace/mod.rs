//! `--trace`: record the files a step really read and wrote, and compare them with what it
//! declares.
//!
//! How: the step runs under a helper process, `mlrun __mlrun-trace REPORT -- ARGV…`, spawned
//! by `exec::child` exactly like an untraced step (own process group, piped output, signals to
//! the group). The helper forks the program and traces it and all its descendants with ptrace;
//! a seccomp-bpf filter stops them only at file system calls (`seccomp`), so everything else runs
//! at full speed. Paths are resolved as the kernel did (`paths`); what happened to each path is
//! kept in an `access::Report`, written as JSON to REPORT when the step is done. The helper exits
//! the way the step's main process did (same code, or the same signal).
//!
//! A separate process, rather than a thread of mlrun: ptrace events arrive through `waitpid`,
//! and a tracer inside mlrun would have to wait for "any child", which includes the other steps
//! (and tokio's own children). The helper owns its tracees and nothing else.
//!
//! Then mlrun (`conclude`) filters the report (`filter`), warns about undeclared reads and
//! writes, hashes those files and records them as observed edges (`io_edges.declared = 0`), and
//! with `--trace=strict` fails the step.
//!
//! Limits: io_uring opens are not seen (they bypass the system call layer the filter watches); a
//! step that itself uses ptrace (strace, gdb) cannot run traced: its `ptrace` calls fail with
//! EPERM, and mlrun says so; 32-bit (or x32) code is noted, its file accesses are not seen.
//! Linux on x86_64 and aarch64 only; elsewhere `--trace` is refused.
//!
//! This module must never change what a step does: a tracing failure is reported, never
//! papered over, and signals reach the step as they would untraced.

pub mod access;
pub mod filter;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod paths;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod ptrace;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod seccomp;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use access::Report;
use filter::Findings;

use super::child::ChildOutcome;
use super::{Ctx, blocking, origin_of};
use crate::error::{Error, Result};
use crate::fingerprint::git::GitState;
use crate::fingerprint::hash;
use crate::pipeline::{Plan, Step, TraceMode};
use crate::store::record::Io;

/// Whether this build can trace.
pub const SUPPORTED: bool = cfg!(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
));

/// First argument that makes `mlrun` the trace helper instead of the CLI.
pub const HELPER_ARG: &str = "__mlrun-trace";

/// How many files of one kind a warning lists by name.
const LIST_MAX: usize = 5;

/// Refuse `--trace` where it cannot work; a pipeline file asking for it gets a warning instead
/// (it may be shared with people on other systems), unless it asks for `strict`.
pub fn check_supported(plan: &Plan, cli: Option<TraceMode>) -> Result<Vec<String>> {
    if SUPPORTED {
        return Ok(Vec::new());
    }
    let unsupported = || {
        format!(
            "`--trace` is not supported on this system ({} {}): it needs Linux on x86_64 or aarch64",
            std::env::consts::OS,
            std::env::consts::ARCH
        )
    };
    if cli.is_some_and(|c| c != TraceMode::Off) {
        return Err(Error::invalid(unsupported()).hint("run without `--trace`"));
    }
    let modes: Vec<TraceMode> = plan
        .steps()
        .iter()
        .map(|s| TraceMode::resolve(cli, plan.trace(), s.trace))
        .collect();
    if modes.contains(&TraceMode::Strict) {
        return Err(Error::invalid(unsupported()).hint(
            "`trace = \"strict\"` cannot be checked here; run with `--trace=off` to run untraced",
        ));
    }
    if modes.contains(&TraceMode::On) {
        return Ok(vec![format!("{}; steps run untraced", unsupported())]);
    }
    Ok(Vec::new())
}

/// The entry point of the helper process: `mlrun __mlrun-trace REPORT -- PROGRAM ARGS…`
/// (arguments after `HELPER_ARG`). Returns the exit code; dies of the step's signal if it did.
pub fn helper_main(args: &[OsString]) -> i32 {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        use std::os::unix::ffi::OsStrExt;
        let (report_path, argv) = match args {
            [report, dashes, argv @ ..] if dashes == "--" && !argv.is_empty() => (report, argv),
            _ => {
                eprintln!(
                    "error: usage: mlrun {HELPER_ARG} REPORT -- PROGRAM [ARGS...] (internal)"
                );
                return crate::error::exit::INVALID;
            }
        };
        let argv: Option<Vec<std::ffi::CString>> = argv
            .iter()
            .map(|a| std::ffi::CString::new(a.as_bytes()).ok())
            .collect();
        let Some(argv) = argv else {
            eprintln!("error: an argument contains a NUL byte");
            return crate::error::exit::INVALID;
        };
        // mlrun signals the whole process group: those signals are for the step, and the helper
        // must outlive its main process to finish the report.
        ptrace::ignore_passed_on();
        let (exit, report) = ptrace::run(&argv);
        let json = serde_json::to_vec(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(report_path, json) {
            eprintln!("mlrun: cannot write the trace report: {e}");
        }
        match exit {
            Some(e) => ptrace::exit_like(e),
            // as without tracing: 127 for a program that cannot start, 1 when mlrun failed
            None if report.spawn_error.is_some() => 127,
            None => crate::error::exit::FAILURE,
        }
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = args;
        eprintln!("error: tracing is not supported on this system");
        crate::error::exit::INVALID
    }
}

/// One step's tracing, on mlrun's side: how to run it, and where its report will be.
pub struct Tracer {
    mode: TraceMode,
    report: PathBuf,
    /// files read that changed after this are reported (they may not be what was read)
    started: SystemTime,
}

impl Tracer {
    /// `None` when the step is not traced (`TraceMode::resolve` says `Off`).
    pub fn new(
        tmp: &Path,
        run_id: &str,
        step: &Step,
        plan: &Plan,
        cli: Option<TraceMode>,
    ) -> Option<Tracer> {
        let mode = TraceMode::resolve(cli, plan.trace(), step.trace);
        if mode == TraceMode::Off || !SUPPORTED {
            return None;
        }
        let report = tmp.join(format!("{run_id}-{}.trace.json", step.name));
        let _ = std::fs::remove_file(&report);
        Some(Tracer {
            mode,
            report,
            started: SystemTime::now(),
        })
    }

    /// The command to spawn instead of `argv`: the same program, under the helper.
    pub fn wrap(&self, argv: &[String]) -> Vec<String> {
        let exe = std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/proc/self/exe".into());
        let mut out = vec![
            exe,
            HELPER_ARG.into(),
            self.report.to_string_lossy().into_owned(),
            "--".into(),
        ];
        out.extend(argv.iter().cloned());
        out
    }

    fn finish(self) -> Observed {
        let report = std::fs::read(&self.report)
            .ok()
            .and_then(|b| serde_json::from_slice::<Report>(&b).ok());
        let _ = std::fs::remove_file(&self.report);
        Observed {
            mode: self.mode,
            report,
            started: self.started,
        }
    }
}

/// What the helper handed back (`report` is `None` when it died without writing one).
pub struct Observed {
    mode: TraceMode,
    report: Option<Report>,
    started: SystemTime,
}

/// After `child::run`: read the report; a program that could not be started under the helper
/// becomes the same error as without tracing.
pub fn collect(
    tracer: Option<Tracer>,
    outcome: Result<ChildOutcome>,
    argv: &[String],
) -> (Result<ChildOutcome>, Option<Observed>) {
    let Some(t) = tracer else {
        return (outcome, None);
    };
    let observed = t.finish();
    if let (Ok(_), Some(why)) = (
        &outcome,
        observed
            .report
            .as_ref()
            .and_then(|r| r.spawn_error.as_ref()),
    ) {
        let prog = argv.first().map_or("", String::as_str);
        let e = Error::other(format!("could not start `{prog}`: {why}"));
        return (Err(e), None);
    }
    (outcome, Some(observed))
}

/// What tracing adds to a step's record.
#[derive(Default)]
pub struct Traced {
    /// undeclared files read (observed edges, `declared = 0`)
    pub inputs: Vec<Io>,
    /// undeclared files written (recorded only if the step succeeds)
    pub outputs: Vec<Io>,
    /// `--trace=strict` and the step used undeclared files: why it fails
    pub strict_failure: Option<String>,
    /// why a failing step probably failed (ptrace under the tracer, tracing not set up)
    why_failed: Option<String>,
}

impl Traced {
    /// The failure message of a step that exited non-zero, with what tracing knows about why.
    pub fn explain(&self, msg: String) -> String {
        match &self.why_failed {
            Some(w) => format!("{msg}; {w}"),
            None => msg,
        }
    }
}

/// "; declaring `dir/` as an input covers them" when all the paths share a directory.
fn covering_dir(paths: &[String], what: &str) -> String {
    let parent = |p: &str| p.rsplit_once('/').map(|(d, _)| d.to_string());
    let Some(mut dir) = paths.first().and_then(|p| parent(p)) else {
        return String::new();
    };
    for p in paths {
        while !crate::pipeline::plan::within(p, &dir) {
            match parent(&dir) {
                Some(d) => dir = d,
                None => return String::new(),
            }
        }
    }
    format!("; declaring `{dir}/` as {what} covers them")
}

fn listed(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(LIST_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LIST_MAX {
        s += &format!(" and {} more", items.len() - LIST_MAX);
    }
    s
}

/// Warn that step `name` used `paths` without declaring them as `kind` (`input`, `output`): the
/// first few by name, the rest as a count and the directory that would cover them all.
fn warn_undeclared(p: &super::event::Sinks, name: &str, verb: &str, paths: &[String], kind: &str) {
    for path in paths.iter().take(LIST_MAX) {
        p.warn(&format!(
            "{name} {verb} {path}, which is not a declared {kind}; its version is recorded, add it to {kind}s to make it part of the cache key"
        ));
    }
    if paths.len() > LIST_MAX {
        let more = paths.len() - LIST_MAX;
        p.warn(&format!(
            "{name} {verb} {more} more undeclared file{} (see `mlrun show`){}",
            if more == 1 { "" } else { "s" },
            covering_dir(paths, &format!("an {kind}"))
        ));
    }
}

/// Compare what the step did with what it declares: print warnings and hints, hash the
/// undeclared files, and decide `--trace=strict`. `succeeded`: the step exited 0 (only then are
/// its outputs versions).
pub(super) async fn conclude(
    ctx: &Arc<Ctx>,
    step: &Step,
    observed: Option<Observed>,
    git_before: &GitState,
    succeeded: bool,
) -> Traced {
    let Some(observed) = observed else {
        return Traced::default();
    };
    let name = &step.name;
    let p = &ctx.events;
    let Some(report) = observed.report else {
        p.warn(&format!(
            "the tracer of `{name}` ended without a report (was it killed?); what the step read and wrote is not known"
        ));
        return Traced::default();
    };
    let mut traced = Traced::default();
    if let Some(e) = &report.setup_error {
        traced.why_failed = Some(format!("`--trace` could not trace it: {e}"));
        return traced;
    }
    traced.why_failed = warn_tracer_limits(p, name, &report);

    let c = ctx.clone();
    let s = step.clone();
    let started = observed.started;
    let f: Findings = blocking(move || {
        let git_dir = git2::Repository::discover(c.plan.root())
            .ok()
            .map(|r| r.path().to_path_buf());
        filter::analyze(&report, c.plan.root(), &s, started, git_dir.as_deref())
    })
    .await;
    warn_findings(p, step, &f, succeeded);
    if observed.mode == TraceMode::Strict && f.undeclared() {
        traced.strict_failure = Some(strict_failure(&f));
    }

    // Hash what was used without being declared. Read files are hashed now, at the end of the
    // step: hashing (or even a stat) at each open would stall the traced process; a read file
    // whose ctime is later than the step's start was reported above as possibly changed.
    let (reads, writes) = (f.reads, if succeeded { f.writes } else { Vec::new() });
    let (ins, outs) = hash_undeclared(ctx, name, reads, writes).await;
    traced.inputs = ins
        .into_iter()
        .map(|mut io| {
            io.origin = Some(origin_of(ctx, &io, git_before));
            io
        })
        .collect();
    traced.outputs = outs;
    traced
}

/// Warn of what the tracer could not see (a program using ptrace itself, another architecture,
/// paths it could not resolve). Returns why the step fails: a ptrace user cannot run traced.
fn warn_tracer_limits(p: &super::event::Sinks, name: &str, report: &Report) -> Option<String> {
    for user in &report.ptrace_users {
        p.warn(&format!(
            "{name}: `{user}` uses ptrace, which cannot work under --trace (mlrun already traces the step); set `trace = false` on step `{name}` to run it untraced"
        ));
    }
    for f in &report.foreign_arch {
        p.warn(&format!(
            "{name}: {f}, whose file accesses --trace cannot see; what is recorded may be incomplete"
        ));
    }
    if report.unresolved > 0 {
        p.warn(&format!(
            "{name}: --trace could not resolve the path of {} file operation{}",
            report.unresolved,
            if report.unresolved == 1 { "" } else { "s" }
        ));
    }
    report
        .ptrace_users
        .first()
        .map(|user| format!("`{user}` uses ptrace and cannot run under --trace"))
}

/// Warn of undeclared files used, deleted or changed meanwhile; for a step that succeeded, hint
/// at declared inputs it never opened and outputs it did not write.
fn warn_findings(p: &super::event::Sinks, step: &Step, f: &Findings, succeeded: bool) {
    let name = &step.name;
    if f.repo_writes > 0 {
        // one line for the repository, not one per file: those are git's, never outputs
        p.warn(&format!(
            "{name}: repository changed: it wrote {} under .git/ (not recorded as outputs)",
            crate::report::files(f.repo_writes as u64)
        ));
    }

    warn_undeclared(p, name, "read", &f.reads, "input");
    warn_undeclared(p, name, "wrote", &f.writes, "output");
    if !f.deletes.is_empty() {
        p.warn(&format!(
            "{name} deleted {}, which {} not a declared output",
            listed(&f.deletes),
            if f.deletes.len() == 1 { "is" } else { "are" }
        ));
    }
    for ch in &f.changed {
        p.warn(&format!(
            "{ch} changed while {name} ran (another step or process wrote it); the recorded version may not be the one it read"
        ));
    }
    if succeeded {
        for i in &f.untouched_inputs {
            p.hint(&format!(
                "{name} never opened its declared input {i} (seen by --trace); if it is not needed, removing it avoids needless reruns"
            ));
        }
        // without keep-outputs, an output it did not write is missing: the step fails
        for o in f.untouched_outputs.iter().filter(|_| step.keep_outputs) {
            p.hint(&format!(
                "{name} did not write its declared output {o} (seen by --trace); with `keep-outputs = true`, what was already there is recorded as its output"
            ));
        }
    }
}

/// Why `--trace=strict` fails a step that used undeclared files: what it read, wrote, deleted.
fn strict_failure(f: &Findings) -> String {
    let mut parts = Vec::new();
    if !f.reads.is_empty() {
        parts.push(format!("read {}", listed(&f.reads)));
    }
    if !f.writes.is_empty() {
        parts.push(format!("wrote {}", listed(&f.writes)));
    }
    if !f.deletes.is_empty() {
        parts.push(format!("deleted {}", listed(&f.deletes)));
    }
    format!(
        "strict tracing: it used undeclared files: {}; declare them (inputs, outputs) or match them with `trace-ignore`",
        parts.join("; ")
    )
}

/// Hash the undeclared files read and written (off the runtime), warning of those that cannot
/// be hashed: the observed inputs and outputs, marked undeclared.
async fn hash_undeclared(
    ctx: &Arc<Ctx>,
    name: &str,
    reads: Vec<String>,
    writes: Vec<String>,
) -> (Vec<Io>, Vec<Io>) {
    let c = ctx.clone();
    let (ins, outs, failed) = blocking(move || {
        let mut failed = Vec::new();
        let mut hash_all = |list: Vec<String>| -> Vec<Io> {
            list.into_iter()
                .filter_map(
                    |path| match hash::fingerprint(&c.plan.root().join(&path), &c.cache) {
                        Ok(fp) => {
                            let mut io = Io::new(path, fp);
                            io.declared = false;
                            Some(io)
                        }
                        Err(e) => {
                            failed.push(format!("{path}: {}", e.message));
                            None
                        }
                    },
                )
                .collect()
        };
        let ins = hash_all(reads);
        let outs = hash_all(writes);
        (ins, outs, failed)
    })
    .await;
    for e in failed {
        ctx.events
            .warn(&format!("{name}: cannot hash the observed file {e}"));
    }
    (ins, outs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_undeclared_files_suggest_their_common_directory() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            covering_dir(
                &v(&["data/a/1.csv", "data/a/2.csv", "data/b/3.csv"]),
                "an input"
            ),
            "; declaring `data/` as an input covers them"
        );
        assert_eq!(
            covering_dir(&v(&["data/1.csv", "other.csv"]), "an input"),
            ""
        );
        assert_eq!(covering_dir(&v(&["x/1", "xy/2"]), "an output"), "");
    }
}

//! Validation: from the raw document to a `Plan` the executor can trust. Every check that can
//! fail before anything runs happens here, and all findings are reported at once, each pointing
//! at its place in pipeline.toml. Nothing downstream re-checks what a `Plan` guarantees:
//! - every step has a non-empty command with all `{params.x}` placeholders substituted;
//! - paths are normalised and relative to the project root (or absolute when `allow-outside`);
//! - no two steps declare the same or overlapping outputs;
//! - every input exists on disk or is produced by a step;
//! - the dependency graph is acyclic and `steps` is in a topological order.
//!
//! This file holds the `Plan` type, its steps and accessors, and the entry points (`load`,
//! `from_source`, `revalidate`); the checks live in `check` (the walk over the document),
//! `keys` (single keys), `paths` (declared paths) and `graph` (outputs, dependencies, order).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::diag::Diagnostic;
use super::params::Params;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Cmd {
    /// run as `sh -c STRING`
    Shell(String),
    /// run directly
    Argv(Vec<String>),
}

impl Cmd {
    /// The argv actually executed.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Cmd::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
            Cmd::Argv(a) => a.clone(),
        }
    }
    /// What a person reads: the shell string, or the argv joined with spaces.
    pub fn display(&self) -> String {
        match self {
            Cmd::Shell(s) => s.clone(),
            Cmd::Argv(a) => a.join(" "),
        }
    }
    /// Words that name programs: argv[0], or in a shell string the first word of each command
    /// of a pipeline or list. Used to detect interpreters whose version should be recorded.
    pub fn programs(&self) -> Vec<String> {
        match self {
            Cmd::Argv(a) => a.first().cloned().into_iter().collect(),
            Cmd::Shell(s) => s
                .split(['|', ';', '&', '\n', '(', ')'])
                .filter_map(|part| {
                    part.split_whitespace()
                        .find(|w| !w.contains('=') && !matches!(*w, "exec" | "env" | "time"))
                        .map(str::to_string)
                })
                .collect(),
        }
    }
}

/// How a step's file accesses are traced (`--trace`, `trace = ...`; see `exec::trace`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum TraceMode {
    Off,
    /// record what the step really read and wrote; warn about undeclared files
    On,
    /// as `On`, and fail the step on any undeclared read or write inside the project
    Strict,
}

impl TraceMode {
    /// The mode a step runs with. `--trace=off` turns tracing off everywhere; a step's own
    /// `trace = false` opts it out even under `--trace` (a step that runs a debugger or strace
    /// cannot be traced); otherwise the strongest of the command line and the step's (or else
    /// the pipeline's) setting.
    pub fn resolve(
        cli: Option<TraceMode>,
        pipeline: Option<TraceMode>,
        step: Option<TraceMode>,
    ) -> TraceMode {
        if cli == Some(TraceMode::Off) || step == Some(TraceMode::Off) {
            return TraceMode::Off;
        }
        let file = step.or(pipeline).unwrap_or(TraceMode::Off);
        cli.map_or(file, |c| c.max(file))
    }
}

/// `trace-ignore` pattern → globs over project-relative paths, gitignore-like: a pattern without
/// `/` matches a name at any depth, one with `/` is anchored at the project directory, and a
/// match on a directory covers everything inside it.
pub fn trace_ignore_globs(pattern: &str) -> Vec<String> {
    let p = pattern.trim_end_matches('/');
    let p = p.strip_prefix("./").unwrap_or(p);
    if p.contains('/') {
        let p = p.trim_start_matches('/');
        vec![p.to_string(), format!("{p}/**")]
    } else {
        vec![format!("**/{p}"), format!("**/{p}/**")]
    }
}

/// A declared input or output path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PathDecl {
    /// normalised, relative to the project root, without a trailing slash
    pub path: String,
    /// declared with a trailing slash: must be a directory
    pub dir: bool,
    /// keep this version's bytes in the object store (outputs only; `store = false` opts out)
    pub store: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    /// the command with params substituted
    pub cmd: Cmd,
    /// the command as written, before substitution
    pub template: Cmd,
    pub inputs: Vec<PathDecl>,
    pub outputs: Vec<PathDecl>,
    /// the params this step depends on (declared, plus those its command substitutes)
    pub params: Params,
    pub metrics: Vec<String>,
    /// `[env]` merged with the step's own `env`
    pub env: BTreeMap<String, String>,
    /// working directory relative to the root ("" is the root)
    pub cwd: String,
    /// indices into `Plan::steps` of the steps this one waits for
    pub deps: Vec<usize>,
    /// stop the step (SIGTERM to its group, SIGKILL after the grace period) after this long
    #[serde(with = "opt_duration_ms", default)]
    pub timeout: Option<Duration>,
    /// how many times to run the step again after it fails or times out
    pub retries: u32,
    #[serde(with = "duration_ms", default)]
    pub retry_delay: Duration,
    /// the step's own `trace` setting (the pipeline's is `Plan::trace`)
    #[serde(default)]
    pub trace: Option<TraceMode>,
    /// `trace-ignore` patterns: the pipeline's, then the step's
    #[serde(default)]
    pub trace_ignore: Vec<String>,
    /// tracing also ignores the default list of tool state (`trace-ignore-defaults`, the
    /// step's over the pipeline's; default true)
    #[serde(default = "yes")]
    pub trace_ignore_defaults: bool,
    /// `keep-outputs = true`: the declared outputs are left in place while the step runs (it
    /// updates them), instead of being moved aside and required to be written anew
    #[serde(default)]
    pub keep_outputs: bool,
    /// `model`: each new version of this output is registered under this name when the step
    /// succeeds
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelDecl>,
    /// where it runs: locally, or as a Slurm job (`executor`, the step's over the pipeline's,
    /// `--executor` over both)
    #[serde(default)]
    pub executor: Executor,
    /// what a Slurm job asks for (the step's keys over the pipeline's); unused locally
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
}

fn yes() -> bool {
    true
}

/// A step's `model` key, checked: a valid name and one of the step's declared outputs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelDecl {
    pub name: String,
    /// the declared output (`PathDecl::path`) whose versions are registered
    pub output: String,
}

mod duration_ms {
    use serde::Deserialize;
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<std::time::Duration, D::Error> {
        Ok(std::time::Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_duration_ms {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        use serde::Deserialize;
        Ok(Option::<u64>::deserialize(d)?.map(std::time::Duration::from_millis))
    }
}

/// A checked pipeline: the steps in a topological order with their resolved paths, params and
/// commands. Only validation builds one (`load`, `from_source`, `revalidate`); the fields are
/// private, so no caller can change what was checked. A few methods derive another plan from it
/// (fewer steps, another root, values rewritten by `Rewrite`), each keeping what validation
/// established: the order, the dependency indices and the file within the root.
///
/// Serialized (never deserialized) as the `runs.plan` JSON that `show --json` and old readers
/// see; replay checks the recorded pipeline text again instead of trusting that JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    name: String,
    /// absolute path of pipeline.toml
    file: PathBuf,
    /// absolute project directory (pipeline.toml's directory)
    root: PathBuf,
    #[serde(skip)]
    source: String,
    params: Params,
    env: BTreeMap<String, String>,
    redact: Vec<String>,
    keep: Vec<String>,
    /// `[pipeline] trace`
    trace: Option<TraceMode>,
    /// `[pipeline] lockfiles`: globs of more lock/requirements files to record, relative to
    /// the root
    lockfiles: Vec<String>,
    /// in a topological order
    steps: Vec<Step>,
    /// rendered warnings to show the user before running
    #[serde(skip)]
    warnings: Vec<String>,
}

impl Plan {
    /// `[pipeline] name` (or the directory's name)
    pub fn name(&self) -> &str {
        &self.name
    }
    /// absolute path of pipeline.toml
    pub fn file(&self) -> &Path {
        &self.file
    }
    /// absolute project directory (pipeline.toml's directory)
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// the pipeline text the plan was checked from
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// `[env]`: variables for every step
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }
    /// `[pipeline] redact`: more names of secret params and variables (globs)
    pub fn redact(&self) -> &[String] {
        &self.redact
    }
    /// `[pipeline] keep`: names that are never secret (globs)
    pub fn keep(&self) -> &[String] {
        &self.keep
    }
    /// `[pipeline] trace`
    pub fn trace(&self) -> Option<TraceMode> {
        self.trace
    }
    /// `[pipeline] lockfiles`: globs relative to the root
    pub fn lockfiles(&self) -> &[String] {
        &self.lockfiles
    }
    /// in a topological order; `Step::deps` index into this slice
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
    /// rendered warnings to show the user before running
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The same plan for a copy of the project at `root` (a replay's scratch tree): the root
    /// moves and the pipeline file with it, under the same name; the declared paths are relative
    /// to the root, so they follow.
    pub fn relocated(mut self, root: &Path) -> Plan {
        let name = self
            .file
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "pipeline.toml".into());
        self.file = root.join(name);
        self.root = root.to_path_buf();
        self
    }

    /// The same plan with every step run by `executor` (`--executor`): resources stay as
    /// declared (a Slurm job gets them; a local run does not use them).
    pub fn with_executor(mut self, executor: Option<Executor>) -> Plan {
        if let Some(e) = executor {
            for s in &mut self.steps {
                s.executor = e;
            }
        }
        self
    }

    /// The same plan with values rewritten by `r` (secrets replaced by markers, markers by
    /// secrets): first the params and env of the pipeline and of every step, then every step's
    /// command. Names, paths, dependencies and order stay as validated.
    pub fn rewritten(&self, r: &mut impl Rewrite) -> Plan {
        let mut p = self.clone();
        r.values(None, &mut p.params, &mut p.env);
        for s in &mut p.steps {
            r.values(Some(&s.name), &mut s.params, &mut s.env);
        }
        for s in &mut p.steps {
            r.cmd(&mut s.cmd);
            r.cmd(&mut s.template);
        }
        p
    }

    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// Only `name` and the steps it (transitively) depends on, in the same order.
    pub fn with_upstream_of(self, name: &str) -> Option<Plan> {
        let target = self.step_index(name)?;
        let mut keep = vec![false; self.steps.len()];
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !keep[i] {
                keep[i] = true;
                todo.extend(self.steps[i].deps.iter().copied());
            }
        }
        Some(self.keeping(&keep))
    }

    /// The steps `mlrun run TARGET...` runs: `targets` (indices into `steps`), with
    /// `downstream` every step that depends on one of them, and everything those depend on,
    /// in the same order. The steps a selected step waits for are all kept, so the order and
    /// dependencies stay as validated.
    pub fn selecting(self, targets: &[usize], downstream: bool) -> Plan {
        let keep = self.selection(targets, downstream);
        self.keeping(&keep)
    }

    /// Which steps `selecting` keeps, by index.
    pub fn selection(&self, targets: &[usize], downstream: bool) -> Vec<bool> {
        let n = self.steps.len();
        let mut wanted = vec![false; n];
        for &t in targets {
            wanted[t] = true;
        }
        if downstream {
            // dependants come after their dependencies in a topological order
            for i in 0..n {
                if !wanted[i] && self.steps[i].deps.iter().any(|&d| wanted[d]) {
                    wanted[i] = true;
                }
            }
        }
        let mut keep = vec![false; n];
        let mut todo: Vec<usize> = (0..n).filter(|&i| wanted[i]).collect();
        while let Some(i) = todo.pop() {
            if !keep[i] {
                keep[i] = true;
                todo.extend(self.steps[i].deps.iter().copied());
            }
        }
        keep
    }

    /// Only the steps named in `names`, in the same order; their dependencies on the other
    /// steps are dropped (a replay's second run of some steps: the others' outputs are already
    /// in its tree).
    pub fn only(self, names: &std::collections::BTreeSet<String>) -> Plan {
        let keep: Vec<bool> = self.steps.iter().map(|s| names.contains(&s.name)).collect();
        self.keeping(&keep)
    }

    /// The steps whose `keep` is true, with their dependencies renumbered (a dependency on a
    /// step not kept is dropped).
    fn keeping(mut self, keep: &[bool]) -> Plan {
        let mut new_index = vec![usize::MAX; self.steps.len()];
        let mut n = 0;
        for (i, k) in keep.iter().enumerate() {
            if *k {
                new_index[i] = n;
                n += 1;
            }
        }
        let steps = std::mem::take(&mut self.steps);
        self.steps = steps
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep[*i])
            .map(|(_, mut s)| {
                s.deps = s
                    .deps
                    .iter()
                    .map(|d| new_index[*d])
                    .filter(|d| *d != usize::MAX)
                    .collect();
                s
            })
            .collect();
        self
    }
}

/// A rewriting of a plan's values (`Plan::rewritten`).
pub trait Rewrite {
    /// params and env, of the pipeline (`step` None) and then of each step
    fn values(
        &mut self,
        step: Option<&str>,
        params: &mut Params,
        env: &mut BTreeMap<String, String>,
    );
    /// a step's command and its template, after every `values`
    fn cmd(&mut self, cmd: &mut Cmd);
}

pub struct LoadOptions<'a> {
    pub file: &'a Path,
    /// `--param key=value` arguments, in order
    pub overrides: &'a [String],
    /// an input that no step makes and that is not on disk is no error (`status` reports it
    /// on its step, and every other step as usual)
    pub missing_inputs_ok: bool,
}

/// Read, parse and validate a pipeline file.
pub fn load(opts: &LoadOptions<'_>) -> Result<Plan> {
    let file = std::path::absolute(opts.file).map_err(|e| {
        Error::invalid(format!("bad pipeline path `{}`", opts.file.display())).cause(e)
    })?;
    // `../pipeline.toml` or a symlinked directory: the project root is the real directory
    let file = match (file.parent().map(Path::canonicalize), file.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => file,
    };
    let bytes = std::fs::read(&file).map_err(|e| {
        let not_found = e.kind() == std::io::ErrorKind::NotFound;
        let mut err = Error::invalid(format!("cannot read pipeline file `{}`", opts.file.display())).cause(e);
        if not_found {
            err = err.hint("run mlrun in the directory holding pipeline.toml, or pass its path: `mlrun path/to/pipeline.toml`");
        }
        err
    })?;
    if file.is_dir() {
        return Err(Error::invalid(format!(
            "`{}` is a directory, not a pipeline file",
            opts.file.display()
        )));
    }
    let source = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let d = Diagnostic::error("pipeline file is not valid UTF-8", Some(valid..valid + 1))
                .label("invalid byte here")
                .hint("save the file as UTF-8");
            return Err(Error::rendered(d.render(opts.file, &text)));
        }
    };
    check(
        source,
        file,
        opts.file,
        opts.overrides,
        None,
        opts.missing_inputs_ok,
    )
}

/// Check pipeline text as if it were the file at `file` (absolute; its directory is the project
/// root), naming it `shown` in messages.
pub fn from_source(
    source: String,
    file: PathBuf,
    shown: &Path,
    overrides: &[String],
) -> Result<Plan> {
    check(source, file, shown, overrides, None, false)
}

/// Check a recorded run's pipeline again, for `replay`: its text as recorded (secrets masked)
/// at its recorded path, with exactly the params the run had (after its params-file and
/// `--param`s; the file itself is not read again). The project's files are not consulted (no
/// input must exist, no cwd, no link is followed): the tree they describe is the one the replay
/// rebuilds from the record, and the replay checks every recorded path beneath it. Warnings are
/// dropped (the run showed them).
pub fn revalidate(source: String, file: PathBuf, params: &Params) -> Result<Plan> {
    let shown = PathBuf::from(file.file_name().unwrap_or(file.as_os_str()));
    let mut plan = check(source, file, &shown, &[], Some(params), false)?;
    plan.warnings.clear();
    Ok(plan)
}

mod check;
mod exec;
mod graph;
mod index;
mod keys;
mod paths;

use check::check;
pub use exec::{Executor, Resources};
pub use paths::within;

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_STEPS: &str = "[params]\nlr = 0.1\n[steps.a]\ncmd = \"prep {params.lr}\"\ninputs = [\"raw.csv\"]\noutputs = [\"mid/\"]\ncwd = \"work\"\n[steps.b]\ncmd = \"train\"\ninputs = [\"mid/\"]\noutputs = [\"model.bin\"]\n";

    #[test]
    fn a_recorded_pipeline_is_checked_with_its_params_and_without_its_files() {
        // neither raw.csv nor work/ exists anywhere: the record stands for them
        let file = PathBuf::from("/nonexistent-project/pipeline.toml");
        let params = Params::from([("lr".to_string(), serde_json::json!(0.5))]);
        let plan = revalidate(TWO_STEPS.to_string(), file.clone(), &params).unwrap();
        assert_eq!(plan.file(), file);
        assert_eq!(plan.root(), Path::new("/nonexistent-project"));
        assert_eq!(plan.params(), &params);
        assert_eq!(plan.steps()[0].cmd.display(), "prep 0.5");
        assert_eq!(plan.steps()[1].deps, vec![0]);
        assert!(plan.warnings().is_empty());
        // what fails to check fails the same way
        let bad = TWO_STEPS.replace("[steps.b]", "[steps.b]\nafter = [\"b\"]");
        let e = revalidate(bad, file, &params).unwrap_err();
        assert!(e.to_string().contains("cannot run after itself"), "{e}");
    }

    #[test]
    fn relocating_moves_the_root_and_the_file_and_keeps_the_rest() {
        let file = PathBuf::from("/p/ml.toml");
        let params = Params::from([("lr".to_string(), serde_json::json!(0.1))]);
        let plan = revalidate(TWO_STEPS.to_string(), file, &params).unwrap();
        let moved = plan.clone().relocated(Path::new("/tmp/scratch/p"));
        assert_eq!(moved.root(), Path::new("/tmp/scratch/p"));
        assert_eq!(moved.file(), Path::new("/tmp/scratch/p/ml.toml"));
        assert_eq!(moved.source(), plan.source());
        assert_eq!(moved.steps().len(), 2);
        assert_eq!(moved.steps()[1].inputs, plan.steps()[1].inputs);
    }

    #[test]
    fn trace_mode_precedence() {
        use TraceMode::*;
        assert_eq!(TraceMode::resolve(None, None, None), Off);
        assert_eq!(TraceMode::resolve(None, Some(On), None), On);
        assert_eq!(TraceMode::resolve(None, Some(Strict), Some(On)), On);
        assert_eq!(TraceMode::resolve(Some(On), None, None), On);
        assert_eq!(TraceMode::resolve(Some(On), Some(Strict), None), Strict);
        assert_eq!(TraceMode::resolve(Some(Strict), Some(Off), None), Strict);
        // a step's explicit opt-out wins over the command line; --trace=off over everything
        assert_eq!(TraceMode::resolve(Some(Strict), None, Some(Off)), Off);
        assert_eq!(
            TraceMode::resolve(Some(Off), Some(Strict), Some(Strict)),
            Off
        );
    }

    #[test]
    fn trace_ignore_patterns_are_gitignore_like() {
        assert_eq!(trace_ignore_globs("*.log"), ["**/*.log", "**/*.log/**"]);
        assert_eq!(
            trace_ignore_globs("data/cache/"),
            ["data/cache", "data/cache/**"]
        );
        assert_eq!(
            trace_ignore_globs("./out/*.tmp"),
            ["out/*.tmp", "out/*.tmp/**"]
        );
    }

    #[test]
    fn programs_found_in_shell_strings() {
        let c = Cmd::Shell("FOO=1 python3 a.py | gzip > x && Rscript b.R".into());
        assert_eq!(c.programs(), ["python3", "gzip", "Rscript"]);
    }
}

//! Validation: from the raw document to a `Plan` the executor can trust. Every check that can
//! fail before anything runs happens here, and all findings are reported at once, each pointing
//! at its place in pipeline.toml. Nothing downstream re-checks what a `Plan` guarantees:
//! - every step has a non-empty command with all `{params.x}` placeholders substituted;
//! - paths are normalised and relative to the project root (or absolute when `allow-outside`);
//! - no two steps declare the same or overlapping outputs;
//! - every input exists on disk or is produced by a step;
//! - the dependency graph is acyclic and `steps` is in a topological order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::diag::{Diagnostic, Severity, did_you_mean, render_all};
use super::params::{self, Params};
use super::raw::{self, RawCmd, RawPipeline, RawTrace, Sp};
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
    pub fn with_upstream_of(mut self, name: &str) -> Option<Plan> {
        let target = self.step_index(name)?;
        let mut keep = vec![false; self.steps.len()];
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !keep[i] {
                keep[i] = true;
                todo.extend(self.steps[i].deps.iter().copied());
            }
        }
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
                s.deps = s.deps.iter().map(|d| new_index[*d]).collect();
                s
            })
            .collect();
        Some(self)
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
    from_source(source, file, opts.file, opts.overrides)
}

/// Check pipeline text as if it were the file at `file` (absolute; its directory is the project
/// root), naming it `shown` in messages.
pub fn from_source(
    source: String,
    file: PathBuf,
    shown: &Path,
    overrides: &[String],
) -> Result<Plan> {
    check(source, file, shown, overrides, None)
}

/// Check a recorded run's pipeline again, for `replay`: its text as recorded (secrets masked)
/// at its recorded path, with exactly the params the run had (after its params-file and
/// `--param`s; the file itself is not read again). The project's files are not consulted (no
/// input must exist, no cwd, no link is followed): the tree they describe is the one the replay
/// rebuilds from the record, and the replay checks every recorded path beneath it. Warnings are
/// dropped (the run showed them).
pub fn revalidate(source: String, file: PathBuf, params: &Params) -> Result<Plan> {
    let shown = PathBuf::from(file.file_name().unwrap_or(file.as_os_str()));
    let mut plan = check(source, file, &shown, &[], Some(params))?;
    plan.warnings.clear();
    Ok(plan)
}

fn check(
    source: String,
    file: PathBuf,
    shown: &Path,
    overrides: &[String],
    recorded: Option<&Params>,
) -> Result<Plan> {
    let opts = LoadOptions {
        file: shown,
        overrides,
    };
    let root = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let (raw, mut diags) = raw::parse(&source);
    let plan = if diags.iter().any(|d| d.severity == Severity::Error) {
        None
    } else {
        Checker {
            root: &root,
            source: &source,
            diags: &mut diags,
            escapes: HashMap::new(),
            recorded,
        }
        .plan(raw, opts.overrides)
    };
    let has_errors = diags.iter().any(|d| d.severity == Severity::Error);
    match plan {
        Some(mut plan) if !has_errors => {
            plan.file = file;
            plan.source = source;
            plan.warnings = diags
                .iter()
                .map(|d| d.render(opts.file, &plan.source))
                .collect();
            Ok(plan)
        }
        _ => {
            let n = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            let mut text = render_all(&diags, opts.file, &source);
            if n > 1 {
                text += &format!(
                    "\nerror: {n} problems in `{}`; nothing was run\n",
                    opts.file.display()
                );
            }
            Err(Error::rendered(text))
        }
    }
}

struct Checker<'a> {
    root: &'a Path,
    source: &'a str,
    diags: &'a mut Vec<Diagnostic>,
    /// directory (relative) → why it leads outside the project through a symbolic link
    escapes: HashMap<String, Option<String>>,
    /// a recorded run's params (`revalidate`): used as they are, and the file system is not
    /// consulted
    recorded: Option<&'a Params>,
}

/// Lexically normalise a declared path. Returns the path and whether it stays inside the root.
fn normalize(root: &Path, raw: &str) -> std::result::Result<(String, bool), &'static str> {
    if raw.trim().is_empty() {
        return Err("is empty");
    }
    if raw.contains('\0') {
        return Err("contains a NUL byte");
    }
    let p = Path::new(raw);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    match out.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => Err("is the project directory itself"),
        Ok(rel) => Ok((rel.to_string_lossy().into_owned(), true)),
        Err(_) => Ok((out.to_string_lossy().into_owned(), false)),
    }
}

/// Declared outputs by path, to find the ones overlapping a path (the path itself, a directory
/// holding it, or anything inside it) without comparing every pair of paths: validating a
/// pipeline of n steps stays O(n log n) rather than O(n²).
struct OutputIndex<'o> {
    /// path → indices into the outputs list
    by_path: BTreeMap<&'o str, Vec<usize>>,
}

impl<'o> OutputIndex<'o> {
    fn new(outputs: &'o [(usize, PathDecl, std::ops::Range<usize>)]) -> Self {
        let mut by_path: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (k, (_, o, _)) in outputs.iter().enumerate() {
            by_path.entry(o.path.as_str()).or_default().push(k);
        }
        OutputIndex { by_path }
    }

    /// Indices of the outputs `o` with `within(path, o)` or `within(o, path)`, ascending.
    fn overlapping(&self, path: &str) -> Vec<usize> {
        let mut out = Vec::new();
        // `path` itself and the directories holding it: one lookup per `/`
        for (i, b) in path.bytes().enumerate() {
            if b == b'/'
                && let Some(v) = self.by_path.get(&path[..i])
            {
                out.extend(v);
            }
        }
        if let Some(v) = self.by_path.get(path) {
            out.extend(v);
        }
        // inside it: the keys from "path/" up to "path0" (`0` follows `/` in byte order)
        let (lo, hi) = (format!("{path}/"), format!("{path}0"));
        for (_, v) in self.by_path.range::<str, _>((
            std::ops::Bound::Included(lo.as_str()),
            std::ops::Bound::Excluded(hi.as_str()),
        )) {
            out.extend(v);
        }
        out.sort_unstable();
        out
    }
}

/// `a` equals `b` or lies inside it.
pub fn within(a: &str, b: &str) -> bool {
    a == b || (a.len() > b.len() && a.starts_with(b) && a.as_bytes()[b.len()] == b'/')
}

impl Checker<'_> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn path(&mut self, what: &str, raw: &Sp<String>, allow_outside: bool) -> Option<PathDecl> {
        let dir = raw.value.ends_with('/');
        match normalize(
            self.root,
            raw.value.trim_end_matches('/').trim_end_matches("/."),
        ) {
            Ok((path, inside)) => {
                let through_link = if inside {
                    self.leads_outside(&path)
                } else {
                    None
                };
                if !inside || through_link.is_some() {
                    let msg = match &through_link {
                        Some(why) => format!(
                            "{what} `{}` is outside the project directory: {why}",
                            raw.value
                        ),
                        None => format!("{what} `{}` is outside the project directory", raw.value),
                    };
                    if allow_outside {
                        self.err(
                            Diagnostic::warning(msg, Some(raw.span.clone()))
                                .label("outside the project: not portable to another checkout"),
                        );
                    } else {
                        let hint = if through_link.is_some() {
                            "mlrun restores and replays only beneath the project directory; make the link a directory inside it, or set `allow-outside = true` in [pipeline]"
                        } else {
                            "use a path relative to the pipeline file's directory, or set `allow-outside = true` in [pipeline]"
                        };
                        self.err(
                            Diagnostic::error(msg, Some(raw.span.clone()))
                                .label("outside the project")
                                .hint(hint),
                        );
                        return None;
                    }
                }
                Some(PathDecl {
                    path,
                    dir,
                    store: true,
                })
            }
            Err(why) => {
                self.err(Diagnostic::error(
                    format!("{what} `{}` {why}", raw.value),
                    Some(raw.span.clone()),
                ));
                None
            }
        }
    }

    /// Why `rel` (normalised, inside the project by its text) really leads outside it through
    /// a symbolic link, if it does: the link and its target. Each directory is checked once.
    fn leads_outside(&mut self, rel: &str) -> Option<String> {
        if self.recorded.is_some() {
            return None;
        }
        let (parent, _) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir_verdict = if parent.is_empty() {
            None
        } else if let Some(v) = self.escapes.get(parent) {
            v.clone()
        } else {
            let v = self.escape_reason(parent);
            self.escapes.insert(parent.to_string(), v.clone());
            v
        };
        if dir_verdict.is_some() {
            return dir_verdict;
        }
        // the last name: only a link needs the whole walk
        let is_link = std::fs::symlink_metadata(self.root.join(rel))
            .is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            self.escape_reason(rel)
        } else {
            None
        }
    }

    fn escape_reason(&self, rel: &str) -> Option<String> {
        match crate::beneath::stays_beneath(self.root, Path::new(rel)) {
            Ok(()) => None,
            Err(crate::beneath::Problem::Link { link, target }) => Some(format!(
                "`{}` is a symbolic link to `{}`",
                link.strip_prefix(self.root).unwrap_or(&link).display(),
                target.display()
            )),
            Err(p) if p.is_escape() => Some(p.describe()),
            // unreadable, a loop: not an escape; running the step will say what is wrong
            Err(_) => None,
        }
    }

    /// Span of `needle` inside the text at `span`, or `span` itself.
    fn sub_span(&self, span: &std::ops::Range<usize>, needle: &str) -> std::ops::Range<usize> {
        self.source
            .get(span.clone())
            .and_then(|s| s.find(needle))
            .map(|i| span.start + i..span.start + i + needle.len())
            .unwrap_or_else(|| span.clone())
    }

    fn plan(mut self, raw: RawPipeline, overrides: &[String]) -> Option<Plan> {
        let allow_outside = raw.allow_outside;
        let params = self.params(&raw, overrides)?;

        if raw.steps.is_empty() {
            self.err(
                Diagnostic::error("the pipeline has no steps", None)
                    .hint("declare one with\n  [steps.train]\n  cmd = \"python train.py\""),
            );
            return None;
        }

        let pipeline_trace = raw
            .trace
            .as_ref()
            .and_then(|t| self.trace_mode("pipeline", t));
        let pipeline_ignore = self.trace_ignore("pipeline", &raw.trace_ignore);
        let lockfiles = self.lockfiles(&raw.lockfiles);

        let mut env = BTreeMap::new();
        for (k, v) in &raw.env {
            if self.env_entry("env", k, v) {
                env.insert(k.value.clone(), v.value.clone());
            }
        }

        let names: Vec<&str> = raw.steps.iter().map(|s| s.name.value.as_str()).collect();
        let position: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i))
            .rev()
            .collect();
        let mut steps = Vec::new();
        // (step index, declared output, span) for overlap checks
        let mut outputs: Vec<(usize, PathDecl, std::ops::Range<usize>)> = Vec::new();
        let mut after: Vec<Vec<usize>> = Vec::new();
        // model name → the step that registers it
        let mut model_names: HashMap<String, String> = HashMap::new();
        for (i, rs) in raw.steps.iter().enumerate() {
            let name = &rs.name.value;
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                self.err(
                    Diagnostic::error(
                        format!("step name `{name}` is not allowed"),
                        Some(rs.name.span.clone()),
                    )
                    .hint("use letters, digits, `_`, `-` and `.`"),
                );
            }
            let cmd = match &rs.cmd {
                None => {
                    self.err(
                        Diagnostic::error(
                            format!("step `{name}` has no `cmd`"),
                            Some(rs.name.span.clone()),
                        )
                        .label("this step")
                        .hint(
                            "add `cmd = \"...\"` (run with sh -c) or `cmd = [\"prog\", \"arg\"]`",
                        ),
                    );
                    None
                }
                Some(c) => self.cmd(name, c, &params),
            };
            let mut step_params = Params::new();
            for p in &rs.params {
                self.step_param(name, p, &params, &mut step_params);
            }
            if let Some((_, _, used)) = &cmd {
                for k in used {
                    if let Some(v) = params.get(k) {
                        step_params.insert(k.clone(), v.clone());
                    }
                }
            }
            let inputs: Vec<PathDecl> = rs
                .inputs
                .iter()
                .filter_map(|p| self.path("input", p, allow_outside))
                .collect();
            let mut outs = Vec::new();
            for (p, store) in &rs.outputs {
                if let Some(mut d) = self.path("output", p, allow_outside) {
                    d.store = *store;
                    outputs.push((i, d.clone(), p.span.clone()));
                    outs.push(d);
                }
            }
            let metrics: Vec<String> = rs
                .metrics
                .iter()
                .filter_map(|p| self.path("metrics file", p, allow_outside).map(|d| d.path))
                .collect();
            let mut step_env = env.clone();
            for (k, v) in &rs.env {
                if self.env_entry(&format!("steps.{name}.env"), k, v) {
                    step_env.insert(k.value.clone(), v.value.clone());
                }
            }
            let cwd = match &rs.cwd {
                None => String::new(),
                Some(c) if c.value.trim_matches('/') == "." || c.value.is_empty() => String::new(),
                Some(c) => self
                    .path("cwd", c, allow_outside)
                    .map(|d| d.path)
                    .unwrap_or_default(),
            };
            let timeout = rs
                .timeout
                .as_ref()
                .and_then(|t| self.duration(&format!("steps.{name}.timeout"), t, false));
            let retry_delay = rs
                .retry_delay
                .as_ref()
                .and_then(|t| self.duration(&format!("steps.{name}.retry-delay"), t, true))
                .unwrap_or_default();
            let retries = match &rs.retries {
                None => 0,
                Some(r) if (0..=100).contains(&r.value) => r.value as u32,
                Some(r) => {
                    self.err(Diagnostic::error(
                        format!("`steps.{name}.retries` must be between 0 and 100"),
                        Some(r.span.clone()),
                    ));
                    0
                }
            };
            let mut deps_after = Vec::new();
            for a in &rs.after {
                match position.get(a.value.as_str()).copied() {
                    Some(j) if j == i => self.err(Diagnostic::error(
                        format!("step `{name}` cannot run after itself"),
                        Some(a.span.clone()),
                    )),
                    Some(j) => deps_after.push(j),
                    None => {
                        let mut d = Diagnostic::error(
                            format!(
                                "step `{name}` runs after `{}`, which does not exist",
                                a.value
                            ),
                            Some(a.span.clone()),
                        )
                        .label("no such step");
                        d = match did_you_mean(&a.value, names.iter().copied()) {
                            Some(s) => d.hint(format!("did you mean `{s}`?")),
                            None => d.hint(format!("steps are: {}", names.join(", "))),
                        };
                        self.err(d);
                    }
                }
            }
            after.push(deps_after);
            let trace = rs
                .trace
                .as_ref()
                .and_then(|t| self.trace_mode(&format!("steps.{name}"), t));
            let mut trace_ignore = pipeline_ignore.clone();
            trace_ignore.extend(self.trace_ignore(&format!("steps.{name}"), &rs.trace_ignore));
            let model = rs
                .model
                .as_ref()
                .and_then(|m| self.model(name, m, &outs, &mut model_names));
            steps.push(Step {
                name: name.clone(),
                template: cmd
                    .as_ref()
                    .map(|(_, t, _)| t.clone())
                    .unwrap_or(Cmd::Argv(Vec::new())),
                cmd: cmd.map(|(c, _, _)| c).unwrap_or(Cmd::Argv(Vec::new())),
                inputs,
                outputs: outs,
                params: step_params,
                metrics,
                env: step_env,
                cwd,
                deps: Vec::new(),
                timeout,
                retries,
                retry_delay,
                trace,
                trace_ignore,
                trace_ignore_defaults: rs
                    .trace_ignore_defaults
                    .or(raw.trace_ignore_defaults)
                    .unwrap_or(true),
                keep_outputs: rs.keep_outputs,
                model,
            });
        }

        let index = OutputIndex::new(&outputs);
        self.check_outputs(&raw, &outputs, &index);
        let deps = self.dependencies(&raw, &steps, &outputs, &index, &after);
        for (s, d) in steps.iter_mut().zip(deps) {
            s.deps = d;
        }
        // cwd must exist or be made by a step
        for (rs, s) in raw.steps.iter().zip(&steps) {
            if let Some(c) = &rs.cwd
                && !s.cwd.is_empty()
                && self.recorded.is_none()
                && !self.root.join(&s.cwd).is_dir()
                && !index
                    .overlapping(&s.cwd)
                    .into_iter()
                    .any(|k| within(&s.cwd, &outputs[k].1.path))
            {
                self.err(Diagnostic::error(
                    format!("cwd `{}` of step `{}` is not a directory", c.value, s.name),
                    Some(c.span.clone()),
                ));
            }
        }
        let order = self.topo_order(&raw, &steps)?;

        // Reorder steps topologically and remap dependency indices.
        let mut new_index = vec![0; steps.len()];
        for (pos, &old) in order.iter().enumerate() {
            new_index[old] = pos;
        }
        let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
        let steps: Vec<Step> = order
            .iter()
            .map(|&old| {
                let mut s = slots[old].take().expect("each index once");
                s.deps = s.deps.iter().map(|d| new_index[*d]).collect();
                s.deps.sort_unstable();
                s
            })
            .collect();

        let name = raw
            .name
            .as_ref()
            .map(|n| n.value.clone())
            .or_else(|| {
                self.root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "pipeline".into());
        Some(Plan {
            name,
            file: PathBuf::new(),
            root: self.root.to_path_buf(),
            source: String::new(),
            params,
            env,
            redact: raw.redact.iter().map(|s| s.value.clone()).collect(),
            keep: raw.keep.iter().map(|s| s.value.clone()).collect(),
            trace: pipeline_trace,
            lockfiles,
            steps,
            warnings: Vec::new(),
        })
    }

    fn params(&mut self, raw: &RawPipeline, overrides: &[String]) -> Option<Params> {
        if let Some(recorded) = self.recorded {
            return Some(recorded.clone());
        }
        let mut params = Params::new();
        if let Some(pf) = &raw.params_file {
            let path = self.root.join(&pf.value);
            match params::read_params_file(&path) {
                Ok(p) => params.extend(p),
                Err(e) => {
                    let mut d =
                        Diagnostic::error(e.one_line(), Some(pf.span.clone())).label("params-file");
                    d.hints = e.hints;
                    self.err(d);
                    return None;
                }
            }
        }
        for (k, v) in &raw.params {
            params.insert(k.clone(), params::toml_to_json(&v.value));
        }
        for o in overrides {
            match params::parse_override(o) {
                Ok((k, v)) => {
                    if let Some(slot) = params.get_mut(&k) {
                        let was_number = slot.is_number();
                        if was_number && v.is_string() {
                            self.err(Diagnostic::warning(
                                format!(
                                    "`--param {o}` replaces the number {} of `{k}` with the text {v}",
                                    params::render(slot)
                                ),
                                None,
                            ));
                        }
                        *slot = v;
                        continue;
                    }
                    let group: Vec<&str> = params
                        .keys()
                        .filter(|p| p.starts_with(&format!("{k}.")))
                        .map(String::as_str)
                        .collect();
                    let mut d = if group.is_empty() {
                        Diagnostic::error(
                            format!("`--param {o}` sets `{k}`, which the pipeline does not define"),
                            None,
                        )
                    } else {
                        Diagnostic::error(
                            format!(
                                "`--param {o}`: `{k}` is a group of params ({}), not one param",
                                group.join(", ")
                            ),
                            None,
                        )
                        .hint(format!("set one of them, e.g. `-p {}=…`", group[0]))
                    };
                    if group.is_empty() {
                        if let Some(s) = did_you_mean(&k, params.keys().map(String::as_str)) {
                            d = d.hint(format!("did you mean `{s}`?"));
                        } else {
                            d = d.hint("define it under [params] (or in the params-file) first");
                        }
                    }
                    self.err(d);
                }
                Err(e) => {
                    let mut d = Diagnostic::error(e.message, None);
                    d.hints = e.hints;
                    self.err(d);
                }
            }
        }
        Some(params)
    }

    /// A humantime duration like `30m`, `1h 30m`, `90s`.
    fn duration(&mut self, key: &str, v: &Sp<String>, zero_ok: bool) -> Option<Duration> {
        match super::duration::parse(&v.value) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.err(Diagnostic::error(
                    format!("`{key}` must be longer than zero"),
                    Some(v.span.clone()),
                ));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    Diagnostic::error(
                        format!("`{key}` is not a duration: {e}"),
                        Some(v.span.clone()),
                    )
                    .label("not a duration")
                    .hint("write it like \"90s\", \"30m\" or \"1h 30m\""),
                );
                None
            }
        }
    }

    /// A step's `model` key: a valid name, not taken by another step, and one declared output
    /// (the only one, or the one `output` names).
    fn model(
        &mut self,
        step: &str,
        m: &super::raw::RawModel,
        outputs: &[PathDecl],
        taken: &mut HashMap<String, String>,
    ) -> Option<ModelDecl> {
        let key = format!("steps.{step}.model");
        let name = &m.name.value;
        if let Err(e) = crate::store::models::check_name(name) {
            let mut d =
                Diagnostic::error(format!("`{key}`: {}", e.message), Some(m.name.span.clone()))
                    .label("not a model name");
            for h in e.hints {
                d = d.hint(h);
            }
            self.err(d);
            return None;
        }
        if let Some(other) = taken.get(name) {
            self.err(
                Diagnostic::error(
                    format!("model `{name}` is already the model of step `{other}`"),
                    Some(m.name.span.clone()),
                )
                .label("a second step for the same model")
                .hint("one step makes the versions of a model; give this one another name"),
            );
            return None;
        }
        let listed = || {
            outputs
                .iter()
                .map(|o| format!("`{}{}`", o.path, if o.dir { "/" } else { "" }))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let output = match &m.output {
            Some(o) => {
                let wanted = normalize(self.root, o.value.trim_end_matches('/'))
                    .map(|(p, _)| p)
                    .unwrap_or_else(|_| o.value.trim_end_matches('/').to_string());
                match outputs.iter().find(|d| d.path == wanted) {
                    Some(d) => d.path.clone(),
                    None => {
                        let mut d = Diagnostic::error(
                            format!(
                                "`{key}.output` is `{}`, which is not an output of step `{step}`",
                                o.value
                            ),
                            Some(o.span.clone()),
                        )
                        .label("not a declared output");
                        d = if outputs.is_empty() {
                            d.hint(format!("step `{step}` declares no outputs"))
                        } else {
                            d.hint(format!("its outputs: {}", listed()))
                        };
                        self.err(d);
                        return None;
                    }
                }
            }
            None => match outputs {
                [one] => one.path.clone(),
                [] => {
                    self.err(
                        Diagnostic::error(
                            format!("step `{step}` has a `model` but declares no outputs"),
                            Some(m.span.clone()),
                        )
                        .hint("declare the model's file or directory in `outputs`"),
                    );
                    return None;
                }
                _ => {
                    self.err(
                        Diagnostic::error(
                            format!(
                                "step `{step}` declares {} outputs: say which one is the model `{name}`",
                                outputs.len()
                            ),
                            Some(m.span.clone()),
                        )
                        .label("which output?")
                        .hint(format!(
                            "write `model = {{ name = \"{name}\", output = \"{}{}\" }}` (its outputs: {})",
                            outputs[0].path,
                            if outputs[0].dir { "/" } else { "" },
                            listed()
                        )),
                    );
                    return None;
                }
            },
        };
        taken.insert(name.clone(), step.to_string());
        Some(ModelDecl {
            name: name.clone(),
            output,
        })
    }

    fn trace_mode(&mut self, table: &str, t: &Sp<RawTrace>) -> Option<TraceMode> {
        match &t.value {
            RawTrace::Bool(true) => Some(TraceMode::On),
            RawTrace::Bool(false) => Some(TraceMode::Off),
            RawTrace::Text(s) if s == "strict" => Some(TraceMode::Strict),
            RawTrace::Text(s) => {
                let mut d = Diagnostic::error(
                    format!("`{table}.trace` must be true, false or \"strict\", found \"{s}\""),
                    Some(t.span.clone()),
                )
                .label("not a trace mode");
                d = match s.as_str() {
                    "true" | "on" | "yes" | "warn" => d.hint("write `trace = true` (a boolean, without quotes)"),
                    "false" | "off" | "no" => d.hint("write `trace = false` (a boolean, without quotes)"),
                    _ => d.hint("`trace = true` records what the step reads and writes; `trace = \"strict\"` also fails it on undeclared files"),
                };
                self.err(d);
                None
            }
        }
    }

    /// `[pipeline] lockfiles`: relative globs that stay inside the project; one that matches
    /// no file is a warning (the file may come later), not an error.
    fn lockfiles(&mut self, patterns: &[Sp<String>]) -> Vec<String> {
        let mut out = Vec::new();
        for p in patterns {
            let v = p.value.trim();
            let escapes = v.split('/').any(|c| c == "..");
            if v.is_empty() || v.starts_with('/') || escapes {
                self.err(
                    Diagnostic::error(
                        if v.is_empty() {
                            "`pipeline.lockfiles` has an empty pattern".to_string()
                        } else {
                            format!("`pipeline.lockfiles` pattern `{v}` is outside the project")
                        },
                        Some(p.span.clone()),
                    )
                    .label("here")
                    .hint("patterns are relative to pipeline.toml's directory, e.g. `deps/*.lock` or `envs/**/requirements*.txt`"),
                );
                continue;
            }
            if self.recorded.is_some() {
                // only a warning could follow (the pattern matched when the run was recorded)
                continue;
            }
            match crate::fingerprint::system::expand_pattern(self.root, v) {
                Err(e) => self.err(
                    Diagnostic::error(
                        format!(
                            "`pipeline.lockfiles` pattern `{v}` is not a valid glob: {}",
                            e.kind()
                        ),
                        Some(p.span.clone()),
                    )
                    .label("invalid glob")
                    .hint("use `*` within a name, `**` across directories, e.g. `deps/*.lock`"),
                ),
                Ok(found) => {
                    if found.is_empty() {
                        self.diags.push(
                            Diagnostic::warning(
                                format!("`pipeline.lockfiles` pattern `{v}` matches no file"),
                                Some(p.span.clone()),
                            )
                            .label("no file")
                            .hint("runs record the files it matches when they exist; check the path (relative to pipeline.toml's directory)"),
                        );
                    }
                    out.push(v.to_string());
                }
            }
        }
        out
    }

    fn trace_ignore(&mut self, table: &str, patterns: &[Sp<String>]) -> Vec<String> {
        let mut out = Vec::new();
        for p in patterns {
            if p.value.trim().is_empty() {
                self.err(Diagnostic::error(
                    format!("`{table}.trace-ignore` has an empty pattern"),
                    Some(p.span.clone()),
                ));
                continue;
            }
            let bad = trace_ignore_globs(&p.value).into_iter().find_map(|g| {
                globset::GlobBuilder::new(&g)
                    .literal_separator(true)
                    .build()
                    .err()
            });
            match bad {
                None => out.push(p.value.clone()),
                Some(e) => self.err(
                    Diagnostic::error(
                        format!(
                            "`{table}.trace-ignore` pattern `{}` is not a valid glob: {}",
                            p.value,
                            e.kind()
                        ),
                        Some(p.span.clone()),
                    )
                    .label("invalid glob")
                    .hint(
                        "use `*` within a name, `**` across directories, e.g. `logs/**` or `*.tmp`",
                    ),
                ),
            }
        }
        out
    }

    fn env_entry(&mut self, table: &str, k: &Sp<String>, v: &Sp<String>) -> bool {
        if k.value.is_empty() || k.value.contains(['=', '\0']) {
            self.err(
                Diagnostic::error(
                    format!("`{table}` has an invalid variable name `{}`", k.value),
                    Some(k.span.clone()),
                )
                .hint("names may not be empty or contain `=`"),
            );
            return false;
        }
        if v.value.contains('\0') {
            self.err(Diagnostic::error(
                format!("`{table}.{}` contains a NUL byte", k.value),
                Some(v.span.clone()),
            ));
            return false;
        }
        true
    }

    /// Substitute placeholders; returns the command and the param keys it used.
    fn cmd(
        &mut self,
        step: &str,
        c: &Sp<RawCmd>,
        params: &Params,
    ) -> Option<(Cmd, Cmd, Vec<String>)> {
        let parts: Vec<&String> = match &c.value {
            RawCmd::Shell(s) => vec![s],
            RawCmd::Argv(a) => a.iter().collect(),
        };
        if parts.is_empty() || parts[0].trim().is_empty() {
            self.err(Diagnostic::error(
                format!("step `{step}` has an empty `cmd`"),
                Some(c.span.clone()),
            ));
            return None;
        }
        let mut used = Vec::new();
        let mut ok = true;
        for part in &parts {
            for ph in params::placeholders(part) {
                if params.contains_key(&ph.key) {
                    used.push(ph.key);
                } else {
                    ok = false;
                    let text = &part[ph.range.clone()];
                    let mut d = Diagnostic::error(
                        format!(
                            "step `{step}` uses `{text}`, but no param `{}` is defined",
                            ph.key
                        ),
                        Some(self.sub_span(&c.span, text)),
                    )
                    .label("undefined param");
                    d = match did_you_mean(&ph.key, params.keys().map(String::as_str)) {
                        Some(s) => d.hint(format!("did you mean `{{params.{s}}}`?")),
                        None => d.hint(format!(
                            "define `{}` under [params] or in the params-file",
                            ph.key
                        )),
                    };
                    self.err(d);
                }
            }
        }
        if !ok {
            return None;
        }
        let template = match &c.value {
            RawCmd::Shell(s) => Cmd::Shell(s.clone()),
            RawCmd::Argv(a) => Cmd::Argv(a.clone()),
        };
        let cmd = match &c.value {
            RawCmd::Shell(s) => Cmd::Shell(params::substitute(s, params)),
            RawCmd::Argv(a) => Cmd::Argv(a.iter().map(|s| params::substitute(s, params)).collect()),
        };
        used.sort();
        used.dedup();
        Some((cmd, template, used))
    }

    fn step_param(&mut self, step: &str, p: &Sp<String>, params: &Params, out: &mut Params) {
        if params::is_glob(&p.value) {
            match params::glob_matcher(&p.value) {
                Ok(m) => {
                    let before = out.len();
                    let mut any = false;
                    for (k, v) in params {
                        if m.is_match(k) {
                            any = true;
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    if !any && out.len() == before {
                        self.err(
                            Diagnostic::error(
                                format!(
                                    "param pattern `{}` of step `{step}` matches no param",
                                    p.value
                                ),
                                Some(p.span.clone()),
                            )
                            .label("matches nothing"),
                        );
                    }
                }
                Err(e) => self.err(Diagnostic::error(e.message, Some(p.span.clone()))),
            }
        } else if let Some(v) = params.get(&p.value) {
            out.insert(p.value.clone(), v.clone());
        } else {
            let mut d = Diagnostic::error(
                format!(
                    "step `{step}` depends on param `{}`, which is not defined",
                    p.value
                ),
                Some(p.span.clone()),
            )
            .label("undefined param");
            d = match did_you_mean(&p.value, params.keys().map(String::as_str)) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d.hint(format!(
                    "define `{}` under [params] or in the params-file",
                    p.value
                )),
            };
            self.err(d);
        }
    }

    fn input_span(
        &self,
        raw: &RawPipeline,
        step: usize,
        path: &str,
    ) -> Option<std::ops::Range<usize>> {
        raw.steps[step]
            .inputs
            .iter()
            .find(|p| {
                normalize(self.root, p.value.trim_end_matches('/'))
                    .map(|(n, _)| n)
                    .as_deref()
                    == Ok(path)
            })
            .map(|p| p.span.clone())
    }

    fn check_outputs(
        &mut self,
        raw: &RawPipeline,
        outputs: &[(usize, PathDecl, std::ops::Range<usize>)],
        index: &OutputIndex<'_>,
    ) {
        // every overlapping pair (a, b), a declared before b, in declaration order
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for (b, (_, ob, _)) in outputs.iter().enumerate() {
            pairs.extend(
                index
                    .overlapping(&ob.path)
                    .into_iter()
                    .filter(|&a| a < b)
                    .map(|a| (a, b)),
            );
        }
        pairs.sort_unstable();
        for (a, b) in pairs {
            let ((sa, oa, _), (sb, ob, span_b)) = (&outputs[a], &outputs[b]);
            let (na, nb) = (&raw.steps[*sa].name.value, &raw.steps[*sb].name.value);
            let msg = if oa.path == ob.path {
                if sa == sb {
                    format!("step `{nb}` declares output `{}` twice", ob.path)
                } else {
                    format!("steps `{na}` and `{nb}` both declare output `{}`", ob.path)
                }
            } else {
                format!(
                    "output `{}` of step `{nb}` overlaps output `{}` of step `{na}`",
                    ob.path, oa.path
                )
            };
            self.err(
                Diagnostic::error(msg, Some(span_b.clone()))
                    .label("declared again here")
                    .hint("each file or directory must be written by exactly one step"),
            );
        }
    }

    fn dependencies(
        &mut self,
        raw: &RawPipeline,
        steps: &[Step],
        outputs: &[(usize, PathDecl, std::ops::Range<usize>)],
        index: &OutputIndex<'_>,
        after: &[Vec<usize>],
    ) -> Vec<Vec<usize>> {
        let mut deps = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let mut d: BTreeSet<usize> = after[i].iter().copied().collect();
            for input in &s.inputs {
                let producers: Vec<usize> = index
                    .overlapping(&input.path)
                    .into_iter()
                    .map(|k| outputs[k].0)
                    .collect();
                if producers.contains(&i) {
                    self.err(Diagnostic::error(
                        format!("`{}` is both an input and an output of step `{}`", input.path, s.name),
                        self.input_span(raw, i, &input.path),
                    ).hint("a step must write its result to a new path; change the file in a separate output"));
                    continue;
                }
                if producers.is_empty()
                    && self.recorded.is_none()
                    && std::fs::symlink_metadata(self.root.join(&input.path)).is_err()
                {
                    let span = self.input_span(raw, i, &input.path);
                    self.err(Diagnostic::error(
                        format!("input `{}` of step `{}` does not exist, and no step produces it", input.path, s.name),
                        span,
                    )
                    .label("missing file")
                    .hint("create the file, fix the path, or add the step that writes it to its `outputs`"));
                }
                d.extend(producers);
            }
            deps.push(d.into_iter().collect());
        }
        deps
    }

    /// Kahn's algorithm, preferring file order among ready steps. On a cycle, report it.
    fn topo_order(&mut self, raw: &RawPipeline, steps: &[Step]) -> Option<Vec<usize>> {
        let n = steps.len();
        let mut indegree: Vec<usize> = steps.iter().map(|s| s.deps.len()).collect();
        let mut dependants = vec![Vec::new(); n];
        for (i, s) in steps.iter().enumerate() {
            for &d in &s.deps {
                dependants[d].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &j in &dependants[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.insert(j);
                }
            }
        }
        if order.len() == n {
            return if self.diags.iter().any(|d| d.severity == Severity::Error) {
                None
            } else {
                Some(order)
            };
        }
        // Walk dependencies from a step left over until a step repeats: that is a cycle.
        let left: BTreeSet<usize> = (0..n).filter(|i| !order.contains(i)).collect();
        let start = *left.first().expect("a step is left");
        let mut path = vec![start];
        let mut cur = start;
        loop {
            let next = *steps[cur]
                .deps
                .iter()
                .find(|d| left.contains(d))
                .expect("a cycle member has a dependency in the cycle");
            if let Some(pos) = path.iter().position(|&p| p == next) {
                // `path` follows dependencies; reversed, it follows the data. Start at `next`,
                // the step the caret points at.
                let mut cycle: Vec<&str> = path[pos..]
                    .iter()
                    .rev()
                    .map(|&i| steps[i].name.as_str())
                    .collect();
                cycle.rotate_right(1);
                cycle.push(cycle[0]);
                self.err(Diagnostic::error(
                    format!("steps depend on each other in a cycle: {}", cycle.join(" → ")),
                    Some(raw.steps[next].name.span.clone()),
                )
                .label("part of the cycle")
                .hint("a step's inputs are the outputs of the steps it depends on (plus `after`); break the cycle"));
                return None;
            }
            path.push(next);
            cur = next;
        }
    }
}

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
    fn normalize_keeps_paths_inside() {
        let root = Path::new("/p");
        assert_eq!(
            normalize(root, "a/./b/../c").unwrap(),
            ("a/c".to_string(), true)
        );
        assert!(!normalize(root, "../x").unwrap().1);
        assert_eq!(normalize(root, "/p/a").unwrap(), ("a".to_string(), true));
        assert!(normalize(root, ".").is_err());
    }

    #[test]
    fn the_output_index_finds_exactly_the_overlapping_outputs() {
        let paths = [
            "data",
            "data/a.csv",
            "data2",
            "data/sub/x",
            "data-b",
            "model",
            "data",
            "/abs/x",
        ];
        let outputs: Vec<(usize, PathDecl, std::ops::Range<usize>)> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let d = PathDecl {
                    path: p.to_string(),
                    dir: false,
                    store: true,
                };
                (i, d, 0..0)
            })
            .collect();
        let index = OutputIndex::new(&outputs);
        for probe in [
            "data",
            "data/a.csv",
            "data/sub",
            "data/sub/x/y",
            "dat",
            "data2",
            "model/m",
            "/abs",
            "/abs/x/y",
            "x",
        ] {
            let naive: Vec<usize> = (0..paths.len())
                .filter(|&k| within(probe, paths[k]) || within(paths[k], probe))
                .collect();
            assert_eq!(index.overlapping(probe), naive, "{probe}");
        }
    }

    #[test]
    fn within_respects_component_boundaries() {
        assert!(within("data/x.csv", "data"));
        assert!(!within("data2/x.csv", "data"));
        assert!(within("data", "data"));
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

//! The walk from a parsed `RawPipeline` to a `Plan`: `check` runs the `Checker` over the
//! document, collects every finding and renders them together; `Checker::plan` builds the
//! steps (their keys are checked in `keys`, paths in `paths`, the graph in `graph`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::index::OutputIndex;
use super::{Cmd, LoadOptions, PathDecl, Plan, Step, within};
use crate::error::{Error, Result};
use crate::pipeline::diag::{Diagnostic, Severity, did_you_mean, render_all};
use crate::pipeline::params::Params;
use crate::pipeline::raw::{self, RawPipeline, RawStep};

pub(super) fn check(
    source: String,
    file: PathBuf,
    shown: &Path,
    overrides: &[String],
    recorded: Option<&Params>,
    missing_inputs_ok: bool,
) -> Result<Plan> {
    let opts = LoadOptions {
        file: shown,
        overrides,
        missing_inputs_ok,
    };
    let root = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let (raw, mut diags) = raw::parse(&source);
    // an unknown key in a step leaves the rest readable: check the rest too, to report every
    // problem at once
    let plan = if diags
        .iter()
        .any(|d| d.severity == Severity::Error && !raw::is_unknown_key(d))
    {
        None
    } else {
        Checker {
            root: &root,
            source: &source,
            diags: &mut diags,
            escapes: HashMap::new(),
            recorded,
            missing_inputs_ok: opts.missing_inputs_ok,
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

pub(super) struct Checker<'a> {
    pub(super) root: &'a Path,
    pub(super) source: &'a str,
    pub(super) diags: &'a mut Vec<Diagnostic>,
    /// directory (relative) → why it leads outside the project through a symbolic link
    pub(super) escapes: HashMap<String, Option<String>>,
    /// a recorded run's params (`revalidate`): used as they are, and the file system is not
    /// consulted
    pub(super) recorded: Option<&'a Params>,
    /// `status`: an input no step makes may be missing (it is reported, not refused)
    pub(super) missing_inputs_ok: bool,
}

/// What each step is checked against (the pipeline's own keys) and what checking the steps
/// collects for the checks across steps (overlapping outputs, dependencies, model names).
struct StepContext<'r> {
    raw: &'r RawPipeline,
    params: &'r Params,
    env: &'r BTreeMap<String, String>,
    /// the pipeline's `trace-ignore`, which each step extends
    ignore: &'r [String],
    names: Vec<&'r str>,
    position: HashMap<&'r str, usize>,
    /// (step index, declared output, span) for overlap checks
    outputs: Vec<(usize, PathDecl, std::ops::Range<usize>)>,
    /// each step's `after`, as step indices
    after: Vec<Vec<usize>>,
    /// model name → the step that registers it
    model_names: HashMap<String, String>,
}

impl Checker<'_> {
    pub(super) fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Span of `needle` inside the text at `span`, or `span` itself.
    pub(super) fn sub_span(
        &self,
        span: &std::ops::Range<usize>,
        needle: &str,
    ) -> std::ops::Range<usize> {
        self.source
            .get(span.clone())
            .and_then(|s| s.find(needle))
            .map(|i| span.start + i..span.start + i + needle.len())
            .unwrap_or_else(|| span.clone())
    }

    pub(super) fn plan(mut self, raw: RawPipeline, overrides: &[String]) -> Option<Plan> {
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
        let mut ctx = StepContext {
            raw: &raw,
            params: &params,
            env: &env,
            ignore: &pipeline_ignore,
            names,
            position,
            outputs: Vec::new(),
            after: Vec::new(),
            model_names: HashMap::new(),
        };
        let mut steps: Vec<Step> = raw
            .steps
            .iter()
            .enumerate()
            .map(|(i, rs)| self.step(i, rs, &mut ctx))
            .collect();
        let StepContext { outputs, after, .. } = ctx;

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

        let steps = in_order(steps, &order);

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

    /// One step of the pipeline, checked key by key against what the pipeline declares.
    fn step(&mut self, i: usize, rs: &RawStep, ctx: &mut StepContext<'_>) -> Step {
        let name = &rs.name.value;
        self.step_name(rs);
        let cmd = match &rs.cmd {
            None => {
                self.err(
                    Diagnostic::error(
                        format!("step `{name}` has no `cmd`"),
                        Some(rs.name.span.clone()),
                    )
                    .label("this step")
                    .hint("add `cmd = \"...\"` (run with sh -c) or `cmd = [\"prog\", \"arg\"]`"),
                );
                None
            }
            Some(c) => self.cmd(name, c, ctx.params),
        };
        let mut step_params = Params::new();
        for p in &rs.params {
            self.step_param(name, p, ctx.params, &mut step_params);
        }
        if let Some((_, _, used)) = &cmd {
            for k in used {
                if let Some(v) = ctx.params.get(k) {
                    step_params.insert(k.clone(), v.clone());
                }
            }
        }
        let inputs: Vec<PathDecl> = rs
            .inputs
            .iter()
            .filter_map(|p| self.path("input", p, ctx.raw.allow_outside))
            .collect();
        let mut outs = Vec::new();
        for (p, store) in &rs.outputs {
            if let Some(mut d) = self.path("output", p, ctx.raw.allow_outside) {
                d.store = *store;
                ctx.outputs.push((i, d.clone(), p.span.clone()));
                outs.push(d);
            }
        }
        let metrics: Vec<String> = rs
            .metrics
            .iter()
            .filter_map(|p| {
                self.path("metrics file", p, ctx.raw.allow_outside)
                    .map(|d| d.path)
            })
            .collect();
        let mut step_env = ctx.env.clone();
        for (k, v) in &rs.env {
            if self.env_entry(&format!("steps.{name}.env"), k, v) {
                step_env.insert(k.value.clone(), v.value.clone());
            }
        }
        let cwd = match &rs.cwd {
            None => String::new(),
            Some(c) if c.value.trim_matches('/') == "." || c.value.is_empty() => String::new(),
            Some(c) => self
                .path("cwd", c, ctx.raw.allow_outside)
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
        let retries = self.retries(name, rs);
        let deps_after = self.after(i, rs, ctx);
        ctx.after.push(deps_after);
        let trace = rs
            .trace
            .as_ref()
            .and_then(|t| self.trace_mode(&format!("steps.{name}"), t));
        let mut trace_ignore = ctx.ignore.to_vec();
        trace_ignore.extend(self.trace_ignore(&format!("steps.{name}"), &rs.trace_ignore));
        let model = rs
            .model
            .as_ref()
            .and_then(|m| self.model(name, m, &outs, &mut ctx.model_names));
        let (executor, resources) = self.executor(name, &ctx.raw.exec, &rs.exec);
        Step {
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
                .or(ctx.raw.trace_ignore_defaults)
                .unwrap_or(true),
            keep_outputs: rs.keep_outputs,
            model,
            executor,
            resources,
        }
    }

    /// A step name is a word of letters, digits, `_`, `-` and `.`.
    fn step_name(&mut self, rs: &RawStep) {
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
    }

    fn retries(&mut self, name: &str, rs: &RawStep) -> u32 {
        match &rs.retries {
            None => 0,
            Some(r) if (0..=100).contains(&r.value) => r.value as u32,
            Some(r) => {
                self.err(Diagnostic::error(
                    format!("`steps.{name}.retries` must be between 0 and 100"),
                    Some(r.span.clone()),
                ));
                0
            }
        }
    }

    /// The steps that step `i` runs `after`, as indices.
    fn after(&mut self, i: usize, rs: &RawStep, ctx: &StepContext<'_>) -> Vec<usize> {
        let name = &rs.name.value;
        let mut deps_after = Vec::new();
        for a in &rs.after {
            match ctx.position.get(a.value.as_str()).copied() {
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
                    d = match did_you_mean(&a.value, ctx.names.iter().copied()) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None => d.hint(format!("steps are: {}", ctx.names.join(", "))),
                    };
                    self.err(d);
                }
            }
        }
        deps_after
    }
}

/// The steps in `order` (old indices), their dependency indices remapped to the new positions.
fn in_order(steps: Vec<Step>, order: &[usize]) -> Vec<Step> {
    let mut new_index = vec![0; steps.len()];
    for (pos, &old) in order.iter().enumerate() {
        new_index[old] = pos;
    }
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    order
        .iter()
        .map(|&old| {
            let mut s = slots[old].take().expect("each index once");
            s.deps = s.deps.iter().map(|d| new_index[*d]).collect();
            s.deps.sort_unstable();
            s
        })
        .collect()
}

//! pipeline.toml as written: every value with the byte span it came from, so that later checks
//! can point at the exact place. This module only reads the document's shape (types, known keys);
//! whether the pipeline makes sense is `plan`'s job.
//!
//! The document is walked by hand from toml's spanned tree rather than derived with serde: that
//! way every type error says which key and what was expected, and unknown keys are warned about
//! at their own location.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diagnostic, did_you_mean};

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Sp<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<T> Sp<T> {
    pub fn new(value: T, span: Range<usize>) -> Self {
        Sp { value, span }
    }
}

#[derive(Debug, Clone)]
pub enum RawCmd {
    /// run with `sh -c`
    Shell(String),
    /// run directly, no shell
    Argv(Vec<String>),
}

/// `trace = true | false | "strict"` as written; `plan` judges the string.
#[derive(Debug, Clone, PartialEq)]
pub enum RawTrace {
    Bool(bool),
    Text(String),
}

#[derive(Debug, Default)]
pub struct RawPipeline {
    pub name: Option<Sp<String>>,
    pub description: Option<String>,
    pub params_file: Option<Sp<String>>,
    pub redact: Vec<Sp<String>>,
    pub keep: Vec<Sp<String>>,
    pub allow_outside: bool,
    pub trace: Option<Sp<RawTrace>>,
    pub trace_ignore: Vec<Sp<String>>,
    /// `trace-ignore-defaults = false`: tracing reports tool state too (see `filter::DEFAULT_IGNORE`)
    pub trace_ignore_defaults: Option<bool>,
    /// `lockfiles`: more lock/requirements files to record (globs)
    pub lockfiles: Vec<Sp<String>>,
    /// Inline `[params]`, flattened to dotted keys; the span is the value's.
    pub params: Vec<(String, Sp<toml::Value>)>,
    pub env: Vec<(Sp<String>, Sp<String>)>,
    /// `executor` and the Slurm resources, for every step (a step's own keys win)
    pub exec: RawExec,
    /// In file order.
    pub steps: Vec<RawStep>,
    /// Span of the `[steps]` table, or of the whole document when it is missing.
    pub steps_span: Range<usize>,
}

#[derive(Debug)]
pub struct RawStep {
    pub name: Sp<String>,
    pub cmd: Option<Sp<RawCmd>>,
    pub inputs: Vec<Sp<String>>,
    /// path and whether its bytes are kept in the object store (`store = false` opts out)
    pub outputs: Vec<(Sp<String>, bool)>,
    pub params: Vec<Sp<String>>,
    pub metrics: Vec<Sp<String>>,
    pub env: Vec<(Sp<String>, Sp<String>)>,
    pub cwd: Option<Sp<String>>,
    pub timeout: Option<Sp<String>>,
    pub retries: Option<Sp<i64>>,
    pub retry_delay: Option<Sp<String>>,
    pub after: Vec<Sp<String>>,
    pub trace: Option<Sp<RawTrace>>,
    pub trace_ignore: Vec<Sp<String>>,
    /// over the pipeline's
    pub trace_ignore_defaults: Option<bool>,
    /// `keep-outputs = true`: the declared outputs stay in place while the step runs
    pub keep_outputs: bool,
    /// `model = "NAME"` or `model = { name = "NAME", output = "PATH" }`
    pub model: Option<RawModel>,
    /// `executor` and the Slurm resources, over the pipeline's
    pub exec: RawExec,
}

/// Where a step runs and what it asks the cluster for, as written (`[pipeline]` or a step):
/// `plan` checks the values.
#[derive(Debug, Default, Clone)]
pub struct RawExec {
    pub executor: Option<Sp<String>>,
    pub cpus: Option<Sp<i64>>,
    pub mem: Option<Sp<String>>,
    /// a count (`gpus = 2`) or a typed count (`gpus = "a100:2"`), kept as text
    pub gpus: Option<Sp<String>>,
    pub time: Option<Sp<String>>,
    pub partition: Option<Sp<String>>,
    pub account: Option<Sp<String>>,
    pub sbatch_args: Option<Vec<Sp<String>>>,
}

/// The keys of `RawExec`, valid in `[pipeline]` and in a step.
pub const EXEC_KEYS: &[&str] = &[
    "executor",
    "cpus",
    "mem",
    "gpus",
    "time",
    "partition",
    "account",
    "sbatch-args",
];

/// A step's `model` key as written; the span of the whole value.
#[derive(Debug, Clone)]
pub struct RawModel {
    pub name: Sp<String>,
    pub output: Option<Sp<String>>,
    pub span: Range<usize>,
}

const TOP_KEYS: &[&str] = &["pipeline", "params", "env", "steps"];
const PIPELINE_KEYS: &[&str] = &[
    "name",
    "description",
    "params-file",
    "redact",
    "keep",
    "allow-outside",
    "trace",
    "trace-ignore",
    "trace-ignore-defaults",
    "lockfiles",
    "executor",
    "cpus",
    "mem",
    "gpus",
    "time",
    "partition",
    "account",
    "sbatch-args",
];
const STEP_KEYS: &[&str] = &[
    "cmd",
    "inputs",
    "outputs",
    "params",
    "metrics",
    "env",
    "cwd",
    "after",
    "timeout",
    "retries",
    "retry-delay",
    "trace",
    "trace-ignore",
    "trace-ignore-defaults",
    "keep-outputs",
    "model",
    "executor",
    "cpus",
    "mem",
    "gpus",
    "time",
    "partition",
    "account",
    "sbatch-args",
];

const STEP_KEY_LABEL: &str = "not a key of a step";

/// Is `d` the error of an unknown key inside a step (which leaves the rest of the file readable)?
pub fn is_unknown_key(d: &Diagnostic) -> bool {
    d.message.starts_with("unknown key `") && d.label == STEP_KEY_LABEL
}

/// Parse the text into a `RawPipeline`. Syntax errors, type errors and unknown keys are returned as
/// diagnostics; the caller stops when any of them is an error.
pub fn parse(source: &str) -> (RawPipeline, Vec<Diagnostic>) {
    let mut w = Walker { diags: Vec::new() };
    let raw = match DeTable::parse(source) {
        Ok(root) => w.document(root),
        Err(e) => {
            let msg = e.message().trim_end().to_string();
            w.diags.push(
                Diagnostic::error(format!("pipeline file is not valid TOML: {msg}"), e.span())
                    .label("here"),
            );
            RawPipeline::default()
        }
    };
    (raw, w.diags)
}

struct Walker {
    diags: Vec<Diagnostic>,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

type Entry<'i> = (Spanned<std::borrow::Cow<'i, str>>, Spanned<DeValue<'i>>);

/// Table entries in the order they were written.
fn in_file_order(table: DeTable<'_>) -> Vec<Entry<'_>> {
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

impl Walker {
    fn type_error(&mut self, key: &str, expected: &str, v: &Spanned<DeValue<'_>>) {
        self.diags.push(
            Diagnostic::error(
                format!(
                    "`{key}` must be {expected}, found {}",
                    type_name(v.get_ref())
                ),
                Some(v.span()),
            )
            .label(format!("expected {expected}")),
        );
    }

    fn unknown_key(
        &mut self,
        path: &str,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        known: &[&str],
    ) {
        let mut d = Diagnostic::warning(
            format!("unknown key `{path}{}` is ignored", key.get_ref()),
            Some(key.span()),
        )
        .label("not a pipeline.toml key");
        if let Some(s) = did_you_mean(key.get_ref(), known.iter().copied()) {
            d = d.hint(format!("did you mean `{s}`?"));
        } else {
            d = d.hint(format!("known keys here: {}", known.join(", ")));
        }
        self.diags.push(d);
    }

    /// An unknown key inside a step is an error: a misspelt `outputs` or `inputs` would
    /// otherwise drop what it declares, and the step would run unchecked. (Elsewhere, an
    /// unknown key is a warning: a key a newer mlrun reads does not stop an older one.)
    fn unknown_step_key(
        &mut self,
        path: &str,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        known: &[&str],
    ) {
        let mut d = Diagnostic::error(
            format!("unknown key `{path}{}`", key.get_ref()),
            Some(key.span()),
        )
        .label(STEP_KEY_LABEL);
        if let Some(s) = did_you_mean(key.get_ref(), known.iter().copied()) {
            d = d.hint(format!("did you mean `{s}`?"));
        } else {
            d = d.hint(format!("known keys here: {}", known.join(", ")));
        }
        self.diags.push(d);
    }

    fn document(&mut self, root: Spanned<DeTable<'_>>) -> RawPipeline {
        let mut raw = RawPipeline {
            steps_span: root.span(),
            ..RawPipeline::default()
        };
        for (key, value) in in_file_order(root.into_inner()) {
            match key.get_ref().as_ref() {
                "pipeline" => self.pipeline_table(value, &mut raw),
                "params" => {
                    if let Some(t) = self.table("params", value) {
                        self.flatten_params("", t, &mut raw.params);
                    }
                }
                "env" => raw.env = self.env_table("env", value),
                "steps" => {
                    raw.steps_span = value.span();
                    if let Some(t) = self.table("steps", value) {
                        for (name, step) in in_file_order(t) {
                            if let Some(s) = self.step(name, step) {
                                raw.steps.push(s);
                            }
                        }
                    }
                }
                _ => {
                    // An unknown section is an error, not a warning: `[step.train]` for
                    // `[steps.train]` would otherwise silently drop the step.
                    let mut d = Diagnostic::error(
                        format!("unknown section `{}`", key.get_ref()),
                        Some(key.span()),
                    )
                    .label("not a pipeline.toml section");
                    d = match did_you_mean(key.get_ref(), TOP_KEYS.iter().copied()) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None => d.hint(format!("sections are: {}", TOP_KEYS.join(", "))),
                    };
                    self.diags.push(d);
                }
            }
        }
        raw
    }

    fn table<'i>(&mut self, key: &str, v: Spanned<DeValue<'i>>) -> Option<DeTable<'i>> {
        if !matches!(v.get_ref(), DeValue::Table(_)) {
            self.type_error(key, "a table", &v);
            return None;
        }
        match v.into_inner() {
            DeValue::Table(t) => Some(t),
            _ => None,
        }
    }

    fn string(&mut self, key: &str, v: Spanned<DeValue<'_>>) -> Option<Sp<String>> {
        let span = v.span();
        match v.get_ref() {
            DeValue::String(s) => Some(Sp::new(s.to_string(), span)),
            _ => {
                self.type_error(key, "a string", &v);
                None
            }
        }
    }

    /// A duration is a string with a unit; a bare number gets a hint saying how to write it.
    fn duration(&mut self, key: &str, v: Spanned<DeValue<'_>>) -> Option<Sp<String>> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => Some(i.as_str().to_string()),
            DeValue::Float(f) => Some(f.as_str().to_string()),
            _ => None,
        };
        let out = self.string(key, v);
        if let Some(n) = n {
            let last = self.diags.len() - 1;
            self.diags[last] = self.diags[last].clone().hint(format!(
                "a duration needs its unit: write `\"{n}s\"` (or `\"{n}m\"`, `\"{n}h\"`)"
            ));
        }
        out
    }

    fn integer(&mut self, key: &str, v: Spanned<DeValue<'_>>) -> Option<Sp<i64>> {
        let span = v.span();
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Sp::new(n, span)),
                Err(_) => {
                    self.diags.push(Diagnostic::error(
                        format!("`{key}` is out of range"),
                        Some(span),
                    ));
                    None
                }
            },
            _ => {
                self.type_error(key, "an integer", &v);
                None
            }
        }
    }

    fn bool(&mut self, key: &str, v: Spanned<DeValue<'_>>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(key, "true or false", &v);
                None
            }
        }
    }

    fn string_list(&mut self, key: &str, v: Spanned<DeValue<'_>>) -> Vec<Sp<String>> {
        let span = v.span();
        match v.into_inner() {
            DeValue::Array(items) => items
                .into_iter()
                .filter_map(|item| self.string(&format!("{key}[]"), item))
                .collect(),
            other => {
                let v = Spanned::new(span, other);
                self.type_error(key, "an array of strings", &v);
                if let DeValue::String(s) = v.get_ref() {
                    let last = self.diags.len() - 1;
                    self.diags[last]
                        .hints
                        .push(format!("write `{key} = [\"{s}\"]`"));
                }
                Vec::new()
            }
        }
    }

    fn pipeline_table(&mut self, v: Spanned<DeValue<'_>>, raw: &mut RawPipeline) {
        let Some(t) = self.table("pipeline", v) else {
            return;
        };
        for (key, value) in in_file_order(t) {
            let k = key.get_ref().as_ref();
            let path = format!("pipeline.{k}");
            match k {
                "name" => raw.name = self.string(&path, value),
                "description" => raw.description = self.string(&path, value).map(|s| s.value),
                "params-file" => raw.params_file = self.string(&path, value),
                "redact" => raw.redact = self.string_list(&path, value),
                "keep" => raw.keep = self.string_list(&path, value),
                "allow-outside" => raw.allow_outside = self.bool(&path, value).unwrap_or(false),
                "trace" => raw.trace = self.trace(&path, value),
                "trace-ignore" => raw.trace_ignore = self.string_list(&path, value),
                "trace-ignore-defaults" => raw.trace_ignore_defaults = self.bool(&path, value),
                "lockfiles" => raw.lockfiles = self.string_list(&path, value),
                _ if self.exec_key(&path, k, &value, &mut raw.exec) => {}
                _ => self.unknown_key("pipeline.", &key, PIPELINE_KEYS),
            }
        }
    }

    fn flatten_params(
        &mut self,
        prefix: &str,
        t: DeTable<'_>,
        out: &mut Vec<(String, Sp<toml::Value>)>,
    ) {
        for (key, value) in in_file_order(t) {
            let full = format!("{prefix}{}", key.get_ref());
            let span = value.span();
            match value.into_inner() {
                DeValue::Table(inner) => self.flatten_params(&format!("{full}."), inner, out),
                other => {
                    let spanned = Spanned::new(span.clone(), other);
                    let de = toml::de::ValueDeserializer::from(spanned);
                    match <toml::Value as serde::Deserialize>::deserialize(de) {
                        Ok(v) => out.push((full, Sp::new(v, span))),
                        Err(e) => self.diags.push(Diagnostic::error(
                            format!("param `{full}` cannot be read: {}", e.message()),
                            Some(span),
                        )),
                    }
                }
            }
        }
    }

    fn env_table(&mut self, key: &str, v: Spanned<DeValue<'_>>) -> Vec<(Sp<String>, Sp<String>)> {
        let Some(t) = self.table(key, v) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in in_file_order(t) {
            let span = value.span();
            let text = match value.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                DeValue::Integer(i) => Some(i.to_string()),
                DeValue::Float(f) => Some(f.as_str().to_string()),
                DeValue::Boolean(b) => Some(b.to_string()),
                _ => {
                    self.type_error(
                        &format!("{key}.{}", name.get_ref()),
                        "a string (or a number or boolean)",
                        &value,
                    );
                    None
                }
            };
            if let Some(text) = text {
                out.push((
                    Sp::new(name.get_ref().to_string(), name.span()),
                    Sp::new(text, span),
                ));
            }
        }
        out
    }

    fn step(
        &mut self,
        name: Spanned<std::borrow::Cow<'_, str>>,
        v: Spanned<DeValue<'_>>,
    ) -> Option<RawStep> {
        let sname = name.get_ref().to_string();
        let prefix = format!("steps.{sname}");
        let t = self.table(&prefix, v)?;
        let mut step = RawStep {
            name: Sp::new(sname, name.span()),
            cmd: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Vec::new(),
            metrics: Vec::new(),
            env: Vec::new(),
            cwd: None,
            after: Vec::new(),
            timeout: None,
            retries: None,
            retry_delay: None,
            trace: None,
            trace_ignore: Vec::new(),
            trace_ignore_defaults: None,
            keep_outputs: false,
            model: None,
            exec: RawExec::default(),
        };
        for (key, value) in in_file_order(t) {
            let k = key.get_ref().as_ref();
            let path = format!("{prefix}.{k}");
            match k {
                "cmd" => step.cmd = self.cmd(&path, value),
                "inputs" => step.inputs = self.string_list(&path, value),
                "outputs" => step.outputs = self.output_list(&path, value),
                "params" => step.params = self.string_list(&path, value),
                "metrics" => step.metrics = self.string_list(&path, value),
                "after" => step.after = self.string_list(&path, value),
                "env" => step.env = self.env_table(&path, value),
                "cwd" => step.cwd = self.string(&path, value),
                "timeout" => step.timeout = self.duration(&path, value),
                "retry-delay" => step.retry_delay = self.duration(&path, value),
                "retries" => step.retries = self.integer(&path, value),
                "trace" => step.trace = self.trace(&path, value),
                "trace-ignore" => step.trace_ignore = self.string_list(&path, value),
                "trace-ignore-defaults" => step.trace_ignore_defaults = self.bool(&path, value),
                "keep-outputs" => step.keep_outputs = self.bool(&path, value).unwrap_or(false),
                "model" => step.model = self.model(&path, value),
                _ if self.exec_key(&path, k, &value, &mut step.exec) => {}
                _ => self.unknown_step_key(&format!("{prefix}."), &key, STEP_KEYS),
            }
        }
        Some(step)
    }

    /// One of `EXEC_KEYS` (`sbatch_args` is read as `sbatch-args`): read into `exec`, true;
    /// any other key: false.
    fn exec_key(
        &mut self,
        path: &str,
        k: &str,
        value: &Spanned<DeValue<'_>>,
        exec: &mut RawExec,
    ) -> bool {
        let v = value.clone();
        match k {
            "executor" => exec.executor = self.string(path, v),
            "cpus" => exec.cpus = self.integer(path, v),
            "mem" => exec.mem = self.string(path, v),
            "gpus" => {
                let span = v.span();
                exec.gpus = match v.get_ref() {
                    DeValue::Integer(i) => Some(Sp::new(i.as_str().to_string(), span)),
                    DeValue::String(s) => Some(Sp::new(s.to_string(), span)),
                    _ => {
                        self.type_error(path, "a number of GPUs or \"TYPE:N\"", &v);
                        None
                    }
                }
            }
            "time" => exec.time = self.duration(path, v),
            "partition" => exec.partition = self.string(path, v),
            "account" => exec.account = self.string(path, v),
            "sbatch-args" | "sbatch_args" => exec.sbatch_args = Some(self.string_list(path, v)),
            _ => return false,
        }
        true
    }

    /// `outputs`: strings, or tables `{ path = "...", store = false }`.
    fn output_list(&mut self, key: &str, v: Spanned<DeValue<'_>>) -> Vec<(Sp<String>, bool)> {
        if !matches!(v.get_ref(), DeValue::Array(_)) {
            self.type_error(key, "an array of paths", &v);
            return Vec::new();
        }
        let DeValue::Array(items) = v.into_inner() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let item_span = item.span();
            match item.into_inner() {
                DeValue::String(s) => out.push((Sp::new(s.to_string(), item_span), true)),
                DeValue::Table(t) => {
                    let mut path = None;
                    let mut store = true;
                    for (k, val) in in_file_order(t) {
                        match k.get_ref().as_ref() {
                            "path" => path = self.string(&format!("{key}[].path"), val),
                            "store" => {
                                store = self.bool(&format!("{key}[].store"), val).unwrap_or(true)
                            }
                            _ => {
                                self.unknown_step_key(&format!("{key}[]."), &k, &["path", "store"])
                            }
                        }
                    }
                    match path {
                        Some(p) => out.push((p, store)),
                        None => self.diags.push(
                            Diagnostic::error(
                                format!("an entry of `{key}` has no `path`"),
                                Some(item_span),
                            )
                            .hint("write `{ path = \"model.pkl\", store = false }`"),
                        ),
                    }
                }
                other => {
                    let v = Spanned::new(item_span, other);
                    self.type_error(
                        &format!("{key}[]"),
                        "a path or a table `{ path = ..., store = false }`",
                        &v,
                    );
                }
            }
        }
        out
    }

    /// `model`: a name, or a table `{ name = "...", output = "..." }`.
    fn model(&mut self, key: &str, v: Spanned<DeValue<'_>>) -> Option<RawModel> {
        let span = v.span();
        match v.into_inner() {
            DeValue::String(s) => Some(RawModel {
                name: Sp::new(s.to_string(), span.clone()),
                output: None,
                span,
            }),
            DeValue::Table(t) => {
                let mut name = None;
                let mut output = None;
                for (k, val) in in_file_order(t) {
                    match k.get_ref().as_ref() {
                        "name" => name = self.string(&format!("{key}.name"), val),
                        "output" => output = self.string(&format!("{key}.output"), val),
                        _ => self.unknown_step_key(&format!("{key}."), &k, &["name", "output"]),
                    }
                }
                match name {
                    Some(name) => Some(RawModel { name, output, span }),
                    None => {
                        self.diags.push(
                            Diagnostic::error(format!("`{key}` has no `name`"), Some(span))
                                .hint("write `model = { name = \"churn\", output = \"model/\" }`"),
                        );
                        None
                    }
                }
            }
            other => {
                let v = Spanned::new(span, other);
                self.type_error(
                    key,
                    "a model name or a table `{ name = ..., output = ... }`",
                    &v,
                );
                None
            }
        }
    }

    /// `trace`: a boolean or a string (only `"strict"` is meaningful; `plan` says so).
    fn trace(&mut self, key: &str, v: Spanned<DeValue<'_>>) -> Option<Sp<RawTrace>> {
        let span = v.span();
        match v.get_ref() {
            DeValue::Boolean(b) => Some(Sp::new(RawTrace::Bool(*b), span)),
            DeValue::String(s) => Some(Sp::new(RawTrace::Text(s.to_string()), span)),
            _ => {
                self.type_error(key, "true, false or \"strict\"", &v);
                None
            }
        }
    }

    fn cmd(&mut self, key: &str, v: Spanned<DeValue<'_>>) -> Option<Sp<RawCmd>> {
        let span = v.span();
        match v.get_ref() {
            DeValue::String(s) => Some(Sp::new(RawCmd::Shell(s.to_string()), span)),
            DeValue::Array(items) => {
                let mut argv = Vec::new();
                for item in items {
                    match item.get_ref() {
                        DeValue::String(s) => argv.push(s.to_string()),
                        _ => {
                            self.type_error(&format!("{key}[]"), "a string", item);
                            return None;
                        }
                    }
                }
                Some(Sp::new(RawCmd::Argv(argv), span))
            }
            _ => {
                self.type_error(
                    key,
                    "a string (run with `sh -c`) or an array of strings",
                    &v,
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::diag::Severity;

    #[test]
    fn reads_steps_in_file_order_with_spans() {
        let src = "[steps.b]\ncmd = \"echo b\"\n[steps.a]\ncmd = [\"echo\", \"a\"]\n";
        let (raw, diags) = parse(src);
        assert!(diags.is_empty(), "{diags:?}");
        let names: Vec<_> = raw.steps.iter().map(|s| s.name.value.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let span = raw.steps[0].cmd.as_ref().unwrap().span.clone();
        assert_eq!(&src[span], "\"echo b\"");
    }

    #[test]
    fn nested_params_flatten_to_dotted_keys() {
        let (raw, _) = parse("[params]\nseed = 1\n[params.train]\nlr = 0.5\n");
        let keys: Vec<_> = raw.params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["seed", "train.lr"]);
    }

    #[test]
    fn unknown_keys_in_a_step_and_type_errors_fail_elsewhere_they_warn() {
        let (_, diags) = parse("[pipeline]\ncolour = 1\n[steps.a]\ncmd = 3\ninptus = []\n");
        assert_eq!(diags.len(), 3);
        assert!(
            diags
                .iter()
                .any(|d| d.severity == Severity::Error && d.message.contains("steps.a.cmd"))
        );
        assert!(diags.iter().any(|d| d.severity == Severity::Error
            && d.message.contains("steps.a.inptus")
            && d.hints.iter().any(|h| h.contains("`inputs`"))));
        assert!(
            diags
                .iter()
                .any(|d| d.severity == Severity::Warning && d.message.contains("pipeline.colour"))
        );
    }
}

//! `mlrun import dvc.yaml`: a DVC pipeline converted into pipeline.toml text.
//!
//! What is converted, as DVC means it:
//! - `vars` (the default `params.yaml`, other files, `file:key1,key2`, inline dicts; global and
//!   per stage) and `${...}` templates (`${a.b}`, `${a[0]}`, `${item}`, `${key}`, `${item.f}`,
//!   a dict in `cmd` unpacked to `--k v`, `\${` for a literal `${`). A template in `cmd` that names a
//!   plain value of the params-file becomes mlrun's `{params.KEY}`, so mlrun substitutes it at run
//!   time and records it as a param of the step, as DVC does; every other template is expanded now.
//! - `foreach` (list, list of dicts, dict) and `matrix`, expanded into one step per item, named
//!   like DVC's `stage@item` with `@` written `.` (mlrun step names allow letters, digits, `_`, `-`,
//!   `.`; any other character becomes `_`).
//! - `cmd` (a list runs in sequence: joined with ` && `), `wdir` (paths are rebased onto the project
//!   and the step's `cwd` is set), `deps`, `outs`, `metrics`, `plots`, `params`, `frozen`.
//!
//! Anything pipeline.toml cannot say is returned as a `Note` naming the stage and the reason.
//! Errors name the file, the line (found by looking for the stage and key in the text, since the
//! YAML parser keeps no positions for values) and the key.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value as Y};

use crate::error::{Error, Result};
use crate::pipeline::diag::did_you_mean;
use crate::pipeline::params::{self, Params};

/// What the caller asks for.
pub struct Options<'a> {
    /// the dvc.yaml to read
    pub file: &'a Path,
    /// how the file is named in messages
    pub shown: &'a Path,
    /// dvc.yaml's directory relative to pipeline.toml's: `""`, or `"sub/"` when pipeline.toml is
    /// written in a parent directory; every path is prefixed with it
    pub prefix: &'a str,
}

/// The converted pipeline.
#[derive(Debug)]
pub struct Conversion {
    pub toml: String,
    /// (mlrun step name, DVC stage name) in file order
    pub steps: Vec<(String, String)>,
    /// DVC stages left commented out because they are frozen
    pub frozen: Vec<String>,
    pub params_file: Option<String>,
    pub notes: Vec<Note>,
}

/// Something dvc.yaml says that pipeline.toml cannot.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub stage: Option<String>,
    pub reason: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stage {
            Some(s) => write!(f, "stage \"{s}\": {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "stages",
    "vars",
    "plots",
    "metrics",
    "params",
    "artifacts",
    "datasets",
];
const STAGE_KEYS: &[&str] = &[
    "cmd",
    "wdir",
    "deps",
    "outs",
    "params",
    "metrics",
    "plots",
    "frozen",
    "always_changed",
    "desc",
    "meta",
    "vars",
];
const OUT_KEYS: &[&str] = &[
    "cache",
    "persist",
    "desc",
    "type",
    "labels",
    "meta",
    "remote",
    "push",
    "checkpoint",
];
const PLOT_KEYS: &[&str] = &[
    "x", "y", "template", "title", "x_label", "y_label", "header",
];

/// Read and convert a dvc.yaml.
pub fn convert(opts: &Options<'_>) -> Result<Conversion> {
    let text = std::fs::read_to_string(opts.file)
        .map_err(|e| Error::invalid(format!("cannot read `{}`", opts.shown.display())).cause(e))?;
    convert_text(&text, opts)
}

/// Convert dvc.yaml text; files it names (params, vars) are read beside `opts.file`.
pub fn convert_text(text: &str, opts: &Options<'_>) -> Result<Conversion> {
    let src = Src::new(text, opts.shown);
    let doc: Y = serde_norway::from_str(text).map_err(|e| {
        let at = match e.location() {
            Some(l) => format!("{}:{}:{}", src.shown, l.line(), l.column()),
            None => src.shown.clone(),
        };
        Error::invalid(format!("{at}: not valid YAML")).cause(e)
    })?;
    let root = match doc {
        Y::Mapping(m) => m,
        Y::Null => Mapping::new(),
        other => {
            return Err(Error::invalid(format!(
                "{}: a dvc.yaml must be a mapping with a `stages` key, found {}",
                src.shown,
                kind(&other)
            )));
        }
    };
    let dir = opts
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut c = Converter {
        src,
        dir,
        prefix: opts.prefix.to_string(),
        notes: Vec::new(),
        primary: None,
        primary_params: Params::new(),
    };
    c.run(root)
}

fn kind(v: &Y) -> &'static str {
    match v {
        Y::Null => "nothing",
        Y::Bool(_) => "a boolean",
        Y::Number(_) => "a number",
        Y::String(_) => "a string",
        Y::Sequence(_) => "a list",
        Y::Mapping(_) => "a mapping",
        Y::Tagged(_) => "a tagged value",
    }
}

// ---------------------------------------------------------------------------------------------
// Where things are in the text.

struct Src<'a> {
    shown: String,
    lines: Vec<&'a str>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Does this line start the mapping key `key` (possibly as `- key:` or quoted)?
fn starts_key(line: &str, key: &str) -> bool {
    let t = line.trim_start();
    let t = t.strip_prefix("- ").unwrap_or(t).trim_start();
    for q in ["", "\"", "'"] {
        if let Some(rest) = t.strip_prefix(q).and_then(|r| r.strip_prefix(key))
            && let Some(rest) = rest.strip_prefix(q)
            && rest.trim_start().starts_with(':')
        {
            return true;
        }
    }
    false
}

impl<'a> Src<'a> {
    fn new(text: &'a str, shown: &Path) -> Self {
        Src {
            shown: shown.display().to_string(),
            lines: text.lines().collect(),
        }
    }

    /// The block of a top-level key (`stages`, `vars`): its line range.
    fn top_block(&self, key: &str) -> Option<(usize, usize)> {
        let start = self
            .lines
            .iter()
            .position(|l| indent(l) == 0 && starts_key(l, key))?;
        let end = (start + 1..self.lines.len())
            .find(|&i| !is_blank(self.lines[i]) && indent(self.lines[i]) == 0)
            .unwrap_or(self.lines.len());
        Some((start, end))
    }

    fn stage_block(&self, stage: &str) -> Option<(usize, usize)> {
        let (s, e) = self.top_block("stages")?;
        let at = (s + 1..e).find(|&i| starts_key(self.lines[i], stage))?;
        let ind = indent(self.lines[at]);
        let end = (at + 1..e)
            .find(|&i| !is_blank(self.lines[i]) && indent(self.lines[i]) <= ind)
            .unwrap_or(e);
        Some((at, end))
    }

    /// 1-based line of `key` inside the stage (or the document), then of `needle` from there.
    fn line(&self, stage: Option<&str>, key: &str, needle: Option<&str>) -> Option<usize> {
        let (start, end) = match stage {
            Some(s) => self.stage_block(s)?,
            None => match self.top_block(key.split('.').next().unwrap_or(key)) {
                Some(b) => b,
                None => (0, self.lines.len()),
            },
        };
        let mut from = start;
        for part in key.split('.') {
            if let Some(i) = (from..end).find(|&i| starts_key(self.lines[i], part)) {
                from = i;
            }
        }
        if let Some(n) = needle
            && let Some(i) = (from..end).find(|&i| self.lines[i].contains(n))
        {
            from = i;
        }
        Some(from + 1)
    }

    fn error(&self, stage: Option<&str>, key: &str, needle: Option<&str>, msg: &str) -> Error {
        let at = match self.line(stage, key, needle) {
            Some(l) => format!("{}:{l}", self.shown),
            None => self.shown.clone(),
        };
        let place = match stage {
            Some(s) => format!("stage `{s}`, `{key}`"),
            None => format!("`{key}`"),
        };
        Error::invalid(format!("{at}: {place}: {msg}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Templates.

/// Why a template could not be expanded.
#[derive(Debug, PartialEq)]
pub enum TemplateError {
    /// `${name}` names nothing in vars, the params file or the foreach item
    Undefined(String),
    /// a list or mapping where text is needed
    NotText(String, &'static str),
    /// `${` without `}`, or `${}`
    Malformed(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Undefined(e) => write!(f, "`${{{e}}}` is not defined"),
            TemplateError::NotText(e, k) => write!(
                f,
                "`${{{e}}}` is {k}, which cannot be put into text (only a mapping, in `cmd`, is unpacked to `--key value`)"
            ),
            TemplateError::Malformed(e) => write!(f, "`{e}` is not a complete `${{...}}` template"),
        }
    }
}

/// How a string is expanded.
#[derive(Clone, Copy)]
pub enum Mode<'a> {
    /// a path or other text: every template becomes its value
    Text,
    /// `cmd`: a mapping is unpacked; a plain value of `params_file` becomes `{params.KEY}`
    Cmd { params_file: Option<&'a str> },
    /// `foreach` / `matrix`: a lone `${x}` keeps its list or mapping
    Iterable,
}

/// The variables templates see: merged vars and which source each top-level name came from.
#[derive(Clone, Default, Debug)]
pub struct Vars {
    pub values: Mapping,
    /// top-level name → the file it came from (relative to dvc.yaml's directory), `None` inline
    pub sources: HashMap<String, Option<String>>,
}

impl Vars {
    /// Merge `m` in, as DVC does: nested mappings merge, a name defined twice is an error.
    pub fn merge(&mut self, m: Mapping, source: Option<&str>) -> std::result::Result<(), String> {
        for (k, v) in m {
            let name = scalar_text(&k);
            match self.sources.get(&name) {
                Some(s) if s.as_deref() != source => {
                    self.sources.insert(name.clone(), None);
                }
                _ => {
                    self.sources
                        .insert(name.clone(), source.map(str::to_string));
                }
            }
            merge_into(&mut self.values, k, v, &name)?;
        }
        Ok(())
    }
}

fn merge_into(into: &mut Mapping, k: Y, v: Y, path: &str) -> std::result::Result<(), String> {
    match (into.get_mut(&k), v) {
        (None, v) => {
            into.insert(k, v);
            Ok(())
        }
        (Some(Y::Mapping(a)), Y::Mapping(b)) => {
            for (k2, v2) in b {
                let p = format!("{path}.{}", scalar_text(&k2));
                merge_into(a, k2, v2, &p)?;
            }
            Ok(())
        }
        (Some(_), _) => Err(path.to_string()),
    }
}

/// The `(range, inner)` of every `${...}` not escaped as `\${`.
fn templates(s: &str) -> std::result::Result<Vec<(std::ops::Range<usize>, &str)>, TemplateError> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = s[from..].find("${") {
        let start = from + p;
        if start > 0 && s.as_bytes()[start - 1] == b'\\' {
            from = start + 2;
            continue;
        }
        let Some(close) = s[start + 2..].find('}') else {
            return Err(TemplateError::Malformed(s[start..].to_string()));
        };
        let end = start + 2 + close + 1;
        let inner = s[start + 2..end - 1].trim();
        if inner.is_empty() {
            return Err(TemplateError::Malformed(s[start..end].to_string()));
        }
        out.push((start..end, inner));
        from = end;
    }
    Ok(out)
}

/// `a.b[0]` → `["a", "b", "0"]`, as DVC's `normalize_key`.
fn segments(expr: &str) -> Vec<String> {
    expr.replace('[', ".")
        .replace(']', "")
        .split('.')
        .map(|s| s.trim().to_string())
        .collect()
}

fn select<'v>(expr: &str, local: &'v Mapping, vars: &'v Mapping) -> Option<&'v Y> {
    let segs = segments(expr);
    let first = Y::String(segs[0].clone());
    let mut cur = local.get(&first).or_else(|| vars.get(&first))?;
    for s in &segs[1..] {
        cur = match cur {
            Y::Mapping(m) => m.get(Y::String(s.clone()))?,
            Y::Sequence(l) => l.get(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// A scalar as DVC's `to_str` writes it (Python's `str`, booleans lowercase).
pub fn scalar_text(v: &Y) -> String {
    match v {
        Y::Null => "None".into(),
        Y::Bool(b) => b.to_string(),
        Y::String(s) => s.clone(),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                py_float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Y::Tagged(t) => scalar_text(&t.value),
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Python's `repr` of a float: `1.0`, `0.1`, `1e-05`, `1e+16`, `nan`, `inf`.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let exp = f.abs().log10().floor() as i32;
    if !(-4..16).contains(&exp) {
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", e.abs());
    }
    let s = format!("{f}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// Python's `shlex.quote`.
pub fn sh_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

fn flatten_mapping(prefix: &str, m: &Mapping, out: &mut Vec<(String, Y)>) {
    for (k, v) in m {
        let key = if prefix.is_empty() {
            scalar_text(k)
        } else {
            format!("{prefix}.{}", scalar_text(k))
        };
        match v {
            Y::Mapping(inner) => flatten_mapping(&key, inner, out),
            other => out.push((key, other.clone())),
        }
    }
}

/// A mapping in `cmd`, as DVC unpacks it: `--k v`, `--flag` for true (false is left out), a list
/// as `--k a b`, strings shell-quoted.
fn unpack(expr: &str, m: &Mapping) -> std::result::Result<String, TemplateError> {
    let mut flat = Vec::new();
    flatten_mapping("", m, &mut flat);
    let mut parts = Vec::new();
    for (k, v) in flat {
        match v {
            Y::Bool(true) => parts.push(format!("--{k}")),
            Y::Bool(false) => {}
            Y::String(s) => parts.push(format!("--{k} {}", sh_quote(&s))),
            Y::Sequence(items) => {
                let mut vals = Vec::new();
                for i in items {
                    match i {
                        Y::String(s) => vals.push(sh_quote(&s)),
                        Y::Sequence(_) | Y::Mapping(_) => {
                            return Err(TemplateError::NotText(
                                format!("{expr}.{k}"),
                                "a nested list",
                            ));
                        }
                        other => vals.push(scalar_text(&other)),
                    }
                }
                if !vals.is_empty() {
                    parts.push(format!("--{k} {}", vals.join(" ")));
                }
            }
            other => parts.push(format!("--{k} {}", scalar_text(&other))),
        }
    }
    Ok(parts.join(" "))
}

fn is_param_key(expr: &str) -> bool {
    !expr.contains('[')
        && expr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Expand the templates of one string. `local` holds `item` and `key` of a foreach/matrix entry.
pub fn expand(
    s: &str,
    local: &Mapping,
    vars: &Vars,
    mode: Mode<'_>,
) -> std::result::Result<Y, TemplateError> {
    let found = templates(s)?;
    if found.is_empty() {
        return Ok(Y::String(s.replace("\\${", "${")));
    }
    if matches!(mode, Mode::Iterable) && found.len() == 1 && found[0].0 == (0..s.len()) {
        let expr = found[0].1;
        return select(expr, local, &vars.values)
            .cloned()
            .ok_or_else(|| TemplateError::Undefined(expr.to_string()));
    }
    let mut out = String::new();
    let mut last = 0;
    for (range, expr) in found {
        out.push_str(&s[last..range.start].replace("\\${", "${"));
        last = range.end;
        let value = select(expr, local, &vars.values)
            .ok_or_else(|| TemplateError::Undefined(expr.to_string()))?;
        let first = &segments(expr)[0];
        match (value, mode) {
            (Y::Mapping(m), Mode::Cmd { .. }) => out.push_str(&unpack(expr, m)?),
            (Y::Mapping(_), _) => {
                return Err(TemplateError::NotText(expr.to_string(), "a mapping"));
            }
            (Y::Sequence(_), _) => return Err(TemplateError::NotText(expr.to_string(), "a list")),
            (
                v,
                Mode::Cmd {
                    params_file: Some(pf),
                },
            ) if !local.contains_key(Y::String(first.clone()))
                && vars.sources.get(first).and_then(|s| s.as_deref()) == Some(pf)
                && is_param_key(expr)
                && !v.is_null() =>
            {
                out.push_str(&format!("{{params.{}}}", segments(expr).join(".")));
            }
            (v, _) => out.push_str(&scalar_text(v)),
        }
    }
    out.push_str(&s[last..].replace("\\${", "${"));
    Ok(Y::String(out))
}

/// `foreach` items as DVC names them: a dict by its keys, a list of scalars by the values, a list
/// with any list or dict in it by the index. The flag says whether `${key}` is defined.
pub fn foreach_items(v: &Y) -> Option<(Vec<(String, Y)>, bool)> {
    match v {
        Y::Mapping(m) => Some((
            m.iter().map(|(k, v)| (scalar_text(k), v.clone())).collect(),
            true,
        )),
        Y::Sequence(l) => {
            let composite = l
                .iter()
                .any(|i| matches!(i, Y::Mapping(_) | Y::Sequence(_)));
            Some((
                l.iter()
                    .enumerate()
                    .map(|(n, i)| {
                        let k = if composite {
                            n.to_string()
                        } else {
                            scalar_text(i)
                        };
                        (k, i.clone())
                    })
                    .collect(),
                false,
            ))
        }
        _ => None,
    }
}

/// `matrix` combinations, in DVC's order and with its names (`a-b`, a list or dict value
/// written as `NAMEi`): (name, the `item` mapping).
pub fn matrix_items(axes: &[(String, Vec<Y>)]) -> Vec<(String, Mapping)> {
    let mut out: Vec<(Vec<String>, Mapping)> = vec![(Vec::new(), Mapping::new())];
    for (name, values) in axes {
        let mut next = Vec::new();
        for (frags, item) in &out {
            for (i, v) in values.iter().enumerate() {
                let mut f = frags.clone();
                f.push(if matches!(v, Y::Mapping(_) | Y::Sequence(_)) {
                    format!("{name}{i}")
                } else {
                    scalar_text(v)
                });
                let mut m = item.clone();
                m.insert(Y::String(name.clone()), v.clone());
                next.push((f, m));
            }
        }
        out = next;
    }
    out.into_iter().map(|(f, m)| (f.join("-"), m)).collect()
}

/// A DVC stage name (`train@cnn-0.1`) as an mlrun step name: `@` becomes `.`, any other character
/// mlrun does not allow becomes `_`.
pub fn step_name(dvc: &str) -> String {
    dvc.chars()
        .map(|c| match c {
            '@' => '.',
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') => c,
            _ => '_',
        })
        .collect()
}

/// `a/./b/../c` → `a/c`, keeping a trailing `/`; `""` for the directory itself.
pub fn normalize(path: &str) -> String {
    let dir = path.ends_with('/') && path.len() > 1;
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut s = parts.join("/");
    if dir && !s.is_empty() {
        s.push('/');
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The conversion.

struct Converter<'a> {
    src: Src<'a>,
    /// dvc.yaml's directory, where its relative files are read
    dir: PathBuf,
    prefix: String,
    notes: Vec<Note>,
    /// the params-file of the result, relative to dvc.yaml's directory
    primary: Option<String>,
    primary_params: Params,
}

/// One stage ready to be written.
struct Step {
    name: String,
    dvc_name: String,
    origin: String,
    desc: Option<String>,
    frozen: bool,
    cmd: String,
    cwd: String,
    inputs: Vec<String>,
    outputs: Vec<(String, bool)>,
    params: Vec<String>,
    metrics: Vec<String>,
    /// some output has `persist: true`: the step gets `keep-outputs = true`
    keep_outputs: bool,
}

/// An entry of `outs`, `metrics` or `plots`: its path and options.
fn path_entries(v: &Y) -> std::result::Result<Vec<(String, Mapping)>, String> {
    let items = match v {
        Y::Null => return Ok(Vec::new()),
        Y::Sequence(l) => l,
        other => return Err(format!("must be a list, found {}", kind(other))),
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Y::String(s) => out.push((s.clone(), Mapping::new())),
            Y::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().expect("one entry");
                let opts = match v {
                    Y::Null => Mapping::new(),
                    Y::Mapping(o) => o.clone(),
                    other => {
                        return Err(format!(
                            "the options of `{}` must be a mapping, found {}",
                            scalar_text(k),
                            kind(other)
                        ));
                    }
                };
                out.push((scalar_text(k), opts));
            }
            other => {
                return Err(format!(
                    "entries must be paths or `path: {{options}}`, found {}",
                    kind(other)
                ));
            }
        }
    }
    Ok(out)
}

impl<'a> Converter<'a> {
    fn note(&mut self, stage: Option<&str>, reason: impl Into<String>) {
        let n = Note {
            stage: stage.map(str::to_string),
            reason: reason.into(),
        };
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    fn read_data_file(&self, rel: &str, stage: Option<&str>, key: &str) -> Result<Y> {
        let path = self.dir.join(rel);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            self.src
                .error(stage, key, Some(rel), &format!("cannot read `{rel}`"))
                .cause(e)
        })?;
        let ext = Path::new(rel)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let bad = |what: &str, e: String| {
            self.src
                .error(
                    stage,
                    key,
                    Some(rel),
                    &format!("`{rel}` is not valid {what}"),
                )
                .cause(e)
        };
        let v: Y = match ext.as_str() {
            "yaml" | "yml" => serde_norway::from_str(&text).map_err(|e| {
                let at = e
                    .location()
                    .map(|l| format!("{rel}:{}:{}: ", l.line(), l.column()))
                    .unwrap_or_default();
                bad("YAML", format!("{at}{e}"))
            })?,
            "json" => {
                let j: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| bad("JSON", e.to_string()))?;
                serde_norway::to_value(j).map_err(|e| bad("JSON", e.to_string()))?
            }
            "toml" => {
                let t: toml::Table =
                    toml::from_str(&text).map_err(|e| bad("TOML", e.message().to_string()))?;
                serde_norway::to_value(t).map_err(|e| bad("TOML", e.to_string()))?
            }
            _ => {
                return Err(self
                    .src
                    .error(
                        stage,
                        key,
                        Some(rel),
                        &format!("`{rel}`: only YAML, JSON and TOML files can be read"),
                    )
                    .hint("DVC's Python params files are not supported; move the values to params.yaml"));
            }
        };
        match v {
            Y::Null => Ok(Y::Mapping(Mapping::new())),
            Y::Mapping(_) => Ok(v),
            other => Err(self.src.error(
                stage,
                key,
                Some(rel),
                &format!("`{rel}` must hold a mapping, found {}", kind(&other)),
            )),
        }
    }

    /// One `vars` list (global, or a stage's, relative to `base`) merged into `vars`.
    fn load_vars(
        &mut self,
        list: &Y,
        base: &str,
        stage: Option<&str>,
        vars: &mut Vars,
        loaded: &mut BTreeSet<String>,
    ) -> Result<()> {
        let items = match list {
            Y::Null => return Ok(()),
            Y::Sequence(l) => l.clone(),
            other => {
                return Err(self.src.error(
                    stage,
                    "vars",
                    None,
                    &format!(
                        "must be a list of files and mappings, found {}",
                        kind(other)
                    ),
                ));
            }
        };
        for item in items {
            match item {
                Y::String(spec) => {
                    let (file, keys) = match spec.split_once(':') {
                        Some((f, k)) => (
                            f,
                            Some(
                                k.split(',')
                                    .map(|s| s.trim().to_string())
                                    .filter(|s| !s.is_empty())
                                    .collect::<Vec<_>>(),
                            ),
                        ),
                        None => (spec.as_str(), None),
                    };
                    let rel = normalize(&format!("{base}{file}"));
                    if keys.is_none() && !loaded.insert(rel.clone()) {
                        continue;
                    }
                    let Y::Mapping(m) = self.read_data_file(&rel, stage, "vars")? else {
                        unreachable!("read_data_file returns a mapping")
                    };
                    let m = match keys {
                        None => m,
                        Some(keys) => {
                            let mut sel = Mapping::new();
                            let empty = Mapping::new();
                            for k in keys {
                                let v = select(&k, &empty, &m).ok_or_else(|| {
                                    self.src.error(
                                        stage,
                                        "vars",
                                        Some(&spec),
                                        &format!("`{rel}` has no key `{k}`"),
                                    )
                                })?;
                                let segs = segments(&k);
                                let mut nested = v.clone();
                                // rebuild `a.b` as {a: {b: v}}
                                for s in segs[1..].iter().rev() {
                                    let mut one = Mapping::new();
                                    one.insert(Y::String(s.clone()), nested);
                                    nested = Y::Mapping(one);
                                }
                                let mut one = Mapping::new();
                                one.insert(Y::String(segs[0].clone()), nested);
                                let mut tmp = Vars {
                                    values: sel,
                                    ..Vars::default()
                                };
                                let _ = tmp.merge(one, None);
                                sel = tmp.values;
                            }
                            sel
                        }
                    };
                    vars.merge(m, Some(&rel)).map_err(|k| {
                        self.src
                            .error(
                                stage,
                                "vars",
                                Some(&spec),
                                &format!("`{k}` from `{rel}` is already defined"),
                            )
                            .hint(
                                "DVC does not let vars redefine a name either; rename one of them",
                            )
                    })?;
                }
                Y::Mapping(m) => {
                    vars.merge(m, None).map_err(|k| {
                        self.src
                            .error(
                                stage,
                                "vars",
                                Some(&k),
                                &format!("`{k}` is already defined"),
                            )
                            .hint(
                                "DVC does not let vars redefine a name either; rename one of them",
                            )
                    })?;
                }
                other => {
                    return Err(self.src.error(
                        stage,
                        "vars",
                        None,
                        &format!(
                            "entries must be file names or mappings, found {}",
                            kind(&other)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn run(&mut self, root: Mapping) -> Result<Conversion> {
        for (k, _) in &root {
            let key = scalar_text(k);
            if !TOP_KEYS.contains(&key.as_str()) {
                let mut e =
                    self.src
                        .error(None, &key, None, "is not a dvc.yaml section mlrun knows");
                e = match did_you_mean(&key, TOP_KEYS.iter().copied()) {
                    Some(s) => e.hint(format!("did you mean `{s}`?")),
                    None => e.hint(format!("sections are: {}", TOP_KEYS.join(", "))),
                };
                return Err(e);
            }
        }
        for key in ["plots", "metrics", "params", "artifacts", "datasets"] {
            if root.get(key).is_some_and(|v| !v.is_null()) {
                let why = match key {
                    "plots" => {
                        "the top-level `plots` section (plot definitions) is not converted: mlrun does not draw plots; the stages' plot files are kept as outputs"
                    }
                    "metrics" => {
                        "the top-level `metrics` list is not converted: pipeline.toml declares metrics per step (`metrics = [...]`)"
                    }
                    "params" => {
                        "the top-level `params` list is not converted: pipeline.toml declares params per step"
                    }
                    "artifacts" => {
                        "the top-level `artifacts` section is not converted: pipeline.toml has no artifact registry"
                    }
                    _ => "the top-level `datasets` section is not converted",
                };
                self.note(None, why);
            }
        }

        // the params-file: params.yaml when it exists, else the first params file a stage names
        let stages = match root.get("stages") {
            Some(Y::Mapping(m)) => m.clone(),
            Some(Y::Null) | None => {
                return Err(Error::invalid(format!(
                    "{}: there is no `stages` section, so there is nothing to convert",
                    self.src.shown
                )));
            }
            Some(other) => {
                return Err(self.src.error(
                    None,
                    "stages",
                    None,
                    &format!(
                        "must be a mapping of stage names to stages, found {}",
                        kind(other)
                    ),
                ));
            }
        };
        if self.dir.join("params.yaml").is_file() {
            self.primary = Some("params.yaml".into());
        } else {
            self.primary = first_params_file(&stages);
        }
        if let Some(p) = self.primary.clone()
            && self.dir.join(&p).is_file()
        {
            self.primary_params = params::read_params_file(&self.dir.join(&p)).map_err(|e| {
                e.hint(format!(
                    "`{p}` is the params file of the converted pipeline"
                ))
            })?;
        }

        let mut vars = Vars::default();
        let mut loaded = BTreeSet::new();
        if self.dir.join("params.yaml").is_file() {
            let Y::Mapping(m) = self.read_data_file("params.yaml", None, "vars")? else {
                unreachable!()
            };
            vars.merge(m, Some("params.yaml"))
                .map_err(|k| Error::invalid(format!("params.yaml: `{k}` is defined twice")))?;
            loaded.insert("params.yaml".to_string());
        }
        if let Some(v) = root.get("vars") {
            self.load_vars(v, "", None, &mut vars, &mut loaded)?;
        }

        let mut steps = Vec::new();
        for (k, def) in &stages {
            let name = scalar_text(k);
            let Y::Mapping(def) = def else {
                return Err(self.src.error(
                    Some(&name),
                    "cmd",
                    None,
                    &format!(
                        "a stage must be a mapping with a `cmd`, found {}",
                        kind(def)
                    ),
                ));
            };
            if def.contains_key("foreach") {
                self.foreach(&name, def, &vars, &mut steps)?;
            } else if def.contains_key("matrix") {
                self.matrix(&name, def, &vars, &mut steps)?;
            } else {
                let s = self.stage(&name, &name, def, &Mapping::new(), &vars, String::new())?;
                steps.push(s);
            }
        }
        Ok(self.write(steps))
    }

    fn foreach(
        &mut self,
        name: &str,
        def: &Mapping,
        vars: &Vars,
        steps: &mut Vec<Step>,
    ) -> Result<()> {
        for k in def.keys() {
            let k = scalar_text(k);
            if k != "foreach" && k != "do" {
                return Err(self
                    .src
                    .error(Some(name), &k, None, "is not allowed beside `foreach`")
                    .hint(
                        "a foreach stage has `foreach` and `do`; put the stage's keys under `do`",
                    ));
            }
        }
        let iter = self.expand_value(
            name,
            "foreach",
            &def["foreach"],
            &Mapping::new(),
            vars,
            Mode::Iterable,
        )?;
        let Some((items, has_key)) = foreach_items(&iter) else {
            return Err(self.src.error(
                Some(name),
                "foreach",
                None,
                &format!("must be a list or a mapping, found {}", kind(&iter)),
            ));
        };
        let Some(Y::Mapping(body)) = def.get("do") else {
            return Err(self.src.error(
                Some(name),
                "foreach",
                None,
                "has no `do` mapping (the stage to repeat for each item)",
            ));
        };
        for (key, item) in items {
            let mut local = Mapping::new();
            let shown_item = match &item {
                Y::Mapping(_) | Y::Sequence(_) => format!("#{key}"),
                v => scalar_text(v),
            };
            local.insert("item".into(), item);
            let origin = if has_key {
                local.insert("key".into(), Y::String(key.clone()));
                format!(" (foreach key \"{key}\")")
            } else {
                format!(" (foreach item {shown_item})")
            };
            let s = self.stage(name, &format!("{name}@{key}"), body, &local, vars, origin)?;
            steps.push(s);
        }
        Ok(())
    }

    fn matrix(
        &mut self,
        name: &str,
        def: &Mapping,
        vars: &Vars,
        steps: &mut Vec<Step>,
    ) -> Result<()> {
        let m = self.expand_value(
            name,
            "matrix",
            &def["matrix"],
            &Mapping::new(),
            vars,
            Mode::Iterable,
        )?;
        let Y::Mapping(m) = m else {
            return Err(self.src.error(
                Some(name),
                "matrix",
                None,
                &format!("must be a mapping of names to lists, found {}", kind(&m)),
            ));
        };
        let mut axes = Vec::new();
        for (k, v) in &m {
            let k = scalar_text(k);
            let Y::Sequence(values) = v else {
                return Err(self.src.error(
                    Some(name),
                    &format!("matrix.{k}"),
                    None,
                    &format!("must be a list of values, found {}", kind(v)),
                ));
            };
            axes.push((k, values.clone()));
        }
        let mut body = def.clone();
        body.remove("matrix");
        for (key, item) in matrix_items(&axes) {
            let origin = format!(
                " (matrix: {})",
                item.iter()
                    .map(|(k, v)| format!(
                        "{}={}",
                        scalar_text(k),
                        match v {
                            Y::Mapping(_) | Y::Sequence(_) =>
                                serde_json::to_string(v).unwrap_or_default(),
                            v => scalar_text(v),
                        }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut local = Mapping::new();
            local.insert("item".into(), Y::Mapping(item));
            local.insert("key".into(), Y::String(key.clone()));
            let s = self.stage(name, &format!("{name}@{key}"), &body, &local, vars, origin)?;
            steps.push(s);
        }
        Ok(())
    }

    fn expand_value(
        &self,
        stage: &str,
        key: &str,
        v: &Y,
        local: &Mapping,
        vars: &Vars,
        mode: Mode<'_>,
    ) -> Result<Y> {
        match v {
            Y::String(s) => expand(s, local, vars, mode).map_err(|e| {
                let needle = match &e {
                    TemplateError::Undefined(x) | TemplateError::NotText(x, _) => {
                        format!("${{{x}")
                    }
                    TemplateError::Malformed(x) => x.clone(),
                };
                let mut err = self.src.error(Some(stage), key, Some(&needle), &e.to_string());
                if let TemplateError::Undefined(x) = &e {
                    let names: Vec<String> = local
                        .keys()
                        .chain(vars.values.keys())
                        .map(scalar_text)
                        .collect();
                    let first = segments(x)[0].clone();
                    err = match did_you_mean(&first, names.iter().map(String::as_str)) {
                        Some(s) if s != first => err.hint(format!("did you mean `{s}`?")),
                        _ => err.hint(
                            "define it in params.yaml, in a file listed under `vars`, or inline under `vars`",
                        ),
                    };
                }
                err
            }),
            Y::Sequence(l) => Ok(Y::Sequence(
                l.iter()
                    .map(|i| self.expand_value(stage, key, i, local, vars, mode))
                    .collect::<Result<_>>()?,
            )),
            Y::Mapping(m) => {
                let mut out = Mapping::new();
                for (k, val) in m {
                    // keys are templated too (`- out/${item}.csv: {cache: false}`)
                    let k = match k {
                        Y::String(_) => self.expand_value(stage, key, k, local, vars, Mode::Text)?,
                        other => other.clone(),
                    };
                    out.insert(k, self.expand_value(stage, key, val, local, vars, mode)?);
                }
                Ok(Y::Mapping(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// A path of the stage (relative to its wdir) as a path of the pipeline.
    fn path(&self, wdir: &str, p: &str) -> String {
        normalize(&format!("{}{wdir}{p}", self.prefix))
    }

    fn stage(
        &mut self,
        base: &str,
        dvc_name: &str,
        def: &Mapping,
        local: &Mapping,
        vars: &Vars,
        origin: String,
    ) -> Result<Step> {
        let stage = Some(base);
        for k in def.keys() {
            let k = scalar_text(k);
            if !STAGE_KEYS.contains(&k.as_str()) {
                let mut e = self
                    .src
                    .error(stage, &k, None, "is not a DVC stage key mlrun knows");
                e = match did_you_mean(&k, STAGE_KEYS.iter().copied()) {
                    Some(s) => e.hint(format!("did you mean `{s}`?")),
                    None => e.hint(format!("stage keys are: {}", STAGE_KEYS.join(", "))),
                };
                return Err(e);
            }
        }
        let text = |c: &Self, key: &str, v: &Y, vars: &Vars| -> Result<String> {
            match c.expand_value(base, key, v, local, vars, Mode::Text)? {
                Y::String(s) => Ok(s),
                Y::Mapping(_) | Y::Sequence(_) => Err(c.src.error(
                    stage,
                    key,
                    None,
                    &format!("must be text, found {}", kind(v)),
                )),
                other => Ok(scalar_text(&other)),
            }
        };

        // wdir first: a stage's vars files and params files are relative to it
        let wdir = match def.get("wdir") {
            None | Some(Y::Null) => String::new(),
            Some(v) => {
                let w = normalize(&text(self, "wdir", v, vars)?);
                if w.is_empty() {
                    w
                } else {
                    format!("{}/", w.trim_end_matches('/'))
                }
            }
        };
        let mut vars = vars.clone();
        if let Some(v) = def.get("vars") {
            let mut loaded = BTreeSet::new();
            self.load_vars(v, &wdir, stage, &mut vars, &mut loaded)?;
        }
        let vars = &vars;

        let cmd = match def.get("cmd") {
            None | Some(Y::Null) => {
                return Err(self
                    .src
                    .error(stage, "cmd", None, "the stage has no `cmd`")
                    .hint(
                        "every DVC stage needs a `cmd`; add the command that makes its outputs",
                    ));
            }
            Some(v) => {
                let mode = Mode::Cmd {
                    params_file: self.primary.as_deref(),
                };
                match self.expand_value(base, "cmd", v, local, vars, mode)? {
                    Y::String(s) => s,
                    Y::Sequence(l) => {
                        let mut parts = Vec::new();
                        for c in l {
                            match c {
                                Y::String(s) => parts.push(s),
                                Y::Null | Y::Mapping(_) | Y::Sequence(_) => {
                                    return Err(self.src.error(
                                        stage,
                                        "cmd",
                                        None,
                                        &format!(
                                            "list entries must be commands, found {}",
                                            kind(&c)
                                        ),
                                    ));
                                }
                                other => parts.push(scalar_text(&other)),
                            }
                        }
                        parts.join(" && ")
                    }
                    other => {
                        return Err(self.src.error(
                            stage,
                            "cmd",
                            None,
                            &format!(
                                "must be a command or a list of commands, found {}",
                                kind(&other)
                            ),
                        ));
                    }
                }
            }
        };

        let mut step = Step {
            name: step_name(dvc_name),
            dvc_name: dvc_name.to_string(),
            origin,
            desc: None,
            frozen: false,
            cmd,
            cwd: self.path("", &wdir),
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Vec::new(),
            metrics: Vec::new(),
            keep_outputs: false,
        };
        let sname = dvc_name.to_string();
        let sn = Some(sname.as_str());

        if let Some(v) = def.get("desc") {
            step.desc = Some(text(self, "desc", v, vars)?);
        }
        match def.get("frozen") {
            None | Some(Y::Null) | Some(Y::Bool(false)) => {}
            Some(Y::Bool(true)) => step.frozen = true,
            Some(other) => {
                return Err(self.src.error(
                    stage,
                    "frozen",
                    None,
                    &format!("must be true or false, found {}", kind(other)),
                ));
            }
        }
        if matches!(def.get("always_changed"), Some(Y::Bool(true))) {
            self.note(sn, format!("`always_changed: true`: mlrun reruns a step only when something it depends on changed; run it with `mlrun run --force={}`", step.name));
        }

        if let Some(v) = def.get("deps") {
            let v = self.expand_value(base, "deps", v, local, vars, Mode::Text)?;
            let Y::Sequence(items) = v else {
                return Err(self.src.error(
                    stage,
                    "deps",
                    None,
                    &format!("must be a list of paths, found {}", kind(&v)),
                ));
            };
            for d in items {
                let d = match d {
                    Y::String(s) => s,
                    other => {
                        return Err(self.src.error(
                            stage,
                            "deps",
                            None,
                            &format!("entries must be paths, found {}", kind(&other)),
                        ));
                    }
                };
                if d.contains("://") {
                    self.note(sn, format!("dependency `{d}` is not in the project: mlrun tracks files in the project only, so the step runs without it as an input"));
                    continue;
                }
                let p = self.path(&wdir, &d);
                if !step.inputs.contains(&p) {
                    step.inputs.push(p);
                }
            }
        }

        let mut persisted = Vec::new();
        for section in ["outs", "metrics", "plots"] {
            let Some(v) = def.get(section) else { continue };
            let v = self.expand_value(base, section, v, local, vars, Mode::Text)?;
            let entries = path_entries(&v).map_err(|m| self.src.error(stage, section, None, &m))?;
            for (p, opts) in entries {
                let mut store = true;
                for (k, val) in &opts {
                    let k = scalar_text(k);
                    let known = OUT_KEYS.contains(&k.as_str())
                        || (section == "plots" && PLOT_KEYS.contains(&k.as_str()));
                    if !known {
                        return Err(self
                            .src
                            .error(
                                stage,
                                section,
                                Some(&p),
                                &format!(
                                    "`{k}` is not an option of `{section}` entries mlrun knows"
                                ),
                            )
                            .hint(format!("options are: {}", OUT_KEYS.join(", "))));
                    }
                    match (k.as_str(), val) {
                        ("cache", Y::Bool(b)) => store = *b,
                        ("persist", Y::Bool(true)) => {
                            step.keep_outputs = true;
                            persisted.push(self.path(&wdir, &p));
                        }
                        ("push", Y::Bool(false)) | ("remote", _) => self.note(sn, format!("`{k}` on `{p}`: mlrun keeps copies in its local object store only; there are no remotes")),
                        ("checkpoint", Y::Bool(true)) => self.note(sn, format!("`checkpoint: true` on `{p}`: mlrun has no checkpoint outputs; it is an ordinary output")),
                        (k, _) if PLOT_KEYS.contains(&k) => self.note(sn, format!("plot options of `{p}` (x, y, template, ...) are dropped: mlrun does not draw plots; the file is kept as an output")),
                        _ => {}
                    }
                }
                let path = self.path(&wdir, &p);
                if !step.outputs.iter().any(|(o, _)| *o == path) {
                    step.outputs.push((path.clone(), store));
                }
                if section == "metrics" {
                    step.metrics.push(path);
                }
            }
        }

        // `persist` is per output in DVC; `keep-outputs` is per step in mlrun
        let others: Vec<&str> = step
            .outputs
            .iter()
            .map(|(o, _)| o.as_str())
            .filter(|o| !persisted.iter().any(|p| p == o))
            .collect();
        if step.keep_outputs && !others.is_empty() {
            self.note(
                sn,
                format!(
                    "`persist: true` on {} is written as the step's `keep-outputs = true`, which also keeps {} in place while the step runs (DVC would delete {} first)",
                    quoted_list(&persisted),
                    quoted_list(&others),
                    if others.len() == 1 { "it" } else { "them" }
                ),
            );
        }

        if let Some(v) = def.get("params") {
            let v = self.expand_value(base, "params", v, local, vars, Mode::Text)?;
            self.stage_params(sn, base, &wdir, &v, &mut step)?;
        }
        Ok(step)
    }

    fn stage_params(
        &mut self,
        sn: Option<&str>,
        base: &str,
        wdir: &str,
        v: &Y,
        step: &mut Step,
    ) -> Result<()> {
        let stage = Some(base);
        let Y::Sequence(items) = v else {
            return Err(self.src.error(
                stage,
                "params",
                None,
                &format!("must be a list, found {}", kind(v)),
            ));
        };
        let default_file = normalize(&format!("{wdir}params.yaml"));
        // (file relative to dvc.yaml's directory, keys or the whole file)
        let mut uses: Vec<(String, Option<Vec<String>>)> = Vec::new();
        for item in items {
            match item {
                Y::String(k) => uses.push((default_file.clone(), Some(vec![k.clone()]))),
                Y::Mapping(m) => {
                    for (f, keys) in m {
                        let file = normalize(&format!("{wdir}{}", scalar_text(f)));
                        match keys {
                            Y::Null => uses.push((file, None)),
                            Y::Sequence(ks) if ks.is_empty() => uses.push((file, None)),
                            Y::Sequence(ks) => {
                                uses.push((file, Some(ks.iter().map(scalar_text).collect())))
                            }
                            other => {
                                return Err(self.src.error(
                                    stage,
                                    "params",
                                    Some(&scalar_text(f)),
                                    &format!(
                                        "the keys of `{}` must be a list, found {}",
                                        scalar_text(f),
                                        kind(other)
                                    ),
                                ));
                            }
                        }
                    }
                }
                other => {
                    return Err(self.src.error(
                        stage,
                        "params",
                        None,
                        &format!(
                            "entries must be keys or `file: [keys]`, found {}",
                            kind(other)
                        ),
                    ));
                }
            }
        }
        for (file, keys) in uses {
            if !self.dir.join(&file).is_file() {
                return Err(self
                    .src
                    .error(
                        stage,
                        "params",
                        None,
                        &format!("params file `{file}` does not exist"),
                    )
                    .hint("create it, or remove the params that name it"));
            }
            if self.primary.as_deref() == Some(file.as_str()) {
                match keys {
                    None => push_unique(&mut step.params, "*".to_string()),
                    Some(keys) => {
                        for k in keys {
                            if self.primary_params.contains_key(&k) {
                                push_unique(&mut step.params, k);
                            } else if self
                                .primary_params
                                .keys()
                                .any(|p| p.starts_with(&format!("{k}.")))
                            {
                                push_unique(&mut step.params, format!("{k}.*"));
                            } else {
                                let mut e = self.src.error(
                                    stage,
                                    "params",
                                    Some(&k),
                                    &format!("param `{k}` is not in `{file}`"),
                                );
                                if let Some(s) =
                                    did_you_mean(&k, self.primary_params.keys().map(String::as_str))
                                {
                                    e = e.hint(format!("did you mean `{s}`?"));
                                }
                                return Err(e);
                            }
                        }
                    }
                }
            } else {
                let primary = self.primary.clone().unwrap_or_default();
                let what = match &keys {
                    None => "the whole file".to_string(),
                    Some(k) => format!(
                        "keys {}",
                        k.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.note(sn, format!("params from `{file}` ({what}): pipeline.toml reads one params-file (`{primary}`), so `{file}` is an input of the step instead: a change to it reruns the step, but its values are not recorded as params"));
                let p = self.path("", &file);
                if !step.inputs.contains(&p) {
                    step.inputs.push(p);
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, steps: Vec<Step>) -> Conversion {
        let mut out = String::new();
        out.push_str(&format!(
            "# Converted from {} by `mlrun import`; each step says which DVC stage it came from.\n",
            self.src.shown
        ));
        if !self.notes.is_empty() {
            out.push_str("# What pipeline.toml cannot express is listed at the end.\n");
        }
        let params_file = self.primary.as_ref().map(|p| format!("{}{p}", self.prefix));
        if let Some(p) = &params_file {
            out.push_str(&format!("\n[pipeline]\nparams-file = {}\n", tstr(p)));
        }
        let mut used = BTreeSet::new();
        let mut names = Vec::new();
        let mut frozen = Vec::new();
        for mut s in steps {
            let mut name = s.name.clone();
            let mut n = 2;
            while used.contains(&name) {
                name = format!("{}-{n}", s.name);
                n += 1;
            }
            used.insert(name.clone());
            s.name = name;
            let mut block = String::new();
            block.push_str(&format!("[steps.{}]\n", tkey(&s.name)));
            block.push_str(&format!("cmd = {}\n", tstr(&s.cmd)));
            if !s.cwd.is_empty() {
                block.push_str(&format!("cwd = {}\n", tstr(s.cwd.trim_end_matches('/'))));
            }
            if !s.inputs.is_empty() {
                block.push_str(&format!(
                    "inputs = {}\n",
                    tarr(s.inputs.iter().map(|p| tstr(p)))
                ));
            }
            if !s.outputs.is_empty() {
                block.push_str(&format!(
                    "outputs = {}\n",
                    tarr(s.outputs.iter().map(|(p, store)| if *store {
                        tstr(p)
                    } else {
                        format!("{{ path = {}, store = false }}", tstr(p))
                    }))
                ));
            }
            if !s.params.is_empty() {
                block.push_str(&format!(
                    "params = {}\n",
                    tarr(s.params.iter().map(|p| tstr(p)))
                ));
            }
            if !s.metrics.is_empty() {
                block.push_str(&format!(
                    "metrics = {}\n",
                    tarr(s.metrics.iter().map(|p| tstr(p)))
                ));
            }
            if s.keep_outputs {
                block.push_str("keep-outputs = true\n");
            }
            out.push('\n');
            if s.frozen {
                out.push_str(&format!(
                    "# {} stage \"{}\"{} is frozen (`frozen: true`): DVC does not run it, so it\n# is left out and its outputs are used as they are. Uncomment it to run it with mlrun.\n",
                    self.src.shown, s.dvc_name, s.origin
                ));
                for l in block.lines() {
                    out.push_str(&format!("# {l}\n"));
                }
                frozen.push(s.dvc_name.clone());
                continue;
            }
            out.push_str(&format!(
                "# from {} stage \"{}\"{}\n",
                self.src.shown, s.dvc_name, s.origin
            ));
            if let Some(d) = &s.desc {
                for l in d.lines() {
                    out.push_str(&format!("# {l}\n"));
                }
            }
            out.push_str(&block);
            names.push((s.name.clone(), s.dvc_name.clone()));
        }
        if !self.notes.is_empty() {
            out.push_str("\n# Not expressed in pipeline.toml:\n");
            for n in &self.notes {
                let text = n.to_string();
                out.push_str(&format!("# - {}\n", text.replace('\n', "\n#   ")));
            }
        }
        Conversion {
            toml: out,
            steps: names,
            frozen,
            params_file,
            notes: self.notes.clone(),
        }
    }
}

fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// The first params file a stage uses (`- file.yaml: [keys]`, or a key of the stage's default
/// `params.yaml`, in its wdir), for pipelines without a params.yaml beside dvc.yaml.
fn first_params_file(stages: &Mapping) -> Option<String> {
    for def in stages.values() {
        let body = def.get("do").unwrap_or(def);
        let wdir = match body.get("wdir") {
            Some(Y::String(w)) if !w.contains("${") => {
                let w = normalize(w);
                if w.is_empty() { w } else { format!("{w}/") }
            }
            _ => String::new(),
        };
        if let Some(Y::Sequence(items)) = body.get("params") {
            for i in items {
                if let Y::String(_) = i {
                    return Some(normalize(&format!("{wdir}params.yaml")));
                }
                if let Y::Mapping(m) = i
                    && let Some((f, _)) = m.iter().next()
                    && let Y::String(f) = f
                    && !f.contains("${")
                {
                    return Some(normalize(&format!("{wdir}{f}")));
                }
            }
        }
    }
    None
}

/// A TOML basic string, on one line.
fn tstr(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn tkey(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        tstr(s)
    }
}

fn tarr(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    let one = format!("[{}]", items.join(", "));
    if one.len() <= 90 {
        return one;
    }
    let mut s = String::from("[\n");
    for i in items {
        s.push_str(&format!("    {i},\n"));
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Y {
        serde_norway::from_str(s).unwrap()
    }

    fn vars(s: &str, source: Option<&str>) -> Vars {
        let mut v = Vars::default();
        let Y::Mapping(m) = y(s) else { panic!() };
        v.merge(m, source).unwrap();
        v
    }

    #[test]
    fn templates_expand_from_vars_and_items() {
        let v = vars(
            "lr: 0.001\nsmall: 1.0e-5\nflag: true\nmodel: {name: cnn, layers: [1, 2]}\nn: 3",
            None,
        );
        let mut local = Mapping::new();
        local.insert("item".into(), y("{city: Paris, n: 2}"));
        let e = |s: &str| expand(s, &local, &v, Mode::Text).unwrap();
        assert_eq!(
            e("a ${lr} ${ small } ${flag}"),
            Y::String("a 0.001 1e-05 true".into())
        );
        assert_eq!(
            e("${model.name}/${model.layers[1]}"),
            Y::String("cnn/2".into())
        );
        assert_eq!(e("${item.city}-${item.n}"), Y::String("Paris-2".into()));
        assert_eq!(e("cost \\${n} ${n}"), Y::String("cost ${n} 3".into()));
        assert_eq!(
            expand("${nope.x}", &local, &v, Mode::Text),
            Err(TemplateError::Undefined("nope.x".into()))
        );
        assert!(matches!(
            expand("${model}", &local, &v, Mode::Text),
            Err(TemplateError::NotText(_, "a mapping"))
        ));
        assert!(matches!(
            expand("${lr", &local, &v, Mode::Text),
            Err(TemplateError::Malformed(_))
        ));
        assert_eq!(
            expand("${model.layers}", &local, &v, Mode::Iterable).unwrap(),
            y("[1, 2]")
        );
    }

    #[test]
    fn cmd_unpacks_mappings_and_keeps_params_for_mlrun() {
        let mut v = vars("train: {lr: 0.1, epochs: 3}", Some("params.yaml"));
        let Y::Mapping(m) =
            y("args: {name: a b, fast: true, slow: false, ids: [1, x y], opt: {depth: 2}}")
        else {
            panic!()
        };
        v.merge(m, None).unwrap();
        let mode = Mode::Cmd {
            params_file: Some("params.yaml"),
        };
        let got = expand(
            "train.py ${args} --lr ${train.lr}",
            &Mapping::new(),
            &v,
            mode,
        )
        .unwrap();
        assert_eq!(
            got,
            Y::String(
                "train.py --name 'a b' --fast --ids 1 'x y' --opt.depth 2 --lr {params.train.lr}"
                    .into()
            )
        );
        // an item shadows a params name; other files' values are expanded now
        let mut local = Mapping::new();
        local.insert("train".into(), y("{lr: 5}"));
        assert_eq!(
            expand("${train.lr}", &local, &v, mode).unwrap(),
            Y::String("5".into())
        );
    }

    #[test]
    fn foreach_names_follow_dvc() {
        let (items, key) = foreach_items(&y("[us, uk]")).unwrap();
        assert!(!key);
        assert_eq!(
            items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["us", "uk"]
        );
        let (items, _) = foreach_items(&y("[{a: 1}, {a: 2}]")).unwrap();
        assert_eq!(
            items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["0", "1"]
        );
        let (items, key) = foreach_items(&y("{zeta: 1, alpha: 2}")).unwrap();
        assert!(key);
        assert_eq!(
            items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["zeta", "alpha"]
        );
        assert!(foreach_items(&y("3")).is_none());
    }

    #[test]
    fn matrix_is_the_product_in_dvc_order() {
        let axes = vec![
            ("model".to_string(), vec![y("cnn"), y("xgb")]),
            ("lr".to_string(), vec![y("0.1"), y("{a: 1}")]),
        ];
        let items = matrix_items(&axes);
        let names: Vec<_> = items.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["cnn-0.1", "cnn-lr1", "xgb-0.1", "xgb-lr1"]);
        assert_eq!(items[2].1.get("model"), Some(&y("xgb")));
    }

    #[test]
    fn names_and_paths() {
        assert_eq!(step_name("train@cnn-0.1"), "train.cnn-0.1");
        assert_eq!(step_name("eval@a/b c"), "eval.a_b_c");
        assert_eq!(normalize("./src/../data/"), "data/");
        assert_eq!(normalize("sub/./x"), "sub/x");
        assert_eq!(normalize("."), "");
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(sh_quote("it's"), "'it'\"'\"'s'");
        let tricky = "a \"b\" \\ c\nd\u{1}";
        let t: toml::Table = toml::from_str(&format!("k = {}", tstr(tricky))).unwrap();
        assert_eq!(t["k"].as_str(), Some(tricky));
    }

    #[test]
    fn undefined_template_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dvc.yaml");
        let text = "stages:\n  prep:\n    cmd: echo hi\n  train:\n    deps: [a]\n    cmd: python3 t.py --lr ${lr}\n";
        let err = convert_text(
            text,
            &Options {
                file: &file,
                shown: Path::new("dvc.yaml"),
                prefix: "",
            },
        )
        .unwrap_err();
        assert!(
            err.message
                .starts_with("dvc.yaml:6: stage `train`, `cmd`: `${lr}` is not defined"),
            "{}",
            err.message
        );
    }

    fn convert_in(dir: &Path, files: &[(&str, &str)]) -> Result<Conversion> {
        for (p, c) in files {
            std::fs::write(dir.join(p), c).unwrap();
        }
        let file = dir.join("dvc.yaml");
        convert(&Options {
            file: &file,
            shown: Path::new("dvc.yaml"),
            prefix: "",
        })
    }

    #[test]
    fn matrix_axes_from_vars_stage_vars_and_colliding_names() {
        let dir = tempfile::tempdir().unwrap();
        let c = convert_in(
            dir.path(),
            &[
                ("params.yaml", "lrs: [0.1, 0.2]\n"),
                (
                    "dvc.yaml",
                    "stages:\n  fit.0.1:\n    cmd: echo clash\n  fit:\n    vars:\n      - opt: adam\n    matrix:\n      lr: ${lrs}\n    cmd: echo ${item.lr} ${opt} ${key}\n",
                ),
            ],
        )
        .unwrap();
        let names: Vec<_> = c.steps.iter().map(|(m, d)| format!("{m}<{d}")).collect();
        assert_eq!(
            names,
            ["fit.0.1<fit.0.1", "fit.0.1-2<fit@0.1", "fit.0.2<fit@0.2"]
        );
        assert!(c.toml.contains("cmd = \"echo 0.2 adam 0.2\""), "{}", c.toml);
        // a name defined twice is refused, as DVC refuses it
        let err = convert_in(
            dir.path(),
            &[(
                "dvc.yaml",
                "vars:\n  - lrs: 1\nstages:\n  a:\n    cmd: echo\n",
            )],
        )
        .unwrap_err();
        assert!(
            err.message.contains("`lrs` is already defined"),
            "{}",
            err.message
        );
    }
}

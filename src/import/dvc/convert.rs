//! The conversion of a whole dvc.yaml: the `Converter` with its notes, reading vars and
//! params files, and the walk over `stages`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value as Y};

use super::*;
use crate::error::{Error, Result};
use crate::pipeline::diag::did_you_mean;
use crate::pipeline::params::{self, Params};

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

pub(super) struct Converter<'a> {
    pub(super) src: Src<'a>,
    /// dvc.yaml's directory, where its relative files are read
    pub(super) dir: PathBuf,
    pub(super) prefix: String,
    pub(super) notes: Vec<Note>,
    /// the params-file of the result, relative to dvc.yaml's directory
    pub(super) primary: Option<String>,
    pub(super) primary_params: Params,
}

/// One stage ready to be written.
pub(super) struct Step {
    pub(super) name: String,
    pub(super) dvc_name: String,
    pub(super) origin: String,
    pub(super) desc: Option<String>,
    pub(super) frozen: bool,
    pub(super) cmd: String,
    pub(super) cwd: String,
    pub(super) inputs: Vec<String>,
    pub(super) outputs: Vec<(String, bool)>,
    pub(super) params: Vec<String>,
    pub(super) metrics: Vec<String>,
    /// some output has `persist: true`: the step gets `keep-outputs = true`
    pub(super) keep_outputs: bool,
}

/// An entry of `outs`, `metrics` or `plots`: its path and options.
pub(super) fn path_entries(v: &Y) -> std::result::Result<Vec<(String, Mapping)>, String> {
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
    pub(super) fn note(&mut self, stage: Option<&str>, reason: impl Into<String>) {
        let n = Note {
            stage: stage.map(str::to_string),
            reason: reason.into(),
        };
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    pub(super) fn read_data_file(&self, rel: &str, stage: Option<&str>, key: &str) -> Result<Y> {
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
    pub(super) fn load_vars(
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
                Y::String(spec) => self.vars_file(&spec, base, stage, vars, loaded)?,
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

    /// A `vars` file entry, `file` or `file:key,key`: its values (or those keys, nested as in
    /// the file) merged into `vars`; a whole file only once.
    fn vars_file(
        &mut self,
        spec: &str,
        base: &str,
        stage: Option<&str>,
        vars: &mut Vars,
        loaded: &mut BTreeSet<String>,
    ) -> Result<()> {
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
            None => (spec, None),
        };
        let rel = normalize(&format!("{base}{file}"));
        if keys.is_none() && !loaded.insert(rel.clone()) {
            return Ok(());
        }
        let Y::Mapping(m) = self.read_data_file(&rel, stage, "vars")? else {
            unreachable!("read_data_file returns a mapping")
        };
        let m = match keys {
            None => m,
            Some(keys) => self.select_vars(&m, &keys, &rel, spec, stage)?,
        };
        vars.merge(m, Some(&rel)).map_err(|k| {
            self.src
                .error(
                    stage,
                    "vars",
                    Some(spec),
                    &format!("`{k}` from `{rel}` is already defined"),
                )
                .hint("DVC does not let vars redefine a name either; rename one of them")
        })?;
        Ok(())
    }

    /// Only `keys` of a vars file's mapping, each rebuilt at its place (`a.b` as `{a: {b: v}}`).
    fn select_vars(
        &self,
        m: &Mapping,
        keys: &[String],
        rel: &str,
        spec: &str,
        stage: Option<&str>,
    ) -> Result<Mapping> {
        let mut sel = Mapping::new();
        let empty = Mapping::new();
        for k in keys {
            let v = select(k, &empty, m).ok_or_else(|| {
                self.src.error(
                    stage,
                    "vars",
                    Some(spec),
                    &format!("`{rel}` has no key `{k}`"),
                )
            })?;
            let segs = segments(k);
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
        Ok(sel)
    }

    pub(super) fn run(&mut self, root: Mapping) -> Result<Conversion> {
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

    /// A path of the stage (relative to its wdir) as a path of the pipeline.
    pub(super) fn path(&self, wdir: &str, p: &str) -> String {
        normalize(&format!("{}{wdir}{p}", self.prefix))
    }
}

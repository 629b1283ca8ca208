//! One stage of dvc.yaml (after expansion) converted into a step: its command, paths, wdir and
//! `params`.

use std::collections::BTreeSet;

use serde_norway::{Mapping, Value as Y};

use super::*;
use crate::error::Result;
use crate::pipeline::diag::did_you_mean;

impl Converter<'_> {
    pub(super) fn stage(
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

        let cmd = self.stage_cmd(base, def, local, vars)?;

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
            self.stage_deps(base, dvc_name, &wdir, v, &mut step)?;
        }

        self.stage_outputs(base, dvc_name, &wdir, def, local, vars, &mut step)?;

        if let Some(v) = def.get("params") {
            let v = self.expand_value(base, "params", v, local, vars, Mode::Text)?;
            self.stage_params(sn, base, &wdir, &v, &mut step)?;
        }
        Ok(step)
    }

    /// `deps` as the step's inputs; a URL is left out with a note.
    fn stage_deps(
        &mut self,
        base: &str,
        dvc_name: &str,
        wdir: &str,
        v: Y,
        step: &mut Step,
    ) -> Result<()> {
        let stage = Some(base);
        let sn = Some(dvc_name);
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
            let p = self.path(wdir, &d);
            if !step.inputs.contains(&p) {
                step.inputs.push(p);
            }
        }
        Ok(())
    }

    /// The stage's `cmd`, expanded; a list runs in sequence (joined with ` && `).
    fn stage_cmd(
        &mut self,
        base: &str,
        def: &Mapping,
        local: &Mapping,
        vars: &Vars,
    ) -> Result<String> {
        let stage = Some(base);
        Ok(match def.get("cmd") {
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
        })
    }

    /// `outs`, `metrics` and `plots` as the step's outputs (and metrics), with notes for the
    /// options mlrun does not have.
    #[allow(clippy::too_many_arguments)]
    fn stage_outputs(
        &mut self,
        base: &str,
        dvc_name: &str,
        wdir: &str,
        def: &Mapping,
        local: &Mapping,
        vars: &Vars,
        step: &mut Step,
    ) -> Result<()> {
        let stage = Some(base);
        let sn = Some(dvc_name);
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
                            persisted.push(self.path(wdir, &p));
                        }
                        ("push", Y::Bool(false)) | ("remote", _) => self.note(sn, format!("`{k}` on `{p}`: mlrun keeps copies in its local object store only; there are no remotes")),
                        ("checkpoint", Y::Bool(true)) => self.note(sn, format!("`checkpoint: true` on `{p}`: mlrun has no checkpoint outputs; it is an ordinary output")),
                        (k, _) if PLOT_KEYS.contains(&k) => self.note(sn, format!("plot options of `{p}` (x, y, template, ...) are dropped: mlrun does not draw plots; the file is kept as an output")),
                        _ => {}
                    }
                }
                let path = self.path(wdir, &p);
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
        Ok(())
    }

    pub(super) fn stage_params(
        &mut self,
        sn: Option<&str>,
        base: &str,
        wdir: &str,
        v: &Y,
        step: &mut Step,
    ) -> Result<()> {
        for (file, keys) in self.param_uses(base, wdir, v)? {
            self.use_params(sn, base, file, keys, step)?;
        }
        Ok(())
    }

    /// A stage's `params`, read: (file relative to dvc.yaml's directory, keys or the whole file).
    fn param_uses(
        &self,
        base: &str,
        wdir: &str,
        v: &Y,
    ) -> Result<Vec<(String, Option<Vec<String>>)>> {
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
        Ok(uses)
    }

    /// One params file a stage reads: the primary one's keys become the step's params (each
    /// must be in it); another file becomes an input of the step, with a note.
    fn use_params(
        &mut self,
        sn: Option<&str>,
        base: &str,
        file: String,
        keys: Option<Vec<String>>,
        step: &mut Step,
    ) -> Result<()> {
        let stage = Some(base);
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
        Ok(())
    }
}

//! Checks of single keys of pipeline.toml: params and their overrides, durations, `model`,
//! `trace` and `trace-ignore`, lockfiles, `env` entries, a step's `cmd` and `params`.

use std::collections::HashMap;
use std::time::Duration;

use super::check::Checker;
use super::paths::normalize;
use super::{Cmd, ModelDecl, PathDecl, TraceMode, trace_ignore_globs};
use crate::pipeline::diag::{Diagnostic, did_you_mean};
use crate::pipeline::params::{self, Params};
use crate::pipeline::raw::{RawCmd, RawPipeline, RawTrace, Sp};

impl Checker<'_> {
    pub(super) fn params(&mut self, raw: &RawPipeline, overrides: &[String]) -> Option<Params> {
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
    pub(super) fn duration(
        &mut self,
        key: &str,
        v: &Sp<String>,
        zero_ok: bool,
    ) -> Option<Duration> {
        match crate::pipeline::duration::parse(&v.value) {
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
    pub(super) fn model(
        &mut self,
        step: &str,
        m: &crate::pipeline::raw::RawModel,
        outputs: &[PathDecl],
        taken: &mut HashMap<String, String>,
    ) -> Option<ModelDecl> {
        let key = format!("steps.{step}.model");
        let name = &m.name.value;
        if let Err(e) = crate::pipeline::model_name::check_name(name) {
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

    pub(super) fn trace_mode(&mut self, table: &str, t: &Sp<RawTrace>) -> Option<TraceMode> {
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
    pub(super) fn lockfiles(&mut self, patterns: &[Sp<String>]) -> Vec<String> {
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
            match crate::pipeline::lockfiles::expand(self.root, v) {
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

    pub(super) fn trace_ignore(&mut self, table: &str, patterns: &[Sp<String>]) -> Vec<String> {
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

    pub(super) fn env_entry(&mut self, table: &str, k: &Sp<String>, v: &Sp<String>) -> bool {
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
    pub(super) fn cmd(
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

    pub(super) fn step_param(
        &mut self,
        step: &str,
        p: &Sp<String>,
        params: &Params,
        out: &mut Params,
    ) {
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
}

//! The converted steps written as pipeline.toml text, and the TOML quoting it needs.

use std::collections::BTreeSet;

use serde_norway::{Mapping, Value as Y};

use super::*;

impl Converter<'_> {
    pub(super) fn write(&mut self, steps: Vec<Step>) -> Conversion {
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

pub(super) fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// The first params file a stage uses (`- file.yaml: [keys]`, or a key of the stage's default
/// `params.yaml`, in its wdir), for pipelines without a params.yaml beside dvc.yaml.
pub(super) fn first_params_file(stages: &Mapping) -> Option<String> {
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
pub(super) fn tstr(s: &str) -> String {
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

pub(super) fn tkey(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        tstr(s)
    }
}

pub(super) fn tarr(items: impl Iterator<Item = String>) -> String {
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

//! `${...}` templates as DVC expands them: the merged `vars`, selecting a value by its key,
//! writing scalars as Python does, unpacking a mapping in `cmd`.

use std::collections::HashMap;
use std::fmt;

use serde_norway::{Mapping, Value as Y};

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

pub(super) fn merge_into(
    into: &mut Mapping,
    k: Y,
    v: Y,
    path: &str,
) -> std::result::Result<(), String> {
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
pub(super) fn templates(
    s: &str,
) -> std::result::Result<Vec<(std::ops::Range<usize>, &str)>, TemplateError> {
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
pub(super) fn segments(expr: &str) -> Vec<String> {
    expr.replace('[', ".")
        .replace(']', "")
        .split('.')
        .map(|s| s.trim().to_string())
        .collect()
}

pub(super) fn select<'v>(expr: &str, local: &'v Mapping, vars: &'v Mapping) -> Option<&'v Y> {
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
pub(super) fn py_float(f: f64) -> String {
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

pub(super) fn flatten_mapping(prefix: &str, m: &Mapping, out: &mut Vec<(String, Y)>) {
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
pub(super) fn unpack(expr: &str, m: &Mapping) -> std::result::Result<String, TemplateError> {
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

pub(super) fn is_param_key(expr: &str) -> bool {
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

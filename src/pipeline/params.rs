//! Parameters: flattening nested tables to dotted keys, reading a params-file, `--param`
//! overrides, `train.*` globs and `{params.x}` placeholders.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// Flat, sorted parameter map: dotted key → canonical JSON value.
pub type Params = BTreeMap<String, Value>;

pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Flatten nested objects into dotted keys; arrays and scalars are leaves.
pub fn flatten(prefix: &str, v: &Value, out: &mut Params) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, inner, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

/// Read a params-file (YAML, JSON or TOML, chosen by extension) into flat params.
pub fn read_params_file(path: &Path) -> Result<Params> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(format!("cannot read params-file `{}`", path.display())).cause(e)
    })?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let value: Value = match ext.as_str() {
        "json" => serde_json::from_str(&text).map_err(|e| {
            Error::invalid(format!(
                "params-file `{}` is not valid JSON",
                path.display()
            ))
            .cause(e)
        })?,
        "yaml" | "yml" => serde_norway::from_str(&text).map_err(|e| {
            Error::invalid(format!(
                "params-file `{}` is not valid YAML",
                path.display()
            ))
            .cause(e)
        })?,
        "toml" => {
            let t: toml::Table = toml::from_str(&text).map_err(|e| {
                Error::invalid(format!(
                    "params-file `{}` is not valid TOML",
                    path.display()
                ))
                .cause(e.message())
            })?;
            toml_to_json(&toml::Value::Table(t))
        }
        _ => {
            return Err(Error::invalid(format!(
                "params-file `{}` has an unknown format",
                path.display()
            ))
            .hint("name it with a .yaml, .yml, .json or .toml extension"));
        }
    };
    if !value.is_object() && !value.is_null() {
        return Err(Error::invalid(format!(
            "params-file `{}` must hold a mapping of names to values",
            path.display()
        )));
    }
    let mut out = Params::new();
    flatten("", &value, &mut out);
    Ok(out)
}

/// Parse `--param key=value`: the value is read as a TOML value when it is one (`0.1`, `true`,
/// `[1, 2]`), else taken as a string.
pub fn parse_override(arg: &str) -> Result<(String, Value)> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(
            Error::invalid(format!("`--param {arg}` is not of the form key=value"))
                .hint("for example `--param train.lr=0.01`"),
        );
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(Error::invalid(format!("`--param {arg}` has an empty key")));
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|t| t.get("v").map(toml_to_json))
        .unwrap_or_else(|| Value::String(value.to_string()));
    Ok((key.to_string(), parsed))
}

/// The text a param value becomes in a command or an environment variable.
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// `MLRUN_PARAM_TRAIN_N_EST` for `train.n_est`.
pub fn env_name(key: &str) -> String {
    let mut s = String::from("MLRUN_PARAM_");
    s.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    s
}

/// A `{params.KEY}` placeholder found in a command string.
#[derive(Debug, PartialEq)]
pub struct Placeholder {
    /// byte range of the whole `{params.KEY}` in the string
    pub range: std::ops::Range<usize>,
    pub key: String,
}

pub fn placeholders(s: &str) -> Vec<Placeholder> {
    const OPEN: &str = "{params.";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = s[from..].find(OPEN) {
        let start = from + pos;
        let key_start = start + OPEN.len();
        let key_len = s[key_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(s.len() - key_start);
        let end = key_start + key_len;
        if key_len > 0 && s[end..].starts_with('}') {
            out.push(Placeholder {
                range: start..end + 1,
                key: s[key_start..end].to_string(),
            });
            from = end + 1;
        } else {
            from = key_start;
        }
    }
    out
}

/// Replace every placeholder; the caller has checked that each key exists.
pub fn substitute(s: &str, params: &Params) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for p in placeholders(s) {
        out.push_str(&s[last..p.range.start]);
        if let Some(v) = params.get(&p.key) {
            out.push_str(&render(v));
        }
        last = p.range.end;
    }
    out.push_str(&s[last..]);
    out
}

/// Does a `params` entry of a step (a key or a glob like `train.*`) select `key`?
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

pub fn glob_matcher(pattern: &str) -> Result<globset::GlobMatcher> {
    globset::Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::invalid(format!("`{pattern}` is not a valid pattern")).cause(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_substitutes_placeholders() {
        let mut p = Params::new();
        p.insert("train.lr".into(), Value::from(0.5));
        p.insert("name".into(), Value::from("x y"));
        let s = "run {params.train.lr} {params.name} {not} ${HOME} {params.}";
        assert_eq!(placeholders(s).len(), 2);
        assert_eq!(substitute(s, &p), "run 0.5 x y {not} ${HOME} {params.}");
    }

    #[test]
    fn overrides_parse_as_toml_values() {
        assert_eq!(parse_override("a=0.1").unwrap().1, Value::from(0.1));
        assert_eq!(parse_override("a=true").unwrap().1, Value::Bool(true));
        assert_eq!(
            parse_override("a=hello world").unwrap().1,
            Value::from("hello world")
        );
        assert!(parse_override("nokey").is_err());
    }

    #[test]
    fn env_names_are_shell_safe() {
        assert_eq!(env_name("train.n-est"), "MLRUN_PARAM_TRAIN_N_EST");
    }
}

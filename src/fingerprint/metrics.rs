//! Metrics a step reports: numbers in its declared metric files (JSON, YAML or TOML, nested keys
//! flattened to `a.b.c`) and `key=value` lines it appended to `$MLRUN_METRICS`. Anything that is
//! not a number is skipped with a warning, never guessed at.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::pipeline::params::{Params, flatten, toml_to_json};

pub struct Metrics {
    /// key → (value, source)
    pub values: BTreeMap<String, (f64, String)>,
    pub warnings: Vec<String>,
}

fn parse_file(path: &Path, text: &str) -> Result<Value, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "yaml" | "yml" => serde_norway::from_str(text).map_err(|e| e.to_string()),
        "toml" => toml::from_str::<toml::Table>(text)
            .map(|t| toml_to_json(&toml::Value::Table(t)))
            .map_err(|e| e.message().to_string()),
        "json" => serde_json::from_str(text).map_err(|e| e.to_string()),
        _ => serde_json::from_str(text)
            .or_else(|_| serde_norway::from_str(text))
            .map_err(|e| format!("not JSON, YAML or TOML ({e})")),
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            values: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    fn insert(&mut self, key: String, v: f64, source: &str) {
        if let Some((_, old)) = self.values.get(&key)
            && old != source
        {
            self.warnings.push(format!("metric `{key}` is reported by both `{old}` and `{source}`; keeping the value from `{source}`"));
        }
        self.values.insert(key, (v, source.to_string()));
    }

    /// Read one declared metrics file (`rel` is how it is shown and recorded).
    pub fn read_file(&mut self, abs: &Path, rel: &str) -> Result<(), String> {
        let text = std::fs::read_to_string(abs)
            .map_err(|e| format!("cannot read metrics file `{rel}`: {e}"))?;
        let value = parse_file(abs, &text)
            .map_err(|e| format!("metrics file `{rel}` cannot be parsed: {e}"))?;
        let mut flat = Params::new();
        flatten("", &value, &mut flat);
        for (k, v) in flat {
            let key = if k.is_empty() { rel.to_string() } else { k };
            match v {
                Value::Number(n) => match n.as_f64() {
                    Some(f) if f.is_finite() => self.insert(key, f, rel),
                    _ => self.warnings.push(format!(
                        "metric `{key}` in `{rel}` is not a finite number; skipped"
                    )),
                },
                other => self.warnings.push(format!(
                    "metric `{key}` in `{rel}` is not a number ({}); skipped",
                    match other {
                        Value::String(_) => "a string",
                        Value::Bool(_) => "a boolean",
                        Value::Array(_) => "a list",
                        Value::Null => "null",
                        _ => "a table",
                    }
                )),
            }
        }
        Ok(())
    }

    /// Read the `$MLRUN_METRICS` file: `key=value` per line, `#` comments and blank lines ignored.
    pub fn read_lines(&mut self, text: &str) {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = line
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .filter(|(k, _)| !k.is_empty())
                .and_then(|(k, v)| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(|f| (k, f))
                });
            match parsed {
                Some((k, v)) => self.insert(k.to_string(), v, "MLRUN_METRICS"),
                None => self.warnings.push(format!(
                    "line {} of $MLRUN_METRICS is not `key=number`: `{line}`; skipped",
                    n + 1
                )),
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_numbers_flatten_and_others_warn() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.json");
        std::fs::write(&p, r#"{"acc": 0.9, "per_class": {"a": 1}, "name": "x"}"#).unwrap();
        let mut m = Metrics::new();
        m.read_file(&p, "m.json").unwrap();
        assert_eq!(m.values["acc"].0, 0.9);
        assert_eq!(m.values["per_class.a"].0, 1.0);
        assert_eq!(m.warnings.len(), 1);
    }

    #[test]
    fn metric_lines() {
        let mut m = Metrics::new();
        m.read_lines("a=1\n# c\n\nb = 2.5\nbad line\nc=nan\n");
        assert_eq!(m.values.len(), 2);
        assert_eq!(m.warnings.len(), 2);
    }
}

//! Metrics a step reports: numbers in its declared metric files (JSON, YAML or TOML, nested keys
//! flattened to `a.b.c`) and `key=value` lines it appended to `$MLRUN_METRICS`. Anything that is
//! not a number is skipped with a warning, never guessed at.
//!
//! Values are exact: every format is parsed to the nearest f64 (the correctly rounded one, so
//! `0.9114273274303613` stays that double, bit for bit), integers stay integers (within ±2^53,
//! where every integer is a double; a larger one is recorded as the nearest double, with a
//! warning), and values that are not finite (`NaN` and `Infinity` as Python's `json` writes
//! them, YAML's `.nan`/`.inf`, TOML's `nan`/`inf`, `nan`/`inf` lines) are recorded as such. In
//! JSON a metric is a number, or the string `"nan"`, `"inf"` or `"-inf"` (JSON has no other way
//! to say it); see `to_json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::pipeline::params::{Params, flatten};

pub struct Metrics {
    /// key → (value, source)
    pub values: BTreeMap<String, (f64, String)>,
    pub warnings: Vec<String>,
}

/// Marks a value that is not finite inside the JSON tree the parsers produce (JSON numbers
/// cannot hold one); never a string a file could contain, because of the NUL.
const NON_FINITE: &str = "\0mlrun:non-finite:";

fn non_finite(v: f64) -> Value {
    Value::String(format!("{NON_FINITE}{}", text_of_non_finite(v)))
}

fn text_of_non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "nan"
    } else if v > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

fn number(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| non_finite(f), Value::Number)
}

fn yaml_to_json(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                number(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Bool(b) => b.to_string(),
                        Y::Number(n) => n.to_string(),
                        Y::Null => "null".into(),
                        other => serde_norway::to_string(&other)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

fn toml_to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::Float(f) => number(f),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::String(s) => Value::String(s),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// JSON as Python's `json.dump` writes it by default: `NaN`, `Infinity` and `-Infinity` where
/// a number goes. They are replaced (outside strings) by markers, then parsed as JSON.
fn json_with_non_finite(text: &str) -> Option<Value> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            // copy the string literal whole, escapes included
            let mut end = 1;
            let bytes = rest.as_bytes();
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            let end = (end + 1).min(rest.len());
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t));
        if let Some(t) = token {
            let v = match t {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                _ => f64::NEG_INFINITY,
            };
            out.push_str(&serde_json::to_string(&non_finite(v)).ok()?);
            rest = &rest[t.len()..];
            changed = true;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !changed {
        return None;
    }
    serde_json::from_str(&out).ok()
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).or_else(|e| json_with_non_finite(text).ok_or(e.to_string()))
}

fn parse_file(path: &Path, text: &str) -> Result<Value, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let yaml = |text: &str| {
        serde_norway::from_str::<serde_norway::Value>(text)
            .map(yaml_to_json)
            .map_err(|e| e.to_string())
    };
    match ext.as_str() {
        "yaml" | "yml" => yaml(text),
        "toml" => toml::from_str::<toml::Table>(text)
            .map(|t| toml_to_json(toml::Value::Table(t)))
            .map_err(|e| e.message().to_string()),
        "json" => parse_json(text),
        _ => parse_json(text)
            .or_else(|_| yaml(text))
            .map_err(|e| format!("not JSON, YAML or TOML ({e})")),
    }
}

/// The double an integer is recorded as, and a warning when that is not the integer itself.
fn integer(key: &str, i: i128, f: f64) -> Option<String> {
    (f as i128 != i).then(|| {
        format!(
            "metric `{key}` = {i} is an integer too large to be recorded exactly (beyond 2^53); recorded as {}",
            to_json(f)
        )
    })
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
                Value::Number(n) => {
                    let exact_int = n
                        .as_i64()
                        .map(i128::from)
                        .or_else(|| n.as_u64().map(i128::from));
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    if let Some(w) = exact_int.and_then(|i| integer(&key, i, f)) {
                        self.warnings.push(w);
                    }
                    self.insert(key, f, rel);
                }
                Value::String(s) if s.starts_with(NON_FINITE) => {
                    let f = parse_number(&s[NON_FINITE.len()..]).unwrap_or(f64::NAN);
                    self.insert(key, f, rel);
                }
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
                .and_then(|(k, v)| parse_number(v).map(|f| (k, v, f)));
            match parsed {
                Some((k, text, v)) => {
                    if let Some(w) = text.parse::<i128>().ok().and_then(|i| integer(k, i, v)) {
                        self.warnings.push(w);
                    }
                    self.insert(k.to_string(), v, "MLRUN_METRICS")
                }
                None => self.warnings.push(format!(
                    "line {} of $MLRUN_METRICS is not `key=number`: `{line}`; skipped",
                    n + 1
                )),
            }
        }
    }
}

/// A number as a step writes it: decimal (correctly rounded), or `nan`, `inf`, `-inf`,
/// `infinity` in any case (Python's `repr` and `str` write `nan` and `inf`).
pub fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Two metric values are the same: the same double bit for bit (so -0.0 is not 0.0), or both
/// NaN (a NaN is never equal to itself).
pub fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// A metric value in JSON, exactly: an integral value within ±2^53 as an integer (`1500`, not
/// `1500.0`), any other finite value as the shortest decimal that reads back as the same double,
/// and a value that is not finite as the string `"nan"`, `"inf"` or `"-inf"` (JSON's `null`
/// would say there is no value).
pub fn to_json(v: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if !v.is_finite() {
        Value::String(text_of_non_finite(v).into())
    } else if v.fract() == 0.0 && v.abs() <= EXACT && !(v == 0.0 && v.is_sign_negative()) {
        Value::from(v as i64)
    } else {
        number(v)
    }
}

/// `serialize_with` for a map of metric values (see `to_json`).
pub fn ser_map<S: serde::Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(k, v)| (k, to_json(*v))))
}

/// `serialize_with` for an optional metric value (see `to_json`).
pub fn ser_opt<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&to_json(*v)),
        None => s.serialize_none(),
    }
}

/// How a metric value is stored: `metrics.value` (a REAL, exact; NULL for NaN, which SQLite
/// cannot hold) and `metrics.exact`, the value as text where the REAL cannot say it (NaN, and
/// -0.0, whose sign SQLite drops).
pub fn to_columns(v: f64) -> (Option<f64>, Option<&'static str>) {
    if v.is_nan() {
        (None, Some("nan"))
    } else if v == 0.0 && v.is_sign_negative() {
        (Some(v), Some("-0.0"))
    } else {
        (Some(v), None)
    }
}

/// The value `to_columns` stored.
pub fn from_columns(value: Option<f64>, exact: Option<&str>) -> f64 {
    exact.and_then(parse_number).or(value).unwrap_or(f64::NAN)
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
        m.read_lines("a=1\n# c\n\nb = 2.5\nbad line\nc=nan\nd=-inf\n");
        assert_eq!(m.values.len(), 4);
        assert_eq!(m.warnings.len(), 1);
        assert!(m.values["c"].0.is_nan());
        assert_eq!(m.values["d"].0, f64::NEG_INFINITY);
    }

    #[test]
    fn the_issue_example_is_exact_in_every_format() {
        let d = tempfile::tempdir().unwrap();
        let want = 0.9114273274303613_f64;
        for (name, text) in [
            ("m.json", "{\"roc_auc\": 0.9114273274303613}"),
            ("m.yaml", "roc_auc: 0.9114273274303613\n"),
            ("m.toml", "roc_auc = 0.9114273274303613\n"),
        ] {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            let mut m = Metrics::new();
            m.read_file(&p, name).unwrap();
            assert_eq!(m.values["roc_auc"].0.to_bits(), want.to_bits(), "{name}");
        }
        assert_eq!(to_json(want).to_string(), "0.9114273274303613");
    }

    #[test]
    fn non_finite_values_in_every_format() {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in [
            // Python's json.dump writes these by default
            (
                "m.json",
                r#"{"a": NaN, "b": Infinity, "c": -Infinity, "s": "NaN Infinity"}"#,
            ),
            ("m.yaml", "a: .nan\nb: .inf\nc: -.inf\ns: NaN Infinity\n"),
            (
                "m.toml",
                "a = nan\nb = inf\nc = -inf\ns = \"NaN Infinity\"\n",
            ),
        ] {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            let mut m = Metrics::new();
            m.read_file(&p, name).unwrap();
            assert!(m.values["a"].0.is_nan(), "{name}");
            assert_eq!(m.values["b"].0, f64::INFINITY, "{name}");
            assert_eq!(m.values["c"].0, f64::NEG_INFINITY, "{name}");
            assert!(
                !m.values.contains_key("s"),
                "{name}: a string is not a number"
            );
            assert_eq!(m.warnings.len(), 1, "{name}: {:?}", m.warnings);
        }
        assert_eq!(to_json(f64::NAN), Value::String("nan".into()));
        assert_eq!(to_json(f64::NEG_INFINITY), Value::String("-inf".into()));
    }

    #[test]
    fn integers_stay_integers_and_large_ones_are_flagged() {
        let mut m = Metrics::new();
        m.read_lines("n=1500\nbig=9007199254740993\n");
        assert_eq!(to_json(m.values["n"].0).to_string(), "1500");
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(
            m.warnings[0].contains("9007199254740993"),
            "{:?}",
            m.warnings
        );
        assert_eq!(to_json(-0.0).to_string(), "-0.0");
        assert_eq!(to_json(1e300).to_string(), "1e+300");
    }

    #[test]
    fn storage_columns_keep_nan_and_negative_zero() {
        for v in [
            0.0,
            -0.0,
            1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ] {
            let (value, exact) = to_columns(v);
            assert_eq!(from_columns(value, exact).to_bits(), v.to_bits());
        }
        let (value, exact) = to_columns(f64::NAN);
        assert!(from_columns(value, exact).is_nan());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any double written in JSON's shortest form (in a file, or as a line) is read back bit
        /// for bit, and `to_json` writes it so that it reads back the same.
        #[test]
        fn shortest_json_round_trips(v in proptest::num::f64::ANY) {
            let written = to_json(v).to_string();
            let mut m = Metrics::new();
            if v.is_finite() {
                let value = parse_file(Path::new("m.json"), &format!("{{\"k\": {written}}}")).unwrap();
                let Value::Object(o) = value else { panic!("an object") };
                let Value::Number(n) = &o["k"] else { panic!("a number: {written}") };
                proptest::prop_assert_eq!(n.as_f64().unwrap().to_bits(), v.to_bits(), "{}", written);
            }
            m.read_lines(&format!("k={}", written.trim_matches('"')));
            let got = m.values["k"].0;
            proptest::prop_assert!(same(got, v), "{} read back as {}", written, got);
            let (value, exact) = to_columns(v);
            proptest::prop_assert!(same(from_columns(value, exact), v));
        }
    }
}

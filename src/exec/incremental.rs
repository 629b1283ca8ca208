//! Incremental runs: a step's cache key, finding an earlier execution with the same key, and
//! explaining in words why a step is stale.
//!
//! The key covers what decides a step's result: the command after substitution, its cwd, the
//! content hash of every input, the values of the params it depends on, its declared `env`
//! (secret values as their keyed markers) and its declared outputs. A step's parts are taken
//! from its recorded form (`recorded`), so secrets in its command or params count by marker. It does not cover
//! interpreter or package versions (recorded, and shown by `show`, but like DVC mlrun does not
//! rerun because `python3` was upgraded; use `--force`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fingerprint::hash::sha256_bytes;
use crate::pipeline::Step;
use crate::store::Store;
use crate::store::record::Io;

/// Bump when the meaning of the key changes, so old executions are not reused wrongly.
const KEY_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheParts {
    pub v: u32,
    pub argv: Vec<String>,
    /// the command before `{params.x}` substitution: tells a new command from a new param value
    pub template: Vec<String>,
    pub cwd: String,
    /// path → content hash
    pub inputs: BTreeMap<String, String>,
    pub params: BTreeMap<String, serde_json::Value>,
    pub env: BTreeMap<String, String>,
    pub outputs: Vec<String>,
    /// the key the markers in these parts were made with, when they hold any
    /// (`Redactor::key_id`): markers made with different keys cannot be compared. Absent in
    /// parts without markers (their key is unchanged) and in those of older mlruns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker_key: Option<String>,
}

const MARKER: &str = "<redacted:";

/// `s` with every marker's hash left out: what stays when only the key changed.
fn without_marker_hashes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(MARKER) {
        out.push_str(&rest[..i + MARKER.len()]);
        rest = &rest[i + MARKER.len()..];
        let hex = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        rest = &rest[hex..];
    }
    out.push_str(rest);
    out
}

impl CacheParts {
    /// The parts of a step as recorded (secrets already replaced by markers: see `recorded`).
    pub fn of(step: &Step, inputs: &[Io]) -> CacheParts {
        let env = step.env.clone();
        CacheParts {
            v: KEY_VERSION,
            argv: step.cmd.argv(),
            template: step.template.argv(),
            cwd: step.cwd.clone(),
            inputs: inputs
                .iter()
                .map(|io| (io.path.clone(), io.fp.hash().to_string()))
                .collect(),
            params: step.params.clone(),
            env,
            outputs: step
                .outputs
                .iter()
                .map(|o| {
                    if o.dir {
                        format!("{}/", o.path)
                    } else {
                        o.path.clone()
                    }
                })
                .collect(),
            marker_key: None,
        }
    }

    /// Say which key made the markers, when the parts hold any.
    pub fn marked_with(mut self, key_id: &str) -> CacheParts {
        if self.has_marker() {
            self.marker_key = Some(key_id.to_string());
        }
        self
    }

    fn has_marker(&self) -> bool {
        let text = |s: &String| s.contains(MARKER);
        self.argv.iter().any(text)
            || self.template.iter().any(text)
            || self.env.values().any(text)
            || self.params.values().any(|v| v.to_string().contains(MARKER))
    }

    /// The parts with every marker's hash left out.
    fn unkeyed(&self) -> CacheParts {
        let strip = |v: &[String]| v.iter().map(|s| without_marker_hashes(s)).collect();
        CacheParts {
            argv: strip(&self.argv),
            template: strip(&self.template),
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), without_marker_hashes(v)))
                .collect(),
            params: self
                .params
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(s) => (k.clone(), serde_json::Value::from(without_marker_hashes(s))),
                    None => (k.clone(), v.clone()),
                })
                .collect(),
            marker_key: None,
            ..self.clone()
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn key(&self) -> String {
        sha256_bytes(self.json().as_bytes())
    }
}

/// The most recent execution of `step` in the pipeline at `pipeline_file` that succeeded (by
/// running or reuse): its cache parts and id (`Store::last_success`). Replays are not the
/// workspace's history: they are left out unless `with_replays`. Parts an mlrun cannot read
/// count as none.
pub fn last_success(
    store: &Store,
    pipeline_file: &str,
    step: &str,
    with_replays: bool,
) -> Result<Option<(i64, CacheParts)>> {
    Ok(store
        .last_success(pipeline_file, step, with_replays)?
        .and_then(|(id, json)| serde_json::from_str(&json).ok().map(|p| (id, p))))
}

fn short(h: &str) -> &str {
    &h[..h.len().min(8)]
}

/// Why `now` differs from `before`, in words a user can act on.
pub fn reasons(before: &CacheParts, now: &CacheParts) -> Vec<String> {
    // Markers made with another key (an older mlrun's salt, another key file) differ whatever
    // their secrets are: say so once, and compare the rest without them.
    if before.has_marker() && now.has_marker() && before.marker_key != now.marker_key {
        let why = if before.marker_key.is_none() {
            "recorded by an older mlrun"
        } else {
            "recorded with another secret key file"
        };
        let mut out = vec![format!(
            "its secrets were marked with another key ({why}), so whether they changed cannot be told"
        )];
        out.extend(reasons(&before.unkeyed(), &now.unkeyed()));
        return out;
    }
    let mut out = Vec::new();
    if before.v != now.v {
        out.push("recorded by an older mlrun".into());
    }
    // A different substituted command with the same template is a param change, reported below.
    if before.template != now.template || (before.argv != now.argv && before.params == now.params) {
        out.push("command changed".into());
    }
    if before.cwd != now.cwd {
        out.push(format!(
            "cwd changed ({} → {})",
            show_cwd(&before.cwd),
            show_cwd(&now.cwd)
        ));
    }
    for (path, hash) in &now.inputs {
        match before.inputs.get(path) {
            None => out.push(format!("new input {path}")),
            Some(old) if old != hash => out.push(format!(
                "input {path} changed ({}… → {}…)",
                short(old),
                short(hash)
            )),
            _ => {}
        }
    }
    for path in before
        .inputs
        .keys()
        .filter(|p| !now.inputs.contains_key(*p))
    {
        out.push(format!("input {path} is no longer declared"));
    }
    for (k, v) in &now.params {
        match before.params.get(k) {
            None => out.push(format!(
                "new param {k} = {}",
                crate::pipeline::params::render(v)
            )),
            Some(old) if old != v && (is_marker(old) || is_marker(v)) => {
                out.push(format!("param {k} changed (a secret, not shown)"))
            }
            Some(old) if old != v => out.push(format!(
                "param {k} {} → {}",
                crate::pipeline::params::render(old),
                crate::pipeline::params::render(v)
            )),
            _ => {}
        }
    }
    for k in before
        .params
        .keys()
        .filter(|k| !now.params.contains_key(*k))
    {
        out.push(format!("param {k} is no longer used"));
    }
    let env_keys: std::collections::BTreeSet<&String> =
        before.env.keys().chain(now.env.keys()).collect();
    for k in env_keys {
        if before.env.get(k) != now.env.get(k) {
            out.push(format!("env {k} changed"));
        }
    }
    if before.outputs != now.outputs {
        out.push("declared outputs changed".into());
    }
    out
}

/// A secret param is recorded as its marker.
fn is_marker(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| s.starts_with("<redacted:"))
}

fn show_cwd(c: &str) -> &str {
    if c.is_empty() { "." } else { c }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> CacheParts {
        CacheParts {
            v: KEY_VERSION,
            argv: vec!["sh".into(), "-c".into(), "x".into()],
            template: vec!["sh".into(), "-c".into(), "x".into()],
            cwd: String::new(),
            inputs: [("data/raw.csv".to_string(), "3f2a0000aaaa".to_string())].into(),
            params: [("train.lr".to_string(), serde_json::json!(0.01))].into(),
            env: BTreeMap::new(),
            outputs: vec!["model.pkl".into()],
            marker_key: None,
        }
    }

    #[test]
    fn reasons_name_what_changed() {
        let a = parts();
        let mut b = parts();
        b.inputs
            .insert("data/raw.csv".into(), "9c1e0000bbbb".into());
        b.params.insert("train.lr".into(), serde_json::json!(0.02));
        b.template[2] = "y".into();
        assert_eq!(
            reasons(&a, &b),
            [
                "command changed",
                "input data/raw.csv changed (3f2a0000… → 9c1e0000…)",
                "param train.lr 0.01 → 0.02"
            ]
        );
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key(), parts().key());
    }
}

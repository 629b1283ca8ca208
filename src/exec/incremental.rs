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

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fingerprint::hash::{Fingerprint, sha256_bytes};
use crate::pipeline::Step;
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

/// An earlier successful execution with the same key: (execution to point at, its outputs,
/// its metrics).
pub struct Reusable {
    pub exec_id: i64,
    pub run_id: String,
    /// `run_id` as mlrun shows it
    pub short_id: String,
    pub outputs: Vec<Io>,
    pub metrics: BTreeMap<String, (f64, String)>,
}

/// The latest execution with cache key `key` that succeeded (by running or by reuse), in the
/// workspace's history: a replay ran in a scratch tree and is never a source of reuse unless
/// `with_replays` (`mlrun run --reuse-replays`). A workspace run that did reuse a replay made
/// that result part of the workspace's history, so its own record counts.
pub fn find_reusable(conn: &Connection, key: &str, with_replays: bool) -> Result<Option<Reusable>> {
    let found: Option<(i64, String)> = conn
        .query_row(
            "SELECT COALESCE(s.reused_exec, s.id), o.run_id FROM step_execs s
             JOIN step_execs o ON o.id = COALESCE(s.reused_exec, s.id)
             JOIN runs r ON r.id = s.run_id
             WHERE s.cache_key = ?1 AND s.status IN ('succeeded', 'cached', 'restored')
               AND (?2 OR r.replay_of IS NULL)
             ORDER BY s.id DESC LIMIT 1",
            params![key, with_replays],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((exec_id, run_id)) = found else {
        return Ok(None);
    };
    let outputs = recorded_io(conn, exec_id, "out")?;
    let mut stmt =
        conn.prepare_cached("SELECT key, value, source, exact FROM metrics WHERE step_exec = ?1")?;
    let metrics = stmt
        .query_map([exec_id], |r| {
            let v = crate::fingerprint::metrics::from_columns(
                r.get(1)?,
                r.get::<_, Option<String>>(3)?.as_deref(),
            );
            Ok((r.get::<_, String>(0)?, (v, r.get::<_, String>(2)?)))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(Reusable {
        exec_id,
        short_id: crate::store::query::short_id(conn, &run_id)?,
        run_id,
        outputs,
        metrics,
    }))
}

/// The inputs or outputs recorded for an execution, as fingerprints.
pub fn recorded_io(conn: &Connection, exec_id: i64, direction: &str) -> Result<Vec<Io>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.path, b.hash, b.kind, b.size, COALESCE(e.mode, 33188), b.stored, e.declared, e.link FROM io_edges e
         JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
         JOIN blobs b ON b.hash = v.blob_hash
         WHERE e.step_exec = ?1 AND e.direction = ?2 ORDER BY a.path",
    )?;
    type Row = (
        String,
        String,
        String,
        i64,
        i64,
        bool,
        bool,
        Option<Vec<u8>>,
    );
    let rows: Vec<Row> = stmt
        .query_map(params![exec_id, direction], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (path, hash, kind, size, mode, stored, declared, link) in rows {
        let fp = if kind == "dir" {
            let entries = crate::store::query::dir_entry_list(conn, &hash)?;
            Fingerprint::Dir {
                hash,
                size: size as u64,
                entries,
            }
        } else {
            Fingerprint::File {
                hash,
                size: size as u64,
                mode: mode as u32,
            }
        };
        let mut io = Io::new(path, fp);
        io.stored = stored;
        // an execution reused later carries its observed (`--trace`) edges as observed
        io.declared = declared;
        io.link = link;
        out.push(io);
    }
    Ok(out)
}

/// The most recent execution of `step` in the pipeline at `pipeline_file` that succeeded (by
/// running or reuse): its cache parts and id. Replays are not the workspace's history: they are
/// left out unless `with_replays`.
pub fn last_success(
    conn: &Connection,
    pipeline_file: &str,
    step: &str,
    with_replays: bool,
) -> Result<Option<(i64, CacheParts)>> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT s.id, s.cache_parts FROM step_execs s JOIN runs r ON r.id = s.run_id
             WHERE s.step = ?2 AND r.pipeline_file = ?1 AND s.cache_parts IS NOT NULL
               AND s.status IN ('succeeded', 'cached', 'restored')
               AND (?3 OR r.replay_of IS NULL)
             ORDER BY s.id DESC LIMIT 1",
            params![pipeline_file, step, with_replays],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.and_then(|(id, json)| serde_json::from_str(&json).ok().map(|p| (id, p))))
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

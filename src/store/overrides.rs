//! Params set on the command line (`-p key=value`): which ones a run overrode (read back from
//! its recorded command line, where secret values are already masked), and the params of the
//! execution that made a version, so `status` can name the param that differs.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;

/// The params of the execution that made `hash` at `path` (one that really ran first), and
/// its run.
pub(super) fn producer_params(
    conn: &Connection,
    path: &str,
    hash: &str,
) -> Result<Option<(String, BTreeMap<String, serde_json::Value>)>> {
    let exec: Option<(i64, String)> = conn
        .query_row(
            "SELECT s.id, s.run_id FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
             JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
             WHERE a.path = ?1 AND v.blob_hash = ?2 AND e.direction = 'out'
             ORDER BY s.reused_exec IS NULL DESC, s.id DESC LIMIT 1",
            params![path, hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((exec, run)) = exec else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached("SELECT key, value FROM params WHERE step_exec = ?1")?;
    let rows: Vec<(String, String)> = stmt
        .query_map([exec], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let params = rows
        .into_iter()
        .map(|(k, v)| {
            let value = serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v));
            (k, value)
        })
        .collect();
    Ok(Some((run, params)))
}

/// The `-p`/`--param` arguments of each run among `ids` that had any, as written
/// (`key=value`).
pub(super) fn run_overrides(
    conn: &Connection,
    ids: &[&str],
) -> Result<HashMap<String, Vec<String>>> {
    let mut stmt = conn.prepare_cached("SELECT argv FROM runs WHERE id = ?1")?;
    let mut out = HashMap::new();
    for id in ids {
        let Some(argv) = stmt.query_row([id], |r| r.get::<_, String>(0)).optional()? else {
            continue;
        };
        let argv: Vec<String> = serde_json::from_str(&argv).unwrap_or_default();
        let found = overrides_in(&argv);
        if !found.is_empty() {
            out.insert(id.to_string(), found);
        }
    }
    Ok(out)
}

/// `-p a=1 --param b=2 -pc=3 --param=d=4` → `a=1, b=2, c=3, d=4`; stops at `--`.
pub fn overrides_in(argv: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "-p" || a == "--param" {
            if let Some(v) = it.next() {
                out.push(v.clone());
            }
        } else if let Some(v) = a.strip_prefix("--param=") {
            out.push(v.to_string());
        } else if let Some(v) = a.strip_prefix("-p")
            && !v.is_empty()
            && !a.starts_with("--")
        {
            out.push(v.trim_start_matches('=').to_string());
        }
    }
    out
}

impl super::Store {
    /// The run that produced `path` with content `hash`, and the params it ran with.
    pub fn producer_params(
        &self,
        path: &str,
        hash: &str,
    ) -> Result<Option<(String, BTreeMap<String, serde_json::Value>)>> {
        producer_params(&self.conn, path, hash)
    }

    /// The `-p` overrides of each of the runs `ids`, from their recorded command lines.
    pub fn run_overrides(&self, ids: &[&str]) -> Result<HashMap<String, Vec<String>>> {
        run_overrides(&self.conn, ids)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn overrides_are_read_in_every_spelling() {
        let argv: Vec<String> = [
            "mlrun",
            "run",
            "-p",
            "a=1",
            "--param",
            "b=2",
            "-pc=3",
            "--param=d=4",
            "-j",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(super::overrides_in(&argv), ["a=1", "b=2", "c=3", "d=4"]);
    }
}

//! Step executions as lineage shows them: producers and consumers of a version, an execution's
//! inputs and outputs, a path's other versions, and the details of many executions at once.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::*;
use crate::error::Result;

/// The step execution `step` of run `run_id` (its last attempt).
pub(in crate::store) fn exec_of(
    conn: &Connection,
    run_id: &str,
    step: &str,
) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM step_execs WHERE run_id = ?1 AND step = ?2 ORDER BY attempt DESC LIMIT 1",
            params![run_id, step],
            |r| r.get(0),
        )
        .optional()?)
}

/// Step names of a run, for error messages.
pub(in crate::store) fn steps_of(conn: &Connection, run_id: &str) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare("SELECT DISTINCT step FROM step_execs WHERE run_id = ?1 ORDER BY step")?;
    let rows = stmt
        .query_map([run_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// A step execution as lineage shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Exec {
    pub exec_id: i64,
    pub run_id: String,
    pub step: String,
    pub status: String,
    pub cmd: String,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub exit_code: Option<i32>,
    /// for `cached` / `restored`: the execution whose results were reused
    pub reused_exec: Option<i64>,
    pub commit: Option<String>,
    pub dirty: bool,
    pub env_id: Option<String>,
    pub params: BTreeMap<String, serde_json::Value>,
    #[serde(serialize_with = "crate::fingerprint::metrics::ser_map")]
    pub metrics: BTreeMap<String, f64>,
}

/// Orders a replay's execution `s` after the workspace's own: a replay reproduces a version, it
/// is not where the version came from (unless nothing else produced it).
pub(super) const REPLAY_LAST: &str =
    "(SELECT r.replay_of IS NOT NULL FROM runs r WHERE r.id = s.run_id)";

/// The earliest real producer of a version: an execution of the workspace's history before a
/// replay's, a `succeeded` one before any other (cached/restored ones carry copies of the
/// original's edges), then the earliest.
pub const PREFERRED_PRODUCER: &str =
    "SELECT o.step_exec FROM io_edges o JOIN step_execs s ON s.id = o.step_exec
     WHERE o.av_id = ?1 AND o.direction = 'out'
     ORDER BY (SELECT r.replay_of IS NOT NULL FROM runs r WHERE r.id = s.run_id),
              s.status <> 'succeeded', COALESCE(s.started_at, 0), s.id LIMIT 1";

pub(in crate::store) fn preferred_producer(conn: &Connection, av_id: i64) -> Result<Option<i64>> {
    Ok(conn
        .query_row(PREFERRED_PRODUCER, [av_id], |r| r.get(0))
        .optional()?)
}

/// The first `limit` executions that produced a version (originals and reuses), the workspace's
/// before replays', real ones first, then earliest first.
pub(in crate::store) fn producers(
    conn: &Connection,
    av_id: i64,
    limit: usize,
) -> Result<Vec<Exec>> {
    let ids: Vec<i64> = {
        let mut stmt = conn.prepare(&format!(
            "SELECT o.step_exec FROM io_edges o JOIN step_execs s ON s.id = o.step_exec
             WHERE o.av_id = ?1 AND o.direction = 'out'
             ORDER BY {REPLAY_LAST}, s.status <> 'succeeded', COALESCE(s.started_at, 0), s.id LIMIT ?2",
        ))?;
        stmt.query_map(params![av_id, limit as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let map = execs(conn, &ids)?;
    Ok(ids.iter().filter_map(|i| map.get(i).cloned()).collect())
}

/// The `limit` latest executions that read a version, earliest first.
pub(in crate::store) fn consumers(
    conn: &Connection,
    av_id: i64,
    limit: usize,
) -> Result<Vec<(Exec, Option<String>)>> {
    let rows: Vec<(i64, Option<String>)> = {
        let mut stmt = conn.prepare(
            "SELECT * FROM (
               SELECT i.step_exec, i.origin, COALESCE(s.started_at, 0) AS t FROM io_edges i
               JOIN step_execs s ON s.id = i.step_exec
               WHERE i.av_id = ?1 AND i.direction = 'in' ORDER BY t DESC, s.id DESC LIMIT ?2)
             ORDER BY t, step_exec",
        )?;
        stmt.query_map(params![av_id, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let map = execs(conn, &ids)?;
    Ok(rows
        .into_iter()
        .filter_map(|(i, o)| map.get(&i).cloned().map(|e| (e, o)))
        .collect())
}

/// An input or output of an execution, with where an input came from.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    #[serde(flatten)]
    pub version: Version,
    pub origin: Option<String>,
}

/// The inputs (`in`) or outputs (`out`) of an execution.
pub(in crate::store) fn io_of(
    conn: &Connection,
    exec_id: i64,
    direction: &str,
) -> Result<Vec<Edge>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLS}, e.origin FROM io_edges e JOIN artifact_versions v ON v.id = e.av_id
         JOIN artifacts a ON a.id = v.artifact_id JOIN blobs b ON b.hash = v.blob_hash
         WHERE e.step_exec = ?1 AND e.direction = ?2 ORDER BY a.path"
    ))?;
    let rows = stmt
        .query_map(params![exec_id, direction], |r| {
            Ok(Edge {
                version: version_row(r)?,
                origin: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Other versions of the same path, newest first, each with the run that produced (or first
/// read) it.
#[derive(Debug, Clone, Serialize)]
pub struct OtherVersion {
    #[serde(flatten)]
    pub version: Version,
    pub run_id: Option<String>,
    pub short_id: Option<String>,
    pub step: Option<String>,
    pub produced: bool,
    pub at: Option<i64>,
}

/// The newest `limit` versions of `path` (by when first recorded), plus version `keep` if it is
/// older, each with its representative execution: its first real producer, else its first
/// reader. Also returns how many versions the path has.
pub(in crate::store) fn versions_of_path(
    conn: &Connection,
    path: &str,
    limit: usize,
    keep: Option<i64>,
) -> Result<(Vec<OtherVersion>, usize)> {
    let total: i64 = conn.query_row(
        "SELECT COUNT(*) FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id WHERE a.path = ?1",
        [path],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare(&format!(
        "WITH chosen AS (
           SELECT id FROM (SELECT v.id FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id
                           WHERE a.path = ?1 ORDER BY v.first_seen DESC, v.id DESC LIMIT ?2)
           UNION SELECT ?3 WHERE ?3 IS NOT NULL)
         SELECT {VERSION_COLS}, s.run_id, s.step,
                EXISTS (SELECT 1 FROM io_edges o WHERE o.av_id = v.id AND o.direction = 'out'),
                s.started_at
         FROM chosen c JOIN artifact_versions v ON v.id = c.id
         JOIN artifacts a ON a.id = v.artifact_id JOIN blobs b ON b.hash = v.blob_hash
         LEFT JOIN step_execs s ON s.id = (
             SELECT e2.step_exec FROM io_edges e2 JOIN step_execs s2 ON s2.id = e2.step_exec
             WHERE e2.av_id = v.id
             ORDER BY e2.direction = 'out' DESC,
                      (SELECT r.replay_of IS NOT NULL FROM runs r WHERE r.id = s2.run_id),
                      s2.status <> 'succeeded', COALESCE(s2.started_at, 0), s2.id
             LIMIT 1)
         ORDER BY COALESCE(s.started_at, v.first_seen) DESC, v.id DESC"
    ))?;
    let rows = stmt
        .query_map(params![path, limit as i64, keep], |r| {
            Ok(OtherVersion {
                version: version_row(r)?,
                run_id: r.get(7)?,
                short_id: None,
                step: r.get(8)?,
                produced: r.get(9)?,
                at: r.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<OtherVersion>>>()?;
    let mut rows = rows;
    for r in &mut rows {
        if let Some(id) = &r.run_id {
            r.short_id = Some(crate::store::query::short_id(conn, id)?);
        }
    }
    Ok((rows, total as usize))
}

pub(super) fn id_list(ids: impl IntoIterator<Item = i64>) -> String {
    let v: Vec<i64> = ids.into_iter().collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

/// Details of many executions at once (one query each for rows, params and metrics).
pub(in crate::store) fn execs(conn: &Connection, ids: &[i64]) -> Result<HashMap<i64, Exec>> {
    let list = id_list(ids.iter().copied());
    let mut out = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT s.id, s.run_id, s.step, s.status, s.cmd, s.started_at, s.ended_at, s.exit_code,
                s.reused_exec, g.commit_sha, COALESCE(g.dirty, 0), s.env_id
         FROM step_execs s LEFT JOIN git_snapshots g ON g.id = s.git_before
         WHERE s.id IN (SELECT value FROM json_each(?1))",
    )?;
    let rows = stmt.query_map([&list], |r| {
        Ok(Exec {
            exec_id: r.get(0)?,
            run_id: r.get(1)?,
            step: r.get(2)?,
            status: r.get(3)?,
            cmd: r.get(4)?,
            started_at: r.get(5)?,
            ended_at: r.get(6)?,
            exit_code: r.get(7)?,
            reused_exec: r.get(8)?,
            commit: r.get(9)?,
            dirty: r.get(10)?,
            env_id: r.get(11)?,
            params: BTreeMap::new(),
            metrics: BTreeMap::new(),
        })
    })?;
    for e in rows {
        let e = e?;
        out.insert(e.exec_id, e);
    }
    let mut p = conn.prepare_cached(
        "SELECT step_exec, key, value FROM params WHERE step_exec IN (SELECT value FROM json_each(?1))",
    )?;
    for row in p.query_map([&list], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })? {
        let (id, k, v) = row?;
        if let Some(e) = out.get_mut(&id) {
            e.params.insert(
                k,
                serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v)),
            );
        }
    }
    let mut m = conn.prepare_cached(
        "SELECT step_exec, key, value, exact FROM metrics WHERE step_exec IN (SELECT value FROM json_each(?1))",
    )?;
    for row in m.query_map([&list], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            crate::fingerprint::metrics::from_columns(
                r.get(2)?,
                r.get::<_, Option<String>>(3)?.as_deref(),
            ),
        ))
    })? {
        let (id, k, v) = row?;
        if let Some(e) = out.get_mut(&id) {
            e.metrics.insert(k, v);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The model card

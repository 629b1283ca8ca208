//! Lineage reads: which artifact version a target names, and the graph of versions, step
//! executions, runs and commits around it.
//!
//! A traversal is ONE recursive query over `io_edges` (`UNION`, so a cycle across runs ends),
//! followed by a fixed number of set-based queries for the details of the nodes it found. It must
//! never issue a query per node: lineage stays fast however long the history grows. The walk
//! keeps the queue (`walk`) as the outer loop of every recursive step (`CROSS JOIN` fixes the
//! order): SQLite only considers a Bloom filter when an analysed table is the outer loop, and a
//! Bloom filter built inside a recursive step rescans `io_edges` on every hop (see FINDINGS).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::During;
use crate::error::{Error, Result};
use crate::fingerprint::hash::manifest_lookup;

/// Which way a traversal goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// what a target was made from
    Up,
    /// what was made from a target
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "upstream",
            Direction::Down => "downstream",
        }
    }
}

/// Where a traversal starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    Version(i64),
    Exec(i64),
    Run(String),
}

/// One artifact version (a path bound to content).
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub av_id: i64,
    pub path: String,
    pub hash: String,
    /// `file` or `dir`
    #[serde(rename = "type")]
    pub kind: String,
    pub size: i64,
    pub nfiles: i64,
    pub first_seen: i64,
}

const VERSION_COLS: &str = "v.id, a.path, v.blob_hash, b.kind, b.size, b.nfiles, v.first_seen";
const VERSION_FROM: &str = "artifact_versions v JOIN artifacts a ON a.id = v.artifact_id
                            JOIN blobs b ON b.hash = v.blob_hash";

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Version> {
    Ok(Version {
        av_id: r.get(0)?,
        path: r.get(1)?,
        hash: r.get(2)?,
        kind: r.get(3)?,
        size: r.get(4)?,
        nfiles: r.get(5)?,
        first_seen: r.get(6)?,
    })
}

pub(super) fn version(conn: &Connection, av_id: i64) -> Result<Option<Version>> {
    Ok(conn
        .query_row(
            &format!("SELECT {VERSION_COLS} FROM {VERSION_FROM} WHERE v.id = ?1"),
            [av_id],
            version_row,
        )
        .optional()?)
}

/// Is `path` a recorded artifact?
pub(super) fn artifact_id(conn: &Connection, path: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row("SELECT id FROM artifacts WHERE path = ?1", [path], |r| {
            r.get(0)
        })
        .optional()?)
}

/// The version of `path` with content `hash`, if it was ever recorded.
pub(super) fn version_by_content(
    conn: &Connection,
    path: &str,
    hash: &str,
) -> Result<Option<Version>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {VERSION_COLS} FROM {VERSION_FROM} WHERE a.path = ?1 AND v.blob_hash = ?2"
            ),
            params![path, hash],
            version_row,
        )
        .optional()?)
}

/// The version of `path` most recently used or produced by a step execution of the workspace's
/// history (a replay's only when no other run recorded the path: replays run in a scratch tree).
pub(super) fn latest_version(conn: &Connection, path: &str) -> Result<Option<Version>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {VERSION_COLS} FROM {VERSION_FROM}
                 JOIN io_edges e ON e.av_id = v.id JOIN step_execs s ON s.id = e.step_exec
                 JOIN runs r ON r.id = s.run_id
                 WHERE a.path = ?1
                 ORDER BY r.replay_of IS NOT NULL, COALESCE(s.started_at, 0) DESC, s.id DESC,
                          e.direction = 'out' DESC LIMIT 1"
            ),
            [path],
            version_row,
        )
        .optional()?)
}

/// The version of `path` that run `run_id` saw: the one it produced, else the one it read.
pub(super) fn version_in_run(
    conn: &Connection,
    path: &str,
    run_id: &str,
) -> Result<Option<Version>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {VERSION_COLS} FROM {VERSION_FROM}
                 JOIN io_edges e ON e.av_id = v.id JOIN step_execs s ON s.id = e.step_exec
                 WHERE a.path = ?1 AND s.run_id = ?2
                 ORDER BY e.direction = 'out' DESC, s.id DESC LIMIT 1"
            ),
            params![path, run_id],
            version_row,
        )
        .optional()?)
}

/// The newest recorded version of directory artifact `dir` whose manifest lists `relpath` with
/// content `file_hash` (any content when `None`). Versions are read newest first and the search
/// stops at the first match: a dataset can have many versions of tens of thousands of files.
pub(super) fn newest_dir_version_containing(
    conn: &Connection,
    dir: &str,
    relpath: &str,
    file_hash: Option<&str>,
) -> Result<Option<Version>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {VERSION_COLS} FROM {VERSION_FROM}
         WHERE a.path = ?1 AND b.kind = 'dir'
         ORDER BY v.first_seen DESC, v.id DESC"
    ))?;
    let mut rows = stmt.query(params![dir])?;
    while let Some(r) = rows.next()? {
        let v = version_row(r)?;
        if dir_version_contains(conn, &v.hash, relpath, file_hash) {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Does directory version `dir_hash` list `relpath` (with content `file_hash`, if given)? A
/// manifest missing from a damaged store lists nothing (fsck reports it).
pub(super) fn dir_version_contains(
    conn: &Connection,
    dir_hash: &str,
    relpath: &str,
    file_hash: Option<&str>,
) -> bool {
    super::query::dir_manifest(conn, dir_hash).is_ok_and(|m| {
        manifest_lookup(&m, relpath).is_some_and(|e| file_hash.is_none_or(|h| e.hash == h))
    })
}

/// A file inside a recorded directory version, named on its own (`show data/features/a.pkl`).
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// the file's path in the project
    pub path: String,
    /// the recorded directory holding it, and that directory version's hash
    pub dir: String,
    pub dir_hash: String,
    /// its path inside the directory
    pub relpath: String,
    /// its own content hash, size and mode, from the directory version's manifest
    pub hash: String,
    pub size: u64,
    pub mode: u32,
}

/// The file `relpath` of directory version `dir`, if its manifest lists it.
pub(super) fn member(conn: &Connection, dir: &Version, relpath: &str) -> Result<Option<Member>> {
    let manifest = super::query::dir_manifest(conn, &dir.hash)?;
    Ok(manifest_lookup(&manifest, relpath).map(|e| Member {
        path: format!("{}/{}", dir.path, e.relpath),
        dir: dir.path.clone(),
        dir_hash: dir.hash.clone(),
        relpath: e.relpath,
        hash: e.hash,
        size: e.size,
        mode: e.mode,
    }))
}

/// Every recorded path that is a directory containing `path` (longest first).
pub(super) fn recorded_parent_dirs(conn: &Connection, path: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut p = path;
    while let Some(i) = p.rfind('/') {
        p = &p[..i];
        if artifact_id(conn, p)?.is_some() {
            out.push(p.to_string());
        }
    }
    Ok(out)
}

/// Versions whose content hash starts with `prefix` (at most 11, to report ambiguity).
pub(super) fn versions_by_hash_prefix(conn: &Connection, prefix: &str) -> Result<Vec<Version>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {VERSION_COLS} FROM {VERSION_FROM}
         WHERE v.blob_hash >= ?1 AND v.blob_hash < ?1 || 'g' ORDER BY v.blob_hash, a.path LIMIT 11"
    ))?;
    let rows = stmt
        .query_map([prefix], version_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Resolve a content-hash prefix to one version, or explain the ambiguity with the candidates.
pub(super) fn resolve_hash(conn: &Connection, prefix: &str) -> Result<Option<Version>> {
    let found = versions_by_hash_prefix(conn, &prefix.to_ascii_lowercase())?;
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.into_iter().next()),
        n => {
            let mut e = Error::other(format!(
                "content hash `{prefix}` is ambiguous: {} recorded versions match",
                if n > 10 {
                    "more than 10".to_string()
                } else {
                    n.to_string()
                }
            ));
            for v in found.iter().take(10) {
                e = e.cause(format!("{}  {}", v.hash, v.path));
            }
            Err(e.hint("type more characters of the hash, or name the version as PATH@RUN"))
        }
    }
}

/// The step execution `step` of run `run_id` (its last attempt).
pub(super) fn exec_of(conn: &Connection, run_id: &str, step: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM step_execs WHERE run_id = ?1 AND step = ?2 ORDER BY attempt DESC LIMIT 1",
            params![run_id, step],
            |r| r.get(0),
        )
        .optional()?)
}

/// Step names of a run, for error messages.
pub(super) fn steps_of(conn: &Connection, run_id: &str) -> Result<Vec<String>> {
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
const REPLAY_LAST: &str = "(SELECT r.replay_of IS NOT NULL FROM runs r WHERE r.id = s.run_id)";

/// The earliest real producer of a version: an execution of the workspace's history before a
/// replay's, a `succeeded` one before any other (cached/restored ones carry copies of the
/// original's edges), then the earliest.
pub const PREFERRED_PRODUCER: &str =
    "SELECT o.step_exec FROM io_edges o JOIN step_execs s ON s.id = o.step_exec
     WHERE o.av_id = ?1 AND o.direction = 'out'
     ORDER BY (SELECT r.replay_of IS NOT NULL FROM runs r WHERE r.id = s.run_id),
              s.status <> 'succeeded', COALESCE(s.started_at, 0), s.id LIMIT 1";

pub(super) fn preferred_producer(conn: &Connection, av_id: i64) -> Result<Option<i64>> {
    Ok(conn
        .query_row(PREFERRED_PRODUCER, [av_id], |r| r.get(0))
        .optional()?)
}

/// The first `limit` executions that produced a version (originals and reuses), the workspace's
/// before replays', real ones first, then earliest first.
pub(super) fn producers(conn: &Connection, av_id: i64, limit: usize) -> Result<Vec<Exec>> {
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
pub(super) fn consumers(
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
pub(super) fn io_of(conn: &Connection, exec_id: i64, direction: &str) -> Result<Vec<Edge>> {
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
pub(super) fn versions_of_path(
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

fn id_list(ids: impl IntoIterator<Item = i64>) -> String {
    let v: Vec<i64> = ids.into_iter().collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

/// Details of many executions at once (one query each for rows, params and metrics).
pub(super) fn execs(conn: &Connection, ids: &[i64]) -> Result<HashMap<i64, Exec>> {
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

/// The run an execution belongs to, as a card shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRef {
    pub id: String,
    pub short_id: String,
    pub pipeline: String,
    pub status: String,
    pub started_at: i64,
    pub hostname: String,
    pub user: String,
}

pub(super) fn run_ref(conn: &Connection, id: &str) -> Result<Option<RunRef>> {
    let r = conn
        .query_row(
            "SELECT id, pipeline, status, started_at, hostname, user FROM runs WHERE id = ?1",
            [id],
            |r| {
                Ok(RunRef {
                    id: r.get(0)?,
                    short_id: String::new(),
                    pipeline: r.get(1)?,
                    status: r.get(2)?,
                    started_at: r.get(3)?,
                    hostname: r.get(4)?,
                    user: r.get(5)?,
                })
            },
        )
        .optional()?;
    match r {
        Some(mut r) => {
            r.short_id = crate::store::query::short_id(conn, &r.id)?;
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

/// An input of the producing execution, with where that version came from.
#[derive(Debug, Clone, Serialize)]
pub struct CardInput {
    #[serde(flatten)]
    pub version: Version,
    /// what the reading step recorded: `step`, `git` or `external`
    pub origin: Option<String>,
    /// the run and step that first produced this version, if any did
    pub produced_by: Option<ExecRef>,
    pub gap: bool,
    /// a tracked file read with uncommitted edits (the run recorded the diff)
    pub uncommitted: bool,
    /// on gaps: what is known of it (see `gap_reasons`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecRef {
    pub run_id: String,
    pub short_id: String,
    pub step: String,
    pub status: String,
    pub started_at: Option<i64>,
}

fn exec_ref(conn: &Connection, e: &Exec) -> Result<ExecRef> {
    Ok(ExecRef {
        run_id: e.run_id.clone(),
        short_id: crate::store::query::short_id(conn, &e.run_id)?,
        step: e.step.clone(),
        status: e.status.clone(),
        started_at: e.started_at,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct UsedBy {
    #[serde(flatten)]
    pub exec: Exec,
    pub short_id: String,
}

/// Everything recorded about one artifact version (`mlrun show PATH`): its JSON shape is
/// documented in the README.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub version: Version,
    /// no recorded producer and never read as a tracked file: lineage stops here
    pub gap: bool,
    /// on a gap: what is known of it (see `gap_reasons`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_reason: Option<String>,
    /// its bytes are in the object store (restorable by mlrun)
    pub stored: bool,
    /// read as a file git tracks, unmodified at the recorded commit (git can give it back)
    pub in_git: bool,
    pub produced_by: Option<Exec>,
    pub run: Option<RunRef>,
    pub git: Option<crate::store::query::GitInfo>,
    pub environment: Option<crate::store::query::EnvInfo>,
    pub inputs: Vec<CardInput>,
    /// other executions that produced this same content (reuses and reproductions)
    pub also_produced_by: Vec<ExecRef>,
    /// the latest executions (at most 20) that read this version, with their metrics
    /// (evaluations), earliest first
    pub used_by: Vec<UsedBy>,
    /// how many executions read it in all
    pub used_by_total: usize,
    /// the newest recorded versions of the same path (at most 20, plus this one), newest first
    pub versions: Vec<OtherVersion>,
    /// how many versions the path has in all
    pub versions_total: usize,
}

pub(super) fn card(conn: &Connection, av_id: i64) -> Result<Card> {
    let version = version(conn, av_id)?
        .ok_or_else(|| Error::other(format!("artifact version {av_id} is not in the store")))?;
    let producers = producers(conn, av_id, 21)?;
    let first = producers.first().cloned();
    let also = producers
        .iter()
        .skip(1)
        .map(|e| exec_ref(conn, e))
        .collect::<Result<Vec<_>>>()?;
    let consumers = consumers(conn, av_id, 20)?;
    let used_by_total: i64 = conn.query_row(
        "SELECT COUNT(*) FROM io_edges WHERE av_id = ?1 AND direction = 'in'",
        [av_id],
        |r| r.get(0),
    )?;
    let git_origin = consumers.iter().any(|(_, o)| o.as_deref() == Some("git"));
    let (mut run, mut git, mut environment, mut inputs) = (None, None, None, Vec::new());
    if let Some(e) = &first {
        run = run_ref(conn, &e.run_id)?;
        let snapshot: Option<String> = conn
            .query_row(
                "SELECT git_before FROM step_execs WHERE id = ?1",
                [e.exec_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        if let Some(g) = snapshot {
            git = crate::store::query::git_info(conn, &g, false)?;
        }
        if let Some(env) = &e.env_id {
            environment = crate::store::query::env_info(conn, env)?;
        }
        // inputs of the producer, each with its own first producer (one query per input is
        // bounded by the step's declared inputs, not by the history)
        for edge in io_of(conn, e.exec_id, "in")? {
            let p = preferred_producer(conn, edge.version.av_id)?;
            let produced_by = match p {
                Some(p) => match execs(conn, &[p])?.remove(&p) {
                    Some(pe) => Some(exec_ref(conn, &pe)?),
                    None => None,
                },
                None => None,
            };
            let gap = gaps(conn, &[edge.version.av_id])?.contains(&edge.version.av_id);
            let uncommitted =
                uncommitted(conn, &[edge.version.av_id])?.contains(&edge.version.av_id);
            let gap_reason = if gap {
                gap_reasons(conn, &[edge.version.av_id])?.remove(&edge.version.av_id)
            } else {
                None
            };
            inputs.push(CardInput {
                gap,
                gap_reason,
                uncommitted,
                version: edge.version,
                origin: edge.origin,
                produced_by,
            });
        }
    }
    let (versions, versions_total) = versions_of_path(conn, &version.path, 20, Some(av_id))?;
    let gap = first.is_none() && !git_origin && gaps(conn, &[av_id])?.contains(&av_id);
    Ok(Card {
        versions,
        versions_total,
        used_by_total: used_by_total as usize,
        gap,
        gap_reason: if gap {
            gap_reasons(conn, &[av_id])?.remove(&av_id)
        } else {
            None
        },
        stored: conn
            .query_row(
                "SELECT stored FROM blobs WHERE hash = ?1",
                [&version.hash],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false),
        in_git: git_origin,
        version,
        produced_by: first,
        run,
        git,
        environment,
        inputs,
        also_produced_by: also,
        used_by: consumers
            .into_iter()
            .map(|(e, _)| {
                Ok(UsedBy {
                    short_id: crate::store::query::short_id(conn, &e.run_id)?,
                    exec: e,
                })
            })
            .collect::<Result<_>>()?,
    })
}

// ---------------------------------------------------------------------------------------------
// Exports

/// An input or output of an execution for the exports.
#[derive(Debug, Clone)]
pub struct Io {
    pub version: Version,
    pub origin: Option<String>,
    /// no recorded producer and not a tracked file: `GAP_REASON`
    pub gap: bool,
}

/// Everything the OpenLineage and PROV exports need about one run.
#[derive(Debug, Clone)]
pub struct ExportRun {
    pub detail: crate::store::query::RunDetail,
    /// execution id → (inputs, outputs)
    pub io: HashMap<i64, (Vec<Io>, Vec<Io>)>,
    /// cached/restored execution id → the run whose execution it reused
    pub reused: HashMap<i64, String>,
    /// the git working directory at the start of the run
    pub workdir: Option<String>,
    /// pipeline.toml relative to the git working directory
    pub pipeline_path_in_repo: Option<String>,
}

/// Versions among `ids` that were read while git listed them (or a file inside them) as changed
/// in the reader's working tree: tracked files with uncommitted edits, whose diff the run
/// recorded. Not gaps, but not the committed content either.
pub(super) fn uncommitted(conn: &Connection, ids: &[i64]) -> Result<HashSet<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT i.av_id FROM io_edges i
         JOIN artifact_versions v ON v.id = i.av_id JOIN artifacts a ON a.id = v.artifact_id
         JOIN step_execs s ON s.id = i.step_exec JOIN git_snapshots g ON g.id = s.git_before
         JOIN json_each(g.changed) c
         WHERE i.direction = 'in' AND i.av_id IN (SELECT value FROM json_each(?1))
           AND (c.value = a.path OR c.value LIKE '%/' || a.path
                OR c.value LIKE a.path || '/%' OR c.value LIKE '%/' || a.path || '/%')",
    )?;
    let rows = stmt
        .query_map([id_list(ids.iter().copied())], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Versions among `ids` that are lineage gaps: produced by no recorded execution, never read
/// as a tracked unmodified file, and not a tracked file with a recorded uncommitted diff.
pub(super) fn gaps(conn: &Connection, ids: &[i64]) -> Result<HashSet<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.value FROM json_each(?1) j
         WHERE NOT EXISTS (SELECT 1 FROM io_edges o WHERE o.av_id = j.value AND o.direction = 'out')
           AND NOT EXISTS (SELECT 1 FROM io_edges i WHERE i.av_id = j.value AND i.direction = 'in' AND i.origin = 'git')",
    )?;
    let candidates: HashSet<i64> = stmt
        .query_map([id_list(ids.iter().copied())], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let dirty = uncommitted(conn, &candidates.iter().copied().collect::<Vec<_>>())?;
    Ok(candidates.difference(&dirty).copied().collect())
}

pub(super) fn export_run(conn: &Connection, run_id: &str) -> Result<ExportRun> {
    let detail = crate::store::query::run_detail(conn, run_id, false)?;
    let mut io = HashMap::new();
    let mut all = Vec::new();
    for s in &detail.steps {
        let ins = io_of(conn, s.exec_id, "in")?;
        let outs = io_of(conn, s.exec_id, "out")?;
        all.extend(ins.iter().map(|e| e.version.av_id));
        io.insert(s.exec_id, (ins, outs));
    }
    let gap_set = gaps(conn, &all)?;
    let conv = |list: Vec<Edge>| -> Vec<Io> {
        list.into_iter()
            .map(|e| Io {
                gap: gap_set.contains(&e.version.av_id),
                version: e.version,
                origin: e.origin,
            })
            .collect()
    };
    let io = io
        .into_iter()
        .map(|(k, (i, o))| (k, (conv(i), conv(o))))
        .collect();
    let mut reused = HashMap::new();
    let ids: Vec<i64> = detail.steps.iter().map(|s| s.exec_id).collect();
    for e in execs(conn, &ids)?.values() {
        if let Some(r) = e.reused_exec
            && let Some(orig) = execs(conn, &[r])?.remove(&r)
        {
            reused.insert(e.exec_id, orig.run_id);
        }
    }
    let workdir: Option<String> = conn
        .query_row(
            "SELECT g.workdir FROM runs r JOIN git_snapshots g ON g.id = r.git_start WHERE r.id = ?1",
            [run_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let pipeline_path_in_repo = workdir.as_ref().and_then(|w| {
        std::path::Path::new(&detail.pipeline_file)
            .strip_prefix(w)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    });
    Ok(ExportRun {
        detail,
        io,
        reused,
        workdir,
        pipeline_path_in_repo,
    })
}

// ---------------------------------------------------------------------------------------------
// The graph

/// One node of a lineage graph. Its `id` is unique within one answer and stable within a store.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Node {
    ArtifactVersion {
        id: String,
        #[serde(flatten)]
        version: Version,
        /// recorded executions that produced this exact version (0 for sources and gaps)
        producers: usize,
        /// of those, how many reused an earlier execution (`cached` / `restored`)
        reused: usize,
        /// where the steps in this graph that read it said it came from (`step`, `git`,
        /// `external`)
        origins: Vec<String>,
        /// read as a tracked file with uncommitted edits (the run recorded the diff)
        uncommitted: bool,
        /// no recorded producer, not a tracked file at a commit, not a recorded uncommitted
        /// edit: lineage stops here
        gap: bool,
        /// on gaps: what is known of it (`gap_reasons`): its copy is stored, no copy was kept,
        /// or its data version is unknown
        #[serde(skip_serializing_if = "Option::is_none")]
        gap_reason: Option<String>,
    },
    StepExec {
        id: String,
        #[serde(flatten)]
        exec: Exec,
    },
    Run {
        id: String,
        run_id: String,
        short_id: String,
        pipeline: String,
        status: String,
        started_at: i64,
        ended_at: Option<i64>,
        hostname: String,
        user: String,
        commit: Option<String>,
        branch: Option<String>,
        dirty: bool,
    },
    Commit {
        id: String,
        sha: String,
    },
}

impl Node {
    pub fn id(&self) -> &str {
        match self {
            Node::ArtifactVersion { id, .. }
            | Node::StepExec { id, .. }
            | Node::Run { id, .. }
            | Node::Commit { id, .. } => id,
        }
    }
}

/// Edge kinds (README "mlrun lineage --format json"): `used` artifact_version → step_exec,
/// `generated` step_exec → artifact_version, `part_of` step_exec → run, `checked_out`
/// commit → run, `committed` commit → artifact_version, `reused` step_exec → step_exec.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// a `used` / `generated` edge seen by `--trace` but not declared in pipeline.toml
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub observed: bool,
}

/// A gap whose data version really is unknown: no hash was recorded, or the copy the store
/// recorded having is gone.
pub const GAP_REASON: &str = "data version unknown: produced outside mlrun";

/// A gap mlrun hashed but kept no bytes of (`--no-store`): its version is known, not its bytes.
pub const GAP_NO_COPY: &str =
    "produced outside mlrun; not in git; no copy stored: replay will need it";

/// A gap whose bytes are in the object store: its version is known and can be restored.
pub fn gap_copy_stored(hash: &str) -> String {
    format!(
        "produced outside mlrun; not in git; copy stored (sha256 {}…)",
        &hash[..hash.len().min(12)]
    )
}

/// The object store beside the database `conn` has open (`None` for a database in memory).
fn objects_of(conn: &Connection) -> Option<super::objects::Objects> {
    let db = conn.path().filter(|p| !p.is_empty())?;
    Some(super::objects::Objects::new(
        std::path::Path::new(db).parent()?,
    ))
}

/// For each version among `ids` (lineage gaps: produced by no step, not in git), what is known
/// of it, in words: its copy is stored (it can be restored), no copy was kept (a replay will
/// need it), or its data version is unknown (no hash, or the stored copy is missing). Gaps are
/// few; a directory's manifest is read to check each of its files' objects.
pub(super) fn gap_reasons(conn: &Connection, ids: &[i64]) -> Result<HashMap<i64, String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.id, b.hash, b.kind, b.stored FROM artifact_versions v
         JOIN blobs b ON b.hash = v.blob_hash WHERE v.id IN (SELECT value FROM json_each(?1))",
    )?;
    let rows: Vec<(i64, String, String, bool)> = stmt
        .query_map([id_list(ids.iter().copied())], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let objects = objects_of(conn);
    let mut out = HashMap::new();
    for (id, hash, kind, stored) in rows {
        let present = || match &objects {
            None => true,
            Some(o) if kind == "dir" => super::query::dir_entry_list(conn, &hash)
                .is_ok_and(|entries| entries.iter().all(|e| o.has(&e.hash))),
            Some(o) => o.has(&hash),
        };
        let reason = if hash.is_empty() {
            GAP_REASON.to_string()
        } else if !stored {
            GAP_NO_COPY.to_string()
        } else if present() {
            gap_copy_stored(&hash)
        } else {
            GAP_REASON.to_string()
        };
        out.insert(id, reason);
    }
    for id in ids {
        out.entry(*id).or_insert_with(|| GAP_REASON.to_string());
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    pub root: String,
    /// when the target was a file inside a recorded directory: that file (the walk starts at
    /// the directory version `root`, which holds it)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Member>,
    pub direction: &'static str,
    pub depth: Option<u32>,
    pub nodes: Vec<Node>,
    pub edges: Vec<GraphEdge>,
}

impl Graph {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id() == id)
    }
    /// Versions marked as lineage gaps.
    pub fn gaps(&self) -> impl Iterator<Item = &Version> {
        self.nodes.iter().filter_map(|n| match n {
            Node::ArtifactVersion {
                version, gap: true, ..
            } => Some(version),
            _ => None,
        })
    }
}

pub fn av_node_id(av: i64) -> String {
    format!("av:{av}")
}
pub fn exec_node_id(e: i64) -> String {
    format!("exec:{e}")
}
pub fn run_node_id(r: &str) -> String {
    format!("run:{r}")
}
pub fn commit_node_id(c: &str) -> String {
    format!("commit:{c}")
}

/// The recursive walk. `?1` is a JSON array of `[kind, id]` seeds (kind 0 = version,
/// 1 = execution); `?2` the depth limit (execution levels). Without a limit the rows carry no
/// depth, so `UNION` makes every node appear once and a cycle ends; with one, depth is bounded.
pub fn walk_sql(direction: Direction, limited: bool) -> String {
    let (depth_col, depth_seed, d_exec, d_av, guard) = if limited {
        (
            ", d",
            ", CASE WHEN json_extract(j.value, '$[0]') = 1 THEN 1 ELSE 0 END",
            ", w.d + 1",
            ", w.d",
            " AND w.d < ?2",
        )
    } else {
        ("", "", "", "", "")
    };
    let steps = match direction {
        Direction::Up => format!(
            "SELECT 1, (SELECT o.step_exec FROM io_edges o JOIN step_execs s ON s.id = o.step_exec
                        WHERE o.av_id = w.id AND o.direction = 'out'
                        ORDER BY {REPLAY_LAST}, s.status <> 'succeeded', COALESCE(s.started_at, 0), s.id
                        LIMIT 1){d_exec}
               FROM walk w WHERE w.k = 0 AND w.id IS NOT NULL{guard}
             UNION
             SELECT 0, i.av_id{d_av} FROM walk w CROSS JOIN io_edges i
               ON i.step_exec = w.id AND i.direction = 'in' WHERE w.k = 1"
        ),
        Direction::Down => format!(
            "SELECT 1, i.step_exec{d_exec} FROM walk w CROSS JOIN io_edges i
               ON i.av_id = w.id AND i.direction = 'in' WHERE w.k = 0{guard}
             UNION
             SELECT 0, o.av_id{d_av} FROM walk w CROSS JOIN io_edges o
               ON o.step_exec = w.id AND o.direction = 'out' WHERE w.k = 1"
        ),
    };
    format!(
        "WITH RECURSIVE walk(k, id{depth_col}) AS (
           SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'){depth_seed}
             FROM json_each(?1) j
           UNION
           {steps}
         )
         SELECT DISTINCT k, id FROM walk WHERE id IS NOT NULL"
    )
}

/// Walk from `seed` and return the graph with every node's details.
pub(super) fn traverse(
    conn: &Connection,
    seed: &Seed,
    direction: Direction,
    depth: Option<u32>,
) -> Result<Graph> {
    // seeds
    let (root, seeds): (String, Vec<(i64, i64)>) = match seed {
        Seed::Version(av) => (av_node_id(*av), vec![(0, *av)]),
        Seed::Exec(e) => (exec_node_id(*e), vec![(1, *e)]),
        Seed::Run(r) => {
            let mut stmt = conn.prepare("SELECT id FROM step_execs WHERE run_id = ?1")?;
            let ids: Vec<i64> = stmt
                .query_map([r], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            (run_node_id(r), ids.into_iter().map(|i| (1, i)).collect())
        }
    };
    let seed_json = serde_json::to_string(&seeds).unwrap_or_else(|_| "[]".into());
    let sql = walk_sql(direction, depth.is_some());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut avs: BTreeSet<i64> = BTreeSet::new();
    let mut exs: BTreeSet<i64> = BTreeSet::new();
    let row = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?));
    let rows: Vec<(i64, i64)> = match depth {
        Some(d) => stmt
            .query_map(params![seed_json, d], row)?
            .collect::<rusqlite::Result<_>>()?,
        None => stmt
            .query_map(params![seed_json], row)?
            .collect::<rusqlite::Result<_>>()?,
    };
    for row in rows {
        let (k, id) = row;
        if k == 0 {
            avs.insert(id);
        } else {
            exs.insert(id);
        }
    }
    build_graph(conn, root, direction, depth, seed, avs, exs)
}

fn build_graph(
    conn: &Connection,
    root: String,
    direction: Direction,
    depth: Option<u32>,
    seed: &Seed,
    avs: BTreeSet<i64>,
    mut exs: BTreeSet<i64>,
) -> Result<Graph> {
    let mut edges: BTreeSet<GraphEdge> = BTreeSet::new();
    // io edges among the nodes found
    let av_list = id_list(avs.iter().copied());
    let ex_list = id_list(exs.iter().copied());
    {
        let mut stmt = conn.prepare(
            // from the executions (few edges each), not the versions (a shared source file
            // has thousands of readers): CROSS JOIN keeps that order
            "SELECT e.step_exec, e.direction, e.av_id, e.origin, e.declared
             FROM json_each(?1) x CROSS JOIN io_edges e ON e.step_exec = x.value
             WHERE e.av_id IN (SELECT value FROM json_each(?2))",
        )?;
        let rows = stmt.query_map(params![ex_list, av_list], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })?;
        for row in rows {
            let (e, dir, av, origin, declared) = row?;
            if dir == "in" {
                edges.insert(GraphEdge {
                    from: av_node_id(av),
                    to: exec_node_id(e),
                    kind: "used",
                    origin,
                    observed: !declared,
                });
            } else {
                edges.insert(GraphEdge {
                    from: exec_node_id(e),
                    to: av_node_id(av),
                    kind: "generated",
                    origin: None,
                    observed: !declared,
                });
            }
        }
    }
    // per version: producers, reuses, origins
    let mut prod: HashMap<i64, (usize, usize)> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT o.av_id, COUNT(*), SUM(s.status IN ('cached', 'restored'))
             FROM io_edges o JOIN step_execs s ON s.id = o.step_exec
             WHERE o.direction = 'out' AND o.av_id IN (SELECT value FROM json_each(?1))
             GROUP BY o.av_id",
        )?;
        for row in stmt.query_map([&av_list], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (av, n, reused) = row?;
            prod.insert(av, (n as usize, reused as usize));
        }
    }
    // what the readers in this graph recorded about each version
    let mut origins: HashMap<i64, BTreeSet<String>> = HashMap::new();
    for e in edges.iter().filter(|e| e.kind == "used") {
        if let (Some(av), Some(o)) = (
            e.from
                .strip_prefix("av:")
                .and_then(|a| a.parse::<i64>().ok()),
            &e.origin,
        ) {
            origins.entry(av).or_default().insert(o.clone());
        }
    }
    // gaps: only versions with no producer and no tracked reading here need a closer look
    // (readers elsewhere in the history may have seen them tracked or with a recorded diff)
    let candidates: Vec<i64> = avs
        .iter()
        .copied()
        .filter(|av| !prod.contains_key(av) && !origins.get(av).is_some_and(|o| o.contains("git")))
        .collect();
    let gap_set = gaps(conn, &candidates)?;
    // executions, plus the originals that cached ones reused
    let mut exec_map = execs(conn, &exs.iter().copied().collect::<Vec<_>>())?;
    let reused: Vec<i64> = exec_map
        .values()
        .filter_map(|e| e.reused_exec)
        .filter(|r| !exs.contains(r))
        .collect();
    if !reused.is_empty() {
        exec_map.extend(execs(conn, &reused)?);
        exs.extend(reused);
    }
    for e in exec_map.values() {
        if let Some(r) = e.reused_exec {
            edges.insert(GraphEdge {
                from: exec_node_id(r),
                to: exec_node_id(e.exec_id),
                kind: "reused",
                origin: None,
                observed: false,
            });
        }
    }
    // runs and commits
    let mut run_ids: BTreeSet<String> = exec_map.values().map(|e| e.run_id.clone()).collect();
    if let Seed::Run(r) = seed {
        run_ids.insert(r.clone());
    }
    let runs = runs_by_id(conn, &run_ids)?;
    let mut nodes: Vec<Node> = Vec::new();
    let versions = versions_by_id(conn, &avs)?;
    let dirty = uncommitted(conn, &candidates)?;
    let mut reasons = gap_reasons(conn, &gap_set.iter().copied().collect::<Vec<_>>())?;
    for v in versions {
        let (n, r) = prod.get(&v.av_id).copied().unwrap_or((0, 0));
        let o: Vec<String> = origins
            .get(&v.av_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let modified = dirty.contains(&v.av_id);
        let gap = gap_set.contains(&v.av_id);
        let gap_reason = gap.then(|| {
            reasons
                .remove(&v.av_id)
                .unwrap_or_else(|| GAP_REASON.to_string())
        });
        nodes.push(Node::ArtifactVersion {
            id: av_node_id(v.av_id),
            uncommitted: modified,
            version: v,
            producers: n,
            reused: r,
            origins: o,
            gap,
            gap_reason,
        });
    }
    let mut commits: BTreeSet<String> = BTreeSet::new();
    let mut ex_sorted: Vec<&Exec> = exec_map.values().collect();
    ex_sorted.sort_by_key(|e| (e.started_at.unwrap_or(i64::MAX), e.exec_id));
    for e in ex_sorted {
        edges.insert(GraphEdge {
            from: exec_node_id(e.exec_id),
            to: run_node_id(&e.run_id),
            kind: "part_of",
            origin: None,
            observed: false,
        });
        nodes.push(Node::StepExec {
            id: exec_node_id(e.exec_id),
            exec: e.clone(),
        });
    }
    for r in &runs {
        if let Node::Run {
            id,
            commit: Some(c),
            ..
        } = r
        {
            commits.insert(c.clone());
            edges.insert(GraphEdge {
                from: commit_node_id(c),
                to: id.clone(),
                kind: "checked_out",
                origin: None,
                observed: false,
            });
        }
    }
    // a version read as a tracked, unmodified file comes from the commit its reader ran at
    let committed: Vec<(i64, String)> = edges
        .iter()
        .filter(|e| e.kind == "used" && e.origin.as_deref() == Some("git"))
        .filter_map(|e| {
            let av: i64 = e.from.strip_prefix("av:")?.parse().ok()?;
            let ex: i64 = e.to.strip_prefix("exec:")?.parse().ok()?;
            let c = exec_map.get(&ex)?.commit.clone()?;
            Some((av, c))
        })
        .collect();
    for (av, c) in committed {
        commits.insert(c.clone());
        edges.insert(GraphEdge {
            from: commit_node_id(&c),
            to: av_node_id(av),
            kind: "committed",
            origin: None,
            observed: false,
        });
    }
    nodes.extend(runs);
    nodes.extend(commits.into_iter().map(|c| Node::Commit {
        id: commit_node_id(&c),
        sha: c,
    }));
    Ok(Graph {
        root,
        file: None,
        direction: direction.as_str(),
        depth,
        nodes,
        edges: edges.into_iter().collect(),
    })
}

fn versions_by_id(conn: &Connection, ids: &BTreeSet<i64>) -> Result<Vec<Version>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {VERSION_COLS} FROM {VERSION_FROM}
         WHERE v.id IN (SELECT value FROM json_each(?1)) ORDER BY a.path, v.id"
    ))?;
    let rows = stmt
        .query_map([id_list(ids.iter().copied())], version_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

fn runs_by_id(conn: &Connection, ids: &BTreeSet<String>) -> Result<Vec<Node>> {
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let mut stmt = conn.prepare(
        "SELECT r.id, r.pipeline, r.status, r.started_at, r.ended_at, r.hostname, r.user,
                g.commit_sha, g.branch, COALESCE(g.dirty, 0)
         FROM runs r LEFT JOIN git_snapshots g ON g.id = r.git_start
         WHERE r.id IN (SELECT value FROM json_each(?1)) ORDER BY r.started_at, r.id",
    )?;
    let rows = stmt
        .query_map([list], |r| {
            let id: String = r.get(0)?;
            Ok(Node::Run {
                id: run_node_id(&id),
                short_id: String::new(),
                run_id: id,
                pipeline: r.get(1)?,
                status: r.get(2)?,
                started_at: r.get(3)?,
                ended_at: r.get(4)?,
                hostname: r.get(5)?,
                user: r.get(6)?,
                commit: r.get(7)?,
                branch: r.get(8)?,
                dirty: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<Node>>>()?;
    let mut rows = rows;
    for n in &mut rows {
        if let Node::Run {
            run_id, short_id, ..
        } = n
        {
            *short_id = crate::store::query::short_id(conn, run_id)?;
        }
    }
    Ok(rows)
}

impl super::Store {
    /// An artifact version by id.
    pub fn version(&self, av_id: i64) -> Result<Option<Version>> {
        version(&self.conn, av_id).during(format_args!("reading version {av_id}"))
    }

    /// The id of the artifact recorded at `path`.
    pub fn artifact_id(&self, path: &str) -> Result<Option<i64>> {
        artifact_id(&self.conn, path).during(format_args!("looking up artifact `{path}`"))
    }

    /// The version of `path` with content `hash`.
    pub fn version_by_content(&self, path: &str, hash: &str) -> Result<Option<Version>> {
        version_by_content(&self.conn, path, hash)
            .during(format_args!("looking up `{path}` by content"))
    }

    /// The newest version recorded at `path`.
    pub fn latest_version(&self, path: &str) -> Result<Option<Version>> {
        latest_version(&self.conn, path)
            .during(format_args!("reading the latest version of `{path}`"))
    }

    /// The version of `path` a run's steps read or wrote.
    pub fn version_in_run(&self, path: &str, run_id: &str) -> Result<Option<Version>> {
        version_in_run(&self.conn, path, run_id).during(format_args!(
            "reading the version of `{path}` in run {run_id}"
        ))
    }

    /// The newest version of directory `dir` that holds `relpath` (with content `file_hash` when given).
    pub fn newest_dir_version_containing(
        &self,
        dir: &str,
        relpath: &str,
        file_hash: Option<&str>,
    ) -> Result<Option<Version>> {
        newest_dir_version_containing(&self.conn, dir, relpath, file_hash).during(format_args!(
            "looking up `{relpath}` in the versions of `{dir}`"
        ))
    }

    /// File `relpath` of directory version `dir`.
    pub fn member(&self, dir: &Version, relpath: &str) -> Result<Option<Member>> {
        member(&self.conn, dir, relpath)
            .during(format_args!("reading `{relpath}` in a directory version"))
    }

    /// The recorded directories that `path` is inside, nearest first.
    pub fn recorded_parent_dirs(&self, path: &str) -> Result<Vec<String>> {
        recorded_parent_dirs(&self.conn, path).during(format_args!(
            "looking up the recorded directories holding `{path}`"
        ))
    }

    /// The versions whose content hash starts with `prefix`.
    pub fn versions_by_hash_prefix(&self, prefix: &str) -> Result<Vec<Version>> {
        versions_by_hash_prefix(&self.conn, prefix)
            .during(format_args!("looking up hash prefix `{prefix}`"))
    }

    /// The one version a hash prefix names (an error when several).
    pub fn resolve_hash(&self, prefix: &str) -> Result<Option<Version>> {
        resolve_hash(&self.conn, prefix).during(format_args!("resolving hash prefix `{prefix}`"))
    }

    /// The execution of `step` in a run.
    pub fn exec_of(&self, run_id: &str, step: &str) -> Result<Option<i64>> {
        exec_of(&self.conn, run_id, step)
            .during(format_args!("looking up step {step} of run {run_id}"))
    }

    /// The step names of a run.
    pub fn steps_of(&self, run_id: &str) -> Result<Vec<String>> {
        steps_of(&self.conn, run_id).during(format_args!("reading the steps of run {run_id}"))
    }

    /// The execution that produced a version, the one people mean first.
    pub fn preferred_producer(&self, av_id: i64) -> Result<Option<i64>> {
        preferred_producer(&self.conn, av_id)
            .during(format_args!("finding the producer of version {av_id}"))
    }

    /// Step executions by id.
    pub fn execs(&self, ids: &[i64]) -> Result<HashMap<i64, Exec>> {
        execs(&self.conn, ids).during("reading step executions")
    }

    /// A version's model card: producer, inputs, params, metrics, environment.
    pub fn card(&self, av_id: i64) -> Result<Card> {
        card(&self.conn, av_id).during(format_args!("reading the card of version {av_id}"))
    }

    /// A run in the form `export` writes.
    pub fn export_run(&self, run_id: &str) -> Result<ExportRun> {
        export_run(&self.conn, run_id).during(format_args!("reading run {run_id} for export"))
    }

    /// Why the lineage of these versions has a gap, in words.
    pub fn gap_reasons(&self, ids: &[i64]) -> Result<HashMap<i64, String>> {
        gap_reasons(&self.conn, ids).during("reading why lineage is incomplete")
    }

    /// The lineage graph from `seed` (one recursive query per walk).
    pub fn traverse(&self, seed: &Seed, direction: Direction, depth: Option<u32>) -> Result<Graph> {
        traverse(&self.conn, seed, direction, depth).during("walking the lineage graph")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small store with the real schema: run 1 makes `data` from `raw` (external, no
    /// producer) and `gen.py` (git); run 2 trains `model` from `data`; a third execution is
    /// a cached copy of the training.
    fn store() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut c).unwrap();
        c.execute_batch(
            "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');
             INSERT INTO git_snapshots (id, is_repo, commit_sha, dirty, changed, untracked) VALUES ('g', 1, 'c0ffee', 0, '[]', '[]');
             INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, git_start, hostname, user, mlrun_version, argv, pid)
               VALUES ('r1', 'prep', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 1, 'g', 'h', 'u', '0', '[]', 1),
                      ('r2', 'train', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 2, 'g', 'h', 'u', '0', '[]', 1),
                      ('r3', 'train', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 3, 'g', 'h', 'u', '0', '[]', 1);
             INSERT INTO step_execs (id, run_id, step, cmd, argv, cwd, status, started_at, git_before, reused_exec) VALUES
               (1, 'r1', 'prep', 'p', '[]', '', 'succeeded', 1, 'g', NULL),
               (2, 'r2', 'train', 't', '[]', '', 'succeeded', 2, 'g', NULL),
               (3, 'r3', 'train', 't', '[]', '', 'cached', 3, 'g', 2);
             INSERT INTO blobs (hash, kind, size, nfiles, stored) VALUES ('h1', 'file', 1, 1, 0), ('h2', 'file', 1, 1, 0), ('h3', 'file', 1, 1, 0), ('h4', 'file', 1, 1, 0);
             INSERT INTO artifacts (id, path) VALUES (1, 'raw'), (2, 'gen.py'), (3, 'data'), (4, 'model');
             INSERT INTO artifact_versions (id, artifact_id, blob_hash, first_seen) VALUES (1, 1, 'h1', 0), (2, 2, 'h2', 0), (3, 3, 'h3', 0), (4, 4, 'h4', 0);
             INSERT INTO io_edges (step_exec, direction, av_id, declared, origin) VALUES (1, 'in', 1, 1, 'external'), (1, 'in', 2, 1, 'git'), (1, 'out', 3, 1, NULL),
               (2, 'in', 3, 1, 'external'), (2, 'out', 4, 1, NULL),
               (3, 'in', 3, 1, 'external'), (3, 'out', 4, 1, NULL);",
        )
        .unwrap();
        c
    }

    fn ids(g: &Graph) -> Vec<&str> {
        let mut v: Vec<&str> = g.nodes.iter().map(Node::id).collect();
        v.sort();
        v
    }

    #[test]
    fn upstream_crosses_runs_and_prefers_the_real_producer() {
        let c = store();
        let g = traverse(&c, &Seed::Version(4), Direction::Up, None).unwrap();
        assert_eq!(
            ids(&g),
            [
                "av:1",
                "av:2",
                "av:3",
                "av:4",
                "commit:c0ffee",
                "exec:1",
                "exec:2",
                "run:r1",
                "run:r2"
            ]
        );
        let gaps: Vec<&str> = g.gaps().map(|v| v.path.as_str()).collect();
        assert_eq!(
            gaps,
            ["raw"],
            "gen.py is tracked in git; raw has no producer"
        );
        assert!(g.edges.contains(&GraphEdge {
            from: "commit:c0ffee".into(),
            to: "av:2".into(),
            kind: "committed",
            origin: None,
            observed: false,
        }));
        match g.node("av:4").unwrap() {
            Node::ArtifactVersion {
                producers, reused, ..
            } => assert_eq!((*producers, *reused), (2, 1)),
            _ => panic!("av:4 is a version"),
        }
    }

    #[test]
    fn hash_prefixes_resolve_or_list_the_candidates() {
        let c = store();
        assert_eq!(resolve_hash(&c, "h3").unwrap().unwrap().path, "data");
        assert!(resolve_hash(&c, "h9").unwrap().is_none());
        let e = resolve_hash(&c, "h").unwrap_err();
        assert!(
            e.message.contains("is ambiguous: 4 recorded versions"),
            "{e}"
        );
        assert_eq!(e.causes.len(), 4, "{e}");
        assert!(
            e.causes
                .iter()
                .any(|l| l.to_string().contains("h2  gen.py")),
            "{e}"
        );
    }

    #[test]
    fn depth_limits_the_walk() {
        let c = store();
        let g = traverse(&c, &Seed::Version(4), Direction::Up, Some(1)).unwrap();
        let v: Vec<&str> = ids(&g)
            .into_iter()
            .filter(|i| i.starts_with("av") || i.starts_with("exec"))
            .collect();
        assert_eq!(v, ["av:3", "av:4", "exec:2"]);
    }

    #[test]
    fn downstream_reaches_every_consumer_including_reuses() {
        let c = store();
        let g = traverse(&c, &Seed::Version(1), Direction::Down, None).unwrap();
        let v: Vec<&str> = ids(&g)
            .into_iter()
            .filter(|i| i.starts_with("av") || i.starts_with("exec"))
            .collect();
        assert_eq!(v, ["av:1", "av:3", "av:4", "exec:1", "exec:2", "exec:3"]);
        assert!(
            g.edges
                .iter()
                .any(|e| e.kind == "reused" && e.from == "exec:2" && e.to == "exec:3")
        );
    }

    #[test]
    fn a_cycle_across_runs_terminates() {
        let c = store();
        // run 3's "training" also wrote `raw`: raw -> data -> model -> raw
        c.execute_batch("INSERT INTO io_edges (step_exec, direction, av_id, declared, origin) VALUES (2, 'out', 1, 1, NULL);")
            .unwrap();
        let g = traverse(&c, &Seed::Version(4), Direction::Up, None).unwrap();
        assert!(g.node("av:1").is_some());
        assert_eq!(g.gaps().count(), 0);
        let g = traverse(&c, &Seed::Version(1), Direction::Down, None).unwrap();
        assert!(g.node("av:4").is_some());
    }

    /// The planner must keep using the io_edges indexes, even after ANALYZE (FINDINGS: a Bloom
    /// filter inside the recursive step made a 15-node walk 1000x slower).
    #[test]
    fn the_walk_uses_the_io_edges_indexes_after_analyze() {
        let c = store();
        // enough rows for ANALYZE statistics to matter
        let tx = c.unchecked_transaction().unwrap();
        for i in 10..3000i64 {
            tx.execute(
                "INSERT INTO step_execs (id, run_id, step, cmd, argv, cwd, status, started_at) VALUES (?1, 'r2', 's' || ?1, '', '[]', '', 'succeeded', ?1)",
                [i],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO io_edges (step_exec, direction, av_id, declared, origin) VALUES (?1, 'in', 1, 1, 'external'), (?1, 'in', 2, 1, 'git'), (?1, 'out', 3, 1, NULL)",
                [i],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        c.execute_batch("ANALYZE").unwrap();
        for dir in [Direction::Up, Direction::Down] {
            for limited in [false, true] {
                let sql = walk_sql(dir, limited);
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let row = |r: &rusqlite::Row<'_>| r.get::<_, String>(3);
                let plan: Vec<String> = if limited {
                    stmt.query_map(params!["[[0,4]]", 3], row)
                        .unwrap()
                        .map(|r| r.unwrap())
                        .collect()
                } else {
                    stmt.query_map(params!["[[0,4]]"], row)
                        .unwrap()
                        .map(|r| r.unwrap())
                        .collect()
                };
                let text = plan.join("\n");
                assert!(!text.contains("BLOOM"), "{dir:?} {limited}:\n{text}");
                assert!(
                    !text.contains("SCAN io_edges")
                        && !text.contains("SCAN i ")
                        && !text.contains("SCAN o "),
                    "{dir:?} {limited}: io_edges must not be scanned:\n{text}"
                );
                let (by_av, by_exec) = match dir {
                    Direction::Up => (
                        "SEARCH o USING COVERING INDEX io_by_av",
                        "SEARCH i USING PRIMARY KEY",
                    ),
                    Direction::Down => (
                        "SEARCH i USING COVERING INDEX io_by_av",
                        "SEARCH o USING PRIMARY KEY",
                    ),
                };
                assert!(text.contains(by_av), "{dir:?} {limited}:\n{text}");
                assert!(text.contains(by_exec), "{dir:?} {limited}:\n{text}");
            }
        }
    }
}

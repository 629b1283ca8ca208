//! Artifact versions (a path bound to content): the one way a version row is read
//! (`VERSION_COLS` from `VERSION_FROM`, `version_row`), and what a target names: a path's
//! latest version, a run's, one by content or by hash prefix, a file inside a directory version.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fingerprint::hash::manifest_lookup;

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

/// An artifact version row, read one way by lineage and the model registry alike: these
/// columns, from `VERSION_FROM`, by `version_row`.
pub(in crate::store) const VERSION_COLS: &str =
    "v.id, a.path, v.blob_hash, b.kind, b.size, b.nfiles, v.first_seen";
pub(in crate::store) const VERSION_FROM: &str =
    "artifact_versions v JOIN artifacts a ON a.id = v.artifact_id
                            JOIN blobs b ON b.hash = v.blob_hash";

/// How many columns `VERSION_COLS` has: a query that selects more reads them after these.
pub(in crate::store) const VERSION_COLUMNS: usize = 7;

pub(in crate::store) fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Version> {
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

pub(in crate::store) fn version(conn: &Connection, av_id: i64) -> Result<Option<Version>> {
    Ok(conn
        .query_row(
            &format!("SELECT {VERSION_COLS} FROM {VERSION_FROM} WHERE v.id = ?1"),
            [av_id],
            version_row,
        )
        .optional()?)
}

/// Is `path` a recorded artifact?
pub(in crate::store) fn artifact_id(conn: &Connection, path: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row("SELECT id FROM artifacts WHERE path = ?1", [path], |r| {
            r.get(0)
        })
        .optional()?)
}

/// The version of `path` with content `hash`, if it was ever recorded.
pub(in crate::store) fn version_by_content(
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
pub(in crate::store) fn latest_version(conn: &Connection, path: &str) -> Result<Option<Version>> {
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
pub(in crate::store) fn version_in_run(
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
pub(in crate::store) fn newest_dir_version_containing(
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
pub(in crate::store) fn dir_version_contains(
    conn: &Connection,
    dir_hash: &str,
    relpath: &str,
    file_hash: Option<&str>,
) -> bool {
    crate::store::query::dir_manifest(conn, dir_hash).is_ok_and(|m| {
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
pub(in crate::store) fn member(
    conn: &Connection,
    dir: &Version,
    relpath: &str,
) -> Result<Option<Member>> {
    let manifest = crate::store::query::dir_manifest(conn, &dir.hash)?;
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
pub(in crate::store) fn recorded_parent_dirs(conn: &Connection, path: &str) -> Result<Vec<String>> {
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
pub(in crate::store) fn versions_by_hash_prefix(
    conn: &Connection,
    prefix: &str,
) -> Result<Vec<Version>> {
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
pub(in crate::store) fn resolve_hash(conn: &Connection, prefix: &str) -> Result<Option<Version>> {
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

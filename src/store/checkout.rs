//! What `mlrun checkout` puts back into the working tree: a recorded version as a fingerprint the
//! object store can restore, the versions a run leaves behind (its outputs and the external inputs
//! it read), the project directory they belong to, and whether the store holds some content.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;
use crate::fingerprint::hash::Fingerprint;
use crate::store::objects::Objects;

/// One path to put back, as recorded.
#[derive(Debug, Clone)]
pub struct Item {
    pub path: String,
    pub fp: Fingerprint,
    /// the target text when the path was a symbolic link
    pub link: Option<Vec<u8>>,
    /// `output`, or `input` (an external input: untracked, ignored or modified in git)
    pub role: &'static str,
    /// the step that made (or read) it
    pub step: Option<String>,
    /// the record says its bytes were kept
    pub stored: bool,
}

/// A version's content as a fingerprint: a file (mode from any edge that recorded it), or a
/// directory with the entries of its manifest.
/// The artifact version `av_id` as an item to put back (`stored`: whether the record says its
/// bytes were kept).
pub(super) fn version_item(conn: &Connection, av_id: i64) -> Result<Option<Item>> {
    type Row = (
        String,
        String,
        String,
        i64,
        Option<i64>,
        bool,
        Option<String>,
    );
    let row: Option<Row> = conn
        .query_row(
            "SELECT a.path, b.hash, b.kind, b.size,
                    (SELECT e.mode FROM io_edges e WHERE e.av_id = v.id AND e.mode IS NOT NULL LIMIT 1),
                    b.stored,
                    (SELECT s.step FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
                     WHERE e.av_id = v.id AND e.direction = 'out' ORDER BY s.id LIMIT 1)
             FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id
             JOIN blobs b ON b.hash = v.blob_hash WHERE v.id = ?1",
            [av_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    let Some((path, hash, kind, size, mode, stored, step)) = row else {
        return Ok(None);
    };
    let role = if step.is_some() { "output" } else { "input" };
    Ok(Some(Item {
        path,
        fp: super::query::fingerprint_of(conn, hash, &kind, size, mode)?,
        link: None,
        role,
        step,
        stored,
    }))
}

/// What run `run_id` (or only its execution `exec`) left in the working tree: the outputs of its
/// steps (a path written twice: its last version) and the external inputs they read (inputs
/// neither made by a step nor tracked unmodified in git), in path order.
pub(super) fn run_items(conn: &Connection, run_id: &str, exec: Option<i64>) -> Result<Vec<Item>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.path, b.hash, b.kind, b.size, e.mode, b.stored, e.link, e.direction, s.step
         FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
         JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
         JOIN blobs b ON b.hash = v.blob_hash
         WHERE s.run_id = ?1 AND (?2 IS NULL OR s.id = ?2) AND e.declared = 1
           AND (e.direction = 'out' OR e.origin = 'external')
         ORDER BY s.id, a.path",
    )?;
    type Row = (
        String,
        String,
        String,
        i64,
        Option<i64>,
        bool,
        Option<Vec<u8>>,
        String,
        String,
    );
    let rows: Vec<Row> = stmt
        .query_map(params![run_id, exec], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut outputs: BTreeMap<String, Item> = BTreeMap::new();
    let mut inputs: BTreeMap<String, Item> = BTreeMap::new();
    for (path, hash, kind, size, mode, stored, link, direction, step) in rows {
        let item = Item {
            fp: super::query::fingerprint_of(conn, hash, &kind, size, mode)?,
            link,
            role: if direction == "out" {
                "output"
            } else {
                "input"
            },
            step: Some(step),
            stored,
            path: path.clone(),
        };
        if direction == "out" {
            // executions in order: a later one's version of the same path wins
            outputs.insert(path, item);
        } else {
            // the first reader's version: what the run started from
            inputs.entry(path).or_insert(item);
        }
    }
    // an input that a step of the run also made (or that lies inside such an output) is put
    // back as that output
    let within = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
    inputs.retain(|p, _| !outputs.keys().any(|o| within(p, o) || within(o, p)));
    let mut all: Vec<Item> = outputs.into_values().chain(inputs.into_values()).collect();
    all.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(all)
}

/// The project directory a run worked in (replays work in a scratch tree: `None`).
pub(super) fn run_root(conn: &Connection, run_id: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT root FROM runs WHERE id = ?1 AND replay_of IS NULL",
            [run_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// The project directories of the runs that recorded version `av_id`, newest first (replays'
/// scratch trees left out).
pub(super) fn version_roots(conn: &Connection, av_id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.root FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
         JOIN runs r ON r.id = s.run_id
         WHERE e.av_id = ?1 AND r.replay_of IS NULL
         GROUP BY r.root ORDER BY MAX(r.started_at) DESC",
    )?;
    let rows = stmt
        .query_map([av_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Does the store hold `fp` (content met in the working tree) so that it could be put back:
/// a file's object, or a recorded directory version's manifest and every one of its files?
pub(super) fn holds(conn: &Connection, objects: &Objects, fp: &Fingerprint) -> bool {
    match fp {
        Fingerprint::File { hash, .. } => objects.has(hash),
        Fingerprint::Dir { hash, .. } => {
            super::query::dir_manifest(conn, hash).is_ok() && objects.can_restore(fp)
        }
    }
}

/// The newest recorded version of `path` whose bytes the store holds (for `status`, which
/// points at `checkout` when an input is missing).
pub(super) fn latest_restorable(
    conn: &Connection,
    objects: &Objects,
    path: &str,
) -> Result<Option<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.id FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id
         JOIN blobs b ON b.hash = v.blob_hash
         JOIN io_edges e ON e.av_id = v.id JOIN step_execs s ON s.id = e.step_exec
         JOIN runs r ON r.id = s.run_id
         WHERE a.path = ?1 AND b.stored = 1
         GROUP BY v.id
         ORDER BY MAX(r.replay_of IS NULL) DESC, MAX(COALESCE(s.started_at, 0)) DESC LIMIT 5",
    )?;
    let ids: Vec<i64> = stmt
        .query_map([path], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        if let Some(item) = version_item(conn, id)?
            && objects.can_restore(&item.fp)
        {
            return Ok(Some((item.fp.hash().to_string(), item.path)));
        }
    }
    Ok(None)
}

impl super::Store {
    /// What `checkout` puts back for artifact version `av_id`.
    pub fn checkout_version_item(&self, av_id: i64) -> Result<Option<Item>> {
        version_item(&self.conn, av_id)
    }

    /// What `checkout RUN` (or `RUN:STEP`, with `exec`) puts back.
    pub fn checkout_run_items(&self, run_id: &str, exec: Option<i64>) -> Result<Vec<Item>> {
        run_items(&self.conn, run_id, exec)
    }

    /// The project root a run was recorded in.
    pub fn run_root(&self, run_id: &str) -> Result<Option<String>> {
        run_root(&self.conn, run_id)
    }

    /// The project roots of the runs that recorded artifact version `av_id`.
    pub fn version_roots(&self, av_id: i64) -> Result<Vec<String>> {
        version_roots(&self.conn, av_id)
    }

    /// Whether the store holds every byte of `fp` (its object, or a directory's manifest and
    /// every object in it).
    pub fn holds_content(&self, objects: &Objects, fp: &Fingerprint) -> bool {
        holds(&self.conn, objects, fp)
    }

    /// The last recorded version of `path` whose content the store holds: (hash, run).
    pub fn latest_restorable(
        &self,
        objects: &Objects,
        path: &str,
    ) -> Result<Option<(String, String)>> {
        latest_restorable(&self.conn, objects, path)
    }
}

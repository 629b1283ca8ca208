//! Lineage gaps: versions produced by no recorded execution, and what is known of each.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;

use super::*;
use crate::error::Result;

/// Versions among `ids` that were read while git listed them (or a file inside them) as changed
/// in the reader's working tree: tracked files with uncommitted edits, whose diff the run
/// recorded. Not gaps, but not the committed content either.
pub(in crate::store) fn uncommitted(conn: &Connection, ids: &[i64]) -> Result<HashSet<i64>> {
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
pub(in crate::store) fn gaps(conn: &Connection, ids: &[i64]) -> Result<HashSet<i64>> {
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
pub(super) fn objects_of(conn: &Connection) -> Option<crate::store::objects::Objects> {
    let db = conn.path().filter(|p| !p.is_empty())?;
    Some(crate::store::objects::Objects::new(
        std::path::Path::new(db).parent()?,
    ))
}

/// For each version among `ids` (lineage gaps: produced by no step, not in git), what is known
/// of it, in words: its copy is stored (it can be restored), no copy was kept (a replay will
/// need it), or its data version is unknown (no hash, or the stored copy is missing). Gaps are
/// few; a directory's manifest is read to check each of its files' objects.
pub(in crate::store) fn gap_reasons(
    conn: &Connection,
    ids: &[i64],
) -> Result<HashMap<i64, String>> {
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
            Some(o) if kind == "dir" => crate::store::query::dir_entry_list(conn, &hash)
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

//! The database's side of the object store: which blobs it says are stored (`blobs.stored`),
//! which objects the kept runs reference, and the corrections `gc` and `fsck --repair` make.

use std::collections::HashSet;

use rusqlite::Connection;

use crate::error::Result;
use crate::fingerprint::hash::{MODE_LINK, parse_manifest};
use crate::store::query;

/// Blob hashes that the step executions of the kept runs used or generated: the runs of
/// `keep_last` (all when `None`; replays are kept with the run they replayed), every run
/// still in progress and every run that made a registered model version (so it can still be
/// restored and replayed), plus the registered versions themselves.
pub(super) fn referenced(
    conn: &Connection,
    keep_last: Option<KeepLast>,
) -> Result<HashSet<String>> {
    let kept_clause = kept_runs_sql(keep_last);
    let sql = format!(
        "WITH kept(id) AS ({kept_clause})
         SELECT DISTINCT v.blob_hash FROM io_edges e
           JOIN step_execs s ON s.id = e.step_exec JOIN kept k ON k.id = s.run_id
           JOIN artifact_versions v ON v.id = e.av_id
         UNION SELECT v.blob_hash FROM model_versions mv
           JOIN artifact_versions v ON v.id = mv.av_id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let out = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(out)
}

/// `gc --keep-last N`: keep the N most recent successful runs of the workspace and every run
/// newer than the oldest of them (`any_status`: the N most recent runs, whatever their status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepLast {
    pub n: usize,
    pub any_status: bool,
}

/// The SQL of the ids of the runs gc keeps: with `keep_last`, the workspace's runs it names
/// (replays are not counted: each is kept with the run it replayed), every run still in
/// progress, and every run that made a registered model version (so it can still be restored
/// and replayed); all runs when `None`.
pub fn kept_runs_sql(keep_last: Option<KeepLast>) -> String {
    let Some(k) = keep_last else {
        return "SELECT id FROM runs".to_string();
    };
    let mine = if k.n == 0 {
        "SELECT id FROM runs WHERE 0".to_string()
    } else if k.any_status {
        // the N most recent runs of the workspace
        format!(
            "SELECT id FROM (SELECT id FROM runs WHERE replay_of IS NULL ORDER BY started_at DESC, id DESC LIMIT {})",
            k.n
        )
    } else {
        // from the Nth most recent successful run on (a failed or interrupted run does not
        // push a good one out); every run when fewer succeeded
        format!(
            "SELECT id FROM runs WHERE replay_of IS NULL AND (
               NOT EXISTS (SELECT 1 FROM runs WHERE replay_of IS NULL AND status = 'succeeded'
                           ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET {o})
               OR (started_at, id) >= (SELECT started_at, id FROM runs
                                       WHERE replay_of IS NULL AND status = 'succeeded'
                                       ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET {o}))",
            o = k.n - 1
        )
    };
    format!(
        "SELECT id FROM ({mine})
         UNION SELECT r.id FROM runs r WHERE r.replay_of IN ({mine})
         UNION SELECT id FROM runs WHERE status = 'running'
         UNION SELECT run_id FROM model_versions WHERE run_id IS NOT NULL"
    )
}

pub(super) fn run_count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?)
}

/// When the oldest run still in progress started (ms since the epoch).
pub(super) fn oldest_running_start(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.query_row(
        "SELECT min(started_at) FROM runs WHERE status = 'running'",
        [],
        |r| r.get(0),
    )?)
}

/// Hashes of the file blobs the database says are in the object store.
pub(super) fn stored_files(conn: &Connection) -> Result<HashSet<String>> {
    let mut stmt = conn.prepare("SELECT hash FROM blobs WHERE stored = 1 AND kind = 'file'")?;
    let out = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(out)
}

/// Directory versions said to be stored whose manifest is unreadable or names a file object in
/// `gone`: they can no longer be restored.
pub(super) fn dirs_needing(conn: &Connection, gone: &HashSet<String>) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT hash FROM blobs WHERE stored = 1 AND kind = 'dir'")?;
    let stored: HashSet<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    let mut out = Vec::new();
    if gone.is_empty() {
        return Ok(out);
    }
    query::for_each_dir_manifest(conn, |hash, data| {
        if stored.contains(hash)
            && data.and_then(parse_manifest).is_some_and(|entries| {
                entries
                    .iter()
                    .any(|e| e.mode != MODE_LINK && gone.contains(&e.hash))
            })
        {
            out.push(hash.to_string());
        }
        Ok(())
    })?;
    Ok(out)
}

/// Say, in one transaction, that these blobs are no longer stored. The raw SQLite error is
/// returned so the caller can tell a full disk apart (`WriteError`).
pub(super) fn mark_not_stored<'a>(
    conn: &Connection,
    hashes: impl IntoIterator<Item = &'a String>,
) -> rusqlite::Result<usize> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let mut n = 0;
    {
        let mut stmt = tx.prepare("UPDATE blobs SET stored = 0 WHERE hash = ?1 AND stored = 1")?;
        for h in hashes {
            n += stmt.execute([h])?;
        }
    }
    tx.commit()?;
    Ok(n)
}

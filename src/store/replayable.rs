//! Which runs a `gc` leaves unable to replay: a replay restores the external inputs its steps
//! read (untracked, ignored or modified files) from the object store, so a run whose stored
//! input copies gc deletes can no longer be replayed.

use rusqlite::Connection;

use crate::error::Result;
use crate::store::marks::{KeepLast, kept_runs_sql};

/// The external inputs with stored copies of the workspace's runs that gc does not keep:
/// (run id, blob hash, `file` or `dir`), newest run first.
pub(super) fn unkept_external_inputs(
    conn: &Connection,
    keep_last: Option<KeepLast>,
) -> Result<Vec<(String, String, String)>> {
    let kept = kept_runs_sql(keep_last);
    let mut stmt = conn.prepare(&format!(
        "WITH kept(id) AS ({kept})
         SELECT s.run_id, b.hash, b.kind FROM io_edges e
         JOIN step_execs s ON s.id = e.step_exec JOIN runs r ON r.id = s.run_id
         JOIN artifact_versions v ON v.id = e.av_id JOIN blobs b ON b.hash = v.blob_hash
         WHERE e.direction = 'in' AND e.origin = 'external' AND b.stored = 1
           AND r.replay_of IS NULL AND s.run_id NOT IN (SELECT id FROM kept)
         GROUP BY s.run_id, b.hash
         ORDER BY MAX(r.started_at) DESC, s.run_id"
    ))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

impl super::Store {
    /// The external inputs of kept runs whose stored copies gc would delete: (run, hash, kind).
    pub fn unkept_external_inputs(
        &self,
        keep_last: Option<KeepLast>,
    ) -> Result<Vec<(String, String, String)>> {
        unkept_external_inputs(&self.conn, keep_last)
    }
}

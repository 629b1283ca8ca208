//! Read-only queries for `mlrun ui` that the command-line views have no need of.

use rusqlite::Connection;

use crate::error::Result;

/// Recorded artifact paths with how many versions each has, newest version first (at most
/// `limit`), for the lineage page's index.
fn artifact_paths(conn: &Connection, limit: usize) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT a.path, COUNT(v.id), MAX(v.first_seen) AS newest FROM artifacts a
         JOIN artifact_versions v ON v.artifact_id = a.id
         GROUP BY a.id ORDER BY newest DESC, a.path LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

impl super::Store {
    /// Recorded artifact paths with how many versions each has, newest version first (at most
    /// `limit`), for the web view's lineage index.
    pub fn artifact_paths(&self, limit: usize) -> Result<Vec<(String, i64)>> {
        artifact_paths(&self.conn, limit)
    }
}

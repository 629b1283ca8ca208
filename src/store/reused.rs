//! Following reuse back to the execution that really ran: a `cached` or `restored` step has no
//! logs of its own; the execution it reused (or the one that one reused, and so on) has them.

use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;

/// The execution that really ran for `exec_id` (itself when it was not a reuse), and its run:
/// the end of the `reused_exec` chain. `None` when a link of the chain is missing.
pub(super) fn origin(conn: &Connection, exec_id: i64) -> Result<Option<(i64, String)>> {
    Ok(conn
        .query_row(
            "WITH RECURSIVE chain(id, next, run_id, depth) AS (
               SELECT id, reused_exec, run_id, 0 FROM step_execs WHERE id = ?1
               UNION ALL
               SELECT s.id, s.reused_exec, s.run_id, c.depth + 1 FROM step_execs s
               JOIN chain c ON s.id = c.next WHERE c.depth < 64)
             SELECT id, run_id FROM chain WHERE next IS NULL LIMIT 1",
            [exec_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

impl super::Store {
    /// The execution a reused step's record points at, and its run.
    pub fn reused_origin(&self, exec_id: i64) -> Result<Option<(i64, String)>> {
        origin(&self.conn, exec_id)
    }
}

//! What incremental runs and `status` read back about earlier executions: the reusable one for
//! a cache key (its outputs and metrics), the last success of a step, a step's recorded inputs
//! and outputs. These are on the path of every step of a no-op run: the statements are cached.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{During, Store};
use crate::error::Result;
use crate::store::record::Io;

/// An earlier successful execution with the same key: (execution to point at, its outputs,
/// its metrics).
pub struct Reusable {
    pub exec_id: i64,
    pub run_id: String,
    /// `run_id` as mlrun shows it
    pub short_id: String,
    pub outputs: Vec<Io>,
    pub metrics: BTreeMap<String, (f64, String)>,
}

/// A step's metrics: key → (value, the file or stream it came from).
pub type Metrics = BTreeMap<String, (f64, String)>;

impl Store {
    /// The latest execution with cache key `key` that succeeded (by running or by reuse), in
    /// the workspace's history: a replay ran in a scratch tree and is never a source of reuse
    /// unless `with_replays` (`mlrun run --reuse-replays`). A workspace run that did reuse a
    /// replay made that result part of the workspace's history, so its own record counts.
    pub fn find_reusable(&self, key: &str, with_replays: bool) -> Result<Option<Reusable>> {
        find_reusable(&self.conn, key, with_replays).during(format_args!(
            "looking up a reusable execution of key {}",
            short(key)
        ))
    }

    /// The inputs (`direction` "in") or outputs ("out") recorded for an execution, as
    /// fingerprints.
    pub fn recorded_io(&self, exec_id: i64, direction: &str) -> Result<Vec<Io>> {
        recorded_io(&self.conn, exec_id, direction).during(format_args!(
            "reading the recorded files of execution {exec_id}"
        ))
    }

    /// The metrics recorded for an execution.
    pub fn exec_metrics(&self, exec_id: i64) -> Result<Metrics> {
        exec_metrics(&self.conn, exec_id)
            .during(format_args!("reading the metrics of execution {exec_id}"))
    }

    /// The most recent execution of `step` in the pipeline at `pipeline_file` that succeeded (by
    /// running or reuse), with its cache parts as recorded (JSON). Replays are left out unless
    /// `with_replays`.
    pub fn last_success(
        &self,
        pipeline_file: &str,
        step: &str,
        with_replays: bool,
    ) -> Result<Option<(i64, String)>> {
        self.conn
            .query_row(
                "SELECT s.id, s.cache_parts FROM step_execs s JOIN runs r ON r.id = s.run_id
                 WHERE s.step = ?2 AND r.pipeline_file = ?1 AND s.cache_parts IS NOT NULL
                   AND s.status IN ('succeeded', 'cached', 'restored')
                   AND (?3 OR r.replay_of IS NULL)
                 ORDER BY s.id DESC LIMIT 1",
                params![pipeline_file, step, with_replays],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .during(format_args!("reading the last success of step {step}"))
    }

    /// Is `hash` a recorded version of `path` (made by some run)? A store that cannot say
    /// answers no.
    pub fn is_recorded_version(&self, path: &str, hash: &str) -> bool {
        self.conn
            .query_row(
                "SELECT 1 FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id
                 WHERE a.path = ?1 AND v.blob_hash = ?2",
                [path, hash],
                |_| Ok(()),
            )
            .is_ok()
    }
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

fn find_reusable(conn: &Connection, key: &str, with_replays: bool) -> Result<Option<Reusable>> {
    let found: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT COALESCE(s.reused_exec, s.id), o.run_id FROM step_execs s
             JOIN step_execs o ON o.id = COALESCE(s.reused_exec, s.id)
             JOIN runs r ON r.id = s.run_id
             WHERE s.cache_key = ?1 AND s.status IN ('succeeded', 'cached', 'restored')
               AND (?2 OR r.replay_of IS NULL)
             ORDER BY s.id DESC LIMIT 1",
        )?
        .query_row(params![key, with_replays], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((exec_id, run_id)) = found else {
        return Ok(None);
    };
    Ok(Some(Reusable {
        exec_id,
        short_id: super::query::short_id(conn, &run_id)?,
        run_id,
        outputs: recorded_io(conn, exec_id, "out")?,
        metrics: exec_metrics(conn, exec_id)?,
    }))
}

/// The one query of a step's metrics (reuse copies them, replay compares them).
fn exec_metrics(conn: &Connection, exec_id: i64) -> Result<Metrics> {
    let mut stmt =
        conn.prepare_cached("SELECT key, value, source, exact FROM metrics WHERE step_exec = ?1")?;
    let metrics = stmt
        .query_map([exec_id], |r| {
            let v = crate::fingerprint::metrics::from_columns(
                r.get(1)?,
                r.get::<_, Option<String>>(3)?.as_deref(),
            );
            Ok((r.get::<_, String>(0)?, (v, r.get::<_, String>(2)?)))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(metrics)
}

fn recorded_io(conn: &Connection, exec_id: i64, direction: &str) -> Result<Vec<Io>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.path, b.hash, b.kind, b.size, COALESCE(e.mode, 33188), b.stored, e.declared, e.link FROM io_edges e
         JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
         JOIN blobs b ON b.hash = v.blob_hash
         WHERE e.step_exec = ?1 AND e.direction = ?2 ORDER BY a.path",
    )?;
    type Row = (
        String,
        String,
        String,
        i64,
        i64,
        bool,
        bool,
        Option<Vec<u8>>,
    );
    let rows: Vec<Row> = stmt
        .query_map(params![exec_id, direction], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (path, hash, kind, size, mode, stored, declared, link) in rows {
        let fp = super::query::fingerprint_of(conn, hash, &kind, size, Some(mode))?;
        let mut io = Io::new(path, fp);
        io.stored = stored;
        // an execution reused later carries its observed (`--trace`) edges as observed
        io.declared = declared;
        io.link = link;
        out.push(io);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_recorded_is_nothing_to_reuse() {
        let store = Store::in_memory();
        assert!(store.find_reusable("k", true).unwrap().is_none());
        assert!(store.last_success("p.toml", "s", true).unwrap().is_none());
        assert!(store.exec_metrics(1).unwrap().is_empty());
        assert!(!store.is_recorded_version("x", "h"));
    }

    #[test]
    fn a_failed_query_names_its_operation_and_keeps_the_cause() {
        let store = Store::in_memory();
        store.execute_batch_for_test("DROP TABLE metrics");
        let e = store.exec_metrics(7).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with(
                "error: lineage store query failed while reading the metrics of execution 7"
            ),
            "{shown}"
        );
        assert!(shown.contains("no such table: metrics"), "{shown}");
    }
}

//! Sweeps (`mlrun run --sweep -p lr=0.1,0.2`): the runs of one sweep share `runs.sweep_id`.

use rusqlite::{Connection, OptionalExtension};

use super::{During, Store};
use crate::error::{Error, Result};

/// A recorded sweep: its id, pipeline, how many runs, when its first run started.
#[derive(Debug, Clone)]
pub struct SweepInfo {
    pub id: String,
    pub pipeline: String,
    pub runs: usize,
    pub started_at: i64,
}

impl Store {
    /// The sweep whose id starts with `prefix` (its full id), or an error naming the recorded
    /// sweeps when none or several do.
    pub fn resolve_sweep(&self, prefix: &str) -> Result<String> {
        let prefix = prefix.trim().to_ascii_lowercase();
        let found = sweeps(&self.conn, Some(&prefix))
            .during(format_args!("looking up sweep `{prefix}`"))?;
        match found.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => {
                let known = sweeps(&self.conn, None).during("reading the recorded sweeps")?;
                let mut e = Error::other(format!("no sweep has an id starting with `{prefix}`"));
                if known.is_empty() {
                    e = e.hint("no sweep is recorded: `mlrun run --sweep -p lr=0.1,0.2` runs one");
                } else {
                    e = e.hint(format!(
                        "recorded sweeps, newest first: {}",
                        listing(&known)
                    ));
                }
                Err(e)
            }
            many => Err(Error::other(format!(
                "`{prefix}` starts the ids of {} sweeps: {}",
                many.len(),
                listing(many)
            ))
            .hint("write more of the id")),
        }
    }

    /// The sweep a run is a variant of.
    pub fn sweep_of(&self, run_id: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT sweep_id FROM runs WHERE id = ?1", [run_id], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()
            .map(Option::flatten)
            .during(format_args!("reading the sweep of run {run_id}"))
    }
}

fn listing(s: &[SweepInfo]) -> String {
    s.iter()
        .take(5)
        .map(|s| {
            format!(
                "{} ({}, {} run{})",
                &s.id[..s.id.len().min(16)],
                s.pipeline,
                s.runs,
                if s.runs == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sweeps newest first, those whose id starts with `prefix` when given.
fn sweeps(conn: &Connection, prefix: Option<&str>) -> rusqlite::Result<Vec<SweepInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT sweep_id, min(pipeline), count(*), min(started_at) FROM runs
         WHERE sweep_id IS NOT NULL AND (?1 IS NULL OR substr(sweep_id, 1, length(?1)) = ?1)
         GROUP BY sweep_id ORDER BY min(started_at) DESC LIMIT 11",
    )?;
    stmt.query_map([prefix], |r| {
        Ok(SweepInfo {
            id: r.get(0)?,
            pipeline: r.get(1)?,
            runs: r.get::<_, i64>(2)? as usize,
            started_at: r.get(3)?,
        })
    })?
    .collect()
}

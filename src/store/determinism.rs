//! What is known about whether a step's outputs come out the same twice with the same inputs
//! (`output_determinism`): written by `mlrun check` and by a replay's second run, read by later
//! replays (a known nondeterministic output that differs is expected), `status` and `show`.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::Store;
pub use super::query::Finding;
use crate::error::Result;
use crate::store::record::now_ms;

/// Record that `path` of `step` in `pipeline` is (or is not) nondeterministic, as found by
/// `run` (`found_by`: `check` or `replay`). A verdict that agrees with the one known keeps its
/// `since_run`; another verdict replaces it.
fn record(
    conn: &Connection,
    pipeline: &str,
    step: &str,
    path: &str,
    nondeterministic: bool,
    run: &str,
    found_by: &str,
) -> Result<()> {
    let verdict = if nondeterministic {
        "nondeterministic"
    } else {
        "deterministic"
    };
    conn.execute(
        "INSERT INTO output_determinism (pipeline, step, path, verdict, since_run, last_run, found_by, checked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)
         ON CONFLICT (pipeline, step, path) DO UPDATE SET
           since_run = CASE WHEN verdict = excluded.verdict THEN since_run ELSE excluded.since_run END,
           found_by = CASE WHEN verdict = excluded.verdict THEN found_by ELSE excluded.found_by END,
           verdict = excluded.verdict, last_run = excluded.last_run, checked_at = excluded.checked_at",
        params![pipeline, step, path, verdict, run, found_by, now_ms()],
    )?;
    Ok(())
}

/// Every finding about the steps of `pipeline`: step → its outputs' findings.
fn of_pipeline(conn: &Connection, pipeline: &str) -> Result<BTreeMap<String, Vec<Finding>>> {
    // an older store (opened read-only, not migrated yet) has no table: nothing is known
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'output_determinism'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(BTreeMap::new());
    }
    let mut stmt = conn.prepare(
        "SELECT step, path, verdict, since_run, found_by FROM output_determinism
         WHERE pipeline = ?1 ORDER BY step, path",
    )?;
    let rows: Vec<(String, String, String, String, String)> = stmt
        .query_map([pipeline], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
    for (step, path, verdict, since_run, found_by) in rows {
        // a run removed since is still named, by the start of its id
        let since_run_short = super::query::short_id(conn, &since_run)
            .unwrap_or_else(|_| since_run.chars().take(8).collect());
        out.entry(step.clone()).or_default().push(Finding {
            step,
            path,
            verdict,
            since_run,
            since_run_short,
            found_by,
        });
    }
    Ok(out)
}

/// The known nondeterministic outputs of `pipeline`: (step, path) → finding.
fn nondeterministic(
    conn: &Connection,
    pipeline: &str,
) -> Result<BTreeMap<(String, String), Finding>> {
    Ok(of_pipeline(conn, pipeline)?
        .into_values()
        .flatten()
        .filter(Finding::nondeterministic)
        .map(|f| ((f.step.clone(), f.path.clone()), f))
        .collect())
}

/// The name of the pipeline a run ran.
fn pipeline_of(conn: &Connection, run: &str) -> Result<String> {
    Ok(
        conn.query_row("SELECT pipeline FROM runs WHERE id = ?1", [run], |r| {
            r.get(0)
        })?,
    )
}

impl Store {
    /// Record that `path` of `step` in `pipeline` is (or is not) nondeterministic, as found by
    /// `run` (`found_by`: `check` or `replay`). A verdict that agrees with the one known keeps
    /// its `since_run`; another verdict replaces it.
    #[allow(clippy::too_many_arguments)]
    pub fn record_determinism(
        &self,
        pipeline: &str,
        step: &str,
        path: &str,
        nondeterministic: bool,
        run: &str,
        found_by: &str,
    ) -> Result<()> {
        record(
            &self.conn,
            pipeline,
            step,
            path,
            nondeterministic,
            run,
            found_by,
        )
    }

    /// Every finding about the steps of `pipeline`: step → its outputs' findings.
    pub fn determinism_of_pipeline(
        &self,
        pipeline: &str,
    ) -> Result<BTreeMap<String, Vec<Finding>>> {
        of_pipeline(&self.conn, pipeline)
    }

    /// The known nondeterministic outputs of `pipeline`: (step, path) → finding.
    pub fn nondeterministic_outputs(
        &self,
        pipeline: &str,
    ) -> Result<BTreeMap<(String, String), Finding>> {
        nondeterministic(&self.conn, pipeline)
    }

    /// The name of the pipeline a run ran.
    pub fn pipeline_of(&self, run: &str) -> Result<String> {
        pipeline_of(&self.conn, run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_that_agrees_keeps_its_first_run() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        record(&conn, "p", "s", "out.txt", true, "run1", "check").unwrap();
        record(&conn, "p", "s", "out.txt", true, "run2", "replay").unwrap();
        let f = &of_pipeline(&conn, "p").unwrap()["s"][0];
        assert_eq!(
            (f.since_run.as_str(), f.found_by.as_str()),
            ("run1", "check")
        );
        record(&conn, "p", "s", "out.txt", false, "run3", "check").unwrap();
        let f = &of_pipeline(&conn, "p").unwrap()["s"][0];
        assert_eq!(
            (f.verdict.as_str(), f.since_run.as_str()),
            ("deterministic", "run3")
        );
        assert!(nondeterministic(&conn, "p").unwrap().is_empty());
        assert!(of_pipeline(&conn, "other").unwrap().is_empty());
    }
}

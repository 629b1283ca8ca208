//! A pulled run's record written into this store (`Store::import_run`): the rows other runs
//! may share first (contents, blobs, package sets, git, environments, the run), then the step
//! executions with new local ids, their edges, and their per-step rows, in one transaction.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::{
    BLOBS, CONTENTS, EDGES, ENV, GIT, LOGS, METRICS, PACKAGE_SETS, PARAMS, RUNS, RunRecord, STEPS,
    Table, step_key,
};
use crate::error::Result;
use crate::store::{During, Store};

/// A pulled step execution's local id, by (step, attempt).
type Ids = HashMap<(String, i64), i64>;

impl Store {
    /// Bring a run's record from a remote into this store, in one transaction. False when the
    /// run is here already (nothing is written). Its objects are not here yet: blobs are
    /// marked not stored until `object_arrived`.
    pub fn import_run(&mut self, rec: &RunRecord, remote: &str) -> Result<bool> {
        let what = format!("writing pulled run {}", rec.run_id);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during(&what)?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM runs WHERE id = ?1",
                [&rec.run_id],
                |_| Ok(()),
            )
            .optional()
            .during(&what)?
            .is_some();
        if exists {
            return Ok(false);
        }
        insert_run_rows(&tx, rec, &what)?;
        let ids = insert_step_execs(&tx, rec, &what)?;
        insert_edges(&tx, rec, &ids, &what)?;
        insert_per_step(&tx, rec, &ids, &what)?;
        tx.execute(
            "INSERT OR IGNORE INTO remote_runs (remote, run_id, how, at) VALUES (?1, ?2, 'pulled', ?3)",
            params![remote, &rec.run_id, crate::store::record::now_ms()],
        )
        .during(&what)?;
        tx.commit().during(&what)?;
        Ok(true)
    }
}

/// `table`'s columns, quoted, in their order.
fn all(t: &Table) -> String {
    t.cols
        .iter()
        .map(|c| format!("\"{}\"", c.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of `table` (their first `n` values), as they are.
fn insert(
    tx: &Transaction,
    rec: &RunRecord,
    what: &str,
    table: &Table,
    n: usize,
    ignore: bool,
) -> Result<()> {
    let marks = (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT {} INTO {} ({}) VALUES ({marks})",
        if ignore { "OR IGNORE" } else { "" },
        table.name,
        all(table)
    );
    let mut stmt = tx.prepare(&sql).during(what)?;
    for row in rec.table(table) {
        stmt.execute(rusqlite::params_from_iter(row.iter().take(n)))
            .during(what)?;
    }
    Ok(())
}

/// What other runs may share (kept when already here), then the run's own row.
fn insert_run_rows(tx: &Transaction, rec: &RunRecord, what: &str) -> Result<()> {
    insert(tx, rec, what, &CONTENTS, 3, true)?;
    insert(tx, rec, what, &BLOBS, 4, true)?;
    insert(tx, rec, what, &PACKAGE_SETS, 3, true)?;
    insert(tx, rec, what, &GIT, GIT.cols.len(), true)?;
    insert(tx, rec, what, &ENV, ENV.cols.len(), true)?;
    insert(tx, rec, what, &RUNS, RUNS.cols.len(), false).or_else(|_| -> Result<()> {
        // a replay of a run that is nowhere to be had: kept, without the dangling link
        let mut row = rec.table(&RUNS).first().cloned().unwrap_or_default();
        if row.len() > 20 {
            row[20] = Value::Null;
        }
        let marks = (1..=row.len()).map(|i| format!("?{i}")).collect::<Vec<_>>();
        tx.execute(
            &format!(
                "INSERT INTO runs ({}) VALUES ({})",
                all(&RUNS),
                marks.join(", ")
            ),
            rusqlite::params_from_iter(row.iter()),
        )
        .during(what)?;
        Ok(())
    })
}

/// The run's step executions under new local ids (by step and attempt), then their reuse links,
/// once every execution they may point at is in.
fn insert_step_execs(tx: &Transaction, rec: &RunRecord, what: &str) -> Result<Ids> {
    let mut ids: Ids = HashMap::new();
    let mut stmt = tx
        .prepare(
            "INSERT INTO step_execs (run_id, step, attempt, seq, cmd, argv, cwd, status,
               exit_code, signal, error, started_at, ended_at, git_before, git_after,
               env_id, cache_key, cache_parts, keep_outputs, repo_changes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
               ?16, ?17, ?18, ?19, ?20)",
        )
        .during(what)?;
    for row in rec.table(&STEPS) {
        let vals: Vec<&Value> = row[..18].iter().chain(&row[21..23]).collect();
        stmt.execute(rusqlite::params_from_iter(vals))
            .during(what)?;
        ids.insert(step_key(row), tx.last_insert_rowid());
    }
    let mut link = tx
        .prepare(
            "UPDATE step_execs SET reused_exec = (SELECT id FROM step_execs
               WHERE run_id = ?2 AND step = ?3 AND attempt = ?4) WHERE id = ?1",
        )
        .during(what)?;
    for row in rec.table(&STEPS) {
        if matches!(row[18], Value::Text(_)) {
            link.execute(params![ids[&step_key(row)], &row[18], &row[19], &row[20]])
                .during(what)?;
        }
    }
    Ok(ids)
}

/// The run's edges, each version (and its path) added when this store has not seen it.
fn insert_edges(tx: &Transaction, rec: &RunRecord, ids: &Ids, what: &str) -> Result<()> {
    let mut art = tx
        .prepare("INSERT OR IGNORE INTO artifacts (path) VALUES (?1)")
        .during(what)?;
    let mut ver = tx
        .prepare(
            "INSERT OR IGNORE INTO artifact_versions (artifact_id, blob_hash, first_seen)
             VALUES ((SELECT id FROM artifacts WHERE path = ?1), ?2, ?3)",
        )
        .during(what)?;
    let mut edge = tx
        .prepare(
            "INSERT OR IGNORE INTO io_edges (step_exec, direction, av_id, declared, origin, mode, link)
             VALUES (?1, ?2, (SELECT v.id FROM artifact_versions v JOIN artifacts a
               ON a.id = v.artifact_id WHERE a.path = ?3 AND v.blob_hash = ?4), ?5, ?6, ?7, ?8)",
        )
        .during(what)?;
    for row in rec.table(&EDGES) {
        art.execute([&row[4]]).during(what)?;
        ver.execute([&row[4], &row[5], &row[6]]).during(what)?;
        edge.execute(params![
            ids[&step_key(row)],
            &row[3],
            &row[4],
            &row[5],
            &row[7],
            &row[8],
            &row[9],
            &row[10]
        ])
        .during(what)?;
    }
    Ok(())
}

/// Params, metrics and logs, each row under its execution's local id; a long log's object is
/// not here until fetched.
fn insert_per_step(tx: &Transaction, rec: &RunRecord, ids: &Ids, what: &str) -> Result<()> {
    let per_step = |table: &Table, cols: &str| -> Result<()> {
        let n = table.cols.len() - 3;
        let marks = (2..=n + 1)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = tx
            .prepare(&format!(
                "INSERT INTO {} (step_exec, {cols}) VALUES (?1, {marks})",
                table.name
            ))
            .during(what)?;
        for row in rec.table(table) {
            let id = Value::Integer(ids[&step_key(row)]);
            stmt.execute(rusqlite::params_from_iter(
                std::iter::once(&id).chain(&row[3..]),
            ))
            .during(what)?;
        }
        Ok(())
    };
    per_step(&PARAMS, "key, value")?;
    per_step(&METRICS, "key, value, source, exact")?;
    // a long log's object is not here until fetched
    per_step(
        &LOGS,
        "stream, content_hash, bytes, tail_hash, full_hash, stored",
    )?;
    tx.execute(
        "UPDATE step_logs SET stored = 0 WHERE step_exec IN (SELECT id FROM step_execs WHERE run_id = ?1)",
        [&rec.run_id],
    )
    .during(what)?;
    Ok(())
}

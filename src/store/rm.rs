//! `mlrun rm`: what stands in the way of removing runs, and the removal itself: the runs' rows
//! deleted in one transaction, each replaced by a tombstone (`run_removals`) so history says it
//! was removed. `gc` then frees the objects that only they referenced.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::error::Result;

/// Another run's step that reused an execution of a run being removed.
#[derive(Debug, Clone, Serialize)]
pub struct Reuse {
    /// the run being removed, and its step whose execution is reused
    pub removed: String,
    pub step: String,
    /// the run whose record points at it
    pub by_run: String,
}

/// A registered model version made by a run being removed.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRef {
    pub run: String,
    pub name: String,
    pub version: String,
}

/// What is known of each run before removing it.
#[derive(Debug, Clone, Serialize)]
pub struct Doomed {
    pub id: String,
    pub pipeline: String,
    pub status: String,
    pub started_at: i64,
    /// set for a replay
    pub replay_of: Option<String>,
    pub steps: i64,
}

/// What stands in the way of removing `ids` (full run ids).
#[derive(Debug, Default)]
pub struct Obstacles {
    pub running: Vec<String>,
    pub models: Vec<ModelRef>,
    /// reuse by runs outside the set
    pub reused: Vec<Reuse>,
}

/// The runs `ids` with their replays (a replay is about its run: it goes with it), each once.
pub(super) fn with_replays(conn: &Connection, ids: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stmt = conn.prepare_cached("SELECT id FROM runs WHERE replay_of = ?1 ORDER BY id")?;
    for id in ids {
        if seen.insert(id.clone()) {
            out.push(id.clone());
        }
        let replays: Vec<String> = stmt
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for r in replays {
            if seen.insert(r.clone()) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

fn id_list(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

pub(super) fn describe(conn: &Connection, ids: &[String]) -> Result<Vec<Doomed>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.pipeline, r.status, r.started_at, r.replay_of,
                (SELECT COUNT(*) FROM step_execs s WHERE s.run_id = r.id)
         FROM runs r WHERE r.id = ?1",
    )?;
    let mut out = Vec::new();
    for id in ids {
        if let Some(d) = stmt
            .query_row([id], |r| {
                Ok(Doomed {
                    id: r.get(0)?,
                    pipeline: r.get(1)?,
                    status: r.get(2)?,
                    started_at: r.get(3)?,
                    replay_of: r.get(4)?,
                    steps: r.get(5)?,
                })
            })
            .optional()?
        {
            out.push(d);
        }
    }
    Ok(out)
}

pub(super) fn obstacles(conn: &Connection, ids: &[String]) -> Result<Obstacles> {
    let list = id_list(ids);
    let running = conn
        .prepare(
            "SELECT id FROM runs WHERE status = 'running' AND id IN (SELECT value FROM json_each(?1))",
        )?
        .query_map([&list], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let models = conn
        .prepare(
            "SELECT COALESCE(mv.run_id, s.run_id), m.name, mv.label FROM model_versions mv
             JOIN models m ON m.id = mv.model_id
             LEFT JOIN step_execs s ON s.id = mv.step_exec
             WHERE mv.run_id IN (SELECT value FROM json_each(?1))
                OR s.run_id IN (SELECT value FROM json_each(?1))
             ORDER BY m.name, mv.major, mv.semver",
        )?
        .query_map([&list], |r| {
            Ok(ModelRef {
                run: r.get(0)?,
                name: r.get(1)?,
                version: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let reused = conn
        .prepare(
            "SELECT o.run_id, o.step, u.run_id FROM step_execs u
             JOIN step_execs o ON o.id = u.reused_exec
             WHERE o.run_id IN (SELECT value FROM json_each(?1))
               AND u.run_id NOT IN (SELECT value FROM json_each(?1))
             GROUP BY o.run_id, o.step, u.run_id ORDER BY u.run_id, o.step",
        )?
        .query_map([&list], |r| {
            Ok(Reuse {
                removed: r.get(0)?,
                step: r.get(1)?,
                by_run: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Obstacles {
        running,
        models,
        reused,
    })
}

/// Delete the runs `ids` (their steps, edges, params, metrics, logs and OpenLineage outbox
/// rows) and write their tombstones, in one immediate transaction. Other runs' pointers at their executions (reuse
/// that `--force` overrode) are cleared; `reason` says so in each tombstone. The caller has
/// checked the obstacles; a run found running (or that made a model version) meanwhile makes
/// the whole removal fail, and nothing is removed.
pub(super) fn remove(
    conn: &mut Connection,
    ids: &[String],
    removed_by: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let list = id_list(ids);
    let again = obstacles(&tx, ids)?;
    if !again.running.is_empty() || !again.models.is_empty() {
        return Err(crate::error::Error::other(
            "a run to remove started running or made a model version meanwhile; nothing was removed",
        ));
    }
    tx.execute(
        "INSERT OR REPLACE INTO run_removals (run_id, pipeline, status, started_at, git_commit,
            message, replay_of, steps, removed_at, removed_by, reason)
         SELECT r.id, r.pipeline, r.status, r.started_at, g.commit_sha, r.message, r.replay_of,
                (SELECT COUNT(*) FROM step_execs s WHERE s.run_id = r.id), ?2, ?3, ?4
         FROM runs r LEFT JOIN git_snapshots g ON g.id = r.git_start
         WHERE r.id IN (SELECT value FROM json_each(?1))",
        params![list, now, removed_by, reason],
    )?;
    let execs = "SELECT id FROM step_execs WHERE run_id IN (SELECT value FROM json_each(?1))";
    tx.execute(
        &format!(
            "UPDATE step_execs SET reused_exec = NULL WHERE reused_exec IN ({execs})
               AND run_id NOT IN (SELECT value FROM json_each(?1))"
        ),
        [&list],
    )?;
    // the versions the runs read or made, to drop those no other record refers to once their
    // edges are gone: left behind, a version made by a removed run would read as a lineage gap
    // ("produced outside mlrun")
    tx.execute(
        "CREATE TEMP TABLE IF NOT EXISTS rm_versions (id INTEGER PRIMARY KEY)",
        [],
    )?;
    tx.execute("DELETE FROM rm_versions", [])?;
    tx.execute(
        &format!("INSERT OR IGNORE INTO rm_versions SELECT av_id FROM io_edges WHERE step_exec IN ({execs})"),
        [&list],
    )?;
    for table in ["io_edges", "params", "metrics", "step_logs", "step_jobs"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE step_exec IN ({execs})"),
            [&list],
        )?;
    }
    // executions of the set that reuse each other: unlink before deleting
    tx.execute(
        "UPDATE step_execs SET reused_exec = NULL WHERE run_id IN (SELECT value FROM json_each(?1))",
        [&list],
    )?;
    tx.execute(
        "DELETE FROM step_execs WHERE run_id IN (SELECT value FROM json_each(?1))",
        [&list],
    )?;
    tx.execute(
        "DELETE FROM artifact_versions WHERE id IN (SELECT id FROM rm_versions)
           AND NOT EXISTS (SELECT 1 FROM io_edges e WHERE e.av_id = artifact_versions.id)
           AND NOT EXISTS (SELECT 1 FROM model_versions m WHERE m.av_id = artifact_versions.id)",
        [],
    )?;
    tx.execute(
        "DELETE FROM artifacts WHERE NOT EXISTS
           (SELECT 1 FROM artifact_versions v WHERE v.artifact_id = artifacts.id)",
        [],
    )?;
    tx.execute("DELETE FROM rm_versions", [])?;
    // their lineage events still waiting to be delivered (and the marks of those delivered):
    // the lineage of a run the user removed is not sent later
    tx.execute(
        "DELETE FROM openlineage_outbox WHERE run_id IN (SELECT value FROM json_each(?1))",
        [&list],
    )?;
    // replays first: they point at the runs they replayed
    tx.execute(
        "DELETE FROM runs WHERE replay_of IS NOT NULL AND id IN (SELECT value FROM json_each(?1))",
        [&list],
    )?;
    let n = tx.execute(
        "DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?1))",
        [&list],
    )?;
    tx.commit()?;
    Ok(n)
}

/// A removed run's tombstone, by id prefix (lowercase hex).
#[derive(Debug, Clone, Serialize)]
pub struct Tombstone {
    pub run_id: String,
    pub pipeline: String,
    pub started_at: i64,
    pub removed_at: i64,
    pub removed_by: String,
}

pub fn removed(conn: &Connection, prefix: &str) -> Result<Option<Tombstone>> {
    Ok(conn
        .query_row(
            "SELECT run_id, pipeline, started_at, removed_at, removed_by FROM run_removals
             WHERE run_id >= ?1 AND run_id < ?1 || 'g' ORDER BY removed_at DESC LIMIT 1",
            [prefix],
            |r| {
                Ok(Tombstone {
                    run_id: r.get(0)?,
                    pipeline: r.get(1)?,
                    started_at: r.get(2)?,
                    removed_at: r.get(3)?,
                    removed_by: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// How many runs were removed (gc: a store with no runs left is not a lost database when its
/// runs were removed).
pub(super) fn removed_count(conn: &Connection) -> Result<i64> {
    Ok(conn
        .query_row("SELECT COUNT(*) FROM run_removals", [], |r| r.get(0))
        .unwrap_or(0))
}

impl super::Store {
    /// The runs `ids` and every replay of them (a replay goes with the run it replayed).
    pub fn runs_with_replays(&self, ids: &[String]) -> Result<Vec<String>> {
        with_replays(&self.conn, ids)
    }

    /// What removing `ids` would remove, run by run.
    pub fn describe_removal(&self, ids: &[String]) -> Result<Vec<Doomed>> {
        describe(&self.conn, ids)
    }

    /// Why `ids` cannot be removed (running, made model versions, reused by other runs).
    pub fn removal_obstacles(&self, ids: &[String]) -> Result<Obstacles> {
        obstacles(&self.conn, ids)
    }

    /// Remove the runs `ids`, leaving a tombstone for each, in one transaction.
    pub fn remove_runs(
        &mut self,
        ids: &[String],
        removed_by: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<usize> {
        remove(&mut self.conn, ids, removed_by, reason, now)
    }

    /// How many runs were removed with `mlrun rm`.
    pub fn removed_count(&self) -> Result<i64> {
        removed_count(&self.conn)
    }
}

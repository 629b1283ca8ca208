//! What `mlrun replay` reads and writes: a recorded run as it was started (plan and pipeline
//! text as recorded, the git state at its start, its successful executions), which run produced
//! an artifact version, an execution's environment, the replayed steps, and the verdict.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};

use super::query::{self, EnvInfo};
use super::{During, Store};
use crate::error::Result;
use crate::fingerprint::git::GitState;

/// A recorded run as replay needs it, in the form it was recorded: the plan is its JSON (replay
/// decides how to read it back), the pipeline text as it was.
pub struct RecordedRun {
    pub run_id: String,
    pub short_id: String,
    pub plan_json: String,
    pub spec: String,
    /// the pipeline file and the params (JSON) as recorded: replay checks the text again with them
    pub pipeline_file: String,
    pub params_json: String,
    pub git: GitState,
    /// step name → its successful execution in the run
    pub execs: BTreeMap<String, i64>,
}

impl Store {
    /// The run `run_id` as recorded.
    pub fn recorded_run(&self, run_id: &str) -> Result<RecordedRun> {
        recorded_run(&self.conn, run_id).during(format_args!("reading run {run_id}"))
    }

    /// The newest version recorded at `path`, the one with content `prefer` first.
    pub fn version_at_path(&self, path: &str, prefer: Option<&str>) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT v.id FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id
                 WHERE a.path = ?1 ORDER BY (v.blob_hash = ?2) DESC, v.first_seen DESC LIMIT 1",
                rusqlite::params![path, prefer],
                |r| r.get(0),
            )
            .optional()
            .during(format_args!("reading the versions of `{path}`"))
    }

    /// Up to `limit` versions whose content hash starts with `prefix` (lowercase hex).
    pub fn version_ids_by_hash_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<i64>> {
        let read = || -> Result<Vec<i64>> {
            let found = self
                .conn
                .prepare("SELECT id FROM artifact_versions WHERE blob_hash >= ?1 AND blob_hash < ?1 || 'g' LIMIT ?2")?
                .query_map(rusqlite::params![prefix, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(found)
        };
        read().during(format_args!("looking up hash prefix `{prefix}`"))
    }

    /// The run whose step produced version `av_id`: a workspace run before a replay, a step
    /// that ran before one that reused it, else the latest.
    /// `prefer`: that run when one of its steps produced it (`PATH@RUN`).
    pub fn producing_run(&self, av_id: i64, prefer: Option<&str>) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT s.run_id FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
                 JOIN runs r ON r.id = s.run_id
                 WHERE e.av_id = ?1 AND e.direction = 'out'
                 ORDER BY s.run_id IS ?2 DESC, r.replay_of IS NOT NULL, (s.reused_exec IS NOT NULL), s.id DESC LIMIT 1",
                rusqlite::params![av_id, prefer],
                |r| r.get(0),
            )
            .optional()
            .during("finding the run that produced a version")
    }

    /// The environment recorded with one step execution, if any.
    pub fn exec_env(&self, exec_id: i64) -> Result<Option<EnvInfo>> {
        let read = || -> Result<Option<EnvInfo>> {
            let env_id: Option<String> = self
                .conn
                .query_row(
                    "SELECT env_id FROM step_execs WHERE id = ?1",
                    [exec_id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            Ok(env_id
                .map(|id| query::env_info(&self.conn, &id))
                .transpose()?
                .flatten())
        };
        read().during(format_args!(
            "reading the environment of execution {exec_id}"
        ))
    }

    /// The steps of a run: name → (execution, status), the last attempt of each.
    pub fn step_statuses(&self, run_id: &str) -> Result<BTreeMap<String, (i64, String)>> {
        let read = || -> Result<BTreeMap<String, (i64, String)>> {
            let mut stmt = self
                .conn
                .prepare("SELECT step, id, status FROM step_execs WHERE run_id = ?1 ORDER BY id")?;
            let out = stmt
                .query_map([run_id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        (r.get::<_, i64>(1)?, r.get::<_, String>(2)?),
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(out)
        };
        read().during(format_args!("reading the steps of run {run_id}"))
    }

    /// Record a replay's verdict (`identical`, `differs`, `failed`) on its run.
    pub fn set_replay_verdict(&self, run_id: &str, verdict: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET replay_verdict = ?2 WHERE id = ?1",
                rusqlite::params![run_id, verdict],
            )
            .during(format_args!("recording the verdict of replay {run_id}"))?;
        Ok(())
    }
}

fn recorded_run(conn: &Connection, run_id: &str) -> Result<RecordedRun> {
    type Row = (String, Vec<u8>, Option<String>, String, String);
    let (plan_json, spec, git_id, pipeline_file, params_json): Row = conn.query_row(
        "SELECT r.plan, c.data, r.git_start, r.pipeline_file, r.params FROM runs r JOIN contents c ON c.hash = r.spec_hash WHERE r.id = ?1",
        [run_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let git = match git_id {
        Some(id) => conn.query_row(
            "SELECT g.is_repo, g.commit_sha, g.branch, g.dirty, CAST(c.data AS TEXT), g.changed, g.untracked, g.remote_url, g.workdir
             FROM git_snapshots g LEFT JOIN contents c ON c.hash = g.diff_hash WHERE g.id = ?1",
            [id],
            |r| {
                Ok(GitState {
                    is_repo: r.get(0)?,
                    commit: r.get(1)?,
                    branch: r.get(2)?,
                    dirty: r.get(3)?,
                    diff: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    changed: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                    untracked: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                    remote_url: r.get(7)?,
                    workdir: r.get(8)?,
                    error: None,
                })
            },
        )?,
        None => GitState::none(),
    };
    let mut stmt = conn.prepare(
        "SELECT step, id FROM step_execs WHERE run_id = ?1 AND status IN ('succeeded', 'cached', 'restored') ORDER BY id",
    )?;
    let execs = stmt
        .query_map([run_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(RecordedRun {
        run_id: run_id.to_string(),
        short_id: query::short_id(conn, run_id)?,
        plan_json,
        spec: String::from_utf8_lossy(&spec).into_owned(),
        pipeline_file,
        params_json,
        git,
        execs,
    })
}

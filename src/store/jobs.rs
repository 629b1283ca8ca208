//! Steps run as cluster jobs (`step_jobs`, migration 13): the job id written when it is
//! submitted, completed with node, times and Slurm's state when it ends; what `show`, `diff`,
//! `compare` read; what a killed mlrun left running, for the next command and `mlrun cancel`.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{During, Store};
use crate::error::Result;

/// A step execution's job, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobRecord {
    pub executor: String,
    pub job_id: String,
    pub submitted_at: i64,
    pub node: Option<String>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// Slurm's final job state (`COMPLETED`, `FAILED`, `TIMEOUT`, `NODE_FAIL`, …)
    pub state: Option<String>,
    /// why the scheduler ended it, when it did so for the cluster's sake
    pub reason: Option<String>,
    /// the GPUs the node showed the job
    pub gpus: Option<String>,
}

impl JobRecord {
    /// How long it waited in the queue, once it started.
    pub fn queue_wait_ms(&self) -> Option<i64> {
        self.started_at.map(|s| (s - self.submitted_at).max(0))
    }
    /// How long it ran, once it ended.
    pub fn run_ms(&self) -> Option<i64> {
        match (self.started_at, self.ended_at) {
            (Some(s), Some(e)) => Some((e - s).max(0)),
            _ => None,
        }
    }
}

/// A job as `show --json` gives it: the record, with its queue wait and run time.
#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    #[serde(flatten)]
    pub record: JobRecord,
    pub queue_wait_ms: Option<i64>,
    pub run_ms: Option<i64>,
}

impl JobInfo {
    pub fn of(record: JobRecord) -> JobInfo {
        JobInfo {
            queue_wait_ms: record.queue_wait_ms(),
            run_ms: record.run_ms(),
            record,
        }
    }
}

/// The job of an execution that has not ended as far as the record knows: what a killed mlrun
/// may have left on the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenJob {
    pub step: String,
    pub attempt: i64,
    pub job_id: String,
}

const COLUMNS: &str =
    "executor, job_id, submitted_at, node, started_at, ended_at, state, reason, gpus";

fn job_of(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        executor: r.get(at)?,
        job_id: r.get(at + 1)?,
        submitted_at: r.get(at + 2)?,
        node: r.get(at + 3)?,
        started_at: r.get(at + 4)?,
        ended_at: r.get(at + 5)?,
        state: r.get(at + 6)?,
        reason: r.get(at + 7)?,
        gpus: r.get(at + 8)?,
    })
}

impl Store {
    /// The job submitted for execution `exec_id` (its own transaction, right after `sbatch`
    /// answered: a killed mlrun leaves the id behind).
    pub fn job_submitted(
        &mut self,
        exec_id: i64,
        executor: &str,
        job_id: &str,
        at: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO step_jobs (step_exec, executor, job_id, submitted_at) VALUES (?1, ?2, ?3, ?4)",
                params![exec_id, executor, job_id, at],
            )
            .during(format_args!("recording job {job_id}"))?;
        Ok(())
    }

    /// The job of execution `exec_id` ended (or mlrun stopped watching it): what is known of it.
    pub fn job_ended(&mut self, exec_id: i64, j: &JobRecord) -> Result<()> {
        self.conn
            .execute(
                "UPDATE step_jobs SET node = ?2, started_at = ?3, ended_at = ?4, state = ?5, reason = ?6, gpus = ?7 WHERE step_exec = ?1",
                params![
                    exec_id,
                    j.node,
                    j.started_at,
                    j.ended_at,
                    j.state,
                    j.reason,
                    j.gpus
                ],
            )
            .during(format_args!("recording the end of job {}", j.job_id))?;
        Ok(())
    }

    /// Every job of a run by execution id (`show`, `diff`, `compare`).
    pub fn jobs_of_run(&self, run_id: &str) -> Result<Vec<(i64, JobRecord)>> {
        jobs_of_run(&self.conn, run_id).during(format_args!("reading the jobs of run {run_id}"))
    }

    /// The jobs of `run_id` that were submitted and not seen to end: they may still run.
    pub fn open_jobs(&self, run_id: &str) -> Result<Vec<OpenJob>> {
        open_jobs(&self.conn, run_id).during(format_args!("reading the jobs of run {run_id}"))
    }

    /// `mlrun cancel`: the jobs of `run_id` were cancelled now (they end as far as the record
    /// is concerned; their steps, when still `running`, are recorded `interrupted`).
    pub fn jobs_cancelled(&mut self, run_id: &str, at: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE step_jobs SET cancelled_at = ?2, ended_at = COALESCE(ended_at, ?2),
               state = COALESCE(state, 'CANCELLED'), reason = COALESCE(reason, 'cancelled by `mlrun cancel`')
             WHERE ended_at IS NULL AND step_exec IN (SELECT id FROM step_execs WHERE run_id = ?1)",
            params![run_id, at],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The jobs of several runs in one query (`compare`): run id → (step, job), by execution.
    pub fn jobs_of_runs(
        &self,
        run_ids: &[String],
    ) -> Result<std::collections::BTreeMap<String, Vec<(String, JobRecord)>>> {
        let list = serde_json::to_string(run_ids).unwrap_or_default();
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("j.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut out: std::collections::BTreeMap<String, Vec<(String, JobRecord)>> =
            Default::default();
        let rows = (|| -> rusqlite::Result<Vec<(String, String, JobRecord)>> {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT e.run_id, e.step, {cols} FROM step_jobs j JOIN step_execs e ON e.id = j.step_exec
                 WHERE e.run_id IN (SELECT value FROM json_each(?1)) ORDER BY j.step_exec"
            ))?;
            stmt.query_map([&list], |r| Ok((r.get(0)?, r.get(1)?, job_of(r, 2)?)))?
                .collect()
        })()
        .during(format_args!("reading the jobs of {} runs", run_ids.len()))?;
        for (run, step, job) in rows {
            out.entry(run).or_default().push((step, job));
        }
        Ok(out)
    }

    /// The job of one execution, if it ran as one.
    pub fn job_of_exec(&self, exec_id: i64) -> Result<Option<JobRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM step_jobs WHERE step_exec = ?1"),
                [exec_id],
                |r| job_of(r, 0),
            )
            .optional()
            .during(format_args!("reading the job of execution {exec_id}"))
    }
}

pub(super) fn jobs_of_run(
    conn: &Connection,
    run_id: &str,
) -> rusqlite::Result<Vec<(i64, JobRecord)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT j.step_exec, {} FROM step_jobs j JOIN step_execs e ON e.id = j.step_exec WHERE e.run_id = ?1 ORDER BY j.step_exec",
        COLUMNS
            .split(", ")
            .map(|c| format!("j.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    stmt.query_map([run_id], |r| Ok((r.get(0)?, job_of(r, 1)?)))?
        .collect()
}

pub(super) fn open_jobs(conn: &Connection, run_id: &str) -> rusqlite::Result<Vec<OpenJob>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.step, e.attempt, j.job_id FROM step_jobs j JOIN step_execs e ON e.id = j.step_exec
         WHERE e.run_id = ?1 AND j.ended_at IS NULL ORDER BY j.step_exec",
    )?;
    stmt.query_map([run_id], |r| {
        Ok(OpenJob {
            step: r.get(0)?,
            attempt: r.get(1)?,
            job_id: r.get(2)?,
        })
    })?
    .collect()
}

/// What a killed mlrun left on the cluster, in words.
pub fn left_running(run_id: &str, jobs: &[OpenJob]) -> String {
    let list = jobs
        .iter()
        .map(|j| format!("{} (step {})", j.job_id, j.step))
        .collect::<Vec<_>>()
        .join(", ");
    let short = &run_id[..16.min(run_id.len())];
    format!(
        "run {short} was stopped (mlrun was killed or crashed) while Slurm jobs of its steps were submitted; they may still be running: {list}. `mlrun cancel {short}` cancels them"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_open_until_it_ends_and_its_times_give_wait_and_run() {
        let mut s = Store::in_memory();
        s.execute_batch_for_test(
            "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');
             INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid)
               VALUES ('r1', 'p', 'p.toml', '/p', 's', '{}', '{}', 'running', 1, 'h', 'u', '0', '[]', 1);
             INSERT INTO step_execs (id, run_id, step, cmd, argv, cwd, status) VALUES (1, 'r1', 'a', '', '[]', '', 'running');",
        );
        s.job_submitted(1, "slurm", "42", 1000).unwrap();
        assert_eq!(
            s.open_jobs("r1").unwrap(),
            [OpenJob {
                step: "a".into(),
                attempt: 1,
                job_id: "42".into()
            }]
        );
        let j = JobRecord {
            executor: "slurm".into(),
            job_id: "42".into(),
            submitted_at: 1000,
            node: Some("n1".into()),
            started_at: Some(1500),
            ended_at: Some(4500),
            state: Some("COMPLETED".into()),
            ..Default::default()
        };
        s.job_ended(1, &j).unwrap();
        assert!(s.open_jobs("r1").unwrap().is_empty());
        let got = s.job_of_exec(1).unwrap().unwrap();
        assert_eq!(got, j);
        assert_eq!((got.queue_wait_ms(), got.run_ms()), (Some(500), Some(3000)));
        assert_eq!(s.jobs_of_run("r1").unwrap(), [(1, j)]);
    }
}

//! The team record's model versions, alias moves, determinism findings and removals
//! (`store::shared`): what a push sends after runs' records and `pull` brings back.

use postgres::types::ToSql;

use super::{Record, cols, from_pg, insert_sql, to_pg};
use crate::error::{Error, Result};
use crate::store::portable::RunRecord;
use crate::store::shared::{self, Extras};

impl Record {
    /// Write model versions, alias moves, findings and removals (`store::shared`) in one
    /// transaction. Returns the keys (`Extras::key`) now settled there, and notes on what was
    /// not applied (a version whose run is not there; a removal of a run a model version on
    /// the remote names: its record is kept).
    pub fn push_extras(&mut self, ex: &Extras) -> Result<(Vec<String>, Vec<String>)> {
        let shown = self.shown.clone();
        let fail = |e: postgres::Error| {
            let reason = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            Error::store(format!(
                "the remote record {shown} failed while writing model versions, findings and removals: {reason}"
            ))
            .hint("nothing of them was written there; run `mlrun push` again")
        };
        let mut tx = self.client.transaction().map_err(fail)?;
        let mut settled = Vec::new();
        let mut notes = Vec::new();
        let marks = |n: usize| {
            (1..=n)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sqls = [
            format!(
                "INSERT INTO model_versions ({}) SELECT {} WHERE EXISTS (SELECT 1 FROM runs WHERE id = $7)
                 ON CONFLICT DO NOTHING",
                cols(&shared::MODEL_VERSIONS),
                marks(shared::MODEL_VERSIONS.cols.len())
            ),
            insert_sql(&shared::ALIASES),
            format!(
                "INSERT INTO output_determinism ({}) VALUES ({})
                 ON CONFLICT (pipeline, step, path) DO UPDATE SET verdict = excluded.verdict,
                   since_run = excluded.since_run, last_run = excluded.last_run,
                   found_by = excluded.found_by, checked_at = excluded.checked_at
                 WHERE excluded.checked_at > output_determinism.checked_at",
                cols(&shared::DETERMINISM),
                marks(shared::DETERMINISM.cols.len())
            ),
            insert_sql(&shared::REMOVALS),
        ];
        for (k, table) in shared::KINDS.iter().enumerate() {
            let stmt = tx.prepare(&sqls[k]).map_err(fail)?;
            for row in &ex.rows[k] {
                let id = RunRecord::text(row, 0).unwrap_or_default().to_string();
                if k == 3 {
                    let named: Vec<String> = tx
                        .query(
                            "SELECT name || '@' || label FROM model_versions WHERE run_id = $1",
                            &[&id],
                        )
                        .map_err(fail)?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    if !named.is_empty() {
                        notes.push(format!(
                            "run {id} was removed here but is kept on the remote: model version {} there names it",
                            named.join(", ")
                        ));
                        settled.push(Extras::key(k, row));
                        continue;
                    }
                }
                let args = to_pg(table, row);
                let refs: Vec<&(dyn ToSql + Sync)> = args
                    .iter()
                    .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let n = tx.execute(&stmt, &refs).map_err(fail)?;
                if k == 0 && n == 0 {
                    let there = tx
                        .query_opt(
                            "SELECT 1 FROM model_versions WHERE name = $1 AND semver = $2",
                            &[&id, &RunRecord::text(row, 2).unwrap_or_default()],
                        )
                        .map_err(fail)?
                        .is_some();
                    if !there {
                        notes.push(format!(
                            "model version {id}@{} was not sent: its run is not on the remote",
                            RunRecord::text(row, 1).unwrap_or_default()
                        ));
                    }
                }
                if k == 3 {
                    // the record goes, the objects stay (other runs may share them)
                    for t in [
                        "run_objects",
                        "io_edges",
                        "params",
                        "metrics",
                        "step_logs",
                        "step_execs",
                    ] {
                        tx.execute(&format!("DELETE FROM {t} WHERE run_id = $1"), &[&id])
                            .map_err(fail)?;
                    }
                    tx.execute("DELETE FROM runs WHERE id = $1", &[&id])
                        .map_err(fail)?;
                }
                settled.push(Extras::key(k, row));
            }
        }
        tx.commit().map_err(fail)?;
        Ok((settled, notes))
    }

    /// What `pull` brings besides the records of `runs`: their model versions and those
    /// models' alias moves, the findings on their pipelines, and the removals (of `pipeline`'s
    /// runs when given, else all).
    pub fn fetch_extras(&mut self, runs: &[String], pipeline: Option<&str>) -> Result<Extras> {
        let sqls = [
            format!(
                "SELECT {} FROM model_versions WHERE run_id = ANY($1) ORDER BY registered_at, name",
                cols(&shared::MODEL_VERSIONS)
            ),
            format!(
                "SELECT {} FROM model_alias_log
                 WHERE name IN (SELECT name FROM model_versions WHERE run_id = ANY($1))
                 ORDER BY at, name, alias",
                cols(&shared::ALIASES)
            ),
            format!(
                "SELECT {} FROM output_determinism
                 WHERE pipeline IN (SELECT pipeline FROM runs WHERE id = ANY($1))",
                cols(&shared::DETERMINISM)
            ),
            format!(
                "SELECT {} FROM run_removals WHERE $1::text IS NULL OR pipeline = $1
                 ORDER BY removed_at, run_id",
                cols(&shared::REMOVALS)
            ),
        ];
        let mut out = Extras::default();
        for (k, table) in shared::KINDS.iter().enumerate() {
            let got = if k == 3 {
                self.client.query(&sqls[k], &[&pipeline])
            } else {
                self.client.query(&sqls[k], &[&runs])
            }
            .map_err(|e| self.failed("reading model versions, findings and removals", e))?;
            out.rows[k] = got.iter().map(|r| from_pg(table, r)).collect();
        }
        Ok(out)
    }
}

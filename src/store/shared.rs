//! What a run brings to the team remote besides its record, and what `pull` brings back: model
//! versions and alias moves (by model name and version label, never a local id), output
//! determinism findings, and removal tombstones. `remote_items` remembers what was sent to (or
//! came from) which remote, so a push with nothing new stays offline.
//!
//! What is sent: the versions made by runs on that remote and the alias moves between them;
//! the findings last confirmed by such a run; the tombstones of runs pushed from here (a run
//! removed here that only came from the remote is not removed there).

use rusqlite::types::Value;
use rusqlite::{TransactionBehavior, params};

use super::portable::Table;
use super::{During, Store};
use crate::error::Result;

pub const MODEL_VERSIONS: Table = Table {
    name: "model_versions",
    cols: &[
        ("name", 't'),
        ("label", 't'),
        ("semver", 't'),
        ("major", 'i'),
        ("path", 't'),
        ("blob_hash", 't'),
        ("run_id", 't'),
        ("step", 't'),
        ("attempt", 'i'),
        ("registered_at", 'i'),
        ("registered_by", 't'),
        ("message", 't'),
        ("auto", 'i'),
    ],
};
pub const ALIASES: Table = Table {
    name: "model_alias_log",
    cols: &[
        ("name", 't'),
        ("alias", 't'),
        ("from_label", 't'),
        ("to_label", 't'),
        ("at", 'i'),
        ("by", 't'),
        ("message", 't'),
    ],
};
pub const DETERMINISM: Table = Table {
    name: "output_determinism",
    cols: &[
        ("pipeline", 't'),
        ("step", 't'),
        ("path", 't'),
        ("verdict", 't'),
        ("since_run", 't'),
        ("last_run", 't'),
        ("found_by", 't'),
        ("checked_at", 'i'),
    ],
};
pub const REMOVALS: Table = Table {
    name: "run_removals",
    cols: &[
        ("run_id", 't'),
        ("pipeline", 't'),
        ("status", 't'),
        ("started_at", 'i'),
        ("git_commit", 't'),
        ("message", 't'),
        ("replay_of", 't'),
        ("steps", 'i'),
        ("removed_at", 'i'),
        ("removed_by", 't'),
        ("reason", 't'),
    ],
};

/// The four kinds, in the order they are written.
pub const KINDS: [&Table; 4] = [&MODEL_VERSIONS, &ALIASES, &DETERMINISM, &REMOVALS];

/// Rows of the four kinds (same order as [`KINDS`]), each with its table's columns in order.
#[derive(Debug, Default, Clone)]
pub struct Extras {
    pub rows: [Vec<Vec<Value>>; 4],
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(Vec::is_empty)
    }

    pub fn len(&self) -> usize {
        self.rows.iter().map(Vec::len).sum()
    }

    /// The `remote_items` key of row `row` of kind `kind`: what identifies it on the remote
    /// (with `checked_at` for a finding, which a newer check replaces).
    pub fn key(kind: usize, row: &[Value]) -> String {
        let t = |i: usize| match &row[i] {
            Value::Text(s) => s.clone(),
            Value::Integer(n) => n.to_string(),
            _ => String::new(),
        };
        match kind {
            0 => format!("model\0{}\0{}", t(0), t(2)),
            1 => format!("alias\0{}\0{}\0{}\0{}", t(0), t(1), t(4), t(5)),
            2 => format!("determinism\0{}\0{}\0{}\0{}", t(0), t(1), t(2), t(7)),
            _ => format!("removal\0{}", t(0)),
        }
    }

    pub fn keys(&self) -> Vec<String> {
        (0..4)
            .flat_map(|k| self.rows[k].iter().map(move |r| Extras::key(k, r)))
            .collect()
    }
}

/// A version's run, whether it names it or only its execution.
const VERSION_RUN: &str =
    "COALESCE(v.run_id, (SELECT s.run_id FROM step_execs s WHERE s.id = v.step_exec))";

fn not_sent(key_sql: &str) -> String {
    format!("{key_sql} NOT IN (SELECT item FROM remote_items WHERE remote = ?1)")
}

impl Store {
    /// What `remote` (its key) has not been sent yet of model versions, alias moves, findings
    /// and removals (see the module's comment for which are sent).
    pub fn extras_not_pushed(&self, remote: &str) -> Result<Extras> {
        let on_remote = "(SELECT run_id FROM remote_runs WHERE remote = ?1)";
        let vkey = "'model' || char(0) || m.name || char(0) || v.semver";
        let sqls = [
            format!(
                "SELECT m.name, v.label, v.semver, v.major, a.path, av.blob_hash, {VERSION_RUN},
                   s.step, s.attempt, v.registered_at, v.registered_by, v.message, v.auto
                 FROM model_versions v JOIN models m ON m.id = v.model_id
                   JOIN artifact_versions av ON av.id = v.av_id
                   JOIN artifacts a ON a.id = av.artifact_id
                   LEFT JOIN step_execs s ON s.id = v.step_exec
                 WHERE {VERSION_RUN} IN {on_remote} AND {}
                 ORDER BY v.id",
                not_sent(vkey)
            ),
            format!(
                "SELECT m.name, l.alias, f.label, t.label, l.at, l.by, l.message
                 FROM model_alias_log l JOIN models m ON m.id = l.model_id
                   LEFT JOIN model_versions f ON f.id = l.from_version
                   LEFT JOIN model_versions t ON t.id = l.to_version
                 WHERE COALESCE(l.to_version, l.from_version) IN (
                     SELECT v.id FROM model_versions v WHERE {VERSION_RUN} IN {on_remote})
                   AND (l.from_version IS NULL OR l.from_version IN (
                     SELECT v.id FROM model_versions v WHERE {VERSION_RUN} IN {on_remote}))
                   AND {}
                 ORDER BY l.id",
                not_sent(
                    "'alias' || char(0) || m.name || char(0) || l.alias || char(0) || l.at || char(0) || l.by"
                )
            ),
            format!(
                "SELECT pipeline, step, path, verdict, since_run, last_run, found_by, checked_at
                 FROM output_determinism d WHERE last_run IN {on_remote} AND {}
                 ORDER BY pipeline, step, path",
                not_sent(
                    "'determinism' || char(0) || d.pipeline || char(0) || d.step || char(0) || d.path || char(0) || d.checked_at"
                )
            ),
            format!(
                "SELECT run_id, pipeline, status, started_at, git_commit, message, replay_of, steps,
                   removed_at, removed_by, reason
                 FROM run_removals r
                 WHERE run_id IN (SELECT run_id FROM remote_runs WHERE remote = ?1 AND how = 'pushed')
                   AND {}
                 ORDER BY removed_at, run_id",
                not_sent("'removal' || char(0) || r.run_id")
            ),
        ];
        let what = "reading what the remote has not been sent";
        let mut out = Extras::default();
        for (i, sql) in sqls.iter().enumerate() {
            let mut stmt = self.conn.prepare(sql).during(what)?;
            let n = stmt.column_count();
            out.rows[i] = stmt
                .query_map([remote], |r| {
                    (0..n)
                        .map(|c| r.get::<_, Value>(c))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .during(what)?;
        }
        Ok(out)
    }

    /// Remember that these items (`Extras::key`) are on `remote`.
    pub fn mark_items(&mut self, remote: &str, keys: &[String]) -> Result<()> {
        let what = "remembering what the remote has";
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during(what)?;
        {
            let mut ins = tx
                .prepare("INSERT OR IGNORE INTO remote_items (remote, item) VALUES (?1, ?2)")
                .during(what)?;
            for k in keys {
                ins.execute([remote, k.as_str()]).during(what)?;
            }
        }
        tx.commit().during(what)?;
        Ok(())
    }

    /// Bring model versions, alias moves, findings and removals from `remote` here, in one
    /// transaction: a version only when its run is here (and its label free), an alias move
    /// once, a finding when newer than the one here, a tombstone when the run is not here.
    /// Returns how many rows were written.
    pub fn import_extras(&mut self, remote: &str, ex: &Extras) -> Result<usize> {
        let what = "writing what was pulled besides runs";
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during(what)?;
        let mut n = 0;
        for r in &ex.rows[0] {
            tx.execute(
                "INSERT OR IGNORE INTO models (name, created_at)
                 SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?3)",
                params![r[0], r[9], r[6]],
            )
            .during(what)?;
            n += tx
                .execute(
                    "INSERT OR IGNORE INTO model_versions (model_id, label, semver, major, av_id,
                       step_exec, run_id, registered_at, registered_by, message, auto)
                     SELECT m.id, ?2, ?3, ?4, av.id,
                       (SELECT id FROM step_execs WHERE run_id = ?7 AND step = ?8 AND attempt = ?9),
                       ?7, ?10, ?11, ?12, ?13
                     FROM models m, artifact_versions av JOIN artifacts a ON a.id = av.artifact_id
                     WHERE m.name = ?1 AND a.path = ?5 AND av.blob_hash = ?6
                       AND EXISTS (SELECT 1 FROM runs WHERE id = ?7)",
                    rusqlite::params_from_iter(r.iter()),
                )
                .during(what)?;
        }
        for r in &ex.rows[1] {
            n += tx
                .execute(
                    "INSERT INTO model_alias_log (model_id, alias, from_version, to_version, at, by, message)
                     SELECT m.id, ?2,
                       (SELECT id FROM model_versions WHERE model_id = m.id AND label = ?3),
                       (SELECT id FROM model_versions WHERE model_id = m.id AND label = ?4),
                       ?5, ?6, ?7
                     FROM models m WHERE m.name = ?1
                       AND (?4 IS NULL OR EXISTS (SELECT 1 FROM model_versions WHERE model_id = m.id AND label = ?4))
                       AND NOT EXISTS (SELECT 1 FROM model_alias_log l WHERE l.model_id = m.id
                         AND l.alias = ?2 AND l.at = ?5 AND l.by = ?6)",
                    rusqlite::params_from_iter(r.iter()),
                )
                .during(what)?;
        }
        for r in &ex.rows[2] {
            n += tx
                .execute(
                    "INSERT INTO output_determinism (pipeline, step, path, verdict, since_run,
                       last_run, found_by, checked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (pipeline, step, path) DO UPDATE SET verdict = excluded.verdict,
                       since_run = excluded.since_run, last_run = excluded.last_run,
                       found_by = excluded.found_by, checked_at = excluded.checked_at
                     WHERE excluded.checked_at > output_determinism.checked_at",
                    rusqlite::params_from_iter(r.iter()),
                )
                .during(what)?;
        }
        for r in &ex.rows[3] {
            n += tx
                .execute(
                    "INSERT OR IGNORE INTO run_removals (run_id, pipeline, status, started_at,
                       git_commit, message, replay_of, steps, removed_at, removed_by, reason)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11
                     WHERE NOT EXISTS (SELECT 1 FROM runs WHERE id = ?1)",
                    rusqlite::params_from_iter(r.iter()),
                )
                .during(what)?;
        }
        {
            let mut ins = tx
                .prepare("INSERT OR IGNORE INTO remote_items (remote, item) VALUES (?1, ?2)")
                .during(what)?;
            for k in ex.keys() {
                ins.execute([remote, k.as_str()]).during(what)?;
            }
        }
        tx.commit().during(what)?;
        Ok(n)
    }
}

//! A run's whole record in a form that does not depend on this store's row ids: what `push`
//! sends to the team remote and `pull` brings back (see `remote`). Step executions are named by
//! (run, step, attempt), artifact versions by (path, content hash); everything else already has
//! a stable key (run UUID, content hashes, snapshot ids).
//!
//! The tables, their columns and their types are listed once here ([`TABLES`]); the local side
//! (this file) reads and writes them with SQLite, the remote side (`remote::pg`) with the same
//! column lists on PostgreSQL. The order of [`TABLES`] is the order rows are written in, the
//! same for every client, so two clients writing shared rows (contents, snapshots) at once take
//! their locks in one order.

use std::collections::{HashMap, HashSet};

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{During, Store};
use crate::error::Result;
use crate::fingerprint::hash::{MODE_LINK, parse_manifest};

mod import;

/// A column's type on both sides: i = integer (BIGINT), f = real (DOUBLE PRECISION), t = text,
/// b = bytes (BLOB / BYTEA).
pub type Col = (&'static str, char);

pub struct Table {
    pub name: &'static str,
    pub cols: &'static [Col],
}

const STEP: [Col; 3] = [("run_id", 't'), ("step", 't'), ("attempt", 'i')];

macro_rules! step_cols {
    ($($c:expr),* $(,)?) => { &[STEP[0], STEP[1], STEP[2], $($c),*] };
}

pub const RUNS: Table = Table {
    name: "runs",
    cols: &[
        ("id", 't'),
        ("pipeline", 't'),
        ("pipeline_file", 't'),
        ("root", 't'),
        ("spec_hash", 't'),
        ("plan", 't'),
        ("params", 't'),
        ("status", 't'),
        ("exit_code", 'i'),
        ("started_at", 'i'),
        ("ended_at", 'i'),
        ("git_start", 't'),
        ("git_end", 't'),
        ("hostname", 't'),
        ("user", 't'),
        ("mlrun_version", 't'),
        ("argv", 't'),
        ("pid", 'i'),
        ("pid_start", 'i'),
        ("boot_id", 't'),
        ("replay_of", 't'),
        ("replay_verdict", 't'),
        ("message", 't'),
    ],
};

pub const CONTENTS: Table = Table {
    name: "contents",
    cols: &[("hash", 't'), ("size", 'i'), ("data", 'b')],
};
pub const BLOBS: Table = Table {
    name: "blobs",
    cols: &[("hash", 't'), ("kind", 't'), ("size", 'i'), ("nfiles", 'i')],
};
pub const PACKAGE_SETS: Table = Table {
    name: "package_sets",
    cols: &[("hash", 't'), ("count", 'i'), ("data", 'b')],
};
pub const GIT: Table = Table {
    name: "git_snapshots",
    cols: &[
        ("id", 't'),
        ("is_repo", 'i'),
        ("commit_sha", 't'),
        ("branch", 't'),
        ("dirty", 'i'),
        ("diff_hash", 't'),
        ("changed", 't'),
        ("untracked", 't'),
        ("remote_url", 't'),
        ("workdir", 't'),
        ("error", 't'),
    ],
};
pub const ENV: Table = Table {
    name: "env_snapshots",
    cols: &[
        ("id", 't'),
        ("os", 't'),
        ("os_version", 't'),
        ("kernel", 't'),
        ("arch", 't'),
        ("cpu_model", 't'),
        ("cpu_cores", 'i'),
        ("mem_bytes", 'i'),
        ("hostname", 't'),
        ("user", 't'),
        ("mlrun_version", 't'),
        ("interpreters", 't'),
        ("lockfiles", 't'),
        ("env_vars", 't'),
        ("packages", 't'),
    ],
};
pub const STEPS: Table = Table {
    name: "step_execs",
    cols: step_cols![
        ("seq", 'i'),
        ("cmd", 't'),
        ("argv", 't'),
        ("cwd", 't'),
        ("status", 't'),
        ("exit_code", 'i'),
        ("signal", 'i'),
        ("error", 't'),
        ("started_at", 'i'),
        ("ended_at", 'i'),
        ("git_before", 't'),
        ("git_after", 't'),
        ("env_id", 't'),
        ("cache_key", 't'),
        ("cache_parts", 't'),
        ("reused_run", 't'),
        ("reused_step", 't'),
        ("reused_attempt", 'i'),
        ("keep_outputs", 'i'),
        ("repo_changes", 't'),
    ],
};
pub const EDGES: Table = Table {
    name: "io_edges",
    cols: step_cols![
        ("direction", 't'),
        ("path", 't'),
        ("blob_hash", 't'),
        ("first_seen", 'i'),
        ("declared", 'i'),
        ("origin", 't'),
        ("mode", 'i'),
        ("link", 'b'),
    ],
};
pub const PARAMS: Table = Table {
    name: "params",
    cols: step_cols![("key", 't'), ("value", 't')],
};
pub const METRICS: Table = Table {
    name: "metrics",
    cols: step_cols![
        ("key", 't'),
        ("value", 'f'),
        ("source", 't'),
        ("exact", 't')
    ],
};
pub const LOGS: Table = Table {
    name: "step_logs",
    cols: step_cols![
        ("stream", 't'),
        ("content_hash", 't'),
        ("bytes", 'i'),
        ("tail_hash", 't'),
        ("full_hash", 't'),
        ("stored", 'i'),
    ],
};
/// The objects a pushed run needs on the remote: `sha256/<hash>` (file bytes) or `logs/<hash>`
/// (a long log, zstd). Only on the remote: a run is there only once these are.
pub const OBJECTS: Table = Table {
    name: "run_objects",
    cols: &[("run_id", 't'), ("name", 't')],
};

/// Every table of a run's record, in the order rows are written (the run first: a run already
/// there stops the write before anything else is touched).
pub const TABLES: &[&Table] = &[
    &RUNS,
    &CONTENTS,
    &BLOBS,
    &PACKAGE_SETS,
    &GIT,
    &ENV,
    &STEPS,
    &EDGES,
    &PARAMS,
    &METRICS,
    &LOGS,
    &OBJECTS,
];

/// One run's record: for each table of [`TABLES`] (same order), its rows, each with the table's
/// columns in order.
#[derive(Debug, Default, Clone)]
pub struct RunRecord {
    pub run_id: String,
    pub rows: Vec<Vec<Vec<Value>>>,
}

impl RunRecord {
    pub fn table(&self, t: &Table) -> &[Vec<Value>] {
        let i = TABLES
            .iter()
            .position(|x| x.name == t.name)
            .expect("a table of TABLES");
        self.rows.get(i).map(Vec::as_slice).unwrap_or(&[])
    }

    /// What the run needs as its record lists it: `sha256/…`, `logs/…`, and `dir/<hash>` for
    /// every file of a directory whose manifest is `contents` row `<hash>` (one row, not one per
    /// file: a run of a 20,000-file dataset names one directory).
    pub fn needs(&self) -> Vec<String> {
        self.table(&OBJECTS)
            .iter()
            .filter_map(|r| match &r[1] {
                Value::Text(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// The objects the run needs (`sha256/…`, `logs/…`), directories' files listed.
    pub fn objects(&self) -> Vec<String> {
        let manifests: HashMap<&str, &[u8]> = self
            .table(&CONTENTS)
            .iter()
            .filter_map(|r| match (&r[0], &r[2]) {
                (Value::Text(h), Value::Blob(b)) => Some((h.as_str(), b.as_slice())),
                _ => None,
            })
            .collect();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for n in self.needs() {
            match n.strip_prefix("dir/") {
                Some(h) => {
                    for o in manifests.get(h).map_or_else(Vec::new, |m| dir_objects(m)) {
                        if seen.insert(o.clone()) {
                            out.push(o);
                        }
                    }
                }
                None => {
                    if seen.insert(n.clone()) {
                        out.push(n);
                    }
                }
            }
        }
        out
    }

    pub fn text(row: &[Value], i: usize) -> Option<&str> {
        match &row[i] {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// An object the local store holds for a run to push: its remote name and its local file.
#[derive(Debug, Clone)]
pub struct LocalObject {
    pub name: String,
    pub path: std::path::PathBuf,
}

/// A stored directory a run to push needs (`dir/<hash>`): its files are listed from its
/// manifest only when the remote may lack some of them.
#[derive(Debug, Clone)]
pub struct LocalDir {
    pub name: String,
    manifest: Vec<u8>,
}

impl LocalDir {
    /// The directory's file objects and where they are in the store in `store_dir`.
    pub fn objects(&self, store_dir: &std::path::Path) -> Vec<LocalObject> {
        let objects = super::objects::Objects::new(store_dir);
        dir_objects(&self.manifest)
            .into_iter()
            .map(|name| LocalObject {
                path: objects.path_of(&name["sha256/".len()..]),
                name,
            })
            .collect()
    }
}

/// The file objects (`sha256/<hash>`) of the directory whose manifest is `manifest`.
pub fn dir_objects(manifest: &[u8]) -> Vec<String> {
    parse_manifest(manifest).map_or_else(Vec::new, |entries| {
        let mut seen = HashSet::new();
        entries
            .iter()
            .filter(|e| e.mode != MODE_LINK && seen.insert(e.hash.as_str()))
            .map(|e| format!("sha256/{}", e.hash))
            .collect()
    })
}

/// The SQL reading each table's rows of run `?1` from the local store, in [`TABLES`] order.
fn export_sql() -> Vec<String> {
    let steps = "(SELECT id FROM step_execs WHERE run_id = ?1)";
    let git = format!(
        "(SELECT git_start FROM runs WHERE id = ?1 UNION SELECT git_end FROM runs WHERE id = ?1
          UNION SELECT git_before FROM step_execs WHERE id IN {steps}
          UNION SELECT git_after FROM step_execs WHERE id IN {steps})"
    );
    let envs = format!("(SELECT env_id FROM step_execs WHERE id IN {steps})");
    let blobs = format!(
        "(SELECT v.blob_hash FROM io_edges e JOIN artifact_versions v ON v.id = e.av_id
          WHERE e.step_exec IN {steps})"
    );
    let step_join = "FROM step_execs s JOIN {T} x ON x.step_exec = s.id WHERE s.run_id = ?1";
    let sj = |t: &str| step_join.replace("{T}", t);
    vec![
        format!(
            "SELECT {} FROM runs WHERE id = ?1",
            RUNS.cols
                .iter()
                .map(|c| format!("\"{}\"", c.0))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "SELECT hash, size, data FROM contents WHERE hash IN (
               SELECT spec_hash FROM runs WHERE id = ?1
               UNION SELECT diff_hash FROM git_snapshots WHERE id IN {git}
               UNION SELECT content_hash FROM step_logs WHERE step_exec IN {steps}
               UNION SELECT tail_hash FROM step_logs WHERE step_exec IN {steps}
               UNION SELECT hash FROM blobs WHERE kind = 'dir' AND hash IN {blobs})
             ORDER BY hash"
        ),
        format!("SELECT hash, kind, size, nfiles FROM blobs WHERE hash IN {blobs} ORDER BY hash"),
        format!(
            "SELECT hash, count, data FROM package_sets WHERE hash IN (
               SELECT json_extract(j.value, '$.hash') FROM env_snapshots e, json_each(e.packages) j
               WHERE e.id IN {envs} AND e.packages IS NOT NULL AND json_valid(e.packages))
             ORDER BY hash"
        ),
        format!(
            "SELECT id, is_repo, commit_sha, branch, dirty, diff_hash, changed, untracked,
               remote_url, workdir, error FROM git_snapshots WHERE id IN {git} ORDER BY id"
        ),
        format!(
            "SELECT id, os, os_version, kernel, arch, cpu_model, cpu_cores, mem_bytes, hostname,
               \"user\", mlrun_version, interpreters, lockfiles, env_vars, packages
             FROM env_snapshots WHERE id IN {envs} ORDER BY id"
        ),
        "SELECT s.run_id, s.step, s.attempt, s.seq, s.cmd, s.argv, s.cwd, s.status, s.exit_code,
           s.signal, s.error, s.started_at, s.ended_at, s.git_before, s.git_after, s.env_id,
           s.cache_key, s.cache_parts, r.run_id, r.step, r.attempt, s.keep_outputs, s.repo_changes
         FROM step_execs s LEFT JOIN step_execs r ON r.id = s.reused_exec
         WHERE s.run_id = ?1 ORDER BY s.id"
            .to_string(),
        format!(
            "SELECT s.run_id, s.step, s.attempt, x.direction, a.path, v.blob_hash, v.first_seen,
               x.declared, x.origin, x.mode, x.link {}
             ORDER BY s.id, x.direction, a.path",
            sj("io_edges").replace(
                "WHERE",
                "JOIN artifact_versions v ON v.id = x.av_id
                 JOIN artifacts a ON a.id = v.artifact_id WHERE"
            )
        ),
        format!(
            "SELECT s.run_id, s.step, s.attempt, x.key, x.value {} ORDER BY s.id, x.key",
            sj("params")
        ),
        format!(
            "SELECT s.run_id, s.step, s.attempt, x.key, x.value, x.source, x.exact {} ORDER BY s.id, x.key",
            sj("metrics")
        ),
        format!(
            "SELECT s.run_id, s.step, s.attempt, x.stream, x.content_hash, x.bytes, x.tail_hash,
               x.full_hash, x.stored {} ORDER BY s.id, x.stream",
            sj("step_logs")
        ),
    ]
}

impl Store {
    /// The ids of finished runs (oldest first) not yet pushed to `remote` (its key).
    pub fn runs_not_pushed(&self, remote: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id FROM runs WHERE status != 'running'
                   AND id NOT IN (SELECT run_id FROM remote_runs WHERE remote = ?1)
                 ORDER BY started_at, id",
            )
            .during("listing the runs not pushed")?;
        let out = stmt
            .query_map([remote], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .during("listing the runs not pushed")?;
        Ok(out)
    }

    pub fn is_on_remote(&self, remote: &str, run: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM remote_runs WHERE remote = ?1 AND run_id = ?2",
                [remote, run],
                |_| Ok(()),
            )
            .optional()
            .during("reading what was pushed")?
            .is_some())
    }

    /// Did run `run` come here from `remote` (so its objects may still be there only)?
    pub fn was_pulled(&self, remote: &str, run: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM remote_runs WHERE remote = ?1 AND run_id = ?2 AND how = 'pulled'",
                [remote, run],
                |_| Ok(()),
            )
            .optional()
            .during("reading what was pulled")?
            .is_some())
    }

    /// Remember that run `run` is on `remote` (pushed from here, or pulled from there).
    pub fn mark_on_remote(&self, remote: &str, run: &str, how: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO remote_runs (remote, run_id, how, at) VALUES (?1, ?2, ?3, ?4)",
                params![remote, run, how, super::record::now_ms()],
            )
            .during("remembering a pushed run")?;
        Ok(())
    }

    /// Of `names` (remote object names), those this store does not know to be on `remote`
    /// (each looked up: the index grows with every object ever pushed).
    pub fn objects_not_on_remote(&self, remote: &str, names: &[String]) -> Result<Vec<String>> {
        let what = "reading the remote's object index";
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM remote_objects WHERE remote = ?1 AND name = ?2")
            .during(what)?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for n in names {
            if seen.insert(n.as_str()) && !stmt.exists([remote, n.as_str()]).during(what)? {
                out.push(n.clone());
            }
        }
        Ok(out)
    }

    /// Remember that these objects are on `remote` (they were uploaded, or found there).
    pub fn mark_objects_on_remote(&mut self, remote: &str, names: &[String]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during("updating the remote's object index")?;
        {
            let mut ins = tx
                .prepare("INSERT OR IGNORE INTO remote_objects (remote, name) VALUES (?1, ?2)")
                .during("updating the remote's object index")?;
            for n in names {
                ins.execute([remote, n.as_str()])
                    .during("updating the remote's object index")?;
            }
        }
        tx.commit().during("updating the remote's object index")?;
        Ok(())
    }

    /// Forget the object index of `remote` (after a remote fsck found it wrong).
    pub fn forget_remote_objects(&self, remote: &str, names: &[String]) -> Result<()> {
        for n in names {
            self.conn
                .execute(
                    "DELETE FROM remote_objects WHERE remote = ?1 AND name = ?2",
                    [remote, n.as_str()],
                )
                .during("updating the remote's object index")?;
        }
        Ok(())
    }

    /// Push runs `runs` to `remote` again, those pushed from here (`fsck --remote --repair`: they
    /// need objects the remote lost, which this store may have). Returns how many.
    pub fn push_again(&self, remote: &str, runs: &[String]) -> Result<usize> {
        let mut n = 0;
        for r in runs {
            n += self
                .conn
                .execute(
                    "DELETE FROM remote_runs WHERE remote = ?1 AND run_id = ?2 AND how = 'pushed'",
                    [remote, r.as_str()],
                )
                .during("updating what was pushed")?;
        }
        Ok(n)
    }

    /// Run `run`'s whole record, with the objects it needs on a remote and where they are
    /// here (file objects and long logs; stored directories as `dir/<hash>`). Only objects this
    /// store holds are named (an input no commit can give back is stored; a tracked file that
    /// is not is restored from git, not from objects).
    pub fn portable_run(&self, run: &str) -> Result<(RunRecord, Vec<LocalObject>, Vec<LocalDir>)> {
        let what = format!("reading run {run} to push it");
        let mut rows = Vec::new();
        for sql in export_sql() {
            let mut stmt = self.conn.prepare(&sql).during(&what)?;
            let n = stmt.column_count();
            let table = stmt
                .query_map([run], |r| {
                    (0..n)
                        .map(|i| r.get::<_, Value>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .during(&what)?;
            rows.push(table);
        }
        // the objects: stored file blobs, the files of stored directories, stored long logs
        let objects = super::objects::Objects::new(&self.dir);
        let logs = super::logs::LogObjects::new(&self.dir);
        let mut local = Vec::new();
        let mut seen = HashSet::new();
        let stored = run_blobs(&self.conn, run, true).during(&what)?;
        let mut add = |hash: &str| {
            if seen.insert(format!("sha256/{hash}")) {
                local.push(LocalObject {
                    name: format!("sha256/{hash}"),
                    path: objects.path_of(hash),
                });
            }
        };
        let mut dirs = Vec::new();
        for (hash, kind, manifest) in stored {
            if kind == "file" {
                add(&hash);
            } else if let Some(manifest) = manifest {
                dirs.push(LocalDir {
                    name: format!("dir/{hash}"),
                    manifest,
                });
            }
        }
        let log_i = TABLES.iter().position(|t| t.name == LOGS.name).unwrap_or(0);
        for row in &rows[log_i] {
            if let (Some(hash), Value::Integer(1)) = (RunRecord::text(row, 7), &row[8])
                && seen.insert(format!("logs/{hash}"))
            {
                local.push(LocalObject {
                    name: format!("logs/{hash}"),
                    path: logs.path_of(hash),
                });
            }
        }
        local.sort_by(|a, b| a.name.cmp(&b.name));
        dirs.sort_by(|a, b| a.name.cmp(&b.name));
        rows.push(
            local
                .iter()
                .map(|o| &o.name)
                .chain(dirs.iter().map(|d| &d.name))
                .map(|n| vec![Value::Text(run.to_string()), Value::Text(n.clone())])
                .collect(),
        );
        Ok((
            RunRecord {
                run_id: run.to_string(),
                rows,
            },
            local,
            dirs,
        ))
    }

    pub fn has_run(&self, run: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM runs WHERE id = ?1", [run], |_| Ok(()))
            .optional()
            .during("looking a run up")?
            .is_some())
    }

    /// Objects run `run` needs (as `RunRecord::objects` names them) that this store lacks.
    pub fn objects_missing_for(&self, names: &[String]) -> Vec<String> {
        let objects = super::objects::Objects::new(&self.dir);
        let logs = super::logs::LogObjects::new(&self.dir);
        names
            .iter()
            .filter(|n| match n.split_once('/') {
                Some(("sha256", h)) => !objects.has(h),
                Some(("logs", h)) => !logs.has(h),
                _ => false,
            })
            .cloned()
            .collect()
    }

    /// The object names that restoring these blobs needs: a file's own, a directory's files'.
    pub fn objects_of_blobs(&self, hashes: &[String]) -> Result<Vec<String>> {
        let what = "reading which objects versions need";
        let mut out = Vec::new();
        for h in hashes {
            let row: Option<(String, Option<Vec<u8>>)> = self
                .conn
                .query_row(
                    "SELECT b.kind, c.data FROM blobs b LEFT JOIN contents c ON c.hash = b.hash
                     WHERE b.hash = ?1",
                    [h],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .during(what)?;
            match row {
                Some((kind, _)) if kind == "file" => out.push(format!("sha256/{h}")),
                Some((_, Some(m))) => {
                    if let Some(entries) = parse_manifest(&m) {
                        out.extend(
                            entries
                                .iter()
                                .filter(|e| e.mode != MODE_LINK)
                                .map(|e| format!("sha256/{}", e.hash)),
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// After objects were fetched: mark as stored the blobs (files, and directories all of
    /// whose files are now here) and long logs of run `run` that can now be restored.
    pub fn objects_arrived(&self, run: &str) -> Result<()> {
        let objects = super::objects::Objects::new(&self.dir);
        let logs = super::logs::LogObjects::new(&self.dir);
        self.mark_stored(run, |name| match name.split_once('/') {
            Some(("sha256", h)) => objects.has(h),
            Some(("logs", h)) => logs.has(h),
            _ => false,
        })
    }

    /// Mark as stored the blobs and long logs of run `run` all of whose objects are
    /// `present` (by remote name: `sha256/<hash>`, `logs/<hash>`).
    pub fn mark_stored(&self, run: &str, present: impl Fn(&str) -> bool) -> Result<()> {
        let what = "marking objects as stored";
        let rows = run_blobs(&self.conn, run, false).during(what)?;
        for (hash, kind, manifest) in rows {
            let here = if kind == "file" {
                present(&format!("sha256/{hash}"))
            } else {
                manifest
                    .as_deref()
                    .and_then(parse_manifest)
                    .is_some_and(|es| {
                        es.iter()
                            .filter(|e| e.mode != MODE_LINK)
                            .all(|e| present(&format!("sha256/{}", e.hash)))
                    })
            };
            if here {
                self.conn
                    .execute("UPDATE blobs SET stored = 1 WHERE hash = ?1", [&hash])
                    .during(what)?;
            }
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT l.full_hash FROM step_logs l JOIN step_execs s ON s.id = l.step_exec
                 WHERE s.run_id = ?1 AND l.full_hash IS NOT NULL AND l.stored = 0",
            )
            .during(what)?;
        let hashes = stmt
            .query_map([run], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .during(what)?;
        for h in hashes.iter().filter(|h| present(&format!("logs/{h}"))) {
            self.conn
                .execute("UPDATE step_logs SET stored = 1 WHERE full_hash = ?1", [h])
                .during(what)?;
        }
        Ok(())
    }
}

/// A blob a run read or wrote: its hash, its kind, a directory's manifest.
type RunBlob = (String, String, Option<Vec<u8>>);

/// The blobs run `run` read or wrote whose `stored` flag is `stored`.
fn run_blobs(
    conn: &rusqlite::Connection,
    run: &str,
    stored: bool,
) -> rusqlite::Result<Vec<RunBlob>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT b.hash, b.kind, c.data FROM io_edges e
           JOIN step_execs s ON s.id = e.step_exec
           JOIN artifact_versions v ON v.id = e.av_id
           JOIN blobs b ON b.hash = v.blob_hash
           LEFT JOIN contents c ON c.hash = b.hash AND b.kind = 'dir'
         WHERE s.run_id = ?1 AND b.stored = ?2",
    )?;
    stmt.query_map(params![run, stored], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?
    .collect()
}

fn step_key(row: &[Value]) -> (String, i64) {
    let step = match &row[1] {
        Value::Text(s) => s.clone(),
        _ => String::new(),
    };
    let attempt = match row[2] {
        Value::Integer(i) => i,
        _ => 0,
    };
    (step, attempt)
}

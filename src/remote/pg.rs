//! The team record on PostgreSQL: the same tables as a run's portable record
//! (`store::portable::TABLES`), keyed by run UUID, step (run, name, attempt), content hash and
//! snapshot id, so a run pushed twice, or by two clients at once, is written once.
//!
//! All SQL that talks to PostgreSQL is in this file, behind typed methods. Migrations are
//! ordered and append-only like the local store's; `mlrun_schema` holds the version; they run
//! inside a transaction holding an advisory lock, so two clients migrating at once are safe; a
//! record written by a newer mlrun is refused untouched.

mod migrations;
mod repair;
mod shared;
mod tls;

use std::collections::BTreeSet;

use postgres::Client;
use postgres::types::ToSql;
use rusqlite::types::Value;

use crate::config::Remote;
use crate::error::{Error, Result};
use crate::store::portable::{self, RunRecord, TABLES, Table};
use migrations::MIGRATIONS;

/// Taken (transaction-scoped) while migrating: "mlrun" in ASCII.
const MIGRATION_LOCK: i64 = 0x6d6c_7275_6e00;

pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

pub struct Record {
    pub(super) client: Client,
    shown: String,
}

/// The filters of `pull` and of the remote `runs`.
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    /// Run ids or id prefixes (any of them)
    pub ids: Vec<String>,
    pub pipeline: Option<String>,
    pub status: Option<String>,
    /// Only the newest N
    pub last: Option<usize>,
}

/// A run as the remote's list shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoteRun {
    pub id: String,
    pub pipeline: String,
    pub status: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub hostname: String,
    pub user: String,
    pub message: Option<String>,
    pub steps: i64,
}

impl Record {
    /// Connect and bring the schema up to date (or refuse a newer one).
    pub fn connect(remote: &Remote) -> Result<Record> {
        let shown = remote.shown_db();
        let (db, tls) = tls::split(&remote.db, &shown)?;
        let mut cfg: postgres::Config = db
            .parse()
            .map_err(|e| Error::invalid(format!("`{shown}` is not a PostgreSQL URL")).cause(e))?;
        if cfg.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "postgres".to_string());
            cfg.user(&user);
        }
        if cfg.get_password().is_none()
            && let Some(pw) = password_for(&cfg)
        {
            cfg.password(pw);
        }
        cfg.connect_timeout(std::time::Duration::from_secs(10));
        cfg.application_name("mlrun");
        cfg.ssl_mode(tls.mode.ssl_mode());
        let client = cfg.connect(tls.connector(&shown)?).map_err(|e| {
            tls.explain(&shown, &e)
                .unwrap_or_else(|| connect_error(&shown, &cfg, e))
        })?;
        let mut record = Record { client, shown };
        record.migrate()?;
        Ok(record)
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn failed(&self, what: &str, e: postgres::Error) -> Error {
        let reason = e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string());
        Error::store(format!(
            "the remote record {} failed while {what}: {reason}",
            self.shown
        ))
        .hint("the local store is untouched; run `mlrun push` again when the remote is back")
    }

    fn migrate(&mut self) -> Result<()> {
        let version = |c: &mut Client| -> std::result::Result<Option<i64>, postgres::Error> {
            let exists: bool = c
                .query_one("SELECT to_regclass('mlrun_schema') IS NOT NULL", &[])?
                .get(0);
            if !exists {
                return Ok(None);
            }
            Ok(c.query_opt("SELECT version FROM mlrun_schema", &[])?
                .map(|r| r.get(0)))
        };
        let v =
            version(&mut self.client).map_err(|e| self.failed("reading its schema version", e))?;
        if v == Some(latest()) {
            return Ok(());
        }
        self.refuse_newer(v)?;
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Error::other(format!("the remote record {} failed: {e}", self.shown)))?;
        let done = (|| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS mlrun_schema (version BIGINT NOT NULL)")?;
            let v: i64 = match tx.query_opt("SELECT version FROM mlrun_schema", &[])? {
                Some(r) => r.get(0),
                None => {
                    tx.execute("INSERT INTO mlrun_schema (version) VALUES (0)", &[])?;
                    0
                }
            };
            if v > latest() {
                return Ok(Some(v));
            }
            for m in MIGRATIONS.iter().skip(v as usize) {
                tx.batch_execute(m)?;
            }
            tx.execute("UPDATE mlrun_schema SET version = $1", &[&latest()])?;
            tx.commit()?;
            Ok(None)
        })();
        match done {
            Ok(None) => Ok(()),
            Ok(Some(v)) => self.refuse_newer(Some(v)),
            Err(e) => Err(self.failed("creating or updating its tables", e)),
        }
    }

    fn refuse_newer(&self, v: Option<i64>) -> Result<()> {
        match v {
            Some(v) if v > latest() => Err(Error::store(format!(
                "the remote record {} was written by a newer mlrun (remote schema version {v}; this mlrun knows up to {})",
                self.shown,
                latest()
            ))
            .hint("upgrade mlrun; the remote was left untouched")),
            _ => Ok(()),
        }
    }

    /// Write a run's whole record in one transaction. False when the run was there already
    /// (then nothing is written: pushing twice, or two clients at once, is harmless).
    pub fn push_run(&mut self, rec: &RunRecord) -> Result<bool> {
        let shown = self.shown.clone();
        let fail = |e: postgres::Error| {
            let reason = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            Error::store(format!(
                "the remote record {shown} failed while writing run {}: {reason}",
                rec.run_id
            ))
            .hint("nothing of that run was written there; run `mlrun push` again")
        };
        let mut tx = self.client.transaction().map_err(fail)?;
        // a run removed from the remote (`mlrun rm` where it was made, then a push) is not
        // brought back by another client's push
        if tx
            .query_opt(
                "SELECT 1 FROM run_removals WHERE run_id = $1",
                &[&rec.run_id],
            )
            .map_err(fail)?
            .is_some()
        {
            return Ok(false);
        }
        for (i, table) in TABLES.iter().enumerate() {
            let rows = rec.rows.get(i).map(Vec::as_slice).unwrap_or(&[]);
            if rows.is_empty() {
                continue;
            }
            if table.name == portable::OBJECTS.name {
                // one statement for all
                let names: Vec<String> = rec.needs();
                tx.execute(
                    "INSERT INTO run_objects (run_id, name) SELECT $1, unnest($2::text[])
                     ON CONFLICT DO NOTHING",
                    &[&rec.run_id, &names],
                )
                .map_err(fail)?;
                continue;
            }
            let sql = insert_sql(table);
            let stmt = tx.prepare(&sql).map_err(fail)?;
            let mut rows: Vec<&Vec<Value>> = rows.iter().collect();
            if table.name == portable::CONTENTS.name {
                // content-addressed: what is there already (a directory's manifest, 2 MB for
                // 20,000 files) is not sent again
                let hashes: Vec<&str> = rows.iter().filter_map(|r| RunRecord::text(r, 0)).collect();
                let there: BTreeSet<String> = tx
                    .query("SELECT hash FROM contents WHERE hash = ANY($1)", &[&hashes])
                    .map_err(fail)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                rows.retain(|r| RunRecord::text(r, 0).is_none_or(|h| !there.contains(h)));
            }
            for row in rows {
                let args = to_pg(table, row);
                let refs: Vec<&(dyn ToSql + Sync)> = args
                    .iter()
                    .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let n = tx.execute(&stmt, &refs).map_err(fail)?;
                if i == 0 && n == 0 {
                    // the run is there already (another push got there first)
                    return Ok(false);
                }
            }
        }
        tx.commit().map_err(fail)?;
        Ok(true)
    }

    /// Of `names`, the objects the remote has (one round trip): those uploaded, and those a
    /// run on the remote names (a run is written only once its objects are there); not those
    /// `fsck --remote --repair` found damaged, until they are sent again.
    pub fn objects_present(&mut self, names: &[String]) -> Result<BTreeSet<String>> {
        if names.is_empty() {
            return Ok(BTreeSet::new());
        }
        let rows = self
            .client
            .query(
                "SELECT name FROM objects WHERE name = ANY($1)
                 UNION SELECT name FROM run_objects WHERE name = ANY($1)
                 EXCEPT SELECT name FROM objects_damaged WHERE name = ANY($1)",
                &[&names],
            )
            .map_err(|e| self.failed("asking which objects it has", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Record uploaded objects (after they are on the remote, before any run names them): on
    /// their own (`pack` None), or where in pack `pack` each is (name, position, length). An
    /// object recorded already keeps its first place; one found damaged is whole again.
    pub fn add_objects(
        &mut self,
        pack: Option<&str>,
        entries: &[(String, u64, u64)],
    ) -> Result<()> {
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        let pos: Vec<i64> = entries.iter().map(|e| e.1 as i64).collect();
        let len: Vec<i64> = entries.iter().map(|e| e.2 as i64).collect();
        self.client
            .execute(
                "WITH healed AS (DELETE FROM objects_damaged WHERE name = ANY($2))
                 INSERT INTO objects (name, pack, pos, len)
                 SELECT n, $1::text, CASE WHEN $1::text IS NULL THEN NULL ELSE p END,
                   CASE WHEN $1::text IS NULL THEN NULL ELSE l END
                 FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS t (n, p, l)
                 ON CONFLICT DO NOTHING",
                &[&pack, &names, &pos, &len],
            )
            .map_err(|e| self.failed("recording uploaded objects", e))?;
        Ok(())
    }

    /// Where the packed objects among `names` are: name -> (pack, byte range). Objects not
    /// listed are stored on their own.
    pub fn pack_locations(&mut self, names: &[String]) -> Result<Locations> {
        let rows = self
            .client
            .query(
                "SELECT name, pack, pos, len FROM objects
                 WHERE name = ANY($1) AND pack IS NOT NULL",
                &[&names],
            )
            .map_err(|e| self.failed("reading where packed objects are", e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let (pos, len): (i64, i64) = (r.get(2), r.get(3));
                (r.get(0), (r.get(1), pos as u64..(pos + len) as u64))
            })
            .collect())
    }

    /// Which of these run ids are on the remote.
    pub fn runs_present(&mut self, ids: &[String]) -> Result<BTreeSet<String>> {
        let rows = self
            .client
            .query("SELECT id FROM runs WHERE id = ANY($1)", &[&ids])
            .map_err(|e| self.failed("listing runs", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The runs matching `f`, newest first.
    pub fn list_runs(&mut self, f: &RunFilter) -> Result<Vec<RemoteRun>> {
        let patterns: Vec<String> = f
            .ids
            .iter()
            .map(|p| format!("{}%", like_escape(p)))
            .collect();
        let limit = f.last.map(|n| n as i64);
        let rows = self
            .client
            .query(
                "SELECT r.id, r.pipeline, r.status, r.started_at, r.ended_at, r.hostname, r.\"user\",
                   r.message, (SELECT count(*) FROM step_execs s WHERE s.run_id = r.id)
                 FROM runs r
                 WHERE (cardinality($1::text[]) = 0 OR r.id LIKE ANY($1))
                   AND ($2::text IS NULL OR r.pipeline = $2)
                   AND ($3::text IS NULL OR r.status = $3)
                 ORDER BY r.started_at DESC, r.id DESC
                 LIMIT $4",
                &[&patterns, &f.pipeline, &f.status, &limit],
            )
            .map_err(|e| self.failed("listing runs", e))?;
        Ok(rows
            .iter()
            .map(|r| RemoteRun {
                id: r.get(0),
                pipeline: r.get(1),
                status: r.get(2),
                started_at: r.get(3),
                ended_at: r.get(4),
                hostname: r.get(5),
                user: r.get(6),
                message: r.get(7),
                steps: r.get(8),
            })
            .collect())
    }

    /// A run's whole record as pushed.
    pub fn fetch_run(&mut self, id: &str) -> Result<RunRecord> {
        let shown = self.shown.clone();
        let fail = |e: postgres::Error| {
            Error::store(format!(
                "the remote record {shown} failed while reading run {id}: {e}"
            ))
        };
        let mut tx = self
            .client
            .build_transaction()
            .read_only(true)
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .start()
            .map_err(fail)?;
        let mut rows: Vec<Vec<Vec<Value>>> = vec![Vec::new(); TABLES.len()];
        let idx = |t: &Table| TABLES.iter().position(|x| x.name == t.name).unwrap_or(0);
        // run-scoped tables first, then what they reference
        for t in [
            &portable::RUNS,
            &portable::STEPS,
            &portable::EDGES,
            &portable::PARAMS,
            &portable::METRICS,
            &portable::LOGS,
            &portable::OBJECTS,
        ] {
            let key = if t.name == "runs" { "id" } else { "run_id" };
            let sql = format!("SELECT {} FROM {} WHERE {key} = $1", cols(t), t.name);
            let got = tx.query(&sql, &[&id]).map_err(fail)?;
            rows[idx(t)] = got.iter().map(|r| from_pg(t, r)).collect();
        }
        let text = |rows: &[Vec<Vec<Value>>], t: &Table, c: usize| -> Vec<String> {
            rows[idx(t)]
                .iter()
                .filter_map(|r| RunRecord::text(r, c).map(str::to_string))
                .collect()
        };
        let mut gits = text(&rows, &portable::RUNS, 11);
        gits.extend(text(&rows, &portable::RUNS, 12));
        gits.extend(text(&rows, &portable::STEPS, 13));
        gits.extend(text(&rows, &portable::STEPS, 14));
        let envs = text(&rows, &portable::STEPS, 15);
        let blobs = text(&rows, &portable::EDGES, 5);
        let by_key = |tx: &mut postgres::Transaction, t: &Table, key: &str, keys: Vec<String>| {
            let sql = format!(
                "SELECT {} FROM {} WHERE {key} = ANY($1) ORDER BY {key}",
                cols(t),
                t.name
            );
            tx.query(&sql, &[&keys])
                .map(|got| got.iter().map(|r| from_pg(t, r)).collect::<Vec<_>>())
        };
        rows[idx(&portable::GIT)] = by_key(&mut tx, &portable::GIT, "id", gits).map_err(fail)?;
        rows[idx(&portable::ENV)] = by_key(&mut tx, &portable::ENV, "id", envs).map_err(fail)?;
        rows[idx(&portable::BLOBS)] =
            by_key(&mut tx, &portable::BLOBS, "hash", blobs.clone()).map_err(fail)?;
        let mut contents = text(&rows, &portable::RUNS, 4);
        contents.extend(text(&rows, &portable::GIT, 5));
        contents.extend(text(&rows, &portable::LOGS, 4));
        contents.extend(text(&rows, &portable::LOGS, 6));
        contents.extend(blobs);
        rows[idx(&portable::CONTENTS)] =
            by_key(&mut tx, &portable::CONTENTS, "hash", contents).map_err(fail)?;
        let mut sets = Vec::new();
        for env in text(&rows, &portable::ENV, 14) {
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(&env) {
                sets.extend(
                    m.values()
                        .filter_map(|v| v.get("hash").and_then(|h| h.as_str()).map(str::to_string)),
                );
            }
        }
        rows[idx(&portable::PACKAGE_SETS)] =
            by_key(&mut tx, &portable::PACKAGE_SETS, "hash", sets).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(RunRecord {
            run_id: id.to_string(),
            rows,
        })
    }

    /// Every object the remote's runs need (for `fsck --remote`), directories' files listed.
    pub fn all_objects(&mut self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT o.name, c.data FROM run_objects o
                   LEFT JOIN contents c ON o.name LIKE 'dir/%' AND c.hash = substr(o.name, 5)",
                &[],
            )
            .map_err(|e| self.failed("listing the objects runs need", e))?;
        let mut out = BTreeSet::new();
        for r in &rows {
            let name: String = r.get(0);
            match r.get::<_, Option<Vec<u8>>>(1) {
                Some(manifest) if name.starts_with("dir/") => {
                    out.extend(portable::dir_objects(&manifest));
                }
                _ => {
                    out.insert(name);
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Counts for `fsck --remote`: runs, and runs whose every step row is present.
    pub fn count_runs(&mut self) -> Result<i64> {
        let r = self
            .client
            .query_one("SELECT count(*) FROM runs", &[])
            .map_err(|e| self.failed("counting runs", e))?;
        Ok(r.get(0))
    }

    /// Rows that would be duplicates if keys were missing (for tests and `fsck --remote`).
    pub fn duplicate_rows(&mut self) -> Result<i64> {
        let r = self
            .client
            .query_one(
                "SELECT (SELECT count(*) - count(DISTINCT id) FROM runs)
                      + (SELECT count(*) - count(DISTINCT (run_id, step, attempt)) FROM step_execs)",
                &[],
            )
            .map_err(|e| self.failed("checking for duplicate rows", e))?;
        Ok(r.get(0))
    }

    /// A step execution that succeeded on the remote with this cache key, whose outputs the
    /// remote holds: (run, step, attempt, hostname, output rows as in `io_edges`).
    pub fn cache_hit(&mut self, cache_key: &str) -> Result<Option<CacheHit>> {
        let row = self
            .client
            .query_opt(
                "SELECT s.run_id, s.step, s.attempt, r.hostname FROM step_execs s
                   JOIN runs r ON r.id = s.run_id
                 WHERE s.cache_key = $1 AND s.status = 'succeeded'
                 ORDER BY s.ended_at DESC LIMIT 1",
                &[&cache_key],
            )
            .map_err(|e| self.failed("looking a step up in the shared cache", e))?;
        let Some(row) = row else { return Ok(None) };
        let (run, step, attempt): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
        let outputs = self
            .client
            .query(
                "SELECT path, blob_hash FROM io_edges
                 WHERE run_id = $1 AND step = $2 AND attempt = $3 AND direction = 'out'",
                &[&run, &step, &attempt],
            )
            .map_err(|e| self.failed("looking a step up in the shared cache", e))?;
        Ok(Some(CacheHit {
            run,
            step,
            attempt,
            hostname: row.get(3),
            outputs: outputs.iter().map(|r| (r.get(0), r.get(1))).collect(),
        }))
    }
}

/// Packed objects: name -> (pack id, byte range in the pack).
pub type Locations = std::collections::HashMap<String, (String, std::ops::Range<u64>)>;

#[derive(Debug, Clone)]
pub struct CacheHit {
    pub run: String,
    pub step: String,
    pub attempt: i64,
    pub hostname: String,
    pub outputs: Vec<(String, String)>,
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn cols(t: &Table) -> String {
    t.cols
        .iter()
        .map(|c| format!("\"{}\"", c.0))
        .collect::<Vec<_>>()
        .join(", ")
}

fn insert_sql(t: &Table) -> String {
    let marks = (1..=t.cols.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {} ({}) VALUES ({marks}) ON CONFLICT DO NOTHING",
        t.name,
        cols(t)
    )
}

fn to_pg(t: &Table, row: &[Value]) -> Vec<Box<dyn ToSql + Sync>> {
    t.cols
        .iter()
        .zip(row)
        .map(|(&(_, ty), v)| -> Box<dyn ToSql + Sync> {
            match (ty, v) {
                ('i', Value::Integer(i)) => Box::new(*i),
                ('i', Value::Real(f)) => Box::new(*f as i64),
                ('i', _) => Box::new(None::<i64>),
                ('f', Value::Real(f)) => Box::new(*f),
                ('f', Value::Integer(i)) => Box::new(*i as f64),
                ('f', _) => Box::new(None::<f64>),
                ('b', Value::Blob(b)) => Box::new(b.clone()),
                ('b', Value::Text(s)) => Box::new(s.as_bytes().to_vec()),
                ('b', _) => Box::new(None::<Vec<u8>>),
                (_, Value::Text(s)) => Box::new(s.clone()),
                (_, Value::Blob(b)) => Box::new(String::from_utf8_lossy(b).into_owned()),
                (_, Value::Integer(i)) => Box::new(i.to_string()),
                (_, Value::Real(f)) => Box::new(f.to_string()),
                (_, Value::Null) => Box::new(None::<String>),
            }
        })
        .collect()
}

fn from_pg(t: &Table, r: &postgres::Row) -> Vec<Value> {
    t.cols
        .iter()
        .enumerate()
        .map(|(i, &(_, ty))| match ty {
            'i' => r
                .get::<_, Option<i64>>(i)
                .map_or(Value::Null, Value::Integer),
            'f' => r.get::<_, Option<f64>>(i).map_or(Value::Null, Value::Real),
            'b' => r
                .get::<_, Option<Vec<u8>>>(i)
                .map_or(Value::Null, Value::Blob),
            _ => r
                .get::<_, Option<String>>(i)
                .map_or(Value::Null, Value::Text),
        })
        .collect()
}

/// The password for `cfg` from PGPASSWORD, else from the password file (PGPASSFILE, else
/// ~/.pgpass: `host:port:database:user:password` lines, `*` matching anything).
fn password_for(cfg: &postgres::Config) -> Option<String> {
    if let Ok(pw) = std::env::var("PGPASSWORD")
        && !pw.is_empty()
    {
        return Some(pw);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432).to_string();
    let db = cfg
        .get_dbname()
        .unwrap_or(cfg.get_user().unwrap_or(""))
        .to_string();
    let user = cfg.get_user().unwrap_or("").to_string();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let fields = split_pgpass(line);
        if fields.len() != 5 {
            continue;
        }
        let want = [&host, &port, &db, &user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().expect("one field").push(n);
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut().expect("one field").push(c),
        }
    }
    out
}

/// A connection failure as one line saying what to fix.
fn connect_error(shown: &str, cfg: &postgres::Config, e: postgres::Error) -> Error {
    use postgres::error::SqlState;
    let user = cfg.get_user().unwrap_or("?");
    let db = cfg.get_dbname().unwrap_or(user);
    if let Some(d) = e.as_db_error() {
        let code = d.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return Error::store(format!(
                "the remote record {shown} refused the credentials of user `{user}`: {}",
                d.message()
            ))
            .hint("set the right password in PGPASSWORD or in a PGPASSFILE (never in mlrun.toml)");
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return Error::store(format!(
                "the remote record {shown}: database `{db}` does not exist"
            ))
            .hint(format!("create it (`createdb {db}`) or fix the database name in [remote] db / MLRUN_REMOTE_DB"));
        }
        return Error::other(format!(
            "the remote record {shown} refused the connection: {}",
            d.message()
        ));
    }
    let text = e.to_string();
    if text.contains("password missing") {
        return Error::store(format!(
            "the remote record {shown} asks for a password and none was given"
        ))
        .hint("set PGPASSWORD or PGPASSFILE (never put it in mlrun.toml)");
    }
    let cause = std::error::Error::source(&e)
        .map(|s| s.to_string())
        .unwrap_or(text);
    Error::store(format!("cannot reach the remote record {shown}: {cause}"))
        .hint("is the PostgreSQL server up and the host and port in [remote] db / MLRUN_REMOTE_DB right? The local store is untouched")
}

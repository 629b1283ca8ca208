//! The runs list (`mlrun runs`, `compare`, the web view): one query for the runs, one for all
//! their metrics; the names known to the store, for hints.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use super::*;
use crate::error::Result;

/// The project directories runs were recorded in (paths in the store are relative to these).
pub(in crate::store) fn roots(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT root FROM runs")?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Every path a run read or wrote.
pub(in crate::store) fn run_paths(conn: &Connection, run_id: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT a.path FROM step_execs s JOIN io_edges e ON e.step_exec = s.id
         JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
         WHERE s.run_id = ?1 ORDER BY a.path",
    )?;
    let rows = stmt
        .query_map([run_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub short_id: String,
    pub pipeline: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub commit: Option<String>,
    pub dirty: bool,
    pub replay_of: Option<String>,
    /// for replays: `identical`, `differs` or `failed`
    pub replay_verdict: Option<String>,
    #[serde(serialize_with = "crate::fingerprint::metrics::ser_map")]
    pub metrics: BTreeMap<String, f64>,
    /// `mlrun run -m` / `mlrun note`: what the run was for
    pub message: Option<String>,
    /// the sweep (`mlrun run --sweep`) the run is a variant of: its full id, for `runs --sweep`
    pub sweep_id: Option<String>,
    /// the run's params, read only when `RunFilter::with_params` asks (`compare`)
    #[serde(skip)]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// A comparison in `--metric 'accuracy>0.9'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Cmp {
    pub fn sql(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Eq => "=",
            Cmp::Ne => "<>",
        }
    }
}

/// Which runs `mlrun runs` lists, and in which order.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub pipeline: Option<String>,
    pub status: Option<String>,
    /// started at or after (ms since the epoch)
    pub since: Option<i64>,
    /// run params equal to these values
    pub params: Vec<(String, serde_json::Value)>,
    pub metrics: Vec<(String, Cmp, f64)>,
    /// sort by this metric: (key, ascending)
    pub sort: Option<(String, bool)>,
    pub limit: Option<usize>,
    /// skip this many runs first (a page of a long list: `LIMIT … OFFSET …` in the query)
    pub offset: usize,
    /// `Some(true)`: only replays; `Some(false)`: no replays; `None`: every run
    pub replays: Option<bool>,
    /// messages containing this text, ignoring case (`runs --grep`)
    pub grep: Option<String>,
    /// only these runs (full ids)
    pub ids: Option<Vec<String>>,
    /// only the variants of this sweep (its full id)
    pub sweep: Option<String>,
    /// also read each run's params (`RunSummary::params`), in the same query
    pub with_params: bool,
}

/// A run's value of a metric: the one reported by the step latest in the plan (then the last
/// attempt), so parallel steps reporting one key give the same answer whatever order they ended.
pub(super) const RUN_METRIC: &str =
    "(SELECT m.value FROM step_execs s JOIN metrics m ON m.step_exec = s.id
     WHERE s.run_id = r.id AND m.key = ? ORDER BY s.seq DESC, s.id DESC LIMIT 1)";

/// The runs matching `f`, newest first (or by the sort metric), with their metrics. Two
/// queries whatever the number of runs: the runs, then all their metrics at once.
pub(in crate::store) fn list_runs(conn: &Connection, f: &RunFilter) -> Result<Vec<RunSummary>> {
    use rusqlite::types::Value as V;
    let (where_sql, mut args) = where_clause(f);
    // Sorted by a metric: each run's value (RUN_METRIC, read from the index steps_by_run_seq
    // and the metrics' primary key) is a column computed once per run, and the sort is the
    // query's, with the page as LIMIT/OFFSET.
    let (sort_column, order) = match &f.sort {
        Some((k, asc)) => {
            args.insert(0, V::Text(k.clone()));
            (
                format!(", {RUN_METRIC} AS sort_value"),
                format!(
                    "sort_value IS NULL, sort_value {}, r.started_at DESC, r.id DESC",
                    if *asc { "ASC" } else { "DESC" }
                ),
            )
        }
        None => (String::new(), "r.started_at DESC, r.id DESC".into()),
    };
    args.push(V::Integer(f.limit.map_or(-1, |l| l as i64)));
    args.push(V::Integer(f.offset as i64));
    let selected = format!(
        "SELECT r.id, r.pipeline, r.status, r.exit_code, r.started_at, r.ended_at, r.git_start, r.replay_of, r.replay_verdict,
                r.message, r.sweep_id, {} {sort_column}
         FROM runs r {where_sql} ORDER BY {order} LIMIT ? OFFSET ?",
        if f.with_params { "r.params" } else { "NULL AS params" }
    );
    let mut stmt = conn.prepare(&format!(
        "SELECT x.id, x.pipeline, x.status, x.exit_code, x.started_at, x.ended_at, g.commit_sha, g.dirty, x.replay_of, x.replay_verdict,
                x.message, x.params, x.sweep_id
         FROM ({selected}) x LEFT JOIN git_snapshots g ON g.id = x.git_start"
    ))?;
    let mut runs: Vec<RunSummary> = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(RunRow {
                id: r.get(0)?,
                pipeline: r.get(1)?,
                status: r.get(2)?,
                exit_code: r.get(3)?,
                started_at: r.get(4)?,
                ended_at: r.get(5)?,
                commit: r.get(6)?,
                dirty: r.get::<_, Option<bool>>(7)?.unwrap_or(false),
                replay_of: r.get(8)?,
                replay_verdict: r.get(9)?,
                message: r.get(10)?,
                params: r.get(11)?,
                sweep_id: r.get(12)?,
            }
            .summary())
        })?
        .collect::<rusqlite::Result<_>>()?;
    fill_short_ids(conn, &mut runs)?;
    fill_metrics(conn, &mut runs)?;
    Ok(runs)
}

/// The `WHERE` clause for a filter (empty when nothing filters) and its arguments, in order.
fn where_clause(f: &RunFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut wheres: Vec<String> = Vec::new();
    let mut args: Vec<V> = Vec::new();
    if let Some(p) = &f.pipeline {
        wheres.push("r.pipeline = ?".into());
        args.push(V::Text(p.clone()));
    }
    if let Some(st) = &f.status {
        wheres.push("r.status = ?".into());
        args.push(V::Text(st.clone()));
    }
    if let Some(t) = f.since {
        wheres.push("r.started_at >= ?".into());
        args.push(V::Integer(t));
    }
    if let Some(g) = &f.grep {
        // a plain substring (no LIKE wildcards to escape); SQLite's lower() folds ASCII letters
        // only, so the needle is folded the same way
        wheres.push("instr(lower(r.message), ?) > 0".into());
        args.push(V::Text(g.to_ascii_lowercase()));
    }
    if let Some(sw) = &f.sweep {
        wheres.push("r.sweep_id = ?".into());
        args.push(V::Text(sw.clone()));
    }
    if let Some(ids) = &f.ids {
        wheres.push("r.id IN (SELECT value FROM json_each(?))".into());
        args.push(V::Text(
            serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()),
        ));
    }
    match f.replays {
        Some(true) => wheres.push("r.replay_of IS NOT NULL".into()),
        Some(false) => wheres.push("r.replay_of IS NULL".into()),
        None => {}
    }
    for (k, v) in &f.params {
        let path = format!("$.\"{}\"", k.replace('"', "\\\""));
        match v {
            serde_json::Value::Number(n) => {
                wheres.push("json_extract(r.params, ?) = ?".into());
                args.push(V::Text(path));
                args.push(V::Real(n.as_f64().unwrap_or(f64::NAN)));
            }
            serde_json::Value::String(text) => {
                wheres.push(
                    "(json_type(r.params, ?) = 'text' AND json_extract(r.params, ?) = ?)".into(),
                );
                args.push(V::Text(path.clone()));
                args.push(V::Text(path));
                args.push(V::Text(text.clone()));
            }
            other => {
                wheres.push("json(r.params -> ?) = json(?)".into());
                args.push(V::Text(path));
                args.push(V::Text(other.to_string()));
            }
        }
    }
    for (k, cmp, v) in &f.metrics {
        wheres.push(format!("{RUN_METRIC} {} ?", cmp.sql()));
        args.push(V::Text(k.clone()));
        args.push(V::Real(*v));
    }
    let where_sql = if wheres.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wheres.join(" AND "))
    };
    (where_sql, args)
}

/// Each run's short id: from the sorted list of all ids for long listings, else two lookups
/// per run.
fn fill_short_ids(conn: &Connection, runs: &mut [RunSummary]) -> Result<()> {
    if runs.len() > 200 {
        let shorts = short_ids(conn)?;
        for r in runs.iter_mut() {
            r.short_id = shorts.get(&r.id).cloned().unwrap_or_else(|| r.id.clone());
        }
    } else {
        for r in runs.iter_mut() {
            r.short_id = short_id(conn, &r.id)?;
        }
    }
    Ok(())
}

/// The listed runs' metrics, all in one query; the step latest in the plan wins, as in
/// RUN_METRIC (the second column orders by plan position, then execution).
fn fill_metrics(conn: &Connection, runs: &mut [RunSummary]) -> Result<()> {
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let list = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    // (no ORDER BY: sorting 30,000 rows cost more than keeping the latest step in Rust)
    let mut m = conn.prepare(
        "SELECT s.run_id, COALESCE(s.seq, 0) * 4294967296 + s.id, m.key, m.value, m.exact FROM step_execs s
         JOIN metrics m ON m.step_exec = s.id WHERE s.run_id IN (SELECT value FROM json_each(?1))",
    )?;
    let rows = m
        .query_map([list], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                crate::fingerprint::metrics::from_columns(
                    r.get(3)?,
                    r.get::<_, Option<String>>(4)?.as_deref(),
                ),
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    set_latest_metrics(runs, rows);
    Ok(())
}

/// A row of the runs list as a backend reads it: the columns, before what every backend
/// derives from them alike (`summary`).
pub struct RunRow {
    pub id: String,
    pub pipeline: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub commit: Option<String>,
    pub dirty: bool,
    pub replay_of: Option<String>,
    pub replay_verdict: Option<String>,
    pub message: Option<String>,
    /// the run's params as recorded (JSON), when the filter asked for them
    pub params: Option<String>,
    pub sweep_id: Option<String>,
}

impl RunRow {
    /// The list's entry, its short id and metrics still to fill.
    pub fn summary(self) -> RunSummary {
        RunSummary {
            short_id: String::new(),
            duration_ms: self.ended_at.map(|e| e - self.started_at),
            params: self
                .params
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or_default(),
            metrics: BTreeMap::new(),
            id: self.id,
            pipeline: self.pipeline,
            status: self.status,
            exit_code: self.exit_code,
            started_at: self.started_at,
            ended_at: self.ended_at,
            commit: self.commit,
            dirty: self.dirty,
            replay_of: self.replay_of,
            replay_verdict: self.replay_verdict,
            message: self.message,
            sweep_id: self.sweep_id,
        }
    }
}

/// Each run's metrics from rows of (run, order, key, value) of every metric its executions
/// reported: the execution with the highest order wins (its plan position, then the later
/// execution), as `RUN_METRIC` chooses for filters and sorting. The rows come in any order.
pub fn set_latest_metrics(runs: &mut [RunSummary], rows: Vec<(String, i64, String, f64)>) {
    let mut by_run: std::collections::HashMap<String, BTreeMap<String, (i64, f64)>> =
        std::collections::HashMap::new();
    for (run, order, k, v) in rows {
        let slot = by_run
            .entry(run)
            .or_default()
            .entry(k)
            .or_insert((order, v));
        if order >= slot.0 {
            *slot = (order, v);
        }
    }
    for run in runs.iter_mut() {
        if let Some(m) = by_run.remove(&run.id) {
            run.metrics = m.into_iter().map(|(k, (_, v))| (k, v)).collect();
        }
    }
}

/// Where `mlrun runs` reads the list from: the local store, or the team remote's PostgreSQL
/// (`remote::runs`), which answers the same [`RunFilter`] itself (no local copy). Both give
/// the same [`RunSummary`]s (rows made by [`RunRow::summary`], metrics by
/// [`set_latest_metrics`], short ids by `short_between`), so `cmd::runs` prints both alike.
pub trait RunSource {
    /// The runs `f` selects, in its order, with their metrics (and params when asked).
    fn runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>>;
    /// Every recorded pipeline, param or metric name, sorted.
    fn names(&self, what: Known) -> Result<Vec<String>>;
    /// The `-p` overrides of each of the runs `ids` that had any (`overrides::overrides_in`).
    fn overrides(&self, ids: &[&str]) -> Result<std::collections::HashMap<String, Vec<String>>>;
    /// The full id of the sweep an id prefix names.
    fn sweep(&self, prefix: &str) -> Result<String>;
}

impl RunSource for crate::store::Store {
    fn runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>> {
        self.list_runs(f)
    }
    fn names(&self, what: Known) -> Result<Vec<String>> {
        self.known_names(what)
    }
    fn overrides(&self, ids: &[&str]) -> Result<std::collections::HashMap<String, Vec<String>>> {
        self.run_overrides(ids)
    }
    fn sweep(&self, prefix: &str) -> Result<String> {
        self.resolve_sweep(prefix)
    }
}

/// The names runs were recorded under, for "no run has X; known: …" messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Pipelines,
    Params,
    Metrics,
}

/// Every distinct pipeline name, param key or metric key in the store, sorted.
pub(in crate::store) fn known_names(conn: &Connection, what: Known) -> Result<Vec<String>> {
    let sql = match what {
        Known::Pipelines => "SELECT DISTINCT pipeline FROM runs ORDER BY 1",
        Known::Params => {
            "SELECT DISTINCT j.key FROM runs r, json_each(r.params) j WHERE j.key IS NOT NULL ORDER BY 1"
        }
        Known::Metrics => "SELECT DISTINCT key FROM metrics ORDER BY 1",
    };
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

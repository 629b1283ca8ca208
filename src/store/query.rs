//! Reads from the lineage store. The structs here are also the `--json` shapes of `runs` and
//! `show` (documented in the README), so fields are only ever added, never renamed.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::During;
use crate::error::{Error, Result};
use crate::fingerprint::hash::{Entry, Fingerprint, parse_manifest};

/// How many hex digits of a run id mlrun shows at least (more when another run shares them).
///
/// A run id is a UUIDv7 written as 32 hex digits: 12 digits of milliseconds since the epoch, the
/// version digit `7`, then random bits. A shown id must stay unambiguous for the life of the store,
/// and a prefix that ends inside the timestamp does not: every run started in the same ~65 s
/// shares the first 8 digits. Sixteen digits cover the whole timestamp, the version digit and 12
/// random bits, so a later run can only share a shown id if it starts in the same millisecond
/// and draws the same 12 bits (1 in 4096); the shortest-unique rule lengthens it past any run
/// that already shares it.
pub const MIN_SHORT: usize = 16;

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// Shortest prefix of `id` (at least `MIN_SHORT` digits) that no other run id shares.
pub(super) fn short_id(conn: &Connection, id: &str) -> Result<String> {
    let prev: Option<String> = conn
        .query_row(
            "SELECT id FROM runs WHERE id < ?1 ORDER BY id DESC LIMIT 1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let next: Option<String> = conn
        .query_row(
            "SELECT id FROM runs WHERE id > ?1 ORDER BY id LIMIT 1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let n = [prev, next]
        .iter()
        .flatten()
        .map(|o| common_prefix(id, o) + 1)
        .max()
        .unwrap_or(0)
        .max(MIN_SHORT);
    Ok(id[..n.min(id.len())].to_string())
}

/// Short ids for many runs at once, from the sorted list of all ids.
pub(super) fn short_ids(conn: &Connection) -> Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare("SELECT id FROM runs ORDER BY id")?;
    let ids: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let mut n = MIN_SHORT;
        if i > 0 {
            n = n.max(common_prefix(id, &ids[i - 1]) + 1);
        }
        if i + 1 < ids.len() {
            n = n.max(common_prefix(id, &ids[i + 1]) + 1);
        }
        out.insert(id.clone(), id[..n.min(id.len())].to_string());
    }
    Ok(out)
}

/// The names of the newest runs: `latest` (alias `last`) is the newest run that is not a replay,
/// `latest-replay` the newest replay.
const LATEST: &[(&str, bool)] = &[
    ("latest", false),
    ("last", false),
    ("latest-replay", true),
    ("last-replay", true),
];

/// Split `NAME~N` into (`NAME`, N); `NAME~` is `NAME~1`, as in git. `None`: no `~`.
fn split_back(target: &str) -> Option<(&str, std::result::Result<usize, String>)> {
    let (base, n) = target.rsplit_once('~')?;
    let n = if n.is_empty() {
        Ok(1)
    } else {
        n.parse::<usize>().map_err(|_| n.to_string())
    };
    Some((base, n))
}

/// Does `target` name a run by position (`latest`, `latest-replay`, `latest~2`, `0193a4f1~1`)
/// rather than by id prefix alone? Used where a word could also be a path or a step.
pub fn is_run_name(target: &str) -> bool {
    let base = split_back(target).map_or(target, |(b, _)| b);
    LATEST.iter().any(|(n, _)| *n == base) || (split_back(target).is_some() && is_hex_id(base))
}

fn is_hex_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Why a run name names no single run.
#[derive(Debug)]
pub enum ResolveError {
    /// `matched` runs start with the id prefix `target` (more than 10: 11); `candidates` are the
    /// first 10: (id, pipeline, started at, ms). People see them in local time (`report`).
    Ambiguous {
        target: String,
        matched: usize,
        candidates: Vec<(String, String, i64)>,
    },
    /// the id prefix names a run removed with `mlrun rm`; people see when (`report`)
    Removed(RemovedRun),
    /// any other reason, in words
    Failed(Error),
}

/// A run removed with `mlrun rm` that an id prefix names: its tombstone, times in ms.
#[derive(Debug, Clone)]
pub struct RemovedRun {
    /// its id, as long as the prefix typed (at least the usual short id)
    pub shown_id: String,
    pub pipeline: String,
    pub started_at: i64,
    pub removed_by: String,
    pub removed_at: i64,
}

impl From<Error> for ResolveError {
    fn from(e: Error) -> Self {
        ResolveError::Failed(e)
    }
}

impl From<rusqlite::Error> for ResolveError {
    fn from(e: rusqlite::Error) -> Self {
        ResolveError::Failed(e.into())
    }
}

type Resolved = std::result::Result<String, ResolveError>;

/// Resolve a run name to a run id: `latest` (the newest run that is not a replay),
/// `latest-replay` (the newest replay), a full id or a unique prefix, each optionally followed by
/// `~N`: the Nth run before it (of the same kind: replays count back through replays, other runs
/// through other runs).
pub(super) fn resolve_run(conn: &Connection, target: &str) -> Resolved {
    let Some((base, back)) = split_back(target) else {
        return resolve_base(conn, target, 0);
    };
    let n = back.map_err(|bad| {
        Error::invalid(format!("`{target}`: `~{bad}` is not a number of runs"))
            .hint("`latest~1` is the run before the latest, `latest~3` three runs before it")
    })?;
    if LATEST.iter().any(|(name, _)| *name == base) {
        return resolve_base(conn, base, n);
    }
    let id = resolve_base(conn, base, 0)?;
    if n == 0 {
        return Ok(id);
    }
    let (started, replay): (i64, bool) = conn.query_row(
        "SELECT started_at, replay_of IS NOT NULL FROM runs WHERE id = ?1",
        [&id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    conn.query_row(
        "SELECT id FROM runs WHERE (started_at, id) < (?1, ?2) AND (replay_of IS NOT NULL) = ?3
         ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET ?4",
        params![started, id, replay, (n - 1) as i64],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| {
        Error::other(format!(
            "`{target}` names no run: fewer than {n} {} were recorded before {}",
            if replay { "replays" } else { "runs" },
            &id[..MIN_SHORT.min(id.len())]
        ))
        .hint("list runs with `mlrun runs`")
        .into()
    })
}

/// `latest` / `latest-replay` (`n` runs back), else an id or unique id prefix.
fn resolve_base(conn: &Connection, target: &str, n: usize) -> Resolved {
    if let Some((_, replays)) = LATEST.iter().find(|(name, _)| *name == target) {
        let found: Option<String> = conn
            .query_row(
                "SELECT id FROM runs WHERE (replay_of IS NOT NULL) = ?1
                 ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET ?2",
                params![replays, n as i64],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = found {
            return Ok(id);
        }
        let count: i64 = conn.query_row(
            "SELECT COUNT(*) FROM runs WHERE (replay_of IS NOT NULL) = ?1",
            [replays],
            |r| r.get(0),
        )?;
        return Err(ResolveError::Failed(match (count, *replays) {
            (0, false) => Error::other("the store has no runs yet (replays aside)")
                .hint("run a pipeline first: `mlrun pipeline.toml`"),
            (0, true) => Error::other("the store has no replays yet")
                .hint("`mlrun replay RUN` reproduces a recorded run"),
            (c, r) => Error::other(format!(
                "`{target}~{n}` names no run: the store has {c} {}{}{}",
                if r { "replay" } else { "run" },
                if c == 1 { "" } else { "s" },
                if r { "" } else { " (replays aside)" }
            ))
            .hint(if c == 1 {
                format!("`{target}` is the only one")
            } else {
                format!("`{target}~{}` is the oldest", c - 1)
            }),
        }));
    }
    let prefix: String = target
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!("`{target}` is not a run id"))
            .hint("run ids are hexadecimal, like `0193a4f1c2`; `latest` names the newest run, `latest~1` the one before, `latest-replay` the newest replay; see `mlrun runs`").into());
    }
    let found = run_candidates(conn, &prefix)?;
    match found.len() {
        0 => Err(match removed_run(conn, &prefix) {
            Some(removed) => ResolveError::Removed(removed),
            None => Error::other(format!("no run matches `{target}`"))
                .hint("list runs with `mlrun runs`")
                .into(),
        }),
        1 => Ok(found[0].0.clone()),
        n => Err(ResolveError::Ambiguous {
            target: target.to_string(),
            matched: n,
            candidates: found.into_iter().take(10).collect(),
        }),
    }
}

/// The run removed with `mlrun rm` that an id prefix (lowercase hex) names, if any.
pub(super) fn removed_run(conn: &Connection, prefix: &str) -> Option<RemovedRun> {
    let t = super::rm::removed(conn, prefix).ok().flatten()?;
    Some(RemovedRun {
        shown_id: t.run_id[..MIN_SHORT.max(prefix.len()).min(t.run_id.len())].to_string(),
        pipeline: t.pipeline,
        started_at: t.started_at,
        removed_by: t.removed_by,
        removed_at: t.removed_at,
    })
}

/// Runs whose id starts with `prefix` (lowercase hex): at most 11, to report ambiguity.
pub(super) fn run_candidates(
    conn: &Connection,
    prefix: &str,
) -> Result<Vec<(String, String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, pipeline, started_at FROM runs WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT 11",
    )?;
    let found = stmt
        .query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(found)
}

/// The project directories runs were recorded in (paths in the store are relative to these).
pub(super) fn roots(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT root FROM runs")?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Every path a run read or wrote.
pub(super) fn run_paths(conn: &Connection, run_id: &str) -> Result<Vec<String>> {
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
    /// `Some(true)`: only replays; `Some(false)`: no replays; `None`: every run
    pub replays: Option<bool>,
    /// messages containing this text, ignoring case (`runs --grep`)
    pub grep: Option<String>,
    /// only these runs (full ids)
    pub ids: Option<Vec<String>>,
    /// also read each run's params (`RunSummary::params`), in the same query
    pub with_params: bool,
}

/// A run's value of a metric: the one reported by the step latest in the plan (then the last
/// attempt), so parallel steps reporting one key give the same answer whatever order they ended.
const RUN_METRIC: &str = "(SELECT m.value FROM step_execs s JOIN metrics m ON m.step_exec = s.id
     WHERE s.run_id = r.id AND m.key = ? ORDER BY s.seq DESC, s.id DESC LIMIT 1)";

/// The runs matching `f`, newest first (or by the sort metric), with their metrics. Two
/// queries whatever the number of runs: the runs, then all their metrics at once.
pub(super) fn list_runs(conn: &Connection, f: &RunFilter) -> Result<Vec<RunSummary>> {
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
    let order = match &f.sort {
        Some((k, asc)) => {
            args.push(V::Text(k.clone()));
            args.push(V::Text(k.clone()));
            format!(
                "{RUN_METRIC} IS NULL, {RUN_METRIC} {}, r.started_at DESC, r.id DESC",
                if *asc { "ASC" } else { "DESC" }
            )
        }
        None => "r.started_at DESC, r.id DESC".into(),
    };
    args.push(V::Integer(f.limit.map_or(-1, |l| l as i64)));
    let selected = format!(
        "SELECT r.id, r.pipeline, r.status, r.exit_code, r.started_at, r.ended_at, r.git_start, r.replay_of, r.replay_verdict,
                r.message, {}
         FROM runs r {where_sql} ORDER BY {order} LIMIT ?",
        if f.with_params { "r.params" } else { "NULL AS params" }
    );
    let mut stmt = conn.prepare(&format!(
        "SELECT x.id, x.pipeline, x.status, x.exit_code, x.started_at, x.ended_at, g.commit_sha, g.dirty, x.replay_of, x.replay_verdict,
                x.message, x.params
         FROM ({selected}) x LEFT JOIN git_snapshots g ON g.id = x.git_start"
    ))?;
    let mut runs: Vec<RunSummary> = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let id: String = r.get(0)?;
            let started: i64 = r.get(4)?;
            let ended: Option<i64> = r.get(5)?;
            Ok(RunSummary {
                short_id: String::new(),
                pipeline: r.get(1)?,
                status: r.get(2)?,
                exit_code: r.get(3)?,
                started_at: started,
                ended_at: ended,
                duration_ms: ended.map(|e| e - started),
                commit: r.get(6)?,
                dirty: r.get::<_, Option<bool>>(7)?.unwrap_or(false),
                replay_of: r.get(8)?,
                replay_verdict: r.get(9)?,
                metrics: BTreeMap::new(),
                message: r.get(10)?,
                params: r
                    .get::<_, Option<String>>(11)?
                    .and_then(|p| serde_json::from_str(&p).ok())
                    .unwrap_or_default(),
                id,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    // short ids: from the sorted list of all ids for long listings, else two lookups per run
    if runs.len() > 200 {
        let shorts = short_ids(conn)?;
        for r in &mut runs {
            r.short_id = shorts.get(&r.id).cloned().unwrap_or_else(|| r.id.clone());
        }
    } else {
        for r in &mut runs {
            r.short_id = short_id(conn, &r.id)?;
        }
    }
    // all metrics of the listed runs in one query; the step latest in the plan wins, as in
    // RUN_METRIC (the second column orders by plan position, then execution)
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let list = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    // (no ORDER BY: sorting 30,000 rows cost more than keeping the latest step in Rust)
    let mut m = conn.prepare(
        "SELECT s.run_id, COALESCE(s.seq, 0) * 4294967296 + s.id, m.key, m.value, m.exact FROM step_execs s
         JOIN metrics m ON m.step_exec = s.id WHERE s.run_id IN (SELECT value FROM json_each(?1))",
    )?;
    let mut by_run: std::collections::HashMap<String, BTreeMap<String, (i64, f64)>> =
        std::collections::HashMap::new();
    for row in m.query_map([list], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            crate::fingerprint::metrics::from_columns(
                r.get(3)?,
                r.get::<_, Option<String>>(4)?.as_deref(),
            ),
        ))
    })? {
        let (run, exec, k, v) = row?;
        let slot = by_run.entry(run).or_default().entry(k).or_insert((exec, v));
        if exec >= slot.0 {
            *slot = (exec, v);
        }
    }
    for run in &mut runs {
        if let Some(m) = by_run.remove(&run.id) {
            run.metrics = m.into_iter().map(|(k, (_, v))| (k, v)).collect();
        }
    }
    Ok(runs)
}

/// The names runs were recorded under, for "no run has X; known: …" messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Pipelines,
    Params,
    Metrics,
}

/// Every distinct pipeline name, param key or metric key in the store, sorted.
pub(super) fn known_names(conn: &Connection, what: Known) -> Result<Vec<String>> {
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

#[derive(Debug, Clone, Serialize)]
pub struct GitInfo {
    pub is_repo: bool,
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub dirty: bool,
    pub changed: Vec<String>,
    pub untracked: Vec<String>,
    pub remote_url: Option<String>,
    /// the uncommitted diff (only with `show --patch`; otherwise its size)
    pub diff: Option<String>,
    pub diff_bytes: i64,
    pub error: Option<String>,
}

pub(super) fn git_info(conn: &Connection, id: &str, with_diff: bool) -> Result<Option<GitInfo>> {
    conn.query_row(
        "SELECT g.is_repo, g.commit_sha, g.branch, g.dirty, g.changed, g.untracked, g.remote_url,
                CASE WHEN ?2 THEN c.data END, COALESCE(c.size, 0), g.error
         FROM git_snapshots g LEFT JOIN contents c ON c.hash = g.diff_hash WHERE g.id = ?1",
        params![id, with_diff],
        |r| {
            Ok(GitInfo {
                is_repo: r.get(0)?,
                commit: r.get(1)?,
                branch: r.get(2)?,
                dirty: r.get(3)?,
                changed: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                untracked: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                remote_url: r.get(6)?,
                diff: r
                    .get::<_, Option<Vec<u8>>>(7)?
                    // masked again when shown: a diff recorded by an older mlrun was not
                    .map(|d| crate::fingerprint::env::mask_patch(&String::from_utf8_lossy(&d))),
                diff_bytes: r.get(8)?,
                error: r.get(9)?,
            })
        },
    )
    .optional()
    .map_err(Into::into)
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvInfo {
    pub id: String,
    pub os: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub cpu_cores: i64,
    pub mem_bytes: i64,
    pub hostname: String,
    pub user: String,
    pub mlrun_version: String,
    pub interpreters: BTreeMap<String, String>,
    pub lockfiles: BTreeMap<String, String>,
    pub env_vars: BTreeMap<String, String>,
    /// program → the interpreter's environment (prefix, kind) and installed packages
    pub packages: BTreeMap<String, crate::store::packages::EnvPackages>,
}

pub(super) fn env_info(conn: &Connection, id: &str) -> Result<Option<EnvInfo>> {
    conn.query_row(
        "SELECT id, os, os_version, kernel, arch, cpu_model, cpu_cores, mem_bytes, hostname, user, mlrun_version,
                interpreters, lockfiles, env_vars, packages FROM env_snapshots WHERE id = ?1",
        [id],
        |r| {
            let json = |i: usize| -> rusqlite::Result<BTreeMap<String, String>> {
                Ok(serde_json::from_str(&r.get::<_, String>(i)?).unwrap_or_default())
            };
            Ok(EnvInfo {
                id: r.get(0)?,
                os: r.get(1)?,
                os_version: r.get(2)?,
                kernel: r.get(3)?,
                arch: r.get(4)?,
                cpu_model: r.get(5)?,
                cpu_cores: r.get(6)?,
                mem_bytes: r.get(7)?,
                hostname: r.get(8)?,
                user: r.get(9)?,
                mlrun_version: r.get(10)?,
                interpreters: json(11)?,
                lockfiles: json(12)?,
                env_vars: json(13)?,
                packages: BTreeMap::new(),
            })
            .and_then(|e| Ok((e, r.get::<_, Option<String>>(14)?)))
        },
    )
    .optional()?
    .map(|(mut e, p)| {
        e.packages = crate::store::packages::env_packages(conn, p.as_deref())?;
        Ok(e)
    })
    .transpose()
}

#[derive(Debug, Clone, Serialize)]
pub struct IoInfo {
    pub path: String,
    pub hash: String,
    pub kind: String,
    pub size: i64,
    pub nfiles: i64,
    /// the bytes are in the object store, so this version can be restored
    pub stored: bool,
    /// seen by `--trace` but not declared in pipeline.toml (`io_edges.declared = 0`)
    pub observed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepInfo {
    pub exec_id: i64,
    pub name: String,
    pub attempt: i64,
    pub status: String,
    pub cmd: String,
    pub argv: Vec<String>,
    pub cwd: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<IoInfo>,
    pub params: BTreeMap<String, serde_json::Value>,
    #[serde(serialize_with = "crate::fingerprint::metrics::ser_map")]
    pub metrics: BTreeMap<String, f64>,
    pub git_before: Option<String>,
    pub git_after: Option<String>,
    /// the step changed tracked files (git state differs before and after)
    pub changed_tracked_files: bool,
    pub env_id: Option<String>,
    pub stdout_bytes: i64,
    pub stderr_bytes: i64,
    /// for `cached` / `restored` steps: the run whose execution was reused
    pub reused_run: Option<String>,
    /// its id as mlrun shows it (see `short_id`)
    pub reused_run_short: Option<String>,
    /// `keep-outputs = true`: its outputs were left in place while it ran, not checked to be
    /// newly written
    pub keep_outputs: bool,
    /// git refs (and HEAD) the step created, moved or deleted: `[{ref, from, to}]`
    pub repo_changes: Vec<crate::fingerprint::git::RefChange>,
    /// how each captured stream is kept, by stream name (`stdout`, `stderr`)
    pub logs: BTreeMap<String, LogInfo>,
}

/// How one stream of a step's output is kept.
#[derive(Debug, Clone, Serialize)]
pub struct LogInfo {
    /// bytes the step printed
    pub bytes: i64,
    /// bytes the database does not hold (between its head and tail); 0 for a whole log
    pub cut_bytes: i64,
    /// when cut: the SHA-256 of the whole log, whose bytes are in `.mlrun/objects/logs/`
    pub object: Option<String>,
    /// the whole log is in the object store (false for a cut log that could not be kept, or
    /// that `mlrun gc` deleted)
    pub stored: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub id: String,
    pub short_id: String,
    pub pipeline: String,
    pub pipeline_file: String,
    pub root: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub hostname: String,
    pub user: String,
    pub mlrun_version: String,
    pub argv: Vec<String>,
    pub params: BTreeMap<String, serde_json::Value>,
    pub replay_of: Option<String>,
    /// the replayed run's id as mlrun shows it (see `short_id`)
    pub replay_of_short: Option<String>,
    pub replay_verdict: Option<String>,
    /// `mlrun run -m` / `mlrun note`: what the run was for
    pub message: Option<String>,
    pub git: Option<GitInfo>,
    pub git_end: Option<GitInfo>,
    pub steps: Vec<StepInfo>,
    /// environment snapshots referenced by the steps, by id
    pub environments: BTreeMap<String, EnvInfo>,
    /// what `mlrun check` (or a replay) found about the steps' outputs: step → findings
    /// (see `determinism`); filled by `show`
    pub determinism: BTreeMap<String, Vec<Finding>>,
}

/// The latest finding about one output of one step (`output_determinism`, written by
/// `determinism`).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub step: String,
    pub path: String,
    /// `deterministic` or `nondeterministic`
    pub verdict: String,
    /// the run that first found this verdict (kept while later findings agree)
    pub since_run: String,
    /// its id as mlrun shows it
    pub since_run_short: String,
    /// `check` or `replay`
    pub found_by: String,
}

impl Finding {
    pub fn nondeterministic(&self) -> bool {
        self.verdict == "nondeterministic"
    }
}

fn io_of(conn: &Connection, exec: i64, dir: &str) -> Result<Vec<IoInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.path, b.hash, b.kind, b.size, b.nfiles, b.stored, e.declared = 0 FROM io_edges e
         JOIN artifact_versions v ON v.id = e.av_id JOIN artifacts a ON a.id = v.artifact_id
         JOIN blobs b ON b.hash = v.blob_hash
         WHERE e.step_exec = ?1 AND e.direction = ?2 ORDER BY a.path",
    )?;
    let rows = stmt
        .query_map(params![exec, dir], |r| {
            Ok(IoInfo {
                path: r.get(0)?,
                hash: r.get(1)?,
                kind: r.get(2)?,
                size: r.get(3)?,
                nfiles: r.get(4)?,
                stored: r.get(5)?,
                observed: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(super) fn run_detail(conn: &Connection, id: &str, with_diff: bool) -> Result<RunDetail> {
    let (mut d, git_start, git_end): (RunDetail, Option<String>, Option<String>) = conn.query_row(
        "SELECT id, pipeline, pipeline_file, root, status, exit_code, started_at, ended_at, hostname, user,
                mlrun_version, argv, params, replay_of, git_start, git_end, replay_verdict, message FROM runs WHERE id = ?1",
        [id],
        |r| {
            let started: i64 = r.get(6)?;
            let ended: Option<i64> = r.get(7)?;
            Ok((
                RunDetail {
                    id: r.get(0)?,
                    short_id: String::new(),
                    pipeline: r.get(1)?,
                    pipeline_file: r.get(2)?,
                    root: r.get(3)?,
                    status: r.get(4)?,
                    exit_code: r.get(5)?,
                    started_at: started,
                    ended_at: ended,
                    duration_ms: ended.map(|e| e - started),
                    hostname: r.get(8)?,
                    user: r.get(9)?,
                    mlrun_version: r.get(10)?,
                    argv: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
                    params: serde_json::from_str(&r.get::<_, String>(12)?).unwrap_or_default(),
                    replay_of: r.get(13)?,
                    replay_of_short: None,
                    replay_verdict: r.get(16)?,
                    message: r.get(17)?,
                    git: None,
                    git_end: None,
                    steps: Vec::new(),
                    environments: BTreeMap::new(),
                    determinism: BTreeMap::new(),
                },
                r.get(14)?,
                r.get(15)?,
            ))
        },
    )?;
    d.short_id = short_id(conn, &d.id)?;
    if let Some(r) = &d.replay_of {
        d.replay_of_short = Some(short_id(conn, r)?);
    }
    if let Some(g) = git_start {
        d.git = git_info(conn, &g, with_diff)?;
    }
    if let Some(g) = git_end {
        d.git_end = git_info(conn, &g, with_diff)?;
    }
    let mut stmt = conn.prepare(
        "SELECT id, step, attempt, status, cmd, argv, cwd, exit_code, signal, error, started_at, ended_at,
                git_before, git_after, env_id,
                (SELECT bytes FROM step_logs l WHERE l.step_exec = s.id AND stream = 'stdout'),
                (SELECT bytes FROM step_logs l WHERE l.step_exec = s.id AND stream = 'stderr'),
                (SELECT o.run_id FROM step_execs o WHERE o.id = s.reused_exec),
                keep_outputs, repo_changes
         FROM step_execs s WHERE run_id = ?1 ORDER BY COALESCE(started_at, 9223372036854775807), id",
    )?;
    let steps: Vec<StepInfo> = stmt
        .query_map([id], |r| {
            let started: Option<i64> = r.get(10)?;
            let ended: Option<i64> = r.get(11)?;
            let before: Option<String> = r.get(12)?;
            let after: Option<String> = r.get(13)?;
            Ok(StepInfo {
                exec_id: r.get(0)?,
                name: r.get(1)?,
                attempt: r.get(2)?,
                status: r.get(3)?,
                cmd: r.get(4)?,
                argv: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                cwd: r.get(6)?,
                exit_code: r.get(7)?,
                signal: r.get(8)?,
                error: r.get(9)?,
                started_at: started,
                ended_at: ended,
                duration_ms: started.zip(ended).map(|(s, e)| e - s),
                inputs: Vec::new(),
                outputs: Vec::new(),
                params: BTreeMap::new(),
                metrics: BTreeMap::new(),
                changed_tracked_files: false,
                git_before: before,
                git_after: after,
                env_id: r.get(14)?,
                stdout_bytes: r.get::<_, Option<i64>>(15)?.unwrap_or(0),
                stderr_bytes: r.get::<_, Option<i64>>(16)?.unwrap_or(0),
                reused_run: r.get(17)?,
                reused_run_short: None,
                keep_outputs: r.get(18)?,
                repo_changes: r
                    .get::<_, Option<String>>(19)?
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .unwrap_or_default(),
                logs: BTreeMap::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut params_q =
        conn.prepare_cached("SELECT key, value FROM params WHERE step_exec = ?1 ORDER BY key")?;
    let mut metrics_q = conn.prepare_cached(
        "SELECT key, value, exact FROM metrics WHERE step_exec = ?1 ORDER BY key",
    )?;
    for mut s in steps {
        if let Some(r) = &s.reused_run {
            s.reused_run_short = Some(short_id(conn, r)?);
        }
        s.inputs = io_of(conn, s.exec_id, "in")?;
        s.logs = log_infos(conn, s.exec_id)?;
        s.outputs = io_of(conn, s.exec_id, "out")?;
        for row in params_q.query_map([s.exec_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (k, v) = row?;
            s.params.insert(
                k,
                serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v)),
            );
        }
        for row in metrics_q.query_map([s.exec_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                crate::fingerprint::metrics::from_columns(
                    r.get(1)?,
                    r.get::<_, Option<String>>(2)?.as_deref(),
                ),
            ))
        })? {
            let (k, v) = row?;
            s.metrics.insert(k, v);
        }
        if let (Some(b), Some(a)) = (&s.git_before, &s.git_after)
            && b != a
        {
            // Compare what matters: the tracked-file diff and HEAD, not untracked outputs.
            let q = |id: &str| -> Result<Option<(Option<String>, Option<String>)>> {
                Ok(conn
                    .query_row(
                        "SELECT commit_sha, diff_hash FROM git_snapshots WHERE id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?)
            };
            s.changed_tracked_files = q(b)? != q(a)?;
        }
        if let Some(env) = &s.env_id
            && !d.environments.contains_key(env)
            && let Some(info) = env_info(conn, env)?
        {
            d.environments.insert(env.clone(), info);
        }
        d.steps.push(s);
    }
    Ok(d)
}

/// The bytes of a `contents.data` value; `None` when there is none. mlrun writes blobs, but a
/// damaged store may hold anything: text is taken as its bytes, a number as no bytes (which
/// then fails its hash check rather than the query).
fn content_bytes(v: rusqlite::types::ValueRef<'_>) -> Option<&[u8]> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => None,
        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b),
        ValueRef::Integer(_) | ValueRef::Real(_) => Some(&[]),
    }
}

/// The manifest of a directory version: the bytes its hash is the SHA-256 of (see
/// `fingerprint::hash::manifest`).
pub(super) fn dir_manifest(conn: &Connection, dir_hash: &str) -> Result<Vec<u8>> {
    conn.prepare_cached("SELECT data FROM contents WHERE hash = ?1")?
        .query_row([dir_hash], |r| {
            Ok(content_bytes(r.get_ref(0)?).map(<[u8]>::to_vec))
        })
        .optional()?
        .flatten()
        .ok_or_else(|| {
            Error::store(format!(
                "the lineage store has no manifest for directory version {dir_hash}"
            ))
            .hint("run `mlrun fsck` to check the store")
        })
}

/// The entries of a directory version, sorted by relative path.
pub(super) fn dir_entry_list(conn: &Connection, dir_hash: &str) -> Result<Vec<Entry>> {
    parse_manifest(&dir_manifest(conn, dir_hash)?).ok_or_else(|| {
        Error::store(format!(
            "the manifest of directory version {dir_hash} in the lineage store is damaged"
        ))
        .hint("run `mlrun fsck` to check the store")
    })
}

/// A recorded version as a fingerprint, from its blob row (a directory's manifest read back);
/// `mode` NULL (recorded before modes were) is a plain file's.
pub(super) fn fingerprint_of(
    conn: &Connection,
    hash: String,
    kind: &str,
    size: i64,
    mode: Option<i64>,
) -> Result<Fingerprint> {
    Ok(if kind == "dir" {
        let entries = dir_entry_list(conn, &hash)?;
        Fingerprint::Dir {
            hash,
            size: size as u64,
            entries: std::sync::Arc::new(entries),
        }
    } else {
        Fingerprint::File {
            hash,
            size: size as u64,
            mode: mode.unwrap_or(0o100644) as u32,
        }
    })
}

/// Call `f` with the hash and manifest of every recorded directory version (`None`: its manifest
/// is missing), one at a time: a store can hold many large manifests.
pub(super) fn for_each_dir_manifest(
    conn: &Connection,
    mut f: impl FnMut(&str, Option<&[u8]>) -> Result<()>,
) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT b.hash, c.data FROM blobs b LEFT JOIN contents c ON c.hash = b.hash WHERE b.kind = 'dir'",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let hash = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        f(hash, content_bytes(r.get_ref(1)?))?;
    }
    Ok(())
}

/// The files of a directory version: relative path → content hash.
pub(super) fn dir_entries(conn: &Connection, dir_hash: &str) -> Result<BTreeMap<String, String>> {
    Ok(dir_entry_list(conn, dir_hash)?
        .into_iter()
        .map(|e| (e.relpath, e.hash))
        .collect())
}

/// How a step execution's streams are kept.
fn log_infos(conn: &Connection, exec_id: i64) -> Result<BTreeMap<String, LogInfo>> {
    let mut q = conn.prepare_cached(
        "SELECT l.stream, l.bytes, h.size, t.size, l.full_hash, l.stored FROM step_logs l
         LEFT JOIN contents h ON h.hash = l.content_hash LEFT JOIN contents t ON t.hash = l.tail_hash
         WHERE l.step_exec = ?1",
    )?;
    let rows = q.query_map([exec_id], |r| {
        let bytes: i64 = r.get(1)?;
        let head: Option<i64> = r.get(2)?;
        let tail: Option<i64> = r.get(3)?;
        let object: Option<String> = r.get(4)?;
        let cut_bytes = if object.is_some() {
            (bytes - head.unwrap_or(0) - tail.unwrap_or(0)).max(0)
        } else {
            0
        };
        Ok((
            r.get::<_, String>(0)?,
            LogInfo {
                bytes,
                cut_bytes,
                stored: object.is_some() && r.get::<_, i64>(5)? != 0,
                object,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One stream of a step's output as recorded.
#[derive(Debug, Clone, Default)]
pub struct StepLogData {
    /// bytes the step printed
    pub bytes: i64,
    /// the whole log, or its first bytes when it was cut
    pub head: Vec<u8>,
    /// when cut: its last bytes
    pub tail: Option<Vec<u8>>,
    /// when cut: the SHA-256 of the whole log (its object in `objects/logs/`)
    pub full_hash: Option<String>,
    /// the whole log is in the object store
    pub stored: bool,
}

/// Captured output of a step execution (empty when it has none).
pub(super) fn step_log(conn: &Connection, exec_id: i64, stream: &str) -> Result<StepLogData> {
    Ok(conn
        .query_row(
            "SELECT l.bytes, h.data, t.data, l.full_hash, l.stored FROM step_logs l
             LEFT JOIN contents h ON h.hash = l.content_hash LEFT JOIN contents t ON t.hash = l.tail_hash
             WHERE l.step_exec = ?1 AND l.stream = ?2",
            params![exec_id, stream],
            |r| {
                let full_hash: Option<String> = r.get(3)?;
                Ok(StepLogData {
                    bytes: r.get(0)?,
                    head: content_bytes(r.get_ref(1)?).unwrap_or_default().to_vec(),
                    tail: full_hash
                        .as_ref()
                        .map(|_| Ok::<_, rusqlite::Error>(content_bytes(r.get_ref(2)?).unwrap_or_default().to_vec()))
                        .transpose()?,
                    stored: full_hash.is_some() && r.get::<_, i64>(4)? != 0,
                    full_hash,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

impl super::Store {
    /// `id` as mlrun shows it: see `query::short_id`.
    pub fn short_id(&self, id: &str) -> Result<String> {
        short_id(&self.conn, id).during(format_args!("reading the shown id of run {id}"))
    }

    /// The run id a run name means (`latest`, `latest-replay`, an id or prefix, `~N`): see `query::resolve_run`.
    pub fn resolve_run(&self, target: &str) -> std::result::Result<String, ResolveError> {
        resolve_run(&self.conn, target).map_err(|e| match e {
            ResolveError::Failed(e) => ResolveError::Failed(super::name_operation(
                e,
                format_args!("resolving run `{target}`"),
            )),
            ambiguous => ambiguous,
        })
    }

    /// Runs whose id starts with `prefix` (lowercase hex): (id, pipeline, started), at most 11.
    pub fn run_candidates(&self, prefix: &str) -> Result<Vec<(String, String, i64)>> {
        run_candidates(&self.conn, prefix)
            .during(format_args!("looking up runs starting with `{prefix}`"))
    }

    /// The project roots runs were recorded in.
    pub fn project_roots(&self) -> Result<Vec<String>> {
        roots(&self.conn).during("reading the recorded project roots")
    }

    /// The paths a run's steps read or wrote.
    pub fn run_paths(&self, run_id: &str) -> Result<Vec<String>> {
        run_paths(&self.conn, run_id).during(format_args!("reading the paths of run {run_id}"))
    }

    /// The runs `f` selects, newest first, with their metrics (and params when asked).
    pub fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>> {
        list_runs(&self.conn, f).during("reading the runs list")
    }

    /// Every recorded pipeline, param or metric name.
    pub fn known_names(&self, what: Known) -> Result<Vec<String>> {
        known_names(&self.conn, what).during("reading the recorded names")
    }

    /// Everything recorded about a run (`show`).
    pub fn run_detail(&self, id: &str, with_diff: bool) -> Result<RunDetail> {
        run_detail(&self.conn, id, with_diff).during(format_args!("reading run {id}"))
    }

    /// The files of a directory version, from its manifest.
    pub fn dir_entry_list(&self, dir_hash: &str) -> Result<Vec<Entry>> {
        dir_entry_list(&self.conn, dir_hash).during(format_args!(
            "reading the manifest of directory version {}",
            dir_hash.get(..12).unwrap_or(dir_hash)
        ))
    }

    /// The files of a directory version: relative path → content hash.
    pub fn dir_entries(&self, dir_hash: &str) -> Result<BTreeMap<String, String>> {
        dir_entries(&self.conn, dir_hash).during(format_args!(
            "reading the manifest of directory version {}",
            dir_hash.get(..12).unwrap_or(dir_hash)
        ))
    }

    /// A step's recorded log (head, tail, where its whole log is).
    pub fn step_log(&self, exec_id: i64, stream: &str) -> Result<StepLogData> {
        step_log(&self.conn, exec_id, stream).during(format_args!(
            "reading the {stream} log of execution {exec_id}"
        ))
    }
}

impl super::Store {
    /// The run removed with `mlrun rm` that an id prefix names, if it does.
    pub fn removed_run(&self, prefix: &str) -> Option<RemovedRun> {
        removed_run(&self.conn, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ambiguous prefix comes back as data (the store formats no times); people see it
    /// through `report`, with each candidate's start in local time.
    #[test]
    fn an_ambiguous_prefix_lists_its_candidates() {
        let store = crate::store::Store::in_memory();
        store.execute_batch_for_test(
            "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');
             INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid) VALUES
               ('0193a4f1c2d47abc0000000000000001', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 1, 'h', 'u', '0', '[]', 1),
               ('0193a4f1c2d47abc8000000000000002', 'q', 'q.toml', '/p', 's', '{}', '{}', 'succeeded', 2, 'h', 'u', '0', '[]', 1);",
        );
        let Err(ResolveError::Ambiguous {
            target,
            matched,
            candidates,
        }) = store.resolve_run("0193a4f1")
        else {
            panic!("ambiguous");
        };
        assert_eq!(
            (target.as_str(), matched, candidates.len()),
            ("0193a4f1", 2, 2)
        );
        let shown = Error::from(store.resolve_run("0193a4f1").unwrap_err()).to_string();
        assert!(
            shown.starts_with("error: run id `0193a4f1` is ambiguous: 2 runs start with it"),
            "{shown}"
        );
        assert!(
            shown.contains("caused by: 0193a4f1c2d47abc0000000000000001  p  ")
                && shown.contains("hint: type more characters of the id"),
            "{shown}"
        );
        assert!(matches!(
            store.resolve_run("0193a4f2"),
            Err(ResolveError::Failed(_))
        ));
    }

    #[test]
    fn a_failed_listing_says_it_was_reading_the_runs_list() {
        let store = crate::store::Store::in_memory();
        store.execute_batch_for_test("DROP TABLE metrics");
        let shown = store
            .list_runs(&RunFilter::default())
            .unwrap_err()
            .to_string();
        assert!(
            shown.starts_with("error: lineage store query failed while reading the runs list"),
            "{shown}"
        );
        assert!(
            shown.contains("caused by: no such table: metrics"),
            "{shown}"
        );
    }

    /// Shown ids cover the 48-bit timestamp, the version digit and 12 random bits, and grow past
    /// any prefix another run shares (runs started in the same millisecond).
    #[test]
    fn shown_ids_cover_the_timestamp_and_grow_when_shared() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut c).unwrap();
        c.execute_batch(
            "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');
             INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid) VALUES
               ('0193a4f1c2d47abc0000000000000001', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 1, 'h', 'u', '0', '[]', 1),
               ('0193a4f1c2d47abc8000000000000002', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 1, 'h', 'u', '0', '[]', 1),
               ('0193a4f1c2d57def0000000000000003', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 2, 'h', 'u', '0', '[]', 1);",
        )
        .unwrap();
        let short = |id: &str| short_id(&c, id).unwrap();
        assert_eq!(
            short("0193a4f1c2d57def0000000000000003"),
            "0193a4f1c2d57def"
        );
        assert_eq!(
            short("0193a4f1c2d47abc0000000000000001"),
            "0193a4f1c2d47abc0"
        );
        assert_eq!(
            short("0193a4f1c2d47abc8000000000000002"),
            "0193a4f1c2d47abc8"
        );
        let all = short_ids(&c).unwrap();
        for (id, s) in &all {
            assert_eq!(&short(id), s);
            assert_eq!(&resolve_run(&c, s).unwrap(), id);
        }
        // relative names: `latest~N` counts back, `RUN~N` from any run
        assert_eq!(
            resolve_run(&c, "latest").unwrap(),
            "0193a4f1c2d57def0000000000000003"
        );
        assert_eq!(
            resolve_run(&c, "latest~2").unwrap(),
            "0193a4f1c2d47abc0000000000000001"
        );
        assert_eq!(
            resolve_run(&c, "0193a4f1c2d57def~").unwrap(),
            "0193a4f1c2d47abc8000000000000002"
        );
        assert!(resolve_run(&c, "latest~3").is_err());
        assert!(is_run_name("latest~1") && is_run_name("latest-replay") && is_run_name("0193a4~2"));
        assert!(!is_run_name("0193a4") && !is_run_name("model~1"));
    }

    /// A run whose two steps report the same metric: the later step's value is the run's, in
    /// the listing, the filter and the sort alike.
    #[test]
    fn a_runs_metric_is_its_last_steps() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut c).unwrap();
        c.execute_batch(
            "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');
             INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid)
               VALUES ('r1', 'p', 'p.toml', '/p', 's', '{}', '{\"lr\":0.1,\"name\":\"a\"}', 'succeeded', 1, 'h', 'u', '0', '[]', 1),
                      ('r2', 'p', 'p.toml', '/p', 's', '{}', '{\"lr\":1,\"name\":\"b\"}', 'succeeded', 2, 'h', 'u', '0', '[]', 1);
             INSERT INTO step_execs (id, run_id, step, cmd, argv, cwd, status) VALUES
               (1, 'r1', 'a', '', '[]', '', 'succeeded'), (2, 'r1', 'b', '', '[]', '', 'succeeded'),
               (3, 'r2', 'a', '', '[]', '', 'succeeded');
             INSERT INTO metrics (step_exec, key, value, source) VALUES (2, 'acc', 0.9, 'x'), (1, 'acc', 0.5, 'x'), (3, 'acc', 0.7, 'x');",
        )
        .unwrap();
        let ids = |f: RunFilter| -> Vec<(String, f64)> {
            list_runs(&c, &f)
                .unwrap()
                .into_iter()
                .map(|r| (r.id, r.metrics["acc"]))
                .collect()
        };
        assert_eq!(
            ids(RunFilter::default()),
            [("r2".into(), 0.7), ("r1".into(), 0.9)]
        );
        let f = |m: Vec<(String, Cmp, f64)>| RunFilter {
            metrics: m,
            ..RunFilter::default()
        };
        assert_eq!(ids(f(vec![("acc".into(), Cmp::Gt, 0.8)])).len(), 1);
        assert!(ids(f(vec![("acc".into(), Cmp::Lt, 0.6)])).is_empty());
        let sorted = ids(RunFilter {
            sort: Some(("acc".into(), false)),
            ..RunFilter::default()
        });
        assert_eq!(sorted[0].0, "r1");
        // params: numbers compare as numbers (1 = 1.0), strings as strings
        let p = |k: &str, v: serde_json::Value| RunFilter {
            params: vec![(k.into(), v)],
            ..RunFilter::default()
        };
        assert_eq!(ids(p("lr", serde_json::json!(1.0)))[0].0, "r2");
        assert_eq!(ids(p("name", serde_json::json!("a")))[0].0, "r1");
        assert!(ids(p("name", serde_json::json!(1))).is_empty());
    }
}

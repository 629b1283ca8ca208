//! Run ids as people write them: the shortest unambiguous prefix mlrun shows, and what a
//! target (`latest`, `latest~2`, a pipeline name, an id prefix) resolves to.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

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

pub(super) fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// Shortest prefix of `id` (at least `MIN_SHORT` digits) that no other run id shares.
pub(in crate::store) fn short_id(conn: &Connection, id: &str) -> Result<String> {
    // cached: a no-op run or a dry run asks this once per reused step
    let prev: Option<String> = conn
        .prepare_cached("SELECT id FROM runs WHERE id < ?1 ORDER BY id DESC LIMIT 1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let next: Option<String> = conn
        .prepare_cached("SELECT id FROM runs WHERE id > ?1 ORDER BY id LIMIT 1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(short_between(id, prev.as_deref(), next.as_deref()))
}

/// The shortest prefix of `id` (at least `MIN_SHORT` digits) that its neighbours in the sorted
/// list of every run id (`prev`, `next`) do not share: a run's shown id, whichever backend
/// (the local store, the team remote) read the neighbours.
pub fn short_between(id: &str, prev: Option<&str>, next: Option<&str>) -> String {
    let n = [prev, next]
        .into_iter()
        .flatten()
        .map(|o| common_prefix(id, o) + 1)
        .max()
        .unwrap_or(0)
        .max(MIN_SHORT);
    id[..n.min(id.len())].to_string()
}

/// Short ids for many runs at once, from the sorted list of all ids.
pub(in crate::store) fn short_ids(conn: &Connection) -> Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare("SELECT id FROM runs ORDER BY id")?;
    let ids: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| ids[p].as_str());
        let next = ids.get(i + 1).map(String::as_str);
        out.insert(id.clone(), short_between(id, prev, next));
    }
    Ok(out)
}

/// The names of the newest runs: `latest` (alias `last`) is the newest run that is not a replay,
/// `latest-replay` the newest replay.
pub(super) const LATEST: &[(&str, bool)] = &[
    ("latest", false),
    ("last", false),
    ("latest-replay", true),
    ("last-replay", true),
];

/// Split `NAME~N` into (`NAME`, N); `NAME~` is `NAME~1`, as in git. `None`: no `~`.
pub(super) fn split_back(target: &str) -> Option<(&str, std::result::Result<usize, String>)> {
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

/// Whether `s` could be a run id or content-hash prefix as typed: hex digits, maybe dashes.
pub fn is_hex_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// A run id or content-hash prefix as typed (`0193A4F1-C2`) as it is stored: dashes dropped,
/// lowercase. Both backends' TARGET rules (`cmd::target`, `remote::lineage`) read prefixes so.
pub fn hex_prefix(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase()
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

pub(super) type Resolved = std::result::Result<String, ResolveError>;

/// Resolve a run name to a run id: `latest` (the newest run that is not a replay),
/// `latest-replay` (the newest replay), a full id or a unique prefix, each optionally followed by
/// `~N`: the Nth run before it (of the same kind: replays count back through replays, other runs
/// through other runs).
pub(in crate::store) fn resolve_run(conn: &Connection, target: &str) -> Resolved {
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
pub(super) fn resolve_base(conn: &Connection, target: &str, n: usize) -> Resolved {
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
    let prefix = hex_prefix(target);
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
pub(in crate::store) fn removed_run(conn: &Connection, prefix: &str) -> Option<RemovedRun> {
    let t = crate::store::rm::removed(conn, prefix).ok().flatten()?;
    Some(RemovedRun {
        shown_id: t.run_id[..MIN_SHORT.max(prefix.len()).min(t.run_id.len())].to_string(),
        pipeline: t.pipeline,
        started_at: t.started_at,
        removed_by: t.removed_by,
        removed_at: t.removed_at,
    })
}

/// Runs whose id starts with `prefix` (lowercase hex): at most 11, to report ambiguity.
pub(in crate::store) fn run_candidates(
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

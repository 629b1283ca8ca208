//! `mlrun lineage --remote`: the lineage graph answered by the team remote's PostgreSQL itself
//! (no local copy of the record). A walk is one recursive query over `io_edges`, keyed as the
//! remote keys them (executions by (run, step, attempt), versions by (path, content hash)),
//! followed by a fixed number of set-based queries for the details of what it found, never one
//! per node. The rows become the same [`Graph`] the local store gives (`store::lineage::assemble`),
//! so `cmd::lineage` prints both alike. The remote has no row ids: an answer numbers its
//! versions by when they were first recorded and its executions by when they started (the
//! order a local store gives them ids in), so `av:N` / `exec:N` are ids within one answer.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use postgres::types::ToSql;

use super::pg::Record;
use crate::error::Result;
use crate::fingerprint::hash::parse_manifest;
use crate::store::lineage::{
    Direction, Exec, Found, GAP_NO_COPY, GAP_REASON, Graph, GraphEdge, Node, Parts, Source,
    Version, assemble, av_node_id, exec_node_id, gap_candidates, gap_copy_stored, io_edge,
    run_node_id,
};
use crate::store::query::short_between;

/// A version on the remote: (path, content hash).
type VKey = (String, String);
/// A step execution on the remote: (run, step, attempt).
type EKey = (String, String, i64);
/// An io edge: (execution, input?, version, origin, declared).
type IoRow = (EKey, bool, VKey, Option<String>, bool);

/// Where a remote walk starts.
#[derive(Debug, Clone)]
pub enum Seed {
    Version(VKey),
    Exec(EKey),
    Run(String),
}

/// The team remote as a lineage source.
pub struct Remote {
    record: Record,
    /// the project root (where `.mlrun` is, or would be): paths are relative to it
    root: PathBuf,
}

/// Connect to the configured remote's record.
pub fn open(store_dir: Option<&Path>) -> Result<Remote> {
    let dir = super::store_dir_or_new(store_dir)?;
    let remote = super::configured(&dir)?;
    let record = Record::connect(&remote)?;
    let root = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(Remote { record, root })
}

/// The producer of version (`{p}`, `{h}`) people mean first (as `store::lineage`'s
/// `PREFERRED_PRODUCER`): the workspace's before a replay's, a real execution before a reuse,
/// then the earliest.
fn producer_sql(p: &str, h: &str) -> String {
    format!(
        "SELECT o.run_id, o.step, o.attempt FROM io_edges o
           JOIN step_execs s ON s.run_id = o.run_id AND s.step = o.step AND s.attempt = o.attempt
           JOIN runs r ON r.id = o.run_id
         WHERE o.path = {p} AND o.blob_hash = {h} AND o.direction = 'out'
         ORDER BY r.replay_of IS NOT NULL, s.status <> 'succeeded', COALESCE(s.started_at, 0),
                  o.run_id, o.step, o.attempt
         LIMIT 1"
    )
}

/// The recursive walk over executions: `$1..$3` the seed executions, `$4, $5` the seed
/// versions, `$6` the depth limit (execution levels) when there is one. Upstream an execution
/// leads to the producers of its inputs, downstream to the readers of its outputs. Without a
/// limit the rows carry no depth, so `UNION` makes each execution appear once and a cycle ends.
pub fn walk_sql(direction: Direction, limited: bool) -> String {
    let (d_col, d_one, d_next, seed_guard, guard) = if limited {
        (
            ", d",
            ", 1::bigint",
            ", w.d + 1",
            " WHERE 0 < $6::bigint",
            " AND w.d < $6::bigint",
        )
    } else {
        ("", "", "", "", "")
    };
    let (from_versions, step) = match direction {
        Direction::Up => (
            format!(
                "SELECT p.run_id, p.step, p.attempt{d_one}
                   FROM unnest($4::text[], $5::text[]) AS v(path, hash)
                   CROSS JOIN LATERAL ({}) p{seed_guard}",
                producer_sql("v.path", "v.hash")
            ),
            format!(
                "SELECT p.run_id, p.step, p.attempt{d_next} FROM walk w
                   JOIN io_edges i ON i.run_id = w.run_id AND i.step = w.step
                                  AND i.attempt = w.attempt AND i.direction = 'in'
                   CROSS JOIN LATERAL ({}) p WHERE true{guard}",
                producer_sql("i.path", "i.blob_hash")
            ),
        ),
        Direction::Down => (
            format!(
                "SELECT i.run_id, i.step, i.attempt{d_one}
                   FROM unnest($4::text[], $5::text[]) AS v(path, hash)
                   JOIN io_edges i ON i.path = v.path AND i.blob_hash = v.hash
                                  AND i.direction = 'in'{seed_guard}"
            ),
            format!(
                "SELECT i.run_id, i.step, i.attempt{d_next} FROM walk w
                   JOIN io_edges o ON o.run_id = w.run_id AND o.step = w.step
                                  AND o.attempt = w.attempt AND o.direction = 'out'
                   JOIN io_edges i ON i.path = o.path AND i.blob_hash = o.blob_hash
                                  AND i.direction = 'in'
                 WHERE true{guard}"
            ),
        ),
    };
    format!(
        "WITH RECURSIVE walk(run_id, step, attempt{d_col}) AS (
           SELECT x.r, x.s, x.a{d_one} FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(r, s, a)
           UNION
           {from_versions}
           UNION
           {step}
         )
         SELECT DISTINCT run_id, step, attempt FROM walk"
    )
}

/// A version's details as the remote has them.
struct VRow {
    version: Version,
    producers: usize,
    reused: usize,
}

/// Split keys into the column arrays `unnest` takes.
fn ekey_cols(keys: &BTreeSet<EKey>) -> (Vec<String>, Vec<String>, Vec<i64>) {
    let mut cols = (Vec::new(), Vec::new(), Vec::new());
    for (r, s, a) in keys {
        cols.0.push(r.clone());
        cols.1.push(s.clone());
        cols.2.push(*a);
    }
    cols
}

fn vkey_cols<'a>(keys: impl IntoIterator<Item = &'a VKey>) -> (Vec<String>, Vec<String>) {
    keys.into_iter()
        .map(|(p, h)| (p.clone(), h.clone()))
        .unzip()
}

mod target;

impl Remote {
    pub(super) fn query(
        &mut self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        self.record.read(what, sql, params)
    }

    /// The executions the walk from the seeds reaches.
    fn walk(
        &mut self,
        execs: &BTreeSet<EKey>,
        versions: &[VKey],
        direction: Direction,
        depth: Option<u32>,
    ) -> Result<BTreeSet<EKey>> {
        let (r, s, a) = ekey_cols(execs);
        let (p, h) = vkey_cols(versions);
        let sql = walk_sql(direction, depth.is_some());
        let d = depth.map(i64::from);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&r, &s, &a, &p, &h];
        if let Some(d) = &d {
            params.push(d);
        }
        let rows = self.query("walking the lineage graph", &sql, &params)?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect())
    }

    /// The io edges of these executions: (execution, input?, version, origin, declared).
    fn io_of(&mut self, execs: &BTreeSet<EKey>) -> Result<Vec<IoRow>> {
        let (r, s, a) = ekey_cols(execs);
        let rows = self.query(
            "reading the lineage graph's edges",
            "SELECT e.run_id, e.step, e.attempt, e.direction, e.path, e.blob_hash, e.origin, e.declared
             FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(r, s, a)
             JOIN io_edges e ON e.run_id = x.r AND e.step = x.s AND e.attempt = x.a",
            &[&r, &s, &a],
        )?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    (row.get(0), row.get(1), row.get(2)),
                    row.get::<_, String>(3) == "in",
                    (row.get(4), row.get(5)),
                    row.get(6),
                    row.get::<_, i64>(7) != 0,
                )
            })
            .collect())
    }

    /// Versions' details: kind, size, files, when first recorded, producers and reuses.
    fn versions(&mut self, keys: &BTreeSet<VKey>) -> Result<Vec<(VKey, VRow)>> {
        let (p, h) = vkey_cols(keys);
        let rows = self.query(
            "reading the lineage graph's versions",
            // (`LIMIT 1`s keep each lookup an index probe per version: a plain join lets the
            // planner hash every blob)
            "SELECT v.path, v.hash, b.kind, b.size, b.nfiles,
                    LEAST((SELECT min(e.first_seen) FROM io_edges e WHERE e.path = v.path
                             AND e.blob_hash = v.hash AND e.direction = 'in'), o.seen),
                    o.n, o.reused
             FROM unnest($1::text[], $2::text[]) AS v(path, hash)
             CROSS JOIN LATERAL (SELECT kind, size, nfiles FROM blobs
                                 WHERE blobs.hash = v.hash LIMIT 1) b
             CROSS JOIN LATERAL (
               SELECT count(*) AS n, count(*) FILTER (WHERE s.status IN ('cached', 'restored')) AS reused,
                      min(o.first_seen) AS seen
               FROM io_edges o JOIN step_execs s
                 ON s.run_id = o.run_id AND s.step = o.step AND s.attempt = o.attempt
               WHERE o.path = v.path AND o.blob_hash = v.hash AND o.direction = 'out') o",
            &[&p, &h],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let key: VKey = (r.get(0), r.get(1));
                let row = VRow {
                    version: Version {
                        av_id: 0,
                        path: key.0.clone(),
                        hash: key.1.clone(),
                        kind: r.get(2),
                        size: r.get(3),
                        nfiles: r.get(4),
                        first_seen: r.get::<_, Option<i64>>(5).unwrap_or(0),
                    },
                    producers: r.get::<_, i64>(6) as usize,
                    reused: r.get::<_, i64>(7) as usize,
                };
                (key, row)
            })
            .collect())
    }

    /// Executions' details (ids still 0), each with the execution it reused.
    fn execs(&mut self, keys: &BTreeSet<EKey>) -> Result<Vec<(EKey, Exec, Option<EKey>)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (r, s, a) = ekey_cols(keys);
        let unnest = "unnest($1::text[], $2::text[], $3::bigint[]) AS x(r, s, a)";
        let on = |t: &str| format!("{t}.run_id = x.r AND {t}.step = x.s AND {t}.attempt = x.a");
        let rows = self.query(
            "reading the lineage graph's executions",
            &format!(
                "SELECT s.run_id, s.step, s.attempt, s.status, s.cmd, s.started_at, s.ended_at,
                        s.exit_code, s.reused_run, s.reused_step, s.reused_attempt,
                        g.commit_sha, COALESCE(g.dirty, 0), s.env_id
                 FROM {unnest} JOIN step_execs s ON {}
                 LEFT JOIN git_snapshots g ON g.id = s.git_before",
                on("s")
            ),
            &[&r, &s, &a],
        )?;
        let mut out: BTreeMap<EKey, (Exec, Option<EKey>)> = BTreeMap::new();
        for row in &rows {
            let key: EKey = (row.get(0), row.get(1), row.get(2));
            let reused = match (
                row.get::<_, Option<String>>(8),
                row.get::<_, Option<String>>(9),
                row.get::<_, Option<i64>>(10),
            ) {
                (Some(r), Some(s), Some(a)) => Some((r, s, a)),
                _ => None,
            };
            let exec = Exec {
                exec_id: 0,
                run_id: key.0.clone(),
                step: key.1.clone(),
                status: row.get(3),
                cmd: row.get(4),
                started_at: row.get(5),
                ended_at: row.get(6),
                exit_code: row.get::<_, Option<i64>>(7).map(|c| c as i32),
                reused_exec: None,
                commit: row.get(11),
                dirty: row.get::<_, i64>(12) != 0,
                env_id: row.get(13),
                params: BTreeMap::new(),
                metrics: BTreeMap::new(),
            };
            out.insert(key, (exec, reused));
        }
        let params = self.query(
            "reading the lineage graph's params",
            &format!(
                "SELECT p.run_id, p.step, p.attempt, p.key, p.value FROM {unnest} JOIN params p ON {}",
                on("p")
            ),
            &[&r, &s, &a],
        )?;
        for row in &params {
            let key: EKey = (row.get(0), row.get(1), row.get(2));
            if let Some((e, _)) = out.get_mut(&key) {
                let v: String = row.get(4);
                e.params.insert(
                    row.get(3),
                    serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v)),
                );
            }
        }
        let metrics = self.query(
            "reading the lineage graph's metrics",
            &format!(
                "SELECT m.run_id, m.step, m.attempt, m.key, m.value, m.exact FROM {unnest} JOIN metrics m ON {}",
                on("m")
            ),
            &[&r, &s, &a],
        )?;
        for row in &metrics {
            let key: EKey = (row.get(0), row.get(1), row.get(2));
            if let Some((e, _)) = out.get_mut(&key) {
                e.metrics.insert(
                    row.get(3),
                    crate::fingerprint::metrics::from_columns(
                        row.get(4),
                        row.get::<_, Option<String>>(5).as_deref(),
                    ),
                );
            }
        }
        Ok(out.into_iter().map(|(k, (e, r))| (k, e, r)).collect())
    }

    /// Run nodes (short ids among the remote's runs), by start.
    fn runs(&mut self, ids: &BTreeSet<String>) -> Result<Vec<Node>> {
        let list: Vec<&String> = ids.iter().collect();
        let rows = self.query(
            "reading the lineage graph's runs",
            "SELECT r.id, r.pipeline, r.status, r.started_at, r.ended_at, r.hostname, r.\"user\",
                    g.commit_sha, g.branch, COALESCE(g.dirty, 0),
                    (SELECT max(x.id) FROM runs x WHERE x.id < r.id),
                    (SELECT min(x.id) FROM runs x WHERE x.id > r.id)
             FROM runs r LEFT JOIN git_snapshots g ON g.id = r.git_start
             WHERE r.id = ANY($1) ORDER BY r.started_at, r.id",
            &[&list],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let id: String = r.get(0);
                let (prev, next): (Option<String>, Option<String>) = (r.get(10), r.get(11));
                Node::Run {
                    id: run_node_id(&id),
                    short_id: short_between(&id, prev.as_deref(), next.as_deref()),
                    run_id: id,
                    pipeline: r.get(1),
                    status: r.get(2),
                    started_at: r.get(3),
                    ended_at: r.get(4),
                    hostname: r.get(5),
                    user: r.get(6),
                    commit: r.get(7),
                    branch: r.get(8),
                    dirty: r.get::<_, i64>(9) != 0,
                }
            })
            .collect())
    }

    /// Of the candidate versions: the gaps (no producer on the remote, never read as a tracked
    /// file) and those read as tracked files with uncommitted edits (the run recorded the diff).
    fn gaps(&mut self, keys: &[VKey]) -> Result<(HashSet<VKey>, HashSet<VKey>)> {
        if keys.is_empty() {
            return Ok(Default::default());
        }
        let (p, h) = vkey_cols(keys);
        let dirty: HashSet<VKey> = self
            .query(
                "reading which versions had uncommitted edits",
                "SELECT DISTINCT v.path, v.hash FROM unnest($1::text[], $2::text[]) AS v(path, hash)
                 JOIN io_edges i ON i.path = v.path AND i.blob_hash = v.hash AND i.direction = 'in'
                 JOIN step_execs s ON s.run_id = i.run_id AND s.step = i.step AND s.attempt = i.attempt
                 JOIN git_snapshots g ON g.id = s.git_before
                 CROSS JOIN LATERAL json_array_elements_text(g.changed::json) AS c(value)
                 WHERE c.value = v.path OR c.value LIKE '%/' || v.path
                    OR c.value LIKE v.path || '/%' OR c.value LIKE '%/' || v.path || '/%'",
                &[&p, &h],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let gaps: HashSet<VKey> = self
            .query(
                "reading the lineage graph's gaps",
                "SELECT v.path, v.hash FROM unnest($1::text[], $2::text[]) AS v(path, hash)
                 WHERE NOT EXISTS (SELECT 1 FROM io_edges o WHERE o.path = v.path
                                     AND o.blob_hash = v.hash AND o.direction = 'out')
                   AND NOT EXISTS (SELECT 1 FROM io_edges i WHERE i.path = v.path
                                     AND i.blob_hash = v.hash AND i.direction = 'in'
                                     AND i.origin = 'git')",
                &[&p, &h],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .filter(|k| !dirty.contains(k))
            .collect();
        Ok((gaps, dirty))
    }

    /// Why each gap is one: its bytes are on the remote (a push uploads every object its run
    /// needs), or no copy was kept.
    fn gap_reasons(&mut self, gaps: &[&Version]) -> Result<HashMap<i64, String>> {
        let mut wanted: HashMap<i64, Vec<String>> = HashMap::new();
        for v in gaps {
            if v.hash.is_empty() {
                continue;
            }
            let names = if v.kind == "dir" {
                match self.manifest(&v.hash)?.as_deref().and_then(parse_manifest) {
                    Some(entries) => entries
                        .iter()
                        .filter(|e| e.mode != crate::fingerprint::hash::MODE_LINK)
                        .map(|e| format!("sha256/{}", e.hash))
                        .collect(),
                    None => continue,
                }
            } else {
                vec![format!("sha256/{}", v.hash)]
            };
            wanted.insert(v.av_id, names);
        }
        let all: Vec<String> = wanted.values().flatten().cloned().collect();
        let there: HashSet<String> = if all.is_empty() {
            HashSet::new()
        } else {
            self.query(
                "reading which objects the remote holds",
                "SELECT DISTINCT name FROM run_objects WHERE name = ANY($1)",
                &[&all],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
        };
        let mut out = HashMap::new();
        for v in gaps {
            let reason = match wanted.get(&v.av_id) {
                None => GAP_REASON.to_string(),
                Some(names) if names.iter().all(|n| there.contains(n)) => gap_copy_stored(&v.hash),
                Some(_) => GAP_NO_COPY.to_string(),
            };
            out.insert(v.av_id, reason);
        }
        Ok(out)
    }
}

impl Source for Remote {
    type Seed = Seed;

    fn seed(&mut self, arg: &str) -> Result<Found<Seed>> {
        self.resolve(arg)
    }

    fn graph(&mut self, seed: &Seed, direction: Direction, depth: Option<u32>) -> Result<Graph> {
        let (seed_execs, seed_versions): (BTreeSet<EKey>, Vec<VKey>) = match seed {
            Seed::Version(v) => (BTreeSet::new(), vec![v.clone()]),
            Seed::Exec(e) => ([e.clone()].into(), Vec::new()),
            Seed::Run(r) => {
                let rows = self.query(
                    "reading a run's steps",
                    "SELECT run_id, step, attempt FROM step_execs WHERE run_id = $1",
                    &[r],
                )?;
                let e = rows
                    .iter()
                    .map(|x| (x.get(0), x.get(1), x.get(2)))
                    .collect();
                (e, Vec::new())
            }
        };
        let walked = self.walk(&seed_execs, &seed_versions, direction, depth)?;
        let io = self.io_of(&walked)?;
        // the versions: the seed, and what the executions found read (upstream) or wrote
        let mut vkeys: BTreeSet<VKey> = seed_versions.iter().cloned().collect();
        let want_inputs = direction == Direction::Up;
        vkeys.extend(
            io.iter()
                .filter(|e| e.1 == want_inputs)
                .map(|e| e.2.clone()),
        );
        let mut vrows = self.versions(&vkeys)?;
        let mut erows = self.execs(&walked)?;
        let known: HashSet<EKey> = erows.iter().map(|e| e.0.clone()).collect();
        let originals: BTreeSet<EKey> = erows
            .iter()
            .filter_map(|e| e.2.clone())
            .filter(|k| !known.contains(k))
            .collect();
        erows.extend(self.execs(&originals)?);
        // number them as a local store would have: versions as first recorded, executions as
        // started
        vrows.sort_by(|a, b| (a.1.version.first_seen, &a.0).cmp(&(b.1.version.first_seen, &b.0)));
        erows.sort_by(|a, b| {
            (a.1.started_at.unwrap_or(i64::MAX), &a.0)
                .cmp(&(b.1.started_at.unwrap_or(i64::MAX), &b.0))
        });
        let av_ids: HashMap<VKey, i64> = vrows
            .iter()
            .enumerate()
            .map(|(i, v)| (v.0.clone(), i as i64 + 1))
            .collect();
        let ex_ids: HashMap<EKey, i64> = erows
            .iter()
            .enumerate()
            .map(|(i, e)| (e.0.clone(), i as i64 + 1))
            .collect();
        let mut edges: BTreeSet<GraphEdge> = BTreeSet::new();
        for (e, input, v, origin, declared) in io {
            if let (Some(&x), Some(&a)) = (ex_ids.get(&e), av_ids.get(&v)) {
                edges.insert(io_edge(x, input, a, origin, declared));
            }
        }
        let mut producers = HashMap::new();
        let mut versions = Vec::new();
        for (key, mut row) in vrows {
            row.version.av_id = av_ids[&key];
            if row.producers > 0 {
                producers.insert(row.version.av_id, (row.producers, row.reused));
            }
            versions.push(row.version);
        }
        let avs: BTreeSet<i64> = av_ids.values().copied().collect();
        let candidates = gap_candidates(&avs, &producers, &edges);
        let by_id: HashMap<i64, &Version> = versions.iter().map(|v| (v.av_id, v)).collect();
        let cand_keys: Vec<VKey> = candidates
            .iter()
            .map(|id| (by_id[id].path.clone(), by_id[id].hash.clone()))
            .collect();
        let (gap_keys, dirty_keys) = self.gaps(&cand_keys)?;
        let gaps: HashSet<i64> = gap_keys.iter().map(|k| av_ids[k]).collect();
        let uncommitted: HashSet<i64> = dirty_keys.iter().map(|k| av_ids[k]).collect();
        let gap_versions: Vec<&Version> = versions
            .iter()
            .filter(|v| gaps.contains(&v.av_id))
            .collect();
        let reasons = self.gap_reasons(&gap_versions)?;
        versions.sort_by(|a, b| (&a.path, a.av_id).cmp(&(&b.path, b.av_id)));
        let mut execs = HashMap::new();
        let mut run_ids: BTreeSet<String> = BTreeSet::new();
        for (key, mut exec, reused) in erows {
            exec.exec_id = ex_ids[&key];
            exec.reused_exec = reused.and_then(|r| ex_ids.get(&r).copied());
            run_ids.insert(exec.run_id.clone());
            execs.insert(exec.exec_id, exec);
        }
        let root = match seed {
            Seed::Version(v) => av_node_id(av_ids.get(v).copied().unwrap_or(0)),
            Seed::Exec(e) => exec_node_id(ex_ids.get(e).copied().unwrap_or(0)),
            Seed::Run(r) => {
                run_ids.insert(r.clone());
                run_node_id(r)
            }
        };
        let runs = self.runs(&run_ids)?;
        Ok(assemble(Parts {
            root,
            direction,
            depth,
            edges,
            producers,
            uncommitted,
            gaps,
            reasons,
            versions,
            execs,
            runs,
        }))
    }
}

//! The lineage graph: one recursive walk over `io_edges`, then a fixed number of set-based
//! queries for the details of the nodes it found.

use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::{Connection, params};
use serde::Serialize;

use super::*;
use crate::error::Result;

/// One node of a lineage graph. Its `id` is unique within one answer and stable within a store.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Node {
    ArtifactVersion {
        id: String,
        #[serde(flatten)]
        version: Version,
        /// recorded executions that produced this exact version (0 for sources and gaps)
        producers: usize,
        /// of those, how many reused an earlier execution (`cached` / `restored`)
        reused: usize,
        /// where the steps in this graph that read it said it came from (`step`, `git`,
        /// `external`)
        origins: Vec<String>,
        /// read as a tracked file with uncommitted edits (the run recorded the diff)
        uncommitted: bool,
        /// no recorded producer, not a tracked file at a commit, not a recorded uncommitted
        /// edit: lineage stops here
        gap: bool,
        /// on gaps: what is known of it (`gap_reasons`): its copy is stored, no copy was kept,
        /// or its data version is unknown
        #[serde(skip_serializing_if = "Option::is_none")]
        gap_reason: Option<String>,
    },
    StepExec {
        id: String,
        #[serde(flatten)]
        exec: Exec,
    },
    Run {
        id: String,
        run_id: String,
        short_id: String,
        pipeline: String,
        status: String,
        started_at: i64,
        ended_at: Option<i64>,
        hostname: String,
        user: String,
        commit: Option<String>,
        branch: Option<String>,
        dirty: bool,
    },
    Commit {
        id: String,
        sha: String,
    },
}

impl Node {
    pub fn id(&self) -> &str {
        match self {
            Node::ArtifactVersion { id, .. }
            | Node::StepExec { id, .. }
            | Node::Run { id, .. }
            | Node::Commit { id, .. } => id,
        }
    }
}

/// Edge kinds (README "mlrun lineage --format json"): `used` artifact_version → step_exec,
/// `generated` step_exec → artifact_version, `part_of` step_exec → run, `checked_out`
/// commit → run, `committed` commit → artifact_version, `reused` step_exec → step_exec.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// a `used` / `generated` edge seen by `--trace` but not declared in pipeline.toml
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub observed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    pub root: String,
    /// when the target was a file inside a recorded directory: that file (the walk starts at
    /// the directory version `root`, which holds it)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Member>,
    pub direction: &'static str,
    pub depth: Option<u32>,
    pub nodes: Vec<Node>,
    pub edges: Vec<GraphEdge>,
}

impl Graph {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id() == id)
    }
    /// Versions marked as lineage gaps.
    pub fn gaps(&self) -> impl Iterator<Item = &Version> {
        self.nodes.iter().filter_map(|n| match n {
            Node::ArtifactVersion {
                version, gap: true, ..
            } => Some(version),
            _ => None,
        })
    }
}

pub fn av_node_id(av: i64) -> String {
    format!("av:{av}")
}
pub fn exec_node_id(e: i64) -> String {
    format!("exec:{e}")
}
pub fn run_node_id(r: &str) -> String {
    format!("run:{r}")
}
pub fn commit_node_id(c: &str) -> String {
    format!("commit:{c}")
}

/// The recursive walk. `?1` is a JSON array of `[kind, id]` seeds (kind 0 = version,
/// 1 = execution); `?2` the depth limit (execution levels). Without a limit the rows carry no
/// depth, so `UNION` makes every node appear once and a cycle ends; with one, depth is bounded.
pub fn walk_sql(direction: Direction, limited: bool) -> String {
    let (depth_col, depth_seed, d_exec, d_av, guard) = if limited {
        (
            ", d",
            ", CASE WHEN json_extract(j.value, '$[0]') = 1 THEN 1 ELSE 0 END",
            ", w.d + 1",
            ", w.d",
            " AND w.d < ?2",
        )
    } else {
        ("", "", "", "", "")
    };
    let steps = match direction {
        Direction::Up => format!(
            "SELECT 1, (SELECT o.step_exec FROM io_edges o JOIN step_execs s ON s.id = o.step_exec
                        WHERE o.av_id = w.id AND o.direction = 'out'
                        ORDER BY {REPLAY_LAST}, s.status <> 'succeeded', COALESCE(s.started_at, 0), s.id
                        LIMIT 1){d_exec}
               FROM walk w WHERE w.k = 0 AND w.id IS NOT NULL{guard}
             UNION
             SELECT 0, i.av_id{d_av} FROM walk w CROSS JOIN io_edges i
               ON i.step_exec = w.id AND i.direction = 'in' WHERE w.k = 1"
        ),
        Direction::Down => format!(
            "SELECT 1, i.step_exec{d_exec} FROM walk w CROSS JOIN io_edges i
               ON i.av_id = w.id AND i.direction = 'in' WHERE w.k = 0{guard}
             UNION
             SELECT 0, o.av_id{d_av} FROM walk w CROSS JOIN io_edges o
               ON o.step_exec = w.id AND o.direction = 'out' WHERE w.k = 1"
        ),
    };
    format!(
        "WITH RECURSIVE walk(k, id{depth_col}) AS (
           SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'){depth_seed}
             FROM json_each(?1) j
           UNION
           {steps}
         )
         SELECT DISTINCT k, id FROM walk WHERE id IS NOT NULL"
    )
}

/// Walk from `seed` and return the graph with every node's details.
pub(in crate::store) fn traverse(
    conn: &Connection,
    seed: &Seed,
    direction: Direction,
    depth: Option<u32>,
) -> Result<Graph> {
    // seeds
    let (root, seeds): (String, Vec<(i64, i64)>) = match seed {
        Seed::Version(av) => (av_node_id(*av), vec![(0, *av)]),
        Seed::Exec(e) => (exec_node_id(*e), vec![(1, *e)]),
        Seed::Run(r) => {
            let mut stmt = conn.prepare("SELECT id FROM step_execs WHERE run_id = ?1")?;
            let ids: Vec<i64> = stmt
                .query_map([r], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            (run_node_id(r), ids.into_iter().map(|i| (1, i)).collect())
        }
    };
    let seed_json = serde_json::to_string(&seeds).unwrap_or_else(|_| "[]".into());
    let sql = walk_sql(direction, depth.is_some());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut avs: BTreeSet<i64> = BTreeSet::new();
    let mut exs: BTreeSet<i64> = BTreeSet::new();
    let row = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?));
    let rows: Vec<(i64, i64)> = match depth {
        Some(d) => stmt
            .query_map(params![seed_json, d], row)?
            .collect::<rusqlite::Result<_>>()?,
        None => stmt
            .query_map(params![seed_json], row)?
            .collect::<rusqlite::Result<_>>()?,
    };
    for row in rows {
        let (k, id) = row;
        if k == 0 {
            avs.insert(id);
        } else {
            exs.insert(id);
        }
    }
    build_graph(conn, root, direction, depth, seed, avs, exs)
}

fn build_graph(
    conn: &Connection,
    root: String,
    direction: Direction,
    depth: Option<u32>,
    seed: &Seed,
    avs: BTreeSet<i64>,
    exs: BTreeSet<i64>,
) -> Result<Graph> {
    // io edges among the nodes found
    let av_list = id_list(avs.iter().copied());
    let ex_list = id_list(exs.iter().copied());
    let edges = io_edges_among(conn, &ex_list, &av_list)?;
    // per version: producers, reuses
    let producers = producer_counts(conn, &av_list)?;
    let candidates = gap_candidates(&avs, &producers, &edges);
    let gap_set = gaps(conn, &candidates)?;
    // executions, plus the originals that cached ones reused
    let mut execs_found = execs(conn, &exs.iter().copied().collect::<Vec<_>>())?;
    let reused: Vec<i64> = execs_found
        .values()
        .filter_map(|e| e.reused_exec)
        .filter(|r| !exs.contains(r))
        .collect();
    if !reused.is_empty() {
        execs_found.extend(execs(conn, &reused)?);
    }
    let mut run_ids: BTreeSet<String> = execs_found.values().map(|e| e.run_id.clone()).collect();
    if let Seed::Run(r) = seed {
        run_ids.insert(r.clone());
    }
    Ok(assemble(Parts {
        root,
        direction,
        depth,
        edges,
        producers,
        uncommitted: uncommitted(conn, &candidates)?,
        reasons: gap_reasons(conn, &gap_set.iter().copied().collect::<Vec<_>>())?,
        gaps: gap_set,
        versions: versions_by_id(conn, &avs)?,
        execs: execs_found,
        runs: runs_by_id(conn, &run_ids)?,
    }))
}

/// What a lineage graph is made of, as a backend read it (local row ids, or ids a remote
/// answer numbered): [`assemble`] makes the same graph of it whichever backend it came from.
pub struct Parts {
    pub root: String,
    pub direction: Direction,
    pub depth: Option<u32>,
    /// the `used` / `generated` edges among the versions and executions found
    pub edges: BTreeSet<GraphEdge>,
    /// per version: how many executions produced it, and how many of those reused a result
    pub producers: HashMap<i64, (usize, usize)>,
    /// versions read as tracked files with uncommitted edits
    pub uncommitted: HashSet<i64>,
    pub gaps: HashSet<i64>,
    /// why each gap is one, in words
    pub reasons: HashMap<i64, String>,
    /// the versions found, in the order shown (by path, then as recorded)
    pub versions: Vec<Version>,
    /// the executions found and the ones they reused
    pub execs: HashMap<i64, Exec>,
    /// the runs of those executions (and the target run), as `Node::Run`, by start
    pub runs: Vec<Node>,
}

/// The `used` edge of a version read by an execution, or the `generated` edge of a version
/// an execution wrote.
pub fn io_edge(
    exec: i64,
    input: bool,
    av: i64,
    origin: Option<String>,
    declared: bool,
) -> GraphEdge {
    if input {
        GraphEdge {
            from: av_node_id(av),
            to: exec_node_id(exec),
            kind: "used",
            origin,
            observed: !declared,
        }
    } else {
        GraphEdge {
            from: exec_node_id(exec),
            to: av_node_id(av),
            kind: "generated",
            origin: None,
            observed: !declared,
        }
    }
}

/// What the readers in a graph recorded about each version (`step`, `git`, `external`).
fn origins_of(edges: &BTreeSet<GraphEdge>) -> HashMap<i64, BTreeSet<String>> {
    let mut origins: HashMap<i64, BTreeSet<String>> = HashMap::new();
    for e in edges.iter().filter(|e| e.kind == "used") {
        if let (Some(av), Some(o)) = (
            e.from
                .strip_prefix("av:")
                .and_then(|a| a.parse::<i64>().ok()),
            &e.origin,
        ) {
            origins.entry(av).or_default().insert(o.clone());
        }
    }
    origins
}

/// The versions that may be gaps: only those with no producer and no tracked reading in the
/// graph need a closer look (readers elsewhere in the history may have seen them tracked or
/// with a recorded diff).
pub fn gap_candidates(
    avs: &BTreeSet<i64>,
    producers: &HashMap<i64, (usize, usize)>,
    edges: &BTreeSet<GraphEdge>,
) -> Vec<i64> {
    let origins = origins_of(edges);
    avs.iter()
        .copied()
        .filter(|av| {
            !producers.contains_key(av) && !origins.get(av).is_some_and(|o| o.contains("git"))
        })
        .collect()
}

/// The graph of what a backend read: nodes, and the edges between them.
pub fn assemble(p: Parts) -> Graph {
    let Parts {
        root,
        direction,
        depth,
        mut edges,
        producers,
        uncommitted,
        gaps,
        mut reasons,
        versions,
        execs: exec_map,
        runs,
    } = p;
    let origins = origins_of(&edges);
    for e in exec_map.values() {
        if let Some(r) = e.reused_exec {
            edges.insert(GraphEdge {
                from: exec_node_id(r),
                to: exec_node_id(e.exec_id),
                kind: "reused",
                origin: None,
                observed: false,
            });
        }
    }
    let mut nodes: Vec<Node> = Vec::new();
    for v in versions {
        let (n, r) = producers.get(&v.av_id).copied().unwrap_or((0, 0));
        let o: Vec<String> = origins
            .get(&v.av_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let modified = uncommitted.contains(&v.av_id);
        let gap = gaps.contains(&v.av_id);
        let gap_reason = gap.then(|| {
            reasons
                .remove(&v.av_id)
                .unwrap_or_else(|| GAP_REASON.to_string())
        });
        nodes.push(Node::ArtifactVersion {
            id: av_node_id(v.av_id),
            uncommitted: modified,
            version: v,
            producers: n,
            reused: r,
            origins: o,
            gap,
            gap_reason,
        });
    }
    let mut commits: BTreeSet<String> = BTreeSet::new();
    let mut ex_sorted: Vec<&Exec> = exec_map.values().collect();
    ex_sorted.sort_by_key(|e| (e.started_at.unwrap_or(i64::MAX), e.exec_id));
    for e in ex_sorted {
        edges.insert(GraphEdge {
            from: exec_node_id(e.exec_id),
            to: run_node_id(&e.run_id),
            kind: "part_of",
            origin: None,
            observed: false,
        });
        nodes.push(Node::StepExec {
            id: exec_node_id(e.exec_id),
            exec: e.clone(),
        });
    }
    for r in &runs {
        if let Node::Run {
            id,
            commit: Some(c),
            ..
        } = r
        {
            commits.insert(c.clone());
            edges.insert(GraphEdge {
                from: commit_node_id(c),
                to: id.clone(),
                kind: "checked_out",
                origin: None,
                observed: false,
            });
        }
    }
    // a version read as a tracked, unmodified file comes from the commit its reader ran at
    let committed: Vec<(i64, String)> = edges
        .iter()
        .filter(|e| e.kind == "used" && e.origin.as_deref() == Some("git"))
        .filter_map(|e| {
            let av: i64 = e.from.strip_prefix("av:")?.parse().ok()?;
            let ex: i64 = e.to.strip_prefix("exec:")?.parse().ok()?;
            let c = exec_map.get(&ex)?.commit.clone()?;
            Some((av, c))
        })
        .collect();
    for (av, c) in committed {
        commits.insert(c.clone());
        edges.insert(GraphEdge {
            from: commit_node_id(&c),
            to: av_node_id(av),
            kind: "committed",
            origin: None,
            observed: false,
        });
    }
    nodes.extend(runs);
    nodes.extend(commits.into_iter().map(|c| Node::Commit {
        id: commit_node_id(&c),
        sha: c,
    }));
    Graph {
        root,
        file: None,
        direction: direction.as_str(),
        depth,
        nodes,
        edges: edges.into_iter().collect(),
    }
}

pub(super) fn versions_by_id(conn: &Connection, ids: &BTreeSet<i64>) -> Result<Vec<Version>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {VERSION_COLS} FROM {VERSION_FROM}
         WHERE v.id IN (SELECT value FROM json_each(?1)) ORDER BY a.path, v.id"
    ))?;
    let rows = stmt
        .query_map([id_list(ids.iter().copied())], version_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(super) fn runs_by_id(conn: &Connection, ids: &BTreeSet<String>) -> Result<Vec<Node>> {
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let mut stmt = conn.prepare(
        "SELECT r.id, r.pipeline, r.status, r.started_at, r.ended_at, r.hostname, r.user,
                g.commit_sha, g.branch, COALESCE(g.dirty, 0)
         FROM runs r LEFT JOIN git_snapshots g ON g.id = r.git_start
         WHERE r.id IN (SELECT value FROM json_each(?1)) ORDER BY r.started_at, r.id",
    )?;
    let rows = stmt
        .query_map([list], |r| {
            let id: String = r.get(0)?;
            Ok(Node::Run {
                id: run_node_id(&id),
                short_id: String::new(),
                run_id: id,
                pipeline: r.get(1)?,
                status: r.get(2)?,
                started_at: r.get(3)?,
                ended_at: r.get(4)?,
                hostname: r.get(5)?,
                user: r.get(6)?,
                commit: r.get(7)?,
                branch: r.get(8)?,
                dirty: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<Node>>>()?;
    let mut rows = rows;
    for n in &mut rows {
        if let Node::Run {
            run_id, short_id, ..
        } = n
        {
            *short_id = crate::store::query::short_id(conn, run_id)?;
        }
    }
    Ok(rows)
}

/// The io edges among the executions and versions a walk found (`?1`, `?2`: JSON id lists).
fn io_edges_among(conn: &Connection, ex_list: &str, av_list: &str) -> Result<BTreeSet<GraphEdge>> {
    let mut edges = BTreeSet::new();
    let mut stmt = conn.prepare(
        // from the executions (few edges each), not the versions (a shared source file
        // has thousands of readers): CROSS JOIN keeps that order
        "SELECT e.step_exec, e.direction, e.av_id, e.origin, e.declared
             FROM json_each(?1) x CROSS JOIN io_edges e ON e.step_exec = x.value
             WHERE e.av_id IN (SELECT value FROM json_each(?2))",
    )?;
    let rows = stmt.query_map(params![ex_list, av_list], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, bool>(4)?,
        ))
    })?;
    for row in rows {
        let (e, dir, av, origin, declared) = row?;
        edges.insert(io_edge(e, dir == "in", av, origin, declared));
    }
    Ok(edges)
}

/// Per version: how many executions produced it, and how many of those were reuses.
fn producer_counts(conn: &Connection, av_list: &str) -> Result<HashMap<i64, (usize, usize)>> {
    let mut prod = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT o.av_id, COUNT(*), SUM(s.status IN ('cached', 'restored'))
             FROM io_edges o JOIN step_execs s ON s.id = o.step_exec
             WHERE o.direction = 'out' AND o.av_id IN (SELECT value FROM json_each(?1))
             GROUP BY o.av_id",
    )?;
    for row in stmt.query_map([&av_list], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })? {
        let (av, n, reused) = row?;
        prod.insert(av, (n as usize, reused as usize));
    }
    Ok(prod)
}

//! How a lineage graph looks: an indented tree for people, Graphviz dot and Mermaid for
//! drawings. Every format marks lineage gaps with the same words (the node's `gap_reason`), so a missing
//! record is never silent. Renderers only read the graph; they never query the store.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Role;
use crate::report::{self, Style, short_hash, time};
use crate::store::lineage::{Exec, GAP_NO_COPY, GAP_REASON, Graph, Node, Version};

fn size_note(v: &Version) -> String {
    if v.kind == "dir" {
        format!(
            "{} file{}, {}",
            v.nfiles,
            if v.nfiles == 1 { "" } else { "s" },
            report::size(v.size as u64)
        )
    } else {
        report::size(v.size as u64)
    }
}

fn display_path(v: &Version) -> String {
    if v.kind == "dir" {
        format!("{}/", v.path)
    } else {
        v.path.clone()
    }
}

fn short7(c: &str) -> &str {
    &c[..c.len().min(7)]
}

struct Ctx<'a> {
    g: &'a Graph,
    style: &'a Style,
    nodes: HashMap<&'a str, &'a Node>,
    /// node → children, in the direction of the walk
    children: HashMap<&'a str, Vec<&'a str>>,
    /// (version, execution) → origin of that `used` edge
    origin: HashMap<(&'a str, &'a str), &'a str>,
    /// (from, to) of edges seen by `--trace` but not declared
    observed: HashSet<(&'a str, &'a str)>,
    runs: HashMap<&'a str, &'a Node>,
    seen: HashSet<&'a str>,
    out: String,
}

impl<'a> Ctx<'a> {
    fn run_label(&self, run_id: &str) -> String {
        match self.runs.get(run_id) {
            Some(Node::Run {
                short_id, pipeline, ..
            }) => format!(
                "run {} {}",
                self.style.paint(Role::Accent, short_id),
                pipeline
            ),
            _ => format!("run {run_id}"),
        }
    }

    fn exec_line(&self, e: &Exec) -> String {
        let mut s = format!(
            "{}  {} · {}",
            self.style.paint(Role::Strong, &e.step),
            self.run_label(&e.run_id),
            self.style.status(&e.status)
        );
        if let Some(t) = e.started_at {
            s += &format!(" · {}", time::local(t));
        }
        if let Some(c) = &e.commit {
            s += &format!(" · commit {}{}", short7(c), if e.dirty { "+" } else { "" });
        }
        s
    }

    fn exec_details(&self, e: &Exec) -> Vec<String> {
        let mut d = Vec::new();
        if let Some(r) = e.reused_exec {
            let orig = self
                .nodes
                .get(crate::store::lineage::exec_node_id(r).as_str())
                .and_then(|n| match n {
                    Node::StepExec { exec, .. } => Some(self.run_label(&exec.run_id)),
                    _ => None,
                })
                .unwrap_or_else(|| format!("execution {r}"));
            d.push(format!("reused the execution of {orig}"));
        }
        if !e.params.is_empty() {
            let p = report::params_line(&e.params);
            d.push(format!("params  {}", p));
        }
        if !e.metrics.is_empty() {
            let m = report::metrics_line(&e.metrics);
            d.push(format!("metrics {}", m));
        }
        d
    }

    fn version_line(&self, id: &str, parent: Option<&str>) -> (String, Vec<String>) {
        let Some(Node::ArtifactVersion {
            version: v,
            producers,
            reused,
            gap,
            gap_reason,
            uncommitted,
            ..
        }) = self.nodes.get(id)
        else {
            return (id.to_string(), Vec::new());
        };
        let mut s = format!(
            "{}  {}  {}",
            self.style.paint(Role::Strong, &display_path(v)),
            self.style.paint(Role::Muted, short_hash(&v.hash)),
            size_note(v)
        );
        let origin = parent.and_then(|p| self.origin.get(&(id, p)).copied());
        let observed = parent
            .is_some_and(|p| self.observed.contains(&(id, p)) || self.observed.contains(&(p, id)));
        if observed {
            s += &format!(
                "  {}",
                self.style.paint(Role::Accent, "(observed, not declared)")
            );
        }
        if *gap {
            let why = gap_reason.as_deref().unwrap_or(GAP_REASON);
            s += &format!("  {}", self.style.paint(Role::Bad, &format!("⚠ {why}")));
        } else if *uncommitted && origin != Some("git") && *producers == 0 {
            s += &format!(
                " · {}",
                self.style.paint(
                    Role::Warn,
                    "tracked in git, with uncommitted edits (the run recorded the diff)"
                )
            );
        } else if origin == Some("git") {
            let commit = parent
                .and_then(|p| match self.nodes.get(p) {
                    Some(Node::StepExec { exec, .. }) => exec.commit.as_deref(),
                    _ => None,
                })
                .map(short7)
                .unwrap_or("?");
            s += &format!(
                " · {}",
                self.style
                    .paint(Role::Muted, &format!("tracked in git at {commit}"))
            );
        }
        let mut details = Vec::new();
        if *producers > 1 {
            let others = producers - 1;
            details.push(format!(
                "also produced by {others} other execution{}{}",
                if others == 1 { "" } else { "s" },
                if *reused > 0 {
                    format!(" ({reused} reusing a result)")
                } else {
                    String::new()
                }
            ));
        }
        (s, details)
    }

    fn label(&self, id: &str, parent: Option<&str>) -> (String, Vec<String>) {
        match self.nodes.get(id) {
            Some(Node::ArtifactVersion { .. }) => self.version_line(id, parent),
            Some(Node::StepExec { exec, .. }) => (self.exec_line(exec), self.exec_details(exec)),
            Some(Node::Run {
                short_id,
                pipeline,
                status,
                started_at,
                commit,
                dirty,
                ..
            }) => {
                let mut s = format!(
                    "{} {}  {} · {} · {}",
                    self.style.paint(Role::Strong, "run"),
                    self.style.paint(Role::Accent, short_id),
                    pipeline,
                    self.style.status(status),
                    time::local(*started_at)
                );
                if let Some(c) = commit {
                    s += &format!(" · commit {}{}", short7(c), if *dirty { "+" } else { "" });
                }
                (s, Vec::new())
            }
            Some(Node::Commit { sha, .. }) => (format!("commit {}", short7(sha)), Vec::new()),
            None => (id.to_string(), Vec::new()),
        }
    }

    /// Lines to add under a node whose walk was cut by `--depth`.
    fn frontier(&self, id: &str) -> Option<String> {
        let depth = self.g.depth?;
        match self.nodes.get(id) {
            Some(Node::ArtifactVersion { producers, .. })
                if self.g.direction == "upstream"
                    && *producers > 0
                    && self.children.get(id).is_none_or(|c| c.is_empty()) =>
            {
                Some(format!("… its producer is beyond --depth {depth}"))
            }
            _ => None,
        }
    }

    fn walk(&mut self, id: &'a str, parent: Option<&'a str>, prefix: &str, last: bool, top: bool) {
        let (branch, cont) = if top {
            ("", "")
        } else if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let child_prefix = format!("{prefix}{cont}");
        let (line, details) = self.label(id, parent);
        if self.seen.contains(id) && !matches!(self.nodes.get(id), Some(Node::Run { .. })) {
            let kids = self.children.get(id).is_some_and(|c| !c.is_empty());
            self.out += &format!(
                "{prefix}{branch}{line}{}\n",
                if kids {
                    self.style.paint(Role::Muted, "  (shown above)")
                } else {
                    String::new()
                }
            );
            return;
        }
        self.seen.insert(id);
        self.out += &format!("{prefix}{branch}{line}\n");
        let kids: Vec<&'a str> = self.children.get(id).cloned().unwrap_or_default();
        let bar = if kids.is_empty() { "    " } else { "│   " };
        for d in details {
            self.out += &format!("{child_prefix}{bar}{}\n", self.style.paint(Role::Muted, &d));
        }
        if let Some(f) = self.frontier(id) {
            self.out += &format!("{child_prefix}{bar}{}\n", self.style.paint(Role::Muted, &f));
        }
        let n = kids.len();
        for (i, k) in kids.into_iter().enumerate() {
            self.walk(k, Some(id), &child_prefix, i + 1 == n, false);
        }
    }
}

/// The indented tree people read in a terminal.
pub fn tree(g: &Graph, style: &Style) -> String {
    let nodes: HashMap<&str, &Node> = g.nodes.iter().map(|n| (n.id(), n)).collect();
    let runs: HashMap<&str, &Node> = g
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::Run { run_id, .. } => Some((run_id.as_str(), n)),
            _ => None,
        })
        .collect();
    let up = g.direction == "upstream";
    let Edges {
        mut children,
        origin,
        observed,
        run_execs,
    } = Edges::of(g, up);
    // stable order: executions by start time, versions by path
    let order = |id: &str| -> (i64, String) {
        match nodes.get(id) {
            Some(Node::StepExec { exec, .. }) => {
                (exec.started_at.unwrap_or(i64::MAX), exec.step.clone())
            }
            Some(Node::ArtifactVersion { version, .. }) => (0, version.path.clone()),
            _ => (0, id.to_string()),
        }
    };
    for kids in children.values_mut() {
        kids.sort_by_key(|k| order(k));
        kids.dedup();
    }
    if up {
        one_producer_each(g, &nodes, &mut children);
    }
    // a run's own tree starts at its last executions (upstream) or its first (downstream)
    if let Some(Node::Run { id, .. }) = nodes.get(g.root.as_str()) {
        let mut tops = run_tops(id, &run_execs, &children);
        tops.sort_by_key(|k| order(k));
        children.insert(id.as_str(), tops);
    }
    let mut ctx = Ctx {
        g,
        style,
        nodes,
        children,
        origin,
        observed,
        runs,
        seen: HashSet::new(),
        out: String::new(),
    };
    if let Some(m) = &g.file {
        // a file inside a recorded directory: its own version, then the directory's lineage
        ctx.out += &format!(
            "{}  {}  {} · {}\n",
            style.paint(Role::Strong, &m.path),
            style.paint(Role::Muted, short_hash(&m.hash)),
            report::size(m.size),
            style.paint(
                Role::Muted,
                &format!(
                    "a file of {}/ {}, made as below",
                    m.dir,
                    short_hash(&m.dir_hash)
                )
            )
        );
    }
    ctx.walk(&g.root, None, "", true, true);
    // executions of a run target that no path reached (independent steps)
    if let Some(Node::Run { id, .. }) = ctx.nodes.get(g.root.as_str()).copied() {
        let rest: Vec<&str> = run_execs
            .get(id.as_str())
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|e| !ctx.seen.contains(e))
                    .collect()
            })
            .unwrap_or_default();
        for e in rest {
            ctx.walk(e, None, "", true, false);
        }
    }
    if let Some(summary) = gap_summary(g) {
        ctx.out += &format!("\n{}\n", style.paint(Role::Bad, &summary));
    }
    ctx.out
}

/// The graph's edges, read for the walk.
struct Edges<'a> {
    /// node → children, in the direction of the walk
    children: HashMap<&'a str, Vec<&'a str>>,
    /// (version, execution) → origin of that `used` edge
    origin: HashMap<(&'a str, &'a str), &'a str>,
    /// (from, to) of edges seen by `--trace` but not declared
    observed: HashSet<(&'a str, &'a str)>,
    /// run → its executions
    run_execs: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Edges<'a> {
    fn of(g: &'a Graph, up: bool) -> Edges<'a> {
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut origin = HashMap::new();
        let mut observed = HashSet::new();
        let mut run_execs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for e in &g.edges {
            match (e.kind, up) {
                ("generated", true) | ("used", true) => {
                    children.entry(&e.to).or_default().push(&e.from);
                }
                ("generated", false) | ("used", false) => {
                    children.entry(&e.from).or_default().push(&e.to);
                }
                ("part_of", _) => run_execs.entry(&e.to).or_default().push(&e.from),
                _ => {}
            }
            if e.observed {
                observed.insert((e.from.as_str(), e.to.as_str()));
            }
            if e.kind == "used"
                && let Some(o) = &e.origin
            {
                origin.insert((e.from.as_str(), e.to.as_str()), o.as_str());
            }
        }
        Edges {
            children,
            origin,
            observed,
            run_execs,
        }
    }
}

/// Upstream, a version shows one producer: the root run's own, else the first real one.
fn one_producer_each<'a>(
    g: &Graph,
    nodes: &HashMap<&str, &'a Node>,
    children: &mut HashMap<&'a str, Vec<&'a str>>,
) {
    let root_run = match nodes.get(g.root.as_str()) {
        Some(Node::Run { run_id, .. }) => Some(run_id.as_str()),
        _ => None,
    };
    for (id, kids) in children.iter_mut() {
        if !id.starts_with("av:") || kids.len() < 2 {
            continue;
        }
        let rank = |k: &&&str| match nodes.get(**k) {
            Some(Node::StepExec { exec, .. }) => (
                Some(exec.run_id.as_str()) != root_run,
                exec.status != "succeeded",
                exec.started_at.unwrap_or(i64::MAX),
                exec.exec_id,
            ),
            _ => (true, true, i64::MAX, i64::MAX),
        };
        if let Some(best) = kids.iter().min_by_key(rank).copied() {
            *kids = vec![best];
        }
    }
}

/// The executions of run `id` that none of its others reach: where its own tree starts (all of
/// them when each is reached).
fn run_tops<'a>(
    id: &str,
    run_execs: &BTreeMap<&'a str, Vec<&'a str>>,
    children: &HashMap<&'a str, Vec<&'a str>>,
) -> Vec<&'a str> {
    let mine: HashSet<&str> = run_execs
        .get(id)
        .map(|v| v.iter().copied().collect())
        .unwrap_or_default();
    let reached: HashSet<&str> = mine
        .iter()
        .flat_map(|e| children.get(e).into_iter().flatten())
        .flat_map(|v| children.get(v).into_iter().flatten())
        .copied()
        .collect();
    let tops: Vec<&str> = mine
        .iter()
        .copied()
        .filter(|e| !reached.contains(e))
        .collect();
    if tops.is_empty() {
        mine.iter().copied().collect()
    } else {
        tops
    }
}

/// The gap reason of a version node (`GAP_REASON` when the graph has none for it).
fn reason_of(n: &Node) -> &str {
    match n {
        Node::ArtifactVersion {
            gap_reason: Some(r),
            ..
        } => r,
        _ => GAP_REASON,
    }
}

/// One line under a tree with gaps: how many, and how many of them a replay cannot restore.
fn gap_summary(g: &Graph) -> Option<String> {
    let gaps: Vec<&Node> = g
        .nodes
        .iter()
        .filter(|n| matches!(n, Node::ArtifactVersion { gap: true, .. }))
        .collect();
    if gaps.is_empty() {
        return None;
    }
    let n = gaps.len();
    let mut s = format!(
        "{n} lineage gap{} (marked ⚠ above): produced outside mlrun and not in git",
        if n == 1 { "" } else { "s" }
    );
    let no_copy = gaps.iter().filter(|v| reason_of(v) == GAP_NO_COPY).count();
    let unknown = gaps.iter().filter(|v| reason_of(v) == GAP_REASON).count();
    let stored = n - no_copy - unknown;
    let mut parts = Vec::new();
    if stored > 0 {
        parts.push(format!("{stored} with a stored copy"));
    }
    if no_copy > 0 {
        parts.push(format!(
            "{no_copy} with no stored copy, which a replay will need"
        ));
    }
    if unknown > 0 {
        parts.push(format!("{unknown} whose data version is unknown"));
    }
    s += &format!("; {}", parts.join(", "));
    Some(s)
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn version_label(v: &Version) -> String {
    format!(
        "{}\n{} · {}",
        display_path(v),
        short_hash(&v.hash),
        size_note(v)
    )
}

/// Graphviz dot: runs are clusters, data flows left to right, gaps are red.
pub fn dot(g: &Graph) -> String {
    let mut o = String::from(
        "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    let mut by_run: BTreeMap<&str, Vec<&Exec>> = BTreeMap::new();
    for n in &g.nodes {
        match n {
            Node::ArtifactVersion {
                id, version, gap, ..
            } => {
                let mut label = version_label(version);
                let mut attrs = String::from("shape=note");
                if *gap {
                    label += &format!("\n⚠ {}", reason_of(n));
                    attrs += ", color=red, fontcolor=red, penwidth=2";
                }
                o += &format!(
                    "  \"{}\" [{attrs}, label=\"{}\"];\n",
                    dot_escape(id),
                    dot_escape(&label)
                );
            }
            Node::StepExec { exec, .. } => by_run.entry(&exec.run_id).or_default().push(exec),
            Node::Commit { id, sha } => {
                o += &format!(
                    "  \"{}\" [shape=cylinder, label=\"commit {}\"];\n",
                    dot_escape(id),
                    short7(sha)
                );
            }
            Node::Run { .. } => {}
        }
    }
    for n in &g.nodes {
        if let Node::Run {
            run_id,
            short_id,
            pipeline,
            status,
            commit,
            dirty,
            ..
        } = n
        {
            o += &format!(
                "  subgraph \"cluster_{}\" {{\n    label=\"run {} · {} · {}{}\";\n    style=rounded;\n",
                dot_escape(run_id),
                dot_escape(short_id),
                dot_escape(pipeline),
                dot_escape(status),
                commit.as_deref().map_or_else(String::new, |c| format!(
                    " · commit {}{}",
                    short7(c),
                    if *dirty { "+" } else { "" }
                ))
            );
            for e in by_run.get(run_id.as_str()).into_iter().flatten() {
                o += &format!(
                    "    \"exec:{}\" [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3ff\", label=\"{}\\n{}\"];\n",
                    e.exec_id,
                    dot_escape(&e.step),
                    dot_escape(&e.status)
                );
            }
            o += "  }\n";
        }
    }
    for e in &g.edges {
        let style = match e.kind {
            "used" | "generated" if e.observed => {
                " [style=dashed, color=\"#2a7ab0\", label=\"observed\"]".into()
            }
            "used" | "generated" => String::new(),
            "committed" => " [style=dashed, label=\"committed\"]".into(),
            "reused" => " [style=dotted, label=\"reused\"]".into(),
            _ => continue, // part_of / checked_out are drawn as clusters and their labels
        };
        o += &format!(
            "  \"{}\" -> \"{}\"{style};\n",
            dot_escape(&e.from),
            dot_escape(&e.to)
        );
    }
    o += "}\n";
    o
}

fn mermaid_id(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;").replace('\n', "<br/>")
}

/// Mermaid flowchart: runs are subgraphs, gaps use the `gap` class.
pub fn mermaid(g: &Graph) -> String {
    let mut o = String::from("flowchart LR\n");
    let mut gaps = Vec::new();
    let mut by_run: BTreeMap<&str, Vec<&Exec>> = BTreeMap::new();
    for n in &g.nodes {
        match n {
            Node::ArtifactVersion {
                id, version, gap, ..
            } => {
                let mut label = version_label(version);
                if *gap {
                    label += &format!("\n⚠ {}", reason_of(n));
                    gaps.push(mermaid_id(id));
                }
                o += &format!("  {}[/\"{}\"/]\n", mermaid_id(id), mermaid_text(&label));
            }
            Node::StepExec { exec, .. } => by_run.entry(&exec.run_id).or_default().push(exec),
            Node::Commit { id, sha } => {
                o += &format!("  {}[(\"commit {}\")]\n", mermaid_id(id), short7(sha));
            }
            Node::Run { .. } => {}
        }
    }
    for n in &g.nodes {
        if let Node::Run {
            id,
            short_id,
            pipeline,
            status,
            ..
        } = n
        {
            o += &format!(
                "  subgraph {}[\"run {} · {} · {}\"]\n",
                mermaid_id(id),
                mermaid_text(short_id),
                mermaid_text(pipeline),
                mermaid_text(status)
            );
            if let Node::Run { run_id, .. } = n {
                for e in by_run.get(run_id.as_str()).into_iter().flatten() {
                    o += &format!(
                        "    exec_{}(\"{}<br/>{}\")\n",
                        e.exec_id,
                        mermaid_text(&e.step),
                        mermaid_text(&e.status)
                    );
                }
            }
            o += "  end\n";
        }
    }
    for e in &g.edges {
        let arrow = match e.kind {
            "used" | "generated" if e.observed => "-.->|observed|",
            "used" | "generated" => "-->",
            "committed" => "-.->|committed|",
            "reused" => "-.->|reused|",
            _ => continue,
        };
        o += &format!("  {} {arrow} {}\n", mermaid_id(&e.from), mermaid_id(&e.to));
    }
    if !gaps.is_empty() {
        o += "  classDef gap fill:#fdd,stroke:#c00,color:#900;\n";
        o += &format!("  class {} gap;\n", gaps.join(","));
    }
    o
}

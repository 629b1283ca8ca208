//! The lineage graph as SVG: data, steps, code (commits) and params as distinct node kinds,
//! laid out left to right by `layout::layered`. Executions that reused an earlier one (cached,
//! restored) are collapsed into the execution they reused; lineage gaps are marked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use super::html::{esc, url};
use super::layout;
use crate::store::lineage::{Exec, Graph, Node, Version};

const W: f64 = 210.0;
const H: f64 = 46.0;
const GAP_X: f64 = 70.0;
const GAP_Y: f64 = 16.0;
const PAD: f64 = 12.0;

/// One box to draw.
#[derive(Debug, Clone)]
pub struct Box {
    pub kind: &'static str,
    pub label: String,
    pub sub: String,
    /// the tooltip: everything the box abbreviates
    pub title: String,
    pub href: Option<String>,
    pub gap: bool,
    pub root: bool,
}

/// The boxes and edges drawn for `g` (ids are indices into the first vector).
pub fn boxes(g: &Graph) -> (Vec<Box>, Vec<(usize, usize, &'static str)>) {
    // collapse reuses: a cached/restored execution is drawn as the execution it reused
    let mut alias: HashMap<&str, &str> = HashMap::new();
    let mut reuses: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &g.edges {
        if e.kind == "reused" {
            alias.insert(e.to.as_str(), e.from.as_str());
            *reuses.entry(e.from.as_str()).or_default() += 1;
        }
    }
    let canon = |id: &str| -> String {
        let mut cur = id;
        for _ in 0..16 {
            match alias.get(cur) {
                Some(next) => cur = next,
                None => break,
            }
        }
        cur.to_string()
    };
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Box> = Vec::new();
    let mut edges: BTreeSet<(usize, usize, &'static str)> = BTreeSet::new();
    let root = canon(&g.root);
    for n in &g.nodes {
        let id = n.id();
        if alias.contains_key(id) {
            continue;
        }
        let b = match n {
            Node::ArtifactVersion {
                version,
                gap,
                gap_reason,
                uncommitted,
                ..
            } => data_box(version, *gap, gap_reason.as_deref(), *uncommitted),
            Node::StepExec { exec, .. } => step_box(exec, reuses.get(id).copied()),
            Node::Commit { sha, .. } => Box {
                kind: "code",
                label: format!("commit {}", &sha[..sha.len().min(10)]),
                sub: "code".into(),
                title: format!("git commit {sha}"),
                href: None,
                gap: false,
                root: false,
            },
            // runs are not drawn: each step names its run and links to it
            Node::Run { .. } => continue,
        };
        index.insert(id.to_string(), out.len());
        out.push(b);
        // params: a node of their own beside the step that used them
        if let Node::StepExec { exec, .. } = n
            && let Some(p) = params_box(exec)
        {
            let step = out.len() - 1;
            out.push(p);
            edges.insert((out.len() - 1, step, "params"));
        }
    }
    if let Some(&r) = index.get(&root) {
        out[r].root = true;
    }
    for e in &g.edges {
        if e.kind == "reused" || e.kind == "part_of" || e.kind == "checked_out" {
            continue;
        }
        let (a, b) = (canon(&e.from), canon(&e.to));
        if let (Some(&a), Some(&b)) = (index.get(&a), index.get(&b))
            && a != b
        {
            edges.insert((a, b, e.kind));
        }
    }
    (out, edges.into_iter().collect())
}

/// An artifact version: its path, short hash (and files), whether it is a gap.
fn data_box(version: &Version, gap: bool, gap_reason: Option<&str>, uncommitted: bool) -> Box {
    let short = &version.hash[..version.hash.len().min(10)];
    let mut sub = if version.kind == "dir" {
        format!("{short} · {} files", version.nfiles)
    } else {
        short.to_string()
    };
    if uncommitted {
        sub.push_str(" · uncommitted edits");
    }
    if gap {
        sub = format!("gap · {short}");
    }
    let mut title = format!("{}\nsha256 {}", version.path, version.hash);
    if let Some(r) = gap_reason {
        let _ = write!(title, "\nlineage gap: {r}");
    }
    Box {
        kind: "data",
        label: version.path.clone(),
        sub,
        title,
        href: Some(format!(
            "/artifact?path={}&hash={}",
            url(&version.path),
            url(&version.hash)
        )),
        gap,
        root: false,
    }
}

/// A step execution: its name, status and run, how many times it was reused.
fn step_box(exec: &Exec, reused: Option<usize>) -> Box {
    let run = &exec.run_id[..exec.run_id.len().min(8)];
    let mut sub = format!("{} · run {run}", exec.status);
    if let Some(n) = reused {
        let _ = write!(sub, " · reused {n}×");
    }
    Box {
        kind: "step",
        label: exec.step.clone(),
        sub,
        title: format!("step {}\nrun {}\n$ {}", exec.step, exec.run_id, exec.cmd),
        href: Some(format!(
            "/run/{}#step-{}",
            url(&exec.run_id),
            url(&exec.step)
        )),
        gap: false,
        root: false,
    }
}

/// The params a step used, when it used any: the first, and how many more.
fn params_box(exec: &Exec) -> Option<Box> {
    if exec.params.is_empty() {
        return None;
    }
    let lines: Vec<String> = exec
        .params
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::pipeline::params::render(v)))
        .collect();
    Some(Box {
        kind: "params",
        label: lines.first().cloned().unwrap_or_default(),
        sub: if lines.len() > 1 {
            format!("+{} more params", lines.len() - 1)
        } else {
            "params".into()
        },
        title: lines.join("\n"),
        href: None,
        gap: false,
        root: false,
    })
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// The SVG of `g`, every text escaped.
pub fn svg(g: &Graph) -> String {
    let (nodes, edges) = boxes(g);
    let pairs: Vec<(usize, usize)> = edges.iter().map(|&(a, b, _)| (a, b)).collect();
    let l = layout::layered(nodes.len(), &pairs);
    let tallest = l.layers.iter().map(Vec::len).max().unwrap_or(0);
    let height = PAD * 2.0 + tallest as f64 * (H + GAP_Y) - GAP_Y;
    let width = PAD * 2.0 + l.layers.len() as f64 * (W + GAP_X) - GAP_X;
    let pos = |v: usize| -> (f64, f64) {
        let n = l.layers[l.layer[v]].len() as f64;
        let top = (height - (n * (H + GAP_Y) - GAP_Y)) / 2.0;
        (
            PAD + l.layer[v] as f64 * (W + GAP_X),
            top + l.rank[v] as f64 * (H + GAP_Y),
        )
    };
    let mut s = String::with_capacity(nodes.len() * 400);
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dag\" role=\"img\" aria-label=\"lineage graph, {} nodes\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">",
        nodes.len()
    );
    s.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" class=\"arrowhead\"/></marker></defs>");
    for &(a, b, kind) in &edges {
        let (ax, ay) = pos(a);
        let (bx, by) = pos(b);
        let (x1, y1, x2, y2) = (ax + W, ay + H / 2.0, bx, by + H / 2.0);
        let mid = (x1 + x2) / 2.0;
        let _ = write!(
            s,
            "<path class=\"edge e-{kind}\" d=\"M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}\" marker-end=\"url(#arrow)\"/>"
        );
    }
    for (i, n) in nodes.iter().enumerate() {
        let (x, y) = pos(i);
        let mut class = format!("node n-{}", n.kind);
        if n.gap {
            class.push_str(" gap");
        }
        if n.root {
            class.push_str(" root");
        }
        if let Some(h) = &n.href {
            let _ = write!(s, "<a href=\"{}\">", esc(h));
        }
        let _ = write!(
            s,
            "<g class=\"{class}\" data-kind=\"{}\"><title>{}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{W}\" height=\"{H}\" rx=\"6\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"label\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" class=\"sub\">{}</text></g>",
            n.kind,
            esc(&n.title),
            x + 10.0,
            y + 19.0,
            esc(&clip(&n.label, 27)),
            x + 10.0,
            y + 36.0,
            esc(&clip(&n.sub, 32)),
        );
        if n.href.is_some() {
            s.push_str("</a>");
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_the_end_of_long_paths() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("data/very/long/path/model.pkl", 12), "…h/model.pkl");
    }

    #[test]
    fn an_empty_graph_is_a_valid_svg() {
        let g = Graph {
            root: "av:1".into(),
            file: None,
            direction: "up",
            depth: None,
            nodes: vec![],
            edges: vec![],
        };
        let s = svg(&g);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
    }
}

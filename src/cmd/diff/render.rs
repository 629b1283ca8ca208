//! A diff as people read it: one block per section, collapsed to one line when nothing changed.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;
use crate::pipeline::params;
use crate::report::Role;
use crate::report::{self, Style, short_hash, time};

pub(super) fn head(style: &Style, name: &str, summary: &str) -> String {
    format!(
        "{}  {summary}\n",
        style.paint(Role::Strong, &format!("{name:<11}"))
    )
}

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(super) fn value(v: &Option<Value>) -> String {
    v.as_ref().map_or_else(|| "(unset)".into(), params::render)
}

pub(super) fn brief_text(v: &Option<VersionBrief>) -> String {
    match v {
        None => "(none)".into(),
        Some(v) if v.kind == "dir" => format!(
            "{} ({}, {})",
            short_hash(&v.hash),
            plural(v.nfiles as usize, "file", "files"),
            report::size(v.size as u64)
        ),
        Some(v) => format!("{} ({})", short_hash(&v.hash), report::size(v.size as u64)),
    }
}

pub(super) fn signed(v: f64) -> String {
    if v > 0.0 {
        format!("+{}", report::metric(v))
    } else {
        report::metric(v)
    }
}

/// The package lines of the environment section: a count by kind, then one line each.
pub(super) fn packages_text(e: &EnvDiff, style: &Style) -> String {
    let mut o = String::new();
    if let Some(n) = &e.packages_note {
        o += &format!(
            "  {}\n",
            style.paint(Role::Muted, &format!("packages: {n}"))
        );
    }
    if e.packages.is_empty() {
        return o;
    }
    let count = |s: &str| e.packages.iter().filter(|p| p.status == s).count();
    o += &format!(
        "  packages  {} changed, {} added, {} removed, {} unchanged\n",
        count("changed"),
        count("added"),
        count("removed"),
        e.packages_unchanged
    );
    let w = e.packages.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "(none)".into());
    for p in &e.packages {
        let mark = match p.status {
            "added" => style.paint(Role::Good, "+"),
            "removed" => style.paint(Role::Bad, "-"),
            _ => style.paint(Role::Warn, "~"),
        };
        let text = match p.status {
            "added" => v(&p.b),
            "removed" => v(&p.a),
            _ => format!("{} → {}", v(&p.a), v(&p.b)),
        };
        o += &format!("    {mark} {:<w$}  {text}\n", p.name);
    }
    o
}

pub fn render(d: &RunDiff, style: &Style) -> String {
    let mut o = header(d, style);
    o += &params_text(d, style);
    o += &metrics_text(d, style);
    o += &data_text(d, style);
    o += &code_text(d, style);
    o += &environment_text(d, style);
    o += &steps_text(d, style);
    o += &patches_text(d, style);
    o
}

/// The first lines: which two runs, and notes when they are of different pipelines or the same.
fn header(d: &RunDiff, style: &Style) -> String {
    let side_line = |s: &Side| {
        format!(
            "run {} ({}, {}{})",
            style.paint(Role::Accent, &s.short_id),
            s.pipeline,
            time::local(s.started_at),
            s.via
                .as_ref()
                .map_or_else(String::new, |v| format!(", made {v}"))
        )
    };
    let mut o = format!(
        "{} {} → {}\n",
        style.paint(Role::Strong, "diff"),
        side_line(&d.a),
        side_line(&d.b)
    );
    if !d.same_pipeline {
        o += &format!(
            "{}\n",
            style.paint(Role::Warn, &format!(
                "note: these runs are of different pipelines (`{}` and `{}`); steps and params are compared by name",
                d.a.pipeline, d.b.pipeline
            ))
        );
    }
    if d.a.id == d.b.id {
        o += &format!(
            "{}\n",
            style.paint(Role::Warn, "note: both sides are the same run")
        );
    }
    o += "\n";
    o
}

/// Params: the changed ones with both values, else one line.
fn params_text(d: &RunDiff, style: &Style) -> String {
    let mut o = String::new();
    // params
    let p = &d.params;
    if p.changed.is_empty() {
        o += &head(
            style,
            "params",
            &format!("unchanged ({})", plural(p.unchanged, "param", "params")),
        );
    } else {
        o += &head(
            style,
            "params",
            &format!("{} changed, {} unchanged", p.changed.len(), p.unchanged),
        );
        let w = p.changed.iter().map(|c| c.key.len()).max().unwrap_or(0);
        for c in &p.changed {
            o += &format!(
                "  {:<w$}  {} → {}\n",
                c.key,
                style.paint(Role::Bad, &value(&c.a)),
                style.paint(Role::Good, &value(&c.b))
            );
        }
    }
    o
}

/// Metrics: the changed ones with both values and the change, else one line.
fn metrics_text(d: &RunDiff, style: &Style) -> String {
    let mut o = String::new();
    // metrics
    let m = &d.metrics;
    if m.changed.is_empty() {
        o += &head(
            style,
            "metrics",
            &format!("unchanged ({})", plural(m.unchanged, "metric", "metrics")),
        );
    } else {
        o += &head(
            style,
            "metrics",
            &format!("{} changed, {} unchanged", m.changed.len(), m.unchanged),
        );
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING);
        t.set_header(["  STEP", "METRIC", "A", "B", "Δ", "%"]);
        for c in &m.changed {
            // values that differ further than people's rounding are shown in full
            let full =
                c.a.zip(c.b)
                    .is_some_and(|(a, b)| report::metric(a) == report::metric(b));
            let f = |v: Option<f64>| {
                v.map_or_else(
                    || "-".into(),
                    |v| {
                        if full {
                            crate::fingerprint::metrics::to_json(v).to_string()
                        } else {
                            report::metric(v)
                        }
                    },
                )
            };
            t.add_row([
                format!("  {}", c.step),
                c.key.clone(),
                f(c.a),
                f(c.b),
                c.delta.map_or_else(|| "-".into(), signed),
                c.pct.map_or_else(|| "-".into(), |p| format!("{p:+.1}%")),
            ]);
        }
        o += &format!("{}\n", t.trim_fmt());
    }
    o
}

/// Data: the versions that differ per path, else one line; paths whose versions are the same.
fn data_text(d: &RunDiff, style: &Style) -> String {
    let mut o = String::new();
    // data
    let dd = &d.data;
    if dd.changed.is_empty() {
        o += &head(
            style,
            "data",
            &format!("unchanged ({})", plural(dd.unchanged, "path", "paths")),
        );
    } else {
        let inputs = dd.changed.iter().filter(|c| c.role == "input").count();
        let outputs = dd.changed.len() - inputs;
        o += &head(
            style,
            "data",
            &format!(
                "{} and {} changed, {} unchanged",
                plural(inputs, "input", "inputs"),
                plural(outputs, "output", "outputs"),
                dd.unchanged
            ),
        );
        for c in &dd.changed {
            let mark = match c.status {
                "added" => style.paint(Role::Good, "+"),
                "removed" => style.paint(Role::Bad, "-"),
                _ => style.paint(Role::Warn, "~"),
            };
            let dir =
                c.a.as_ref()
                    .or(c.b.as_ref())
                    .is_some_and(|v| v.kind == "dir");
            o += &format!(
                "  {mark} {}{}  {}  {} → {}\n",
                c.path,
                if dir { "/" } else { "" },
                style.paint(Role::Muted, c.role),
                brief_text(&c.a),
                brief_text(&c.b)
            );
            if let Some(f) = &c.files {
                if !f.added.is_empty() {
                    o += &format!("      added    {}\n", report::first_of(&f.added, 8, ""));
                }
                if !f.removed.is_empty() {
                    o += &format!("      removed  {}\n", report::first_of(&f.removed, 8, ""));
                }
                if !f.changed.is_empty() {
                    o += &format!("      changed  {}\n", report::first_of(&f.changed, 8, ""));
                }
            }
        }
    }
    for p in dd.unchanged_paths.iter().flatten() {
        let dir = p.version.kind == "dir";
        o += &format!(
            "  {} {}{}  {}  {}\n",
            style.paint(Role::Muted, "="),
            p.path,
            if dir { "/" } else { "" },
            style.paint(Role::Muted, p.role),
            brief_text(&Some(p.version.clone()))
        );
        match &p.files {
            Some(files) => {
                let w = files.iter().map(|f| f.path.len()).max().unwrap_or(0);
                for f in files {
                    o += &format!(
                        "      {:<w$}  {}  {}\n",
                        f.path,
                        short_hash(&f.hash),
                        report::size(f.size)
                    );
                }
            }
            None if dir => {
                o += &format!(
                    "      {}\n",
                    style.paint(
                        Role::Muted,
                        "(its file list is missing from the store: run `mlrun fsck`)"
                    )
                );
            }
            None => {}
        }
    }
    o
}

/// Code: commits and uncommitted changes, and the files git lists between the commits.
fn code_text(d: &RunDiff, style: &Style) -> String {
    let mut o = String::new();
    // code
    let c = &d.code;
    let dirty_same = c.a_dirty == c.b_dirty && c.same_uncommitted_diff;
    if c.same_commit && dirty_same {
        let state = if c.a_dirty.is_empty() {
            "clean in both".to_string()
        } else {
            format!(
                "the same uncommitted changes in both: {}",
                report::first_of(&c.a_dirty, 5, "")
            )
        };
        o += &head(
            style,
            "code",
            &format!("unchanged (commit {}, {state})", short(&c.a_commit)),
        );
    } else {
        let mut summary = if c.same_commit {
            format!("same commit {}", short(&c.a_commit))
        } else {
            format!("{}..{}", short(&c.a_commit), short(&c.b_commit))
        };
        if let Some(n) = c.commits_between {
            summary += &format!(" ({})", plural(n, "commit", "commits"));
        }
        if let Some(files) = &c.files {
            summary += &format!(", {} changed", plural(files.len(), "file", "files"));
        }
        o += &head(style, "code", &summary);
        if let Some(n) = &c.note {
            o += &format!("  {}\n", style.paint(Role::Muted, n));
        }
        for f in c.files.iter().flatten() {
            let mark = match f.status.as_str() {
                "added" => style.paint(Role::Good, "+"),
                "deleted" => style.paint(Role::Bad, "-"),
                _ => style.paint(Role::Warn, "~"),
            };
            o += &format!(
                "  {mark} {}  {}\n",
                f.path,
                style.paint(Role::Muted, &f.status)
            );
        }
        if !dirty_same {
            let dirty = |l: &[String]| {
                if l.is_empty() {
                    "clean".to_string()
                } else {
                    report::first_of(l, 8, "")
                }
            };
            o += &format!("  uncommitted in A: {}\n", dirty(&c.a_dirty));
            o += &format!("  uncommitted in B: {}\n", dirty(&c.b_dirty));
            if c.a_dirty == c.b_dirty {
                o += "  (same files, different changes)\n";
            }
        }
    }
    o
}

/// Environment: variables, interpreters and packages that differ.
fn environment_text(d: &RunDiff, style: &Style) -> String {
    let mut o = String::new();
    // environment
    let e = &d.environment;
    if e.unchanged {
        o += &head(style, "environment", "unchanged");
    } else {
        o += &head(
            style,
            "environment",
            &format!(
                "{} changed",
                plural(
                    e.changed.len() + e.env_vars.len() + e.packages.len(),
                    "item",
                    "items"
                )
            ),
        );
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        for c in &e.changed {
            o += &format!("  {}  {} → {}\n", c.key, show(&c.a), show(&c.b));
        }
        for c in &e.env_vars {
            let (mark, text) = match (&c.a, &c.b) {
                (None, Some(v)) => (style.paint(Role::Good, "+"), format!("{}={v}", c.key)),
                (Some(v), None) => (style.paint(Role::Bad, "-"), format!("{}={v}", c.key)),
                (a, b) => (
                    style.paint(Role::Warn, "~"),
                    format!("{}: {} → {}", c.key, show(a), show(b)),
                ),
            };
            o += &format!("  {mark} env {text}\n");
        }
        o += &packages_text(e, style);
    }
    o
}

/// Steps: commands, outcomes and outputs that differ, then how each ran.
fn steps_text(d: &RunDiff, style: &Style) -> String {
    let mut o = String::new();
    // steps
    let s = &d.steps;
    if s.commands.is_empty() && s.status.is_empty() && s.made.is_empty() {
        o += &head(
            style,
            "steps",
            &format!(
                "unchanged ({}, same commands{})",
                plural(s.unchanged, "step", "steps"),
                if s.ran.is_empty() {
                    ""
                } else {
                    ", same outputs"
                }
            ),
        );
    } else {
        o += &head(
            style,
            "steps",
            &format!(
                "{} differ, {} unchanged",
                s.commands
                    .iter()
                    .chain(&s.status)
                    .chain(&s.made)
                    .map(|c| &c.key)
                    .collect::<BTreeSet<_>>()
                    .len(),
                s.unchanged
            ),
        );
        for c in &s.commands {
            match (&c.a, &c.b) {
                (Some(x), Some(y)) => {
                    o += &format!("  {}  command\n", c.key);
                    o += &format!("    {} {x}\n", style.paint(Role::Bad, "-"));
                    o += &format!("    {} {y}\n", style.paint(Role::Good, "+"));
                }
                (None, Some(y)) => o += &format!("  {} only in B: {y}\n", c.key),
                (Some(x), None) => o += &format!("  {} only in A: {x}\n", c.key),
                _ => {}
            }
        }
        for c in &s.status {
            o += &format!(
                "  {}  {} → {}\n",
                c.key,
                style.status(c.a.as_deref().unwrap_or("-")),
                style.status(c.b.as_deref().unwrap_or("-"))
            );
        }
        for c in &s.made {
            o += &format!("  {}  made other outputs\n", c.key);
            if let Some(x) = &c.a {
                o += &format!("    {} {x}\n", style.paint(Role::Bad, "-"));
            }
            if let Some(y) = &c.b {
                o += &format!("    {} {y}\n", style.paint(Role::Good, "+"));
            }
        }
    }
    // how each ran, apart from what it made
    for c in &s.ran {
        o += &format!(
            "  {}  {} in A, {} in B {}\n",
            c.key,
            style.status(c.a.as_deref().unwrap_or("-")),
            style.status(c.b.as_deref().unwrap_or("-")),
            style.paint(Role::Muted, "(how it ran; not a difference)")
        );
    }

    for c in &s.where_ran {
        o += &format!(
            "  {}  ran: {} in A, {} in B\n",
            c.key,
            c.a.as_deref().unwrap_or("-"),
            c.b.as_deref().unwrap_or("-"),
        );
    }
    o
}

/// The patch between the commits and the uncommitted diffs, when asked for.
fn patches_text(d: &RunDiff, style: &Style) -> String {
    let mut o = String::new();
    let c = &d.code;
    if let Some(p) = &c.patch {
        o += &format!(
            "\n{}\n{p}",
            style.paint(
                Role::Strong,
                &format!(
                    "changes between commits {}..{}:",
                    short(&c.a_commit),
                    short(&c.b_commit)
                )
            )
        );
    }
    for (name, diff) in [("A", &c.a_uncommitted_diff), ("B", &c.b_uncommitted_diff)] {
        if let Some(text) = diff {
            o += &format!(
                "\n{}\n{text}",
                style.paint(
                    Role::Strong,
                    &format!("uncommitted changes recorded at the start of {name}:")
                )
            );
        }
    }
    o
}

/// A commit as the code section shows it: its first 7 digits, or `-`.
fn short(s: &Option<String>) -> String {
    s.as_deref()
        .map_or_else(|| "-".into(), |c| c[..c.len().min(7)].to_string())
}

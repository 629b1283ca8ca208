//! The card of an artifact version (or of a file inside one): where it came from, what used it.

use super::*;
use crate::report::Role;
use crate::report::{self, Style, short_hash, time};
use crate::store::lineage::{Card, GAP_REASON, Member};

pub(super) fn version_size(kind: &str, size: i64, nfiles: i64) -> String {
    if kind == "dir" {
        format!(
            "{nfiles} file{}, {}",
            if nfiles == 1 { "" } else { "s" },
            report::size(size as u64)
        )
    } else {
        report::size(size as u64)
    }
}

/// The model card of one artifact version.
pub fn render_card(c: &Card, style: &Style) -> String {
    let v = &c.version;
    let slash = if v.kind == "dir" { "/" } else { "" };
    let mut o = format!(
        "{} {}{slash}  {}  {}\n",
        style.paint(Role::Strong, "artifact"),
        style.paint(Role::Strong, &v.path),
        style.paint(Role::Accent, short_hash(&v.hash)),
        version_size(&v.kind, v.size, v.nfiles)
    );
    o += &format!("  content   {}\n", v.hash);
    o + &card_body(c, style)
}

/// The card of a file inside a directory version: its own hash and size, then what made the
/// directory version holding it (the file was produced with it).
pub fn render_file_card(c: &Card, m: &Member, style: &Style) -> String {
    let v = &c.version;
    let mut o = format!(
        "{} {}  {}  {}\n",
        style.paint(Role::Strong, "artifact"),
        style.paint(Role::Strong, &m.path),
        style.paint(Role::Accent, short_hash(&m.hash)),
        report::size(m.size)
    );
    o += &format!("  content   {}\n", m.hash);
    o += &format!(
        "  part of   {}/  {}  {} {}\n",
        v.path,
        style.paint(Role::Accent, short_hash(&v.hash)),
        version_size(&v.kind, v.size, v.nfiles),
        style.paint(
            Role::Muted,
            &format!("(`mlrun show {}/ --files` lists them)", v.path)
        )
    );
    o + &card_body(c, style)
}

/// Everything of a card below its first lines: producer, inputs, readers, versions.
pub(super) fn card_body(c: &Card, style: &Style) -> String {
    let mut o = String::new();
    if !c.stored {
        o += &format!(
            "  bytes     {}\n",
            if c.in_git {
                style.paint(
                    Role::Muted,
                    "not in the object store: git has them at the recorded commit",
                )
            } else {
                style.paint(Role::Warn, "not stored: this version cannot be restored (removed by `mlrun gc`, or kept with `store = false` / `--no-store`)")
            }
        );
    }
    o += &origin_text(c, style);
    o += &inputs_and_users_text(c, style);
    o += &versions_text(c, style);
    o
}

/// Where the version came from: the execution and run that produced it, or why none did.
fn origin_text(c: &Card, style: &Style) -> String {
    let mut o = String::new();
    match (&c.produced_by, &c.run) {
        (Some(e), Some(r)) => {
            o += &format!(
                "  made by   step `{}` of run {} ({}) · {}\n",
                e.step,
                style.paint(Role::Accent, &r.short_id),
                r.pipeline,
                style.status(&e.status)
            );
            let when = e.started_at.map_or_else(|| "-".into(), time::local);
            let took = e
                .started_at
                .zip(e.ended_at)
                .map_or_else(String::new, |(s, t)| {
                    format!(" · took {}", report::duration_ms(t - s))
                });
            o += &format!("  when      {when}{took}\n");
            let mut host = format!("{}@{}", r.user, r.hostname);
            if let Some(env) = &c.environment {
                host += &format!(
                    " · {} {} · kernel {} · {}",
                    env.os, env.os_version, env.kernel, env.arch
                );
            }
            o += &format!("  host      {host}\n");
            if let Some(g) = &c.git {
                o += &format!("  commit    {}\n", git_line(g));
            }
            o += &format!("  command   {}\n", e.cmd);
            if let Some(env) = &c.environment {
                for (prog, p) in &env.packages {
                    o += &format!("  packages  {prog}: {}\n", package_summary(p));
                }
            }
            if !e.params.is_empty() {
                let p = report::params_line(&e.params);
                o += &format!("  params    {}\n", p);
            }
            if !e.metrics.is_empty() {
                let m = report::metrics_line(&e.metrics);
                o += &format!("  metrics   {}\n", m);
            }
        }
        _ if c.gap => {
            let why = c.gap_reason.as_deref().unwrap_or(GAP_REASON);
            o += &format!(
                "  made by   {}\n",
                style.paint(Role::Bad, &format!("⚠ {why}"))
            );
        }
        _ => {
            o += "  made by   no step: a file tracked in git, read as it was committed\n";
        }
    }
    o
}

/// What it was made from, what used it, and the other executions that produced it too.
fn inputs_and_users_text(c: &Card, style: &Style) -> String {
    let mut o = String::new();
    if !c.inputs.is_empty() {
        o += &format!("\n{}\n", style.paint(Role::Strong, "made from"));
        let w = c
            .inputs
            .iter()
            .map(|i| i.version.path.len() + usize::from(i.version.kind == "dir"))
            .max()
            .unwrap_or(0);
        for i in &c.inputs {
            let iv = &i.version;
            let p = format!("{}{}", iv.path, if iv.kind == "dir" { "/" } else { "" });
            let whence = match (&i.produced_by, i.origin.as_deref()) {
                (Some(p), _) => format!(
                    "made by `{}` in run {}",
                    p.step,
                    style.paint(Role::Accent, &p.short_id)
                ),
                (None, Some("git")) => "tracked in git at the commit above".into(),
                (None, _) if i.uncommitted => {
                    "tracked in git, with uncommitted edits (diff recorded)".into()
                }
                _ if i.gap => style.paint(
                    Role::Bad,
                    &format!("⚠ {}", i.gap_reason.as_deref().unwrap_or(GAP_REASON)),
                ),
                _ => "no recorded producer".into(),
            };
            o += &format!(
                "  {p:<w$}  {}  {:>16}  {whence}\n",
                style.paint(Role::Muted, short_hash(&iv.hash)),
                version_size(&iv.kind, iv.size, iv.nfiles)
            );
        }
    }
    if !c.used_by.is_empty() {
        o += &format!(
            "\n{}\n",
            style.paint(
                Role::Strong,
                &if c.used_by_total > c.used_by.len() {
                    format!(
                        "used by (newest {} of {})",
                        c.used_by.len(),
                        c.used_by_total
                    )
                } else {
                    "used by".to_string()
                }
            )
        );
        for u in &c.used_by {
            let e = &u.exec;
            let m = report::metrics_line(&e.metrics);
            o += &format!(
                "  `{}` in run {} · {}{}\n",
                e.step,
                style.paint(Role::Accent, &u.short_id),
                style.status(&e.status),
                if m.is_empty() {
                    String::new()
                } else {
                    format!(" · {}", m)
                }
            );
        }
    }
    if !c.also_produced_by.is_empty() {
        o += &format!(
            "\n{}\n",
            style.paint(Role::Strong, "same content also made by")
        );
        for p in &c.also_produced_by {
            o += &format!(
                "  `{}` in run {} · {}{}\n",
                p.step,
                style.paint(Role::Accent, &p.short_id),
                style.status(&p.status),
                if p.status == "cached" || p.status == "restored" {
                    " (reused the result above)"
                } else {
                    ""
                }
            );
        }
    }
    o
}

/// The other versions of the same path, newest first.
fn versions_text(c: &Card, style: &Style) -> String {
    let v = &c.version;
    let slash = if v.kind == "dir" { "/" } else { "" };
    let mut o = String::new();
    o += &format!(
        "\n{}\n",
        style.paint(
            Role::Strong,
            &format!("versions of {}{slash} ({})", v.path, c.versions_total)
        )
    );
    for ov in &c.versions {
        let this = ov.version.av_id == v.av_id;
        let who = match (&ov.short_id, &ov.step) {
            (Some(r), Some(s)) => format!(
                "{} `{s}` in run {}",
                if ov.produced { "made by" } else { "read by" },
                style.paint(Role::Accent, r)
            ),
            _ => "no run".into(),
        };
        o += &format!(
            "  {} {}  {}  {:>16}  {who}{}\n",
            if this { "*" } else { " " },
            style.paint(Role::Muted, short_hash(&ov.version.hash)),
            time::local(ov.at.unwrap_or(ov.version.first_seen)),
            version_size(&ov.version.kind, ov.version.size, ov.version.nfiles),
            if this { "  ← this version" } else { "" }
        );
    }
    if c.versions_total > c.versions.len() {
        o += &format!(
            "  {}\n",
            style.paint(
                Role::Muted,
                &format!("… and {} older", c.versions_total - c.versions.len())
            )
        );
    }
    o
}

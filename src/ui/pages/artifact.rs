//! An artifact version's card: what made it, from what, what used it, its other versions.

use std::fmt::Write as _;

use super::lineage::version_from;
use super::{bad, bytes, git_section, kv_table, not_found, param_text, status_badge, time};
use crate::error::Result;
use crate::report::{metric, short_hash};
use crate::store::Store;
use crate::store::lineage::{self, Card};
use crate::ui::html::{Html, esc, page, url};
use crate::ui::{Query, Reply};

pub fn artifact(store: &Store, q: &Query) -> Result<Reply> {
    let v = match version_from(store, q) {
        Ok(Some(v)) => v,
        Ok(None) => {
            return bad("which artifact? /artifact?path=PATH (and &hash=SHA256 for one version)");
        }
        Err(e) if e.starts_with("no recorded") => return not_found(&e),
        Err(e) => return bad(&e),
    };
    let c = store.card(v.av_id)?;
    let mut h = Html::default();
    h.raw("<h1>")
        .text(&c.version.path)
        .raw(" <small class=\"mono\">")
        .text(short_hash(&c.version.hash))
        .raw("</small></h1>");
    model_tags(&mut h, store, v.av_id)?;
    let lq = format!(
        "path={}&hash={}",
        url(&c.version.path),
        url(&c.version.hash)
    );
    h.raw("<p class=\"actions\">")
        .link(&format!("/lineage?{lq}"), "Upstream lineage")
        .raw(" · ")
        .link(&format!("/lineage?{lq}&dir=down"), "Downstream")
        .raw("</p>");
    if c.gap {
        h.el(
            "p",
            "class=\"warn gap\"",
            &format!(
                "Lineage gap: {}",
                c.gap_reason.as_deref().unwrap_or(lineage::GAP_REASON)
            ),
        );
    }
    version_table(&mut h, &c);
    made_by(&mut h, &c);
    inputs(&mut h, &c);
    if let Some(g) = &c.git {
        git_section(&mut h, g, "Code");
    }
    if let Some(e) = &c.environment {
        kv_table(
            &mut h,
            "environment",
            [
                (
                    "OS".to_string(),
                    format!("{} {} ({})", e.os, e.os_version, e.arch),
                ),
                ("Host".into(), format!("{}@{}", e.user, e.hostname)),
            ]
            .into_iter()
            .chain(e.interpreters.iter().map(|(k, v)| (k.clone(), v.clone()))),
        );
    }
    used_by(&mut h, &c);
    other_versions(&mut h, &c);
    Ok(Reply::ok(page(&c.version.path, "Lineage", &h.0, false)))
}

/// The registered model versions (`name@version`) this version is.
fn model_tags(h: &mut Html, store: &Store, av_id: i64) -> Result<()> {
    let models = store.model_versions_of(av_id)?;
    if models.is_empty() {
        return Ok(());
    }
    h.raw("<p class=\"models\">");
    for m in &models {
        h.el(
            "span",
            "class=\"tag\"",
            &serde_json::to_value(m)
                .ok()
                .and_then(|j| {
                    Some(format!(
                        "{}@{}",
                        j.get("name")?.as_str()?,
                        j.get("version")?.as_str()?
                    ))
                })
                .unwrap_or_default(),
        );
        h.raw(" ");
    }
    h.raw("</p>");
    Ok(())
}

/// Hash, type, size, when first seen, whether a copy is stored and whether git has it.
fn version_table(h: &mut Html, c: &Card) {
    kv_table(
        h,
        "version",
        [
            ("SHA-256".to_string(), c.version.hash.clone()),
            ("Type".into(), c.version.kind.clone()),
            (
                "Size".into(),
                if c.version.kind == "dir" {
                    format!(
                        "{} · {}",
                        bytes(c.version.size),
                        crate::report::files(c.version.nfiles.max(0) as u64)
                    )
                } else {
                    bytes(c.version.size)
                },
            ),
            ("First seen".into(), time(c.version.first_seen)),
            (
                "Copy stored".into(),
                if c.stored {
                    "yes (restorable)".into()
                } else {
                    "no".into()
                },
            ),
            (
                "In git".into(),
                if c.in_git { "yes".into() } else { "no".into() },
            ),
        ],
    );
}

/// The step and run that wrote this version, its command, params and metrics.
fn made_by(h: &mut Html, c: &Card) {
    let Some(e) = &c.produced_by else {
        return;
    };
    h.raw("<h2>Made by</h2><p>step ")
        .link(
            &format!("/run/{}#step-{}", url(&e.run_id), url(&e.step)),
            &e.step,
        )
        .raw(" of run ")
        .link(
            &format!("/run/{}", url(&e.run_id)),
            c.run.as_ref().map_or(&e.run_id, |r| &r.short_id),
        )
        .raw(" ");
    status_badge(h, &e.status);
    if let Some(r) = &c.run {
        h.text(&format!(
            " · {} · {}@{} · {}",
            r.pipeline,
            r.user,
            r.hostname,
            time(r.started_at)
        ));
    }
    h.raw("</p>");
    h.el("pre", "class=\"cmd\"", &format!("$ {}", e.cmd));
    kv_table(
        h,
        "params",
        e.params.iter().map(|(k, v)| (k.clone(), param_text(v))),
    );
    kv_table(
        h,
        "metrics",
        e.metrics.iter().map(|(k, v)| (k.clone(), metric(*v))),
    );
}

/// What the producing step read, and where each of those came from.
fn inputs(h: &mut Html, c: &Card) {
    if c.inputs.is_empty() {
        return;
    }
    h.raw("<h2>Inputs</h2><table class=\"io\"><tr><th scope=\"col\">Path</th><th scope=\"col\">SHA-256</th><th scope=\"col\">Came from</th></tr>");
    for i in &c.inputs {
        h.raw("<tr><td>")
            .link(
                &format!(
                    "/artifact?path={}&hash={}",
                    url(&i.version.path),
                    url(&i.version.hash)
                ),
                &i.version.path,
            )
            .raw("</td>");
        let _ = write!(
            h.0,
            "<td class=\"mono\" title=\"{}\">{}</td><td>",
            esc(&i.version.hash),
            esc(short_hash(&i.version.hash))
        );
        if let Some(p) = &i.produced_by {
            h.text(&format!("step {} of run ", p.step))
                .link(&format!("/run/{}", url(&p.run_id)), &p.short_id);
        } else if i.gap {
            let _ = write!(h.0, "<span class=\"gap\">lineage gap</span>: ");
            h.text(i.gap_reason.as_deref().unwrap_or(lineage::GAP_REASON));
        } else {
            h.text(i.origin.as_deref().unwrap_or("-"));
        }
        if i.uncommitted {
            h.text(" (uncommitted edits)");
        }
        h.raw("</td></tr>");
    }
    h.raw("</table>");
}

/// The steps that read this version, with their metrics.
fn used_by(h: &mut Html, c: &Card) {
    if c.used_by.is_empty() {
        return;
    }
    let _ = write!(
        h.0,
        "<h2>Used by <small>{} in all</small></h2><table class=\"io\"><tr><th scope=\"col\">Step</th><th scope=\"col\">Run</th><th scope=\"col\">Metrics</th></tr>",
        c.used_by_total
    );
    for u in &c.used_by {
        h.raw("<tr>")
            .el("td", "", &u.exec.step)
            .raw("<td>")
            .link(&format!("/run/{}", url(&u.exec.run_id)), &u.short_id)
            .raw("</td>")
            .el("td", "", &crate::report::metrics_line(&u.exec.metrics))
            .raw("</tr>");
    }
    h.raw("</table>");
}

/// The other recorded versions of this path, newest first.
fn other_versions(h: &mut Html, c: &Card) {
    if c.versions.len() <= 1 {
        return;
    }
    let _ = write!(
        h.0,
        "<h2>Versions <small>{} in all</small></h2><ul class=\"paths\">",
        c.versions_total
    );
    for o in &c.versions {
        let j = serde_json::to_value(o).unwrap_or_default();
        let hash = j
            .get("hash")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string();
        let first = j.get("first_seen").and_then(|x| x.as_i64()).unwrap_or(0);
        h.raw("<li>")
            .link(
                &format!(
                    "/artifact?path={}&hash={}",
                    url(&c.version.path),
                    url(&hash)
                ),
                short_hash(&hash),
            )
            .raw(" <small>")
            .text(&time(first))
            .raw(if hash == c.version.hash {
                " · this version"
            } else {
                ""
            })
            .raw("</small></li>");
    }
    h.raw("</ul>");
}

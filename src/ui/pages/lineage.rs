//! The lineage graph of a version or a run, and the index of recorded artifacts.

use std::fmt::Write as _;

use super::{bad, check_path, get, not_found, resolve_run};
use crate::error::Result;
use crate::report::short_hash;
use crate::store::Store;
use crate::store::lineage::{self, Direction, Seed};
use crate::ui::html::{Html, esc, page, url};
use crate::ui::{Query, Reply};

/// The version a query's `path` (and `hash`, whole or a prefix) names; `None` without a path.
pub(super) fn version_from(
    store: &Store,
    q: &Query,
) -> std::result::Result<Option<lineage::Version>, String> {
    let Some(raw) = get(q, "path") else {
        return Ok(None);
    };
    let path = check_path(raw)?;
    let v = match get(q, "hash") {
        Some(h) if h.len() < 64 => {
            // a prefix, as the CLI shows hashes: the one version of this path it names
            let mut found: Vec<lineage::Version> = store
                .versions_by_hash_prefix(h)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|v| v.path == path)
                .collect();
            found.dedup_by(|a, b| a.hash == b.hash);
            if found.len() > 1 {
                return Err(format!(
                    "`{h}` names several versions of `{path}`: give more of the hash"
                ));
            }
            found.pop()
        }
        Some(h) => store
            .version_by_content(&path, h)
            .map_err(|e| e.to_string())?,
        None => store.latest_version(&path).map_err(|e| e.to_string())?,
    };
    v.map(Some).ok_or_else(|| {
        format!(
            "no recorded version of `{path}`{}",
            if get(q, "hash").is_some() {
                " with that hash"
            } else {
                ""
            }
        )
    })
}

pub fn lineage(store: &Store, q: &Query) -> Result<Reply> {
    let depth: Option<u32> = match get(q, "depth") {
        None => Some(4),
        Some("all") => None,
        Some(d) => match d.parse::<u32>() {
            Ok(d) if d >= 1 => Some(d),
            _ => return bad(&format!("`{d}` is not a depth: a number from 1, or `all`")),
        },
    };
    let direction = match get(q, "dir") {
        None | Some("up") => Direction::Up,
        Some("down") => Direction::Down,
        Some(o) => return bad(&format!("`{o}` is not a direction: up or down")),
    };
    let (seed, what) = match (version_from(store, q), get(q, "run")) {
        (Err(e), _) => return bad(&e),
        (Ok(Some(v)), _) => {
            let what = format!("{} ({})", v.path, short_hash(&v.hash));
            (Seed::Version(v.av_id), what)
        }
        (Ok(None), Some(r)) => match resolve_run(store, r) {
            Ok(id) => {
                let short = store.short_id(&id)?;
                (Seed::Run(id), format!("run {short}"))
            }
            Err(e) => return not_found(&e),
        },
        (Ok(None), None) => return lineage_index(store),
    };
    let g = store.traverse(&seed, direction, depth)?;
    let mut h = Html::default();
    h.raw("<h1>Lineage of ").text(&what).raw("</h1>");
    // controls: a GET form keeping the target
    h.raw("<form class=\"filters\" method=\"get\" action=\"/lineage\">");
    for key in ["path", "hash", "run"] {
        if let Some(v) = get(q, key) {
            let _ = write!(
                h.0,
                "<input type=\"hidden\" name=\"{key}\" value=\"{}\">",
                esc(v)
            );
        }
    }
    h.raw("<label>Direction <select name=\"dir\">");
    for (v, t) in [
        ("up", "upstream: what it came from"),
        ("down", "downstream: what came of it"),
    ] {
        let sel = if (v == "down") == (direction == Direction::Down) {
            " selected"
        } else {
            ""
        };
        let _ = write!(h.0, "<option value=\"{v}\"{sel}>{t}</option>");
    }
    h.raw("</select></label><label>Depth <select name=\"depth\" id=\"depth\">");
    for v in ["1", "2", "3", "4", "6", "8", "all"] {
        let cur = depth.map_or("all".to_string(), |d| d.to_string());
        let sel = if cur == v { " selected" } else { "" };
        let _ = write!(h.0, "<option value=\"{v}\"{sel}>{v}</option>");
    }
    h.raw("</select></label><button type=\"submit\">Show</button></form>");
    let gaps = g.gaps().count();
    let _ = write!(
        h.0,
        "<p class=\"legend\"><span class=\"k n-data\">data</span> <span class=\"k n-step\">step</span> <span class=\"k n-code\">code</span> <span class=\"k n-params\">params</span> <span class=\"k gap\">lineage gap</span> · {} nodes{}</p>",
        g.nodes.len(),
        if gaps > 0 {
            format!(" · {gaps} lineage gap{}", if gaps == 1 { "" } else { "s" })
        } else {
            String::new()
        }
    );
    h.raw("<div class=\"scroll graph\">")
        .raw(&crate::ui::graph::svg(&g))
        .raw("</div>");
    Ok(Reply::ok(page(
        &format!("Lineage of {what}"),
        "Lineage",
        &h.0,
        false,
    )))
}

fn lineage_index(store: &Store) -> Result<Reply> {
    let paths = store.artifact_paths(500)?;
    let mut h = Html::default();
    h.raw("<h1>Lineage</h1>");
    if paths.is_empty() {
        h.el("p", "class=\"empty\"", "No artifacts recorded yet.");
    } else {
        h.el("p", "", "Recorded artifacts, most recently changed first:");
        h.raw("<ul class=\"paths\">");
        for (p, n) in &paths {
            h.raw("<li>")
                .link(&format!("/lineage?path={}", url(p)), p)
                .raw(" <small>")
                .text(&format!("{n} version{}", if *n == 1 { "" } else { "s" }))
                .raw(" · ")
                .link(&format!("/artifact?path={}", url(p)), "card")
                .raw("</small></li>");
        }
        h.raw("</ul>");
    }
    Ok(Reply::ok(page("Lineage", "Lineage", &h.0, false)))
}

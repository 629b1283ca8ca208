//! The pages. Each takes the database and the request's query, and returns a whole page; every
//! recorded string goes through `Html::text` / `esc`.

//!
//! One file per page (`runs`, `run`, `compare`, `lineage`, `artifact`); this one holds what
//! several of them share: reading the query, error replies, and the tables and blocks that
//! appear on more than one page.

use std::fmt::Write as _;

use axum::http::StatusCode;

use super::html::{Html, esc, url};
use super::{Query, Reply};
use crate::error::Result;
use crate::report::short_hash;
use crate::store::Store;
use crate::store::query;

mod artifact;
mod compare;
mod lineage;
mod run;
mod runs;

pub use artifact::artifact;
pub use compare::compare;
pub use lineage::lineage;
pub use run::run;
pub use runs::runs;

fn get<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn all<'a>(q: &'a Query, key: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.as_str())
        .collect()
}

fn bad(message: &str) -> Result<Reply> {
    Ok(Reply::error(
        StatusCode::BAD_REQUEST,
        "Bad request",
        message,
    ))
}

fn not_found(message: &str) -> Result<Reply> {
    Ok(Reply::error(StatusCode::NOT_FOUND, "Not found", message))
}

fn time(ms: i64) -> String {
    crate::report::time::local(ms)
}

fn status_badge(h: &mut Html, status: &str) {
    let class = match status {
        "succeeded" => "ok",
        "failed" | "interrupted" | "timeout" => "bad",
        "running" => "live",
        "cached" | "restored" | "skipped" => "reuse",
        _ => "other",
    };
    let _ = write!(h.0, "<span class=\"status {class}\">{}</span>", esc(status));
}

fn param_text(v: &serde_json::Value) -> String {
    crate::pipeline::params::render(v)
}

/// A store path from a URL: relative, `/`-separated, without `.` or `..` components (which
/// could name something outside the project), no NUL.
pub fn check_path(p: &str) -> std::result::Result<String, String> {
    let p = p.trim_end_matches('/');
    if p.is_empty() {
        return Err("no path given".into());
    }
    if p.starts_with('/') || p.contains('\\') || p.contains('\0') {
        return Err(format!(
            "`{p}` is not a path inside the project: paths are relative to the project root"
        ));
    }
    if p.split('/').any(|c| c == ".." || c == "." || c.is_empty()) {
        return Err(format!(
            "`{p}` is not a plain path inside the project: `..`, `.` and empty components are refused"
        ));
    }
    Ok(p.to_string())
}

/// The query string of `q` with `key` set to `value` (or removed when `None`).
fn with(q: &Query, key: &str, value: Option<&str>) -> String {
    let mut out: Vec<String> = q
        .iter()
        .filter(|(k, _)| k != key && !(key != "page" && k == "page"))
        .map(|(k, v)| format!("{}={}", url(k), url(v)))
        .collect();
    if let Some(v) = value {
        out.push(format!("{}={}", url(key), url(v)));
    }
    if out.is_empty() {
        String::new()
    } else {
        format!("?{}", out.join("&"))
    }
}

// ---------------------------------------------------------------------------------------------
// Shared by several pages

fn resolve_run(store: &Store, id: &str) -> std::result::Result<String, String> {
    store
        .resolve_run(id)
        .map_err(|e| crate::error::Error::from(e).to_string())
}

fn kv_table(h: &mut Html, caption: &str, rows: impl IntoIterator<Item = (String, String)>) {
    let rows: Vec<(String, String)> = rows.into_iter().collect();
    if rows.is_empty() {
        return;
    }
    h.raw("<table class=\"kv\">");
    h.el("caption", "", caption);
    for (k, v) in rows {
        h.raw("<tr>")
            .el("th", "scope=\"row\"", &k)
            .el("td", "", &v)
            .raw("</tr>");
    }
    h.raw("</table>");
}

fn io_table(h: &mut Html, caption: &str, io: &[query::IoInfo]) {
    if io.is_empty() {
        return;
    }
    h.raw("<table class=\"io\">");
    h.el("caption", "", caption);
    h.raw("<tr><th scope=\"col\">Path</th><th scope=\"col\">SHA-256</th><th scope=\"col\">Size</th><th scope=\"col\"></th></tr>");
    for i in io {
        h.raw("<tr><td>")
            .link(
                &format!("/artifact?path={}&hash={}", url(&i.path), url(&i.hash)),
                &format!("{}{}", i.path, if i.kind == "dir" { "/" } else { "" }),
            )
            .raw("</td>");
        let _ = write!(
            h.0,
            "<td class=\"mono\" title=\"{}\">{}</td>",
            esc(&i.hash),
            esc(short_hash(&i.hash))
        );
        let size = if i.kind == "dir" {
            format!(
                "{} · {}",
                bytes(i.size),
                crate::report::files(i.nfiles.max(0) as u64)
            )
        } else {
            bytes(i.size)
        };
        h.el("td", "class=\"num\"", &size);
        h.el(
            "td",
            "",
            if i.observed {
                "undeclared (seen by --trace)"
            } else {
                ""
            },
        );
        h.raw("</tr>");
    }
    h.raw("</table>");
}

fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / 1024.0 / 1024.0)
    } else {
        format!("{:.1} GiB", n / 1024.0 / 1024.0 / 1024.0)
    }
}

fn diff_block(h: &mut Html, diff: &str) {
    h.raw("<pre class=\"diff\">");
    for line in diff.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            "file"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else if line.starts_with("@@") {
            "hunk"
        } else {
            ""
        };
        let _ = writeln!(h.0, "<span class=\"{class}\">{}</span>", esc(line));
    }
    h.raw("</pre>");
}

fn git_section(h: &mut Html, g: &query::GitInfo, title: &str) {
    h.el("h3", "", title);
    if !g.is_repo {
        h.el("p", "", "not in a git repository");
        return;
    }
    let mut rows = vec![
        (
            "Commit".to_string(),
            g.commit.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "Branch".to_string(),
            g.branch.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "Working tree".to_string(),
            if g.dirty {
                "uncommitted changes".into()
            } else {
                "clean".into()
            },
        ),
    ];
    if let Some(r) = &g.remote_url {
        rows.push(("Remote".into(), r.clone()));
    }
    if !g.changed.is_empty() {
        rows.push(("Changed".into(), g.changed.join(", ")));
    }
    if !g.untracked.is_empty() {
        rows.push(("Untracked".into(), g.untracked.join(", ")));
    }
    if let Some(e) = &g.error {
        rows.push(("Error".into(), e.clone()));
    }
    kv_table(h, "git", rows);
    if let Some(d) = &g.diff
        && !d.is_empty()
    {
        h.raw("<details open><summary>Uncommitted diff</summary>");
        diff_block(h, d);
        h.raw("</details>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_parent_components_are_refused() {
        assert!(check_path("data/train.csv").is_ok());
        assert_eq!(check_path("model/").unwrap(), "model");
        for p in [
            "../etc/passwd",
            "data/../../x",
            "/etc/passwd",
            "a/./b",
            "a//b",
            "..",
            "a\\..\\b",
            "a\0b",
            "",
        ] {
            assert!(check_path(p).is_err(), "{p:?} must be refused");
        }
    }

    #[test]
    fn query_strings_keep_other_keys() {
        let q: Query = vec![("sort".into(), "acc".into()), ("page".into(), "3".into())];
        assert_eq!(with(&q, "page", Some("4")), "?sort=acc&page=4");
        assert_eq!(with(&q, "sort", None), "");
    }
}

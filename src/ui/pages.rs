//! The pages. Each takes the database and the request's query, and returns a whole page; every
//! recorded string goes through `Html::text` / `esc`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use axum::http::StatusCode;

use super::html::{Html, esc, page, url};
use super::{Query, Reply};
use crate::error::Result;
use crate::report::{duration_ms, metric, short_hash};
use crate::store::Store;
use crate::store::lineage::{self, Direction, Seed};
use crate::store::query::{self, RunFilter};

const PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 500;

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

// ---------------------------------------------------------------------------------------------
// Runs

struct RunsQuery {
    filter: RunFilter,
    page: usize,
    per: usize,
    cols: Option<Vec<String>>,
}

fn parse_runs_query(q: &Query) -> std::result::Result<RunsQuery, String> {
    use crate::store::filter::{parse_metric, parse_param, parse_since};
    let mut f = RunFilter {
        pipeline: get(q, "pipeline").map(str::to_string),
        with_params: true,
        ..RunFilter::default()
    };
    if let Some(s) = get(q, "status") {
        if !["running", "succeeded", "failed", "interrupted"].contains(&s) {
            return Err(format!(
                "`{s}` is not a run status (running, succeeded, failed, interrupted)"
            ));
        }
        f.status = Some(s.to_string());
    }
    if let Some(s) = get(q, "since") {
        f.since = Some(parse_since(s)?);
    }
    for p in all(q, "param") {
        f.params.push(parse_param(p)?);
    }
    for m in all(q, "metric") {
        f.metrics.push(parse_metric(m)?);
    }
    if let Some(s) = get(q, "sort") {
        let asc = match get(q, "order") {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(o) => return Err(format!("`{o}` is not an order: asc or desc")),
        };
        f.sort = Some((s.to_string(), asc));
    }
    f.replays = match get(q, "replays") {
        None | Some("all") => None,
        Some("hide") => Some(false),
        Some("only") => Some(true),
        Some(o) => return Err(format!("`{o}` is not a replays choice: all, hide or only")),
    };
    f.grep = get(q, "grep").map(str::to_string);
    let page = match get(q, "page") {
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| format!("`{p}` is not a page number"))?,
        None => 1,
    };
    let per = match get(q, "per") {
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| (1..=MAX_PER_PAGE).contains(p))
            .ok_or_else(|| format!("`{p}` runs per page: give 1 to {MAX_PER_PAGE}"))?,
        None => PER_PAGE,
    };
    let cols = q.iter().any(|(k, _)| k == "cols").then(|| {
        all(q, "cols")
            .iter()
            .flat_map(|c| c.split(','))
            .map(str::to_string)
            .collect()
    });
    Ok(RunsQuery {
        filter: f,
        page,
        per,
        cols,
    })
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

pub fn runs(store: &Store, q: &Query) -> Result<Reply> {
    let rq = match parse_runs_query(q) {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let mut f = rq.filter.clone();
    let offset = (rq.page - 1) * rq.per;
    f.offset = offset;
    // one more than a page: whether there is a next one
    f.limit = Some(rq.per + 1);
    let mut runs = store.list_runs(&f)?;
    let more = runs.len() > rq.per;
    runs.truncate(rq.per);
    // columns: the params and metrics of the runs shown (or those chosen)
    let mut param_keys: BTreeSet<String> = BTreeSet::new();
    let mut metric_keys: BTreeSet<String> = BTreeSet::new();
    for r in &runs {
        param_keys.extend(r.params.keys().cloned());
        metric_keys.extend(r.metrics.keys().cloned());
    }
    let shown = |k: &str, prefix: &str| match &rq.cols {
        Some(c) => c.iter().any(|c| c == &format!("{prefix}{k}")),
        None => true,
    };
    let pcols: Vec<&String> = param_keys.iter().filter(|k| shown(k, "p:")).collect();
    let mcols: Vec<&String> = metric_keys.iter().filter(|k| shown(k, "m:")).collect();

    let mut h = Html::default();
    h.raw("<h1>Runs</h1>");
    // filters (a GET form: the URL is the state)
    h.raw("<form class=\"filters\" method=\"get\" action=\"/runs\" role=\"search\">");
    let field = |h: &mut Html, name: &str, label: &str, value: &str, hint: &str| {
        let _ = write!(
            h.0,
            "<label>{} <input name=\"{name}\" value=\"{}\" placeholder=\"{}\"></label>",
            esc(label),
            esc(value),
            esc(hint)
        );
    };
    field(
        &mut h,
        "pipeline",
        "Pipeline",
        get(q, "pipeline").unwrap_or(""),
        "name",
    );
    h.raw("<label>Status <select name=\"status\">");
    for s in ["", "running", "succeeded", "failed", "interrupted"] {
        let sel = if get(q, "status").unwrap_or("") == s {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            h.0,
            "<option value=\"{s}\"{sel}>{}</option>",
            if s.is_empty() { "any" } else { s }
        );
    }
    h.raw("</select></label>");
    field(
        &mut h,
        "since",
        "Since",
        get(q, "since").unwrap_or(""),
        "2d, 2024-05-01",
    );
    field(
        &mut h,
        "param",
        "Param",
        all(q, "param").first().copied().unwrap_or(""),
        "train.lr=0.1",
    );
    field(
        &mut h,
        "metric",
        "Metric",
        all(q, "metric").first().copied().unwrap_or(""),
        "accuracy>0.9",
    );
    field(
        &mut h,
        "grep",
        "Message",
        get(q, "grep").unwrap_or(""),
        "text",
    );
    h.raw("<label>Replays <select name=\"replays\">");
    for (v, t) in [
        ("all", "shown"),
        ("hide", "hidden"),
        ("only", "only replays"),
    ] {
        let sel = if get(q, "replays").unwrap_or("all") == v {
            " selected"
        } else {
            ""
        };
        let _ = write!(h.0, "<option value=\"{v}\"{sel}>{t}</option>");
    }
    h.raw("</select></label>");
    if let Some(s) = get(q, "sort") {
        let _ = write!(
            h.0,
            "<input type=\"hidden\" name=\"sort\" value=\"{}\">",
            esc(s)
        );
        if let Some(o) = get(q, "order") {
            let _ = write!(
                h.0,
                "<input type=\"hidden\" name=\"order\" value=\"{}\">",
                esc(o)
            );
        }
    }
    // choose columns
    if !param_keys.is_empty() || !metric_keys.is_empty() {
        h.raw("<details class=\"cols\"><summary>Columns</summary>");
        for (prefix, keys, what) in [("p:", &param_keys, "param"), ("m:", &metric_keys, "metric")] {
            for k in keys.iter() {
                let v = format!("{prefix}{k}");
                let checked = if shown(k, prefix) { " checked" } else { "" };
                let _ = write!(
                    h.0,
                    "<label><input type=\"checkbox\" name=\"cols\" value=\"{}\"{checked}> {} <small>{what}</small></label>",
                    esc(&v),
                    esc(k)
                );
            }
        }
        h.raw("</details>");
    }
    h.raw("<button type=\"submit\">Apply</button> <a href=\"/runs\">Clear</a></form>");

    if runs.is_empty() {
        h.el(
            "p",
            "class=\"empty\"",
            if offset > 0 {
                "No runs on this page."
            } else if q.iter().any(|(k, v)| k != "page" && !v.is_empty()) {
                "No run matches these filters."
            } else {
                "No runs recorded yet: run a pipeline with `mlrun pipeline.toml`."
            },
        );
        return Ok(Reply::ok(page("Runs", "Runs", &h.0, false)));
    }
    // the table; its checkboxes submit to /compare
    h.raw("<form method=\"get\" action=\"/compare\" id=\"compare-form\">");
    h.raw("<p class=\"actions\"><button type=\"submit\" id=\"compare-button\">Compare selected runs</button> <span class=\"hint\">select two or more</span></p>");
    h.raw("<div class=\"scroll\"><table class=\"runs\" id=\"runs\"><thead><tr><th scope=\"col\"><span class=\"sr\">select</span></th><th scope=\"col\">Run</th><th scope=\"col\">Pipeline</th><th scope=\"col\">Status</th><th scope=\"col\">Started</th><th scope=\"col\">Duration</th><th scope=\"col\">Commit</th><th scope=\"col\">Message</th>");
    for k in &pcols {
        let _ = write!(h.0, "<th scope=\"col\" class=\"param\">{}</th>", esc(k));
    }
    for k in &mcols {
        // each metric header sorts by it (best first; again: the other way)
        let (order, arrow) = match &rq.filter.sort {
            Some((s, false)) if s == *k => ("asc", " ▼"),
            Some((s, true)) if s == *k => ("desc", " ▲"),
            _ => ("desc", ""),
        };
        let mut qs = q.clone();
        qs.retain(|(k, _)| k != "sort" && k != "order" && k != "page");
        qs.push(("sort".into(), k.to_string()));
        qs.push(("order".into(), order.into()));
        let href = format!("/runs{}", with(&qs, "page", None));
        let _ = write!(
            h.0,
            "<th scope=\"col\" class=\"metric\"><a href=\"{}\" title=\"sort by {}\">{}{arrow}</a></th>",
            esc(&href),
            esc(k),
            esc(k)
        );
    }
    h.raw("</tr></thead><tbody>");
    for r in &runs {
        let _ = write!(
            h.0,
            "<tr><td><input type=\"checkbox\" name=\"runs\" value=\"{}\" aria-label=\"select run {}\"></td><td><a class=\"id\" href=\"/run/{}\">{}</a></td>",
            esc(&r.short_id),
            esc(&r.short_id),
            url(&r.id),
            esc(&r.short_id)
        );
        h.el("td", "", &r.pipeline);
        h.raw("<td>");
        status_badge(&mut h, &r.status);
        if r.replay_of.is_some() {
            let _ = write!(
                h.0,
                " <span class=\"tag\">replay: {}</span>",
                esc(r.replay_verdict.as_deref().unwrap_or("?"))
            );
        }
        h.raw("</td>");
        h.el("td", "class=\"time\"", &time(r.started_at));
        h.el(
            "td",
            "class=\"num\"",
            &r.duration_ms.map_or("-".into(), duration_ms),
        );
        let commit = r.commit.as_deref().map_or("-".to_string(), |c| {
            format!("{}{}", &c[..c.len().min(7)], if r.dirty { "+" } else { "" })
        });
        h.el("td", "class=\"mono\"", &commit);
        h.el("td", "class=\"msg\"", r.message.as_deref().unwrap_or(""));
        for k in &pcols {
            h.el(
                "td",
                "class=\"param\"",
                &r.params.get(*k).map(param_text).unwrap_or_default(),
            );
        }
        for k in &mcols {
            h.el(
                "td",
                "class=\"num\"",
                &r.metrics.get(*k).map(|v| metric(*v)).unwrap_or_default(),
            );
        }
        h.raw("</tr>");
    }
    h.raw("</tbody></table></div></form>");
    // pages
    h.raw("<nav class=\"pages\" aria-label=\"pages\">");
    let _ = write!(
        h.0,
        "<span>runs {}–{}</span> ",
        offset + 1,
        offset + runs.len()
    );
    if rq.page > 1 {
        let prev = (rq.page - 1).to_string();
        h.raw(" ")
            .link(&format!("/runs{}", with(q, "page", Some(&prev))), "← newer");
    }
    if more {
        let next = (rq.page + 1).to_string();
        h.raw(" ")
            .link(&format!("/runs{}", with(q, "page", Some(&next))), "older →");
    }
    h.raw("</nav>");
    Ok(Reply::ok(page("Runs", "Runs", &h.0, false)))
}

// ---------------------------------------------------------------------------------------------
// Run

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

fn log_block(h: &mut Html, store: &Store, exec: i64, stream: &str) -> Result<()> {
    let data = store.step_log(exec, stream)?;
    if data.bytes == 0 {
        return Ok(());
    }
    let _ = write!(
        h.0,
        "<details class=\"log\"><summary>{} <small>{}</small></summary><pre>",
        esc(stream),
        esc(&bytes(data.bytes))
    );
    h.text(&String::from_utf8_lossy(&data.head));
    if let Some(tail) = &data.tail {
        let cut = data.bytes - data.head.len() as i64 - tail.len() as i64;
        let _ = write!(
            h.0,
            "</pre><p class=\"cut\">… {} not kept in the database{} …</p><pre>",
            esc(&bytes(cut)),
            if data.stored {
                " (the whole log is in the object store: `mlrun show RUN:STEP --log STREAM`)"
            } else {
                ""
            }
        );
        h.text(&String::from_utf8_lossy(tail));
    }
    h.raw("</pre></details>");
    Ok(())
}

pub fn run(store: &Store, id: &str) -> Result<Reply> {
    let id = match resolve_run(store, id) {
        Ok(id) => id,
        Err(e) => return not_found(&e),
    };
    let d = store.run_detail(&id, true)?;
    let mut h = Html::default();
    h.raw("<h1>Run <span class=\"mono\">")
        .text(&d.short_id)
        .raw("</span> ");
    status_badge(&mut h, &d.status);
    h.raw("</h1>");
    if let Some(m) = &d.message {
        h.el("p", "class=\"message\"", m);
    }
    h.raw("<p class=\"actions\">")
        .link(
            &format!("/lineage?run={}", url(&d.id)),
            "Lineage of this run",
        )
        .raw(" · ")
        .link(&format!("/compare?runs={}", url(&d.short_id)), "Compare…");
    if let Some(r) = &d.replay_of {
        h.raw(" · replay of ").link(
            &format!("/run/{}", url(r)),
            d.replay_of_short.as_deref().unwrap_or(r),
        );
        if let Some(v) = &d.replay_verdict {
            h.raw(": ").text(v);
        }
    }
    h.raw("</p>");
    let mut rows = vec![
        ("Run id".to_string(), d.id.clone()),
        (
            "Pipeline".into(),
            format!("{} ({})", d.pipeline, d.pipeline_file),
        ),
        ("Started".into(), time(d.started_at)),
        (
            "Duration".into(),
            d.duration_ms
                .map_or_else(|| "still running".into(), duration_ms),
        ),
        ("Host".into(), format!("{}@{}", d.user, d.hostname)),
        ("Command".into(), d.argv.join(" ")),
        ("mlrun".into(), d.mlrun_version.clone()),
    ];
    if let Some(c) = d.exit_code {
        rows.push(("Exit code".into(), c.to_string()));
    }
    kv_table(&mut h, "summary", rows);
    kv_table(
        &mut h,
        "params",
        d.params.iter().map(|(k, v)| (k.clone(), param_text(v))),
    );
    let mut metrics: BTreeMap<&str, f64> = BTreeMap::new();
    for s in &d.steps {
        for (k, v) in &s.metrics {
            metrics.insert(k, *v);
        }
    }
    kv_table(
        &mut h,
        "metrics",
        metrics.iter().map(|(k, v)| (k.to_string(), metric(*v))),
    );
    // steps overview
    h.raw("<h2>Steps</h2><div class=\"scroll\"><table class=\"steps\"><tr><th scope=\"col\">Step</th><th scope=\"col\">Status</th><th scope=\"col\">How it ran</th><th scope=\"col\">Duration</th><th scope=\"col\">Exit</th></tr>");
    for s in &d.steps {
        let anchor = format!("step-{}", s.name);
        h.raw("<tr><td>")
            .link(
                &format!("#{}", url(&anchor)),
                &if s.attempt > 1 {
                    format!("{} (attempt {})", s.name, s.attempt)
                } else {
                    s.name.clone()
                },
            )
            .raw("</td><td>");
        status_badge(&mut h, &s.status);
        h.raw("</td><td>");
        match (&s.status[..], &s.reused_run) {
            ("cached" | "restored", Some(r)) => {
                h.text(if s.status == "cached" {
                    "reused the outputs of run "
                } else {
                    "restored the outputs of run "
                })
                .link(
                    &format!("/run/{}", url(r)),
                    s.reused_run_short.as_deref().unwrap_or(r),
                );
            }
            _ => {
                h.text(if s.started_at.is_some() {
                    "ran here"
                } else {
                    "did not run"
                });
            }
        }
        h.raw("</td>");
        h.el(
            "td",
            "class=\"num\"",
            &s.duration_ms.map_or("-".into(), duration_ms),
        );
        h.el(
            "td",
            "class=\"num\"",
            &match (s.exit_code, s.signal) {
                (_, Some(sig)) => format!("signal {sig}"),
                (Some(c), _) => c.to_string(),
                _ => "-".into(),
            },
        );
        h.raw("</tr>");
    }
    h.raw("</table></div>");
    // each step
    for s in &d.steps {
        let _ = write!(
            h.0,
            "<section class=\"step\" id=\"{}\"><h3>",
            esc(&format!("step-{}", s.name))
        );
        h.text(&s.name);
        if s.attempt > 1 {
            let _ = write!(h.0, " <small>attempt {}</small>", s.attempt);
        }
        h.raw(" ");
        status_badge(&mut h, &s.status);
        h.raw("</h3>");
        h.el("pre", "class=\"cmd\"", &format!("$ {}", s.cmd));
        if let Some(e) = &s.error {
            h.el("p", "class=\"error\"", e);
        }
        io_table(&mut h, "inputs", &s.inputs);
        io_table(&mut h, "outputs", &s.outputs);
        kv_table(
            &mut h,
            "params",
            s.params.iter().map(|(k, v)| (k.clone(), param_text(v))),
        );
        kv_table(
            &mut h,
            "metrics",
            s.metrics.iter().map(|(k, v)| (k.clone(), metric(*v))),
        );
        let traced: Vec<&query::IoInfo> = s
            .inputs
            .iter()
            .chain(&s.outputs)
            .filter(|i| i.observed)
            .collect();
        if !traced.is_empty() {
            h.raw("<p class=\"warn\">Undeclared accesses seen by --trace: ");
            for (i, t) in traced.iter().enumerate() {
                if i > 0 {
                    h.raw(", ");
                }
                h.el("code", "", &t.path);
            }
            h.raw("</p>");
        }
        log_block(&mut h, store, s.exec_id, "stdout")?;
        log_block(&mut h, store, s.exec_id, "stderr")?;
        h.raw("</section>");
    }
    h.raw("<h2>Code</h2>");
    match &d.git {
        Some(g) => git_section(&mut h, g, "At the start"),
        None => {
            h.el("p", "", "no git state recorded");
        }
    }
    if let Some(g) = &d.git_end
        && d.git.as_ref().map(|s| (&s.commit, s.dirty, s.diff_bytes))
            != Some((&g.commit, g.dirty, g.diff_bytes))
    {
        git_section(&mut h, g, "At the end");
    }
    h.raw("<h2>Environment</h2>");
    for (id, e) in &d.environments {
        let _ = write!(
            h.0,
            "<h3>Environment <span class=\"mono\">{}</span></h3>",
            esc(short_hash(id))
        );
        let mut rows = vec![
            (
                "OS".to_string(),
                format!("{} {} ({})", e.os, e.os_version, e.arch),
            ),
            ("Kernel".into(), e.kernel.clone()),
            ("CPU".into(), format!("{} × {}", e.cpu_cores, e.cpu_model)),
            ("Memory".into(), bytes(e.mem_bytes)),
        ];
        for (k, v) in &e.interpreters {
            rows.push((k.clone(), v.clone()));
        }
        for (k, v) in &e.lockfiles {
            rows.push((format!("lockfile {k}"), short_hash(v).to_string()));
        }
        for (k, v) in &e.env_vars {
            rows.push((format!("${k}"), v.clone()));
        }
        kv_table(&mut h, "environment", rows);
        for (prog, p) in &e.packages {
            let _ = write!(
                h.0,
                "<details class=\"packages\"><summary>{} packages of {} <small>({})</small></summary><table class=\"kv\">",
                p.packages.len(),
                esc(prog),
                esc(&p.env.prefix)
            );
            for pk in &p.packages {
                h.raw("<tr>")
                    .el("th", "scope=\"row\"", &pk.name)
                    .el("td", "", &pk.version)
                    .raw("</tr>");
            }
            h.raw("</table></details>");
        }
    }
    let title = format!("Run {}", d.short_id);
    Ok(Reply::ok(page(&title, "Runs", &h.0, d.status == "running")))
}

// ---------------------------------------------------------------------------------------------
// Compare

pub fn compare(store: &Store, q: &Query) -> Result<Reply> {
    let wanted: Vec<String> = all(q, "runs")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.len() < 2 {
        return bad(
            "compare needs two or more runs: /compare?runs=A,B (select them on the runs page)",
        );
    }
    let mut ids = Vec::new();
    for w in &wanted {
        match resolve_run(store, w) {
            Ok(id) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(e) => return not_found(&e),
        }
    }
    if ids.len() < 2 {
        return bad("these name one run: compare needs two or more different runs");
    }
    let all_rows = get(q, "all") == Some("1");
    let f = RunFilter {
        ids: Some(ids.clone()),
        with_params: true,
        ..RunFilter::default()
    };
    let mut listed = store.list_runs(&f)?;
    listed.sort_by_key(|r| ids.iter().position(|i| *i == r.id));
    let details: Vec<query::RunDetail> = ids
        .iter()
        .map(|i| store.run_detail(i, false))
        .collect::<Result<_>>()?;
    let mut h = Html::default();
    h.raw("<h1>Compare runs</h1><p class=\"actions\">");
    let toggle = if all_rows {
        with(q, "all", None)
    } else {
        with(q, "all", Some("1"))
    };
    let _ = write!(
        h.0,
        "<a href=\"/compare{}\" role=\"switch\" aria-checked=\"{}\" id=\"only-diff\">Only differences: {}</a>",
        esc(&toggle),
        !all_rows,
        if all_rows { "off" } else { "on" }
    );
    h.raw(" · deltas are against the first run</p>");
    h.raw("<div class=\"scroll\"><table class=\"compare\"><thead><tr><th scope=\"col\"></th>");
    for r in &listed {
        h.raw("<th scope=\"col\">")
            .link(&format!("/run/{}", url(&r.id)), &r.short_id)
            .raw("</th>");
    }
    h.raw("</tr></thead><tbody>");
    let row = |h: &mut Html,
               group: &str,
               name: &str,
               cells: Vec<Option<String>>,
               deltas: Option<Vec<Option<f64>>>| {
        let differs = cells.windows(2).any(|w| w[0] != w[1]);
        if !all_rows && !differs {
            return;
        }
        let _ = write!(
            h.0,
            "<tr class=\"{}\">",
            if differs { "differs" } else { "same" }
        );
        let _ = write!(
            h.0,
            "<th scope=\"row\"><small>{}</small> {}</th>",
            esc(group),
            esc(name)
        );
        for (i, c) in cells.iter().enumerate() {
            h.raw("<td>").text(c.as_deref().unwrap_or("–"));
            if let Some(d) = deltas.as_ref().and_then(|d| d[i])
                && i > 0
                && d != 0.0
            {
                let _ = write!(
                    h.0,
                    " <span class=\"delta {}\">{}{}</span>",
                    if d > 0.0 { "up" } else { "down" },
                    if d > 0.0 { "+" } else { "" },
                    esc(&metric(d))
                );
            }
            h.raw("</td>");
        }
        h.raw("</tr>");
    };
    row(
        &mut h,
        "run",
        "status",
        listed.iter().map(|r| Some(r.status.clone())).collect(),
        None,
    );
    row(
        &mut h,
        "run",
        "pipeline",
        listed.iter().map(|r| Some(r.pipeline.clone())).collect(),
        None,
    );
    row(
        &mut h,
        "run",
        "started",
        listed.iter().map(|r| Some(time(r.started_at))).collect(),
        None,
    );
    row(
        &mut h,
        "run",
        "message",
        listed.iter().map(|r| r.message.clone()).collect(),
        None,
    );
    row(
        &mut h,
        "code",
        "commit",
        listed
            .iter()
            .map(|r| {
                r.commit.as_ref().map(|c| {
                    format!(
                        "{}{}",
                        &c[..c.len().min(10)],
                        if r.dirty {
                            " + uncommitted changes"
                        } else {
                            ""
                        }
                    )
                })
            })
            .collect(),
        None,
    );
    row(
        &mut h,
        "code",
        "uncommitted diff",
        details
            .iter()
            .map(|d| {
                d.git
                    .as_ref()
                    .filter(|g| g.diff_bytes > 0)
                    .map(|g| bytes(g.diff_bytes))
            })
            .collect(),
        None,
    );
    let pkeys: BTreeSet<&String> = listed.iter().flat_map(|r| r.params.keys()).collect();
    for k in pkeys {
        row(
            &mut h,
            "param",
            k,
            listed
                .iter()
                .map(|r| r.params.get(k).map(param_text))
                .collect(),
            None,
        );
    }
    let mkeys: BTreeSet<&String> = listed.iter().flat_map(|r| r.metrics.keys()).collect();
    for k in mkeys {
        let vals: Vec<Option<f64>> = listed.iter().map(|r| r.metrics.get(k).copied()).collect();
        let base = vals[0];
        let deltas = vals
            .iter()
            .map(|v| v.zip(base).map(|(v, b)| v - b))
            .collect();
        row(
            &mut h,
            "metric",
            k,
            vals.iter().map(|v| v.map(metric)).collect(),
            Some(deltas),
        );
    }
    // data versions: each step output path, by hash
    let mut outs: BTreeSet<String> = BTreeSet::new();
    for d in &details {
        for s in &d.steps {
            outs.extend(s.inputs.iter().chain(&s.outputs).map(|i| i.path.clone()));
        }
    }
    for p in &outs {
        let cells = details
            .iter()
            .map(|d| {
                d.steps
                    .iter()
                    .rev()
                    .flat_map(|s| s.outputs.iter().chain(&s.inputs))
                    .find(|i| &i.path == p)
                    .map(|i| short_hash(&i.hash).to_string())
            })
            .collect();
        row(&mut h, "data", p, cells, None);
    }
    // environment: interpreters and packages
    let envs: Vec<BTreeMap<String, String>> = details
        .iter()
        .map(|d| {
            let mut m = BTreeMap::new();
            for e in d.environments.values() {
                for (k, v) in &e.interpreters {
                    m.insert(k.clone(), v.clone());
                }
                for p in e.packages.values() {
                    for pk in &p.packages {
                        m.insert(format!("package {}", pk.name), pk.version.clone());
                    }
                }
            }
            m
        })
        .collect();
    let ekeys: BTreeSet<&String> = envs.iter().flat_map(|e| e.keys()).collect();
    for k in ekeys {
        row(
            &mut h,
            "env",
            k,
            envs.iter().map(|e| e.get(k).cloned()).collect(),
            None,
        );
    }
    h.raw("</tbody></table></div>");
    Ok(Reply::ok(page("Compare runs", "Runs", &h.0, false)))
}

// ---------------------------------------------------------------------------------------------
// Lineage and the model card

fn version_from(store: &Store, q: &Query) -> std::result::Result<Option<lineage::Version>, String> {
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
        .raw(&super::graph::svg(&g))
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
    let models = store.model_versions_of(v.av_id)?;
    if !models.is_empty() {
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
    }
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
    kv_table(
        &mut h,
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
    if let Some(e) = &c.produced_by {
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
        status_badge(&mut h, &e.status);
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
            &mut h,
            "params",
            e.params.iter().map(|(k, v)| (k.clone(), param_text(v))),
        );
        kv_table(
            &mut h,
            "metrics",
            e.metrics.iter().map(|(k, v)| (k.clone(), metric(*v))),
        );
    }
    if !c.inputs.is_empty() {
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
    if !c.used_by.is_empty() {
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
    if c.versions.len() > 1 {
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
    Ok(Reply::ok(page(&c.version.path, "Lineage", &h.0, false)))
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

//! The runs page: a filter form (the URL is the state), the table, pages.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{all, bad, get, param_text, status_badge, time, with};
use crate::error::Result;
use crate::report::{duration_ms, metric};
use crate::store::Store;
use crate::store::query::{RunFilter, RunSummary};
use crate::ui::html::{Html, esc, page, url};
use crate::ui::{Query, Reply};

const PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 500;

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

pub fn runs(store: &Store, q: &Query) -> Result<Reply> {
    let rq = match parse_runs_query(q) {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let offset = (rq.page - 1) * rq.per;
    let (runs, more) = page_of_runs(store, &rq, offset)?;
    let cols = Columns::of(&runs, &rq.cols);
    let mut h = Html::default();
    h.raw("<h1>Runs</h1>");
    filter_form(&mut h, q, &cols);
    if runs.is_empty() {
        h.el("p", "class=\"empty\"", empty_text(q, offset));
        return Ok(Reply::ok(page("Runs", "Runs", &h.0, false)));
    }
    runs_table(&mut h, q, &rq, &cols, &runs);
    pager(&mut h, q, &rq, offset, runs.len(), more);
    Ok(Reply::ok(page("Runs", "Runs", &h.0, false)))
}

/// The runs of the asked page, and whether there is a next one.
fn page_of_runs(store: &Store, rq: &RunsQuery, offset: usize) -> Result<(Vec<RunSummary>, bool)> {
    let mut f = rq.filter.clone();
    f.offset = offset;
    // one more than a page: whether there is a next one
    f.limit = Some(rq.per + 1);
    let mut runs = store.list_runs(&f)?;
    let more = runs.len() > rq.per;
    runs.truncate(rq.per);
    Ok((runs, more))
}

/// The columns: the params and metrics of the runs shown (or those chosen).
struct Columns<'a> {
    params: BTreeSet<String>,
    metrics: BTreeSet<String>,
    chosen: &'a Option<Vec<String>>,
}

impl<'a> Columns<'a> {
    fn of(runs: &[RunSummary], chosen: &'a Option<Vec<String>>) -> Self {
        let mut params: BTreeSet<String> = BTreeSet::new();
        let mut metrics: BTreeSet<String> = BTreeSet::new();
        for r in runs {
            params.extend(r.params.keys().cloned());
            metrics.extend(r.metrics.keys().cloned());
        }
        Columns {
            params,
            metrics,
            chosen,
        }
    }

    fn shown(&self, k: &str, prefix: &str) -> bool {
        match self.chosen {
            Some(c) => c.iter().any(|c| c == &format!("{prefix}{k}")),
            None => true,
        }
    }

    fn params_shown(&self) -> Vec<&String> {
        self.params.iter().filter(|k| self.shown(k, "p:")).collect()
    }

    fn metrics_shown(&self) -> Vec<&String> {
        self.metrics
            .iter()
            .filter(|k| self.shown(k, "m:"))
            .collect()
    }
}

/// The filters: a GET form, so the URL is the state.
fn filter_form(h: &mut Html, q: &Query, cols: &Columns) {
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
        h,
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
        h,
        "since",
        "Since",
        get(q, "since").unwrap_or(""),
        "2d, 2024-05-01",
    );
    field(
        h,
        "param",
        "Param",
        all(q, "param").first().copied().unwrap_or(""),
        "train.lr=0.1",
    );
    field(
        h,
        "metric",
        "Metric",
        all(q, "metric").first().copied().unwrap_or(""),
        "accuracy>0.9",
    );
    field(h, "grep", "Message", get(q, "grep").unwrap_or(""), "text");
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
    column_chooser(h, cols);
    h.raw("<button type=\"submit\">Apply</button> <a href=\"/runs\">Clear</a></form>");
}

/// Choose columns: one checkbox per param and metric of the runs shown.
fn column_chooser(h: &mut Html, cols: &Columns) {
    if cols.params.is_empty() && cols.metrics.is_empty() {
        return;
    }
    h.raw("<details class=\"cols\"><summary>Columns</summary>");
    for (prefix, keys, what) in [
        ("p:", &cols.params, "param"),
        ("m:", &cols.metrics, "metric"),
    ] {
        for k in keys.iter() {
            let v = format!("{prefix}{k}");
            let checked = if cols.shown(k, prefix) {
                " checked"
            } else {
                ""
            };
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

fn empty_text(q: &Query, offset: usize) -> &'static str {
    if offset > 0 {
        "No runs on this page."
    } else if q.iter().any(|(k, v)| k != "page" && !v.is_empty()) {
        "No run matches these filters."
    } else {
        "No runs recorded yet: run a pipeline with `mlrun pipeline.toml`."
    }
}

/// The table; its checkboxes submit to /compare.
fn runs_table(h: &mut Html, q: &Query, rq: &RunsQuery, cols: &Columns, runs: &[RunSummary]) {
    let pcols = cols.params_shown();
    let mcols = cols.metrics_shown();
    h.raw("<form method=\"get\" action=\"/compare\" id=\"compare-form\">");
    h.raw("<p class=\"actions\"><button type=\"submit\" id=\"compare-button\">Compare selected runs</button> <span class=\"hint\">select two or more</span></p>");
    h.raw("<div class=\"scroll\"><table class=\"runs\" id=\"runs\"><thead><tr><th scope=\"col\"><span class=\"sr\">select</span></th><th scope=\"col\">Run</th><th scope=\"col\">Pipeline</th><th scope=\"col\">Status</th><th scope=\"col\">Started</th><th scope=\"col\">Duration</th><th scope=\"col\">Commit</th><th scope=\"col\">Message</th>");
    for k in &pcols {
        let _ = write!(h.0, "<th scope=\"col\" class=\"param\">{}</th>", esc(k));
    }
    for k in &mcols {
        metric_header(h, q, &rq.filter.sort, k);
    }
    h.raw("</tr></thead><tbody>");
    for r in runs {
        run_row(h, r, &pcols, &mcols);
    }
    h.raw("</tbody></table></div></form>");
}

/// A metric's column header: it sorts by it (best first; again: the other way).
fn metric_header(h: &mut Html, q: &Query, sort: &Option<(String, bool)>, k: &str) {
    let (order, arrow) = match sort {
        Some((s, false)) if s == k => ("asc", " ▼"),
        Some((s, true)) if s == k => ("desc", " ▲"),
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

fn run_row(h: &mut Html, r: &RunSummary, pcols: &[&String], mcols: &[&String]) {
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
    status_badge(h, &r.status);
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
    for k in pcols {
        h.el(
            "td",
            "class=\"param\"",
            &r.params.get(*k).map(param_text).unwrap_or_default(),
        );
    }
    for k in mcols {
        h.el(
            "td",
            "class=\"num\"",
            &r.metrics.get(*k).map(|v| metric(*v)).unwrap_or_default(),
        );
    }
    h.raw("</tr>");
}

/// Pages: which runs these are, newer and older.
fn pager(h: &mut Html, q: &Query, rq: &RunsQuery, offset: usize, shown: usize, more: bool) {
    h.raw("<nav class=\"pages\" aria-label=\"pages\">");
    let _ = write!(h.0, "<span>runs {}–{}</span> ", offset + 1, offset + shown);
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
}

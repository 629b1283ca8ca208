//! Runs side by side, one row per run field, param, metric, data path and package.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{all, bad, bytes, get, not_found, param_text, resolve_run, time, with};
use crate::error::Result;
use crate::report::{metric, short_hash};
use crate::store::Store;
use crate::store::query::{RunDetail, RunFilter, RunSummary};
use crate::ui::html::{Html, esc, page, url};
use crate::ui::{Query, Reply};

pub fn compare(store: &Store, q: &Query) -> Result<Reply> {
    let ids = match wanted_runs(store, q) {
        Ok(ids) => ids,
        Err(refused) => return refused,
    };
    let f = RunFilter {
        ids: Some(ids.clone()),
        with_params: true,
        ..RunFilter::default()
    };
    let mut listed = store.list_runs(&f)?;
    listed.sort_by_key(|r| ids.iter().position(|i| *i == r.id));
    let details: Vec<RunDetail> = ids
        .iter()
        .map(|i| store.run_detail(i, false))
        .collect::<Result<_>>()?;
    let mut t = Table {
        h: Html::default(),
        all_rows: get(q, "all") == Some("1"),
    };
    t.head(q, &listed);
    run_rows(&mut t, &listed, &details);
    param_rows(&mut t, &listed);
    metric_rows(&mut t, &listed);
    data_rows(&mut t, &details);
    env_rows(&mut t, &details);
    t.h.raw("</tbody></table></div>");
    Ok(Reply::ok(page("Compare runs", "Runs", &t.h.0, false)))
}

/// The run ids the query names, each once, in its order; or the reply refusing it.
fn wanted_runs(store: &Store, q: &Query) -> std::result::Result<Vec<String>, Result<Reply>> {
    let wanted: Vec<String> = all(q, "runs")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.len() < 2 {
        return Err(bad(
            "compare needs two or more runs: /compare?runs=A,B (select them on the runs page)",
        ));
    }
    let mut ids = Vec::new();
    for w in &wanted {
        match resolve_run(store, w) {
            Ok(id) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(e) => return Err(not_found(&e)),
        }
    }
    if ids.len() < 2 {
        return Err(bad(
            "these name one run: compare needs two or more different runs",
        ));
    }
    Ok(ids)
}

/// The comparison table being written, and whether rows that do not differ are shown.
struct Table {
    h: Html,
    all_rows: bool,
}

impl Table {
    /// The title, the "only differences" switch and the column of each run.
    fn head(&mut self, q: &Query, listed: &[RunSummary]) {
        let h = &mut self.h;
        h.raw("<h1>Compare runs</h1><p class=\"actions\">");
        let toggle = if self.all_rows {
            with(q, "all", None)
        } else {
            with(q, "all", Some("1"))
        };
        let _ = write!(
            h.0,
            "<a href=\"/compare{}\" role=\"switch\" aria-checked=\"{}\" id=\"only-diff\">Only differences: {}</a>",
            esc(&toggle),
            !self.all_rows,
            if self.all_rows { "off" } else { "on" }
        );
        h.raw(" · deltas are against the first run</p>");
        h.raw("<div class=\"scroll\"><table class=\"compare\"><thead><tr><th scope=\"col\"></th>");
        for r in listed {
            h.raw("<th scope=\"col\">")
                .link(&format!("/run/{}", url(&r.id)), &r.short_id)
                .raw("</th>");
        }
        h.raw("</tr></thead><tbody>");
    }

    /// One row: a value per run (and for metrics, its delta against the first run).
    fn row(
        &mut self,
        group: &str,
        name: &str,
        cells: Vec<Option<String>>,
        deltas: Option<Vec<Option<f64>>>,
    ) {
        let h = &mut self.h;
        let differs = cells.windows(2).any(|w| w[0] != w[1]);
        if !self.all_rows && !differs {
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
    }
}

/// The runs themselves and their code.
fn run_rows(t: &mut Table, listed: &[RunSummary], details: &[RunDetail]) {
    t.row(
        "run",
        "status",
        listed.iter().map(|r| Some(r.status.clone())).collect(),
        None,
    );
    t.row(
        "run",
        "pipeline",
        listed.iter().map(|r| Some(r.pipeline.clone())).collect(),
        None,
    );
    t.row(
        "run",
        "started",
        listed.iter().map(|r| Some(time(r.started_at))).collect(),
        None,
    );
    t.row(
        "run",
        "message",
        listed.iter().map(|r| r.message.clone()).collect(),
        None,
    );
    t.row(
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
    t.row(
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
}

fn param_rows(t: &mut Table, listed: &[RunSummary]) {
    let pkeys: BTreeSet<&String> = listed.iter().flat_map(|r| r.params.keys()).collect();
    for k in pkeys {
        t.row(
            "param",
            k,
            listed
                .iter()
                .map(|r| r.params.get(k).map(param_text))
                .collect(),
            None,
        );
    }
}

fn metric_rows(t: &mut Table, listed: &[RunSummary]) {
    let mkeys: BTreeSet<&String> = listed.iter().flat_map(|r| r.metrics.keys()).collect();
    for k in mkeys {
        let vals: Vec<Option<f64>> = listed.iter().map(|r| r.metrics.get(k).copied()).collect();
        let base = vals[0];
        let deltas = vals
            .iter()
            .map(|v| v.zip(base).map(|(v, b)| v - b))
            .collect();
        t.row(
            "metric",
            k,
            vals.iter().map(|v| v.map(metric)).collect(),
            Some(deltas),
        );
    }
}

/// Data versions: each step input and output path, by hash.
fn data_rows(t: &mut Table, details: &[RunDetail]) {
    let mut outs: BTreeSet<String> = BTreeSet::new();
    for d in details {
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
        t.row("data", p, cells, None);
    }
}

/// The environment: interpreters and packages.
fn env_rows(t: &mut Table, details: &[RunDetail]) {
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
        t.row(
            "env",
            k,
            envs.iter().map(|e| e.get(k).cloned()).collect(),
            None,
        );
    }
}

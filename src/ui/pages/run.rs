//! One run's page: summary, steps, each step's inputs, outputs and logs, code, environment.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{
    bytes, git_section, io_table, kv_table, not_found, param_text, resolve_run, status_badge, time,
};
use crate::error::Result;
use crate::report::{duration_ms, metric, short_hash};
use crate::store::Store;
use crate::store::query::{IoInfo, RunDetail, StepInfo};
use crate::ui::Reply;
use crate::ui::html::{Html, esc, page, url};

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
    heading(&mut h, &d);
    summary(&mut h, &d);
    steps_overview(&mut h, &d);
    for s in &d.steps {
        step_section(&mut h, store, s)?;
    }
    code_section(&mut h, &d);
    environment_section(&mut h, &d);
    let title = format!("Run {}", d.short_id);
    Ok(Reply::ok(page(&title, "Runs", &h.0, d.status == "running")))
}

/// The title, the message and the links to this run's lineage, a comparison and what it replays.
fn heading(h: &mut Html, d: &RunDetail) {
    h.raw("<h1>Run <span class=\"mono\">")
        .text(&d.short_id)
        .raw("</span> ");
    status_badge(h, &d.status);
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
}

/// The run's summary, its params and the metrics of all its steps.
fn summary(h: &mut Html, d: &RunDetail) {
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
    kv_table(h, "summary", rows);
    kv_table(
        h,
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
        h,
        "metrics",
        metrics.iter().map(|(k, v)| (k.to_string(), metric(*v))),
    );
}

/// One row per step: its status, how it ran, how long, how it ended.
fn steps_overview(h: &mut Html, d: &RunDetail) {
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
        status_badge(h, &s.status);
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
}

/// One step: its command, error, inputs, outputs, params, metrics, what --trace saw, its logs.
fn step_section(h: &mut Html, store: &Store, s: &StepInfo) -> Result<()> {
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
    status_badge(h, &s.status);
    h.raw("</h3>");
    h.el("pre", "class=\"cmd\"", &format!("$ {}", s.cmd));
    if let Some(e) = &s.error {
        h.el("p", "class=\"error\"", e);
    }
    io_table(h, "inputs", &s.inputs);
    io_table(h, "outputs", &s.outputs);
    kv_table(
        h,
        "params",
        s.params.iter().map(|(k, v)| (k.clone(), param_text(v))),
    );
    kv_table(
        h,
        "metrics",
        s.metrics.iter().map(|(k, v)| (k.clone(), metric(*v))),
    );
    let traced: Vec<&IoInfo> = s
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
    log_block(h, store, s.exec_id, "stdout")?;
    log_block(h, store, s.exec_id, "stderr")?;
    h.raw("</section>");
    Ok(())
}

/// The git state at the start, and at the end when it changed while the run ran.
fn code_section(h: &mut Html, d: &RunDetail) {
    h.raw("<h2>Code</h2>");
    match &d.git {
        Some(g) => git_section(h, g, "At the start"),
        None => {
            h.el("p", "", "no git state recorded");
        }
    }
    if let Some(g) = &d.git_end
        && d.git.as_ref().map(|s| (&s.commit, s.dirty, s.diff_bytes))
            != Some((&g.commit, g.dirty, g.diff_bytes))
    {
        git_section(h, g, "At the end");
    }
}

/// Each environment the steps ran in: system, interpreters, lockfiles, variables, packages.
fn environment_section(h: &mut Html, d: &RunDetail) {
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
        kv_table(h, "environment", rows);
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
}

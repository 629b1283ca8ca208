//! `mlrun runs`: the recorded runs, newest first.

use std::path::Path;

use comfy_table::{Table, presets};

use crate::cli::RunsArgs;
use crate::error::Result;
use crate::report::{self, ColorChoice, Style, time};
use crate::store::{self, Store, query};

pub fn runs(args: RunsArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let store = Store::open_existing(&store::find_dir(store_dir)?)?;
    let limit = if args.limit == 0 {
        None
    } else {
        Some(args.limit)
    };
    let runs = query::list_runs(&store.conn, limit)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&runs).unwrap_or_default()
        );
        return Ok(0);
    }
    if runs.is_empty() {
        println!("no runs recorded yet; run a pipeline with `mlrun pipeline.toml`");
        return Ok(0);
    }
    let style = Style::stdout(color);
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header([
        "ID", "PIPELINE", "STATUS", "STARTED", "DURATION", "COMMIT", "METRICS",
    ]);
    for r in &runs {
        let commit = match &r.commit {
            Some(c) => format!("{}{}", &c[..7.min(c.len())], if r.dirty { "+" } else { "" }),
            None => "-".into(),
        };
        let mut status = style.status(&r.status);
        if r.replay_of.is_some() {
            status += &format!(" (replay: {})", r.replay_verdict.as_deref().unwrap_or("?"));
        }
        let metrics: Vec<String> = r
            .metrics
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k}={}", report::metric(*v)))
            .collect();
        table.add_row([
            style.cyan(&r.short_id),
            r.pipeline.clone(),
            status,
            time::local(r.started_at),
            r.duration_ms
                .map_or_else(|| "-".into(), report::duration_ms),
            commit,
            metrics.join(" "),
        ]);
    }
    println!("{}", table.trim_fmt());
    Ok(0)
}

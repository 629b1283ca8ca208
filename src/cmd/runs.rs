//! `mlrun runs`: the recorded runs, newest first.

use std::path::Path;

use comfy_table::Cell;

use crate::error::Result;
use crate::report::Role;
use crate::report::{self, ColorChoice, Style, time};
use crate::store::filter::{parse_metric, parse_param, parse_since, parse_sort};
use crate::store::query::{Cmp, RunFilter, RunSource};
use crate::store::{self, Store, query};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  mlrun runs --pipeline demo --status succeeded --since 2d
  mlrun runs --param train.lr=0.1 --metric 'accuracy>=0.9' --sort accuracy
  mlrun runs --sort final_loss:asc -n 5
  mlrun runs --no-replays         the workspace's own runs, without replays
  mlrun runs --grep 'dropout'     runs whose message (`run -m`, `note`) mentions dropout
  mlrun runs --columns status,params.train.lr,metrics.accuracy   choose the columns")]
pub struct RunsArgs {
    /// Show at most N runs (0 for all)
    #[arg(short = 'n', long, default_value_t = 20, value_name = "N")]
    pub limit: usize,

    /// Only runs of this pipeline
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,

    /// Only runs with this status
    #[arg(long, value_name = "STATUS", value_parser = ["running", "succeeded", "failed", "interrupted"])]
    pub status: Option<String>,

    /// Only runs started since a time: a duration ago (`2d`, `3h`, `90m`) or a date (`2024-05-01`,
    /// `2024-05-01T14:00`)
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<i64>,

    /// Only runs whose param KEY has this value (repeatable)
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, serde_json::Value)>,

    /// Only runs whose metric satisfies a comparison: `accuracy>0.9` (>, >=, <, <=, =, !=;
    /// repeatable)
    #[arg(long = "metric", value_name = "EXPR", value_parser = parse_metric)]
    pub metrics: Vec<(String, Cmp, f64)>,

    /// Sort by a metric, highest first (`METRIC:asc` for lowest first); runs without it last
    #[arg(long, value_name = "METRIC[:asc]", value_parser = parse_sort)]
    pub sort: Option<(String, bool)>,

    /// Only replays (`mlrun replay` runs) [default: every run, replays marked in STATUS]
    #[arg(long, overrides_with = "no_replays")]
    pub replays: bool,

    /// No replays: only the runs of the workspace itself
    #[arg(long, overrides_with = "replays")]
    pub no_replays: bool,

    /// Only runs whose message contains TEXT (ignoring the case of ASCII letters)
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,

    /// Only the runs of a sweep (`mlrun run --sweep`; an id prefix)
    #[arg(long, value_name = "ID")]
    pub sweep: Option<String>,

    /// Choose the table's columns, in order, comma-separated (repeatable): id, pipeline, status,
    /// started, duration, commit, metrics, message, params.KEY, metrics.KEY; ID comes first when
    /// not named. Metrics left without a column are counted under the table
    #[arg(long, value_name = "COLS", value_parser = parse_columns)]
    pub columns: Vec<Vec<Column>>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Query the team remote's record (PostgreSQL) instead of the local store
    #[arg(long)]
    pub remote: bool,
}

pub fn runs(args: RunsArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    if args.remote {
        // answered by the remote's PostgreSQL itself (`remote::runs`), printed alike
        let remote = crate::remote::runs::open(store_dir)?;
        list(&remote, &args, color)?;
        return Ok(0);
    }
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    if list(&store, &args, color)?
        && let Some(n) = crate::live::pending_note(&store, None)
    {
        Style::stderr(color).note(&n);
    }
    Ok(0)
}

/// The list from `source` (the local store or the remote), as JSON or a table. True when a
/// table of runs was printed.
fn list(source: &dyn RunSource, args: &RunsArgs, color: ColorChoice) -> Result<bool> {
    let filter = filter_of(args, source)?;
    let columns = columns_of(args);
    let runs = source.runs(&filter)?;
    check_names(source, args, &runs, columns.as_deref())?;
    if args.json {
        crate::report::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&runs).unwrap_or_default()
        ));
        return Ok(false);
    }
    if runs.is_empty() {
        if is_filtered(&filter) {
            report::emit("no run matches these filters\n");
        } else {
            report::emit("no runs recorded yet; run a pipeline with `mlrun pipeline.toml`\n");
        }
        return Ok(false);
    }
    let out = render(source, args, &runs, columns, color)?;
    report::emit(&out);
    Ok(true)
}

/// The store's filter for these arguments (a sweep id prefix resolved).
fn filter_of(args: &RunsArgs, source: &dyn RunSource) -> Result<RunFilter> {
    let sweep = match &args.sweep {
        Some(s) => Some(source.sweep(s)?),
        None => None,
    };
    Ok(RunFilter {
        sweep,
        pipeline: args.pipeline.clone(),
        status: args.status.clone(),
        since: args.since,
        params: args.params.clone(),
        metrics: args.metrics.clone(),
        sort: args.sort.clone(),
        limit: (args.limit != 0).then_some(args.limit),
        offset: 0,
        replays: if args.replays {
            Some(true)
        } else if args.no_replays {
            Some(false)
        } else {
            None
        },
        grep: args.grep.clone(),
        ids: None,
        with_params: args
            .columns
            .iter()
            .flatten()
            .any(|c| matches!(c, Column::Param(_))),
    })
}

/// The `--columns` asked for, in order, each once; `None` when none were.
fn columns_of(args: &RunsArgs) -> Option<Vec<Column>> {
    // repeated --columns add up
    (!args.columns.is_empty()).then(|| {
        let mut all: Vec<Column> = Vec::new();
        for c in args.columns.iter().flatten() {
            if !all.contains(c) {
                all.push(c.clone());
            }
        }
        all
    })
}

/// Whether any filter narrows the list (an empty list then says "no run matches").
fn is_filtered(filter: &RunFilter) -> bool {
    filter.grep.is_some()
        || filter.replays.is_some()
        || filter.pipeline.is_some()
        || filter.status.is_some()
        || filter.since.is_some()
        || !filter.params.is_empty()
        || !filter.metrics.is_empty()
}

/// Names no recorded run has (a pipeline, a param or metric filter, a column) are errors.
fn check_names(
    store: &dyn RunSource,
    args: &RunsArgs,
    runs: &[query::RunSummary],
    columns: Option<&[Column]>,
) -> Result<()> {
    if runs.is_empty() {
        // a name no run has is more likely a typo than a question: say so, with the names known
        let params: Vec<&str> = args.params.iter().map(|(k, _)| k.as_str()).collect();
        let metrics: Vec<&str> = args.metrics.iter().map(|(k, ..)| k.as_str()).collect();
        if let Some(e) = unknown_name(store, args.pipeline.as_deref(), &params, &metrics)? {
            return Err(e);
        }
    }
    if let Some(cols) = columns {
        // a param or metric no recorded run has is a typo more likely than a question
        let params: Vec<&str> = cols
            .iter()
            .filter_map(|c| match c {
                Column::Param(k) => Some(k.as_str()),
                _ => None,
            })
            .collect();
        let metrics: Vec<&str> = cols
            .iter()
            .filter_map(|c| match c {
                Column::Metric(k) => Some(k.as_str()),
                _ => None,
            })
            .collect();
        if let Some(e) = unknown_name(store, None, &params, &metrics)? {
            return Err(e.hint("`--columns` takes params.KEY and metrics.KEY"));
        }
    }
    Ok(())
}

/// The table, with the notes under it on metrics it could not show.
fn render(
    store: &dyn RunSource,
    args: &RunsArgs,
    runs: &[query::RunSummary],
    columns: Option<Vec<Column>>,
    color: ColorChoice,
) -> Result<String> {
    let style = Style::stdout(color);
    let tz = jiff::tz::TimeZone::system();
    let local = |ms: i64| match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => time::local(ms),
    };
    let cols = match columns {
        Some(c) => c,
        None => default_columns(runs),
    };
    // runs whose params were overridden on the command line are marked in STATUS
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let overrides = store.overrides(&ids)?;
    let with_metrics_cell = cols.contains(&Column::Builtin(Builtin::Metrics));
    let metric_cols: std::collections::BTreeSet<&str> = cols
        .iter()
        .filter_map(|c| match c {
            Column::Metric(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    let mut hidden_metrics = false;
    // metrics no column shows (with --columns and no METRICS column)
    let mut unshown: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // comfy-table measures a cell by its display width (a CJK character or an emoji takes two
    // columns) and colours it itself, so colour codes never count as width
    let mut table = report::table(style);
    table.set_header(cols.iter().map(|c| c.header(&cols)).collect::<Vec<_>>());
    for r in runs {
        // the sort and filter metrics first, so the column explains the order; metrics that
        // have a column of their own are not repeated
        let mut keys: Vec<&str> = Vec::new();
        if let Some((k, _)) = &args.sort {
            keys.push(k);
        }
        keys.extend(args.metrics.iter().map(|(k, ..)| k.as_str()));
        keys.extend(r.metrics.keys().map(String::as_str));
        let mut seen = std::collections::HashSet::new();
        let all: Vec<String> = keys
            .into_iter()
            .filter(|k| seen.insert(*k) && !metric_cols.contains(k))
            .filter_map(|k| {
                r.metrics
                    .get(k)
                    .map(|v| format!("{k}={}", report::metric(*v)))
            })
            .collect();
        if !with_metrics_cell {
            unshown.extend(
                r.metrics
                    .keys()
                    .filter(|k| !metric_cols.contains(k.as_str()))
                    .cloned(),
            );
        }
        let mut metrics: Vec<String> = all.iter().take(METRIC_CELLS).cloned().collect();
        if with_metrics_cell && all.len() > METRIC_CELLS {
            // never drop a metric silently: say how many more, and (below) where they are
            metrics.push(format!("+{} more", all.len() - METRIC_CELLS));
            hidden_metrics = true;
        }
        let row: Vec<Cell> = cols
            .iter()
            .map(|c| cell(c, r, &metrics, &overrides, &local, &style))
            .collect();
        table.add_row(row);
    }
    let mut out = report::render_table(&table);
    if hidden_metrics {
        out += &format!(
            "{}\n",
            style.paint(Role::Muted, &format!(
                "+N more: {METRIC_CELLS} metrics fit per run; `--columns metrics.NAME,...` makes them columns, `mlrun show RUN` or `mlrun runs --json` lists them all; `--sort KEY` or `--metric` chooses which come first"
            ))
        );
    }
    if !unshown.is_empty() {
        let names: Vec<String> = unshown.into_iter().collect();
        out += &format!(
            "{}\n",
            style.paint(
                Role::Muted,
                &format!(
                    "+{} metric{} not shown ({}): add `metrics.NAME` or `metrics` to --columns",
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    list_names(&names)
                )
            )
        );
    }
    Ok(out)
}

/// A column of the `runs` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Id,
    Pipeline,
    Status,
    Started,
    Duration,
    Commit,
    Metrics,
    Message,
}

const BUILTINS: [(&str, Builtin); 8] = [
    ("id", Builtin::Id),
    ("pipeline", Builtin::Pipeline),
    ("status", Builtin::Status),
    ("started", Builtin::Started),
    ("duration", Builtin::Duration),
    ("commit", Builtin::Commit),
    ("metrics", Builtin::Metrics),
    ("message", Builtin::Message),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Builtin(Builtin),
    /// `params.KEY`
    Param(String),
    /// `metrics.KEY`
    Metric(String),
}

impl Column {
    /// Its header: a built-in column in capitals, a param or metric by its key (with its
    /// `params.`/`metrics.` prefix when a param and a metric share the key).
    fn header(&self, all: &[Column]) -> String {
        match self {
            Column::Builtin(b) => BUILTINS
                .iter()
                .find(|(_, x)| x == b)
                .map_or(String::new(), |(n, _)| n.to_ascii_uppercase()),
            Column::Param(k) if all.contains(&Column::Metric(k.clone())) => format!("params.{k}"),
            Column::Metric(k) if all.contains(&Column::Param(k.clone())) => format!("metrics.{k}"),
            Column::Param(k) | Column::Metric(k) => k.clone(),
        }
    }
}

/// `--columns id,params.lr,metrics.acc`: the columns, in order (ID first when not named).
pub fn parse_columns(s: &str) -> Result<Vec<Column>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let col = if let Some(k) = item.strip_prefix("params.").or(item.strip_prefix("param.")) {
            Column::Param(k.to_string())
        } else if let Some(k) = item
            .strip_prefix("metrics.")
            .or(item.strip_prefix("metric."))
        {
            Column::Metric(k.to_string())
        } else if let Some((_, b)) = BUILTINS.iter().find(|(n, _)| n.eq_ignore_ascii_case(item)) {
            Column::Builtin(*b)
        } else {
            let names = BUILTINS.iter().map(|(n, _)| *n);
            let mean = crate::pipeline::diag::did_you_mean(item, names)
                .map_or(String::new(), |m| format!("did you mean `{m}`? "));
            return Err(format!(
                "`{item}` is not a column; {mean}columns: {}, params.KEY, metrics.KEY",
                BUILTINS.map(|(n, _)| n).join(", ")
            ));
        };
        if matches!(&col, Column::Param(k) | Column::Metric(k) if k.is_empty()) {
            return Err(format!(
                "`{item}` names no key: write e.g. params.lr or metrics.accuracy"
            ));
        }
        if !out.contains(&col) {
            out.push(col);
        }
    }
    if out.is_empty() {
        return Err("name at least one column, e.g. --columns params.lr,metrics.accuracy".into());
    }
    if !out.contains(&Column::Builtin(Builtin::Id)) {
        out.insert(0, Column::Builtin(Builtin::Id));
    }
    Ok(out)
}

/// How many metrics the METRICS column shows per run before `+N more`.
const METRIC_CELLS: usize = 3;

/// How many characters of a message the MESSAGE column shows (`show` prints all of it).
const MESSAGE_CHARS: usize = 60;

/// A message as one table cell: its first line, cut to `MESSAGE_CHARS` with `…` when longer.
pub fn one_line(message: &str) -> String {
    let first = message.trim().lines().next().unwrap_or("");
    let more = message.trim().lines().nth(1).is_some();
    if first.chars().count() > MESSAGE_CHARS {
        let cut: String = first.chars().take(MESSAGE_CHARS - 1).collect();
        format!("{}…", cut.trim_end())
    } else if more {
        format!("{first} …")
    } else {
        first.to_string()
    }
}

/// The first of `pipeline`, `params`, `metrics` that no recorded run has, as an error that
/// names the known ones (and the closest); `None` when every name is known.
pub fn unknown_name(
    store: &dyn RunSource,
    pipeline: Option<&str>,
    params: &[&str],
    metrics: &[&str],
) -> Result<Option<crate::error::Error>> {
    use query::Known;
    let checks = pipeline
        .map(|p| (Known::Pipelines, p))
        .into_iter()
        .chain(params.iter().map(|p| (Known::Params, *p)))
        .chain(metrics.iter().map(|m| (Known::Metrics, *m)));
    let mut cache: Vec<(Known, Vec<String>)> = Vec::new();
    for (what, name) in checks {
        let known = match cache.iter().find(|(k, _)| *k == what) {
            Some((_, v)) => v.clone(),
            None => {
                let v = store.names(what)?;
                cache.push((what, v.clone()));
                v
            }
        };
        if known.iter().any(|k| k == name) {
            continue;
        }
        let noun = match what {
            Known::Pipelines => "pipeline",
            Known::Params => "param",
            Known::Metrics => "metric",
        };
        let mut e = crate::error::Error::other(format!("no recorded run has a {noun} `{name}`"));
        if let Some(s) = crate::pipeline::diag::did_you_mean(name, known.iter().map(String::as_str))
        {
            e = e.hint(format!("did you mean `{s}`?"));
        }
        e = e.hint(if known.is_empty() {
            format!("no run recorded any {noun} yet")
        } else {
            format!("known {noun}s: {}", list_names(&known))
        });
        return Ok(Some(e));
    }
    Ok(None)
}

/// `a, b, c` (at most 20, then `… and N more`).
fn list_names(names: &[String]) -> String {
    const MAX: usize = 20;
    let shown: Vec<&str> = names.iter().take(MAX).map(String::as_str).collect();
    let mut s = shown.join(", ");
    if names.len() > MAX {
        s += &format!(" … and {} more", names.len() - MAX);
    }
    s
}

/// The columns without `--columns`: id, pipeline, status, started, duration, commit, metrics,
/// and message when a shown run has one.
fn default_columns(runs: &[query::RunSummary]) -> Vec<Column> {
    let mut c: Vec<Column> = [
        Builtin::Id,
        Builtin::Pipeline,
        Builtin::Status,
        Builtin::Started,
        Builtin::Duration,
        Builtin::Commit,
        Builtin::Metrics,
    ]
    .into_iter()
    .map(Column::Builtin)
    .collect();
    // MESSAGE only when a shown run has one, last since it is free text
    if runs.iter().any(|r| r.message.is_some()) {
        c.push(Column::Builtin(Builtin::Message));
    }
    c
}

/// One cell of a run's row. `metrics`: the METRICS cell's `key=value`s.
fn cell(
    c: &Column,
    r: &query::RunSummary,
    metrics: &[String],
    overrides: &std::collections::HashMap<String, Vec<String>>,
    local: &dyn Fn(i64) -> String,
    style: &Style,
) -> Cell {
    match c {
        Column::Builtin(Builtin::Id) => style.cell(Some(Role::Accent), &r.short_id),
        Column::Builtin(Builtin::Pipeline) => Cell::new(&r.pipeline),
        Column::Builtin(Builtin::Status) => {
            let mut status = r.status.clone();
            if r.replay_of.is_some() {
                status += &format!(" (replay: {})", r.replay_verdict.as_deref().unwrap_or("?"));
            }
            if let Some(p) = overrides.get(&r.id) {
                let mut shown: Vec<&str> = p.iter().take(2).map(String::as_str).collect();
                if p.len() > 2 {
                    shown.push("…");
                }
                status += &format!(" (-p {})", shown.join(" "));
            }
            style.cell(Style::status_role(&r.status), status)
        }
        Column::Builtin(Builtin::Started) => Cell::new(local(r.started_at)),
        Column::Builtin(Builtin::Duration) => Cell::new(
            r.duration_ms
                .map_or_else(|| "-".into(), report::duration_ms),
        ),
        Column::Builtin(Builtin::Commit) => Cell::new(match &r.commit {
            Some(c) => {
                format!("{}{}", &c[..7.min(c.len())], if r.dirty { "+" } else { "" })
            }
            None => "-".into(),
        }),
        Column::Builtin(Builtin::Metrics) => Cell::new(metrics.join(" ")),
        Column::Builtin(Builtin::Message) => {
            Cell::new(r.message.as_deref().map_or_else(String::new, one_line))
        }
        Column::Param(k) => Cell::new(
            r.params
                .get(k)
                .map_or_else(|| "-".into(), crate::pipeline::params::render),
        ),
        Column::Metric(k) => Cell::new(
            r.metrics
                .get(k)
                .map_or_else(|| "-".into(), |v| report::metric(*v)),
        ),
    }
}

//! `mlrun runs`: the recorded runs, newest first.

use std::path::Path;

use comfy_table::Cell;

use crate::error::Result;
use crate::report::Role;
use crate::report::{self, ColorChoice, Style, time};
use crate::store::query::{Cmp, RunFilter};
use crate::store::{self, Store, query};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  mlrun runs --pipeline demo --status succeeded --since 2d
  mlrun runs --param train.lr=0.1 --metric 'accuracy>=0.9' --sort accuracy
  mlrun runs --sort final_loss:asc -n 5
  mlrun runs --no-replays         the workspace's own runs, without replays
  mlrun runs --grep 'dropout'     runs whose message (`run -m`, `note`) mentions dropout")]
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
    pub metrics: Vec<(String, crate::store::query::Cmp, f64)>,

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

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

pub fn runs(args: RunsArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    let filter = RunFilter {
        pipeline: args.pipeline.clone(),
        status: args.status.clone(),
        since: args.since,
        params: args.params.clone(),
        metrics: args.metrics.clone(),
        sort: args.sort.clone(),
        limit: (args.limit != 0).then_some(args.limit),
        replays: if args.replays {
            Some(true)
        } else if args.no_replays {
            Some(false)
        } else {
            None
        },
        grep: args.grep.clone(),
        ids: None,
        with_params: false,
    };
    let filtered = filter.grep.is_some()
        || filter.replays.is_some()
        || filter.pipeline.is_some()
        || filter.status.is_some()
        || filter.since.is_some()
        || !filter.params.is_empty()
        || !filter.metrics.is_empty();
    let runs = store.list_runs(&filter)?;
    if runs.is_empty() {
        // a name no run has is more likely a typo than a question: say so, with the names known
        let params: Vec<&str> = args.params.iter().map(|(k, _)| k.as_str()).collect();
        let metrics: Vec<&str> = args.metrics.iter().map(|(k, ..)| k.as_str()).collect();
        if let Some(e) = unknown_name(&store, args.pipeline.as_deref(), &params, &metrics)? {
            return Err(e);
        }
    }
    if args.json {
        crate::report::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&runs).unwrap_or_default()
        ));
        return Ok(0);
    }
    if runs.is_empty() {
        if filtered {
            report::emit("no run matches these filters\n");
        } else {
            report::emit("no runs recorded yet; run a pipeline with `mlrun pipeline.toml`\n");
        }
        return Ok(0);
    }
    let style = Style::stdout(color);
    let tz = jiff::tz::TimeZone::system();
    let local = |ms: i64| match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => time::local(ms),
    };
    let mut hidden_metrics = false;
    // MESSAGE only when a shown run has one, last since it is free text
    let with_message = runs.iter().any(|r| r.message.is_some());
    let ncols = if with_message { 8 } else { 7 };
    // comfy-table measures a cell by its display width (a CJK character or an emoji takes two
    // columns) and colours it itself, so colour codes never count as width
    let mut table = report::table(style);
    table.set_header(
        &[
            "ID", "PIPELINE", "STATUS", "STARTED", "DURATION", "COMMIT", "METRICS", "MESSAGE",
        ][..ncols],
    );
    for r in &runs {
        let commit = match &r.commit {
            Some(c) => format!("{}{}", &c[..7.min(c.len())], if r.dirty { "+" } else { "" }),
            None => "-".into(),
        };
        let mut status = r.status.clone();
        if r.replay_of.is_some() {
            status += &format!(" (replay: {})", r.replay_verdict.as_deref().unwrap_or("?"));
        }
        let status = style.cell(Style::status_role(&r.status), status);
        // the sort and filter metrics first, so the column explains the order
        let mut keys: Vec<&str> = Vec::new();
        if let Some((k, _)) = &args.sort {
            keys.push(k);
        }
        keys.extend(args.metrics.iter().map(|(k, ..)| k.as_str()));
        keys.extend(r.metrics.keys().map(String::as_str));
        let mut shown = std::collections::HashSet::new();
        let all: Vec<String> = keys
            .into_iter()
            .filter(|k| shown.insert(*k))
            .filter_map(|k| {
                r.metrics
                    .get(k)
                    .map(|v| format!("{k}={}", report::metric(*v)))
            })
            .collect();
        let mut metrics: Vec<String> = all.iter().take(METRIC_CELLS).cloned().collect();
        if all.len() > METRIC_CELLS {
            // never drop a metric silently: say how many more, and (below) where they are
            metrics.push(format!("+{} more", all.len() - METRIC_CELLS));
            hidden_metrics = true;
        }
        let mut row = vec![
            style.cell(Some(Role::Accent), &r.short_id),
            Cell::new(&r.pipeline),
            status,
            Cell::new(local(r.started_at)),
            Cell::new(
                r.duration_ms
                    .map_or_else(|| "-".into(), report::duration_ms),
            ),
            Cell::new(commit),
            Cell::new(metrics.join(" ")),
        ];
        if with_message {
            row.push(Cell::new(
                r.message.as_deref().map_or_else(String::new, one_line),
            ));
        }
        table.add_row(row);
    }
    let mut out = report::render_table(&table);
    if hidden_metrics {
        out += &format!(
            "{}\n",
            style.paint(Role::Muted, &format!(
                "+N more: {METRIC_CELLS} metrics fit per run; `mlrun show RUN` or `mlrun runs --json` lists them all; `--sort KEY` or `--metric` chooses which come first"
            ))
        );
    }
    report::emit(&out);
    if let Some(n) = crate::live::pending_note(&store, None) {
        Style::stderr(color).note(&n);
    }
    Ok(0)
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
    store: &Store,
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
                let v = store.known_names(what)?;
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

/// `--since`: `2d`, `3h`, `90m` ago, or a date / date-time in local time, or RFC 3339.
pub fn parse_since(s: &str) -> Result<i64, String> {
    let now = crate::store::record::now_ms();
    let t = s.trim();
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(now - d.as_millis() as i64);
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let tz = jiff::tz::TimeZone::system();
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>()
        && let Ok(z) = dt.to_zoned(tz.clone())
    {
        return Ok(z.timestamp().as_millisecond());
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>()
        && let Ok(z) = d.to_zoned(tz)
    {
        return Ok(z.timestamp().as_millisecond());
    }
    Err(format!(
        "`{s}` is neither a duration nor a date (examples: 2d, 3h, 90m, 2024-05-01, 2024-05-01T14:00)"
    ))
}

/// `--param key=value`: the value is read as in `mlrun run -p` (TOML, else a string).
pub fn parse_param(s: &str) -> Result<(String, serde_json::Value), String> {
    crate::pipeline::params::parse_override(s).map_err(|e| {
        e.hints
            .first()
            .map_or_else(|| e.message.clone(), |h| format!("{}; {h}", e.message))
    })
}

/// `--metric 'accuracy>0.9'`
pub fn parse_metric(s: &str) -> Result<(String, Cmp, f64), String> {
    let bad = || {
        format!(
            "`{s}` is not a metric comparison (examples: accuracy>0.9, loss<=0.2, epochs=10, f1!=0)"
        )
    };
    let i = s.find(['<', '>', '=', '!']).ok_or_else(bad)?;
    let (key, rest) = (s[..i].trim(), &s[i..]);
    let (cmp, value) = [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        ("!=", Cmp::Ne),
        ("==", Cmp::Eq),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
        ("=", Cmp::Eq),
    ]
    .iter()
    .find_map(|(op, c)| rest.strip_prefix(op).map(|v| (*c, v.trim())))
    .ok_or_else(bad)?;
    if key.is_empty() {
        return Err(bad());
    }
    let v: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` in `{s}` is not a number (metrics are numbers)"))?;
    Ok((key.to_string(), cmp, v))
}

/// `--sort METRIC` (highest first) or `METRIC:asc` / `METRIC:desc`.
pub fn parse_sort(s: &str) -> Result<(String, bool), String> {
    let (key, asc) = match s.rsplit_once(':') {
        Some((k, "asc")) => (k, true),
        Some((k, "desc")) => (k, false),
        Some((k, other)) => {
            return Err(format!(
                "`{other}` is not a sort order; write `{k}:asc` or `{k}:desc`"
            ));
        }
        None => (s, false),
    };
    if key.trim().is_empty() {
        return Err("name the metric to sort by, e.g. `--sort accuracy`".into());
    }
    Ok((key.trim().to_string(), asc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_comparisons() {
        assert_eq!(
            parse_metric("accuracy>0.9").unwrap(),
            ("accuracy".into(), Cmp::Gt, 0.9)
        );
        assert_eq!(
            parse_metric(" loss <= 2 ").unwrap(),
            ("loss".into(), Cmp::Le, 2.0)
        );
        assert_eq!(parse_metric("f1!=0").unwrap(), ("f1".into(), Cmp::Ne, 0.0));
        assert_eq!(parse_metric("n=10").unwrap(), ("n".into(), Cmp::Eq, 10.0));
        assert!(parse_metric("accuracy").is_err());
        assert!(parse_metric(">0.9").is_err());
        assert!(parse_metric("accuracy>high").is_err());
        assert!(parse_metric("accuracy=>1").is_err());
    }

    #[test]
    fn since_takes_durations_and_dates() {
        let now = crate::store::record::now_ms();
        let two_days = parse_since("2d").unwrap();
        assert!((now - two_days - 2 * 86_400_000).abs() < 5_000);
        assert!(parse_since("2024-05-01").unwrap() < now);
        assert!(parse_since("2024-05-01T14:00").unwrap() > parse_since("2024-05-01").unwrap());
        assert!(parse_since("yesterday-ish").is_err());
    }

    #[test]
    fn sort_orders() {
        assert_eq!(parse_sort("acc").unwrap(), ("acc".into(), false));
        assert_eq!(parse_sort("loss:asc").unwrap(), ("loss".into(), true));
        let e = parse_sort("loss:up").unwrap_err();
        assert!(e.contains("`loss:asc` or `loss:desc`"), "{e}");
    }
}

//! `mlrun compare [RUN ...]`: one table of params × metrics over many runs, keeping only the
//! columns whose values differ (what changed between the runs, and what it did to the metrics).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::report::Role;
use crate::report::{self, ColorChoice, Style};
use crate::store::query::{RunFilter, RunSummary};
use crate::store::{self, Store};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  mlrun compare                       the last 10 runs of the newest run's pipeline
  mlrun compare -n 30 --sort accuracy the last 30, best accuracy first
  mlrun compare latest~2 latest~1 latest
  mlrun compare --pipeline demo --csv > runs.csv

RUN is a run id prefix, `latest`, `latest~N` or `latest-replay`.")]
pub struct CompareArgs {
    /// The runs to compare [default: the last N runs of a pipeline, replays left out]
    #[arg(value_name = "RUN")]
    pub runs: Vec<String>,

    /// Without RUNs: compare the last N runs (0 for all)
    #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
    pub limit: usize,

    /// Without RUNs: runs of this pipeline [default: the pipeline of the newest run]
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,

    /// The runs of this sweep (`mlrun run --sweep`; an id prefix) [default, when the newest run
    /// is a sweep's: that sweep]
    #[arg(long, value_name = "ID", conflicts_with_all = ["runs", "pipeline"])]
    pub sweep: Option<String>,

    /// Every param and metric as a column, not only those that differ between the runs
    #[arg(long)]
    pub all: bool,

    /// Order by a metric, highest first (`METRIC:asc` for lowest first); runs without it last
    #[arg(long, value_name = "METRIC[:asc]", value_parser = crate::store::filter::parse_sort)]
    pub sort: Option<(String, bool)>,

    /// Print JSON instead of a table
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,

    /// Print CSV (one line per run) instead of a table
    #[arg(long)]
    pub csv: bool,

    /// Query the team remote's record (PostgreSQL) instead of the local store
    #[arg(long)]
    pub remote: bool,
}

impl CompareArgs {
    /// `mlrun compare --sweep ID`: the table a sweep prints at its end.
    pub fn of_sweep(id: &str) -> CompareArgs {
        CompareArgs {
            runs: Vec::new(),
            limit: 0,
            pipeline: None,
            sweep: Some(id.to_string()),
            all: false,
            sort: None,
            json: false,
            csv: false,
            remote: false,
        }
    }
}

/// The `--json` document (README "JSON shapes").
#[derive(Debug, Serialize)]
struct Comparison {
    /// the pipeline whose last runs were taken; `null` when RUNs were named
    pipeline: Option<String>,
    /// the sweep whose runs these are (`--sweep`, or the default when the newest run is a
    /// sweep's); `null` otherwise
    sweep_id: Option<String>,
    /// the columns shown, in order
    params: Vec<String>,
    metrics: Vec<String>,
    /// the columns left out because every run has the same value (empty with `--all`)
    same: Same,
    runs: Vec<Row>,
}

#[derive(Debug, Default, Serialize)]
struct Same {
    params: BTreeMap<String, Value>,
    metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    short_id: String,
    pipeline: String,
    status: String,
    started_at: i64,
    message: Option<String>,
    /// the shown params only (absent: the run had no such param)
    params: BTreeMap<String, Value>,
    /// the shown metrics only (absent: the run did not report it)
    metrics: BTreeMap<String, f64>,
    /// the steps that ran as cluster jobs: step, executor, job id, node, queue wait, run time
    jobs: Vec<StepJob>,
}

#[derive(Debug, Serialize)]
struct StepJob {
    step: String,
    #[serde(flatten)]
    job: crate::store::jobs::JobInfo,
}

type Jobs = BTreeMap<String, Vec<(String, crate::store::jobs::JobRecord)>>;

pub fn compare(mut args: CompareArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    if args.remote {
        return compare_remote(args, store_dir, color);
    }
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    let sweep = sweep_to_compare(&store, &args)?;
    args.sweep = sweep.clone();
    // a thousand runs' rows are large: read them mapped (see the method)
    store.map_for_large_reads();
    if let Some((k, _)) = &args.sort
        && let Some(e) = super::runs::unknown_name(&store, None, &[], &[k.as_str()])?
    {
        return Err(e);
    }
    let (pipeline, mut runs) = match &sweep {
        Some(sw) => {
            let runs = store.list_runs(&RunFilter {
                sweep: Some(sw.clone()),
                with_params: true,
                ..RunFilter::default()
            })?;
            (runs.first().map(|r| r.pipeline.clone()), runs)
        }
        None if args.runs.is_empty() => runs_of_pipeline(&store, &args)?,
        None => (None, named_runs(&store, &args)?),
    };
    if let Some((key, asc)) = &args.sort {
        sort_by_metric(&mut runs, key, *asc);
    }
    let cols = Columns::choose(&runs, args.all, args.sort.as_ref().map(|(k, _)| k.as_str()));
    let jobs = store.jobs_of_runs(&runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>())?;
    // the compare page of these runs, when there are two to compare
    let link = crate::cmd::ui_links(&store.dir, color)
        .filter(|_| runs.len() >= 2)
        .map(|l| {
            let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
            l.compare(&ids, args.all)
        });
    if args.json {
        let doc = Comparison {
            pipeline,
            sweep_id: sweep.clone(),
            params: cols.params.clone(),
            metrics: cols.metrics.clone(),
            same: Same {
                params: cols.same_params.clone(),
                metrics: cols.same_metrics.clone(),
            },
            runs: runs.iter().map(|r| row(r, &cols, &jobs)).collect(),
        };
        report::emit(&format!(
            "{}\n",
            report::json_with_url(&doc, link.as_deref())
        ));
        return Ok(0);
    }
    if args.csv {
        report::emit(&csv(&runs, &cols));
        return Ok(0);
    }
    if runs.is_empty() {
        report::emit(&match &pipeline {
            Some(p) => format!("no runs of `{p}` to compare (replays are left out)\n"),
            None => "no runs to compare\n".into(),
        });
        return Ok(0);
    }
    let mut o = text(
        &runs,
        &cols,
        pipeline.as_deref(),
        &args,
        Style::stdout(color),
    );
    o += &job_lines(&runs, &jobs);
    if let Some(url) = &link {
        o += &report::ui_link_line(url, &Style::stdout(color));
    }
    report::emit(&o);
    Ok(0)
}

/// `--remote`: the same comparison over the remote's records, read into a throwaway store:
/// only the runs compared (those named by id, or the newest of the pipeline, which the remote
/// chooses itself), not every run a sort or a name might need.
fn compare_remote(args: CompareArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let filter = crate::remote::pg::RunFilter {
        pipeline: args.pipeline.clone(),
        last: (args.limit > 0).then_some(args.limit),
        ..Default::default()
    };
    let targets: Vec<&str> = args.runs.iter().map(String::as_str).collect();
    let (ids, named_only) = if targets.is_empty() && args.sweep.is_none() {
        (compared_on_remote(&args, store_dir)?, true)
    } else {
        let ids = crate::remote::ids_in(&targets);
        let named = !targets.is_empty() && ids.len() == targets.len();
        (ids, named)
    };
    let view = crate::remote::view(store_dir, &filter, &ids, named_only)?;
    compare(
        CompareArgs {
            remote: false,
            ..args
        },
        Some(&view.store_dir),
        color,
    )
}

/// The runs a comparison without RUNs compares, chosen by the remote itself (as
/// `runs_of_pipeline` chooses locally): the newest `-n` runs of the pipeline, replays aside.
fn compared_on_remote(args: &CompareArgs, store_dir: Option<&Path>) -> Result<Vec<String>> {
    use crate::store::query::RunSource;
    let remote = crate::remote::runs::open(store_dir)?;
    let pipeline = match &args.pipeline {
        Some(p) => Some(p.clone()),
        None => remote
            .runs(&RunFilter {
                replays: Some(false),
                limit: Some(1),
                ..RunFilter::default()
            })?
            .pop()
            .map(|r| r.pipeline),
    };
    let Some(pipeline) = pipeline else {
        return Ok(Vec::new());
    };
    let runs = remote.runs(&RunFilter {
        pipeline: Some(pipeline),
        replays: Some(false),
        limit: (args.limit != 0).then_some(args.limit),
        ..RunFilter::default()
    })?;
    Ok(runs.into_iter().map(|r| r.id).collect())
}

/// The sweep whose variants to compare: the one named, or (nothing else named) the newest
/// run's, if it is a sweep's.
fn sweep_to_compare(store: &Store, args: &CompareArgs) -> Result<Option<String>> {
    let mut sweep = args.sweep.clone();
    if args.runs.is_empty()
        && args.pipeline.is_none()
        && sweep.is_none()
        && let Ok(latest) = store.resolve_run("latest")
    {
        sweep = store.sweep_of(&latest)?;
    }
    Ok(match &sweep {
        Some(s) => Some(store.resolve_sweep(s)?),
        None => None,
    })
}

/// No RUN named: the recent runs of `--pipeline`, or of the newest run's pipeline (replays
/// left out).
fn runs_of_pipeline(
    store: &Store,
    args: &CompareArgs,
) -> Result<(Option<String>, Vec<RunSummary>)> {
    let pipeline = match &args.pipeline {
        Some(p) => {
            if let Some(e) = super::runs::unknown_name(store, Some(p), &[], &[])? {
                return Err(e);
            }
            p.clone()
        }
        None => {
            let latest = store.resolve_run("latest")?;
            store
                .list_runs(&RunFilter {
                    ids: Some(vec![latest]),
                    ..RunFilter::default()
                })?
                .pop()
                .map(|r| r.pipeline)
                .ok_or_else(|| Error::other("the newest run vanished while reading it"))?
        }
    };
    let runs = store.list_runs(&RunFilter {
        pipeline: Some(pipeline.clone()),
        replays: Some(false),
        limit: (args.limit != 0).then_some(args.limit),
        with_params: true,
        ..RunFilter::default()
    })?;
    Ok((Some(pipeline), runs))
}

/// The RUNs named, each once, in the order they were named.
fn named_runs(store: &Store, args: &CompareArgs) -> Result<Vec<RunSummary>> {
    if args.pipeline.is_some() {
        return Err(Error::invalid(
            "`--pipeline` chooses which runs to compare when no RUN is named; here RUNs were named",
        )
        .hint("drop `--pipeline`, or the RUNs"));
    }
    let mut ids: Vec<String> = Vec::new();
    for r in &args.runs {
        let id = store.resolve_run(r)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut runs = store.list_runs(&RunFilter {
        ids: Some(ids.clone()),
        with_params: true,
        ..RunFilter::default()
    })?;
    // in the order they were named
    runs.sort_by_key(|r| ids.iter().position(|i| *i == r.id));
    Ok(runs)
}

/// `--sort KEY`: runs without the metric last, whatever the order; ties keep the newest first.
fn sort_by_metric(runs: &mut [RunSummary], key: &str, asc: bool) {
    runs.sort_by(|a, b| match (a.metrics.get(key), b.metrics.get(key)) {
        (Some(x), Some(y)) => {
            let o = x.total_cmp(y);
            if asc { o } else { o.reverse() }
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

/// Where the steps ran, for runs with cluster jobs.
fn job_lines(runs: &[RunSummary], jobs: &Jobs) -> String {
    let mut o = String::new();
    for r in runs {
        if let Some(js) = jobs.get(&r.id) {
            let list: Vec<String> = js
                .iter()
                .map(|(step, j)| {
                    format!(
                        "{step}: {}",
                        report::job_line(&crate::store::jobs::JobInfo::of(j.clone()))
                    )
                })
                .collect();
            o += &format!("jobs of {}  {}\n", r.short_id, list.join("; "));
        }
    }
    o
}

/// Which params and metrics become columns, and the values the others share.
struct Columns {
    params: Vec<String>,
    metrics: Vec<String>,
    same_params: BTreeMap<String, Value>,
    same_metrics: BTreeMap<String, f64>,
    status: bool,
    message: bool,
}

impl Columns {
    fn choose(runs: &[RunSummary], all: bool, sort: Option<&str>) -> Columns {
        let param_keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.params.keys()).collect();
        let metric_keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
        let mut c = Columns {
            params: Vec::new(),
            metrics: Vec::new(),
            same_params: BTreeMap::new(),
            same_metrics: BTreeMap::new(),
            status: all || runs.iter().any(|r| r.status != runs[0].status),
            message: runs.iter().any(|r| r.message.is_some()),
        };
        for k in param_keys {
            let first = runs[0].params.get(k);
            // a param one run has and another lacks differs too
            if all || runs.len() < 2 || runs.iter().any(|r| r.params.get(k) != first) {
                c.params.push(k.clone());
            } else if let Some(v) = first {
                c.same_params.insert(k.clone(), v.clone());
            }
        }
        for k in metric_keys {
            let first = runs[0].metrics.get(k);
            let differs = runs
                .iter()
                .any(|r| r.metrics.get(k).map(|v| v.to_bits()) != first.map(|v| v.to_bits()));
            if all || runs.len() < 2 || differs || sort == Some(k.as_str()) {
                c.metrics.push(k.clone());
            } else if let Some(v) = first {
                c.same_metrics.insert(k.clone(), *v);
            }
        }
        // the sort metric first, so the column explains the order
        if let Some(s) = sort
            && let Some(i) = c.metrics.iter().position(|m| m == s)
        {
            let m = c.metrics.remove(i);
            c.metrics.insert(0, m);
        }
        c
    }
}

fn row(r: &RunSummary, cols: &Columns, jobs: &Jobs) -> Row {
    Row {
        jobs: jobs
            .get(&r.id)
            .into_iter()
            .flatten()
            .map(|(step, j)| StepJob {
                step: step.clone(),
                job: crate::store::jobs::JobInfo::of(j.clone()),
            })
            .collect(),
        id: r.id.clone(),
        short_id: r.short_id.clone(),
        pipeline: r.pipeline.clone(),
        status: r.status.clone(),
        started_at: r.started_at,
        message: r.message.clone(),
        params: cols
            .params
            .iter()
            .filter_map(|k| r.params.get(k).map(|v| (k.clone(), v.clone())))
            .collect(),
        metrics: cols
            .metrics
            .iter()
            .filter_map(|k| r.metrics.get(k).map(|v| (k.clone(), *v)))
            .collect(),
    }
}

fn param_cell(v: Option<&Value>) -> String {
    v.map_or_else(|| "-".into(), crate::pipeline::params::render)
}

fn metric_cell(v: Option<&f64>) -> String {
    v.map_or_else(|| "-".into(), |v| report::metric(*v))
}

fn text(
    runs: &[RunSummary],
    cols: &Columns,
    pipeline: Option<&str>,
    args: &CompareArgs,
    style: Style,
) -> String {
    let mut o = String::new();
    let n = runs.len();
    let what = match pipeline {
        Some(p) if args.sweep.is_some() => format!(
            "the {n} run{} of sweep {} (`{p}`)",
            if n == 1 { "" } else { "s" },
            args.sweep.as_deref().map_or("", |s| &s[..s.len().min(16)])
        ),
        Some(p) => format!(
            "the last {} of `{p}`",
            if n == 1 {
                "run".into()
            } else {
                format!("{n} runs")
            }
        ),
        None => format!("{n} run{}", if n == 1 { "" } else { "s" }),
    };
    let order = match &args.sort {
        Some((k, true)) => format!(", lowest {k} first"),
        Some((k, false)) => format!(", highest {k} first"),
        None => ", newest first".into(),
    };
    o += &format!("{} {what}{order}\n", style.paint(Role::Strong, "comparing"));
    if cols.params.is_empty() && cols.metrics.is_empty() {
        o += "no param or metric differs between these runs";
        o += if cols.same_params.is_empty() && cols.same_metrics.is_empty() {
            " (they recorded none)\n"
        } else {
            "\n"
        };
    } else {
        let mut header = vec!["RUN".to_string()];
        if cols.status {
            header.push("STATUS".into());
        }
        header.extend(cols.params.iter().cloned());
        let sep = !cols.params.is_empty() && !cols.metrics.is_empty();
        if sep {
            header.push("│".into());
        }
        header.extend(cols.metrics.iter().cloned());
        if cols.message {
            header.push("MESSAGE".into());
        }
        let mut rows: Vec<Vec<String>> = Vec::with_capacity(runs.len() + 1);
        rows.push(header);
        for r in runs {
            let mut cells = vec![r.short_id.clone()];
            if cols.status {
                cells.push(r.status.clone());
            }
            cells.extend(cols.params.iter().map(|k| param_cell(r.params.get(k))));
            if sep {
                cells.push("│".into());
            }
            cells.extend(cols.metrics.iter().map(|k| metric_cell(r.metrics.get(k))));
            if cols.message {
                cells.push(
                    r.message
                        .as_deref()
                        .map_or_else(String::new, super::runs::one_line),
                );
            }
            rows.push(cells);
        }
        o += &table(&rows, &style);
        if !cols.params.is_empty() && !cols.metrics.is_empty() {
            o += &style.paint(
                Role::Muted,
                "params on the left of │, metrics on the right\n",
            );
        }
    }
    if !cols.same_params.is_empty() || !cols.same_metrics.is_empty() {
        let mut same = Vec::new();
        if !cols.same_params.is_empty() {
            same.push(format!("params {}", report::params_line(&cols.same_params)));
        }
        if !cols.same_metrics.is_empty() {
            same.push(format!(
                "metrics {}",
                report::metrics_line(&cols.same_metrics)
            ));
        }
        o += &style.paint(
            Role::Muted,
            &format!(
                "the same in every run (`--all` shows them as columns): {}\n",
                same.join(" · ")
            ),
        );
    }
    o
}

/// Cells padded by hand (as `runs` does): comfy-table spent most of the time of a 1,000-run,
/// 30-column comparison allocating. The run id is coloured after padding.
fn table(rows: &[Vec<String>], style: &Style) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::with_capacity(rows.len() * (widths.iter().sum::<usize>() + 2 * ncols));
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            if c == 0 && i > 0 {
                line += &style.paint(Role::Accent, cell);
            } else {
                line += cell;
            }
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// RFC 4180: one header line, then one line per run; fields quoted when they need it.
fn csv(runs: &[RunSummary], cols: &Columns) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut header: Vec<String> = ["run", "pipeline", "status", "started_at"]
        .map(String::from)
        .to_vec();
    header.extend(cols.params.iter().cloned());
    // a metric named like a param gets a prefix, so every column name stays unique
    header.extend(cols.metrics.iter().map(|m| {
        if cols.params.contains(m) {
            format!("metric:{m}")
        } else {
            m.clone()
        }
    }));
    header.push("message".into());
    let mut o = header
        .iter()
        .map(|h| field(h))
        .collect::<Vec<_>>()
        .join(",");
    o += "\r\n";
    for r in runs {
        let started = jiff::Timestamp::from_millisecond(r.started_at)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let mut cells = vec![r.id.clone(), r.pipeline.clone(), r.status.clone(), started];
        cells.extend(cols.params.iter().map(|k| match r.params.get(k) {
            None => String::new(),
            Some(v) => crate::pipeline::params::render(v),
        }));
        cells.extend(
            cols.metrics
                .iter()
                .map(|k| r.metrics.get(k).map_or_else(String::new, |v| v.to_string())),
        );
        cells.push(r.message.clone().unwrap_or_default());
        o += &cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
        o += "\r\n";
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, params: &[(&str, Value)], metrics: &[(&str, f64)]) -> RunSummary {
        RunSummary {
            id: id.into(),
            short_id: id.into(),
            pipeline: "p".into(),
            status: "succeeded".into(),
            exit_code: Some(0),
            started_at: 0,
            ended_at: None,
            duration_ms: None,
            commit: None,
            dirty: false,
            replay_of: None,
            replay_verdict: None,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            message: None,
            sweep_id: None,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn only_differing_columns_unless_all() {
        let runs = [
            run(
                "a",
                &[("lr", 0.1.into()), ("seed", 1.into())],
                &[("acc", 0.9), ("n", 5.0)],
            ),
            run(
                "b",
                &[("lr", 0.2.into()), ("seed", 1.into())],
                &[("acc", 0.8), ("n", 5.0)],
            ),
            run(
                "c",
                &[
                    ("lr", 0.2.into()),
                    ("seed", 1.into()),
                    ("extra", true.into()),
                ],
                &[("acc", 0.8), ("n", 5.0)],
            ),
        ];
        let c = Columns::choose(&runs, false, None);
        assert_eq!(c.params, ["extra", "lr"]);
        assert_eq!(c.metrics, ["acc"]);
        assert_eq!(c.same_params.keys().collect::<Vec<_>>(), ["seed"]);
        assert_eq!(c.same_metrics.keys().collect::<Vec<_>>(), ["n"]);
        let c = Columns::choose(&runs, false, Some("n"));
        assert_eq!(c.metrics, ["n", "acc"], "the sort metric is shown, first");
        let c = Columns::choose(&runs, true, None);
        assert_eq!(c.params, ["extra", "lr", "seed"]);
        assert_eq!(c.metrics, ["acc", "n"]);
        assert!(c.same_params.is_empty());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut r = run("a", &[("name", "x,y".into())], &[("acc", 0.5)]);
        r.message = Some("say \"hi\"".into());
        let out = csv(&[r], &Columns::choose(&[], true, None));
        assert!(
            out.starts_with("run,pipeline,status,started_at,message\r\n"),
            "{out}"
        );
        let cols = Columns {
            params: vec!["name".into()],
            metrics: vec!["acc".into(), "name".into()],
            same_params: BTreeMap::new(),
            same_metrics: BTreeMap::new(),
            status: false,
            message: true,
        };
        let mut r = run("a", &[("name", "x,y".into())], &[("acc", 0.5)]);
        r.message = Some("say \"hi\"".into());
        let out = csv(&[r], &cols);
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "run,pipeline,status,started_at,name,acc,metric:name,message"
        );
        assert!(
            lines[1].ends_with(",\"x,y\",0.5,,\"say \"\"hi\"\"\""),
            "{}",
            lines[1]
        );
    }
}

//! `mlrun rm RUN...`: remove runs from the history. Their records are deleted (a tombstone keeps
//! what they were and who removed them), so `mlrun gc` then frees the objects only they
//! referenced. Refused for a running run, for a run that made a registered model version (those
//! are immutable, and the registry keeps them restorable), and, unless `--force`, for a run
//! whose executions other runs reused.

use std::path::Path;

use clap::Args;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::report::Role;
use crate::report::{self, ColorChoice, Style, time};
use crate::store::rm::{self, Doomed};
use crate::store::{self, Store, record};

#[derive(Debug, Args)]
#[command(after_help = "\
A replay goes with the run it replayed. The record of a removed run is deleted; a tombstone
keeps its id, pipeline, start, commit and message, and who removed it when, so naming it later
says it was removed. `mlrun gc` then frees the stored objects no remaining run references.

Refused (nothing is removed):
  a run that is still running;
  a run that made a registered model version (model versions are never deleted);
  a run whose steps other runs reused (their records point at it), unless --force, which
  leaves those runs' steps recorded as reused from a removed run.

Examples:
  mlrun rm latest            remove the newest run
  mlrun rm 01a2165e latest~3 remove two runs
  mlrun rm latest --dry-run  say what would be removed")]
pub struct RmArgs {
    /// The runs to remove: id prefixes, `latest`, `latest~2`, `latest-replay`
    #[arg(value_name = "RUN", required = true)]
    pub runs: Vec<String>,

    /// Also remove runs whose executions other runs reused
    #[arg(long)]
    pub force: bool,

    /// Say what would be removed, without removing anything
    #[arg(long)]
    pub dry_run: bool,

    /// Print a JSON summary instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct RemovedRun {
    id: String,
    short_id: String,
    pipeline: String,
    status: String,
    started_at: String,
    replay_of: Option<String>,
    steps: i64,
}

#[derive(Debug, Serialize)]
struct Report {
    dry_run: bool,
    removed: Vec<RemovedRun>,
    /// reuse by other runs that --force overrode: `{removed, step, by_run}`
    forced: Vec<rm::Reuse>,
}

pub fn rm(args: RmArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let mut store = Store::open_existing(&dir)?;
    let mut ids = Vec::new();
    for r in &args.runs {
        let id = store.resolve_run(r)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let ids = store.runs_with_replays(&ids)?;
    let short = |id: &str| store.short_id(id);
    let obstacles = store.removal_obstacles(&ids)?;
    refuse(&obstacles, args.force, &short)?;
    let doomed = store.describe_removal(&ids)?;
    let report = Report {
        dry_run: args.dry_run,
        removed: doomed
            .iter()
            .map(|d: &Doomed| {
                Ok(RemovedRun {
                    id: d.id.clone(),
                    short_id: short(&d.id)?,
                    pipeline: d.pipeline.clone(),
                    status: d.status.clone(),
                    started_at: time::rfc3339(d.started_at),
                    replay_of: d.replay_of.as_deref().map(short).transpose()?,
                    steps: d.steps,
                })
            })
            .collect::<Result<_>>()?,
        forced: obstacles.reused.clone(),
    };
    let forced_lines = report
        .forced
        .iter()
        .map(|f| {
            Ok(format!(
                "run {} keeps its record of `{}`, reused from the removed run {}\n",
                short(&f.by_run)?,
                f.step,
                short(&f.removed)?
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    if !args.dry_run {
        let by = format!("{}@{}", whoami(), hostname());
        let reason = (!obstacles.reused.is_empty()).then(|| {
            obstacles
                .reused
                .iter()
                .map(|r| format!("`{}` reused by run {}", r.step, r.by_run))
                .collect::<Vec<_>>()
                .join("; ")
        });
        store.remove_runs(&ids, &by, reason.as_deref(), record::now_ms())?;
    }
    if args.json {
        report::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ));
        return Ok(0);
    }
    report::emit(&text(&report, &doomed, &forced_lines, args.dry_run, color));
    Ok(0)
}

/// Runs that cannot be removed: one still running, one that made a registered model version,
/// or (without --force) one whose steps other runs reused.
fn refuse(
    obstacles: &rm::Obstacles,
    force: bool,
    short: &dyn Fn(&str) -> Result<String>,
) -> Result<()> {
    if let Some(first) = obstacles.running.first() {
        return Err(Error::other(format!(
            "run {} is still running; nothing was removed",
            short(first)?
        ))
        .hint("wait for it to end, or stop it (Ctrl-C in its terminal), then remove it"));
    }
    if !obstacles.models.is_empty() {
        let mut e = Error::other(format!(
            "{} made {}; nothing was removed",
            describe_runs(obstacles.models.iter().map(|m| m.run.as_str()), short)?,
            if obstacles.models.len() == 1 {
                "a registered model version"
            } else {
                "registered model versions"
            }
        ));
        for m in &obstacles.models {
            e = e.cause(format!("{}@{} (run {})", m.name, m.version, short(&m.run)?));
        }
        return Err(e.hint(
            "model versions are never deleted, and the registry keeps the run that made each one (its record, for `show` and `replay`)",
        ));
    }
    if !obstacles.reused.is_empty() && !force {
        let mut e = Error::other(format!(
            "other runs reused steps of {}; nothing was removed",
            describe_runs(obstacles.reused.iter().map(|r| r.removed.as_str()), short)?
        ));
        for r in &obstacles.reused {
            e = e.cause(format!(
                "run {} reused `{}` from run {}",
                short(&r.by_run)?,
                r.step,
                short(&r.removed)?
            ));
        }
        return Err(e.hint(
            "remove those runs too (`mlrun rm` takes several), or pass --force to keep them as reused from a removed run",
        ));
    }
    Ok(())
}

/// What was (or would be) removed, what --force overrode, and what to do next.
fn text(
    report: &Report,
    doomed: &[Doomed],
    forced_lines: &[String],
    dry_run: bool,
    color: ColorChoice,
) -> String {
    let style = Style::stdout(color);
    let mut out = String::new();
    for r in &report.removed {
        out += &format!(
            "{} run {}  {}  {}  {}  {} step{}{}\n",
            if dry_run { "would remove" } else { "removed" },
            style.paint(Role::Accent, &r.short_id),
            r.pipeline,
            r.status,
            time::local(
                doomed
                    .iter()
                    .find(|d| d.id == r.id)
                    .map_or(0, |d| d.started_at)
            ),
            r.steps,
            if r.steps == 1 { "" } else { "s" },
            match &r.replay_of {
                Some(of) => format!(" (a replay of {of})"),
                None => String::new(),
            }
        );
    }
    for f in forced_lines {
        out += &style.paint(Role::Warn, f);
    }
    out += &style.paint(
        Role::Muted,
        if dry_run {
            "nothing was removed (--dry-run)\n"
        } else {
            "`mlrun gc` frees the stored objects that no remaining run references\n"
        },
    );
    out
}

/// "run 01a2…" or "runs 01a2…, 01a3…" (each once, in order).
fn describe_runs<'a>(
    ids: impl Iterator<Item = &'a str>,
    short: &dyn Fn(&str) -> Result<String>,
) -> Result<String> {
    let mut seen: Vec<&str> = Vec::new();
    for id in ids {
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    let shown = seen
        .iter()
        .map(|id| short(id))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!(
        "run{} {}",
        if shown.len() == 1 { "" } else { "s" },
        shown.join(", ")
    ))
}

fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_else(|| "localhost".into())
}

//! `mlrun show RUN`: everything recorded about one run.

use std::path::Path;

use crate::cmd::target::{self, Target};
use crate::error::Result;
use crate::report::Role;
use crate::report::{self, ColorChoice, Style, emit};
use crate::store::logs::LogObjects;
use crate::store::packages::EnvPackages;
use crate::store::query::RunDetail;
use crate::store::{self, Store};

mod card;
mod logs;
mod run;
mod version;

use card::*;
use logs::*;
use run::*;
use version::*;

#[derive(Debug, clap::Args)]
#[command(after_help = crate::cmd::target::TARGET_HELP)]
pub struct ShowArgs {
    /// A run (id prefix, `latest`, `latest~1`, `latest-replay`), or an artifact: PATH,
    /// PATH@RUN or a content-hash prefix
    #[arg(value_name = "TARGET", default_value = "latest")]
    pub target: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,

    /// For a directory version: list its files, each with its hash and size
    #[arg(long)]
    pub files: bool,

    /// Also print each step's captured stdout and stderr (a long log: its first and last
    /// 64 KiB, with a line saying how much was cut)
    #[arg(long)]
    pub logs: bool,

    /// Print every log whole, from the object store (implies --logs)
    #[arg(long)]
    pub full: bool,

    /// Print only this stream of one step execution (TARGET: RUN:STEP), whole and byte for
    /// byte as recorded, and nothing else: `mlrun show latest:train --log stdout > train.log`
    #[arg(long, value_name = "STREAM", value_parser = ["stdout", "stderr"], conflicts_with_all = ["json", "logs", "patch"])]
    pub log: Option<String>,

    /// Also print the uncommitted diff recorded at the start of the run
    #[arg(long)]
    pub patch: bool,

    /// Also list the packages installed for each step's interpreters (name and exact version)
    #[arg(long)]
    pub packages: bool,

    /// Query the team remote's record (PostgreSQL) instead of the local store
    #[arg(long)]
    pub remote: bool,
}

pub fn show(args: ShowArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    if args.remote {
        // a run named by id: that run alone; `latest`, `latest~N` and paths among the 20
        // newest runs (N+1 for `latest~N` past them)
        let filter = crate::remote::pg::RunFilter {
            last: Some(crate::remote::newest_needed(&[args.target.as_str()], 20)),
            ..Default::default()
        };
        let ids = crate::remote::ids_in(&[args.target.as_str()]);
        let view = crate::remote::view(store_dir, &filter, &ids, !ids.is_empty())?;
        return show(
            ShowArgs {
                remote: false,
                ..args
            },
            Some(&view.store_dir),
            color,
        );
    }
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    let mut only_step = None;
    let resolved = target::resolve(&store, &args.target)?;
    if let Some(stream) = &args.log {
        return one_log(&store, resolved, stream);
    }
    let links = crate::cmd::ui_links(&store.dir, color);
    let id = match resolved {
        Target::Run(id) => id,
        Target::Exec { run_id, step, .. } => {
            only_step = Some(step);
            run_id
        }
        Target::Version(v, note) => {
            let link = links.map(|l| l.artifact(&v.path, Some(&v.hash)));
            return show_version(&store, &v, None, note, &args, link, color);
        }
        Target::File(v, m, note) => {
            let link = links.map(|l| l.artifact(&v.path, Some(&v.hash)));
            return show_version(&store, &v, Some(m), note, &args, link, color);
        }
    };
    // the run's page (at the step, for RUN:STEP)
    let link = links.map(|l| match &only_step {
        Some(step) => format!("{}#step-{}", l.run(&id), crate::config::percent(step)),
        None => l.run(&id),
    });
    if args.files {
        Style::stderr(color).note(
            "`--files` lists the files of a directory version: name one, e.g. `mlrun show data/`",
        );
    }
    let mut detail = store.run_detail(&id, args.patch || args.json)?;
    if let Some(step) = &only_step {
        // `RUN:STEP`: that step's executions (every attempt) with the run's context
        detail.steps.retain(|s| &s.name == step);
    }
    detail.determinism = store
        .determinism_of_pipeline(&detail.pipeline)?
        .into_iter()
        .filter(|(step, _)| detail.steps.iter().any(|s| &s.name == step))
        .collect();
    if args.json {
        emit(&format!(
            "{}\n",
            report::json_with_url(&detail, link.as_deref())
        ));
        return Ok(0);
    }
    let style = Style::stdout(color);
    let mut out = Out::stdout();
    out.text(&render(&detail, &style));
    if let Some(url) = &link {
        out.text(&report::ui_link_line(url, &style));
    }
    if args.logs || args.full {
        print_logs(&mut out, &store, &detail, args.full, &style)?;
    } else {
        print_failed_tails(&mut out, &store, &detail, &style)?;
    }
    if args.packages {
        print_packages(&mut out, &detail, &style);
    }
    if args.patch
        && let Some(diff) = detail.git.as_ref().and_then(|g| g.diff.as_ref())
    {
        out.text(&format!(
            "\n{}\n",
            style.paint(Role::Strong, "uncommitted diff at the start of the run:")
        ));
        out.text(diff);
    }
    out.finish();
    if let Some(n) = crate::live::pending_note(&store, Some(&id)) {
        Style::stderr(color).note(&n);
    }
    Ok(0)
}

/// How many lines of a failed step's stderr `show` prints without `--logs`.
const FAILED_TAIL_LINES: usize = 20;

/// `--logs` / `--full`: each step's recorded output (a reused step's is that of the execution
/// it reused).
fn print_logs(
    out: &mut Out,
    store: &Store,
    detail: &RunDetail,
    full: bool,
    style: &Style,
) -> Result<()> {
    let objects = LogObjects::new(&store.dir);
    for s in &detail.steps {
        // a reused step ran nothing: its logs are those of the execution it reused
        let (exec, from) = match (&s.reused_run, s.stdout_bytes + s.stderr_bytes) {
            (Some(_), 0) => match store.reused_origin(s.exec_id)? {
                Some((e, run)) if e != s.exec_id => (e, Some(store.short_id(&run)?)),
                _ => (s.exec_id, None),
            },
            _ => (s.exec_id, None),
        };
        for stream in ["stdout", "stderr"] {
            let data = store.step_log(exec, stream)?;
            if data.bytes == 0 {
                continue;
            }
            let attempt = if s.attempt > 1 {
                format!(" attempt {}", s.attempt)
            } else {
                String::new()
            };
            let reused = match &from {
                Some(run) => format!(
                    " {}",
                    style.paint(
                        Role::Muted,
                        &format!(
                            "(from run {run}: this run reused that execution, {})",
                            s.status
                        )
                    )
                ),
                None => String::new(),
            };
            out.text(&format!(
                "\n{} {}{attempt} {}{reused}\n",
                style.paint(Role::Strong, "──"),
                s.name,
                style.paint(Role::Muted, stream)
            ));
            let name = format!("{}:{}", from.as_deref().unwrap_or(&detail.short_id), s.name);
            print_log(out, &objects, &data, full, &name, style)?;
        }
    }
    Ok(())
}

/// Without `--logs`: the last lines of each failed step's stderr.
fn print_failed_tails(
    out: &mut Out,
    store: &Store,
    detail: &RunDetail,
    style: &Style,
) -> Result<()> {
    for s in detail
        .steps
        .iter()
        .filter(|s| matches!(s.status.as_str(), "failed" | "timed_out" | "interrupted"))
    {
        let data = store.step_log(s.exec_id, "stderr")?;
        let bytes = data.tail.as_deref().unwrap_or(&data.head[..]);
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            continue;
        }
        let from = lines.len().saturating_sub(FAILED_TAIL_LINES);
        out.text(&format!(
            "\n{} {} {} {}\n",
            style.paint(Role::Strong, "──"),
            s.name,
            style.paint(Role::Muted, "stderr"),
            style.paint(
                Role::Muted,
                &if from > 0 || data.tail.is_some() {
                    format!(
                        "(its last {} lines; `mlrun show {}:{} --logs` prints the rest)",
                        lines.len() - from,
                        detail.short_id,
                        s.name
                    )
                } else {
                    format!("({} failed)", s.name)
                }
            )
        ));
        out.text(&format!("{}\n", lines[from..].join("\n")));
    }
    Ok(())
}

/// `--packages`: the package lists of the run's environments, or why there are none.
fn print_packages(out: &mut Out, detail: &RunDetail, style: &Style) {
    let envs: Vec<(&String, &EnvPackages)> = run_package_envs(detail)
        .into_iter()
        .map(|(p, e, _)| (p, e))
        .collect();
    if envs.is_empty() {
        // a store from before packages were recorded keeps the interpreters its steps used
        let python = detail
            .steps
            .iter()
            .filter_map(|s| s.env_id.as_ref().and_then(|e| detail.environments.get(e)))
            .flat_map(|e| e.interpreters.keys())
            .find(|p| {
                let base = p.rsplit('/').next().unwrap_or(p);
                base.starts_with("python") || base.starts_with("pypy")
            });
        let why = match python {
            Some(p) => format!(
                "no packages recorded, though its steps ran `{p}`: the run was recorded by an mlrun from before packages were recorded, or the interpreter's environment could not be read"
            ),
            None => "no packages recorded: no step ran a Python interpreter (or one in a conda environment)".to_string(),
        };
        out.text(&format!("\n{}\n", style.paint(Role::Muted, &why)));
    }
    out.text(&package_lists(&envs, style));
}

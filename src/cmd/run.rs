//! `mlrun run [PIPELINE]`: validate, then execute and record.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::exec::event::Sinks;
use crate::exec::reporter::{Human, Json};
use crate::exec::{self, Force, RunOptions, output::Printer};
use crate::pipeline::TraceMode;
use crate::pipeline::diag::did_you_mean;
use crate::report::Role;
use crate::report::{ColorChoice, Style};
use crate::store::lock::PipelineLock;
use crate::store::record::StepStatus;
use crate::store::{self, Store};

#[derive(Debug, clap::Args, Clone)]
pub struct RunArgs {
    /// The pipeline file [default: pipeline.toml, here or in the nearest parent]; taken as one
    /// when it ends in .toml, or is a file the pipeline here does not name as a step or output
    #[arg(value_name = "PIPELINE")]
    pub pipeline: Option<std::path::PathBuf>,

    /// Steps, or outputs they declare, to bring up to date: each runs with the stale steps it
    /// depends on (up-to-date ones are reused), like `make train` [default: every step]
    #[arg(value_name = "STEP|OUTPUT")]
    pub targets: Vec<String>,

    #[command(flatten)]
    pub exec: super::ExecArgs,

    /// After a step fails, still run every step that does not depend on it
    #[arg(short = 'k', long, display_order = 11)]
    pub keep_going: bool,

    /// Override a param for this run (repeatable), e.g. `-p train.lr=0.01`
    #[arg(
        short = 'p',
        long = "param",
        value_name = "KEY=VALUE",
        display_order = 12
    )]
    pub params: Vec<String>,

    /// Also run every step that depends on the targets (and the stale steps those need)
    #[arg(long, display_order = 13)]
    pub downstream: bool,

    /// Print which steps would run and why, which would be reused (and from which run) and
    /// which are not needed; run, record and lock nothing
    #[arg(long, display_order = 14, conflicts_with_all = ["message", "wait_lock"])]
    pub dry_run: bool,

    /// Run one variant per combination of the comma-separated values of the `-p`s
    /// (`-p lr=0.1,0.2 -p depth=3,5`: 4 runs sharing a sweep id); `\,` is a literal comma
    #[arg(long, display_order = 15)]
    pub sweep: bool,

    /// Print a JSON summary on stdout at the end (step output and progress go to stderr)
    #[arg(long, display_order = 21)]
    pub json: bool,

    /// Run steps even when an earlier run with the same inputs could be reused: all of them
    /// (`--force`) or the named ones (`--force=train`, repeatable or comma-separated)
    #[arg(long, value_name = "STEP", num_args = 0..=1, require_equals = true, value_delimiter = ',', default_missing_value = "", display_order = 22)]
    pub force: Option<Vec<String>>,

    /// Record hashes but keep no copies in the object store (outputs cannot be restored later)
    #[arg(long, display_order = 23)]
    pub no_store: bool,

    /// Also reuse results recorded by `mlrun replay` (replays run in a scratch tree, so by
    /// default they are never a source of `cached` / `restored` steps)
    #[arg(long, display_order = 24)]
    pub reuse_replays: bool,

    /// If another mlrun is running this pipeline, wait for it instead of refusing (exit 75)
    #[arg(long, display_order = 25)]
    pub wait_lock: bool,
    /// Trace the files each step really reads and writes (Linux): warn about undeclared ones and
    /// record them as observed lineage. `--trace=strict` also fails a step that uses undeclared
    /// files; `--trace=off` turns off tracing asked for in pipeline.toml
    #[arg(long, value_name = "MODE", value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "on", display_order = 26)]
    pub trace: Option<TraceArg>,

    /// Attach a message to the run: what you are trying (shown by `runs` and `show`, searched by
    /// `runs --grep`; change it later with `mlrun note`)
    #[arg(short = 'm', long, value_name = "TEXT", display_order = 27)]
    pub message: Option<String>,

    /// Push the run to the team remote when it ends (see `mlrun push`; `push = true` in
    /// mlrun.toml's [remote] does it for every run)
    #[arg(long, display_order = 28)]
    pub push: bool,

    /// Do not look steps up in the team remote's shared cache (on by default when a remote is
    /// configured)
    #[arg(long, display_order = 29)]
    pub no_remote_cache: bool,
}

/// `--trace=MODE`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceArg {
    /// trace, warn about undeclared files (the default of a bare `--trace`)
    On,
    /// trace, and fail a step on any undeclared read or write inside the project
    Strict,
    /// do not trace, whatever pipeline.toml says
    Off,
}

pub fn run(args: RunArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    run_or_typo(args, store_dir, color, None)
}

/// `mlrun WORD`: `typo` is the "unknown command" error to give when WORD is close to a
/// command's name and names neither a file nor a step or output of the pipeline.
pub fn run_or_typo(
    args: RunArgs,
    store_dir: Option<&Path>,
    color: ColorChoice,
    typo: Option<Error>,
) -> Result<i32> {
    let json = args.json;
    let result = run_inner(args, store_dir, color, typo);
    // `--json` promises a document on stdout even when mlrun could not run the pipeline
    if json && let Err(e) = &result {
        let doc = serde_json::json!({
            "status": if e.kind == crate::error::Kind::Invalid { "invalid" } else { "error" },
            "exit_code": e.exit_code(),
            "error": e.to_string(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    result
}

/// `mlrun run`: read the words, load and select the plan, then a dry run, a sweep, or the run
/// itself and what follows it.
fn run_inner(
    args: RunArgs,
    store_dir: Option<&Path>,
    color: ColorChoice,
    typo: Option<Error>,
) -> Result<i32> {
    let err_style = Style::stderr(color);
    let words = super::select::split(args.pipeline.as_deref(), &args.targets);
    if args.downstream && words.targets.is_empty() {
        return Err(Error::invalid("`--downstream` needs a target: the steps after which ones?")
            .hint("`mlrun run prepare --downstream` runs `prepare` and every step that uses what it makes"));
    }
    if args.sweep {
        let s = super::sweep::Sweep {
            args: &args,
            pipeline: &words.pipeline,
            targets: &words.targets,
        };
        return super::sweep::sweep(s, store_dir, color);
    }
    hint_at_a_comma(&args.params, err_style);
    let plan = load(&args, &words, typo, err_style)?;
    let selected = super::select::resolve(&plan, &words.targets)?;
    let force = force_of(args.force.as_deref(), &plan)?;
    if args.dry_run {
        let keep = if words.targets.is_empty() {
            vec![true; plan.steps().len()]
        } else {
            plan.selection(&selected, args.downstream)
        };
        let ask = super::dryrun::Ask {
            targets: &words.targets,
            downstream: args.downstream,
            keep: &keep,
            force: &force,
            reuse_replays: args.reuse_replays,
            json: args.json,
        };
        return super::dryrun::dry_run(&plan, store_dir, &ask, color);
    }
    if let Force::Steps(names) = &force
        && !words.targets.is_empty()
    {
        let keep = plan.selection(&selected, args.downstream);
        for n in names {
            if plan.step_index(n).is_some_and(|i| !keep[i]) {
                eprintln!(
                    "{} `--force={n}`: `{n}` is not among the steps this run needs, so it does not run",
                    err_style.paint(Role::Warn, "warning:")
                );
            }
        }
    }
    let plan = if words.targets.is_empty() {
        plan
    } else {
        plan.selecting(&selected, args.downstream)
    };
    execute(plan, &args, &words, force, store_dir, color)
}

/// `-p k=a,b` sets one value with its comma; a user who meant a sweep is told of `--sweep`.
fn hint_at_a_comma(params: &[String], err_style: Style) {
    if let Some(p) = params.iter().find(|p| {
        p.split_once('=').is_some_and(|(_, v)| {
            !v.trim_start().starts_with(['[', '{', '"', '\'']) && v.contains(',')
        })
    }) {
        eprintln!(
            "{} `-p {p}` sets one value, with its comma; `--sweep` runs one variant per comma-separated value",
            err_style.paint(Role::Accent, "hint:")
        );
    }
}

/// The checked plan, with the executor asked for. A first word taken as a target that names
/// nothing is reported as what it more likely was: a typo of a command, or a missing file.
fn load(
    args: &RunArgs,
    words: &super::select::Words,
    typo: Option<Error>,
    err_style: Style,
) -> Result<crate::pipeline::Plan> {
    let plan = match super::load_plan(&words.pipeline, &args.params, false, err_style) {
        Ok(plan) => plan.with_executor(args.exec.executor()),
        Err(e) if words.first_is_target => {
            return Err(typo.unwrap_or_else(|| {
                e.hint(format!(
                    "`{}` was taken as a step or output to run: there is no file of that name",
                    words.targets[0]
                ))
            }));
        }
        Err(e) => return Err(e),
    };
    if let Some(t) = typo
        && words.first_is_target
        && super::select::find(&plan, &words.targets[0]).is_empty()
    {
        return Err(t);
    }
    Ok(plan)
}

/// `--force` (every step), `--force=a,b` (those, each a step of the plan), or nothing.
fn force_of(force: Option<&[String]>, plan: &crate::pipeline::Plan) -> Result<Force> {
    Ok(match force {
        None => Force::None,
        Some(names) if names.iter().all(|n| n.is_empty()) => Force::All,
        Some(names) => {
            let names: Vec<String> = names.iter().filter(|n| !n.is_empty()).cloned().collect();
            for n in &names {
                if plan.step_index(n).is_none() {
                    let mut e =
                        Error::invalid(format!("`--force={n}` names no step of `{}`", plan.name()));
                    if let Some(s) = did_you_mean(n, plan.steps().iter().map(|s| s.name.as_str())) {
                        e = e.hint(format!("did you mean `{s}`?"));
                    }
                    let steps: Vec<&str> = plan.steps().iter().map(|s| s.name.as_str()).collect();
                    return Err(e.hint(format!("its steps: {}", steps.join(", "))));
                }
            }
            Force::Steps(names)
        }
    })
}

/// The run: under the pipeline's lock, recorded in the store, then pushed (when asked) and
/// followed by its hints and its page's link.
fn execute(
    plan: crate::pipeline::Plan,
    args: &RunArgs,
    words: &super::select::Words,
    force: Force,
    store_dir: Option<&Path>,
    color: ColorChoice,
) -> Result<i32> {
    let err_style = Style::stderr(color);
    let targets = (!words.targets.is_empty()).then(|| words.targets.clone());
    let trace = args.trace.map(|t| match t {
        TraceArg::On => TraceMode::On,
        TraceArg::Strict => TraceMode::Strict,
        TraceArg::Off => TraceMode::Off,
    });
    for w in exec::trace::check_supported(&plan, trace)? {
        eprintln!("{} {w}", err_style.paint(Role::Warn, "warning:"));
    }
    let traced: Vec<String> = plan
        .steps()
        .iter()
        .filter(|s| TraceMode::resolve(trace, plan.trace(), s.trace) != TraceMode::Off)
        .map(|s| s.name.clone())
        .collect();
    let dir = store::dir_for_pipeline(plan.file(), store_dir);
    // before the store is opened: whether it is new (the shared cache then connects at once)
    if !args.no_remote_cache
        && !args.no_store
        && let Some(remote) = crate::config::Config::load(&dir)?.remote
    {
        let steps = plan.steps().iter().map(|s| s.name.clone());
        let new_store = !dir.join(store::DB_FILE).exists();
        crate::remote::cache::enable(&dir, remote, steps, new_store);
    }
    let store = Store::open(&dir)?;
    let mut lock = PipelineLock::acquire(&dir, plan.file(), args.wait_lock, |who| {
        eprintln!(
            "waiting for {who} to finish running `{}`…",
            words.pipeline.display()
        );
    })?;
    // The id is chosen now so the lock can name the run a second mlrun is waiting for.
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    // UTC: the local time zone's name is looked up in the zoneinfo tree (a walk of hundreds of
    // directories), which a no-op run would pay for this one line
    lock.describe(&format!(
        "run {run_id} (mlrun pid {}, started {})",
        std::process::id(),
        crate::report::time::rfc3339(crate::store::record::now_ms())
    ));

    let names: Vec<&str> = plan.steps().iter().map(|s| s.name.as_str()).collect();
    let printer = Arc::new(Printer::new(
        args.json,
        Style::stdout(color),
        err_style,
        &names,
    ));
    let jobs = exec::default_jobs(args.exec.jobs);
    let opts = RunOptions {
        jobs,
        keep_going: args.keep_going,
        grace: args.exec.grace,
        argv: std::env::args().collect(),
        replay_of: None,
        force,
        reuse_replays: args.reuse_replays,
        no_store: args.no_store,
        no_cache: false,
        git_fixed: None,
        recorded_location: None,
        trace,
        run_id: Some(run_id.clone()),
        message: args.message.clone().filter(|m| !m.trim().is_empty()),
        targets,
        sweep_id: None,
    };
    let mut events = Sinks::new();
    events.push(Arc::new(Human::new(printer)));
    let json = Arc::new(Json::default());
    if args.json {
        events.push(json.clone());
    }
    let outcome = exec::run_blocking(plan, store, opts, events)?;
    drop(lock);
    after_run(args, &dir, &run_id, &outcome, &traced, &json, color)
}

/// After the run: the push `--push` or the config asks for, the hint about reused steps that
/// were not traced, the `--json` document and the run's page in `mlrun ui`.
fn after_run(
    args: &RunArgs,
    dir: &Path,
    run_id: &str,
    outcome: &exec::RunOutcome,
    traced: &[String],
    json: &Json,
    color: ColorChoice,
) -> Result<i32> {
    let err_style = Style::stderr(color);
    if !args.no_store
        && let Err(e) = super::push::after_run(dir, run_id, args.push)
    {
        // the run is recorded either way; the next `mlrun push` sends it
        if outcome.exit_code == 0 {
            return Err(e);
        }
        eprintln!("{} {}", err_style.paint(Role::Bad, "error:"), e.one_line());
    }
    let reused_untraced = outcome.steps.iter().any(|s| {
        matches!(s.status, StepStatus::Cached | StepStatus::Restored) && traced.contains(&s.name)
    });
    if exec::trace::SUPPORTED && reused_untraced {
        eprintln!(
            "{} steps reused from an earlier run did not run, so they were not traced; `--force` runs (and traces) them again",
            err_style.paint(Role::Accent, "hint:")
        );
    }
    // the run page in `mlrun ui`, when a base URL is configured (mlrun.toml was read by the run)
    let link = crate::config::Config::load(dir)
        .ok()
        .and_then(|c| c.ui)
        .map(|l| l.run(&outcome.run_id));
    json.print(link.as_deref());
    if let Some(url) = &link
        && !args.json
    {
        crate::report::emit(&crate::report::ui_link_line(url, &Style::stdout(color)));
    }
    Ok(outcome.exit_code)
}

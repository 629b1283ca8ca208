//! `mlrun run [PIPELINE]`: validate, then execute and record.

use std::path::Path;
use std::sync::Arc;

use crate::cli::{RunArgs, TraceArg};
use crate::error::{Error, Result};
use crate::exec::{self, Force, RunOptions, output::Printer};
use crate::pipeline::diag::did_you_mean;
use crate::pipeline::{self, LoadOptions, TraceMode};
use crate::report::{ColorChoice, Style};
use crate::store::{self, Store};

pub fn run(args: RunArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let plan = pipeline::load(&LoadOptions {
        file: &args.pipeline,
        overrides: &args.params,
    })?;
    let err_style = Style::stderr(color);
    for w in &plan.warnings {
        let text = w.trim_end();
        match text.strip_prefix("warning:") {
            Some(rest) => eprintln!("{}{rest}", err_style.yellow("warning:")),
            None => eprintln!("{text}"),
        }
    }
    let force = match &args.force {
        None => Force::None,
        Some(names) if names.iter().all(|n| n.is_empty()) => Force::All,
        Some(names) => {
            let names: Vec<String> = names.iter().filter(|n| !n.is_empty()).cloned().collect();
            for n in &names {
                if plan.step_index(n).is_none() {
                    let mut e =
                        Error::invalid(format!("`--force={n}` names no step of `{}`", plan.name));
                    if let Some(s) = did_you_mean(n, plan.steps.iter().map(|s| s.name.as_str())) {
                        e = e.hint(format!("did you mean `{s}`?"));
                    }
                    return Err(e);
                }
            }
            Force::Steps(names)
        }
    };
    let trace = args.trace.map(|t| match t {
        TraceArg::On => TraceMode::On,
        TraceArg::Strict => TraceMode::Strict,
        TraceArg::Off => TraceMode::Off,
    });
    for w in exec::trace::check_supported(&plan, trace)? {
        eprintln!("{} {w}", err_style.yellow("warning:"));
    }
    let traced: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| TraceMode::resolve(trace, plan.trace, s.trace) != TraceMode::Off)
        .map(|s| s.name.clone())
        .collect();
    let dir = store::dir_for_pipeline(&plan.file, store_dir);
    let store = Store::open(&dir)?;

    let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    let printer = Arc::new(Printer::new(
        args.json,
        Style::stdout(color),
        err_style,
        &names,
    ));
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = RunOptions {
        jobs,
        keep_going: args.keep_going,
        grace: args.grace,
        argv: std::env::args().collect(),
        replay_of: None,
        force,
        no_store: args.no_store,
        trace,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs.clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| Error::other("cannot start the async runtime").cause(e))?;
    let outcome = runtime.block_on(exec::run(plan, store, opts, printer))?;
    let reused_untraced = outcome
        .steps
        .iter()
        .any(|s| matches!(s.status.as_str(), "cached" | "restored") && traced.contains(&s.name));
    if exec::trace::SUPPORTED && reused_untraced {
        eprintln!(
            "{} steps reused from an earlier run did not run, so they were not traced; `--force` runs (and traces) them again",
            err_style.cyan("hint:")
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        );
    }
    Ok(outcome.exit_code)
}

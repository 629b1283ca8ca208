//! `mlrun run [PIPELINE]`: validate, then execute and record.

use std::path::Path;
use std::sync::Arc;

use crate::cli::{RunArgs, TraceArg};
use crate::error::{Error, Result};
use crate::exec::{self, Force, RunOptions, output::Printer};
use crate::pipeline::TraceMode;
use crate::pipeline::diag::did_you_mean;
use crate::report::{ColorChoice, Style};
use crate::store::lock::PipelineLock;
use crate::store::{self, Store};

pub fn run(args: RunArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let json = args.json;
    let result = run_inner(args, store_dir, color);
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

fn run_inner(args: RunArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let err_style = Style::stderr(color);
    let plan = super::load_plan(&args.pipeline, &args.params, false, err_style)?;
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
                    let steps: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
                    return Err(e.hint(format!("its steps: {}", steps.join(", "))));
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
    let mut lock = PipelineLock::acquire(&dir, &plan.file, args.wait_lock, |who| {
        eprintln!(
            "waiting for {who} to finish running `{}`…",
            args.pipeline.display()
        );
    })?;
    // The id is chosen now so the lock can name the run a second mlrun is waiting for.
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    lock.describe(&format!(
        "run {run_id} (mlrun pid {}, started {})",
        std::process::id(),
        crate::report::time::local(crate::store::record::now_ms())
    ));

    let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    let printer = Arc::new(Printer::new(
        args.json,
        Style::stdout(color),
        err_style,
        &names,
    ));
    let jobs = exec::default_jobs(args.jobs);
    let opts = RunOptions {
        jobs,
        keep_going: args.keep_going,
        grace: args.grace,
        argv: std::env::args().collect(),
        replay_of: None,
        force,
        reuse_replays: args.reuse_replays,
        no_store: args.no_store,
        no_cache: false,
        git_fixed: None,
        recorded_location: None,
        trace,
        run_id: Some(run_id),
        message: args.message.clone().filter(|m| !m.trim().is_empty()),
    };
    let outcome = exec::run_blocking(plan, store, opts, printer)?;
    drop(lock);
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

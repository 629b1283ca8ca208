//! One module per subcommand. Each takes its clap args and returns the exit code.

pub mod diff;
pub mod export;
pub mod fsck;
pub mod gc;
pub mod lineage;
pub mod model;
pub mod replay;
pub mod run;
pub mod runs;
pub mod show;
pub mod status;
pub mod target;

use crate::cli::{Cli, Command};
use crate::error::Result;

pub fn dispatch(cli: Cli) -> Result<i32> {
    let store = cli.store.clone();
    match cli.command {
        None => run::run(cli.run, store.as_deref(), cli.color),
        Some(Command::Run(args)) => run::run(args, store.as_deref(), cli.color),
        Some(Command::Runs(args)) => runs::runs(args, store.as_deref(), cli.color),
        Some(Command::Show(args)) => show::show(args, store.as_deref(), cli.color),
        Some(Command::Lineage(args)) => lineage::lineage(args, store.as_deref(), cli.color),
        Some(Command::Diff(args)) => diff::diff(args, store.as_deref(), cli.color),
        Some(Command::Export(args)) => export::export(args, store.as_deref(), cli.color),
        Some(Command::Replay(args)) => replay::replay(args, store.as_deref(), cli.color),
        Some(Command::Status(args)) => status::status(args, store.as_deref(), cli.color),
        Some(Command::Gc(args)) => gc::gc(args, store.as_deref(), cli.color),
        Some(Command::Fsck(args)) => fsck::fsck(args, store.as_deref(), cli.color),
        Some(Command::Model(args)) => model::model(args, store.as_deref(), cli.color),
    }
}

/// Find, read and check the pipeline a command works on, and show its warnings.
fn load_plan(
    pipeline: &std::path::Path,
    params: &[String],
    err_style: crate::report::Style,
) -> Result<crate::pipeline::Plan> {
    let file = crate::pipeline::locate(pipeline);
    let plan = crate::pipeline::load(&crate::pipeline::LoadOptions {
        file: &file,
        overrides: params,
    })?;
    crate::report::print_warnings(&plan.warnings, err_style);
    Ok(plan)
}

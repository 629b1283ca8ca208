//! One module per subcommand. Each takes its clap args and returns the exit code.

pub mod compare;
pub mod completions;
pub mod diff;
pub mod export;
pub mod fsck;
pub mod gc;
pub mod import;
pub mod init;
pub mod lineage;
pub mod model;
pub mod note;
pub mod replay;
pub mod run;
pub mod runs;
pub mod show;
pub mod status;
pub mod target;
pub mod ui;

use crate::cli::{Cli, Command};
use crate::error::Result;

pub fn dispatch(cli: Cli) -> Result<i32> {
    let store = cli.store.clone();
    match cli.command {
        None => {
            if let Some(e) = mistyped_command(&cli.run.pipeline) {
                return Err(e);
            }
            run::run(cli.run, store.as_deref(), cli.color)
        }
        Some(Command::Run(args)) => run::run(args, store.as_deref(), cli.color),
        Some(Command::Runs(args)) => runs::runs(args, store.as_deref(), cli.color),
        Some(Command::Show(args)) => show::show(args, store.as_deref(), cli.color),
        Some(Command::Lineage(args)) => lineage::lineage(args, store.as_deref(), cli.color),
        Some(Command::Diff(args)) => diff::diff(args, store.as_deref(), cli.color),
        Some(Command::Compare(args)) => compare::compare(args, store.as_deref(), cli.color),
        Some(Command::Note(args)) => note::note(args, store.as_deref(), cli.color),
        Some(Command::Init(args)) => init::init(args, cli.color),
        Some(Command::Completions(args)) => completions::completions(args),
        Some(Command::Export(args)) => export::export(args, store.as_deref(), cli.color),
        Some(Command::Replay(args)) => replay::replay(args, store.as_deref(), cli.color),
        Some(Command::Status(args)) => status::status(args, store.as_deref(), cli.color),
        Some(Command::Gc(args)) => gc::gc(args, store.as_deref(), cli.color),
        Some(Command::Fsck(args)) => fsck::fsck(args, store.as_deref(), cli.color),
        Some(Command::Import(args)) => import::import(args, cli.color),
        Some(Command::Model(args)) => model::model(args, store.as_deref(), cli.color),
        Some(Command::Ui(args)) => ui::ui(args, store.as_deref(), cli.color),
    }
}

/// `mlrun rnus`: a bare word that is no file but is close to a subcommand's name was meant as
/// that subcommand, not as a pipeline path (which `mlrun WORD` otherwise is).
fn mistyped_command(pipeline: &std::path::Path) -> Option<crate::error::Error> {
    use clap::CommandFactory;
    let word = pipeline.to_str()?;
    if word.contains(['/', '.']) || pipeline.symlink_metadata().is_ok() {
        return None;
    }
    let cmd = Cli::command();
    let names: Vec<&str> = cmd
        .get_subcommands()
        .map(|s| s.get_name())
        .filter(|n| *n != word)
        .collect();
    let close = crate::pipeline::diag::did_you_mean(word, names.iter().copied())?;
    Some(
        crate::error::Error::invalid(format!("unknown command `{word}`; did you mean `{close}`?"))
            .hint(format!(
                "`mlrun --help` lists the commands; to run a pipeline file named `{word}`, write `mlrun ./{word}`"
            )),
    )
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

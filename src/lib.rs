//! mlrun: run the steps of a `pipeline.toml` and record their lineage.
//!
//! Data flow, which the module tree follows:
//! `pipeline` (parse, validate → `Plan`) → `exec` (schedule, supervise) with `fingerprint`
//! (files, git, system, env) around every step → `store` (record; query) → `cmd` (one module
//! per subcommand) using `report` for how things look.

pub mod beneath;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod diffcontent;
pub mod error;
pub mod exec;
pub mod fingerprint;
pub mod import;
pub mod live;
pub mod pipeline;
pub mod replay;
pub mod report;
pub mod store;
#[cfg(feature = "ui")]
pub mod ui;

use clap::{CommandFactory, Parser};

/// Parse the command line, run, and return the process exit code.
pub fn main_entry() -> i32 {
    // `mlrun __mlrun-trace …` is the helper a traced step runs under (exec/trace), not a command
    let args: Vec<std::ffi::OsString> = std::env::args_os().take(2).collect();
    if args.get(1).is_some_and(|a| a == exec::trace::HELPER_ARG) {
        let all: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
        return exec::trace::helper_main(&all);
    }
    // `mlrun __job-step JOBDIR` runs a step inside its Slurm job (exec/slurm)
    if args.get(1).is_some_and(|a| a == exec::slurm::wrapper::ARG) {
        let all: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
        return exec::slurm::wrapper::main(&all);
    }
    // `mlrun __mlrun-watchdog` stops the steps' process groups if this mlrun dies (exec/unix)
    if args.get(1).is_some_and(|a| a == exec::unix::watchdog::ARG) {
        return exec::unix::watchdog::main();
    }
    exec::unix::watchdog::enable();
    let cli = match cli::Cli::try_parse_from(cli::hoist_subcommand(std::env::args_os().collect())) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => error::exit::INVALID,
            };
        }
    };
    let err_style = report::Style::stderr(cli.color);
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let text = e.to_string();
            let text = match text.strip_prefix("error:") {
                Some(rest) => format!("{}{rest}", err_style.paint(report::Role::Bad, "error:")),
                None => text,
            };
            eprintln!("{text}");
            e.exit_code()
        }
    }
}

/// Hand the parsed command line to its subcommand's handler. It lives here, not in `cli` or
/// `cmd`, so that `cli` (which names every handler's `Args`) and `cmd` never import each other.
fn dispatch(cli: cli::Cli) -> error::Result<i32> {
    use cli::Command;
    let store = cli.store.clone();
    let store = store.as_deref();
    // Lineage events a command before this one could not deliver go out first, in order (a run
    // and `export --send` deliver them themselves).
    if matches!(
        cli.command,
        Some(
            Command::Runs(_)
                | Command::Show(_)
                | Command::Status(_)
                | Command::Lineage(_)
                | Command::Diff(_)
                | Command::Compare(_)
                | Command::Note(_)
                | Command::Model(_)
        )
    ) && let Ok(dir) = store::find_dir(store)
    {
        live::flush_pending(&dir, live::FLUSH_WAIT);
    }
    match cli.command {
        None => {
            let typo = cli
                .run
                .pipeline
                .as_deref()
                .and_then(|p| cmd::mistyped_command(p, &cli::Cli::command()));
            cmd::run::run_or_typo(cli.run, store, cli.color, typo)
        }
        Some(Command::Run(args)) => cmd::run::run(args, store, cli.color),
        Some(Command::Runs(args)) => cmd::runs::runs(args, store, cli.color),
        Some(Command::Show(args)) => cmd::show::show(args, store, cli.color),
        Some(Command::Lineage(args)) => cmd::lineage::lineage(args, store, cli.color),
        Some(Command::Diff(args)) => cmd::diff::diff(args, store, cli.color),
        Some(Command::Compare(args)) => cmd::compare::compare(args, store, cli.color),
        Some(Command::Checkout(args)) => cmd::checkout::checkout(args, store, cli.color),
        Some(Command::Rm(args)) => cmd::rm::rm(args, store, cli.color),
        Some(Command::Note(args)) => cmd::note::note(args, store, cli.color),
        Some(Command::Cancel(args)) => cmd::cancel::cancel(args, store, cli.color),
        Some(Command::Init(args)) => cmd::init::init(args, cli.color),
        Some(Command::Completions(args)) => {
            cmd::completions::completions(args, cli::Cli::command())
        }
        Some(Command::Export(args)) => cmd::export::export(args, store, cli.color),
        Some(Command::Replay(args)) => cmd::replay::replay(args, store, cli.color),
        Some(Command::Check(args)) => cmd::check::check(args, store, cli.color),
        Some(Command::Status(args)) => cmd::status::status(args, store, cli.color),
        Some(Command::Gc(args)) => cmd::gc::gc(args, store, cli.color),
        Some(Command::Fsck(args)) => cmd::fsck::fsck(args, store, cli.color),
        Some(Command::Import(args)) => cmd::import::import(args, cli.color),
        Some(Command::Model(args)) => cmd::model::model(args, store, cli.color),
        #[cfg(feature = "ui")]
        Some(Command::Ui(args)) => cmd::ui::ui(args, store, cli.color),
    }
}

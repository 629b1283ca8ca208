//! mlrun: run the steps of a `pipeline.toml` and record their lineage.
//!
//! Data flow, which the module tree follows:
//! `pipeline` (parse, validate → `Plan`) → `exec` (schedule, supervise) with `fingerprint`
//! (files, git, system, env) around every step → `store` (record; query) → `cmd` (one module
//! per subcommand) using `report` for how things look.

pub mod beneath;
pub mod cli;
pub mod cmd;
pub mod error;
pub mod exec;
pub mod fingerprint;
pub mod import;
pub mod pipeline;
pub mod replay;
pub mod report;
pub mod store;
pub mod ui;

use clap::Parser;

/// Parse the command line, run, and return the process exit code.
pub fn main_entry() -> i32 {
    // `mlrun __mlrun-trace …` is the helper a traced step runs under (exec/trace), not a command
    let args: Vec<std::ffi::OsString> = std::env::args_os().take(2).collect();
    if args.get(1).is_some_and(|a| a == exec::trace::HELPER_ARG) {
        let all: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
        return exec::trace::helper_main(&all);
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
    match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let text = e.to_string();
            let text = match text.strip_prefix("error:") {
                Some(rest) => format!("{}{rest}", err_style.red("error:")),
                None => text,
            };
            eprintln!("{text}");
            e.exit_code()
        }
    }
}

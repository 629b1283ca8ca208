//! The command line: the top-level parser and the list of subcommands, each of whose clap `Args`
//! sits beside its handler in `cmd/`. `mlrun PIPELINE` is shorthand for `mlrun run PIPELINE`.
//! Nothing in `cmd/` imports this module (the handlers are called from `crate::main_entry`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::cmd::{
    compare::CompareArgs, completions::CompletionsArgs, diff::DiffArgs, export::ExportArgs,
    fsck::FsckArgs, gc::GcArgs, import::ImportArgs, init::InitArgs, lineage::LineageArgs,
    model::ModelCommand, note::NoteArgs, replay::ReplayArgs, run::RunArgs, runs::RunsArgs,
    show::ShowArgs, status::StatusArgs,
};
use crate::report::ColorChoice;

const AFTER_HELP: &str = "\
Examples:
  mlrun                          run ./pipeline.toml and record its lineage
  mlrun examples/x/pipeline.toml run another pipeline
  mlrun run -p train.lr=0.01     override a param for this run
  mlrun train                    run the step `train` and the stale steps it needs
  mlrun run model.pkl --dry-run  which steps making model.pkl would run, and why
  mlrun runs                     list recorded runs
  mlrun show latest              everything recorded about the newest run
  mlrun show model/              the model card: what made this exact version
  mlrun lineage model/           the data, steps, commits and params it came from
  mlrun diff RUN1 RUN2           what changed between two runs
  mlrun diff latest              what changed since the run before the latest
  mlrun runs --metric 'acc>0.9'  runs whose metric passes a test
  mlrun run -m 'try dropout'     attach a message to the run (`mlrun note RUN TEXT` later)
  mlrun compare --sort acc       params × metrics of the last 10 runs, best first
  mlrun checkout model/@latest~1 put the model the run before the latest made back
  mlrun init                     start a project: a pipeline.toml skeleton
  mlrun export latest --format openlineage   interchange with lineage tools
  mlrun replay model.pkl         reproduce the run that made model.pkl and compare

Exit codes:
  0    every step succeeded
  N    a step failed: its own exit code (128+signal when it was killed)
  1    mlrun itself failed (store, I/O), or a step did not produce a declared output;
       an unknown or ambiguous id, hash or path
  2    invalid pipeline or command line; nothing was run
  75   another mlrun is running this pipeline (use --wait-lock to wait)
  124  a step ran past its timeout
  130  interrupted (SIGINT); 143 terminated (SIGTERM)";

#[derive(Debug, Parser)]
#[command(
    name = "mlrun",
    version,
    about = "Run ML pipelines from pipeline.toml and record what made every model",
    long_about = "Run the steps declared in pipeline.toml as subprocesses and record, around every \
                  step, the hashes of its inputs and outputs, its params and metrics, the git state \
                  and the environment, in a local SQLite lineage store (.mlrun/lineage.db).",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,

    /// Lineage store directory [default: .mlrun beside pipeline.toml, or the nearest one above
    /// the current directory for read commands]
    #[arg(
        long,
        global = true,
        env = "MLRUN_STORE",
        value_name = "DIR",
        display_order = 100
    )]
    pub store: Option<PathBuf>,

    /// When to use colour (NO_COLOR and non-terminals turn it off under `auto`)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN", display_order = 101)]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline and record its lineage (the default command)
    Run(RunArgs),
    /// List recorded runs, newest first
    Runs(RunsArgs),
    /// Show everything recorded about a run, or the model card of an artifact version
    Show(ShowArgs),
    /// Trace what a version, step or run was made from (or, with --down, what was made from it)
    Lineage(LineageArgs),
    /// Compare two runs (or the runs that made two artifact versions); one run: with the run
    /// before it
    Diff(DiffArgs),
    /// One table of params × metrics over many runs: the columns that differ
    Compare(CompareArgs),
    /// Attach a message to a recorded run (or show or clear it)
    Note(NoteArgs),
    /// Cancel the Slurm jobs of a run that may still be running (after mlrun was killed)
    Cancel(crate::cmd::cancel::CancelArgs),
    /// Put recorded versions back into the working tree from the object store (a path's, or
    /// every output and external input of a run)
    Checkout(crate::cmd::checkout::CheckoutArgs),
    /// Remove runs from the history (recorded as removed); `gc` then frees their objects
    Rm(crate::cmd::rm::RmArgs),
    /// Start a project: write a commented pipeline.toml and keep .mlrun/ out of git
    Init(InitArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions(CompletionsArgs),
    /// Export a run as OpenLineage events (JSON lines) or W3C PROV-JSON
    Export(ExportArgs),
    /// Say which steps are up to date and why the others would run
    Status(StatusArgs),
    /// Reproduce a recorded run in a scratch tree and say whether it came out bit for bit
    Replay(ReplayArgs),
    /// Run steps of a recorded run twice in a scratch tree and record which outputs are
    /// nondeterministic (later replays expect those to differ)
    Check(crate::cmd::check::CheckArgs),
    /// Delete stored objects that kept runs no longer reference
    Gc(GcArgs),
    /// Re-hash every stored object and report corrupt or missing ones
    Fsck(FsckArgs),
    /// Convert a DVC pipeline (dvc.yaml) into pipeline.toml
    Import(ImportArgs),
    /// Name model versions (NAME@vN), move aliases (NAME@production), list them
    #[command(subcommand)]
    Model(ModelCommand),
    /// Serve a local, read-only web view of runs, comparisons and lineage
    #[cfg(feature = "ui")]
    Ui(crate::cmd::ui::UiArgs),
}

/// `mlrun --store DIR runs` must mean the `runs` subcommand, but clap stops looking for
/// subcommands once a top-level argument was seen (the price of `mlrun PIPELINE` being a run).
/// Global options written before a subcommand are therefore moved after it.
pub fn hoist_subcommand(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .flat_map(|s| {
            std::iter::once(s.get_name().to_string()).chain(s.get_all_aliases().map(str::to_string))
        })
        .chain(["help".to_string()])
        .collect();
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        match a.as_ref() {
            "--store" | "--color" => i += 2,
            s if s.starts_with("--store=") || s.starts_with("--color=") => i += 1,
            _ => break,
        }
    }
    if i > 1 && i < args.len() && names.iter().any(|n| args[i].to_str() == Some(n.as_str())) {
        let sub = args.remove(i);
        args.insert(1, sub);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::run::TraceArg;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_may_come_before_the_subcommand() {
        let args = |v: &[&str]| hoist_subcommand(v.iter().map(Into::into).collect());
        let cli = Cli::try_parse_from(args(&["mlrun", "--store", "s", "runs", "-n", "1"])).unwrap();
        assert!(matches!(cli.command, Some(Command::Runs(_))));
        assert_eq!(cli.store.as_deref(), Some(std::path::Path::new("s")));
        let cli = Cli::try_parse_from(args(&["mlrun", "--color=never", "p.toml"])).unwrap();
        assert!(cli.command.is_none());
    }

    #[test]
    fn trace_takes_an_optional_mode() {
        let cli = Cli::try_parse_from(["mlrun", "run", "--trace"]).unwrap();
        let Some(Command::Run(r)) = cli.command else {
            panic!("a run")
        };
        assert_eq!(r.trace, Some(TraceArg::On));
        let cli = Cli::try_parse_from(["mlrun", "--trace=strict", "p.toml"]).unwrap();
        assert_eq!(cli.run.trace, Some(TraceArg::Strict));
        assert_eq!(cli.run.pipeline, Some(PathBuf::from("p.toml")));
        assert!(Cli::try_parse_from(["mlrun", "--trace=loud"]).is_err());
    }

    #[test]
    fn run_and_replay_read_jobs_and_grace_alike() {
        let cli = Cli::try_parse_from(["mlrun", "run", "-j", "3", "--grace", "2m"]).unwrap();
        let Some(Command::Run(r)) = cli.command else {
            panic!("a run")
        };
        assert_eq!(r.exec.jobs, Some(3));
        assert_eq!(r.exec.grace, std::time::Duration::from_secs(120));
        let cli = Cli::try_parse_from(["mlrun", "replay", "--grace", "5", "-j", "1"]).unwrap();
        let Some(Command::Replay(r)) = cli.command else {
            panic!("a replay")
        };
        assert_eq!(r.exec.jobs, Some(1));
        assert_eq!(r.exec.grace, std::time::Duration::from_secs(5));
        assert!(Cli::try_parse_from(["mlrun", "replay", "-j", "0"]).is_err());
        assert!(Cli::try_parse_from(["mlrun", "--grace", "soon"]).is_err());
    }

    #[test]
    fn bare_pipeline_is_a_run() {
        let cli = Cli::try_parse_from(["mlrun", "p.toml", "-j", "2"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.pipeline, Some(PathBuf::from("p.toml")));
        let cli = Cli::try_parse_from(["mlrun", "runs", "--json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Runs(_))));
    }
}

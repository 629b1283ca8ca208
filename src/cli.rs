//! The command line, as clap-derive structs. `mlrun PIPELINE` is shorthand for `mlrun run PIPELINE`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::ColorChoice;

const AFTER_HELP: &str = "\
Examples:
  mlrun                          run ./pipeline.toml and record its lineage
  mlrun examples/x/pipeline.toml run another pipeline
  mlrun run -p train.lr=0.01     override a param for this run
  mlrun runs                     list recorded runs
  mlrun show latest              everything recorded about the newest run

Exit codes:
  0    every step succeeded
  N    a step failed: its own exit code (128+signal when it was killed)
  1    mlrun itself failed (store, I/O), or a step did not produce a declared output
  2    invalid pipeline or command line; nothing was run
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
    #[arg(long, global = true, env = "MLRUN_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// When to use colour (NO_COLOR and non-terminals turn it off under `auto`)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline and record its lineage (the default command)
    Run(RunArgs),
    /// List recorded runs, newest first
    Runs(RunsArgs),
    /// Show everything recorded about a run
    Show(ShowArgs),
    /// Say which steps are up to date and why the others would run
    Status(StatusArgs),
    /// Delete stored objects that kept runs no longer reference
    Gc(GcArgs),
    /// Re-hash every stored object and report corrupt or missing ones
    Fsck(FsckArgs),
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// The pipeline file
    #[arg(value_name = "PIPELINE", default_value = "pipeline.toml")]
    pub pipeline: PathBuf,

    /// Run at most N steps at once [default: number of CPU cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// After a step fails, still run every step that does not depend on it
    #[arg(short = 'k', long)]
    pub keep_going: bool,

    /// Override a param for this run (repeatable), e.g. `-p train.lr=0.01`
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// On interrupt, how long steps get to exit after SIGTERM before SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Print a JSON summary on stdout at the end (step output and progress go to stderr)
    #[arg(long)]
    pub json: bool,

    /// Run steps even when an earlier run with the same inputs could be reused: all of them
    /// (`--force`) or the named ones (`--force=train`, repeatable or comma-separated)
    #[arg(long, value_name = "STEP", num_args = 0..=1, require_equals = true, value_delimiter = ',', default_missing_value = "")]
    pub force: Option<Vec<String>>,

    /// Record hashes but keep no copies in the object store (outputs cannot be restored later)
    #[arg(long)]
    pub no_store: bool,

    /// Trace the files each step really reads and writes (Linux): warn about undeclared ones and
    /// record them as observed lineage. `--trace=strict` also fails a step that uses undeclared
    /// files; `--trace=off` turns off tracing asked for in pipeline.toml
    #[arg(long, value_name = "MODE", value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "on")]
    pub trace: Option<TraceArg>,
}

/// `--trace=MODE`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceArg {
    /// trace, warn about undeclared files (the default of a bare `--trace`)
    On,
    /// trace, and fail a step on any undeclared read or write inside the project
    Strict,
    /// do not trace, whatever pipeline.toml says
    Off,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The pipeline file
    #[arg(value_name = "PIPELINE", default_value = "pipeline.toml")]
    pub pipeline: PathBuf,

    /// Override a param, as for `run`, to ask what that run would do
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// Exit 1 when any step is stale (for CI: are the committed results up to date?)
    #[arg(long)]
    pub check: bool,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep the objects of the N most recent runs only [default: keep every run's objects]
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,

    /// Say what would be deleted and how much space it would free, without deleting
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Show at most N runs (0 for all)
    #[arg(short = 'n', long, default_value_t = 20, value_name = "N")]
    pub limit: usize,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run id (any unique prefix) or `latest`
    #[arg(value_name = "RUN", default_value = "latest")]
    pub run: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,

    /// Also print each step's captured stdout and stderr
    #[arg(long)]
    pub logs: bool,

    /// Also print the uncommitted diff recorded at the start of the run
    #[arg(long)]
    pub patch: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 500ms, 2m)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
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
        assert_eq!(cli.run.pipeline, PathBuf::from("p.toml"));
        assert!(Cli::try_parse_from(["mlrun", "--trace=loud"]).is_err());
    }

    #[test]
    fn bare_pipeline_is_a_run() {
        let cli = Cli::try_parse_from(["mlrun", "p.toml", "-j", "2"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.pipeline, PathBuf::from("p.toml"));
        let cli = Cli::try_parse_from(["mlrun", "runs", "--json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Runs(_))));
    }
}

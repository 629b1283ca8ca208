//! One module per subcommand, each with its clap `Args` beside the handler that takes them and
//! returns the exit code. `crate::cli` only gathers them into the command line.

pub mod cancel;
pub mod check;
pub mod checkout;
pub mod compare;
pub mod completions;
pub mod diff;
pub mod dryrun;
pub mod export;
pub mod fsck;
pub mod gc;
pub mod import;
pub mod init;
pub mod lineage;
pub mod model;
pub mod note;
pub mod replay;
pub mod rm;
pub mod run;
pub mod runs;
pub mod select;
pub mod show;
pub mod status;
pub mod sweep;
pub mod target;
#[cfg(feature = "ui")]
pub mod ui;

use std::time::Duration;

use crate::error::Result;

/// The options of every command that runs steps (`run`, `replay`): how many at once and how
/// they are stopped.
///
/// `display_order`: the options of `run` and `replay` are numbered so that `--help` lists
/// these two among the others, where they always were (`-j` at 10, `--grace` at 20; `run`'s
/// own options 11-12 and 21-27, `replay`'s 1-3 and 21; the global ones 100 and up). Clap's own
/// numbering would put a flattened struct's options together.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Run at most N steps at once [default: number of CPU cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..), display_order = 10)]
    pub jobs: Option<u16>,

    /// On interrupt, how long steps get to exit after SIGTERM before SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, display_order = 20)]
    pub grace: Duration,

    /// Run every step here (`local`) or as Slurm jobs (`slurm`), whatever pipeline.toml's
    /// `executor` keys say
    #[arg(long, value_name = "WHERE", value_enum, display_order = 21)]
    pub executor: Option<ExecutorArg>,
}

/// `--executor`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorArg {
    // (no doc comments: they would turn `--help` into its long form)
    Local,
    Slurm,
}

impl ExecArgs {
    /// `--executor`, as the plan's type
    pub fn executor(&self) -> Option<crate::pipeline::plan::Executor> {
        self.executor.map(|e| match e {
            ExecutorArg::Local => crate::pipeline::plan::Executor::Local,
            ExecutorArg::Slurm => crate::pipeline::plan::Executor::Slurm,
        })
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    crate::pipeline::duration::parse(s).map_err(|e| format!("{e} (examples: 10s, 500ms, 2m)"))
}

/// Links to `mlrun ui` for the store in `store_dir`, when `[ui] base_url` (or `MLRUN_UI_URL`)
/// names where it is served. A mistake there is said on stderr and gives no links: a command
/// that only reads the store still does its job (`mlrun run` stops on it, as for any mistake in
/// mlrun.toml).
pub fn ui_links(
    store_dir: &std::path::Path,
    color: crate::report::ColorChoice,
) -> Option<crate::config::UiLinks> {
    match crate::config::Config::load(store_dir) {
        Ok(c) => c.ui,
        Err(e) => {
            let style = crate::report::Style::stderr(color);
            eprintln!(
                "{} {e}; no links to the web view are printed",
                style.paint(crate::report::Role::Warn, "warning:")
            );
            None
        }
    }
}

/// `mlrun rnus`: a bare word that is no file but is close to a subcommand's name was meant as
/// that subcommand, not as a pipeline path (which `mlrun WORD` otherwise is).
/// `cmd` is the whole command line's definition, which names the subcommands.
pub fn mistyped_command(
    pipeline: &std::path::Path,
    cmd: &clap::Command,
) -> Option<crate::error::Error> {
    let word = pipeline.to_str()?;
    if word.contains(['/', '.']) || pipeline.symlink_metadata().is_ok() {
        return None;
    }
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
    missing_inputs_ok: bool,
    err_style: crate::report::Style,
) -> Result<crate::pipeline::Plan> {
    let file = crate::pipeline::locate(pipeline);
    let plan = crate::pipeline::load(&crate::pipeline::LoadOptions {
        file: &file,
        overrides: params,
        missing_inputs_ok,
    })?;
    crate::report::print_warnings(plan.warnings(), err_style);
    Ok(plan)
}

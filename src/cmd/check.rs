//! `mlrun check STEP...`: run steps of a recorded run twice in a scratch tree (a replay whose
//! named steps run a second time with the same inputs) and record, per output, whether it came
//! out the same. Later replays expect a nondeterministic output to differ; `status` and `show`
//! mark it. Exit 0 when every output of the checked steps is deterministic, 1 when any is not, a
//! failed step's code otherwise.
//!
//! A separate command rather than `run --twice`: it checks what was recorded (the same commit,
//! inputs and environment as a replay), never touches the working tree, and can be pointed at any
//! recorded run.

use std::path::Path;

use crate::cmd::ExecArgs;
use crate::cmd::replay::ReplayArgs;
use crate::error::Result;
use crate::report::ColorChoice;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The steps to check (each runs twice; the steps they need run once, before)
    #[arg(value_name = "STEP", required = true)]
    pub steps: Vec<String>,

    /// The recorded run whose steps, inputs and code are checked (id prefix, `latest`,
    /// `latest~1`)
    #[arg(long, value_name = "RUN", default_value = "latest", display_order = 1)]
    pub run: String,

    /// Keep the scratch tree and print where it is
    #[arg(long, display_order = 2)]
    pub keep: bool,

    #[command(flatten)]
    pub exec: ExecArgs,

    /// Print the verdicts as JSON on stdout (progress goes to stderr)
    #[arg(long, display_order = 21)]
    pub json: bool,
}

pub fn check(args: CheckArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let replay = ReplayArgs {
        target: args.run,
        step: None,
        keep: args.keep,
        into: None,
        exec: args.exec,
        json: args.json,
        explain: true,
        no_explain: false,
        check: args.steps,
    };
    crate::cmd::replay::replay(replay, store_dir, color)
}

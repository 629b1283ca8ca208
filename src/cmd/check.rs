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

use crate::cli::{CheckArgs, ReplayArgs};
use crate::error::Result;
use crate::report::ColorChoice;

pub fn check(args: CheckArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let replay = ReplayArgs {
        target: args.run,
        step: None,
        keep: args.keep,
        into: None,
        jobs: args.jobs,
        grace: args.grace,
        json: args.json,
        explain: true,
        no_explain: false,
        check: args.steps,
    };
    crate::cmd::replay::replay(replay, store_dir, color)
}

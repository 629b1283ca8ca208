//! `mlrun completions SHELL`: shell completion scripts, generated from the command line itself.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::Result;

pub fn completions(args: CompletionsArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "mlrun", &mut out);
    crate::report::emit(&String::from_utf8_lossy(&out));
    Ok(0)
}

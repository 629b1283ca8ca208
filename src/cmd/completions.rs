//! `mlrun completions SHELL`: shell completion scripts, generated from the command line itself.

use crate::error::Result;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  mlrun completions bash > ~/.local/share/bash-completion/completions/mlrun
  mlrun completions zsh > ~/.zfunc/_mlrun      (with `fpath+=~/.zfunc` before compinit)
  mlrun completions fish > ~/.config/fish/completions/mlrun.fish")]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: clap_complete::Shell,
}

/// `cmd` is the whole command line's definition (`crate::cli::Cli`).
pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> Result<i32> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "mlrun", &mut out);
    crate::report::emit(&String::from_utf8_lossy(&out));
    Ok(0)
}

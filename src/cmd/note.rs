//! `mlrun note RUN [TEXT]`: set, show or clear the message of a recorded run.

use std::path::Path;

use crate::error::{Error, Result};
use crate::report::Role;
use crate::report::{self, ColorChoice, Style};
use crate::store::{self, Store};

#[derive(Debug, clap::Args)]
#[command(after_help = crate::cmd::target::RUN_HELP)]
pub struct NoteArgs {
    /// The run: an id prefix, `latest`, `latest~1`
    #[arg(value_name = "RUN")]
    pub run: String,

    /// The message (replaces the run's message) [default: print the run's message]
    #[arg(value_name = "TEXT")]
    pub text: Option<String>,

    /// Remove the run's message
    #[arg(long, conflicts_with = "text")]
    pub clear: bool,
}

pub fn note(args: NoteArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let style = Style::stdout(color);
    let Some(text) = args.text.as_deref().filter(|_| !args.clear) else {
        if !args.clear {
            // no TEXT: show the message
            let store = Store::open_read(&dir)?;
            let id = store.resolve_run(&args.run)?;
            let short = store.short_id(&id)?;
            let d = store.run_detail(&id, false)?;
            report::emit(&match d.message {
                Some(m) => format!("{}\n", m.trim_end()),
                None => format!(
                    "run {} has no message; `mlrun note {short} \"TEXT\"` adds one\n",
                    style.paint(Role::Accent, &short)
                ),
            });
            return Ok(0);
        }
        let mut store = Store::open_existing(&dir)?;
        let id = store.resolve_run(&args.run)?;
        let short = store.short_id(&id)?;
        let old = store.set_message(&id, None)?;
        report::emit(&match old {
            Some(_) => format!(
                "cleared the message of run {}\n",
                style.paint(Role::Accent, &short)
            ),
            None => format!("run {} had no message\n", style.paint(Role::Accent, &short)),
        });
        return Ok(0);
    };
    if text.trim().is_empty() {
        return Err(Error::invalid("the message is empty")
            .hint("`mlrun note RUN --clear` removes a run's message"));
    }
    let mut store = Store::open_existing(&dir)?;
    let id = store.resolve_run(&args.run)?;
    let short = store.short_id(&id)?;
    // no pipeline is at hand to name its secrets, but values that look like secrets are masked
    let text = crate::fingerprint::env::mask(text.trim(), &[]);
    let old = store.set_message(&id, Some(&text))?;
    let mut out = format!(
        "noted on run {}: {}\n",
        style.paint(Role::Accent, &short),
        super::runs::one_line(&text)
    );
    if let Some(old) = old.filter(|o| *o != text) {
        out += &style.paint(
            Role::Muted,
            &format!("(it replaces: {})\n", super::runs::one_line(&old)),
        );
    }
    report::emit(&out);
    Ok(0)
}

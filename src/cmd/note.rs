//! `mlrun note RUN [TEXT]`: set, show or clear the message of a recorded run.

use std::path::Path;

use crate::cli::NoteArgs;
use crate::error::{Error, Result};
use crate::report::{self, ColorChoice, Style};
use crate::store::{self, Store};

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
                    style.cyan(&short)
                ),
            });
            return Ok(0);
        }
        let mut store = Store::open_existing(&dir)?;
        let id = store.resolve_run(&args.run)?;
        let short = store.short_id(&id)?;
        let old = store.set_message(&id, None)?;
        report::emit(&match old {
            Some(_) => format!("cleared the message of run {}\n", style.cyan(&short)),
            None => format!("run {} had no message\n", style.cyan(&short)),
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
        style.cyan(&short),
        super::runs::one_line(&text)
    );
    if let Some(old) = old.filter(|o| *o != text) {
        out += &style.dim(&format!("(it replaces: {})\n", super::runs::one_line(&old)));
    }
    report::emit(&out);
    Ok(0)
}

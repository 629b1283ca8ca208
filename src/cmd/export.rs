//! `mlrun export RUN --format openlineage|prov [-o FILE]`: a recorded run in a standard
//! interchange format, for lineage tools that speak OpenLineage or W3C PROV.

use std::path::Path;

use crate::error::{Context, Error, Result};
use crate::report::{ColorChoice, Role, Style, emit, openlineage, prov};
use crate::store::{self, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// OpenLineage 2-0-2 RunEvents, one JSON object per line
    Openlineage,
    /// a W3C PROV-JSON document with one bundle for the run
    Prov,
}

#[derive(Debug, clap::Args)]
#[command(after_help = crate::cmd::target::RUN_HELP)]
pub struct ExportArgs {
    /// A run id (any unique prefix as shown), `latest`, `latest~1`, `latest-replay`
    #[arg(value_name = "RUN", default_value = "latest")]
    pub run: String,

    /// Interchange format
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ExportFormat::Openlineage)]
    pub format: ExportFormat,

    /// Write to FILE instead of stdout
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,

    /// Send the run's OpenLineage events to the configured server (mlrun.toml `[openlineage]`
    /// or MLRUN_OPENLINEAGE_URL), again if they were sent before, after anything still pending
    #[arg(long, conflicts_with = "format")]
    pub send: bool,
}

/// `--send`: deliver the run's events (and anything pending before them) now.
fn send(mut store: Store, id: &str, color: ColorChoice) -> Result<i32> {
    let Some(cfg) = crate::config::Config::load(&store.dir)?.openlineage else {
        return Err(
            Error::invalid("no OpenLineage server is configured").hint(format!(
                "set {} (and {} for an API key), or `url` under `[openlineage]` in {}",
                crate::config::ENV_URL,
                crate::config::ENV_API_KEY,
                crate::config::file_for_store(&store.dir).display()
            )),
        );
    };
    let short = store.short_id(id)?;
    let d = crate::live::send_run(&mut store, &cfg, id)?;
    let style = Style::stderr(color);
    if d.rejected > 0 {
        eprintln!(
            "{} {} events were refused by {}: {}",
            style.paint(Role::Warn, "warning:"),
            d.rejected,
            cfg.shown_url(),
            d.rejected_why.as_deref().unwrap_or("no reason given")
        );
    }
    match d.error {
        None => {
            eprintln!(
                "sent {} OpenLineage event{} (run {short} and any pending before it) to {}",
                d.sent,
                if d.sent == 1 { "" } else { "s" },
                cfg.shown_url()
            );
            Ok(0)
        }
        Some(why) => Err(Error::other(format!(
            "could not deliver the OpenLineage events to {}: {why}",
            cfg.shown_url()
        ))
        .hint(format!(
            "{} events are kept in the store and sent, in order, by the next mlrun command or `mlrun export {short} --send`",
            d.pending
        ))),
    }
}

pub fn export(args: ExportArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    let id = match crate::cmd::target::model_run(&store, &args.run)? {
        Some(run) => run,
        None => store.resolve_run(&args.run)?,
    };
    if args.send {
        return send(store, &id, color);
    }
    let run = store.export_run(&id)?;
    let text = match args.format {
        ExportFormat::Openlineage => {
            let mut s = String::new();
            for e in openlineage::events(&run) {
                s += &serde_json::to_string(&e).unwrap_or_default();
                s.push('\n');
            }
            s
        }
        ExportFormat::Prov => {
            serde_json::to_string_pretty(&prov::document(&run)).unwrap_or_default() + "\n"
        }
    };
    match &args.output {
        Some(file) if file.as_os_str() != "-" => {
            std::fs::write(file, text)
                .other_ctx(|| format!("cannot write `{}`", file.display()))?;
            Style::stderr(color).note(&format!(
                "wrote run {} as {} to `{}`",
                run.detail.short_id,
                match args.format {
                    ExportFormat::Openlineage => "OpenLineage events",
                    ExportFormat::Prov => "PROV-JSON",
                },
                file.display()
            ));
        }
        _ => emit(&text),
    }
    Ok(0)
}

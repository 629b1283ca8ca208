//! `mlrun export RUN --format openlineage|prov [-o FILE]`: a recorded run in a standard
//! interchange format, for lineage tools that speak OpenLineage or W3C PROV.

use std::path::Path;

use crate::cli::{ExportArgs, ExportFormat};
use crate::error::{Context, Result};
use crate::report::{ColorChoice, Style, emit, openlineage, prov};
use crate::store::{self, Store};

pub fn export(args: ExportArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    let id = match crate::cmd::target::model_run(&store, &args.run)? {
        Some(run) => run,
        None => store.resolve_run(&args.run)?,
    };
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

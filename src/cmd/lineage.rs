//! `mlrun lineage TARGET`: where a version, execution or run came from (or what came of it).

use std::path::Path;

use crate::cmd::target::{self, Target};
use crate::error::Result;
use crate::report::{ColorChoice, Style, emit, graph};
use crate::store::lineage::{Direction, Seed};
use crate::store::{self, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LineageFormat {
    /// an indented tree for people
    Tree,
    /// Graphviz dot (`| dot -Tsvg`)
    Dot,
    /// a Mermaid flowchart
    Mermaid,
    /// nodes and edges (shape documented in the README)
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = crate::cmd::target::TARGET_HELP)]
pub struct LineageArgs {
    /// What to trace: PATH, PATH@RUN, RUN, RUN:STEP or a content-hash prefix
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Show what was derived from TARGET instead of what it came from
    #[arg(long)]
    pub down: bool,

    /// Follow at most N step executions away from TARGET
    #[arg(long, value_name = "N")]
    pub depth: Option<u32>,

    /// Output format
    #[arg(long, value_enum, default_value_t = LineageFormat::Tree, value_name = "FORMAT")]
    pub format: LineageFormat,

    /// Same as --format json
    #[arg(long)]
    pub json: bool,
}

pub fn lineage(args: LineageArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    let mut file = None;
    let seed = match target::resolve(&store, &args.target)? {
        Target::Version(v, note) => {
            if let Some(n) = note {
                Style::stderr(color).note(&n);
            }
            Seed::Version(v.av_id)
        }
        // a file inside a recorded directory: the lineage of the directory version holding it
        Target::File(v, m, note) => {
            if let Some(n) = note {
                Style::stderr(color).note(&n);
            }
            file = Some(m);
            Seed::Version(v.av_id)
        }
        Target::Exec { exec_id, .. } => Seed::Exec(exec_id),
        Target::Run(r) => Seed::Run(r),
    };
    let direction = if args.down {
        Direction::Down
    } else {
        Direction::Up
    };
    let mut g = store.traverse(&seed, direction, args.depth)?;
    g.file = file;
    let format = if args.json {
        LineageFormat::Json
    } else {
        args.format
    };
    match format {
        LineageFormat::Tree => emit(&graph::tree(&g, &Style::stdout(color))),
        LineageFormat::Dot => emit(&graph::dot(&g)),
        LineageFormat::Mermaid => emit(&graph::mermaid(&g)),
        LineageFormat::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&g).unwrap_or_default()
        )),
    }
    Ok(0)
}

//! `mlrun lineage TARGET`: where a version, execution or run came from (or what came of it).

use std::path::Path;

use crate::cmd::target::{self, Target};
use crate::config::LineageSeed;
use crate::error::Result;
use crate::report::{ColorChoice, Style, emit, graph};
use crate::store::lineage::{Direction, Found, Graph, Seed, Source};
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

    /// Query the team remote's record (PostgreSQL) instead of the local store
    #[arg(long)]
    pub remote: bool,
}

pub fn lineage(args: LineageArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    if args.remote {
        let mut source = crate::remote::lineage::open(store_dir)?;
        return show(&mut source, &args, color);
    }
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    let links = crate::cmd::ui_links(&store.dir, color);
    let mut source = Local {
        store,
        links,
        args: &args,
    };
    show(&mut source, &args, color)
}

/// Resolve, walk and print, whichever backend the rows come from.
fn show<S: Source>(source: &mut S, args: &LineageArgs, color: ColorChoice) -> Result<i32> {
    let found = source.seed(&args.target)?;
    if let Some(n) = &found.note {
        Style::stderr(color).note(n);
    }
    let direction = if args.down {
        Direction::Down
    } else {
        Direction::Up
    };
    let mut g = source.graph(&found.seed, direction, args.depth)?;
    g.file = found.file;
    let link = found.link;
    let format = if args.json {
        LineageFormat::Json
    } else {
        args.format
    };
    match format {
        LineageFormat::Tree => {
            let style = Style::stdout(color);
            let mut text = graph::tree(&g, &style);
            if let Some(url) = &link {
                text += &crate::report::ui_link_line(url, &style);
            }
            emit(&text)
        }
        // (dot and mermaid are read by other tools: no link in them)
        LineageFormat::Dot => emit(&graph::dot(&g)),
        LineageFormat::Mermaid => emit(&graph::mermaid(&g)),
        LineageFormat::Json => emit(&format!(
            "{}\n",
            crate::report::json_with_url(&g, link.as_deref())
        )),
    }
    Ok(0)
}

/// The local store as a lineage source: targets as `cmd::target` resolves them.
struct Local<'a> {
    store: Store,
    links: Option<crate::config::UiLinks>,
    args: &'a LineageArgs,
}

impl Source for Local<'_> {
    type Seed = Seed;

    fn seed(&mut self, target: &str) -> Result<Found<Seed>> {
        let (args, links) = (self.args, self.links.as_ref());
        Ok(match target::resolve(&self.store, target)? {
            Target::Version(v, note) => Found {
                link: version_link(links, &v, args),
                seed: Seed::Version(v.av_id),
                file: None,
                note,
            },
            // a file inside a recorded directory: the lineage of the directory version holding it
            Target::File(v, m, note) => Found {
                link: version_link(links, &v, args),
                seed: Seed::Version(v.av_id),
                file: Some(m),
                note,
            },
            // the web view draws a run's lineage: a step's is within it
            Target::Exec {
                exec_id, run_id, ..
            } => Found {
                link: links.map(|l| l.lineage(LineageSeed::Run(&run_id), args.down, args.depth)),
                seed: Seed::Exec(exec_id),
                file: None,
                note: None,
            },
            Target::Run(r) => Found {
                link: links.map(|l| l.lineage(LineageSeed::Run(&r), args.down, args.depth)),
                seed: Seed::Run(r),
                file: None,
                note: None,
            },
        })
    }

    fn graph(&mut self, seed: &Seed, direction: Direction, depth: Option<u32>) -> Result<Graph> {
        self.store.traverse(seed, direction, depth)
    }
}

fn version_link(
    links: Option<&crate::config::UiLinks>,
    v: &crate::store::lineage::Version,
    args: &LineageArgs,
) -> Option<String> {
    links.map(|l| {
        l.lineage(
            LineageSeed::Version {
                path: &v.path,
                hash: &v.hash,
            },
            args.down,
            args.depth,
        )
    })
}

//! `mlrun model register|alias|list|show|export-tags`: names for model versions (`churn@v2`),
//! movable aliases (`churn@production`) with their log, and the registry as GTO git tags.
//!
//! This file holds the arguments, `register`, `alias`, `list` and `show`; the GTO tags are
//! written in `export` and read back in `import`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cmd::target::{self, Target};
use crate::error::{Error, Result};
use crate::fingerprint::system::user_name;
use crate::pipeline::model_name;
use crate::report::Role;
use crate::report::{ColorChoice, Style, emit, short_hash, size, time};
use crate::store::models::{self, ModelVersion};
use crate::store::record::now_ms;
use crate::store::{self, Store};

pub(crate) const MODEL_HELP: &str = "\
A model NAME (and an ALIAS) is lowercase letters, digits, `-` and `/`, starting with a letter
and ending with a letter or digit (the names git tags and GTO accept): `churn`, `team/churn`.
A registered version is NAME@vN (or NAME@vX.Y.Z); NAME@vN and NAME@ALIAS work as a TARGET in
show, lineage, diff, replay and export (`models:/NAME@REF` always means a model).

Examples:
  mlrun model register churn model/            the current content of model/ becomes churn@v1
  mlrun model register churn model/@latest~1 --version 1.2.0 -m 'retrained on May data'
  mlrun model alias churn production v2        point churn@production at v2 (logged)
  mlrun model alias churn production --remove
  mlrun model list                             every model, its latest version and aliases
  mlrun model show churn                       versions, aliases and the alias log
  mlrun show churn@production                  the model card of that version
  mlrun model export-tags                      the registry as GTO git tags";

#[derive(Debug, clap::Subcommand)]
#[command(after_help = MODEL_HELP)]
pub enum ModelCommand {
    /// Register an artifact version as the next version of a model (NAME@vN)
    #[command(after_help = MODEL_HELP)]
    Register(ModelRegisterArgs),
    /// Point an alias (production, staging, any word) at a version, or remove it; every move is logged
    #[command(after_help = MODEL_HELP)]
    Alias(ModelAliasArgs),
    /// List the registered models
    List(ModelListArgs),
    /// Show a model's versions, aliases and alias history
    Show(ModelShowArgs),
    /// Write the registry as annotated git tags in GTO's format (NAME@vX.Y.Z, NAME#STAGE#N)
    ExportTags(ModelExportTagsArgs),
    /// Read GTO's git tags back: registrations of recorded versions, and where each stage is now
    ImportTags(ModelExportTagsArgs),
}

#[derive(Debug, clap::Args)]
#[command(disable_version_flag = true)]
pub struct ModelRegisterArgs {
    /// The model name, e.g. `churn`
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The artifact version: PATH (its current content), PATH@RUN, or a content-hash prefix
    #[arg(value_name = "PATH[@RUN]")]
    pub target: String,

    /// The version to register it as: a number (`3`) or a semantic version (`1.2.0`)
    /// [default: the next number, v1, v2, …]
    #[arg(long = "version", id = "as_version", value_name = "X.Y.Z")]
    pub as_version: Option<String>,

    /// Why this version is registered
    #[arg(short = 'm', long, value_name = "MSG")]
    pub message: Option<String>,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(disable_version_flag = true)]
pub struct ModelAliasArgs {
    /// The model name
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The alias, e.g. `production`
    #[arg(value_name = "ALIAS")]
    pub alias: String,

    /// The version to point it at (`v2`, `v1.2.0`), or another alias (the version it points at)
    #[arg(
        value_name = "VERSION",
        id = "to_version",
        required_unless_present = "remove",
        conflicts_with = "remove"
    )]
    pub to_version: Option<String>,

    /// Remove the alias (the removal is logged too)
    #[arg(long)]
    pub remove: bool,

    /// Why it moves
    #[arg(short = 'm', long, value_name = "MSG")]
    pub message: Option<String>,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ModelListArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ModelShowArgs {
    /// The model name
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ModelExportTagsArgs {
    /// Say what would be done without doing it
    #[arg(long)]
    pub dry_run: bool,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn model(cmd: ModelCommand, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    match cmd {
        ModelCommand::Register(a) => register(a, store_dir, color),
        ModelCommand::Alias(a) => alias(a, store_dir, color),
        ModelCommand::List(a) => list(a, store_dir, color),
        ModelCommand::Show(a) => show(a, store_dir, color),
        ModelCommand::ExportTags(a) => export_tags(a, store_dir, color),
        ModelCommand::ImportTags(a) => import_tags(a, store_dir),
    }
}

/// `PATH`, `v3`, a short hash: how a version is named in one line.
fn describe(v: &ModelVersion) -> String {
    let what = if v.kind == "dir" {
        format!(
            "`{}/` {} ({} file{}, {})",
            v.path,
            short_hash(&v.hash),
            v.nfiles,
            if v.nfiles == 1 { "" } else { "s" },
            size(v.size as u64)
        )
    } else {
        format!(
            "`{}` {} ({})",
            v.path,
            short_hash(&v.hash),
            size(v.size as u64)
        )
    };
    match (&v.step, &v.short_id) {
        (Some(step), Some(run)) => format!("{what} made by `{step}` in run {run}"),
        _ => format!("{what} (no recorded run produced it)"),
    }
}

fn register(args: ModelRegisterArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    model_name::check_name(&args.name)?;
    let label = args
        .as_version
        .as_deref()
        .map(model_name::parse_version)
        .transpose()?;
    let mut store = Store::open_existing(&store::find_dir(store_dir)?)?;
    let arg = args.target.as_str();
    let (version, note) = match target::resolve(&store, arg)? {
        Target::Version(v, note) => (v, note),
        Target::File(_, m, _) => {
            return Err(Error::other(format!(
                "`{arg}` is a file inside the recorded directory `{}/`, not a recorded version of its own",
                m.dir
            ))
            .hint(format!(
                "register the directory: `mlrun model register {} {}/`",
                args.name, m.dir
            )));
        }
        Target::Run(_) | Target::Exec { .. } => {
            return Err(Error::invalid(format!(
                "`{arg}` names a run, not an artifact version"
            ))
            .hint("name what the run made: PATH, PATH@RUN (e.g. `model/@latest`) or a content-hash prefix"));
        }
    };
    if note.is_some() && Path::new(arg).exists() {
        return Err(Error::other(format!(
            "the current content of `{arg}` was never recorded by mlrun, so there is no lineage to register"
        ))
        .hint("run the step that makes it, or name a recorded version: PATH@RUN (`mlrun show PATH` lists its versions)"));
    }
    // PATH@RUN: prefer the execution of that run
    let run = match target::model_version(&store, arg)? {
        Some(mv) => mv.run_id,
        None => arg
            .rsplit_once('@')
            .and_then(|(_, r)| store.resolve_run(r).ok()),
    };
    let exec = store.model_producer(version.av_id, run.as_deref())?;
    let run = match exec {
        Some(e) => store.run_of_exec(e)?,
        None => None,
    };
    let by = user_name();
    let done = store.register_model(&models::NewVersion {
        name: &args.name,
        av_id: version.av_id,
        exec_id: exec,
        run_id: run.as_deref(),
        version: label.as_ref(),
        by: &by,
        message: args.message.as_deref(),
        auto: false,
        at: now_ms(),
    })?;
    let err = Style::stderr(color);
    if let Some(n) = note {
        err.note(&n);
    }
    if args.json {
        emit(&(serde_json::to_string_pretty(&done).unwrap_or_default() + "\n"));
        return Ok(0);
    }
    let out = Style::stdout(color);
    let v = &done.version;
    let name = out.paint(Role::Strong, &format!("{}@{}", v.name, v.version));
    if done.new {
        emit(&format!("registered {name}: {}\n", describe(v)));
    } else {
        emit(&format!(
            "already registered: {} is {name} (since {}, by {}); nothing changed\n",
            describe(v),
            time::local(v.registered_at),
            v.registered_by
        ));
    }
    Ok(0)
}

fn alias(args: ModelAliasArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    model_name::check_name(&args.name)?;
    model_name::check_alias(&args.alias)?;
    let mut store = Store::open_existing(&store::find_dir(store_dir)?)?;
    let to = if args.remove {
        None
    } else {
        args.to_version.as_deref()
    };
    let moved = store.set_alias(
        &args.name,
        &args.alias,
        to,
        &user_name(),
        args.message.as_deref(),
        now_ms(),
    )?;
    let out = Style::stdout(color);
    let name = out.paint(Role::Strong, &format!("{}@{}", args.name, args.alias));
    let Some(m) = moved else {
        let v = store
            .model_by_ref(&args.name, &args.alias)?
            .map_or_else(|| "?".into(), |v| v.version);
        if args.json {
            emit("null\n");
        } else {
            emit(&format!(
                "{name} already points at {v}; nothing was logged\n"
            ));
        }
        return Ok(0);
    };
    if args.json {
        emit(&(serde_json::to_string_pretty(&m).unwrap_or_default() + "\n"));
        return Ok(0);
    }
    let line = match (&m.from, &m.to) {
        (Some(f), Some(t)) => format!("{name}: {f} → {t}"),
        (None, Some(t)) => format!("{name} → {t} (new alias)"),
        (Some(f), None) => format!("{name} removed (it was {f})"),
        (None, None) => format!("{name}: nothing"),
    };
    emit(&format!("{line}\n"));
    Ok(0)
}

fn open_read(store_dir: Option<&Path>) -> Result<Store> {
    Store::open_read(&store::find_dir(store_dir)?)
}

fn list(args: ModelListArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let store = open_read(store_dir)?;
    let all = store.all_models()?;
    if args.json {
        emit(&(serde_json::to_string_pretty(&all).unwrap_or_default() + "\n"));
        return Ok(0);
    }
    if all.is_empty() {
        Style::stderr(color).note(
            "no models are registered: `mlrun model register NAME PATH`, or give a step `model = \"NAME\"` in pipeline.toml",
        );
        return Ok(0);
    }
    let out = Style::stdout(color);
    let mut rows = vec![[
        "NAME".to_string(),
        "VERSIONS".into(),
        "LATEST".into(),
        "PATH".into(),
        "REGISTERED".into(),
        "ALIASES".into(),
    ]];
    for m in &all {
        let latest = m.versions.first();
        rows.push([
            m.name.clone(),
            m.versions.len().to_string(),
            latest.map_or_else(|| "-".into(), |v| v.version.clone()),
            latest.map_or_else(|| "-".into(), shown_path),
            latest.map_or_else(|| "-".into(), |v| time::local(v.registered_at)),
            aliases_line(&m.aliases),
        ]);
    }
    emit(&table(&rows, &out));
    Ok(0)
}

/// A version's path as typed: directories with their trailing `/`.
fn shown_path(v: &ModelVersion) -> String {
    if v.kind == "dir" {
        format!("{}/", v.path)
    } else {
        v.path.clone()
    }
}

fn aliases_line(aliases: &BTreeMap<String, String>) -> String {
    if aliases.is_empty() {
        return "-".into();
    }
    aliases
        .iter()
        .map(|(a, v)| format!("{a} → {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn table<const N: usize>(rows: &[[String; N]], out: &Style) -> String {
    let mut w = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for (k, r) in rows.iter().enumerate() {
        let line = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = if i + 1 == N { 0 } else { w[i] }))
            .collect::<Vec<_>>()
            .join("  ");
        let line = line.trim_end().to_string();
        s += &if k == 0 {
            out.paint(Role::Strong, &line)
        } else {
            line
        };
        s.push('\n');
    }
    s
}

fn show(args: ModelShowArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    model_name::check_name(&args.name)?;
    let store = open_read(store_dir)?;
    let Some(m) = store.model(&args.name)? else {
        return Err(store.no_such_model(&args.name)?);
    };
    if args.json {
        emit(&(serde_json::to_string_pretty(&m).unwrap_or_default() + "\n"));
        return Ok(0);
    }
    let out = Style::stdout(color);
    let mut s = format!(
        "{} · {} version{} · aliases: {}\n\n",
        out.paint(Role::Strong, &format!("model {}", m.name)),
        m.versions.len(),
        if m.versions.len() == 1 { "" } else { "s" },
        if m.aliases.is_empty() {
            "none".into()
        } else {
            aliases_line(&m.aliases)
        }
    );
    let mut rows = vec![[
        "VERSION".to_string(),
        "PATH".into(),
        "HASH".into(),
        "RUN".into(),
        "STEP".into(),
        "REGISTERED".into(),
        "BY".into(),
        "ALIASES".into(),
    ]];
    for v in &m.versions {
        rows.push([
            v.version.clone(),
            shown_path(v),
            short_hash(&v.hash).to_string(),
            v.short_id.clone().unwrap_or_else(|| "-".into()),
            v.step.clone().unwrap_or_else(|| "-".into()),
            format!(
                "{}{}",
                time::local(v.registered_at),
                if v.auto { " (auto)" } else { "" }
            ),
            v.registered_by.clone(),
            if v.aliases.is_empty() {
                "-".into()
            } else {
                v.aliases.join(", ")
            },
        ]);
    }
    s += &table(&rows, &out);
    let messages: Vec<_> = m
        .versions
        .iter()
        .filter_map(|v| v.message.as_ref().map(|msg| (v, msg)))
        .collect();
    if !messages.is_empty() {
        s += "\nmessages:\n";
        for (v, msg) in messages {
            s += &format!("  {:<8} {msg}\n", v.version);
        }
    }
    if !m.history.is_empty() {
        s += "\nalias history (oldest first):\n";
        for h in &m.history {
            s += &format!(
                "  {}  {}  {}: {} → {}{}\n",
                time::local(h.at),
                h.by,
                h.alias,
                h.from.as_deref().unwrap_or("(none)"),
                h.to.as_deref().unwrap_or("(removed)"),
                h.message
                    .as_ref()
                    .map_or_else(String::new, |msg| format!("  \"{msg}\""))
            );
        }
    }
    emit(&s);
    Ok(0)
}

mod export;
mod import;

use export::{MOVE_TRAILER, export_tags, git, project_repo};
use import::import_tags;

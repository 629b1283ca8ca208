//! `mlrun model register|alias|list|show|export-tags`: names for model versions (`churn@v2`),
//! movable aliases (`churn@production`) with their log, and the registry as GTO git tags.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::cmd::target::{self, Target};
use crate::error::{Error, Result};
use crate::fingerprint::system::user_name;
use crate::report::{ColorChoice, Style, emit, short_hash, size, time};
use crate::store::models::{self, ModelVersion};
use crate::store::record::now_ms;
use crate::store::{self, Store, query};

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
    models::check_name(&args.name)?;
    let label = args
        .as_version
        .as_deref()
        .map(models::parse_version)
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
            .and_then(|(_, r)| query::resolve_run(&store.conn, r).ok()),
    };
    let exec = models::producer(&store.conn, version.av_id, run.as_deref())?;
    let run = match exec {
        Some(e) => models::run_of_exec(&store.conn, e)?,
        None => None,
    };
    let by = user_name();
    let done = models::register(
        &mut store.conn,
        &models::NewVersion {
            name: &args.name,
            av_id: version.av_id,
            exec_id: exec,
            run_id: run.as_deref(),
            version: label.as_ref(),
            by: &by,
            message: args.message.as_deref(),
            auto: false,
            at: now_ms(),
        },
    )?;
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
    let name = out.bold(&format!("{}@{}", v.name, v.version));
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
    models::check_name(&args.name)?;
    models::check_alias(&args.alias)?;
    let mut store = Store::open_existing(&store::find_dir(store_dir)?)?;
    let to = if args.remove {
        None
    } else {
        args.to_version.as_deref()
    };
    let moved = models::set_alias(
        &mut store.conn,
        &args.name,
        &args.alias,
        to,
        &user_name(),
        args.message.as_deref(),
        now_ms(),
    )?;
    let out = Style::stdout(color);
    let name = out.bold(&format!("{}@{}", args.name, args.alias));
    let Some(m) = moved else {
        let v = models::by_ref(&store.conn, &args.name, &args.alias)?
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
    let all = models::all(&store.conn)?;
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
        s += &if k == 0 { out.bold(&line) } else { line };
        s.push('\n');
    }
    s
}

fn show(args: ModelShowArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    models::check_name(&args.name)?;
    let store = open_read(store_dir)?;
    let Some(m) = models::model(&store.conn, &args.name)? else {
        return Err(models::no_such_model(&store.conn, &args.name)?);
    };
    if args.json {
        emit(&(serde_json::to_string_pretty(&m).unwrap_or_default() + "\n"));
        return Ok(0);
    }
    let out = Style::stdout(color);
    let mut s = format!(
        "{} · {} version{} · aliases: {}\n\n",
        out.bold(&format!("model {}", m.name)),
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

/// One tag `export-tags` writes (or would write).
#[derive(Debug, Serialize)]
struct TagOut {
    tag: String,
    commit: String,
    message: String,
    /// `written`, `exists` (already in the repository), `would-write` (`--dry-run`)
    status: String,
}

/// A version's label as GTO reads it: `vN` is `vN.0.0`.
fn gto_version(v: &str) -> String {
    match models::parse_version(v) {
        Ok(l) => format!("v{}", l.semver),
        Err(_) => v.to_string(),
    }
}

fn git(root: &Path, args: &[&str], env: &[(&str, String)]) -> Result<String> {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C").arg(root).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| Error::other("cannot run git").cause(e))?;
    if !out.status.success() {
        return Err(Error::other(format!("git {} failed", args.join(" ")))
            .cause(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The trailer that ties an assignment tag to its row of the alias log, so a second export
/// writes only the moves made since.
const MOVE_TRAILER: &str = "mlrun-alias-move:";

fn export_tags(
    args: ModelExportTagsArgs,
    store_dir: Option<&Path>,
    color: ColorChoice,
) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let store = Store::open_read(&dir)?;
    let root = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    git(&root, &["rev-parse", "--git-dir"], &[]).map_err(|e| {
        Error::other(format!("`{}` is not in a git repository", root.display()))
            .cause(e.message)
            .hint("export-tags writes git tags into the repository of the project")
    })?;
    // existing tags: name → (commit, message)
    let listing = git(
        &root,
        &[
            "for-each-ref",
            "refs/tags",
            "--format=%(refname:strip=2)%00%(*objectname)%(objectname)%00%(taggerdate:unix)%00%(contents)%00%00",
        ],
        &[],
    )?;
    let mut existing: BTreeMap<String, String> = BTreeMap::new();
    let mut moves_done: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    // the newest tag date there: GTO orders events by date, so new tags must come after it
    let mut newest_secs = 0i64;
    for rec in listing.split("\0\0") {
        let mut f = rec.trim_start_matches('\n').splitn(4, '\0');
        let (Some(name), Some(commit), Some(date), Some(msg)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        newest_secs = newest_secs.max(date.parse().unwrap_or(0));
        for line in msg.lines() {
            if let Some(id) = line.strip_prefix(MOVE_TRAILER) {
                moves_done
                    .entry(id.trim().to_string())
                    .or_default()
                    .push((name.to_string(), commit.to_string()));
            }
        }
        existing.insert(name.to_string(), msg.to_string());
    }
    // GTO counts a name's assignment tags: `NAME#STAGE#N` continues from the highest N
    let mut counters: BTreeMap<String, u64> = BTreeMap::new();
    for name in existing.keys() {
        if let Some((art, n)) = name.rsplit_once('#')
            && let Ok(n) = n.parse::<u64>()
        {
            let art = art.split(['#', '@']).next().unwrap_or(art).to_string();
            let c = counters.entry(art).or_default();
            *c = (*c).max(n);
        }
    }
    // events in time order: registrations and alias moves
    enum Ev<'a> {
        Reg(&'a ModelVersion),
        Move(&'a models::AliasMove),
    }
    let all = models::all(&store.conn)?;
    let mut events: Vec<(i64, u8, Ev)> = Vec::new();
    for m in &all {
        for v in &m.versions {
            events.push((v.registered_at, 0, Ev::Reg(v)));
        }
        for h in &m.history {
            events.push((h.at, 1, Ev::Move(h)));
        }
    }
    events.sort_by_key(|(at, kind, _)| (*at, *kind));
    let err = Style::stderr(color);
    let mut tags = Vec::new();
    let mut skipped = Vec::new();
    // (name, label) → the commit its run started at
    let commits: BTreeMap<(&str, &str), Option<&String>> = all
        .iter()
        .flat_map(|m| m.versions.iter())
        .map(|v| ((v.name.as_str(), v.version.as_str()), v.commit.as_ref()))
        .collect();
    // GTO keeps every version a stage was assigned to and shows the newest one still assigned:
    // moving `prod` from v1 to v2 leaves v1 assigned underneath. So removing an alias unassigns
    // it from each version it was assigned to (per name and alias, from the log).
    let mut assigned: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    // (tag, commit, message, by)
    let mut planned: Vec<(i64, String, String, String, String)> = Vec::new();
    for (at, _, ev) in events {
        match ev {
            Ev::Reg(v) => {
                let Some(commit) = v.commit.clone() else {
                    skipped.push(format!(
                        "{}@{}: no recorded run made it at a git commit",
                        v.name, v.version
                    ));
                    continue;
                };
                let mut message = format!(
                    "Registering artifact {} version {}\n\n{} {}",
                    v.name,
                    gto_version(&v.version),
                    v.path,
                    v.hash
                );
                if let Some(msg) = &v.message {
                    message = format!("{msg}\n\n{message}");
                }
                if let Some(run) = &v.run_id {
                    message += &format!("\nmlrun-run: {run}");
                }
                let tag = format!("{}@{}", v.name, gto_version(&v.version));
                planned.push((at, tag, commit, message, v.registered_by.clone()));
            }
            Ev::Move(h) => {
                let key = (h.name.as_str(), h.alias.as_str());
                // (label, assign?) for each tag this move makes
                let mut steps: Vec<(&str, bool)> = Vec::new();
                match &h.to {
                    Some(t) => {
                        steps.push((t.as_str(), true));
                        let a = assigned.entry(key).or_default();
                        a.retain(|l| l != t);
                        a.push(t.as_str());
                    }
                    None => {
                        for l in assigned.remove(&key).unwrap_or_default() {
                            steps.push((l, false));
                        }
                    }
                }
                if let Some(done) = moves_done.get(&h.id.to_string()) {
                    for (tag, commit) in done {
                        tags.push(TagOut {
                            tag: tag.clone(),
                            commit: commit.chars().take(40).collect(),
                            message: String::new(),
                            status: "exists".into(),
                        });
                    }
                    continue;
                }
                for (label, assign) in steps {
                    let Some(Some(commit)) = commits.get(&(h.name.as_str(), label)) else {
                        skipped.push(format!(
                            "{}#{} ({label}): that version was made at no recorded git commit",
                            h.name, h.alias
                        ));
                        continue;
                    };
                    let c = counters.entry(h.name.clone()).or_default();
                    *c += 1;
                    let (tag, what) = if assign {
                        (
                            format!("{}#{}#{c}", h.name, h.alias),
                            format!(
                                "Assigning stage {} to artifact {} version {}",
                                h.alias,
                                h.name,
                                gto_version(label)
                            ),
                        )
                    } else {
                        (
                            format!("{}#{}!#{c}", h.name, h.alias),
                            format!(
                                "Unassigning stage {} from artifact {} version {}",
                                h.alias,
                                h.name,
                                gto_version(label)
                            ),
                        )
                    };
                    let mut message = what;
                    if let Some(msg) = &h.message {
                        message = format!("{msg}\n\n{message}");
                    }
                    message += &format!("\n{MOVE_TRAILER} {}", h.id);
                    planned.push((at, tag, (*commit).clone(), message, h.by.clone()));
                }
            }
        }
    }
    let mut last_secs = newest_secs;
    for (at, tag, commit, message, by) in planned {
        if existing.contains_key(&tag) {
            tags.push(TagOut {
                tag,
                commit,
                message,
                status: "exists".into(),
            });
            continue;
        }
        if git(
            &root,
            &["cat-file", "-e", &format!("{commit}^{{commit}}")],
            &[],
        )
        .is_err()
        {
            skipped.push(format!(
                "{tag}: commit {} is not in this repository",
                short_hash(&commit)
            ));
            continue;
        }
        // GTO orders events by the tag's date (whole seconds): keep them apart, in order, and
        // after the tags already there
        let secs = (at / 1000).max(last_secs + 1);
        last_secs = secs;
        if !args.dry_run {
            git(
                &root,
                &["tag", "-a", &tag, "-m", &message, &commit],
                &[
                    ("GIT_COMMITTER_DATE", format!("@{secs} +0000")),
                    ("GIT_COMMITTER_NAME", by),
                ],
            )?;
        }
        existing.insert(tag.clone(), message.clone());
        tags.push(TagOut {
            tag,
            commit,
            message,
            status: if args.dry_run {
                "would-write".into()
            } else {
                "written".into()
            },
        });
    }
    for s in &skipped {
        err.note(&format!("skipped {s}"));
    }
    if args.json {
        #[derive(Serialize)]
        struct Answer<'a> {
            tags: &'a [TagOut],
            skipped: &'a [String],
        }
        emit(
            &(serde_json::to_string_pretty(&Answer {
                tags: &tags,
                skipped: &skipped,
            })
            .unwrap_or_default()
                + "\n"),
        );
        return Ok(0);
    }
    let written: Vec<&TagOut> = tags.iter().filter(|t| t.status != "exists").collect();
    let mut s = String::new();
    for t in &written {
        s += &format!(
            "{} {}  {}\n",
            if args.dry_run { "would write" } else { "wrote" },
            t.tag,
            short_hash(&t.commit)
        );
    }
    let present = tags.len() - written.len();
    s += &format!(
        "{} tag{} {}{}\n",
        written.len(),
        if written.len() == 1 { "" } else { "s" },
        if args.dry_run { "to write" } else { "written" },
        if present > 0 {
            format!(", {present} already there")
        } else {
            String::new()
        }
    );
    if !args.dry_run && !written.is_empty() {
        s += "push them with `git push --tags` (or `git push origin TAG`)\n";
    }
    emit(&s);
    Ok(0)
}

/// One annotated tag of the repository.
struct GitTag {
    name: String,
    commit: String,
    /// seconds since the epoch
    date: i64,
    tagger: String,
    message: String,
}

fn read_tags(root: &Path) -> Result<Vec<GitTag>> {
    let listing = git(
        root,
        &[
            "for-each-ref",
            "refs/tags",
            "--format=%(refname:strip=2)%00%(objecttype)%00%(*objectname)%00%(taggerdate:unix)%00%(taggername)%00%(contents)%00%00",
        ],
        &[],
    )?;
    let mut out = Vec::new();
    for rec in listing.split("\0\0") {
        let f: Vec<&str> = rec.trim_start_matches('\n').splitn(6, '\0').collect();
        let [name, kind, commit, date, tagger, message] = f.as_slice() else {
            continue;
        };
        // GTO reads annotated tags only
        if *kind != "tag" {
            continue;
        }
        out.push(GitTag {
            name: name.to_string(),
            commit: commit.to_string(),
            date: date.parse().unwrap_or(0),
            tagger: tagger.to_string(),
            message: message.trim_end().to_string(),
        });
    }
    Ok(out)
}

/// A tag name parsed as GTO does.
enum GtoTag {
    Register {
        name: String,
        version: String,
    },
    Deregister,
    Stage {
        name: String,
        stage: String,
        assign: bool,
        counter: u64,
    },
    Other,
}

fn parse_gto_tag(tag: &str) -> Option<GtoTag> {
    const NAME: &str = "[a-z][a-z0-9/-]*[a-z0-9]";
    const SEMVER: &str =
        r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?";
    let re = regex::Regex::new(&format!(
        r"^(?P<artifact>{NAME})(?:(?:#(?P<stage>{NAME})|@(?P<version>v{SEMVER}))(?P<cancel>!?)|@(?P<other>deprecated|created))(?:#(?P<counter>[0-9]+))?$"
    ))
    .ok()?;
    let c = re.captures(tag)?;
    let name = c["artifact"].to_string();
    let cancel = c.name("cancel").is_some_and(|m| m.as_str() == "!");
    Some(if let Some(v) = c.name("version") {
        let version = v.as_str().to_string();
        if cancel {
            GtoTag::Deregister
        } else {
            GtoTag::Register { name, version }
        }
    } else if let Some(st) = c.name("stage") {
        GtoTag::Stage {
            name,
            stage: st.as_str().to_string(),
            assign: !cancel,
            counter: c
                .name("counter")
                .and_then(|m| m.as_str().parse().ok())
                .unwrap_or(0),
        }
    } else {
        GtoTag::Other
    })
}

/// What `import-tags` did, or would do, with each tag.
#[derive(Debug, Serialize)]
struct Imported {
    tag: String,
    /// `registered`, `already`, `moved`, `current` (the alias already points there),
    /// `skipped`; with --dry-run `would-register`, `would-move`
    status: String,
    detail: String,
}

fn import_tags(args: ModelExportTagsArgs, store_dir: Option<&Path>) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let mut store = Store::open_existing(&dir)?;
    let root = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    git(&root, &["rev-parse", "--git-dir"], &[]).map_err(|e| {
        Error::other(format!("`{}` is not in a git repository", root.display()))
            .cause(e.message)
            .hint("import-tags reads the git tags of the project's repository")
    })?;
    // artifacts.yaml paths are relative to the repository's top; mlrun's to the project
    let prefix = git(&root, &["rev-parse", "--show-prefix"], &[])?
        .trim()
        .to_string();
    let by = user_name();
    let now = now_ms();
    let mut tags = read_tags(&root)?;
    tags.sort_by_key(|t| {
        let counter = match parse_gto_tag(&t.name) {
            Some(GtoTag::Stage { counter, .. }) => counter,
            _ => 0,
        };
        (t.date, counter)
    });
    let mut done: Vec<Imported> = Vec::new();
    let mut note = |tag: &str, status: &str, detail: String| {
        done.push(Imported {
            tag: tag.to_string(),
            status: status.to_string(),
            detail,
        })
    };
    let tagged = |t: &GitTag| {
        format!(
            "from git tag {} (by {}, {})",
            t.name,
            t.tagger,
            time::local(t.date * 1000)
        )
    };
    // registrations first: a stage names a version by its commit
    // (name, commit) → label
    let mut at_commit: BTreeMap<(String, String), String> = BTreeMap::new();
    for t in &tags {
        match parse_gto_tag(&t.name) {
            Some(GtoTag::Register { name, version }) => {
                let label = models::parse_version(&version)?;
                // mlrun's own numbers read back as they were written
                let label = if label.semver == format!("{}.0.0", label.major) {
                    models::parse_version(&label.major.to_string())?
                } else {
                    label
                };
                // the content: the `PATH HASH` line export-tags writes, else GTO's artifacts.yaml
                let by_line = t.message.lines().find_map(|l| {
                    let (p, h) = l.rsplit_once(' ')?;
                    (h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
                        .then(|| (p.to_string(), h.to_string()))
                });
                let av = match by_line {
                    Some((p, h)) => crate::store::lineage::version_by_content(&store.conn, &p, &h)?
                        .map(|v| v.av_id),
                    None => None,
                };
                let av = match av {
                    Some(av) => Some(av),
                    None => {
                        let yaml = git(
                            &root,
                            &["show", &format!("{}:{prefix}artifacts.yaml", t.commit)],
                            &[],
                        )
                        .ok()
                        .or_else(|| {
                            git(
                                &root,
                                &["show", &format!("{}:artifacts.yaml", t.commit)],
                                &[],
                            )
                            .ok()
                        });
                        let path = yaml
                            .and_then(|y| serde_norway::from_str::<serde_json::Value>(&y).ok())
                            .and_then(|v| v.get(&name)?.get("path")?.as_str().map(str::to_string))
                            .map(|p| {
                                p.strip_prefix(&prefix)
                                    .unwrap_or(&p)
                                    .trim_start_matches("./")
                                    .trim_end_matches('/')
                                    .to_string()
                            });
                        match path {
                            None => {
                                note(&t.name, "skipped", "neither its message nor artifacts.yaml at its commit says which file it is".into());
                                continue;
                            }
                            Some(p) => {
                                match models::produced_at_commit(&store.conn, &p, &t.commit)?
                                    .as_slice()
                                {
                                    [one] => Some(*one),
                                    [] => {
                                        note(
                                            &t.name,
                                            "skipped",
                                            format!(
                                                "no recorded run at commit {} produced `{p}`",
                                                short_hash(&t.commit)
                                            ),
                                        );
                                        continue;
                                    }
                                    _ => {
                                        note(
                                            &t.name,
                                            "skipped",
                                            format!(
                                                "runs at commit {} produced several versions of `{p}`",
                                                short_hash(&t.commit)
                                            ),
                                        );
                                        continue;
                                    }
                                }
                            }
                        }
                    }
                };
                let Some(av) = av else {
                    note(
                        &t.name,
                        "skipped",
                        "the version its message names was never recorded in this store".into(),
                    );
                    continue;
                };
                if models::check_name(&name).is_err() {
                    note(
                        &t.name,
                        "skipped",
                        format!("`{name}` is not a model name mlrun accepts"),
                    );
                    continue;
                }
                if args.dry_run {
                    at_commit.insert((name.clone(), t.commit.clone()), label.label.clone());
                    note(&t.name, "would-register", format!("{name}@{}", label.label));
                    continue;
                }
                let exec = models::producer(&store.conn, av, None)?;
                let run = match exec {
                    Some(e) => models::run_of_exec(&store.conn, e)?,
                    None => None,
                };
                let msg = format!("imported {}", tagged(t));
                match models::register(
                    &mut store.conn,
                    &models::NewVersion {
                        name: &name,
                        av_id: av,
                        exec_id: exec,
                        run_id: run.as_deref(),
                        version: Some(&label),
                        by: &by,
                        message: Some(&msg),
                        auto: false,
                        at: now,
                    },
                ) {
                    Ok(r) => {
                        at_commit
                            .insert((name.clone(), t.commit.clone()), r.version.version.clone());
                        let status = if r.new { "registered" } else { "already" };
                        note(&t.name, status, format!("{name}@{}", r.version.version));
                    }
                    Err(e) => note(&t.name, "skipped", e.message),
                }
            }
            Some(GtoTag::Deregister) => note(
                &t.name,
                "skipped",
                "mlrun never deregisters a version (versions are immutable)".into(),
            ),
            Some(GtoTag::Other) => note(&t.name, "skipped", "deprecations are not imported".into()),
            _ => {}
        }
    }
    // stages: replay GTO's assignments per (name, stage); the alias moves when the newest tag
    // leaves it somewhere other than where it points and is newer than its last move
    let mut active: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut last: BTreeMap<(String, String), &GitTag> = BTreeMap::new();
    for t in &tags {
        let Some(GtoTag::Stage {
            name,
            stage,
            assign,
            ..
        }) = parse_gto_tag(&t.name)
        else {
            continue;
        };
        let Some(label) = at_commit
            .get(&(name.clone(), t.commit.clone()))
            .cloned()
            .or_else(|| {
                models::versions(&store.conn, &name)
                    .ok()?
                    .into_iter()
                    .find(|v| v.commit.as_deref() == Some(t.commit.as_str()))
                    .map(|v| v.version)
            })
        else {
            note(
                &t.name,
                "skipped",
                format!(
                    "no version of `{name}` is registered at commit {}",
                    short_hash(&t.commit)
                ),
            );
            continue;
        };
        let a = active.entry((name.clone(), stage.clone())).or_default();
        a.retain(|l| *l != label);
        if assign {
            a.push(label);
        }
        last.insert((name, stage), t);
    }
    let log = models::alias_log(&store.conn, None)?;
    for ((name, stage), t) in &last {
        let want = active
            .get(&(name.clone(), stage.clone()))
            .and_then(|a| a.last().cloned());
        if models::check_alias(stage).is_err() {
            note(
                &t.name,
                "skipped",
                format!("`{stage}` is not an alias mlrun accepts"),
            );
            continue;
        }
        let state = models::alias_state(&store.conn, name, stage)?;
        let now_at = state.as_ref().and_then(|(l, _)| l.clone());
        if now_at == want {
            note(
                &t.name,
                "current",
                format!("{name}@{stage} is {}", want.as_deref().unwrap_or("not set")),
            );
            continue;
        }
        // a tag export-tags wrote from this store's log stands for that move, made at its own
        // time (the tag's date may have been pushed later to keep GTO's order)
        let tag_ms = t
            .message
            .lines()
            .find_map(|l| l.strip_prefix(MOVE_TRAILER))
            .and_then(|id| id.trim().parse::<i64>().ok())
            .and_then(|id| log.iter().find(|m| m.id == id))
            .filter(|m| m.name == *name && m.alias == *stage)
            .map_or(t.date * 1000, |m| m.at);
        if let Some((_, moved)) = &state
            && *moved >= tag_ms
        {
            note(
                &t.name,
                "skipped",
                format!("{name}@{stage} moved in mlrun after this tag"),
            );
            continue;
        }
        if args.dry_run {
            note(
                &t.name,
                "would-move",
                format!("{name}@{stage} → {}", want.as_deref().unwrap_or("removed")),
            );
            continue;
        }
        let msg = format!("imported {}", tagged(t));
        match models::set_alias(
            &mut store.conn,
            name,
            stage,
            want.as_deref(),
            &by,
            Some(&msg),
            now,
        ) {
            Ok(_) => note(
                &t.name,
                "moved",
                format!("{name}@{stage} → {}", want.as_deref().unwrap_or("removed")),
            ),
            Err(e) => note(&t.name, "skipped", e.message),
        }
    }
    if args.json {
        emit(&(serde_json::to_string_pretty(&done).unwrap_or_default() + "\n"));
        return Ok(0);
    }
    let mut s = String::new();
    for d in &done {
        s += &format!("{:<14} {}  {}\n", d.status, d.tag, d.detail);
    }
    let changed = done
        .iter()
        .filter(|d| matches!(d.status.as_str(), "registered" | "moved"))
        .count();
    s += &format!(
        "{changed} change{} ({} tag{} read)\n",
        if changed == 1 { "" } else { "s" },
        tags.len(),
        if tags.len() == 1 { "" } else { "s" }
    );
    emit(&s);
    Ok(0)
}

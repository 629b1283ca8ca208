//! The command line, as clap-derive structs. `mlrun PIPELINE` is shorthand for `mlrun run PIPELINE`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::ColorChoice;

const AFTER_HELP: &str = "\
Examples:
  mlrun                          run ./pipeline.toml and record its lineage
  mlrun examples/x/pipeline.toml run another pipeline
  mlrun run -p train.lr=0.01     override a param for this run
  mlrun runs                     list recorded runs
  mlrun show latest              everything recorded about the newest run
  mlrun show model/              the model card: what made this exact version
  mlrun lineage model/           the data, steps, commits and params it came from
  mlrun diff RUN1 RUN2           what changed between two runs
  mlrun diff latest              what changed since the run before the latest
  mlrun runs --metric 'acc>0.9'  runs whose metric passes a test
  mlrun run -m 'try dropout'     attach a message to the run (`mlrun note RUN TEXT` later)
  mlrun compare --sort acc       params × metrics of the last 10 runs, best first
  mlrun init                     start a project: a pipeline.toml skeleton
  mlrun export latest --format openlineage   interchange with lineage tools
  mlrun replay model.pkl         reproduce the run that made model.pkl and compare

Exit codes:
  0    every step succeeded
  N    a step failed: its own exit code (128+signal when it was killed)
  1    mlrun itself failed (store, I/O), or a step did not produce a declared output;
       an unknown or ambiguous id, hash or path
  2    invalid pipeline or command line; nothing was run
  75   another mlrun is running this pipeline (use --wait-lock to wait)
  124  a step ran past its timeout
  130  interrupted (SIGINT); 143 terminated (SIGTERM)";

#[derive(Debug, Parser)]
#[command(
    name = "mlrun",
    version,
    about = "Run ML pipelines from pipeline.toml and record what made every model",
    long_about = "Run the steps declared in pipeline.toml as subprocesses and record, around every \
                  step, the hashes of its inputs and outputs, its params and metrics, the git state \
                  and the environment, in a local SQLite lineage store (.mlrun/lineage.db).",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,

    /// Lineage store directory [default: .mlrun beside pipeline.toml, or the nearest one above
    /// the current directory for read commands]
    #[arg(long, global = true, env = "MLRUN_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// When to use colour (NO_COLOR and non-terminals turn it off under `auto`)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline and record its lineage (the default command)
    Run(RunArgs),
    /// List recorded runs, newest first
    Runs(RunsArgs),
    /// Show everything recorded about a run, or the model card of an artifact version
    Show(ShowArgs),
    /// Trace what a version, step or run was made from (or, with --down, what was made from it)
    Lineage(LineageArgs),
    /// Compare two runs (or the runs that made two artifact versions); one run: with the run
    /// before it
    Diff(DiffArgs),
    /// One table of params × metrics over many runs: the columns that differ
    Compare(CompareArgs),
    /// Attach a message to a recorded run (or show or clear it)
    Note(NoteArgs),
    /// Start a project: write a commented pipeline.toml and keep .mlrun/ out of git
    Init(InitArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions(CompletionsArgs),
    /// Export a run as OpenLineage events (JSON lines) or W3C PROV-JSON
    Export(ExportArgs),
    /// Say which steps are up to date and why the others would run
    Status(StatusArgs),
    /// Reproduce a recorded run in a scratch tree and say whether it came out bit for bit
    Replay(ReplayArgs),
    /// Delete stored objects that kept runs no longer reference
    Gc(GcArgs),
    /// Re-hash every stored object and report corrupt or missing ones
    Fsck(FsckArgs),
    /// Convert a DVC pipeline (dvc.yaml) into pipeline.toml
    Import(ImportArgs),
    /// Name model versions (NAME@vN), move aliases (NAME@production), list them
    #[command(subcommand)]
    Model(ModelCommand),
    /// Serve a local, read-only web view of runs, comparisons and lineage
    Ui(crate::cmd::ui::UiArgs),
}

const MODEL_HELP: &str = "\
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

#[derive(Debug, Subcommand)]
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

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
pub struct ModelListArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ModelShowArgs {
    /// The model name
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ModelExportTagsArgs {
    /// Say what would be done without doing it
    #[arg(long)]
    pub dry_run: bool,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  mlrun import dvc.yaml                    write pipeline.toml beside dvc.yaml
  mlrun import dvc.yaml -o other.toml      write another file
  mlrun import dvc.yaml -o -               print it instead
  mlrun import sub/dvc.yaml -o pipeline.toml   paths are rebased onto pipeline.toml's directory")]
pub struct ImportArgs {
    /// The DVC pipeline file to convert
    #[arg(value_name = "DVC_YAML")]
    pub file: PathBuf,

    /// Where to write the pipeline (`-` for stdout) [default: pipeline.toml beside DVC_YAML]
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Overwrite FILE if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// The pipeline file
    #[arg(value_name = "PIPELINE", default_value = "pipeline.toml")]
    pub pipeline: PathBuf,

    /// Run at most N steps at once [default: number of CPU cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// After a step fails, still run every step that does not depend on it
    #[arg(short = 'k', long)]
    pub keep_going: bool,

    /// Override a param for this run (repeatable), e.g. `-p train.lr=0.01`
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// On interrupt, how long steps get to exit after SIGTERM before SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Print a JSON summary on stdout at the end (step output and progress go to stderr)
    #[arg(long)]
    pub json: bool,

    /// Run steps even when an earlier run with the same inputs could be reused: all of them
    /// (`--force`) or the named ones (`--force=train`, repeatable or comma-separated)
    #[arg(long, value_name = "STEP", num_args = 0..=1, require_equals = true, value_delimiter = ',', default_missing_value = "")]
    pub force: Option<Vec<String>>,

    /// Record hashes but keep no copies in the object store (outputs cannot be restored later)
    #[arg(long)]
    pub no_store: bool,

    /// Also reuse results recorded by `mlrun replay` (replays run in a scratch tree, so by
    /// default they are never a source of `cached` / `restored` steps)
    #[arg(long)]
    pub reuse_replays: bool,

    /// If another mlrun is running this pipeline, wait for it instead of refusing (exit 75)
    #[arg(long)]
    pub wait_lock: bool,
    /// Trace the files each step really reads and writes (Linux): warn about undeclared ones and
    /// record them as observed lineage. `--trace=strict` also fails a step that uses undeclared
    /// files; `--trace=off` turns off tracing asked for in pipeline.toml
    #[arg(long, value_name = "MODE", value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "on")]
    pub trace: Option<TraceArg>,

    /// Attach a message to the run: what you are trying (shown by `runs` and `show`, searched by
    /// `runs --grep`; change it later with `mlrun note`)
    #[arg(short = 'm', long, value_name = "TEXT")]
    pub message: Option<String>,
}

/// `--trace=MODE`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceArg {
    /// trace, warn about undeclared files (the default of a bare `--trace`)
    On,
    /// trace, and fail a step on any undeclared read or write inside the project
    Strict,
    /// do not trace, whatever pipeline.toml says
    Off,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The pipeline file
    #[arg(value_name = "PIPELINE", default_value = "pipeline.toml")]
    pub pipeline: PathBuf,

    /// Override a param, as for `run`, to ask what that run would do
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// Exit 1 when any step is stale (for CI: are the committed results up to date?)
    #[arg(long)]
    pub check: bool,

    /// Count results recorded by `mlrun replay` too, as `mlrun run --reuse-replays` would
    #[arg(long)]
    pub reuse_replays: bool,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

const RUN_HELP: &str = "\
RUN is a run id prefix (as shown, e.g. 019a3c5e7f127abc), `latest` (the newest run that is
not a replay) or `latest-replay` (the newest replay); `RUN~N` is the Nth run before RUN:
`latest~1` is the run before the latest.";

#[derive(Debug, Args)]
#[command(after_help = RUN_HELP)]
pub struct ReplayArgs {
    /// A run (id prefix, `latest`, `latest~1`), or an artifact path or content hash (replays
    /// the run that produced it)
    #[arg(value_name = "TARGET", default_value = "latest")]
    pub target: String,

    /// Replay only this step and the steps it needs
    #[arg(long, value_name = "STEP")]
    pub step: Option<String>,

    /// Keep the scratch tree and print where it is
    #[arg(long)]
    pub keep: bool,

    /// Copy the reproduced outputs into DIR
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,

    /// Run at most N steps at once [default: number of CPU cores]
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// On interrupt, how long steps get to exit after SIGTERM before SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Print the verdict as JSON on stdout (progress goes to stderr)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep the objects of the N most recent runs only [default: keep every run's objects]
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,

    /// Say what would be deleted and how much space it would free, without deleting
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,

    /// Correct what can be: versions recorded as stored whose objects are gone are marked not
    /// restorable; a lost (missing or empty) database is replaced by a new one that keeps the
    /// objects
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  mlrun runs --pipeline demo --status succeeded --since 2d
  mlrun runs --param train.lr=0.1 --metric 'accuracy>=0.9' --sort accuracy
  mlrun runs --sort final_loss:asc -n 5
  mlrun runs --no-replays         the workspace's own runs, without replays
  mlrun runs --grep 'dropout'     runs whose message (`run -m`, `note`) mentions dropout")]
pub struct RunsArgs {
    /// Show at most N runs (0 for all)
    #[arg(short = 'n', long, default_value_t = 20, value_name = "N")]
    pub limit: usize,

    /// Only runs of this pipeline
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,

    /// Only runs with this status
    #[arg(long, value_name = "STATUS", value_parser = ["running", "succeeded", "failed", "interrupted"])]
    pub status: Option<String>,

    /// Only runs started since a time: a duration ago (`2d`, `3h`, `90m`) or a date (`2024-05-01`,
    /// `2024-05-01T14:00`)
    #[arg(long, value_name = "WHEN", value_parser = crate::cmd::runs::parse_since)]
    pub since: Option<i64>,

    /// Only runs whose param KEY has this value (repeatable)
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = crate::cmd::runs::parse_param)]
    pub params: Vec<(String, serde_json::Value)>,

    /// Only runs whose metric satisfies a comparison: `accuracy>0.9` (>, >=, <, <=, =, !=;
    /// repeatable)
    #[arg(long = "metric", value_name = "EXPR", value_parser = crate::cmd::runs::parse_metric)]
    pub metrics: Vec<(String, crate::store::query::Cmp, f64)>,

    /// Sort by a metric, highest first (`METRIC:asc` for lowest first); runs without it last
    #[arg(long, value_name = "METRIC[:asc]", value_parser = crate::cmd::runs::parse_sort)]
    pub sort: Option<(String, bool)>,

    /// Only replays (`mlrun replay` runs) [default: every run, replays marked in STATUS]
    #[arg(long, overrides_with = "no_replays")]
    pub replays: bool,

    /// No replays: only the runs of the workspace itself
    #[arg(long, overrides_with = "replays")]
    pub no_replays: bool,

    /// Only runs whose message contains TEXT (ignoring the case of ASCII letters)
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = TARGET_HELP)]
pub struct ShowArgs {
    /// A run (id prefix, `latest`, `latest~1`, `latest-replay`), or an artifact: PATH,
    /// PATH@RUN or a content-hash prefix
    #[arg(value_name = "TARGET", default_value = "latest")]
    pub target: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,

    /// For a directory version: list its files, each with its hash and size
    #[arg(long)]
    pub files: bool,

    /// Also print each step's captured stdout and stderr (a long log: its first and last
    /// 64 KiB, with a line saying how much was cut)
    #[arg(long)]
    pub logs: bool,

    /// Print every log whole, from the object store (implies --logs)
    #[arg(long)]
    pub full: bool,

    /// Print only this stream of one step execution (TARGET: RUN:STEP), whole and byte for
    /// byte as recorded, and nothing else: `mlrun show latest:train --log stdout > train.log`
    #[arg(long, value_name = "STREAM", value_parser = ["stdout", "stderr"], conflicts_with_all = ["json", "logs", "patch"])]
    pub log: Option<String>,

    /// Also print the uncommitted diff recorded at the start of the run
    #[arg(long)]
    pub patch: bool,

    /// Also list the packages installed for each step's interpreters (name and exact version)
    #[arg(long)]
    pub packages: bool,
}

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

const TARGET_HELP: &str = "\
TARGET is one of:
  PATH          a file or directory: its current content (or its latest recorded version);
                a file inside a recorded directory names that file
  PATH@RUN      the version of PATH that RUN produced or read
  RUN           a run id prefix (as shown, e.g. 019a3c5e7f127abc), `latest` (the newest run
                that is not a replay), `latest-replay` (the newest replay); `RUN~N` is the
                Nth run before RUN: `latest~1` is the run before the latest
  RUN:STEP      one step execution of a run, e.g. latest~1:train
  NAME@vN, NAME@ALIAS
                a registered model version (`mlrun model`), e.g. churn@v2, churn@production;
                `models:/NAME@REF` always means a model
  HASH          a content-hash prefix";

#[derive(Debug, Args)]
#[command(after_help = TARGET_HELP)]
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

#[derive(Debug, Args)]
#[command(after_help = TARGET_HELP)]
pub struct DiffArgs {
    /// The older side: a run, RUN:STEP, or an artifact version (its producing run); alone, the
    /// newer side, compared with the run before it (`mlrun diff latest` = `diff latest~1 latest`)
    #[arg(value_name = "A")]
    pub a: String,

    /// The newer side
    #[arg(value_name = "B")]
    pub b: Option<String>,

    /// Also print the code changes between the two commits and the recorded uncommitted diffs
    #[arg(long)]
    pub patch: bool,

    /// Also list the unchanged inputs and outputs, file by file with their hashes
    #[arg(long)]
    pub all: bool,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// OpenLineage 2-0-2 RunEvents, one JSON object per line
    Openlineage,
    /// a W3C PROV-JSON document with one bundle for the run
    Prov,
}

#[derive(Debug, Args)]
#[command(after_help = RUN_HELP)]
pub struct ExportArgs {
    /// A run id (any unique prefix as shown), `latest`, `latest~1`, `latest-replay`
    #[arg(value_name = "RUN", default_value = "latest")]
    pub run: String,

    /// Interchange format
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ExportFormat::Openlineage)]
    pub format: ExportFormat,

    /// Write to FILE instead of stdout
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  mlrun compare                       the last 10 runs of the newest run's pipeline
  mlrun compare -n 30 --sort accuracy the last 30, best accuracy first
  mlrun compare latest~2 latest~1 latest
  mlrun compare --pipeline demo --csv > runs.csv

RUN is a run id prefix, `latest`, `latest~N` or `latest-replay`.")]
pub struct CompareArgs {
    /// The runs to compare [default: the last N runs of a pipeline, replays left out]
    #[arg(value_name = "RUN")]
    pub runs: Vec<String>,

    /// Without RUNs: compare the last N runs (0 for all)
    #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
    pub limit: usize,

    /// Without RUNs: runs of this pipeline [default: the pipeline of the newest run]
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,

    /// Every param and metric as a column, not only those that differ between the runs
    #[arg(long)]
    pub all: bool,

    /// Order by a metric, highest first (`METRIC:asc` for lowest first); runs without it last
    #[arg(long, value_name = "METRIC[:asc]", value_parser = crate::cmd::runs::parse_sort)]
    pub sort: Option<(String, bool)>,

    /// Print JSON instead of a table
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,

    /// Print CSV (one line per run) instead of a table
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
#[command(after_help = RUN_HELP)]
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

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project directory
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
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

/// `mlrun --store DIR runs` must mean the `runs` subcommand, but clap stops looking for
/// subcommands once a top-level argument was seen (the price of `mlrun PIPELINE` being a run).
/// Global options written before a subcommand are therefore moved after it.
pub fn hoist_subcommand(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .flat_map(|s| {
            std::iter::once(s.get_name().to_string()).chain(s.get_all_aliases().map(str::to_string))
        })
        .chain(["help".to_string()])
        .collect();
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        match a.as_ref() {
            "--store" | "--color" => i += 2,
            s if s.starts_with("--store=") || s.starts_with("--color=") => i += 1,
            _ => break,
        }
    }
    if i > 1 && i < args.len() && names.iter().any(|n| args[i].to_str() == Some(n.as_str())) {
        let sub = args.remove(i);
        args.insert(1, sub);
    }
    args
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    crate::pipeline::duration::parse(s).map_err(|e| format!("{e} (examples: 10s, 500ms, 2m)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_may_come_before_the_subcommand() {
        let args = |v: &[&str]| hoist_subcommand(v.iter().map(Into::into).collect());
        let cli = Cli::try_parse_from(args(&["mlrun", "--store", "s", "runs", "-n", "1"])).unwrap();
        assert!(matches!(cli.command, Some(Command::Runs(_))));
        assert_eq!(cli.store.as_deref(), Some(std::path::Path::new("s")));
        let cli = Cli::try_parse_from(args(&["mlrun", "--color=never", "p.toml"])).unwrap();
        assert!(cli.command.is_none());
    }

    #[test]
    fn trace_takes_an_optional_mode() {
        let cli = Cli::try_parse_from(["mlrun", "run", "--trace"]).unwrap();
        let Some(Command::Run(r)) = cli.command else {
            panic!("a run")
        };
        assert_eq!(r.trace, Some(TraceArg::On));
        let cli = Cli::try_parse_from(["mlrun", "--trace=strict", "p.toml"]).unwrap();
        assert_eq!(cli.run.trace, Some(TraceArg::Strict));
        assert_eq!(cli.run.pipeline, PathBuf::from("p.toml"));
        assert!(Cli::try_parse_from(["mlrun", "--trace=loud"]).is_err());
    }

    #[test]
    fn bare_pipeline_is_a_run() {
        let cli = Cli::try_parse_from(["mlrun", "p.toml", "-j", "2"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.pipeline, PathBuf::from("p.toml"));
        let cli = Cli::try_parse_from(["mlrun", "runs", "--json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Runs(_))));
    }
}

//! `mlrun diff A B`: what differs between two runs (or between the runs that produced two
//! artifact versions): params, metrics, data versions, code, environment and step commands.
//!
//! Everything comes from the store except the list of files changed between two commits, which
//! is read from the git repository when it still has both commits. Sections that did not change
//! collapse to one line. The `--json` shape is `RunDiff` (documented in the README).

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::cmd::target::{self, Target};
use crate::error::{Error, Result};
use crate::report::{ColorChoice, Style, emit};
use crate::store::query::{self};
use crate::store::{self, Store};

mod render;
mod sections;

pub use render::render;
use sections::*;

#[derive(Debug, clap::Args)]
#[command(after_help = crate::cmd::target::TARGET_HELP)]
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

    /// Query the team remote's record (PostgreSQL) instead of the local store
    #[arg(long)]
    pub remote: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub id: String,
    pub short_id: String,
    pub pipeline: String,
    pub status: String,
    pub started_at: i64,
    pub commit: Option<String>,
    pub dirty: bool,
    /// the artifact version that named this run on the command line, if one did
    pub via: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change<T> {
    pub key: String,
    pub a: Option<T>,
    pub b: Option<T>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ParamsDiff {
    /// present in both, or only in one (`a` or `b` is null)
    pub changed: Vec<Change<Value>>,
    pub unchanged: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricChange {
    pub step: String,
    pub key: String,
    /// exact, as in `mlrun show --json` (`"nan"`, `"inf"`, `"-inf"` for values that are not finite)
    #[serde(serialize_with = "crate::fingerprint::metrics::ser_opt")]
    pub a: Option<f64>,
    #[serde(serialize_with = "crate::fingerprint::metrics::ser_opt")]
    pub b: Option<f64>,
    pub delta: Option<f64>,
    /// relative change in percent of `a` (null when `a` is 0 or missing)
    pub pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct MetricsDiff {
    pub changed: Vec<MetricChange>,
    pub unchanged: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VersionBrief {
    pub hash: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: i64,
    pub nfiles: i64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct FilesDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PathChange {
    pub path: String,
    /// `input` (read, not produced by the run) or `output`
    pub role: &'static str,
    /// `changed`, `added` (only in B) or `removed` (only in A)
    pub status: &'static str,
    pub a: Option<VersionBrief>,
    pub b: Option<VersionBrief>,
    /// for two versions of a directory: which files differ
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesDiff>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileBrief {
    /// relative to the directory
    pub path: String,
    pub hash: String,
    pub size: u64,
}

/// A path both runs saw with the same content (`diff --all`).
#[derive(Debug, Clone, Serialize)]
pub struct SamePath {
    pub path: String,
    /// `input` or `output`
    pub role: &'static str,
    #[serde(flatten)]
    pub version: VersionBrief,
    /// for a directory: its files, each with its hash (null when its manifest is missing)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileBrief>>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct DataDiff {
    pub changed: Vec<PathChange>,
    pub unchanged: usize,
    /// with `--all`: the unchanged paths, file by file
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchanged_paths: Option<Vec<SamePath>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    /// `added`, `deleted`, `modified`, `renamed`, …
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CodeDiff {
    pub a_commit: Option<String>,
    pub b_commit: Option<String>,
    pub same_commit: bool,
    /// commits from A's to B's (when B's descends from A's)
    pub commits_between: Option<usize>,
    /// files changed between the two commits (null when the repository lacks one of them)
    pub files: Option<Vec<FileChange>>,
    pub note: Option<String>,
    /// tracked files with uncommitted changes at the start of each run
    pub a_dirty: Vec<String>,
    pub b_dirty: Vec<String>,
    pub same_uncommitted_diff: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a_uncommitted_diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b_uncommitted_diff: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct EnvDiff {
    /// OS, kernel, machine, interpreters (`interpreter:python3`), lock files (`lockfile:uv.lock`)
    pub changed: Vec<Change<String>>,
    /// environment variables (values as recorded: secrets are redaction markers)
    pub env_vars: Vec<Change<String>>,
    pub unchanged: bool,
    /// installed packages (over all the steps' interpreters) that were added, removed or
    /// changed version; the environment of an interpreter itself is in `changed`
    /// (`packages-env:python3`)
    pub packages: Vec<PackageChange>,
    /// packages with the same version in both
    pub packages_unchanged: usize,
    /// why packages were not compared (one run recorded none)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages_note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PackageChange {
    pub name: String,
    /// `changed`, `added` (only in B) or `removed` (only in A)
    pub status: &'static str,
    pub a: Option<String>,
    pub b: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct StepsDiff {
    /// steps whose command differs (`a`/`b` null: the step exists in one run only)
    pub commands: Vec<Change<String>>,
    /// steps whose outcome differs (succeeded vs failed); running and reusing a result are the
    /// same outcome
    pub status: Vec<Change<String>>,
    /// steps that made different outputs: `a`/`b` name the differing outputs and their hashes
    pub made: Vec<Change<String>>,
    /// steps that ran in one run and were reused (`cached`, `restored`) in the other, making the
    /// same outputs: how each ran, not a difference
    pub ran: Vec<Change<String>>,
    /// steps that ran as cluster jobs in either run: where each ran (`local`, or the job: id,
    /// node, queue wait, run time, Slurm's state); not a difference by itself
    pub where_ran: Vec<Change<String>>,
    pub unchanged: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunDiff {
    pub a: Side,
    pub b: Side,
    pub same_pipeline: bool,
    pub params: ParamsDiff,
    pub metrics: MetricsDiff,
    pub data: DataDiff,
    pub code: CodeDiff,
    pub environment: EnvDiff,
    pub steps: StepsDiff,
}

pub fn compute(
    store: &Store,
    a: &str,
    b: &str,
    patch: bool,
    color: ColorChoice,
) -> Result<RunDiff> {
    compute_with(store, a, b, patch, false, color)
}

/// `compute`, with `all`: also list the unchanged paths file by file (`diff --all`).
pub fn compute_with(
    store: &Store,
    a: &str,
    b: &str,
    patch: bool,
    all: bool,
    color: ColorChoice,
) -> Result<RunDiff> {
    let (rb, via_b) = side_of(store, b, color)?;
    let (ra, via_a) = if a.is_empty() {
        (run_before(store, b, &rb)?, None)
    } else {
        side_of(store, a, color)?
    };
    let with_diff = true; // the uncommitted diffs are compared by content
    let da = store.run_detail(&ra, with_diff)?;
    let db = store.run_detail(&rb, with_diff)?;
    let mut code = code_diff(&da, &db, patch)?;
    if !patch {
        code.a_uncommitted_diff = None;
        code.b_uncommitted_diff = None;
    }
    Ok(RunDiff {
        same_pipeline: da.pipeline == db.pipeline,
        params: params_diff(&da.params, &db.params),
        metrics: metrics_diff(&da, &db),
        data: data_diff(store, &da, &db, all)?,
        environment: env_diff(&da, &db),
        steps: steps_diff(&da, &db),
        code,
        a: side(&da, via_a),
        b: side(&db, via_b),
    })
}

/// `diff B` alone: the run before B's run (of the same kind: a replay's is the replay before).
fn run_before(store: &Store, b: &str, run: &str) -> Result<String> {
    store.resolve_run(&format!("{run}~1")).map_err(|_| {
        Error::other(format!(
            "`{b}` is the first run recorded{}; there is no run before it to compare with",
            if b == run || query::is_run_name(b) {
                String::new()
            } else {
                format!(" (run {})", &run[..run.len().min(query::MIN_SHORT)])
            }
        ))
        .hint("name both sides: `mlrun diff A B`")
    })
}

pub fn diff(args: DiffArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    if args.remote {
        // runs named by id, and the 50 newest (`latest`, the run before one named) unless both
        // sides are named by id
        let mut targets = vec![args.a.as_str()];
        targets.extend(args.b.as_deref());
        let filter = crate::remote::pg::RunFilter {
            // (the run before `latest~N` is the N+2th newest)
            last: Some(crate::remote::newest_needed(&targets, 49) + 1),
            ..Default::default()
        };
        let ids = crate::remote::ids_in(&targets);
        let named_only = targets.len() == 2 && ids.len() == 2;
        let view = crate::remote::view(store_dir, &filter, &ids, named_only)?;
        return diff(
            DiffArgs {
                remote: false,
                ..args
            },
            Some(&view.store_dir),
            color,
        );
    }
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    // one side named: it is the newer one, compared with the run before it
    let (a, b) = match &args.b {
        Some(b) => (args.a.as_str(), b.as_str()),
        None => ("", args.a.as_str()),
    };
    let d = compute_with(&store, a, b, args.patch, args.all, color)?;
    if args.json {
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&d).unwrap_or_default()
        ));
    } else {
        emit(&render(&d, &Style::stdout(color)));
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// text

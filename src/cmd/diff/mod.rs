//! `mlrun diff A B`: what differs between two runs (or between the runs that produced two
//! artifact versions): params, metrics, data versions, code, environment and step commands.
//!
//! Everything comes from the store except the list of files changed between two commits, which
//! is read from the git repository when it still has both commits. Sections that did not change
//! collapse to one line. The `--json` shape is `RunDiff` (documented in the README).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::cmd::target::{self, Target};
use crate::error::{Error, Result};
use crate::fingerprint::packages::{self, Package};
use crate::pipeline::params;
use crate::report::Role;
use crate::report::{self, ColorChoice, Style, emit, short_hash, time};
use crate::store::lineage::GAP_REASON;
use crate::store::query::{self, EnvInfo, IoInfo, RunDetail, StepInfo};
use crate::store::{self, Store};

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

/// Variables mlrun itself sets for every step: per-run noise (`MLRUN_RUN_ID`, `MLRUN_STEP`,
/// `MLRUN_METRICS`) and the params (`MLRUN_PARAM_*`, already compared under params). They are
/// not part of the environment a user gave the step.
fn set_by_mlrun(var: &str) -> bool {
    matches!(var, "MLRUN_RUN_ID" | "MLRUN_STEP" | "MLRUN_METRICS")
        || var.starts_with("MLRUN_PARAM_")
}

fn side_of(store: &Store, arg: &str, color: ColorChoice) -> Result<(String, Option<String>)> {
    let (v, file, note) = match target::resolve(store, arg)? {
        Target::Run(r) | Target::Exec { run_id: r, .. } => return Ok((r, None)),
        Target::Version(v, note) => (v, None, note),
        Target::File(v, m, note) => (v, Some(m), note),
    };
    if let Some(n) = note {
        Style::stderr(color).note(&n);
    }
    let Some(p) = store.preferred_producer(v.av_id)? else {
        let why = store
            .gap_reasons(&[v.av_id])?
            .remove(&v.av_id)
            .unwrap_or_else(|| GAP_REASON.to_string());
        return Err(Error::other(format!(
            "`{}` ({}) has no recorded producer: {why}",
            v.path,
            short_hash(&v.hash)
        ))
        .hint("diff the runs that read it instead: `mlrun show PATH` lists them"));
    };
    let e = store
        .execs(&[p])?
        .remove(&p)
        .ok_or_else(|| Error::other("the producing step execution vanished"))?;
    // a file inside a directory: the run that made the directory version holding it
    let via = match file {
        Some(m) => format!("{}@{}", m.path, short_hash(&m.hash)),
        None => format!("{}@{}", v.path, short_hash(&v.hash)),
    };
    Ok((e.run_id, Some(via)))
}

fn side(d: &RunDetail, via: Option<String>) -> Side {
    Side {
        id: d.id.clone(),
        short_id: d.short_id.clone(),
        pipeline: d.pipeline.clone(),
        status: d.status.clone(),
        started_at: d.started_at,
        commit: d.git.as_ref().and_then(|g| g.commit.clone()),
        dirty: d.git.as_ref().is_some_and(|g| g.dirty),
        via,
    }
}

fn params_diff(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> ParamsDiff {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut d = ParamsDiff::default();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x == y {
            d.unchanged += 1;
        } else {
            d.changed.push(Change {
                key: k.clone(),
                a: x.cloned(),
                b: y.cloned(),
            });
        }
    }
    d
}

fn metrics_diff(a: &RunDetail, b: &RunDetail) -> MetricsDiff {
    let collect = |d: &RunDetail| -> BTreeMap<(String, String), f64> {
        d.steps
            .iter()
            .flat_map(|s| {
                s.metrics
                    .iter()
                    .map(|(k, v)| ((s.name.clone(), k.clone()), *v))
            })
            .collect()
    };
    let (ma, mb) = (collect(a), collect(b));
    let keys: BTreeSet<&(String, String)> = ma.keys().chain(mb.keys()).collect();
    let mut d = MetricsDiff::default();
    for k in keys {
        let (x, y) = (ma.get(k).copied(), mb.get(k).copied());
        let same = match (x, y) {
            (Some(x), Some(y)) => crate::fingerprint::metrics::same(x, y),
            (x, y) => x.is_none() && y.is_none(),
        };
        if same {
            d.unchanged += 1;
            continue;
        }
        let delta = x.zip(y).map(|(x, y)| y - x);
        d.changed.push(MetricChange {
            step: k.0.clone(),
            key: k.1.clone(),
            a: x,
            b: y,
            delta,
            pct: x
                .zip(delta)
                .filter(|(x, _)| *x != 0.0)
                .map(|(x, dl)| dl / x.abs() * 100.0),
        });
    }
    d
}

fn brief(io: &IoInfo) -> VersionBrief {
    VersionBrief {
        hash: io.hash.clone(),
        kind: io.kind.clone(),
        size: io.size,
        nfiles: io.nfiles,
    }
}

/// A run's data: outputs by path, and inputs by path that no step of the run produced.
fn data_of(d: &RunDetail) -> (BTreeMap<String, IoInfo>, BTreeMap<String, IoInfo>) {
    let outputs: BTreeMap<String, IoInfo> = d
        .steps
        .iter()
        .flat_map(|s| s.outputs.iter().map(|o| (o.path.clone(), o.clone())))
        .collect();
    let inputs = d
        .steps
        .iter()
        .flat_map(|s| s.inputs.iter())
        .filter(|i| !outputs.contains_key(&i.path))
        .map(|i| (i.path.clone(), i.clone()))
        .collect();
    (inputs, outputs)
}

fn files_diff(store: &Store, a: &str, b: &str) -> Result<FilesDiff> {
    let ea = store.dir_entries(a)?;
    let eb = store.dir_entries(b)?;
    Ok(FilesDiff::between(&ea, &eb))
}

impl FilesDiff {
    /// The files added, removed and changed from directory listing `ea` to `eb` (relative
    /// path → content hash), each sorted.
    pub fn between(ea: &BTreeMap<String, String>, eb: &BTreeMap<String, String>) -> FilesDiff {
        let mut f = FilesDiff::default();
        for (p, h) in ea {
            match eb.get(p) {
                None => f.removed.push(p.clone()),
                Some(h2) if h2 != h => f.changed.push(p.clone()),
                _ => {}
            }
        }
        for p in eb.keys() {
            if !ea.contains_key(p) {
                f.added.push(p.clone());
            }
        }
        f
    }
}

fn data_diff(store: &Store, a: &RunDetail, b: &RunDetail, all: bool) -> Result<DataDiff> {
    let (ia, oa) = data_of(a);
    let (ib, ob) = data_of(b);
    let mut d = DataDiff::default();
    let mut same = Vec::new();
    for (role, x, y) in [("input", &ia, &ib), ("output", &oa, &ob)] {
        let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
        for k in keys {
            let (va, vb) = (x.get(k), y.get(k));
            if va.map(|v| &v.hash) == vb.map(|v| &v.hash) {
                d.unchanged += 1;
                if all && let Some(v) = va {
                    let files = (v.kind == "dir")
                        .then(|| store.dir_entry_list(&v.hash).ok())
                        .flatten()
                        .map(|entries| {
                            entries
                                .into_iter()
                                .map(|e| FileBrief {
                                    path: e.relpath,
                                    hash: e.hash,
                                    size: e.size,
                                })
                                .collect()
                        });
                    same.push(SamePath {
                        path: k.clone(),
                        role,
                        version: brief(v),
                        files,
                    });
                }
                continue;
            }
            let files = match (va, vb) {
                // without both manifests (a damaged store: fsck says so) the change is
                // shown without its file list
                (Some(va), Some(vb)) if va.kind == "dir" && vb.kind == "dir" => {
                    files_diff(store, &va.hash, &vb.hash).ok()
                }
                _ => None,
            };
            d.changed.push(PathChange {
                path: k.clone(),
                role,
                status: match (va, vb) {
                    (Some(_), Some(_)) => "changed",
                    (None, _) => "added",
                    (_, None) => "removed",
                },
                a: va.map(brief),
                b: vb.map(brief),
                files,
            });
        }
    }
    if all {
        d.unchanged_paths = Some(same);
    }
    Ok(d)
}

fn git_status_word(s: git2::Delta) -> &'static str {
    match s {
        git2::Delta::Added => "added",
        git2::Delta::Deleted => "deleted",
        git2::Delta::Modified => "modified",
        git2::Delta::Renamed => "renamed",
        git2::Delta::Copied => "copied",
        git2::Delta::Typechange => "type changed",
        _ => "changed",
    }
}

struct CommitsDiff {
    files: Vec<FileChange>,
    between: Option<usize>,
    patch: Option<String>,
}

/// Files changed between two commits, read from the repository that holds `root`.
fn commits_diff(
    root: &str,
    a: &str,
    b: &str,
    patch: bool,
) -> std::result::Result<CommitsDiff, String> {
    let repo = git2::Repository::discover(root)
        .or_else(|_| git2::Repository::discover("."))
        .map_err(|_| "the git repository is not available here".to_string())?;
    let find = |sha: &str| {
        git2::Oid::from_str(sha)
            .and_then(|o| repo.find_commit(o))
            .map_err(|_| {
                format!(
                    "commit {} is not in this repository",
                    &sha[..sha.len().min(7)]
                )
            })
    };
    let (ca, cb) = (find(a)?, find(b)?);
    let ta = ca.tree().map_err(|e| e.message().to_string())?;
    let tb = cb.tree().map_err(|e| e.message().to_string())?;
    let diff = repo
        .diff_tree_to_tree(Some(&ta), Some(&tb), None)
        .map_err(|e| e.message().to_string())?;
    let files = diff
        .deltas()
        .map(|d| FileChange {
            path: d
                .new_file()
                .path()
                .or_else(|| d.old_file().path())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            status: git_status_word(d.status()).to_string(),
        })
        .collect();
    let between = repo
        .graph_descendant_of(cb.id(), ca.id())
        .ok()
        .filter(|d| *d)
        .and_then(|_| repo.graph_ahead_behind(cb.id(), ca.id()).ok())
        .map(|(ahead, _)| ahead);
    let text = if patch {
        let mut text = Vec::new();
        diff.print(git2::DiffFormat::Patch, |_, _, line| {
            if matches!(line.origin(), '+' | '-' | ' ') {
                text.push(line.origin() as u8);
            }
            text.extend_from_slice(line.content());
            true
        })
        .map_err(|e| e.message().to_string())?;
        // committed code can hold credentials too: never print them
        Some(crate::fingerprint::env::mask_patch(
            &String::from_utf8_lossy(&text),
        ))
    } else {
        None
    };
    Ok(CommitsDiff {
        files,
        between,
        patch: text,
    })
}

fn code_diff(a: &RunDetail, b: &RunDetail, patch: bool) -> Result<CodeDiff> {
    let ga = a.git.as_ref();
    let gb = b.git.as_ref();
    let mut d = CodeDiff {
        a_commit: ga.and_then(|g| g.commit.clone()),
        b_commit: gb.and_then(|g| g.commit.clone()),
        a_dirty: ga.map(|g| g.changed.clone()).unwrap_or_default(),
        b_dirty: gb.map(|g| g.changed.clone()).unwrap_or_default(),
        ..CodeDiff::default()
    };
    d.same_commit = d.a_commit == d.b_commit;
    // the recorded uncommitted diffs: compare them by content
    let diff_a = a
        .git
        .as_ref()
        .and_then(|g| g.diff.clone())
        .unwrap_or_default();
    let diff_b = b
        .git
        .as_ref()
        .and_then(|g| g.diff.clone())
        .unwrap_or_default();
    d.same_uncommitted_diff = diff_a == diff_b;
    if patch {
        d.a_uncommitted_diff = (!diff_a.is_empty()).then_some(diff_a);
        d.b_uncommitted_diff = (!diff_b.is_empty()).then_some(diff_b);
    }
    match (&d.a_commit, &d.b_commit) {
        (Some(x), Some(y)) if x != y => match commits_diff(&b.root, x, y, patch) {
            Ok(c) => {
                d.files = Some(c.files);
                d.commits_between = c.between;
                d.patch = c.patch;
            }
            Err(why) => d.note = Some(why),
        },
        (None, None) => d.note = Some("neither run was in a git repository".into()),
        (None, _) | (_, None) => d.note = Some("only one run was in a git repository".into()),
        _ => {}
    }
    Ok(d)
}

/// A system fact of an environment, by name.
type EnvField = (&'static str, fn(&EnvInfo) -> String);

/// The environment of a run's first step that has one.
fn env_of<'a>(d: &'a RunDetail, step: Option<&StepInfo>) -> Option<&'a EnvInfo> {
    let id = match step {
        Some(s) => s.env_id.as_ref()?,
        None => d.steps.iter().find_map(|s| s.env_id.as_ref())?,
    };
    d.environments.get(id)
}

fn env_diff(a: &RunDetail, b: &RunDetail) -> EnvDiff {
    let mut d = EnvDiff::default();
    let mut push = |key: String, x: Option<String>, y: Option<String>| {
        if x != y {
            d.changed.push(Change { key, a: x, b: y });
        }
    };
    let (ea, eb) = (env_of(a, None), env_of(b, None));
    let field = |e: Option<&EnvInfo>, f: fn(&EnvInfo) -> String| e.map(f);
    let fields: [EnvField; 8] = [
        ("os", |e| format!("{} {}", e.os, e.os_version)),
        ("kernel", |e| e.kernel.clone()),
        ("arch", |e| e.arch.clone()),
        ("hostname", |e| e.hostname.clone()),
        ("user", |e| e.user.clone()),
        ("cpu", |e| {
            format!("{} ({} cores)", e.cpu_model, e.cpu_cores)
        }),
        ("memory", |e| report::size(e.mem_bytes as u64)),
        ("mlrun", |e| e.mlrun_version.clone()),
    ];
    for (name, f) in fields.iter() {
        push(name.to_string(), field(ea, *f), field(eb, *f));
    }
    // interpreters and lock files: the union over each run's step environments
    let union = |d: &RunDetail, f: fn(&EnvInfo) -> &BTreeMap<String, String>| {
        let mut m = BTreeMap::new();
        for e in d.environments.values() {
            m.extend(f(e).iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        m
    };
    for (prefix, f) in [
        (
            "interpreter",
            (|e: &EnvInfo| &e.interpreters) as fn(&EnvInfo) -> &BTreeMap<String, String>,
        ),
        ("lockfile", |e: &EnvInfo| &e.lockfiles),
    ] {
        let (ma, mb) = (union(a, f), union(b, f));
        let keys: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        for k in keys {
            push(
                format!("{prefix}:{k}"),
                ma.get(k).cloned(),
                mb.get(k).cloned(),
            );
        }
    }
    // environment variables, step by step (each step has its own), without per-run noise
    let mut vars: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    for sa in &a.steps {
        let Some(sb) = b.steps.iter().find(|s| s.name == sa.name) else {
            continue;
        };
        let (Some(xa), Some(xb)) = (env_of(a, Some(sa)), env_of(b, Some(sb))) else {
            continue;
        };
        let keys: BTreeSet<&String> = xa.env_vars.keys().chain(xb.env_vars.keys()).collect();
        for k in keys {
            if set_by_mlrun(k) {
                continue;
            }
            let (x, y) = (xa.env_vars.get(k), xb.env_vars.get(k));
            if x != y {
                vars.entry(k.clone())
                    .or_insert_with(|| (x.cloned(), y.cloned()));
            }
        }
    }
    d.env_vars = vars
        .into_iter()
        .map(|(key, (a, b))| Change { key, a, b })
        .collect();
    packages_diff(a, b, &mut d);
    d.unchanged = d.changed.is_empty() && d.env_vars.is_empty() && d.packages.is_empty();
    d
}

/// A run's interpreter environments (program → `kind prefix (executable)`, first step first)
/// and its packages over all of them (the first of a name wins).
fn packages_of(d: &RunDetail) -> (BTreeMap<String, String>, Vec<Package>) {
    let mut envs = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut list = Vec::new();
    for s in &d.steps {
        let Some(e) = env_of(d, Some(s)) else {
            continue;
        };
        for (prog, p) in &e.packages {
            envs.entry(prog.clone()).or_insert_with(|| {
                format!("{} {} ({})", p.env.kind, p.env.prefix, p.env.executable)
            });
            for pkg in &p.packages {
                if seen.insert(packages::normalise(&pkg.name)) {
                    list.push(pkg.clone());
                }
            }
        }
    }
    (envs, list)
}

fn packages_diff(a: &RunDetail, b: &RunDetail, d: &mut EnvDiff) {
    let ((ea, pa), (eb, pb)) = (packages_of(a), packages_of(b));
    let keys: BTreeSet<&String> = ea.keys().chain(eb.keys()).collect();
    for k in keys {
        let (x, y) = (ea.get(k), eb.get(k));
        if x != y {
            d.changed.push(Change {
                key: format!("packages-env:{k}"),
                a: x.cloned(),
                b: y.cloned(),
            });
        }
    }
    match (ea.is_empty(), eb.is_empty()) {
        (true, true) => return,
        (true, false) | (false, true) => {
            d.packages_note = Some(format!(
                "run {} recorded no packages (an mlrun from before packages were recorded, or no Python step)",
                if ea.is_empty() { "A" } else { "B" }
            ));
            return;
        }
        _ => {}
    }
    let changes = packages::compare(&pa, &pb);
    let versions: BTreeMap<String, &str> = pa
        .iter()
        .map(|p| (packages::normalise(&p.name), p.version.as_str()))
        .collect();
    d.packages_unchanged = pb
        .iter()
        .filter(|p| versions.get(&packages::normalise(&p.name)) == Some(&p.version.as_str()))
        .count();
    d.packages = changes
        .into_iter()
        .map(|(name, x, y)| PackageChange {
            name,
            status: match (&x, &y) {
                (Some(_), Some(_)) => "changed",
                (None, _) => "added",
                (_, None) => "removed",
            },
            a: x,
            b: y,
        })
        .collect();
}

fn steps_diff(a: &RunDetail, b: &RunDetail) -> StepsDiff {
    let mut d = StepsDiff::default();
    let names: BTreeSet<&String> = a.steps.iter().chain(&b.steps).map(|s| &s.name).collect();
    for n in names {
        let (x, y) = (
            a.steps.iter().rev().find(|s| &s.name == n),
            b.steps.iter().rev().find(|s| &s.name == n),
        );
        let (cx, cy) = (x.map(|s| s.cmd.clone()), y.map(|s| s.cmd.clone()));
        let (sx, sy) = (x.map(|s| s.status.clone()), y.map(|s| s.status.clone()));
        let mut same = true;
        if cx != cy {
            same = false;
            d.commands.push(Change {
                key: n.clone(),
                a: cx,
                b: cy,
            });
        }
        // ran or reused from the cache: the same outcome; what counts is what the step made
        let outcome = |st: &Option<String>| match st.as_deref() {
            Some("succeeded" | "cached" | "restored") => Some("ok".to_string()),
            other => other.map(str::to_string),
        };
        if let (Some(sa), Some(sb)) = (x, y) {
            if outcome(&sx) != outcome(&sy) {
                same = false;
                d.status.push(Change {
                    key: n.clone(),
                    a: sx.clone(),
                    b: sy.clone(),
                });
            } else {
                let outs = |st: &StepInfo| -> BTreeMap<String, String> {
                    st.outputs
                        .iter()
                        .filter(|o| !o.observed)
                        .map(|o| {
                            let slash = if o.kind == "dir" { "/" } else { "" };
                            (format!("{}{slash}", o.path), o.hash.clone())
                        })
                        .collect()
                };
                let (oa, ob) = (outs(sa), outs(sb));
                if oa != ob {
                    same = false;
                    let side = |mine: &BTreeMap<String, String>,
                                other: &BTreeMap<String, String>| {
                        let v: Vec<String> = mine
                            .iter()
                            .filter(|(p, h)| other.get(*p) != Some(*h))
                            .map(|(p, h)| format!("{p} {}", &h[..h.len().min(10)]))
                            .collect();
                        (!v.is_empty()).then(|| v.join(", "))
                    };
                    d.made.push(Change {
                        key: n.clone(),
                        a: side(&oa, &ob),
                        b: side(&ob, &oa),
                    });
                }
                if sx != sy {
                    d.ran.push(Change {
                        key: n.clone(),
                        a: sx,
                        b: sy,
                    });
                }
            }
        }
        if same {
            d.unchanged += 1;
        }
    }
    d
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

fn head(style: &Style, name: &str, summary: &str) -> String {
    format!(
        "{}  {summary}\n",
        style.paint(Role::Strong, &format!("{name:<11}"))
    )
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn value(v: &Option<Value>) -> String {
    v.as_ref().map_or_else(|| "(unset)".into(), params::render)
}

fn brief_text(v: &Option<VersionBrief>) -> String {
    match v {
        None => "(none)".into(),
        Some(v) if v.kind == "dir" => format!(
            "{} ({}, {})",
            short_hash(&v.hash),
            plural(v.nfiles as usize, "file", "files"),
            report::size(v.size as u64)
        ),
        Some(v) => format!("{} ({})", short_hash(&v.hash), report::size(v.size as u64)),
    }
}

fn signed(v: f64) -> String {
    if v > 0.0 {
        format!("+{}", report::metric(v))
    } else {
        report::metric(v)
    }
}

fn list(items: &[String], max: usize) -> String {
    let mut s = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > max {
        s += &format!(" and {} more", items.len() - max);
    }
    s
}

/// The package lines of the environment section: a count by kind, then one line each.
fn packages_text(e: &EnvDiff, style: &Style) -> String {
    let mut o = String::new();
    if let Some(n) = &e.packages_note {
        o += &format!(
            "  {}\n",
            style.paint(Role::Muted, &format!("packages: {n}"))
        );
    }
    if e.packages.is_empty() {
        return o;
    }
    let count = |s: &str| e.packages.iter().filter(|p| p.status == s).count();
    o += &format!(
        "  packages  {} changed, {} added, {} removed, {} unchanged\n",
        count("changed"),
        count("added"),
        count("removed"),
        e.packages_unchanged
    );
    let w = e.packages.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "(none)".into());
    for p in &e.packages {
        let mark = match p.status {
            "added" => style.paint(Role::Good, "+"),
            "removed" => style.paint(Role::Bad, "-"),
            _ => style.paint(Role::Warn, "~"),
        };
        let text = match p.status {
            "added" => v(&p.b),
            "removed" => v(&p.a),
            _ => format!("{} → {}", v(&p.a), v(&p.b)),
        };
        o += &format!("    {mark} {:<w$}  {text}\n", p.name);
    }
    o
}

pub fn render(d: &RunDiff, style: &Style) -> String {
    let side_line = |s: &Side| {
        format!(
            "run {} ({}, {}{})",
            style.paint(Role::Accent, &s.short_id),
            s.pipeline,
            time::local(s.started_at),
            s.via
                .as_ref()
                .map_or_else(String::new, |v| format!(", made {v}"))
        )
    };
    let mut o = format!(
        "{} {} → {}\n",
        style.paint(Role::Strong, "diff"),
        side_line(&d.a),
        side_line(&d.b)
    );
    if !d.same_pipeline {
        o += &format!(
            "{}\n",
            style.paint(Role::Warn, &format!(
                "note: these runs are of different pipelines (`{}` and `{}`); steps and params are compared by name",
                d.a.pipeline, d.b.pipeline
            ))
        );
    }
    if d.a.id == d.b.id {
        o += &format!(
            "{}\n",
            style.paint(Role::Warn, "note: both sides are the same run")
        );
    }
    o += "\n";

    // params
    let p = &d.params;
    if p.changed.is_empty() {
        o += &head(
            style,
            "params",
            &format!("unchanged ({})", plural(p.unchanged, "param", "params")),
        );
    } else {
        o += &head(
            style,
            "params",
            &format!("{} changed, {} unchanged", p.changed.len(), p.unchanged),
        );
        let w = p.changed.iter().map(|c| c.key.len()).max().unwrap_or(0);
        for c in &p.changed {
            o += &format!(
                "  {:<w$}  {} → {}\n",
                c.key,
                style.paint(Role::Bad, &value(&c.a)),
                style.paint(Role::Good, &value(&c.b))
            );
        }
    }

    // metrics
    let m = &d.metrics;
    if m.changed.is_empty() {
        o += &head(
            style,
            "metrics",
            &format!("unchanged ({})", plural(m.unchanged, "metric", "metrics")),
        );
    } else {
        o += &head(
            style,
            "metrics",
            &format!("{} changed, {} unchanged", m.changed.len(), m.unchanged),
        );
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING);
        t.set_header(["  STEP", "METRIC", "A", "B", "Δ", "%"]);
        for c in &m.changed {
            // values that differ further than people's rounding are shown in full
            let full =
                c.a.zip(c.b)
                    .is_some_and(|(a, b)| report::metric(a) == report::metric(b));
            let f = |v: Option<f64>| {
                v.map_or_else(
                    || "-".into(),
                    |v| {
                        if full {
                            crate::fingerprint::metrics::to_json(v).to_string()
                        } else {
                            report::metric(v)
                        }
                    },
                )
            };
            t.add_row([
                format!("  {}", c.step),
                c.key.clone(),
                f(c.a),
                f(c.b),
                c.delta.map_or_else(|| "-".into(), signed),
                c.pct.map_or_else(|| "-".into(), |p| format!("{p:+.1}%")),
            ]);
        }
        o += &format!("{}\n", t.trim_fmt());
    }

    // data
    let dd = &d.data;
    if dd.changed.is_empty() {
        o += &head(
            style,
            "data",
            &format!("unchanged ({})", plural(dd.unchanged, "path", "paths")),
        );
    } else {
        let inputs = dd.changed.iter().filter(|c| c.role == "input").count();
        let outputs = dd.changed.len() - inputs;
        o += &head(
            style,
            "data",
            &format!(
                "{} and {} changed, {} unchanged",
                plural(inputs, "input", "inputs"),
                plural(outputs, "output", "outputs"),
                dd.unchanged
            ),
        );
        for c in &dd.changed {
            let mark = match c.status {
                "added" => style.paint(Role::Good, "+"),
                "removed" => style.paint(Role::Bad, "-"),
                _ => style.paint(Role::Warn, "~"),
            };
            let dir =
                c.a.as_ref()
                    .or(c.b.as_ref())
                    .is_some_and(|v| v.kind == "dir");
            o += &format!(
                "  {mark} {}{}  {}  {} → {}\n",
                c.path,
                if dir { "/" } else { "" },
                style.paint(Role::Muted, c.role),
                brief_text(&c.a),
                brief_text(&c.b)
            );
            if let Some(f) = &c.files {
                if !f.added.is_empty() {
                    o += &format!("      added    {}\n", list(&f.added, 8));
                }
                if !f.removed.is_empty() {
                    o += &format!("      removed  {}\n", list(&f.removed, 8));
                }
                if !f.changed.is_empty() {
                    o += &format!("      changed  {}\n", list(&f.changed, 8));
                }
            }
        }
    }
    for p in dd.unchanged_paths.iter().flatten() {
        let dir = p.version.kind == "dir";
        o += &format!(
            "  {} {}{}  {}  {}\n",
            style.paint(Role::Muted, "="),
            p.path,
            if dir { "/" } else { "" },
            style.paint(Role::Muted, p.role),
            brief_text(&Some(p.version.clone()))
        );
        match &p.files {
            Some(files) => {
                let w = files.iter().map(|f| f.path.len()).max().unwrap_or(0);
                for f in files {
                    o += &format!(
                        "      {:<w$}  {}  {}\n",
                        f.path,
                        short_hash(&f.hash),
                        report::size(f.size)
                    );
                }
            }
            None if dir => {
                o += &format!(
                    "      {}\n",
                    style.paint(
                        Role::Muted,
                        "(its file list is missing from the store: run `mlrun fsck`)"
                    )
                );
            }
            None => {}
        }
    }

    // code
    let c = &d.code;
    let short = |s: &Option<String>| {
        s.as_deref()
            .map_or_else(|| "-".into(), |c| c[..c.len().min(7)].to_string())
    };
    let dirty_same = c.a_dirty == c.b_dirty && c.same_uncommitted_diff;
    if c.same_commit && dirty_same {
        let state = if c.a_dirty.is_empty() {
            "clean in both".to_string()
        } else {
            format!(
                "the same uncommitted changes in both: {}",
                list(&c.a_dirty, 5)
            )
        };
        o += &head(
            style,
            "code",
            &format!("unchanged (commit {}, {state})", short(&c.a_commit)),
        );
    } else {
        let mut summary = if c.same_commit {
            format!("same commit {}", short(&c.a_commit))
        } else {
            format!("{}..{}", short(&c.a_commit), short(&c.b_commit))
        };
        if let Some(n) = c.commits_between {
            summary += &format!(" ({})", plural(n, "commit", "commits"));
        }
        if let Some(files) = &c.files {
            summary += &format!(", {} changed", plural(files.len(), "file", "files"));
        }
        o += &head(style, "code", &summary);
        if let Some(n) = &c.note {
            o += &format!("  {}\n", style.paint(Role::Muted, n));
        }
        for f in c.files.iter().flatten() {
            let mark = match f.status.as_str() {
                "added" => style.paint(Role::Good, "+"),
                "deleted" => style.paint(Role::Bad, "-"),
                _ => style.paint(Role::Warn, "~"),
            };
            o += &format!(
                "  {mark} {}  {}\n",
                f.path,
                style.paint(Role::Muted, &f.status)
            );
        }
        if !dirty_same {
            let dirty = |l: &[String]| {
                if l.is_empty() {
                    "clean".to_string()
                } else {
                    list(l, 8)
                }
            };
            o += &format!("  uncommitted in A: {}\n", dirty(&c.a_dirty));
            o += &format!("  uncommitted in B: {}\n", dirty(&c.b_dirty));
            if c.a_dirty == c.b_dirty {
                o += "  (same files, different changes)\n";
            }
        }
    }

    // environment
    let e = &d.environment;
    if e.unchanged {
        o += &head(style, "environment", "unchanged");
    } else {
        o += &head(
            style,
            "environment",
            &format!(
                "{} changed",
                plural(
                    e.changed.len() + e.env_vars.len() + e.packages.len(),
                    "item",
                    "items"
                )
            ),
        );
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        for c in &e.changed {
            o += &format!("  {}  {} → {}\n", c.key, show(&c.a), show(&c.b));
        }
        for c in &e.env_vars {
            let (mark, text) = match (&c.a, &c.b) {
                (None, Some(v)) => (style.paint(Role::Good, "+"), format!("{}={v}", c.key)),
                (Some(v), None) => (style.paint(Role::Bad, "-"), format!("{}={v}", c.key)),
                (a, b) => (
                    style.paint(Role::Warn, "~"),
                    format!("{}: {} → {}", c.key, show(a), show(b)),
                ),
            };
            o += &format!("  {mark} env {text}\n");
        }
        o += &packages_text(e, style);
    }

    // steps
    let s = &d.steps;
    if s.commands.is_empty() && s.status.is_empty() && s.made.is_empty() {
        o += &head(
            style,
            "steps",
            &format!(
                "unchanged ({}, same commands{})",
                plural(s.unchanged, "step", "steps"),
                if s.ran.is_empty() {
                    ""
                } else {
                    ", same outputs"
                }
            ),
        );
    } else {
        o += &head(
            style,
            "steps",
            &format!(
                "{} differ, {} unchanged",
                s.commands
                    .iter()
                    .chain(&s.status)
                    .chain(&s.made)
                    .map(|c| &c.key)
                    .collect::<BTreeSet<_>>()
                    .len(),
                s.unchanged
            ),
        );
        for c in &s.commands {
            match (&c.a, &c.b) {
                (Some(x), Some(y)) => {
                    o += &format!("  {}  command\n", c.key);
                    o += &format!("    {} {x}\n", style.paint(Role::Bad, "-"));
                    o += &format!("    {} {y}\n", style.paint(Role::Good, "+"));
                }
                (None, Some(y)) => o += &format!("  {} only in B: {y}\n", c.key),
                (Some(x), None) => o += &format!("  {} only in A: {x}\n", c.key),
                _ => {}
            }
        }
        for c in &s.status {
            o += &format!(
                "  {}  {} → {}\n",
                c.key,
                style.status(c.a.as_deref().unwrap_or("-")),
                style.status(c.b.as_deref().unwrap_or("-"))
            );
        }
        for c in &s.made {
            o += &format!("  {}  made other outputs\n", c.key);
            if let Some(x) = &c.a {
                o += &format!("    {} {x}\n", style.paint(Role::Bad, "-"));
            }
            if let Some(y) = &c.b {
                o += &format!("    {} {y}\n", style.paint(Role::Good, "+"));
            }
        }
    }
    // how each ran, apart from what it made
    for c in &s.ran {
        o += &format!(
            "  {}  {} in A, {} in B {}\n",
            c.key,
            style.status(c.a.as_deref().unwrap_or("-")),
            style.status(c.b.as_deref().unwrap_or("-")),
            style.paint(Role::Muted, "(how it ran; not a difference)")
        );
    }

    if let Some(p) = &c.patch {
        o += &format!(
            "\n{}\n{p}",
            style.paint(
                Role::Strong,
                &format!(
                    "changes between commits {}..{}:",
                    short(&c.a_commit),
                    short(&c.b_commit)
                )
            )
        );
    }
    for (name, diff) in [("A", &c.a_uncommitted_diff), ("B", &c.b_uncommitted_diff)] {
        if let Some(text) = diff {
            o += &format!(
                "\n{}\n{text}",
                style.paint(
                    Role::Strong,
                    &format!("uncommitted changes recorded at the start of {name}:")
                )
            );
        }
    }
    o
}

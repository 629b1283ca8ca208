//! Each section of a diff computed from the two runs' records: params, metrics, data versions,
//! code (with the files git lists between the commits), environment and packages, steps.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;
use crate::error::{Error, Result};
use crate::fingerprint::packages::{self, Package};
use crate::report::{self, Style, short_hash};
use crate::store::Store;
use crate::store::lineage::GAP_REASON;
use crate::store::query::{EnvInfo, IoInfo, RunDetail, StepInfo};

/// Variables mlrun itself sets for every step: per-run noise (`MLRUN_RUN_ID`, `MLRUN_STEP`,
/// `MLRUN_METRICS`) and the params (`MLRUN_PARAM_*`, already compared under params). They are
/// not part of the environment a user gave the step.
pub(super) fn set_by_mlrun(var: &str) -> bool {
    matches!(var, "MLRUN_RUN_ID" | "MLRUN_STEP" | "MLRUN_METRICS")
        || var.starts_with("MLRUN_PARAM_")
}

pub(super) fn side_of(
    store: &Store,
    arg: &str,
    color: ColorChoice,
) -> Result<(String, Option<String>)> {
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

pub(super) fn side(d: &RunDetail, via: Option<String>) -> Side {
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

pub(super) fn params_diff(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> ParamsDiff {
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

pub(super) fn metrics_diff(a: &RunDetail, b: &RunDetail) -> MetricsDiff {
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

pub(super) fn brief(io: &IoInfo) -> VersionBrief {
    VersionBrief {
        hash: io.hash.clone(),
        kind: io.kind.clone(),
        size: io.size,
        nfiles: io.nfiles,
    }
}

/// A run's data: outputs by path, and inputs by path that no step of the run produced.
pub(super) fn data_of(d: &RunDetail) -> (BTreeMap<String, IoInfo>, BTreeMap<String, IoInfo>) {
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

pub(super) fn files_diff(store: &Store, a: &str, b: &str) -> Result<FilesDiff> {
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

pub(super) fn data_diff(
    store: &Store,
    a: &RunDetail,
    b: &RunDetail,
    all: bool,
) -> Result<DataDiff> {
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

pub(super) fn git_status_word(s: git2::Delta) -> &'static str {
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

pub(super) struct CommitsDiff {
    files: Vec<FileChange>,
    between: Option<usize>,
    patch: Option<String>,
}

/// Files changed between two commits, read from the repository that holds `root`.
pub(super) fn commits_diff(
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

pub(super) fn code_diff(a: &RunDetail, b: &RunDetail, patch: bool) -> Result<CodeDiff> {
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
pub(super) type EnvField = (&'static str, fn(&EnvInfo) -> String);

/// The environment of a run's first step that has one.
pub(super) fn env_of<'a>(d: &'a RunDetail, step: Option<&StepInfo>) -> Option<&'a EnvInfo> {
    let id = match step {
        Some(s) => s.env_id.as_ref()?,
        None => d.steps.iter().find_map(|s| s.env_id.as_ref())?,
    };
    d.environments.get(id)
}

pub(super) fn env_diff(a: &RunDetail, b: &RunDetail) -> EnvDiff {
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
pub(super) fn packages_of(d: &RunDetail) -> (BTreeMap<String, String>, Vec<Package>) {
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

pub(super) fn packages_diff(a: &RunDetail, b: &RunDetail, d: &mut EnvDiff) {
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

pub(super) fn steps_diff(a: &RunDetail, b: &RunDetail) -> StepsDiff {
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
        if let (Some(sa), Some(sb)) = (x, y)
            && (sa.job.is_some() || sb.job.is_some())
        {
            let place = |st: &StepInfo| match &st.job {
                Some(j) => report::job_line(j),
                None => st.executor.clone(),
            };
            d.where_ran.push(Change {
                key: n.clone(),
                a: Some(place(sa)),
                b: Some(place(sb)),
            });
        }
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

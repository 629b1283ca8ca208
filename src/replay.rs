//! `mlrun replay`: reproduce a recorded run in a scratch tree and say, per step and per output,
//! whether it came out bit for bit the same.
//!
//! The scratch tree is the recorded commit checked out into a temporary directory (with the
//! repository's work dir pointed there in memory only, and the index never written), plus the
//! recorded uncommitted diff, plus every input version that neither a step nor the commit gives
//! back, restored from the object store. The recorded plan (not today's pipeline.toml), params and
//! `env` are used. The user's working tree, index and refs are never touched; the store gains the
//! replay run and nothing else (no stored objects, no stat-cache rows for the scratch tree);
//! explaining a difference (`explain`) adds the second run of the differing steps and what it
//! found about their determinism.

pub mod explain;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{Diff, Oid, Repository, build::CheckoutBuilder};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::git::GitState;
use crate::fingerprint::hash::{self, Fingerprint};
use crate::fingerprint::packages;
use crate::fingerprint::system::{InterpreterCache, LockSearch, SystemInfo};
use crate::pipeline::Plan;
use crate::pipeline::params::Params;
use crate::pipeline::plan::within;
use crate::store::Store;
use crate::store::objects::Objects;
use crate::store::packages::EnvPackages;
use crate::store::record::Io;

/// What was recorded about the run being replayed.
pub struct Original {
    pub run_id: String,
    pub short_id: String,
    /// the recorded pipeline checked again (`recorded_plan`), at the recorded root
    pub plan: Plan,
    /// (step, variable) → the marker recorded for a secret `env` value (`env_markers`)
    pub env_markers: BTreeMap<(Option<String>, String), String>,
    /// the recorded pipeline text (secrets masked)
    pub spec: String,
    pub git: GitState,
    /// step name → its execution id in the original run (the last attempt)
    pub execs: BTreeMap<String, i64>,
}

/// Find the run to replay: a run id prefix or `latest`, else an artifact path or content hash
/// (the run whose step produced that version).
pub fn resolve(store: &Store, target: &str, project_root: &Path) -> Result<String> {
    if let Ok(id) = store.resolve_run(target) {
        return Ok(id);
    }
    // an artifact: by path (its version on disk if recorded, else the newest), or by hash
    let cwd = std::env::current_dir().unwrap_or_default();
    let abs = cwd.join(target);
    let rel = abs
        .strip_prefix(project_root)
        .map(|p| p.to_string_lossy().trim_end_matches('/').to_string())
        .unwrap_or_else(|_| target.trim_end_matches('/').to_string());
    let on_disk = hash::fingerprint(&abs, &HashCache::disabled())
        .ok()
        .map(|f| f.hash().to_string());
    let by_path = store.version_at_path(&rel, on_disk.as_deref())?;
    // a file inside a recorded directory: the directory version holding it (this content if
    // recorded, else the newest)
    let by_path = match by_path {
        Some(av) => Some(av),
        None => in_recorded_dir(store, &rel, on_disk.as_deref())?,
    };
    let av = match by_path {
        Some(av) => av,
        None if target.len() >= 6 && target.chars().all(|c| c.is_ascii_hexdigit()) => {
            let found = store.version_ids_by_hash_prefix(&target.to_ascii_lowercase(), 2)?;
            match found.as_slice() {
                [one] => *one,
                [] => return Err(nothing_matches(target)),
                _ => {
                    return Err(Error::invalid(format!(
                        "hash prefix `{target}` matches several versions"
                    ))
                    .hint("type more characters"));
                }
            }
        }
        None => return Err(nothing_matches(target)),
    };
    producer_run(store, av, None, target)
}

/// The run to replay for artifact version `av`: `prefer` when one of its steps produced it
/// (`PATH@RUN`), else the newest workspace run that really produced it (`target` names it in
/// the error when no step did).
pub fn producer_run(store: &Store, av: i64, prefer: Option<&str>, target: &str) -> Result<String> {
    store.producing_run(av, prefer)?.ok_or_else(|| {
        Error::other(format!("no recorded step produced `{target}`")).hint(
            "it was only ever an input; replay the run that used it instead (see `mlrun runs`)",
        )
    })
}

/// The directory version that holds file `rel` (with content `hash` first, else any).
fn in_recorded_dir(store: &Store, rel: &str, hash: Option<&str>) -> Result<Option<i64>> {
    for dir in store.recorded_parent_dirs(rel)? {
        let inner = &rel[dir.len() + 1..];
        for want in [hash, None] {
            if let Some(v) = store.newest_dir_version_containing(&dir, inner, want)? {
                return Ok(Some(v.av_id));
            }
        }
    }
    Ok(None)
}

fn nothing_matches(target: &str) -> Error {
    Error::other(format!(
        "`{target}` is neither a recorded run nor a recorded artifact"
    ))
    .hint("list runs with `mlrun runs`")
}

pub fn load(store: &Store, run_id: &str) -> Result<Original> {
    let recorded = store.recorded_run(run_id)?;
    let plan = recorded_plan(
        run_id,
        &recorded.spec,
        recorded.pipeline_file,
        &recorded.params_json,
    )?;
    Ok(Original {
        run_id: recorded.run_id,
        short_id: recorded.short_id,
        plan,
        env_markers: env_markers(&recorded.plan_json),
        spec: recorded.spec,
        git: recorded.git,
        execs: recorded.execs,
    })
}

/// The plan of a recorded run, checked again from what was recorded: its pipeline text (secrets
/// masked) at its pipeline file's path, with its params. The plan JSON the run also recorded is
/// not taken for a plan: the store is a file anyone can edit, and only validation makes one.
fn recorded_plan(run_id: &str, spec: &str, file: String, params_json: &str) -> Result<Plan> {
    let cannot = || {
        Error::other(format!(
            "run {run_id} was recorded in a form this mlrun cannot replay"
        ))
    };
    let params: Params = serde_json::from_str(params_json).map_err(|e| cannot().cause(e))?;
    let file = PathBuf::from(file);
    if !file.is_absolute() {
        return Err(cannot().cause(format!(
            "its pipeline file `{}` is not an absolute path",
            file.display()
        )));
    }
    crate::pipeline::plan::revalidate(spec.to_string(), file, &params)
        .map_err(|e| cannot().cause(e))
}

/// The markers a run recorded for its secret `env` values (pipeline-wide: step None), read
/// from its plan JSON as plain data: what a replay gives a step whose secret is not set now,
/// as the run recorded it. Anything unexpected in the JSON is skipped.
fn env_markers(plan_json: &str) -> BTreeMap<(Option<String>, String), String> {
    let mut out = BTreeMap::new();
    let Ok(v) = serde_json::from_str::<serde_json::Value>(plan_json) else {
        return out;
    };
    let mut take = |step: Option<String>, env: Option<&serde_json::Value>| {
        for (k, v) in env.and_then(|e| e.as_object()).into_iter().flatten() {
            if let Some(m) = v.as_str().filter(|m| m.starts_with("<redacted:")) {
                out.insert((step.clone(), k.clone()), m.to_string());
            }
        }
    };
    take(None, v.get("env"));
    for s in v
        .get("steps")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
    {
        let name = s.get("name").and_then(|n| n.as_str()).map(str::to_string);
        if name.is_some() {
            take(name, s.get("env"));
        }
    }
    out
}

/// Build the source tree in `scratch`; returns the project root inside it.
pub fn rebuild_tree(orig: &Original, scratch: &Path) -> Result<PathBuf> {
    let (Some(commit), Some(workdir)) = (&orig.git.commit, &orig.git.workdir) else {
        // no repository (or no commit) when recorded: the store alone has to provide the files
        return Ok(scratch.to_path_buf());
    };
    let repo = Repository::open(workdir)
        .or_else(|_| Repository::discover(orig.plan.root()))
        .map_err(|e| {
            Error::other(format!(
                "the repository of run {} (`{workdir}`) cannot be opened",
                orig.short_id
            ))
            .cause(e.message())
            .hint("replay from a clone of the same repository")
        })?;
    let oid = Oid::from_str(commit)
        .map_err(|e| Error::other("bad recorded commit").cause(e.message()))?;
    let commit_obj = repo.find_commit(oid).map_err(|_| {
        Error::other(format!("commit {} is not in this repository", &commit[..12.min(commit.len())]))
            .hint(format!(
                "a shallow or partial clone? fetch it with `git fetch --unshallow` or `git fetch origin {commit}`"
            ))
    })?;
    // Nothing is written to the repository: the objects the recorded diff creates (the patched
    // files' blobs) go to an in-memory object database layered over the repository's, the diff
    // is applied to the commit's tree in an in-memory index, and that index is checked out into
    // the scratch tree (the repository's work dir is pointed there in memory only) without
    // updating or writing the repository's index. So no `.git/index.lock` is taken, and a git
    // command running meanwhile is not disturbed.
    let odb = repo
        .odb()
        .map_err(|e| Error::other("cannot read the repository's objects").cause(e.message()))?;
    let _in_memory = odb.add_new_mempack_backend(1000).map_err(|e| {
        Error::other("cannot prepare an in-memory object database").cause(e.message())
    })?;
    let tree = commit_obj.tree().map_err(|e| {
        Error::other(format!("cannot read the tree of {commit}")).cause(e.message())
    })?;
    let mut index = if orig.git.diff.is_empty() {
        let mut index = git2::Index::new()
            .map_err(|e| Error::other("cannot prepare the scratch tree").cause(e.message()))?;
        index.read_tree(&tree).map_err(|e| {
            Error::other(format!("cannot read the tree of {commit}")).cause(e.message())
        })?;
        index
    } else {
        let diff = Diff::from_buffer(orig.git.diff.as_bytes()).map_err(|e| {
            Error::other("the recorded uncommitted diff cannot be read").cause(e.message())
        })?;
        repo.apply_to_tree(&tree, &diff, None).map_err(|e| {
            Error::other("the recorded uncommitted diff does not apply to its commit")
                .cause(e.message())
        })?
    };
    repo.set_workdir(scratch, false)
        .map_err(|e| Error::other("cannot prepare the scratch tree").cause(e.message()))?;
    let mut co = CheckoutBuilder::new();
    co.force().update_index(false).recreate_missing(true);
    repo.checkout_index(Some(&mut index), Some(&mut co))
        .map_err(|e| {
            Error::other(format!("cannot check out {commit} into the scratch tree"))
                .cause(e.message())
        })?;
    let rel = orig
        .plan
        .root()
        .strip_prefix(workdir)
        .unwrap_or(Path::new(""));
    // both come from the store: the project must lie inside the scratch tree
    if !rel.as_os_str().is_empty() {
        check_recorded_path(&rel.to_string_lossy(), &orig.short_id)?;
    }
    Ok(scratch.join(rel))
}

/// A recorded input that could not be brought back.
pub struct Missing {
    pub path: String,
    pub hash: String,
}

/// Put every input version the steps read into the scratch tree (unless a replayed step will
/// produce it): kept from the commit when it matches, else restored from the object store.
pub fn restore_inputs(
    store: &Store,
    objects: &Objects,
    orig: &Original,
    plan: &Plan,
    root: &Path,
) -> Result<Vec<Missing>> {
    let mut missing = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for step in plan.steps() {
        let Some(exec) = orig.execs.get(&step.name) else {
            continue;
        };
        for io in store.recorded_io(*exec, "in")? {
            check_recorded_path(&io.path, &orig.short_id)?;
            let produced = plan
                .steps()
                .iter()
                .flat_map(|s| &s.outputs)
                .any(|o| within(&io.path, &o.path) || within(&o.path, &io.path));
            if produced || !seen.insert((io.path.clone(), io.fp.hash().to_string())) {
                continue;
            }
            let dest = root.join(&io.path);
            let here = hash::fingerprint(&dest, &HashCache::disabled()).ok();
            if here.as_ref().map(Fingerprint::hash) == Some(io.fp.hash()) {
                continue;
            }
            if objects.can_restore(&io.fp) {
                objects.restore(&io.fp, root, &io.path).map_err(|e| {
                    Error::other(format!(
                        "cannot restore input `{}` into the scratch tree",
                        io.path
                    ))
                    .cause(e.message)
                    .hints(e.hints)
                })?;
            } else {
                missing.push(Missing {
                    path: io.path.clone(),
                    hash: io.fp.hash().to_string(),
                });
            }
        }
    }
    Ok(missing)
}

/// A path read back from the store must name a place inside the project: the store is a file
/// anyone can edit, and the replay writes the recorded bytes at these paths.
pub fn check_recorded_path(path: &str, run: &str) -> Result<()> {
    crate::beneath::check_relative(Path::new(path)).map_err(|why| {
        Error::other(format!(
            "run {run} records the path `{path}`, which {why}; nothing was replayed"
        ))
        .hint("a replay writes only inside its scratch tree; the store has been edited or damaged (`mlrun fsck` checks it)")
    })
}

/// Every path of a recorded plan (inputs, outputs, metrics files, working directories) must be
/// inside the project (see [`check_recorded_path`]).
pub fn check_plan_paths(plan: &Plan, run: &str) -> Result<()> {
    for s in plan.steps() {
        for d in s.inputs.iter().chain(&s.outputs) {
            check_recorded_path(&d.path, run)?;
        }
        for m in &s.metrics {
            check_recorded_path(m, run)?;
        }
        if !s.cwd.is_empty() {
            check_recorded_path(&s.cwd, run)?;
        }
    }
    Ok(())
}

/// Differences between the recorded environment and this machine, in words.
pub fn environment_differences(store: &Store, orig: &Original, root: &Path) -> Result<Vec<String>> {
    let Some(exec) = orig.execs.values().next() else {
        return Ok(Vec::new());
    };
    let Some(recorded) = store.exec_env(*exec)? else {
        return Ok(Vec::new());
    };
    let now = SystemInfo::read();
    let mut out = Vec::new();
    let mut cmp = |what: &str, a: &str, b: &str| {
        if a != b {
            out.push(format!("{what}: {a} → {b}"));
        }
    };
    cmp(
        "OS",
        &format!("{} {}", recorded.os, recorded.os_version),
        &format!("{} {}", now.os, now.os_version),
    );
    cmp("kernel", &recorded.kernel, &now.kernel);
    cmp("arch", &recorded.arch, &now.arch);
    let programs: Vec<String> = recorded.interpreters.keys().cloned().collect();
    let current = InterpreterCache::default().versions(
        &programs,
        root,
        std::env::var("PATH").ok().as_deref(),
    );
    let strip = |v: &str| v.split(" (").next().unwrap_or(v).to_string();
    for (p, v) in &recorded.interpreters {
        let now_v = current
            .get(p)
            .map(|v| strip(v))
            .unwrap_or_else(|| "not found".into());
        cmp(p, &strip(v), &now_v);
    }
    // lock files where the run looked for them, in the scratch tree (its git root included)
    let here = orig.plan.clone().relocated(root);
    let git_root = orig.git.workdir.as_ref().and_then(|w| {
        let depth = orig.plan.root().strip_prefix(w).ok()?.components().count();
        root.ancestors().nth(depth)
    });
    let locks = LockSearch::of(&here).find(git_root);
    for (f, h) in &recorded.lockfiles {
        match locks.get(f) {
            Some(n) if n == h => {}
            Some(n) => out.push(format!("{f}: {}… → {}…", &h[..8], &n[..8])),
            None => out.push(format!("{f}: missing")),
        }
    }
    out.extend(package_differences(store, orig, root)?);
    Ok(out)
}

/// How many package differences the warnings before a replay list one by one.
const PACKAGE_LINES: usize = 10;

/// The recorded interpreters' environments (over every step of the run) against what the same
/// programs find here now: another executable or prefix, missing, added or other versions.
fn package_differences(store: &Store, orig: &Original, root: &Path) -> Result<Vec<String>> {
    let mut recorded: BTreeMap<String, EnvPackages> = BTreeMap::new();
    for exec in orig.execs.values() {
        for (p, e) in exec_packages(store, *exec)? {
            recorded.entry(p).or_insert(e);
        }
    }
    if recorded.is_empty() {
        return Ok(Vec::new());
    }
    let programs: Vec<String> = recorded.keys().cloned().collect();
    let mut vars: BTreeMap<String, String> = std::env::vars().collect();
    vars.extend(orig.plan.env().clone());
    let now = packages::PackageCache::default().inspect(&programs, root, &vars);
    let mut out = Vec::new();
    for (prog, rec) in &recorded {
        let Some(cur) = now.get(prog) else {
            out.push(format!(
                "{prog}: the interpreter at {} ({} {}) is not found here",
                rec.env.executable, rec.env.kind, rec.env.prefix
            ));
            continue;
        };
        if cur.env.executable != rec.env.executable || cur.env.prefix != rec.env.prefix {
            out.push(format!(
                "{prog}: interpreter {} ({} {}) → {} ({} {})",
                rec.env.executable,
                rec.env.kind,
                rec.env.prefix,
                cur.env.executable,
                cur.env.kind,
                cur.env.prefix
            ));
        }
        if cur.env.hash == rec.env.hash {
            continue;
        }
        let current = cur
            .set
            .as_ref()
            .map(|s| s.packages.clone())
            .unwrap_or_default();
        let lines = packages::describe(&packages::compare(&rec.packages, &current));
        for l in lines.iter().take(PACKAGE_LINES) {
            out.push(format!("{prog} package {l}"));
        }
        if lines.len() > PACKAGE_LINES {
            out.push(format!(
                "{prog}: {} more package differences (after the replay, `mlrun diff` lists them all)",
                lines.len() - PACKAGE_LINES
            ));
        }
    }
    Ok(out)
}

/// The interpreters' environments recorded with one step execution.
fn exec_packages(store: &Store, exec: i64) -> Result<BTreeMap<String, EnvPackages>> {
    Ok(store
        .exec_env(exec)?
        .map(|e| e.packages)
        .unwrap_or_default())
}

/// The package differences between a recorded execution and its replay, in words (the likely
/// cause of a verdict that differs).
fn replayed_package_changes(store: &Store, orig: i64, replay: i64) -> Result<Vec<String>> {
    let (a, b) = (exec_packages(store, orig)?, exec_packages(store, replay)?);
    let flat = |m: &BTreeMap<String, EnvPackages>| -> Vec<packages::Package> {
        let mut seen = std::collections::BTreeSet::new();
        m.values()
            .flat_map(|e| e.packages.iter())
            .filter(|p| seen.insert(packages::normalise(&p.name)))
            .cloned()
            .collect()
    };
    if a.is_empty() || b.is_empty() {
        return Ok(Vec::new());
    }
    Ok(packages::describe(&packages::compare(&flat(&a), &flat(&b))))
}

/// Is this value of the recorded pipeline a masked secret: a marker, or the mask put into the
/// recorded pipeline text?
fn is_masked(v: &str) -> bool {
    v.starts_with("<redacted:") || v.contains(crate::fingerprint::env::MASK)
}

/// The recorded plan with its redacted `env` values replaced by this environment's value of the
/// same variable (else by the marker the run recorded); also returns the names that could not
/// be filled.
pub fn fill_secrets(
    plan: &Plan,
    markers: &BTreeMap<(Option<String>, String), String>,
) -> (Plan, Vec<String>) {
    struct Fill<'m> {
        markers: &'m BTreeMap<(Option<String>, String), String>,
        unfilled: Vec<String>,
    }
    impl crate::pipeline::Rewrite for Fill<'_> {
        fn values(
            &mut self,
            step: Option<&str>,
            _params: &mut Params,
            env: &mut BTreeMap<String, String>,
        ) {
            for (k, v) in env.iter_mut() {
                let marker = self.markers.get(&(step.map(str::to_string), k.clone()));
                if !is_masked(v) && marker.is_none() {
                    continue;
                }
                match std::env::var(k) {
                    Ok(real) => *v = real,
                    Err(_) => {
                        if let Some(m) = marker {
                            *v = m.clone();
                        }
                        self.unfilled.push(k.clone());
                    }
                }
            }
        }
        fn cmd(&mut self, _: &mut crate::pipeline::Cmd) {}
    }
    let mut fill = Fill {
        markers,
        unfilled: Vec::new(),
    };
    let plan = plan.rewritten(&mut fill);
    let mut unfilled = fill.unfilled;
    unfilled.sort();
    unfilled.dedup();
    (plan, unfilled)
}

/// Steps whose recorded command or params hold a secret's marker: the replay cannot give them
/// the real value, so they run with the marker (and will likely differ).
pub fn steps_with_redacted_values(plan: &Plan) -> Vec<String> {
    plan.steps()
        .iter()
        .filter(|s| {
            is_masked(&s.cmd.display())
                || s.params.values().any(|v| v.as_str().is_some_and(is_masked))
        })
        .map(|s| s.name.clone())
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputVerdict {
    pub path: String,
    /// `file` or `dir`
    pub kind: &'static str,
    /// files in it (1 for a file)
    pub nfiles: usize,
    pub identical: bool,
    pub original: Option<String>,
    pub replay: Option<String>,
    /// for directories: files added, removed or changed
    pub files: Vec<String>,
    /// for metrics files: `key old → new`
    pub metrics: Vec<String>,
    /// why it differs (or that it is stable): absent when not explained (`--no-explain`, or
    /// identical without `--explain`)
    pub explanation: Option<explain::Explanation>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepVerdict {
    pub name: String,
    /// `identical`, `differs`, `failed`, or `not_run` (it never started: a step it needs failed)
    pub verdict: String,
    pub outputs: Vec<OutputVerdict>,
    /// when the verdict is not `identical`: the packages of the step's interpreters that differ
    /// from the recorded run's (`numpy 1.26.4 → 2.0.0`, `scipy 1.13.0 missing`, `rich 13.7.1
    /// added`), a likely cause
    pub package_changes: Vec<String>,
}

fn dir_changes(a: &Fingerprint, b: &Fingerprint) -> Vec<String> {
    let (Fingerprint::Dir { entries: ea, .. }, Fingerprint::Dir { entries: eb, .. }) = (a, b)
    else {
        return Vec::new();
    };
    let ma: BTreeMap<&str, &str> = ea
        .iter()
        .map(|e| (e.relpath.as_str(), e.hash.as_str()))
        .collect();
    let mb: BTreeMap<&str, &str> = eb
        .iter()
        .map(|e| (e.relpath.as_str(), e.hash.as_str()))
        .collect();
    let mut out = Vec::new();
    for (p, h) in &ma {
        match mb.get(p) {
            None => out.push(format!("-{p}")),
            Some(h2) if h2 != h => out.push(format!("~{p}")),
            _ => {}
        }
    }
    for p in mb.keys().filter(|p| !ma.contains_key(*p)) {
        out.push(format!("+{p}"));
    }
    out
}

/// Compare each replayed step's outputs with the original's.
pub fn verdicts(
    store: &Store,
    orig: &Original,
    plan: &Plan,
    replay_run: &str,
) -> Result<Vec<StepVerdict>> {
    let replayed = store.step_statuses(replay_run)?;
    let mut out = Vec::new();
    for step in plan.steps() {
        let Some((rid, status)) = replayed.get(&step.name) else {
            continue;
        };
        let package_changes = match orig.execs.get(&step.name) {
            Some(e) => replayed_package_changes(store, *e, *rid)?,
            None => Vec::new(),
        };
        if status != "succeeded" {
            // a step that never started (an earlier one failed) did not fail: it was not run
            let verdict = if status == "not_run" {
                "not_run"
            } else {
                "failed"
            };
            out.push(StepVerdict {
                name: step.name.clone(),
                verdict: verdict.into(),
                outputs: Vec::new(),
                package_changes,
            });
            continue;
        }
        let before: Vec<Io> = match orig.execs.get(&step.name) {
            Some(e) => store.recorded_io(*e, "out")?,
            None => Vec::new(),
        };
        let after = store.recorded_io(*rid, "out")?;
        let (m_before, m_after) = match orig.execs.get(&step.name) {
            Some(e) => (store.exec_metrics(*e)?, store.exec_metrics(*rid)?),
            None => (BTreeMap::new(), BTreeMap::new()),
        };
        let mut outputs = Vec::new();
        for o in &step.outputs {
            let a = before.iter().find(|io| io.path == o.path);
            let b = after.iter().find(|io| io.path == o.path);
            let identical = matches!((a, b), (Some(a), Some(b)) if a.fp.hash() == b.fp.hash());
            let files = match (a, b) {
                (Some(a), Some(b)) if !identical => dir_changes(&a.fp, &b.fp),
                _ => Vec::new(),
            };
            let mut metrics = Vec::new();
            if !identical {
                for (k, (v, src)) in &m_before {
                    let inside = src == &o.path || within(src, &o.path);
                    if !inside {
                        continue;
                    }
                    match m_after.get(k) {
                        Some((v2, _)) if !crate::fingerprint::metrics::same(*v2, *v) => metrics
                            .push(format!(
                                "{k} {} → {}",
                                crate::report::metric(*v),
                                crate::report::metric(*v2)
                            )),
                        None => {
                            metrics.push(format!("{k} {} → missing", crate::report::metric(*v)))
                        }
                        _ => {}
                    }
                }
            }
            let shown = b.or(a);
            outputs.push(OutputVerdict {
                path: o.path.clone(),
                kind: if shown.is_some_and(|io| io.fp.is_dir()) {
                    "dir"
                } else {
                    "file"
                },
                nfiles: shown.map_or(0, |io| io.fp.nfiles()),
                identical,
                original: a.map(|io| io.fp.hash().to_string()),
                replay: b.map(|io| io.fp.hash().to_string()),
                files,
                metrics,
                explanation: None,
            });
        }
        let verdict = if outputs.iter().all(|o| o.identical) {
            "identical"
        } else {
            "differs"
        };
        out.push(StepVerdict {
            name: step.name.clone(),
            verdict: verdict.into(),
            outputs,
            package_changes: if verdict == "identical" {
                Vec::new()
            } else {
                package_changes
            },
        });
    }
    Ok(out)
}

/// Copy the reproduced outputs out of the scratch tree.
pub fn materialise(plan: &Plan, root: &Path, into: &Path) -> Result<usize> {
    let mut n = 0;
    for o in plan.steps().iter().flat_map(|s| &s.outputs) {
        let src = root.join(&o.path);
        if !src.exists() {
            continue;
        }
        copy_tree(&src, &into.join(&o.path)).map_err(|e| {
            Error::other(format!("cannot copy `{}` to `{}`", o.path, into.display())).cause(e)
        })?;
        n += 1;
    }
    Ok(n)
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    if src.is_dir() {
        std::fs::create_dir_all(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        Ok(())
    } else {
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::copy(src, dst).map(|_| ())
    }
}

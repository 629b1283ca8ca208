//! `mlrun replay`: reproduce a recorded run in a scratch tree and say, per step and per output,
//! whether it came out bit for bit the same.
//!
//! The scratch tree is the recorded commit checked out into a temporary directory (with the
//! repository's work dir pointed there in memory only, and the index never written), plus the
//! recorded uncommitted diff, plus every input version that neither a step nor the commit gives
//! back, restored from the object store. The recorded plan (not today's pipeline.toml), params and
//! `env` are used. The user's working tree, index and refs are never touched; the store gains the
//! replay run and nothing else (no stored objects, no stat-cache rows for the scratch tree).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{Diff, Oid, Repository, build::CheckoutBuilder};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::exec::incremental::recorded_io;
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::git::GitState;
use crate::fingerprint::hash::{self, Fingerprint};
use crate::fingerprint::packages;
use crate::fingerprint::system::{InterpreterCache, LockSearch, SystemInfo};
use crate::pipeline::Plan;
use crate::pipeline::plan::within;
use crate::store::objects::Objects;
use crate::store::packages::EnvPackages;
use crate::store::query;
use crate::store::record::Io;

/// What was recorded about the run being replayed.
pub struct Original {
    pub run_id: String,
    pub short_id: String,
    pub plan: Plan,
    pub spec: String,
    pub git: GitState,
    /// step name → its execution id in the original run (the last attempt)
    pub execs: BTreeMap<String, i64>,
}

/// Find the run to replay: a run id prefix or `latest`, else an artifact path or content hash
/// (the run whose step produced that version).
pub fn resolve(conn: &Connection, target: &str, project_root: &Path) -> Result<String> {
    if let Ok(id) = query::resolve_run(conn, target) {
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
    let by_path: Option<i64> = conn
        .query_row(
            "SELECT v.id FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id
             WHERE a.path = ?1 ORDER BY (v.blob_hash = ?2) DESC, v.first_seen DESC LIMIT 1",
            rusqlite::params![rel, on_disk],
            |r| r.get(0),
        )
        .optional()?;
    // a file inside a recorded directory: the directory version holding it (this content if
    // recorded, else the newest)
    let by_path = match by_path {
        Some(av) => Some(av),
        None => in_recorded_dir(conn, &rel, on_disk.as_deref())?,
    };
    let av = match by_path {
        Some(av) => av,
        None if target.len() >= 6 && target.chars().all(|c| c.is_ascii_hexdigit()) => {
            let found: Vec<i64> = conn
                .prepare("SELECT id FROM artifact_versions WHERE blob_hash >= ?1 AND blob_hash < ?1 || 'g' LIMIT 2")?
                .query_map([target.to_ascii_lowercase()], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
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
    producer_run(conn, av, None, target)
}

/// The run to replay for artifact version `av`: `prefer` when one of its steps produced it
/// (`PATH@RUN`), else the newest workspace run that really produced it (`target` names it in
/// the error when no step did).
pub fn producer_run(
    conn: &Connection,
    av: i64,
    prefer: Option<&str>,
    target: &str,
) -> Result<String> {
    conn.query_row(
        "SELECT s.run_id FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
         JOIN runs r ON r.id = s.run_id
         WHERE e.av_id = ?1 AND e.direction = 'out'
         ORDER BY s.run_id IS ?2 DESC, r.replay_of IS NOT NULL, (s.reused_exec IS NOT NULL), s.id DESC LIMIT 1",
        rusqlite::params![av, prefer],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| {
        Error::other(format!("no recorded step produced `{target}`")).hint(
            "it was only ever an input; replay the run that used it instead (see `mlrun runs`)",
        )
    })
}

/// The directory version that holds file `rel` (with content `hash` first, else any).
fn in_recorded_dir(conn: &Connection, rel: &str, hash: Option<&str>) -> Result<Option<i64>> {
    use crate::store::lineage;
    for dir in lineage::recorded_parent_dirs(conn, rel)? {
        let inner = &rel[dir.len() + 1..];
        for want in [hash, None] {
            if let Some(v) = lineage::newest_dir_version_containing(conn, &dir, inner, want)? {
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

pub fn load(conn: &Connection, run_id: &str) -> Result<Original> {
    let (plan_json, spec, git_id): (String, Vec<u8>, Option<String>) = conn.query_row(
        "SELECT r.plan, c.data, r.git_start FROM runs r JOIN contents c ON c.hash = r.spec_hash WHERE r.id = ?1",
        [run_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let plan: Plan = serde_json::from_str(&plan_json).map_err(|e| {
        Error::other(format!(
            "run {run_id} was recorded in a form this mlrun cannot replay"
        ))
        .cause(e)
    })?;
    let git = match git_id {
        Some(id) => conn.query_row(
            "SELECT g.is_repo, g.commit_sha, g.branch, g.dirty, CAST(c.data AS TEXT), g.changed, g.untracked, g.remote_url, g.workdir
             FROM git_snapshots g LEFT JOIN contents c ON c.hash = g.diff_hash WHERE g.id = ?1",
            [id],
            |r| {
                Ok(GitState {
                    is_repo: r.get(0)?,
                    commit: r.get(1)?,
                    branch: r.get(2)?,
                    dirty: r.get(3)?,
                    diff: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    changed: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                    untracked: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                    remote_url: r.get(7)?,
                    workdir: r.get(8)?,
                    error: None,
                })
            },
        )?,
        None => GitState::none(),
    };
    let mut stmt = conn.prepare(
        "SELECT step, id FROM step_execs WHERE run_id = ?1 AND status IN ('succeeded', 'cached', 'restored') ORDER BY id",
    )?;
    let execs = stmt
        .query_map([run_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Original {
        run_id: run_id.to_string(),
        short_id: query::short_id(conn, run_id)?,
        plan,
        spec: String::from_utf8_lossy(&spec).into_owned(),
        git,
        execs,
    })
}

/// Build the source tree in `scratch`; returns the project root inside it.
pub fn rebuild_tree(orig: &Original, scratch: &Path) -> Result<PathBuf> {
    let (Some(commit), Some(workdir)) = (&orig.git.commit, &orig.git.workdir) else {
        // no repository (or no commit) when recorded: the store alone has to provide the files
        return Ok(scratch.to_path_buf());
    };
    let repo = Repository::open(workdir)
        .or_else(|_| Repository::discover(&orig.plan.root))
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
        .root
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
    conn: &Connection,
    objects: &Objects,
    orig: &Original,
    plan: &Plan,
    root: &Path,
) -> Result<Vec<Missing>> {
    let mut missing = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for step in &plan.steps {
        let Some(exec) = orig.execs.get(&step.name) else {
            continue;
        };
        for io in recorded_io(conn, *exec, "in")? {
            check_recorded_path(&io.path, &orig.short_id)?;
            let produced = plan
                .steps
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
                    let mut err = Error::other(format!(
                        "cannot restore input `{}` into the scratch tree",
                        io.path
                    ))
                    .cause(e.message);
                    err.hints = e.hints;
                    err
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
    for s in &plan.steps {
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
pub fn environment_differences(
    conn: &Connection,
    orig: &Original,
    root: &Path,
) -> Result<Vec<String>> {
    let Some(exec) = orig.execs.values().next() else {
        return Ok(Vec::new());
    };
    let env_id: Option<String> =
        conn.query_row("SELECT env_id FROM step_execs WHERE id = ?1", [exec], |r| {
            r.get(0)
        })?;
    let Some(recorded) = env_id
        .map(|id| query::env_info(conn, &id))
        .transpose()?
        .flatten()
    else {
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
    let mut here = orig.plan.clone();
    here.root = root.to_path_buf();
    let git_root = orig.git.workdir.as_ref().and_then(|w| {
        let depth = orig.plan.root.strip_prefix(w).ok()?.components().count();
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
    out.extend(package_differences(conn, orig, root)?);
    Ok(out)
}

/// How many package differences the warnings before a replay list one by one.
const PACKAGE_LINES: usize = 10;

/// The recorded interpreters' environments (over every step of the run) against what the same
/// programs find here now: another executable or prefix, missing, added or other versions.
fn package_differences(conn: &Connection, orig: &Original, root: &Path) -> Result<Vec<String>> {
    let mut recorded: BTreeMap<String, EnvPackages> = BTreeMap::new();
    for exec in orig.execs.values() {
        for (p, e) in exec_packages(conn, *exec)? {
            recorded.entry(p).or_insert(e);
        }
    }
    if recorded.is_empty() {
        return Ok(Vec::new());
    }
    let programs: Vec<String> = recorded.keys().cloned().collect();
    let mut vars: BTreeMap<String, String> = std::env::vars().collect();
    vars.extend(orig.plan.env.clone());
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
fn exec_packages(conn: &Connection, exec: i64) -> Result<BTreeMap<String, EnvPackages>> {
    let env_id: Option<String> = conn
        .query_row("SELECT env_id FROM step_execs WHERE id = ?1", [exec], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    Ok(env_id
        .map(|id| query::env_info(conn, &id))
        .transpose()?
        .flatten()
        .map(|e| e.packages)
        .unwrap_or_default())
}

/// The package differences between a recorded execution and its replay, in words (the likely
/// cause of a verdict that differs).
fn replayed_package_changes(conn: &Connection, orig: i64, replay: i64) -> Result<Vec<String>> {
    let (a, b) = (exec_packages(conn, orig)?, exec_packages(conn, replay)?);
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

/// Replace redacted `env` values of the recorded plan with this environment's value of the same
/// variable; returns the names that could not be filled.
pub fn fill_secrets(plan: &mut Plan) -> Vec<String> {
    let mut unfilled = Vec::new();
    let mut fill = |env: &mut BTreeMap<String, String>| {
        for (k, v) in env.iter_mut() {
            if v.starts_with("<redacted:") {
                match std::env::var(k) {
                    Ok(real) => *v = real,
                    Err(_) => unfilled.push(k.clone()),
                }
            }
        }
    };
    fill(&mut plan.env);
    for s in &mut plan.steps {
        fill(&mut s.env);
    }
    unfilled.sort();
    unfilled.dedup();
    unfilled
}

/// Steps whose recorded command or params hold a secret's marker: the replay cannot give them
/// the real value, so they run with the marker (and will likely differ).
pub fn steps_with_redacted_values(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter(|s| {
            s.cmd.display().contains("<redacted:")
                || s.params
                    .values()
                    .any(|v| v.as_str().is_some_and(|v| v.starts_with("<redacted:")))
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

fn metrics_of(conn: &Connection, exec: i64) -> Result<BTreeMap<String, (f64, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT key, value, source, exact FROM metrics WHERE step_exec = ?1")?;
    let rows = stmt
        .query_map([exec], |r| {
            let v = crate::fingerprint::metrics::from_columns(
                r.get(1)?,
                r.get::<_, Option<String>>(3)?.as_deref(),
            );
            Ok((r.get::<_, String>(0)?, (v, r.get::<_, String>(2)?)))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
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
    conn: &Connection,
    orig: &Original,
    plan: &Plan,
    replay_run: &str,
) -> Result<Vec<StepVerdict>> {
    let mut stmt =
        conn.prepare("SELECT step, id, status FROM step_execs WHERE run_id = ?1 ORDER BY id")?;
    let replayed: BTreeMap<String, (i64, String)> = stmt
        .query_map([replay_run], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get::<_, i64>(1)?, r.get::<_, String>(2)?),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for step in &plan.steps {
        let Some((rid, status)) = replayed.get(&step.name) else {
            continue;
        };
        let package_changes = match orig.execs.get(&step.name) {
            Some(e) => replayed_package_changes(conn, *e, *rid)?,
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
            Some(e) => recorded_io(conn, *e, "out")?,
            None => Vec::new(),
        };
        let after = recorded_io(conn, *rid, "out")?;
        let (m_before, m_after) = match orig.execs.get(&step.name) {
            Some(e) => (metrics_of(conn, *e)?, metrics_of(conn, *rid)?),
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
    for o in plan.steps.iter().flat_map(|s| &s.outputs) {
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

//! What a TARGET on the command line names: an artifact version, a step execution or a run.
//!
//! The rules, in order (README "Naming things"):
//! 0. `NAME@VERSION` / `NAME@ALIAS` where NAME is a registered model with that version or alias
//!    (`models:/NAME@REF` is always a model): that model version's artifact version.
//! 1. `PATH@RUN`: the version of PATH that RUN produced (else read).
//! 2. an existing path: its current content, looked up by hash. A file inside a recorded
//!    directory names that file (`Target::File`), in the directory version that holds it.
//! 3. `RUN:STEP`: that step's execution in RUN.
//! 4. anything containing `/` or `.`, or a recorded path: the path's latest recorded version.
//! 5. `latest` (the newest run that is not a replay), `latest-replay`, `RUN~N` (see
//!    `query::resolve_run`).
//! 6. hex digits: a run id prefix or a content-hash prefix; matching both is an error that lists
//!    the candidates of each.
//!
//! Hashing the current content of a path reads the file system, which is why this lives in `cmd`
//! and not in `store`.

use std::path::Path;

use crate::beneath::lexical as normalise;
use crate::error::{Error, Result};
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::hash;
use crate::report::{short_hash, time};
use crate::store::lineage::{Member, Version};
use crate::store::{Store, models, query};

pub(crate) const TARGET_HELP: &str = "\
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

pub(crate) const RUN_HELP: &str = "\
RUN is a run id prefix (as shown, e.g. 019a3c5e7f127abc), `latest` (the newest run that is
not a replay) or `latest-replay` (the newest replay); `RUN~N` is the Nth run before RUN:
`latest~1` is the run before the latest.";

#[derive(Debug, Clone)]
pub enum Target {
    /// an artifact version, and a note when it is not exactly what was asked for
    Version(Version, Option<String>),
    /// a file inside a recorded directory version (the version), with a note as above
    File(Version, Member, Option<String>),
    Exec {
        run_id: String,
        step: String,
        exec_id: i64,
    },
    Run(String),
}

/// The store path (relative to the project root, `/`-separated, no trailing `/`) that `arg`
/// names, given the current directory and the project roots recorded in the store.
fn store_path(store: &Store, arg: &str) -> Result<String> {
    let trimmed = arg.trim_end_matches('/');
    let trimmed = if trimmed.is_empty() { arg } else { trimmed };
    let cwd = std::env::current_dir()
        .map_err(|e| Error::other("cannot read the current directory").cause(e))?;
    let abs = normalise(&cwd.join(trimmed));
    let mut roots = store.project_roots()?;
    if let Some(parent) = store.dir.parent() {
        let parent = if parent.as_os_str().is_empty() {
            cwd.clone()
        } else {
            normalise(&cwd.join(parent))
        };
        roots.push(parent.to_string_lossy().into_owned());
    }
    for root in roots {
        if let Ok(rel) = abs.strip_prefix(&root) {
            let s = rel.to_string_lossy().replace('\\', "/");
            if !s.is_empty() {
                return Ok(s);
            }
        }
    }
    Ok(trimmed.trim_start_matches("./").to_string())
}

fn describe(store: &Store, v: &Version) -> Result<String> {
    let run = store
        .preferred_producer(v.av_id)?
        .and_then(|e| store.execs(&[e]).ok()?.remove(&e));
    Ok(match run {
        Some(e) => format!(
            "{} made by `{}` in run {} ({})",
            short_hash(&v.hash),
            e.step,
            store.short_id(&e.run_id)?,
            e.started_at.map_or_else(|| "-".into(), time::local)
        ),
        None => format!(
            "{} first seen {}",
            short_hash(&v.hash),
            time::local(v.first_seen)
        ),
    })
}

fn never_recorded(arg: &str) -> Error {
    Error::other(format!("`{arg}` was never recorded by mlrun")).hint(
        "`mlrun runs` lists the recorded runs and `mlrun show RUN` what each one read and wrote",
    )
}

/// A path that exists on disk: its current content.
fn current(store: &Store, arg: &str, on_disk: &Path) -> Result<Target> {
    let path = store_path(store, arg)?;
    // the run's stat cache spares re-reading big unchanged files (read only: never flushed here)
    let abs = std::fs::canonicalize(on_disk).unwrap_or_else(|_| on_disk.to_path_buf());
    let cache = abs
        .parent()
        .and_then(|dir| store.load_stat_cache(dir).ok())
        .unwrap_or_else(HashCache::disabled);
    let fp = hash::fingerprint(on_disk, &cache)?;
    if let Some(v) = store.version_by_content(&path, fp.hash())? {
        return Ok(Target::Version(v, None));
    }
    // a file inside a recorded directory: that file, in the directory version that holds
    // exactly this content
    for dir in store.recorded_parent_dirs(&path)? {
        let rel = &path[dir.len() + 1..];
        if let Some(v) = store.newest_dir_version_containing(&dir, rel, Some(fp.hash()))?
            && let Some(m) = store.member(&v, rel)?
        {
            return Ok(Target::File(v, m, None));
        }
    }
    if let Some(v) = store.latest_version(&path)? {
        let note = format!(
            "the current content of `{path}` ({}) was never recorded by mlrun; showing its latest recorded version, {}",
            short_hash(fp.hash()),
            describe(store, &v)?
        );
        return Ok(Target::Version(v, Some(note)));
    }
    Err(never_recorded(arg))
}

/// A path that is not on disk: its latest recorded version.
fn recorded(store: &Store, arg: &str) -> Result<Option<Target>> {
    let path = store_path(store, arg)?;
    if let Some(v) = store.latest_version(&path)? {
        let note = format!(
            "`{path}` is not on disk; showing its latest recorded version, {}",
            describe(store, &v)?
        );
        return Ok(Some(Target::Version(v, Some(note))));
    }
    for dir in store.recorded_parent_dirs(&path)? {
        let rel = &path[dir.len() + 1..];
        if let Some(v) = store.newest_dir_version_containing(&dir, rel, None)?
            && let Some(m) = store.member(&v, rel)?
        {
            let note = format!(
                "`{path}` is not on disk; showing its latest recorded version, in {} of `{dir}/`",
                short_hash(&v.hash)
            );
            return Ok(Some(Target::File(v, m, Some(note))));
        }
    }
    Ok(None)
}

fn at_run(store: &Store, path_arg: &str, run_arg: &str) -> Result<Target> {
    let run = store.resolve_run(run_arg)?;
    let path = store_path(store, path_arg)?;
    if let Some(v) = store.version_in_run(&path, &run)? {
        return Ok(Target::Version(v, None));
    }
    for dir in store.recorded_parent_dirs(&path)? {
        if let Some(v) = store.version_in_run(&dir, &run)? {
            let rel = &path[dir.len() + 1..];
            let Some(m) = store.member(&v, rel)? else {
                continue;
            };
            return Ok(Target::File(v, m, None));
        }
    }
    let short = store.short_id(&run)?;
    let paths = store.run_paths(&run)?;
    let mut e = Error::other(format!("run {short} did not read or write `{path}`"));
    if !paths.is_empty() {
        e = e.hint(format!(
            "run {short} recorded: {}",
            paths
                .iter()
                .take(12)
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Err(e)
}

fn exec(store: &Store, run_arg: &str, step: &str) -> Result<Target> {
    let run = store.resolve_run(run_arg)?;
    match store.exec_of(&run, step)? {
        Some(exec_id) => Ok(Target::Exec {
            run_id: run,
            step: step.to_string(),
            exec_id,
        }),
        None => {
            let steps = store.steps_of(&run)?;
            let short = store.short_id(&run)?;
            let mut e = Error::other(format!("run {short} has no step `{step}`"));
            if let Some(best) = steps
                .iter()
                .max_by(|a, b| {
                    strsim::jaro_winkler(a, step).total_cmp(&strsim::jaro_winkler(b, step))
                })
                .filter(|b| strsim::jaro_winkler(b, step) > 0.8)
            {
                e = e.hint(format!("did you mean `{run_arg}:{best}`?"));
            }
            Err(e.hint(format!("its steps: {}", steps.join(", "))))
        }
    }
}

/// The model version `arg` names, if it names one (rule 0 of the module docs): `NAME@REF` where
/// NAME is a registered model and REF one of its versions or aliases (and no path is named
/// `NAME@REF` on disk), or `models:/NAME@REF`
/// (then NAME must be a model and REF one of its versions or aliases). A registered NAME with an
/// unknown REF falls through to `PATH@RUN` when PATH is on disk or recorded, else is an error
/// that lists the model's versions and aliases.
pub fn model_version(store: &Store, arg: &str) -> Result<Option<models::ModelVersion>> {
    let (forced, rest) = match arg.strip_prefix("models:/") {
        Some(r) => (true, r),
        None => (false, arg),
    };
    // a file or directory literally named `NAME@REF` is that path (as for `PATH@RUN`)
    if !forced && Path::new(arg).exists() {
        return Ok(None);
    }
    let Some((name, reference)) = rest.split_once('@') else {
        if forced {
            return Err(Error::invalid(format!("`{arg}` names no version"))
                .hint("write models:/NAME@VERSION or models:/NAME@ALIAS, e.g. models:/churn@v2"));
        }
        return Ok(None);
    };
    if forced {
        crate::pipeline::model_name::check_name(name)?;
    }
    if store.model_id(name)?.is_none() {
        if forced {
            return Err(store.no_such_model(name)?);
        }
        return Ok(None);
    }
    if let Some(v) = store.model_by_ref(name, reference)? {
        return Ok(Some(v));
    }
    if !forced
        && (Path::new(name).exists() || store.artifact_id(&store_path(store, name)?)?.is_some())
    {
        return Ok(None);
    }
    Err(store.no_such_model_ref(name, reference)?)
}

/// The run that made the model version `arg` names (`replay` and `export` take a run), if it
/// names one; a version no recorded run made is an error.
pub fn model_run(store: &Store, arg: &str) -> Result<Option<String>> {
    let Some(mv) = model_version(store, arg)? else {
        return Ok(None);
    };
    match mv.run_id {
        Some(run) => Ok(Some(run)),
        None => Err(Error::other(format!(
            "{}@{} (`{}`) was made by no recorded run",
            mv.name, mv.version, mv.path
        ))
        .hint("it was registered from a version mlrun only saw as an input")),
    }
}

/// Resolve a TARGET (see the module docs).
pub fn resolve(store: &Store, arg: &str) -> Result<Target> {
    if arg.is_empty() {
        return Err(Error::invalid("an empty target names nothing")
            .hint("name a path, PATH@RUN, a run id, RUN:STEP or a content hash"));
    }
    if let Some(mv) = model_version(store, arg)? {
        let v = store
            .version(mv.av_id)?
            .ok_or_else(|| Error::store(format!("the version {} names is missing", mv.name)))?;
        return Ok(Target::Version(v, None));
    }
    if let Some((p, r)) = arg.rsplit_once('@')
        && !p.is_empty()
        && !r.is_empty()
        && !Path::new(arg).exists()
    {
        return at_run(store, p, r);
    }
    let on_disk = Path::new(arg);
    if on_disk.exists() {
        return current(store, arg, on_disk);
    }
    if let Some((r, step)) = arg.split_once(':')
        && !step.is_empty()
        && (query::is_run_name(r) || query::is_hex_id(r))
    {
        return exec(store, r, step);
    }
    if arg.contains('/') || arg.contains('.') {
        return recorded(store, arg)?.ok_or_else(|| never_recorded(arg));
    }
    if store.artifact_id(&store_path(store, arg)?)?.is_some()
        && let Some(t) = recorded(store, arg)?
    {
        return Ok(t);
    }
    if query::is_run_name(arg) {
        return Ok(Target::Run(store.resolve_run(arg)?));
    }
    if query::is_hex_id(arg) {
        let prefix = query::hex_prefix(arg);
        let runs = store.run_candidates(&prefix)?;
        let versions = if arg.contains('-') {
            Vec::new()
        } else {
            store.versions_by_hash_prefix(&prefix)?
        };
        return match (runs.is_empty(), versions.is_empty()) {
            (false, true) => Ok(Target::Run(store.resolve_run(arg)?)),
            (true, false) => match store.resolve_hash(&prefix)? {
                Some(v) => Ok(Target::Version(v, None)),
                None => Err(never_recorded(arg)),
            },
            (false, false) => {
                let mut e = Error::other(format!(
                    "`{arg}` is ambiguous: it starts both a run id and a content hash"
                ));
                for (id, pipeline, started) in runs.iter().take(5) {
                    e = e.cause(format!("run {id}  {pipeline}  {}", time::local(*started)));
                }
                for v in versions.iter().take(5) {
                    e = e.cause(format!("version {}  {}", v.hash, v.path));
                }
                Err(e.hint("type more characters, or write PATH@RUN for an artifact"))
            }
            (true, true) => Err(store
                .removed_run(&prefix)
                .map(Error::from)
                .unwrap_or_else(|| {
                    Error::other(format!(
                        "no run, content hash or recorded path matches `{arg}`"
                    ))
                    .hint("list runs with `mlrun runs`; a path must exist or have been recorded")
                })),
        };
    }
    Err(Error::other(format!(
        "no run, content hash or recorded path matches `{arg}`"
    ))
    .hint("list runs with `mlrun runs`; a path must exist or have been recorded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hex_prefix_of_both_a_run_and_a_hash_is_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(".mlrun")).unwrap();
        store.execute_batch_for_test(
                "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');
                 INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid)
                   VALUES ('abc00000000000000000000000000001', 'p', 'p.toml', '/nowhere', 's', '{}', '{}', 'succeeded', 1, 'h', 'u', '0', '[]', 1);
                 INSERT INTO blobs (hash, kind, size, nfiles, stored) VALUES ('abcd', 'file', 1, 1, 0), ('ffee', 'file', 1, 1, 0);
                 INSERT INTO artifacts (id, path) VALUES (1, 'x.csv');
                 INSERT INTO artifact_versions (id, artifact_id, blob_hash, first_seen) VALUES (1, 1, 'abcd', 0), (2, 1, 'ffee', 0);",
            );
        let e = resolve(&store, "abc").unwrap_err();
        assert!(
            e.message.contains("both a run id and a content hash"),
            "{e}"
        );
        assert!(
            e.causes
                .iter()
                .any(|c| c.to_string().starts_with("run abc0")),
            "{e}"
        );
        assert!(
            e.causes
                .iter()
                .any(|c| c.to_string().starts_with("version abcd  x.csv")),
            "{e}"
        );
        assert!(matches!(resolve(&store, "abc0").unwrap(), Target::Run(_)));
        assert!(matches!(
            resolve(&store, "abcd").unwrap(),
            Target::Version(..)
        ));
        assert!(matches!(
            resolve(&store, "ffe").unwrap(),
            Target::Version(..)
        ));
        let e = resolve(&store, "123").unwrap_err();
        assert!(
            e.message.contains("no run, content hash or recorded path"),
            "{e}"
        );
    }

    #[test]
    fn normalise_is_lexical() {
        assert_eq!(
            normalise(Path::new("/a/b/../c/./d")),
            std::path::PathBuf::from("/a/c/d")
        );
    }
}

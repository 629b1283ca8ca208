//! `mlrun checkout TARGET`: put recorded versions back into the working tree from the object
//! store, verified by hash. A path gets its latest recorded version (or the one `PATH@RUN`,
//! a hash or a model version names); a run (or `RUN:STEP`) gets every output it left and the
//! external inputs it read. Content in the working tree that the store does not hold (an
//! uncommitted change that would be lost) is never overwritten without `--force`, and nothing
//! is written when anything would be.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use crate::cmd::target::{self, Target};
use crate::error::{Error, Result};
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::hash::{self, Fingerprint};
use crate::report::Role;
use crate::report::{self, ColorChoice, Style, short_hash};
use crate::store::checkout::Item;
use crate::store::objects::Objects;
use crate::store::{self, Store};

#[derive(Debug, Args)]
#[command(after_help = "\
TARGET is one of:
  PATH            the path's latest recorded version (a file inside a recorded directory too)
  PATH@RUN        the version of PATH that RUN made (else read), e.g. model/@latest~1
  HASH            a content-hash prefix (`mlrun show HASH` says what it is)
  NAME@vN         a registered model version, or NAME@ALIAS
  RUN             every output the run left and the external inputs it read (untracked,
                  ignored or modified files; files tracked in git come from `git checkout`)
  RUN:STEP        the outputs of one step execution and the external inputs it read

Examples:
  mlrun checkout model/@latest~1   the model the run before the latest made
  mlrun checkout 01a2165e          the outputs and external inputs of that run
  mlrun checkout data/raw.csv      a deleted input back, as last recorded
  mlrun checkout churn@production  the model version an alias points at

Content in the working tree that the store does not hold (changed since mlrun recorded it) is
not overwritten unless --force: nothing is written then. Exit 1 when a path could not be put
back (its copy was freed by `mlrun gc`, or never kept: --no-store, store = false).")]
pub struct CheckoutArgs {
    /// What to put back: PATH, PATH@RUN, a content hash, NAME@vN, RUN or RUN:STEP
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Overwrite content the store does not hold (changes made since mlrun recorded the path)
    #[arg(long)]
    pub force: bool,

    /// Say what would be put back, without writing anything
    #[arg(long)]
    pub dry_run: bool,

    /// Print a JSON summary instead of text
    #[arg(long)]
    pub json: bool,
}

/// One path in the summary (`--json`: `paths[]`).
#[derive(Debug, Serialize)]
pub struct PathReport {
    pub path: String,
    /// `file` or `dir`
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub hash: String,
    /// `output` or `input`
    pub role: &'static str,
    pub step: Option<String>,
    /// `restored`, `unchanged` (already there), `unavailable` (no copy in the store), and under
    /// `--dry-run` `would_restore`
    pub action: &'static str,
    /// what was there was content the store does not hold, overwritten under `--force`
    pub overwrote: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    /// the run checked out (a RUN or RUN:STEP target), else null
    pub run: Option<String>,
    pub root: String,
    pub dry_run: bool,
    pub restored: usize,
    pub unchanged: usize,
    pub unavailable: usize,
    pub paths: Vec<PathReport>,
}

enum Plan {
    Unchanged,
    Restore {
        overwrite: bool,
    },
    Unavailable(String),
    /// content the store does not hold: why, in words
    Blocked(String),
}

pub fn checkout(args: CheckoutArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    // a run only on the team remote is pulled, and the objects it needs fetched
    let dir = match crate::remote::bring_here(store_dir, &args.target)? {
        Some(dir) => dir,
        None => store::find_dir(store_dir)?,
    };
    let store = Store::open_read(&dir)?;
    let objects = Objects::new(&dir);
    // from deciding what is there until it is written, gc must not delete it
    let _hold = store::lock::ObjectsHold::take(&dir, || {
        eprintln!("waiting for `mlrun gc` to finish with the object store…")
    })?;

    let (items, run) = what(&store, &args.target)?;
    let root = project_root(&store, &dir, store_dir.is_some(), run.as_deref(), &items)?;
    if items.is_empty() {
        return Err(Error::other(format!(
            "`{}` left nothing to check out: it wrote no output and read no external input",
            args.target
        ))
        .hint("files tracked in git come back with `git checkout`"));
    }
    let cache = store
        .load_stat_cache(&root)
        .unwrap_or_else(|_| HashCache::disabled());
    let plans = plan_all(&store, &objects, &cache, &root, &items, args.force)?;
    refuse_blocked(&args.target, &items, &plans)?;
    let (paths, failure) = apply(&objects, &root, &items, plans, args.dry_run);
    let count = |a: &str| paths.iter().filter(|p| p.action == a).count();
    let report = Report {
        target: args.target.clone(),
        run: match &run {
            Some(r) => Some(store.short_id(r)?),
            None => None,
        },
        root: root.to_string_lossy().into_owned(),
        dry_run: args.dry_run,
        restored: count("restored") + count("would_restore"),
        unchanged: count("unchanged"),
        unavailable: count("unavailable"),
        paths,
    };
    if args.json {
        report::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ));
    } else {
        report::emit(&render(&report, &Style::stdout(color)));
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(if report.unavailable > 0 { 1 } else { 0 })
}

/// What to do with each item: its path checked (a damaged store must not write outside the
/// project), then compared with what is on disk.
fn plan_all(
    store: &Store,
    objects: &Objects,
    cache: &HashCache,
    root: &Path,
    items: &[Item],
    force: bool,
) -> Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for item in items {
        crate::beneath::check_relative(Path::new(&item.path)).map_err(|why| {
            Error::other(format!(
                "the store records the path `{}`, which {why}; nothing was checked out",
                item.path
            ))
            .hint("the store has been edited or damaged; `mlrun fsck` checks it")
        })?;
        plans.push(plan_one(store, objects, cache, root, item, force));
    }

    Ok(plans)
}

/// Content the store does not hold would be overwritten: refuse before writing anything.
fn refuse_blocked(target: &str, items: &[Item], plans: &[Plan]) -> Result<()> {
    let blocked: Vec<String> = items
        .iter()
        .zip(plans)
        .filter_map(|(i, p)| match p {
            Plan::Blocked(why) => Some(format!("`{}`: {why}", shown(i))),
            _ => None,
        })
        .collect();
    if !blocked.is_empty() {
        let n = blocked.len();
        let mut e = Error::other(format!(
            "checking out `{}` would overwrite {} the store does not hold; nothing was written",
            target,
            if n == 1 {
                "a change".to_string()
            } else {
                format!("{n} changes")
            }
        ));
        for b in blocked {
            e = e.cause(b);
        }
        return Err(e.hint(
            "copy or commit what you want to keep, or pass --force to overwrite it (`mlrun status` says what changed)",
        ));
    }

    Ok(())
}

/// Restore what is to be restored (nothing with --dry-run; nothing more after a failure): a
/// report per path, and the first failure.
fn apply(
    objects: &Objects,
    root: &Path,
    items: &[Item],
    plans: Vec<Plan>,
    dry_run: bool,
) -> (Vec<PathReport>, Option<Error>) {
    let mut paths = Vec::new();
    let mut failure: Option<Error> = None;
    for (item, plan) in items.iter().zip(plans) {
        let (action, overwrote, reason) = match plan {
            Plan::Unchanged => ("unchanged", false, None),
            Plan::Unavailable(why) => ("unavailable", false, Some(why)),
            Plan::Blocked(_) => unreachable!("refused above"),
            Plan::Restore { overwrite } if dry_run => ("would_restore", overwrite, None),
            Plan::Restore { overwrite } => {
                if failure.is_some() {
                    continue;
                }
                match restore(objects, root, item) {
                    Ok(()) => ("restored", overwrite, None),
                    Err(e) => {
                        failure = Some(e);
                        continue;
                    }
                }
            }
        };
        paths.push(PathReport {
            path: item.path.clone(),
            kind: if item.fp.is_dir() { "dir" } else { "file" },
            hash: item.fp.hash().to_string(),
            role: item.role,
            step: item.step.clone(),
            action,
            overwrote,
            reason,
        });
    }
    (paths, failure)
}

/// The recorded versions TARGET names, and the run when it names a run or a step execution.
fn what(store: &Store, arg: &str) -> Result<(Vec<Item>, Option<String>)> {
    let t = target::resolve(store, arg)?;
    Ok(match t {
        Target::Run(run) => (store.checkout_run_items(&run, None)?, Some(run)),
        Target::Exec {
            run_id, exec_id, ..
        } => (
            store.checkout_run_items(&run_id, Some(exec_id))?,
            Some(run_id),
        ),
        Target::Version(v, _) => {
            // a bare path names what it is now for `show`; checking it out means its latest
            // recorded version
            let v = if names_a_path(arg) {
                store.latest_version(&v.path)?.unwrap_or(v)
            } else {
                v
            };
            let item = store.checkout_version_item(v.av_id)?.ok_or_else(|| {
                Error::store(format!("the version of `{}` named is missing", v.path))
            })?;
            (vec![item], None)
        }
        Target::File(v, m, _) => {
            let (v, m) = if names_a_path(arg) {
                match store
                    .newest_dir_version_containing(&v.path, &m.relpath, None)?
                    .and_then(|nv| {
                        store
                            .member(&nv, &m.relpath)
                            .ok()
                            .flatten()
                            .map(|nm| (nv, nm))
                    }) {
                    Some(pair) => pair,
                    None => (v, m),
                }
            } else {
                (v, m)
            };
            let dir = store.checkout_version_item(v.av_id)?;
            (
                vec![Item {
                    path: m.path.clone(),
                    fp: Fingerprint::File {
                        hash: m.hash.clone(),
                        size: m.size,
                        mode: m.mode,
                    },
                    link: None,
                    role: dir.as_ref().map_or("output", |d| d.role),
                    step: dir.and_then(|d| d.step),
                    stored: true,
                }],
                None,
            )
        }
    })
}

/// Is `arg` a plain path (not `PATH@RUN`, a model version, a hash or a run)?
fn names_a_path(arg: &str) -> bool {
    !arg.contains('@') && (Path::new(arg).exists() || arg.contains('/') || arg.contains('.'))
}

/// Where the paths go: the directory holding the store (the default `.mlrun` is beside
/// pipeline.toml, in the project), or, with an explicit `--store`, the project directory the
/// runs recorded (else the current directory).
fn project_root(
    store: &Store,
    dir: &Path,
    explicit: bool,
    run: Option<&str>,
    items: &[Item],
) -> Result<PathBuf> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::other("cannot read the current directory").cause(e))?;
    if !explicit {
        let parent = dir.parent().unwrap_or(Path::new(""));
        let parent = if parent.as_os_str().is_empty() {
            cwd
        } else {
            cwd.join(parent)
        };
        return Ok(parent.canonicalize().unwrap_or(parent));
    }
    let mut recorded = Vec::new();
    if let Some(r) = run {
        recorded.extend(store.run_root(r)?);
    }
    for item in items.iter().take(1) {
        if let Some(av) = store.version_by_content(&item.path, item.fp.hash())? {
            recorded.extend(store.version_roots(av.av_id)?);
        }
    }
    Ok(recorded
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap_or(cwd))
}

fn shown(item: &Item) -> String {
    if item.fp.is_dir() {
        format!("{}/", item.path)
    } else {
        item.path.clone()
    }
}

/// Decide for one path: already there, put back (over content the store holds, or under
/// `--force`), no copy to put back, or refused.
fn plan_one(
    store: &Store,
    objects: &Objects,
    cache: &HashCache,
    root: &Path,
    item: &Item,
    force: bool,
) -> Plan {
    let at = root.join(&item.path);
    let exists = at.symlink_metadata().is_ok();
    let now = hash::fingerprint(&at, cache).ok();
    let same_link = match &item.link {
        Some(target) => {
            std::fs::read_link(&at).is_ok_and(|t| t.as_os_str().as_bytes() == target.as_slice())
        }
        None => !at.is_symlink(),
    };
    if same_link && now.as_ref().map(Fingerprint::hash) == Some(item.fp.hash()) {
        return Plan::Unchanged;
    }
    if !objects.can_restore(&item.fp) {
        return Plan::Unavailable(if item.stored {
            "its copy is no longer in the object store (lost: `mlrun fsck` checks the store)".into()
        } else {
            "the object store holds no copy (freed by `mlrun gc`, or never kept: --no-store, `store = false`)".into()
        });
    }
    if !exists {
        return Plan::Restore { overwrite: false };
    }
    let held = match &now {
        Some(fp) => store.holds_content(objects, fp),
        // something that cannot be read as a file or directory (a dangling link, a FIFO)
        None => at.is_symlink() && std::fs::metadata(&at).is_err(),
    };
    if held {
        return Plan::Restore { overwrite: false };
    }
    if force {
        return Plan::Restore { overwrite: true };
    }
    Plan::Blocked(match &now {
        Some(Fingerprint::Dir { hash, entries, .. }) => format!(
            "it now holds {} ({}) that the store does not have",
            report::files(entries.len() as u64),
            short_hash(hash)
        ),
        Some(fp) => format!(
            "its content now ({}) was never recorded by mlrun",
            short_hash(fp.hash())
        ),
        None => "something mlrun cannot read is there".into(),
    })
}

/// Put one version back and check what is there afterwards.
fn restore(objects: &Objects, root: &Path, item: &Item) -> Result<()> {
    let mut io = crate::store::record::Io::new(item.path.clone(), item.fp.clone());
    io.link = item.link.clone();
    objects.restore_io(&io, root).map_err(|e| {
        let mut err = Error::other(format!("cannot check out `{}`", shown(item))).cause(e.message);
        err.hints = e.hints;
        err
    })?;
    let after = hash::fingerprint(&root.join(&item.path), &HashCache::disabled())?;
    if after.hash() != item.fp.hash() {
        return Err(Error::other(format!(
            "`{}` changed while it was being checked out (now {}, expected {})",
            shown(item),
            short_hash(after.hash()),
            short_hash(item.fp.hash())
        )));
    }
    Ok(())
}

fn render(r: &Report, style: &Style) -> String {
    let mut out = String::new();
    let what = match &r.run {
        Some(run) => format!("run {}", style.paint(Role::Accent, run)),
        None => format!("`{}`", r.target),
    };
    out += &format!(
        "{} {what} into {}\n",
        if r.dry_run {
            "would check out"
        } else {
            "checking out"
        },
        r.root
    );
    let w = r
        .paths
        .iter()
        .map(|p| p.path.chars().count() + usize::from(p.kind == "dir"))
        .max()
        .unwrap_or(0);
    for p in &r.paths {
        let path = if p.kind == "dir" {
            format!("{}/", p.path)
        } else {
            p.path.clone()
        };
        let action = match p.action {
            "restored" => style.paint(Role::Good, "restored   "),
            "would_restore" => style.paint(Role::Good, "would restore"),
            "unchanged" => style.paint(Role::Muted, "unchanged  "),
            _ => style.paint(Role::Bad, "unavailable"),
        };
        let whose = match (&p.step, p.role) {
            (Some(s), "output") => format!("output of `{s}`"),
            (Some(s), _) => format!("input of `{s}`"),
            (None, _) => String::new(),
        };
        out += &format!("  {action}  {path:<w$}  {}  {whose}", short_hash(&p.hash));
        if p.overwrote {
            out += &style.paint(Role::Warn, "  (overwrote changes, --force)");
        }
        if let Some(why) = &p.reason {
            out += &format!("\n  {:11}  {}", "", style.paint(Role::Bad, why));
        }
        out.push('\n');
    }
    let mut tail = vec![format!(
        "{} {}",
        r.restored,
        if r.dry_run {
            "would be restored"
        } else {
            "restored"
        }
    )];
    if r.unchanged > 0 {
        tail.push(format!("{} already there", r.unchanged));
    }
    if r.unavailable > 0 {
        tail.push(style.paint(Role::Bad, &format!("{} not in the store", r.unavailable)));
    }
    out += &format!("{}\n", tail.join(", "));
    out
}

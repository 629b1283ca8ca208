//! `model export-tags`: the registry written as GTO git tags (a registration tag per version,
//! an assignment tag per alias move), only the moves made since the last export.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::report::{ColorChoice, Style, emit, short_hash};
use crate::store::models::{self, ModelVersion};
use crate::store::{self, Store};

use super::*;

/// One tag `export-tags` writes (or would write).
#[derive(Debug, Serialize)]
pub(super) struct TagOut {
    tag: String,
    commit: String,
    message: String,
    /// `written`, `exists` (already in the repository), `would-write` (`--dry-run`)
    status: String,
}

/// A version's label as GTO reads it: `vN` is `vN.0.0`.
pub(super) fn gto_version(v: &str) -> String {
    match crate::pipeline::model_name::parse_version(v) {
        Ok(l) => format!("v{}", l.semver),
        Err(_) => v.to_string(),
    }
}

pub(super) fn git(root: &Path, args: &[&str], env: &[(&str, String)]) -> Result<String> {
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

/// The project directory of store `dir` (its parent), which must be inside a git repository:
/// the tags are that repository's. `why` says what needs the repository.
pub(super) fn project_repo(dir: &Path, why: &str) -> Result<std::path::PathBuf> {
    let root = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    git(&root, &["rev-parse", "--git-dir"], &[]).map_err(|e| {
        Error::other(format!("`{}` is not in a git repository", root.display()))
            .cause(e.message)
            .hint(why.to_string())
    })?;
    Ok(root)
}

/// The trailer that ties an assignment tag to its row of the alias log, so a second export
/// writes only the moves made since.
pub(super) const MOVE_TRAILER: &str = "mlrun-alias-move:";

pub(super) fn export_tags(
    args: ModelExportTagsArgs,
    store_dir: Option<&Path>,
    color: ColorChoice,
) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let store = Store::open_read(&dir)?;
    let root = project_repo(
        &dir,
        "export-tags writes git tags into the repository of the project",
    )?;
    let Existing {
        tags: existing,
        moves_done,
        newest_secs,
        counters,
    } = existing_tags(&root)?;
    let all = store.all_models()?;
    let mut p = Planner {
        // (name, label) → the commit its run started at
        commits: all
            .iter()
            .flat_map(|m| m.versions.iter())
            .map(|v| ((v.name.as_str(), v.version.as_str()), v.commit.as_ref()))
            .collect(),
        assigned: BTreeMap::new(),
        counters,
        moves_done,
        planned: Vec::new(),
        tags: Vec::new(),
        skipped: Vec::new(),
    };
    for (at, _, ev) in events(&all) {
        match ev {
            Ev::Reg(v) => p.registration(at, v),
            Ev::Move(h) => p.alias_move(at, h),
        }
    }
    let Planner {
        planned,
        mut tags,
        mut skipped,
        ..
    } = p;
    write_tags(
        &root,
        planned,
        existing,
        newest_secs,
        args.dry_run,
        &mut tags,
        &mut skipped,
    )?;
    Ok(report(&args, &Style::stderr(color), &tags, &skipped))
}

/// A registry event: a version registered, or an alias moved.
enum Ev<'a> {
    Reg(&'a ModelVersion),
    Move(&'a models::AliasMove),
}

/// Every registration and alias move, in time order (a registration before a move at the
/// same time).
fn events(all: &[models::Model]) -> Vec<(i64, u8, Ev<'_>)> {
    let mut events: Vec<(i64, u8, Ev)> = Vec::new();
    for m in all {
        for v in &m.versions {
            events.push((v.registered_at, 0, Ev::Reg(v)));
        }
        for h in &m.history {
            events.push((h.at, 1, Ev::Move(h)));
        }
    }
    events.sort_by_key(|(at, kind, _)| (*at, *kind));
    events
}

/// A tag to write: when its event happened, its name, commit, message and tagger.
struct Planned {
    at: i64,
    tag: String,
    commit: String,
    message: String,
    by: String,
}

/// The tags planned from the registry's events, in one pass in time order.
struct Planner<'a> {
    /// (name, label) → the commit its run started at
    commits: BTreeMap<(&'a str, &'a str), Option<&'a String>>,
    /// GTO keeps every version a stage was assigned to and shows the newest one still assigned:
    /// moving `prod` from v1 to v2 leaves v1 assigned underneath. So removing an alias unassigns
    /// it from each version it was assigned to (per name and alias, from the log).
    assigned: BTreeMap<(&'a str, &'a str), Vec<&'a str>>,
    /// GTO counts a name's assignment tags: `NAME#STAGE#N` continues from the highest N
    counters: BTreeMap<String, u64>,
    /// alias-log row id → the (tag, commit) pairs an earlier export wrote for it
    moves_done: BTreeMap<String, Vec<(String, String)>>,
    planned: Vec<Planned>,
    tags: Vec<TagOut>,
    skipped: Vec<String>,
}

impl<'a> Planner<'a> {
    /// A registration: `NAME@vN` at the commit its run started at.
    fn registration(&mut self, at: i64, v: &ModelVersion) {
        let Some(commit) = v.commit.clone() else {
            self.skipped.push(format!(
                "{}@{}: no recorded run made it at a git commit",
                v.name, v.version
            ));
            return;
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
        self.planned.push(Planned {
            at,
            tag,
            commit,
            message,
            by: v.registered_by.clone(),
        });
    }

    /// An alias move: an assignment tag (or, removed, an unassignment per version it was
    /// assigned to), unless an earlier export wrote it.
    fn alias_move(&mut self, at: i64, h: &'a models::AliasMove) {
        let key = (h.name.as_str(), h.alias.as_str());
        // (label, assign?) for each tag this move makes
        let mut steps: Vec<(&str, bool)> = Vec::new();
        match &h.to {
            Some(t) => {
                steps.push((t.as_str(), true));
                let a = self.assigned.entry(key).or_default();
                a.retain(|l| l != t);
                a.push(t.as_str());
            }
            None => {
                for l in self.assigned.remove(&key).unwrap_or_default() {
                    steps.push((l, false));
                }
            }
        }
        if let Some(done) = self.moves_done.get(&h.id.to_string()) {
            for (tag, commit) in done {
                self.tags.push(TagOut {
                    tag: tag.clone(),
                    commit: commit.chars().take(40).collect(),
                    message: String::new(),
                    status: "exists".into(),
                });
            }
            return;
        }
        for (label, assign) in steps {
            let Some(Some(commit)) = self.commits.get(&(h.name.as_str(), label)) else {
                self.skipped.push(format!(
                    "{}#{} ({label}): that version was made at no recorded git commit",
                    h.name, h.alias
                ));
                continue;
            };
            let commit = (*commit).clone();
            let c = self.counters.entry(h.name.clone()).or_default();
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
            self.planned.push(Planned {
                at,
                tag,
                commit,
                message,
                by: h.by.clone(),
            });
        }
    }
}

/// Write the planned tags in order (those already there kept), each dated after the one before.
fn write_tags(
    root: &Path,
    planned: Vec<Planned>,
    mut existing: BTreeMap<String, String>,
    newest_secs: i64,
    dry_run: bool,
    tags: &mut Vec<TagOut>,
    skipped: &mut Vec<String>,
) -> Result<()> {
    let mut last_secs = newest_secs;
    for Planned {
        at,
        tag,
        commit,
        message,
        by,
    } in planned
    {
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
            root,
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
        if !dry_run {
            git(
                root,
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
            status: if dry_run {
                "would-write".into()
            } else {
                "written".into()
            },
        });
    }
    Ok(())
}

/// The tags already in the repository, as export-tags continues from them.
struct Existing {
    /// tag name → its message
    tags: BTreeMap<String, String>,
    /// alias-log row id → the (tag, commit) pairs that wrote it
    moves_done: BTreeMap<String, Vec<(String, String)>>,
    /// the newest tag date there: GTO orders events by date, so new tags must come after it
    newest_secs: i64,
    /// GTO counts a name's assignment tags: `NAME#STAGE#N` continues from the highest N
    counters: BTreeMap<String, u64>,
}

fn existing_tags(root: &Path) -> Result<Existing> {
    let listing = git(
        root,
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
    Ok(Existing {
        tags: existing,
        moves_done,
        newest_secs,
        counters,
    })
}

/// What export-tags did (or would do), for people or as JSON; the exit code.
fn report(args: &ModelExportTagsArgs, err: &Style, tags: &[TagOut], skipped: &[String]) -> i32 {
    for s in skipped {
        err.note(&format!("skipped {s}"));
    }
    if args.json {
        #[derive(Serialize)]
        struct Answer<'a> {
            tags: &'a [TagOut],
            skipped: &'a [String],
        }
        emit(&(serde_json::to_string_pretty(&Answer { tags, skipped }).unwrap_or_default() + "\n"));
        return 0;
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
    0
}

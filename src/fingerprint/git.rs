//! Git state of the project: commit, branch, dirty flag, the uncommitted diff of tracked files
//! (kept so it can be reapplied), untracked files, and the remote URL without credentials.
//! Outside a repository this records that there was none; it never fails a run.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use git2::{DiffFormat, DiffOptions, Repository, StatusOptions};
use serde::{Deserialize, Serialize};

use super::hash::sha256_bytes;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GitState {
    pub is_repo: bool,
    pub commit: Option<String>,
    pub branch: Option<String>,
    /// tracked files differ from HEAD (staged or not)
    pub dirty: bool,
    /// `git diff HEAD` of tracked files, binary-safe, empty when clean; credentials in it are
    /// masked line by line (`env::mask_patch`), so it still applies
    #[serde(skip)]
    pub diff: String,
    pub changed: Vec<String>,
    pub untracked: Vec<String>,
    pub remote_url: Option<String>,
    /// repository working directory, so paths in the diff can be related to the project
    pub workdir: Option<String>,
    /// set when git could not be read although a repository was found
    pub error: Option<String>,
}

impl GitState {
    pub fn none() -> Self {
        GitState {
            is_repo: false,
            commit: None,
            branch: None,
            dirty: false,
            diff: String::new(),
            changed: Vec::new(),
            untracked: Vec::new(),
            remote_url: None,
            workdir: None,
            error: None,
        }
    }

    /// Content address: equal states share one row in the store.
    pub fn id(&self) -> String {
        let mut canon = serde_json::to_string(self).unwrap_or_default();
        canon.push('\0');
        canon.push_str(&self.diff);
        sha256_bytes(canon.as_bytes())
    }

    pub fn short_commit(&self) -> String {
        self.commit
            .as_deref()
            .map_or_else(|| "-".into(), |c| c[..c.len().min(7)].to_string())
    }
}

/// Remove `user:password@` (or a token as user) from a URL; scp-style `git@host:path` stays.
pub fn strip_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

pub fn snapshot(dir: &Path) -> GitState {
    let repo = match Repository::discover(dir) {
        Ok(r) => r,
        Err(_) => return GitState::none(),
    };
    match read(&repo) {
        Ok(s) => s,
        Err(e) => GitState {
            is_repo: true,
            error: Some(e.message().to_string()),
            ..GitState::none()
        },
    }
}

fn read(repo: &Repository) -> Result<GitState, git2::Error> {
    let mut state = GitState {
        is_repo: true,
        workdir: repo
            .workdir()
            .map(|w| w.to_string_lossy().trim_end_matches('/').to_string()),
        ..GitState::none()
    };
    let head = repo.head().ok();
    if let Some(h) = &head {
        state.branch = if h.is_branch() {
            h.shorthand().map(str::to_string)
        } else {
            None
        };
    } else if let Ok(r) = repo.find_reference("HEAD")
        && let Some(t) = r.symbolic_target()
    {
        // unborn branch: no commit yet
        state.branch = Some(t.trim_start_matches("refs/heads/").to_string());
    }
    let head_tree = match head.as_ref().and_then(|h| h.peel_to_commit().ok()) {
        Some(c) => {
            state.commit = Some(c.id().to_string());
            Some(c.tree()?)
        }
        None => None,
    };

    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .exclude_submodules(true)
        .include_ignored(false);
    for entry in repo.statuses(Some(&mut opts))?.iter() {
        let Some(path) = entry.path() else { continue };
        if entry.status().is_wt_new() && !entry.status().is_index_new() {
            state.untracked.push(path.to_string());
        } else if !entry.status().is_ignored() {
            state.changed.push(path.to_string());
        }
    }
    state.dirty = !state.changed.is_empty();
    if state.dirty {
        let mut dopts = DiffOptions::new();
        dopts.show_binary(true);
        let diff = repo.diff_tree_to_workdir_with_index(head_tree.as_ref(), Some(&mut dopts))?;
        let mut text = Vec::new();
        diff.print(DiffFormat::Patch, |_, _, line| {
            if matches!(line.origin(), '+' | '-' | ' ') {
                text.push(line.origin() as u8);
            }
            text.extend_from_slice(line.content());
            true
        })?;
        // secrets in the working tree's edits are masked before anything keeps the diff
        state.diff = super::env::mask_patch(&String::from_utf8_lossy(&text));
    }
    if let Ok(remote) = repo.find_remote("origin")
        && let Some(url) = remote.url()
    {
        state.remote_url = Some(strip_credentials(url));
    }
    Ok(state)
}

/// The repository's refs: `HEAD` (the ref it points to, or the commit when detached) and every
/// ref under `refs/` with its target (a commit or tag object id; `ref: NAME` for a symbolic one).
/// Cheap: a listing, no object is read. `None` outside a repository.
pub type Refs = BTreeMap<String, String>;

pub fn refs(dir: &Path) -> Option<Refs> {
    let repo = Repository::discover(dir).ok()?;
    let mut out = Refs::new();
    if let Ok(head) = repo.find_reference("HEAD") {
        let v = match (head.symbolic_target(), head.target()) {
            (Some(t), _) => t.to_string(),
            (None, Some(id)) => id.to_string(),
            (None, None) => String::new(),
        };
        out.insert("HEAD".into(), v);
    }
    for r in repo.references().ok()?.flatten() {
        let Some(name) = r.name() else { continue };
        let v = match (r.target(), r.symbolic_target()) {
            (Some(id), _) => id.to_string(),
            (None, Some(t)) => format!("ref: {t}"),
            (None, None) => continue,
        };
        out.insert(name.to_string(), v);
    }
    Some(out)
}

/// Watches a repository's refs around steps without listing them each time: a stamp of the files
/// they are stored in (HEAD, packed-refs, every loose ref; git replaces each by a rename, so a
/// changed ref changes its file's inode, size or mtime) says whether anything moved, and the
/// listing is taken again only when the stamp differs from the one it was taken at. A repository
/// with thousands of tags costs a few hundred `stat`s per step, not two parses of them all.
pub struct RefWatch {
    git_dir: std::path::PathBuf,
    common_dir: std::path::PathBuf,
    last: std::sync::Mutex<Option<(Stamp, Refs)>>,
    root: std::path::PathBuf,
}

type Stamp = Vec<(std::path::PathBuf, u64, u64, i64, i64)>;

/// The refs at one moment, with the stamp they were listed at.
pub struct RefsAt {
    stamp: Stamp,
    refs: Refs,
}

impl RefWatch {
    /// `None` outside a repository.
    pub fn new(root: &Path) -> Option<RefWatch> {
        let repo = Repository::discover(root).ok()?;
        Some(RefWatch {
            git_dir: repo.path().to_path_buf(),
            common_dir: repo.commondir().to_path_buf(),
            last: std::sync::Mutex::new(None),
            root: root.to_path_buf(),
        })
    }

    fn stamp(&self) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        let mut out = Stamp::new();
        let mut add = |p: &Path| {
            if let Ok(m) = std::fs::symlink_metadata(p) {
                out.push((
                    p.to_path_buf(),
                    m.ino(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec(),
                ));
            }
        };
        add(&self.git_dir.join("HEAD"));
        add(&self.common_dir.join("packed-refs"));
        let mut dirs = vec![
            self.common_dir.join("refs"),
            self.common_dir.join("reftable"),
        ];
        if self.git_dir != self.common_dir {
            dirs.push(self.git_dir.join("refs"));
        }
        while let Some(d) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(p);
                } else {
                    add(&p);
                }
            }
        }
        out.sort();
        out
    }

    /// The refs now (listed only if their files changed since the last listing).
    pub fn now(&self) -> Option<RefsAt> {
        let stamp = self.stamp();
        let mut last = self.last.lock().expect("ref watch lock");
        if let Some((s, r)) = last.as_ref()
            && *s == stamp
        {
            return Some(RefsAt {
                stamp,
                refs: r.clone(),
            });
        }
        let refs = refs(&self.root)?;
        *last = Some((stamp.clone(), refs.clone()));
        Some(RefsAt { stamp, refs })
    }

    /// What moved since `before`: nothing without a listing when no ref file changed.
    pub fn changes_since(&self, before: &RefsAt) -> Vec<RefChange> {
        if self.stamp() == before.stamp {
            return Vec::new();
        }
        match self.now() {
            Some(after) => ref_changes(&before.refs, &after.refs),
            None => Vec::new(),
        }
    }
}

/// A ref (or HEAD) a step created, moved or deleted: `from` is null for a new ref, `to` for a
/// deleted one. The `repo_changes` of `mlrun show --json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefChange {
    #[serde(rename = "ref")]
    pub name: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// What moved between two listings of the refs, HEAD first, then by name.
pub fn ref_changes(before: &Refs, after: &Refs) -> Vec<RefChange> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort_by_key(|n| (n.as_str() != "HEAD", n.as_str()));
    names.dedup();
    names
        .into_iter()
        .filter(|n| before.get(*n) != after.get(*n))
        .map(|n| RefChange {
            name: n.clone(),
            from: before.get(n).cloned(),
            to: after.get(n).cloned(),
        })
        .collect()
}

/// "refs/heads/main moved 1a2b3c4d5e → 9f8e7d6c5b; refs/tags/exp-1 created at 9f8e7d6c5b".
pub fn describe_ref_changes(changes: &[RefChange]) -> String {
    let short = |v: &str| {
        if v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
            v[..10].to_string()
        } else {
            v.to_string()
        }
    };
    changes
        .iter()
        .map(|c| match (&c.from, &c.to) {
            (None, Some(to)) => format!("{} created at {}", c.name, short(to)),
            (Some(from), None) => format!("{} deleted (was {})", c.name, short(from)),
            (Some(from), Some(to)) => {
                format!("{} moved {} → {}", c.name, short(from), short(to))
            }
            (None, None) => c.name.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Which project files git tracks, to tell whether an input version can be recovered from the
/// recorded commit (tracked and unmodified) or only from mlrun's own record.
pub struct Tracked {
    /// the project root relative to the repository's working directory, with a trailing `/`
    prefix: String,
    paths: HashSet<String>,
}

impl Tracked {
    /// `None` outside a repository.
    pub fn load(root: &Path) -> Option<Tracked> {
        let repo = Repository::discover(root).ok()?;
        let workdir = repo.workdir()?.canonicalize().ok()?;
        let root = root.canonicalize().ok()?;
        let rel = root
            .strip_prefix(&workdir)
            .ok()?
            .to_string_lossy()
            .into_owned();
        let prefix = if rel.is_empty() {
            rel
        } else {
            format!("{rel}/")
        };
        let index = repo.index().ok()?;
        let paths = index
            .iter()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect();
        Some(Tracked { prefix, paths })
    }

    /// Is `rel` (a file relative to the project root), or every file of it when `entries` lists a
    /// directory's contents, tracked by git and absent from `changed` (repository-relative)?
    pub fn clean<'e>(
        &self,
        rel: &str,
        entries: Option<impl ExactSizeIterator<Item = &'e str>>,
        changed: &[String],
    ) -> bool {
        let check = |p: String| self.paths.contains(&p) && !changed.contains(&p);
        match entries {
            None => check(format!("{}{rel}", self.prefix)),
            Some(mut list) => {
                list.len() > 0 && list.all(|e| check(format!("{}{rel}/{e}", self.prefix)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stripped_from_urls() {
        assert_eq!(
            strip_credentials("https://u:p@host/x.git"),
            "https://host/x.git"
        );
        assert_eq!(
            strip_credentials("https://ghp_abc@host/x"),
            "https://host/x"
        );
        assert_eq!(strip_credentials("git@host:x.git"), "git@host:x.git");
        assert_eq!(strip_credentials("https://host/a@b"), "https://host/a@b");
    }

    #[test]
    fn ref_watch_sees_commits_and_new_refs_and_lists_only_on_change() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repository::init(d.path()).unwrap();
        let sig = git2::Signature::now("t", "t@x").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        let c1 = repo
            .commit(Some("HEAD"), &sig, &sig, "one", &tree, &[])
            .unwrap();
        let w = RefWatch::new(d.path()).unwrap();
        let before = w.now().unwrap();
        assert!(w.changes_since(&before).is_empty());
        let parent = repo.find_commit(c1).unwrap();
        let c2 = repo
            .commit(Some("HEAD"), &sig, &sig, "two", &tree, &[&parent])
            .unwrap();
        repo.reference("refs/tags/exp", c2, false, "tag").unwrap();
        let head_ref = repo.head().unwrap().name().unwrap().to_string();
        let changes = w.changes_since(&before);
        assert_eq!(
            changes,
            [
                RefChange {
                    name: head_ref.clone(),
                    from: Some(c1.to_string()),
                    to: Some(c2.to_string())
                },
                RefChange {
                    name: "refs/tags/exp".into(),
                    from: None,
                    to: Some(c2.to_string())
                },
            ]
        );
        assert_eq!(
            describe_ref_changes(&changes),
            format!(
                "{head_ref} moved {} → {}; refs/tags/exp created at {}",
                &c1.to_string()[..10],
                &c2.to_string()[..10],
                &c2.to_string()[..10]
            )
        );
        // the listing taken after is the next step's "before"
        let again = w.now().unwrap();
        assert!(w.changes_since(&again).is_empty());
    }
}

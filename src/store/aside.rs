//! The journal of the outputs a step moved aside while it ran (`exec::aside` moves them), kept
//! in the store directory under `aside/`: written before each move, it is what lets the next
//! mlrun command that opens the store put the originals back after mlrun died (`recover`), or
//! drop a replay's copies (`forget`). The store reads it when it finds a run abandoned, so it
//! lives here, beside the other notes a dead mlrun leaves (`incomplete`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(crate) const JOURNAL: &str = "journal.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Move {
    /// the declared path, as shown
    pub(crate) path: String,
    pub(crate) original: PathBuf,
    pub(crate) aside: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub(crate) run_id: String,
    pub(crate) step: String,
    /// the project directory: originals are put back beneath it, never through a link that
    /// leads out of it (`None`: a journal of an mlrun that did not write it)
    #[serde(default)]
    pub(crate) root: Option<PathBuf>,
    pub(crate) moves: Vec<Move>,
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Remove a file, a symlink or a directory tree.
pub(crate) fn remove(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) fn write_journal(dir: &Path, j: &Journal) -> std::io::Result<()> {
    let tmp = dir.join(format!("{JOURNAL}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(j).unwrap_or_default())?;
    std::fs::rename(&tmp, dir.join(JOURNAL))
}

/// Where the aside copies of every run's steps are kept. It is never removed, even when empty:
/// runs sharing a store create their directories in it at any moment, and one run removing the
/// empty root while another was creating its directory there failed that other run's step (5 of
/// 5,866 runs of six pipelines sharing a store, `scripts/review-attacks.py`).
pub(crate) fn aside_root(store_dir: &Path) -> PathBuf {
    store_dir.join("aside")
}

/// Put one original back at its path resolved beneath the project `root` (its parent
/// directories may have been replaced meanwhile, by a link leading out of the project): what is
/// there is replaced, nothing outside the project is removed or written.
fn put_back_beneath(root: &Path, m: &Move) -> std::io::Result<()> {
    let other = |e: String| std::io::Error::other(e);
    let rel = m.original.strip_prefix(root).unwrap_or(&m.original);
    let (dest, name) =
        crate::beneath::parent_of(root, rel, true).map_err(|p| other(p.describe()))?;
    let (Some(from_dir), Some(from_name)) = (m.aside.parent(), m.aside.file_name()) else {
        return Err(other(format!("`{}` is not a file", m.aside.display())));
    };
    let from = crate::beneath::Dir::open(from_dir)?;
    dest.remove_all(&name);
    from.rename_to(from_name, &dest, &name)
}

/// Put the journal's originals back, newest move first; returns (what was put back, errors).
pub(crate) fn restore(dir: &Path, j: &Journal) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for m in j.moves.iter().rev() {
        if !exists(&m.aside) {
            // never moved (a crash right after the journal was written), or already back
            continue;
        }
        // beneath the project; a path outside it (`allow-outside`) or a journal without its
        // root, as declared
        let res = match j.root.as_deref().filter(|r| m.original.starts_with(r)) {
            Some(root) => put_back_beneath(root, m),
            None => remove(&m.original)
                .and_then(|()| match m.original.parent() {
                    Some(p) => std::fs::create_dir_all(p),
                    None => Ok(()),
                })
                .and_then(|()| std::fs::rename(&m.aside, &m.original)),
        };
        match res {
            Ok(()) => done.push(m.path.clone()),
            Err(e) => errors.push(format!(
                "could not put back the previous `{}` of step `{}`: {e}; it is kept at `{}`",
                m.path,
                j.step,
                m.aside.display()
            )),
        }
    }
    if errors.is_empty() {
        let _ = std::fs::remove_file(dir.join(JOURNAL));
        let _ = std::fs::remove_dir(dir);
    }
    (done, errors)
}

/// After mlrun died during `run_id` (the store found it abandoned): put back the outputs its
/// steps had moved aside. Returns one line per output put back or kept, for people.
pub fn recover(tmp: &Path, run_id: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(aside_root(tmp)) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let prefix = format!("{run_id}-");
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let dir = e.path();
        let journal = std::fs::read(dir.join(JOURNAL))
            .ok()
            .and_then(|b| serde_json::from_slice::<Journal>(&b).ok());
        let Some(j) = journal else {
            // no journal: the step had succeeded and these are old copies being deleted
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        };
        let short = &run_id[..run_id.len().min(10)];
        let (done, errors) = restore(&dir, &j);
        for p in done {
            lines.push(format!(
                "put back `{p}`: run {short} was stopped (mlrun was killed) while step `{}` ran, so its previous version is current again",
                j.step
            ));
        }
        lines.extend(errors);
    }
    lines
}

/// After mlrun died during replay `run_id`: what its steps moved aside came from its scratch
/// tree, which is thrown away (the leftovers sweep removes it, possibly before this runs), so
/// nothing is put back: putting it back would rebuild a tree nobody owns, and saying "put back"
/// would suggest the user's own files changed. The journals and copies kept in the store go;
/// copies kept beside their outputs are inside the scratch tree and go with it.
pub fn forget(store_dir: &Path, run_id: &str) {
    let Ok(entries) = std::fs::read_dir(aside_root(store_dir)) else {
        return;
    };
    let prefix = format!("{run_id}-");
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

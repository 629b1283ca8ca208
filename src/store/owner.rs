//! Scratch space owned by one mlrun process, and the cleanup of what a killed one left behind.
//!
//! Each piece of scratch space (a run's `<store>/tmp/<run-id>/`, an `Objects` writer's
//! `<store>/objects/tmp/<id>/`, a replay's `$TMPDIR/mlrun-replay-<id>/`) has a marker file beside
//! it, `<name>.owner`, written *before* the space is created and removed *after* it is gone. The
//! marker names the owning process as the abandoned-run recovery does (host, pid, the process's
//! start time, boot id), so the next mlrun command can tell that the owner is gone (even when its
//! pid was reused) and remove the space at once, while never touching the space of a live one.
//! Only the owner removes its space while it lives: two runs sharing a store never delete each
//! other's files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::record::ProcessId;

const SUFFIX: &str = ".owner";

/// Entries without a marker (left by an mlrun that predates markers) are removed once this old.
const UNMARKED_GRACE: Duration = Duration::from_secs(3600);

#[derive(Serialize, Deserialize)]
struct Marker {
    hostname: String,
    pid: i64,
    start: Option<i64>,
    boot_id: Option<String>,
}

fn marker_path(space: &Path) -> PathBuf {
    let mut name = space.file_name().unwrap_or_default().to_os_string();
    name.push(SUFFIX);
    space.with_file_name(name)
}

/// A directory owned by this process, removed (with its marker) when dropped.
pub struct Owned {
    path: PathBuf,
    keep: bool,
}

impl Owned {
    /// Create `parent/name` (and `parent`) with this process as its owner.
    pub fn create_dir(parent: &Path, name: &str) -> std::io::Result<Owned> {
        std::fs::create_dir_all(parent)?;
        let path = parent.join(name);
        let me = ProcessId::current();
        let marker = Marker {
            hostname: me.hostname,
            pid: me.pid,
            start: me.start,
            boot_id: me.boot_id,
        };
        std::fs::write(
            marker_path(&path),
            serde_json::to_vec(&marker).unwrap_or_default(),
        )?;
        if let Err(e) = std::fs::create_dir(&path) {
            let _ = std::fs::remove_file(marker_path(&path));
            return Err(e);
        }
        Ok(Owned { path, keep: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Give the directory up: it stays, and no later cleanup removes it.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        let _ = std::fs::remove_file(marker_path(&self.path));
        self.path.clone()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
            let _ = std::fs::remove_file(marker_path(&self.path));
        }
    }
}

/// Is the process a marker names certainly gone? Unknown (another host, unreadable) is `false`.
fn owner_gone(marker: &Path, me: &ProcessId) -> bool {
    let Ok(bytes) = std::fs::read(marker) else {
        return false;
    };
    let Ok(m) = serde_json::from_slice::<Marker>(&bytes) else {
        // a marker cut short by a crash while it was written: its owner died at birth
        return age(marker).is_some_and(|a| a > Duration::from_secs(60));
    };
    m.hostname == me.hostname && !ProcessId::is_alive(m.pid, m.start, m.boot_id.as_deref(), me)
}

fn age(p: &Path) -> Option<Duration> {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
}

fn remove_any(p: &Path) -> bool {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).is_ok(),
        Ok(_) => std::fs::remove_file(p).is_ok(),
        Err(_) => true,
    }
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub entries: usize,
    pub bytes: u64,
}

fn size_of(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

/// In `parent`, remove every entry whose owner is gone, with its marker. Entries whose names
/// start with `prefix` and have no marker are removed when older than an hour (`unmarked`), as
/// an mlrun from before markers left them. Best effort: what cannot be removed stays.
pub fn sweep(parent: &Path, prefix: &str, unmarked: bool) -> Swept {
    let mut swept = Swept::default();
    let Ok(rd) = std::fs::read_dir(parent) else {
        return swept;
    };
    let me = ProcessId::current();
    let names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    for name in &names {
        if let Some(space) = name.strip_suffix(SUFFIX) {
            let marker = parent.join(name);
            if owner_gone(&marker, &me) {
                let p = parent.join(space);
                let bytes = size_of(&p);
                // the space first: a sweep interrupted here finds the marker next time
                if remove_any(&p) && std::fs::remove_file(&marker).is_ok() {
                    swept.entries += 1;
                    swept.bytes += bytes;
                }
            }
        } else if unmarked && !names.contains(&format!("{name}{SUFFIX}")) {
            let p = parent.join(name);
            if age(&p).is_some_and(|a| a > UNMARKED_GRACE) {
                let bytes = size_of(&p);
                if remove_any(&p) {
                    swept.entries += 1;
                    swept.bytes += bytes;
                }
            }
        }
    }
    swept
}

/// Where replays build their scratch trees.
pub const REPLAY_PREFIX: &str = "mlrun-replay-";

/// Remove what mlrun processes that are gone left behind: run scratch space and partial objects
/// in the store, and replay scratch trees in the temporary directory. Called whenever a store is
/// opened for writing, so the next command cleans up (a full disk gets its space back).
pub fn sweep_leftovers(store_dir: &Path) -> Swept {
    let mut total = Swept::default();
    for s in [
        sweep(&store_dir.join("tmp"), "", true),
        sweep(&store_dir.join("objects").join("tmp"), "", true),
        sweep(&std::env::temp_dir(), REPLAY_PREFIX, false),
    ] {
        total.entries += s.entries;
        total.bytes += s.bytes;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_owner_keeps_its_space_and_a_dead_one_loses_it() {
        let d = tempfile::tempdir().unwrap();
        let mine = Owned::create_dir(d.path(), "mine").unwrap();
        std::fs::write(mine.path().join("f"), b"x").unwrap();
        // a space whose owner (a pid that cannot be alive with that start time) is gone
        std::fs::create_dir(d.path().join("theirs")).unwrap();
        std::fs::write(d.path().join("theirs/f"), b"partial").unwrap();
        let me = ProcessId::current();
        let dead = Marker {
            hostname: me.hostname.clone(),
            pid: me.pid,
            start: Some(me.start.unwrap_or(0) + 1),
            boot_id: me.boot_id.clone(),
        };
        std::fs::write(
            d.path().join("theirs.owner"),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        // no marker, young: left alone
        std::fs::create_dir(d.path().join("young")).unwrap();
        let swept = sweep(d.path(), "", true);
        assert_eq!(swept.entries, 1);
        assert_eq!(swept.bytes, 7);
        assert!(mine.path().join("f").exists());
        assert!(!d.path().join("theirs").exists());
        assert!(!d.path().join("theirs.owner").exists());
        assert!(d.path().join("young").exists());
        let p = mine.path().to_path_buf();
        drop(mine);
        assert!(!p.exists() && !d.path().join("mine.owner").exists());
    }

    #[test]
    fn a_kept_space_is_never_swept() {
        let d = tempfile::tempdir().unwrap();
        let kept = Owned::create_dir(d.path(), "k").unwrap().keep();
        assert!(kept.is_dir());
        assert!(!d.path().join("k.owner").exists());
    }
}

//! A step is never credited with a file it did not write: its declared outputs are moved aside
//! while it runs (README "Outputs are written anew").
//!
//! Before each attempt, every declared output that exists is renamed into
//! `<store>/aside/<run>-<step>-<attempt>/<n>`: a rename, whatever the output's size. (Not in the
//! run's scratch space `<store>/tmp/<run>/`: the sweep of a dead run's scratch space would take
//! the originals with it, before or even after `recover` failed to put one back.) When
//! the store is on another filesystem than the output, it is renamed beside the output instead,
//! as `.<name>.mlrun-aside-<run>`. A directory output is replaced by an empty directory (same
//! permissions), so a step that writes into it without creating it works as before; if the step
//! leaves that directory exactly as it found it (same inode, same mtime, nothing in it), it did
//! not produce it.
//!
//! Declared metrics files outside the outputs are moved aside the same way: their numbers are
//! recorded as this execution's metrics. An output that is itself a symlink is left in place (the
//! step writes through it, to wherever the data is kept); when it leads to a file, the step must
//! still write that file (or replace the link): a link left as it was, to a file left as it was,
//! is not produced by the step.
//!
//! Every move is listed in `journal.json` in that directory, written (atomically) before the
//! move happens. When the step succeeds and every output is there and new, the journal is deleted
//! first, then the old copies. In every other case (failure, timeout, Ctrl-C, a missing output,
//! mlrun's own error) each original is put back, replacing what the step left at its path. If
//! mlrun itself dies in between (SIGKILL, a crash, power loss), the journal stays: the next mlrun
//! command that opens the store and finds the run abandoned puts the originals back (`recover`),
//! and says so (a replay's copies are deleted instead, `forget`: they came from its throwaway
//! scratch tree). Nothing here ever deletes an original that is not the step's own replacement.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::pipeline::Step;
use crate::pipeline::plan::within;
use crate::store::aside::{JOURNAL, Journal, Move, aside_root, remove, restore, write_journal};

/// A directory output recreated empty: how it was left, to tell whether the step wrote into it.
struct FreshDir {
    shown: String,
    path: PathBuf,
    ino: u64,
    mtime: (i64, i64),
}

/// An output that is a symbolic link to a file, left in place: how it and the file it leads to
/// were, to tell whether the step wrote through it (or replaced it).
struct LinkedFile {
    shown: String,
    path: PathBuf,
    /// (the link's inode and ctime, its target, the file's device, inode, mtime and ctime)
    stamp: Option<LinkStamp>,
}

type LinkStamp = ((u64, i64, i64), PathBuf, u64, u64, (i64, i64), (i64, i64));

fn link_stamp(p: &Path) -> Option<LinkStamp> {
    let link = std::fs::symlink_metadata(p)
        .ok()
        .filter(|m| m.is_symlink())?;
    let target = std::fs::read_link(p).ok()?;
    let file = std::fs::metadata(p).ok()?;
    Some((
        // a link made anew may get the inode just freed, never the same ctime
        (link.ino(), link.ctime(), link.ctime_nsec()),
        target,
        file.dev(),
        file.ino(),
        (file.mtime(), file.mtime_nsec()),
        (file.ctime(), file.ctime_nsec()),
    ))
}

/// The step's declared outputs (a directory shown with its `/`), and metrics files outside
/// them (read as this run's metrics, so they must be this run's too): shown, and where.
fn declared(step: &Step, root: &Path) -> Vec<(String, PathBuf)> {
    step.outputs
        .iter()
        .map(|o| {
            let shown = if o.dir {
                format!("{}/", o.path)
            } else {
                o.path.clone()
            };
            (shown, root.join(&o.path))
        })
        .chain(
            step.metrics
                .iter()
                .filter(|m| !step.outputs.iter().any(|o| within(m, &o.path)))
                .map(|m| (m.clone(), root.join(m))),
        )
        .collect()
}

/// Outputs that are themselves symlinks to a file (data kept elsewhere): they stay, the step
/// writes through them, and how each was is remembered, since it must still be written.
fn linked_files(step: &Step, root: &Path, declared: &[(String, PathBuf)]) -> Vec<LinkedFile> {
    step.outputs
        .iter()
        .filter(|o| !o.dir)
        .map(|o| root.join(&o.path))
        .filter(|p| {
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_symlink())
                && std::fs::metadata(p).is_ok_and(|m| m.is_file())
        })
        .map(|p| LinkedFile {
            shown: declared
                .iter()
                .find(|(_, d)| *d == p)
                .map(|(s, _)| s.clone())
                .unwrap_or_default(),
            stamp: link_stamp(&p),
            path: p,
        })
        .collect()
}

/// Why the outputs could not be moved aside, as the step's failure says it.
fn fail(what: String, e: std::io::Error) -> String {
    format!("could not move the previous outputs aside before it ran: {what}: {e}")
}

/// The outputs of one attempt, moved aside. Dropping it without `discard` puts them back.
pub struct Aside {
    dir: PathBuf,
    journal: Journal,
    fresh: Vec<FreshDir>,
    linked: Vec<LinkedFile>,
    settled: bool,
}

impl Aside {
    /// Move the step's existing declared outputs aside (none with `keep-outputs = true`).
    /// On an error, what was already moved is put back and the error says what could not move.
    pub fn move_aside(
        tmp: &Path,
        run_id: &str,
        step: &Step,
        attempt: u32,
        root: &Path,
    ) -> Result<Aside, String> {
        let dir = aside_root(tmp).join(format!("{run_id}-{}-{attempt}", step.name));
        let mut aside = Aside {
            dir,
            journal: Journal {
                run_id: run_id.to_string(),
                step: step.name.clone(),
                root: Some(root.to_path_buf()),
                moves: Vec::new(),
            },
            fresh: Vec::new(),
            linked: Vec::new(),
            settled: step.keep_outputs,
        };
        if step.keep_outputs {
            return Ok(aside);
        }
        let declared = declared(step, root);
        aside.linked = linked_files(step, root, &declared);
        let present: Vec<(String, PathBuf)> = declared
            .into_iter()
            .filter(|(_, p)| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_symlink()))
            .collect();
        if present.is_empty() {
            aside.settled = true;
            return Ok(aside);
        }
        std::fs::create_dir_all(&aside.dir)
            .map_err(|e| fail(format!("cannot create `{}`", aside.dir.display()), e))?;
        for (n, (shown, original)) in present.into_iter().enumerate() {
            aside.move_one(n, shown, original, run_id)?;
        }
        Ok(aside)
    }

    /// Move one output aside (output `n` of the step), journalled first; a directory is
    /// recreated empty, with its permissions, for the step to write into.
    fn move_one(
        &mut self,
        n: usize,
        shown: String,
        original: PathBuf,
        run_id: &str,
    ) -> Result<(), String> {
        let meta = std::fs::symlink_metadata(&original).ok();
        let mut m = Move {
            path: shown.clone(),
            original: original.clone(),
            aside: self.dir.join(n.to_string()),
        };
        self.journal.moves.push(m.clone());
        if let Err(e) = write_journal(&self.dir, &self.journal) {
            self.journal.moves.pop();
            return Err(fail("cannot write its journal".into(), e));
        }
        let moved = match std::fs::rename(&original, &m.aside) {
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                // the store is on another filesystem: beside the output, then
                let name = original
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                m.aside = original.with_file_name(format!(".{name}.mlrun-aside-{run_id}"));
                *self.journal.moves.last_mut().expect("just pushed") = m.clone();
                write_journal(&self.dir, &self.journal)
                    .and_then(|()| std::fs::rename(&original, &m.aside))
            }
            other => other,
        };
        if let Err(e) = moved {
            self.journal.moves.pop();
            return Err(fail(format!("`{shown}`"), e));
        }
        if meta.as_ref().is_some_and(|m| m.is_dir()) {
            let made = std::fs::create_dir(&original).and_then(|()| {
                if let Some(m) = &meta {
                    std::fs::set_permissions(&original, m.permissions())?;
                }
                std::fs::metadata(&original)
            });
            match made {
                Ok(now) => self.fresh.push(FreshDir {
                    shown,
                    path: original,
                    ino: now.ino(),
                    mtime: (now.mtime(), now.mtime_nsec()),
                }),
                Err(e) => return Err(fail(format!("cannot recreate `{shown}`"), e)),
            }
        }
        Ok(())
    }

    /// Some output was moved aside (there is something to put back).
    pub fn moved(&self) -> bool {
        !self.journal.moves.is_empty()
    }

    /// Directory outputs the step found (recreated empty) and left exactly as they were.
    pub fn unwritten_dirs(&self) -> Vec<String> {
        self.fresh
            .iter()
            .filter(|f| {
                std::fs::symlink_metadata(&f.path).is_ok_and(|m| {
                    m.is_dir()
                        && m.ino() == f.ino
                        && (m.mtime(), m.mtime_nsec()) == f.mtime
                        && std::fs::read_dir(&f.path).is_ok_and(|mut d| d.next().is_none())
                })
            })
            .map(|f| f.shown.clone())
            .collect()
    }

    /// Outputs that are links to files which the step left exactly as they were: the same link
    /// to the same, unmodified file (a write through the link changes the file's mtime).
    pub fn unwritten_links(&self) -> Vec<String> {
        self.linked
            .iter()
            .filter(|l| l.stamp.is_some() && link_stamp(&l.path) == l.stamp)
            .map(|l| l.shown.clone())
            .collect()
    }

    /// The step succeeded: forget the previous outputs. The journal goes first, so that a crash
    /// from here on can never put an old output over a new one.
    pub fn discard(mut self) -> Vec<String> {
        self.settled = true;
        if self.journal.moves.is_empty() {
            let _ = std::fs::remove_dir(&self.dir);
            return Vec::new();
        }
        let mut errors = Vec::new();
        if let Err(e) = std::fs::remove_file(self.dir.join(JOURNAL)) {
            errors.push(format!("cannot delete `{}`: {e}", self.dir.display()));
            return errors;
        }
        for m in &self.journal.moves {
            if let Err(e) = remove(&m.aside) {
                errors.push(format!(
                    "cannot delete the previous `{}` (at `{}`): {e}",
                    m.path,
                    m.aside.display()
                ));
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
        errors
    }

    /// The step did not succeed: put every original back. Returns what could not be.
    pub fn put_back(mut self) -> Vec<String> {
        self.settled = true;
        restore(&self.dir, &self.journal).1
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        if !self.settled {
            self.settled = true;
            for e in restore(&self.dir, &self.journal).1 {
                eprintln!("warning: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Cmd, PathDecl};
    use crate::store::aside::recover;

    fn step(outputs: &[(&str, bool)]) -> Step {
        Step {
            name: "s".into(),
            cmd: Cmd::Argv(vec!["true".into()]),
            template: Cmd::Argv(vec!["true".into()]),
            inputs: Vec::new(),
            outputs: outputs
                .iter()
                .map(|(p, dir)| PathDecl {
                    path: p.to_string(),
                    dir: *dir,
                    store: true,
                })
                .collect(),
            params: Default::default(),
            metrics: Vec::new(),
            env: Default::default(),
            cwd: String::new(),
            deps: Vec::new(),
            timeout: None,
            retries: 0,
            retry_delay: Default::default(),
            trace: None,
            trace_ignore: Vec::new(),
            trace_ignore_defaults: true,
            keep_outputs: false,
            model: None,
            executor: Default::default(),
            resources: Default::default(),
        }
    }

    #[test]
    fn moved_aside_then_put_back_or_discarded_or_recovered() {
        let d = tempfile::tempdir().unwrap();
        let (root, tmp) = (d.path().join("p"), d.path().join("tmp"));
        std::fs::create_dir_all(root.join("m")).unwrap();
        std::fs::write(root.join("a.txt"), "old a").unwrap();
        std::fs::write(root.join("m/w"), "old w").unwrap();
        let s = step(&[("a.txt", false), ("m", true), ("never.txt", false)]);

        // failure: the partial outputs are replaced by the originals
        let a = Aside::move_aside(&tmp, "r1", &s, 1, &root).unwrap();
        assert!(!root.join("a.txt").exists());
        assert!(
            root.join("m").is_dir(),
            "a directory output is recreated empty"
        );
        assert_eq!(a.unwritten_dirs(), ["m/"]);
        std::fs::write(root.join("a.txt"), "partial").unwrap();
        std::fs::write(root.join("never.txt"), "partial").unwrap();
        assert!(a.put_back().is_empty());
        assert_eq!(
            std::fs::read_to_string(root.join("a.txt")).unwrap(),
            "old a"
        );
        assert_eq!(std::fs::read_to_string(root.join("m/w")).unwrap(), "old w");
        assert_eq!(
            std::fs::read_to_string(root.join("never.txt")).unwrap(),
            "partial",
            "nothing to put back: left as the step wrote it"
        );

        // success: the originals are gone, the new ones stay
        let a = Aside::move_aside(&tmp, "r2", &s, 1, &root).unwrap();
        std::fs::write(root.join("m/new"), "new").unwrap();
        assert!(a.unwritten_dirs().is_empty());
        std::fs::write(root.join("a.txt"), "new a").unwrap();
        assert!(a.discard().is_empty());
        assert_eq!(
            std::fs::read_to_string(root.join("a.txt")).unwrap(),
            "new a"
        );
        assert!(!root.join("m/w").exists());
        assert!(!tmp.join("aside").join("r2-s-1").exists());

        // mlrun killed: the journal brings them back
        let a = Aside::move_aside(&tmp, "r3", &s, 1, &root).unwrap();
        std::mem::forget(a);
        std::fs::write(root.join("a.txt"), "partial").unwrap();
        let lines = recover(&tmp, "r3");
        assert_eq!(
            lines.len(),
            2,
            "a.txt and m/ (never.txt went with r2): {lines:?}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("a.txt")).unwrap(),
            "new a"
        );
        assert!(root.join("m/new").exists());
        assert_eq!(std::fs::read_dir(tmp.join("aside")).unwrap().count(), 0);
    }
}

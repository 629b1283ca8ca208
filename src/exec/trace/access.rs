//! What the tracer saw, per path, and the report the helper process hands back to mlrun.
//!
//! Events are applied in the order the tracer observed them, which for causally related system
//! calls is the order they happened (a traced process is stopped until its event is recorded).
//! Renames move what is known about a path (and everything under it) to the new name, so the
//! atomic-write pattern (write `x.tmp`, rename it to `x`) leaves `x` written and `x.tmp` gone.
//!
//! Paths are absolute, as the kernel resolved them. This module never touches the file system.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything the step did to one path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(default, skip_serializing_if = "is_false")]
    pub read: bool,
    /// opened for writing, created, truncated, renamed or linked to this name, made a directory
    #[serde(default, skip_serializing_if = "is_false")]
    pub written: bool,
    /// unlinked, removed or renamed away (and not re-created since)
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// executed (the program file of an `execve`)
    #[serde(default, skip_serializing_if = "is_false")]
    pub exec: bool,
    /// the target of a rename: a directory renamed into place is an output as a whole
    #[serde(default, skip_serializing_if = "is_false")]
    pub renamed_into: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The helper's report: written as JSON to the file mlrun named, read back after the step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// absolute path → what happened to it
    pub accesses: BTreeMap<String, Access>,
    /// the program could not be started (as `could not start ...` without tracing)
    pub spawn_error: Option<String>,
    /// tracing could not be set up; the step did not run
    pub setup_error: Option<String>,
    /// programs (by name) that called `ptrace`, which fails under the tracer
    pub ptrace_users: Vec<String>,
    /// descriptions of processes that made system calls of another architecture (32-bit code),
    /// whose file accesses the tracer does not see
    pub foreign_arch: Vec<String>,
    /// successful file system calls whose path could not be resolved
    pub unresolved: u64,
}

impl Report {
    fn entry(&mut self, path: &str) -> &mut Access {
        self.accesses.entry(path.to_string()).or_default()
    }

    /// Opened for reading.
    pub fn read(&mut self, path: &str) {
        let a = self.entry(path);
        a.read = true;
        // it exists now, whatever happened to it before
        a.deleted = false;
    }

    pub fn written(&mut self, path: &str) {
        let a = self.entry(path);
        a.written = true;
        a.deleted = false;
    }

    pub fn executed(&mut self, path: &str) {
        let a = self.entry(path);
        a.exec = true;
        a.read = true;
        a.deleted = false;
    }

    pub fn deleted(&mut self, path: &str) {
        self.entry(path).deleted = true;
    }

    /// `from` was renamed to `to` (with `exchange`, the two were swapped).
    pub fn renamed(&mut self, from: &str, to: &str, exchange: bool) {
        if from == to {
            return;
        }
        let moved_from = self.take_tree(from);
        let moved_to = if exchange {
            self.take_tree(to)
        } else {
            Vec::new()
        };
        // The new names hold what the old ones held, now written by the step; the old names keep
        // their history and are gone (so a temporary file renamed into place stays temporary).
        let place = |report: &mut Report, old: &str, new: &str, items: Vec<(String, Access)>| {
            for (path, a) in items {
                let dest = format!("{new}{}", &path[old.len()..]);
                let moved = Access {
                    written: true,
                    deleted: false,
                    renamed_into: path == old,
                    ..a.clone()
                };
                report.accesses.insert(dest, moved);
                if !exchange {
                    report.accesses.insert(path, Access { deleted: true, ..a });
                }
            }
        };
        // the destination (and anything under it) is replaced
        if !exchange {
            drop(self.take_tree(to));
        }
        let had_from = moved_from.iter().any(|(p, _)| p == from);
        place(self, from, to, moved_from);
        if !had_from {
            // a file mlrun never saw before: it now exists under the new name
            let a = self.entry(to);
            a.written = true;
            a.deleted = false;
            a.renamed_into = true;
        }
        if exchange {
            let had_to = moved_to.iter().any(|(p, _)| p == to);
            place(self, to, from, moved_to);
            if !had_to {
                self.written(from);
            }
        } else {
            let a = self.entry(from);
            a.deleted = true;
        }
    }

    /// Remove `root` and everything recorded under `root/`, returning them.
    fn take_tree(&mut self, root: &str) -> Vec<(String, Access)> {
        let prefix = format!("{root}/");
        let mut keys: Vec<String> = self
            .accesses
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        if self.accesses.contains_key(root) {
            keys.push(root.to_string());
        }
        keys.into_iter()
            .filter_map(|k| self.accesses.remove(&k).map(|a| (k, a)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_the_final_name_written_and_the_temp_gone() {
        let mut r = Report::default();
        r.written("/p/model.bin.tmp");
        r.renamed("/p/model.bin.tmp", "/p/model.bin", false);
        let fin = &r.accesses["/p/model.bin"];
        assert!(fin.written && !fin.deleted);
        let tmp = &r.accesses["/p/model.bin.tmp"];
        assert!(tmp.written && tmp.deleted, "{tmp:?}");
    }

    #[test]
    fn renaming_a_directory_moves_what_is_known_under_it() {
        let mut r = Report::default();
        r.written("/p/out.tmp");
        r.written("/p/out.tmp/a.bin");
        r.read("/p/out.tmp/b.txt");
        r.renamed("/p/out.tmp", "/p/out", false);
        assert!(r.accesses["/p/out"].renamed_into);
        assert!(r.accesses["/p/out/a.bin"].written);
        assert!(r.accesses["/p/out/b.txt"].written);
        // the old names are gone; a file the step wrote there was temporary
        let old = &r.accesses["/p/out.tmp/a.bin"];
        assert!(old.written && old.deleted);
        // a sibling whose name merely starts the same is untouched
        r.written("/p/out.tmp2");
        r.renamed("/p/out", "/p/final", false);
        assert!(r.accesses.contains_key("/p/out.tmp2"));
    }

    #[test]
    fn renaming_an_unseen_file_creates_the_new_name_and_deletes_the_old() {
        let mut r = Report::default();
        r.renamed("/p/a", "/p/b", false);
        assert!(r.accesses["/p/b"].written);
        assert!(r.accesses["/p/a"].deleted && !r.accesses["/p/a"].written);
    }

    #[test]
    fn exchange_swaps_and_writes_both() {
        let mut r = Report::default();
        r.read("/p/a");
        r.renamed("/p/a", "/p/b", true);
        assert!(r.accesses["/p/a"].written && !r.accesses["/p/a"].deleted);
        assert!(r.accesses["/p/b"].written && r.accesses["/p/b"].read);
    }

    #[test]
    fn recreating_a_deleted_file_clears_the_deletion() {
        let mut r = Report::default();
        r.written("/p/x");
        r.deleted("/p/x");
        assert!(r.accesses["/p/x"].deleted);
        r.written("/p/x");
        assert!(!r.accesses["/p/x"].deleted);
    }
}

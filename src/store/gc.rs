//! `mlrun gc`'s and `fsck --repair`'s side of the database: what the kept runs need (with the
//! files of the directory versions they need), what the database says is stored, and the
//! correction that says it no longer is. The SQL is in `marks`; this is the interface.

use std::collections::HashSet;
use std::time::SystemTime;

use super::logs::{Collected, LogObjects};
use super::{During, Store, WriteError, marks, query};
use crate::error::Result;
use crate::fingerprint::hash::parse_manifest;

/// The objects gc must keep.
#[derive(Debug, Default)]
pub struct Kept {
    /// the blobs the kept runs and the registered model versions use, and every file of the
    /// directory versions among them
    pub objects: HashSet<String>,
    /// kept directory versions whose manifest is missing or damaged: which files they need is
    /// unknown, so gc must delete nothing
    pub unreadable_manifests: Vec<String>,
}

impl Store {
    /// How many runs the database records.
    pub fn run_count(&self) -> Result<i64> {
        marks::run_count(&self.conn).during("counting the recorded runs")
    }

    /// What gc keeps with `keep_last` (the N most recent runs of the workspace with their
    /// replays, the runs in progress and the runs that made a registered model version; every
    /// run when `None`): see `Kept`.
    pub fn kept_objects(&self, keep_last: Option<super::marks::KeepLast>) -> Result<Kept> {
        let mut objects =
            marks::referenced(&self.conn, keep_last).during("reading what the kept runs use")?;
        // the files of a kept directory version are kept with it
        let mut in_dirs = Vec::new();
        let mut unreadable = Vec::new();
        query::for_each_dir_manifest(&self.conn, |hash, data| {
            if objects.contains(hash) {
                match data.and_then(parse_manifest) {
                    Some(entries) => in_dirs.extend(entries.into_iter().map(|e| e.hash)),
                    None => unreadable.push(hash.to_string()),
                }
            }
            Ok(())
        })
        .during("reading the directory manifests")?;
        objects.extend(in_dirs);
        Ok(Kept {
            objects,
            unreadable_manifests: unreadable,
        })
    }

    /// When the oldest run still in progress started (ms since the epoch).
    pub fn oldest_running_start(&self) -> Result<Option<i64>> {
        marks::oldest_running_start(&self.conn).during("reading the runs in progress")
    }

    /// Hashes of the file blobs the database says are in the object store.
    pub fn stored_files(&self) -> Result<HashSet<String>> {
        marks::stored_files(&self.conn).during("reading the stored objects")
    }

    /// Directory versions said to be stored whose manifest is unreadable or names a file
    /// object in `gone`: they can no longer be restored.
    pub fn dirs_needing(&self, gone: &HashSet<String>) -> Result<Vec<String>> {
        marks::dirs_needing(&self.conn, gone).during("finding the directories that need them")
    }

    /// Say, in one transaction, that these blobs are no longer stored; how many were. The error
    /// tells a full disk apart (`gc` then deletes first).
    pub fn mark_not_stored<'a>(
        &self,
        hashes: impl IntoIterator<Item = &'a String>,
    ) -> std::result::Result<usize, WriteError> {
        Ok(marks::mark_not_stored(&self.conn, hashes)?)
    }

    /// gc of the long step logs (`objects/logs/`): see `LogObjects::collect_garbage`.
    pub fn collect_log_garbage(
        &self,
        logs: &LogObjects,
        keep_last: Option<super::marks::KeepLast>,
        guard: Option<SystemTime>,
        dry_run: bool,
    ) -> Result<Collected> {
        logs.collect_garbage(&self.conn, keep_last, guard, dry_run)
            .during("collecting the unreferenced step logs")
    }

    /// The logs the database says are stored: (hash, "RUN:STEP stream" of one log that has it).
    pub fn expected_logs(&self) -> Result<Vec<(String, String)>> {
        LogObjects::expected(&self.conn).during("reading the stored step logs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::hash::{Entry, MODE_FILE, manifest, sha256_bytes};

    fn entry(relpath: &str, hash: &str) -> Entry {
        Entry {
            relpath: relpath.into(),
            raw: None,
            mode: MODE_FILE,
            hash: hash.into(),
            size: 1,
        }
    }

    /// Runs `old` and `new` (and `new`'s replay), each with one output; `new`'s is a directory
    /// holding files `f1` and `f2`; `old`'s file is registered as a model version.
    fn store() -> (Store, String) {
        let store = Store::in_memory();
        let m = manifest(&[
            entry(
                "a",
                "1111111111111111111111111111111111111111111111111111111111111111",
            ),
            entry(
                "b",
                "2222222222222222222222222222222222222222222222222222222222222222",
            ),
        ]);
        let dir = sha256_bytes(&m);
        let mut sql = String::from("INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');");
        sql += &format!(
            "INSERT INTO contents (hash, size, data) VALUES ('{dir}', {}, x'{}');",
            m.len(),
            hex::encode(&m)
        );
        for (id, at, replay_of) in [("old", 1, "NULL"), ("new", 2, "NULL"), ("rep", 3, "'new'")] {
            sql += &format!(
                "INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid, replay_of)
                   VALUES ('{id}', 'p', 'p.toml', '/nowhere', 's', '{{}}', '{{}}', 'succeeded', {at}, 'h', 'u', '0', '[]', 1, {replay_of});"
            );
        }
        sql += &format!(
            "INSERT INTO blobs (hash, kind, size, nfiles, stored) VALUES
               ('o1', 'file', 1, 1, 1), ('{dir}', 'dir', 2, 2, 1), ('r1', 'file', 1, 1, 1),
               ('1111111111111111111111111111111111111111111111111111111111111111', 'file', 1, 1, 1), ('2222222222222222222222222222222222222222222222222222222222222222', 'file', 1, 1, 1), ('loose', 'file', 1, 1, 1);
             INSERT INTO artifacts (id, path) VALUES (1, 'old.bin'), (2, 'data'), (3, 'rep.bin');
             INSERT INTO artifact_versions (id, artifact_id, blob_hash, first_seen) VALUES
               (1, 1, 'o1', 0), (2, 2, '{dir}', 0), (3, 3, 'r1', 0);
             INSERT INTO step_execs (id, run_id, step, cmd, argv, cwd, status) VALUES
               (1, 'old', 's', 'c', '[]', '', 'succeeded'), (2, 'new', 's', 'c', '[]', '', 'succeeded'),
               (3, 'rep', 's', 'c', '[]', '', 'succeeded');
             INSERT INTO io_edges (step_exec, direction, av_id) VALUES (1, 'out', 1), (2, 'out', 2), (3, 'out', 3);"
        );
        store.execute_batch_for_test(&sql);
        (store, dir)
    }

    fn set(hashes: &[&str]) -> HashSet<String> {
        hashes.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn the_last_run_keeps_its_directory_files_and_its_replay() {
        let (store, dir) = store();
        let kept = store
            .kept_objects(Some(super::super::marks::KeepLast {
                n: 1,
                any_status: true,
            }))
            .unwrap();
        assert_eq!(
            kept.objects,
            set(&[
                &dir,
                "1111111111111111111111111111111111111111111111111111111111111111",
                "2222222222222222222222222222222222222222222222222222222222222222",
                "r1"
            ])
        );
        assert!(kept.unreadable_manifests.is_empty());
        let all = store.kept_objects(None).unwrap();
        assert_eq!(
            all.objects,
            set(&[
                "o1",
                &dir,
                "1111111111111111111111111111111111111111111111111111111111111111",
                "2222222222222222222222222222222222222222222222222222222222222222",
                "r1"
            ])
        );
        assert_eq!(store.run_count().unwrap(), 3);
    }

    #[test]
    fn a_registered_version_keeps_its_run() {
        let (store, dir) = store();
        store.execute_batch_for_test(
            "INSERT INTO models (id, name, created_at) VALUES (1, 'm', 0);
             INSERT INTO model_versions (model_id, label, semver, major, av_id, run_id, registered_at, registered_by)
               VALUES (1, 'v1', '1.0.0', 1, 1, 'old', 0, 'u');",
        );
        let kept = store
            .kept_objects(Some(super::super::marks::KeepLast {
                n: 1,
                any_status: true,
            }))
            .unwrap();
        assert_eq!(
            kept.objects,
            set(&[
                "o1",
                &dir,
                "1111111111111111111111111111111111111111111111111111111111111111",
                "2222222222222222222222222222222222222222222222222222222222222222",
                "r1"
            ])
        );
    }

    #[test]
    fn a_kept_directory_without_its_manifest_is_reported() {
        let (store, dir) = store();
        store.execute_batch_for_test(&format!("DELETE FROM contents WHERE hash = '{dir}'"));
        let kept = store
            .kept_objects(Some(super::super::marks::KeepLast {
                n: 1,
                any_status: true,
            }))
            .unwrap();
        assert_eq!(kept.unreadable_manifests, [dir]);
        assert!(store.dirs_needing(&HashSet::new()).unwrap().is_empty());
    }

    #[test]
    fn marking_not_stored_counts_what_was_stored() {
        let (store, dir) = store();
        assert!(store.stored_files().unwrap().contains("loose"));
        let gone = [String::from("loose"), String::from("nothing")];
        assert_eq!(store.mark_not_stored(&gone).unwrap(), 1);
        assert_eq!(store.mark_not_stored(&gone).unwrap(), 0);
        assert!(!store.stored_files().unwrap().contains("loose"));
        assert_eq!(
            store
                .dirs_needing(&set(&[
                    "1111111111111111111111111111111111111111111111111111111111111111"
                ]))
                .unwrap(),
            [dir]
        );
    }
}

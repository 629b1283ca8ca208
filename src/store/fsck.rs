//! What `mlrun fsck` reads from the database to check the objects against it: the stored
//! directory versions, every directory manifest, the package lists, and the paths whose
//! versions need a problem object.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{During, Store, packages, query};
use crate::error::Result;
use crate::fingerprint::hash::parse_manifest;

impl Store {
    /// Hashes of the directory versions the database says are stored.
    pub fn stored_dirs(&self) -> Result<HashSet<String>> {
        let read = || -> Result<HashSet<String>> {
            let mut stmt = self
                .conn
                .prepare("SELECT hash FROM blobs WHERE stored = 1 AND kind = 'dir'")?;
            let out = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(out)
        };
        read().during("reading the stored directory versions")
    }

    /// Every directory version's hash with its manifest (`None`: missing), in the order the
    /// database holds them.
    pub fn each_dir_manifest(
        &self,
        f: impl FnMut(&str, Option<&[u8]>) -> Result<()>,
    ) -> Result<()> {
        query::for_each_dir_manifest(&self.conn, f).during("reading the directory manifests")
    }

    /// The recorded package lists that do not hash to their name, or that a step names but the
    /// store lacks: (hash, problem).
    pub fn damaged_package_sets(&self) -> Result<Vec<(String, &'static str)>> {
        packages::damaged_sets(&self.conn).during("checking the recorded package lists")
    }

    /// The paths whose versions need each of `hashes`: as artifacts, or as files inside
    /// recorded directories (`dir/file`), sorted.
    pub fn paths_needing(&self, hashes: &[&str]) -> Result<HashMap<String, BTreeSet<String>>> {
        self.paths_needing_in(hashes)
            .during("finding the paths that need the problem objects")
    }

    fn paths_needing_in(&self, hashes: &[&str]) -> Result<HashMap<String, BTreeSet<String>>> {
        const PATHS: &str = "SELECT DISTINCT a.path FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id WHERE v.blob_hash = ?1";
        let mut paths: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut direct_q = self.conn.prepare(PATHS)?;
        for h in hashes {
            let direct = direct_q
                .query_map([h], |r| r.get(0))?
                .collect::<rusqlite::Result<BTreeSet<String>>>()?;
            paths.insert(h.to_string(), direct);
        }
        drop(direct_q);
        if hashes.is_empty() {
            return Ok(paths);
        }
        let mut dirs_q = self.conn.prepare_cached(PATHS)?;
        query::for_each_dir_manifest(&self.conn, |hash, data| {
            for e in data.and_then(parse_manifest).unwrap_or_default() {
                if let Some(set) = paths.get_mut(&e.hash) {
                    for dir in dirs_q.query_map([hash], |r| r.get::<_, String>(0))? {
                        set.insert(format!("{}/{}", dir?, e.relpath));
                    }
                }
            }
            Ok(())
        })?;
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::hash::{Entry, MODE_FILE, manifest, sha256_bytes};

    #[test]
    fn a_problem_object_names_its_paths_direct_and_inside_directories() {
        let store = Store::in_memory();
        let m = manifest(&[Entry {
            relpath: "sub/f.csv".into(),
            raw: None,
            mode: MODE_FILE,
            hash: "1111111111111111111111111111111111111111111111111111111111111111".into(),
            size: 1,
        }]);
        let dir = sha256_bytes(&m);
        store.execute_batch_for_test(&format!(
            "INSERT INTO contents (hash, size, data) VALUES ('{dir}', {}, x'{}');
             INSERT INTO blobs (hash, kind, size, nfiles, stored) VALUES ('{dir}', 'dir', 1, 1, 1), ('1111111111111111111111111111111111111111111111111111111111111111', 'file', 1, 1, 1);
             INSERT INTO artifacts (id, path) VALUES (1, 'data'), (2, 'copy.csv');
             INSERT INTO artifact_versions (id, artifact_id, blob_hash, first_seen) VALUES (1, 1, '{dir}', 0), (2, 2, '1111111111111111111111111111111111111111111111111111111111111111', 0);",
            m.len(),
            hex::encode(&m)
        ));
        let paths = store
            .paths_needing(&[
                "1111111111111111111111111111111111111111111111111111111111111111",
                "unknown",
            ])
            .unwrap();
        assert_eq!(
            paths["1111111111111111111111111111111111111111111111111111111111111111"]
                .iter()
                .collect::<Vec<_>>(),
            ["copy.csv", "data/sub/f.csv"]
        );
        assert!(paths["unknown"].is_empty());
        assert_eq!(store.stored_dirs().unwrap(), HashSet::from([dir]));
    }
}

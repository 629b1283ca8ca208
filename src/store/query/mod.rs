//! Reads from the lineage store. The structs here are also the `--json` shapes of `runs` and
//! `show` (documented in the README), so fields are only ever added, never renamed.

use std::collections::BTreeMap;

use super::During;
use crate::error::Result;
use crate::fingerprint::hash::Entry;

mod detail;
mod manifests;
mod resolve;
mod runs;

// The submodules' items are the query API; callers name them `store::query::X`.
pub use detail::*;
pub(in crate::store) use manifests::*;
pub use resolve::*;
pub use runs::*;

impl super::Store {
    /// `id` as mlrun shows it: see `query::short_id`.
    pub fn short_id(&self, id: &str) -> Result<String> {
        short_id(&self.conn, id).during(format_args!("reading the shown id of run {id}"))
    }

    /// The run id a run name means (`latest`, `latest-replay`, an id or prefix, `~N`): see `query::resolve_run`.
    pub fn resolve_run(&self, target: &str) -> std::result::Result<String, ResolveError> {
        resolve_run(&self.conn, target).map_err(|e| match e {
            ResolveError::Failed(e) => ResolveError::Failed(super::name_operation(
                e,
                format_args!("resolving run `{target}`"),
            )),
            ambiguous => ambiguous,
        })
    }

    /// Runs whose id starts with `prefix` (lowercase hex): (id, pipeline, started), at most 11.
    pub fn run_candidates(&self, prefix: &str) -> Result<Vec<(String, String, i64)>> {
        run_candidates(&self.conn, prefix)
            .during(format_args!("looking up runs starting with `{prefix}`"))
    }

    /// The project roots runs were recorded in.
    pub fn project_roots(&self) -> Result<Vec<String>> {
        roots(&self.conn).during("reading the recorded project roots")
    }

    /// The paths a run's steps read or wrote.
    pub fn run_paths(&self, run_id: &str) -> Result<Vec<String>> {
        run_paths(&self.conn, run_id).during(format_args!("reading the paths of run {run_id}"))
    }

    /// The runs `f` selects, newest first, with their metrics (and params when asked).
    pub fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>> {
        list_runs(&self.conn, f).during("reading the runs list")
    }

    /// Every recorded pipeline, param or metric name.
    pub fn known_names(&self, what: Known) -> Result<Vec<String>> {
        known_names(&self.conn, what).during("reading the recorded names")
    }

    /// Everything recorded about a run (`show`).
    pub fn run_detail(&self, id: &str, with_diff: bool) -> Result<RunDetail> {
        run_detail(&self.conn, id, with_diff).during(format_args!("reading run {id}"))
    }

    /// The files of a directory version, from its manifest.
    pub fn dir_entry_list(&self, dir_hash: &str) -> Result<Vec<Entry>> {
        dir_entry_list(&self.conn, dir_hash).during(format_args!(
            "reading the manifest of directory version {}",
            dir_hash.get(..12).unwrap_or(dir_hash)
        ))
    }

    /// The files of a directory version: relative path → content hash.
    pub fn dir_entries(&self, dir_hash: &str) -> Result<BTreeMap<String, String>> {
        dir_entries(&self.conn, dir_hash).during(format_args!(
            "reading the manifest of directory version {}",
            dir_hash.get(..12).unwrap_or(dir_hash)
        ))
    }

    /// A step's recorded log (head, tail, where its whole log is).
    pub fn step_log(&self, exec_id: i64, stream: &str) -> Result<StepLogData> {
        step_log(&self.conn, exec_id, stream).during(format_args!(
            "reading the {stream} log of execution {exec_id}"
        ))
    }
}

impl super::Store {
    /// The run removed with `mlrun rm` that an id prefix names, if it does.
    pub fn removed_run(&self, prefix: &str) -> Option<RemovedRun> {
        removed_run(&self.conn, prefix)
    }
}

#[cfg(test)]
mod tests;

//! Lineage reads: which artifact version a target names, and the graph of versions, step
//! executions, runs and commits around it.
//!
//! A traversal is ONE recursive query over `io_edges` (`UNION`, so a cycle across runs ends),
//! followed by a fixed number of set-based queries for the details of the nodes it found. It must
//! never issue a query per node: lineage stays fast however long the history grows. The walk
//! keeps the queue (`walk`) as the outer loop of every recursive step (`CROSS JOIN` fixes the
//! order): SQLite only considers a Bloom filter when an analysed table is the outer loop, and a
//! Bloom filter built inside a recursive step rescans `io_edges` on every hop (see FINDINGS).

use std::collections::HashMap;

use super::During;
use crate::error::Result;

mod card;
mod exec;
mod export;
mod gaps;
mod graph;
mod version;

// The submodules' items are the lineage API; callers name them `store::lineage::X`.
pub use card::*;
pub use exec::*;
pub use export::*;
pub use gaps::*;
pub use graph::*;
pub use version::*;

/// Which way a traversal goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// what a target was made from
    Up,
    /// what was made from a target
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "upstream",
            Direction::Down => "downstream",
        }
    }
}

/// Where a traversal starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    Version(i64),
    Exec(i64),
    Run(String),
}

/// Where `mlrun lineage` takes its rows from: the local store (`cmd::lineage`) or the team
/// remote's PostgreSQL (`remote::lineage`). Both answer with the same [`Graph`], which one
/// printer (`report::graph`, `--json`) shows.
pub trait Source {
    /// What a target names, in the backend's own keys.
    type Seed;
    /// Resolve a command-line TARGET.
    fn seed(&mut self, target: &str) -> Result<Found<Self::Seed>>;
    /// The lineage graph from `seed`.
    fn graph(
        &mut self,
        seed: &Self::Seed,
        direction: Direction,
        depth: Option<u32>,
    ) -> Result<Graph>;
}

/// A resolved TARGET: where the walk starts, the file inside a directory version it named, a
/// note for stderr when it is not exactly what was asked for, and the web view's URL for it.
pub struct Found<S> {
    pub seed: S,
    pub file: Option<Member>,
    pub note: Option<String>,
    pub link: Option<String>,
}

impl super::Store {
    /// An artifact version by id.
    pub fn version(&self, av_id: i64) -> Result<Option<Version>> {
        version(&self.conn, av_id).during(format_args!("reading version {av_id}"))
    }

    /// The id of the artifact recorded at `path`.
    pub fn artifact_id(&self, path: &str) -> Result<Option<i64>> {
        artifact_id(&self.conn, path).during(format_args!("looking up artifact `{path}`"))
    }

    /// The version of `path` with content `hash`.
    pub fn version_by_content(&self, path: &str, hash: &str) -> Result<Option<Version>> {
        version_by_content(&self.conn, path, hash)
            .during(format_args!("looking up `{path}` by content"))
    }

    /// The newest version recorded at `path`.
    pub fn latest_version(&self, path: &str) -> Result<Option<Version>> {
        latest_version(&self.conn, path)
            .during(format_args!("reading the latest version of `{path}`"))
    }

    /// The version of `path` a run's steps read or wrote.
    pub fn version_in_run(&self, path: &str, run_id: &str) -> Result<Option<Version>> {
        version_in_run(&self.conn, path, run_id).during(format_args!(
            "reading the version of `{path}` in run {run_id}"
        ))
    }

    /// The newest version of directory `dir` that holds `relpath` (with content `file_hash` when given).
    pub fn newest_dir_version_containing(
        &self,
        dir: &str,
        relpath: &str,
        file_hash: Option<&str>,
    ) -> Result<Option<Version>> {
        newest_dir_version_containing(&self.conn, dir, relpath, file_hash).during(format_args!(
            "looking up `{relpath}` in the versions of `{dir}`"
        ))
    }

    /// File `relpath` of directory version `dir`.
    pub fn member(&self, dir: &Version, relpath: &str) -> Result<Option<Member>> {
        member(&self.conn, dir, relpath)
            .during(format_args!("reading `{relpath}` in a directory version"))
    }

    /// The recorded directories that `path` is inside, nearest first.
    pub fn recorded_parent_dirs(&self, path: &str) -> Result<Vec<String>> {
        recorded_parent_dirs(&self.conn, path).during(format_args!(
            "looking up the recorded directories holding `{path}`"
        ))
    }

    /// The versions whose content hash starts with `prefix`.
    pub fn versions_by_hash_prefix(&self, prefix: &str) -> Result<Vec<Version>> {
        versions_by_hash_prefix(&self.conn, prefix)
            .during(format_args!("looking up hash prefix `{prefix}`"))
    }

    /// The one version a hash prefix names (an error when several).
    pub fn resolve_hash(&self, prefix: &str) -> Result<Option<Version>> {
        resolve_hash(&self.conn, prefix).during(format_args!("resolving hash prefix `{prefix}`"))
    }

    /// The execution of `step` in a run.
    pub fn exec_of(&self, run_id: &str, step: &str) -> Result<Option<i64>> {
        exec_of(&self.conn, run_id, step)
            .during(format_args!("looking up step {step} of run {run_id}"))
    }

    /// The step names of a run.
    pub fn steps_of(&self, run_id: &str) -> Result<Vec<String>> {
        steps_of(&self.conn, run_id).during(format_args!("reading the steps of run {run_id}"))
    }

    /// The execution that produced a version, the one people mean first.
    pub fn preferred_producer(&self, av_id: i64) -> Result<Option<i64>> {
        preferred_producer(&self.conn, av_id)
            .during(format_args!("finding the producer of version {av_id}"))
    }

    /// Step executions by id.
    pub fn execs(&self, ids: &[i64]) -> Result<HashMap<i64, Exec>> {
        execs(&self.conn, ids).during("reading step executions")
    }

    /// A version's model card: producer, inputs, params, metrics, environment.
    pub fn card(&self, av_id: i64) -> Result<Card> {
        card(&self.conn, av_id).during(format_args!("reading the card of version {av_id}"))
    }

    /// A run in the form `export` writes.
    pub fn export_run(&self, run_id: &str) -> Result<ExportRun> {
        export_run(&self.conn, run_id, None).during(format_args!("reading run {run_id} for export"))
    }

    /// `export_run` with only the step executions named in `only` (step, attempt): what a live
    /// sender reads when steps start and end, without reading the whole run again. An empty
    /// `only` reads the run's own record.
    pub fn export_run_steps(&self, run_id: &str, only: &[(String, i64)]) -> Result<ExportRun> {
        export_run(&self.conn, run_id, Some(only))
            .during(format_args!("reading run {run_id} for export"))
    }

    /// Why the lineage of these versions has a gap, in words.
    pub fn gap_reasons(&self, ids: &[i64]) -> Result<HashMap<i64, String>> {
        gap_reasons(&self.conn, ids).during("reading why lineage is incomplete")
    }

    /// The lineage graph from `seed` (one recursive query per walk).
    pub fn traverse(&self, seed: &Seed, direction: Direction, depth: Option<u32>) -> Result<Graph> {
        traverse(&self.conn, seed, direction, depth).during("walking the lineage graph")
    }
}

#[cfg(test)]
mod tests;

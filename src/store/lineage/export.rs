//! What the OpenLineage and PROV exports need about one run.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};

use super::*;
use crate::error::Result;

/// An input or output of an execution for the exports.
#[derive(Debug, Clone)]
pub struct Io {
    pub version: Version,
    pub origin: Option<String>,
    /// no recorded producer and not a tracked file: `GAP_REASON`
    pub gap: bool,
}

/// Everything the OpenLineage and PROV exports need about one run.
#[derive(Debug, Clone)]
pub struct ExportRun {
    pub detail: crate::store::query::RunDetail,
    /// execution id → (inputs, outputs)
    pub io: HashMap<i64, (Vec<Io>, Vec<Io>)>,
    /// cached/restored execution id → the run whose execution it reused
    pub reused: HashMap<i64, String>,
    /// the git working directory at the start of the run
    pub workdir: Option<String>,
    /// pipeline.toml relative to the git working directory
    pub pipeline_path_in_repo: Option<String>,
}

pub(in crate::store) fn export_run(
    conn: &Connection,
    run_id: &str,
    only: Option<&[(String, i64)]>,
) -> Result<ExportRun> {
    let detail = crate::store::query::run_detail_of(conn, run_id, false, only)?;
    let mut io = HashMap::new();
    let mut all = Vec::new();
    for s in &detail.steps {
        let ins = io_of(conn, s.exec_id, "in")?;
        let outs = io_of(conn, s.exec_id, "out")?;
        all.extend(ins.iter().map(|e| e.version.av_id));
        io.insert(s.exec_id, (ins, outs));
    }
    let gap_set = gaps(conn, &all)?;
    let conv = |list: Vec<Edge>| -> Vec<Io> {
        list.into_iter()
            .map(|e| Io {
                gap: gap_set.contains(&e.version.av_id),
                version: e.version,
                origin: e.origin,
            })
            .collect()
    };
    let io = io
        .into_iter()
        .map(|(k, (i, o))| (k, (conv(i), conv(o))))
        .collect();
    let mut reused = HashMap::new();
    let ids: Vec<i64> = detail.steps.iter().map(|s| s.exec_id).collect();
    for e in execs(conn, &ids)?.values() {
        if let Some(r) = e.reused_exec
            && let Some(orig) = execs(conn, &[r])?.remove(&r)
        {
            reused.insert(e.exec_id, orig.run_id);
        }
    }
    let workdir: Option<String> = conn
        .query_row(
            "SELECT g.workdir FROM runs r JOIN git_snapshots g ON g.id = r.git_start WHERE r.id = ?1",
            [run_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let pipeline_path_in_repo = workdir.as_ref().and_then(|w| {
        std::path::Path::new(&detail.pipeline_file)
            .strip_prefix(w)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    });
    Ok(ExportRun {
        detail,
        io,
        reused,
        workdir,
        pipeline_path_in_repo,
    })
}

// ---------------------------------------------------------------------------------------------
// The graph

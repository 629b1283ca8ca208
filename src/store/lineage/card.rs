//! The card of one artifact version (`mlrun show PATH`): where it came from, what used it.

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::*;
use crate::error::{Error, Result};

/// The run an execution belongs to, as a card shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRef {
    pub id: String,
    pub short_id: String,
    pub pipeline: String,
    pub status: String,
    pub started_at: i64,
    pub hostname: String,
    pub user: String,
}

pub(in crate::store) fn run_ref(conn: &Connection, id: &str) -> Result<Option<RunRef>> {
    let r = conn
        .query_row(
            "SELECT id, pipeline, status, started_at, hostname, user FROM runs WHERE id = ?1",
            [id],
            |r| {
                Ok(RunRef {
                    id: r.get(0)?,
                    short_id: String::new(),
                    pipeline: r.get(1)?,
                    status: r.get(2)?,
                    started_at: r.get(3)?,
                    hostname: r.get(4)?,
                    user: r.get(5)?,
                })
            },
        )
        .optional()?;
    match r {
        Some(mut r) => {
            r.short_id = crate::store::query::short_id(conn, &r.id)?;
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

/// An input of the producing execution, with where that version came from.
#[derive(Debug, Clone, Serialize)]
pub struct CardInput {
    #[serde(flatten)]
    pub version: Version,
    /// what the reading step recorded: `step`, `git` or `external`
    pub origin: Option<String>,
    /// the run and step that first produced this version, if any did
    pub produced_by: Option<ExecRef>,
    pub gap: bool,
    /// a tracked file read with uncommitted edits (the run recorded the diff)
    pub uncommitted: bool,
    /// on gaps: what is known of it (see `gap_reasons`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecRef {
    pub run_id: String,
    pub short_id: String,
    pub step: String,
    pub status: String,
    pub started_at: Option<i64>,
}

pub(super) fn exec_ref(conn: &Connection, e: &Exec) -> Result<ExecRef> {
    Ok(ExecRef {
        run_id: e.run_id.clone(),
        short_id: crate::store::query::short_id(conn, &e.run_id)?,
        step: e.step.clone(),
        status: e.status.clone(),
        started_at: e.started_at,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct UsedBy {
    #[serde(flatten)]
    pub exec: Exec,
    pub short_id: String,
}

/// Everything recorded about one artifact version (`mlrun show PATH`): its JSON shape is
/// documented in the README.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub version: Version,
    /// no recorded producer and never read as a tracked file: lineage stops here
    pub gap: bool,
    /// on a gap: what is known of it (see `gap_reasons`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_reason: Option<String>,
    /// its bytes are in the object store (restorable by mlrun)
    pub stored: bool,
    /// read as a file git tracks, unmodified at the recorded commit (git can give it back)
    pub in_git: bool,
    pub produced_by: Option<Exec>,
    pub run: Option<RunRef>,
    pub git: Option<crate::store::query::GitInfo>,
    pub environment: Option<crate::store::query::EnvInfo>,
    pub inputs: Vec<CardInput>,
    /// other executions that produced this same content (reuses and reproductions)
    pub also_produced_by: Vec<ExecRef>,
    /// the latest executions (at most 20) that read this version, with their metrics
    /// (evaluations), earliest first
    pub used_by: Vec<UsedBy>,
    /// how many executions read it in all
    pub used_by_total: usize,
    /// the newest recorded versions of the same path (at most 20, plus this one), newest first
    pub versions: Vec<OtherVersion>,
    /// how many versions the path has in all
    pub versions_total: usize,
}

pub(in crate::store) fn card(conn: &Connection, av_id: i64) -> Result<Card> {
    let version = version(conn, av_id)?
        .ok_or_else(|| Error::other(format!("artifact version {av_id} is not in the store")))?;
    let producers = producers(conn, av_id, 21)?;
    let first = producers.first().cloned();
    let also = producers
        .iter()
        .skip(1)
        .map(|e| exec_ref(conn, e))
        .collect::<Result<Vec<_>>>()?;
    let consumers = consumers(conn, av_id, 20)?;
    let used_by_total: i64 = conn.query_row(
        "SELECT COUNT(*) FROM io_edges WHERE av_id = ?1 AND direction = 'in'",
        [av_id],
        |r| r.get(0),
    )?;
    let git_origin = consumers.iter().any(|(_, o)| o.as_deref() == Some("git"));
    let (mut run, mut git, mut environment, mut inputs) = (None, None, None, Vec::new());
    if let Some(e) = &first {
        run = run_ref(conn, &e.run_id)?;
        let snapshot: Option<String> = conn
            .query_row(
                "SELECT git_before FROM step_execs WHERE id = ?1",
                [e.exec_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        if let Some(g) = snapshot {
            git = crate::store::query::git_info(conn, &g, false)?;
        }
        if let Some(env) = &e.env_id {
            environment = crate::store::query::env_info(conn, env)?;
        }
        // inputs of the producer, each with its own first producer (one query per input is
        // bounded by the step's declared inputs, not by the history)
        for edge in io_of(conn, e.exec_id, "in")? {
            let p = preferred_producer(conn, edge.version.av_id)?;
            let produced_by = match p {
                Some(p) => match execs(conn, &[p])?.remove(&p) {
                    Some(pe) => Some(exec_ref(conn, &pe)?),
                    None => None,
                },
                None => None,
            };
            let gap = gaps(conn, &[edge.version.av_id])?.contains(&edge.version.av_id);
            let uncommitted =
                uncommitted(conn, &[edge.version.av_id])?.contains(&edge.version.av_id);
            let gap_reason = if gap {
                gap_reasons(conn, &[edge.version.av_id])?.remove(&edge.version.av_id)
            } else {
                None
            };
            inputs.push(CardInput {
                gap,
                gap_reason,
                uncommitted,
                version: edge.version,
                origin: edge.origin,
                produced_by,
            });
        }
    }
    let (versions, versions_total) = versions_of_path(conn, &version.path, 20, Some(av_id))?;
    let gap = first.is_none() && !git_origin && gaps(conn, &[av_id])?.contains(&av_id);
    Ok(Card {
        versions,
        versions_total,
        used_by_total: used_by_total as usize,
        gap,
        gap_reason: if gap {
            gap_reasons(conn, &[av_id])?.remove(&av_id)
        } else {
            None
        },
        stored: conn
            .query_row(
                "SELECT stored FROM blobs WHERE hash = ?1",
                [&version.hash],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false),
        in_git: git_origin,
        version,
        produced_by: first,
        run,
        git,
        environment,
        inputs,
        also_produced_by: also,
        used_by: consumers
            .into_iter()
            .map(|(e, _)| {
                Ok(UsedBy {
                    short_id: crate::store::query::short_id(conn, &e.run_id)?,
                    exec: e,
                })
            })
            .collect::<Result<_>>()?,
    })
}

// ---------------------------------------------------------------------------------------------
// Exports

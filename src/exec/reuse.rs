//! Reusing an earlier execution with the same cache key: its outputs are on disk (`cached`) or
//! restored from the object store (`restored`); nothing runs, and the step's record is queued
//! (`record::Writer`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::event::Event;
use super::incremental::CacheParts;
use super::record::{self, After, PendingReuse};
use super::{Ctx, StepOutcome};
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::hash;
use crate::pipeline::{PathDecl, Step};
use crate::store::Store;
use crate::store::objects::Objects;
use crate::store::record::{Io, StepBegin, StepStatus, now_ms};
use crate::store::reuse::Reusable;

/// How an earlier execution with the step's cache key can be reused, decided without changing
/// anything: the runner (`try_reuse`) acts on it, `mlrun run --dry-run` reports it.
#[derive(Debug)]
pub enum Decision<'a> {
    /// every declared output on disk is what that execution made
    Cached,
    /// these outputs differ from (or are missing next to) what it made, and the object store
    /// holds every one of them
    Restore(Vec<(&'a PathDecl, &'a Io)>),
    /// an output it made is neither on disk nor restorable: the step must run
    Cannot,
}

/// Compare `step`'s declared outputs on disk under `root` with what `reusable` made.
pub fn decide<'a>(
    step: &'a Step,
    root: &std::path::Path,
    cache: &HashCache,
    objects: &Objects,
    reusable: &'a Reusable,
) -> Decision<'a> {
    let mut restore = Vec::new();
    for decl in &step.outputs {
        let Some(recorded) = reusable.outputs.iter().find(|o| o.path == decl.path) else {
            return Decision::Cannot;
        };
        let now = hash::fingerprint(&root.join(&decl.path), cache).ok();
        if now.as_ref().map(|f| f.hash()) == Some(recorded.fp.hash()) {
            continue;
        }
        if !objects.can_restore(&recorded.fp) {
            return Decision::Cannot;
        }
        restore.push((decl, recorded));
    }
    if restore.is_empty() {
        Decision::Cached
    } else {
        Decision::Restore(restore)
    }
}

/// An output as declared: a directory keeps its trailing `/`.
pub fn shown(decl: &PathDecl, recorded: &Io) -> String {
    if decl.dir || recorded.fp.is_dir() {
        format!("{}/", decl.path)
    } else {
        decl.path.clone()
    }
}

/// Reuse an earlier execution when its outputs are on disk or can be restored. `None`: the
/// step must run. Blocking.
pub(super) fn try_reuse(
    ctx: &Arc<Ctx>,
    step: &Step,
    begin: &StepBegin<'_>,
    inputs: &[Io],
    parts: &CacheParts,
    vars: &BTreeMap<String, String>,
) -> Option<StepOutcome> {
    let key = parts.key();
    // From reading what is stored until the record is committed, gc must not delete it.
    let hold = ctx.hold_objects();
    let reusable = ctx
        .read_store(|c| Store::find_reusable(c, &key, ctx.reuse_replays))
        .ok()??;
    let to_restore = match decide(step, ctx.plan.root(), &ctx.cache, &ctx.objects, &reusable) {
        Decision::Cannot => return None,
        Decision::Cached => Vec::new(),
        Decision::Restore(list) => list,
    };
    let mut restored = Vec::new();
    for (decl, recorded) in to_restore {
        if let Err(e) = ctx.objects.restore_io(recorded, ctx.plan.root()) {
            ctx.events.warn(&format!(
                "{}: cannot restore `{}`: {}; running the step instead",
                step.name, decl.path, e.message
            ));
            return None;
        }
        restored.push(shown(decl, recorded));
    }
    let status = if restored.is_empty() {
        StepStatus::Cached
    } else {
        StepStatus::Restored
    };
    let cwd = ctx.plan.root().join(&step.cwd);
    let programs = step.cmd.programs();
    let interpreters =
        ctx.interpreters
            .versions(&programs, &cwd, vars.get("PATH").map(String::as_str));
    let packages = ctx.interpreters.packages(&programs, &cwd, vars);
    let after = After {
        git: begin.git_before.clone(),
        env: ctx.env_snapshot(interpreters, packages, vars.clone()),
        ended_at: now_ms(),
        params: ctx.redactor.params(&step.params).0,
        keep_outputs: step.keep_outputs,
        repo_changes: Vec::new(),
    };
    let rec = record::reused_record(status, inputs.to_vec(), &reusable, (parts, key), after);
    let outcome = record::outcome_of(&step.name, &rec, begin.started_at);
    ctx.record_reused(PendingReuse::new(begin, rec, hold));
    ctx.events.emit(&Event::StepReused {
        step: &step.name,
        status,
        from_run: &reusable.short_id,
        restored: &restored,
    });
    Some(outcome)
}

//! Copies of a step's untracked inputs, kept in the object store while the step runs.
//!
//! An input that neither a step of the pipeline nor the commit can give back is copied into the
//! object store so that a replay can restore it. That copy used to be made before the step
//! started, on its critical path: for a 2 GiB input on a slow disk the first run took 7 s where
//! DVC (which keeps no copy of inputs) took 4.2 s. It now starts as soon as the inputs are
//! hashed ([`start`]), the step runs meanwhile, and the step's record waits for it ([`settle`],
//! called before anything of the step is recorded). A large input file (64 MiB and more) the
//! stat cache cannot vouch for is copied earlier still, while it is hashed
//! (`exec::copy_inputs_ahead`, `Objects::copy_ahead`): on a disk without reflinks, copying
//! 2 GiB took twice as long as hashing it, and the two ran one after the other.
//!
//! The copy is verified as it always was (`Objects::put`): it must hash to what the input hashed
//! to before the step started, or, for a file the stat cache vouches for, the file's stat must be
//! unchanged across the copy. So an input the step (or anyone) changes before its copy is
//! complete is never stored under the hash it had: its hash from before the step is recorded as
//! usual, marked not kept (so it is not restorable), and a warning says it changed while the
//! step ran.
//!
//! `MLRUN_TEST_INPUT_COPY_AFTER_STEP=1` is a test-only switch that starts each copy only once
//! the step is over: the latest a copy can run, so a test can make a step change its input
//! before the copy reads it, deterministically.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::Ctx;
use crate::fingerprint::cache::Stat;
use crate::store::record::{Io, Origin};

const AFTER_STEP_ENV: &str = "MLRUN_TEST_INPUT_COPY_AFTER_STEP";

/// The copies of every step's inputs, by step name.
#[derive(Default)]
pub(super) struct InputCopies(Mutex<BTreeMap<String, InputCopy>>);

enum InputCopy {
    /// copying while the step runs
    Running(tokio::task::JoinHandle<Kept>),
    /// to be copied when the step is over (the test-only switch)
    Deferred(Vec<Pending>),
    /// over: a retry of the step records the same
    Done(Arc<Kept>),
}

/// An input to copy, and its stat when it was hashed (to tell a change from another failure).
struct Pending {
    io: Io,
    stat: Option<Stat>,
}

/// What a copy kept.
#[derive(Default)]
struct Kept {
    /// paths of the inputs now in the object store
    stored: BTreeSet<String>,
    warnings: Vec<String>,
}

/// Start copying the untracked inputs among `inputs` (just hashed) into the object store. The
/// objects lock is taken before this returns, so a `gc` started while the step runs waits for
/// the copy (and then sees the objects it touched or wrote as in use).
pub(super) async fn start(ctx: &Arc<Ctx>, step: &str, inputs: &[Io]) {
    let pending: Vec<Pending> = inputs
        .iter()
        .filter(|io| io.origin == Some(Origin::External))
        .map(|io| Pending {
            stat: std::fs::metadata(ctx.plan.root().join(&io.path))
                .ok()
                .map(|m| Stat::of(&m)),
            io: io.clone(),
        })
        .collect();
    if pending.is_empty() {
        return;
    }
    let copy = if std::env::var_os(AFTER_STEP_ENV).is_some_and(|v| v == "1") {
        InputCopy::Deferred(pending)
    } else {
        let c = ctx.clone();
        let hold = super::blocking(move || c.hold_objects()).await;
        let c = ctx.clone();
        InputCopy::Running(tokio::task::spawn_blocking(move || {
            let _hold = hold;
            keep(&c, pending)
        }))
    };
    ctx.input_copies
        .0
        .lock()
        .expect("input copies lock")
        .insert(step.to_string(), copy);
}

/// Wait for the copy of `step`'s inputs and mark the ones kept in `inputs`, which are about to
/// be recorded. Says once what could not be kept, and why.
pub(super) async fn settle(ctx: &Arc<Ctx>, step: &str, inputs: &mut [Io]) {
    let copy = ctx
        .input_copies
        .0
        .lock()
        .expect("input copies lock")
        .remove(step);
    let (kept, fresh) = match copy {
        None => return,
        Some(InputCopy::Done(kept)) => (kept, false),
        Some(InputCopy::Running(handle)) => {
            // only the time the record waits for the copy is the step's storing time
            let _busy = ctx.busy(step, "storing the inputs of");
            let kept = handle.await.expect("input copy panicked");
            (Arc::new(kept), true)
        }
        Some(InputCopy::Deferred(pending)) => {
            let c = ctx.clone();
            let name = step.to_string();
            let kept = super::blocking(move || {
                let _busy = c.busy(&name, "storing the inputs of");
                let _hold = c.hold_objects();
                keep(&c, pending)
            })
            .await;
            (Arc::new(kept), true)
        }
    };
    if fresh {
        for w in &kept.warnings {
            ctx.events.warn(&format!("{step}: {w}"));
        }
    }
    for io in inputs.iter_mut() {
        if io.origin == Some(Origin::External) && kept.stored.contains(&io.path) {
            io.stored = true;
        }
    }
    ctx.input_copies
        .0
        .lock()
        .expect("input copies lock")
        .insert(step.to_string(), InputCopy::Done(kept));
}

/// Copy each input into the object store, verified (blocking; the caller holds the objects
/// lock).
fn keep(ctx: &Ctx, pending: Vec<Pending>) -> Kept {
    let mut kept = Kept::default();
    for Pending { io, stat } in pending {
        let path = ctx.plan.root().join(&io.path);
        match ctx.objects.put(&path, &io.fp, &ctx.cache) {
            Ok(()) => {
                kept.stored.insert(io.path);
            }
            Err(e) => {
                let now = std::fs::metadata(&path).ok().map(|m| Stat::of(&m));
                let why = format!(
                    "{}{}",
                    e.message,
                    e.causes
                        .iter()
                        .map(|c| format!(": {c}"))
                        .collect::<String>()
                );
                let hash = &io.fp.hash()[..12.min(io.fp.hash().len())];
                kept.warnings.push(if stat.is_some() && now != stat {
                    format!(
                        "input `{}` changed while the step ran, before a copy of it was kept ({why}); it is recorded as it was when the step started ({hash}…), but that version cannot be restored",
                        io.path
                    )
                } else {
                    format!(
                        "could not keep a copy of input `{}` in the object store: {why}; its hash is recorded but this version cannot be restored",
                        io.path
                    )
                });
            }
        }
    }
    kept
}

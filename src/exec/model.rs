//! A step's `model = "NAME"` (pipeline.toml): once the step has succeeded and its record is
//! committed, the version of that output it produced is registered as the next `NAME@vN`. New
//! content only: the same content again is the version it already is (`store::models`), so a
//! rerun that reproduces it bit for bit registers nothing. Replays register nothing.

use super::Ctx;
use super::event::Event;
use crate::pipeline::Step;
use crate::store::Store;
use crate::store::record::{Io, StepStatus, now_ms};

/// Register `step`'s model output, if it declares one and succeeded; say so on the run's
/// output. A failure to register is a warning: the step's own record is already committed.
pub(super) fn register_output(
    ctx: &Ctx,
    step: &Step,
    exec_id: i64,
    status: StepStatus,
    outputs: &[Io],
) {
    let Some(m) = &step.model else { return };
    if status != StepStatus::Succeeded {
        return;
    }
    let Some(io) = outputs.iter().find(|o| o.path == m.output) else {
        return;
    };
    let done = ctx.with_store(|c| {
        Store::register_produced_model(
            c,
            &m.name,
            &io.path,
            io.fp.hash(),
            exec_id,
            &ctx.run_id,
            &ctx.system.user,
            now_ms(),
        )
    });
    match done {
        Ok(Some(r)) if r.new => ctx.events.emit(&Event::ModelRegistered {
            step: &step.name,
            model: &r.version.name,
            version: &r.version.version,
            path: &io.path,
            dir: step.outputs.iter().any(|d| d.path == io.path && d.dir),
        }),
        Ok(_) => {}
        Err(e) => ctx.events.warn(&format!(
            "step `{}`: its output `{}` could not be registered as model `{}`: {e}",
            step.name, io.path, m.name
        )),
    }
}

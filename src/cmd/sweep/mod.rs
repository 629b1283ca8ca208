//! `mlrun run --sweep -p lr=0.1,0.2,0.5 -p depth=3,5`: one run per combination of the listed
//! values (the cross product), all sharing a sweep id.
//!
//! Why `--sweep` and not every comma: `-p msg=a,b` has always been the string `a,b`, so a comma
//! splits a value only when `--sweep` asks for it; there, `\,` is a literal comma, and a value
//! written as a TOML array, table or quoted string (`[1,2]`, `{a=1}`, `"a,b"`) is never split.
//!
//! How it runs: each variant runs in a scratch copy of the project (under the store's `tmp/`,
//! the declared outputs left out) and is recorded as a run of the project itself (like a
//! replay, `recorded_location`), so two variants never write each other's files and the
//! workspace is left as it was; every output is kept in the object store, so the best
//! variant's outputs can be put back with `mlrun checkout RUN`. The steps that no swept param
//! reaches (the shared prefix) run once, in the first variant; the other variants start when
//! those are done and reuse them through the ordinary cache (restored from the object store
//! into their scratch tree). At most `-j` steps run at once across the sweep: up to `-j`
//! variants at a time, each with `-j / variants at a time` steps (at least 1).
//!
//! `plan`: the axes, every variant's checked plan, the refused flags, the shared steps;
//! `variants`: the variants running, a thread per slot; `report`: the lines, `--json` and table.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::exec;
use crate::report::{ColorChoice, Style};
use crate::store::lock::PipelineLock;
use crate::store::{self, Store};

mod plan;
mod report;
mod variants;

pub use plan::{Axis, combinations, parse};
use variants::{Gate, Say, Shared};

/// What the sweep's caller decided from the command line (`cmd::run`).
pub struct Sweep<'a> {
    pub args: &'a super::run::RunArgs,
    pub pipeline: &'a Path,
    pub targets: &'a [String],
}

pub fn sweep(s: Sweep<'_>, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let args = s.args;
    let err_style = Style::stderr(color);
    let out_style = if args.json {
        err_style
    } else {
        Style::stdout(color)
    };
    let mut p = plan::plan(&s, err_style)?;
    let full = &p.full;
    let root = full.root().to_path_buf();
    let dir = store::dir_for_pipeline(full.file(), store_dir);
    drop(Store::open(&dir)?);
    let lock = PipelineLock::acquire(&dir, full.file(), args.wait_lock, |who| {
        eprintln!(
            "waiting for {who} to finish running `{}`…",
            s.pipeline.display()
        );
    })?;
    let sweep_id = uuid::Uuid::now_v7().simple().to_string();
    let jobs = exec::default_jobs(args.exec.jobs);
    let at_once = jobs.min(p.combos.len()).max(1);
    let say = Arc::new(Say {
        style: out_style,
        json: args.json,
        lock: Mutex::new(()),
    });
    say.line(&report::headline(
        out_style,
        &sweep_id[..16],
        p.combos.len(),
        full.name(),
        &p.axes,
        jobs,
        &p.shared,
    ));

    let ctx = Arc::new(Shared {
        plans: Mutex::new(std::mem::take(&mut p.plans).into_iter().map(Some).collect()),
        combos: p.combos.clone(),
        labels: p.combos.iter().map(|c| plan::label(c, &p.axes)).collect(),
        results: Mutex::new((0..p.combos.len()).map(|_| None).collect()),
        next: AtomicUsize::new(1),
        stop: AtomicBool::new(false),
        interrupted: AtomicBool::new(false),
        gate: Arc::new(Gate::new(p.shared.is_empty())),
        shared: p.shared.clone(),
        root: root.clone(),
        dir: dir.clone(),
        exclude: variants::excluded(full, &dir),
        git: crate::fingerprint::git::snapshot(&root),
        per_run: (jobs / at_once).max(1),
        sweep_id: sweep_id.clone(),
        argv: std::env::args().collect(),
        say: say.clone(),
        targets: (!s.targets.is_empty()).then(|| s.targets.to_vec()),
        message: args.message.clone().filter(|m| !m.trim().is_empty()),
        keep_going: args.keep_going,
        grace: args.exec.grace,
        reuse_replays: args.reuse_replays,
    });
    let opened = variants::run_all(&ctx, at_once);
    drop(lock);

    let results = std::mem::take(&mut *ctx.results.lock().expect("results lock"));
    report::finish(&report::FinishArgs {
        args,
        store_dir: &dir,
        sweep_id: &sweep_id,
        pipeline: full.name(),
        axes: &p.axes,
        combos: &p.combos,
        shared: &p.shared,
        results,
        opened,
        interrupted: ctx.interrupted.load(Ordering::SeqCst),
        color,
        say: &say,
    })
}

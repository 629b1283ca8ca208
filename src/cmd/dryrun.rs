//! `mlrun run --dry-run [TARGET...]`: the plan a run would follow, decided as the runner
//! decides it (the same cache keys, `exec::reuse::decide` for cached / restored, `status`'s
//! reasons for a step that must run), with nothing run, recorded, locked or restored. The store
//! is opened read-only and the stat cache is read, never written.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::exec::Force;
use crate::exec::incremental::CacheParts;
use crate::exec::recorded::Recorded;
use crate::exec::reuse::{self, Decision};
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::env::Redactor;
use crate::fingerprint::hash::{self, Fingerprint};
use crate::fingerprint::key::SecretKey;
use crate::pipeline::plan::within;
use crate::pipeline::{Plan, Step};
use crate::report::{ColorChoice, Role, Style};
use crate::store::objects::Objects;
use crate::store::record::Io;
use crate::store::{self, Store};

/// What the command line asked for.
pub struct Ask<'a> {
    /// the targets as typed (empty: every step)
    pub targets: &'a [String],
    pub downstream: bool,
    /// per step of the plan: whether the run would include it
    pub keep: &'a [bool],
    pub force: &'a Force,
    pub reuse_replays: bool,
    pub json: bool,
}

/// One step of the plan (`steps[]` of `--dry-run --json`).
#[derive(Debug, Serialize)]
pub struct StepPlan {
    pub name: String,
    /// `run`, `cached` (its outputs on disk are reused), `restored` (reused, some outputs put
    /// back from the object store first) or `not_needed` (no target needs it)
    pub action: &'static str,
    /// why it would run (empty otherwise)
    pub reasons: Vec<String>,
    /// the run whose execution would be reused
    pub from_run: Option<String>,
    pub from_run_short: Option<String>,
    /// the outputs that would be restored (`restored`)
    pub restore: Vec<String>,
}

/// The `mlrun run --dry-run --json` document.
#[derive(Debug, Serialize)]
pub struct DryRun {
    pub pipeline: String,
    /// the targets as typed (empty: the whole pipeline)
    pub targets: Vec<String>,
    pub downstream: bool,
    /// how many steps would run, be reused, be left alone
    pub run: usize,
    pub reuse: usize,
    pub not_needed: usize,
    pub steps: Vec<StepPlan>,
}

pub fn dry_run(
    plan: &Plan,
    store_dir: Option<&Path>,
    ask: &Ask<'_>,
    color: ColorChoice,
) -> Result<i32> {
    let report = decide_all(plan, store_dir, ask)?;
    if ask.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", render(&report, &Style::stdout(color)));
    }
    Ok(0)
}

/// Decide every step in plan order, as a run would.
pub fn decide_all(plan: &Plan, store_dir: Option<&Path>, ask: &Ask<'_>) -> Result<DryRun> {
    let dir = store::dir_for_pipeline(plan.file(), store_dir);
    let store = if dir.join(store::DB_FILE).is_file() {
        Some(Store::open_read(&dir)?)
    } else {
        None
    };
    match &store {
        // every query of the dry run in one read transaction (one snapshot, one lock), the
        // database mapped: a reusable execution's run row is read past its plan's overflow
        // pages, ~800 `pread`s for a 50-step chain
        Some(s) => {
            s.map_for_large_reads();
            s.reading(|s| decide_in(plan, Some(s), &dir, ask))
        }
        None => decide_in(plan, None, &dir, ask),
    }
}

fn decide_in(plan: &Plan, store: Option<&Store>, dir: &Path, ask: &Ask<'_>) -> Result<DryRun> {
    let cache = match store {
        Some(s) => s.load_stat_cache(plan.root())?,
        None => HashCache::disabled(),
    };
    let key = SecretKey::load()?;
    let redactor = Redactor::new(&key, plan.redact(), plan.keep());
    let recorded = Recorded::of(&redactor, plan);
    let objects = Objects::new(dir);
    let file = plan.file().to_string_lossy().into_owned();
    let here = super::status::Here {
        root: plan.root(),
        file: &file,
        cache: &cache,
        objects: &objects,
        with_replays: ask.reuse_replays,
    };
    let mut d = Decider {
        plan,
        store,
        ask,
        here: &here,
        marker_key: &recorded.marker_key,
        made: BTreeMap::new(),
        steps: Vec::with_capacity(plan.steps().len()),
    };
    for (i, (step, shown)) in plan.steps().iter().zip(recorded.plan.steps()).enumerate() {
        let out = d.step(i, step, shown)?;
        d.steps.push(out);
    }
    let steps = d.steps;
    let count = |f: &dyn Fn(&str) -> bool| steps.iter().filter(|s| f(s.action)).count();
    Ok(DryRun {
        pipeline: plan.name().to_string(),
        targets: ask.targets.to_vec(),
        downstream: ask.downstream,
        run: count(&|a| a == "run"),
        reuse: count(&|a| a == "cached" || a == "restored"),
        not_needed: count(&|a| a == "not_needed"),
        steps,
    })
}

/// One dry run's steps decided in plan order, each from what was decided before it.
struct Decider<'a> {
    plan: &'a Plan,
    store: Option<&'a Store>,
    ask: &'a Ask<'a>,
    here: &'a super::status::Here<'a>,
    marker_key: &'a str,
    /// what restored steps put back, by path: the inputs their dependants will read
    made: BTreeMap<String, Fingerprint>,
    /// the steps before the one being decided
    steps: Vec<StepPlan>,
}

impl Decider<'_> {
    /// Step `i`: not needed, run (and why), or reused from a recorded run.
    fn step(&mut self, i: usize, step: &Step, shown: &Step) -> Result<StepPlan> {
        let mut out = StepPlan {
            name: step.name.clone(),
            action: "run",
            reasons: Vec::new(),
            from_run: None,
            from_run_short: None,
            restore: Vec::new(),
        };
        if !self.ask.keep[i] {
            out.action = "not_needed";
            return Ok(out);
        }
        out.reasons = self.forced_or_upstream(step);
        if !out.reasons.is_empty() {
            return Ok(out);
        }
        let inputs = self.inputs(step, &mut out.reasons);
        if !out.reasons.is_empty() {
            return Ok(out);
        }
        let parts = CacheParts::of(shown, &inputs).marked_with(self.marker_key);
        let Some(s) = self.store else {
            out.reasons.push("never run".into());
            return Ok(out);
        };
        if self.reuse(s, step, &parts, &mut out)? {
            return Ok(out);
        }
        out.reasons =
            super::status::step_reasons(s, self.here, step, &shown.params, &parts, &inputs)?;
        if out.reasons.is_empty() {
            out.reasons.push("no reusable run recorded".into());
        }
        Ok(out)
    }

    /// `--force`, or an upstream step that will run: the step runs whatever its inputs.
    fn forced_or_upstream(&self, step: &Step) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.ask.force.applies_to(&step.name) {
            reasons.push("forced (`--force`)".into());
        }
        for &d in &step.deps {
            if self.steps[d].action == "run" {
                reasons.push(format!("upstream `{}` will run first", self.steps[d].name));
            }
        }
        reasons
    }

    /// The step's inputs as it would read them: put back by a restored step, or hashed on
    /// disk. An input that cannot be known yet is a reason instead.
    fn inputs(&self, step: &Step, reasons: &mut Vec<String>) -> Vec<Io> {
        let plan = self.plan;
        let mut inputs = Vec::with_capacity(step.inputs.len());
        for decl in &step.inputs {
            if let Some(fp) = self.made.get(&decl.path) {
                inputs.push(Io::new(decl.path.clone(), fp.clone()));
                continue;
            }
            let maker = step.deps.iter().find(|&&d| {
                plan.steps()[d]
                    .outputs
                    .iter()
                    .any(|o| within(&decl.path, &o.path) || within(&o.path, &decl.path))
            });
            if let Some(&m) = maker
                && self.steps[m].action == "restored"
            {
                // inside a directory that will be put back: known only once it is
                reasons.push(format!(
                    "input {} will be restored by `{}` first, so whether this step can be reused is known only then",
                    decl.path, plan.steps()[m].name
                ));
                continue;
            }
            match hash::fingerprint(&plan.root().join(&decl.path), self.here.cache) {
                Ok(fp) => inputs.push(Io::new(decl.path.clone(), fp)),
                Err(_) => reasons.push(match maker {
                    Some(&m) => format!(
                        "input {} does not exist yet (`{}` makes it)",
                        decl.path,
                        plan.steps()[m].name
                    ),
                    None => super::status::missing_input(self.store, self.here.objects, &decl.path),
                }),
            }
        }
        inputs
    }

    /// Whether a recorded execution with this cache key can be reused as the runner would
    /// (`reuse::decide`); if so `out` says from which run and what is put back.
    fn reuse(
        &mut self,
        s: &Store,
        step: &Step,
        parts: &CacheParts,
        out: &mut StepPlan,
    ) -> Result<bool> {
        let Some(r) = s.find_reusable(&parts.key(), self.ask.reuse_replays)? else {
            return Ok(false);
        };
        match reuse::decide(
            step,
            self.plan.root(),
            self.here.cache,
            self.here.objects,
            &r,
        ) {
            Decision::Cannot => Ok(false),
            decision => {
                out.from_run_short = Some(r.short_id.clone());
                out.from_run = Some(r.run_id.clone());
                out.action = "cached";
                if let Decision::Restore(list) = decision {
                    out.action = "restored";
                    for (decl, rec) in list {
                        out.restore.push(reuse::shown(decl, rec));
                    }
                }
                for o in &r.outputs {
                    self.made.insert(o.path.clone(), o.fp.clone());
                }
                Ok(true)
            }
        }
    }
}

pub fn render(d: &DryRun, style: &Style) -> String {
    let w = d
        .steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(4);
    let mut out = format!(
        "dry run of `{}`{}: nothing is run or recorded\n",
        d.pipeline,
        if d.targets.is_empty() {
            String::new()
        } else {
            format!(
                " for {}{}",
                d.targets
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(" "),
                if d.downstream {
                    " and what depends on it"
                } else {
                    ""
                }
            )
        }
    );
    for s in &d.steps {
        let from = s.from_run_short.as_deref().unwrap_or("?");
        let (mark, word, why) = match s.action {
            "run" => (
                style.paint(Role::Warn, "▸"),
                style.paint(Role::Warn, "run    "),
                s.reasons.first().cloned().unwrap_or_default(),
            ),
            "cached" => (
                style.paint(Role::Good, "="),
                style.paint(Role::Good, "reuse  "),
                format!("cached: the outputs on disk are what run {from} made"),
            ),
            "restored" => (
                style.paint(Role::Good, "="),
                style.paint(Role::Good, "restore"),
                format!("{} from run {from}", s.restore.join(", ")),
            ),
            _ => (
                style.paint(Role::Muted, "·"),
                style.paint(Role::Muted, "skip   "),
                style.paint(Role::Muted, "not needed"),
            ),
        };
        out += &format!("{mark} {word}  {:<w$}  {why}\n", s.name);
        if s.action == "run" {
            for r in s.reasons.iter().skip(1) {
                out += &format!("  {:7}  {:<w$}  {r}\n", "", "");
            }
        }
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    out += &format!(
        "{} step{} would run, {} would be reused{}\n",
        d.run,
        plural(d.run),
        d.reuse,
        if d.not_needed > 0 {
            format!(", {} not needed", d.not_needed)
        } else {
            String::new()
        }
    );
    out
}

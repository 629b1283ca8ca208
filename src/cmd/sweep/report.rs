//! How a sweep reads: its first line, each variant's end as a document (`--json`) or a line,
//! and the table of variants × metrics that `mlrun compare --sweep` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::plan::Axis;
use super::variants::{Say, VariantResult};
use crate::cmd::run::RunArgs;
use crate::error::Result;
use crate::report::{ColorChoice, Role, Style};

/// `sweep ID · N variants of `PIPELINE` (lr × 3, …) · at most J steps at once · shared, run once: …`
pub(super) fn headline(
    style: Style,
    short: &str,
    variants: usize,
    pipeline: &str,
    axes: &[Axis],
    jobs: usize,
    shared: &BTreeSet<String>,
) -> String {
    format!(
        "{} {} · {} variants of `{}` ({}) · at most {jobs} step{} at once{}",
        style.paint(Role::Strong, "sweep"),
        style.paint(Role::Accent, short),
        variants,
        pipeline,
        axes.iter()
            .filter(|a| a.values.len() > 1)
            .map(|a| format!("{} × {}", a.key, a.values.len()))
            .collect::<Vec<_>>()
            .join(", "),
        if jobs == 1 { "" } else { "s" },
        if shared.is_empty() {
            String::new()
        } else {
            format!(
                " · shared, run once: {}",
                shared.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        }
    )
}

/// The `mlrun run --sweep --json` document.
#[derive(Debug, Serialize)]
struct SweepDoc {
    sweep_id: String,
    pipeline: String,
    /// the swept keys, in order
    params: Vec<String>,
    status: &'static str,
    exit_code: i32,
    /// the steps no swept param reaches, run once for the whole sweep
    shared_steps: Vec<String>,
    variants: Vec<VariantDoc>,
}

#[derive(Debug, Serialize)]
struct VariantDoc {
    /// this variant's values of the swept keys, as written
    params: BTreeMap<String, String>,
    run_id: Option<String>,
    short_id: Option<String>,
    /// the run's status, `not_run` (never started) or `error` (mlrun could not run it)
    status: String,
    exit_code: Option<i32>,
    error: Option<String>,
    #[serde(serialize_with = "crate::fingerprint::metrics::ser_map")]
    metrics: BTreeMap<String, f64>,
}

pub(super) struct FinishArgs<'a> {
    pub args: &'a RunArgs,
    pub store_dir: &'a Path,
    pub sweep_id: &'a str,
    pub pipeline: &'a str,
    pub axes: &'a [Axis],
    pub combos: &'a [Vec<String>],
    pub shared: &'a BTreeSet<String>,
    pub results: Vec<Option<VariantResult>>,
    pub opened: bool,
    pub interrupted: bool,
    pub color: ColorChoice,
    pub say: &'a Say,
}

/// The sweep's end: what became of each variant, the table of variants × metrics, the exit code.
pub(super) fn finish(f: &FinishArgs<'_>) -> Result<i32> {
    let short = &f.sweep_id[..16];
    let variants: Vec<VariantDoc> = f
        .combos
        .iter()
        .zip(&f.results)
        .map(|(combo, r)| variant_doc(combo, r.as_ref()))
        .collect();
    let not_run = f.results.iter().filter(|r| r.is_none()).count();
    let exit_code = exit_code(f, not_run);
    say_how_it_ended(f, &variants, not_run, short);
    if f.args.json {
        let doc = SweepDoc {
            sweep_id: f.sweep_id.to_string(),
            pipeline: f.pipeline.to_string(),
            params: f
                .axes
                .iter()
                .filter(|a| a.values.len() > 1)
                .map(|a| a.key.clone())
                .collect(),
            status: if exit_code == 0 {
                "succeeded"
            } else {
                "failed"
            },
            exit_code,
            shared_steps: f.shared.iter().cloned().collect(),
            variants,
        };
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(exit_code);
    }
    // the table of variants × metrics, as `mlrun compare --sweep` prints it
    if variants.iter().any(|v| v.run_id.is_some()) {
        println!();
        crate::cmd::compare::compare(
            crate::cmd::compare::CompareArgs::of_sweep(f.sweep_id),
            Some(f.store_dir),
            f.color,
        )?;
    }
    Ok(exit_code)
}

/// What became of one variant: never started, not run by mlrun (an error), or its run.
fn variant_doc(combo: &[String], r: Option<&VariantResult>) -> VariantDoc {
    let params: BTreeMap<String, String> = combo
        .iter()
        .filter_map(|c| c.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match r {
        None => VariantDoc {
            params,
            run_id: None,
            short_id: None,
            status: "not_run".into(),
            exit_code: None,
            error: None,
            metrics: BTreeMap::new(),
        },
        Some(Err(e)) => VariantDoc {
            params,
            run_id: None,
            short_id: None,
            status: "error".into(),
            exit_code: None,
            error: Some(e.clone()),
            metrics: BTreeMap::new(),
        },
        Some(Ok(o)) => {
            let mut metrics = BTreeMap::new();
            for s in &o.steps {
                metrics.extend(s.metrics.iter().map(|(k, v)| (k.clone(), *v)));
            }
            VariantDoc {
                params,
                run_id: Some(o.run_id.clone()),
                short_id: Some(o.short_id.clone()),
                status: o.status.as_str().to_string(),
                exit_code: Some(o.exit_code),
                error: None,
                metrics,
            }
        }
    }
}

/// The sweep's exit code: the first variant's failure in order (mlrun not running one is a plain
/// failure), else 130 when interrupted, else a failure when a variant was not run.
fn exit_code(f: &FinishArgs<'_>, not_run: usize) -> i32 {
    let mut exit_code = f
        .results
        .iter()
        .flatten()
        .find_map(|r| match r {
            Err(_) => Some(crate::error::exit::FAILURE),
            Ok(o) if o.exit_code != 0 => Some(o.exit_code),
            Ok(_) => None,
        })
        .unwrap_or(0);
    if f.interrupted && exit_code == 0 {
        exit_code = 130;
    }
    if not_run > 0 && exit_code == 0 {
        exit_code = crate::error::exit::FAILURE;
    }
    exit_code
}

/// Why variants were not run, if they were not, and the sweep's last line.
fn say_how_it_ended(f: &FinishArgs<'_>, variants: &[VariantDoc], not_run: usize, short: &str) {
    let style = f.say.style;
    if f.interrupted {
        f.say.line(&format!(
            "{} {not_run} variant{} not run",
            style.paint(Role::Bad, "sweep interrupted:"),
            if not_run == 1 { " was" } else { "s were" }
        ));
    } else if !f.opened {
        f.say.line(&format!(
            "{} the steps the variants share ({}) did not succeed in the first variant: the other {} variants were not run",
            style.paint(Role::Bad, "sweep stopped:"),
            f.shared.iter().cloned().collect::<Vec<_>>().join(", "),
            f.combos.len() - 1
        ));
    }
    let ok = variants.iter().filter(|v| v.status == "succeeded").count();
    f.say.line(&format!(
        "sweep {} finished: {ok} of {} variants succeeded · `mlrun runs --sweep {short}` · `mlrun compare --sweep {short}` · `mlrun checkout RUN` puts a variant's outputs back",
        style.paint(Role::Accent, short),
        f.combos.len()
    ));
}

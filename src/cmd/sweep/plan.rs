//! What a sweep will run, decided before anything runs: the axes of `-p` lists, every
//! combination's plan (a bad value fails the sweep), the flags a sweep refuses, and the steps no
//! swept param reaches (run once, by the first variant).

use std::collections::BTreeSet;

use super::Sweep;
use crate::cmd::run::{RunArgs, TraceArg};
use crate::error::{Error, Result};
use crate::pipeline::Plan;
use crate::report::Style;

/// A sweep's variants, each plan checked, and what they share.
pub(super) struct SweepPlan {
    pub axes: Vec<Axis>,
    /// every combination, each a list of `KEY=VALUE`, one per axis
    pub combos: Vec<Vec<String>>,
    /// one per combination, in order (only the steps the targets need)
    pub plans: Vec<Plan>,
    /// the whole pipeline, with the first combination's values
    pub full: Plan,
    /// the steps no swept param reaches
    pub shared: BTreeSet<String>,
}

/// Every variant's plan is checked before anything runs: a bad value fails the sweep.
pub(super) fn plan(s: &Sweep<'_>, err_style: Style) -> Result<SweepPlan> {
    let args = s.args;
    let axes = parse(&args.params)?;
    refuse_conflicts(args)?;
    let combos = combinations(&axes);
    let mut plans = Vec::with_capacity(combos.len());
    for (n, c) in combos.iter().enumerate() {
        let plan = crate::pipeline::load(&crate::pipeline::LoadOptions {
            file: &crate::pipeline::locate(s.pipeline),
            overrides: c,
            missing_inputs_ok: false,
        })?;
        if n == 0 {
            crate::report::print_warnings(plan.warnings(), err_style);
        }
        plans.push(plan);
    }
    let full = plans[0].clone();
    let selected = crate::cmd::select::resolve(&full, s.targets)?;
    if !s.targets.is_empty() {
        plans = plans
            .into_iter()
            .map(|p| p.selecting(&selected, args.downstream))
            .collect();
    }
    let swept: BTreeSet<&str> = axes
        .iter()
        .filter(|a| a.values.len() > 1)
        .map(|a| a.key.as_str())
        .collect();
    check_swept_keys_are_read(&full, &plans[0], &swept, s.targets)?;
    let shared = shared_steps(&plans[0], &swept);
    Ok(SweepPlan {
        axes,
        combos,
        plans,
        full,
        shared,
    })
}

/// One `-p` of a sweep: a key and its values (one value: the same in every variant).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// Read the `-p KEY=V1,V2` arguments of a sweep, in order.
pub fn parse(params: &[String]) -> Result<Vec<Axis>> {
    let mut axes: Vec<Axis> = Vec::new();
    for p in params {
        let Some((key, value)) = p.split_once('=') else {
            return Err(Error::invalid(format!(
                "`-p {p}`: expected KEY=VALUE (a sweep lists values: `-p {p}=0.1,0.2`)"
            )));
        };
        let key = key.trim().to_string();
        let values = split_values(value);
        if let Some(i) = values.iter().position(|v| v.trim().is_empty()) {
            return Err(
                Error::invalid(format!("`-p {p}`: value {} of `{key}` is empty", i + 1))
                    .hint("remove the extra comma; a value that holds a comma is written `\\,`"),
            );
        }
        if axes.iter().any(|a| a.key == key) {
            return Err(
                Error::invalid(format!("`-p {key}=…` is given twice in the sweep"))
                    .hint(format!("list every value once: `-p {key}=A,B,C`")),
            );
        }
        axes.push(Axis { key, values });
    }
    if !axes.iter().any(|a| a.values.len() > 1) {
        return Err(Error::invalid("`--sweep` has nothing to sweep: no `-p` lists several values")
            .hint("list the values to try, comma-separated: `mlrun run --sweep -p train.lr=0.1,0.2,0.5`"));
    }
    Ok(axes)
}

/// `0.1,0.2` → two values; `a\,b` → one (`a,b`); a TOML array, table or quoted string → one.
fn split_values(value: &str) -> Vec<String> {
    let t = value.trim_start();
    if t.starts_with(['[', '{', '"', '\'']) {
        return vec![value.to_string()];
    }
    let mut out = vec![String::new()];
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                out.last_mut().expect("one value").push(',');
                chars.next();
            }
            ',' => out.push(String::new()),
            c => out.last_mut().expect("one value").push(c),
        }
    }
    out
}

/// Every combination, the first axis varying slowest: each a list of `KEY=VALUE`, one per axis.
pub fn combinations(axes: &[Axis]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for a in axes {
        out = out
            .into_iter()
            .flat_map(|done| {
                a.values.iter().map(move |v| {
                    let mut d = done.clone();
                    d.push(format!("{}={v}", a.key));
                    d
                })
            })
            .collect();
    }
    out
}
/// Flags a sweep cannot honour, refused before anything runs.
fn refuse_conflicts(args: &RunArgs) -> Result<()> {
    if let Some(f) = &args.force {
        let named: Vec<&str> = f
            .iter()
            .filter(|n| !n.is_empty())
            .map(String::as_str)
            .collect();
        let what = if named.is_empty() {
            "`--force`".to_string()
        } else {
            format!("`--force={}`", named.join(","))
        };
        return Err(Error::invalid(format!(
            "{what} cannot be combined with `--sweep`: the variants reuse the steps they share, and a forced step would run again in every variant"
        ))
        .hint(format!(
            "run `mlrun run {}` first, then the sweep, which reuses what it made",
            what.trim_matches('`')
        )));
    }
    if args.no_store {
        return Err(Error::invalid(
            "`--no-store` cannot be combined with `--sweep`: each variant's outputs are kept in the object store, so that the best one can be checked out (and the variants reuse the shared steps from it)",
        ));
    }
    if matches!(args.trace, Some(TraceArg::On | TraceArg::Strict)) {
        return Err(Error::invalid(
            "`--trace` cannot be combined with `--sweep`: variants run in scratch copies of the project, whose paths tracing would report",
        )
        .hint("trace one variant: `mlrun run --trace -p KEY=VALUE`"));
    }
    if args.dry_run {
        return Err(Error::invalid(
            "`--dry-run` cannot be combined with `--sweep`: each variant's plan depends on what the ones before it make",
        )
        .hint("ask for one variant's plan: `mlrun run --dry-run -p KEY=VALUE`"));
    }
    Ok(())
}

/// A swept key that no (selected) step reads would make identical variants: refuse it.
fn check_swept_keys_are_read(
    full: &Plan,
    plan: &Plan,
    swept: &BTreeSet<&str>,
    targets: &[String],
) -> Result<()> {
    for key in swept {
        if plan.steps().iter().any(|s| s.params.contains_key(*key)) {
            continue;
        }
        let readers: Vec<String> = full
            .steps()
            .iter()
            .filter(|s| s.params.contains_key(*key))
            .map(|s| format!("`{}`", s.name))
            .collect();
        let mut e = Error::invalid(if readers.is_empty() {
            format!(
                "`-p {key}=…`: no step of `{}` declares param `{key}`, so every variant would be the same run",
                plan.name()
            )
        } else {
            format!(
                "`-p {key}=…`: no step the targets ({}) need declares param `{key}` (only {} do), so every variant would be the same run",
                targets.join(" "),
                readers.join(", ")
            )
        });
        let used: BTreeSet<&str> = full
            .steps()
            .iter()
            .flat_map(|s| s.params.keys())
            .map(String::as_str)
            .collect();
        if let Some(close) = crate::pipeline::diag::did_you_mean(key, used.iter().copied())
            && close != *key
        {
            e = e.hint(format!("did you mean `{close}`?"));
        }
        e = e.hint(if used.is_empty() {
            "no step declares a param: a step depends on one through `params = [\"KEY\"]` or `{params.KEY}` in its cmd".to_string()
        } else {
            format!(
                "params the steps declare: {}",
                used.into_iter().collect::<Vec<_>>().join(", ")
            )
        });
        return Err(e);
    }
    Ok(())
}

/// The steps no swept param reaches, directly or through a step they depend on.
fn shared_steps(plan: &Plan, swept: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut varies = vec![false; plan.steps().len()];
    for (i, s) in plan.steps().iter().enumerate() {
        varies[i] = s.params.keys().any(|k| swept.contains(k.as_str()))
            || s.deps.iter().any(|&d| varies[d]);
    }
    plan.steps()
        .iter()
        .zip(&varies)
        .filter(|(_, v)| !**v)
        .map(|(s, _)| s.name.clone())
        .collect()
}

/// `lr=0.1 depth=3`: the swept values of a variant.
pub(super) fn label(combo: &[String], axes: &[Axis]) -> String {
    combo
        .iter()
        .zip(axes)
        .filter(|(_, a)| a.values.len() > 1)
        .map(|(c, _)| c.clone())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_split_on_commas_but_not_escaped_ones_nor_toml_values() {
        assert_eq!(split_values("0.1,0.2"), ["0.1", "0.2"]);
        assert_eq!(split_values("a\\,b,c"), ["a,b", "c"]);
        assert_eq!(split_values("[1,2]"), ["[1,2]"]);
        assert_eq!(split_values("\"a,b\""), ["\"a,b\""]);
        assert_eq!(split_values("0.1,"), ["0.1", ""]);
    }

    #[test]
    fn the_cross_product_varies_the_last_axis_fastest() {
        let axes = parse(&strings(&["lr=1,2", "seed=7", "depth=3,5"])).unwrap();
        assert_eq!(
            combinations(&axes),
            [
                strings(&["lr=1", "seed=7", "depth=3"]),
                strings(&["lr=1", "seed=7", "depth=5"]),
                strings(&["lr=2", "seed=7", "depth=3"]),
                strings(&["lr=2", "seed=7", "depth=5"]),
            ]
        );
        assert_eq!(label(&combinations(&axes)[1], &axes), "lr=1 depth=5");
        assert!(parse(&strings(&["lr=1", "lr=2,3"])).is_err());
    }
}

//! One output's explanation, from what is known of its step: the recorded execution, the
//! replay's and (when the step ran again) the second; content differences against the record and
//! between the two replays.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::causes::{change_candidates, nondeterminism_hints};
use super::{Cause, Context, Explanation, blank};
use crate::diffcontent::{self, ContentDiff};
use crate::error::Result;
use crate::fingerprint::hash::Fingerprint;
use crate::pipeline::Plan;
use crate::replay::OutputVerdict;
use crate::store::Store;
use crate::store::objects::Objects;
use crate::store::record::Io;

/// What is known of one step to explain its outputs: the recorded execution, the replay's and,
/// when it ran again, the second; the causes, worked out once per step when first needed.
pub(super) struct Evidence<'a> {
    step: &'a crate::pipeline::plan::Step,
    orig_exec: Option<i64>,
    first_exec: Option<i64>,
    orig_out: Vec<Io>,
    first_out: Vec<Io>,
    again: bool,
    second_exec: Option<(i64, String)>,
    second_out: Vec<Io>,
    moved_inputs: Vec<String>,
    changes: Option<Vec<Cause>>,
    hints: Option<Vec<Cause>>,
}

impl<'a> Evidence<'a> {
    pub(super) fn gather(
        cx: &Context,
        step: &'a crate::pipeline::plan::Step,
        replayed: &BTreeMap<String, (i64, String)>,
        second: &BTreeMap<String, (i64, String)>,
        again: bool,
    ) -> Result<Self> {
        let orig_exec = cx.orig.execs.get(&step.name).copied();
        let first_exec = replayed.get(&step.name).map(|(id, _)| *id);
        let orig_out: Vec<Io> = match orig_exec {
            Some(e) => cx.store.recorded_io(e, "out")?,
            None => Vec::new(),
        };
        let first_out: Vec<Io> = match first_exec {
            Some(e) => cx.store.recorded_io(e, "out")?,
            None => Vec::new(),
        };
        let second_exec = second.get(&step.name).cloned();
        let (second_out, moved_inputs) = match (&second_exec, first_exec) {
            (Some((e2, status)), Some(e1)) if status == "succeeded" => (
                cx.store.recorded_io(*e2, "out")?,
                changed_inputs(cx.store, e1, *e2)?,
            ),
            _ => (Vec::new(), Vec::new()),
        };
        Ok(Evidence {
            step,
            orig_exec,
            first_exec,
            orig_out,
            first_out,
            again,
            second_exec,
            second_out,
            moved_inputs,
            changes: None,
            hints: None,
        })
    }
}

fn fp_of(l: &[Io], p: &str) -> Option<Fingerprint> {
    l.iter().find(|io| io.path == p).map(|io| io.fp.clone())
}

/// Explain one output of a step: expected, unexplained, nondeterministic (upstream or here),
/// deterministic, or caused by a change.
pub(super) fn explain_output(
    cx: &Context,
    ev: &mut Evidence,
    aside_dir: Option<&Path>,
    o: &mut OutputVerdict,
) -> Result<()> {
    let recorded = fp_of(&ev.orig_out, &o.path);
    let first = fp_of(&ev.first_out, &o.path);
    // record → replay (the replay's bytes: kept aside when the step ran again)
    let replay_base = match aside_dir {
        Some(a) if ev.again => a,
        _ => cx.root,
    };
    if o.explanation.is_some() {
        // expected: only the content difference
        if let Some(e) = o.explanation.as_mut() {
            (e.content, e.content_file) = recorded_content(
                cx.objects,
                recorded.as_ref(),
                first.as_ref(),
                replay_base,
                &o.path,
            );
        }
        return Ok(());
    }
    if !ev.again {
        return Ok(());
    }
    let Some((_, status)) = &ev.second_exec else {
        return Ok(());
    };
    if status != "succeeded" {
        if !o.identical {
            o.explanation = Some(Explanation {
                kind: "unexplained",
                text: format!("not explained: its second run did not succeed ({status})"),
                ..blank()
            });
        }
        return Ok(());
    }
    let second_fp = fp_of(&ev.second_out, &o.path);
    let stable = match (&first, &second_fp) {
        (Some(a), Some(b)) => a.hash() == b.hash(),
        // missing both times (not made, as recorded or not): not a difference between them
        (None, None) => true,
        _ => false,
    };
    let mut e = blank();
    e.second = second_fp.as_ref().map(|f| f.hash().to_string());
    if !o.identical {
        (e.content, e.content_file) = recorded_content(
            cx.objects,
            recorded.as_ref(),
            first.as_ref(),
            replay_base,
            &o.path,
        );
    }
    if !stable {
        e.between_replays = between(
            replay_base,
            cx.root,
            &o.path,
            first.as_ref(),
            second_fp.as_ref(),
        );
        if !ev.moved_inputs.is_empty() {
            e.kind = "upstream";
            e.text = "differed again in a second run, whose inputs differed too: a step before it is nondeterministic here".into();
            e.causes = upstream_causes(cx.plan, &ev.moved_inputs);
        } else {
            e.kind = "nondeterministic";
            e.text =
                "nondeterministic here: a second run with the same inputs made other bytes".into();
            let (store, first_exec, step) = (cx.store, ev.first_exec, ev.step);
            let h = ev
                .hints
                .get_or_insert_with(|| nondeterminism_hints(store, first_exec, step));
            e.causes = h.clone();
            put_timestamp_first(&mut e, &o.path);
        }
    } else if o.identical {
        e.kind = "deterministic";
        e.text = "the same again in a second run with the same inputs".into();
    } else {
        e.kind = "changed";
        e.text =
            "caused by a change: the same again in a second run, but not what was recorded".into();
        let c = match ev.changes.as_ref() {
            Some(c) => c.clone(),
            None => {
                let c = change_candidates(cx, ev.step, ev.orig_exec, ev.first_exec)?;
                ev.changes = Some(c.clone());
                c
            }
        };
        e.causes = c;
    }
    o.explanation = Some(e);
    Ok(())
}

/// The inputs whose versions differ between two executions.
fn changed_inputs(store: &Store, a: i64, b: i64) -> Result<Vec<String>> {
    let map = |l: Vec<Io>| -> BTreeMap<String, String> {
        l.into_iter()
            .map(|io| (io.path, io.fp.hash().to_string()))
            .collect()
    };
    let (x, y) = (
        map(store.recorded_io(a, "in")?),
        map(store.recorded_io(b, "in")?),
    );
    let paths: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
    Ok(paths
        .into_iter()
        .filter(|p| x.get(*p) != y.get(*p))
        .cloned()
        .collect())
}

/// The file to compare inside two versions of an output: the output itself, or for a
/// directory its first file whose content changed (else the first added or removed one).
fn file_pair(a: &Fingerprint, b: &Fingerprint) -> Option<(Option<String>, String, String)> {
    match (a, b) {
        (Fingerprint::File { hash: ha, .. }, Fingerprint::File { hash: hb, .. }) => {
            Some((None, ha.clone(), hb.clone()))
        }
        (Fingerprint::Dir { entries: ea, .. }, Fingerprint::Dir { entries: eb, .. }) => {
            let mb: BTreeMap<&str, &str> = eb
                .iter()
                .map(|e| (e.relpath.as_str(), e.hash.as_str()))
                .collect();
            ea.iter().find_map(|e| match mb.get(e.relpath.as_str()) {
                Some(h) if *h != e.hash => {
                    Some((Some(e.relpath.clone()), e.hash.clone(), h.to_string()))
                }
                _ => None,
            })
        }
        _ => None,
    }
}

/// Recorded bytes (from the object store) against the replay's (under `base`).
fn recorded_content(
    objects: &Objects,
    recorded: Option<&Fingerprint>,
    replay: Option<&Fingerprint>,
    base: &Path,
    path: &str,
) -> (Option<ContentDiff>, Option<String>) {
    let (Some(a), Some(b)) = (recorded, replay) else {
        return (None, None);
    };
    let Some((inner, ha, _)) = file_pair(a, b) else {
        return (None, None);
    };
    if !objects.has(&ha) {
        return (None, None);
    }
    let rel = match &inner {
        Some(i) => format!("{path}/{i}"),
        None => path.to_string(),
    };
    let there = base.join(&rel);
    let d = diffcontent::compare_named(&objects.path_of(&ha), &there, &rel).ok();
    (d, inner)
}

/// First replay (kept aside) against the second (in the scratch tree).
fn between(
    aside: &Path,
    root: &Path,
    path: &str,
    first: Option<&Fingerprint>,
    second: Option<&Fingerprint>,
) -> Option<ContentDiff> {
    let (inner, _, _) = file_pair(first?, second?)?;
    let rel = match &inner {
        Some(i) => format!("{path}/{i}"),
        None => path.to_string(),
    };
    diffcontent::compare_named(&aside.join(&rel), &root.join(&rel), &rel).ok()
}

/// The causes of an output that differed again while its inputs differed between the two
/// replays: each such input, and the step that made it.
fn upstream_causes(plan: &Plan, moved_inputs: &[String]) -> Vec<Cause> {
    moved_inputs
        .iter()
        .map(|p| {
            let maker = plan
                .steps()
                .iter()
                .find(|s| {
                    s.outputs
                        .iter()
                        .any(|o| crate::pipeline::plan::within(p, &o.path))
                })
                .map(|s| format!(" (made by `{}`)", s.name))
                .unwrap_or_default();
            Cause {
                kind: "input",
                name: p.clone(),
                before: None,
                after: None,
                text: format!("input {p}{maker} differed between the two replays"),
            }
        })
        .collect()
}

/// When the two replays' bytes differ by a time written into the file, that time leads the
/// causes (it says more than the general hint about the clock, which it replaces).
fn put_timestamp_first(e: &mut Explanation, path: &str) {
    if let Some(d) = &e.between_replays
        && !d.timestamps.is_empty()
    {
        // the time found says more than the general hint about the clock
        e.causes.retain(|c| c.name != "clock");
        e.causes.insert(
            0,
            Cause {
                kind: "timestamp",
                name: path.to_string(),
                before: d.timestamps.first().cloned(),
                after: d.timestamps.get(1).cloned(),
                text: format!(
                    "the file holds a time ({}): write a fixed one (from SOURCE_DATE_EPOCH, or a param) or leave it out",
                    d.timestamps.join(", ")
                ),
            },
        );
    }
}

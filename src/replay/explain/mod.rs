//! Why a replayed output differs from the record. Each differing step runs once more in the
//! replay's scratch tree with the same inputs (only those steps; nothing when all is identical):
//! an output that differs between the two replays is *nondeterministic here* (with the usual
//! causes for the interpreter and libraries the step used); one that is stable but differs from
//! the record is *caused by a change*, with the candidates ranked from what the recorded step and
//! the replay differ in (inputs, environment variables, packages, interpreter, system). Outputs
//! known to be nondeterministic (`mlrun check`, an earlier replay) are *expected* to differ and
//! do not run again. Every differing output gets a content-aware difference (`diffcontent`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::diffcontent::ContentDiff;
use crate::error::{Error, Result};
use crate::pipeline::Plan;
use crate::replay::{Original, StepVerdict};
use crate::report::Role;
use crate::store::Store;
use crate::store::determinism::Finding;
use crate::store::objects::Objects;

mod causes;
mod output;

use output::{Evidence, explain_output};

/// When to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `--no-explain`
    Off,
    /// the default: the differing steps run again, unless every difference is expected
    Auto,
    /// `--explain`: every replayed step runs again, identical or not
    Force,
    /// `mlrun check STEP...`: these steps run again, and their verdicts are recorded
    Check(Vec<String>),
}

/// One candidate cause of a difference.
#[derive(Debug, Clone, Serialize)]
pub struct Cause {
    /// `input`, `env_var`, `package`, `interpreter`, `lockfile`, `system`, `timestamp`, `hint`
    pub kind: &'static str,
    /// the input path, variable, package, program or property; the hint's subject
    pub name: String,
    /// recorded value (a secret's value is never shown: `(secret)`)
    pub before: Option<String>,
    /// value in the replay
    pub after: Option<String>,
    /// in words
    pub text: String,
}

/// The explanation of one output.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// `nondeterministic` (differed again between two replays with the same inputs), `changed`
    /// (stable, so caused by a change), `expected` (known nondeterministic), `upstream` (its
    /// inputs differed between the two replays: a step before it is nondeterministic),
    /// `deterministic` (the same again; with `--explain` or `check`), `unexplained` (the second
    /// run failed)
    pub kind: &'static str,
    /// one line for people
    pub text: String,
    /// for `expected`: the run that found it nondeterministic (full id, then as shown)
    pub since_run: Option<String>,
    pub since_run_short: Option<String>,
    /// the output's hash in the second run
    pub second: Option<String>,
    /// most likely first
    pub causes: Vec<Cause>,
    /// recorded version → replayed version (when the recorded bytes are in the object store)
    pub content: Option<ContentDiff>,
    /// the file of a directory output that `content` compares
    pub content_file: Option<String>,
    /// first replay → second replay
    pub between_replays: Option<ContentDiff>,
}

/// What explaining did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    /// the run that ran the steps a second time (absent when none had to)
    pub second_run: Option<String>,
    pub second_run_short: Option<String>,
    /// the steps that ran a second time
    pub steps_rerun: Vec<String>,
}

pub struct Context<'a> {
    pub store: &'a Store,
    pub objects: &'a Objects,
    pub orig: &'a Original,
    /// the plan the replay ran (rooted in the scratch tree)
    pub plan: &'a Plan,
    /// the project root in the scratch tree
    pub root: &'a Path,
    /// the replay run
    pub replay_run: &'a str,
}

/// How many candidate causes a person sees per output (`--json` has them all).
pub const CAUSES_SHOWN: usize = 5;

/// Explain the verdicts; `run_again` runs a plan of some steps in the scratch tree and returns
/// its run id and short id.
pub fn explain(
    cx: &Context,
    verdicts: &mut [StepVerdict],
    mode: &Mode,
    run_again: &mut dyn FnMut(Plan) -> Result<(String, String)>,
) -> Result<Summary> {
    let mut summary = Summary::default();
    if *mode == Mode::Off {
        return Ok(summary);
    }
    let pipeline = cx.store.pipeline_of(&cx.orig.run_id)?;
    let checked = |name: &str| matches!(mode, Mode::Check(s) if s.iter().any(|c| c == name));
    let replayed = cx.store.step_statuses(cx.replay_run)?;
    let known = cx.store.nondeterministic_outputs(&pipeline)?;
    let rerun = choose_reruns(verdicts, mode, &known, &checked);

    // the first replay's outputs of those steps, kept aside before the second run replaces them
    let mut aside = None;
    let mut second: BTreeMap<String, (i64, String)> = BTreeMap::new();
    if !rerun.is_empty() {
        aside = Some(keep_aside(cx, &rerun)?);
        let (run, short) = run_again(only(cx.plan, &rerun))?;
        second = cx.store.step_statuses(&run)?;
        summary.second_run = Some(run);
        summary.second_run_short = Some(short);
        summary.steps_rerun = rerun.iter().cloned().collect();
    }

    for v in verdicts.iter_mut() {
        let Some(step) = cx.plan.steps().iter().find(|s| s.name == v.name) else {
            continue;
        };
        let mut ev = Evidence::gather(cx, step, &replayed, &second, rerun.contains(&v.name))?;
        let aside_dir = aside.as_ref().map(|a| a.path());
        for o in v.outputs.iter_mut() {
            explain_output(cx, &mut ev, aside_dir, o)?;
        }
    }

    record_findings(cx, &pipeline, verdicts, &checked)?;
    if let Some(run) = &summary.second_run {
        cx.store
            .set_replay_verdict(run, second_verdict(verdicts, &rerun, &second))?;
    }
    Ok(summary)
}

/// Expected differences first (known nondeterministic outputs, unless checked); then which
/// steps run again.
fn choose_reruns(
    verdicts: &mut [StepVerdict],
    mode: &Mode,
    known: &BTreeMap<(String, String), Finding>,
    checked: &dyn Fn(&str) -> bool,
) -> BTreeSet<String> {
    let mut rerun: BTreeSet<String> = BTreeSet::new();
    for v in verdicts.iter_mut() {
        if v.verdict != "identical" && v.verdict != "differs" {
            continue;
        }
        let mut unexpected = false;
        for o in v.outputs.iter_mut().filter(|o| !o.identical) {
            match known.get(&(v.name.clone(), o.path.clone())) {
                Some(f) if !checked(&v.name) => o.explanation = Some(expected(f)),
                _ => unexpected = true,
            }
        }
        let again = match mode {
            Mode::Off => false,
            Mode::Auto => unexpected,
            Mode::Force => true,
            Mode::Check(_) => checked(&v.name) || unexpected,
        };
        if again {
            rerun.insert(v.name.clone());
        }
    }
    rerun
}

/// Copy the first replay's outputs of the steps that run again to a scratch directory.
fn keep_aside(cx: &Context, rerun: &BTreeSet<String>) -> Result<crate::store::owner::Owned> {
    let aside = crate::store::owner::Owned::create_dir(
        &std::env::temp_dir(),
        &format!(
            "{}explain-{}",
            crate::store::owner::REPLAY_PREFIX,
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ),
    )
    .map_err(|e| Error::other("cannot create a scratch directory").cause(e))?;
    for s in cx.plan.steps().iter().filter(|s| rerun.contains(&s.name)) {
        for o in &s.outputs {
            let src = cx.root.join(&o.path);
            if src.symlink_metadata().is_ok() {
                copy_tree(&src, &aside.path().join(&o.path)).map_err(|e| {
                    Error::other(format!("cannot keep `{}` aside to explain it", o.path)).cause(e)
                })?;
            }
        }
    }
    Ok(aside)
}

/// The mode the flags ask for.
pub fn mode(explain: bool, no_explain: bool, check: &[String]) -> Mode {
    if !check.is_empty() {
        Mode::Check(check.to_vec())
    } else if no_explain {
        Mode::Off
    } else if explain {
        Mode::Force
    } else {
        Mode::Auto
    }
}

/// The plan `mlrun check` replays: the steps to check and the steps they need, each named
/// step recorded in the run being checked.
pub fn check_plan(plan: Plan, steps: &[String], orig: &Original) -> Result<Plan> {
    for s in steps {
        if plan.step_index(s).is_none() || !orig.execs.contains_key(s) {
            let names: Vec<&str> = plan.steps().iter().map(|s| s.name.as_str()).collect();
            let mut e = Error::invalid(format!(
                "run {} has no recorded step `{s}` to check",
                orig.short_id
            ));
            if let Some(m) = crate::pipeline::diag::did_you_mean(s, names.iter().copied()) {
                e = e.hint(format!("did you mean `{m}`?"));
            } else {
                e = e.hint(format!(
                    "its steps: {}; another run with `--run RUN` (see `mlrun runs`)",
                    names.join(", ")
                ));
            }
            return Err(e);
        }
    }
    Ok(only(&plan, &with_upstream(&plan, steps)))
}

/// Every output that differs was expected to (known nondeterministic).
pub fn all_expected(verdicts: &[StepVerdict]) -> bool {
    let mut differing = verdicts
        .iter()
        .flat_map(|v| v.outputs.iter().filter(|o| !o.identical))
        .peekable();
    differing.peek().is_some()
        && differing.all(|o| o.explanation.as_ref().is_some_and(|e| e.kind == "expected"))
}

/// What `mlrun check` says at the end.
pub struct CheckReport {
    pub lines: Vec<String>,
    /// an output of a checked step is nondeterministic
    pub nondeterministic: bool,
}

pub fn check_lines(verdicts: &[StepVerdict], checked: &[String]) -> CheckReport {
    let mut r = CheckReport {
        lines: Vec::new(),
        nondeterministic: false,
    };
    for v in verdicts.iter().filter(|v| checked.contains(&v.name)) {
        let mut same = Vec::new();
        let mut other = Vec::new();
        let mut unknown = Vec::new();
        let mut follows = Vec::new();
        for o in &v.outputs {
            match o.explanation.as_ref().map(|e| e.kind) {
                Some("nondeterministic") => other.push(o.path.as_str()),
                Some("upstream") => follows.push(o.path.as_str()),
                Some("deterministic") | Some("changed") => same.push(o.path.as_str()),
                _ => unknown.push(o.path.as_str()),
            }
        }
        r.nondeterministic |= !other.is_empty();
        let mut parts = Vec::new();
        if !other.is_empty() {
            parts.push(format!("nondeterministic: {}", other.join(", ")));
        }
        if !same.is_empty() {
            parts.push(format!("the same twice: {}", same.join(", ")));
        }
        if !follows.is_empty() {
            parts.push(format!(
                "not known (its inputs differed between the two runs: check the step that makes them): {}",
                follows.join(", ")
            ));
        }
        if !unknown.is_empty() {
            parts.push(format!(
                "not checked (the step failed): {}",
                unknown.join(", ")
            ));
        }
        r.lines
            .push(format!("check {}: {}", v.name, parts.join("; ")));
    }
    if r.nondeterministic {
        r.lines.push(
            "recorded: later replays expect the nondeterministic outputs to differ, and `status` and `show` mark them"
                .into(),
        );
    }
    r
}

fn blank() -> Explanation {
    Explanation {
        kind: "",
        text: String::new(),
        since_run: None,
        since_run_short: None,
        second: None,
        causes: Vec::new(),
        content: None,
        content_file: None,
        between_replays: None,
    }
}

fn expected(f: &Finding) -> Explanation {
    Explanation {
        kind: "expected",
        text: format!(
            "differs, as expected: known nondeterministic since run {} ({})",
            f.since_run_short,
            if f.found_by == "check" {
                "found by `mlrun check`"
            } else {
                "found by a replay"
            }
        ),
        since_run: Some(f.since_run.clone()),
        since_run_short: Some(f.since_run_short.clone()),
        ..blank()
    }
}

/// Only the steps in `keep`, in the same order (dependencies on the others dropped: their
/// outputs are already in the scratch tree).
pub fn only(plan: &Plan, keep: &BTreeSet<String>) -> Plan {
    plan.clone().only(keep)
}

/// `names` and every step they need, in the plan's order.
pub fn with_upstream(plan: &Plan, names: &[String]) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    let mut todo: Vec<usize> = names.iter().filter_map(|n| plan.step_index(n)).collect();
    while let Some(i) = todo.pop() {
        if keep.insert(plan.steps()[i].name.clone()) {
            todo.extend(plan.steps()[i].deps.iter().copied());
        }
    }
    keep
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let meta = src.symlink_metadata()?;
    if meta.is_dir() {
        std::fs::create_dir_all(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        Ok(())
    } else {
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p)?;
        }
        // a copy-on-write clone where the file system has them: big outputs cost no space
        reflink_copy::reflink_or_copy(src, dst).map(|_| ())
    }
}

/// The step's command and the text of its small declared input files (its scripts, configs),
/// where a candidate's name is looked for: a variable or package the step's code names is the
/// more likely cause.
fn step_text(root: &Path, step: &crate::pipeline::plan::Step) -> String {
    const MAX_FILE: u64 = 1 << 20;
    const MAX_TOTAL: usize = 8 << 20;
    let mut text = step.cmd.display();
    for i in &step.inputs {
        if text.len() > MAX_TOTAL {
            break;
        }
        let p = root.join(&i.path);
        if p.metadata()
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_FILE)
            && let Ok(b) = std::fs::read(&p)
            && !b.contains(&0)
        {
            text.push('\n');
            text.push_str(&String::from_utf8_lossy(&b));
        }
    }
    text
}

/// Whether `word` appears in `text` as a whole word.
fn names(text: &str, word: &str) -> bool {
    let ok = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
    text.match_indices(word).any(|(i, _)| {
        ok(text[..i].chars().next_back()) && ok(text[i + word.len()..].chars().next())
    })
}

/// Lines for people under a step's verdict: one per explained output, with its causes and a
/// short content difference.
pub fn render(v: &StepVerdict, style: &crate::report::Style) -> Vec<String> {
    let mut lines = Vec::new();
    for o in &v.outputs {
        let Some(e) = &o.explanation else { continue };
        if e.kind == "deterministic" {
            lines.push(format!("    {}: {}", o.path, e.text));
            continue;
        }
        let head = match e.kind {
            "expected" => style.paint(Role::Warn, &e.text),
            "changed" | "nondeterministic" | "upstream" => style.paint(Role::Bad, &e.text),
            _ => e.text.clone(),
        };
        lines.push(format!("    {}: {head}", o.path));
        let label = if e.kind == "changed" {
            "most likely"
        } else {
            "usual causes"
        };
        for (i, c) in e.causes.iter().take(CAUSES_SHOWN).enumerate() {
            let l = if i == 0 { label } else { "or" };
            lines.push(format!(
                "      {} {}",
                style.paint(Role::Muted, &format!("{l}:")),
                c.text
            ));
        }
        if e.causes.len() > CAUSES_SHOWN {
            let n = e.causes.len() - CAUSES_SHOWN;
            lines.push(format!(
                "      {} {n} more candidate{} (`--json` lists them all)",
                style.paint(Role::Muted, "and"),
                if n == 1 { "" } else { "s" }
            ));
        }
        let mut diff = |what: &str, d: &ContentDiff, file: Option<&String>| {
            let of = file.map(|f| format!(" ({f})")).unwrap_or_default();
            lines.push(format!(
                "      {}{of} {}",
                style.paint(Role::Muted, &format!("{what}:")),
                d.summary
            ));
            for l in d.details.iter().take(8) {
                lines.push(format!("        {l}"));
            }
        };
        if let Some(d) = &e.between_replays {
            diff("between the two replays", d, None);
        } else if let Some(d) = &e.content {
            diff("recorded → replayed", d, e.content_file.as_ref());
        }
    }
    lines
}

/// Remember what was found: a replay only ever adds nondeterminism (a second run that came out
/// the same may have been lucky); `check` records both verdicts.
fn record_findings(
    cx: &Context,
    pipeline: &str,
    verdicts: &[StepVerdict],
    checked: &dyn Fn(&str) -> bool,
) -> Result<()> {
    for v in verdicts.iter() {
        for o in &v.outputs {
            let Some(e) = &o.explanation else { continue };
            let nondet = e.kind == "nondeterministic";
            if checked(&v.name) && (nondet || e.kind == "deterministic" || e.kind == "changed") {
                cx.store.record_determinism(
                    pipeline,
                    &v.name,
                    &o.path,
                    nondet,
                    cx.replay_run,
                    "check",
                )?;
            } else if nondet {
                cx.store.record_determinism(
                    pipeline,
                    &v.name,
                    &o.path,
                    true,
                    cx.replay_run,
                    "replay",
                )?;
            }
        }
    }
    Ok(())
}

/// The second run is a replay of the same run too: its own verdict against the record.
fn second_verdict(
    verdicts: &[StepVerdict],
    rerun: &BTreeSet<String>,
    second: &BTreeMap<String, (i64, String)>,
) -> &'static str {
    let differs = verdicts
        .iter()
        .filter(|v| rerun.contains(&v.name))
        .any(|v| {
            v.outputs.iter().any(|o| {
                o.explanation
                    .as_ref()
                    .and_then(|e| e.second.as_ref())
                    .is_none_or(|h| Some(h) != o.original.as_ref())
            })
        });
    let failed = second.values().any(|(_, s)| s != "succeeded");
    if failed {
        "failed"
    } else if differs {
        "differs"
    } else {
        "identical"
    }
}

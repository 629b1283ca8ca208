//! `mlrun replay TARGET`: rebuild the recorded source tree and inputs in a scratch directory, run
//! the recorded steps again as a new run linked by `replay_of`, and give a verdict per step.
//! Exit 0 when everything is identical, 1 when anything differs, a failed step's code otherwise.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::cmd::target::Target;
use crate::error::{Error, Result};
use crate::exec::event::Sinks;
use crate::exec::reporter::Human;
use crate::exec::{self, Force, RunOptions, output::Printer};
use crate::pipeline::Plan;
use crate::replay::{self, Original, StepVerdict};
use crate::report::Role;
use crate::report::{ColorChoice, Style};
use crate::store::objects::Objects;
use crate::store::{self, Store};

#[derive(Debug, clap::Args)]
#[command(after_help = crate::cmd::target::RUN_HELP)]
pub struct ReplayArgs {
    /// A run (id prefix, `latest`, `latest~1`), or an artifact path or content hash (replays
    /// the run that produced it)
    #[arg(value_name = "TARGET", default_value = "latest")]
    pub target: String,

    /// Replay only this step and the steps it needs
    #[arg(long, value_name = "STEP", display_order = 1)]
    pub step: Option<String>,

    /// Keep the scratch tree and print where it is
    #[arg(long, display_order = 2)]
    pub keep: bool,

    /// Copy the reproduced outputs into DIR
    #[arg(long, value_name = "DIR", display_order = 3)]
    pub into: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub exec: super::ExecArgs,

    /// Print the verdict as JSON on stdout (progress goes to stderr)
    #[arg(long, display_order = 21)]
    pub json: bool,

    /// Explain even when every output is identical: every replayed step runs a second time
    /// [default: only the steps whose outputs differ run again]
    #[arg(long, conflicts_with = "no_explain", display_order = 22)]
    pub explain: bool,

    /// Do not explain differing outputs (no second run of the differing steps)
    #[arg(long, display_order = 23)]
    pub no_explain: bool,

    /// set by `mlrun check`: the steps to run twice and record the verdicts of
    #[arg(skip)]
    pub check: Vec<String>,
}

/// How many differing outputs the replay's last line names before `and N more` (`--json` has
/// them all).
const SUMMARY_OUTPUTS: usize = 10;

#[derive(Serialize)]
struct Report {
    original: String,
    replay: String,
    /// `identical`, `differs` or `failed`
    verdict: String,
    exit_code: i32,
    steps: Vec<StepVerdict>,
    scratch: Option<String>,
    /// the second run of the steps that were explained (absent with `--no-explain`)
    explain: Option<replay::explain::Summary>,
    /// every differing output was known to be nondeterministic (the exit code is then 0)
    all_expected: bool,
}

pub fn replay(args: ReplayArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    // a run only on the team remote is pulled, and the objects it needs fetched
    let dir = match crate::remote::bring_here(store_dir, &args.target)? {
        Some(dir) => dir,
        None => store::find_dir(store_dir)?,
    };
    let store = Store::open_existing(&dir)?;
    let project = dir.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut args = args;
    let run_id = run_to_replay(&store, &mut args, &project)?;
    let orig = replay::load(&store, &run_id)?;
    let plan = plan_to_replay(&orig, &args)?;
    let r = Replayer {
        args: &args,
        orig: &orig,
        dir: &dir,
        color,
        err: Style::stderr(color),
    };

    let scratch = scratch_dir()?;
    let root = replay::rebuild_tree(&orig, scratch.path())?;
    std::fs::create_dir_all(&root)
        .map_err(|e| Error::other("cannot create the scratch tree").cause(e))?;
    let objects = Objects::new(&dir);
    restore_inputs(&r, &store, &objects, &plan, &root)?;
    let plan = plan_in_scratch(&store, &orig, plan, &root, &r.err)?;
    let code = code_words(&orig);
    r.say(&format!(
        "replaying run {} ({code}, {} step{}) in {}",
        orig.short_id,
        plan.steps().len(),
        if plan.steps().len() == 1 { "" } else { "s" },
        scratch.path().display()
    ));
    let replan = plan.clone();
    let outcome = r.run(plan, store, false, None)?;

    let store = Store::open(&dir)?;
    let mut verdicts = replay::verdicts(&store, &orig, &replan, &outcome.run_id)?;
    let failed = outcome.status != crate::store::record::RunStatus::Succeeded;
    let differs = verdicts.iter().filter(|v| v.verdict == "differs").count();
    let verdict = if failed {
        "failed"
    } else if differs > 0 {
        "differs"
    } else {
        "identical"
    };
    store.set_replay_verdict(&outcome.run_id, verdict)?;

    // why what differs differs: the differing steps run once more, in the same scratch tree
    let mode = replay::explain::mode(args.explain, args.no_explain, &args.check);
    let explained = if failed || mode == replay::explain::Mode::Off {
        None
    } else {
        let cx = replay::explain::Context {
            store: &store,
            objects: &objects,
            orig: &orig,
            plan: &replan,
            root: &root,
            replay_run: &outcome.run_id,
        };
        Some(r.explain(&cx, &mut verdicts, &mode, &outcome.short_id)?)
    };
    let all_expected = verdict == "differs" && replay::explain::all_expected(&verdicts);
    let exit_code = r.say_verdicts(&verdicts, verdict, differs, all_expected, &outcome);

    if let Some(into) = &args.into {
        let n = replay::materialise(&replan, &root, into)?;
        r.say(&format!(
            "copied {n} reproduced output{} into {}",
            if n == 1 { "" } else { "s" },
            into.display()
        ));
    }
    let kept = if args.keep {
        let p = scratch.keep();
        r.say(&format!("kept the scratch tree at {}", p.display()));
        Some(p.display().to_string())
    } else {
        None
    };
    if args.json {
        let r = Report {
            original: orig.run_id.clone(),
            replay: outcome.run_id.clone(),
            verdict: verdict.into(),
            exit_code,
            steps: verdicts,
            scratch: kept,
            explain: explained,
            all_expected,
        };
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    }
    Ok(exit_code)
}

/// Restore the recorded inputs into the scratch tree (a gc meanwhile must not delete what is
/// being restored); an input that cannot be restored fails the replay.
fn restore_inputs(
    r: &Replayer,
    store: &Store,
    objects: &Objects,
    plan: &Plan,
    root: &Path,
) -> Result<()> {
    let hold = crate::store::lock::ObjectsHold::take(r.dir, || {
        eprintln!("waiting for `mlrun gc` to finish before restoring inputs…")
    })
    .ok();
    let missing = replay::restore_inputs(store, objects, r.orig, plan, root)?;
    drop(hold);
    if !missing.is_empty() {
        return Err(unrestorable(r.orig, &missing));
    }
    Ok(())
}

/// What every run of a replay shares: the command line, the recorded run, the store.
struct Replayer<'a> {
    args: &'a ReplayArgs,
    orig: &'a Original,
    dir: &'a Path,
    color: ColorChoice,
    err: Style,
}

impl Replayer<'_> {
    /// A line for people: on stdout, or on stderr with `--json`.
    fn say(&self, text: &str) {
        if self.args.json {
            eprintln!("{text}")
        } else {
            println!("{text}")
        }
    }

    /// Run a plan in the scratch tree as a replay of the recorded run.
    fn run(
        &self,
        plan: Plan,
        store: Store,
        keep_going: bool,
        message: Option<String>,
    ) -> Result<exec::RunOutcome> {
        let args = self.args;
        let plan = plan.with_executor(args.exec.executor());
        let names: Vec<&str> = plan.steps().iter().map(|s| s.name.as_str()).collect();
        let printer = Arc::new(Printer::new(
            args.json,
            Style::stdout(self.color),
            self.err,
            &names,
        ));
        let opts = RunOptions {
            jobs: exec::default_jobs(args.exec.jobs),
            keep_going,
            grace: args.exec.grace,
            argv: std::env::args().collect(),
            replay_of: Some(self.orig.run_id.clone()),
            force: Force::All,
            reuse_replays: false,
            no_store: true,
            no_cache: true,
            git_fixed: Some(self.orig.git.clone()),
            recorded_location: Some(self.orig.plan.root().to_path_buf()),
            // a replay reruns what was declared; tracing it again would only repeat the
            // original's observations (and need the scratch tree's paths): keep it off
            trace: Some(crate::pipeline::plan::TraceMode::Off),
            run_id: None,
            message,
            targets: None,
            sweep_id: None,
        };
        let mut events = Sinks::new();
        events.push(Arc::new(Human::new(printer)));
        exec::run_blocking(plan, store, opts, events)
    }

    /// Explain the differences: the steps `explain` picks run once more, as a second replay.
    fn explain(
        &self,
        cx: &replay::explain::Context,
        verdicts: &mut [StepVerdict],
        mode: &replay::explain::Mode,
        replay_short: &str,
    ) -> Result<replay::explain::Summary> {
        let mut run_again = |sub: Plan| -> Result<(String, String)> {
            let names: Vec<&str> = sub.steps().iter().map(|s| s.name.as_str()).collect();
            self.say(&format!(
                "running {} once more with the same inputs, to tell nondeterminism from a change",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let out = self.run(
                sub,
                Store::open(self.dir)?,
                true,
                Some(format!(
                    "second run of replay {replay_short}, to explain its differences"
                )),
            )?;
            Ok((out.run_id, out.short_id))
        };
        replay::explain::explain(cx, verdicts, mode, &mut run_again)
    }

    /// The verdict per step, the summary, what `check` found; the exit code they make.
    fn say_verdicts(
        &self,
        verdicts: &[StepVerdict],
        verdict: &str,
        differs: usize,
        all_expected: bool,
        outcome: &exec::RunOutcome,
    ) -> i32 {
        let args = self.args;
        let style = if args.json {
            self.err
        } else {
            Style::stdout(self.color)
        };
        for l in verdict_lines(verdicts, &style) {
            self.say(&l);
        }
        let summary = summary_line(verdict, verdicts, differs, outcome, self.orig);
        self.say(&summary);
        if all_expected {
            self.say(
                "every difference was expected: those outputs are known to be nondeterministic",
            );
        }
        let checked = replay::explain::check_lines(verdicts, &args.check);
        for l in &checked.lines {
            self.say(l);
        }
        match verdict {
            _ if !args.check.is_empty() && verdict != "failed" => {
                i32::from(checked.nondeterministic)
            }
            "identical" => 0,
            "differs" if all_expected => 0,
            "differs" => 1,
            _ => outcome.exit_code,
        }
    }
}

/// A line per step (mark, name, verdict, the outputs that differ or were reproduced), with its
/// likely cause and explanations under it.
fn verdict_lines(verdicts: &[StepVerdict], style: &Style) -> Vec<String> {
    let mut lines = Vec::new();
    let w = verdicts
        .iter()
        .map(|v| v.name.chars().count())
        .max()
        .unwrap_or(4);
    for v in verdicts {
        let mark = match v.verdict.as_str() {
            "identical" => style.paint(Role::Good, "✓"),
            "not_run" => style.paint(Role::Warn, "-"),
            _ => style.paint(Role::Bad, "✗"),
        };
        let detail: Vec<String> = if v.verdict == "identical" {
            v.outputs
                .iter()
                .map(|o| {
                    if o.kind == "dir" {
                        format!("{}/ ({})", o.path, crate::report::files(o.nfiles as u64))
                    } else {
                        o.path.clone()
                    }
                })
                .collect()
        } else {
            v.outputs
                .iter()
                .filter(|o| !o.identical)
                .map(|o| {
                    let mut extra: Vec<String> = o.metrics.clone();
                    if extra.is_empty() && !o.files.is_empty() {
                        let shown: Vec<&str> = o.files.iter().take(3).map(String::as_str).collect();
                        extra.push(format!(
                            "{}{}",
                            shown.join(" "),
                            if o.files.len() > 3 {
                                format!(
                                    " and {} more",
                                    crate::report::files((o.files.len() - 3) as u64)
                                )
                            } else {
                                String::new()
                            }
                        ));
                    }
                    if extra.is_empty() {
                        o.path.clone()
                    } else {
                        format!("{} ({})", o.path, extra.join(", "))
                    }
                })
                .collect()
        };
        let text = if v.verdict == "not_run" {
            "not run"
        } else {
            v.verdict.as_str()
        };
        let padded = format!("{text:<9}");
        let word = match v.verdict.as_str() {
            "identical" => style.paint(Role::Good, &padded),
            "not_run" => style.paint(Role::Warn, &padded),
            _ => style.paint(Role::Bad, &padded),
        };
        lines.push(
            format!("{mark} {:<w$}  {word}  {}", v.name, detail.join(", "))
                .trim_end()
                .to_string(),
        );
        if !v.package_changes.is_empty() {
            lines.push(format!(
                "  {:<w$}  {} {} {} from the recorded run: {}",
                "",
                style.paint(Role::Warn, "likely cause:"),
                v.package_changes.len(),
                if v.package_changes.len() == 1 {
                    "package differs"
                } else {
                    "packages differ"
                },
                crate::report::first_of(&v.package_changes, 5, " (`--json` lists them all)")
            ));
        }
        lines.extend(replay::explain::render(v, style));
    }
    lines
}

/// The replay's last line: all reproduced, what differs (up to `SUMMARY_OUTPUTS` outputs), or
/// which step failed.
fn summary_line(
    verdict: &str,
    verdicts: &[StepVerdict],
    differs: usize,
    outcome: &exec::RunOutcome,
    orig: &Original,
) -> String {
    let short_replay = &outcome.short_id;
    match verdict {
        "identical" => format!(
            "replay {short_replay}: all {} step{} reproduced bit for bit",
            verdicts.len(),
            if verdicts.len() == 1 { "" } else { "s" }
        ),
        "differs" => {
            // every differing output by name, up to SUMMARY_OUTPUTS; `--json` has them all
            let names: Vec<String> = verdicts
                .iter()
                .flat_map(|v| v.outputs.iter().filter(|o| !o.identical))
                .map(|o| {
                    if o.kind == "dir" {
                        format!("{}/", o.path)
                    } else {
                        o.path.clone()
                    }
                })
                .collect();
            let mut listed = names
                .iter()
                .take(SUMMARY_OUTPUTS)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if names.len() > SUMMARY_OUTPUTS {
                listed += &format!(
                    " and {} more (`mlrun replay --json` lists them all)",
                    names.len() - SUMMARY_OUTPUTS
                );
            }
            format!(
                "replay {short_replay}: {} of {} steps reproduced bit for bit; {differs} differ{}; {} output{} differ{}: {listed} (see `mlrun diff {} {short_replay}`)",
                verdicts.len() - differs,
                verdicts.len(),
                if differs == 1 { "s" } else { "" },
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                if names.len() == 1 { "s" } else { "" },
                orig.short_id
            )
        }
        _ => {
            let not_run = verdicts.iter().filter(|v| v.verdict == "not_run").count();
            format!(
                "replay {short_replay}: a step failed (exit code {}){}; see `mlrun show {short_replay}`",
                outcome.exit_code,
                if not_run > 0 {
                    format!(
                        ", {not_run} step{} after it not run",
                        if not_run == 1 { "" } else { "s" }
                    )
                } else {
                    String::new()
                }
            )
        }
    }
}

/// The run a replay target names: a run, a model version's producing run, or for `PATH@RUN`
/// and `RUN:STEP` (read as `show` reads them) the run that made it; `RUN:STEP` also selects
/// that step unless `--step` says otherwise.
fn run_to_replay(store: &Store, args: &mut ReplayArgs, project: &Path) -> Result<String> {
    Ok(match crate::cmd::target::model_run(store, &args.target)? {
        Some(run) => run,
        // PATH@RUN and RUN:STEP, as `show` reads them
        None if args.target.contains(['@', ':']) => {
            match crate::cmd::target::resolve(store, &args.target)? {
                Target::Run(run) => run,
                Target::Exec { run_id, step, .. } => {
                    // that step (and what it needs), unless --step says otherwise
                    args.step.get_or_insert(step);
                    run_id
                }
                Target::Version(v, _) | Target::File(v, ..) => {
                    let named = match args.target.rsplit_once('@') {
                        Some((_, r)) => store.resolve_run(r).ok(),
                        None => None,
                    };
                    replay::producer_run(store, v.av_id, named.as_deref(), &args.target)?
                }
            }
        }
        None => replay::resolve(store, &args.target, project)?,
    })
}

/// The recorded plan, cut to `--step` (and what it needs) or to the `--check` steps; refused if
/// a declared path lies outside the project (the replay would write into the user's files).
fn plan_to_replay(orig: &Original, args: &ReplayArgs) -> Result<Plan> {
    let mut plan = orig.plan.clone();
    if let Some(s) = &args.step {
        let names: Vec<&str> = plan.steps().iter().map(|s| s.name.as_str()).collect();
        let mut e = Error::invalid(format!("run {} has no step `{s}`", orig.short_id));
        if let Some(m) = crate::pipeline::diag::did_you_mean(s, names.iter().copied()) {
            e = e.hint(format!("did you mean `{m}`?"));
        }
        plan = plan.with_upstream_of(s).ok_or(e)?;
    }
    if !args.check.is_empty() {
        plan = replay::explain::check_plan(plan, &args.check, orig)?;
    }
    // A path outside the project would make the replay write into the user's real files.
    let outside: Vec<&str> = plan
        .steps()
        .iter()
        .flat_map(|s| s.inputs.iter().chain(&s.outputs))
        .map(|d| d.path.as_str())
        .filter(|p| p.starts_with('/'))
        .collect();
    if !outside.is_empty() {
        return Err(Error::other(format!(
            "run {} declares paths outside its project ({}); a replay could not keep them apart from your files",
            orig.short_id,
            outside.join(", ")
        ))
        .hint("replay works for pipelines whose inputs and outputs are inside the project directory"));
    }
    replay::check_plan_paths(&plan, &orig.short_id)?;
    Ok(plan)
}

/// A scratch directory only this user can enter, owned by this process: removed when the replay
/// ends, and by the next mlrun command if this one is killed.
fn scratch_dir() -> Result<crate::store::owner::Owned> {
    let scratch = crate::store::owner::Owned::create_dir(
        &std::env::temp_dir(),
        &format!(
            "{}{}",
            crate::store::owner::REPLAY_PREFIX,
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ),
    )
    .map_err(|e| Error::other("cannot create a scratch directory").cause(e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o700));
    }
    Ok(scratch)
}

/// The error when input versions cannot be restored: each one, and why that happens.
fn unrestorable(orig: &Original, missing: &[replay::Missing]) -> Error {
    let mut e = Error::other(format!(
        "cannot replay run {}: {} input version{} cannot be restored; nothing was run",
        orig.short_id,
        missing.len(),
        if missing.len() == 1 { "" } else { "s" }
    ));
    for m in missing {
        e = e.cause(format!(
            "{} {}… (recorded by run {})",
            m.path,
            &m.hash[..12],
            orig.short_id
        ));
    }
    e.hint(
        "their bytes were never stored (`store = false`, `--no-store`) or were removed by `mlrun gc`; \
         a version tracked in git needs its commit",
    )
}

/// Where the replayed code comes from, in words.
fn code_words(orig: &Original) -> String {
    match (&orig.git.commit, orig.git.dirty) {
        (Some(c), true) => format!("commit {} + uncommitted diff", &c[..7.min(c.len())]),
        (Some(c), false) => format!("commit {}", &c[..7.min(c.len())]),
        (None, _) => "no git commit: files from the store".into(),
    }
}

/// The plan moved into the scratch tree (same pipeline file name, same relative paths) with the
/// recorded pipeline text written there, and secrets filled back in where they are set now;
/// warns about what will differ from the recorded run.
fn plan_in_scratch(
    store: &Store,
    orig: &Original,
    plan: Plan,
    root: &Path,
    err: &Style,
) -> Result<Plan> {
    // the plan in the scratch tree: same pipeline file name, same relative paths
    let plan = plan.relocated(root);
    let file_name = plan
        .file()
        .strip_prefix(root)
        .unwrap_or(Path::new("pipeline.toml"));
    // through the scratch tree's own links never: a committed `pipeline.toml` link leads out
    crate::beneath::write_file(root, file_name, orig.spec.as_bytes())?;
    for d in replay::environment_differences(store, orig, root)? {
        eprintln!(
            "{} environment differs from the recorded run: {d}",
            err.paint(Role::Warn, "warning:")
        );
    }
    let (plan, unfilled) = replay::fill_secrets(&plan, &orig.env_markers);
    for v in unfilled {
        eprintln!(
            "{} `{v}` was redacted when recorded and is not set now; the step gets the marker instead",
            err.paint(Role::Warn, "warning:")
        );
    }
    for step in replay::steps_with_redacted_values(&plan) {
        eprintln!(
            "{} step `{step}` had a secret in its command or params, recorded as a marker; the replay runs it with the marker instead",
            err.paint(Role::Warn, "warning:")
        );
    }
    Ok(plan)
}

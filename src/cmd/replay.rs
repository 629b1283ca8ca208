//! `mlrun replay TARGET`: rebuild the recorded source tree and inputs in a scratch directory, run
//! the recorded steps again as a new run linked by `replay_of`, and give a verdict per step.
//! Exit 0 when everything is identical, 1 when anything differs, a failed step's code otherwise.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::cli::ReplayArgs;
use crate::cmd::target::Target;
use crate::error::{Error, Result};
use crate::exec::{self, Force, RunOptions, output::Printer};
use crate::replay::{self, StepVerdict};
use crate::report::{ColorChoice, Style};
use crate::store::objects::Objects;
use crate::store::{self, Store};

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
}

pub fn replay(args: ReplayArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let store = Store::open_existing(&dir)?;
    let project = dir.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut args = args;
    let run_id = match crate::cmd::target::model_run(&store, &args.target)? {
        Some(run) => run,
        // PATH@RUN and RUN:STEP, as `show` reads them
        None if args.target.contains(['@', ':']) => {
            match crate::cmd::target::resolve(&store, &args.target)? {
                Target::Run(run) => run,
                Target::Exec { run_id, step, .. } => {
                    // that step (and what it needs), unless --step says otherwise
                    args.step.get_or_insert(step);
                    run_id
                }
                Target::Version(v, _) | Target::File(v, ..) => {
                    let named = match args.target.rsplit_once('@') {
                        Some((_, r)) => crate::store::query::resolve_run(&store.conn, r).ok(),
                        None => None,
                    };
                    replay::producer_run(&store.conn, v.av_id, named.as_deref(), &args.target)?
                }
            }
        }
        None => replay::resolve(&store.conn, &args.target, &project)?,
    };
    let orig = replay::load(&store.conn, &run_id)?;
    let mut plan = orig.plan.clone();
    if let Some(s) = &args.step {
        let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
        let mut e = Error::invalid(format!("run {} has no step `{s}`", orig.short_id));
        if let Some(m) = crate::pipeline::diag::did_you_mean(s, names.iter().copied()) {
            e = e.hint(format!("did you mean `{m}`?"));
        }
        plan = plan.with_upstream_of(s).ok_or(e)?;
    }
    // A path outside the project would make the replay write into the user's real files.
    let outside: Vec<&str> = plan
        .steps
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
    let err = Style::stderr(color);
    let human = |text: &str| {
        if args.json {
            eprintln!("{text}")
        } else {
            println!("{text}")
        }
    };

    // Owned by this process: removed when the replay ends, and by the next mlrun command if this
    // one is killed.
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
    let root = replay::rebuild_tree(&orig, scratch.path())?;
    std::fs::create_dir_all(&root)
        .map_err(|e| Error::other("cannot create the scratch tree").cause(e))?;
    let objects = Objects::new(&dir);
    // a gc meanwhile must not delete what is being restored
    let hold = crate::store::lock::ObjectsHold::take(&dir, || {
        eprintln!("waiting for `mlrun gc` to finish before restoring inputs…")
    })
    .ok();
    let missing = replay::restore_inputs(&store.conn, &objects, &orig, &plan, &root)?;
    drop(hold);
    if !missing.is_empty() {
        let mut e = Error::other(format!(
            "cannot replay run {}: {} input version{} cannot be restored; nothing was run",
            orig.short_id,
            missing.len(),
            if missing.len() == 1 { "" } else { "s" }
        ));
        for m in &missing {
            e = e.cause(format!(
                "{} {}… (recorded by run {})",
                m.path,
                &m.hash[..12],
                orig.short_id
            ));
        }
        return Err(e.hint(
            "their bytes were never stored (`store = false`, `--no-store`) or were removed by `mlrun gc`; \
             a version tracked in git needs its commit",
        ));
    }
    let file_name = orig
        .plan
        .file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "pipeline.toml".into());
    let file = root.join(&file_name);
    // through the scratch tree's own links never: a committed `pipeline.toml` link leads out
    crate::beneath::write_file(&root, Path::new(&file_name), orig.spec.as_bytes())?;
    for d in replay::environment_differences(&store.conn, &orig, &root)? {
        eprintln!(
            "{} environment differs from the recorded run: {d}",
            err.yellow("warning:")
        );
    }
    for v in replay::fill_secrets(&mut plan) {
        eprintln!(
            "{} `{v}` was redacted when recorded and is not set now; the step gets the marker instead",
            err.yellow("warning:")
        );
    }
    for step in replay::steps_with_redacted_values(&plan) {
        eprintln!(
            "{} step `{step}` had a secret in its command or params, recorded as a marker; the replay runs it with the marker instead",
            err.yellow("warning:")
        );
    }
    plan.root = root.clone();
    plan.file = file;
    plan.source = orig.spec.clone();

    let code = match (&orig.git.commit, orig.git.dirty) {
        (Some(c), true) => format!("commit {} + uncommitted diff", &c[..7.min(c.len())]),
        (Some(c), false) => format!("commit {}", &c[..7.min(c.len())]),
        (None, _) => "no git commit: files from the store".into(),
    };
    human(&format!(
        "replaying run {} ({code}, {} step{}) in {}",
        orig.short_id,
        plan.steps.len(),
        if plan.steps.len() == 1 { "" } else { "s" },
        scratch.path().display()
    ));

    let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    let printer = Arc::new(Printer::new(args.json, Style::stdout(color), err, &names));
    let jobs = exec::default_jobs(args.jobs);
    let opts = RunOptions {
        jobs,
        keep_going: false,
        grace: args.grace,
        argv: std::env::args().collect(),
        replay_of: Some(orig.run_id.clone()),
        force: Force::All,
        reuse_replays: false,
        no_store: true,
        no_cache: true,
        git_fixed: Some(orig.git.clone()),
        recorded_location: Some((orig.plan.root.clone(), orig.plan.file.clone())),
        // a replay reruns what was declared; tracing it again would only repeat the original's
        // observations (and need the scratch tree's paths): keep pipeline.toml's setting off
        trace: Some(crate::pipeline::plan::TraceMode::Off),
        run_id: None,
        message: None,
    };
    let replan = plan.clone();
    let outcome = exec::run_blocking(plan, store, opts, printer)?;

    let store = Store::open(&dir)?;
    let verdicts = replay::verdicts(&store.conn, &orig, &replan, &outcome.run_id)?;
    let failed = outcome.status != "succeeded";
    let differs = verdicts.iter().filter(|v| v.verdict == "differs").count();
    let verdict = if failed {
        "failed"
    } else if differs > 0 {
        "differs"
    } else {
        "identical"
    };
    store.conn.execute(
        "UPDATE runs SET replay_verdict = ?2 WHERE id = ?1",
        rusqlite::params![outcome.run_id, verdict],
    )?;

    let style = if args.json { err } else { Style::stdout(color) };
    let w = verdicts
        .iter()
        .map(|v| v.name.chars().count())
        .max()
        .unwrap_or(4);
    for v in &verdicts {
        let mark = match v.verdict.as_str() {
            "identical" => style.green("✓"),
            "not_run" => style.yellow("-"),
            _ => style.red("✗"),
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
            "identical" => style.green(&padded),
            "not_run" => style.yellow(&padded),
            _ => style.red(&padded),
        };
        human(format!("{mark} {:<w$}  {word}  {}", v.name, detail.join(", ")).trim_end());
        if !v.package_changes.is_empty() {
            human(&format!(
                "  {:<w$}  {} {} {} from the recorded run: {}",
                "",
                style.yellow("likely cause:"),
                v.package_changes.len(),
                if v.package_changes.len() == 1 {
                    "package differs"
                } else {
                    "packages differ"
                },
                list_some(&v.package_changes, 5)
            ));
        }
    }
    let short_replay = outcome.short_id.clone();
    let summary = match verdict {
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
    };
    human(&summary);

    let exit_code = match verdict {
        "identical" => 0,
        "differs" => 1,
        _ => outcome.exit_code,
    };
    if let Some(into) = &args.into {
        let n = replay::materialise(&replan, &root, into)?;
        human(&format!(
            "copied {n} reproduced output{} into {}",
            if n == 1 { "" } else { "s" },
            into.display()
        ));
    }
    let kept = if args.keep {
        let p = scratch.keep();
        human(&format!("kept the scratch tree at {}", p.display()));
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
        };
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    }
    Ok(exit_code)
}

/// The first `max` items, then how many more.
fn list_some(items: &[String], max: usize) -> String {
    let mut s = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > max {
        s += &format!(" and {} more (`--json` lists them all)", items.len() - max);
    }
    s
}

//! `mlrun status [PIPELINE]`: for every step, `up to date` or `stale` with the reasons, without
//! running anything. The same cache keys as `run` decide, so status says exactly what a run would
//! do.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::cmd::diff::FilesDiff;
use crate::error::Result;
use crate::exec::incremental::{self, CacheParts};
use crate::exec::recorded::Recorded;
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::env::Redactor;
use crate::fingerprint::hash::{self, Fingerprint};
use crate::fingerprint::key::SecretKey;
use crate::pipeline;
use crate::report::Role;
use crate::report::{ColorChoice, Style};
use crate::store::objects::Objects;
use crate::store::record::Io;
use crate::store::{self, Store};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The pipeline file
    #[arg(value_name = "PIPELINE", default_value = "pipeline.toml")]
    pub pipeline: std::path::PathBuf,

    /// Override a param, as for `run`, to ask what that run would do
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// Exit 1 when any step is stale (for CI: are the committed results up to date?)
    #[arg(long)]
    pub check: bool,

    /// Count results recorded by `mlrun replay` too, as `mlrun run --reuse-replays` would
    #[arg(long)]
    pub reuse_replays: bool,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct StepState {
    pub name: String,
    /// `up_to_date` or `stale`
    pub status: &'static str,
    pub reasons: Vec<String>,
    /// its outputs known to come out different with the same inputs (`mlrun check`, a replay):
    /// `{step, path, verdict, since_run, since_run_short, found_by}`
    pub nondeterministic: Vec<crate::store::determinism::Finding>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub pipeline: String,
    pub stale: usize,
    pub steps: Vec<StepState>,
}

pub fn status(args: StatusArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let err_style = Style::stderr(color);
    let plan = super::load_plan(&args.pipeline, &args.params, true, err_style)?;
    let dir = store::dir_for_pipeline(plan.file(), store_dir);
    let store = if dir.join(store::DB_FILE).is_file() {
        Some(Store::open_read(&dir)?)
    } else {
        None
    };
    let cache = match &store {
        Some(s) => s.load_stat_cache(plan.root())?,
        None => HashCache::disabled(),
    };
    // the same markers as `run` makes, so secret-holding steps get the same keys
    let key = SecretKey::load()?;
    if let Some(w) = key.warning() {
        eprintln!("{} {w}", err_style.paint(Role::Warn, "warning:"));
    }
    let redactor = Redactor::new(&key, plan.redact(), plan.keep());
    let recorded = Recorded::of(&redactor, &plan);
    let objects = Objects::new(&dir);
    let file = plan.file().to_string_lossy().into_owned();

    let mut known = match &store {
        Some(s) => s.determinism_of_pipeline(plan.name())?,
        None => BTreeMap::new(),
    };
    let progress =
        crate::report::progress::Ticker::start("hashing the pipeline's files", err_style);
    let mut steps: Vec<StepState> = Vec::new();
    for (step, shown) in plan.steps().iter().zip(recorded.plan.steps()) {
        let mut reasons = Vec::new();
        let mut inputs = Vec::new();
        for decl in &step.inputs {
            match hash::fingerprint(&plan.root().join(&decl.path), &cache) {
                Ok(fp) => inputs.push(Io::new(decl.path.clone(), fp)),
                Err(_) => {
                    // a step making it is one this step depends on (the plan guarantees
                    // it): looking only there keeps status linear in the number of steps
                    let maker = step.deps.iter().map(|&d| &plan.steps()[d]).find(|s| {
                        s.outputs.iter().any(|o| {
                            crate::pipeline::plan::within(&decl.path, &o.path)
                                || crate::pipeline::plan::within(&o.path, &decl.path)
                        })
                    });
                    reasons.push(match maker {
                        Some(m) => format!(
                            "input {} does not exist yet (`{}` makes it)",
                            decl.path, m.name
                        ),
                        None => missing_input(store.as_ref(), &objects, &decl.path),
                    })
                }
            }
        }
        if reasons.is_empty() {
            let parts = CacheParts::of(shown, &inputs).marked_with(&recorded.marker_key);
            reasons = match &store {
                None => vec!["never run".into()],
                Some(s) => {
                    let here = Here {
                        root: plan.root(),
                        file: &file,
                        cache: &cache,
                        objects: &objects,
                        with_replays: args.reuse_replays,
                    };
                    step_reasons(s, &here, step, &shown.params, &parts, &inputs)?
                }
            };
        }
        for &d in &step.deps {
            if steps[d].status == "stale" {
                reasons.push(format!("depends on stale step `{}`", steps[d].name));
            }
        }
        steps.push(StepState {
            name: step.name.clone(),
            status: if reasons.is_empty() {
                "up_to_date"
            } else {
                "stale"
            },
            reasons,
            nondeterministic: known
                .remove(&step.name)
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f.nondeterministic() && step.outputs.iter().any(|o| o.path == f.path))
                .collect(),
        });
    }
    drop(progress);
    if let Some(s) = &store {
        // remember what was hashed, so the next status or run is fast; failing that is harmless
        let _ = s.flush_stat_cache(&cache);
    }
    let stale = steps.iter().filter(|s| s.status == "stale").count();
    let report = Status {
        pipeline: plan.name().to_string(),
        stale,
        steps,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", render(&report, &Style::stdout(color)));
    }
    Ok(if args.check && stale > 0 { 1 } else { 0 })
}

/// An input no step makes that is not there: point at `checkout` when the store holds a version.
pub(crate) fn missing_input(store: Option<&Store>, objects: &Objects, path: &str) -> String {
    let held = store.and_then(|s| s.latest_restorable(objects, path).ok().flatten());
    match held {
        Some((hash, _)) => format!(
            "input {path} does not exist; the store holds its last recorded version ({}): `mlrun checkout {path}` puts it back",
            crate::report::short_hash(&hash)
        ),
        None => format!("input {path} does not exist"),
    }
}

/// Where a status looks: the project, its pipeline file, the stat cache and the object store.
pub(crate) struct Here<'a> {
    pub root: &'a Path,
    pub file: &'a str,
    pub cache: &'a HashCache,
    pub objects: &'a Objects,
    /// count replays' executions (`--reuse-replays`); by default they are not the workspace's
    pub with_replays: bool,
}

pub(crate) fn step_reasons(
    store: &Store,
    here: &Here<'_>,
    step: &pipeline::Step,
    params: &pipeline::params::Params,
    parts: &CacheParts,
    inputs: &[Io],
) -> Result<Vec<String>> {
    let Here {
        root,
        file,
        cache,
        objects,
        with_replays,
    } = *here;
    if let Some(r) = store.find_reusable(&parts.key(), with_replays)? {
        let mut reasons = Vec::new();
        // outputs only observed by --trace are recorded, not restored: they do not make a step stale
        for out in r.outputs.iter().filter(|o| o.declared) {
            let now = hash::fingerprint(&root.join(&out.path), cache).ok();
            let shown = if out.fp.is_dir() {
                format!("{}/", out.path)
            } else {
                out.path.clone()
            };
            let restorable = if objects.can_restore(&out.fp) {
                " (mlrun will restore it)"
            } else {
                ""
            };
            match now {
                None => reasons.push(format!("output {shown} is missing{restorable}")),
                Some(fp) if fp.hash() != out.fp.hash() => {
                    if store.is_recorded_version(&out.path, fp.hash()) {
                        reasons.push(match made_with_other_params(store, &out.path, fp.hash(), params)? {
                            Some(why) => format!("output {shown} holds what {why}{restorable}"),
                            None => format!(
                                "output {shown} holds what another run made from other inputs{restorable}"
                            ),
                        })
                    } else {
                        reasons.push(format!(
                            "output {shown} modified since last run{restorable}"
                        ))
                    }
                }
                Some(_) => {}
            }
        }
        return Ok(reasons);
    }
    Ok(
        match incremental::last_success(store, file, &step.name, with_replays)? {
            None => vec!["never run".into()],
            Some((_, before)) => {
                let mut r = incremental::reasons(&before, parts);
                name_changed_files(store, &before, inputs, &mut r);
                if r.is_empty() {
                    vec!["no reusable run recorded".into()]
                } else {
                    r
                }
            }
        },
    )
}

/// "run 01a2… made with `lr=0.5` (this pipeline has `lr=0.1`)": the params in which the execution
/// that made this content differs from the step's params now (an `-p` override, usually).
fn made_with_other_params(
    store: &Store,
    path: &str,
    hash: &str,
    now: &pipeline::params::Params,
) -> Result<Option<String>> {
    let Some((run, then)) = store.producer_params(path, hash)? else {
        return Ok(None);
    };
    let render = |v: Option<&serde_json::Value>| {
        v.map_or_else(|| "(unset)".to_string(), crate::pipeline::params::render)
    };
    let differ: Vec<(String, String, String)> = now
        .keys()
        .chain(then.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| now.get(*k) != then.get(*k))
        .map(|k| (k.clone(), render(then.get(k)), render(now.get(k))))
        .collect();
    if differ.is_empty() {
        return Ok(None);
    }
    let was: Vec<String> = differ.iter().map(|(k, a, _)| format!("{k}={a}")).collect();
    let is: Vec<String> = differ.iter().map(|(k, _, b)| format!("{k}={b}")).collect();
    Ok(Some(format!(
        "run {} made with `{}` (now `{}`: an `-p` override then or now)",
        store.short_id(&run)?,
        was.join(" "),
        is.join(" ")
    )))
}

/// A changed input directory's reason also names the files that changed in it ("input data/
/// changed (… → …): f7.txt changed, 1 added (new.csv)"), from the recorded manifest.
fn name_changed_files(store: &Store, before: &CacheParts, inputs: &[Io], reasons: &mut [String]) {
    for io in inputs {
        let Fingerprint::Dir { entries, .. } = &io.fp else {
            continue;
        };
        let Some(old) = before.inputs.get(&io.path).filter(|h| *h != io.fp.hash()) else {
            continue;
        };
        let Ok(was) = store.dir_entries(old) else {
            continue;
        };
        let now: BTreeMap<String, String> = entries
            .iter()
            .map(|e| (e.relpath.clone(), e.hash.clone()))
            .collect();
        let d = FilesDiff::between(&was, &now);
        let mut parts = Vec::new();
        for (what, list) in [
            ("changed", &d.changed),
            ("added", &d.added),
            ("removed", &d.removed),
        ] {
            match list.len() {
                0 => {}
                1 => parts.push(format!("{} {what}", list[0])),
                n => parts.push(format!(
                    "{n} {what} ({}{})",
                    list[..n.min(3)].join(", "),
                    if n > 3 { ", …" } else { "" }
                )),
            }
        }
        let prefix = format!("input {} changed (", io.path);
        if let Some(r) = reasons.iter_mut().find(|r| r.starts_with(&prefix))
            && !parts.is_empty()
        {
            *r = format!("{r}: {}", parts.join(", "));
        }
    }
}

pub fn render(s: &Status, style: &Style) -> String {
    let w = s
        .steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(4);
    let mut out = String::new();
    for step in &s.steps {
        if step.reasons.is_empty() {
            out += &format!(
                "{} {:<w$}  {}\n",
                style.paint(Role::Good, "="),
                step.name,
                style.paint(Role::Good, "up to date")
            );
        } else {
            out += &format!(
                "{} {:<w$}  {}: {}\n",
                style.paint(Role::Warn, "~"),
                step.name,
                style.paint(Role::Warn, "stale"),
                step.reasons[0]
            );
            for r in &step.reasons[1..] {
                out += &format!("  {:<w$}         {r}\n", "");
            }
        }
        for f in &step.nondeterministic {
            out += &format!(
                "  {:<w$}  {}\n",
                "",
                style.paint(
                    Role::Muted,
                    &format!(
                        "{} is nondeterministic (since run {}): a replay expects it to differ",
                        f.path, f.since_run_short
                    )
                )
            );
        }
    }
    let n = s.steps.len();
    out += &if s.stale == 0 {
        format!(
            "{}: all {n} step{} up to date\n",
            s.pipeline,
            if n == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "{}: {} of {n} step{} stale; `mlrun` would update {}\n",
            s.pipeline,
            s.stale,
            if n == 1 { "" } else { "s" },
            if s.stale == 1 { "it" } else { "them" }
        )
    };
    out
}

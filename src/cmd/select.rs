//! `mlrun run [PIPELINE] [STEP|OUTPUT ...]`: which word is the pipeline file and which are
//! targets, and which steps a target names.
//!
//! The first word is the pipeline file when it ends in `.toml`, or when it is an existing file
//! that the pipeline found here (`pipeline.toml`, here or above) does not name as a step or an
//! output; otherwise it is a target, like every word after it. So `mlrun train`, `mlrun
//! model.pkl` and `mlrun ./other-pipeline` all do what they say.

use std::path::{Path, PathBuf};

use crate::beneath::lexical as normalize;
use crate::error::{Error, Result};
use crate::pipeline::Plan;
use crate::pipeline::diag::did_you_mean;
use crate::pipeline::plan::within;

/// The words of a run, sorted out.
#[derive(Debug)]
pub struct Words {
    /// the pipeline file (as given, or `pipeline.toml`)
    pub pipeline: PathBuf,
    /// the targets, as typed
    pub targets: Vec<String>,
    /// the first word was taken as a target (it named no pipeline file)
    pub first_is_target: bool,
}

const DEFAULT: &str = "pipeline.toml";

/// Sort the positional words of `mlrun run` into a pipeline file and targets.
pub fn split(first: Option<&Path>, rest: &[String]) -> Words {
    let Some(first) = first else {
        return Words {
            pipeline: PathBuf::from(DEFAULT),
            targets: rest.to_vec(),
            first_is_target: false,
        };
    };
    let word = first.to_string_lossy();
    let as_pipeline = || Words {
        pipeline: first.to_path_buf(),
        targets: rest.to_vec(),
        first_is_target: false,
    };
    if word.ends_with(".toml") {
        return as_pipeline();
    }
    if first.is_file() {
        // `mlrun model.pkl` names an output of ./pipeline.toml; `mlrun ./nightly` a pipeline
        let default = crate::pipeline::locate(Path::new(DEFAULT));
        let names_it = default.is_file()
            && crate::pipeline::load(&crate::pipeline::LoadOptions {
                file: &default,
                overrides: &[],
                missing_inputs_ok: true,
            })
            .is_ok_and(|plan| !find(&plan, &word).is_empty() || reads(&plan, &word));
        if !names_it {
            return as_pipeline();
        }
    }
    let mut targets = vec![word.into_owned()];
    targets.extend(rest.iter().cloned());
    Words {
        pipeline: PathBuf::from(DEFAULT),
        targets,
        first_is_target: true,
    }
}

/// The indices of the steps `targets` name, in plan order; an error naming the first word that
/// names none.
pub fn resolve(plan: &Plan, targets: &[String]) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for t in targets {
        let found = find(plan, t);
        if found.is_empty() {
            return Err(not_found(plan, t));
        }
        out.extend(found);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A target written as a path, relative to the project root: `./model/` and (from a
/// subdirectory) `../model.pkl` are `model.pkl` and `model`.
fn as_project_path(plan: &Plan, word: &str) -> String {
    let trimmed = word.trim_end_matches('/');
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.canonicalize().ok())
        .map(|cwd| normalize(&cwd.join(trimmed)))
        .and_then(|abs| abs.strip_prefix(plan.root()).ok().map(Path::to_path_buf));
    match rel {
        Some(r) if !r.as_os_str().is_empty() => r.to_string_lossy().into_owned(),
        _ => trimmed.trim_start_matches("./").to_string(),
    }
}

/// The steps a word names: the step of that name, else the steps whose declared outputs are
/// that path, hold it (a file inside an output directory) or lie inside it.
pub fn find(plan: &Plan, word: &str) -> Vec<usize> {
    if let Some(i) = plan.step_index(word) {
        return vec![i];
    }
    let path = as_project_path(plan, word);
    if path.is_empty() {
        return Vec::new();
    }
    plan.steps()
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.outputs
                .iter()
                .any(|o| within(&path, &o.path) || within(&o.path, &path))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Some step reads `word` (a path) as an input.
fn reads(plan: &Plan, word: &str) -> bool {
    let path = as_project_path(plan, word);
    plan.steps()
        .iter()
        .flat_map(|s| &s.inputs)
        .any(|i| i.path == path)
}

/// `train` names nothing: say what it is not, the closest name, and what there is.
fn not_found(plan: &Plan, word: &str) -> Error {
    let path = as_project_path(plan, word);
    let readers: Vec<&str> = plan
        .steps()
        .iter()
        .filter(|s| {
            s.inputs
                .iter()
                .any(|i| within(&path, &i.path) || within(&i.path, &path))
        })
        .map(|s| s.name.as_str())
        .collect();
    let file = plan.file().file_name().map_or_else(
        || plan.file().display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut e = if !readers.is_empty() {
        Error::invalid(format!(
            "`{word}` is an input of {} in `{file}`, not an output: no step makes it, so there is nothing to run for it",
            quoted(&readers)
        ))
        .hint(format!(
            "to run the steps that read it, name them: `mlrun run {}`",
            readers.join(" ")
        ))
    } else {
        let on_disk = plan.root().join(&path).exists() || Path::new(word).exists();
        Error::invalid(format!(
            "`{word}` is no step of `{file}` and no output a step declares{}",
            if on_disk {
                " (it is a file no step makes)"
            } else {
                ""
            }
        ))
    };
    let outputs: Vec<String> = plan
        .steps()
        .iter()
        .flat_map(|s| &s.outputs)
        .map(|o| {
            if o.dir {
                format!("{}/", o.path)
            } else {
                o.path.clone()
            }
        })
        .collect();
    let names = plan
        .steps()
        .iter()
        .map(|s| s.name.as_str())
        .chain(outputs.iter().map(String::as_str));
    if readers.is_empty()
        && let Some(close) = did_you_mean(word, names)
    {
        e = e.hint(format!("did you mean `{close}`?"));
    }
    let steps: Vec<&str> = plan.steps().iter().map(|s| s.name.as_str()).collect();
    e = e.hint(format!("its steps: {}", steps.join(", ")));
    if !outputs.is_empty() {
        let shown: Vec<&str> = outputs.iter().take(8).map(String::as_str).collect();
        e = e.hint(format!(
            "its outputs: {}{}",
            shown.join(", "),
            if outputs.len() > 8 { ", …" } else { "" }
        ));
    }
    e
}

fn quoted(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match q.len() {
        1 => format!("step {}", q[0]),
        _ => format!("steps {}", q.join(", ")),
    }
}

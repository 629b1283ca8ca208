//! `mlrun init`: start a project: a commented pipeline.toml skeleton, and `.mlrun/` kept out of
//! git.

use std::io::Write;
use std::path::Path;

use crate::error::{Context, Error, Result};
use crate::report::Role;
use crate::report::{self, ColorChoice, Style};

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The project directory
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: std::path::PathBuf,
}

/// A pipeline that runs as written (one step that makes one file), with every other key shown
/// commented out, so the first `mlrun` works and the next edits are obvious.
pub const SKELETON: &str = r#"# mlrun pipeline: `mlrun` runs it and records what made every output (.mlrun/lineage.db).
# Paths are relative to this file's directory, and steps run there.
# Reference: the "pipeline.toml" section of mlrun's README.

[pipeline]
name = "NAME"
# params-file = "params.yaml"     # params from YAML, JSON or TOML; nested keys become `train.lr`
# redact = ["*_URL"]              # extra env var and param names (globs) to treat as secret
# trace = true                    # record the files each step really reads and writes (Linux)

[params]                          # a step depends on the params it names in `params`
seed = 42
# [params.train]
# lr = 0.01

[env]                             # environment for every step
# PYTHONHASHSEED = "0"

# One table per step. A step runs again only when its command, inputs, params or environment
# changed; otherwise its recorded outputs are reused.
[steps.hello]
cmd = "mkdir -p out && echo 'hello, seed {params.seed}' > out/hello.txt"  # a string runs under `sh -c`
# cmd = ["python3", "src/train.py", "--lr", "{params.train.lr}"]         # an array runs without a shell
inputs = []                       # files or directories it reads, e.g. ["data/raw.csv", "src/prep.py"]
outputs = ["out/hello.txt"]       # what it writes; a trailing / means a directory ("model/")
params = ["seed"]                 # params it depends on (globs: "train.*")
# metrics = ["metrics.json"]      # JSON/YAML/TOML files of numbers, recorded as metrics
# after = ["other-step"]          # ordering beyond what inputs and outputs imply
# timeout = "2h"                  # a duration with its unit: "90s", "30m", "2h"
# retries = 2                     # run again after a failure, up to 2 more times
"#;

pub fn init(args: InitArgs, color: ColorChoice) -> Result<i32> {
    let style = Style::stdout(color);
    let dir = &args.dir;
    if !dir.is_dir() {
        return Err(
            Error::invalid(format!("`{}` is not a directory", dir.display()))
                .hint("create it first, or run `mlrun init` inside it"),
        );
    }
    let file = dir.join("pipeline.toml");
    if file.symlink_metadata().is_ok() {
        return Err(Error::other(format!(
            "`{}` already exists; mlrun init leaves it as it is",
            file.display()
        ))
        .hint("move it aside to start again from the skeleton, or edit it"));
    }
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| n.replace(['"', '\\'], ""))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "pipeline".into());
    let text = SKELETON.replacen("NAME", &name, 1);
    // create_new: two `mlrun init` at once cannot both write it
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .other_ctx(|| format!("cannot create `{}`", file.display()))?;
    f.write_all(text.as_bytes())
        .other_ctx(|| format!("cannot write `{}`", file.display()))?;
    let mut out = format!("{} {}\n", style.paint(Role::Good, "wrote"), file.display());
    out += &ignore_store(dir, &style)?;
    out += "next: edit the steps, then `mlrun` runs them\n";
    report::emit(&out);
    Ok(0)
}

/// Add `.mlrun/` to the directory's .gitignore (creating it) unless a line already ignores it.
fn ignore_store(dir: &Path, style: &Style) -> Result<String> {
    let path = dir.join(".gitignore");
    let old = match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Error::other(format!("cannot read `{}`", path.display())).cause(e));
        }
    };
    let ignored = old.as_deref().is_some_and(|s| {
        s.lines()
            .map(str::trim)
            .any(|l| matches!(l, ".mlrun" | ".mlrun/" | "/.mlrun" | "/.mlrun/"))
    });
    if ignored {
        return Ok(format!("{} already ignores .mlrun/\n", path.display()));
    }
    let mut add = String::new();
    if old
        .as_deref()
        .is_some_and(|s| !s.is_empty() && !s.ends_with('\n'))
    {
        add.push('\n');
    }
    add += "# mlrun's lineage store and object store\n.mlrun/\n";
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .other_ctx(|| format!("cannot open `{}`", path.display()))?;
    f.write_all(add.as_bytes())
        .other_ctx(|| format!("cannot write `{}`", path.display()))?;
    Ok(format!(
        "{} .mlrun/ to {}\n",
        style.paint(Role::Good, if old.is_some() { "added" } else { "wrote" }),
        path.display()
    ))
}

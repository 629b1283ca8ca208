//! `mlrun import dvc.yaml`: a DVC pipeline converted into pipeline.toml text.
//!
//! What is converted, as DVC means it:
//! - `vars` (the default `params.yaml`, other files, `file:key1,key2`, inline dicts; global and
//!   per stage) and `${...}` templates (`${a.b}`, `${a[0]}`, `${item}`, `${key}`, `${item.f}`,
//!   a dict in `cmd` unpacked to `--k v`, `\${` for a literal `${`). A template in `cmd` that names a
//!   plain value of the params-file becomes mlrun's `{params.KEY}`, so mlrun substitutes it at run
//!   time and records it as a param of the step, as DVC does; every other template is expanded now.
//! - `foreach` (list, list of dicts, dict) and `matrix`, expanded into one step per item, named
//!   like DVC's `stage@item` with `@` written `.` (mlrun step names allow letters, digits, `_`, `-`,
//!   `.`; any other character becomes `_`).
//! - `cmd` (a list runs in sequence: joined with ` && `), `wdir` (paths are rebased onto the project
//!   and the step's `cwd` is set), `deps`, `outs`, `metrics`, `plots`, `params`, `frozen`.
//!
//! Anything pipeline.toml cannot say is returned as a `Note` naming the stage and the reason.
//! Errors name the file, the line (found by looking for the stage and key in the text, since the
//! YAML parser keeps no positions for values) and the key.
//!
//! This file holds the entry points and their types; `convert` walks the document, `expand`
//! unrolls `foreach`/`matrix`, `stage` converts one stage, `template` expands `${...}`, `source`
//! locates keys in the text and `write` renders the pipeline.toml.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value as Y};

use crate::error::{Error, Result};
use crate::pipeline::params::Params;

/// What the caller asks for.
pub struct Options<'a> {
    /// the dvc.yaml to read
    pub file: &'a Path,
    /// how the file is named in messages
    pub shown: &'a Path,
    /// dvc.yaml's directory relative to pipeline.toml's: `""`, or `"sub/"` when pipeline.toml is
    /// written in a parent directory; every path is prefixed with it
    pub prefix: &'a str,
}

/// The converted pipeline.
#[derive(Debug)]
pub struct Conversion {
    pub toml: String,
    /// (mlrun step name, DVC stage name) in file order
    pub steps: Vec<(String, String)>,
    /// DVC stages left commented out because they are frozen
    pub frozen: Vec<String>,
    pub params_file: Option<String>,
    pub notes: Vec<Note>,
}

/// Something dvc.yaml says that pipeline.toml cannot.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub stage: Option<String>,
    pub reason: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stage {
            Some(s) => write!(f, "stage \"{s}\": {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "stages",
    "vars",
    "plots",
    "metrics",
    "params",
    "artifacts",
    "datasets",
];
const STAGE_KEYS: &[&str] = &[
    "cmd",
    "wdir",
    "deps",
    "outs",
    "params",
    "metrics",
    "plots",
    "frozen",
    "always_changed",
    "desc",
    "meta",
    "vars",
];
const OUT_KEYS: &[&str] = &[
    "cache",
    "persist",
    "desc",
    "type",
    "labels",
    "meta",
    "remote",
    "push",
    "checkpoint",
];
const PLOT_KEYS: &[&str] = &[
    "x", "y", "template", "title", "x_label", "y_label", "header",
];

/// Read and convert a dvc.yaml.
pub fn convert(opts: &Options<'_>) -> Result<Conversion> {
    let text = std::fs::read_to_string(opts.file)
        .map_err(|e| Error::invalid(format!("cannot read `{}`", opts.shown.display())).cause(e))?;
    convert_text(&text, opts)
}

/// Convert dvc.yaml text; files it names (params, vars) are read beside `opts.file`.
pub fn convert_text(text: &str, opts: &Options<'_>) -> Result<Conversion> {
    let src = Src::new(text, opts.shown);
    let doc: Y = serde_norway::from_str(text).map_err(|e| {
        let at = match e.location() {
            Some(l) => format!("{}:{}:{}", src.shown, l.line(), l.column()),
            None => src.shown.clone(),
        };
        Error::invalid(format!("{at}: not valid YAML")).cause(e)
    })?;
    let root = match doc {
        Y::Mapping(m) => m,
        Y::Null => Mapping::new(),
        other => {
            return Err(Error::invalid(format!(
                "{}: a dvc.yaml must be a mapping with a `stages` key, found {}",
                src.shown,
                kind(&other)
            )));
        }
    };
    let dir = opts
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut c = Converter {
        src,
        dir,
        prefix: opts.prefix.to_string(),
        notes: Vec::new(),
        primary: None,
        primary_params: Params::new(),
    };
    c.run(root)
}

fn kind(v: &Y) -> &'static str {
    match v {
        Y::Null => "nothing",
        Y::Bool(_) => "a boolean",
        Y::Number(_) => "a number",
        Y::String(_) => "a string",
        Y::Sequence(_) => "a list",
        Y::Mapping(_) => "a mapping",
        Y::Tagged(_) => "a tagged value",
    }
}

mod convert;
mod expand;
mod source;
mod stage;
mod template;
#[cfg(test)]
mod tests;
mod write;

use convert::{Converter, Step, path_entries};
pub use convert::{normalize, step_name};
pub use expand::{foreach_items, matrix_items};
use source::Src;
pub use template::{Mode, TemplateError, Vars, expand, scalar_text, sh_quote};
use template::{segments, select};
use write::{first_params_file, push_unique, quoted_list};

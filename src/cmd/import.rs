//! `mlrun import dvc.yaml [-o pipeline.toml] [--force]`: convert a DVC pipeline (the converter
//! is `import::dvc`), check the result with mlrun's own validator, and write it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::import::dvc;
use crate::report::Role;
use crate::report::{ColorChoice, Style, print_warnings};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  mlrun import dvc.yaml                    write pipeline.toml beside dvc.yaml
  mlrun import dvc.yaml -o other.toml      write another file
  mlrun import dvc.yaml -o -               print it instead
  mlrun import sub/dvc.yaml -o pipeline.toml   paths are rebased onto pipeline.toml's directory")]
pub struct ImportArgs {
    /// The DVC pipeline file to convert
    #[arg(value_name = "DVC_YAML")]
    pub file: std::path::PathBuf,

    /// Where to write the pipeline (`-` for stdout) [default: pipeline.toml beside DVC_YAML]
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,

    /// Overwrite FILE if it exists
    #[arg(long)]
    pub force: bool,
}

pub fn import(args: ImportArgs, color: ColorChoice) -> Result<i32> {
    let style = Style::stderr(color);
    let file = &args.file;
    check_input(file)?;
    let t = destination(&args)?;
    let out = &t.out;
    let conv = dvc::convert(&dvc::Options {
        file,
        shown: file,
        prefix: &t.prefix,
    })?;

    // the result is checked as the file it will be, before it is written
    let checked =
        crate::pipeline::plan::from_source(conv.toml.clone(), t.out_abs.clone(), out, &[]);
    if t.to_stdout {
        for n in &conv.notes {
            eprintln!("{} {n}", style.paint(Role::Warn, "not expressed:"));
        }
        match checked {
            Ok(plan) => print_warnings(plan.warnings(), style),
            Err(e) => eprintln!("{e}"),
        }
        crate::report::emit(&conv.toml);
        return Ok(0);
    }
    let tmp = tempfile::NamedTempFile::new_in(&t.out_dir)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, conv.toml.as_bytes())?;
            Ok(f)
        })
        .map_err(|e| Error::other(format!("cannot write `{}`", out.display())).cause(e))?;
    tmp.persist(&t.out_abs)
        .map_err(|e| Error::other(format!("cannot write `{}`", out.display())).cause(e.error))?;

    for n in &conv.notes {
        eprintln!("{} {n}", style.paint(Role::Warn, "not expressed:"));
    }
    let valid = match checked {
        Ok(plan) => {
            print_warnings(plan.warnings(), style);
            true
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "{} `{}` was written, but mlrun will refuse to run it until the problems above are fixed (data a DVC remote holds is brought back by `dvc pull`)",
                style.paint(Role::Warn, "warning:"),
                out.display()
            );
            false
        }
    };
    style.note(&summary(&conv, out, file));
    if valid {
        style.note(&format!("run it with `mlrun {}`", out.display()));
    }
    Ok(0)
}

/// The DVC pipeline named must be a file.
fn check_input(file: &Path) -> Result<()> {
    if file.is_file() {
        return Ok(());
    }
    let what = if file.exists() {
        "is not a file"
    } else {
        "does not exist"
    };
    let mut e = Error::invalid(format!("`{}` {what}", file.display()));
    if file.is_dir() {
        e = e.hint(format!(
            "pass the dvc.yaml itself: `mlrun import {}`",
            file.join("dvc.yaml").display()
        ));
    }
    Err(e)
}

/// Where the pipeline goes, and what its paths are prefixed with.
struct Destination {
    /// as given (or the default); with `-o -`, the pipeline.toml beside dvc.yaml it stands for
    out: PathBuf,
    /// its directory, canonical
    out_dir: PathBuf,
    out_abs: PathBuf,
    to_stdout: bool,
    /// dvc.yaml's directory relative to `out_dir` (`sub/`), or empty
    prefix: String,
}

fn destination(args: &ImportArgs) -> Result<Destination> {
    let file = &args.file;
    let dvc_dir = parent_of(file);
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    let out = args.output.clone().unwrap_or_else(|| match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join("pipeline.toml"),
        _ => PathBuf::from("pipeline.toml"),
    });
    let out = if to_stdout {
        dvc_dir.join("pipeline.toml")
    } else {
        out
    };
    if out.exists() && !args.force && !to_stdout {
        return Err(
            Error::invalid(format!("`{}` already exists", out.display()))
                .hint("pass --force to overwrite it, or -o to write another file"),
        );
    }
    let canon = |p: &Path| {
        p.canonicalize()
            .map_err(|e| Error::invalid(format!("cannot use directory `{}`", p.display())).cause(e))
    };
    let dvc_abs = canon(&dvc_dir)?;
    let out_dir = canon(&parent_of(&out))?;
    let Some(out_name) = out.file_name() else {
        return Err(Error::invalid(format!(
            "`{}` is not a file name",
            out.display()
        )));
    };
    // paths in dvc.yaml are relative to its directory; in pipeline.toml, to pipeline.toml's
    let prefix = match dvc_abs.strip_prefix(&out_dir) {
        Ok(rel) if rel.as_os_str().is_empty() => String::new(),
        Ok(rel) => format!("{}/", rel.to_string_lossy()),
        Err(_) => {
            return Err(Error::invalid(format!(
                "`{}` is not in `{}`'s directory or above it, so its paths cannot be written relative to it",
                out.display(),
                file.display()
            ))
            .hint("write pipeline.toml beside dvc.yaml (the default) or in a directory above it"));
        }
    };
    let out_abs = out_dir.join(out_name);
    Ok(Destination {
        out,
        out_dir,
        out_abs,
        to_stdout,
        prefix,
    })
}

/// `wrote FILE: N steps from dvc.yaml; …frozen, params-file, not expressed`
fn summary(conv: &dvc::Conversion, out: &Path, file: &Path) -> String {
    let mut summary = format!(
        "wrote `{}`: {} step{} from {}",
        out.display(),
        conv.steps.len(),
        if conv.steps.len() == 1 { "" } else { "s" },
        file.display()
    );
    if !conv.frozen.is_empty() {
        summary += &format!(
            "; {} frozen stage{} left commented out",
            conv.frozen.len(),
            if conv.frozen.len() == 1 { "" } else { "s" }
        );
    }
    if let Some(p) = &conv.params_file {
        summary += &format!("; params-file {p}");
    }
    if !conv.notes.is_empty() {
        summary += &format!(
            "; {} thing{} not expressed (above, and at the end of the file)",
            conv.notes.len(),
            if conv.notes.len() == 1 { "" } else { "s" }
        );
    }
    summary
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

//! From what the tracer saw to what matters for lineage, compared with the step's declaration.
//!
//! Filtering rules, in order (README "Tracing"):
//! 1. only paths inside the project directory count: system files (/usr, /lib, /etc, /proc,
//!    /dev, /tmp, …), interpreters and their libraries, caches in HOME are all outside it. A path
//!    outside counts only when it is a declared input or output (`allow-outside`);
//! 2. inside the project: never `.git/` (writes there are counted as "the repository changed",
//!    wherever the repository's git directory is), nor `.mlrun/`, nor anything in a virtual
//!    environment (a directory holding `pyvenv.cfg` or `conda-meta/`), nor what matches a
//!    `trace-ignore` pattern, nor tool state (`DEFAULT_IGNORE`, unless `trace-ignore-defaults =
//!    false`);
//! 3. failed opens were never recorded; a file written and then deleted or renamed away within
//!    the step is temporary and ignored; directories only created (mkdir) or listed are not
//!    files of their own, but a directory renamed into place is an output as a whole;
//! 4. a file the step writes is an output even if it also reads it.
//!
//! Paths are shown relative to the project as the kernel resolved them (through symlinks), except
//! under a declared path that is itself a symlink, which keeps its declared name.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::access::{Access, Report};
use super::paths::is_within;
use crate::pipeline::plan::trace_ignore_globs;
use crate::pipeline::{PathDecl, Step};

/// Never lineage, wherever they are in the project.
const BUILTIN_IGNORE: &[&str] = &[".git", ".mlrun"];

/// Tool state: what libraries and tools write for their own bookkeeping inside a project.
/// Never lineage by default; `trace-ignore` adds to it, `trace-ignore-defaults = false` turns it
/// off (README "Tracing" lists it too).
pub const DEFAULT_IGNORE: &[&str] = &[
    // interpreter and tool caches
    "__pycache__",
    "*.pyc",
    "*.pyo",
    ".cache",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".ipynb_checkpoints",
    // lock and pid files
    "*.lock",
    "*.lck",
    "*.pid",
    ".~lock.*#",
    // experiment trackers' state (MLflow, Weights & Biases, Neptune, Aim, Comet, DVC)
    "mlruns",
    "mlartifacts",
    "wandb",
    ".neptune",
    ".aim",
    ".cometml-runs",
    ".dvc/tmp",
    ".dvc/cache",
    // git's own files in the work tree (read by every `git status` or `git commit`)
    ".gitignore",
    ".gitattributes",
    ".gitmodules",
    // editors and the OS
    "*.swp",
    ".DS_Store",
];

/// The comparison of one traced step with its declaration. Paths are project-relative.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// read, not declared as an input (nor an output)
    pub reads: Vec<String>,
    /// written (and still there), not declared as an output
    pub writes: Vec<String>,
    /// existed before the step, deleted by it, not inside a declared output
    pub deletes: Vec<String>,
    /// read, and changed (ctime) after the step started: may not be what it read
    pub changed: Vec<String>,
    pub untouched_inputs: Vec<String>,
    pub untouched_outputs: Vec<String>,
    /// files written, created or deleted under the repository's git directory (`.git/`)
    pub repo_writes: usize,
}

impl Findings {
    /// Anything `--trace=strict` fails on.
    pub fn undeclared(&self) -> bool {
        !(self.reads.is_empty() && self.writes.is_empty() && self.deletes.is_empty())
    }
}

struct Decl<'a> {
    /// as declared (relative, or absolute with allow-outside)
    name: &'a str,
    /// absolute, as written
    textual: String,
    /// absolute, through symlinks (the textual path when it does not exist)
    canonical: String,
    output: bool,
    touched: bool,
}

impl Decl<'_> {
    fn covers(&self, abs: &str) -> bool {
        is_within(abs, &self.canonical) || is_within(abs, &self.textual)
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Compare `report` with what `step` declares. `root` is the project directory; `started`: when
/// the step started; `git_dir`: the repository's git directory, if any.
pub fn analyze(
    report: &Report,
    root: &Path,
    step: &Step,
    started: SystemTime,
    git_dir: Option<&Path>,
) -> Findings {
    let git_dir = git_dir
        .and_then(|g| std::fs::canonicalize(g).ok())
        .map(|g| path_str(&g));
    let root_canon = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let root_s = path_str(&root_canon);
    let decl = |d: &'_ PathDecl, output: bool| -> (String, bool) { (d.path.clone(), output) };
    let declared: Vec<(String, bool)> = step
        .inputs
        .iter()
        .map(|d| decl(d, false))
        .chain(step.outputs.iter().map(|d| decl(d, true)))
        .collect();
    let mut decls: Vec<Decl<'_>> = declared
        .iter()
        .map(|(name, output)| {
            let textual = if Path::new(name).is_absolute() {
                name.clone()
            } else {
                format!("{}/{name}", root_s.trim_end_matches('/'))
            };
            let canonical = std::fs::canonicalize(&textual)
                .map(|p| path_str(&p))
                .unwrap_or_else(|_| textual.clone());
            Decl {
                name,
                textual,
                canonical,
                output: *output,
                touched: false,
            }
        })
        .collect();
    // metrics files are written by the step as declared: outputs for this comparison
    let metrics: Vec<String> = step
        .metrics
        .iter()
        .map(|m| format!("{}/{m}", root_s.trim_end_matches('/')))
        .collect();
    let ignore = ignore_set(&step.trace_ignore, step.trace_ignore_defaults);
    let mut envs = EnvDirs::default();

    let mut f = Findings::default();
    let mut renamed_dirs: Vec<String> = Vec::new();
    for (abs, acc) in &report.accesses {
        let in_git = git_dir.as_deref().is_some_and(|g| is_within(abs, g))
            || abs.contains("/.git/")
            || abs.ends_with("/.git");
        if in_git {
            if acc.written || acc.deleted {
                f.repo_writes += 1;
            }
            continue;
        }
        for d in decls.iter_mut().filter(|d| d.covers(abs)) {
            if !d.output || acc.written || acc.deleted {
                d.touched = true;
            }
        }
        let Some(name) = project_name(abs, &root_s, &decls) else {
            continue;
        };
        if ignore.is_match(&name) || envs.inside_env(&root_canon, &name) {
            continue;
        }
        let in_output = decls.iter().any(|d| d.output && d.covers(abs))
            || metrics.iter().any(|m| is_within(abs, m));
        let in_input = decls.iter().any(|d| !d.output && d.covers(abs));
        let on_disk = root_canon.join(&name);
        let meta = std::fs::metadata(&on_disk).ok();
        let exists = meta.is_some() || std::fs::symlink_metadata(&on_disk).is_ok();
        let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
        match classify(acc, exists, is_dir) {
            Kind::Write => {
                if is_dir {
                    renamed_dirs.push(name.clone());
                }
                if !in_output {
                    f.writes.push(name);
                }
            }
            Kind::Delete if !in_output => f.deletes.push(name),
            Kind::Read => {
                if meta.as_ref().is_some_and(|m| changed_since(m, started)) {
                    f.changed.push(name.clone());
                }
                if !in_input && !in_output {
                    f.reads.push(name);
                }
            }
            Kind::Delete | Kind::None => {}
        }
    }
    // a directory renamed into place stands for the files under it
    f.writes
        .retain(|w| !renamed_dirs.iter().any(|d| d != w && is_within_rel(w, d)));
    for d in &decls {
        if !d.touched {
            let shown = d.name.to_string();
            if d.output {
                f.untouched_outputs.push(shown);
            } else {
                f.untouched_inputs.push(shown);
            }
        }
    }
    f
}

/// The file's status changed (content written, replaced by a rename) at or after `t`.
fn changed_since(m: &std::fs::Metadata, t: SystemTime) -> bool {
    let ctime = SystemTime::UNIX_EPOCH
        + Duration::new(
            m.ctime().max(0) as u64,
            m.ctime_nsec().clamp(0, 999_999_999) as u32,
        );
    ctime >= t
}

fn is_within_rel(a: &str, b: &str) -> bool {
    crate::pipeline::plan::within(a, b)
}

enum Kind {
    Read,
    Write,
    Delete,
    None,
}

fn classify(acc: &Access, exists: bool, is_dir: bool) -> Kind {
    if acc.written {
        if !exists || (is_dir && !acc.renamed_into) {
            // a temporary file, or a directory made to hold files (they count on their own)
            Kind::None
        } else {
            Kind::Write
        }
    } else if acc.deleted {
        if exists { Kind::None } else { Kind::Delete }
    } else if acc.read && exists && !is_dir {
        Kind::Read
    } else {
        Kind::None
    }
}

/// The name to show for an absolute path, if it is in the project (or under a declared path).
fn project_name(abs: &str, root: &str, decls: &[Decl<'_>]) -> Option<String> {
    // under a declared path that is a symlink: keep the declared name
    for d in decls {
        if d.canonical != d.textual && is_within(abs, &d.canonical) {
            return Some(format!("{}{}", d.name, &abs[d.canonical.len()..]));
        }
    }
    if abs == root || !is_within(abs, root) {
        return None;
    }
    let rel = if root == "/" {
        &abs[1..]
    } else {
        &abs[root.len() + 1..]
    };
    Some(rel.to_string())
}

fn ignore_set(user: &[String], defaults: bool) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    let defaults = if defaults { DEFAULT_IGNORE } else { &[] };
    for p in BUILTIN_IGNORE
        .iter()
        .chain(defaults)
        .map(|s| s.to_string())
        .chain(user.iter().cloned())
    {
        for g in trace_ignore_globs(&p) {
            // validated by `plan`; an invalid one cannot get here
            if let Ok(glob) = GlobBuilder::new(&g).literal_separator(true).build() {
                b.add(glob);
            }
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

/// Virtual environments inside the project: a directory with `pyvenv.cfg` or `conda-meta/`.
#[derive(Default)]
struct EnvDirs {
    known: HashMap<String, bool>,
}

impl EnvDirs {
    fn inside_env(&mut self, root: &Path, rel: &str) -> bool {
        let mut dir = rel;
        while let Some(i) = dir.rfind('/') {
            dir = &dir[..i];
            let is_env = *self.known.entry(dir.to_string()).or_insert_with(|| {
                let d = root.join(dir);
                d.join("pyvenv.cfg").is_file() || d.join("conda-meta").is_dir()
            });
            if is_env {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Cmd, PathDecl};

    fn step(inputs: &[&str], outputs: &[&str], ignore: &[&str]) -> Step {
        let decl = |p: &&str| PathDecl {
            path: p.to_string(),
            dir: false,
            store: true,
        };
        Step {
            name: "train".into(),
            cmd: Cmd::Argv(vec!["true".into()]),
            template: Cmd::Argv(vec!["true".into()]),
            inputs: inputs.iter().map(decl).collect(),
            outputs: outputs.iter().map(decl).collect(),
            params: Default::default(),
            metrics: vec!["metrics.json".into()],
            env: Default::default(),
            cwd: String::new(),
            deps: Vec::new(),
            timeout: None,
            retries: 0,
            retry_delay: Default::default(),
            trace: None,
            trace_ignore: ignore.iter().map(|s| s.to_string()).collect(),
            trace_ignore_defaults: true,
            keep_outputs: false,
            model: None,
            executor: Default::default(),
            resources: Default::default(),
        }
    }

    /// As if the step started long after the fixture was written (nothing "changed").
    fn check(r: &Report, p: &Project, step: &Step) -> Findings {
        analyze(
            r,
            &p.root,
            step,
            SystemTime::now() + Duration::from_secs(3600),
            None,
        )
    }

    struct Project {
        _tmp: tempfile::TempDir,
        root: std::path::PathBuf,
    }

    impl Project {
        fn new(files: &[&str]) -> Project {
            let tmp = tempfile::tempdir().unwrap();
            let root = std::fs::canonicalize(tmp.path()).unwrap();
            for f in files {
                let p = root.join(f);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, f).unwrap();
            }
            Project { _tmp: tmp, root }
        }
        fn abs(&self, rel: &str) -> String {
            format!("{}/{rel}", self.root.display())
        }
    }

    #[test]
    fn undeclared_reads_and_writes_inside_the_project_are_found() {
        let p = Project::new(&[
            "data/in.csv",
            "data/extra.csv",
            "src/train.py",
            "model.bin",
            "stray.txt",
            "metrics.json",
        ]);
        let mut r = Report::default();
        for f in ["data/in.csv", "data/extra.csv", "src/train.py"] {
            r.read(&p.abs(f));
        }
        r.read("/usr/lib/python3.11/os.py");
        r.read("/etc/ld.so.cache");
        r.written(&p.abs("model.bin"));
        r.written(&p.abs("stray.txt"));
        r.written(&p.abs("metrics.json"));
        let f = check(
            &r,
            &p,
            &step(&["data/in.csv", "src/train.py"], &["model.bin"], &[]),
        );
        assert_eq!(f.reads, ["data/extra.csv"]);
        assert_eq!(f.writes, ["stray.txt"]);
        assert!(
            f.untouched_inputs.is_empty() && f.untouched_outputs.is_empty(),
            "{f:?}"
        );
    }

    #[test]
    fn temporary_files_caches_envs_and_ignored_globs_do_not_count() {
        let p = Project::new(&[
            "src/__pycache__/m.cpython-311.pyc",
            ".venv/pyvenv.cfg",
            ".venv/lib/site.py",
            "logs/run.log",
            ".git/index",
            "out.bin",
        ]);
        let mut r = Report::default();
        r.written(&p.abs("src/__pycache__/m.cpython-311.pyc"));
        r.read(&p.abs(".venv/lib/site.py"));
        r.written(&p.abs("logs/run.log"));
        r.read(&p.abs(".git/index"));
        // written then renamed into place: only the final name is an output
        r.written(&p.abs("out.bin.tmp"));
        r.renamed(&p.abs("out.bin.tmp"), &p.abs("out.bin"), false);
        // written then deleted
        r.written(&p.abs("scratch.tmp"));
        r.deleted(&p.abs("scratch.tmp"));
        let f = check(&r, &p, &step(&[], &[], &["*.log"]));
        assert_eq!(f.writes, ["out.bin"], "{f:?}");
        assert!(f.reads.is_empty() && f.deletes.is_empty(), "{f:?}");
    }

    #[test]
    fn a_read_file_changed_after_the_step_started_is_reported() {
        let p = Project::new(&["before.csv", "after.csv"]);
        let mut r = Report::default();
        r.read(&p.abs("before.csv"));
        r.read(&p.abs("after.csv"));
        let started = SystemTime::now();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(p.root.join("after.csv"), "changed").unwrap();
        let f = analyze(
            &r,
            &p.root,
            &step(&["before.csv", "after.csv"], &[], &[]),
            started,
            None,
        );
        assert_eq!(f.changed, ["after.csv"]);
    }

    #[test]
    fn declared_but_untouched_paths_are_reported() {
        let p = Project::new(&["a.csv", "b.csv", "out.txt"]);
        let mut r = Report::default();
        r.read(&p.abs("a.csv"));
        let f = check(&r, &p, &step(&["a.csv", "b.csv"], &["out.txt"], &[]));
        assert_eq!(f.untouched_inputs, ["b.csv"]);
        assert_eq!(f.untouched_outputs, ["out.txt"]);
    }

    #[test]
    fn a_deleted_pre_existing_file_is_reported_and_a_renamed_dir_stands_for_its_files() {
        let p = Project::new(&["model/a.bin", "model/b.bin"]);
        let mut r = Report::default();
        r.deleted(&p.abs("old.csv"));
        r.written(&p.abs("model.tmp"));
        r.written(&p.abs("model.tmp/a.bin"));
        r.written(&p.abs("model.tmp/b.bin"));
        r.renamed(&p.abs("model.tmp"), &p.abs("model"), false);
        let f = check(&r, &p, &step(&[], &[], &[]));
        assert_eq!(f.deletes, ["old.csv"]);
        assert_eq!(f.writes, ["model"]);
    }

    #[test]
    fn reads_through_a_symlinked_declared_dir_keep_the_declared_name() {
        let p = Project::new(&["store/v2/x.csv"]);
        std::os::unix::fs::symlink(p.root.join("store/v2"), p.root.join("data")).unwrap();
        let mut r = Report::default();
        r.read(&p.abs("store/v2/x.csv"));
        let f = check(&r, &p, &step(&["data"], &[], &[]));
        assert!(f.reads.is_empty() && f.untouched_inputs.is_empty(), "{f:?}");
        // undeclared: shown under its real path
        let f = check(&r, &p, &step(&[], &[], &[]));
        assert_eq!(f.reads, ["store/v2/x.csv"]);
    }

    #[test]
    fn writes_under_git_are_counted_not_reported() {
        let p = Project::new(&["repo/.git/index", "repo/.git/refs/heads/main", "real.csv"]);
        let mut r = Report::default();
        r.written(&p.abs("repo/.git/index"));
        r.written(&p.abs("repo/.git/refs/heads/main"));
        r.read(&p.abs("repo/.git/HEAD"));
        r.read(&p.abs("real.csv"));
        let f = check(&r, &p, &step(&[], &[], &[]));
        assert_eq!(f.reads, ["real.csv"]);
        assert!(f.writes.is_empty(), "{f:?}");
        assert_eq!(f.repo_writes, 2);
    }

    #[test]
    fn tool_state_is_ignored_by_default_and_git_writes_are_counted() {
        let p = Project::new(&[
            "mlruns/0/meta.yaml",
            "sub/wandb/run/state",
            ".cache/x",
            "train.lock",
            ".dvc/tmp/lock",
            "src/.dvc/tmp/kept",
            "real.csv",
            "repo/.git/index",
            "repo/.git/refs/heads/main",
        ]);
        let mut r = Report::default();
        for f in [
            "mlruns/0/meta.yaml",
            "sub/wandb/run/state",
            ".cache/x",
            "train.lock",
            ".dvc/tmp/lock",
            "src/.dvc/tmp/kept",
            "real.csv",
        ] {
            r.read(&p.abs(f));
        }
        r.written(&p.abs("repo/.git/index"));
        r.written(&p.abs("repo/.git/refs/heads/main"));
        let mut s = step(&[], &[], &[]);
        let f = check(&r, &p, &s);
        // `.dvc/tmp` is anchored at the project directory, as a gitignore pattern with a `/`
        assert_eq!(f.reads, ["real.csv", "src/.dvc/tmp/kept"]);
        assert!(f.writes.is_empty(), "{f:?}");
        assert_eq!(f.repo_writes, 2);
        s.trace_ignore_defaults = false;
        let f = check(&r, &p, &s);
        assert_eq!(f.reads.len(), 7, "{f:?}");
        assert_eq!(f.repo_writes, 2, ".git is never lineage");
    }
}

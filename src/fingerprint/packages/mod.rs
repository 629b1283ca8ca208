//! The packages a step's interpreter had installed: for a Python interpreter its prefix
//! (virtualenv, conda environment or system) and every distribution on its `sys.path`, read from
//! the metadata on disk; for any other interpreter that lives in a conda environment, that
//! environment's conda packages.
//!
//! Nothing here runs the interpreter (or pip). The layout says where the distributions are:
//! - the executable is the command's program found in the step's `PATH` (a pyenv shim is followed
//!   to the version pyenv would pick: `PYENV_VERSION`, `.python-version`, `$PYENV_ROOT/version`);
//! - a `pyvenv.cfg` beside it or one directory up makes it a virtualenv (its `home` is the base
//!   interpreter; `include-system-site-packages = true` adds the base's directories); a
//!   `conda-meta/` directory in its prefix makes it a conda environment; otherwise it is a
//!   system (or pyenv, Homebrew, …) installation whose prefix is its real path's `../..`;
//! - the directories scanned, in `sys.path` order: `PYTHONPATH`, the user site
//!   (`~/.local/lib/pythonX.Y/site-packages`, not in a virtualenv, not with `PYTHONNOUSERSITE`),
//!   then `PREFIX/lib{,64}/pythonX.Y/site-packages`, `PREFIX/local/lib/pythonX.Y/dist-packages`,
//!   `PREFIX/lib/python3/dist-packages` and `PREFIX/lib/pythonX.Y/dist-packages` (Debian).
//!
//! In them, each `*.dist-info/METADATA`, `*.egg-info` (`PKG-INFO`) and `*.egg/EGG-INFO/PKG-INFO`
//! gives a `Name` and `Version` (only the header is read); the first of a name on the path wins,
//! as in Python. A conda environment adds `conda-meta/NAME-VERSION-BUILD.json` (the file name is
//! the record: those files can be megabytes) for the names no distribution has.
//!
//! The list is content-addressed: its hash is the SHA-256 of its canonical JSON, and the store
//! keeps each list once (`package_sets`). Scanning 300 distributions takes a few milliseconds;
//! a later run in the same environment does not scan at all: the store remembers, per
//! executable, the scanned directories with their inode and mtime and the list they gave
//! (`package_scan_cache`). A directory gains or loses an entry whenever pip or conda installs,
//! upgrades or removes something, so its mtime moves. As for the stat cache, a remembered scan
//! is only trusted when every directory's mtime was at least 2 s old when it was made.
//!
//! This file holds the types, the cache of scans and the comparison of two lists; `layout`
//! finds an interpreter's environment and scans it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::hash::sha256_bytes;

const RACY_NS: i64 = 2_000_000_000;

/// One installed distribution.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Package {
    /// as its metadata spells it
    pub name: String,
    pub version: String,
    /// `dist-info`, `egg-info` or `conda`
    pub source: String,
}

/// The distributions of one environment, sorted by normalised name, with their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSet {
    pub hash: String,
    pub packages: Vec<Package>,
    /// the canonical JSON the hash is the SHA-256 of
    pub data: Vec<u8>,
}

impl PackageSet {
    pub fn new(mut packages: Vec<Package>) -> PackageSet {
        packages.sort_by(|a, b| {
            normalise(&a.name)
                .cmp(&normalise(&b.name))
                .then_with(|| a.version.cmp(&b.version))
        });
        let data = serde_json::to_vec(&packages).unwrap_or_default();
        PackageSet {
            hash: sha256_bytes(&data),
            packages,
            data,
        }
    }

    /// A set as the store keeps it (`data`); `None` when it is not a list of packages.
    pub fn parse(data: &[u8]) -> Option<Vec<Package>> {
        serde_json::from_slice(data).ok()
    }
}

/// PEP 503: lowercase, runs of `-`, `_` and `.` are one `-`.
pub fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// Where an interpreter lives and what it has installed, as recorded with a step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackageEnv {
    /// the program as found in `PATH` (links not followed: a virtualenv's `bin/python`)
    pub executable: String,
    /// the file that really runs (links followed)
    pub real_path: String,
    /// the environment's directory (`sys.prefix`)
    pub prefix: String,
    /// `venv`, `conda` or `system`
    pub kind: String,
    /// `X.Y` for Python, from the layout
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// the directories whose distributions were read, in `sys.path` order
    pub dirs: Vec<String>,
    /// SHA-256 of the package list (`package_sets.hash`)
    pub hash: String,
    pub count: usize,
}

/// A scan remembered by the store: the directories' identities and the set they gave.
#[derive(Debug, Clone)]
pub struct CachedScan {
    pub executable: String,
    pub stamp: String,
    pub scanned_at_ns: i64,
    pub env: PackageEnv,
}

/// What `PackageCache::inspect` found for one program.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub env: PackageEnv,
    /// the list, when it was read from disk now (the store may not have it yet)
    pub set: Option<Arc<PackageSet>>,
    /// the scan to remember (directories' identities), when it was read from disk now
    pub remember: Option<CachedScan>,
}

/// Scans, remembered across runs (loaded from the store) and within a run.
#[derive(Default)]
pub struct PackageCache {
    known: Mutex<BTreeMap<String, CachedScan>>,
    /// this run's scans: executable → (stamp, result)
    seen: Mutex<BTreeMap<String, (String, Inspected)>>,
}

impl PackageCache {
    pub fn new(known: Vec<CachedScan>) -> PackageCache {
        PackageCache {
            known: Mutex::new(
                known
                    .into_iter()
                    .map(|c| (c.executable.clone(), c))
                    .collect(),
            ),
            seen: Mutex::default(),
        }
    }

    /// The environment of each program among `programs` that is a Python interpreter, or any
    /// interpreter in a conda environment. `vars` is the step's environment (PATH, PYTHONPATH,
    /// HOME, PYENV_VERSION, …).
    pub fn inspect(
        &self,
        programs: &[String],
        cwd: &Path,
        vars: &BTreeMap<String, String>,
    ) -> BTreeMap<String, Inspected> {
        let mut out = BTreeMap::new();
        for p in programs {
            if out.contains_key(p) || !is_interpreter(p) {
                continue;
            }
            if let Some(i) = self.inspect_one(p, cwd, vars) {
                out.insert(p.clone(), i);
            }
        }
        out
    }

    fn inspect_one(
        &self,
        prog: &str,
        cwd: &Path,
        vars: &BTreeMap<String, String>,
    ) -> Option<Inspected> {
        let layout = Layout::find(prog, cwd, vars)?;
        let stamp = layout.stamp();
        if let Some((s, i)) = self
            .seen
            .lock()
            .expect("packages lock")
            .get(&layout.executable)
            && *s == stamp
        {
            return Some(i.clone());
        }
        let remembered = self
            .known
            .lock()
            .expect("packages lock")
            .get(&layout.executable)
            .filter(|c| c.stamp == stamp && layout.max_mtime_ns + RACY_NS < c.scanned_at_ns)
            .map(|c| c.env.clone());
        let found = match remembered {
            Some(env) => Inspected {
                env,
                set: None,
                remember: None,
            },
            None => {
                let scanned_at_ns = super::cache::now_ns();
                let set = Arc::new(PackageSet::new(layout.scan()));
                let env = layout.env(&set);
                let remember = CachedScan {
                    executable: layout.executable.clone(),
                    stamp: stamp.clone(),
                    scanned_at_ns,
                    env: env.clone(),
                };
                self.known
                    .lock()
                    .expect("packages lock")
                    .insert(layout.executable.clone(), remember.clone());
                Inspected {
                    env,
                    set: Some(set),
                    remember: Some(remember),
                }
            }
        };
        self.seen
            .lock()
            .expect("packages lock")
            .insert(layout.executable.clone(), (stamp, found.clone()));
        Some(found)
    }
}

/// Programs whose version is worth recording when a command calls them.
pub(crate) fn is_interpreter(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    let stem = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    matches!(
        stem,
        "python"
            | "pypy"
            | "Rscript"
            | "R"
            | "julia"
            | "node"
            | "deno"
            | "bun"
            | "ruby"
            | "perl"
            | "java"
            | "uv"
            | "conda"
            | "dotnet"
            | "go"
            | "cargo"
            | "lua"
            | "octave"
            | "matlab"
    )
}

mod layout;
#[cfg(test)]
mod tests;

use layout::*;

/// Differences between two package lists: `(name, a's version, b's version)` for each name
/// missing from one or with another version, sorted by name.
pub fn compare(a: &[Package], b: &[Package]) -> Vec<(String, Option<String>, Option<String>)> {
    let index = |l: &[Package]| -> BTreeMap<String, (String, String)> {
        l.iter()
            .map(|p| (normalise(&p.name), (p.name.clone(), p.version.clone())))
            .collect()
    };
    let (ia, ib) = (index(a), index(b));
    let mut keys: Vec<&String> = ia.keys().chain(ib.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (ia.get(k), ib.get(k));
            if x.map(|p| &p.1) == y.map(|p| &p.1) {
                return None;
            }
            let name = x.or(y).map(|p| p.0.clone()).unwrap_or_default();
            Some((name, x.map(|p| p.1.clone()), y.map(|p| p.1.clone())))
        })
        .collect()
}

/// One line per difference: `numpy 1.26.4 → 2.0.0`, `scipy 1.13.0 missing`, `rich 13.7.1 added`.
pub fn describe(changes: &[(String, Option<String>, Option<String>)]) -> Vec<String> {
    changes
        .iter()
        .map(|(n, a, b)| match (a, b) {
            (Some(a), Some(b)) => format!("{n} {a} → {b}"),
            (Some(a), None) => format!("{n} {a} missing"),
            (None, Some(b)) => format!("{n} {b} added"),
            (None, None) => n.clone(),
        })
        .collect()
}

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

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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
            if out.contains_key(p) || !super::system::is_interpreter(p) {
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

/// A directory's (device, inode, mtime in ns); `None` when it does not exist.
type Ident = Option<(u64, u64, i64)>;

/// The environment of one interpreter, found from the files around it.
#[derive(Debug)]
struct Layout {
    executable: String,
    real_path: String,
    prefix: PathBuf,
    kind: &'static str,
    version: Option<String>,
    /// (directory, its stat identity or None when absent) in `sys.path` order
    dirs: Vec<(PathBuf, Ident)>,
    conda_meta: Option<(PathBuf, Ident)>,
    max_mtime_ns: i64,
}

fn ident(p: &Path) -> Ident {
    let m = std::fs::metadata(p).ok().filter(|m| m.is_dir())?;
    Some((m.dev(), m.ino(), m.mtime() * 1_000_000_000 + m.mtime_nsec()))
}

fn is_python(prog: &str) -> bool {
    let base = prog.rsplit('/').next().unwrap_or(prog);
    let stem = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    matches!(stem, "python" | "pypy")
}

fn find_in_path(prog: &str, cwd: &Path, path_var: Option<&str>) -> Option<PathBuf> {
    if prog.contains('/') {
        let p = cwd.join(prog);
        return p.is_file().then_some(p);
    }
    std::env::split_paths(path_var?)
        .map(|d| cwd.join(d).join(prog))
        .find(|p| p.is_file())
}

/// A pyenv shim: the interpreter pyenv would run for `prog` (`PYENV_VERSION`, then the nearest
/// `.python-version`, then `$PYENV_ROOT/version`; `system` is the next `prog` in PATH).
fn through_pyenv(
    shim: &Path,
    prog: &str,
    cwd: &Path,
    vars: &BTreeMap<String, String>,
) -> Option<PathBuf> {
    let shims = shim.parent()?;
    if shims.file_name()? != "shims" {
        return None;
    }
    let root = vars
        .get("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| shims.parent().unwrap_or(shims).to_path_buf());
    if !root.join("versions").is_dir() {
        return None;
    }
    let names = vars
        .get("PYENV_VERSION")
        .filter(|v| !v.is_empty())
        .cloned()
        .or_else(|| {
            cwd.ancestors()
                .find_map(|d| std::fs::read_to_string(d.join(".python-version")).ok())
        })
        .or_else(|| std::fs::read_to_string(root.join("version")).ok())
        .unwrap_or_else(|| "system".into());
    let base = prog.rsplit('/').next().unwrap_or(prog);
    for name in names
        .split([':', '\n', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
    {
        if name == "system" {
            let path = vars.get("PATH")?;
            return std::env::split_paths(path)
                .filter(|d| d != shims)
                .map(|d| d.join(base))
                .find(|p| p.is_file());
        }
        let p = root.join("versions").join(name).join("bin").join(base);
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

fn is_script(p: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"#!"
}

/// `3.11` from `python3.11`, `3.11.7`, `3.11.7.final.0`.
fn major_minor(s: &str) -> Option<String> {
    let mut parts = s.split('.');
    let (a, b) = (parts.next()?, parts.next()?);
    let num = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_digit());
    (num(a) && num(b)).then(|| format!("{a}.{b}"))
}

fn pyvenv_cfg(exe: &Path) -> Option<(PathBuf, BTreeMap<String, String>)> {
    let dir = exe.parent()?;
    for d in [dir, dir.parent()?] {
        if let Ok(text) = std::fs::read_to_string(d.join("pyvenv.cfg")) {
            let kv = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            return Some((d.to_path_buf(), kv));
        }
    }
    None
}

/// `lib/pythonX.Y` names under `prefix`, newest first.
fn lib_versions(prefix: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(prefix.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix("python").and_then(major_minor)
        })
        .collect();
    v.sort_by_key(|x| {
        let mut p = x.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
        std::cmp::Reverse((p.next(), p.next()))
    });
    v
}

fn site_dirs(prefix: &Path, v: &str) -> Vec<PathBuf> {
    let py = format!("python{v}");
    vec![
        prefix.join("lib").join(&py).join("site-packages"),
        prefix.join("lib64").join(&py).join("site-packages"),
        prefix.join("local/lib").join(&py).join("dist-packages"),
        prefix.join("lib/python3/dist-packages"),
        prefix.join("lib").join(&py).join("dist-packages"),
    ]
}

impl Layout {
    fn find(prog: &str, cwd: &Path, vars: &BTreeMap<String, String>) -> Option<Layout> {
        let mut exe = find_in_path(prog, cwd, vars.get("PATH").map(String::as_str))?;
        if is_script(&exe) {
            // a shim (pyenv) or a wrapper script: only pyenv's can be followed without running it
            exe = through_pyenv(&exe, prog, cwd, vars)?;
            if is_script(&exe) {
                return None;
            }
        }
        let real = std::fs::canonicalize(&exe).unwrap_or_else(|_| exe.clone());
        let python = is_python(prog);
        let real_name = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name_version = real_name
            .strip_prefix("python")
            .or_else(|| real_name.strip_prefix("pypy"))
            .and_then(major_minor);
        let mut dirs: Vec<PathBuf> = Vec::new();
        let (prefix, kind, version, base);
        if let Some((venv, cfg)) = pyvenv_cfg(&exe).filter(|_| python) {
            prefix = venv;
            kind = "venv";
            version = cfg
                .get("version")
                .or_else(|| cfg.get("version_info"))
                .and_then(|v| major_minor(v))
                .or(name_version);
            let system_site = cfg
                .get("include-system-site-packages")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            // the base interpreter's prefix: `home` is its bin directory
            base = system_site
                .then(|| cfg.get("home").map(|h| Path::new(h).join("..")))
                .flatten()
                .map(|p| std::fs::canonicalize(&p).unwrap_or(p));
        } else {
            let bin = real.parent()?;
            prefix = bin.parent().unwrap_or(bin).to_path_buf();
            kind = if prefix.join("conda-meta").is_dir() {
                "conda"
            } else {
                "system"
            };
            version = name_version.or_else(|| {
                python
                    .then(|| lib_versions(&prefix).into_iter().next())
                    .flatten()
            });
            base = None;
        }
        let conda_meta = prefix.join("conda-meta");
        let conda_meta = conda_meta.is_dir().then_some(conda_meta);
        if !python && conda_meta.is_none() {
            // only Python's distributions and conda's packages are read
            return None;
        }
        if python {
            if let Some(pp) = vars.get("PYTHONPATH") {
                dirs.extend(
                    std::env::split_paths(pp)
                        .filter(|d| !d.as_os_str().is_empty())
                        .map(|d| cwd.join(d)),
                );
            }
            if let Some(v) = &version {
                let user_site = kind != "venv" && !vars.contains_key("PYTHONNOUSERSITE");
                if user_site && let Some(home) = vars.get("HOME") {
                    dirs.push(
                        Path::new(home)
                            .join(".local/lib")
                            .join(format!("python{v}"))
                            .join("site-packages"),
                    );
                }
                dirs.extend(site_dirs(&prefix, v));
                if let Some(b) = &base {
                    dirs.extend(site_dirs(b, v));
                }
            }
        }
        // the same directory twice (lib64 → lib): keep the first
        let mut seen = std::collections::HashSet::new();
        let dirs: Vec<(PathBuf, Ident)> = dirs
            .into_iter()
            .map(|d| (d.clone(), ident(&d)))
            .filter(|(_, id)| id.is_none_or(|(dev, ino, _)| seen.insert((dev, ino))))
            .collect();
        let conda_meta = conda_meta.map(|d| {
            let id = ident(&d);
            (d, id)
        });
        let max_mtime_ns = dirs
            .iter()
            .chain(conda_meta.iter())
            .filter_map(|(_, id)| id.map(|i| i.2))
            .max()
            .unwrap_or(0);
        Some(Layout {
            executable: exe.to_string_lossy().into_owned(),
            real_path: real.to_string_lossy().into_owned(),
            prefix,
            kind,
            version,
            dirs,
            conda_meta,
            max_mtime_ns,
        })
    }

    /// The identity of everything scanned: equal stamps, equal package lists.
    fn stamp(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n{}\n",
            self.real_path,
            self.prefix.display(),
            self.kind,
            self.version.as_deref().unwrap_or("")
        );
        for (d, id) in self.dirs.iter().chain(self.conda_meta.iter()) {
            match id {
                Some((dev, ino, m)) => s += &format!("{}\t{dev}:{ino}:{m}\n", d.display()),
                None => s += &format!("{}\t-\n", d.display()),
            }
        }
        s
    }

    fn scan(&self) -> Vec<Package> {
        let mut by_name: BTreeMap<String, Package> = BTreeMap::new();
        for (d, id) in &self.dirs {
            if id.is_some() {
                scan_site_dir(d, &mut by_name);
            }
        }
        if let Some((d, Some(_))) = &self.conda_meta {
            for p in scan_conda_meta(d) {
                by_name.entry(normalise(&p.name)).or_insert(p);
            }
        }
        by_name.into_values().collect()
    }

    fn env(&self, set: &PackageSet) -> PackageEnv {
        PackageEnv {
            executable: self.executable.clone(),
            real_path: self.real_path.clone(),
            prefix: self.prefix.to_string_lossy().into_owned(),
            kind: self.kind.into(),
            version: self.version.clone(),
            dirs: self
                .dirs
                .iter()
                .filter(|(_, id)| id.is_some())
                .map(|(d, _)| d.to_string_lossy().into_owned())
                .chain(
                    self.conda_meta
                        .iter()
                        .filter(|(_, id)| id.is_some())
                        .map(|(d, _)| d.to_string_lossy().into_owned()),
                )
                .collect(),
            hash: set.hash.clone(),
            count: set.packages.len(),
        }
    }
}

/// `Name` and `Version` from the header of a METADATA / PKG-INFO file (RFC 822 style: the
/// header ends at the first empty line; the long description after it is not read).
fn read_metadata(path: &Path) -> Option<(String, String)> {
    let f = std::fs::File::open(path).ok()?;
    let mut r = BufReader::with_capacity(4096, f);
    let (mut name, mut version) = (None, None);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            break;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("name") && name.is_none() {
                name = Some(v.trim().to_string());
            } else if k.eq_ignore_ascii_case("version") && version.is_none() {
                version = Some(v.trim().to_string());
            }
        }
        if name.is_some() && version.is_some() {
            break;
        }
    }
    Some((name?, version?))
}

/// `NAME-VERSION` from a `NAME-VERSION[-pyX.Y].{dist,egg}-info` / `.egg` name, for a
/// distribution whose metadata file cannot be read.
fn from_dir_name(stem: &str) -> Option<(String, String)> {
    let (name, rest) = stem.split_once('-')?;
    let version = rest.split('-').next()?;
    (!name.is_empty() && !version.is_empty()).then(|| (name.to_string(), version.to_string()))
}

fn scan_site_dir(dir: &Path, out: &mut BTreeMap<String, Package>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<(String, PathBuf)> = rd
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    // read_dir's order is the file system's: sort, so a name found twice resolves the same way
    names.sort();
    for (name, path) in names {
        let (stem, meta, source) = if let Some(s) = name.strip_suffix(".dist-info") {
            (s, path.join("METADATA"), "dist-info")
        } else if let Some(s) = name.strip_suffix(".egg-info") {
            let meta = if path.is_dir() {
                path.join("PKG-INFO")
            } else {
                path.clone()
            };
            (s, meta, "egg-info")
        } else if let Some(s) = name.strip_suffix(".egg") {
            (s, path.join("EGG-INFO/PKG-INFO"), "egg-info")
        } else {
            continue;
        };
        let Some((n, v)) = read_metadata(&meta).or_else(|| from_dir_name(stem)) else {
            continue;
        };
        out.entry(normalise(&n)).or_insert(Package {
            name: n,
            version: v,
            source: source.into(),
        });
    }
}

/// conda's record of each installed package is `conda-meta/NAME-VERSION-BUILD.json` (a version
/// and a build string never contain `-`).
fn scan_conda_meta(dir: &Path) -> Vec<Package> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let stem = n.strip_suffix(".json")?;
            let mut parts = stem.rsplitn(3, '-');
            let (_build, version, name) = (parts.next()?, parts.next()?, parts.next()?);
            (!name.is_empty()).then(|| Package {
                name: name.into(),
                version: version.into(),
                source: "conda".into(),
            })
        })
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(dir: &Path, name: &str, version: &str) {
        let d = dir.join(format!("{}-{version}.dist-info", name.replace('-', "_")));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: not-this\n"),
        )
        .unwrap();
    }

    #[test]
    fn names_are_normalised_as_pep_503_says() {
        assert_eq!(normalise("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(normalise("scikit_learn"), "scikit-learn");
    }

    #[test]
    fn a_virtualenv_is_read_from_its_layout() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("base");
        std::fs::create_dir_all(base.join("bin")).unwrap();
        std::fs::write(base.join("bin/python3.11"), b"\x7fELF").unwrap();
        let base_site = base.join("lib/python3.11/site-packages");
        dist(&base_site, "numpy", "1.26.4");
        let venv = t.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::os::unix::fs::symlink(base.join("bin/python3.11"), venv.join("bin/python3")).unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            format!(
                "home = {}\ninclude-system-site-packages = true\nversion = 3.11.7\n",
                base.join("bin").display()
            ),
        )
        .unwrap();
        let site = venv.join("lib/python3.11/site-packages");
        dist(&site, "Scikit_Learn", "1.5.0");
        dist(&site, "numpy", "2.0.0"); // shadows the base's
        std::fs::create_dir_all(site.join("old-0.1-py3.11.egg-info")).unwrap();
        std::fs::write(
            site.join("flat-2.0-py3.11.egg-info"),
            "Name: flat\nVersion: 2.0\n",
        )
        .unwrap();
        let vars: BTreeMap<String, String> = [(
            "PATH".to_string(),
            venv.join("bin").to_string_lossy().into_owned(),
        )]
        .into();
        let c = PackageCache::default();
        let found = c.inspect(&["python3".into(), "cp".into()], t.path(), &vars);
        let i = &found["python3"];
        assert_eq!(i.env.kind, "venv");
        assert_eq!(i.env.prefix, venv.to_string_lossy());
        assert_eq!(i.env.version.as_deref(), Some("3.11"));
        let set = i.set.as_ref().unwrap();
        let got: Vec<(&str, &str, &str)> = set
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.source.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("flat", "2.0", "egg-info"),
                ("numpy", "2.0.0", "dist-info"),
                ("old", "0.1", "egg-info"),
                ("Scikit_Learn", "1.5.0", "dist-info"),
            ]
        );
        assert_eq!(i.env.count, 4);
        // the same run asks again: no new scan, same answer
        let again = c.inspect(&["python3".into()], t.path(), &vars);
        assert_eq!(again["python3"].env, i.env);
    }

    #[test]
    fn a_remembered_scan_is_used_only_while_the_directories_are_unchanged_and_old() {
        let t = tempfile::tempdir().unwrap();
        let prefix = t.path().join("conda");
        std::fs::create_dir_all(prefix.join("bin")).unwrap();
        std::fs::create_dir_all(prefix.join("conda-meta")).unwrap();
        std::fs::write(prefix.join("bin/python3.12"), b"\x7fELF").unwrap();
        std::fs::write(
            prefix.join("conda-meta/libzstd-1.5.6-ha6fb4c9_0.json"),
            "{}",
        )
        .unwrap();
        std::fs::write(
            prefix.join("conda-meta/python-dateutil-2.9.0-pyhd8ed1ab_0.json"),
            "{}",
        )
        .unwrap();
        dist(
            &prefix.join("lib/python3.12/site-packages"),
            "python-dateutil",
            "2.9.0.post0",
        );
        let vars: BTreeMap<String, String> = [(
            "PATH".to_string(),
            prefix.join("bin").to_string_lossy().into_owned(),
        )]
        .into();
        let first = PackageCache::default().inspect(&["python3.12".into()], t.path(), &vars);
        let i = &first["python3.12"];
        assert_eq!(i.env.kind, "conda");
        let names: Vec<(&str, &str)> = i
            .set
            .as_ref()
            .unwrap()
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [("libzstd", "1.5.6"), ("python-dateutil", "2.9.0.post0")]
        );
        let mut remembered = i.remember.clone().unwrap();
        // just made: racy, scanned again
        let c = PackageCache::new(vec![remembered.clone()]);
        assert!(
            c.inspect(&["python3.12".into()], t.path(), &vars)["python3.12"]
                .set
                .is_some()
        );
        // old enough: not scanned
        remembered.scanned_at_ns += 3 * RACY_NS;
        let c = PackageCache::new(vec![remembered.clone()]);
        let hit = &c.inspect(&["python3.12".into()], t.path(), &vars)["python3.12"];
        assert!(hit.set.is_none());
        assert_eq!(hit.env, i.env);
        // an installation changes the directory: scanned again
        dist(
            &prefix.join("lib/python3.12/site-packages"),
            "rich",
            "13.7.1",
        );
        let c = PackageCache::new(vec![remembered]);
        let miss = &c.inspect(&["python3.12".into()], t.path(), &vars)["python3.12"];
        assert_eq!(miss.env.count, 3);
    }

    #[test]
    fn a_pyenv_shim_is_followed_to_the_version_pyenv_picks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("pyenv");
        std::fs::create_dir_all(root.join("shims")).unwrap();
        std::fs::write(
            root.join("shims/python3"),
            "#!/usr/bin/env bash\nexec pyenv exec\n",
        )
        .unwrap();
        for v in ["3.11.7", "3.12.1"] {
            let bin = root.join("versions").join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            let minor = &v[..4];
            std::fs::write(bin.join(format!("python{minor}")), b"\x7fELF").unwrap();
            std::os::unix::fs::symlink(format!("python{minor}"), bin.join("python3")).unwrap();
            dist(
                &root
                    .join("versions")
                    .join(v)
                    .join(format!("lib/python{minor}/site-packages")),
                "pip",
                v,
            );
        }
        std::fs::write(root.join("version"), "3.11.7\n").unwrap();
        let project = t.path().join("project");
        std::fs::create_dir_all(&project).unwrap();
        let mut vars: BTreeMap<String, String> = [(
            "PATH".to_string(),
            root.join("shims").to_string_lossy().into_owned(),
        )]
        .into();
        let version = |vars: &BTreeMap<String, String>| {
            let found = PackageCache::default().inspect(&["python3".into()], &project, vars);
            let i = &found["python3"];
            assert_eq!(i.env.kind, "system");
            (
                i.env.version.clone().unwrap(),
                i.set.as_ref().unwrap().packages[0].version.clone(),
            )
        };
        // the global version file
        assert_eq!(version(&vars), ("3.11".to_string(), "3.11.7".to_string()));
        // the project's .python-version wins over it
        std::fs::write(project.join(".python-version"), "3.12.1\n").unwrap();
        assert_eq!(version(&vars), ("3.12".to_string(), "3.12.1".to_string()));
        // and PYENV_VERSION over both
        vars.insert("PYENV_VERSION".into(), "3.11.7".into());
        assert_eq!(version(&vars), ("3.11".to_string(), "3.11.7".to_string()));
    }

    #[test]
    fn differences_name_each_package() {
        let p = |n: &str, v: &str| Package {
            name: n.into(),
            version: v.into(),
            source: "dist-info".into(),
        };
        let a = [p("numpy", "1.26.4"), p("scipy", "1.13.0"), p("Same", "1")];
        let b = [p("numpy", "2.0.0"), p("rich", "13.7.1"), p("same", "1")];
        assert_eq!(
            describe(&compare(&a, &b)),
            [
                "numpy 1.26.4 → 2.0.0",
                "rich 13.7.1 added",
                "scipy 1.13.0 missing"
            ]
        );
    }
}

//! Where an interpreter's distributions are: the executable found in `PATH` (through a pyenv
//! shim), its prefix (virtualenv, conda, system), the site directories in `sys.path` order, and
//! the scan of their metadata and of `conda-meta/`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::*;

/// A directory's (device, inode, mtime in ns); `None` when it does not exist.
pub(super) type Ident = Option<(u64, u64, i64)>;

/// The environment of one interpreter, found from the files around it.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) executable: String,
    pub(super) real_path: String,
    pub(super) prefix: PathBuf,
    pub(super) kind: &'static str,
    pub(super) version: Option<String>,
    /// (directory, its stat identity or None when absent) in `sys.path` order
    pub(super) dirs: Vec<(PathBuf, Ident)>,
    pub(super) conda_meta: Option<(PathBuf, Ident)>,
    pub(super) max_mtime_ns: i64,
}

pub(super) fn ident(p: &Path) -> Ident {
    let m = std::fs::metadata(p).ok().filter(|m| m.is_dir())?;
    Some((m.dev(), m.ino(), m.mtime() * 1_000_000_000 + m.mtime_nsec()))
}

pub(super) fn is_python(prog: &str) -> bool {
    let base = prog.rsplit('/').next().unwrap_or(prog);
    let stem = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    matches!(stem, "python" | "pypy")
}

pub(super) fn find_in_path(prog: &str, cwd: &Path, path_var: Option<&str>) -> Option<PathBuf> {
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
pub(super) fn through_pyenv(
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

pub(super) fn is_script(p: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"#!"
}

/// `3.11` from `python3.11`, `3.11.7`, `3.11.7.final.0`.
pub(super) fn major_minor(s: &str) -> Option<String> {
    let mut parts = s.split('.');
    let (a, b) = (parts.next()?, parts.next()?);
    let num = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_digit());
    (num(a) && num(b)).then(|| format!("{a}.{b}"))
}

pub(super) fn pyvenv_cfg(exe: &Path) -> Option<(PathBuf, BTreeMap<String, String>)> {
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
pub(super) fn lib_versions(prefix: &Path) -> Vec<String> {
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

pub(super) fn site_dirs(prefix: &Path, v: &str) -> Vec<PathBuf> {
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
    pub(super) fn find(prog: &str, cwd: &Path, vars: &BTreeMap<String, String>) -> Option<Layout> {
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
    pub(super) fn stamp(&self) -> String {
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

    pub(super) fn scan(&self) -> Vec<Package> {
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

    pub(super) fn env(&self, set: &PackageSet) -> PackageEnv {
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
pub(super) fn read_metadata(path: &Path) -> Option<(String, String)> {
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
pub(super) fn from_dir_name(stem: &str) -> Option<(String, String)> {
    let (name, rest) = stem.split_once('-')?;
    let version = rest.split('-').next()?;
    (!name.is_empty() && !version.is_empty()).then(|| (name.to_string(), version.to_string()))
}

pub(super) fn scan_site_dir(dir: &Path, out: &mut BTreeMap<String, Package>) {
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
pub(super) fn scan_conda_meta(dir: &Path) -> Vec<Package> {
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

//! The machine and software a step ran on: OS, kernel, CPU, memory, host, user, the versions of
//! the interpreters its command calls, and the hashes of the project's lock/requirements files.
//! Everything here is cheap to read (targeted sysinfo getters, one `--version` per interpreter
//! per run), because it is taken for every run.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::hash::hash_file;
use super::packages::{CachedScan, Inspected, PackageCache, is_interpreter};

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SystemInfo {
    pub os: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub cpu_cores: usize,
    pub mem_bytes: u64,
    pub hostname: String,
    pub user: String,
    pub mlrun_version: String,
}

/// Who is running mlrun: `$USER`, `$LOGNAME`, else the account name of the uid.
/// Test-only: `MLRUN_TEST_USER` overrides them all (ignored unless set).
pub fn user_name() -> String {
    let uid = nix::unistd::getuid();
    std::env::var("MLRUN_TEST_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| {
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The name of this machine, as recorded with a run and compared to tell whether a running
/// run's process is on this host. Test-only: `MLRUN_TEST_HOST` replaces it (ignored unless set).
pub fn host_name() -> String {
    std::env::var("MLRUN_TEST_HOST")
        .ok()
        .or_else(sysinfo::System::host_name)
        .unwrap_or_default()
}

impl SystemInfo {
    pub fn read() -> Self {
        use sysinfo::{CpuRefreshKind, System};
        let mut sys = System::new();
        sys.refresh_cpu_list(CpuRefreshKind::nothing());
        sys.refresh_memory();
        let user = user_name();
        SystemInfo {
            os: System::name().unwrap_or_else(|| std::env::consts::OS.into()),
            os_version: System::os_version().unwrap_or_default(),
            kernel: System::kernel_version().unwrap_or_default(),
            arch: std::env::consts::ARCH.into(),
            cpu_model: sys
                .cpus()
                .first()
                .map(|c| c.brand().trim().to_string())
                .unwrap_or_default(),
            cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_bytes: sys.total_memory(),
            hostname: host_name(),
            user,
            mlrun_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Lock and requirements files whose hash says which packages a project uses (besides
/// `requirements*.txt`). They are looked for where users keep them: see `LockSearch`.
pub const LOCKFILES: &[&str] = &[
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "pdm.lock",
    "environment.yml",
    "environment.yaml",
    "conda-lock.yml",
    "Cargo.lock",
    "package-lock.json",
    "renv.lock",
];

fn is_lockfile_name(name: &[u8]) -> bool {
    LOCKFILES.iter().any(|l| l.as_bytes() == name)
        || (name.starts_with(b"requirements") && name.ends_with(b".txt"))
}

/// Where a run looks for lock and requirements files: the files of `LOCKFILES` (and
/// `requirements*.txt`) at the top of the pipeline's directory, of the git repository's root, of
/// each step's `cwd` and of each declared input directory; each declared input file with such a
/// name; and every file matched by `[pipeline] lockfiles` patterns, whatever its name.
#[derive(Debug, Clone, Default)]
pub struct LockSearch {
    root: PathBuf,
    dirs: Vec<PathBuf>,
    inputs: Vec<PathBuf>,
    patterns: Vec<String>,
}

impl LockSearch {
    pub fn of(plan: &crate::pipeline::Plan) -> LockSearch {
        let root = plan.root().to_path_buf();
        let mut dirs = vec![root.clone()];
        let mut inputs = Vec::new();
        for s in plan.steps() {
            dirs.push(root.join(&s.cwd));
            inputs.extend(s.inputs.iter().map(|i| root.join(&i.path)));
        }
        LockSearch {
            root,
            dirs,
            inputs,
            patterns: plan.lockfiles().to_vec(),
        }
    }

    /// path relative to the pipeline's directory (`../x` above it) → sha256.
    pub fn find(&self, git_root: Option<&Path>) -> BTreeMap<String, String> {
        let mut files = std::collections::BTreeSet::new();
        let mut dirs = self.dirs.clone();
        if let Some(g) = git_root.filter(|g| self.root.starts_with(g)) {
            dirs.push(g.to_path_buf());
        }
        for i in &self.inputs {
            if i.is_dir() {
                dirs.push(i.clone());
            } else if i
                .file_name()
                .is_some_and(|n| is_lockfile_name(n.as_bytes()))
            {
                files.insert(i.clone());
            }
        }
        // each directory once: every step's `cwd` is usually the pipeline's directory, and a
        // 50-step pipeline listed it 51 times
        let dirs: std::collections::BTreeSet<PathBuf> =
            dirs.iter().map(|d| d.components().collect()).collect();
        for d in dirs {
            // names are compared where readdir left them: a declared input directory can hold
            // 20,000 files, and a `DirEntry` and a `String` for each cost a no-op run 5%
            let Ok(mut rd) = nix::dir::Dir::open(
                &d,
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
                nix::sys::stat::Mode::empty(),
            ) else {
                continue;
            };
            for e in rd.iter().flatten() {
                let name = e.file_name().to_bytes();
                if is_lockfile_name(name) {
                    files.insert(d.join(std::ffi::OsStr::from_bytes(name)));
                }
            }
        }
        for p in &self.patterns {
            files.extend(crate::pipeline::lockfiles::expand(&self.root, p).unwrap_or_default());
        }
        let mut out = BTreeMap::new();
        for f in files {
            if f.is_file()
                && let Ok((h, _)) = hash_file(&f)
            {
                out.insert(relative(&self.root, &f), h);
            }
        }
        out
    }
}

/// `path` relative to `root`, with `..` for the part above it.
fn relative(root: &Path, path: &Path) -> String {
    use std::path::Component;
    fn clean(p: &Path) -> Vec<Component<'_>> {
        p.components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect()
    }
    let (r, p) = (clean(root), clean(path));
    let common = r.iter().zip(&p).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..r.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    out.to_string_lossy().into_owned()
}

fn find_in_path(prog: &str, path_var: Option<&str>) -> Option<PathBuf> {
    if prog.contains('/') {
        return Some(PathBuf::from(prog));
    }
    std::env::split_paths(path_var?)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Interpreter versions, asked once per program per run, and their installed packages (see
/// `packages`).
#[derive(Default)]
pub struct InterpreterCache {
    seen: Mutex<BTreeMap<String, Option<String>>>,
    packages: PackageCache,
}

impl InterpreterCache {
    /// With the package scans the store remembers from earlier runs.
    pub fn with_scans(known: Vec<CachedScan>) -> Self {
        InterpreterCache {
            seen: Mutex::default(),
            packages: PackageCache::new(known),
        }
    }

    /// The packages of the interpreters among `programs` (see `packages::PackageCache`).
    pub fn packages(
        &self,
        programs: &[String],
        cwd: &Path,
        vars: &BTreeMap<String, String>,
    ) -> Installed {
        Installed(self.packages.inspect(programs, cwd, vars))
    }

    /// `program → "Python 3.11.7 (/usr/bin/python3)"` for the interpreters among `programs`.
    pub fn versions(
        &self,
        programs: &[String],
        cwd: &Path,
        path_var: Option<&str>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for p in programs.iter().filter(|p| is_interpreter(p)) {
            if let Some(v) = self.seen.lock().expect("cache lock").get(p) {
                if let Some(v) = v {
                    out.insert(p.clone(), v.clone());
                }
                continue;
            }
            let v = ask_version(p, cwd, path_var);
            self.seen
                .lock()
                .expect("cache lock")
                .insert(p.clone(), v.clone());
            if let Some(v) = v {
                out.insert(p.clone(), v);
            }
        }
        out
    }
}

fn ask_version(prog: &str, cwd: &Path, path_var: Option<&str>) -> Option<String> {
    let resolved = find_in_path(prog, path_var)?;
    let flag = if prog.ends_with("java") {
        "-version"
    } else {
        "--version"
    };
    let out = std::process::Command::new(&resolved)
        .arg(flag)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let first = String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    Some(format!("{first} ({})", resolved.display()))
}

/// What a step's environment was: the machine, interpreters, lock files and variables.
/// Content-addressed, so identical environments are stored once.
#[derive(Debug, Clone, Serialize)]
pub struct EnvSnapshot {
    pub system: SystemInfo,
    pub interpreters: BTreeMap<String, String>,
    pub lockfiles: BTreeMap<String, String>,
    /// redacted
    pub vars: BTreeMap<String, String>,
    /// program → its environment and installed packages (none: no such interpreter)
    #[serde(skip_serializing_if = "Installed::is_empty")]
    pub packages: Installed,
}

/// The environments of a step's interpreters. Serialised as program → `PackageEnv` (which names
/// the package list by hash); the lists read from disk and the scans to remember travel along
/// for the store.
#[derive(Debug, Clone, Default)]
pub struct Installed(pub BTreeMap<String, Inspected>);

impl Installed {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Installed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, &v.env)?;
        }
        m.end()
    }
}

impl EnvSnapshot {
    pub fn id(&self) -> String {
        super::hash::sha256_bytes(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }
}

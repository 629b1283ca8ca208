//! The machine and software a step ran on: OS, kernel, CPU, memory, host, user, the versions of
//! the interpreters its command calls, and the hashes of the project's lock/requirements files.
//! Everything here is cheap to read (targeted sysinfo getters, one `--version` per interpreter
//! per run), because it is taken for every run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::hash::hash_file;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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
pub fn user_name() -> String {
    let uid = nix::unistd::getuid();
    std::env::var("USER")
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
            hostname: System::host_name().unwrap_or_default(),
            user,
            mlrun_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Lock and requirements files whose hash says which packages a project uses.
const LOCKFILES: &[&str] = &[
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "environment.yml",
    "environment.yaml",
    "conda-lock.yml",
    "Cargo.lock",
    "package-lock.json",
    "renv.lock",
];

/// name → sha256 of every lock/requirements file at the top of the project.
pub fn lockfiles(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let wanted = LOCKFILES.contains(&name.as_str())
            || (name.starts_with("requirements") && name.ends_with(".txt"));
        if wanted
            && e.file_type().is_ok_and(|t| t.is_file())
            && let Ok((h, _)) = hash_file(&e.path())
        {
            out.insert(name, h);
        }
    }
    out
}

/// Programs whose version is worth recording when a command calls them.
fn is_interpreter(name: &str) -> bool {
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

fn find_in_path(prog: &str, path_var: Option<&str>) -> Option<PathBuf> {
    if prog.contains('/') {
        return Some(PathBuf::from(prog));
    }
    std::env::split_paths(path_var?)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Interpreter versions, asked once per program per run.
#[derive(Default)]
pub struct InterpreterCache {
    seen: Mutex<BTreeMap<String, Option<String>>>,
}

impl InterpreterCache {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_are_recognised_by_name() {
        assert!(is_interpreter("python3"));
        assert!(is_interpreter("/usr/bin/python3.11"));
        assert!(is_interpreter("Rscript"));
        assert!(!is_interpreter("cp"));
        assert!(!is_interpreter("sh"));
    }
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
}

impl EnvSnapshot {
    pub fn id(&self) -> String {
        super::hash::sha256_bytes(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }
}

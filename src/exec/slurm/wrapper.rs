//! The job step on the node: `mlrun __job-step JOBDIR`, the batch script's only command. It
//! reads what to run from `JOBDIR/spec.json`, runs it (output goes where `sbatch --output` /
//! `--error` sent the job's), records the node's own environment in `JOBDIR/node.json` meanwhile,
//! and last the exit status in `JOBDIR/status.json`: each written to a temporary name and renamed,
//! so mlrun never reads half a file on the shared filesystem.
//!
//! Slurm signals every process of a job it cancels or times out; the wrapper outlives the step's
//! main process to say how it ended (SIGKILL, after Slurm's `KillWait`, ends both: then there is
//! no status file and mlrun goes by the job's state).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fingerprint::system::{InterpreterCache, SystemInfo};

pub const ARG: &str = "__job-step";

/// What the job runs (written by mlrun before submitting).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpecFile {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// programs whose interpreter versions are recorded (`Cmd::programs`)
    pub programs: Vec<String>,
}

/// The node's environment, as the job saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeEnv {
    pub system: Option<SystemInfo>,
    pub interpreters: BTreeMap<String, String>,
    /// GPUs the job was given (Slurm's or CUDA's list), empty when none
    pub gpus: Vec<String>,
}

/// How the step's process ended, by the node's clock.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitStatus {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub started_at: i64,
    pub ended_at: i64,
}

pub const SPEC: &str = "spec.json";
pub const NODE: &str = "node.json";
pub const STATUS: &str = "status.json";

/// Write `data` as `dir/name` atomically (a temporary name, synced, renamed), readable by its
/// owner only (the spec holds the command, which may hold a secret).
pub fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))
}

/// The GPUs a job sees: Slurm's allocation, else what CUDA is told.
fn gpus_seen() -> Vec<String> {
    ["SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default()
}

/// The wrapper's entry point (arguments after `ARG`). Returns the exit code of the job script.
pub fn main(args: &[std::ffi::OsString]) -> i32 {
    let [dir] = args else {
        eprintln!("error: usage: mlrun {ARG} JOBDIR (internal)");
        return crate::error::exit::INVALID;
    };
    let dir = PathBuf::from(dir);
    let spec: JobSpecFile = match std::fs::read(dir.join(SPEC))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "mlrun: cannot read the job's spec {}: {e}",
                dir.join(SPEC).display()
            );
            return crate::error::exit::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mlrun: cannot start the job step: {e}");
            return crate::error::exit::FAILURE;
        }
    };
    runtime.block_on(run(dir, spec))
}

async fn run(dir: PathBuf, spec: JobSpecFile) -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    // Slurm's signals reach the step's processes directly; the wrapper waits to record the end.
    let _term = signal(SignalKind::terminate());
    let _int = signal(SignalKind::interrupt());
    let _hup = signal(SignalKind::hangup());
    let started_at = crate::store::record::now_ms();
    let Some((prog, args)) = spec.argv.split_first() else {
        eprintln!("mlrun: the job has no command");
        return crate::error::exit::FAILURE;
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .current_dir(&spec.cwd)
        .stdin(std::process::Stdio::null())
        .spawn();
    // the node's environment, taken while the step runs
    let node_dir = dir.clone();
    let programs = spec.programs.clone();
    let cwd = spec.cwd.clone();
    let node = std::thread::spawn(move || {
        let path = std::env::var("PATH").ok();
        let env = NodeEnv {
            system: Some(SystemInfo::read()),
            interpreters: InterpreterCache::default().versions(&programs, &cwd, path.as_deref()),
            gpus: gpus_seen(),
        };
        let json = serde_json::to_vec(&env).unwrap_or_default();
        if let Err(e) = write_atomic(&node_dir, NODE, &json) {
            eprintln!("mlrun: cannot record the node's environment: {e}");
        }
    });
    let (exit_code, signal) = match child {
        Ok(mut c) => match c.wait().await {
            Ok(s) => super::super::unix::exit_parts(s),
            Err(e) => {
                eprintln!("mlrun: waiting for the step failed: {e}");
                (crate::error::exit::FAILURE, None)
            }
        },
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                "not found on PATH (install it or use its full path)".to_string()
            } else {
                e.to_string()
            };
            eprintln!("mlrun: could not start `{prog}` on the node: {why}");
            (127, None)
        }
    };
    let ended_at = crate::store::record::now_ms();
    let _ = node.join();
    let status = ExitStatus {
        exit_code,
        signal,
        started_at,
        ended_at,
    };
    let json = serde_json::to_vec(&status).unwrap_or_default();
    if let Err(e) = write_atomic(&dir, STATUS, &json) {
        eprintln!(
            "mlrun: cannot write the exit status {}: {e}",
            dir.join(STATUS).display()
        );
        return crate::error::exit::FAILURE;
    }
    exit_code
}

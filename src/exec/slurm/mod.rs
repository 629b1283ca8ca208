//! The Slurm executor: a step submitted as a job (`sbatch --parsable`), run on a node by the job
//! step wrapper (`mlrun __job-step`, `wrapper`), watched until it ends (`poll`: `squeue`, with
//! backoff), its output followed live (`follow`). What comes back is what a local step's process
//! gives (`ChildOutcome`), plus the job's record (`JobRecord`) and, when the cluster ended the
//! job for its own reasons, the status and reason to record instead of an exit code.
//!
//! Where things are: the job's directory is in the run's scratch space in the store
//! (`.mlrun/tmp/RUN/slurm/STEP.ATTEMPT/`), which is on the filesystem the nodes share with the
//! project: `spec.json` (what to run), `job.sh` (the batch script), `stdout`, `stderr`,
//! `node.json`, `status.json` (written by the wrapper).

mod end;
pub mod follow;
pub mod poll;
pub mod wrapper;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use super::capture::LogSink;
use super::child::{ChildOutcome, ChildSpec, Interrupt};
use super::event::Sinks;
use super::output::Stream;
use crate::error::{Error, Result};
use crate::pipeline::plan::Resources;
use crate::store::jobs::JobRecord;
use crate::store::record::{StepStatus, now_ms};
use wrapper::NodeEnv;

/// How long to wait for the wrapper's exit-status file once the scheduler says the job is over
/// (a shared filesystem may show it late), unless `MLRUN_SLURM_STATUS_WAIT` says otherwise.
const STATUS_WAIT: Duration = Duration::from_secs(30);
/// How long the scheduler may stay unreachable, or not know a job whose status file has not
/// appeared, before the step fails instead of waiting on.
const LOST_WAIT: Duration = Duration::from_secs(300);

fn status_wait() -> Duration {
    std::env::var("MLRUN_SLURM_STATUS_WAIT")
        .ok()
        .and_then(|s| crate::pipeline::duration::parse(&s).ok())
        .unwrap_or(STATUS_WAIT)
}

/// One job to run: the step's process as a local run would start it, and the job's resources.
pub struct JobSpec<'a> {
    pub child: &'a ChildSpec<'a>,
    pub resources: &'a Resources,
    pub programs: Vec<String>,
    /// the job's directory (created here)
    pub dir: PathBuf,
    pub job_name: String,
}

/// How a job ended.
pub struct JobOutcome {
    /// as a local process's end: exit code and logs (the exit code of the wrapper's record)
    pub child: ChildOutcome,
    pub job: JobRecord,
    /// the status and reason to record when the step did not end by exiting (time limit, the
    /// cluster's reasons, interrupt, a missing exit status)
    pub stopped: Option<(StepStatus, String)>,
    pub node: Option<NodeEnv>,
}

/// The `sbatch` arguments for `spec` (before the batch script).
fn sbatch_args(spec: &JobSpec<'_>) -> Vec<String> {
    let r = spec.resources;
    let dir = spec.dir.display();
    let mut a = vec![
        "--parsable".to_string(),
        format!("--job-name={}", spec.job_name),
        format!("--output={dir}/stdout"),
        format!("--error={dir}/stderr"),
        format!("--chdir={}", spec.child.cwd.display()),
        "--export=ALL".into(),
        // a job whose node fails is the step's failure (and `retries` applies), not requeued
        // behind mlrun's back
        "--no-requeue".into(),
    ];
    if let Some(c) = r.cpus {
        a.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &r.mem {
        a.push(format!("--mem={m}"));
    }
    if let Some(g) = &r.gpus {
        a.push(format!("--gpus={g}"));
    }
    // Slurm's time limit is in whole minutes: the shorter of `time` and `timeout`, rounded up
    // (mlrun ends the job at the exact `timeout` itself)
    let limit = match (r.time(), spec.child.timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(t) = limit {
        a.push(format!("--time={}", t.as_secs().div_ceil(60).max(1)));
    }
    if let Some(p) = &r.partition {
        a.push(format!("--partition={p}"));
    }
    if let Some(acc) = &r.account {
        a.push(format!("--account={acc}"));
    }
    a.extend(r.sbatch_args.iter().cloned());
    a
}

/// Write the job's files and submit it: the job id, or why it could not be submitted (with
/// Slurm's own message).
async fn submit(spec: &JobSpec<'_>) -> Result<String> {
    let fail = |why: String| {
        Error::other(format!(
            "could not submit step `{}` to Slurm: {why}",
            spec.child.step
        ))
    };
    std::fs::create_dir_all(&spec.dir)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&spec.dir, std::fs::Permissions::from_mode(0o700))
        })
        .map_err(|e| fail(format!("cannot create {}: {e}", spec.dir.display())))?;
    let file = wrapper::JobSpecFile {
        argv: spec.child.argv.to_vec(),
        cwd: spec.child.cwd.to_path_buf(),
        programs: spec.programs.clone(),
    };
    let json = serde_json::to_vec(&file).unwrap_or_default();
    wrapper::write_atomic(&spec.dir, wrapper::SPEC, &json)
        .map_err(|e| fail(format!("cannot write the job's spec: {e}")))?;
    let exe = std::env::current_exe()
        .map_err(|e| fail(format!("cannot find mlrun's own executable: {e}")))?;
    let script = format!(
        "#!/bin/sh\n# written by mlrun: runs step `{}` through its job step wrapper\nexec {} {} {}\n",
        spec.child.step,
        sh_quote(&exe.to_string_lossy()),
        wrapper::ARG,
        sh_quote(&spec.dir.to_string_lossy()),
    );
    let script_path = spec.dir.join("job.sh");
    wrapper::write_atomic(&spec.dir, "job.sh", script.as_bytes())
        .map_err(|e| fail(format!("cannot write the batch script: {e}")))?;
    let out = tokio::process::Command::new("sbatch")
        .args(sbatch_args(spec))
        .arg(&script_path)
        .envs(spec.child.env)
        .current_dir(spec.child.cwd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(120), out).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(
                "`sbatch` is not on PATH (install Slurm's client commands, or run the step here with `--executor local`)".into(),
            ));
        }
        Ok(Err(e)) => return Err(fail(format!("cannot run `sbatch`: {e}"))),
        Err(_) => return Err(fail("`sbatch` did not answer within 120 s".into())),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        let msg = if stderr.is_empty() {
            format!("`sbatch` failed ({})", out.status)
        } else {
            // Slurm's own words, one line each
            stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(fail(msg));
    }
    // `--parsable`: `ID` or `ID;CLUSTER`
    let id = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .and_then(|l| l.split(';').next())
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '_'))
        .map(str::to_string);
    id.ok_or_else(|| fail(format!("`sbatch` answered no job id: {:?}", stdout.trim())))
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `scancel JOB` (best effort: a job that already ended needs nothing).
async fn cancel(job: &str) -> std::result::Result<(), String> {
    let out = tokio::process::Command::new("scancel")
        .arg(job)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run `scancel`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `mlrun cancel`: cancel these jobs; per job, `None` or what scancel said.
pub fn cancel_jobs(jobs: &[String]) -> Vec<(String, Option<String>)> {
    jobs.iter()
        .map(|j| {
            let out = std::process::Command::new("scancel")
                .arg(j)
                .stdin(std::process::Stdio::null())
                .output();
            let err = match out {
                Ok(o) if o.status.success() => None,
                Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Some("`scancel` is not on PATH".into())
                }
                Err(e) => Some(format!("cannot run `scancel`: {e}")),
            };
            (j.clone(), err)
        })
        .collect()
}

/// What the wrapper left in `dir/name`: Ok(None) while there is no such file.
fn read_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> std::result::Result<Option<T>, String> {
    match std::fs::read(dir.join(name)) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("{} is unreadable: {e}", dir.join(name).display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{} is unreadable: {e}", dir.join(name).display())),
    }
}

/// Submit the job, follow it to its end and say how it ended. `submitted` is told the job id as
/// soon as there is one (to record it before anything else can happen). Err: it could not be
/// submitted.
pub async fn run(
    spec: &JobSpec<'_>,
    events: &Sinks,
    interrupt: watch::Receiver<Interrupt>,
    submitted: impl FnOnce(&str, i64),
) -> Result<JobOutcome> {
    let step = spec.child.step;
    let job_id = submit(spec).await?;
    let submitted_at = now_ms();
    submitted(&job_id, submitted_at);
    let (done_tx, done_rx) = watch::channel(false);
    let follower = |name: &str, stream: Stream| follow::Follow {
        path: spec.dir.join(name),
        stream,
        step: step.to_string(),
        secrets: spec.child.secrets.to_vec(),
        events: events.clone(),
        sink: LogSink::new(
            spec.child.log_dir,
            if name == "stdout" { "stdout" } else { "stderr" },
        ),
    };
    let out = tokio::spawn(follower("stdout", Stream::Stdout).run(done_rx.clone()));
    let err = tokio::spawn(follower("stderr", Stream::Stderr).run(done_rx));

    let ended = end::wait(spec, &job_id, interrupt).await;
    let _ = done_tx.send(true);
    let stdout = out.await.unwrap_or_default();
    let stderr = err.await.unwrap_or_default();
    let node: Option<NodeEnv> = read_json(&spec.dir, wrapper::NODE).ok().flatten();
    let exit = ended.status.as_ref().ok().copied().flatten();
    let mut job = end::job_record(
        &job_id,
        submitted_at,
        ended.last.as_ref(),
        node.as_ref(),
        exit,
    );
    let stop = end::how_it_stopped(spec, &job_id, &ended, &mut job);
    let (exit_code, signal) = exit.map_or((crate::error::exit::FAILURE, None), |e| {
        (e.exit_code, e.signal)
    });
    Ok(JobOutcome {
        child: ChildOutcome {
            exit_code,
            signal,
            interrupted: None,
            timed_out: false,
            stdout,
            stderr,
        },
        job,
        stopped: stop,
        node,
    })
}

/// What running a step as a job gives `step`: the process's end as a local run's, the status and
/// reason when the job did not end by exiting, and the node's environment.
pub(in crate::exec) struct Ran {
    pub outcome: Result<ChildOutcome>,
    pub stopped: Option<(StepStatus, String)>,
    pub node: Option<NodeEnv>,
}

/// Run one attempt of `step` as a Slurm job, recording the job id as soon as it is known and
/// the job's end (node, times, state) when it is over.
pub(in crate::exec) async fn run_step(
    ctx: &std::sync::Arc<super::Ctx>,
    exec_id: i64,
    child: &ChildSpec<'_>,
    step: &crate::pipeline::Step,
    attempt: u32,
) -> Ran {
    let spec = JobSpec {
        child,
        resources: &step.resources,
        programs: step.cmd.programs(),
        dir: ctx
            .tmp
            .join("slurm")
            .join(format!("{}.{attempt}", step.name)),
        job_name: format!("mlrun:{}", step.name),
    };
    let c = ctx.clone();
    let name = step.name.clone();
    let submitted = move |job: &str, at: i64| {
        if let Err(e) = c.with_store(|s| s.job_submitted(exec_id, "slurm", job, at)) {
            c.events.warn(&format!("{name}: job {job}: {}", e.message));
        }
    };
    // interrupted while its inputs were hashed: nothing is submitted
    let pending = *ctx.interrupt.borrow();
    if let Interrupt::Graceful(sig) | Interrupt::Kill(sig) = pending {
        return Ran {
            outcome: Ok(ChildOutcome {
                exit_code: 128 + sig,
                signal: None,
                interrupted: Some(sig),
                timed_out: false,
                stdout: Default::default(),
                stderr: Default::default(),
            }),
            stopped: Some((
                StepStatus::Interrupted,
                format!(
                    "interrupted by {} before its job was submitted",
                    super::unix::signal_name(sig)
                ),
            )),
            node: None,
        };
    }
    match run(&spec, &ctx.events, ctx.interrupt.clone(), submitted).await {
        Err(e) => Ran {
            outcome: Err(e),
            stopped: None,
            node: None,
        },
        Ok(j) => {
            if let Err(e) = ctx.with_store(|s| s.job_ended(exec_id, &j.job)) {
                ctx.events.warn(&format!(
                    "{}: job {}: {}",
                    step.name, j.job.job_id, e.message
                ));
            }
            Ran {
                outcome: Ok(j.child),
                stopped: j.stopped,
                node: j.node,
            }
        }
    }
}

/// The environment recorded for a step that ran as a job: the node's machine and interpreter
/// versions, as the wrapper saw them (packages are read from the shared filesystem by mlrun).
pub(in crate::exec) fn on_node(env: &mut crate::fingerprint::system::EnvSnapshot, node: NodeEnv) {
    if let Some(system) = node.system {
        env.system = system;
    }
    if !node.interpreters.is_empty() {
        env.interpreters = node.interpreters;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_become_sbatch_options_and_the_time_limit_is_whole_minutes() {
        let env = std::collections::BTreeMap::new();
        let argv = vec!["true".to_string()];
        let child = ChildSpec {
            step: "train",
            argv: &argv,
            cwd: Path::new("/p"),
            env: &env,
            secrets: &[],
            log_dir: Path::new("/tmp"),
            grace: Duration::from_secs(10),
            timeout: Some(Duration::from_secs(90)),
        };
        let resources = Resources {
            cpus: Some(4),
            mem: Some("16G".into()),
            gpus: Some("a100:2".into()),
            time_ms: Some(3_600_000),
            partition: Some("gpu".into()),
            account: Some("ml".into()),
            sbatch_args: vec!["--qos=long".into()],
        };
        let spec = JobSpec {
            child: &child,
            resources: &resources,
            programs: Vec::new(),
            dir: PathBuf::from("/p/.mlrun/tmp/r/slurm/train.1"),
            job_name: "mlrun:train".into(),
        };
        let a = sbatch_args(&spec);
        for want in [
            "--parsable",
            "--no-requeue",
            "--output=/p/.mlrun/tmp/r/slurm/train.1/stdout",
            "--chdir=/p",
            "--cpus-per-task=4",
            "--mem=16G",
            "--gpus=a100:2",
            // the shorter of `time` (1h) and `timeout` (90 s), rounded up to minutes
            "--time=2",
            "--partition=gpu",
            "--account=ml",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} not in {a:?}");
        }
        // the user's own options come last, so they win
        assert_eq!(a.last().unwrap(), "--qos=long");
    }
}

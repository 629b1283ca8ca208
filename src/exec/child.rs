//! One step's process: spawned in its own process group with stdin closed, stdout and stderr
//! drained concurrently (a full pipe would otherwise block the child), streamed live line by
//! line and captured in full in bounded memory (`capture`: a long log goes to a file). Interrupts reach the whole group: SIGTERM, then SIGKILL after the
//! grace period (or at once on a second interrupt).
//!
//! Rule for leftovers: when the step's main process exits, anything it left running in its
//! process group is sent SIGTERM, and SIGKILL if it still holds the output pipes 2 s later.
//!
//! If mlrun itself dies meanwhile, the group is stopped by the watchdog (`unix::watchdog`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::capture::{LogCapture, LogSink};
use tokio::process::Command;
use tokio::sync::watch;

use super::event::{Event, Sinks};
use super::output::Stream;
use super::unix;
use crate::error::{Error, Result};

/// What the user asked for by signalling mlrun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    None,
    /// stop gracefully: SIGTERM to steps, SIGKILL after the grace period; holds the signal number
    Graceful(i32),
    /// second interrupt: SIGKILL now
    Kill(i32),
}

pub struct ChildSpec<'a> {
    pub step: &'a str,
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    pub secrets: &'a [String],
    /// where a log too long to keep in memory is written while the step runs
    pub log_dir: &'a Path,
    pub grace: Duration,
    pub timeout: Option<Duration>,
}

pub struct ChildOutcome {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// the process was stopped because mlrun was interrupted
    pub interrupted: Option<i32>,
    /// the process was stopped because it ran past its timeout
    pub timed_out: bool,
    pub stdout: LogCapture,
    pub stderr: LogCapture,
}

/// Why a step that exited with `code` failed, in words. A shell string whose program the shell
/// could not find exits 127 after printing `sh: 1: prog: not found`: that is said as the argv
/// form says it (`could not start …`), not only as an exit code.
pub fn exit_reason(cmd: &crate::pipeline::plan::Cmd, code: i32, stderr: &[u8]) -> String {
    static NOT_FOUND: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        // dash: `sh: 1: prog: not found`; bash: `sh: prog: command not found`,
        // `bash: line 1: prog: command not found`
        regex::Regex::new(r"(?m)^\S*sh: (?:line )?(?:\d+: )?(.+?): (?:command )?not found\s*$")
            .expect("a valid regex")
    });
    let exited = format!("exited with code {code}");
    if code != 127 || !matches!(cmd, crate::pipeline::plan::Cmd::Shell(_)) {
        return exited;
    }
    let text = String::from_utf8_lossy(stderr);
    match NOT_FOUND.captures_iter(&text).last() {
        Some(c) => format!(
            "could not start `{}`: not found on PATH (install it or use its full path); the shell {exited}",
            &c[1]
        ),
        None => exited,
    }
}

const LEFTOVER_GRACE: Duration = Duration::from_secs(2);

pub async fn run(
    spec: &ChildSpec<'_>,
    events: &Sinks,
    interrupt: watch::Receiver<Interrupt>,
) -> Result<ChildOutcome> {
    let mut child = spawn(spec)?;
    let pgid = child.id().unwrap_or(0);
    // if mlrun dies from here on, the watchdog stops the group (see `unix`)
    let watched = unix::watchdog::watch(pgid, spec.grace);
    let mut pipes = Pipes::drain(&mut child, spec, events);
    let Waited {
        status,
        interrupted,
        timed_out,
    } = wait(&mut child, pgid, spec, interrupt).await?;

    // The main process is gone: stop whatever it left behind in its group.
    unix::terminate_group(pgid);
    pipes.close(pgid).await;
    watched.finish();
    let (exit_code, signal) = unix::exit_parts(status);
    let (stdout, stderr) = pipes.logs();
    Ok(ChildOutcome {
        exit_code,
        signal,
        interrupted,
        timed_out: timed_out && interrupted.is_none(),
        stdout,
        stderr,
    })
}

/// Start the step's program in a process group of its own, its output piped.
fn spawn(spec: &ChildSpec<'_>) -> Result<tokio::process::Child> {
    let (prog, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| Error::other("empty command"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(spec.cwd)
        .envs(spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd.spawn().map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            "not found on PATH (install it or use its full path)".to_string()
        } else {
            e.to_string()
        };
        Error::other(format!("could not start `{prog}`: {why}"))
    })
}

/// The child's stdout and stderr, each drained by a task of its own into a log sink.
struct Pipes {
    readers: tokio::task::JoinSet<()>,
    out_buf: Arc<Mutex<Option<LogSink>>>,
    err_buf: Arc<Mutex<Option<LogSink>>>,
}

impl Pipes {
    fn drain(child: &mut tokio::process::Child, spec: &ChildSpec<'_>, events: &Sinks) -> Pipes {
        let out_buf = Arc::new(Mutex::new(Some(LogSink::new(spec.log_dir, "stdout"))));
        let err_buf = Arc::new(Mutex::new(Some(LogSink::new(spec.log_dir, "stderr"))));
        let mut readers = tokio::task::JoinSet::new();
        if let Some(out) = child.stdout.take() {
            readers.spawn(drain(
                out,
                Stream::Stdout,
                spec.step.to_string(),
                spec.secrets.to_vec(),
                events.clone(),
                out_buf.clone(),
            ));
        }
        if let Some(err) = child.stderr.take() {
            readers.spawn(drain(
                err,
                Stream::Stderr,
                spec.step.to_string(),
                spec.secrets.to_vec(),
                events.clone(),
                err_buf.clone(),
            ));
        }
        Pipes {
            readers,
            out_buf,
            err_buf,
        }
    }

    /// Wait for the pipes to close: what the group left behind gets LEFTOVER_GRACE, then is
    /// killed, and readers still going after that are stopped.
    async fn close(&mut self, pgid: u32) {
        let readers = &mut self.readers;
        let drained = tokio::time::timeout(LEFTOVER_GRACE, async {
            while readers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            unix::kill_group(pgid);
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while readers.join_next().await.is_some() {}
            })
            .await;
            readers.abort_all();
        }
    }

    /// What was captured of each stream.
    fn logs(self) -> (LogCapture, LogCapture) {
        // (a drain task aborted in `close` may still hold its handle: the sink is taken out of it)
        let take = |b: &Arc<Mutex<Option<LogSink>>>| {
            b.lock()
                .expect("log sink")
                .take()
                .map(LogSink::finish)
                .unwrap_or_default()
        };
        (take(&self.out_buf), take(&self.err_buf))
    }
}

/// How the child's wait ended.
struct Waited {
    status: std::process::ExitStatus,
    /// the signal of an interrupt that stopped it
    interrupted: Option<i32>,
    /// its timeout passed (and it was stopped for it)
    timed_out: bool,
}

/// Wait for the child to exit, stopping its group on an interrupt (SIGTERM, then SIGKILL after
/// the grace period; at once on a second one) or when its timeout passes.
async fn wait(
    child: &mut tokio::process::Child,
    pgid: u32,
    spec: &ChildSpec<'_>,
    mut interrupt: watch::Receiver<Interrupt>,
) -> Result<Waited> {
    let mut interrupted = None;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut timed_out = false;
    // an interrupt that arrived before this step started
    let pending = *interrupt.borrow_and_update();
    if pending != Interrupt::None {
        unix::kill_group(pgid);
    }
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            changed = interrupt.changed(), if interrupted.is_none() || kill_at.is_some() => {
                if changed.is_err() { continue; }
                match *interrupt.borrow() {
                    Interrupt::None => {}
                    Interrupt::Graceful(sig) => {
                        interrupted = Some(sig);
                        unix::terminate_group(pgid);
                        kill_at = Some(tokio::time::Instant::now() + spec.grace);
                    }
                    Interrupt::Kill(sig) => {
                        interrupted = Some(sig);
                        unix::kill_group(pgid);
                        kill_at = None;
                    }
                }
            }
            _ = async { tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)).await }, if kill_at.is_some() => {
                unix::kill_group(pgid);
                kill_at = None;
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() && !timed_out && interrupted.is_none() => {
                timed_out = true;
                unix::terminate_group(pgid);
                kill_at = Some(tokio::time::Instant::now() + spec.grace);
            }
        }
    };
    let status = status
        .map_err(|e| Error::other(format!("waiting for step `{}` failed", spec.step)).cause(e))?;
    if pending != Interrupt::None {
        interrupted = Some(match pending {
            Interrupt::Graceful(s) | Interrupt::Kill(s) => s,
            Interrupt::None => 0,
        });
    }

    Ok(Waited {
        status,
        interrupted,
        timed_out,
    })
}

async fn drain<R: AsyncRead + Unpin>(
    reader: R,
    stream: Stream,
    step: String,
    secrets: Vec<String>,
    events: Sinks,
    sink: Arc<Mutex<Option<LogSink>>>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut lines = super::capture::Lines::new(&secrets);
    // one masker per stream (a private key block spans lines); each line is masked before it is
    // shown or written anywhere
    let mut masker = crate::fingerprint::env::Masker::new(&secrets);
    let mut take = |line: &[u8]| {
        let masked = masker.bytes(line);
        let text = String::from_utf8_lossy(&masked);
        events.emit(&Event::Output {
            step: &step,
            stream,
            line: text.trim_end_matches(['\n', '\r']),
        });
        if let Some(s) = sink.lock().expect("log sink").as_mut() {
            s.write(&masked);
        }
    };
    loop {
        let data = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(data) => data,
        };
        let n = data.len();
        lines.push(data, &secrets, &mut take);
        reader.consume(n);
    }
    lines.finish(&mut take);
}

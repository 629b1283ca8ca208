//! `show --logs`: a step's recorded output, whole, made safe for a terminal.

use std::io::{IsTerminal, Read, Write};

use crate::cmd::target::Target;
use crate::error::{Error, Result};
use crate::exec::capture::Lines;
use crate::report::Role;
use crate::report::{self, Style};
use crate::store::Store;
use crate::store::logs::LogObjects;
use crate::store::query::{self};

/// Where `show` writes: stdout, buffered; a closed pipe (`| head`) ends the output quietly.
/// Log bytes go out as recorded, except to a terminal, where they are made safe to look at
/// (`terminal_safe`): a log replayed raw could move the cursor, recolour or retitle the
/// terminal, or hide lines.
pub(super) struct Out {
    w: std::io::BufWriter<std::io::Stdout>,
    closed: bool,
    terminal: bool,
}

impl Out {
    pub(super) fn stdout() -> Out {
        Out {
            w: std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout()),
            closed: false,
            terminal: std::io::stdout().is_terminal(),
        }
    }

    pub(super) fn text(&mut self, s: &str) {
        self.raw(s.as_bytes());
    }

    pub(super) fn raw(&mut self, b: &[u8]) {
        if !self.closed && self.w.write_all(b).is_err() {
            self.closed = true;
        }
    }

    /// A log, from `r`, in constant memory.
    pub(super) fn log(&mut self, mut r: impl Read) -> std::io::Result<()> {
        let mut lines = Lines::new(&[]);
        let mut buf = vec![0u8; 256 * 1024];
        while !self.closed {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if self.terminal {
                lines.push(&buf[..n], &[], |l| self.text(&terminal_safe(l)));
            } else {
                self.raw(&buf[..n]);
            }
        }
        lines.finish(|l| self.text(&terminal_safe(l)));
        Ok(())
    }

    pub(super) fn finish(mut self) {
        let _ = self.w.flush();
    }
}

/// A log's bytes as a terminal can show them without obeying them: control characters in
/// caret notation (ESC as `^[`, as `cat -v` does), C1 controls as `\u{9b}`, invalid UTF-8 as
/// U+FFFD; tabs and newlines kept. A line redrawn with carriage returns (a progress bar) shows
/// its last state, as it did on the terminal it was printed to.
pub(super) fn terminal_safe(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let (body, newline) = match text.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (&*text, ""),
    };
    let body = body.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
    let mut out = String::with_capacity(body.len() + 1);
    for c in body.chars() {
        match c {
            '\t' => out.push(c),
            '\u{7f}' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c if ('\u{80}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push_str(newline);
    out
}

/// One recorded stream: whole, or its head, a line saying what was cut and where the whole
/// log is, and its tail; with `full`, the whole log from the object store.
pub(super) fn print_log(
    out: &mut Out,
    objects: &LogObjects,
    data: &query::StepLogData,
    full: bool,
    name: &str,
    style: &Style,
) -> Result<()> {
    let Some(hash) = &data.full_hash else {
        return out
            .log(&data.head[..])
            .map_err(|e| Error::other("cannot print the log").cause(e));
    };
    if full && data.stored {
        return out.log(objects.open(hash)?).map_err(|e| {
            Error::other(format!("the whole log of `{name}` cannot be read"))
                .cause(e)
                .hint("`mlrun fsck` checks every stored log")
        });
    }
    let tail = data.tail.as_deref().unwrap_or_default();
    out.log(&data.head[..])
        .map_err(|e| Error::other("cannot print the log").cause(e))?;
    if !data.head.ends_with(b"\n") {
        out.text("\n");
    }
    let cut = (data.bytes - data.head.len() as i64 - tail.len() as i64).max(0) as u64;
    let whole = if data.stored && objects.has(hash) {
        format!(
            "the whole log ({}) is object sha256:{hash}; `mlrun show {name} --logs --full` prints it",
            report::size(data.bytes as u64)
        )
    } else {
        format!(
            "the whole log (sha256:{hash}) is not in the store: it could not be kept, or `mlrun gc` deleted it"
        )
    };
    out.text(&format!(
        "{}\n",
        style.paint(
            Role::Muted,
            &format!("… {} cut: {whole}", report::size(cut))
        )
    ));
    out.log(tail)
        .map_err(|e| Error::other("cannot print the log").cause(e))
}

/// `show RUN:STEP --log STREAM`: that stream's bytes and nothing else.
pub(super) fn one_log(store: &Store, target: Target, stream: &str) -> Result<i32> {
    let (exec_id, name) = match target {
        Target::Exec {
            run_id,
            step,
            exec_id,
        } => (exec_id, format!("{}:{step}", store.short_id(&run_id)?)),
        Target::Run(run_id) => {
            let short = store.short_id(&run_id)?;
            let steps = store.steps_of(&run_id)?;
            match steps.as_slice() {
                [only] => (
                    store.exec_of(&run_id, only)?.unwrap_or_default(),
                    format!("{short}:{only}"),
                ),
                _ => {
                    return Err(Error::other(format!(
                        "--log prints one step's log, and run {short} has {} steps",
                        steps.len()
                    ))
                    .hint(format!(
                        "name the step: `mlrun show {short}:STEP --log {stream}` ({})",
                        steps.join(", ")
                    )));
                }
            }
        }
        Target::Version(..) | Target::File(..) => {
            return Err(
                Error::other("--log needs a step execution (RUN:STEP), not an artifact")
                    .hint("`mlrun show PATH` names the run and step that made it"),
            );
        }
    };
    let data = store.step_log(exec_id, stream)?;
    let mut out = Out::stdout();
    let objects = LogObjects::new(&store.dir);
    let result = match &data.full_hash {
        None => out.log(&data.head[..]).map_err(|e| Error::other("cannot print the log").cause(e)),
        Some(hash) if data.stored => out.log(objects.open(hash)?).map_err(|e| {
            Error::other(format!("the whole {stream} of `{name}` cannot be read"))
                .cause(e)
                .hint("`mlrun fsck` checks every stored log")
        }),
        Some(hash) => Err(Error::other(format!(
            "the whole {stream} of `{name}` (sha256:{hash}) is not in the store: it could not be kept, or `mlrun gc` deleted it"
        ))
        .hint(format!("`mlrun show {name} --logs` prints its first and last 64 KiB"))),
    };
    out.finish();
    result.map(|()| 0)
}

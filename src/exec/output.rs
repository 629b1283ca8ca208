//! What a run prints while it runs: step output lines tagged with the step name, a line when a
//! step starts and one when it ends. Lines are written whole under a lock, so parallel steps never
//! interleave within a line. With `--json`, all of this goes to stderr and stdout carries only
//! the final JSON summary. Long fingerprints show progress: on a terminal one line on stderr,
//! redrawn in place; otherwise (CI logs) a plain line now and then.

use std::io::Write;
use std::sync::Mutex;

use crate::report::Role;
use crate::report::Style;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

pub struct Printer {
    /// human output goes to stderr (when stdout is reserved for JSON)
    to_stderr: bool,
    out_style: Style,
    err_style: Style,
    /// width of the step-name column
    width: usize,
    /// stderr is a terminal: progress is one line redrawn in place
    live: bool,
    /// the progress line on screen (live mode), under the same lock as every write
    lock: Mutex<Option<String>>,
}

impl Printer {
    pub fn new(to_stderr: bool, out_style: Style, err_style: Style, names: &[&str]) -> Self {
        Printer {
            to_stderr,
            out_style,
            err_style,
            width: names
                .iter()
                .map(|n| n.chars().count())
                .max()
                .unwrap_or(4)
                .clamp(4, 24),
            live: crate::report::progress::live(),
            lock: Mutex::new(None),
        }
    }

    /// Progress lines are redrawn in place (stderr is a terminal), not appended.
    pub fn live(&self) -> bool {
        self.live
    }

    /// Show `text` as the progress line (live mode), or clear it with `None`.
    pub fn progress(&self, text: Option<String>) {
        let mut shown = self.lock.lock().expect("printer lock");
        if *shown == text {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        if let Some(t) = &text {
            let _ = write!(err, "{}", self.err_style.paint(Role::Muted, t));
        }
        let _ = err.flush();
        *shown = text;
    }

    /// Style of the stream human lines go to.
    pub fn style(&self) -> Style {
        if self.to_stderr {
            self.err_style
        } else {
            self.out_style
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    fn write(&self, stream: Stream, text: &str) {
        let shown = self.lock.lock().expect("printer lock");
        // a progress line on screen is taken off, and put back under the new line
        if shown.is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
        // A closed pipe (`mlrun ... | head`) must not kill the run: its record matters more.
        let _ = match (stream, self.to_stderr) {
            (Stream::Stdout, false) => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{text}").and_then(|()| out.flush())
            }
            _ => writeln!(std::io::stderr().lock(), "{text}"),
        };
        if let Some(t) = shown.as_deref() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{}", self.err_style.paint(Role::Muted, t));
            let _ = err.flush();
        }
    }

    /// A line a step printed. A progress bar redrawn with carriage returns (tqdm and the like)
    /// shows as its last state, as a terminal would have left it; the stored log keeps every
    /// byte.
    pub fn step_line(&self, step: &str, stream: Stream, line: &str) {
        let line = line.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
        let style = match (stream, self.to_stderr) {
            (Stream::Stdout, false) => self.out_style,
            _ => self.err_style,
        };
        let tag = format!("{step:>w$} │", w = self.width);
        self.write(
            stream,
            &format!("{} {line}", style.paint(Role::Muted, &tag)),
        );
    }

    /// A line from mlrun about the run.
    pub fn event(&self, text: &str) {
        self.write(Stream::Stdout, text);
    }

    /// A progress note from mlrun (no terminal to redraw a line on): always to stderr.
    pub fn note(&self, text: &str) {
        self.write(Stream::Stderr, &self.err_style.paint(Role::Muted, text));
    }

    /// A hint from mlrun (something worth changing, nothing wrong): always to stderr.
    pub fn hint(&self, text: &str) {
        let s = self.err_style;
        self.write(
            Stream::Stderr,
            &format!("{} {text}", s.paint(Role::Accent, "hint:")),
        );
    }

    /// A warning from mlrun: always to stderr.
    pub fn warn(&self, text: &str) {
        let s = self.err_style;
        self.write(
            Stream::Stderr,
            &format!("{} {text}", s.paint(Role::Warn, "warning:")),
        );
    }
}

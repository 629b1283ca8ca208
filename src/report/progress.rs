//! Progress for commands that read many bytes before they can say anything (`status` and
//! `fsck` hashing large data): the same line `run` shows, from a small thread of its own. On a
//! terminal it appears after a second and is redrawn in place on stderr; elsewhere (a log) a
//! plain line is printed every `MLRUN_PROGRESS_SECS` seconds (default 15); with
//! `MLRUN_PROGRESS_SECS=0` a log also gets a line as each phase begins, however short it is.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Role;
use super::Style;
use crate::fingerprint::hash;

/// How often a log gets a progress line: `MLRUN_PROGRESS_SECS` seconds (default 15).
pub fn log_every() -> Duration {
    std::env::var("MLRUN_PROGRESS_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(15), Duration::from_secs_f64)
}

/// `MLRUN_PROGRESS_SECS=0`: say in a log when each phase begins, however short it turns out to
/// be (then a line every 15 s as usual). For a log that must show every phase, and for tests,
/// which cannot depend on how fast this machine hashes.
pub fn announce() -> bool {
    std::env::var("MLRUN_PROGRESS_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|s| s == 0.0)
}

/// "{what} · started": the line `announce` prints when a phase begins.
pub fn started_line(what: &str) -> String {
    format!("{what} · started")
}

/// Is stderr a terminal a line can be redrawn on?
pub fn live() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// (how often to look, how long something must last before it is shown): on a terminal,
/// redraw 4 times a second once a second has passed; in a log, a line each `log_every`.
pub fn cadence(live: bool) -> (Duration, Duration) {
    if live {
        (Duration::from_millis(250), Duration::from_secs(1))
    } else {
        (log_every(), log_every())
    }
}

/// "{what} · 12s · 3.2 GB read at 1.9 GB/s"
pub fn line(what: &str, elapsed: Duration, bytes: u64) -> String {
    let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
    format!(
        "{what} · {}s · {} read at {}/s",
        elapsed.as_secs(),
        super::size(bytes),
        super::size(rate as u64)
    )
}

/// Shows progress of `what` until dropped.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub fn start(what: &str, style: Style) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, what) = (stop.clone(), what.to_string());
        let thread = std::thread::Builder::new()
            .name("mlrun-progress".into())
            .spawn(move || tick(&what, style, &flag))
            .ok();
        Ticker { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn tick(what: &str, style: Style, stop: &AtomicBool) {
    let live = live();
    let (every, after) = cadence(live);
    let (start, bytes0) = (Instant::now(), hash::bytes_read());
    let mut shown = false;
    if !live && announce() {
        let _ = writeln!(std::io::stderr().lock(), "{}", started_line(what));
    }
    loop {
        std::thread::park_timeout(every);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let elapsed = start.elapsed();
        if elapsed < after {
            continue;
        }
        let text = line(what, elapsed, hash::bytes_read().saturating_sub(bytes0));
        let mut err = std::io::stderr().lock();
        if live {
            let _ = write!(err, "\r\x1b[2K{}", style.paint(Role::Muted, &text));
            shown = true;
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }
    if shown {
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_gives_time_bytes_and_rate() {
        assert_eq!(
            line(
                "hashing the inputs of `train`",
                Duration::from_secs(30),
                61_200_000_000
            ),
            "hashing the inputs of `train` · 30s · 61.2 GB read at 2.0 GB/s"
        );
        // no division by zero at the very start
        assert_eq!(line("x", Duration::ZERO, 0), "x · 0s · 0 B read at 0 B/s");
    }
}

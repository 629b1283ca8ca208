//! A job's stdout and stderr, written by Slurm into files on the shared filesystem, followed
//! while it runs: each new line masked, shown tagged with its step (as a local step's are) and
//! kept (`capture::LogSink`). Read every 100 ms while lines come, less often (up to 1 s) while
//! the job is quiet; read to the end once the job is over.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::exec::capture::{Lines, LogCapture, LogSink};
use crate::exec::event::{Event, Sinks};
use crate::exec::output::Stream;

pub struct Follow {
    pub path: PathBuf,
    pub stream: Stream,
    pub step: String,
    pub secrets: Vec<String>,
    pub events: Sinks,
    pub sink: LogSink,
}

impl Follow {
    /// Follow until `done` turns true, then read what is left. Returns the whole log.
    pub async fn run(mut self, mut done: watch::Receiver<bool>) -> LogCapture {
        let mut lines = Lines::new(&self.secrets);
        let mut masker = crate::fingerprint::env::Masker::new(&self.secrets);
        let mut offset = 0u64;
        let mut delay = Duration::from_millis(100);
        loop {
            let finished = *done.borrow();
            let got = self.read_new(&mut offset, &mut lines, &mut masker);
            if finished {
                break;
            }
            delay = if got {
                Duration::from_millis(100)
            } else {
                (delay * 3 / 2).min(Duration::from_secs(1))
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = done.changed() => {}
            }
        }
        let (step, stream, events) = (&self.step, self.stream, &self.events);
        let sink = &mut self.sink;
        lines.finish(&mut |line: &[u8]| emit(step, stream, events, sink, &mut masker, line));
        self.sink.finish()
    }

    /// Read what was appended since `offset`; true if there was anything.
    fn read_new(
        &mut self,
        offset: &mut u64,
        lines: &mut Lines,
        masker: &mut crate::fingerprint::env::Masker,
    ) -> bool {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return false;
        };
        if f.seek(SeekFrom::Start(*offset)).is_err() {
            return false;
        }
        let mut any = false;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            any = true;
            *offset += n as u64;
            let (step, stream, events) = (&self.step, self.stream, &self.events);
            let sink = &mut self.sink;
            lines.push(&buf[..n], &self.secrets, &mut |line: &[u8]| {
                emit(step, stream, events, sink, masker, line)
            });
        }
        any
    }
}

fn emit(
    step: &str,
    stream: Stream,
    events: &Sinks,
    sink: &mut LogSink,
    masker: &mut crate::fingerprint::env::Masker,
    line: &[u8],
) {
    let masked = masker.bytes(line);
    let text = String::from_utf8_lossy(&masked);
    events.emit(&Event::Output {
        step,
        stream,
        line: text.trim_end_matches(['\n', '\r']),
    });
    sink.write(&masked);
}

//! A step's stdout or stderr as mlrun keeps it, in bounded memory whatever the step prints.
//!
//! The output is cut into lines (a line longer than `MAX_PIECE` into pieces, cut where no
//! secret straddles the cut), each line masked (`fingerprint::env::Masker`, in `child`: secrets never reach the disk),
//! printed live and handed to a `LogSink`. A log of at most `HEAD + TAIL` bytes stays in memory
//! and is recorded whole in the database. A longer one is streamed, zstd-compressed, to a file
//! in the run's scratch space as it arrives, while the sink keeps its first `HEAD` and last
//! `TAIL` bytes and its SHA-256; when the step ends the file becomes the log's object
//! (`store::logs`) and the database gets the head, the tail and the hash.
//!
//! Bytes are kept as printed: output that is not UTF-8 is stored as it is, not as replacement
//! characters (only the live display is lossy).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::fingerprint::env::secret_spans;
use crate::fingerprint::hash::hex;
use crate::store::logs::LogObjects;
use crate::store::record::StepLog;

/// How much of the start of a long log the database keeps.
pub const HEAD: usize = 64 * 1024;
/// How much of the end of a long log the database keeps.
pub const TAIL: usize = 64 * 1024;
/// A line longer than this is handled in pieces (a progress bar redrawn with `\r`, binary
/// output, `dd` of zeros): memory stays bounded even without a newline.
pub const MAX_PIECE: usize = 256 * 1024;
/// zstd level: fast enough to keep up with a step printing hundreds of MB/s.
const LEVEL: i32 = 3;

/// Splits a stream of bytes into lines, and overlong lines into pieces of about `MAX_PIECE`.
pub struct Lines {
    buf: Vec<u8>,
    /// bytes held back at the end of a cut piece: longer than any secret, so a secret that
    /// starts before the cut is whole in the buffer and the cut can avoid it
    hold: usize,
}

impl Lines {
    pub fn new(secrets: &[String]) -> Lines {
        let longest = secrets.iter().map(String::len).max().unwrap_or(0);
        Lines {
            buf: Vec::new(),
            hold: (longest + 64).clamp(4096, MAX_PIECE / 4),
        }
    }

    /// Take `data`; call `line` with every complete line (ending in `\n`) or piece.
    pub fn push(&mut self, data: &[u8], secrets: &[String], mut line: impl FnMut(&[u8])) {
        let mut rest = data;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            if self.buf.is_empty() {
                line(&rest[..=i]);
            } else {
                self.buf.extend_from_slice(&rest[..=i]);
                line(&self.buf);
                self.buf.clear();
            }
            rest = &rest[i + 1..];
        }
        self.buf.extend_from_slice(rest);
        while self.buf.len() >= MAX_PIECE {
            let p = cut_point(&self.buf, secrets, self.hold);
            line(&self.buf[..p]);
            self.buf.drain(..p);
        }
    }

    /// The stream ended: what is left, if anything, is the last line.
    pub fn finish(&mut self, mut line: impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            line(&self.buf);
            self.buf.clear();
        }
    }
}

/// Where to cut an overlong line `buf`: after its last `\r` in the second half (a progress bar
/// then shows its latest state), else `hold` bytes before the end; never inside a secret nor
/// inside a UTF-8 character.
fn cut_point(buf: &[u8], secrets: &[String], hold: usize) -> usize {
    let limit = buf.len().saturating_sub(hold).max(1);
    let half = limit / 2;
    let mut p = memchr::memrchr(b'\r', &buf[half..limit]).map_or(limit, |i| half + i + 1);
    while p > 0 && p < buf.len() && buf[p] & 0xC0 == 0x80 {
        p -= 1;
    }
    let mut spans = Vec::new();
    let mut offset = 0;
    for chunk in buf.utf8_chunks() {
        spans.extend(
            secret_spans(chunk.valid(), secrets)
                .into_iter()
                .map(|r| r.start + offset..r.end + offset),
        );
        offset += chunk.valid().len() + chunk.invalid().len();
    }
    // a span that starts at 0 cannot be avoided: the piece is masked as a whole
    while let Some(s) = spans
        .iter()
        .find(|s| s.start > 0 && s.start < p && p < s.end)
    {
        p = s.start;
    }
    if p == 0 { limit } else { p }
}

/// One stream of one step: see the module documentation.
pub struct LogSink {
    dir: PathBuf,
    stream: &'static str,
    bytes: u64,
    hasher: Sha256,
    /// everything until the log outgrows `HEAD + TAIL`; then its first `HEAD` bytes
    head: Vec<u8>,
    /// once spilled: the latest bytes (between `TAIL` and `2 * TAIL` of them)
    tail: Vec<u8>,
    spilled: bool,
    file: Option<(PathBuf, zstd::stream::write::Encoder<'static, File>)>,
    /// why the whole log could not be written
    error: Option<String>,
}

impl LogSink {
    /// A sink that writes its file, if the log needs one, in `dir`.
    pub fn new(dir: &Path, stream: &'static str) -> LogSink {
        LogSink {
            dir: dir.to_path_buf(),
            stream,
            bytes: 0,
            hasher: Sha256::new(),
            head: Vec::new(),
            tail: Vec::new(),
            spilled: false,
            file: None,
            error: None,
        }
    }

    /// Append bytes (already masked) to the log.
    pub fn write(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        self.hasher.update(data);
        if !self.spilled {
            if self.head.len() + data.len() <= HEAD + TAIL {
                self.head.extend_from_slice(data);
                return;
            }
            self.spilled = true;
            self.open_file();
            let prior = std::mem::take(&mut self.head);
            self.head = prior.iter().chain(data).take(HEAD).copied().collect();
            self.append_to_file(&prior);
            self.push_tail(&prior);
        }
        self.append_to_file(data);
        self.push_tail(data);
    }

    fn open_file(&mut self) {
        let path = self.dir.join(format!(
            "log-{}-{}.zst",
            uuid::Uuid::new_v4().simple(),
            self.stream
        ));
        let opened = std::fs::create_dir_all(&self.dir)
            .and_then(|()| File::create_new(&path))
            .and_then(|f| zstd::stream::write::Encoder::new(f, LEVEL));
        match opened {
            Ok(enc) => self.file = Some((path, enc)),
            Err(e) => self.fail(&path, &e),
        }
    }

    fn append_to_file(&mut self, data: &[u8]) {
        if let Some((path, enc)) = &mut self.file
            && let Err(e) = enc.write_all(data)
        {
            let path = path.clone();
            self.fail(&path, &e);
        }
    }

    /// The whole log cannot be kept: say why, and give the space its partial file took back.
    fn fail(&mut self, path: &Path, e: &std::io::Error) {
        if self.error.is_none() {
            self.error = Some(format!("cannot write its log to `{}`: {e}", path.display()));
        }
        self.file = None;
        let _ = std::fs::remove_file(path);
    }

    fn push_tail(&mut self, data: &[u8]) {
        if data.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - TAIL..]);
        } else {
            self.tail.extend_from_slice(data);
            if self.tail.len() > 2 * TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
        }
    }

    /// The stream ended.
    pub fn finish(mut self) -> LogCapture {
        let hash = hex(&std::mem::take(&mut self.hasher).finalize());
        if !self.spilled {
            return LogCapture {
                bytes: self.bytes,
                head: std::mem::take(&mut self.head),
                cut: None,
            };
        }
        let mut file = None;
        if let Some((path, enc)) = self.file.take() {
            match enc.finish() {
                Ok(_) => file = Some(path),
                Err(e) => self.fail(&path, &e),
            }
        }
        // whole lines where the text has them
        let mut head = std::mem::take(&mut self.head);
        if let Some(i) = memchr::memrchr(b'\n', &head[HEAD / 2..]) {
            head.truncate(HEAD / 2 + i + 1);
        }
        let mut tail = std::mem::take(&mut self.tail);
        let line_start = tail.len() > TAIL && tail[tail.len() - TAIL - 1] == b'\n';
        if tail.len() > TAIL {
            tail.drain(..tail.len() - TAIL);
        }
        if !line_start
            && let Some(i) = memchr::memchr(b'\n', &tail[..TAIL / 2])
            && i + 1 < tail.len()
        {
            tail.drain(..=i);
        }
        LogCapture {
            bytes: self.bytes,
            head,
            cut: Some(Cut {
                tail,
                full_hash: hash,
                file,
                error: self.error.take(),
            }),
        }
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        if let Some((path, _)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A stream's log once the step has ended.
#[derive(Default)]
pub struct LogCapture {
    /// bytes printed
    pub bytes: u64,
    /// the whole log, or its first bytes when it was cut
    pub head: Vec<u8>,
    pub cut: Option<Cut>,
}

/// A log longer than what the database keeps.
pub struct Cut {
    /// its last bytes
    pub tail: Vec<u8>,
    /// SHA-256 of the whole log
    pub full_hash: String,
    /// the whole log, compressed, in the run's scratch space
    file: Option<PathBuf>,
    /// why it could not be written in full
    error: Option<String>,
}

impl Drop for Cut {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl LogCapture {
    /// The end of the log as the database keeps it: the whole log, or its tail when it was cut
    /// (what a shell prints last, like `sh: 1: prog: not found`, is there).
    pub fn end(&self) -> &[u8] {
        self.cut.as_ref().map_or(&self.head, |c| &c.tail)
    }

    /// Keep the whole log in the object store (when it was cut) and return what the database
    /// records, with the reason when the whole log could not be kept.
    pub fn keep(mut self, logs: &LogObjects) -> (StepLog, Option<String>) {
        let Some(cut) = self.cut.as_mut() else {
            return (
                StepLog {
                    bytes: self.bytes,
                    head: std::mem::take(&mut self.head),
                    ..StepLog::default()
                },
                None,
            );
        };
        let mut error = cut.error.take();
        let mut stored = false;
        if let Some(file) = cut.file.take() {
            match logs.adopt(&file, &cut.full_hash) {
                Ok(()) => stored = true,
                Err(e) => {
                    let _ = std::fs::remove_file(&file);
                    error.get_or_insert(e.to_string());
                }
            }
        }
        (
            StepLog {
                bytes: self.bytes,
                head: std::mem::take(&mut self.head),
                tail: Some(std::mem::take(&mut cut.tail)),
                full_hash: Some(cut.full_hash.clone()),
                stored,
            },
            error,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::env::Masker;
    use std::borrow::Cow;
    use std::io::Read;

    fn pieces(input: &[&[u8]], secrets: &[String]) -> Vec<Vec<u8>> {
        let mut lines = Lines::new(secrets);
        let mut out = Vec::new();
        for chunk in input {
            lines.push(chunk, secrets, |l| out.push(l.to_vec()));
        }
        lines.finish(|l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn lines_are_whole_and_the_last_one_needs_no_newline() {
        let out = pieces(&[b"a\nb", b"c\n\nd"], &[]);
        assert_eq!(
            out,
            vec![
                b"a\n".to_vec(),
                b"bc\n".to_vec(),
                b"\n".to_vec(),
                b"d".to_vec()
            ]
        );
    }

    #[test]
    fn an_endless_line_comes_in_bounded_pieces_that_never_split_a_secret() {
        let secret = "hunter2-s3cr3t".to_string();
        let secrets = vec![secret.clone()];
        // 3 MiB without a newline, the secret everywhere, including across any fixed boundary
        let mut data = Vec::new();
        let mut i = 0u64;
        while data.len() < 3 << 20 {
            data.extend_from_slice(format!("{i:x} {secret} ").as_bytes());
            i += 1;
        }
        let chunks: Vec<&[u8]> = data.chunks(65536).collect();
        let out = pieces(&chunks, &secrets);
        assert!(out.len() > 10);
        assert!(out.iter().all(|p| p.len() <= MAX_PIECE + 65536));
        assert_eq!(out.concat(), data);
        let masked: Vec<u8> = out
            .iter()
            .flat_map(|p| Masker::new(&secrets).bytes(p).into_owned())
            .collect();
        assert!(!String::from_utf8_lossy(&masked).contains("hunter2"));
    }

    #[test]
    fn a_progress_bar_is_cut_after_a_carriage_return() {
        let mut data = Vec::new();
        let mut n = 0;
        while data.len() < MAX_PIECE + 1000 {
            data.extend_from_slice(format!("\r{n:>6}% |{}|", "#".repeat(60)).as_bytes());
            n += 1;
        }
        let out = pieces(&[&data], &[]);
        // the first piece ends with a whole bar (what the live line shows), the next one
        // starts with the next bar
        assert!(
            out[0].ends_with(b"#|\r"),
            "{:?}",
            &out[0][out[0].len() - 10..]
        );
        assert!(out[1].ends_with(b"#|"));
        assert_eq!(
            out[1].iter().filter(|b| **b == b'%').count(),
            out[1].split(|b| *b == b'\r').count()
        );
    }

    #[test]
    fn binary_output_keeps_its_bytes_and_is_still_masked() {
        let line = b"\xff\xfe token=abcd1234secret \x00\x80 end\n";
        let out = Masker::new(&["abcd1234secret".into()]).bytes(line);
        assert_eq!(&out[..], b"\xff\xfe token=<redacted> \x00\x80 end\n");
        assert!(matches!(
            Masker::new(&[]).bytes(b"\xff plain\n"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_short_log_stays_whole_in_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sink = LogSink::new(tmp.path(), "stdout");
        sink.write(b"hello\n");
        let c = sink.finish();
        assert_eq!(c.head, b"hello\n");
        assert!(c.cut.is_none());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_long_log_is_kept_whole_in_the_store_with_its_head_and_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = tmp.path().join("scratch");
        let mut sink = LogSink::new(&scratch, "stdout");
        let mut all = Vec::new();
        for i in 0..100_000 {
            let line = format!("line {i} {}\n", "x".repeat(i % 50));
            sink.write(line.as_bytes());
            all.extend_from_slice(line.as_bytes());
        }
        let c = sink.finish();
        assert_eq!(c.bytes, all.len() as u64);
        assert!(c.head.len() <= HEAD && c.head.ends_with(b"\n") && all.starts_with(&c.head));
        let cut = c.cut.as_ref().unwrap();
        assert!(cut.tail.len() <= TAIL && all.ends_with(&cut.tail));
        assert!(cut.tail.starts_with(b"line "), "the tail starts at a line");
        let hash = crate::fingerprint::hash::sha256_bytes(&all);
        assert_eq!(cut.full_hash, hash);

        let logs = LogObjects::new(tmp.path());
        let (rec, err) = c.keep(&logs);
        assert!(err.is_none());
        assert!(rec.stored);
        let mut back = Vec::new();
        logs.open(&hash).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, all);
        // compressed, and the scratch file moved away
        assert!(logs.list()[0].2 < all.len() as u64 / 4);
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    }

    #[test]
    fn a_log_that_cannot_be_written_says_why_and_keeps_head_and_tail() {
        let tmp = tempfile::tempdir().unwrap();
        // the scratch "directory" is a file: the log file cannot be created
        let blocked = tmp.path().join("blocked");
        std::fs::write(&blocked, b"").unwrap();
        let mut sink = LogSink::new(&blocked, "stderr");
        for _ in 0..10_000 {
            sink.write(b"0123456789abcdef0123456789abcdef\n");
        }
        let (rec, err) = sink.finish().keep(&LogObjects::new(tmp.path()));
        assert!(err.unwrap().contains("cannot write its log"));
        assert!(!rec.stored);
        assert_eq!(rec.bytes, 330_000);
        assert!(rec.tail.is_some() && rec.full_hash.is_some());
    }
}

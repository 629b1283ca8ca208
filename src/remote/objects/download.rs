//! Downloads: packed objects read by byte range (neighbours in one request, `spans`), objects
//! on their own streamed (a 2 GiB model never whole in memory); every object hashed as it
//! arrives, and stored only if it hashes to its name.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjPath;
use sha2::{Digest as _, Sha256};

use super::{Bucket, FetchError, GAP, PACK_PERMITS, PARALLEL, SPAN_BYTES, remote_error};
use crate::error::Error;
use crate::remote::pg::Locations;
use crate::store::logs::LogObjects;
use crate::store::objects::Objects;
use crate::store::verified;

/// An object in a read: its name and where it is in its pack.
type Member = (String, Range<u64>);

/// Reads of a pack: the entries sorted by position, in spans of neighbouring ranges.
fn spans(mut entries: Vec<Member>) -> Vec<(Range<u64>, Vec<Member>)> {
    entries.sort_by_key(|e| e.1.start);
    let mut out: Vec<(Range<u64>, Vec<Member>)> = Vec::new();
    for (name, r) in entries {
        match out.last_mut() {
            Some((span, members))
                if r.start <= span.end + GAP && r.end.max(span.end) - span.start <= SPAN_BYTES =>
            {
                span.end = span.end.max(r.end);
                members.push((name, r));
            }
            _ => out.push((r.clone(), vec![(name, r)])),
        }
    }
    out
}

/// What a read does with each object: check it (`fsck --remote`), or keep it in the local
/// store (`hand_over`: and hand its verified bytes to the restore that follows, see
/// `store::objects::hand_over`).
enum Handling {
    Verify,
    Keep {
        objects: Objects,
        logs: LogObjects,
        tmp_dir: PathBuf,
        hand_over: bool,
    },
}

type Outcome = std::result::Result<(), FetchError>;

impl Bucket {
    /// Download `names` into the local store, each verified; `packed` says where the packed
    /// ones are (the rest are on their own). `hand_over`: the caller restores them next (the
    /// shared cache), so the bytes verified in memory are kept for it. Returns the problems
    /// by name.
    pub fn fetch(
        &self,
        store_dir: &Path,
        names: &[String],
        packed: &Locations,
        hand_over: bool,
    ) -> Vec<(String, FetchError)> {
        let tmp_dir = store_dir.join("objects").join("tmp");
        let _ = std::fs::create_dir_all(&tmp_dir);
        let keep = Handling::Keep {
            objects: Objects::new(store_dir),
            logs: LogObjects::new(store_dir),
            tmp_dir,
            hand_over,
        };
        self.read(names, packed, keep)
    }

    /// Check objects on the remote (`fsck --remote`): each present and hashing to its name.
    pub fn verify(&self, names: &[String], packed: &Locations) -> Vec<(String, FetchError)> {
        self.read(names, packed, Handling::Verify)
    }

    /// Read `names` (packed ones by range, `PARALLEL` requests at once) and handle each one;
    /// the problems by name.
    fn read(
        &self,
        names: &[String],
        packed: &Locations,
        handling: Handling,
    ) -> Vec<(String, FetchError)> {
        let handling = Arc::new(handling);
        let mut by_pack: std::collections::BTreeMap<&str, Vec<Member>> = Default::default();
        // (key, the span read: None for the whole object, the objects in it)
        let mut reads: Vec<(ObjPath, Option<Range<u64>>, Vec<Member>)> = Vec::new();
        for n in names {
            match packed.get(n) {
                Some((pack, r)) => by_pack
                    .entry(pack)
                    .or_default()
                    .push((n.clone(), r.clone())),
                None => reads.push((self.key(n), None, vec![(n.clone(), 0..0)])),
            }
        }
        for (pack, entries) in by_pack {
            for (span, members) in spans(entries) {
                reads.push((self.pack_key(pack), Some(span), members));
            }
        }
        let store = self.store.clone();
        let shown = self.shown.clone();
        self.rt.block_on(async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
            let mut set = tokio::task::JoinSet::new();
            for (key, span, members) in reads {
                let n = if span.is_some() { PACK_PERMITS } else { 1 };
                let permit = sem
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .expect("semaphore open");
                let (store, shown, handling) = (store.clone(), shown.clone(), handling.clone());
                set.spawn(async move {
                    let r = match span {
                        Some(span) => read_span(&store, &key, span, members, handling).await,
                        None => {
                            let name = members.into_iter().next().map(|m| m.0);
                            let name = name.unwrap_or_default();
                            let r = read_whole(&store, &key, &name, &handling).await;
                            vec![(name, r)]
                        }
                    };
                    drop(permit);
                    r.into_iter()
                        .map(|(n, r)| (n, r.map_err(|e| e.shown(&shown))))
                        .collect::<Vec<_>>()
                });
            }
            let mut problems = Vec::new();
            while let Some(j) = set.join_next().await {
                match j {
                    Ok(results) => problems.extend(
                        results
                            .into_iter()
                            .filter_map(|(n, r)| r.err().map(|e| (n, e))),
                    ),
                    Err(e) => problems.push((
                        String::new(),
                        FetchError::Failed(Error::other("download task failed").cause(e)),
                    )),
                }
            }
            problems
        })
    }
}

/// A read's failure before it is worded for the remote it came from.
enum ReadError {
    Missing,
    Remote(object_store::Error),
    Other(FetchError),
}

impl ReadError {
    fn shown(self, shown: &str) -> FetchError {
        match self {
            ReadError::Missing => FetchError::Missing,
            ReadError::Remote(e) => FetchError::Failed(remote_error(shown, "reading", e)),
            ReadError::Other(e) => e,
        }
    }
}

impl From<object_store::Error> for ReadError {
    fn from(e: object_store::Error) -> ReadError {
        match e {
            object_store::Error::NotFound { .. } => ReadError::Missing,
            e => ReadError::Remote(e),
        }
    }
}

impl From<FetchError> for ReadError {
    fn from(e: FetchError) -> ReadError {
        ReadError::Other(e)
    }
}

/// One span of a pack, in memory (at most `SPAN_BYTES`): each of its objects handled.
async fn read_span(
    store: &object_store::aws::AmazonS3,
    key: &ObjPath,
    span: Range<u64>,
    members: Vec<Member>,
    handling: Arc<Handling>,
) -> Vec<(String, std::result::Result<(), ReadError>)> {
    let bytes = match store.get_range(key, span.clone()).await {
        Ok(b) => b,
        Err(e) => {
            // one error for the first, its line for the others
            let e = ReadError::from(e);
            let line = match &e {
                ReadError::Remote(x) => Some(x.to_string()),
                _ => None,
            };
            let mut first = Some(e);
            return members
                .into_iter()
                .map(|m| {
                    let e = first.take().unwrap_or_else(|| match &line {
                        Some(l) => ReadError::Other(FetchError::Failed(Error::other(l.clone()))),
                        None => ReadError::Missing,
                    });
                    (m.0, Err(e))
                })
                .collect();
        }
    };
    let handled = tokio::task::spawn_blocking(move || {
        members
            .into_iter()
            .map(|(name, r)| {
                let (a, b) = (r.start - span.start, r.end - span.start);
                let res = if b as usize <= bytes.len() {
                    handle_whole(&name, bytes.slice(a as usize..b as usize), &handling)
                } else {
                    Err(FetchError::Corrupt {
                        actual: "nothing (its pack is cut short)".into(),
                    })
                };
                (name, res.map_err(ReadError::Other))
            })
            .collect::<Vec<_>>()
    })
    .await;
    handled.unwrap_or_default()
}

/// An object on its own, streamed: hashed chunk by chunk (and, to keep it, written to a new
/// file in the store's scratch space), stored once all of it hashed to its name.
async fn read_whole(
    store: &object_store::aws::AmazonS3,
    key: &ObjPath,
    name: &str,
    handling: &Handling,
) -> std::result::Result<(), ReadError> {
    let got = store.get(key).await?;
    let mut arrival = Arrival::new(name, handling)?;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        tokio::task::block_in_place(|| arrival.write(&chunk))?;
    }
    tokio::task::block_in_place(|| arrival.finish(handling))?;
    Ok(())
}

/// A writer that hashes what it is given.
struct Hashing(Sha256);

impl Write for Hashing {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An object's hash as its bytes arrive: of the bytes, or of a log's unpacked bytes.
enum Digest {
    Plain(Sha256),
    Log(Box<zstd::stream::write::Decoder<'static, Hashing>>),
    NotZstd,
}

impl Digest {
    fn of(name: &str) -> Digest {
        if !name.starts_with("logs/") {
            return Digest::Plain(Sha256::new());
        }
        match zstd::stream::write::Decoder::new(Hashing(Sha256::new())) {
            Ok(d) => Digest::Log(Box::new(d)),
            Err(_) => Digest::NotZstd,
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Digest::Plain(h) => h.update(b),
            Digest::Log(d) => {
                if d.write_all(b).is_err() {
                    *self = Digest::NotZstd;
                }
            }
            Digest::NotZstd => {}
        }
    }

    fn finish(self) -> String {
        match self {
            Digest::Plain(h) => hex::encode(h.finalize()),
            Digest::Log(mut d) => match d.flush() {
                Ok(()) => hex::encode(d.into_inner().0.finalize()),
                Err(_) => "not zstd".to_string(),
            },
            Digest::NotZstd => "not zstd".to_string(),
        }
    }
}

/// One streamed object on its way: its hash so far, and the scratch file it is written to
/// when it is kept.
struct Arrival {
    name: String,
    digest: Digest,
    file: Option<(PathBuf, File)>,
}

impl Arrival {
    fn new(name: &str, handling: &Handling) -> std::result::Result<Arrival, FetchError> {
        let file = match handling {
            Handling::Verify => None,
            Handling::Keep { objects, .. } => {
                Some(objects.scratch_file().map_err(FetchError::Failed)?)
            }
        };
        Ok(Arrival {
            name: name.to_string(),
            digest: Digest::of(name),
            file,
        })
    }

    fn write(&mut self, chunk: &[u8]) -> Outcome {
        self.digest.update(chunk);
        if let Some((path, f)) = &mut self.file {
            f.write_all(chunk).map_err(|e| {
                FetchError::Failed(
                    Error::store(format!("cannot write `{}`", path.display())).cause(e),
                )
            })?;
        }
        Ok(())
    }

    /// All of it arrived: stored if it hashes to its name (the bytes hashed are the bytes
    /// written), else refused and its scratch file removed.
    fn finish(self, handling: &Handling) -> Outcome {
        let hash = self
            .name
            .split_once('/')
            .map_or(self.name.as_str(), |x| x.1);
        let actual = self.digest.finish();
        let Some((path, file)) = self.file else {
            return if actual == hash {
                Ok(())
            } else {
                Err(FetchError::Corrupt { actual })
            };
        };
        drop(file);
        if actual != hash {
            let _ = std::fs::remove_file(&path);
            return Err(FetchError::Corrupt { actual });
        }
        let Handling::Keep { objects, logs, .. } = handling else {
            return Ok(());
        };
        let kept = if self.name.starts_with("logs/") {
            logs.adopt(&path, hash)
        } else {
            objects.adopt_verified(&path, hash)
        };
        if kept.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        kept.map_err(FetchError::Failed)
    }
}

/// An object whose bytes are all in memory (from a pack): verified, then handled.
fn handle_whole(name: &str, bytes: Bytes, handling: &Handling) -> Outcome {
    check_bytes(name, &bytes)?;
    let Handling::Keep {
        objects,
        logs,
        tmp_dir,
        hand_over,
    } = handling
    else {
        return Ok(());
    };
    let (kind, hash) = name.split_once('/').unwrap_or(("sha256", name));
    if kind != "logs" {
        objects
            .put_bytes(&bytes, hash)
            .map_err(FetchError::Failed)?;
        if *hand_over {
            verified::hand_over(hash, Arc::new(bytes));
        }
        return Ok(());
    }
    let fail = |e: std::io::Error| Error::store("cannot write to the object store").cause(e);
    let kept = (|| {
        let mut f = tempfile::NamedTempFile::new_in(tmp_dir).map_err(fail)?;
        f.write_all(&bytes).map_err(fail)?;
        let (_, path) = f.keep().map_err(|e| fail(e.error))?;
        logs.adopt(&path, hash)
    })();
    kept.map_err(FetchError::Failed)
}

/// Do `bytes` (as stored under `name`) hash to the name?
fn check_bytes(name: &str, bytes: &[u8]) -> Outcome {
    let hash = name.split_once('/').map_or(name, |x| x.1);
    let mut d = Digest::of(name);
    d.update(bytes);
    let actual = d.finish();
    if actual == hash {
        Ok(())
    } else {
        Err(FetchError::Corrupt { actual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_a_pack_cover_neighbours_and_stay_bounded() {
        let e = |n: &str, a: u64, b: u64| (n.to_string(), a..b);
        // out of order, one far away, and a run longer than one read may be
        let mut entries = vec![e("c", 200, 300), e("a", 0, 100), e("b", 100, 200)];
        entries.push(e("far", 10 << 20, (10 << 20) + 5));
        let mut at = 20 << 20;
        for i in 0..20 {
            entries.push(e(&format!("m{i}"), at, at + (1 << 20)));
            at += 1 << 20;
        }
        let s = spans(entries);
        assert_eq!(s[0].0, 0..300);
        let first: Vec<&str> = s[0].1.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(first, ["a", "b", "c"]);
        assert_eq!(s[1].1.len(), 1);
        assert!(s.iter().all(|(r, _)| r.end - r.start <= SPAN_BYTES));
        let members: usize = s.iter().map(|x| x.1.len()).sum();
        assert_eq!(members, 24);
        for (r, ms) in &s {
            assert!(ms.iter().all(|m| m.1.start >= r.start && m.1.end <= r.end));
        }
    }
}

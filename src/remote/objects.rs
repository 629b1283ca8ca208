//! The team's objects on S3 (or an S3-compatible server): the same content-addressed names as
//! the local object store, under the configured prefix: `PREFIX/sha256/ab/cdef…` (a file's
//! bytes) and `PREFIX/logs/ab/cdef….zst` (a long step log, zstd); objects up to
//! `PACK_MAX_OBJECT` are packed (`PREFIX/packs/<id>.pack`, their bytes one after another, one
//! request for thousands: the server's cost is per request) and read back by byte range, where
//! the record's `pack_objects` says they are. Uploads are create-if-absent
//! (`PutMode::Create`: an object already there is never rewritten); every download is hashed
//! before it enters the local store, and one that does not hash to its name is refused.

use std::io::{Read, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use sha2::{Digest, Sha256};

use super::pg::Locations;
use crate::config::Remote;
use crate::error::{Error, Result};
use crate::store::logs::LogObjects;
use crate::store::objects::Objects;

/// Uploads and downloads at once.
const PARALLEL: usize = 64;

/// Objects up to this size are packed with others; larger ones are uploaded on their own.
pub const PACK_MAX_OBJECT: u64 = 1 << 20;
/// A pack is closed once it holds this many bytes.
const PACK_BYTES: u64 = 16 << 20;
/// Permits a pack upload takes of `PARALLEL` (so at most 4 packs are in flight at once).
const PACK_PERMITS: u32 = (PARALLEL / 4) as u32;
/// A read of a pack covers at most this many bytes (ranges closer than `GAP` are merged).
const SPAN_BYTES: u64 = 16 << 20;
const GAP: u64 = 64 << 10;

/// One finished upload.
#[derive(Debug)]
pub enum Uploaded {
    /// An object on its own, by name
    Loose(String),
    /// A pack: its id, and each object in it as (name, position, length)
    Pack(String, Vec<(String, u64, u64)>),
}

/// An object to upload: its name, its local file and size.
pub struct ToUpload {
    pub name: String,
    pub path: std::path::PathBuf,
    pub size: u64,
}

/// The id of a pack holding `names` in this order: the hash of the names, which are the hashes
/// of the contents (so the same objects make the same pack, and a resumed push re-finds it).
fn pack_id(names: &[&str]) -> String {
    let mut h = Sha256::new();
    for n in names {
        h.update(n.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Small objects in groups of about `PACK_BYTES` (name order), large ones alone.
fn plan(objects: Vec<ToUpload>) -> (Vec<Vec<ToUpload>>, Vec<ToUpload>) {
    let (mut small, large): (Vec<_>, Vec<_>) =
        objects.into_iter().partition(|o| o.size <= PACK_MAX_OBJECT);
    small.sort_by(|a, b| a.name.cmp(&b.name));
    let mut packs: Vec<Vec<ToUpload>> = Vec::new();
    let mut bytes = 0;
    for o in small {
        if packs.is_empty() || bytes >= PACK_BYTES {
            packs.push(Vec::new());
            bytes = 0;
        }
        bytes += o.size;
        packs.last_mut().expect("a pack").push(o);
    }
    (packs, large)
}

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

pub struct Bucket {
    store: Arc<AmazonS3>,
    prefix: String,
    shown: String,
    rt: tokio::runtime::Runtime,
}

/// Why one object could not be fetched.
#[derive(Debug)]
pub enum FetchError {
    /// Not on the remote
    Missing,
    /// Its bytes do not hash to its name: refused, never stored
    Corrupt {
        actual: String,
    },
    Failed(Error),
}

impl Bucket {
    pub fn open(remote: &Remote) -> Result<Bucket> {
        let shown = remote.objects_url();
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&remote.bucket)
            // the body is not hashed for the signature (14% of a push's CPU): what is read
            // back is verified by its own hash, and TLS guards what is in flight
            .with_unsigned_payload(true)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(20),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(300))
                    .with_allow_http(
                        remote
                            .endpoint
                            .as_deref()
                            .is_some_and(|e| e.starts_with("http://")),
                    ),
            );
        if let Some(ep) = &remote.endpoint {
            b = b.with_endpoint(ep);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && let Some((key, secret, token)) = shared_credentials()
        {
            b = b.with_access_key_id(key).with_secret_access_key(secret);
            if let Some(t) = token {
                b = b.with_token(t);
            }
        }
        let store = b.build().map_err(|e| {
            Error::invalid(format!("cannot use the remote objects {shown}: {e}"))
                .hint("check AWS_ENDPOINT_URL, AWS_REGION and the s3:// URL in [remote] objects")
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::other("cannot start the object transfers").cause(e))?;
        Ok(Bucket {
            store: Arc::new(store),
            prefix: remote.prefix.clone(),
            shown,
            rt,
        })
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The key of object `name` (`sha256/<hash>` or `logs/<hash>`).
    fn key(&self, name: &str) -> ObjPath {
        let (kind, hash) = name.split_once('/').unwrap_or(("sha256", name));
        let (a, b) = hash.split_at(2.min(hash.len()));
        let rel = if kind == "logs" {
            format!("logs/{a}/{b}.zst")
        } else {
            format!("sha256/{a}/{b}")
        };
        if self.prefix.is_empty() {
            ObjPath::from(rel)
        } else {
            ObjPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// The key of pack `id`.
    fn pack_key(&self, id: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(format!("packs/{id}.pack"))
        } else {
            ObjPath::from(format!("{}/packs/{id}.pack", self.prefix))
        }
    }

    fn error(&self, what: &str, e: object_store::Error) -> Error {
        remote_error(&self.shown, what, e)
    }

    /// Check that the bucket can be reached and read (one listing request), so a wrong key, a
    /// missing bucket or a server that is down is said once, before any work.
    pub fn check(&self) -> Result<()> {
        let store = self.store.clone();
        let prefix = ObjPath::from(self.prefix.clone());
        let r = self
            .rt
            .block_on(async move { store.list_with_delimiter(Some(&prefix)).await });
        r.map(|_| ()).map_err(|e| self.error("listing", e))
    }

    /// Upload `objects`, create-if-absent, `PARALLEL` requests at once: small ones packed
    /// together (`PREFIX/packs/<id>.pack`), large ones on their own. `done` is called (on this
    /// thread) with each finished upload; an error it returns is the upload's error.
    pub fn upload(
        &self,
        objects: Vec<ToUpload>,
        mut done: impl FnMut(Uploaded) -> Result<()>,
    ) -> Result<()> {
        let (packs, large) = plan(objects);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<Uploaded>>();
        let shown = self.shown.clone();
        let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        let store = self.store.clone();
        let jobs: Vec<(ObjPath, Vec<ToUpload>, Option<String>)> = packs
            .into_iter()
            .map(|p| {
                let id = pack_id(&p.iter().map(|o| o.name.as_str()).collect::<Vec<_>>());
                (self.pack_key(&id), p, Some(id))
            })
            .chain(
                large
                    .into_iter()
                    .map(|o| (self.key(&o.name), vec![o], None)),
            )
            .collect();
        self.rt.block_on(async move {
            for (key, members, pack) in jobs {
                let n = if pack.is_some() { PACK_PERMITS } else { 1 };
                let permit = sem
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .expect("semaphore open");
                let (store, tx, shown) = (store.clone(), tx.clone(), shown.clone());
                tokio::spawn(async move {
                    let r = put_one(&store, &shown, &key, members, pack).await;
                    drop(permit);
                    let _ = tx.send(r);
                });
            }
        });
        let mut first_error = None;
        while let Some(r) = rx.blocking_recv() {
            if let Err(e) = r.and_then(&mut done) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Download `names` into the local store, each verified; `packed` says where the packed
    /// ones are (the rest are on their own). Returns the problems by name.
    pub fn fetch(
        &self,
        store_dir: &Path,
        names: &[String],
        packed: &Locations,
    ) -> Vec<(String, FetchError)> {
        let objects = Arc::new(Objects::new(store_dir));
        let logs = Arc::new(LogObjects::new(store_dir));
        let tmp_dir = store_dir.join("objects").join("tmp");
        let _ = std::fs::create_dir_all(&tmp_dir);
        self.read(names, packed, move |name, bytes| {
            check_bytes(name, bytes)?;
            keep(name, bytes, &objects, &logs, &tmp_dir).map_err(FetchError::Failed)
        })
    }

    /// Check objects on the remote (`fsck --remote`): each present and hashing to its name.
    pub fn verify(&self, names: &[String], packed: &Locations) -> Vec<(String, FetchError)> {
        self.read(names, packed, check_bytes)
    }

    /// Read `names` (packed ones by range, `PARALLEL` requests at once) and hand each one's
    /// bytes to `each`; the problems by name.
    fn read(
        &self,
        names: &[String],
        packed: &Locations,
        each: impl Fn(&str, &[u8]) -> std::result::Result<(), FetchError> + Send + Sync + 'static,
    ) -> Vec<(String, FetchError)> {
        let each = Arc::new(each);
        let mut by_pack: std::collections::BTreeMap<&str, Vec<(String, Range<u64>)>> =
            Default::default();
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
                let (store, shown, each) = (store.clone(), shown.clone(), each.clone());
                set.spawn(async move {
                    let got = match &span {
                        Some(r) => store.get_range(&key, r.clone()).await,
                        None => match store.get(&key).await {
                            Ok(g) => g.bytes().await,
                            Err(e) => Err(e),
                        },
                    };
                    drop(permit);
                    let bytes = match got {
                        Err(object_store::Error::NotFound { .. }) => {
                            return members
                                .into_iter()
                                .map(|m| (m.0, Err(FetchError::Missing)))
                                .collect();
                        }
                        Err(e) => {
                            let e = remote_error(&shown, "reading", e);
                            let line = e.one_line();
                            let mut e = Some(e);
                            return members
                                .into_iter()
                                .map(|m| {
                                    let e = e.take().unwrap_or_else(|| Error::other(line.clone()));
                                    (m.0, Err(FetchError::Failed(e)))
                                })
                                .collect();
                        }
                        Ok(b) => b,
                    };
                    tokio::task::spawn_blocking(move || {
                        members
                            .into_iter()
                            .map(|(name, r)| {
                                let r = match &span {
                                    None => Some(0..bytes.len()),
                                    Some(s) => {
                                        let (a, b) = (r.start - s.start, r.end - s.start);
                                        (b as usize <= bytes.len())
                                            .then_some(a as usize..b as usize)
                                    }
                                };
                                let res = match r {
                                    Some(r) => each(&name, &bytes[r]),
                                    None => Err(FetchError::Corrupt {
                                        actual: "nothing (its pack is cut short)".into(),
                                    }),
                                };
                                (name, res)
                            })
                            .collect::<Vec<_>>()
                    })
                    .await
                    .unwrap_or_default()
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

/// Do `bytes` (as stored under `name`) hash to the name?
fn check_bytes(name: &str, bytes: &[u8]) -> std::result::Result<(), FetchError> {
    let (kind, hash) = name.split_once('/').unwrap_or(("sha256", name));
    let actual = if kind == "logs" {
        match zstd::decode_all(bytes) {
            Ok(plain) => hex::encode(Sha256::digest(&plain)),
            Err(_) => "not zstd".to_string(),
        }
    } else {
        hex::encode(Sha256::digest(bytes))
    };
    if actual == hash {
        Ok(())
    } else {
        Err(FetchError::Corrupt { actual })
    }
}

/// Read `members` (one object, or a pack's objects in order) and put them under `key`,
/// create-if-absent (an object or pack already there is the same bytes: names are hashes).
async fn put_one(
    store: &AmazonS3,
    shown: &str,
    key: &ObjPath,
    members: Vec<ToUpload>,
    pack: Option<String>,
) -> Result<Uploaded> {
    let (bytes, entries) = tokio::task::spawn_blocking(move || -> Result<_> {
        let total: u64 = members.iter().map(|m| m.size).sum();
        let mut buf = Vec::with_capacity(total as usize);
        let mut entries = Vec::with_capacity(members.len());
        for m in members {
            let pos = buf.len() as u64;
            std::fs::File::open(&m.path)
                .and_then(|mut f| f.read_to_end(&mut buf))
                .map_err(|e| {
                    Error::other(format!("cannot read object `{}`", m.path.display())).cause(e)
                })?;
            entries.push((m.name, pos, buf.len() as u64 - pos));
        }
        Ok((buf, entries))
    })
    .await
    .map_err(|e| Error::other("upload task failed").cause(e))??;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(key, PutPayload::from(bytes), opts).await {
        Ok(_)
        | Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => {}
        Err(e) => return Err(remote_error(shown, "uploading", e)),
    }
    Ok(match pack {
        Some(id) => Uploaded::Pack(id, entries),
        None => Uploaded::Loose(entries.into_iter().next().map(|e| e.0).unwrap_or_default()),
    })
}

/// Store verified bytes of object `name` in the local store.
fn keep(
    name: &str,
    bytes: &[u8],
    objects: &Objects,
    logs: &LogObjects,
    tmp_dir: &Path,
) -> Result<()> {
    let (kind, hash) = name.split_once('/').unwrap_or(("sha256", name));
    if kind != "logs" {
        return objects.put_bytes(bytes, hash);
    }
    let fail = |e: std::io::Error| Error::store("cannot write to the object store").cause(e);
    let mut f = tempfile::NamedTempFile::new_in(tmp_dir).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    let (_, path) = f.keep().map_err(|e| fail(e.error))?;
    logs.adopt(&path, hash)
}

/// One line naming the remote and saying what to fix.
pub fn remote_error(shown: &str, what: &str, e: object_store::Error) -> Error {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("nosuchbucket")
        || lower.contains("bucket does not exist")
        || lower.contains("specified bucket")
    {
        return Error::other(format!(
            "the remote objects {shown}: the bucket does not exist"
        ))
        .hint(
            "create the bucket, or fix the bucket name in [remote] objects / MLRUN_REMOTE_OBJECTS",
        );
    }
    if matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || lower.contains("accessdenied")
        || lower.contains("signaturedoesnotmatch")
        || lower.contains("invalidaccesskeyid")
        || lower.contains("403")
    {
        return Error::other(format!(
            "the remote objects {shown} refused the credentials while {what}"
        ))
        .hint("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or ~/.aws/credentials) to keys that may read and write the bucket");
    }
    if lower.contains("connect")
        || lower.contains("error sending request")
        || lower.contains("timed out")
        || lower.contains("dns")
    {
        return Error::other(format!("cannot reach the remote objects {shown} while {what}"))
            .hint("is the S3 server up and AWS_ENDPOINT_URL right? The local store is untouched; run the command again when it is back");
    }
    Error::other(format!("the remote objects {shown} failed while {what}"))
        .cause(e)
        .hint("the local store is untouched; run the command again")
}

/// Keys from the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
/// ~/.aws/credentials), profile AWS_PROFILE (else `default`). Read when connecting, kept only
/// in memory.
fn shared_credentials() -> Option<(String, String, Option<String>)> {
    let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws/credentials")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_string());
    let (mut key, mut secret, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => key = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((key?, secret?, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, size: u64) -> ToUpload {
        ToUpload {
            name: name.to_string(),
            path: std::path::PathBuf::from(name),
            size,
        }
    }

    #[test]
    fn small_objects_are_packed_in_name_order_and_large_ones_go_alone() {
        let mut objects = vec![obj("sha256/big", PACK_MAX_OBJECT + 1)];
        for i in (0..40).rev() {
            objects.push(obj(&format!("sha256/{i:02}"), 1 << 20));
        }
        let (packs, large) = plan(objects);
        assert_eq!(large.len(), 1);
        assert_eq!(large[0].name, "sha256/big");
        // 16 MiB a pack: 16, 16, 8
        let sizes: Vec<usize> = packs.iter().map(Vec::len).collect();
        assert_eq!(sizes, [16, 16, 8]);
        assert_eq!(packs[0][0].name, "sha256/00");
        assert_eq!(packs[2][7].name, "sha256/39");
        // the same objects make the same pack, others another
        let names = |p: &[ToUpload]| p.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
        let a = names(&packs[0]);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_eq!(pack_id(&refs), pack_id(&refs));
        assert_ne!(pack_id(&refs), pack_id(&refs[1..]));
    }

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

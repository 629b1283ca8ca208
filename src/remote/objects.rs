//! The team's objects on S3 (or an S3-compatible server): the same content-addressed names as
//! the local object store, under the configured prefix: `PREFIX/sha256/ab/cdef…` (a file's
//! bytes) and `PREFIX/logs/ab/cdef….zst` (a long step log, zstd). Uploads are create-if-absent
//! (`PutMode::Create`: an object already there is never rewritten); every download is hashed
//! before it enters the local store, and one that does not hash to its name is refused.

use std::io::Write;
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

use crate::config::Remote;
use crate::error::{Error, Result};
use crate::store::logs::LogObjects;
use crate::store::objects::Objects;

/// Uploads and downloads at once.
const PARALLEL: usize = 64;

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

    /// Upload `objects` (name, local file), create-if-absent, `PARALLEL` at once; `done` is
    /// called with each name once it is on the remote (uploaded now or found there).
    pub fn upload(
        &self,
        objects: Vec<(String, std::path::PathBuf)>,
        mut done: impl FnMut(&str),
    ) -> Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Result<()>)>();
        let shown = self.shown.clone();
        let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        let jobs: Vec<_> = objects
            .into_iter()
            .map(|(name, path)| (self.key(&name), name, path))
            .collect();
        let store = self.store.clone();
        self.rt.block_on(async move {
            for (key, name, path) in jobs {
                let permit = sem.clone().acquire_owned().await.expect("semaphore open");
                let store = store.clone();
                let tx = tx.clone();
                let shown = shown.clone();
                tokio::spawn(async move {
                    let r = async {
                        let bytes = tokio::task::spawn_blocking({
                            let path = path.clone();
                            move || std::fs::read(&path)
                        })
                        .await
                        .map_err(|e| Error::other("upload task failed").cause(e))?
                        .map_err(|e| {
                            Error::other(format!("cannot read object `{}`", path.display()))
                                .cause(e)
                        })?;
                        let opts = PutOptions {
                            mode: PutMode::Create,
                            ..Default::default()
                        };
                        match store.put_opts(&key, PutPayload::from(bytes), opts).await {
                            Ok(_) => Ok(()),
                            Err(object_store::Error::AlreadyExists { .. })
                            | Err(object_store::Error::Precondition { .. }) => Ok(()),
                            Err(e) => Err(remote_error(&shown, "uploading", e)),
                        }
                    }
                    .await;
                    drop(permit);
                    let _ = tx.send((name, r));
                });
            }
        });
        let mut first_error = None;
        while let Some((name, r)) = rx.blocking_recv() {
            match r {
                Ok(()) => done(&name),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Download `names` into the local store, each verified; returns the problems by name.
    pub fn fetch(&self, store_dir: &Path, names: &[String]) -> Vec<(String, FetchError)> {
        let objects = Arc::new(Objects::new(store_dir));
        let logs = Arc::new(LogObjects::new(store_dir));
        let tmp_dir = store_dir.join("objects").join("tmp");
        let _ = std::fs::create_dir_all(&tmp_dir);
        let store = self.store.clone();
        let shown = self.shown.clone();
        let jobs: Vec<_> = names.iter().map(|n| (self.key(n), n.clone())).collect();
        self.rt.block_on(async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
            let mut set = tokio::task::JoinSet::new();
            for (key, name) in jobs {
                let permit = sem.clone().acquire_owned().await.expect("semaphore open");
                let (store, shown, objects, logs, tmp_dir) = (
                    store.clone(),
                    shown.clone(),
                    objects.clone(),
                    logs.clone(),
                    tmp_dir.clone(),
                );
                set.spawn(async move {
                    let r = fetch_one(&store, &shown, &key, &name, &objects, &logs, &tmp_dir).await;
                    drop(permit);
                    (name, r)
                });
            }
            let mut problems = Vec::new();
            while let Some(j) = set.join_next().await {
                match j {
                    Ok((_, Ok(()))) => {}
                    Ok((name, Err(e))) => problems.push((name, e)),
                    Err(e) => problems.push((
                        String::new(),
                        FetchError::Failed(Error::other("download task failed").cause(e)),
                    )),
                }
            }
            problems
        })
    }

    /// Check objects on the remote (`fsck --remote`): each present and hashing to its name.
    pub fn verify(&self, names: &[String]) -> Vec<(String, FetchError)> {
        let store = self.store.clone();
        let shown = self.shown.clone();
        let jobs: Vec<_> = names.iter().map(|n| (self.key(n), n.clone())).collect();
        self.rt.block_on(async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
            let mut set = tokio::task::JoinSet::new();
            for (key, name) in jobs {
                let permit = sem.clone().acquire_owned().await.expect("semaphore open");
                let (store, shown) = (store.clone(), shown.clone());
                set.spawn(async move {
                    let r = match store.get(&key).await {
                        Err(object_store::Error::NotFound { .. }) => Err(FetchError::Missing),
                        Err(e) => Err(FetchError::Failed(remote_error(&shown, "reading", e))),
                        Ok(got) => match got.bytes().await {
                            Err(e) => Err(FetchError::Failed(remote_error(&shown, "reading", e))),
                            Ok(bytes) => check_bytes(&name, &bytes),
                        },
                    };
                    drop(permit);
                    (name, r)
                });
            }
            let mut problems = Vec::new();
            while let Some(Ok((name, r))) = set.join_next().await {
                if let Err(e) = r {
                    problems.push((name, e));
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

async fn fetch_one(
    store: &AmazonS3,
    shown: &str,
    key: &ObjPath,
    name: &str,
    objects: &Objects,
    logs: &LogObjects,
    tmp_dir: &Path,
) -> std::result::Result<(), FetchError> {
    let got = match store.get(key).await {
        Err(object_store::Error::NotFound { .. }) => return Err(FetchError::Missing),
        Err(e) => return Err(FetchError::Failed(remote_error(shown, "downloading", e))),
        Ok(g) => g,
    };
    let bytes = got
        .bytes()
        .await
        .map_err(|e| FetchError::Failed(remote_error(shown, "downloading", e)))?;
    check_bytes(name, &bytes)?;
    let (kind, hash) = name.split_once('/').unwrap_or(("sha256", name));
    let stored = if kind == "logs" {
        (|| {
            let mut f = tempfile::NamedTempFile::new_in(tmp_dir)
                .map_err(|e| Error::store("cannot write to the object store").cause(e))?;
            f.write_all(&bytes)
                .map_err(|e| Error::store("cannot write to the object store").cause(e))?;
            let (_, path) = f
                .keep()
                .map_err(|e| Error::store("cannot write to the object store").cause(e.error))?;
            logs.adopt(&path, hash)
        })()
    } else {
        objects.put_bytes(&bytes, hash)
    };
    stored.map_err(FetchError::Failed)
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

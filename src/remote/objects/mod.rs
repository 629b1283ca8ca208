//! The team's objects on S3 (or an S3-compatible server): the same content-addressed names as
//! the local object store, under the configured prefix: `PREFIX/sha256/ab/cdef…` (a file's
//! bytes) and `PREFIX/logs/ab/cdef….zst` (a long step log, zstd); objects up to
//! `PACK_MAX_OBJECT` are packed (`PREFIX/packs/<id>.pack`, their bytes one after another, one
//! request for thousands: the server's cost is per request) and read back by byte range, where
//! the record's `pack_objects` says they are. Uploads are create-if-absent
//! (`PutMode::Create`: an object already there is never rewritten); every download is hashed
//! before it enters the local store, and one that does not hash to its name is refused.

mod download;
mod upload;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::config::Remote;
use crate::error::{Error, Result};

pub use upload::{ToUpload, Uploaded};

/// Uploads and downloads at once.
const PARALLEL: usize = 64;

/// Objects up to this size are packed with others; larger ones are uploaded on their own.
pub const PACK_MAX_OBJECT: u64 = 1 << 20;
/// A pack is closed once it holds this many bytes.
const PACK_BYTES: u64 = 16 << 20;
/// Permits a pack upload takes of `PARALLEL` (so at most 4 packs are in flight at once).
const PACK_PERMITS: u32 = (PARALLEL / 4) as u32;
/// A read of a pack covers at most this many bytes (ranges closer than `GAP` are merged): a
/// pack is read by several requests at once, each span hashed and stored while the next ones
/// arrive.
const SPAN_BYTES: u64 = 4 << 20;
const GAP: u64 = 64 << 10;

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
        let plain_http = remote
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let file_keys = if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            shared_credentials()
        } else {
            None
        };
        let static_keys = file_keys.is_some() || std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
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
                    .with_allow_http(plain_http)
                    // plain HTTP with keys given: no TLS anywhere, so the system's trust store
                    // (hundreds of certificate files, ~10 ms) is not read. Credentials fetched
                    // from a provider (STS, a container endpoint) may need TLS: keep it then.
                    .with_no_system_certificates(plain_http && static_keys),
            );
        if let Some(ep) = &remote.endpoint {
            b = b.with_endpoint(ep);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        if let Some((key, secret, token)) = file_keys {
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

    /// Delete the objects `names`, stored on their own (`fsck --remote --repair`: damaged ones,
    /// so the push that sends them again, create-if-absent, is not turned away by them). One
    /// already gone is no error.
    pub fn remove(&self, names: &[String]) -> Result<()> {
        let keys: Vec<ObjPath> = names.iter().map(|n| self.key(n)).collect();
        let store = self.store.clone();
        let r = self.rt.block_on(async move {
            for k in keys {
                match store.delete(&k).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        r.map_err(|e| self.error("deleting damaged objects", e))
    }
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

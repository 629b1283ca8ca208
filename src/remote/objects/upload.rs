//! Uploads: small objects packed together, large ones on their own; the largest in parts
//! (multipart), read from their file part by part, so a push's memory does not grow with the
//! size of a model.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use super::{Bucket, PACK_BYTES, PACK_MAX_OBJECT, PACK_PERMITS, PARALLEL, remote_error};
use crate::error::{Error, Result};

/// Objects over this size are uploaded in parts of this size (S3 wants at least 5 MiB).
const PART_BYTES: usize = 8 << 20;
/// Parts of one object in flight at once: with the part being filled, one multipart upload
/// holds at most 3 parts (24 MiB) in memory; it takes `PACK_PERMITS` of `PARALLEL`, so at most
/// 4 run at once (~96 MiB), whatever the objects' sizes.
const PARTS_IN_FLIGHT: usize = 2;

/// One finished upload.
#[derive(Debug)]
pub enum Uploaded {
    /// An object on its own, by name
    Loose(String),
    /// A pack: its id, and each object in it as (name, position, length)
    Pack(String, Vec<(String, u64, u64)>),
}

/// An object to upload: its name, its local file and size; `loose`: on its own whatever its
/// size (one the remote had damaged, re-sent after `fsck --remote --repair`: a new pack of the
/// same objects would have the same name as a damaged one).
pub struct ToUpload {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub loose: bool,
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

/// Small objects in groups of about `PACK_BYTES` (name order), large (and `loose`) ones alone.
fn plan(objects: Vec<ToUpload>) -> (Vec<Vec<ToUpload>>, Vec<ToUpload>) {
    let (mut small, large): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|o| o.size <= PACK_MAX_OBJECT && !o.loose);
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

impl Bucket {
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
                let in_parts = pack.is_none() && members[0].size > PART_BYTES as u64;
                let n = if pack.is_some() || in_parts {
                    PACK_PERMITS
                } else {
                    1
                };
                let permit = sem
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .expect("semaphore open");
                let (store, tx, shown) = (store.clone(), tx.clone(), shown.clone());
                tokio::spawn(async move {
                    let r = if in_parts {
                        let m = members.into_iter().next().expect("one object");
                        put_in_parts(&store, &shown, &key, m).await
                    } else {
                        put_one(&store, &shown, &key, members, pack).await
                    };
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
                .map_err(|e| cannot_read(&m.path, e))?;
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

fn cannot_read(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::other(format!("cannot read object `{}`", path.display())).cause(e)
}

/// Upload object `m` in parts of `PART_BYTES`, read from its file as they are sent (at most
/// `PARTS_IN_FLIGHT` + 1 parts in memory).
///
/// Create-if-absent as far as multipart allows: object_store cannot make a multipart upload
/// conditional, so the object is looked for first (HEAD) and not sent when it is there. Two
/// pushes racing past that check both write the object whole: names are the hashes of the
/// contents, so the second writes the very bytes the first did, and nothing reading it can
/// see a difference (S3 makes a completed multipart upload visible at once, whole).
async fn put_in_parts(
    store: &AmazonS3,
    shown: &str,
    key: &ObjPath,
    m: ToUpload,
) -> Result<Uploaded> {
    match store.head(key).await {
        Ok(_) => return Ok(Uploaded::Loose(m.name)),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(remote_error(shown, "uploading", e)),
    }
    let mut file = std::fs::File::open(&m.path).map_err(|e| cannot_read(&m.path, e))?;
    let upload = store
        .put_multipart(key)
        .await
        .map_err(|e| remote_error(shown, "uploading", e))?;
    let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let sent: Result<()> = async {
        loop {
            parts
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| remote_error(shown, "uploading", e))?;
            let mut buf = vec![0u8; PART_BYTES];
            let n = tokio::task::block_in_place(|| read_full(&mut file, &mut buf))
                .map_err(|e| cannot_read(&m.path, e))?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            parts.put(Bytes::from(buf));
        }
    }
    .await;
    if let Err(e) = sent {
        let _ = parts.abort().await;
        return Err(e);
    }
    parts
        .finish()
        .await
        .map_err(|e| remote_error(shown, "uploading", e))?;
    Ok(Uploaded::Loose(m.name))
}

/// Fill `buf` from `f` (short only at the end of the file).
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, size: u64) -> ToUpload {
        ToUpload {
            name: name.to_string(),
            path: std::path::PathBuf::from(name),
            size,
            loose: false,
        }
    }

    #[test]
    fn small_objects_are_packed_in_name_order_and_large_ones_go_alone() {
        let mut objects = vec![obj("sha256/big", PACK_MAX_OBJECT + 1)];
        // a small object re-sent after `fsck --remote --repair` goes on its own
        objects.push(ToUpload {
            loose: true,
            ..obj("sha256/repaired", 10)
        });
        for i in (0..40).rev() {
            objects.push(obj(&format!("sha256/{i:02}"), 1 << 20));
        }
        let (packs, large) = plan(objects);
        let large: Vec<&str> = large.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(large, ["sha256/big", "sha256/repaired"]);
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
}

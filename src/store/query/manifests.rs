//! Directory versions' manifests and the contents rows they are kept in.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::fingerprint::hash::{Entry, Fingerprint, parse_manifest};

/// The bytes of a `contents.data` value; `None` when there is none. mlrun writes blobs, but a
/// damaged store may hold anything: text is taken as its bytes, a number as no bytes (which
/// then fails its hash check rather than the query).
pub(super) fn content_bytes(v: rusqlite::types::ValueRef<'_>) -> Option<&[u8]> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => None,
        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b),
        ValueRef::Integer(_) | ValueRef::Real(_) => Some(&[]),
    }
}

/// The manifest of a directory version: the bytes its hash is the SHA-256 of (see
/// `fingerprint::hash::manifest`).
pub(in crate::store) fn dir_manifest(conn: &Connection, dir_hash: &str) -> Result<Vec<u8>> {
    conn.prepare_cached("SELECT data FROM contents WHERE hash = ?1")?
        .query_row([dir_hash], |r| {
            Ok(content_bytes(r.get_ref(0)?).map(<[u8]>::to_vec))
        })
        .optional()?
        .flatten()
        .ok_or_else(|| {
            Error::store(format!(
                "the lineage store has no manifest for directory version {dir_hash}"
            ))
            .hint("run `mlrun fsck` to check the store")
        })
}

/// The entries of a directory version, sorted by relative path.
pub(in crate::store) fn dir_entry_list(conn: &Connection, dir_hash: &str) -> Result<Vec<Entry>> {
    parse_manifest(&dir_manifest(conn, dir_hash)?).ok_or_else(|| {
        Error::store(format!(
            "the manifest of directory version {dir_hash} in the lineage store is damaged"
        ))
        .hint("run `mlrun fsck` to check the store")
    })
}

/// A recorded version as a fingerprint, from its blob row (a directory's manifest read back);
/// `mode` NULL (recorded before modes were) is a plain file's.
pub(in crate::store) fn fingerprint_of(
    conn: &Connection,
    hash: String,
    kind: &str,
    size: i64,
    mode: Option<i64>,
) -> Result<Fingerprint> {
    Ok(if kind == "dir" {
        let entries = dir_entry_list(conn, &hash)?;
        Fingerprint::Dir {
            hash,
            size: size as u64,
            entries: std::sync::Arc::new(entries),
        }
    } else {
        Fingerprint::File {
            hash,
            size: size as u64,
            mode: mode.unwrap_or(0o100644) as u32,
        }
    })
}

/// Call `f` with the hash and manifest of every recorded directory version (`None`: its manifest
/// is missing), one at a time: a store can hold many large manifests.
pub(in crate::store) fn for_each_dir_manifest(
    conn: &Connection,
    mut f: impl FnMut(&str, Option<&[u8]>) -> Result<()>,
) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT b.hash, c.data FROM blobs b LEFT JOIN contents c ON c.hash = b.hash WHERE b.kind = 'dir'",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let hash = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        f(hash, content_bytes(r.get_ref(1)?))?;
    }
    Ok(())
}

/// The files of a directory version: relative path → content hash.
pub(in crate::store) fn dir_entries(
    conn: &Connection,
    dir_hash: &str,
) -> Result<BTreeMap<String, String>> {
    Ok(dir_entry_list(conn, dir_hash)?
        .into_iter()
        .map(|e| (e.relpath, e.hash))
        .collect())
}

//! Installed packages in the store: package lists (`package_sets`, content-addressed), the
//! environments a snapshot names (`env_snapshots.packages`) and the scan cache
//! (`package_scan_cache`). See `fingerprint::packages`.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::During;
use crate::error::Result;
use crate::fingerprint::packages::{CachedScan, Package, PackageEnv, PackageSet};
use crate::fingerprint::system::Installed;

/// Write the lists read from disk (once per hash) and remember their scans.
pub(super) fn put(tx: &Connection, installed: &Installed) -> Result<()> {
    for i in installed.0.values() {
        if let Some(set) = &i.set {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO package_sets (hash, count, data) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![set.hash, set.packages.len() as i64, set.data])?;
        }
        if let Some(c) = &i.remember {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO package_scan_cache (executable, stamp, scanned_at_ns, env, set_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                c.executable,
                c.stamp,
                c.scanned_at_ns,
                serde_json::to_string(&c.env).unwrap_or_default(),
                c.env.hash
            ])?;
        }
    }
    Ok(())
}

/// The scans remembered from earlier runs whose package list the store still has.
pub(super) fn remembered_scans(conn: &Connection) -> Result<Vec<CachedScan>> {
    let mut stmt = conn.prepare(
        "SELECT c.executable, c.stamp, c.scanned_at_ns, c.env FROM package_scan_cache c
         JOIN package_sets s ON s.hash = c.set_hash",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(executable, stamp, scanned_at_ns, env)| {
            Some(CachedScan {
                executable,
                stamp,
                scanned_at_ns,
                env: serde_json::from_str(&env).ok()?,
            })
        })
        .collect())
}

/// A package list by hash (`None`: the store does not have it).
pub(super) fn package_set(conn: &Connection, hash: &str) -> Result<Option<Vec<Package>>> {
    let data: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM package_sets WHERE hash = ?1")?
        .query_row([hash], |r| r.get(0))
        .optional()?;
    Ok(data.and_then(|d| PackageSet::parse(&d)))
}

/// An interpreter's environment as recorded, with its packages (the `packages` of an
/// environment in `--json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EnvPackages {
    #[serde(flatten)]
    pub env: PackageEnv,
    /// every distribution with its exact version; empty when the store lost the list
    pub packages: Vec<Package>,
}

/// `env_snapshots.packages` with each list read back.
pub(super) fn env_packages(
    conn: &Connection,
    json: Option<&str>,
) -> Result<BTreeMap<String, EnvPackages>> {
    let envs: BTreeMap<String, PackageEnv> = json
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for (prog, env) in envs {
        let packages = package_set(conn, &env.hash)?.unwrap_or_default();
        out.insert(prog, EnvPackages { env, packages });
    }
    Ok(out)
}

/// Package lists that are not what their hash says (`package list corrupt`) and lists an
/// environment snapshot names that the store lacks (`package list missing`), for `fsck`.
pub(super) fn damaged_sets(conn: &Connection) -> Result<Vec<(String, &'static str)>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare("SELECT hash, data FROM package_sets")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let hash: String = r.get(0)?;
        let data: Option<Vec<u8>> = r.get(1).ok();
        let ok = data.is_some_and(|d| {
            crate::fingerprint::hash::sha256_bytes(&d) == hash && PackageSet::parse(&d).is_some()
        });
        if !ok {
            out.push((hash, "package list corrupt"));
        }
    }
    let mut stmt = conn.prepare(
        "SELECT DISTINCT json_extract(j.value, '$.hash') FROM env_snapshots e, json_each(e.packages) j
         WHERE e.packages IS NOT NULL AND json_valid(e.packages)
           AND json_extract(j.value, '$.hash') NOT IN (SELECT hash FROM package_sets)",
    )?;
    for h in stmt.query_map([], |r| r.get::<_, Option<String>>(0))? {
        if let Some(h) = h? {
            out.push((h, "package list missing"));
        }
    }
    Ok(out)
}

impl super::Store {
    /// The package scans remembered by directory inode and mtime.
    pub fn remembered_scans(&self) -> Result<Vec<CachedScan>> {
        remembered_scans(&self.conn).during("reading the remembered package scans")
    }

    /// Store an environment's package lists (content-addressed) and remember its scans, as a
    /// step's record does inside its transaction; here each statement is its own write.
    pub fn put_packages(&self, installed: &Installed) -> Result<()> {
        put(&self.conn, installed).during("recording the package lists")
    }
}

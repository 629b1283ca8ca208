//! `mlrun gc`: delete objects that the kept runs no longer reference. The lineage record is never
//! deleted: versions whose bytes are gone stay in the graph, marked as not restorable.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::cli::GcArgs;
use crate::error::{Error, Result};
use crate::fingerprint::hash::{MODE_LINK, parse_manifest};
use crate::report::{self, ColorChoice, Style};
use crate::store::logs::{Collected, LogObjects};
use crate::store::objects::Objects;
use crate::store::query;
use crate::store::{self, Store};

/// Leftover temporaries younger than this may belong to a store write in progress.
const TMP_GRACE: Duration = Duration::from_secs(3600);

pub fn gc(args: GcArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let store = Store::open_existing(&dir)?;
    let style = Style::stdout(color);
    let conn = &store.conn;

    let kept_clause = match args.keep_last {
        Some(n) => format!(
            "SELECT id FROM (SELECT id FROM runs ORDER BY started_at DESC LIMIT {n}) UNION SELECT id FROM runs WHERE status = 'running'"
        ),
        None => "SELECT id FROM runs".to_string(),
    };
    let mut referenced: HashSet<String> = HashSet::new();
    let sql = format!(
        "WITH kept(id) AS ({kept_clause}),
              used(hash) AS (SELECT DISTINCT v.blob_hash FROM io_edges e
                             JOIN step_execs s ON s.id = e.step_exec JOIN kept k ON k.id = s.run_id
                             JOIN artifact_versions v ON v.id = e.av_id)
         SELECT hash FROM used"
    );
    let mut stmt = conn.prepare(&sql)?;
    for h in stmt.query_map([], |r| r.get::<_, String>(0))? {
        referenced.insert(h?);
    }
    drop(stmt);
    // the files of a kept directory version are kept with it
    let mut in_dirs = Vec::new();
    let mut unreadable = Vec::new();
    query::for_each_dir_manifest(conn, |hash, data| {
        if referenced.contains(hash) {
            match data.and_then(parse_manifest) {
                Some(entries) => in_dirs.extend(entries.into_iter().map(|e| e.hash)),
                None => unreadable.push(hash.to_string()),
            }
        }
        Ok(())
    })?;
    if let Some(first) = unreadable.first() {
        // which objects those versions need is unknown: deleting anything could lose them
        return Err(Error::store(format!(
            "the manifest of {} kept directory version{} (e.g. {}) is missing or damaged, so gc cannot tell which objects it needs; nothing was deleted",
            unreadable.len(),
            if unreadable.len() == 1 { "" } else { "s" },
            &first[..12.min(first.len())]
        ))
        .hint("`mlrun fsck` lists them; running the step that produces such a directory records its manifest again"));
    }
    referenced.extend(in_dirs);
    // Objects written by a run still in progress may not be referenced yet: leave anything newer
    // than the oldest running run alone.
    let oldest_running: Option<i64> = conn.query_row(
        "SELECT min(started_at) FROM runs WHERE status = 'running'",
        [],
        |r| r.get(0),
    )?;
    let guard = oldest_running.map(|ms| {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64) - Duration::from_secs(60)
    });

    // the whole logs of long step outputs (`objects/logs/`)
    let logs = LogObjects::new(&dir).collect_garbage(conn, args.keep_last, guard, args.dry_run)?;

    let objects = Objects::new(&dir);
    let mut doomed = Vec::new();
    let mut bytes = 0u64;
    for (hash, _path, size, modified) in objects.list() {
        if referenced.contains(&hash) || guard.is_some_and(|g| modified >= g) {
            continue;
        }
        bytes += size;
        doomed.push(hash);
    }
    let mut tmp_removed = 0;
    if !args.dry_run
        && let Ok(rd) = std::fs::read_dir(dir.join("objects/tmp"))
    {
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m.elapsed().unwrap_or_default() > TMP_GRACE);
            if old && std::fs::remove_file(e.path()).is_ok() {
                tmp_removed += 1;
            }
        }
    }
    let kept_desc = match args.keep_last {
        Some(n) => format!("the {n} most recent run{}", if n == 1 { "" } else { "s" }),
        None => "any run".to_string(),
    };
    if args.dry_run {
        println!(
            "would delete {} object{} ({}) not referenced by {kept_desc}{}",
            doomed.len(),
            if doomed.len() == 1 { "" } else { "s" },
            report::size(bytes),
            logs_note(&logs)
        );
        return Ok(0);
    }
    let mut removed = HashSet::new();
    for h in doomed {
        if objects.remove(&h).is_ok() {
            removed.insert(h);
        }
    }
    let deleted = removed.len();
    // a directory version is restorable only while every one of its files is
    let mut broken_dirs = Vec::new();
    query::for_each_dir_manifest(conn, |hash, data| {
        if let Some(entries) = data.and_then(parse_manifest)
            && entries
                .iter()
                .any(|e| e.mode != MODE_LINK && removed.contains(&e.hash))
        {
            broken_dirs.push(hash.to_string());
        }
        Ok(())
    })?;
    let tx = store.conn.unchecked_transaction()?;
    for h in removed.iter().chain(&broken_dirs) {
        tx.execute("UPDATE blobs SET stored = 0 WHERE hash = ?1", [h])?;
    }
    tx.commit()?;
    println!(
        "{} {deleted} object{} ({}) not referenced by {kept_desc}{}{}",
        style.bold("deleted"),
        if deleted == 1 { "" } else { "s" },
        report::size(bytes),
        logs_note(&logs),
        if tmp_removed > 0 {
            format!("; removed {tmp_removed} stale temporary files")
        } else {
            String::new()
        }
    );
    Ok(0)
}

/// ", and 2 step logs (1.3 GB)": the log objects gc deleted, when there were any.
fn logs_note(logs: &Collected) -> String {
    if logs.deleted == 0 {
        return String::new();
    }
    format!(
        ", and {} step log{} ({})",
        logs.deleted,
        if logs.deleted == 1 { "" } else { "s" },
        report::size(logs.bytes)
    )
}

//! `mlrun gc`: delete objects that the kept runs no longer reference. The lineage record is never
//! deleted: versions whose bytes are gone stay in the graph, marked as not restorable.
//!
//! Safety, in order:
//! - gc holds the store's objects lock exclusively (`store::lock::ObjectsExclusive`) while it
//!   decides and deletes, so no run is between storing an object and recording it meanwhile;
//!   objects a run stored or found earlier and will record later have a modification time after
//!   its start, and gc keeps everything modified since the oldest running run started;
//! - the database is told first (`blobs.stored = 0`), the files are deleted after: a gc killed
//!   half-way leaves objects the database no longer claims (the next gc deletes them), never a
//!   claim without its object. Claims found without an object (a gc of an older mlrun killed
//!   half-way, files deleted by hand) are corrected in the same transaction;
//! - a database that records no runs while objects exist (lost, truncated, replaced) makes gc
//!   delete nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::report::Role;
use crate::report::{self, ColorChoice, Style};
use crate::store::lock::ObjectsExclusive;
use crate::store::logs::{Collected, LogObjects};
use crate::store::marks::KeepLast;
use crate::store::objects::Objects;
use crate::store::{self, Kept, Store, WriteError};

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Keep the objects of the N most recent successful runs (and of every run since the oldest
    /// of them) only [default: keep every run's objects]
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,

    /// With --keep-last: count failed and interrupted runs among the N too
    #[arg(long, requires = "keep_last")]
    pub count_all: bool,

    /// Say what would be deleted and how much space it would free, without deleting
    #[arg(long)]
    pub dry_run: bool,
}

/// Test-only fault injection (documented in ARCHITECTURE.md): after deleting this many objects
/// (the database already updated, the lock held), gc says so on stderr and waits until its stdin
/// is closed, so a test can SIGKILL it at that exact point, or start a run meanwhile.
const PAUSE_AFTER_ENV: &str = "MLRUN_TEST_GC_PAUSE_AFTER";

pub fn gc(args: GcArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let (store, writable) = open(&dir)?;
    let style = Style::stdout(color);
    let _lock = ObjectsExclusive::take(&dir, |what| {
        eprintln!("waiting for {what} to finish…");
    })?;

    let objects = Objects::new(&dir);
    let listed = objects.list();
    // runs removed with `mlrun rm` are history that is known, not a lost database
    if store.run_count()? == 0 && store.removed_count()? == 0 && !listed.is_empty() {
        let bytes: u64 = listed.iter().map(|o| o.2).sum();
        println!(
            "deleted nothing: the database records no runs, but the store holds {} object{} ({}); if the database was lost or replaced, they are what is left of its history",
            listed.len(),
            if listed.len() == 1 { "" } else { "s" },
            report::size(bytes)
        );
        return Ok(0);
    }

    let keep = args.keep_last.map(|n| KeepLast {
        n,
        any_status: args.count_all,
    });
    let referenced = referenced(&store, keep)?;
    // Objects stored or found by a run in progress may not be referenced yet: leave anything
    // modified since the oldest running run started alone (a minute earlier: file times are
    // coarser than the clock).
    let guard = store.oldest_running_start()?.map(|ms| {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64) - Duration::from_secs(60)
    });

    // the whole logs of long step outputs (`objects/logs/`)
    let logs = store.collect_log_garbage(&LogObjects::new(&dir), keep, guard, args.dry_run)?;
    let d = decide(&store, listed, &referenced, guard)?;
    let kept_desc = kept_desc(&args);
    let no_replay = no_longer_replay(&store, keep, &d.doomed)?;
    if args.dry_run {
        println!(
            "would delete {} object{} ({}) not referenced by {kept_desc}{}",
            d.doomed.len(),
            if d.doomed.len() == 1 { "" } else { "s" },
            report::size(d.bytes),
            logs_note(&logs)
        );
        if let Some(line) = replay_line(&no_replay, true) {
            println!("{}", style.paint(Role::Warn, &line));
        }
        return Ok(0);
    }
    let (deleted, freed) = delete(&dir, &store, writable, &objects, &d, color)?;
    let stale = &d.stale;
    println!(
        "{} {deleted} object{} ({}) not referenced by {kept_desc}{}{}",
        style.paint(Role::Strong, "deleted"),
        if deleted == 1 { "" } else { "s" },
        report::size(freed),
        logs_note(&logs),
        if stale.is_empty() {
            String::new()
        } else {
            format!(
                "; {} version{} recorded as stored had lost {} object and {} now marked as not restorable",
                stale.len(),
                if stale.len() == 1 { "" } else { "s" },
                if stale.len() == 1 { "its" } else { "their" },
                if stale.len() == 1 { "is" } else { "are" },
            )
        }
    );
    if let Some(line) = replay_line(&no_replay, false) {
        println!("{}", style.paint(Role::Warn, &line));
    }
    Ok(0)
}

/// The store, and whether it could be opened for writing: a store on a full disk may not, and
/// gc then frees space first (`delete`).
fn open(dir: &Path) -> Result<(Store, bool)> {
    let (mut store, mut writable) = Store::open_maybe_writable(dir)?;
    if !writable && !store::disk_full(dir) {
        // not for lack of space: gc could not delete either; say why it cannot write
        store = Store::open_existing(dir)?;
        writable = true;
    }
    Ok((store, writable))
}

/// The objects the kept runs need, with the files of the kept directory versions; an error
/// when a kept directory's manifest cannot be read (then which objects it needs is unknown).
fn referenced(store: &Store, keep: Option<KeepLast>) -> Result<HashSet<String>> {
    store.refuse_if_damaged()?;
    let Kept {
        objects: referenced,
        unreadable_manifests: unreadable,
    } = store.kept_objects(keep)?;
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
    Ok(referenced)
}

/// What gc will delete, and the database claims it will correct.
struct Decision {
    /// objects no kept run needs, older than the guard
    doomed: HashSet<String>,
    /// their size
    bytes: u64,
    /// claims without an object, corrected along with the deletions
    stale: HashSet<String>,
}

fn decide(
    store: &Store,
    listed: Vec<(String, PathBuf, u64, SystemTime)>,
    referenced: &HashSet<String>,
    guard: Option<SystemTime>,
) -> Result<Decision> {
    let mut doomed = HashSet::new();
    let mut bytes = 0u64;
    let mut present = HashSet::new();
    for (hash, _path, size, modified) in listed {
        if !referenced.contains(&hash) && guard.is_none_or(|g| modified < g) {
            bytes += size;
            doomed.insert(hash.clone());
        }
        present.insert(hash);
    }
    let stale: HashSet<String> = store
        .stored_files()?
        .into_iter()
        .filter(|h| !present.contains(h))
        .collect();
    Ok(Decision {
        doomed,
        bytes,
        stale,
    })
}

/// Which runs' objects are kept, in words.
fn kept_desc(args: &GcArgs) -> String {
    match args.keep_last {
        Some(n) if args.count_all => {
            format!("the {n} most recent run{}", if n == 1 { "" } else { "s" })
        }
        Some(n) => format!(
            "the {n} most recent successful run{} (and the runs since)",
            if n == 1 { "" } else { "s" }
        ),
        None => "any run".to_string(),
    }
}

/// The database first, then the files; on a full disk, the files first to make room. Returns
/// how many objects were deleted and the bytes freed.
fn delete(
    dir: &Path,
    store: &Store,
    writable: bool,
    objects: &Objects,
    d: &Decision,
    color: ColorChoice,
) -> Result<(usize, u64)> {
    let gone: HashSet<String> = d.doomed.iter().chain(&d.stale).cloned().collect();
    // a directory version is restorable only while every one of its files is
    let broken_dirs = store.dirs_needing(&gone)?;
    let first = if writable {
        store
            .mark_not_stored(gone.iter().chain(&broken_dirs))
            .map(|_| ())
    } else {
        Err(WriteError::disk_full())
    };
    match first {
        Ok(()) => Ok(delete_files(objects, &d.doomed)),
        Err(e) if e.is_disk_full() => {
            // No room for the database's update (or even to open it for writing): make some by
            // deleting first. Killed before the update, this leaves claims without objects,
            // which the next gc (or `mlrun fsck --repair`) corrects.
            eprintln!(
                "{} the disk is full: deleting the objects before updating the database",
                Style::stderr(color).paint(Role::Warn, "note:")
            );
            let (deleted, freed) = delete_files(objects, &d.doomed);
            let update = || -> Result<()> {
                let reopened;
                let store = if writable {
                    store
                } else {
                    reopened = Store::open_existing(dir)?;
                    &reopened
                };
                store.mark_not_stored(gone.iter().chain(&broken_dirs))?;
                Ok(())
            };
            update().map_err(|e| {
                Error::store(format!(
                    "{deleted} objects were deleted but the database could not be updated"
                ))
                .cause(e)
                .hint("free some space and run `mlrun gc` (or `mlrun fsck --repair`) again to correct it")
            })?;
            Ok((deleted, freed))
        }
        Err(e) => Err(Error::store("cannot update the database; nothing was deleted").cause(e)),
    }
}

/// Delete the objects, in hash order: how many were deleted and the bytes freed.
fn delete_files(objects: &Objects, doomed: &HashSet<String>) -> (usize, u64) {
    let (mut deleted, mut freed) = (0, 0u64);
    let pause_after: Option<usize> = std::env::var(PAUSE_AFTER_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let mut sorted: Vec<&String> = doomed.iter().collect();
    sorted.sort();
    for h in sorted {
        if pause_after == Some(deleted) {
            eprintln!("gc: paused after {deleted} deletions ({PAUSE_AFTER_ENV})");
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        }
        let size = std::fs::metadata(objects.path_of(h)).map_or(0, |m| m.len());
        if objects.remove(h).is_ok() {
            deleted += 1;
            freed += size;
        }
    }
    (deleted, freed)
}

/// The runs (shown ids, newest first) whose replay needs a stored input copy among `doomed`.
fn no_longer_replay(
    store: &Store,
    keep: Option<KeepLast>,
    doomed: &HashSet<String>,
) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    if doomed.is_empty() {
        return Ok(out);
    }
    for (run, hash, kind) in store.unkept_external_inputs(keep)? {
        let short = store.short_id(&run)?;
        if out.contains(&short) {
            continue;
        }
        let needs = if kind == "dir" {
            store
                .dir_entry_list(&hash)
                .map(|entries| entries.iter().any(|e| doomed.contains(&e.hash)))
                .unwrap_or(false)
        } else {
            doomed.contains(&hash)
        };
        if needs {
            out.push(short);
        }
    }
    Ok(out)
}

/// "2 runs will no longer replay …", naming them (at most 10).
fn replay_line(runs: &[String], dry_run: bool) -> Option<String> {
    if runs.is_empty() {
        return None;
    }
    const SHOWN: usize = 10;
    let mut names = runs[..runs.len().min(SHOWN)].join(", ");
    if runs.len() > SHOWN {
        names += &format!(" and {} more", runs.len() - SHOWN);
    }
    Some(format!(
        "{} run{} {} no longer replay (the stored copies of inputs {} read {} deleted): {names}",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        if dry_run { "would" } else { "will" },
        if runs.len() == 1 { "it" } else { "they" },
        if dry_run { "would be" } else { "are" },
    ))
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

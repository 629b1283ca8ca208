//! `mlrun fsck`: check the database (`PRAGMA integrity_check`) and re-hash every stored object;
//! report corrupt and missing objects with the paths whose versions need them. Exit 1 on any
//! problem left. `--repair` marks the versions whose objects are gone as not restorable (the
//! database then tells the truth again), and replaces a lost database by a new one that keeps the
//! objects. A damaged database is only read, never repaired in place.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::fingerprint::hash::{MODE_LINK, parse_manifest, sha256_bytes};
use crate::report::Role;
use crate::report::{self, ColorChoice, Style};
use crate::store::logs::LogObjects;
use crate::store::objects::{Objects, quarantine_corrupt};
use crate::store::{self, Store};

#[derive(Debug, clap::Args)]
pub struct FsckArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,

    /// Correct what can be: versions recorded as stored whose objects are gone are marked not
    /// restorable; a lost (missing or empty) database is replaced by a new one that keeps the
    /// objects. With --remote: damaged or missing objects stop counting as on the remote, and
    /// the runs pushed from here that need them are sent again by the next `mlrun push`
    #[arg(long)]
    pub repair: bool,

    /// Check the team remote instead: every object its runs need is there and hashes to its
    /// name, and no run is recorded twice
    #[arg(long)]
    pub remote: bool,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub hash: String,
    /// `corrupt` or `missing` (an object); `manifest missing` or `manifest corrupt` (a
    /// directory version's manifest in the database); `package list missing` or `package list
    /// corrupt` (the installed packages a step recorded)
    pub problem: &'static str,
    /// artifact paths with a version that needs this object
    pub paths: Vec<String>,
    /// a corrupt object was moved to `.mlrun/objects/corrupt/`
    pub quarantined: bool,
    /// `--repair`: the versions that need it are now recorded as not restorable
    pub repaired: bool,
    /// for the whole log of a step (`log corrupt`, `log missing`): one execution that printed
    /// it, `RUN:STEP stream`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub database_ok: bool,
    pub database_messages: Vec<String>,
    pub objects_checked: usize,
    pub bytes_checked: u64,
    pub findings: Vec<Finding>,
    /// the database file is missing or empty while objects exist (`is missing`, `is empty (0
    /// bytes)`); null otherwise
    pub lost_database: Option<String>,
    /// `--repair` started a new database beside the objects of a lost one
    pub new_database: bool,
}

pub fn fsck(args: FsckArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    if args.remote {
        return super::push::fsck_remote(args.json, args.repair, store_dir);
    }
    let dir = store::find_dir(store_dir)?;
    if let Some((what, _)) = store::lost_database(&dir) {
        return fsck_lost(args, &dir, what, color);
    }
    let (store, writable, messages) = Store::open_for_check(&dir)?;
    let database_ok = messages == ["ok"];

    let objects = Objects::new(&dir);
    let progress = crate::report::progress::Ticker::start(
        "checking the stored objects",
        crate::report::Style::stderr(color),
    );
    let listed = objects.list();
    let bytes_checked: u64 = listed.iter().map(|o| o.2).sum();
    let mut findings = corrupt_objects(&objects, &listed);
    drop(progress);
    if database_ok {
        // the recorded package lists: each must hash to its name, and every one a step names exist
        for (hash, problem) in store.damaged_package_sets()? {
            findings.push(Finding {
                hash,
                problem,
                paths: Vec::new(),
                quarantined: false,
                repaired: false,
                log: None,
            });
        }
        check_claims(&store, &objects, &mut findings)?;
    }
    let (logs_checked, logs_bytes) = check_logs(&dir, &store, &mut findings)?;
    findings.sort_by(|a, b| a.hash.cmp(&b.hash));
    let repair_note = if args.repair {
        repair(&store, database_ok, writable, &mut findings)?
    } else {
        None
    };
    let report = Report {
        database_ok,
        database_messages: messages,
        objects_checked: listed.len() + logs_checked,
        bytes_checked: bytes_checked + logs_bytes,
        findings,
        lost_database: None,
        new_database: false,
    };
    let problems = !report.database_ok || report.findings.iter().any(|f| !f.repaired);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_text(
            &report,
            &args,
            &dir,
            repair_note.as_deref(),
            problems,
            color,
        );
    }
    Ok(if problems { 1 } else { 0 })
}

/// `--repair`, when there is anything to repair: objects gone (missing, or moved aside as
/// corrupt) make their versions, and the directory versions that need them, not restorable.
/// What it did, in words.
fn repair(
    store: &Store,
    database_ok: bool,
    writable: bool,
    findings: &mut [Finding],
) -> Result<Option<String>> {
    if !findings
        .iter()
        .any(|f| f.problem == "missing" || f.quarantined)
    {
        return Ok(None);
    }
    if !database_ok {
        return Ok(Some(
            "not repaired: the database is damaged, and mlrun never writes to a damaged database"
                .to_string(),
        ));
    }
    if !writable {
        return Ok(Some(
            "not repaired: the store cannot be written".to_string(),
        ));
    }
    let gone: HashSet<String> = findings
        .iter()
        .filter(|f| f.problem == "missing" || f.quarantined)
        .map(|f| f.hash.clone())
        .collect();
    let dirs = store.dirs_needing(&gone)?;
    let n = store.mark_not_stored(gone.iter().chain(&dirs))?;
    for f in findings.iter_mut() {
        f.repaired = gone.contains(&f.hash);
    }
    Ok(Some(format!(
        "repaired: {n} version{} marked as not restorable",
        if n == 1 { "" } else { "s" }
    )))
}

/// The report for people: the database, the objects, each finding, what to do about them.
fn print_text(
    report: &Report,
    args: &FsckArgs,
    dir: &Path,
    repair_note: Option<&str>,
    problems: bool,
    color: ColorChoice,
) {
    let style = Style::stdout(color);
    if report.database_ok {
        println!("database: {}", style.paint(Role::Good, "ok"));
    } else {
        println!("database: {}", style.paint(Role::Bad, "damaged"));
        for m in &report.database_messages {
            println!("  {m}");
        }
    }
    println!(
        "objects: {} checked ({})",
        report.objects_checked,
        report::size(report.bytes_checked)
    );
    for f in &report.findings {
        let what = if f.problem.ends_with("corrupt") {
            style.paint(Role::Bad, f.problem)
        } else {
            style.paint(Role::Warn, f.problem)
        };
        println!(
            "  {what} {}  {}",
            &f.hash[..12],
            match &f.log {
                Some(log) => format!("the whole log of {log}"),
                None if f.paths.is_empty() => "(no recorded path)".to_string(),
                None => f.paths.join(", "),
            }
        );
    }
    if let Some(note) = repair_note {
        println!("{note}");
    }
    if report.findings.is_empty() {
        println!("all objects intact");
    } else if !problems {
        println!(
            "the database now says which versions can be restored; rerunning the steps that made them (`--force` if they are up to date) stores them again"
        );
    } else {
        let moved = if report.findings.iter().any(|f| f.quarantined) {
            format!(
                " Corrupt objects were moved to {}.",
                dir.join("objects/corrupt").display()
            )
        } else {
            String::new()
        };
        println!(
            "{} problem{}: versions that need them cannot be restored.{moved} A rerun of the steps that made or read those versions (`--force` if they are up to date) stores them again, while the files are still on disk.",
            report.findings.len(),
            if report.findings.len() == 1 { "" } else { "s" },
        );
        if !args.repair
            && report
                .findings
                .iter()
                .any(|f| f.problem == "missing" || f.quarantined)
        {
            println!(
                "`mlrun fsck --repair` records them as not restorable, so the database stops claiming them"
            );
        }
        if !report.database_ok {
            println!(
                "the database is damaged: mlrun will not write to it; put it back from a backup, or move it aside to start a new store (the objects are kept)"
            );
        }
    }
}

/// Every stored object re-hashed (on all cores); a corrupt one is moved aside, since under its
/// name it would stop a rerun from storing a good copy.
fn corrupt_objects(
    objects: &Objects,
    listed: &[(String, std::path::PathBuf, u64, std::time::SystemTime)],
) -> Vec<Finding> {
    quarantine_corrupt(objects, listed.par_iter().map(|(h, ..)| h.as_str()))
        .into_iter()
        .map(|(hash, quarantined)| Finding {
            hash,
            problem: "corrupt",
            paths: Vec::new(),
            quarantined,
            repaired: false,
            log: None,
        })
        .collect()
}

/// fsck of a store whose database is missing or empty: check the objects, and with `--repair`
/// start a new database that keeps them.
fn fsck_lost(args: FsckArgs, dir: &Path, what: &str, color: ColorChoice) -> Result<i32> {
    let objects = Objects::new(dir);
    let listed = objects.list();
    let bytes_checked = listed.iter().map(|o| o.2).sum();
    let findings = corrupt_objects(&objects, &listed);
    let corrupt: HashSet<&str> = findings.iter().map(|f| f.hash.as_str()).collect();
    let intact: Vec<(String, u64)> = listed
        .iter()
        .filter(|o| !corrupt.contains(o.0.as_str()))
        .map(|o| (o.0.clone(), o.2))
        .collect();
    let path = dir.join(store::DB_FILE);
    let mut new_database = false;
    let mut moved = Vec::new();
    if args.repair {
        let (_store, m) = store::start_over_keeping(dir, &intact)?;
        moved = m;
        new_database = true;
    }
    let report = Report {
        database_ok: new_database,
        database_messages: vec![format!("{} {what}", path.display())],
        objects_checked: listed.len(),
        bytes_checked,
        findings,
        lost_database: Some(what.to_string()),
        new_database,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let style = Style::stdout(color);
        println!(
            "database: {} (`{}` {what}, beside {} stored object{})",
            style.paint(Role::Bad, "lost"),
            path.display(),
            listed.len(),
            if listed.len() == 1 { "" } else { "s" }
        );
        println!(
            "objects: {} checked ({}), {} intact",
            report.objects_checked,
            report::size(report.bytes_checked),
            intact.len()
        );
        for f in &report.findings {
            println!("  {} {}", style.paint(Role::Bad, f.problem), &f.hash[..12]);
        }
        if new_database {
            for m in &moved {
                println!("moved `{}` aside", m.display());
            }
            println!(
                "started a new database that keeps the {} intact object{}; the lineage that named them is lost, so `show` and `lineage` know nothing of them. `mlrun gc` deletes nothing while no run is recorded",
                intact.len(),
                if intact.len() == 1 { "" } else { "s" }
            );
        } else {
            println!(
                "mlrun refuses to use this store until the database is back: put it back from a backup, or run `mlrun fsck --repair` to start a new database that keeps the objects"
            );
        }
    }
    Ok(if new_database && report.findings.is_empty() {
        0
    } else {
        1
    })
}

/// Blobs the database says are stored must have their objects, and every directory version
/// its manifest, intact (its SHA-256 is the directory's hash); each problem found gets the
/// paths whose versions need it.
fn check_claims(store: &Store, objects: &Objects, findings: &mut Vec<Finding>) -> Result<()> {
    // its manifest, intact (its SHA-256 is the directory's hash).
    let mut expected = store.stored_files()?;
    let stored_dirs = store.stored_dirs()?;
    store.each_dir_manifest(|hash, data| {
        let problem = match data {
            None => Some("manifest missing"),
            Some(d) => match parse_manifest(d) {
                Some(entries) if sha256_bytes(d) == hash => {
                    if stored_dirs.contains(hash) {
                        expected.extend(
                            entries
                                .into_iter()
                                .filter(|e| e.mode != MODE_LINK)
                                .map(|e| e.hash),
                        );
                    }
                    None
                }
                _ => Some("manifest corrupt"),
            },
        };
        if let Some(problem) = problem {
            findings.push(Finding {
                hash: hash.to_string(),
                problem,
                paths: Vec::new(),
                quarantined: false,
                repaired: false,
                log: None,
            });
        }
        Ok(())
    })?;
    let mut expected: Vec<String> = expected.into_iter().collect();
    expected.sort();
    // an object just found corrupt (and moved aside) is reported once, as corrupt
    let corrupt: HashSet<String> = findings.iter().map(|f| f.hash.clone()).collect();
    for h in expected {
        if !corrupt.contains(&h) && !objects.has(&h) {
            findings.push(Finding {
                hash: h,
                problem: "missing",
                paths: Vec::new(),
                quarantined: false,
                repaired: false,
                log: None,
            });
        }
    }
    // the paths whose versions need each problem object: as artifacts, or inside directories
    let hashes: Vec<&str> = findings.iter().map(|f| f.hash.as_str()).collect();
    let mut paths = store.paths_needing(&hashes)?;
    for f in findings.iter_mut() {
        f.paths = paths
            .remove(&f.hash)
            .unwrap_or_default()
            .into_iter()
            .collect();
    }
    Ok(())
}

/// The whole logs of long step outputs (`objects/logs/`): each one decompressed and re-hashed
/// (a corrupt one is moved to `objects/corrupt/`), and each one the database says is stored
/// present. Returns how many were checked and their size on disk.
fn check_logs(dir: &Path, store: &Store, findings: &mut Vec<Finding>) -> Result<(usize, u64)> {
    let logs = LogObjects::new(dir);
    let listed = logs.list();
    let expected = store.expected_logs()?;
    let owner: HashMap<&str, &str> = expected
        .iter()
        .map(|(h, o)| (h.as_str(), o.as_str()))
        .collect();
    let corrupt: Vec<Finding> =
        quarantine_corrupt(&logs, listed.par_iter().map(|(h, ..)| h.as_str()))
            .into_iter()
            .map(|(hash, quarantined)| Finding {
                log: owner.get(hash.as_str()).map(|o| o.to_string()),
                hash,
                problem: "log corrupt",
                paths: Vec::new(),
                quarantined,
                repaired: false,
            })
            .collect();
    let bad: HashSet<&str> = corrupt.iter().map(|f| f.hash.as_str()).collect();
    let mut missing = Vec::new();
    for (hash, log) in &expected {
        if !bad.contains(hash.as_str()) && !logs.has(hash) {
            missing.push(Finding {
                hash: hash.clone(),
                problem: "log missing",
                paths: Vec::new(),
                quarantined: false,
                log: Some(log.clone()),
                repaired: false,
            });
        }
    }
    findings.extend(corrupt);
    findings.extend(missing);
    Ok((listed.len(), listed.iter().map(|l| l.2).sum()))
}

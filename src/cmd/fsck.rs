//! `mlrun fsck`: check the database (`PRAGMA integrity_check`) and re-hash every stored object;
//! report corrupt and missing objects with the paths whose versions need them. Exit 1 on any
//! problem.

use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::cli::FsckArgs;
use crate::error::Result;
use crate::report::{self, ColorChoice, Style};
use crate::store::objects::{Objects, Problem};
use crate::store::{self, Store};

#[derive(Debug, Serialize)]
pub struct Finding {
    pub hash: String,
    /// `corrupt` or `missing`
    pub problem: &'static str,
    /// artifact paths with a version that needs this object
    pub paths: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub database_ok: bool,
    pub database_messages: Vec<String>,
    pub objects_checked: usize,
    pub bytes_checked: u64,
    pub findings: Vec<Finding>,
}

pub fn fsck(args: FsckArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let store = Store::open_existing(&dir)?;
    let conn = &store.conn;
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let messages: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    let database_ok = messages == ["ok"];

    let objects = Objects::new(&dir);
    let listed = objects.list();
    let bytes_checked = listed.iter().map(|o| o.2).sum();
    let mut findings: Vec<Finding> = listed
        .par_iter()
        .filter_map(|(hash, ..)| match objects.verify(hash) {
            Err(Problem::Corrupt { .. }) => Some(Finding {
                hash: hash.clone(),
                problem: "corrupt",
                paths: Vec::new(),
            }),
            _ => None,
        })
        .collect();
    // Blobs the database says are stored must have their objects.
    let mut stmt = conn.prepare(
        "SELECT hash FROM blobs WHERE stored = 1 AND kind = 'file'
         UNION SELECT d.file_hash FROM blobs b JOIN dir_entries d ON d.dir_hash = b.hash WHERE b.stored = 1 AND d.mode != 40960",
    )?;
    let expected: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    for h in expected {
        if !objects.has(&h) {
            findings.push(Finding {
                hash: h,
                problem: "missing",
                paths: Vec::new(),
            });
        }
    }
    let mut paths_q = conn.prepare(
        "SELECT DISTINCT a.path FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id WHERE v.blob_hash = ?1
         UNION SELECT DISTINCT a.path || '/' || d.relpath FROM dir_entries d
           JOIN artifact_versions v ON v.blob_hash = d.dir_hash JOIN artifacts a ON a.id = v.artifact_id WHERE d.file_hash = ?1",
    )?;
    for f in &mut findings {
        f.paths = paths_q
            .query_map([&f.hash], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
    }
    findings.sort_by(|a, b| a.hash.cmp(&b.hash));
    let report = Report {
        database_ok,
        database_messages: messages,
        objects_checked: listed.len(),
        bytes_checked,
        findings,
    };
    let problems = !report.database_ok || !report.findings.is_empty();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let style = Style::stdout(color);
        if report.database_ok {
            println!("database: {}", style.green("ok"));
        } else {
            println!("database: {}", style.red("damaged"));
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
            let what = if f.problem == "corrupt" {
                style.red("corrupt")
            } else {
                style.yellow("missing")
            };
            println!(
                "  {what} {}  {}",
                &f.hash[..12],
                if f.paths.is_empty() {
                    "(no recorded path)".to_string()
                } else {
                    f.paths.join(", ")
                }
            );
        }
        if report.findings.is_empty() {
            println!("all objects intact");
        } else {
            println!(
                "{} problem object{}: versions that need them cannot be restored (a rerun with `--force` stores them again)",
                report.findings.len(),
                if report.findings.len() == 1 { "" } else { "s" }
            );
        }
    }
    Ok(if problems { 1 } else { 0 })
}

//! `mlrun push [RUN...]`: send runs to the team remote (every run not pushed yet by default):
//! each run's objects the remote lacks first, then its whole record in one transaction. Also
//! `mlrun pull`: bring the remote's records here, objects with `--objects` (else on demand).

use std::path::Path;

use clap::Args;

use crate::error::Result;
use crate::remote::{self, Connected, pg::RunFilter};
use crate::report::ColorChoice;
use crate::store::{self, Store};

#[derive(Debug, Args)]
#[command(after_help = "\
The remote is the [remote] table of mlrun.toml (or MLRUN_REMOTE_DB and MLRUN_REMOTE_OBJECTS).
A run's objects are uploaded before its record, and the record is written in one transaction
keyed by the run's id: a run on the remote always has its objects, and pushing a run again (or
from two machines at once) writes nothing twice. A push that was stopped is completed by the
next one.

Examples:
  mlrun push                 every run not pushed yet
  mlrun push latest 01a2165e these runs
  mlrun push --json          one JSON object: what was pushed")]
pub struct PushArgs {
    /// The runs to push: id prefixes, `latest`, `latest~2` [default: every run not pushed yet]
    #[arg(value_name = "RUN")]
    pub runs: Vec<String>,

    /// Print a JSON summary instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn push(args: PushArgs, store_dir: Option<&Path>, _color: ColorChoice) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let remote = remote::configured(&dir)?;
    let mut store = Store::open_existing(&dir)?;
    let mut ids = Vec::new();
    for r in &args.runs {
        ids.push(store.resolve_run(r)?);
    }
    let (pushed, sent) = remote::push(&mut store, &remote, ids, args.json)?;
    for n in &sent.notes {
        eprintln!("note: {n}");
    }
    if args.json {
        let v = serde_json::json!({
            "remote": {"db": remote.shown_db(), "objects": remote.objects_url()},
            "runs": pushed,
            "sent": sent,
        });
        println!("{v}");
        return Ok(0);
    }
    let extras = sent.model_versions + sent.alias_moves + sent.determinism + sent.removals;
    if pushed.is_empty() && extras == 0 {
        println!("nothing to push: every run is on {}", remote.shown_db());
    }
    if extras > 0 {
        println!(
            "sent {} model versions, {} alias moves, {} determinism findings, {} removals",
            sent.model_versions, sent.alias_moves, sent.determinism, sent.removals
        );
    }
    for p in &pushed {
        let what = if p.written {
            "pushed"
        } else {
            "already on the remote:"
        };
        println!(
            "{what} {} ({} objects, {} uploaded)",
            &p.run, p.objects, p.uploaded
        );
    }
    Ok(0)
}

/// `mlrun run --push` and `push = true`: push the run that just ended. A failure says so and
/// makes the command fail, the run itself stays recorded (and is pushed by the next push).
pub fn after_run(store_dir: &Path, run_id: &str, flag: bool) -> Result<()> {
    let Some(remote) = crate::config::Config::load(store_dir)?.remote else {
        if flag {
            return Err(crate::error::Error::invalid("--push: no remote is configured")
                .hint("add a [remote] table to mlrun.toml, or set MLRUN_REMOTE_DB and MLRUN_REMOTE_OBJECTS"));
        }
        return Ok(());
    };
    if !(flag || remote.push) {
        return Ok(());
    }
    let mut store = Store::open_existing(store_dir)?;
    let (pushed, _) = remote::push(&mut store, &remote, vec![run_id.to_string()], false)?;
    for p in pushed {
        eprintln!(
            "pushed run {} to {} ({} objects uploaded)",
            p.run,
            remote.shown_db(),
            p.uploaded
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
#[command(after_help = "\
Records are written into the local store in one transaction per run, keyed by the run's id:
pulling again changes nothing. Objects come when `checkout`, `replay` or a restore needs them,
or now with --objects; each is verified against its hash, and one that does not match is
refused and reported.

Examples:
  mlrun pull                       every run on the remote
  mlrun pull --pipeline train -n 5 the 5 newest runs of pipeline `train`
  mlrun pull 01a2165e --objects    one run, with its objects")]
pub struct PullArgs {
    /// Runs to pull: id prefixes [default: all]
    #[arg(value_name = "RUN")]
    pub runs: Vec<String>,

    /// Only runs of this pipeline
    #[arg(long)]
    pub pipeline: Option<String>,

    /// Only runs with this status (succeeded, failed, interrupted)
    #[arg(long)]
    pub status: Option<String>,

    /// Only the N newest matching runs
    #[arg(short = 'n', long = "last", value_name = "N")]
    pub last: Option<usize>,

    /// Fetch the runs' objects now (verified), not when first needed
    #[arg(long)]
    pub objects: bool,

    /// Print a JSON summary instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn pull(args: PullArgs, store_dir: Option<&Path>, _color: ColorChoice) -> Result<i32> {
    let dir = remote::store_dir_or_new(store_dir)?;
    let remote = remote::configured(&dir)?;
    let mut conn = Connected::open(&remote)?;
    let mut store = Store::open(&dir)?;
    let filter = RunFilter {
        ids: args.runs.iter().map(|r| r.to_ascii_lowercase()).collect(),
        pipeline: args.pipeline.clone(),
        status: args.status.clone(),
        last: args.last,
    };
    let pulled = remote::pull(&mut store, &mut conn, &filter, args.objects)?;
    if args.json {
        let v = serde_json::json!({
            "remote": {"db": remote.shown_db(), "objects": remote.objects_url()},
            "runs": pulled,
        });
        println!("{v}");
        return Ok(0);
    }
    let new = pulled.iter().filter(|p| p.written).count();
    let fetched: usize = pulled.iter().map(|p| p.fetched).sum();
    println!(
        "pulled {new} new run{} of {} matching on {} ({fetched} objects fetched)",
        if new == 1 { "" } else { "s" },
        pulled.len(),
        remote.shown_db()
    );
    Ok(0)
}

/// `mlrun fsck --remote`: every object the remote's runs need is on the remote and hashes to its
/// name; no run or step is there twice. Exit 1 on any problem left. Objects found missing or
/// corrupt are forgotten by the local index. With `repair`, the remote stops counting them as
/// there and the runs pushed from here that need them are pushed again by the next `push`
/// (`remote::repair`); exit 0 when that was done for every problem found.
pub fn fsck_remote(json: bool, repair: bool, store_dir: Option<&Path>) -> Result<i32> {
    let dir = remote::store_dir_or_new(store_dir)?;
    let remote = remote::configured(&dir)?;
    let mut conn = Connected::open(&remote)?;
    let runs = conn.record.count_runs()?;
    let names = conn.record.all_objects()?;
    let problems = conn.verify(&names)?;
    let duplicates = conn.record.duplicate_rows()?;
    let mut missing = Vec::new();
    let mut corrupt = Vec::new();
    for (name, p) in problems {
        match p {
            remote::FetchError::Missing => missing.push(name),
            remote::FetchError::Corrupt { actual } => corrupt.push((name, actual)),
            remote::FetchError::Failed(e) => return Err(e),
        }
    }
    missing.sort();
    corrupt.sort();
    let store = if dir.join(store::DB_FILE).is_file() {
        Store::open(&dir).ok()
    } else {
        None
    };
    let corrupt_names: Vec<String> = corrupt.iter().map(|c| c.0.clone()).collect();
    if let Some(store) = &store {
        let gone = [missing.clone(), corrupt_names.clone()].concat();
        store.forget_remote_objects(&remote.key(), &gone)?;
    }
    let found = !(missing.is_empty() && corrupt.is_empty());
    let repaired = if repair && found {
        Some(remote::repair::repair(
            &mut conn,
            store.as_ref(),
            &missing,
            &corrupt_names,
        )?)
    } else {
        None
    };
    let ok = !found && duplicates == 0;
    let left = (found && repaired.is_none()) || duplicates > 0;
    if json {
        let v = serde_json::json!({
            "remote": {"db": remote.shown_db(), "objects": remote.objects_url()},
            "ok": ok,
            "runs": runs,
            "objects_checked": names.len(),
            "missing": missing,
            "corrupt": corrupt.iter().map(|(n, a)| serde_json::json!({"name": n, "actual": a})).collect::<Vec<_>>(),
            "duplicate_rows": duplicates,
            "repaired": repaired,
        });
        println!("{v}");
    } else {
        for m in &missing {
            println!("missing  {m}");
        }
        for (n, a) in &corrupt {
            println!("corrupt  {n} (its bytes hash to {a})");
        }
        if duplicates > 0 {
            println!("{duplicates} duplicate run or step rows");
        }
        if let Some(r) = &repaired {
            println!(
                "repaired: {} objects and directories no longer counted as on the remote ({} damaged ones deleted); `mlrun push` sends them again with {} runs pushed from here",
                r.marked.len(),
                r.deleted,
                r.runs_to_push
            );
        } else if found {
            println!(
                "`mlrun fsck --remote --repair` on a machine that has these objects, then `mlrun push` there, sends them again"
            );
        }
        println!(
            "{}: {runs} runs, {} objects checked on {} and {}",
            if ok { "ok" } else { "problems found" },
            names.len(),
            remote.shown_db(),
            remote.objects_url()
        );
    }
    Ok(if left { 1 } else { 0 })
}

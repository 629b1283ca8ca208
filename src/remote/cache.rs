//! The shared cache: before a step runs, `run` looks its cache key up on the team remote when
//! the local store has no execution to reuse. On a hit, the run that made it is pulled into the
//! local store (its record: where it ran, on which machine, from which commit) and the objects
//! of that step's outputs are fetched, each verified against its hash; the step is then reused
//! from that execution by the ordinary local machinery, whose record names it (`reused_exec`),
//! so `show` says which run, and so which machine, the outputs came from.
//!
//! A hit on a run not yet here also fetches, in the same parallel batch, the outputs of that
//! run's other steps this plan has: the steps after it usually hit the same run, and then find
//! everything here (no round trip to PostgreSQL, no fetch of their own). A clone running a
//! teammate's 50-step chain asks the remote once instead of 50 times, one object at a time.
//!
//! Only `mlrun run` turns it on (`enable`), and only when a remote is configured with
//! `cache = true` (the default) and `--no-remote-cache` was not given. A remote that cannot be
//! reached is said once and the run goes on without it: the shared cache never fails a run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Connected;
use crate::config::Remote;
use crate::error::Result;
use crate::store::Store;
use crate::store::portable::{EDGES, RunRecord};

enum State {
    Off,
    Configured(Remote, PathBuf, HashSet<String>),
    /// connecting on a thread of its own since `enable` (a new store: see there)
    Connecting(
        std::thread::JoinHandle<Result<Connected>>,
        PathBuf,
        HashSet<String>,
    ),
    Connected(Box<Live>),
}

/// The shared cache once it has been asked: the remote, the local store, the plan's steps.
struct Live {
    conn: Connected,
    dir: PathBuf,
    /// opened on the first hit, then kept for the run
    store: Option<Store>,
    steps: HashSet<String>,
}

static STATE: Mutex<State> = Mutex::new(State::Off);

/// Turn the shared cache on for this process's run of `steps`, for the store in `store_dir`.
/// `new_store`: the store is being created, so no step can be reused from it and the first
/// step will ask the remote: connecting starts now, on a thread, while the store is made and
/// the first inputs are hashed (a fresh clone's run waited ~25 ms for it). Otherwise the
/// remote is contacted only when a step misses locally.
pub fn enable(
    store_dir: &Path,
    remote: Remote,
    steps: impl IntoIterator<Item = String>,
    new_store: bool,
) {
    if !remote.cache {
        return;
    }
    let (dir, steps) = (store_dir.to_path_buf(), steps.into_iter().collect());
    *STATE.lock().expect("cache state") = if new_store {
        let connecting = std::thread::Builder::new()
            .name("mlrun-remote-cache".into())
            .spawn(move || Connected::open(&remote));
        match connecting {
            Ok(handle) => State::Connecting(handle, dir, steps),
            // no thread: nothing to overlap with; the shared cache is off, as for a remote
            // that cannot be reached
            Err(_) => State::Off,
        }
    } else {
        State::Configured(remote, dir, steps)
    };
}

/// Look `key` up on the remote and, on a hit, bring what reusing it needs here. True: the local
/// store now has an execution with that key whose outputs can be restored. An error turns the
/// shared cache off for the rest of the run (the caller says so once).
pub fn bring(key: &str) -> Result<bool> {
    let mut state = STATE.lock().expect("cache state");
    let connected = match std::mem::replace(&mut *state, State::Off) {
        State::Configured(remote, dir, steps) => Some((Connected::open(&remote), dir, steps)),
        State::Connecting(handle, dir, steps) => {
            let r = handle
                .join()
                .unwrap_or_else(|_| Err(crate::error::Error::other("connecting failed")));
            Some((r, dir, steps))
        }
        other => {
            *state = other;
            None
        }
    };
    if let Some((conn, dir, steps)) = connected {
        match conn {
            Ok(conn) => {
                *state = State::Connected(Box::new(Live {
                    conn,
                    dir,
                    store: None,
                    steps,
                }))
            }
            Err(e) => {
                *state = State::Off;
                return Err(e);
            }
        }
    }
    let State::Connected(live) = &mut *state else {
        return Ok(false);
    };
    let r = lookup(live, key);
    if r.is_err() {
        *state = State::Off;
    }
    r
}

/// The content hashes of the outputs of `rec`'s steps named in `steps`.
fn outputs_of(rec: &RunRecord, steps: &HashSet<String>) -> Vec<String> {
    rec.table(&EDGES)
        .iter()
        .filter(|row| {
            RunRecord::text(row, 3) == Some("out")
                && RunRecord::text(row, 1).is_some_and(|s| steps.contains(s))
        })
        .filter_map(|row| RunRecord::text(row, 5).map(str::to_string))
        .collect()
}

fn lookup(live: &mut Live, key: &str) -> Result<bool> {
    let Some(hit) = live.conn.record.cache_hit(key)? else {
        return Ok(false);
    };
    if live.store.is_none() {
        live.store = Some(Store::open(&live.dir)?);
    }
    let store = live.store.as_mut().expect("opened above");
    let remote_key = live.conn.remote.key();
    let hashes: Vec<String> = hit.outputs.iter().map(|(_, h)| h.clone()).collect();
    let mut batch = hashes.clone();
    if !store.has_run(&hit.run)? {
        let rec = live.conn.record.fetch_run(&hit.run)?;
        super::import(store, &mut live.conn.record, &remote_key, &rec)?;
        batch.extend(outputs_of(&rec, &live.steps));
        batch.sort();
        batch.dedup();
    }
    let needed: HashSet<String> = store.objects_of_blobs(&hashes)?.into_iter().collect();
    let names = store.objects_of_blobs(&batch)?;
    let missing = store.objects_missing_for(&names);
    let problems = live.conn.fetch(&store.dir, &missing, true)?;
    store.objects_arrived(&hit.run)?;
    // an object only the other steps would use is their problem, when they get there
    if let Some((name, p)) = problems.into_iter().find(|(n, _)| needed.contains(n)) {
        let why = match p {
            super::FetchError::Missing => "missing on the remote".to_string(),
            super::FetchError::Corrupt { actual } => {
                format!("refused: its bytes hash to {actual}")
            }
            super::FetchError::Failed(e) => e.one_line(),
        };
        return Err(crate::error::Error::other(format!(
            "object {name} of run {} ({}): {why}",
            hit.run, hit.hostname
        )));
    }
    Ok(true)
}

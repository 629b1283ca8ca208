//! The shared cache: before a step runs, `run` looks its cache key up on the team remote when
//! the local store has no execution to reuse. On a hit, the run that made it is pulled into the
//! local store (its record: where it ran, on which machine, from which commit) and the objects
//! of that step's outputs are fetched, each verified against its hash; the step is then reused
//! from that execution by the ordinary local machinery, whose record names it (`reused_exec`),
//! so `show` says which run, and so which machine, the outputs came from.
//!
//! Only `mlrun run` turns it on (`enable`), and only when a remote is configured with
//! `cache = true` (the default) and `--no-remote-cache` was not given. A remote that cannot be
//! reached is said once and the run goes on without it: the shared cache never fails a run.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Connected;
use crate::config::Remote;
use crate::error::Result;
use crate::store::Store;

enum State {
    Off,
    Configured(Remote, PathBuf),
    Connected(Box<Connected>, PathBuf),
}

static STATE: Mutex<State> = Mutex::new(State::Off);

/// Turn the shared cache on for this process's run, for the store in `store_dir`.
pub fn enable(store_dir: &Path, remote: Remote) {
    if remote.cache {
        *STATE.lock().expect("cache state") = State::Configured(remote, store_dir.to_path_buf());
    }
}

/// Look `key` up on the remote and, on a hit, bring what reusing it needs here. True: the local
/// store now has an execution with that key whose outputs can be restored. An error turns the
/// shared cache off for the rest of the run (the caller says so once).
pub fn bring(key: &str) -> Result<bool> {
    let mut state = STATE.lock().expect("cache state");
    if let State::Configured(remote, dir) = &*state {
        let dir = dir.clone();
        match Connected::open(remote) {
            Ok(c) => *state = State::Connected(Box::new(c), dir),
            Err(e) => {
                *state = State::Off;
                return Err(e);
            }
        }
    }
    let State::Connected(conn, dir) = &mut *state else {
        return Ok(false);
    };
    let r = lookup(conn, dir, key);
    if r.is_err() {
        *state = State::Off;
    }
    r
}

fn lookup(conn: &mut Connected, dir: &Path, key: &str) -> Result<bool> {
    let Some(hit) = conn.record.cache_hit(key)? else {
        return Ok(false);
    };
    let mut store = Store::open(dir)?;
    let remote_key = conn.remote.key();
    if !store.has_run(&hit.run)? {
        let rec = conn.record.fetch_run(&hit.run)?;
        super::import(&mut store, &mut conn.record, &remote_key, &rec)?;
    }
    let hashes: Vec<String> = hit.outputs.iter().map(|(_, h)| h.clone()).collect();
    let names = store.objects_of_blobs(&hashes)?;
    let missing = store.objects_missing_for(&names);
    let problems = conn.fetch(&store.dir, &missing)?;
    store.objects_arrived(&hit.run)?;
    if let Some((name, p)) = problems.into_iter().next() {
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

//! A run whose record could not be written in full (a full disk, an unwritable store) must not
//! look `succeeded`, nor `interrupted`, to the next command, even when mlrun could not write
//! that into the database either. So at the first failed write mlrun leaves a note beside the
//! database, `<store>/<run id>.incomplete` (an empty file needs no data block; the reason is
//! written into it when there is room), and removes it once the run's end is recorded. When
//! the run's mlrun is gone and the run is still `running`, the next command that opens the
//! store finds the note and closes the run and its running steps as `failed`, with the reason
//! (see `Store::recover_abandoned_runs`).

use std::path::{Path, PathBuf};

fn path(store_dir: &Path, run_id: &str) -> PathBuf {
    store_dir.join(format!("{run_id}.incomplete"))
}

/// What the record of a step that mlrun could not write says about it.
pub fn reason(cause: &str) -> String {
    format!("mlrun could not record this step, so the run's record is incomplete: {cause}")
}

/// Note that `run_id`'s record is incomplete (best effort: the disk may be full).
pub fn note(store_dir: &Path, run_id: &str, reason: &str) {
    let p = path(store_dir, run_id);
    if !p.exists() {
        let _ = std::fs::write(&p, reason.as_bytes())
            .or_else(|_| std::fs::File::create(&p).map(|_| ()));
    }
}

/// The reason noted for `run_id`, if its record is incomplete.
pub fn noted(store_dir: &Path, run_id: &str) -> Option<String> {
    let p = path(store_dir, run_id);
    if !p.is_file() {
        return None;
    }
    let text = std::fs::read_to_string(&p).unwrap_or_default();
    Some(if text.trim().is_empty() {
        reason("the store could not be written (full or read-only)")
    } else {
        text.trim().to_string()
    })
}

/// The run's end is recorded: its note has served.
pub fn clear(store_dir: &Path, run_id: &str) {
    let _ = std::fs::remove_file(path(store_dir, run_id));
}

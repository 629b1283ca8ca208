//! Lineage is never lost silently. A step's logs are kept in the object store before its record
//! is written; should either fail (a full disk, an unwritable store, a record SQLite refuses),
//! the step is closed as `failed` with the reason (or, if even that cannot be written, left for
//! the next command to close: `store::incomplete`), and the run can no longer succeed: it ends
//! `failed` and mlrun exits 1.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Ctx;
use super::capture::{HEAD, LogCapture, TAIL};
use crate::error::Error;
use crate::store::Store;
use crate::store::incomplete;
use crate::store::logs::LogObjects;
use crate::store::record::{StepLog, StepRecord, now_ms};

/// What a run needs to keep its records whole.
pub(super) struct Records {
    store_dir: PathBuf,
    logs: LogObjects,
    /// every record that could not be written: "step `x`: why"
    failures: Mutex<Vec<String>>,
}

impl Records {
    pub(super) fn new(store_dir: &Path) -> Records {
        Records {
            store_dir: store_dir.to_path_buf(),
            logs: LogObjects::new(store_dir),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// The records that could not be written, if any.
    pub(super) fn failures(&self) -> Vec<String> {
        self.failures.lock().expect("records lock").clone()
    }

    /// The run's end is recorded: nothing is left for the next command to close.
    pub(super) fn run_recorded(&self, run_id: &str) {
        incomplete::clear(&self.store_dir, run_id);
    }

    /// The run's end could not be recorded: the next command closes it.
    pub(super) fn run_unrecorded(&self, run_id: &str, e: &Error) {
        let first = self.failures().into_iter().next();
        let why = first.unwrap_or_else(|| format!("the end of the run: {}", describe(e)));
        incomplete::note(&self.store_dir, run_id, &incomplete::reason(&why));
    }
}

/// An error as one line: its message and causes (no `error:` prefix, no hints).
pub(super) fn describe(e: &Error) -> String {
    e.one_line()
}

impl Ctx {
    /// A write of this run's record failed: say so, and make sure the run cannot succeed, now
    /// or (if mlrun cannot write even that) when the next command finds it.
    pub(super) fn record_failed(&self, step: &str, e: &Error) {
        let e = describe(e);
        let why = format!("step `{step}`: {e}");
        self.events.warn(&format!(
            "the record of step `{step}` could not be written: {e}; the run's record is incomplete, so the run fails"
        ));
        incomplete::note(
            &self.records.store_dir,
            &self.run_id,
            &incomplete::reason(&why),
        );
        self.records
            .failures
            .lock()
            .expect("records lock")
            .push(why);
    }

    /// Keep a step's logs: a log too long for the database goes to the object store. Returns
    /// what the database records and, when a whole log could not be kept, why.
    pub(super) fn keep_logs(
        &self,
        stdout: LogCapture,
        stderr: LogCapture,
    ) -> (StepLog, StepLog, Option<String>) {
        let (out, out_err) = stdout.keep(&self.records.logs);
        let (err, err_err) = stderr.keep(&self.records.logs);
        let why = [("stdout", out_err), ("stderr", err_err)]
            .into_iter()
            .filter_map(|(stream, e)| {
                e.map(|e| {
                    format!(
                        "its whole {stream} could not be kept ({e}); only its first {} KiB and last {} KiB are recorded",
                        HEAD / 1024,
                        TAIL / 1024
                    )
                })
            })
            .collect::<Vec<_>>();
        (out, err, (!why.is_empty()).then(|| why.join("; ")))
    }

    /// Write a step's record in one transaction. When that fails, close the step as `failed`
    /// with the reason and return it: the record is incomplete.
    pub(super) fn write_step_record(
        &self,
        step: &str,
        exec_id: i64,
        rec: &StepRecord,
    ) -> Option<String> {
        let e = self
            .with_store(|c| Store::finish_step(c, exec_id, rec, &self.cache))
            .err()?;
        self.record_failed(step, &e);
        let why = incomplete::reason(&describe(&e));
        if let Err(e2) = self.with_store(|c| Store::close_unrecorded(c, exec_id, &why, now_ms())) {
            self.events.warn(&format!(
                "step `{step}` could not be closed either ({}); the next mlrun command will close it",
                describe(&e2)
            ));
        }
        Some(why)
    }
}

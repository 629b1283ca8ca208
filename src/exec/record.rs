//! The recorder: what a run writes to the store and when. The run's row (`run_start`), a not-run
//! step's row (`not_run`), and a step's record assembled from how it ended (`step_record`,
//! `reused_record`) and the state after it (`After`). Records of reused steps are queued and
//! committed together (`Writer`); everything else is written at once, after them.
//! `exec/records` keeps the logs and notes the writes that failed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::capture::LogCapture;
use super::event::Event;
use super::incremental::CacheParts;
use super::{Ctx, OutputSummary, RunOptions, StepOutcome, blocking};
use crate::error::{Error, Result, exit};
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::git::{GitState, RefChange};
use crate::fingerprint::metrics::Metrics;
use crate::fingerprint::system::{EnvSnapshot, Installed};
use crate::store::Store;
use crate::store::lock::ObjectsHold;
use crate::store::record::{self, Io, RunStatus, StepLog, StepRecord, StepStatus};

/// Reused steps change nothing on disk but their own outputs' restores, and their records are
/// many and small in a no-op run: committing each alone made the commit, not the work, the cost
/// of a cached step. So their records wait in `reused` until anything else is written (a step
/// starting, a step not run, the run's end) or `REUSED_FLUSH_AFTER` has passed, whichever comes
/// first, and are then committed together. Each record is still whole or absent: a crash loses
/// at most the records of steps that were reused in that short window, never part of one.
pub(super) struct Writer {
    pub(super) store: Store,
    reused: Vec<PendingReuse>,
    /// a flush of `reused` is scheduled
    armed: Arc<AtomicBool>,
}

const REUSED_FLUSH_AFTER: Duration = Duration::from_millis(100);

impl Writer {
    pub(super) fn new(store: Store) -> Writer {
        Writer {
            store,
            reused: Vec::new(),
            armed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Commit the queued records of reused steps in one transaction. Should that fail, each is
    /// tried in a transaction of its own, so one bad record does not cost the others theirs.
    /// Returns the records that could not be written: (step, why).
    fn flush(&mut self, run_id: &str, cache: &HashCache) -> Vec<(String, Error)> {
        if self.reused.is_empty() {
            return Vec::new();
        }
        let pending = std::mem::take(&mut self.reused);
        let store = &mut self.store;
        let batch: Vec<_> = pending.iter().map(|p| (p.begin(run_id), &p.rec)).collect();
        let mut failed = Vec::new();
        if batch.len() <= 1 || store.record_reuses(&batch, cache).is_err() {
            for (p, (begin, rec)) in pending.iter().zip(&batch) {
                if let Err(e) = store.record_reuse(begin, rec, cache) {
                    failed.push((p.step.clone(), e));
                }
            }
        }
        drop(batch);
        // The records are freed on another thread: a reused step over 20,000 files holds
        // 40,000 small allocations, and freeing them here was 2% of a no-op run, in the
        // stretch where nothing else runs. Each hold on the objects is released here, now.
        let records: Vec<StepRecord> = pending.into_iter().map(|p| p.rec).collect();
        rayon::spawn(move || drop(records));
        failed
    }
}

/// A reused step's record, owned until it is written.
pub(super) struct PendingReuse {
    step: String,
    attempt: u32,
    seq: usize,
    cmd: String,
    argv_json: String,
    cwd: String,
    started_at: i64,
    git_before: GitState,
    rec: StepRecord,
    /// keeps `gc` out until this record is committed (see `store::lock::ObjectsHold`)
    _hold: Option<ObjectsHold>,
}

impl PendingReuse {
    pub(super) fn new(
        b: &record::StepBegin<'_>,
        rec: StepRecord,
        hold: Option<ObjectsHold>,
    ) -> Self {
        PendingReuse {
            step: b.step.to_string(),
            attempt: b.attempt,
            seq: b.seq,
            cmd: b.cmd.to_string(),
            argv_json: b.argv_json.to_string(),
            cwd: b.cwd.to_string(),
            started_at: b.started_at,
            git_before: b.git_before.clone(),
            rec,
            _hold: hold,
        }
    }

    fn begin<'a>(&'a self, run_id: &'a str) -> record::StepBegin<'a> {
        record::StepBegin {
            run_id,
            step: &self.step,
            attempt: self.attempt,
            seq: self.seq,
            cmd: &self.cmd,
            argv_json: &self.argv_json,
            cwd: &self.cwd,
            started_at: self.started_at,
            git_before: &self.git_before,
        }
    }
}

impl Ctx {
    /// Write to the store. The records of reused steps still pending are written first, so the
    /// store never holds a later write without the earlier ones.
    pub(super) fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let mut w = self.store.lock().expect("store lock");
        self.flush_reused(&mut w);
        f(&mut w.store)
    }

    /// Read from the store, leaving pending records pending.
    pub(super) fn read_store<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        let w = self.store.lock().expect("store lock");
        f(&w.store)
    }

    /// Queue a reused step's record; it is committed with the others queued near it (see
    /// `Writer`).
    pub(super) fn record_reused(&self, r: PendingReuse) {
        self.store.lock().expect("store lock").reused.push(r);
    }

    fn flush_reused(&self, w: &mut Writer) {
        for (step, e) in w.flush(&self.run_id, &self.cache) {
            self.record_failed(&step, &e);
        }
    }

    /// The environment a step ran in, as recorded.
    pub(super) fn env_snapshot(
        &self,
        interpreters: BTreeMap<String, String>,
        packages: Installed,
        vars: BTreeMap<String, String>,
    ) -> EnvSnapshot {
        EnvSnapshot {
            system: self.system.clone(),
            interpreters,
            lockfiles: self.lockfiles.clone(),
            vars,
            packages,
        }
    }
}

/// Make sure the pending records of reused steps are committed within `REUSED_FLUSH_AFTER`.
pub(super) fn arm_flush(ctx: &Arc<Ctx>) {
    let armed = ctx.store.lock().expect("store lock").armed.clone();
    if armed.swap(true, Ordering::SeqCst) {
        return;
    }
    let c = ctx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(REUSED_FLUSH_AFTER).await;
        armed.store(false, Ordering::SeqCst);
        blocking(move || {
            let mut w = c.store.lock().expect("store lock");
            c.flush_reused(&mut w);
        })
        .await;
    });
}

/// The run's row, `running`, before any step starts. Secrets of pipeline.toml and the params
/// (see `recorded`) are masked in the recorded spec and plan, and in mlrun's own recorded
/// command line (`-p password=…`).
pub(super) fn run_start(
    ctx: &Ctx,
    opts: &RunOptions,
    started: i64,
    git_start: &GitState,
) -> Result<()> {
    let mut recorded = ctx.recorded.plan.clone();
    if let Some(root) = &opts.recorded_location {
        recorded = recorded.relocated(root);
    }
    let spec = crate::fingerprint::env::mask(ctx.plan.source(), &ctx.recorded.secrets);
    let plan_json = serde_json::to_string(&recorded).unwrap_or_default();
    let params_json = serde_json::to_string(recorded.params()).unwrap_or_default();
    let argv_json =
        serde_json::to_string(&ctx.recorded.argv(&ctx.redactor, &opts.argv)).unwrap_or_default();
    let file = recorded.file().to_string_lossy();
    let root = recorded.root().to_string_lossy();
    let message = opts
        .message
        .as_deref()
        .map(|m| crate::fingerprint::env::mask(m, &ctx.recorded.secrets));
    let targets = opts
        .targets
        .as_ref()
        .map(|t| serde_json::to_string(t).unwrap_or_default());
    ctx.with_store(|c| {
        Store::insert_run(
            c,
            &record::RunStart {
                id: &ctx.run_id,
                pipeline: ctx.plan.name(),
                pipeline_file: &file,
                root: &root,
                spec: &spec,
                plan_json: &plan_json,
                params_json: &params_json,
                started_at: started,
                git: git_start,
                hostname: &ctx.system.hostname,
                user: &ctx.system.user,
                argv_json: &argv_json,
                replay_of: opts.replay_of.as_deref(),
                message: message.as_deref(),
                targets_json: targets.as_deref(),
                sweep_id: opts.sweep_id.as_deref(),
            },
        )
    })
}

/// Close the run's record with its status. Should that fail, the next command closes it from
/// the note left (`records`); a run whose step records were incomplete is said to be so.
pub(super) fn run_end(
    ctx: &Ctx,
    status: RunStatus,
    exit_code: i32,
    git_end: &GitState,
    ended: i64,
    unrecorded: &[String],
) -> Result<()> {
    let run_id = &ctx.run_id;
    if let Err(e) =
        ctx.with_store(|c| Store::finish_run(c, run_id, status, exit_code, git_end, ended))
    {
        ctx.records.run_unrecorded(run_id, &e);
        return Err(e.hint(
            "the run's record is incomplete; the next mlrun command that opens the store marks it failed, with the reason",
        ));
    }
    ctx.records.run_recorded(run_id);
    if !unrecorded.is_empty() {
        ctx.events.warn(&format!(
            "the record of this run is incomplete ({}); it is recorded as failed",
            unrecorded.join("; ")
        ));
    }
    Ok(())
}

/// Record step `i` as never started, for `reason`, and say so.
pub(super) fn not_run(ctx: &Ctx, i: usize, reason: &str) -> StepOutcome {
    let step = &ctx.recorded.plan.steps()[i];
    let argv = serde_json::to_string(&step.cmd.argv()).unwrap_or_default();
    if let Err(e) = ctx.with_store(|c| {
        Store::record_not_run(
            c,
            &ctx.run_id,
            &step.name,
            &step.cmd.display(),
            &argv,
            &step.cwd,
            reason,
        )
    }) {
        ctx.record_failed(&step.name, &e);
    }
    ctx.events.emit(&Event::StepNotRun {
        step: &step.name,
        reason,
    });
    StepOutcome {
        name: step.name.clone(),
        status: StepStatus::NotRun,
        exit_code: None,
        signal: None,
        duration_ms: None,
        error: Some(reason.to_string()),
        outputs: Vec::new(),
        metrics: BTreeMap::new(),
    }
}

/// A step whose `running` row could not even be written: failed, and the run's record is
/// incomplete.
pub(super) fn failed_unrecorded(ctx: &Ctx, name: &str, e: Error) -> StepOutcome {
    ctx.record_failed(name, &e);
    StepOutcome {
        name: name.to_string(),
        status: StepStatus::Failed,
        exit_code: Some(exit::FAILURE),
        signal: None,
        duration_ms: None,
        error: Some(e.message),
        outputs: Vec::new(),
        metrics: BTreeMap::new(),
    }
}

/// How a step that started ended, as far as the step itself goes.
pub(super) struct Finish {
    pub(super) status: StepStatus,
    pub(super) exit_code: Option<i32>,
    pub(super) signal: Option<i32>,
    pub(super) error: Option<String>,
    pub(super) inputs: Vec<Io>,
    /// only kept for a success
    pub(super) outputs: Vec<Io>,
    pub(super) metrics: Metrics,
    pub(super) stdout: LogCapture,
    pub(super) stderr: LogCapture,
}

impl Finish {
    pub(super) fn failed(code: i32, signal: Option<i32>, error: String, inputs: Vec<Io>) -> Self {
        Finish {
            status: StepStatus::Failed,
            exit_code: Some(code),
            signal,
            error: Some(error),
            inputs,
            outputs: Vec::new(),
            metrics: Metrics::new(),
            stdout: LogCapture::default(),
            stderr: LogCapture::default(),
        }
    }

    /// With what the step printed.
    pub(super) fn logs(self, stdout: LogCapture, stderr: LogCapture) -> Self {
        Finish {
            stdout,
            stderr,
            ..self
        }
    }
}

/// A step's logs as the database keeps them (`Ctx::keep_logs`).
pub(super) struct KeptLogs {
    pub(super) stdout: StepLog,
    pub(super) stderr: StepLog,
    /// why a whole log could not be kept
    pub(super) lost: Option<String>,
}

/// The state after a step, taken once it has ended.
pub(super) struct After {
    pub(super) git: GitState,
    pub(super) env: EnvSnapshot,
    pub(super) ended_at: i64,
    pub(super) params: BTreeMap<String, serde_json::Value>,
    pub(super) keep_outputs: bool,
    pub(super) repo_changes: Vec<RefChange>,
}

/// The record of a step that ran. A step whose whole logs cannot be kept is not recorded as a
/// success, and only a success gets a cache key (only a success can be reused later).
pub(super) fn step_record(
    f: Finish,
    logs: KeptLogs,
    parts: Option<&CacheParts>,
    after: After,
) -> StepRecord {
    let mut f = f;
    if let Some(why) = logs.lost {
        if f.status == StepStatus::Succeeded {
            f.status = StepStatus::Failed;
            f.exit_code = Some(exit::FAILURE);
        }
        f.error = Some(match f.error {
            Some(e) => format!("{e}; {why}"),
            None => why,
        });
        f.outputs.clear();
    }
    let (cache_key, cache_parts) = match (parts, f.status) {
        (Some(p), StepStatus::Succeeded) => (Some(p.key()), Some(p.json())),
        _ => (None, None),
    };
    StepRecord {
        status: f.status,
        exit_code: f.exit_code,
        signal: f.signal,
        error: f.error,
        ended_at: after.ended_at,
        inputs: f.inputs,
        outputs: f.outputs,
        params: after.params,
        metrics: f.metrics.values,
        git_after: after.git,
        env: after.env,
        stdout: logs.stdout,
        stderr: logs.stderr,
        cache_key,
        cache_parts,
        reused_exec: None,
        keep_outputs: after.keep_outputs,
        repo_changes: after.repo_changes,
    }
}

/// The record of a step that reused execution `reused_exec` (its outputs and metrics), taken
/// at `after.ended_at`: nothing ran, so nothing changed in git and nothing was printed. `key`
/// is `parts.key()`, already computed to find the execution (hashing it again would cost a
/// cached step a serialisation and a SHA-256).
pub(super) fn reused_record(
    status: StepStatus,
    inputs: Vec<Io>,
    reusable: &crate::store::reuse::Reusable,
    (parts, key): (&CacheParts, String),
    after: After,
) -> StepRecord {
    debug_assert!(matches!(status, StepStatus::Cached | StepStatus::Restored));
    StepRecord {
        status,
        exit_code: Some(0),
        signal: None,
        error: None,
        ended_at: after.ended_at,
        inputs,
        outputs: reusable.outputs.clone(),
        params: after.params,
        metrics: reusable.metrics.clone(),
        git_after: after.git,
        env: after.env,
        stdout: StepLog::default(),
        stderr: StepLog::default(),
        cache_key: Some(key),
        cache_parts: Some(parts.json()),
        reused_exec: Some(reusable.exec_id),
        keep_outputs: after.keep_outputs,
        repo_changes: Vec::new(),
    }
}

/// The `steps[]` entry of a recorded step that started at `started`: outputs only for a
/// success (by running or by reuse).
pub(super) fn outcome_of(name: &str, rec: &StepRecord, started: i64) -> StepOutcome {
    StepOutcome {
        name: name.to_string(),
        status: rec.status,
        exit_code: rec.exit_code,
        signal: rec.signal,
        duration_ms: Some(rec.ended_at - started),
        error: rec.error.clone(),
        outputs: if rec.status.ok() {
            rec.outputs.iter().map(OutputSummary::of).collect()
        } else {
            Vec::new()
        },
        metrics: metric_values(rec),
    }
}

/// The record's metric values without their sources.
pub(super) fn metric_values(rec: &StepRecord) -> BTreeMap<String, f64> {
    rec.metrics
        .iter()
        .map(|(k, (v, _))| (k.clone(), *v))
        .collect()
}

impl OutputSummary {
    pub(super) fn of(io: &Io) -> OutputSummary {
        OutputSummary {
            path: io.path.clone(),
            hash: io.fp.hash().to_string(),
            kind: if io.fp.is_dir() { "dir" } else { "file" },
            size: io.fp.size(),
            files: io.fp.nfiles(),
            observed: !io.declared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::hash::Fingerprint;
    use crate::fingerprint::system::SystemInfo;

    fn parts() -> CacheParts {
        CacheParts {
            v: 1,
            argv: vec!["python".into(), "train.py".into()],
            template: vec!["python".into(), "train.py".into()],
            cwd: ".".into(),
            inputs: BTreeMap::from([("data.csv".into(), "ab".repeat(32))]),
            params: BTreeMap::new(),
            env: BTreeMap::new(),
            outputs: vec!["model.pkl".into()],
            marker_key: None,
        }
    }

    fn io(path: &str, byte: u8) -> Io {
        let hash = format!("{byte:02x}").repeat(32);
        Io::new(
            path.into(),
            Fingerprint::File {
                hash,
                size: 3,
                mode: 0o644,
            },
        )
    }

    fn after(ended_at: i64) -> After {
        After {
            git: GitState::none(),
            env: EnvSnapshot {
                system: SystemInfo::read(),
                interpreters: BTreeMap::new(),
                lockfiles: BTreeMap::new(),
                vars: BTreeMap::new(),
                packages: Installed::default(),
            },
            ended_at,
            params: BTreeMap::new(),
            keep_outputs: false,
            repo_changes: Vec::new(),
        }
    }

    fn logs(lost: Option<&str>) -> KeptLogs {
        KeptLogs {
            stdout: StepLog::default(),
            stderr: StepLog::default(),
            lost: lost.map(str::to_string),
        }
    }

    fn succeeded() -> Finish {
        let mut metrics = Metrics::new();
        metrics
            .values
            .insert("acc".into(), (0.9, "metrics.json".into()));
        Finish {
            status: StepStatus::Succeeded,
            exit_code: Some(0),
            signal: None,
            error: None,
            inputs: vec![io("data.csv", 0xab)],
            outputs: vec![io("model.pkl", 0xcd)],
            metrics,
            stdout: LogCapture::default(),
            stderr: LogCapture::default(),
        }
    }

    #[test]
    fn a_success_is_recorded_with_its_outputs_and_cache_key() {
        let p = parts();
        let rec = step_record(succeeded(), logs(None), Some(&p), after(1_500));
        assert_eq!(rec.status, StepStatus::Succeeded);
        assert_eq!(rec.cache_key, Some(p.key()));
        assert_eq!(rec.cache_parts, Some(p.json()));
        assert_eq!(rec.outputs.len(), 1);
        assert_eq!(rec.ended_at, 1_500);
        let o = outcome_of("train", &rec, 1_000);
        assert_eq!(o.status, StepStatus::Succeeded);
        assert_eq!(o.duration_ms, Some(500));
        assert_eq!(o.outputs[0].path, "model.pkl");
        assert_eq!(o.outputs[0].kind, "file");
        assert_eq!(o.metrics, BTreeMap::from([("acc".to_string(), 0.9)]));
    }

    #[test]
    fn a_failure_gets_no_cache_key_and_shows_no_outputs() {
        let p = parts();
        let f = Finish::failed(3, None, "exited 3".into(), vec![io("data.csv", 0xab)]);
        let rec = step_record(f, logs(None), Some(&p), after(2_000));
        assert_eq!(rec.status, StepStatus::Failed);
        assert_eq!((&rec.cache_key, &rec.cache_parts), (&None, &None));
        assert_eq!(rec.exit_code, Some(3));
        assert_eq!(
            rec.inputs.len(),
            1,
            "a failed step's inputs are still recorded"
        );
        let o = outcome_of("train", &rec, 1_000);
        assert!(o.outputs.is_empty());
        assert_eq!(o.error.as_deref(), Some("exited 3"));
    }

    #[test]
    fn a_success_whose_logs_were_lost_is_recorded_as_failed() {
        let p = parts();
        let rec = step_record(succeeded(), logs(Some("disk full")), Some(&p), after(9));
        assert_eq!(rec.status, StepStatus::Failed);
        assert_eq!(rec.exit_code, Some(exit::FAILURE));
        assert_eq!(rec.error.as_deref(), Some("disk full"));
        assert!(
            rec.outputs.is_empty(),
            "outputs of a failed step are no versions"
        );
        assert_eq!(rec.cache_key, None, "it can never be reused");
        // a failure keeps its own reason first
        let f = Finish::failed(2, Some(9), "killed by SIGKILL".into(), Vec::new());
        let rec = step_record(f, logs(Some("disk full")), None, after(9));
        assert_eq!(rec.error.as_deref(), Some("killed by SIGKILL; disk full"));
        assert_eq!((rec.exit_code, rec.signal), (Some(2), Some(9)));
    }

    #[test]
    fn a_reused_step_records_the_earlier_execution_and_nothing_printed() {
        let p = parts();
        let reusable = crate::store::reuse::Reusable {
            exec_id: 42,
            run_id: "0190aaaa".into(),
            short_id: "0190aaaa".into(),
            outputs: vec![io("model.pkl", 0xcd)],
            metrics: BTreeMap::from([("acc".into(), (0.9, "metrics.json".into()))]),
        };
        let rec = reused_record(
            StepStatus::Restored,
            vec![io("data.csv", 0xab)],
            &reusable,
            (&p, p.key()),
            after(7),
        );
        assert_eq!(rec.reused_exec, Some(42));
        assert_eq!(rec.cache_key, Some(p.key()));
        assert_eq!(rec.stdout.bytes + rec.stderr.bytes, 0);
        let o = outcome_of("train", &rec, 5);
        assert_eq!(o.status, StepStatus::Restored);
        assert_eq!(
            o.outputs.len(),
            1,
            "a reused step shows the outputs it reused"
        );
        assert_eq!(o.metrics["acc"], 0.9);
    }

    /// Queued records of reused steps are committed together, each whole; one the store refuses
    /// costs only its own.
    #[test]
    fn queued_reuses_are_committed_and_a_bad_one_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(Store::open(dir.path()).unwrap());
        let git = GitState::none();
        let run_start = record::RunStart {
            id: "run1",
            pipeline: "p",
            pipeline_file: "pipeline.toml",
            root: ".",
            spec: "",
            plan_json: "{}",
            params_json: "{}",
            started_at: 1,
            git: &git,
            hostname: "h",
            user: "u",
            argv_json: "[]",
            replay_of: None,
            message: None,
            targets_json: None,
            sweep_id: None,
        };
        w.store.insert_run(&run_start).unwrap();
        let begin = |step, seq| record::StepBegin {
            run_id: "run1",
            step,
            attempt: 1,
            seq,
            cmd: "true",
            argv_json: "[\"true\"]",
            cwd: ".",
            started_at: 2,
            git_before: &git,
        };
        // the execution they reuse
        let earlier = w.store.begin_step(&begin("orig", 0)).unwrap();
        let reusable = crate::store::reuse::Reusable {
            exec_id: earlier,
            run_id: "run1".into(),
            short_id: "run1".into(),
            outputs: vec![io("model.pkl", 0xcd)],
            metrics: BTreeMap::new(),
        };
        let p = parts();
        let cache = HashCache::disabled();
        let queue = |w: &mut Writer, step, seq| {
            let rec = reused_record(
                StepStatus::Cached,
                Vec::new(),
                &reusable,
                (&p, p.key()),
                after(3),
            );
            w.reused
                .push(PendingReuse::new(&begin(step, seq), rec, None));
        };
        let rows = |w: &Writer| -> Vec<(String, StepStatus)> {
            w.store
                .run_detail("run1", false)
                .unwrap()
                .steps
                .into_iter()
                .filter(|s| s.name != "orig")
                .map(|s| (s.name, StepStatus::from_column(&s.status).unwrap()))
                .collect()
        };

        queue(&mut w, "a", 1);
        queue(&mut w, "b", 2);
        assert!(rows(&w).is_empty(), "queued, not yet written");
        assert!(w.flush("run1", &cache).is_empty());
        assert!(w.reused.is_empty(), "a flush leaves nothing queued");
        let cached = StepStatus::Cached;
        assert_eq!(rows(&w), [("a".into(), cached), ("b".into(), cached)]);

        // `a` again (the same attempt: the store refuses it) among two good ones
        queue(&mut w, "c", 3);
        queue(&mut w, "a", 1);
        queue(&mut w, "d", 4);
        let failed: Vec<String> = w.flush("run1", &cache).into_iter().map(|f| f.0).collect();
        assert_eq!(failed, ["a"]);
        let steps: Vec<String> = rows(&w).into_iter().map(|r| r.0).collect();
        assert_eq!(steps, ["a", "b", "c", "d"]);
        assert!(w.flush("run1", &cache).is_empty(), "nothing left to write");
    }
}

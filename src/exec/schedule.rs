//! Which step runs when: the ready set (every dependency succeeded, by running or by reuse),
//! at most `-j` at once, dependants of a step that did not succeed are not run, and after a
//! failure nothing new starts unless `--keep-going`; an interrupt stops starting steps too.
//! `Scheduler` is that policy alone (no processes, no store), so it is tested as such; `run`
//! drives it with the steps' tasks.

use std::sync::Arc;

use tokio::sync::watch;

use super::child::Interrupt;
use super::{Ctx, StepOutcome, record, step};
use crate::error::exit;
use crate::store::record::{RunStatus, StepStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done(StepStatus),
}

/// What the scheduler decided for a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// start it now
    Start(usize),
    /// it will never run, for this reason ("not run: …")
    NotRun(usize, String),
}

/// The scheduling policy over steps in topological order.
pub(super) struct Scheduler {
    names: Vec<String>,
    deps: Vec<Vec<usize>>,
    state: Vec<State>,
    jobs: usize,
    keep_going: bool,
    running: usize,
    /// why nothing new starts any more
    stop: Option<String>,
    first_failed: Option<usize>,
}

impl Scheduler {
    /// `deps[i]`: the indices of step `i`'s dependencies, each smaller than `i`.
    pub(super) fn new(
        names: Vec<String>,
        deps: Vec<Vec<usize>>,
        jobs: usize,
        keep_going: bool,
    ) -> Scheduler {
        let n = names.len();
        Scheduler {
            names,
            deps,
            state: vec![State::Pending; n],
            jobs: jobs.max(1),
            keep_going,
            running: 0,
            stop: None,
            first_failed: None,
        }
    }

    /// The steps to start now and the ones that can no longer run, in plan order. A step whose
    /// dependency did not succeed is not run (naming the first such dependency), which makes
    /// its own dependants not run in the same pass.
    pub(super) fn next(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.stop.is_some() {
            return actions;
        }
        for i in 0..self.state.len() {
            if self.state[i] != State::Pending {
                continue;
            }
            let blocked = self.deps[i]
                .iter()
                .find(|&&d| matches!(self.state[d], State::Done(s) if !s.ok()));
            if let Some(&d) = blocked {
                self.state[i] = State::Done(StepStatus::NotRun);
                let reason = format!("not run: `{}` did not succeed", self.names[d]);
                actions.push(Action::NotRun(i, reason));
                continue;
            }
            let ready = self.deps[i]
                .iter()
                .all(|&d| matches!(self.state[d], State::Done(s) if s.ok()));
            if ready && self.running < self.jobs {
                self.state[i] = State::Running;
                self.running += 1;
                actions.push(Action::Start(i));
            }
        }
        actions
    }

    /// Step `i`, started by `next`, ended with `status`.
    pub(super) fn finished(&mut self, i: usize, status: StepStatus) {
        debug_assert_eq!(self.state[i], State::Running);
        self.state[i] = State::Done(status);
        self.running -= 1;
        if matches!(status, StepStatus::Failed | StepStatus::TimedOut) {
            self.first_failed.get_or_insert(i);
            if !self.keep_going && self.stop.is_none() {
                self.stop = Some(format!(
                    "not run: the run stopped after `{}` failed",
                    self.names[i]
                ));
            }
        }
    }

    /// mlrun was interrupted: start nothing more.
    pub(super) fn interrupted(&mut self) {
        self.stop
            .get_or_insert_with(|| "not run: mlrun was interrupted".into());
    }

    pub(super) fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    #[cfg(test)]
    pub(super) fn running(&self) -> usize {
        self.running
    }

    /// The step that failed first (in time): its exit code is the run's.
    pub(super) fn first_failed(&self) -> Option<usize> {
        self.first_failed
    }

    /// Once nothing runs: the steps never started, with the reason.
    pub(super) fn leftover(&self) -> Vec<(usize, String)> {
        let reason = self.stop.as_deref().unwrap_or("not run");
        (0..self.state.len())
            .filter(|&i| self.state[i] == State::Pending)
            .map(|i| (i, reason.to_string()))
            .collect()
    }
}

/// Run every step that can run; returns the outcomes in plan order and the index of the step
/// that failed first (in time), whose exit code mlrun passes on.
pub(super) async fn run(
    ctx: &Arc<Ctx>,
    jobs: usize,
    keep_going: bool,
    mut int_rx: watch::Receiver<Interrupt>,
) -> (Vec<StepOutcome>, Option<usize>) {
    let steps = ctx.plan.steps();
    let mut sched = Scheduler::new(
        steps.iter().map(|s| s.name.clone()).collect(),
        steps.iter().map(|s| s.deps.clone()).collect(),
        jobs,
        keep_going,
    );
    let mut outcomes: Vec<Option<StepOutcome>> = vec![None; steps.len()];
    let mut running = tokio::task::JoinSet::new();
    loop {
        for action in sched.next() {
            match action {
                Action::NotRun(i, reason) => outcomes[i] = Some(record::not_run(ctx, i, &reason)),
                Action::Start(i) => {
                    let c = ctx.clone();
                    running.spawn(async move { (i, step::run(c, i).await) });
                }
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { break };
                let (i, outcome) = joined.expect("step task panicked");
                sched.finished(i, outcome.status);
                outcomes[i] = Some(outcome);
            }
            changed = int_rx.changed(), if !sched.stopped() => {
                if changed.is_ok() && *int_rx.borrow() != Interrupt::None {
                    sched.interrupted();
                }
            }
        }
    }
    for (i, reason) in sched.leftover() {
        outcomes[i] = Some(record::not_run(ctx, i, &reason));
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.expect("every step has an outcome"))
        .collect();
    (outcomes, sched.first_failed())
}

/// How the run ends and mlrun's exit code. An interrupt wins (128 + the signal). Otherwise a
/// run whose record is incomplete is mlrun's own failure, whatever its steps did (1); and the
/// first step to fail decides the exit code: its own, 124 for a timeout (as `timeout(1)`
/// does), 1 when it exited 0 but broke a promise (a missing output).
pub(super) fn run_status(
    interrupted: Interrupt,
    first_failed: Option<&StepOutcome>,
    unrecorded: bool,
) -> (RunStatus, i32) {
    match interrupted {
        Interrupt::Graceful(sig) | Interrupt::Kill(sig) => (RunStatus::Interrupted, 128 + sig),
        Interrupt::None if unrecorded => (RunStatus::Failed, exit::FAILURE),
        Interrupt::None => match first_failed {
            Some(o) if o.status == StepStatus::TimedOut => (RunStatus::Failed, exit::TIMED_OUT),
            Some(o) => (
                RunStatus::Failed,
                o.exit_code.filter(|c| *c != 0).unwrap_or(exit::FAILURE),
            ),
            None => (RunStatus::Succeeded, exit::OK),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepStatus::*;

    fn sched(deps: &[&[usize]], jobs: usize, keep_going: bool) -> Scheduler {
        Scheduler::new(
            (0..deps.len()).map(|i| format!("s{i}")).collect(),
            deps.iter().map(|d| d.to_vec()).collect(),
            jobs,
            keep_going,
        )
    }

    fn started(actions: &[Action]) -> Vec<usize> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Start(i) => Some(*i),
                Action::NotRun(..) => None,
            })
            .collect()
    }

    #[test]
    fn ready_set_is_the_steps_whose_dependencies_succeeded() {
        // s0 → s1 → s3, s0 → s2; s4 independent
        let mut s = sched(&[&[], &[0], &[0], &[1], &[]], 8, false);
        assert_eq!(s.next(), vec![Action::Start(0), Action::Start(4)]);
        assert_eq!(s.next(), vec![], "nothing new until a step ends");
        s.finished(0, Succeeded);
        assert_eq!(s.next(), vec![Action::Start(1), Action::Start(2)]);
        // a reused step counts as succeeded for its dependants
        s.finished(1, Cached);
        assert_eq!(s.next(), vec![Action::Start(3)]);
        for (i, st) in [(2, Restored), (3, Succeeded), (4, Succeeded)] {
            s.finished(i, st);
        }
        assert_eq!(s.next(), vec![]);
        assert_eq!(s.running(), 0);
        assert!(s.leftover().is_empty());
        assert_eq!(s.first_failed(), None);
    }

    #[test]
    fn never_more_than_jobs_at_once() {
        let mut s = sched(&[&[], &[], &[], &[], &[]], 2, false);
        assert_eq!(started(&s.next()), vec![0, 1]);
        assert_eq!(s.running(), 2);
        assert_eq!(s.next(), vec![]);
        s.finished(1, Succeeded);
        assert_eq!(
            started(&s.next()),
            vec![2],
            "one slot freed, one step started"
        );
        s.finished(0, Succeeded);
        s.finished(2, Succeeded);
        assert_eq!(started(&s.next()), vec![3, 4]);
        assert!(s.running() <= 2);
    }

    #[test]
    fn jobs_zero_still_runs_one_at_a_time() {
        let mut s = sched(&[&[], &[]], 0, false);
        assert_eq!(started(&s.next()), vec![0]);
    }

    #[test]
    fn a_failure_stops_the_run_without_keep_going() {
        let mut s = sched(&[&[], &[], &[0], &[]], 2, false);
        assert_eq!(started(&s.next()), vec![0, 1]);
        s.finished(0, Failed);
        assert!(s.stopped());
        assert_eq!(
            s.next(),
            vec![],
            "nothing new starts, not even independent steps"
        );
        // the running step is waited for
        s.finished(1, Succeeded);
        assert_eq!(
            s.leftover(),
            vec![
                (2, "not run: the run stopped after `s0` failed".to_string()),
                (3, "not run: the run stopped after `s0` failed".to_string()),
            ]
        );
        assert_eq!(s.first_failed(), Some(0));
    }

    #[test]
    fn keep_going_runs_what_does_not_depend_on_the_failure() {
        // s0 fails; s1 depends on it, s2 on s1; s3 is independent
        let mut s = sched(&[&[], &[0], &[1], &[]], 1, true);
        assert_eq!(started(&s.next()), vec![0]);
        s.finished(0, TimedOut);
        assert!(!s.stopped());
        assert_eq!(
            s.next(),
            vec![
                Action::NotRun(1, "not run: `s0` did not succeed".into()),
                // propagated in the same pass, naming its own dependency
                Action::NotRun(2, "not run: `s1` did not succeed".into()),
                Action::Start(3),
            ]
        );
        s.finished(3, Failed);
        assert_eq!(s.first_failed(), Some(0), "the first failure in time");
        assert_eq!(s.next(), vec![]);
        assert!(s.leftover().is_empty());
    }

    #[test]
    fn not_run_names_the_first_dependency_that_did_not_succeed() {
        let mut s = sched(&[&[], &[], &[1, 0]], 2, true);
        s.next();
        s.finished(0, Interrupted);
        s.finished(1, Failed);
        assert_eq!(
            s.next(),
            vec![Action::NotRun(2, "not run: `s1` did not succeed".into())]
        );
        // an interrupted step is no failure of its own: the run's exit code is s1's
        assert_eq!(s.first_failed(), Some(1));
    }

    #[test]
    fn an_interrupt_starts_nothing_more() {
        let mut s = sched(&[&[], &[0], &[]], 1, true);
        assert_eq!(started(&s.next()), vec![0]);
        s.interrupted();
        s.finished(0, Succeeded);
        assert_eq!(s.next(), vec![]);
        assert_eq!(
            s.leftover(),
            vec![
                (1, "not run: mlrun was interrupted".to_string()),
                (2, "not run: mlrun was interrupted".to_string()),
            ]
        );
        // a later failure does not change why the rest did not run
        let mut s = sched(&[&[], &[]], 1, false);
        s.next();
        s.interrupted();
        s.finished(0, Failed);
        assert_eq!(s.leftover()[0].1, "not run: mlrun was interrupted");
    }

    fn outcome(status: StepStatus, exit_code: Option<i32>) -> StepOutcome {
        StepOutcome {
            name: "s".into(),
            status,
            exit_code,
            signal: None,
            duration_ms: None,
            error: None,
            outputs: Vec::new(),
            metrics: Default::default(),
        }
    }

    #[test]
    fn the_first_failure_decides_the_exit_code() {
        let none = Interrupt::None;
        assert_eq!(run_status(none, None, false), (RunStatus::Succeeded, 0));
        let exited_3 = outcome(Failed, Some(3));
        assert_eq!(
            run_status(none, Some(&exited_3), false),
            (RunStatus::Failed, 3)
        );
        let timed_out = outcome(TimedOut, Some(143));
        assert_eq!(
            run_status(none, Some(&timed_out), false),
            (RunStatus::Failed, 124)
        );
        // exited 0 but broke a promise (a missing output)
        let broke = outcome(Failed, Some(0));
        assert_eq!(
            run_status(none, Some(&broke), false),
            (RunStatus::Failed, 1)
        );
        // an incomplete record fails a run whose steps all succeeded
        assert_eq!(run_status(none, None, true), (RunStatus::Failed, 1));
        // an interrupt wins
        let int = Interrupt::Graceful(15);
        assert_eq!(
            run_status(int, Some(&exited_3), true),
            (RunStatus::Interrupted, 143)
        );
        assert_eq!(
            run_status(Interrupt::Kill(2), None, false),
            (RunStatus::Interrupted, 130)
        );
    }
}

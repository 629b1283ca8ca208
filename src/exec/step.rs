//! One step's life in a run: its inputs hashed (and an earlier execution reused when one fits,
//! `reuse`), external inputs kept, then attempts (retries) at running its process, each ending
//! in `StepRun::finish`: the state after it, its record written, its end reported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::child::{self, ChildOutcome, ChildSpec, Interrupt};
use super::event::{Event, StepFinished};
use super::incremental::CacheParts;
use super::record::{self, After, Finish, KeptLogs, failed_unrecorded};
use super::{
    Ctx, StepOutcome, aside, blocking, copy_inputs_ahead, drop_copies_ahead, env, fingerprint_all,
    model, origin_of, reuse,
};
use super::{trace, unix};
use crate::error::{Error, exit};
use crate::fingerprint::git::{GitState, RefsAt};
use crate::fingerprint::metrics::Metrics;
use crate::pipeline::Step;
use crate::pipeline::plan::Executor;
use crate::store::record::{Io, Origin, StepBegin, StepStatus, now_ms};

/// Run step `i` of the plan to its end: reused, or run (and retried) and recorded.
pub(super) async fn run(ctx: Arc<Ctx>, i: usize) -> StepOutcome {
    let step = ctx.plan.steps()[i].clone();
    // the command as recorded and shown: secrets as markers
    let shown = &ctx.recorded.plan.steps()[i].cmd;
    let started = now_ms();
    let git_before = ctx.git_latest.lock().expect("git lock").clone();
    let argv_json = serde_json::to_string(&shown.argv()).unwrap_or_default();
    let cmd_display = shown.display();
    let metrics_file = ctx
        .tmp
        .join(format!("{}-{}.metrics", ctx.run_id, step.name));
    let (env, vars, secrets) = env::of_step(&ctx, &step, &metrics_file);
    let me = StepRun {
        argv_json,
        cmd_display,
        started,
        git_before,
        ctx,
        i,
        step,
        env,
        vars,
        secrets,
        metrics_file,
        parts: None,
        node: Default::default(),
    };
    me.live().await
}

/// A step's state through its life: what it runs with and what is known about it so far.
struct StepRun {
    ctx: Arc<Ctx>,
    /// its index in the plan
    i: usize,
    step: Step,
    /// the command as recorded and shown (secrets as markers), and its argv as JSON
    cmd_display: String,
    argv_json: String,
    /// when it began (its inputs are hashed from then on), and git then
    started: i64,
    git_before: GitState,
    /// the environment its process gets, the one recorded, and the values to mask
    env: BTreeMap<String, String>,
    vars: BTreeMap<String, String>,
    secrets: Vec<String>,
    /// `$MLRUN_METRICS`
    metrics_file: PathBuf,
    /// its cache key's parts, once its inputs are hashed
    parts: Option<CacheParts>,
    /// the environment of the node its last attempt ran on, as a Slurm job (`exec::slurm`)
    node: std::sync::Mutex<Option<super::slurm::wrapper::NodeEnv>>,
}

/// How the step's process ended, as `attempt` acts on it.
struct Ran {
    outcome: crate::error::Result<ChildOutcome>,
    /// the cluster ended a Slurm job (and why)
    job_stopped: Option<(StepStatus, String)>,
    /// what --trace saw
    observed: Option<trace::Observed>,
    /// what it wrote to its metrics file
    metrics_lines: String,
}

/// A step stopped rather than ended: by the cluster, its timeout, or an interrupt (the status
/// and why).
fn stopped(
    step: &Step,
    job_stopped: Option<(StepStatus, String)>,
    timed_out: bool,
    interrupted: Option<i32>,
) -> Option<(StepStatus, String)> {
    if let Some(s) = job_stopped {
        Some(s)
    } else if timed_out {
        let limit = step
            .timeout
            .map(|t| humantime::format_duration(t).to_string())
            .unwrap_or_default();
        Some((StepStatus::TimedOut, format!("timed out after {limit}")))
    } else {
        interrupted.map(|sig| {
            let why = format!("interrupted by {}", unix::signal_name(sig));
            (StepStatus::Interrupted, why)
        })
    }
}

/// One execution of the step: its row in the store and when it started.
#[derive(Clone, Copy)]
struct Exec {
    id: i64,
    started: i64,
}

/// What hashing the inputs decided.
enum Prepared {
    /// the inputs could not be fingerprinted
    NoInputs(Error),
    /// an earlier execution was reused (and its record queued)
    Reused(StepOutcome),
    /// the step must run
    Run { inputs: Vec<Io>, parts: CacheParts },
}

impl StepRun {
    fn begin<'a>(&'a self, attempt: u32, started: i64, git: &'a GitState) -> StepBegin<'a> {
        StepBegin {
            run_id: &self.ctx.run_id,
            step: &self.step.name,
            attempt,
            seq: self.i,
            cmd: &self.cmd_display,
            argv_json: &self.argv_json,
            cwd: &self.step.cwd,
            started_at: started,
            git_before: git,
        }
    }

    async fn live(mut self) -> StepOutcome {
        // Inputs are fingerprinted before the step runs. Whether an earlier execution can be
        // reused is decided, and a reuse recorded, in the same blocking task: a cached step
        // costs one hand-off between threads.
        let (prepared, me) = blocking(move || (self.prepare(), self)).await;
        self = me;
        let ctx = self.ctx.clone();
        let (inputs, parts) = match prepared {
            Prepared::Reused(outcome) => {
                record::arm_flush(&ctx);
                return outcome;
            }
            Prepared::Run { inputs, parts } => (inputs, parts),
            Prepared::NoInputs(e) => {
                let msg = format!("could not fingerprint the inputs: {}", e.message);
                let begin = self.begin(1, self.started, &self.git_before);
                let exec = match ctx.with_store(|c| crate::store::Store::begin_step(c, &begin)) {
                    Ok(id) => Exec {
                        id,
                        started: self.started,
                    },
                    Err(e) => return failed_unrecorded(&ctx, &self.step.name, e),
                };
                let f = Finish::failed(exit::FAILURE, None, msg, Vec::new());
                return self.finish(exec, f).await;
            }
        };
        self.parts = Some(parts);

        // Inputs that neither a step nor the commit can give back are kept, so a replay can:
        // copied while the step runs, waited for by `finish` (input_copy).
        if !ctx.no_store {
            super::input_copy::start(&ctx, &self.step.name, &inputs).await;
        }

        let mut attempt = 1;
        loop {
            let outcome = self.attempt(attempt, inputs.clone()).await;
            let retryable = matches!(outcome.status, StepStatus::Failed | StepStatus::TimedOut)
                && outcome.exit_code != Some(127);
            let step = &self.step;
            if !retryable || attempt > step.retries || *ctx.interrupt.borrow() != Interrupt::None {
                return outcome;
            }
            attempt += 1;
            ctx.events.emit(&Event::StepRetrying {
                step: &step.name,
                attempt,
                attempts: step.retries + 1,
                delay: step.retry_delay,
            });
            let mut int = ctx.interrupt.clone();
            tokio::select! {
                _ = tokio::time::sleep(step.retry_delay) => {}
                _ = int.changed() => return outcome,
            }
        }
    }

    /// Fingerprint the step's inputs and reuse an earlier execution if one fits (unless
    /// forced). Blocking: it hashes files and may restore outputs.
    fn prepare(&self) -> Prepared {
        let ctx = &self.ctx;
        let step = &self.step;
        copy_inputs_ahead(ctx, step, &self.git_before);
        let all_inputs = || step.inputs.iter().map(|d| d.path.as_str());
        let busy = ctx.busy(&step.name, "hashing the inputs of");
        let inputs = fingerprint_all(ctx.plan.root(), &step.inputs, &ctx.cache);
        drop(busy);
        let mut inputs = match inputs {
            Ok(v) => v,
            Err(e) => {
                drop_copies_ahead(ctx, all_inputs());
                return Prepared::NoInputs(e);
            }
        };
        for io in &mut inputs {
            io.origin = Some(origin_of(ctx, io, &self.git_before));
        }
        let not_kept = inputs
            .iter()
            .filter(|io| io.origin != Some(Origin::External));
        drop_copies_ahead(ctx, not_kept.map(|io| io.path.as_str()));
        let parts = CacheParts::of(&ctx.recorded.plan.steps()[self.i], &inputs)
            .marked_with(&ctx.recorded.marker_key);
        let begin = self.begin(1, self.started, &self.git_before);
        if !ctx.force.applies_to(&step.name)
            && let Some(outcome) = reuse::try_reuse(ctx, step, &begin, &inputs, &parts, &self.vars)
        {
            drop_copies_ahead(ctx, all_inputs());
            return Prepared::Reused(outcome);
        }
        Prepared::Run { inputs, parts }
    }

    /// Run the step's process once and record that execution.
    async fn attempt(&self, attempt: u32, inputs: Vec<Io>) -> StepOutcome {
        let ctx = &self.ctx;
        let step = &self.step;
        let (exec, git_now) = match self.begin_attempt(attempt) {
            Ok(begun) => begun,
            Err(unrecorded) => return *unrecorded,
        };
        let _ = std::fs::write(&self.metrics_file, b"");
        // Its declared outputs are moved aside while it runs, so that it is never credited with
        // a file it did not write; they come back unless it succeeds (`aside`: dropped = put
        // back).
        let aside = match aside::Aside::move_aside(
            ctx.objects.store_dir(),
            &ctx.run_id,
            step,
            attempt,
            ctx.plan.root(),
        ) {
            Ok(a) => a,
            Err(msg) => {
                let f = Finish::failed(exit::FAILURE, None, msg, inputs);
                return self.finish(exec, f).await;
            }
        };
        let Ran {
            outcome,
            job_stopped,
            observed,
            metrics_lines,
        } = self.run_process(exec.id, attempt).await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                return self
                    .finish(exec, Finish::failed(127, None, e.message, inputs))
                    .await;
            }
        };
        let (stdout, stderr) = (outcome.stdout, outcome.stderr);

        let stopped = stopped(step, job_stopped, outcome.timed_out, outcome.interrupted);
        if let Some((status, why)) = stopped {
            let f = Finish {
                status,
                exit_code: Some(outcome.exit_code),
                signal: outcome.signal,
                error: Some(why),
                inputs,
                outputs: Vec::new(),
                metrics: Metrics::new(),
                stdout,
                stderr,
            };
            return self.finish(exec, f).await;
        }
        // --trace: warn about undeclared files, record them as observed, decide strict mode
        let mut traced =
            trace::conclude(ctx, step, observed, &git_now, outcome.exit_code == 0).await;
        let mut inputs = inputs;
        inputs.append(&mut traced.inputs);
        if outcome.exit_code != 0 {
            let msg = match outcome.signal {
                Some(s) => format!("killed by {}", unix::signal_name(s)),
                None => child::exit_reason(&step.cmd, outcome.exit_code, stderr.end()),
            };
            let msg = traced.explain(msg);
            let f = Finish::failed(outcome.exit_code, outcome.signal, msg, inputs);
            return self.finish(exec, f.logs(stdout, stderr)).await;
        }
        let done = Exited {
            inputs,
            traced,
            aside,
            metrics_lines,
        };
        self.exited_0(exec, done, stdout, stderr).await
    }

    /// Record that attempt `attempt` begins and say so; the step fails unrecorded when the
    /// store cannot record it. Returns the execution and the git state it starts from.
    fn begin_attempt(&self, attempt: u32) -> Result<(Exec, GitState), Box<StepOutcome>> {
        let ctx = &self.ctx;
        let step = &self.step;
        let started = if attempt == 1 { self.started } else { now_ms() };
        let git_now = ctx.git_latest.lock().expect("git lock").clone();
        let begin = self.begin(attempt, started, &git_now);
        let exec = match ctx.with_store(|c| crate::store::Store::begin_step(c, &begin)) {
            Ok(id) => Exec { id, started },
            Err(e) => return Err(Box::new(failed_unrecorded(ctx, &step.name, e))),
        };
        ctx.events.emit(&Event::StepStarted {
            step: &step.name,
            attempt,
            cmd: &self.cmd_display,
        });
        Ok((exec, git_now))
    }

    /// Run the step's process (locally or as a Slurm job, under the tracer with --trace) to its
    /// end, noting the git refs it moved; what it wrote to its metrics file is read back.
    async fn run_process(&self, exec_id: i64, attempt: u32) -> Ran {
        let ctx = &self.ctx;
        let step = &self.step;
        let refs_before = ctx.refs.as_ref().and_then(|r| r.now());

        let argv = step.cmd.argv();
        let cwd = ctx.plan.root().join(&step.cwd);
        // --trace: the step runs under the tracer helper (exec/trace)
        let tracer = trace::Tracer::new(&ctx.tmp, &ctx.run_id, step, &ctx.plan, ctx.trace);
        let run_argv = tracer.as_ref().map(|t| t.wrap(&argv));
        let spec = ChildSpec {
            step: &step.name,
            argv: run_argv.as_deref().unwrap_or(&argv),
            cwd: &cwd,
            env: &self.env,
            secrets: &self.secrets,
            log_dir: &ctx.tmp,
            grace: ctx.grace,
            timeout: step.timeout,
        };
        let (outcome, job_stopped) = match step.executor {
            Executor::Local => (
                child::run(&spec, &ctx.events, ctx.interrupt.clone()).await,
                None,
            ),
            Executor::Slurm => {
                let ran = super::slurm::run_step(ctx, exec_id, &spec, step, attempt).await;
                *self.node.lock().expect("node lock") = ran.node;
                (ran.outcome, ran.stopped)
            }
        };
        let (outcome, observed) = trace::collect(tracer, outcome, &argv);
        if let Some(before) = &refs_before {
            note_repo_changes(ctx, step, before);
        }
        let metrics_lines = std::fs::read_to_string(&self.metrics_file).unwrap_or_default();
        let _ = std::fs::remove_file(&self.metrics_file);
        Ran {
            outcome,
            job_stopped,
            observed,
            metrics_lines,
        }
    }

    /// The process exited 0: the step succeeds if it kept its promises (every declared output
    /// and metrics file there, `--trace=strict` satisfied) and its outputs can be hashed.
    async fn exited_0(
        &self,
        exec: Exec,
        done: Exited,
        stdout: super::capture::LogCapture,
        stderr: super::capture::LogCapture,
    ) -> StepOutcome {
        let ctx = &self.ctx;
        let step = &self.step;
        let Exited {
            inputs,
            mut traced,
            aside,
            metrics_lines,
        } = done;
        let missing: Vec<String> = step
            .outputs
            .iter()
            .filter(|o| {
                let p = ctx.plan.root().join(&o.path);
                !p.exists() || (o.dir && !p.is_dir())
            })
            .map(|o| {
                if o.dir {
                    format!("{}/", o.path)
                } else {
                    o.path.clone()
                }
            })
            .chain(aside.unwritten_dirs())
            .chain(aside.unwritten_links())
            .chain(
                step.metrics
                    .iter()
                    .filter(|m| !ctx.plan.root().join(m).is_file())
                    .cloned(),
            )
            .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut msg = format!("exited 0 but did not produce declared output {list}");
            if aside.moved() {
                msg += "; the previous outputs are put back";
            }
            let f = Finish::failed(exit::FAILURE, None, msg, inputs);
            return self.finish(exec, f.logs(stdout, stderr)).await;
        }
        if let Some(msg) = traced.strict_failure.take() {
            let f = Finish::failed(exit::FAILURE, None, msg, inputs);
            return self.finish(exec, f.logs(stdout, stderr)).await;
        }
        let c = ctx.clone();
        let i = self.i;
        let outputs = blocking(move || {
            let _busy = c.busy(&c.plan.steps()[i].name, "hashing the outputs of");
            fingerprint_all(c.plan.root(), &c.plan.steps()[i].outputs, &c.cache)
        })
        .await;
        let _hold;
        let mut outputs = match outputs {
            Ok(o) => o,
            Err(e) => {
                let msg = format!("could not fingerprint the outputs: {}", e.message);
                let f = Finish::failed(exit::FAILURE, None, msg, inputs);
                return self.finish(exec, f.logs(stdout, stderr)).await;
            }
        };
        if !ctx.no_store {
            let (keep, skip): (Vec<Io>, Vec<Io>) = outputs
                .into_iter()
                .partition(|io| step.outputs.iter().any(|d| d.path == io.path && d.store));
            // held until the step's record (which references them) is committed, in `finish`
            let c = ctx.clone();
            _hold = if keep.is_empty() {
                None
            } else {
                blocking(move || c.hold_objects()).await
            };
            outputs = store_objects(ctx, &step.name, keep, "output").await;
            outputs.extend(skip);
            outputs.sort_by(|a, b| a.path.cmp(&b.path));
        }
        let mut metrics = Metrics::new();
        for m in &step.metrics {
            if let Err(w) = metrics.read_file(&ctx.plan.root().join(m), m) {
                metrics.warnings.push(w);
            }
        }
        metrics.read_lines(&metrics_lines);
        for e in blocking(move || aside.discard()).await {
            ctx.events.warn(&format!("{}: {e}", step.name));
        }
        outputs.append(&mut traced.outputs);
        let f = Finish {
            status: StepStatus::Succeeded,
            exit_code: Some(0),
            signal: None,
            error: None,
            inputs,
            outputs,
            metrics,
            stdout,
            stderr,
        };
        self.finish(exec, f).await
    }

    /// Take the after-state (git, environment), write the step's record in one transaction,
    /// report its end, register its model output.
    async fn finish(&self, exec: Exec, f: Finish) -> StepOutcome {
        let ctx = &self.ctx;
        let step = &self.step;
        let mut f = f;
        // the copies of its untracked inputs, made while it ran (input_copy)
        super::input_copy::settle(ctx, &step.name, &mut f.inputs).await;
        let (stdout, stderr) = (std::mem::take(&mut f.stdout), std::mem::take(&mut f.stderr));
        let (stdout, stderr, lost) = ctx.keep_logs(stdout, stderr);
        let c = ctx.clone();
        let programs = step.cmd.programs();
        let cwd = ctx.plan.root().join(&step.cwd);
        let step_vars = self.vars.clone();
        let (git_after, interpreters, packages) = blocking(move || {
            let g = c.git_snapshot();
            let path_var = step_vars.get("PATH").map(String::as_str);
            let i = c.interpreters.versions(&programs, &cwd, path_var);
            let p = c.interpreters.packages(&programs, &cwd, &step_vars);
            (g, i, p)
        })
        .await;
        *ctx.git_latest.lock().expect("git lock") = git_after.clone();
        let ended = now_ms();
        for w in &f.metrics.warnings {
            ctx.events.warn(&format!("{}: {w}", step.name));
        }
        let mut env = ctx.env_snapshot(interpreters, packages, self.vars.clone());
        // a Slurm job ran on its node: the machine and interpreters are the node's
        if let Some(node) = self.node.lock().expect("node lock").take() {
            super::slurm::on_node(&mut env, node);
        }
        let after = After {
            git: git_after,
            env,
            ended_at: ended,
            params: ctx.redactor.params(&step.params).0,
            keep_outputs: step.keep_outputs,
            repo_changes: ctx
                .repo_changes
                .lock()
                .expect("repo changes lock")
                .remove(&step.name)
                .unwrap_or_default(),
        };
        let logs = KeptLogs {
            stdout,
            stderr,
            lost,
        };
        let mut rec = record::step_record(f, logs, self.parts.as_ref(), after);
        if let Some(why) = ctx.write_step_record(&step.name, exec.id, &rec) {
            rec.status = StepStatus::Failed;
            rec.exit_code = Some(exit::FAILURE);
            rec.error = Some(why);
        }
        let outcome = record::outcome_of(&step.name, &rec, exec.started);
        ctx.events.emit(&Event::StepFinished(&StepFinished {
            outcome: &outcome,
            inputs: &rec.inputs,
            outputs: &rec.outputs,
            metrics: &outcome.metrics,
            files_time: ctx.phases.files_time(&step.name),
        }));
        model::register_output(ctx, step, exec.id, rec.status, &rec.outputs);
        outcome
    }
}

/// What `attempt` hands `exited_0`.
struct Exited {
    inputs: Vec<Io>,
    traced: trace::Traced,
    aside: aside::Aside,
    metrics_lines: String,
}

/// Keep copies of `ios` in the object store, marking each one kept; a failure is reported and
/// leaves that version recorded but not restorable.
async fn store_objects(ctx: &Arc<Ctx>, step: &str, ios: Vec<Io>, what: &'static str) -> Vec<Io> {
    let c = ctx.clone();
    let step_name = step.to_string();
    let (ios, errors) = blocking(move || {
        let _busy = c.busy(
            &step_name,
            if what == "input" {
                "storing the inputs of"
            } else {
                "storing the outputs of"
            },
        );
        let mut errors = Vec::new();
        let mut ios = ios;
        let _hold = (!ios.is_empty()).then(|| c.hold_objects());
        for io in &mut ios {
            match c.objects.put(&c.plan.root().join(&io.path), &io.fp, &c.cache) {
                Ok(()) => io.stored = true,
                Err(e) => errors.push(format!(
                    "could not keep a copy of {what} `{}` in the object store: {}{}; its hash is recorded but this version cannot be restored",
                    io.path,
                    e.message,
                    e.causes.iter().map(|c| format!(": {c}")).collect::<String>()
                )),
            }
        }
        (ios, errors)
    })
    .await;
    for e in errors {
        ctx.events.warn(&format!("{step}: {e}"));
    }
    ios
}

/// Compare the repository's refs with `before` (taken just before the step's process started):
/// a step that committed, moved a branch or HEAD, or created or deleted refs gets a warning naming
/// each, and the changes go into its record (`finish`).
fn note_repo_changes(ctx: &Ctx, step: &Step, before: &RefsAt) {
    let Some(watch) = &ctx.refs else {
        return;
    };
    let changes = watch.changes_since(before);
    if changes.is_empty() {
        return;
    }
    ctx.events.warn(&format!(
        "{} changed the repository: {}",
        step.name,
        crate::fingerprint::git::describe_ref_changes(&changes)
    ));
    ctx.repo_changes
        .lock()
        .expect("repo changes lock")
        .insert(step.name.clone(), changes);
}

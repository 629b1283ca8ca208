//! Lineage sent live to an OpenLineage server while a pipeline runs.
//!
//! The runner only says what happened: a sink of its events (`exec::openlineage`) turns a step's
//! start and end, a reused step, the run's start and end into a note on an unbounded channel
//! (`Notifier`: step name and attempt, never a wait). Everything else happens on the sender's own
//! thread, off every step's path: it reads the run's own record once, and then only the step
//! executions it was told about (`Store::export_run_steps`, never the whole run again), makes
//! from them the same events `mlrun export --format openlineage` writes
//! (`report::openlineage::{pipeline_start, step_events, pipeline_end}`; the run's end takes the
//! metrics of the steps already read), and posts them in order to `{url}/api/v1/lineage`, each
//! with a 5 s timeout, over one kept-alive connection (the OpenLineage API takes one event per
//! request). Notes that come within 100 ms of the last pass are taken together, so a chain of
//! quick steps costs a few passes and store transactions, not one per step.
//!
//! The store's outbox (`store::outbox`) is the durable queue. While nothing is pending there, new
//! events are posted first; the sent ones are written down in one transaction when the run is
//! over (a write while it runs can make the runner's next write wait), and one that fails is
//! written at once as pending, with the error, with those sent before it. Once something is
//! pending (an earlier run's events, a server that is
//! down), new events are queued behind it and the queue is delivered in order. A connection
//! error, a timeout, a 429 or a 5xx leaves the event pending and the sender backs off (0.3 s
//! doubling to 30 s) before trying again; a 4xx rejects that event for good (kept with the
//! server's reason). When the run ends the runner gives the sender a short grace to deliver what
//! is left (a sender stuck on a server that does not answer has its run's remaining events queued
//! by the runner); whatever is still pending then is delivered, in order, by the next mlrun
//! command (`flush_pending`) or by `mlrun export RUN --send`.
//!
//! The API key (`MLRUN_OPENLINEAGE_API_KEY`) is sent as a bearer token and is nowhere else: not in
//! the events, the outbox, the output or an error message.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::OpenLineage;
use crate::error::Result;
use crate::report::openlineage;
use crate::store::lineage::ExportRun;
use crate::store::query::StepInfo;
use crate::store::{Store, outbox};

/// The timeout of one POST (connect, send, answer), as OpenLineage's own clients use.
pub const TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(300);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The least time between two passes of the sender (see the module comment).
const MIN_GAP: Duration = Duration::from_millis(100);

/// How one POST went.
#[derive(Debug)]
enum Answer {
    Ok,
    /// Worth trying again later: connection refused or reset, timeout, no such host.
    Unreachable(String),
    /// Worth trying again soon: the server is there but answered 429 or 5xx.
    ServerError(String),
    /// The server refused this event for good (any other 4xx).
    Rejected(String),
}

/// What a delivery pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub sent: usize,
    pub rejected: usize,
    /// The server's words for the first event it refused.
    pub rejected_why: Option<String>,
    /// Left pending for `endpoint` after the pass.
    pub pending: usize,
    /// Why the pass stopped early (the server's or the connection's words), if it did.
    pub error: Option<String>,
}

/// Posts events to one server. Its HTTP agent (and TLS configuration, for `https`) is made on
/// the first POST and kept: every event of a command goes over the same kept-alive connection.
pub struct Client {
    agent: std::sync::OnceLock<ureq::Agent>,
    cfg: OpenLineage,
}

impl Client {
    pub fn new(cfg: OpenLineage) -> Client {
        Client {
            agent: std::sync::OnceLock::new(),
            cfg,
        }
    }

    fn agent(&self) -> &ureq::Agent {
        self.agent.get_or_init(|| {
            ureq::Agent::config_builder()
                .timeout_global(Some(TIMEOUT))
                .http_status_as_error(false)
                .user_agent(format!("mlrun/{}", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent()
        })
    }

    pub fn config(&self) -> &OpenLineage {
        &self.cfg
    }

    fn post(&self, body: &str) -> Answer {
        let mut req = self
            .agent()
            .post(&self.cfg.endpoint())
            .header("Content-Type", "application/json");
        if let Some(key) = &self.cfg.api_key {
            req = req.header("Authorization", &format!("Bearer {key}"));
        }
        match req.send(body) {
            Ok(resp) => {
                let code = resp.status().as_u16();
                match code {
                    200..=299 => Answer::Ok,
                    429 | 500..=599 => {
                        Answer::ServerError(format!("the server answered {}", resp.status()))
                    }
                    _ => {
                        let mut text = resp
                            .into_body()
                            .with_config()
                            .limit(2048)
                            .read_to_string()
                            .unwrap_or_default();
                        text.truncate(300);
                        let text = text.trim().replace('\n', " ");
                        Answer::Rejected(if text.is_empty() {
                            format!("the server refused the event ({code})")
                        } else {
                            format!("the server refused the event ({code}): {text}")
                        })
                    }
                }
            }
            Err(e) => Answer::Unreachable(self.describe(&e)),
        }
    }

    /// An error in words, never with the API key (ureq's errors do not carry headers, and the
    /// URL shown is masked).
    fn describe(&self, e: &ureq::Error) -> String {
        let what = match e {
            ureq::Error::Timeout(_) => format!("no answer within {} s", TIMEOUT.as_secs()),
            ureq::Error::ConnectionFailed => "cannot connect".to_string(),
            ureq::Error::HostNotFound => "host not found".to_string(),
            ureq::Error::Io(io) => io.to_string(),
            other => other.to_string(),
        };
        format!("{} ({})", what, self.cfg.shown_url())
    }

    /// Post the pending events of the outbox in order until none is left, one fails in a way
    /// worth retrying (it stays pending and the pass stops: order is kept), or `stop` says so
    /// (asked before each attempt). `retry` says how many more times to try a failing event in
    /// this pass, after a backoff of 0.3 s doubling each time.
    pub fn deliver(
        &self,
        store: &Store,
        retry: Retry,
        stop: &dyn Fn() -> bool,
    ) -> Result<Delivery> {
        let endpoint = self.cfg.shown_url();
        let mut d = Delivery::default();
        'pass: loop {
            let batch = store.outbox_next(64)?;
            if batch.is_empty() {
                break;
            }
            for ev in batch {
                if stop() {
                    d.error.get_or_insert_with(|| "stopped".into());
                    break 'pass;
                }
                let mut backoff = FIRST_BACKOFF;
                let mut tries = 0;
                loop {
                    let (why, limit) = match self.post(&ev.body) {
                        Answer::Ok => {
                            store.outbox_sent(ev.seq, &endpoint, crate::store::record::now_ms())?;
                            d.sent += 1;
                            break;
                        }
                        Answer::Rejected(why) => {
                            let now = crate::store::record::now_ms();
                            store.outbox_rejected(ev.seq, &endpoint, &why, now)?;
                            d.rejected += 1;
                            d.rejected_why.get_or_insert(why);
                            break;
                        }
                        Answer::ServerError(why) => (why, retry.server_errors),
                        Answer::Unreachable(why) => (why, retry.unreachable),
                    };
                    store.outbox_attempt_failed(ev.seq, &why)?;
                    if tries >= limit || stop() {
                        d.error = Some(why);
                        break 'pass;
                    }
                    tries += 1;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        d.pending = store.outbox_pending(None)?.events as usize;
        Ok(d)
    }
}

fn run_events(store: &Store, cfg: &OpenLineage, run_id: &str) -> Result<Vec<(String, String)>> {
    let run = store.export_run(run_id)?;
    Ok(openlineage::events_in(&run, &cfg.namespace)
        .iter()
        .map(|e| {
            (
                openlineage::event_key(e),
                serde_json::to_string(e).unwrap_or_default(),
            )
        })
        .collect())
}

/// `mlrun export RUN --send`: queue the run's events again (sent ones included) and deliver
/// everything pending, in order, retrying a failing event a few times with backoff.
pub fn send_run(store: &mut Store, cfg: &OpenLineage, run_id: &str) -> Result<Delivery> {
    let events = run_events(store, cfg, run_id)?;
    store.outbox_requeue(run_id, &events, crate::store::record::now_ms())?;
    Client::new(cfg.clone()).deliver(
        store,
        Retry {
            server_errors: 3,
            unreachable: 2,
        },
        &|| false,
    )
}

/// How often one delivery pass tries a failing event again.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// after a 429 or 5xx (the server is there)
    pub server_errors: u32,
    /// after a connection error or a timeout (it may be down: waiting is rarely worth it)
    pub unreachable: u32,
}

impl Retry {
    pub const NONE: Retry = Retry {
        server_errors: 0,
        unreachable: 0,
    };
}

/// Queue the events of `run_id` not queued yet, from the whole record of the run (only events
/// that are complete are made: a step's START once it started, its end once it ended, the run's
/// end once the run ended).
pub fn queue_run(store: &mut Store, cfg: &OpenLineage, run_id: &str) -> Result<usize> {
    let events = run_events(store, cfg, run_id)?;
    store.outbox_enqueue(run_id, &events, crate::store::record::now_ms())
}

/// What the runner tells the sender (through a `Notifier`).
enum Msg {
    /// The run's record is written: its START can be made.
    RunStarted,
    /// A step execution (step, attempt) started or ended: its record is written (or, for a
    /// reused step, queued to be written within moments).
    Step(String, i64),
    /// The run's record is closed.
    RunEnded,
    /// Deliver what is left and stop (`LiveRun::finish`, or the run given up).
    Finish,
}

/// How the runner tells the sender what happened: each call is a send on an unbounded channel,
/// so it never waits (the runner's event sink for OpenLineage holds one, see
/// `exec::openlineage`).
#[derive(Clone)]
pub struct Notifier(Sender<Msg>);

impl Notifier {
    pub fn run_started(&self) {
        let _ = self.0.send(Msg::RunStarted);
    }

    pub fn step(&self, step: &str, attempt: i64) {
        let _ = self.0.send(Msg::Step(step.to_string(), attempt));
    }

    pub fn run_ended(&self) {
        let _ = self.0.send(Msg::RunEnded);
    }
}

/// What the runner and the sender share.
#[derive(Default)]
struct Shared {
    /// The run is over: deliver what is left, and stop.
    finishing: AtomicBool,
    /// Bumped after each POST, so that `finish` can tell a busy sender from a stuck one.
    progress: AtomicU64,
    /// Events (key, body) sent and not written to the outbox yet.
    sent: std::sync::Mutex<Vec<(String, String)>>,
}

impl Shared {
    fn sent(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How the end of a run's sending went.
pub enum Finished {
    /// The sender is done: what it delivered and left pending.
    Done(Delivery),
    /// It made no progress within the grace (a server that does not answer): the events it
    /// has sent but not written down yet, for the runner to write as sent before it queues the
    /// rest of the run (`queue_run`), so that none is sent twice.
    Stuck { sent: Vec<(String, String)> },
}

/// The sender of one run: see the module comment.
pub struct LiveRun {
    tx: Sender<Msg>,
    cfg: OpenLineage,
    shared: Arc<Shared>,
    done: Receiver<Delivery>,
    thread: Option<JoinHandle<()>>,
    shown_url: String,
}

impl LiveRun {
    /// Start the sender of `run_id`'s events (it delivers anything still pending from earlier
    /// runs first). It reads nothing before the run says it started (`Notifier::run_started`).
    pub fn start(store_dir: &Path, run_id: &str, cfg: OpenLineage) -> LiveRun {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let shown_url = cfg.shown_url();
        let dir = store_dir.to_path_buf();
        let run_id = run_id.to_string();
        let s = shared.clone();
        let c = cfg.clone();
        let thread = std::thread::Builder::new()
            .name("openlineage".into())
            .spawn(move || {
                let d = Sender_::new(&dir, &run_id, cfg, &s).map(|mut snd| snd.run(rx));
                let _ = done_tx.send(d.unwrap_or_else(|e| Delivery {
                    error: Some(e.message.clone()),
                    ..Delivery::default()
                }));
            })
            .ok();
        LiveRun {
            tx,
            cfg: c,
            shared,
            done,
            thread,
            shown_url,
        }
    }

    /// What the runner's event sink tells the sender through.
    pub fn notifier(&self) -> Notifier {
        Notifier(self.tx.clone())
    }

    /// The URL events go to, as it may be shown.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    pub fn config(&self) -> &OpenLineage {
        &self.cfg
    }

    /// The run is over: let the sender make the last events and deliver them, for as long as it
    /// makes progress, giving up after `grace` without any (a server that does not answer).
    pub fn finish(mut self, grace: Duration) -> Finished {
        self.shared.finishing.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Msg::Finish);
        let mut seen = self.shared.progress.load(Ordering::SeqCst);
        let mut deadline = Instant::now() + grace;
        loop {
            match self.done.recv_timeout(Duration::from_millis(50)) {
                Ok(d) => {
                    if let Some(t) = self.thread.take() {
                        let _ = t.join();
                    }
                    return Finished::Done(d);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let sent = std::mem::take(&mut *self.shared.sent());
                    return Finished::Stuck { sent };
                }
                Err(RecvTimeoutError::Timeout) => {
                    let now = self.shared.progress.load(Ordering::SeqCst);
                    if now != seen {
                        seen = now;
                        deadline = Instant::now() + grace;
                    } else if Instant::now() >= deadline {
                        let sent = std::mem::take(&mut *self.shared.sent());
                        return Finished::Stuck { sent };
                    }
                }
            }
        }
    }
}

impl Drop for LiveRun {
    /// The run given up without `finish` (an error ended it early): one last pass, not waited
    /// for.
    fn drop(&mut self) {
        self.shared.finishing.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Msg::Finish);
    }
}

/// The sender thread's state: what it has made of the run so far.
struct Sender_<'a> {
    store: Store,
    client: Client,
    run_id: String,
    shared: &'a Shared,
    /// The run's own record (no steps), once it started.
    run: Option<ExportRun>,
    /// Step executions (step, attempt) to read: told about, not read yet (or not found yet: a
    /// reused step's record is written moments after it is told).
    wanted: Vec<(String, i64)>,
    /// Ended step executions, in time order: the pipeline end's metrics.
    ended: Vec<StepInfo>,
    run_ended: bool,
    /// Event keys made already (each is queued once).
    made: HashSet<String>,
    /// Events of the store are pending (earlier runs', or a failed POST of this one): new events
    /// go behind them in the outbox; otherwise they are posted first and kept as sent.
    backlog: bool,
    /// When to try delivering pending events again after a failure.
    retry_at: Option<Instant>,
    backoff: Duration,
    last: Delivery,
}

impl<'a> Sender_<'a> {
    fn new(dir: &Path, run_id: &str, cfg: OpenLineage, shared: &'a Shared) -> Result<Self> {
        let store = outbox::open_for_sender(dir)?;
        let backlog = store.outbox_pending(None)?.events > 0;
        Ok(Sender_ {
            store,
            client: Client::new(cfg),
            run_id: run_id.to_string(),
            shared,
            run: None,
            wanted: Vec::new(),
            ended: Vec::new(),
            run_ended: false,
            made: HashSet::new(),
            backlog,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            last: Delivery::default(),
        })
    }

    fn take(&mut self, msg: Msg, finishing: &mut bool, started: &mut bool) {
        match msg {
            Msg::RunStarted => *started = true,
            Msg::Step(s, a) => {
                if !self.wanted.contains(&(s.clone(), a)) {
                    self.wanted.push((s, a));
                }
            }
            Msg::RunEnded => self.run_ended = true,
            Msg::Finish => *finishing = true,
        }
    }

    /// Wait for what the runner says, make the events it allows, deliver; until told to finish.
    fn run(&mut self, rx: Receiver<Msg>) -> Delivery {
        let mut last_pass: Option<Instant> = None;
        let mut started = false;
        loop {
            let mut finishing = self.shared.finishing.load(Ordering::SeqCst);
            // A record not found yet is looked for again soon; a failed delivery after a backoff.
            let wake_at = [
                (!self.wanted.is_empty() && started).then(|| Instant::now() + MIN_GAP),
                self.retry_at,
            ]
            .into_iter()
            .flatten()
            .min();
            if !finishing {
                let got = match wake_at {
                    Some(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(m) => self.take(m, &mut finishing, &mut started),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => finishing = true,
                }
            }
            // Changes within `MIN_GAP` of the last pass are taken together: a chain of quick
            // steps costs a few passes (and store transactions), not one per step. The end of
            // the run is never held back.
            let until = last_pass.map(|t| t + MIN_GAP);
            loop {
                let got = match until {
                    Some(u) if !finishing && !self.run_ended => {
                        rx.recv_timeout(u.saturating_duration_since(Instant::now()))
                    }
                    _ => rx.try_recv().map_err(|e| match e {
                        mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                        mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                    }),
                };
                match got {
                    Ok(m) => self.take(m, &mut finishing, &mut started),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        finishing = true;
                        break;
                    }
                }
            }
            finishing |= self.shared.finishing.load(Ordering::SeqCst);
            last_pass = Some(Instant::now());
            let events = if started {
                match self.make(finishing) {
                    Ok(e) => e,
                    Err(e) => {
                        self.last.error = Some(e.message.clone());
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            if let Err(e) = self.deliver(events, finishing) {
                self.last.error = Some(e.message.clone());
            }
            if finishing {
                self.last.pending = self
                    .store
                    .outbox_pending(None)
                    .map_or(self.last.pending, |p| p.events as usize);
                return std::mem::take(&mut self.last);
            }
        }
    }

    /// The new events (key, body) that what was told allows, in order: the run's START, each
    /// step execution's START and end, the run's end once every step told about is read.
    fn make(&mut self, finishing: bool) -> Result<Vec<(String, String)>> {
        let ns = self.client.config().namespace.clone();
        let mut out = Vec::new();
        if self.run.is_none() {
            let run = self.store.export_run_steps(&self.run_id, &[])?;
            out.push(openlineage::pipeline_start(&run, &ns));
            self.run = Some(run);
        }
        if !self.wanted.is_empty() {
            let part = self.store.export_run_steps(&self.run_id, &self.wanted)?;
            let mut made = Vec::new();
            for s in &part.detail.steps {
                made.extend(openlineage::step_events(&part, s, &ns));
                // a step told about once it started is told about again when it ends
                self.wanted
                    .retain(|(n, a)| !(*n == s.name && *a == s.attempt));
                if openlineage::step_ended(s) {
                    self.ended.push(s.clone());
                }
            }
            openlineage::sort_by_time(&mut made);
            out.extend(made);
        }
        if self.run_ended && (self.wanted.is_empty() || finishing) {
            // the run's own record again, for its status and end (no step is read again)
            let run = self.store.export_run_steps(&self.run_id, &[])?;
            self.ended.sort_by_key(|s| (s.started_at, s.exec_id));
            out.extend(openlineage::pipeline_end(&run, &self.ended, &ns));
            self.run_ended = false;
            self.wanted.clear();
        }
        Ok(out
            .iter()
            .map(|e| {
                (
                    openlineage::event_key(e),
                    serde_json::to_string(e).unwrap_or_default(),
                )
            })
            .filter(|(k, _)| self.made.insert(k.clone()))
            .collect())
    }

    /// Deliver `events` (new, in order) and whatever is pending. With nothing pending, they are
    /// posted first and then kept in the outbox in one transaction with how each went; behind a
    /// backlog they are queued, and the queue is delivered in order when a retry is due.
    fn deliver(&mut self, events: Vec<(String, String)>, finishing: bool) -> Result<()> {
        let endpoint = self.client.config().shown_url();
        let now = crate::store::record::now_ms;
        if !self.backlog {
            // Sent events are written down once the run is over, or with the first that fails:
            // a write to the store while the run goes on can make the runner's next write wait
            // (that is most of what sending live costs it). Until then they are in `shared`, for
            // `LiveRun::finish` to write if this thread is stuck on a POST.
            let mut kept = Vec::new();
            let mut failed = None;
            for (key, body) in events {
                let posted = if failed.is_some() {
                    outbox::Posted::NotTried
                } else {
                    let answer = self.client.post(&body);
                    self.shared.progress.fetch_add(1, Ordering::SeqCst);
                    match answer {
                        Answer::Ok => outbox::Posted::Sent,
                        Answer::Rejected(why) => {
                            self.last.rejected += 1;
                            self.last.rejected_why.get_or_insert(why.clone());
                            outbox::Posted::Rejected(why)
                        }
                        Answer::ServerError(why) | Answer::Unreachable(why) => {
                            failed = Some(why.clone());
                            outbox::Posted::Failed(why)
                        }
                    }
                };
                if posted == outbox::Posted::Sent {
                    self.last.sent += 1;
                    self.shared.sent().push((key, body));
                } else {
                    kept.push((key, body, posted));
                }
            }
            if !kept.is_empty() || finishing {
                let mut rows: Vec<(String, String, outbox::Posted)> = self
                    .shared
                    .sent()
                    .drain(..)
                    .map(|(k, b)| (k, b, outbox::Posted::Sent))
                    .collect();
                rows.append(&mut kept);
                self.store
                    .outbox_record(&self.run_id, &rows, &endpoint, now())?;
            }
            match failed {
                None => return Ok(()),
                Some(why) => {
                    self.backlog = true;
                    self.last.error = Some(why);
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    if !finishing {
                        return Ok(());
                    }
                }
            }
        } else {
            self.store.outbox_enqueue(&self.run_id, &events, now())?;
        }
        let due = self.retry_at.is_none_or(|t| Instant::now() >= t);
        if !(due || finishing) {
            return Ok(());
        }
        let progress = || {
            self.shared.progress.fetch_add(1, Ordering::SeqCst);
            false
        };
        // While the run goes on, a failing server is retried between passes (backing off); the
        // last pass retries one that answers with errors, not one that is down. (Two retries:
        // their backoffs, 0.3 s and 0.6 s, stay within `finish`'s grace.)
        let retry = if finishing {
            Retry {
                server_errors: 2,
                unreachable: 0,
            }
        } else {
            Retry::NONE
        };
        let d = self.client.deliver(&self.store, retry, &progress)?;
        self.last.sent += d.sent;
        self.last.rejected += d.rejected;
        if self.last.rejected_why.is_none() {
            self.last.rejected_why = d.rejected_why;
        }
        self.last.pending = d.pending;
        if d.error.is_some() {
            self.last.error = d.error;
            self.retry_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        } else {
            self.last.error = None;
            self.retry_at = None;
            self.backoff = FIRST_BACKOFF;
            self.backlog = d.pending > 0;
        }
        Ok(())
    }
}

/// How long a command other than `run` gives the delivery of earlier events.
pub const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// A line for `runs` and `show` when events wait to be sent: how many, where, and the last
/// error. `run_id`: only that run's.
pub fn pending_note(store: &Store, run_id: Option<&str>) -> Option<String> {
    let p = store.outbox_pending(run_id).ok()?;
    if p.events == 0 {
        return None;
    }
    let whose = match run_id {
        Some(_) => "of this run".to_string(),
        None if p.runs == 1 => "of 1 run".to_string(),
        None => format!("of {} runs", p.runs),
    };
    let why = p
        .last_error
        .map(|e| format!(" (last attempt: {e})"))
        .unwrap_or_default();
    // without a server named now, nothing retries: say how to name one
    let next = match crate::config::Config::load(&store.dir) {
        Ok(c) if c.openlineage.is_none() => {
            "no OpenLineage server is configured now: they are sent once mlrun.toml's `[openlineage] url` (or MLRUN_OPENLINEAGE_URL) names one"
        }
        _ => "the next mlrun command retries, `mlrun export RUN --send` sends one run's now",
    };
    Some(format!(
        "{} OpenLineage event{} {whose} not sent yet{why}; {next}",
        p.events,
        if p.events == 1 { "" } else { "s" },
    ))
}

/// Deliver what earlier commands left pending, for at most `wait` (the rest stays pending).
/// Nothing happens without a configured server or pending events. Returns what was done, or
/// `None` when there was nothing to do or the wait ran out.
pub fn flush_pending(store_dir: &Path, wait: Duration) -> Option<Delivery> {
    let cfg = crate::config::Config::load(store_dir).ok()?.openlineage?;
    let store = outbox::open_for_sender(store_dir).ok()?;
    if store.outbox_pending(None).ok()?.events == 0 {
        return None;
    }
    let (tx, rx) = mpsc::channel();
    let stop_at = Instant::now() + wait;
    std::thread::Builder::new()
        .name("openlineage".into())
        .spawn(move || {
            let client = Client::new(cfg);
            let d = client.deliver(&store, Retry::NONE, &|| Instant::now() >= stop_at);
            let _ = tx.send(d.ok());
        })
        .ok()?;
    rx.recv_timeout(wait).ok().flatten()
}

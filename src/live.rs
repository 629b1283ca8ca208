//! Lineage sent live to an OpenLineage server while a pipeline runs.
//!
//! The runner only says "the record of this run changed" (`LiveRun::changed`, a non-blocking
//! send on a channel that holds at most one wake-up); everything else happens on the sender's own
//! thread, off every step's path: it reads the run back from the store, turns it into the same
//! events `mlrun export --format openlineage` writes, queues the new ones in the store's outbox
//! (`store::outbox`) and posts the pending ones in order to `{url}/api/v1/lineage`, each with a
//! 5 s timeout. A connection error, a timeout, a 429 or a 5xx leaves the event pending and the
//! sender backs off (0.3 s doubling to 30 s) before trying again; a 4xx rejects that event for
//! good (kept with the server's reason). When the run ends the runner gives the sender a short
//! grace to deliver what is left; whatever is still pending then is delivered, in order, by the
//! next mlrun command (`flush_pending`) or by `mlrun export RUN --send`.
//!
//! The API key (`MLRUN_OPENLINEAGE_API_KEY`) is sent as a bearer token and is nowhere else: not in
//! the events, the outbox, the output or an error message.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::OpenLineage;
use crate::error::Result;
use crate::report::openlineage;
use crate::store::{Store, outbox};

/// The timeout of one POST (connect, send, answer), as OpenLineage's own clients use.
pub const TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(300);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The least time between two readings of the run: see `sender_loop`.
const MIN_GAP: Duration = Duration::from_millis(100);

/// How one POST went.
#[derive(Debug)]
enum Posted {
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

pub struct Client {
    agent: ureq::Agent,
    cfg: OpenLineage,
}

impl Client {
    pub fn new(cfg: OpenLineage) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .user_agent(format!("mlrun/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Client { agent, cfg }
    }

    pub fn config(&self) -> &OpenLineage {
        &self.cfg
    }

    fn post(&self, body: &str) -> Posted {
        let mut req = self
            .agent
            .post(&self.cfg.endpoint())
            .header("Content-Type", "application/json");
        if let Some(key) = &self.cfg.api_key {
            req = req.header("Authorization", &format!("Bearer {key}"));
        }
        match req.send(body) {
            Ok(resp) => {
                let code = resp.status().as_u16();
                match code {
                    200..=299 => Posted::Ok,
                    429 | 500..=599 => {
                        Posted::ServerError(format!("the server answered {}", resp.status()))
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
                        Posted::Rejected(if text.is_empty() {
                            format!("the server refused the event ({code})")
                        } else {
                            format!("the server refused the event ({code}): {text}")
                        })
                    }
                }
            }
            Err(e) => Posted::Unreachable(self.describe(&e)),
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
                        Posted::Ok => {
                            store.outbox_sent(ev.seq, &endpoint, crate::store::record::now_ms())?;
                            d.sent += 1;
                            break;
                        }
                        Posted::Rejected(why) => {
                            let now = crate::store::record::now_ms();
                            store.outbox_rejected(ev.seq, &endpoint, &why, now)?;
                            d.rejected += 1;
                            d.rejected_why.get_or_insert(why);
                            break;
                        }
                        Posted::ServerError(why) => (why, retry.server_errors),
                        Posted::Unreachable(why) => (why, retry.unreachable),
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

/// Queue the events of `run_id` not queued yet. Only events that are complete are made: a step's
/// START once it started, its end once it ended, the run's end once the run ended.
pub fn queue_run(store: &mut Store, cfg: &OpenLineage, run_id: &str) -> Result<usize> {
    let events = run_events(store, cfg, run_id)?;
    store.outbox_enqueue(run_id, &events, crate::store::record::now_ms())
}

/// What the runner and the sender share.
#[derive(Default)]
struct Shared {
    /// The run is over: queue the last events, deliver, and stop.
    finishing: AtomicBool,
    /// Bumped after each POST, so that `finish` can tell a busy sender from a stuck one.
    progress: AtomicU64,
}

/// The sender of one run: see the module comment.
pub struct LiveRun {
    wake: SyncSender<()>,
    shared: Arc<Shared>,
    done: Receiver<Delivery>,
    thread: Option<JoinHandle<()>>,
    shown_url: String,
}

impl LiveRun {
    /// Start sending the events of `run_id` (and anything still pending from earlier runs, first).
    pub fn start(store_dir: &Path, run_id: &str, cfg: OpenLineage) -> LiveRun {
        let (wake, rx) = mpsc::sync_channel(1);
        let (done_tx, done) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let shown_url = cfg.shown_url();
        let dir = store_dir.to_path_buf();
        let run_id = run_id.to_string();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("openlineage".into())
            .spawn(move || {
                let d = sender_loop(&dir, &run_id, cfg, rx, &s);
                let _ = done_tx.send(d);
            })
            .ok();
        LiveRun {
            wake,
            shared,
            done,
            thread,
            shown_url,
        }
    }

    /// The record of the run changed (a step started or ended, the run ended). Never blocks: a
    /// wake-up already waiting covers this one too.
    pub fn changed(&self) {
        let _ = self.wake.try_send(());
    }

    /// The URL events go to, as it may be shown.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// The run is over: let the sender queue the last events and deliver them, for as long as it
    /// makes progress, giving up after `grace` without any (a server that does not answer).
    /// `None` then: what it has not delivered stays pending in the outbox.
    pub fn finish(mut self, grace: Duration) -> Option<Delivery> {
        self.shared.finishing.store(true, Ordering::SeqCst);
        self.changed();
        let mut seen = self.shared.progress.load(Ordering::SeqCst);
        let mut deadline = Instant::now() + grace;
        loop {
            match self.done.recv_timeout(Duration::from_millis(50)) {
                Ok(d) => {
                    if let Some(t) = self.thread.take() {
                        let _ = t.join();
                    }
                    return Some(d);
                }
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    let now = self.shared.progress.load(Ordering::SeqCst);
                    if now != seen {
                        seen = now;
                        deadline = Instant::now() + grace;
                    } else if Instant::now() >= deadline {
                        return None;
                    }
                }
            }
        }
    }
}

fn sender_loop(
    dir: &Path,
    run_id: &str,
    cfg: OpenLineage,
    rx: Receiver<()>,
    shared: &Shared,
) -> Delivery {
    let mut last = Delivery::default();
    let mut store = match outbox::open_for_sender(dir) {
        Ok(s) => s,
        Err(e) => {
            last.error = Some(e.message.clone());
            return last;
        }
    };
    let client = Client::new(cfg.clone());
    let mut backoff = FIRST_BACKOFF;
    let mut retry_at: Option<Instant> = None;
    let mut last_pass: Option<Instant> = None;
    loop {
        // The runner gone without `finish` (an error ended the run early): one last pass.
        let mut gone = false;
        let woken = match retry_at {
            Some(t) => match rx.recv_timeout(t.saturating_duration_since(Instant::now())) {
                Ok(()) => true,
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => {
                    gone = true;
                    true
                }
            },
            None => {
                gone = rx.recv().is_err();
                true
            }
        };
        // Reading the run back costs more than a short step: changes that come within
        // `MIN_GAP` of the last pass are taken together, so a chain of quick steps costs a few
        // passes, not one per step (the end of the run is never held back).
        if let Some(at) = last_pass
            && !gone
        {
            let until = at + MIN_GAP;
            while !shared.finishing.load(Ordering::SeqCst) {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                match rx.recv_timeout(until - now) {
                    Ok(()) => {}
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        gone = true;
                        break;
                    }
                }
            }
        }
        let finishing = gone || shared.finishing.load(Ordering::SeqCst);
        if woken {
            last_pass = Some(Instant::now());
        }
        if woken && let Err(e) = queue_run(&mut store, &cfg, run_id) {
            last.error = Some(e.message.clone());
        }
        let due = retry_at.is_none_or(|t| Instant::now() >= t);
        if due || finishing {
            let progress = || {
                shared.progress.fetch_add(1, Ordering::SeqCst);
                false
            };
            // While the run goes on, a failing server is retried between passes (backing off);
            // the last pass retries one that answers with errors, not one that is down.
            // (Two retries: their backoffs, 0.3 s and 0.6 s, stay within `finish`'s grace.)
            let retry = if finishing {
                Retry {
                    server_errors: 2,
                    unreachable: 0,
                }
            } else {
                Retry::NONE
            };
            match client.deliver(&store, retry, &progress) {
                Ok(d) => {
                    if d.error.is_some() {
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    } else {
                        retry_at = None;
                        backoff = FIRST_BACKOFF;
                    }
                    last = d;
                }
                Err(e) => last.error = Some(e.message.clone()),
            }
        }
        if finishing {
            return last;
        }
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

//! Lineage sent live to an OpenLineage server: a real HTTP server on loopback, in this test
//! binary, receives the events of real runs and validates each against the OpenLineage 2-0-2
//! schemas; it can answer 500 for a while, never answer, or not be there at all.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::common::{Env, wait_until};
use crate::export::{check_facets, schemas};

#[derive(Clone, Copy)]
pub(crate) enum Mode {
    /// 200 for every event
    Accept,
    /// 500 for the first N requests, then 200
    FailFirst(usize),
    /// read the request and never answer
    Hang,
}

#[derive(Debug, Clone)]
pub(crate) struct Got {
    path: String,
    auth: Option<String>,
    pub(crate) event: Value,
}

pub(crate) struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    requests: Arc<AtomicUsize>,
}

impl Receiver {
    pub(crate) fn start(mode: Mode) -> Receiver {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap(), mode)
    }

    pub(crate) fn on(listener: TcpListener, mode: Mode) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (g, r) = (got.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (g, r) = (g.clone(), r.clone());
                std::thread::spawn(move || serve(stream, mode, &g, &r));
            }
        });
        Receiver {
            port,
            got,
            requests,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn events(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// One connection: HTTP/1.1 requests, kept alive, each answered as `mode` says.
fn serve(stream: TcpStream, mode: Mode, got: &Mutex<Vec<Got>>, requests: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let (mut length, mut auth) = (0usize, None);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => auth = Some(value.trim().to_string()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let code = match mode {
            Mode::Hang => {
                // hold the connection until the client gives up
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink);
                return;
            }
            Mode::FailFirst(k) if n < k => 500,
            _ => 200,
        };
        if code == 200 {
            let event = serde_json::from_slice(&body).unwrap_or(Value::Null);
            got.lock().unwrap().push(Got { path, auth, event });
        }
        let reason = if code == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        if out
            .write_all(format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}

const PIPELINE: &str = r#"[pipeline]
name = "live"

[steps.prep]
cmd = "echo a > a.txt"
outputs = ["a.txt"]

[steps.train]
cmd = "cat a.txt > model.txt; echo loss=0.25 >> $MLRUN_METRICS"
inputs = ["a.txt"]
outputs = ["model.txt"]

[steps.report]
cmd = "wc -c model.txt > report.txt"
inputs = ["model.txt"]
outputs = ["report.txt"]
"#;

fn project(url: &str) -> Env {
    let env = Env::git();
    env.write("pipeline.toml", PIPELINE);
    env.write(
        "mlrun.toml",
        &format!("[openlineage]\nurl = \"{url}\"\nnamespace = \"team\"\n"),
    );
    env.commit("pipeline");
    env
}

/// Every event valid, in an order a lineage server can follow: the pipeline's START first and
/// its end last, each step's START before its end; one event per (type, run id).
fn check_events(events: &[Got], expected: usize) {
    let s = schemas();
    let mut errors = Vec::new();
    for (n, g) in events.iter().enumerate() {
        assert_eq!(g.path, "/api/v1/lineage");
        for err in s.event.iter_errors(&g.event) {
            errors.push(format!("event {n}: {err} at {}", err.instance_path()));
        }
        check_facets(
            &s,
            &g.event["run"]["facets"],
            &format!("event {n}"),
            &mut errors,
        );
        assert_eq!(g.event["job"]["namespace"], "team");
    }
    assert!(errors.is_empty(), "{errors:#?}");
    let keys: Vec<(String, String)> = events
        .iter()
        .map(|g| {
            (
                g.event["eventType"].as_str().unwrap().to_string(),
                g.event["run"]["runId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        keys.len(),
        "an event arrived twice: {keys:#?}"
    );
    assert_eq!(keys.len(), expected, "{keys:#?}");
    assert_eq!(keys[0].0, "START");
    assert_eq!(events[0].event["job"]["name"], "live");
    let last = events.last().unwrap();
    assert_eq!(last.event["eventType"], "COMPLETE");
    assert_eq!(last.event["job"]["name"], "live");
    for (i, (kind, id)) in keys.iter().enumerate() {
        if kind != "START" {
            let start = keys.iter().position(|(k, r)| k == "START" && r == id);
            assert!(
                start.is_some_and(|s| s < i),
                "{kind} of {id} before its START"
            );
        }
    }
}

/// 1 pipeline START + 3 steps × (START, COMPLETE) + 1 pipeline COMPLETE.
const EVENTS_OF_A_RUN: usize = 8;

#[test]
fn a_run_sends_its_events_live_in_order_with_the_key_only_in_the_header() {
    let server = Receiver::start(Mode::Accept);
    let mut env = project(&server.url());
    let key = "olkey-7f3a9c21-do-not-store";
    env.set_env("MLRUN_OPENLINEAGE_API_KEY", key);
    let out = env.mlrun(&["pipeline.toml"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains("not delivered"), "{out:?}");
    let events = server.events();
    check_events(&events, EVENTS_OF_A_RUN);
    for g in &events {
        assert_eq!(g.auth.as_deref(), Some(&*format!("Bearer {key}")));
    }
    // the key is sent and nowhere else: not in the output, the store or anything beside it
    let show = env.mlrun(&["show", "latest", "--json"]);
    assert!(!out.all().contains(key) && !show.all().contains(key));
    for f in walk(&env.path(".mlrun")) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "the API key is in {}",
            f.display()
        );
    }
    // nothing pending, nothing said
    let runs = env.mlrun(&["runs"]);
    assert!(!runs.stderr.contains("OpenLineage"), "{runs:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn events_made_while_the_server_is_down_are_delivered_later_exactly_once() {
    // a port with nothing listening on it, for now
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let env = project(&format!("http://127.0.0.1:{port}"));
    let out = env.mlrun(&["pipeline.toml"]);
    assert_eq!(
        out.code, 0,
        "a server that is down never fails a run: {out:?}"
    );
    assert!(
        out.stderr.contains("OpenLineage: 8 events not delivered"),
        "{out:?}"
    );
    assert!(out.stderr.contains("mlrun export"), "{out:?}");
    let show = env.mlrun(&["show", "latest"]);
    assert!(
        show.stderr
            .contains("8 OpenLineage events of this run not sent yet"),
        "{show:?}"
    );

    // the server comes up; the next command delivers, in order, once
    let server = Receiver::on(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        Mode::Accept,
    );
    let runs = env.mlrun(&["runs"]);
    assert_eq!(runs.code, 0, "{runs:?}");
    assert!(!runs.stderr.contains("not sent yet"), "{runs:?}");
    check_events(&server.events(), EVENTS_OF_A_RUN);
    let again = env.mlrun(&["runs"]);
    assert_eq!(again.code, 0);
    assert_eq!(
        server.events().len(),
        EVENTS_OF_A_RUN,
        "nothing is sent twice"
    );

    // a second run's events follow the first's
    let out = env.mlrun(&["pipeline.toml", "--force"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(server.events().len(), 2 * EVENTS_OF_A_RUN);
}

#[test]
fn a_server_that_fails_for_a_while_gets_every_event_in_order() {
    let server = Receiver::start(Mode::FailFirst(2));
    let env = project(&server.url());
    let out = env.mlrun(&["pipeline.toml"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("not delivered"), "{out:?}");
    assert!(server.requests.load(Ordering::SeqCst) >= EVENTS_OF_A_RUN + 2);
    check_events(&server.events(), EVENTS_OF_A_RUN);
}

#[test]
fn a_server_that_never_answers_does_not_hold_the_run_and_export_send_delivers_later() {
    let hanging = Receiver::start(Mode::Hang);
    let env = project(&hanging.url());
    let out = env.mlrun(&["pipeline.toml"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("not delivered"), "{out:?}");
    assert!(wait_until(120, || hanging.requests.load(Ordering::SeqCst) >= 1));
    // the sender was stuck on its first POST: the run's events are in the outbox all the same
    let show = env.mlrun(&["show", "latest"]);
    assert!(
        show.stderr
            .contains("8 OpenLineage events of this run not sent yet"),
        "{show:?}"
    );

    // pointed at a server that works (the environment overrides mlrun.toml), one command sends
    let server = Receiver::start(Mode::Accept);
    let mut env = env;
    env.set_env("MLRUN_OPENLINEAGE_URL", &server.url());
    let sent = env.mlrun(&["export", "latest", "--send"]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert!(
        sent.stderr.contains("sent 8 OpenLineage events"),
        "{sent:?}"
    );
    check_events(&server.events(), EVENTS_OF_A_RUN);

    // `--send` again re-sends the run (servers take events idempotently by run id)
    let sent = env.mlrun(&["export", "latest", "--send"]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(server.events().len(), 2 * EVENTS_OF_A_RUN);
}

#[test]
fn export_send_without_a_server_or_with_a_bad_config_says_what_to_fix() {
    let env = Env::git();
    env.write("pipeline.toml", PIPELINE);
    env.commit("pipeline");
    assert_eq!(env.mlrun(&["pipeline.toml"]).code, 0);
    let out = env.mlrun(&["export", "latest", "--send"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("no OpenLineage server is configured"),
        "{out:?}"
    );
    assert!(out.stderr.contains("MLRUN_OPENLINEAGE_URL"), "{out:?}");

    env.write("mlrun.toml", "[openlineage]\nurll = \"http://x\"\n");
    let out = env.mlrun(&["pipeline.toml", "--force"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("mlrun.toml:2:1"), "{out:?}");
    assert!(out.stderr.contains("urll"), "{out:?}");

    env.write("mlrun.toml", "[openlineage]\nurl = \"localhost:5000\"\n");
    let out = env.mlrun(&["pipeline.toml", "--force"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("[openlineage] url"), "{out:?}");
    assert!(out.stderr.contains("http://"), "{out:?}");
}

#[test]
fn a_step_start_reaches_the_server_while_the_step_is_still_running() {
    let server = Receiver::start(Mode::Accept);
    let env = project(&server.url());
    // the step finishes only once the test has seen its START on the server
    env.write(
        "pipeline.toml",
        "[pipeline]\nname = \"live\"\n\n[steps.wait]\ncmd = \"for i in $(seq 1 1200); do [ -f go ] && exit 0; sleep 0.1; done; exit 1\"\n",
    );
    let child = env
        .command(&["pipeline.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = wait_until(120, || {
        server
            .events()
            .iter()
            .any(|g| g.event["eventType"] == "START" && g.event["job"]["name"] == "live.wait")
    });
    env.write("go", "");
    let out = crate::common::finish(child);
    assert!(started, "no START of the step while it ran: {out:?}");
    assert_eq!(out.code, 0, "{out:?}");
    let events = server.events();
    assert!(
        !events
            .iter()
            .take_while(
                |g| !(g.event["eventType"] == "START" && g.event["job"]["name"] == "live.wait")
            )
            .any(|g| g.event["eventType"] == "COMPLETE"),
        "nothing ended before the step started"
    );
    check_events(&events, 4);
}

/// The exported events of the latest run, in the live namespace, keyed like the live ones.
fn exported(env: &Env, run: &str) -> Vec<Value> {
    let out = env.mlrun(&["export", run, "--format", "openlineage"]);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
        .lines()
        .map(|l| {
            serde_json::from_str(&l.replace("\"namespace\":\"mlrun\"", "\"namespace\":\"team\""))
                .unwrap()
        })
        .collect()
}

#[test]
fn live_events_are_the_exported_ones_and_reused_steps_are_sent_too() {
    let server = Receiver::start(Mode::Accept);
    let env = project(&server.url());
    let first = env.mlrun(&["pipeline.toml"]);
    assert_eq!(first.code, 0, "{first:?}");
    // nothing changed: every step is reused, its record written after it is reported
    let second = env.mlrun(&["pipeline.toml"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(second.stdout.contains("cached"), "{second:?}");
    assert!(!second.stderr.contains("not delivered"), "{second:?}");
    let got = server.events();
    assert_eq!(got.len(), 2 * EVENTS_OF_A_RUN);
    check_events(&got[..EVENTS_OF_A_RUN], EVENTS_OF_A_RUN);
    check_events(&got[EVENTS_OF_A_RUN..], EVENTS_OF_A_RUN);
    // made from the steps as they start and end, they are the events the export makes from the
    // whole record: every end event is the same; a START is made when the run or step starts,
    // before the step's inputs are recorded, while the run's status is `running`
    for (run, live) in [
        ("latest~1", &got[..EVENTS_OF_A_RUN]),
        ("latest", &got[EVENTS_OF_A_RUN..]),
    ] {
        let export = exported(&env, run);
        assert_eq!(export.len(), EVENTS_OF_A_RUN);
        for e in &export {
            let same = live.iter().find(|g| {
                g.event["eventType"] == e["eventType"]
                    && g.event["run"]["runId"] == e["run"]["runId"]
            });
            let Some(same) = same else {
                panic!("not sent live: {e}");
            };
            if e["eventType"] == "START" {
                let mut a = same.event.clone();
                let mut b = e.clone();
                for x in [&mut a, &mut b] {
                    x["inputs"] = Value::Null;
                    x["run"]["facets"]["mlrun_run"]["status"] = Value::Null;
                }
                assert_eq!(a, b, "START of {}", e["job"]["name"]);
            } else {
                assert_eq!(&same.event, e, "{} of {}", e["eventType"], e["job"]["name"]);
            }
        }
    }
}

//! `mlrun ui`: the real server on a store made by real runs, read over HTTP and driven in a
//! real headless Chromium (over WebDriver, with chromedriver).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::common::{Env, skip_unless_ci, wait_until};

/// What the hostile names, params, metrics, logs and file names contain: a script that would
/// retitle the page, a quote and the end of a textarea.
const PAYLOAD: &str = "<script>document.title=\"pwned\"</script></textarea>\"";

/// A project with two runs of a two-step pipeline whose pipeline name, param value, metric
/// name, log line and an output file name are hostile. The second run changes `lr` (its
/// `prepare` step is reused).
fn project() -> Env {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        r#"[pipeline]
name = "demo<script>document.title=\"pwned\"</script></textarea>"

[params]
lr = 0.1
tag = "<script>document.title=\"pwned\"</script></textarea>\""

[steps.prepare]
cmd = "cp raw.csv data.csv"
inputs = ["raw.csv"]
outputs = ["data.csv"]

[steps.train]
cmd = "python3 train.py"
inputs = ["data.csv", "train.py"]
outputs = ["model.txt", "<script>\"x.txt", "m.json"]
params = ["lr", "tag"]
metrics = ["m.json"]
"#,
    );
    env.write(
        "train.py",
        r#"import json, os
P = '<script>document.title="pwned"</script></textarea>"'
print("log line " + P)
lr = float(os.environ["MLRUN_PARAM_LR"])
open("model.txt", "w").write("lr=%s\n" % lr)
open('<script>"x.txt', "w").write(P)
json.dump({P: 1, "accuracy": 0.5 + lr}, open("m.json", "w"))
with open(os.environ["MLRUN_METRICS"], "a") as m:
    m.write("loss=%s\n" % (1 - lr))
"#,
    );
    env.write("raw.csv", "a,b\n1,2\n");
    env.commit("pipeline");
    let out = env.mlrun(&[
        "run",
        "-m",
        "first <script>document.title=\"pwned\"</script>",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.mlrun(&["run", "-p", "lr=0.2"]);
    assert_eq!(out.code, 0, "{out:?}");
    env
}

/// `mlrun ui --port 0` running in a project; stopped when dropped.
struct Server {
    child: Child,
    url: String,
    port: u16,
}

impl Server {
    fn start(env: &Env, extra: &[&str]) -> Server {
        let mut args = vec!["ui", "--port", "0"];
        args.extend_from_slice(extra);
        let mut child = env.spawn_mlrun(&args);
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the URL line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        assert!(
            line.starts_with("mlrun ui: serving http://127.0.0.1:") && line.contains("read-only"),
            "{line:?}"
        );
        let port = url.rsplit(':').next().unwrap().parse().expect("a port");
        Server { child, url, port }
    }

    /// `METHOD path` with a Host header; returns (status, body).
    fn request(&self, method: &str, path: &str, host: &str) -> (u16, String) {
        http(self.port, method, path, host)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &format!("127.0.0.1:{}", self.port))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 request (Connection: close), so a test can send any method and Host.
fn http(port: u16, method: &str, path: &str, host: &str) -> (u16, String) {
    http_body(port, method, path, host, None)
}

fn http_body(port: u16, method: &str, path: &str, host: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if !body.is_empty() || method == "POST" {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).expect("send");
    // read the head, then exactly the body it announces (chromedriver keeps the connection
    // open whatever the request says, so reading to the end would wait for ever)
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).expect("read") == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    let mut raw = Vec::new();
    if method == "HEAD" {
    } else if let Some(n) = length {
        raw.resize(n, 0);
        r.read_exact(&mut raw).expect("body");
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).expect("chunk");
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut raw).expect("body");
    }
    (status, String::from_utf8_lossy(&raw).into_owned())
}

// ---------------------------------------------------------------------------------------------
// HTTP: pages, safety

#[test]
fn ui_prints_its_url_and_serves_every_page() {
    let env = project();
    let ui = Server::start(&env, &[]);
    let (code, runs) = ui.get("/runs");
    assert_eq!(code, 200, "{runs}");
    assert!(runs.contains("accuracy") && runs.contains(">lr<"), "{runs}");
    for path in [
        "/",
        "/run/latest",
        "/compare?runs=latest,latest~1",
        "/lineage?path=model.txt",
        "/lineage?path=model.txt&dir=down&depth=all",
        "/artifact?path=model.txt",
        "/lineage",
        "/static/style.css",
        "/static/app.js",
    ] {
        let (code, body) = ui.get(path);
        // `/` redirects to the runs
        assert!(
            code == 200 || (path == "/" && code == 303),
            "{path}: {code} {body}"
        );
    }
    let (code, body) = ui.get("/run/ffffffffffff");
    assert_eq!(code, 404, "{body}");
    let (code, body) = ui.get("/compare?runs=latest");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("two or more"), "{body}");
    let (code, body) = ui.get("/runs?metric=accuracy%3E%3Ezz");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a"), "{body}");
}

#[test]
fn ui_runs_filter_sort_and_paginate_like_runs() {
    let env = project();
    let ui = Server::start(&env, &[]);
    let rows = |body: &str| body.matches("name=\"runs\" value=").count();
    assert_eq!(rows(&ui.get("/runs").1), 2);
    assert_eq!(rows(&ui.get("/runs?metric=accuracy%3E0.65").1), 1);
    assert_eq!(rows(&ui.get("/runs?param=lr%3D0.1").1), 1);
    assert_eq!(rows(&ui.get("/runs?status=failed").1), 0);
    // sorted by a metric, lowest first: the lr=0.1 run (accuracy 0.6) comes first
    let body = ui.get("/runs?sort=accuracy&order=asc").1;
    let (a, b) = (body.find(">0.6<").unwrap(), body.find(">0.7<").unwrap());
    assert!(a < b, "{body}");
    // one run per page: two pages, linked both ways
    let p1 = ui.get("/runs?per=1").1;
    assert_eq!(rows(&p1), 1);
    assert!(p1.contains("page=2") && p1.contains("older →"), "{p1}");
    let p2 = ui.get("/runs?per=1&page=2").1;
    assert_eq!(rows(&p2), 1);
    assert!(p2.contains("← newer") && !p2.contains("older →"), "{p2}");
    // columns chosen: only accuracy
    let only = ui.get("/runs?cols=m:accuracy").1;
    assert!(
        only.contains("sort by accuracy") && !only.contains("sort by loss"),
        "{only}"
    );
}

#[test]
fn ui_refuses_foreign_hosts_and_every_write() {
    let env = project();
    let ui = Server::start(&env, &[]);
    let port = ui.port;
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
    ] {
        let (code, body) = ui.request("GET", "/runs", &host);
        assert_eq!(code, 403, "Host {host}: {body}");
        assert!(!body.contains("accuracy"), "{body}");
    }
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        assert_eq!(ui.request("GET", "/runs", &host).0, 200, "Host {host}");
    }
    let before = std::fs::read(env.path(".mlrun/lineage.db")).unwrap().len();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let (code, body) = http_body(
            port,
            method,
            "/runs",
            &format!("127.0.0.1:{port}"),
            Some("{}"),
        );
        assert_eq!(code, 405, "{method}: {body}");
        assert!(body.contains("read-only"), "{body}");
    }
    assert_eq!(
        std::fs::read(env.path(".mlrun/lineage.db")).unwrap().len(),
        before
    );
}

#[test]
fn ui_refuses_paths_outside_the_store() {
    let env = project();
    env.write("../secret.txt", "top secret");
    let ui = Server::start(&env, &[]);
    for path in [
        "/artifact?path=../secret.txt",
        "/artifact?path=%2e%2e/secret.txt",
        "/artifact?path=%2E%2E%2Fsecret.txt",
        "/artifact?path=data.csv/../../secret.txt",
        "/artifact?path=/etc/passwd",
        "/lineage?path=..%2F..%2Fetc%2Fpasswd",
        "/lineage?path=.%2Fmodel.txt",
    ] {
        let (code, body) = ui.get(path);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            !body.contains("top secret") && !body.contains("root:"),
            "{body}"
        );
    }
    for path in [
        "/static/../Cargo.toml",
        "/static/..%2F..%2FCargo.toml",
        "/static/%2e%2e%2fsecret.txt",
        "/run/..%2F..%2Fsecret.txt",
        "/../secret.txt",
    ] {
        let (code, body) = ui.get(path);
        assert!(code == 404 || code == 400, "{path}: {code} {body}");
        assert!(
            !body.contains("top secret") && !body.contains("[package]"),
            "{body}"
        );
    }
}

#[test]
fn ui_shows_hostile_text_as_text_in_the_html() {
    let env = project();
    let ui = Server::start(&env, &[]);
    let escaped = "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;&lt;/textarea&gt;";
    for path in [
        "/runs",
        "/run/latest",
        "/run/latest~1",
        "/compare?runs=latest,latest~1&all=1",
        "/lineage?path=model.txt",
        "/lineage?run=latest",
        "/artifact?path=model.txt",
        "/artifact?path=%3Cscript%3E%22x.txt",
        "/lineage",
    ] {
        let (code, body) = ui.get(path);
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            !body.contains("<script>document"),
            "{path}: raw payload in\n{body}"
        );
        assert!(
            !body.contains("</textarea>"),
            "{path}: raw payload in\n{body}"
        );
        assert!(
            body.contains("&lt;script&gt;"),
            "{path}: payload not shown in\n{body}"
        );
        // the only script is our own file
        assert_eq!(body.matches("<script").count(), 1, "{path}:\n{body}");
    }
    // each hostile place, shown escaped where it belongs
    let run = ui.get("/run/latest").1;
    assert!(
        run.contains(&format!("log line {escaped}&quot;")),
        "log line: {run}"
    );
    let param = &run[run.find("tag</th><td>").expect("the tag param")..];
    assert!(
        param[..300.min(param.len())].contains(escaped),
        "param value: {run}"
    );
    assert!(
        run.contains(&format!("<th scope=\"row\">{escaped}&quot;</th>")),
        "metric: {run}"
    );
    assert!(
        run.contains("&lt;script&gt;&quot;x.txt"),
        "file name: {run}"
    );
    assert!(
        run.contains(&format!("demo{escaped}")),
        "pipeline name: {run}"
    );
}

#[test]
fn ui_run_page_updates_while_the_run_runs() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.wait]\ncmd = \"while [ ! -f go ]; do sleep 0.05; done; echo done > out.txt\"\noutputs = [\"out.txt\"]\n",
    );
    env.commit("pipeline");
    // a first run makes the store
    env.write("go", "");
    assert_eq!(env.mlrun(&["run"]).code, 0);
    std::fs::remove_file(env.path("go")).unwrap();
    env.write(
        "pipeline.toml",
        &std::fs::read_to_string(env.path("pipeline.toml"))
            .unwrap()
            .replace("done >", "again >"),
    );
    env.commit("again");
    let ui = Server::start(&env, &[]);
    let running = env.spawn_mlrun(&["run"]);
    assert!(
        wait_until(60, || ui
            .get("/runs?status=running")
            .1
            .contains("name=\"runs\"")),
        "the run never showed as running"
    );
    let page = ui.get("/run/latest").1;
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    assert!(page.contains("still running"), "{page}");
    env.write("go", "");
    let out = crate::common::finish(running);
    assert_eq!(out.code, 0, "{out:?}");
    let page = ui.get("/run/latest").1;
    assert!(!page.contains("http-equiv=\"refresh\""), "{page}");
    assert!(page.contains("succeeded"), "{page}");
}

#[test]
fn ui_bind_elsewhere_warns() {
    let env = project();
    let mut child = env.spawn_mlrun(&["ui", "--port", "0", "--bind", "0.0.0.0"]);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let out = crate::common::finish(child);
    assert!(line.contains("http://127.0.0.1:"), "{line}");
    assert!(
        out.stderr.contains("warning:") && out.stderr.contains("no authentication"),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The browser

/// chromedriver and its headless Chromium for one test; both stopped when dropped.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// None (skipped outside CI) when chromium or chromedriver is missing.
    fn start() -> Option<Browser> {
        let (chromium, driver) = (Path::new("/usr/bin/chromium"), which("chromedriver"));
        let Some(driver) = driver.filter(|_| chromium.exists()) else {
            skip_unless_ci(
                "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // it says when it listens
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains("started successfully") {
                break;
            }
            line.clear();
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--window-size=1280,900", "--force-color-profile=srgb",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let mut b = Browser {
            driver: child,
            port,
            session: String::new(),
            _profile: profile,
        };
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Some(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let (code, text) = http_body(
            self.port,
            method,
            path,
            &format!("127.0.0.1:{}", self.port),
            body.as_deref(),
        );
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{code}: {text}"));
        assert!(code == 200, "{method} {path}: {code} {v}");
        v["value"].clone()
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({"url": url})));
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.call(
            "POST",
            &self.s("/elements"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                // {"element-6066-…": id}: the one value, whatever the key's spelling
                e.as_object()
                    .and_then(|o| o.values().next())
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("not an element: {e}"))
                    .to_string()
            })
            .collect()
    }

    /// The first element matching `css`, waiting for it to appear (a page being loaded).
    fn find(&self, css: &str) -> String {
        let mut found = None;
        assert!(
            wait_until(30, || {
                found = self.find_all(css).into_iter().next();
                found.is_some()
            }),
            "no `{css}` on {}",
            self.url()
        );
        found.unwrap()
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/click")),
            Some(json!({})),
        );
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call("GET", &self.s(&format!("/element/{e}/text")), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({"script": js, "args": []})),
        )
    }

    fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn title(&self) -> String {
        self.call("GET", &self.s("/title"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until the page's URL contains `part` (after a click that navigates).
    fn wait_url(&self, part: &str) {
        assert!(
            wait_until(30, || self.url().contains(part)),
            "never reached {part}: at {}",
            self.url()
        );
        self.find("body");
    }

    /// Save a PNG of the viewport as `NAME.png` in `target/ui-screenshots/`, or, with
    /// `MLRUN_UPDATE_SCREENSHOTS=1`, in `docs/screenshots/` (the README's pictures), so that a
    /// test run does not change the source tree.
    fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call("GET", &self.s("/screenshot"), None);
        let png = base64_decode(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = if std::env::var_os("MLRUN_UPDATE_SCREENSHOTS").is_some() {
            root.join("docs/screenshots")
        } else {
            root.join("target/ui-screenshots")
        };
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// No script of the page ran but ours: the payloads would have retitled it, and they are
    /// not elements.
    fn assert_no_injection(&self) {
        let t = self.title();
        assert!(
            !t.contains("pwned"),
            "a script ran: title {t:?} at {}",
            self.url()
        );
        let scripts = self.script("return Array.from(document.scripts).map(s => s.src)");
        assert_eq!(scripts.as_array().unwrap().len(), 1, "scripts: {scripts}");
        assert!(
            scripts[0].as_str().unwrap().ends_with("/static/app.js"),
            "{scripts}"
        );
        let textareas = self.script("return document.getElementsByTagName('textarea').length");
        assert_eq!(textareas, json!(0));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                self.port,
                "DELETE",
                &self.s(""),
                &format!("127.0.0.1:{}", self.port),
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| val(c) as u32).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (x << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if v.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if v.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

#[test]
fn ui_in_a_browser_runs_run_compare_lineage_card() {
    let env = project();
    let ui = Server::start(&env, &[]);
    let Some(b) = Browser::start() else { return };

    // runs: both runs, hostile text shown as text
    b.goto(&format!("{}/runs", ui.url));
    b.find("table.runs");
    assert_eq!(b.find_all("table.runs tbody tr").len(), 2);
    let table = b.text("table.runs");
    // the param value, whole, as text
    assert!(table.contains(PAYLOAD), "{table}");
    assert!(
        table.contains("demo<script>document.title=\"pwned\"</script>"),
        "{table}"
    );
    b.assert_no_injection();
    b.screenshot("runs");

    // select both and compare
    for cb in b.find_all("input[name=runs]") {
        b.call(
            "POST",
            &b.s(&format!("/element/{cb}/click")),
            Some(json!({})),
        );
    }
    assert!(b.text("#compare-button").contains("Compare 2 runs"));
    b.click("#compare-button");
    b.wait_url("/compare?runs=");
    let table = b.text("table.compare");
    assert!(
        table.contains("lr") && table.contains("0.1") && table.contains("0.2"),
        "{table}"
    );
    // only differences by default: the pipeline name is the same in both, so not shown
    assert!(!table.contains("pipeline"), "{table}");
    assert!(table.contains("accuracy"), "{table}");
    assert!(b.text("#only-diff").contains("on"));
    b.assert_no_injection();
    b.screenshot("compare");
    b.click("#only-diff");
    b.wait_url("all=1");
    assert!(b.text("table.compare").contains("pipeline"));

    // a run: from the compare header to its page
    b.click("table.compare thead a");
    b.wait_url("/run/");
    let steps = b.text("table.steps");
    assert!(
        steps.contains("prepare") && steps.contains("train"),
        "{steps}"
    );
    // (logs are folded in <details>: their text, not their rendering)
    let page = b.script("return document.querySelector('main').textContent");
    let page = page.as_str().unwrap();
    assert!(
        page.contains("log line <script>document.title=\"pwned\"</script></textarea>\""),
        "{page}"
    );
    b.assert_no_injection();
    b.screenshot("run");

    // the card of its model, from the outputs table
    b.click("section#step-train table.io a[href*='model.txt']");
    b.wait_url("/artifact?path=model.txt");
    assert!(b.text("h1").contains("model.txt"));
    assert!(b.text("main").contains("Made by"));
    b.assert_no_injection();
    b.screenshot("model-card");

    // its lineage: distinct node kinds, and nodes link back to cards
    b.click("a[href^='/lineage?path=model.txt']");
    b.wait_url("/lineage?path=model.txt");
    b.find("svg.dag");
    for kind in ["data", "step", "code", "params"] {
        assert!(
            !b.find_all(&format!("svg.dag g.n-{kind}")).is_empty(),
            "no {kind} node"
        );
    }
    b.assert_no_injection();
    b.screenshot("lineage");
    // depth 1: fewer nodes than the full walk
    let all = b.find_all("svg.dag g.node").len();
    b.goto(&format!("{}/lineage?path=model.txt&depth=1", ui.url));
    b.find("svg.dag");
    assert!(b.find_all("svg.dag g.node").len() < all);
    // a data node opens its card
    b.click("svg.dag a[href*='path=data.csv']");
    b.wait_url("/artifact?path=data.csv");
    assert!(b.text("h1").contains("data.csv"));
}

#[test]
fn ui_in_a_browser_is_usable_by_keyboard() {
    let env = project();
    let ui = Server::start(&env, &[]);
    let Some(b) = Browser::start() else { return };
    b.goto(&format!("{}/runs", ui.url));
    b.find("table.runs");
    // Tab reaches the skip link first, then the navigation; Enter on a run link opens it
    let active = |b: &Browser| {
        b.script("return document.activeElement.textContent")
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let keys = |b: &Browser, k: &str| {
        b.call(
            "POST",
            &b.s("/actions"),
            Some(json!({"actions": [{"type": "key", "id": "kb", "actions": [
            {"type": "keyDown", "value": k}, {"type": "keyUp", "value": k}]}]})),
        );
    };
    keys(&b, "\u{E004}");
    assert_eq!(active(&b), "Skip to content");
    // focus the first run link, press Enter
    b.script("document.querySelector('table.runs a.id').focus()");
    keys(&b, "\u{E007}");
    b.wait_url("/run/");
    // "/" focuses the first filter of the runs page
    b.goto(&format!("{}/runs", ui.url));
    b.find("table.runs");
    keys(&b, "/");
    assert_eq!(
        b.script("return document.activeElement.name"),
        json!("pipeline")
    );
}

#[test]
fn ui_open_starts_the_browser_on_its_url() {
    let mut env = project();
    // a "browser" that writes down the URL it was given
    env.write(
        "browser.sh",
        "#!/bin/sh\necho \"$1\" > \"$(dirname \"$0\")/opened.txt\"\n",
    );
    let browser = env.path("browser.sh");
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.set_env("BROWSER", browser.to_str().unwrap());
    let ui = Server::start(&env, &["--open"]);
    let opened = env.path("opened.txt");
    assert!(
        wait_until(30, || std::fs::read_to_string(&opened)
            .is_ok_and(|s| s.ends_with('\n'))),
        "the browser was not started"
    );
    assert_eq!(
        std::fs::read_to_string(&opened).unwrap().trim(),
        format!("{}/", ui.url)
    );
}

// ---------------------------------------------------------------------------------------------
// Links printed by the CLI once `[ui] base_url` is configured

/// The URL of the `web view:` line of a command's output.
fn link_in(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("web view: "))
        .map(str::to_string)
}

#[test]
fn cli_prints_links_to_the_web_view_only_once_configured_and_they_open() {
    let mut env = project();
    let json = |args: &[&str]| -> Value {
        let out = env.mlrun(args);
        assert_eq!(out.code, 0, "{out:?}");
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    // not configured: no link, no `url` field
    for args in [
        &["show", "latest"][..],
        &["show", "model.txt"],
        &["compare", "latest", "latest~1"],
        &["lineage", "model.txt"],
    ] {
        let out = env.mlrun(args);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(!out.all().contains("web view"), "{args:?}: {out:?}");
        let mut j = args.to_vec();
        j.push("--json");
        assert!(json(&j).get("url").is_none(), "{args:?}");
    }
    let run_id = json(&["show", "latest", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let previous = json(&["show", "latest~1", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = json(&["show", "model.txt", "--json"])["version"]["hash"]
        .as_str()
        .unwrap()
        .to_string();

    // `mlrun ui` serves this store; mlrun.toml says where
    let ui = Server::start(&env, &[]);
    env.write("mlrun.toml", &format!("[ui]\nbase_url = \"{}/\"\n", ui.url));
    let opens = |url: &str| {
        let path = url
            .strip_prefix(&ui.url)
            .unwrap_or_else(|| panic!("{url} is not under {}", ui.url));
        let (code, body) = ui.get(path);
        assert_eq!(code, 200, "{url}: {body}");
        body
    };
    let expect = [
        (&["show", "latest"][..], format!("{}/run/{run_id}", ui.url)),
        (
            &["show", "latest:train"],
            format!("{}/run/{run_id}#step-train", ui.url),
        ),
        (
            &["show", "model.txt"],
            format!("{}/artifact?path=model.txt&hash={hash}", ui.url),
        ),
        (
            &["compare", "latest", "latest~1"],
            format!("{}/compare?runs={run_id},{previous}", ui.url),
        ),
        (
            &["lineage", "model.txt"],
            format!("{}/lineage?path=model.txt&hash={hash}&depth=all", ui.url),
        ),
        (
            &["lineage", "latest", "--down", "--depth", "2"],
            format!("{}/lineage?run={run_id}&dir=down&depth=2", ui.url),
        ),
    ];
    for (args, want) in &expect {
        let out = env.mlrun(args);
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(
            link_in(&out.stdout).as_ref(),
            Some(want),
            "{args:?}: {out:?}"
        );
        let mut j = args.to_vec();
        j.push("--json");
        assert_eq!(json(&j)["url"], *want, "{args:?} --json");
        opens(want);
    }
    assert!(opens(&format!("{}/run/{run_id}", ui.url)).contains(&run_id[..8]));
    // dot and mermaid are for other tools: no link in them
    let dot = env.mlrun(&["lineage", "model.txt", "--format", "dot"]);
    assert!(!dot.all().contains("web view"), "{dot:?}");

    // a run ends with its page, and `--json` has it as `url`
    let out = env.mlrun(&["run", "-p", "lr=0.3"]);
    assert_eq!(out.code, 0, "{out:?}");
    let new_id = json(&["show", "latest", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = link_in(&out.stdout).unwrap_or_else(|| panic!("no link: {out:?}"));
    assert_eq!(url, format!("{}/run/{new_id}", ui.url));
    assert!(opens(&url).contains("lr"));
    let doc = json(&["run", "-p", "lr=0.4", "--json"]);
    assert_eq!(
        doc["url"],
        format!("{}/run/{}", ui.url, doc["run_id"].as_str().unwrap())
    );
    opens(doc["url"].as_str().unwrap());

    // the environment overrides the file; empty turns the links off
    env.set_env("MLRUN_UI_URL", "");
    let out = env.mlrun(&["show", "latest"]);
    assert!(!out.all().contains("web view"), "{out:?}");
    // a mistake in the setting is said, and the command still shows what it shows
    env.set_env("MLRUN_UI_URL", "localhost:8765");
    let out = env.mlrun(&["show", "latest"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("MLRUN_UI_URL"), "{out:?}");
    assert!(!out.stdout.contains("web view"), "{out:?}");
    let out = env.mlrun(&["run"]);
    assert_eq!(
        out.code, 2,
        "a run stops on a mistake in its settings: {out:?}"
    );
}

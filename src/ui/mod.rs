//! `mlrun ui`: a local, read-only web view of the store. Pages are rendered on the server from
//! the same queries as the `--json` outputs (`store::query`, `store::lineage`), escaped by
//! `html`; the lineage graph is laid out by `layout` and drawn as SVG by `graph`. The CSS and
//! JavaScript are compiled into the binary.
//!
//! Safety: GET and HEAD only (nothing can write); a request whose `Host` is not this machine
//! by address or `localhost` is refused (DNS rebinding); artifact paths are only ever looked up
//! in the database, and paths with `..` are refused before that.

pub mod graph;
pub mod html;
pub mod layout;
pub mod pages;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::{Error, Result};
use crate::store::Store;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// What a page handler answers: a status and a whole HTML page.
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
}

impl Reply {
    pub fn ok(body: String) -> Reply {
        Reply {
            status: StatusCode::OK,
            body,
        }
    }
    pub fn error(status: StatusCode, title: &str, message: &str) -> Reply {
        let mut h = html::Html::default();
        h.el("h1", "", title).el("p", "class=\"error\"", message);
        h.raw("<p><a href=\"/runs\">Back to the runs</a></p>");
        Reply {
            status,
            body: html::page(title, "", &h.0, false),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.body,
        )
            .into_response()
    }
}

struct App {
    store: Mutex<Store>,
    port: u16,
}

/// Parsed query string: every `key=value` pair in order (repeated keys kept).
pub type Query = Vec<(String, String)>;

fn parse_query(raw: Option<&str>) -> Query {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// Run a page function on a blocking thread with the store.
async fn render(
    app: Arc<App>,
    f: impl FnOnce(&crate::store::Store) -> Result<Reply> + Send + 'static,
) -> Reply {
    let out = tokio::task::spawn_blocking(move || {
        let store = app.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&store)
    })
    .await;
    match out {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "Error", &e.to_string()),
        Err(_) => Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "the page could not be rendered",
        ),
    }
}

/// The pages and their stable URLs. One handler matches the path itself: each route of axum's
/// router is a stack of generic services of its own, and seven of them cost more binary than
/// the whole of this match.
fn router(app: Arc<App>) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

async fn dispatch(State(a): State<Arc<App>>, req: Request) -> Response {
    let path = req.uri().path();
    let q = parse_query(req.uri().query());
    // `/run/{id}` and `/static/{name}`: one segment, percent-decoded
    let segment = |prefix: &str| {
        path.strip_prefix(prefix)
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .and_then(percent_decode)
    };
    let page: fn(&Store, &Query) -> Result<Reply> = match path {
        "/" => return Redirect::to("/runs").into_response(),
        "/runs" => pages::runs,
        "/compare" => pages::compare,
        "/lineage" => pages::lineage,
        "/artifact" => pages::artifact,
        _ => {
            if let Some(id) = segment("/run/") {
                return render(a, move |c| pages::run(c, &id)).await.into_response();
            }
            if let Some(name) = segment("/static/") {
                return asset(&name);
            }
            return Reply::error(
                StatusCode::NOT_FOUND,
                "Not found",
                "there is no such page; the pages are /runs, /run/ID, /compare?runs=A,B, /lineage?path=PATH and /artifact?path=PATH",
            )
            .into_response();
        }
    };
    render(a, move |c| page(c, &q)).await.into_response()
}

/// A percent-encoded path segment as text (`None`: not UTF-8 once decoded).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn asset(name: &str) -> Response {
    let (body, kind) = match name {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => {
            return Reply::error(StatusCode::NOT_FOUND, "Not found", "no such file")
                .into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Whether a `Host` header names this server: `localhost` or an IP address, on our port.
/// Any other name may be an attacker's domain resolving to 127.0.0.1 (DNS rebinding).
pub fn host_allowed(host: &str, port: u16) -> bool {
    let (name, p) = match host.rsplit_once(':') {
        Some((n, p)) if !n.is_empty() && !p.contains(']') => (n, p.parse::<u16>().ok()),
        _ => (host, None),
    };
    let port_ok = p.map_or(port == 80, |p| p == port);
    let name = name.trim_end_matches('.');
    let by_address = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .map_or_else(
            || name.parse::<std::net::Ipv4Addr>().is_ok(),
            |v6| v6.parse::<std::net::Ipv6Addr>().is_ok(),
        );
    port_ok && (by_address || name.eq_ignore_ascii_case("localhost"))
}

/// Every request: GET/HEAD only, a Host naming this server, and headers that keep the pages
/// from running anything but our own script.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = (
            StatusCode::METHOD_NOT_ALLOWED,
            "mlrun ui is read-only: only GET and HEAD requests are served\n",
        )
            .into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if !host.as_deref().is_some_and(|h| host_allowed(h, app.port)) {
        return (
            StatusCode::FORBIDDEN,
            "refused: the Host header does not name this server (open it as http://127.0.0.1:PORT/ or http://localhost:PORT/)\n",
        )
            .into_response();
    }
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

pub struct Options {
    pub bind: IpAddr,
    pub port: u16,
    pub open: bool,
}

/// Serve until interrupted (Ctrl-C / SIGTERM). Prints the URL once listening.
pub fn serve(store: Store, opts: Options) -> Result<i32> {
    let addr = SocketAddr::new(opts.bind, opts.port);
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        Error::other(format!("cannot listen on {addr}"))
            .cause(e)
            .hint("another program may use that port: pick another with --port N (0 for any free port)")
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::other("cannot set up the listening socket").cause(e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::other("cannot read the listening address").cause(e))?;
    let shown = if local.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), local.port())
    } else {
        local
    };
    let url = format!("http://{shown}/");
    let app = Arc::new(App {
        store: Mutex::new(store),
        port: local.port(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .map_err(|e| Error::other("cannot start the async runtime").cause(e))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::other("cannot set up the listening socket").cause(e))?;
        println!("mlrun ui: serving {url} (read-only; Ctrl-C to stop)");
        if opts.open {
            open_browser(&url);
        }
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| Error::other("the web server stopped").cause(e))
    })?;
    Ok(0)
}

/// `--open`: the desktop's browser (`$BROWSER`, else xdg-open / open); a failure is a note.
fn open_browser(url: &str) {
    let candidates: Vec<String> = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.is_empty())
        .into_iter()
        .chain(["xdg-open".to_string(), "open".to_string()])
        .collect();
    for prog in candidates {
        let spawned = std::process::Command::new(&prog)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_ok() {
            return;
        }
    }
    eprintln!("note: could not start a browser; open {url} yourself");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_naming_this_machine_are_allowed() {
        assert!(host_allowed("127.0.0.1:8080", 8080));
        assert!(host_allowed("localhost:8080", 8080));
        assert!(host_allowed("LOCALHOST:8080", 8080));
        assert!(host_allowed("[::1]:8080", 8080));
        assert!(host_allowed("192.168.1.5:8080", 8080));
    }

    #[test]
    fn foreign_hosts_are_refused() {
        assert!(!host_allowed("evil.example:8080", 8080));
        assert!(!host_allowed("127.0.0.1.evil.example:8080", 8080));
        assert!(!host_allowed("localhost.evil.example:8080", 8080));
        assert!(!host_allowed("127.0.0.1:9999", 8080));
        assert!(!host_allowed("127.0.0.1", 8080));
        assert!(!host_allowed("", 8080));
        assert!(!host_allowed("[::1", 8080));
    }
}

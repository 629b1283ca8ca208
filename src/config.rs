//! The project's committed settings: `mlrun.toml` in the project root (the directory that holds
//! the store's `.mlrun/`), for what is the same for everyone who runs the project and is not part
//! of any one pipeline: where lineage is sent live. Environment variables override it, so CI can
//! point elsewhere without editing the file. Credentials never live here: the OpenLineage API
//! key comes only from `MLRUN_OPENLINEAGE_API_KEY`.
//!
//! ```toml
//! [openlineage]
//! url = "http://marquez.internal:5000"   # events go to {url}/api/v1/lineage
//! namespace = "ml-team"                  # the jobs' namespace (default "mlrun")
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

pub const FILE: &str = "mlrun.toml";
pub const DEFAULT_NAMESPACE: &str = "mlrun";

pub const ENV_URL: &str = "MLRUN_OPENLINEAGE_URL";
pub const ENV_NAMESPACE: &str = "MLRUN_OPENLINEAGE_NAMESPACE";
pub const ENV_API_KEY: &str = "MLRUN_OPENLINEAGE_API_KEY";
pub const ENV_UI_URL: &str = "MLRUN_UI_URL";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    openlineage: Option<RawOpenLineage>,
    ui: Option<RawUi>,
    remote: Option<RawRemote>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    base_url: Option<toml::Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    db: Option<toml::Spanned<String>>,
    objects: Option<toml::Spanned<String>>,
    push: Option<bool>,
    cache: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOpenLineage {
    url: Option<String>,
    namespace: Option<String>,
}

/// Where and how to send OpenLineage events.
#[derive(Clone)]
pub struct OpenLineage {
    /// Base URL without a trailing slash; events are POSTed to `{url}/api/v1/lineage`.
    pub url: String,
    pub namespace: String,
    /// From the environment only; never stored, printed or recorded (`Debug` hides it).
    pub api_key: Option<String>,
}

impl std::fmt::Debug for OpenLineage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenLineage")
            .field("url", &mask_url(&self.url))
            .field("namespace", &self.namespace)
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .finish()
    }
}

impl OpenLineage {
    pub fn endpoint(&self) -> String {
        format!("{}/api/v1/lineage", self.url)
    }

    /// The URL as it may be shown: a password in it replaced by `***`.
    pub fn shown_url(&self) -> String {
        mask_url(&self.url)
    }
}

/// The project settings that apply to a store in `store_dir` (`<root>/.mlrun`): `<root>/mlrun.toml`
/// if there is one, then the environment.
#[derive(Debug, Default, Clone)]
pub struct Config {
    pub openlineage: Option<OpenLineage>,
    /// Where `mlrun ui` is served for the people reading mlrun's output (`[ui] base_url`,
    /// `MLRUN_UI_URL`): commands then print links to its pages.
    pub ui: Option<UiLinks>,
    /// The team remote (`[remote]`), when both its record and its objects are configured.
    pub remote: Option<Remote>,
}

/// Links to the pages of `mlrun ui` at a configured base URL. The paths are the UI's stable
/// routes (`ui::router`): `/run/ID`, `/compare?runs=A,B`, `/lineage?run=ID`,
/// `/lineage?path=P`, `/artifact?path=P&hash=H`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiLinks {
    /// without a trailing slash
    pub base: String,
}

impl UiLinks {
    pub fn run(&self, run_id: &str) -> String {
        format!("{}/run/{}", self.base, percent(run_id))
    }

    /// The compare page of these runs, in this order; every row with `all` (`compare --all`).
    pub fn compare(&self, run_ids: &[&str], all: bool) -> String {
        let ids: Vec<String> = run_ids.iter().map(|i| percent(i)).collect();
        format!(
            "{}/compare?runs={}{}",
            self.base,
            ids.join(","),
            if all { "&all=1" } else { "" }
        )
    }

    /// The lineage of a run, or of an artifact version (`path`, `hash`); downstream with
    /// `down`; `depth` levels deep, or all of it (as `mlrun lineage` without `--depth`).
    pub fn lineage(&self, seed: LineageSeed<'_>, down: bool, depth: Option<u32>) -> String {
        let mut url = match seed {
            LineageSeed::Run(id) => format!("{}/lineage?run={}", self.base, percent(id)),
            LineageSeed::Version { path, hash } => format!(
                "{}/lineage?path={}&hash={}",
                self.base,
                percent(path),
                percent(hash)
            ),
        };
        if down {
            url += "&dir=down";
        }
        match depth {
            Some(d) => url += &format!("&depth={d}"),
            None => url += "&depth=all",
        }
        url
    }

    /// The model card of an artifact version (the latest one without `hash`).
    pub fn artifact(&self, path: &str, hash: Option<&str>) -> String {
        match hash {
            Some(h) => format!(
                "{}/artifact?path={}&hash={}",
                self.base,
                percent(path),
                percent(h)
            ),
            None => format!("{}/artifact?path={}", self.base, percent(path)),
        }
    }
}

/// What a lineage link starts from.
#[derive(Debug, Clone, Copy)]
pub enum LineageSeed<'a> {
    Run(&'a str),
    Version { path: &'a str, hash: &'a str },
}

/// Percent-encode a URL path or query value: everything but unreserved characters and `/`.
pub fn percent(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub const ENV_REMOTE_DB: &str = "MLRUN_REMOTE_DB";
pub const ENV_REMOTE_OBJECTS: &str = "MLRUN_REMOTE_OBJECTS";
pub const ENV_ENDPOINT: &str = "AWS_ENDPOINT_URL";

/// The team remote: a PostgreSQL record and an S3 bucket of objects. Credentials are not here:
/// the database password comes from PGPASSWORD / PGPASSFILE, the S3 keys from the AWS
/// environment variables or `~/.aws/credentials`, each read when connecting.
#[derive(Clone)]
pub struct Remote {
    /// `postgres://[user@]host[:port]/db` (a password in it is used but never shown)
    pub db: String,
    pub bucket: String,
    /// Key prefix inside the bucket, without slashes at either end ("" for the bucket's root)
    pub prefix: String,
    /// An S3-compatible server's endpoint (AWS_ENDPOINT_URL); None: AWS itself
    pub endpoint: Option<String>,
    /// Push at the end of every `mlrun run` (`push = true`)
    pub push: bool,
    /// Look steps up in the remote's cache before running them (`cache`, default true)
    pub cache: bool,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("db", &mask_url(&self.db))
            .field("objects", &self.objects_url())
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Remote {
    /// The record's URL as it may be shown: the password masked.
    pub fn shown_db(&self) -> String {
        mask_url(&self.db)
    }

    pub fn objects_url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// What names this remote in the local store's memory of what was pushed: the record and
    /// the objects (with the server), never a password; the same however TLS is set.
    pub fn key(&self) -> String {
        format!(
            "{} {} {}",
            mask_url(&split_tls(&self.db).0),
            self.objects_url(),
            self.endpoint.as_deref().unwrap_or("aws")
        )
    }
}

/// The settings file of the project whose store is `store_dir`.
pub fn file_for_store(store_dir: &Path) -> PathBuf {
    store_dir
        .parent()
        .map(|p| p.join(FILE))
        .unwrap_or_else(|| PathBuf::from(FILE))
}

impl Config {
    /// Read the project's `mlrun.toml` (if any) and apply the environment.
    pub fn load(store_dir: &Path) -> Result<Config> {
        Self::load_with(&file_for_store(store_dir), |k| std::env::var(k).ok())
    }

    fn load_with(file: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::other(format!("cannot read `{}`", file.display())).cause(e));
            }
        };
        let raw = match &text {
            Some(t) => parse(file, t)?,
            None => RawConfig::default(),
        };
        let file_ol = raw.openlineage.unwrap_or_default();
        // An empty MLRUN_OPENLINEAGE_URL turns sending off, whatever the file says.
        let (url, from_env) = match env(ENV_URL) {
            Some(u) => (Some(u), true),
            None => (file_ol.url, false),
        };
        let url = url.map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
        let openlineage = match url {
            None => None,
            Some(url) => {
                let origin = if from_env {
                    ENV_URL.to_string()
                } else {
                    format!("{}: [openlineage] url", file.display())
                };
                let url = check_url(&url, &origin)?;
                let namespace = env(ENV_NAMESPACE)
                    .filter(|n| !n.trim().is_empty())
                    .or(file_ol.namespace)
                    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
                let api_key = env(ENV_API_KEY).filter(|k| !k.is_empty());
                Some(OpenLineage {
                    url,
                    namespace,
                    api_key,
                })
            }
        };
        let ui = ui_links(file, text.as_deref(), raw.ui, &env)?;
        let remote = load_remote(file, raw.remote.unwrap_or_default(), &env)?;
        Ok(Config {
            openlineage,
            ui,
            remote,
        })
    }
}

/// `[ui] base_url` (or `MLRUN_UI_URL`, which overrides it; empty turns links off), checked.
fn ui_links(
    file: &Path,
    text: Option<&str>,
    raw: Option<RawUi>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<UiLinks>> {
    let (url, origin) = match env(ENV_UI_URL) {
        Some(u) => (u, ENV_UI_URL.to_string()),
        None => match raw.and_then(|r| r.base_url) {
            Some(s) => {
                let line = text.map_or(1, |t| {
                    t[..s.span().start.min(t.len())].matches('\n').count() + 1
                });
                (
                    s.into_inner(),
                    format!("{}:{line}: [ui] base_url", file.display()),
                )
            }
            None => return Ok(None),
        },
    };
    let url = url.trim();
    if url.is_empty() {
        return Ok(None);
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    let bad = |why: &str| {
        Error::invalid(format!("{origin}: `{}` {why}", mask_url(url))).hint(
            "give where `mlrun ui` is served, e.g. `base_url = \"http://127.0.0.1:8765\"` (`mlrun ui --port 8765`)",
        )
    };
    let Some(rest) = rest else {
        return Err(bad("is not an http:// or https:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.ends_with('@') {
        return Err(bad("has no host"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("has a query or fragment: give the base URL only"));
    }
    Ok(Some(UiLinks {
        base: url.trim_end_matches('/').to_string(),
    }))
}

/// Where a setting came from, for an error message: the variable, or `file:line: [remote] key`.
fn origin_of(
    file: &Path,
    text: Option<&str>,
    span: Option<std::ops::Range<usize>>,
    key: &str,
) -> String {
    let line = match (text, span) {
        (Some(t), Some(s)) => format!(":{}", t[..s.start.min(t.len())].matches('\n').count() + 1),
        _ => String::new(),
    };
    format!("{}{line}: [remote] {key}", file.display())
}

fn load_remote(
    file: &Path,
    raw: RawRemote,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Remote>> {
    let text = std::fs::read_to_string(file).ok();
    let pick =
        |var: &str, v: Option<toml::Spanned<String>>, key: &str| -> Option<(String, String)> {
            match env(var).map(|s| s.trim().to_string()) {
                Some(s) if !s.is_empty() => Some((s, var.to_string())),
                Some(_) => None,
                None => v.map(|s| {
                    let origin = origin_of(file, text.as_deref(), Some(s.span()), key);
                    (s.into_inner().trim().to_string(), origin)
                }),
            }
        };
    let db = pick(ENV_REMOTE_DB, raw.db, "db");
    let objects = pick(ENV_REMOTE_OBJECTS, raw.objects, "objects");
    let (db, objects) = match (db, objects) {
        (None, None) => return Ok(None),
        (Some((_, origin)), None) => {
            return Err(Error::invalid(format!(
                "{origin}: a remote record is configured but no objects: a run on the remote needs its objects"
            ))
            .hint(format!("add `objects = \"s3://BUCKET/PREFIX\"` to [remote] in mlrun.toml, or set {ENV_REMOTE_OBJECTS}")));
        }
        (None, Some((_, origin))) => {
            return Err(Error::invalid(format!(
                "{origin}: remote objects are configured but no record"
            ))
            .hint(format!("add `db = \"postgres://HOST:PORT/DB\"` to [remote] in mlrun.toml, or set {ENV_REMOTE_DB}")));
        }
        (Some(d), Some(o)) => (d, o),
    };
    let (db, db_origin) = db;
    let lower = db.to_ascii_lowercase();
    if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://"))
        || split_tls(&db).0.parse::<postgres::Config>().is_err()
    {
        return Err(Error::invalid(format!(
            "{db_origin}: `{}` is not a PostgreSQL URL",
            mask_url(&db)
        ))
        .hint("give it as `postgres://USER@HOST:PORT/DATABASE`; the password goes in PGPASSWORD or PGPASSFILE, not here"));
    }
    let (objects, obj_origin) = objects;
    let Some(rest) = objects.strip_prefix("s3://") else {
        return Err(Error::invalid(format!(
            "{obj_origin}: `{}` is not an s3:// URL",
            mask_url(&objects)
        ))
        .hint(
            "give it as `s3://BUCKET/PREFIX`; set AWS_ENDPOINT_URL for an S3-compatible server",
        ));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains('@') || bucket.contains(':') {
        return Err(Error::invalid(format!(
            "{obj_origin}: `{}` names no bucket",
            mask_url(&objects)
        ))
        .hint("give it as `s3://BUCKET/PREFIX` (no credentials in the URL)"));
    }
    let endpoint = match env(ENV_ENDPOINT).map(|e| e.trim().trim_end_matches('/').to_string()) {
        Some(e) if !e.is_empty() => {
            let l = e.to_ascii_lowercase();
            let loopback = ["http://127.", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| l.starts_with(p));
            if !(l.starts_with("https://") || loopback) {
                return Err(Error::invalid(format!(
                    "{ENV_ENDPOINT}: `{}` must be an https:// URL (plain http only on this machine's loopback)",
                    mask_url(&e)
                ))
                .hint("the S3 keys are signed into every request; use https for a server elsewhere"));
            }
            Some(e)
        }
        _ => None,
    };
    Ok(Some(Remote {
        db,
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
        endpoint,
        push: raw.push.unwrap_or(false),
        cache: raw.cache.unwrap_or(true),
    }))
}

fn parse(file: &Path, text: &str) -> Result<RawConfig> {
    toml::from_str::<RawConfig>(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                format!(":{line}:{col}")
            })
            .unwrap_or_default();
        Error::invalid(format!(
            "{}{at}: {}",
            file.display(),
            e.message().trim_end()
        ))
        .hint("mlrun.toml knows `[openlineage]` with `url` and `namespace` (README \"Sending lineage live\") and `[ui]` with `base_url` (README \"Web view\")")
    })
}

fn check_url(url: &str, origin: &str) -> Result<String> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(Error::invalid(format!(
            "{origin}: `{}` is not an http:// or https:// URL",
            mask_url(url)
        ))
        .hint("give the server's base URL, e.g. `http://localhost:5000`; mlrun POSTs to {url}/api/v1/lineage"));
    }
    let rest = &url[url.find("://").map(|i| i + 3).unwrap_or(0)..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.ends_with('@') {
        return Err(Error::invalid(format!(
            "{origin}: `{}` has no host",
            mask_url(url)
        )));
    }
    let mut url = url.trim_end_matches('/').to_string();
    // A URL given as the endpoint itself is taken as its base.
    if let Some(base) = url.strip_suffix("/api/v1/lineage") {
        url = base.to_string();
    }
    Ok(url)
}

/// A URL with the password of its user info, if any, replaced by `***`.
/// A record URL without its libpq TLS keys (`sslmode`, `sslrootcert`: the PostgreSQL client
/// knows fewer modes and no root file; `remote::pg` applies them), and their values.
pub fn split_tls(db: &str) -> (String, Option<String>, Option<String>) {
    let Some((base, query)) = db.split_once('?') else {
        return (db.to_string(), None, None);
    };
    let (mut mode, mut root, mut kept) = (None, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let value = || {
            form_urlencoded::parse(pair.as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        match pair.split_once('=').map_or(pair, |(k, _)| k) {
            "sslmode" => mode = value(),
            "sslrootcert" => root = value(),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, mode, root)
}

pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let masked = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        user.to_string()
    };
    format!(
        "{}{}{}",
        &url[..scheme_end],
        masked,
        &url[scheme_end + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: Option<&str>, env: &[(&str, &str)]) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        if let Some(t) = text {
            std::fs::write(&file, t).unwrap();
        }
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with(&file, |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn ui_base_url_from_the_file_or_the_environment_checked_with_its_line() {
        assert!(load(None, &[]).unwrap().ui.is_none());
        let c = load(
            Some("[openlineage]\nurl = \"http://h:5000\"\n\n[ui]\nbase_url = \"http://127.0.0.1:8765/\"\n"),
            &[],
        )
        .unwrap();
        let ui = c.ui.unwrap();
        assert_eq!(ui.base, "http://127.0.0.1:8765");
        assert_eq!(ui.run("01ab"), "http://127.0.0.1:8765/run/01ab");
        assert_eq!(
            ui.compare(&["a1", "b2"], false),
            "http://127.0.0.1:8765/compare?runs=a1,b2"
        );
        assert_eq!(
            ui.artifact("models/m 1.pkl", Some("ab")),
            "http://127.0.0.1:8765/artifact?path=models/m%201.pkl&hash=ab"
        );
        assert_eq!(
            ui.lineage(
                LineageSeed::Version {
                    path: "a&b",
                    hash: "cd"
                },
                true,
                Some(2)
            ),
            "http://127.0.0.1:8765/lineage?path=a%26b&hash=cd&dir=down&depth=2"
        );
        assert_eq!(
            ui.lineage(LineageSeed::Run("01ab"), false, None),
            "http://127.0.0.1:8765/lineage?run=01ab&depth=all"
        );
        // the environment overrides the file; empty turns links off
        let file = "[ui]\nbase_url = \"http://h:1\"\n";
        let c = load(Some(file), &[(ENV_UI_URL, "https://ui.example/mlrun")]).unwrap();
        assert_eq!(c.ui.unwrap().base, "https://ui.example/mlrun");
        assert!(load(Some(file), &[(ENV_UI_URL, "")]).unwrap().ui.is_none());
        // mistakes name the file, the line and the key
        let e = load(Some("# links\n[ui]\nbase_url = \"localhost:8765\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("mlrun.toml:3: [ui] base_url"), "{e}");
        assert!(e.contains("http://"), "{e}");
        let e = load(Some("[ui]\nbase_url = \"http://h/?x=1\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("query"), "{e}");
        let e = load(Some("[ui]\nbaseurl = \"http://h\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("mlrun.toml:2:1") && e.contains("baseurl"), "{e}");
        let e = load(None, &[(ENV_UI_URL, "ftp://h")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("MLRUN_UI_URL"), "{e}");
    }

    #[test]
    fn nothing_configured_sends_nothing() {
        assert!(load(None, &[]).unwrap().openlineage.is_none());
        assert!(load(Some(""), &[]).unwrap().openlineage.is_none());
    }

    #[test]
    fn file_then_environment() {
        let c = load(
            Some("[openlineage]\nurl = \"http://h:5000/\"\nnamespace = \"team\"\n"),
            &[],
        )
        .unwrap();
        let ol = c.openlineage.unwrap();
        assert_eq!(ol.url, "http://h:5000");
        assert_eq!(ol.endpoint(), "http://h:5000/api/v1/lineage");
        assert_eq!(ol.namespace, "team");
        assert!(ol.api_key.is_none());

        let c = load(
            Some("[openlineage]\nurl = \"http://h:5000\"\n"),
            &[
                (ENV_URL, "https://other/api/v1/lineage"),
                (ENV_API_KEY, "k"),
            ],
        )
        .unwrap();
        let ol = c.openlineage.unwrap();
        assert_eq!(ol.url, "https://other");
        assert_eq!(ol.namespace, DEFAULT_NAMESPACE);
        assert_eq!(ol.api_key.as_deref(), Some("k"));
        assert!(!format!("{ol:?}").contains("\"k\""));

        // an empty variable turns it off
        let c = load(
            Some("[openlineage]\nurl = \"http://h\"\n"),
            &[(ENV_URL, "")],
        )
        .unwrap();
        assert!(c.openlineage.is_none());
    }

    #[test]
    fn a_wrong_key_names_the_line() {
        let e = load(Some("[openlineage]\nurll = \"http://h\"\n"), &[]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("mlrun.toml:2:1"), "{text}");
        assert!(text.contains("urll"), "{text}");
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_naming_where_it_came_from() {
        let e = load(None, &[(ENV_URL, "ftp://u:secret@h")]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(ENV_URL), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn remote_from_file_then_environment() {
        let text =
            "[remote]\ndb = \"postgres://u@h:5432/team\"\nobjects = \"s3://b/p/q/\"\npush = true\n";
        let r = load(Some(text), &[]).unwrap().remote.unwrap();
        assert_eq!((r.bucket.as_str(), r.prefix.as_str()), ("b", "p/q"));
        assert!(r.push && r.cache && r.endpoint.is_none());
        let r = load(
            Some(text),
            &[
                (ENV_REMOTE_DB, "postgres://u:hunter2@other/db"),
                (ENV_REMOTE_OBJECTS, "s3://c"),
                (ENV_ENDPOINT, "http://127.0.0.1:9000/"),
            ],
        )
        .unwrap()
        .remote
        .unwrap();
        assert_eq!(r.shown_db(), "postgres://u:***@other/db");
        assert_eq!((r.bucket.as_str(), r.prefix.as_str()), ("c", ""));
        assert_eq!(r.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(!format!("{r:?}").contains("hunter2"));
        assert!(!r.key().contains("hunter2"));
    }

    #[test]
    fn a_bad_remote_names_file_line_and_key() {
        let e = load(
            Some("[remote]\nobjects = \"s3://b\"\ndb = \"mysql://u:pw@h/x\"\n"),
            &[],
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("mlrun.toml:3: [remote] db"), "{text}");
        assert!(!text.contains("pw@"), "{text}");
        let e = load(Some("[remote]\ndb = \"postgres://h/x\"\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("no objects"), "{e}");
        let e = load(
            Some("[remote]\ndb = \"postgres://h/x\"\nobjects = \"gs://b\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains(":3: [remote] objects"), "{e}");
        let e = load(
            Some("[remote]\ndb = \"postgres://h/x\"\nobjects = \"s3://b\"\n"),
            &[(ENV_ENDPOINT, "http://10.1.2.3:9000")],
        )
        .unwrap_err();
        assert!(e.to_string().contains(ENV_ENDPOINT), "{e}");
        let e = load(Some("[remote]\nurl = \"x\"\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("mlrun.toml:2:1"), "{e}");
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(mask_url("http://u:pw@h:1/x"), "http://u:***@h:1/x");
        assert_eq!(mask_url("http://u@h/x"), "http://u@h/x");
        assert_eq!(mask_url("http://h/x@y"), "http://h/x@y");
        assert_eq!(mask_url("nothing"), "nothing");
    }
}

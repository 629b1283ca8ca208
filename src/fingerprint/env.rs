//! Environment variables as recorded: every variable a step sees, with secrets replaced by a
//! marker. A value is secret when its name looks secret (`*TOKEN*`, `*SECRET*`, …, plus the
//! pipeline's `redact` globs, minus its `keep` globs) or when the value itself looks like a
//! credential (cloud keys, GitHub tokens, JWTs, private keys, `user:pass@` in URLs).
//!
//! The marker carries a salted hash of the value (salt per store), so a changed secret still
//! changes the environment fingerprint without the value ever being written.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::hash::sha256_bytes;

const SECRET_NAME_PARTS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "COOKIE",
    "SESSION",
    "DSN",
];

/// Variables mlrun sets per run; they are recorded elsewhere (run id, params) and would only make
/// every snapshot unique.
const MLRUN_SET: &[&str] = &["MLRUN_RUN_ID", "MLRUN_METRICS", "MLRUN_STEP"];

static CREDENTIAL_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?:\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b)",
        r"|(?:\bgh[pousr]_[A-Za-z0-9]{20,})",
        r"|(?:\bgithub_pat_[A-Za-z0-9_]{20,})",
        r"|(?:\bglpat-[A-Za-z0-9_\-]{20,})",
        r"|(?:\bxox[abposr]-[A-Za-z0-9-]{10,})",
        r"|(?:\bsk-[A-Za-z0-9_\-]{20,})",
        r"|(?:\bAIza[0-9A-Za-z_\-]{35})",
        r"|(?:\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]+)",
        r"|(?:-----BEGIN [A-Z ]*PRIVATE KEY-----)",
        r"|(?:[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]+:[^/\s@]+@)",
    ))
    .expect("credential pattern compiles")
});

/// Decides which variables are secret.
pub struct Redactor {
    salt: String,
    extra: Vec<globset::GlobMatcher>,
    keep: Vec<globset::GlobMatcher>,
}

fn matchers(globs: &[String]) -> Vec<globset::GlobMatcher> {
    globs
        .iter()
        .filter_map(|g| {
            globset::GlobBuilder::new(g)
                .case_insensitive(true)
                .build()
                .ok()
                .map(|g| g.compile_matcher())
        })
        .collect()
}

impl Redactor {
    pub fn new(salt: &str, redact: &[String], keep: &[String]) -> Self {
        Redactor {
            salt: salt.to_string(),
            extra: matchers(redact),
            keep: matchers(keep),
        }
    }

    pub fn name_is_secret(&self, name: &str) -> bool {
        if self.keep.iter().any(|m| m.is_match(name)) {
            return false;
        }
        let upper = name.to_ascii_uppercase();
        SECRET_NAME_PARTS.iter().any(|p| upper.contains(p))
            || self.extra.iter().any(|m| m.is_match(name))
    }

    pub fn value_is_secret(value: &str) -> bool {
        CREDENTIAL_VALUE.is_match(value)
    }

    pub fn is_secret(&self, name: &str, value: &str) -> bool {
        if value.is_empty() {
            return false;
        }
        self.name_is_secret(name)
            || (!self.keep.iter().any(|m| m.is_match(name)) && Self::value_is_secret(value))
    }

    /// `<redacted:HASH16>`: stable for a value within one store, meaningless outside it.
    pub fn marker(&self, name: &str, value: &str) -> String {
        let h = sha256_bytes(format!("{}\0{name}\0{value}", self.salt).as_bytes());
        format!("<redacted:{}>", &h[..16])
    }

    /// The variables to record, redacted, and the secret values found (to mask in logs).
    pub fn capture<'a>(
        &self,
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (BTreeMap<String, String>, Vec<String>) {
        let mut out = BTreeMap::new();
        let mut secrets = Vec::new();
        for (k, v) in vars {
            if let Some((recorded, secret)) = self.capture_one(k, v) {
                out.insert(k.to_string(), recorded);
                secrets.extend(secret);
            }
        }
        (out, secrets)
    }

    /// One variable as `capture` records it: `None` when it is not recorded at all, else the
    /// recorded value (a marker for a secret) and the secret value itself when it is one.
    pub fn capture_one(&self, name: &str, value: &str) -> Option<(String, Option<String>)> {
        if MLRUN_SET.contains(&name) {
            return None;
        }
        Some(if self.is_secret(name, value) {
            (self.marker(name, value), Some(value.to_string()))
        } else {
            (value.to_string(), None)
        })
    }
}

impl Redactor {
    /// Redact a declared env table in place (as recorded in the plan); returns the secrets found.
    pub fn redact_map(&self, vars: &mut BTreeMap<String, String>) -> Vec<String> {
        let mut secrets = Vec::new();
        for (k, v) in vars.iter_mut() {
            if self.is_secret(k, v) {
                secrets.push(std::mem::replace(v, self.marker(k, v)));
            }
        }
        secrets
    }
}

/// Replace every occurrence of a secret value in captured output. Very short values are left
/// alone: masking `1` or `ab` would destroy logs without protecting anything.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.len() >= 4 && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "<redacted>");
        }
    }
    if CREDENTIAL_VALUE.is_match(&out) {
        out = CREDENTIAL_VALUE
            .replace_all(&out, "<redacted>")
            .into_owned();
    }
    out
}

/// Where in `text` `mask` finds something to hide: byte ranges of the secret values and of the
/// credential-looking values. Used to split an overlong line where no secret straddles the cut.
pub fn secret_spans(text: &str, secrets: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut spans: Vec<std::ops::Range<usize>> = secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .flat_map(|s| text.match_indices(s.as_str()).map(|(i, m)| i..i + m.len()))
        .collect();
    spans.extend(CREDENTIAL_VALUE.find_iter(text).map(|m| m.range()));
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Redactor {
        Redactor::new("salt", &["*_URL".into()], &["PUBLIC_KEY_ID".into()])
    }

    #[test]
    fn secret_names_and_values_are_redacted() {
        let r = r();
        let (vars, secrets) = r.capture([
            ("MY_API_TOKEN", "s3cr3t"),
            ("HOME", "/root"),
            ("DB_URL", "postgres://host/db"),
            ("PUBLIC_KEY_ID", "abc"),
            ("INNOCENT", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
            ("MLRUN_RUN_ID", "x"),
        ]);
        assert!(vars["MY_API_TOKEN"].starts_with("<redacted:"));
        assert_eq!(vars["HOME"], "/root");
        assert!(vars["DB_URL"].starts_with("<redacted:"));
        assert_eq!(vars["PUBLIC_KEY_ID"], "abc");
        assert!(vars["INNOCENT"].starts_with("<redacted:"));
        assert!(!vars.contains_key("MLRUN_RUN_ID"));
        assert_eq!(secrets.len(), 3);
        assert!(!format!("{vars:?}").contains("s3cr3t"));
    }

    #[test]
    fn markers_change_with_the_value() {
        let r = r();
        assert_ne!(r.marker("A_TOKEN", "one"), r.marker("A_TOKEN", "two"));
        assert_eq!(r.marker("A_TOKEN", "one"), r.marker("A_TOKEN", "one"));
    }

    #[test]
    fn logs_are_masked() {
        let out = mask(
            "token is s3cr3t; url https://bob:pw@h/x",
            &["s3cr3t".into()],
        );
        assert_eq!(out, "token is <redacted>; url <redacted>h/x");
    }
}

//! Secrets: which environment variables, params and pieces of text are secret, the keyed marker
//! a secret is recorded as, and the masking of logs, commands and diffs.
//!
//! A variable is secret when its name looks secret (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, …,
//! `*_PASS`, `*_PWD`, `*_SID`, plus the pipeline's `redact` globs, minus its `keep` globs) or when
//! its value looks like a credential. A param is secret when a whole word of its key is one of
//! those names (`db.password`, `apiKey`; not `max_tokens`), by `redact`/`keep` on its key, or by
//! its value. In any text (logs, commands, the uncommitted diff, the pipeline
//! file), credential-looking values are found by pattern: cloud keys, GitHub/GitLab/Slack/OpenAI
//! tokens, JWTs, whole private key blocks (across lines), `user:pass@` in URLs,
//! `Authorization:` / `Bearer` credentials, and `password=…`, `api_key: …`, `token=…` values.
//!
//! A recorded secret is `<redacted:HASH>`, HASH an HMAC of the value keyed with a secret kept
//! outside the store (`key`): a changed secret changes the fingerprint (and the cache key), and
//! the store alone cannot be used to test guesses.
//!
//! This file decides what is secret (`Redactor`) and makes the markers; `mask` finds and hides
//! credentials in text.

use std::collections::BTreeMap;

use super::key::SecretKey;

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

/// Words of a name (split at `_`, `.`, `-`) that make it secret when they are not its first
/// word: `API_PASS`, `MYSQL_PWD`, `DB_PW`, `TWILIO_SID`; `PWD` alone is the shell's working
/// directory and stays.
const SECRET_NAME_WORDS: &[&str] = &["PASS", "PWD", "PW", "SID"];

/// Variables mlrun sets per run; they are recorded elsewhere (run id, params) and would only make
/// every snapshot unique. And the test-only clock, which a test sets anew for every command
/// (ARCHITECTURE.md): the run's start time records it.
const MLRUN_SET: &[&str] = &[
    "MLRUN_RUN_ID",
    "MLRUN_METRICS",
    "MLRUN_STEP",
    "MLRUN_TEST_NOW",
];

mod mask;
#[cfg(test)]
mod tests;

use mask::*;
pub use mask::{MASK, Masker, is_marker, mask, mask_patch};

/// Does any part of this value look like a credential (whatever its name)?
fn looks_secret(value: &str) -> bool {
    let mut s = Scanner::new([]);
    value.lines().any(|l| !s.line(l).is_empty())
}

/// Decides which variables and params are secret, and makes their markers.
pub struct Redactor {
    key: SecretKey,
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

/// Words of a param key that make it secret wherever they stand.
const SECRET_KEY_WORDS: &[&str] = &["CREDENTIALS", "SECRETS", "PASSWORDS", "APIKEY"];
/// A word ending with one of these is secret too: `authtoken`, `dbpassword`, `clientsecret`.
const SECRET_KEY_ENDINGS: &[&str] = &["TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE"];

/// `db.password`, `api_key`, `apiKey`: the words of a param key, upper-cased.
fn key_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            words.push(std::mem::take(&mut word));
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_uppercase());
    }
    words.push(word);
    words.retain(|w| !w.is_empty());
    words
}

fn key_is_secret(key: &str) -> bool {
    key_words(key).iter().enumerate().any(|(i, w)| {
        let w = w.as_str();
        SECRET_NAME_PARTS.contains(&w)
            || SECRET_KEY_WORDS.contains(&w)
            || (i > 0 && SECRET_NAME_WORDS.contains(&w))
            || SECRET_KEY_ENDINGS.iter().any(|e| w.ends_with(e))
    })
}

/// `db.password` → `DB_PASSWORD`: a param key as an environment-style name.
fn env_style(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl Redactor {
    pub fn new(key: &SecretKey, redact: &[String], keep: &[String]) -> Self {
        Redactor {
            key: key.clone(),
            extra: matchers(redact),
            keep: matchers(keep),
        }
    }

    /// A short name of the key markers are made with (an HMAC of a constant: it tells keys
    /// apart, and reveals nothing of the key): two markers made with different keys cannot be
    /// compared.
    pub fn key_id(&self) -> String {
        self.key.mac(&["mlrun marker key id"])[..16].to_string()
    }

    fn kept(&self, name: &str) -> bool {
        self.keep.iter().any(|m| m.is_match(name))
    }

    pub fn name_is_secret(&self, name: &str) -> bool {
        if self.kept(name) {
            return false;
        }
        let upper = name.to_ascii_uppercase();
        SECRET_NAME_PARTS.iter().any(|p| upper.contains(p))
            || upper
                .split(['_', '.', '-'])
                .skip(1)
                .any(|w| SECRET_NAME_WORDS.contains(&w))
            || self.extra.iter().any(|m| m.is_match(name))
    }

    pub fn value_is_secret(value: &str) -> bool {
        looks_secret(value)
    }

    pub fn is_secret(&self, name: &str, value: &str) -> bool {
        // a marker (a replay's recorded plan) is what stands for a secret, not one
        if value.is_empty() || is_marker(value) {
            return false;
        }
        self.name_is_secret(name) || (!self.kept(name) && Self::value_is_secret(value))
    }

    /// Is a param secret? Its key is read word by word (`db.password`, `api_key`, `apiKey`,
    /// `auth_token`): a word that is one of the secret name parts (`TOKEN`, `PASSWORD`, `KEY`, …,
    /// and `PASS`, `PWD`, `PW`, `SID` after the first word), or ends with `token`, `secret` or
    /// `password`. Whole words, not substrings as for variables: `max_tokens`, `tokenizer` and
    /// `monkey` are ordinary params. `redact` and `keep` match the key as written and as a
    /// variable name (`DB_PASSWORD`); the value is judged as a variable's is.
    pub fn param_is_secret(&self, key: &str, value: &serde_json::Value) -> bool {
        let rendered = crate::pipeline::params::render(value);
        let env = env_style(key);
        if rendered.is_empty() || is_marker(&rendered) || self.kept(key) || self.kept(&env) {
            return false;
        }
        key_is_secret(key)
            || self
                .extra
                .iter()
                .any(|m| m.is_match(key) || m.is_match(&env))
            || Self::value_is_secret(&rendered)
    }

    /// `<redacted:HASH>`: HASH is an HMAC of the name and value under the user's secret key:
    /// stable for a value, meaningless (and not testable against guesses) without the key.
    pub fn marker(&self, name: &str, value: &str) -> String {
        format!("<redacted:{}>", &self.key.mac(&[name, value])[..16])
    }

    /// Params as recorded: secret ones replaced by their marker. Also returns the secrets found,
    /// as (key, value as the step sees it).
    pub fn params(
        &self,
        params: &BTreeMap<String, serde_json::Value>,
    ) -> (BTreeMap<String, serde_json::Value>, Vec<(String, String)>) {
        let mut found = Vec::new();
        let recorded = params
            .iter()
            .map(|(k, v)| {
                if self.param_is_secret(k, v) {
                    let real = crate::pipeline::params::render(v);
                    let marker = self.marker(k, &real);
                    found.push((k.clone(), real));
                    (k.clone(), serde_json::Value::String(marker))
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect();
        (recorded, found)
    }

    /// Text as recorded (a command, an argument): every known secret, every credential-looking
    /// value, every `NAME=value` whose NAME looks secret and every value after a secret-looking
    /// flag (`--password VALUE`), replaced by its marker (a known secret's marker is the one its
    /// param or variable is recorded with). The secret values found are added to `found`.
    pub fn redact_text(
        &self,
        text: &str,
        known: &[(String, String)],
        found: &mut Vec<String>,
    ) -> String {
        let mut scanner = Scanner::new(known.iter().cloned());
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let (content, ending) = split_ending(line);
            let mut spans = scanner.line(content);
            // `NAME=value` needs a `=`; a secret-looking flag one of `NEEDLES`: most commands
            // have neither, and skip compiling and running both patterns
            let assignments = content
                .contains('=')
                .then(|| ASSIGNMENT.captures_iter(content));
            for c in assignments.into_iter().flatten() {
                let (Some(n), Some(v)) =
                    (c.name("n"), c.name("s").or(c.name("dq")).or(c.name("sq")))
                else {
                    continue;
                };
                if self.name_is_secret(n.as_str()) && !is_reference(v.as_str()) {
                    spans.push((v.start()..v.end(), None));
                }
            }
            let flags = may_hold_secret(content).then(|| FLAG_VALUE.captures_iter(content));
            for c in flags.into_iter().flatten() {
                if let Some(v) = c.name("s").or(c.name("dq")).or(c.name("sq"))
                    && !is_reference(v.as_str())
                {
                    spans.push((v.start()..v.end(), None));
                }
            }
            let spans = merge(spans);
            out.push_str(&replace_spans(content, &spans, |secret, k| {
                found.push(secret.to_string());
                match k {
                    Some(i) => self.marker(&scanner.known[i].0, secret),
                    None => self.marker("", secret),
                }
            }));
            out.push_str(ending);
        }
        out
    }

    /// An argv as recorded: each argument as `redact_text` does it, and the argument after a
    /// secret-looking flag (`["mysql", "--password", "VALUE"]`) as a whole.
    pub fn redact_argv(
        &self,
        argv: &[String],
        known: &[(String, String)],
        found: &mut Vec<String>,
    ) -> Vec<String> {
        let mut out = Vec::with_capacity(argv.len());
        let mut after_flag = false;
        for a in argv {
            if after_flag && !a.is_empty() && !is_reference(a) && !a.starts_with('-') {
                found.push(a.clone());
                let name = known
                    .iter()
                    .find(|(_, v)| v == a)
                    .map_or("", |(n, _)| n.as_str());
                out.push(self.marker(name, a));
            } else {
                out.push(self.redact_text(a, known, found));
            }
            after_flag = a.starts_with('-') && SECRET_FLAG.is_match(a);
        }
        out
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

/// Where in `text` masking finds something to hide: byte ranges of the secret values and of
/// whatever looks like a credential. Used to split an overlong line where no secret straddles
/// the cut.
pub fn secret_spans(text: &str, secrets: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut spans: Vec<std::ops::Range<usize>> = secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .flat_map(|s| text.match_indices(s.as_str()).map(|(i, m)| i..i + m.len()))
        .collect();
    spans.extend(any_secret_ranges(text));
    spans
}

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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

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
/// every snapshot unique.
const MLRUN_SET: &[&str] = &["MLRUN_RUN_ID", "MLRUN_METRICS", "MLRUN_STEP"];

/// Shown in place of a secret in logs and the pipeline file.
pub const MASK: &str = "<redacted>";

/// Values that are credentials by their shape; the whole match is secret.
const CREDENTIAL_VALUE_PATTERN: &str = concat!(
    r"(?:\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b)",
    r"|(?:\bgh[pousr]_[A-Za-z0-9]{20,})",
    r"|(?:\bgithub_pat_[A-Za-z0-9_]{20,})",
    r"|(?:\bglpat-[A-Za-z0-9_\-]{20,})",
    r"|(?:\bxox[abposr]-[A-Za-z0-9-]{10,})",
    r"|(?:\bsk-[A-Za-z0-9_\-]{20,})",
    r"|(?:\bAIza[0-9A-Za-z_\-]{35})",
    r"|(?:\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]+)",
    // a private key block on one line: to its END, or to the end of the line
    r"|(?:-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*))",
);

/// Secrets that are a part of what matches: the group `s`, `dq` or `sq`.
const SECRET_PART_PATTERNS: &[&str] = &[
    // user:password@ in a URL (the scheme and host stay readable)
    r"[a-zA-Z][a-zA-Z0-9+.\-]*://(?P<s>[^/\s:@]+:[^/\s@]+)@",
    // Authorization: Bearer …, Authorization: Basic …, authorization=…
    r#"(?i)\bauthorization["']?[ \t]*[:=][ \t]*["']?(?:(?:bearer|basic|token|digest|bot)[ \t]+)?(?P<s>[^\s"']+)"#,
    // a bare `Bearer X` (without Authorization:) only when X is long enough to be a token, so
    // "Bearer authentication" in prose stays
    r"(?i)\bbearer[ \t]+(?P<s>[A-Za-z0-9._~+/=\-]{16,})",
    // password=…, --api-key=…, "client_secret": "…", token: …, DB_PASS=…
    concat!(
        r#"(?i)(?:^|[^A-Za-z0-9_.\-])"#,
        r#"(?:[A-Za-z0-9_.\-]*(?:passwd|password|passphrase|secret|api[_\-]?key|access[_\-]?key|private[_\-]?key"#,
        r#"|(?:access|auth|api|bearer|refresh|session|private|personal|github|gitlab|gh|hf|slack|npm|pypi)[_\-]?token"#,
        r#"|[_.\-]pass|[_.\-]pwd)|-*token)"#,
        r#"["']?[ \t]*[:=][ \t]*(?:"(?P<dq>[^"\n]+)"|'(?P<sq>[^'\n]+)'|(?P<s>[^\s"'<>&;,]+))"#,
    ),
];

static CREDENTIAL_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(CREDENTIAL_VALUE_PATTERN).expect("credential pattern compiles"));

static SECRET_PART: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    SECRET_PART_PATTERNS
        .iter()
        .map(|p| Regex::new(p).expect("secret pattern compiles"))
        .collect()
});

/// All of the above in one pattern: most lines match none, and one pass over them says so.
static ANY_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    let parts: Vec<String> = std::iter::once(CREDENTIAL_VALUE_PATTERN)
        .chain(SECRET_PART_PATTERNS.iter().copied())
        .map(|p| {
            let unnamed = p
                .replace("(?P<s>", "(?:")
                .replace("(?P<dq>", "(?:")
                .replace("(?P<sq>", "(?:");
            format!("(?:{unnamed})")
        })
        .collect();
    Regex::new(&parts.join("|")).expect("combined secret pattern compiles")
});

static PEM_BEGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----").expect("pem begin compiles")
});
static PEM_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----").expect("pem end compiles")
});
/// A line inside a private key block: base64, a header, or blank.
static PEM_BODY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^[\s"',]*(?:[A-Za-z0-9+/=]*|(?:Proc-Type|DEK-Info|Comment|Version|Hash|Charset):.*)[\s"',]*(?:\\n)?[\s"',]*$"#)
        .expect("pem body compiles")
});

/// `NAME=value` in a command: secret when NAME is (an environment-style name, by the name rules).
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:^|[^A-Za-z0-9_])(?P<n>[A-Z_][A-Z0-9_]*)=(?:"(?P<dq>[^"\n]+)"|'(?P<sq>[^'\n]+)'|(?P<s>[^\s"';&|]+))"#)
        .expect("assignment pattern compiles")
});

/// `--password VALUE`, `--api-key VALUE` in a command: the value after a secret-looking flag.
static FLAG_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r#"(?i)(?:^|\s)-{1,2}[A-Za-z0-9_.\-]*(?:passwd|password|passphrase|secret|token|api[_\-]?key|access[_\-]?key)"#,
        r#"[ \t]+(?:"(?P<dq>[^"\n]+)"|'(?P<sq>[^'\n]+)'|(?P<s>[^\s"'\-][^\s"';&|]*))"#,
    ))
    .expect("flag pattern compiles")
});
static SECRET_FLAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^-{1,2}[A-Za-z0-9_.\-]*(?:passwd|password|passphrase|secret|token|api[_\-]?key|access[_\-]?key)$")
        .expect("flag pattern compiles")
});

/// Finds the secret parts of text line by line. Private key blocks span lines, so it keeps
/// state: after a `BEGIN … PRIVATE KEY` line, every body line is secret up to the `END` line
/// (or the first line that cannot be part of a key).
#[derive(Debug, Clone)]
struct Scanner {
    /// (name, value) of known secrets, longest value first; name is "" when unknown
    known: Vec<(String, String)>,
    in_block: bool,
}

/// A secret found in a line: its byte range, and the index of the known secret it is (if any).
type Span = (Range<usize>, Option<usize>);

impl Scanner {
    fn new(known: impl IntoIterator<Item = (String, String)>) -> Scanner {
        let mut list: Vec<(String, String)> = Vec::new();
        for (name, value) in known {
            // Very short values are left alone: masking `1` or `ab` would destroy logs without
            // protecting anything. A multi-line secret is also looked for line by line.
            if value.contains('\n') {
                for l in value.lines().map(str::trim).filter(|l| l.len() >= 8) {
                    list.push((name.clone(), l.to_string()));
                }
            }
            if value.len() >= 4 {
                list.push((name, value));
            }
        }
        list.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.cmp(b)));
        list.dedup_by(|a, b| a.1 == b.1);
        Scanner {
            known: list,
            in_block: false,
        }
    }

    /// The secret ranges of one line (without its line ending), merged and in order.
    fn line(&mut self, line: &str) -> Vec<Span> {
        let mut spans: Vec<Span> = Vec::new();
        let mut from = 0;
        if self.in_block {
            if let Some(end) = PEM_END.find(line) {
                spans.push((0..end.end(), None));
                self.in_block = false;
                from = end.end();
            } else if PEM_BODY.is_match(line) {
                return if line.is_empty() {
                    Vec::new()
                } else {
                    vec![(0..line.len(), None)]
                };
            } else {
                self.in_block = false;
            }
        }
        let rest = &line[from..];
        for (i, (_, value)) in self.known.iter().enumerate() {
            for (at, _) in rest.match_indices(value.as_str()) {
                spans.push((from + at..from + at + value.len(), Some(i)));
            }
        }
        if !ANY_SECRET.is_match(rest) {
            return merge(spans);
        }
        for m in CREDENTIAL_VALUE.find_iter(rest) {
            spans.push((from + m.start()..from + m.end(), None));
        }
        for re in SECRET_PART.iter() {
            for c in re.captures_iter(rest) {
                let Some(m) = c.name("s").or(c.name("dq")).or(c.name("sq")) else {
                    continue;
                };
                if is_reference(m.as_str()) {
                    continue;
                }
                spans.push((from + m.start()..from + m.end(), None));
            }
        }
        // a block that starts here and does not end on this line goes on
        if let Some(begin) = PEM_BEGIN.find_iter(rest).last()
            && !PEM_END.is_match(&rest[begin.end()..])
        {
            self.in_block = true;
        }
        merge(spans)
    }
}

/// `<redacted:HASH>`, what a recorded secret became.
pub fn is_marker(v: &str) -> bool {
    v.starts_with("<redacted:") && v.ends_with('>') && !v.contains(char::is_whitespace)
}

/// A value that only names a secret: a shell variable, a `{params.x}` placeholder, a marker.
fn is_reference(v: &str) -> bool {
    v.starts_with('$') || v.starts_with("{params.") || v.starts_with("<redacted")
}

/// Sort spans and merge the overlapping ones; a merged span keeps a known index only when it is
/// exactly that secret.
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by(|a, b| a.0.start.cmp(&b.0.start).then(b.0.end.cmp(&a.0.end)));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for (r, k) in spans {
        match out.last_mut() {
            Some((last, lk)) if r.start < last.end => {
                if r.end > last.end {
                    last.end = r.end;
                    *lk = None;
                }
            }
            _ => out.push((r, k)),
        }
    }
    out
}

/// Split a line into its content and its ending (`\n`, `\r\n` or nothing).
fn split_ending(line: &str) -> (&str, &str) {
    let content = line.trim_end_matches(['\n', '\r']);
    (content, &line[content.len()..])
}

fn replace_spans(
    line: &str,
    spans: &[Span],
    mut with: impl FnMut(&str, Option<usize>) -> String,
) -> String {
    let mut out = String::with_capacity(line.len());
    let mut last = 0;
    for (r, k) in spans {
        out.push_str(&line[last..r.start]);
        out.push_str(&with(&line[r.clone()], *k));
        last = r.end;
    }
    out.push_str(&line[last..]);
    out
}

/// Masks secrets in output, one line at a time, as it streams: known secret values and whatever
/// looks like a credential become `<redacted>`, and a private key block is masked whole, from
/// its BEGIN line to its END line. One `Masker` per stream.
#[derive(Debug, Clone)]
pub struct Masker {
    scanner: Scanner,
}

impl Masker {
    pub fn new(secrets: &[String]) -> Masker {
        Masker {
            scanner: Scanner::new(secrets.iter().map(|s| (String::new(), s.clone()))),
        }
    }

    /// One line, with or without its line ending (which is kept).
    pub fn line<'a>(&mut self, line: &'a str) -> Cow<'a, str> {
        let (content, ending) = split_ending(line);
        let spans = self.scanner.line(content);
        if spans.is_empty() {
            return Cow::Borrowed(line);
        }
        let mut out = replace_spans(content, &spans, |_, _| MASK.to_string());
        out.push_str(ending);
        Cow::Owned(out)
    }

    /// One line of raw output, masked as by `line`, every byte that is not part of a secret
    /// kept as it was.
    pub fn bytes<'a>(&mut self, line: &'a [u8]) -> Cow<'a, [u8]> {
        match std::str::from_utf8(line) {
            Ok(text) => match self.line(text) {
                Cow::Borrowed(_) => Cow::Borrowed(line),
                Cow::Owned(masked) => Cow::Owned(masked.into_bytes()),
            },
            // not UTF-8 (binary output): its UTF-8 runs are masked, every other byte kept (a
            // secret value is text, so it cannot span an invalid byte)
            Err(_) => {
                let mut out = Vec::with_capacity(line.len());
                for chunk in line.utf8_chunks() {
                    out.extend_from_slice(self.line(chunk.valid()).as_bytes());
                    out.extend_from_slice(chunk.invalid());
                }
                if out == line {
                    Cow::Borrowed(line)
                } else {
                    Cow::Owned(out)
                }
            }
        }
    }
}

/// Mask a whole text (several lines): see `Masker`.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut m = Masker::new(secrets);
    text.split_inclusive('\n').map(|l| m.line(l)).collect()
}

/// Mask a patch (`git diff` output) without breaking it: each line keeps its `+`, `-` or ` `
/// prefix and the patch its line count, so it still applies (with the secrets masked).
pub fn mask_patch(patch: &str) -> String {
    let mut m = Masker::new(&[]);
    patch
        .split_inclusive('\n')
        .map(|l| match l.as_bytes().first() {
            Some(b'+' | b'-' | b' ') if !l.starts_with("+++ ") && !l.starts_with("--- ") => {
                Cow::Owned(format!("{}{}", &l[..1], m.line(&l[1..])))
            }
            _ => m.line(l),
        })
        .collect()
}

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
            for c in ASSIGNMENT.captures_iter(content) {
                let (Some(n), Some(v)) =
                    (c.name("n"), c.name("s").or(c.name("dq")).or(c.name("sq")))
                else {
                    continue;
                };
                if self.name_is_secret(n.as_str()) && !is_reference(v.as_str()) {
                    spans.push((v.start()..v.end(), None));
                }
            }
            for c in FLAG_VALUE.captures_iter(content) {
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
            after_flag = SECRET_FLAG.is_match(a);
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
    spans.extend(ANY_SECRET.find_iter(text).map(|m| m.range()));
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Redactor {
        Redactor::new(
            &SecretKey::from_bytes(b"a test key of some length"),
            &["*_URL".into()],
            &["PUBLIC_KEY_ID".into()],
        )
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
    fn more_secret_names() {
        let r = r();
        for name in [
            "MYSQL_PWD",
            "API_PASS",
            "SMTP_PASS",
            "DB_PW",
            "TWILIO_SID",
            "SESSION_COOKIE",
            "my.db.pass",
        ] {
            assert!(r.name_is_secret(name), "{name}");
        }
        for name in [
            "PWD",
            "OLDPWD",
            "PATH",
            "PASSES",
            "GIT_ASKPASS",
            "SIDE_CAR",
            "LANG",
        ] {
            assert!(!r.name_is_secret(name), "{name}");
        }
    }

    #[test]
    fn secret_params_follow_the_name_rules_redact_and_keep() {
        let r = Redactor::new(
            &SecretKey::from_bytes(b"a test key of some length"),
            &["db.host".into()],
            &["train.keys".into()],
        );
        let v = |s: &str| serde_json::Value::from(s);
        assert!(r.param_is_secret("password", &v("x1")));
        assert!(r.param_is_secret("db.password", &v("x1")));
        assert!(r.param_is_secret("api_key", &v("x1")));
        assert!(r.param_is_secret("token", &serde_json::json!(1234)));
        assert!(r.param_is_secret("mysql.pwd", &v("x1")));
        assert!(r.param_is_secret("db.host", &v("h")));
        assert!(r.param_is_secret("url", &v("https://u:pw@h/")));
        assert!(!r.param_is_secret("train.keys", &v("x1")));
        for secret in [
            "apiKey",
            "dbPassword",
            "auth_token",
            "client_secret",
            "api.key",
            "key",
            "authtoken",
            "gcp.credentials",
        ] {
            assert!(r.param_is_secret(secret, &v("x1")), "{secret}");
        }
        // words, not substrings: the params of a language model stay readable
        for plain in [
            "max_tokens",
            "tokenizer",
            "num_tokens",
            "monkey",
            "author",
            "train.keys_per_batch",
            "pwd",
            "sid",
        ] {
            let r = Redactor::new(
                &SecretKey::from_bytes(b"a test key of some length"),
                &[],
                &[],
            );
            assert!(!r.param_is_secret(plain, &v("x1")), "{plain}");
        }
        assert!(!r.param_is_secret("train.lr", &serde_json::json!(0.1)));
        assert!(!r.param_is_secret("password", &v("")));
        // a recorded plan (replay) holds markers: they stay as they are
        let marker = r.marker("password", "x1");
        assert!(!r.param_is_secret("password", &v(&marker)));
        assert!(!r.is_secret("DB_PASSWORD", &marker));
        let (rec, found) = r.params(&[("db.password".to_string(), v("hunter2"))].into());
        assert!(
            rec["db.password"]
                .as_str()
                .unwrap()
                .starts_with("<redacted:")
        );
        assert_eq!(found, [("db.password".to_string(), "hunter2".to_string())]);
    }

    #[test]
    fn markers_change_with_the_value_and_the_key() {
        let r = r();
        assert_ne!(r.marker("A_TOKEN", "one"), r.marker("A_TOKEN", "two"));
        assert_eq!(r.marker("A_TOKEN", "one"), r.marker("A_TOKEN", "one"));
        let other = Redactor::new(
            &SecretKey::from_bytes(b"another key, same length!"),
            &[],
            &[],
        );
        assert_ne!(r.marker("A_TOKEN", "one"), other.marker("A_TOKEN", "one"));
    }

    #[test]
    fn logs_are_masked() {
        let out = mask(
            "token is s3cr3t; url https://bob:pw@h/x",
            &["s3cr3t".into()],
        );
        assert_eq!(out, "token is <redacted>; url https://<redacted>@h/x");
    }

    #[test]
    fn values_after_secret_words_are_masked() {
        for (line, want) in [
            ("password=hunter2 user=bob", "password=<redacted> user=bob"),
            ("--db-password hunter2", "--db-password hunter2"),
            ("--api-key=abc123", "--api-key=<redacted>"),
            (
                r#"{"client_secret": "two words"}"#,
                r#"{"client_secret": "<redacted>"}"#,
            ),
            ("MYSQL_PWD=pw1234 mysql", "MYSQL_PWD=<redacted> mysql"),
            ("API_PASS: 'xyz99'", "API_PASS: '<redacted>'"),
            (
                "https://h/x?token=abc&x=1",
                "https://h/x?token=<redacted>&x=1",
            ),
            (
                "curl -H 'Authorization: Bearer abcdefgh1234'",
                "curl -H 'Authorization: Bearer <redacted>'",
            ),
            ("Bearer abcdefgh12345678", "Bearer <redacted>"),
            (
                "Bearer authentication is used",
                "Bearer authentication is used",
            ),
            // ML logs keep their numbers
            (
                "max_tokens=512 num_tokens: 77 pad_token=<pad>",
                "max_tokens=512 num_tokens: 77 pad_token=<pad>",
            ),
            ("password: $DB_PASSWORD", "password: $DB_PASSWORD"),
        ] {
            assert_eq!(mask(line, &[]), want, "{line}");
        }
    }

    #[test]
    fn a_private_key_block_is_masked_whole_across_lines() {
        let mut m = Masker::new(&[]);
        let lines = [
            "before\n",
            "-----BEGIN RSA PRIVATE KEY-----\n",
            "MIIEpAIBAAKCAQEA1234567890abcdef\n",
            "Proc-Type: 4,ENCRYPTED\n",
            "\n",
            "ZmFrZSBrZXkgYm9keQ==\n",
            "-----END RSA PRIVATE KEY----- after\n",
            "MIIEnotakeyanymore\n",
        ];
        let out: Vec<String> = lines.iter().map(|l| m.line(l).into_owned()).collect();
        assert_eq!(
            out,
            [
                "before\n",
                "<redacted>\n",
                "<redacted>\n",
                "<redacted>\n",
                "\n",
                "<redacted>\n",
                "<redacted> after\n",
                "MIIEnotakeyanymore\n",
            ]
        );
        // a block that never ends stops at the first line that cannot be part of a key
        let text = mask(
            "-----BEGIN PRIVATE KEY-----MIIE\nQUJD\nepoch 1: loss 0.5\n",
            &[],
        );
        assert_eq!(text, "<redacted>\n<redacted>\nepoch 1: loss 0.5\n");
    }

    #[test]
    fn raw_lines_keep_every_byte_but_their_secrets() {
        let mut m = Masker::new(&["s3cr3t".into()]);
        let binary = b"\xff\xfe plain\n";
        assert!(matches!(m.bytes(binary), Cow::Borrowed(b) if b == binary));
        let leaky = b"\xff s3cr3t\n";
        assert_eq!(&*m.bytes(leaky), b"\xff <redacted>\n");
        assert_eq!(&*m.bytes(b"token=abc1\n"), b"token=<redacted>\n");
    }

    #[test]
    fn a_patch_keeps_its_shape() {
        let patch = "diff --git a/c b/c\n--- a/c\n+++ b/c\n@@ -1,1 +1,4 @@\n x\n+password=hunter2\n+-----BEGIN OPENSSH PRIVATE KEY-----\n+b3BlbnNzaC1rZXk\n+-----END OPENSSH PRIVATE KEY-----\n";
        let out = mask_patch(patch);
        assert_eq!(out.lines().count(), patch.lines().count());
        assert!(
            !out.contains("hunter2") && !out.contains("b3BlbnNz"),
            "{out}"
        );
        assert!(
            out.contains("\n+password=<redacted>\n+<redacted>\n+<redacted>\n+<redacted>\n"),
            "{out}"
        );
    }

    #[test]
    fn commands_get_markers_that_follow_the_secret() {
        let r = r();
        let known = [("db.password".to_string(), "hunter2".to_string())];
        let cmd = "curl -H 'Authorization: Bearer ghp_abcdefghijklmnopqrstuvwxyz0123' --pw hunter2 && DB_TOKEN=xyz1 run --n=3";
        let a = r.redact_text(cmd, &known, &mut Vec::new());
        assert!(
            !a.contains("ghp_") && !a.contains("hunter2") && !a.contains("xyz1"),
            "{a}"
        );
        assert!(
            a.contains(&format!("--pw {}", r.marker("db.password", "hunter2"))),
            "{a}"
        );
        assert!(a.ends_with(" run --n=3"), "{a}");
        let mut found = Vec::new();
        let b = r.redact_text(&cmd.replace("xyz1", "xyz2"), &known, &mut found);
        assert_ne!(a, b);
        assert_eq!(a, r.redact_text(cmd, &known, &mut Vec::new()));
        assert!(found.contains(&"xyz2".to_string()), "{found:?}");
        // placeholders and variables are not secrets
        let t = "run --password={params.pw} $TOKEN MY_TOKEN=$MY_TOKEN --token $T";
        assert_eq!(r.redact_text(t, &[], &mut Vec::new()), t);
        // a value after a secret flag, in a shell string or as the next argument
        let s = r.redact_text("mysql --password 'pw 99' -u x", &[], &mut Vec::new());
        assert!(!s.contains("pw 99") && s.ends_with(" -u x"), "{s}");
        let argv: Vec<String> = ["mysql", "--password", "pw99", "--max-tokens", "512"]
            .map(String::from)
            .into();
        let a = r.redact_argv(&argv, &[], &mut Vec::new());
        assert!(a[2].starts_with("<redacted:") && a[4] == "512", "{a:?}");
    }
}

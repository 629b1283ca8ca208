//! Masking: the patterns that find credentials in text, the line scanner that keeps state
//! across a private key block, and the `Masker` that hides what it finds in logs, commands and
//! patches.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{LazyLock, OnceLock};

use regex::Regex;

/// Shown in place of a secret in logs and the pipeline file.
pub const MASK: &str = "<redacted>";

/// Values that are credentials by their shape; the whole match is secret.
pub(super) const CREDENTIAL_VALUE_PATTERN: &str = concat!(
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
pub(super) const SECRET_PART_PATTERNS: &[&str] = &[
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

pub(super) static CREDENTIAL_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(CREDENTIAL_VALUE_PATTERN).expect("credential pattern compiles"));

pub(super) static SECRET_PART: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    SECRET_PART_PATTERNS
        .iter()
        .map(|p| Regex::new(p).expect("secret pattern compiles"))
        .collect()
});

/// All of the above in one pattern: most lines match none, and one pass over them says so.
/// Compiled on first need (see `any_secret_in`): compiling it is most of a dry run's CPU time.
static ANY_SECRET: OnceLock<Regex> = OnceLock::new();

pub(super) fn any_secret() -> &'static Regex {
    ANY_SECRET.get_or_init(|| {
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
    })
}

/// Does any credential pattern (`ANY_SECRET`) match in `text`? Before the pattern is compiled,
/// text that cannot hold a match (`may_hold_secret`) is answered without it: a run or a dry run
/// whose commands and variables hold nothing of the kind never pays for compiling it (~6 M
/// instructions, a third of `run --dry-run` on a 50-step chain). Once compiled, it decides.
pub(super) fn any_secret_in(text: &str) -> bool {
    match ANY_SECRET.get() {
        Some(re) => re.is_match(text),
        None => may_hold_secret(text) && any_secret().is_match(text),
    }
}

/// Where `ANY_SECRET` matches in `text`.
pub(super) fn any_secret_ranges(text: &str) -> Vec<Range<usize>> {
    if ANY_SECRET.get().is_none() && !may_hold_secret(text) {
        return Vec::new();
    }
    any_secret().find_iter(text).map(|m| m.range()).collect()
}

/// Words one of which every match of `ANY_SECRET` and of `FLAG_VALUE` contains, lower-cased:
/// the literal prefixes of `CREDENTIAL_VALUE_PATTERN` (`AKIA…`, `gh?_`/`github_pat_`, `glpat-`,
/// `xox?-`, `sk-`, `AIza`, `eyJ`, `-----BEGIN`), the `://` of a URL with a password,
/// `authorization`, `bearer`, and the name parts of the `password=` / `--password VALUE` patterns
/// (passwd/password/passphrase/`_pass` hold `pass`; api/access/private key hold `key`; every
/// `…token` holds `token`; then `secret` and `_pwd`). Keep it in step with those patterns: the
/// test `the_prefilter_never_hides_a_match` checks it against them.
const NEEDLES: &[&str] = &[
    "pass",
    "secret",
    "key",
    "token",
    "pwd",
    "://",
    "authorization",
    "bearer",
    "akia",
    "asia",
    "agpa",
    "aida",
    "aroa",
    "anpa",
    "gh",
    "glpat-",
    "xox",
    "sk-",
    "aiza",
    "eyj",
    "-----begin",
];

/// False only when neither `ANY_SECRET` nor `FLAG_VALUE` can match in `text`: it holds none of
/// `NEEDLES`, compared without ASCII case (the patterns' `(?i)`). Text that is not ASCII is
/// always a maybe: Unicode case folding matches `K` (Kelvin sign) to `k`, `ſ` to `s`.
pub(super) fn may_hold_secret(text: &str) -> bool {
    if !text.is_ascii() {
        return true;
    }
    // one pass, without a lower-cased copy: only a byte that starts some needle is looked at
    let b = text.as_bytes();
    (0..b.len()).any(|i| {
        let first = b[i].to_ascii_lowercase();
        NEEDLES.iter().any(|n| {
            let n = n.as_bytes();
            n[0] == first && b.len() - i >= n.len() && b[i..i + n.len()].eq_ignore_ascii_case(n)
        })
    })
}

pub(super) static PEM_BEGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----").expect("pem begin compiles")
});
pub(super) static PEM_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----").expect("pem end compiles")
});
/// A line inside a private key block: base64, a header, or blank.
pub(super) static PEM_BODY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^[\s"',]*(?:[A-Za-z0-9+/=]*|(?:Proc-Type|DEK-Info|Comment|Version|Hash|Charset):.*)[\s"',]*(?:\\n)?[\s"',]*$"#)
        .expect("pem body compiles")
});

/// `NAME=value` in a command: secret when NAME is (an environment-style name, by the name rules).
pub(super) static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:^|[^A-Za-z0-9_])(?P<n>[A-Z_][A-Z0-9_]*)=(?:"(?P<dq>[^"\n]+)"|'(?P<sq>[^'\n]+)'|(?P<s>[^\s"';&|]+))"#)
        .expect("assignment pattern compiles")
});

/// `--password VALUE`, `--api-key VALUE` in a command: the value after a secret-looking flag.
pub(super) static FLAG_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r#"(?i)(?:^|\s)-{1,2}[A-Za-z0-9_.\-]*(?:passwd|password|passphrase|secret|token|api[_\-]?key|access[_\-]?key)"#,
        r#"[ \t]+(?:"(?P<dq>[^"\n]+)"|'(?P<sq>[^'\n]+)'|(?P<s>[^\s"'\-][^\s"';&|]*))"#,
    ))
    .expect("flag pattern compiles")
});
pub(super) static SECRET_FLAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^-{1,2}[A-Za-z0-9_.\-]*(?:passwd|password|passphrase|secret|token|api[_\-]?key|access[_\-]?key)$")
        .expect("flag pattern compiles")
});

/// Finds the secret parts of text line by line. Private key blocks span lines, so it keeps
/// state: after a `BEGIN … PRIVATE KEY` line, every body line is secret up to the `END` line
/// (or the first line that cannot be part of a key).
#[derive(Debug, Clone)]
pub(super) struct Scanner {
    /// (name, value) of known secrets, longest value first; name is "" when unknown
    pub(super) known: Vec<(String, String)>,
    in_block: bool,
}

/// A secret found in a line: its byte range, and the index of the known secret it is (if any).
pub(super) type Span = (Range<usize>, Option<usize>);

impl Scanner {
    pub(super) fn new(known: impl IntoIterator<Item = (String, String)>) -> Scanner {
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
    pub(super) fn line(&mut self, line: &str) -> Vec<Span> {
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
        if !any_secret_in(rest) {
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
pub(super) fn is_reference(v: &str) -> bool {
    v.starts_with('$') || v.starts_with("{params.") || v.starts_with("<redacted")
}

/// Sort spans and merge the overlapping ones; a merged span keeps a known index only when it is
/// exactly that secret.
pub(super) fn merge(mut spans: Vec<Span>) -> Vec<Span> {
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
pub(super) fn split_ending(line: &str) -> (&str, &str) {
    let content = line.trim_end_matches(['\n', '\r']);
    (content, &line[content.len()..])
}

pub(super) fn replace_spans(
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

//! Content-aware differences between two versions of one file, short enough to show in a
//! replay's verdict: JSON/YAML/TOML (the first key paths whose values differ, both values),
//! CSV/TSV (rows and columns that differ, with counts), text (a short unified diff), anything
//! else (sizes and the first differing byte offset).
//!
//! Bounded: files larger than [`MAX_PARSE`] are only compared byte by byte, streamed (so memory
//! stays small whatever their size), and every list is cut at a few entries (the counts stay).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

/// Larger files are compared as bytes only.
pub const MAX_PARSE: u64 = 8 << 20;
/// How many key paths, rows or diff lines are listed.
const SHOWN: usize = 8;
/// How many lines of a unified diff are kept.
const DIFF_LINES: usize = 16;
/// Longest value or line shown (longer ones are cut with `…`).
const VALUE_CHARS: usize = 80;

/// One key path whose value differs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyChange {
    /// `metrics.loss`, `layers[2].units`; `(root)` for the document itself
    pub path: String,
    /// the value before (JSON text), absent when the key was added
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Rows and columns of a table that differ.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableChange {
    pub rows_before: usize,
    pub rows_after: usize,
    /// rows (compared by position, header excluded) whose values differ
    pub rows_differ: usize,
    /// column → how many rows differ in it
    pub columns: Vec<(String, usize)>,
    /// the header line itself differs
    pub header_differs: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContentDiff {
    /// `json`, `yaml`, `toml`, `csv`, `tsv`, `text` or `binary`
    pub format: &'static str,
    /// one line for people
    pub summary: String,
    /// a few more lines (key changes, rows, the unified diff)
    pub details: Vec<String>,
    pub size_before: u64,
    pub size_after: u64,
    /// the first byte at which the two differ (absent when equal)
    pub first_difference_at: Option<u64>,
    /// for structured formats: the key paths that differ (the first few; see `keys_differ`)
    pub keys: Vec<KeyChange>,
    pub keys_differ: usize,
    pub table: Option<TableChange>,
    /// timestamp-like tokens on the lines that differ (a clock written into the file)
    pub timestamps: Vec<String>,
}

/// Compare two files (the first is the earlier version); the format is `a`'s extension.
pub fn compare(a: &Path, b: &Path) -> std::io::Result<ContentDiff> {
    compare_named(a, b, &a.to_string_lossy())
}

/// Compare two files, in the format `name`'s extension says (the files themselves may be
/// objects named by their hash).
pub fn compare_named(a: &Path, b: &Path, name: &str) -> std::io::Result<ContentDiff> {
    let mut d = compare_raw(a, b, name)?;
    // what looks like a credential in the files is not shown (as in logs)
    let mask = |t: &mut String| *t = crate::fingerprint::env::mask(t, &[]);
    d.details.iter_mut().for_each(mask);
    for k in &mut d.keys {
        let leaf = k.path.rsplit(['.', '[']).next().unwrap_or("").to_string();
        for v in k.before.iter_mut().chain(k.after.iter_mut()) {
            // a value under a secret-looking key (`password`, `api_key`) as well
            let probe = format!("{leaf}={v}");
            if crate::fingerprint::env::mask(&probe, &[]) != probe {
                *v = crate::fingerprint::env::MASK.to_string();
            }
            mask(v);
        }
    }
    if !d.keys.is_empty() {
        d.details = key_details(&d);
    }
    Ok(d)
}

fn key_details(d: &ContentDiff) -> Vec<String> {
    let mut out: Vec<String> = d
        .keys
        .iter()
        .map(|k| {
            format!(
                "{}: {} → {}",
                k.path,
                k.before.as_deref().unwrap_or("(absent)"),
                k.after.as_deref().unwrap_or("(absent)")
            )
        })
        .collect();
    if d.keys_differ > d.keys.len() {
        out.push(format!("… and {} more keys", d.keys_differ - d.keys.len()));
    }
    out
}

fn compare_raw(a: &Path, b: &Path, name: &str) -> std::io::Result<ContentDiff> {
    let size_before = std::fs::metadata(a)?.len();
    let size_after = std::fs::metadata(b)?.len();
    let first_difference_at = first_difference(a, b)?;
    let mut d = ContentDiff {
        format: "binary",
        summary: String::new(),
        details: Vec::new(),
        size_before,
        size_after,
        first_difference_at,
        keys: Vec::new(),
        keys_differ: 0,
        table: None,
        timestamps: Vec::new(),
    };
    if first_difference_at.is_none() {
        d.summary = "identical bytes".into();
        return Ok(d);
    }
    let texts = if size_before <= MAX_PARSE && size_after <= MAX_PARSE {
        match (std::fs::read(a), std::fs::read(b)) {
            (Ok(x), Ok(y)) => match (text_of(x), text_of(y)) {
                (Some(x), Some(y)) => Some((x, y)),
                _ => None,
            },
            _ => None,
        }
    } else {
        None
    };
    let Some((ta, tb)) = texts else {
        d.summary = binary_summary(&d);
        return Ok(d);
    };
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let structured = match ext.as_str() {
        "json" => Some((
            "json",
            serde_json::from_str::<Value>(&ta).ok(),
            serde_json::from_str::<Value>(&tb).ok(),
        )),
        "yaml" | "yml" => Some(("yaml", yaml(&ta), yaml(&tb))),
        "toml" => Some(("toml", toml_value(&ta), toml_value(&tb))),
        _ => None,
    };
    d.timestamps = timestamps_in_changes(&ta, &tb);
    if let Some((format, Some(va), Some(vb))) = structured {
        d.format = format;
        keys_diff(&mut d, &va, &vb);
        return Ok(d);
    }
    if let Some(sep) = match ext.as_str() {
        "csv" => Some(','),
        "tsv" | "tab" => Some('\t'),
        _ => None,
    } {
        d.format = if sep == ',' { "csv" } else { "tsv" };
        table_diff(&mut d, &ta, &tb, sep);
        return Ok(d);
    }
    d.format = "text";
    text_diff(&mut d, &ta, &tb);
    Ok(d)
}

/// Two parsed documents: the keys whose values differ.
fn keys_diff(d: &mut ContentDiff, va: &Value, vb: &Value) {
    let mut all = Vec::new();
    walk(va, vb, &mut String::new(), &mut all);
    d.keys_differ = all.len();
    d.keys = all.into_iter().take(SHOWN).collect();
    d.summary = match d.keys_differ {
        0 => "same values, written differently (order, spacing or number format)".into(),
        1 => "1 key differs".into(),
        n => format!("{n} keys differ"),
    };
    d.details = key_details(d);
}

/// Two tables: the rows and columns that differ.
fn table_diff(d: &mut ContentDiff, ta: &str, tb: &str, sep: char) {
    let (t, details) = table(ta, tb, sep);
    d.summary = format!(
        "{} of {} rows differ{}{}",
        t.rows_differ,
        t.rows_before.max(t.rows_after),
        if t.rows_before != t.rows_after {
            format!(" (rows {} → {})", t.rows_before, t.rows_after)
        } else {
            String::new()
        },
        if t.columns.is_empty() {
            String::new()
        } else {
            format!(
                "; columns: {}",
                t.columns
                    .iter()
                    .take(SHOWN)
                    .map(|(c, n)| format!("{c} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    if t.header_differs {
        d.summary += "; the header differs";
    }
    d.details = details;
    d.table = Some(t);
}

/// Two texts: lines removed and added, and a short unified diff.
fn text_diff(d: &mut ContentDiff, ta: &str, tb: &str) {
    let diff = line_diff(ta, tb);
    let (mut removed, mut added) = (0, 0);
    for c in diff.iter_all_changes() {
        match c.tag() {
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    d.summary = format!(
        "{} line{} removed, {} added",
        removed,
        if removed == 1 { "" } else { "s" },
        added
    );
    let unified = diff
        .unified_diff()
        .context_radius(1)
        .header("recorded", "replayed")
        .to_string();
    let lines: Vec<&str> = unified.lines().skip(2).collect();
    d.details = lines
        .iter()
        .take(DIFF_LINES)
        .map(|l| cut(l, VALUE_CHARS))
        .collect();
    if lines.len() > DIFF_LINES {
        d.details
            .push(format!("… {} more diff lines", lines.len() - DIFF_LINES));
    }
}

/// A line diff that gives up refining after a while (two large, very different files): the
/// result is still a correct diff, only less minimal.
fn line_diff<'a>(a: &'a str, b: &'a str) -> similar::TextDiff<'a, 'a, 'a, str> {
    similar::TextDiff::configure()
        .timeout(std::time::Duration::from_secs(2))
        .diff_lines(a, b)
}

fn binary_summary(d: &ContentDiff) -> String {
    let at = d
        .first_difference_at
        .map(|o| format!("first difference at byte {o}"))
        .unwrap_or_default();
    if d.size_before == d.size_after {
        format!("same size ({} bytes), {at}", d.size_before)
    } else {
        format!("{} → {} bytes, {at}", d.size_before, d.size_after)
    }
}

/// The text of a file that looks like text (UTF-8, no NUL byte).
fn text_of(bytes: Vec<u8>) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

fn yaml(text: &str) -> Option<Value> {
    let v: serde_norway::Value = serde_norway::from_str(text).ok()?;
    serde_json::to_value(v).ok()
}

fn toml_value(text: &str) -> Option<Value> {
    let v: toml::Table = toml::from_str(text).ok()?;
    serde_json::to_value(v).ok()
}

/// The offset of the first byte that differs (or where the shorter ends); streamed.
pub fn first_difference(a: &Path, b: &Path) -> std::io::Result<Option<u64>> {
    let mut ra = BufReader::new(File::open(a)?);
    let mut rb = BufReader::new(File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut ra, &mut ba)?;
        let nb = read_full(&mut rb, &mut bb)?;
        let n = na.min(nb);
        if let Some(i) = (0..n).find(|&i| ba[i] != bb[i]) {
            return Ok(Some(offset + i as u64));
        }
        if na != nb {
            return Ok(Some(offset + n as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        offset += n as u64;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn shown(v: &Value) -> String {
    cut(&v.to_string(), VALUE_CHARS)
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// Every key path whose value differs, in document order (objects by key, arrays by index).
fn walk(a: &Value, b: &Value, path: &mut String, out: &mut Vec<KeyChange>) {
    let here = |p: &str| {
        if p.is_empty() {
            "(root)".to_string()
        } else {
            p.to_string()
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match y.get(k) {
                    Some(vb) => walk(va, vb, path, out),
                    None => out.push(KeyChange {
                        path: here(path),
                        before: Some(shown(va)),
                        after: None,
                    }),
                }
                path.truncate(len);
            }
            for (k, vb) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.push(KeyChange {
                    path: p,
                    before: None,
                    after: Some(shown(vb)),
                });
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(va, vb, path, out),
                    (va, vb) => out.push(KeyChange {
                        path: here(path),
                        before: va.map(shown),
                        after: vb.map(shown),
                    }),
                }
                path.truncate(len);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a == b => {}
        _ => out.push(KeyChange {
            path: here(path),
            before: Some(shown(a)),
            after: Some(shown(b)),
        }),
    }
}

/// Split one line of a CSV (with `"` quoting) or TSV.
fn fields(line: &str, sep: char) -> Vec<String> {
    if sep != ',' {
        return line.split(sep).map(str::to_string).collect();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == sep && !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Rows compared by position (the first line is the header).
fn table(a: &str, b: &str, sep: char) -> (TableChange, Vec<String>) {
    let rows = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| fields(l.trim_end_matches('\r'), sep))
            .collect()
    };
    let (ra, rb) = (rows(a), rows(b));
    let header: Vec<String> = ra.first().cloned().unwrap_or_default();
    let header_differs = ra.first() != rb.first();
    let (body_a, body_b) = (
        ra.get(1..).unwrap_or_default(),
        rb.get(1..).unwrap_or_default(),
    );
    let name = |i: usize| {
        header
            .get(i)
            .filter(|h| !h.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("column {}", i + 1))
    };
    let mut columns: Vec<usize> = Vec::new();
    let mut rows_differ = 0;
    let mut details = Vec::new();
    for i in 0..body_a.len().max(body_b.len()) {
        let (x, y) = (body_a.get(i), body_b.get(i));
        if x == y {
            continue;
        }
        rows_differ += 1;
        let (x, y) = (
            x.cloned().unwrap_or_default(),
            y.cloned().unwrap_or_default(),
        );
        let mut changed = Vec::new();
        for c in 0..x.len().max(y.len()) {
            if x.get(c) != y.get(c) {
                if columns.len() <= c {
                    columns.resize(c + 1, 0);
                }
                columns[c] += 1;
                changed.push(format!(
                    "{} {} → {}",
                    name(c),
                    cut(x.get(c).map_or("(absent)", String::as_str), 24),
                    cut(y.get(c).map_or("(absent)", String::as_str), 24)
                ));
            }
        }
        if details.len() < SHOWN {
            // row numbers as a spreadsheet shows them: the header is row 1
            details.push(format!("row {}: {}", i + 2, changed.join(", ")));
        }
    }
    if rows_differ > details.len() {
        details.push(format!("… and {} more rows", rows_differ - details.len()));
    }
    let mut columns: Vec<(String, usize)> = columns
        .into_iter()
        .enumerate()
        .filter(|(_, n)| *n > 0)
        .map(|(i, n)| (name(i), n))
        .collect();
    columns.sort_by_key(|c| std::cmp::Reverse(c.1));
    (
        TableChange {
            rows_before: body_a.len(),
            rows_after: body_b.len(),
            rows_differ,
            columns,
            header_differs,
        },
        details,
    )
}

static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        // 2026-12-06T13:14:58, 2026-12-06 13:14, with seconds' fractions and a zone
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
        // 13:14:58.123
        r"|\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b",
        // Unix time in seconds (2017–2033) or milliseconds, with a fraction
        r"|\b1[5-9]\d{8}(?:\d{9}|\d{6}|\d{3})?(?:\.\d+)?\b",
        // Sun Dec  6 13:14:58 2026, 06/Dec/2026
        r"|\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? +(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2}\b",
    ))
    .expect("valid")
});

/// Timestamp-like tokens on the lines that differ, which are not also on a line both versions
/// share (at most a few).
pub fn timestamps_in_changes(a: &str, b: &str) -> Vec<String> {
    let diff = line_diff(a, b);
    let mut found: Vec<String> = Vec::new();
    for c in diff.iter_all_changes() {
        if c.tag() == similar::ChangeTag::Equal {
            continue;
        }
        for m in TIMESTAMP.find_iter(c.value()) {
            let t = m.as_str().to_string();
            if !found.contains(&t) && found.len() < 4 {
                found.push(t);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, a: &str, b: &str) -> ContentDiff {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (
            dir.path().join("a").join(name),
            dir.path().join("b").join(name),
        );
        for (p, t) in [(&pa, a), (&pb, b)] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        compare(&pa, &pb).unwrap()
    }

    #[test]
    fn json_names_the_key_paths_with_both_values() {
        let d = pair(
            "m.json",
            r#"{"loss": 0.5, "layers": [{"units": 8}, {"units": 4}], "name": "x", "gone": 1}"#,
            r#"{"name": "x", "loss": 0.25, "layers": [{"units": 8}, {"units": 5}], "new": true}"#,
        );
        assert_eq!(d.format, "json");
        assert_eq!(d.summary, "4 keys differ");
        assert_eq!(
            d.details,
            [
                "gone: 1 → (absent)",
                "layers[1].units: 4 → 5",
                "loss: 0.5 → 0.25",
                "new: (absent) → true"
            ]
        );
    }

    #[test]
    fn equal_values_written_differently_are_not_key_changes() {
        let d = pair("c.yaml", "a: 1\nb: [1, 2]\n", "b:\n  - 1\n  - 2\na: 1.0\n");
        assert_eq!(d.format, "yaml");
        assert_eq!(d.keys_differ, 0, "{d:?}");
        let d = pair("c.toml", "[s]\nx = 1\ny = 'a'\n", "[s]\nx = 2\ny = 'a'\n");
        assert_eq!((d.format, d.details[0].as_str()), ("toml", "s.x: 1 → 2"));
    }

    #[test]
    fn csv_counts_rows_and_columns() {
        let d = pair(
            "t.csv",
            "epoch,loss,\"acc, top1\"\n1,0.5,0.1\n2,0.4,0.2\n3,0.3,0.3\n",
            "epoch,loss,\"acc, top1\"\n1,0.5,0.1\n2,0.41,0.25\n3,0.31,0.3\n4,0.2,0.4\n",
        );
        assert_eq!(d.format, "csv");
        let t = d.table.as_ref().unwrap();
        assert_eq!((t.rows_before, t.rows_after, t.rows_differ), (3, 4, 3));
        let cols: Vec<(&str, usize)> = t.columns.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        assert_eq!(cols, [("loss", 3), ("acc, top1", 2), ("epoch", 1)]);
        assert_eq!(d.details[0], "row 3: loss 0.4 → 0.41, acc, top1 0.2 → 0.25");
    }

    #[test]
    fn text_gets_a_short_unified_diff_and_timestamps_are_found() {
        let d = pair(
            "log.txt",
            "start\nwritten at 2026-12-06T13:14:58Z\nend\n",
            "start\nwritten at 2026-12-06T13:15:02Z\nend\n",
        );
        assert_eq!(d.format, "text");
        assert_eq!(d.summary, "1 line removed, 1 added");
        assert!(
            d.details
                .iter()
                .any(|l| l == "-written at 2026-12-06T13:14:58Z"),
            "{d:?}"
        );
        assert_eq!(
            d.timestamps,
            ["2026-12-06T13:14:58Z", "2026-12-06T13:15:02Z"]
        );
        assert_eq!(d.first_difference_at, Some(32));
    }

    #[test]
    fn credentials_in_a_file_are_not_shown() {
        let d = pair(
            "c.txt",
            "url = https://bob:hunter2hunter2@db.example.com/x\n",
            "url = https://bob:other-pass-99@db.example.com/x\n",
        );
        let all = d.details.join("\n");
        assert!(
            !all.contains("hunter2hunter2") && !all.contains("other-pass-99"),
            "{all}"
        );
        let d = pair(
            "c.json",
            r#"{"api_key": "sk-aaaaaaaaaaaaaaaaaaaaaaaa1"}"#,
            r#"{"api_key": "sk-bbbbbbbbbbbbbbbbbbbbbbbb2"}"#,
        );
        assert!(!format!("{:?}", d.keys).contains("sk-"), "{:?}", d.keys);
        let d = pair(
            "c.yaml",
            "db:\n  password: plain1\n",
            "db:\n  password: plain2\n",
        );
        assert_eq!(d.keys[0].before.as_deref(), Some("<redacted>"), "{d:?}");
        assert!(!d.details.join("").contains("plain"), "{d:?}");
    }

    #[test]
    fn binary_and_large_files_give_sizes_and_the_first_differing_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.bin"), dir.path().join("b.bin"));
        let mut big = vec![7u8; (MAX_PARSE + 10) as usize];
        std::fs::write(&a, &big).unwrap();
        big[200_000] = 8;
        big.push(1);
        std::fs::write(&b, &big).unwrap();
        let d = compare(&a, &b).unwrap();
        assert_eq!(d.format, "binary");
        assert_eq!(d.first_difference_at, Some(200_000));
        assert_eq!(
            d.summary,
            format!(
                "{} → {} bytes, first difference at byte 200000",
                MAX_PARSE + 10,
                MAX_PARSE + 11
            )
        );
        let d = pair("x.bin", "ab\0c", "ab\0d");
        assert_eq!(d.summary, "same size (4 bytes), first difference at byte 3");
    }
}

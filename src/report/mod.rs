//! Everything about how output looks: colour decisions, durations, sizes, timestamps.
//! Colour is used only on a terminal, never when `NO_COLOR` is set or `CI` is set, and can be
//! forced with `--color always` / `CLICOLOR_FORCE`.

pub mod graph;
pub mod openlineage;
pub mod progress;
pub mod prov;
pub mod time;

use std::io::IsTerminal;

use owo_colors::OwoColorize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// What a piece of output means, which decides how it looks (see [`Style::paint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Success: `succeeded`, `cached`, `identical`, files added.
    Good,
    /// Failure: `failed`, `differs`, errors, files removed.
    Bad,
    /// Needs attention: `warning:`, `note:`, changed values.
    Warn,
    /// Something to pick out and copy: run ids, hashes, `hint:`.
    Accent,
    /// Secondary detail a reader may skip.
    Muted,
    /// Headings and names.
    Strong,
}

/// Styling for one output stream.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn detect(choice: ColorChoice, stream_is_terminal: bool) -> Style {
        let env = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                if env("NO_COLOR") {
                    false
                } else if env("CLICOLOR_FORCE") {
                    true
                } else {
                    stream_is_terminal
                        && !env("CI")
                        && std::env::var("TERM").map_or(true, |t| t != "dumb")
                }
            }
        };
        Style { color }
    }
    pub fn stdout(choice: ColorChoice) -> Style {
        Self::detect(choice, std::io::stdout().is_terminal())
    }
    pub fn stderr(choice: ColorChoice) -> Style {
        Self::detect(choice, std::io::stderr().is_terminal())
    }
    /// `text` styled for `role`, or unchanged when this stream gets no colour. The one place
    /// that decides what each role looks like.
    pub fn paint(&self, role: Role, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        match role {
            Role::Good => text.green().to_string(),
            Role::Bad => text.red().to_string(),
            Role::Warn => text.yellow().to_string(),
            Role::Accent => text.cyan().to_string(),
            Role::Muted => text.dimmed().to_string(),
            Role::Strong => text.bold().to_string(),
        }
    }
    /// Print `note: …` on stderr (something was not exactly as asked, but the answer follows).
    pub fn note(&self, text: &str) {
        eprintln!("{} {text}", self.paint(Role::Warn, "note:"));
    }
    /// A table cell of `text` styled for `role` when this stream gets colour. comfy-table
    /// applies the style itself, after measuring the text, so colour never counts as width.
    /// Looks as [`paint`](Self::paint) does (the same 8 terminal colours).
    pub fn cell(&self, role: Option<Role>, text: impl ToString) -> comfy_table::Cell {
        use comfy_table::{Attribute, Color};
        let cell = comfy_table::Cell::new(text);
        match role.filter(|_| self.color) {
            None => cell,
            Some(Role::Good) => cell.fg(Color::DarkGreen),
            Some(Role::Bad) => cell.fg(Color::DarkRed),
            Some(Role::Warn) => cell.fg(Color::DarkYellow),
            Some(Role::Accent) => cell.fg(Color::DarkCyan),
            Some(Role::Muted) => cell.add_attribute(Attribute::Dim),
            Some(Role::Strong) => cell.add_attribute(Attribute::Bold),
        }
    }
    /// How a status word is coloured: `None` for one that is not.
    pub fn status_role(status: &str) -> Option<Role> {
        match status {
            "succeeded" | "identical" | "cached" | "restored" => Some(Role::Good),
            "failed" | "differs" => Some(Role::Bad),
            "interrupted" | "not_run" | "running" => Some(Role::Warn),
            _ => None,
        }
    }
    /// Colour a status word the way people expect.
    pub fn status(&self, status: &str) -> String {
        match Style::status_role(status) {
            Some(role) => self.paint(role, status),
            None => status.to_string(),
        }
    }
}

/// A table drawn the way mlrun's listings are: no borders, one space before the first column
/// and two between columns, left-aligned, never wrapped; coloured only when `style` says so
/// (whether or not stdout is a terminal, which `style` already decided).
pub fn table(style: Style) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    if style.color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    t
}

/// `table` as text, one line per row, without the padding that ends each line.
pub fn render_table(table: &comfy_table::Table) -> String {
    let mut out = String::new();
    for line in table.lines() {
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// Write `text` to stdout. A closed pipe (`mlrun runs | head`) is not an error: the reader has
/// what it wanted, so the rest is dropped instead of panicking like `print!` would.
/// A `--json` document with a `url` field added (a link to the same thing in `mlrun ui`, when
/// `[ui] base_url` is configured); without one it is the document unchanged.
#[derive(serde::Serialize)]
pub struct WithUrl<'a, T: serde::Serialize> {
    #[serde(flatten)]
    pub doc: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
}

/// `doc` as pretty JSON, with `url` added when given.
pub fn json_with_url<T: serde::Serialize>(doc: &T, url: Option<&str>) -> String {
    match url {
        None => serde_json::to_string_pretty(doc),
        Some(url) => serde_json::to_string_pretty(&WithUrl {
            doc,
            url: Some(url),
        }),
    }
    .unwrap_or_default()
}

/// The line that gives a link to the web view (`mlrun ui`) of what was just shown.
pub fn ui_link_line(url: &str, style: &Style) -> String {
    format!("{} {url}\n", style.paint(Role::Muted, "web view:"))
}

pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Print rendered pipeline warnings to stderr, with `warning:` coloured.
pub fn print_warnings(warnings: &[String], style: Style) {
    for w in warnings {
        let text = w.trim_end();
        match text.strip_prefix("warning:") {
            Some(rest) => eprintln!("{}{rest}", style.paint(Role::Warn, "warning:")),
            None => eprintln!("{text}"),
        }
    }
}

/// `1.2s`, `41ms`, `3m05s`, `1h02m`
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// `14.4 MB` (decimal units, as `ls -h --si` and most file managers show them)
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub use crate::fingerprint::hash::short_hash;

/// Params as people write them: `seed=42 train.lr=0.5`.
pub fn params_line<'a>(
    params: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
) -> String {
    params
        .into_iter()
        .map(|(k, v)| format!("{k}={}", crate::pipeline::params::render(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Metrics as people write them: `accuracy=0.89 loss=0.2551`.
pub fn metrics_line<'a>(metrics: impl IntoIterator<Item = (&'a String, &'a f64)>) -> String {
    metrics
        .into_iter()
        .map(|(k, v)| format!("{k}={}", metric(*v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first `max` items, comma-separated, then ` and N more` followed by `more_note` (where
/// the rest can be seen) when there are more.
pub fn first_of(items: &[String], max: usize, more_note: &str) -> String {
    let mut s = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > max {
        s += &format!(" and {} more{more_note}", items.len() - max);
    }
    s
}

/// `1 file`, `3 files`.
pub fn files(n: impl Into<u64>) -> String {
    let n = n.into();
    format!("{n} file{}", if n == 1 { "" } else { "s" })
}

/// A metric value as people write it: no trailing zeros, at most 4 decimals for fractions (4
/// significant digits for tiny or huge values); `nan`, `inf`, `-inf`. Rounded: `--json` has
/// the exact value.
pub fn metric(v: f64) -> String {
    if !v.is_finite() {
        crate::fingerprint::metrics::to_json(v)
            .as_str()
            .unwrap_or("nan")
            .to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() < 1e-4 || v.abs() >= 1e15 {
        let s = format!("{v:.3e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = if m.contains('.') {
            m.trim_end_matches('0').trim_end_matches('.')
        } else {
            m
        };
        format!("{m}e{e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A step's cluster job in one line: `slurm job 42 on node1 · queued 1.2s · ran 3.4s · TIMEOUT`.
pub fn job_line(j: &crate::store::jobs::JobInfo) -> String {
    let r = &j.record;
    let mut parts = vec![format!("{} job {}", r.executor, r.job_id)];
    if let Some(n) = &r.node {
        parts[0] += &format!(" on {n}");
    }
    if let Some(w) = j.queue_wait_ms {
        parts.push(format!("queued {}", duration_ms(w)));
    }
    if let Some(t) = j.run_ms {
        parts.push(format!("ran {}", duration_ms(t)));
    }
    if let Some(g) = &r.gpus {
        parts.push(format!("GPUs {g}"));
    }
    if let Some(s) = &r.state {
        parts.push(s.clone());
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(duration_ms(41), "41ms");
        assert_eq!(duration_ms(1234), "1.2s");
        assert_eq!(duration_ms(185_000), "3m05s");
        assert_eq!(size(14_400_000), "14.4 MB");
        assert_eq!(size(12), "12 B");
        assert_eq!(metric(0.92), "0.92");
        assert_eq!(metric(500.0), "500");
        assert_eq!(metric(f64::NAN), "nan");
        assert_eq!(metric(f64::NEG_INFINITY), "-inf");
        assert_eq!(metric(1.25e-7), "1.25e-7");
        assert_eq!(metric(-0.0), "0");
        assert_eq!(files(1u64), "1 file");
        assert_eq!(files(0u64), "0 files");
    }

    #[test]
    fn paint_styles_by_role_only_with_colour() {
        let plain = Style { color: false };
        let coloured = Style { color: true };
        assert_eq!(plain.paint(Role::Bad, "failed"), "failed");
        assert_eq!(plain.status("succeeded"), "succeeded");
        // The same escape codes the per-colour helpers wrote before they were folded into `paint`.
        assert_eq!(coloured.paint(Role::Good, "ok"), "\x1b[32mok\x1b[39m");
        assert_eq!(coloured.paint(Role::Bad, "ok"), "\x1b[31mok\x1b[39m");
        assert_eq!(coloured.paint(Role::Warn, "ok"), "\x1b[33mok\x1b[39m");
        assert_eq!(coloured.paint(Role::Accent, "ok"), "\x1b[36mok\x1b[39m");
        assert_eq!(coloured.paint(Role::Muted, "ok"), "\x1b[2mok\x1b[0m");
        assert_eq!(coloured.paint(Role::Strong, "ok"), "\x1b[1mok\x1b[0m");
        assert_eq!(coloured.status("differs"), "\x1b[31mdiffers\x1b[39m");
        assert_eq!(coloured.status("weird"), "weird");
    }
}

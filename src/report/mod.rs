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
    pub fn green(&self, s: &str) -> String {
        if self.color {
            s.green().to_string()
        } else {
            s.to_string()
        }
    }
    pub fn red(&self, s: &str) -> String {
        if self.color {
            s.red().to_string()
        } else {
            s.to_string()
        }
    }
    pub fn yellow(&self, s: &str) -> String {
        if self.color {
            s.yellow().to_string()
        } else {
            s.to_string()
        }
    }
    pub fn cyan(&self, s: &str) -> String {
        if self.color {
            s.cyan().to_string()
        } else {
            s.to_string()
        }
    }
    pub fn dim(&self, s: &str) -> String {
        if self.color {
            s.dimmed().to_string()
        } else {
            s.to_string()
        }
    }
    pub fn bold(&self, s: &str) -> String {
        if self.color {
            s.bold().to_string()
        } else {
            s.to_string()
        }
    }
    /// Print `note: …` on stderr (something was not exactly as asked, but the answer follows).
    pub fn note(&self, text: &str) {
        eprintln!("{} {text}", self.yellow("note:"));
    }
    /// Colour a status word the way people expect.
    pub fn status(&self, status: &str) -> String {
        match status {
            "succeeded" | "identical" | "cached" | "restored" => self.green(status),
            "failed" | "differs" => self.red(status),
            "interrupted" | "not_run" | "running" => self.yellow(status),
            _ => status.to_string(),
        }
    }
}

/// Write `text` to stdout. A closed pipe (`mlrun runs | head`) is not an error: the reader has
/// what it wanted, so the rest is dropped instead of panicking like `print!` would.
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
            Some(rest) => eprintln!("{}{rest}", style.yellow("warning:")),
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
}

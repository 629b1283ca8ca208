//! Diagnostics that point into a source file: `file:line:col`, the offending line and a caret
//! under the span, in the style of rustc and cargo. Rendering is plain text so it reads the same
//! in a terminal, a CI log and a snapshot test.

use std::ops::Range;
use std::path::Path;

/// At most this many characters of a source line are shown.
const WINDOW: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a source file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Byte range into the source; `None` when the finding is about the file as a whole.
    pub span: Option<Range<usize>>,
    /// Short text printed after the caret.
    pub label: String,
    pub hints: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            label: String::new(),
            hints: Vec::new(),
        }
    }
    pub fn warning(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(message, span)
        }
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Render against the file's source text.
    pub fn render(&self, file: &Path, source: &str) -> String {
        let head = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{head}: {}\n", self.message);
        match &self.span {
            Some(span) => {
                let (line_no, col, full_line) = locate(source, span.start);
                let gutter = line_no.to_string().len();
                let pad = " ".repeat(gutter);
                out += &format!("{pad}--> {}:{line_no}:{col}\n", file.display());
                out += &format!("{pad} |\n");
                // Long lines are shown as a window around the caret, so a minified or generated
                // file does not flood the terminal.
                let chars: Vec<char> = full_line.trim_end_matches('\r').chars().collect();
                let (from, prefix) = if col > WINDOW / 2 && chars.len() > WINDOW {
                    (col - 1 - WINDOW / 2, "…")
                } else {
                    (0, "")
                };
                let to = (from + WINDOW).min(chars.len());
                let suffix = if to < chars.len() { "…" } else { "" };
                let line: String = chars[from..to].iter().collect();
                out += &format!("{line_no} | {prefix}{line}{suffix}\n");
                let start_in_line = col - 1 - from + prefix.chars().count();
                let line_chars = line.chars().count() + prefix.chars().count();
                let span_chars = source
                    .get(span.clone())
                    .map(|s| s.lines().next().unwrap_or("").chars().count())
                    .unwrap_or(1)
                    .clamp(1, line_chars.saturating_sub(start_in_line).max(1));
                let shown: Vec<char> = prefix.chars().chain(line.chars()).collect();
                let indent: String = shown
                    .iter()
                    .take(start_in_line)
                    .map(|c| if *c == '\t' { '\t' } else { ' ' })
                    .collect();
                let carets = "^".repeat(span_chars);
                let label = if self.label.is_empty() {
                    String::new()
                } else {
                    format!(" {}", self.label)
                };
                out += &format!("{pad} | {indent}{carets}{label}\n");
            }
            None => out += &format!("  --> {}\n", file.display()),
        }
        for h in &self.hints {
            out += &format!("hint: {h}\n");
        }
        out
    }
}

/// 1-based line and column (in characters) of a byte offset, and the text of that line.
pub fn locate(source: &str, offset: usize) -> (usize, usize, &str) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[offset..]
        .find('\n')
        .map_or(source.len(), |i| offset + i);
    let line_no = source[..line_start].matches('\n').count() + 1;
    let col = source[line_start..offset].chars().count() + 1;
    (line_no, col, &source[line_start..line_end])
}

/// Render many diagnostics, errors last so the final thing on screen is what must be fixed.
pub fn render_all(diags: &[Diagnostic], file: &Path, source: &str) -> String {
    let mut sorted: Vec<&Diagnostic> = diags.iter().collect();
    sorted.sort_by_key(|d| d.severity == Severity::Error);
    sorted
        .iter()
        .map(|d| d.render(file, source))
        .collect::<Vec<_>>()
        .join("\n")
}

/// "did you mean" for a misspelt name, by edit distance.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(wrong, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_the_span() {
        let src = "[steps.a]\ncmd = 3\n";
        let start = src.find('3').unwrap();
        let d = Diagnostic::error("bad", Some(start..start + 1)).label("here");
        let text = d.render(Path::new("p.toml"), src);
        assert!(text.contains("--> p.toml:2:7"), "{text}");
        assert!(text.contains("2 | cmd = 3\n  |       ^ here"), "{text}");
    }

    #[test]
    fn long_lines_are_windowed_around_the_caret() {
        let src = format!("x = {}!{}\n", "a".repeat(500), "b".repeat(500));
        let at = src.find('!').unwrap();
        let text = Diagnostic::error("bad", Some(at..at + 1)).render(Path::new("p.toml"), &src);
        let shown = text.lines().nth(3).unwrap();
        assert!(shown.chars().count() < 120, "{shown}");
        let caret = text.lines().nth(4).unwrap();
        let col = caret.find('^').unwrap();
        assert_eq!(shown.chars().nth(col), Some('!'), "{text}");
    }

    #[test]
    fn suggestions_need_to_be_close() {
        assert_eq!(did_you_mean("trian", ["train", "prepare"]), Some("train"));
        assert_eq!(did_you_mean("zzz", ["train", "prepare"]), None);
    }
}

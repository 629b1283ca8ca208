//! Where things are in dvc.yaml's text: the line of a stage's key, for errors that name it
//! (the YAML parser keeps no positions for values).

use std::path::Path;

use crate::error::Error;

pub(super) struct Src<'a> {
    pub(super) shown: String,
    lines: Vec<&'a str>,
}

pub(super) fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

pub(super) fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Does this line start the mapping key `key` (possibly as `- key:` or quoted)?
pub(super) fn starts_key(line: &str, key: &str) -> bool {
    let t = line.trim_start();
    let t = t.strip_prefix("- ").unwrap_or(t).trim_start();
    for q in ["", "\"", "'"] {
        if let Some(rest) = t.strip_prefix(q).and_then(|r| r.strip_prefix(key))
            && let Some(rest) = rest.strip_prefix(q)
            && rest.trim_start().starts_with(':')
        {
            return true;
        }
    }
    false
}

impl<'a> Src<'a> {
    pub(super) fn new(text: &'a str, shown: &Path) -> Self {
        Src {
            shown: shown.display().to_string(),
            lines: text.lines().collect(),
        }
    }

    /// The block of a top-level key (`stages`, `vars`): its line range.
    pub(super) fn top_block(&self, key: &str) -> Option<(usize, usize)> {
        let start = self
            .lines
            .iter()
            .position(|l| indent(l) == 0 && starts_key(l, key))?;
        let end = (start + 1..self.lines.len())
            .find(|&i| !is_blank(self.lines[i]) && indent(self.lines[i]) == 0)
            .unwrap_or(self.lines.len());
        Some((start, end))
    }

    pub(super) fn stage_block(&self, stage: &str) -> Option<(usize, usize)> {
        let (s, e) = self.top_block("stages")?;
        let at = (s + 1..e).find(|&i| starts_key(self.lines[i], stage))?;
        let ind = indent(self.lines[at]);
        let end = (at + 1..e)
            .find(|&i| !is_blank(self.lines[i]) && indent(self.lines[i]) <= ind)
            .unwrap_or(e);
        Some((at, end))
    }

    /// 1-based line of `key` inside the stage (or the document), then of `needle` from there.
    pub(super) fn line(
        &self,
        stage: Option<&str>,
        key: &str,
        needle: Option<&str>,
    ) -> Option<usize> {
        let (start, end) = match stage {
            Some(s) => self.stage_block(s)?,
            None => match self.top_block(key.split('.').next().unwrap_or(key)) {
                Some(b) => b,
                None => (0, self.lines.len()),
            },
        };
        let mut from = start;
        for part in key.split('.') {
            if let Some(i) = (from..end).find(|&i| starts_key(self.lines[i], part)) {
                from = i;
            }
        }
        if let Some(n) = needle
            && let Some(i) = (from..end).find(|&i| self.lines[i].contains(n))
        {
            from = i;
        }
        Some(from + 1)
    }

    pub(super) fn error(
        &self,
        stage: Option<&str>,
        key: &str,
        needle: Option<&str>,
        msg: &str,
    ) -> Error {
        let at = match self.line(stage, key, needle) {
            Some(l) => format!("{}:{l}", self.shown),
            None => self.shown.clone(),
        };
        let place = match stage {
            Some(s) => format!("stage `{s}`, `{key}`"),
            None => format!("`{key}`"),
        };
        Error::invalid(format!("{at}: {place}: {msg}"))
    }
}

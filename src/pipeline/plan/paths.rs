//! Checks of declared paths: lexical normalisation against the project root, and whether a
//! path leads outside the project (by its text or through a symbolic link).

use std::path::{Component, Path, PathBuf};

use super::PathDecl;
use super::check::Checker;
use crate::pipeline::diag::Diagnostic;
use crate::pipeline::raw::{RawPipeline, Sp};

/// Lexically normalise a declared path. Returns the path and whether it stays inside the root.
pub(super) fn normalize(
    root: &Path,
    raw: &str,
) -> std::result::Result<(String, bool), &'static str> {
    if raw.trim().is_empty() {
        return Err("is empty");
    }
    if raw.contains('\0') {
        return Err("contains a NUL byte");
    }
    let p = Path::new(raw);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    match out.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => Err("is the project directory itself"),
        Ok(rel) => Ok((rel.to_string_lossy().into_owned(), true)),
        Err(_) => Ok((out.to_string_lossy().into_owned(), false)),
    }
}

/// `a` equals `b` or lies inside it.
pub fn within(a: &str, b: &str) -> bool {
    a == b || (a.len() > b.len() && a.starts_with(b) && a.as_bytes()[b.len()] == b'/')
}

impl Checker<'_> {
    pub(super) fn path(
        &mut self,
        what: &str,
        raw: &Sp<String>,
        allow_outside: bool,
    ) -> Option<PathDecl> {
        let dir = raw.value.ends_with('/');
        match normalize(
            self.root,
            raw.value.trim_end_matches('/').trim_end_matches("/."),
        ) {
            Ok((path, inside)) => {
                let through_link = if inside {
                    self.leads_outside(&path)
                } else {
                    None
                };
                if !inside || through_link.is_some() {
                    let msg = match &through_link {
                        Some(why) => format!(
                            "{what} `{}` is outside the project directory: {why}",
                            raw.value
                        ),
                        None => format!("{what} `{}` is outside the project directory", raw.value),
                    };
                    if allow_outside {
                        self.err(
                            Diagnostic::warning(msg, Some(raw.span.clone()))
                                .label("outside the project: not portable to another checkout"),
                        );
                    } else {
                        let hint = if through_link.is_some() {
                            "mlrun restores and replays only beneath the project directory; make the link a directory inside it, or set `allow-outside = true` in [pipeline]"
                        } else {
                            "use a path relative to the pipeline file's directory, or set `allow-outside = true` in [pipeline]"
                        };
                        self.err(
                            Diagnostic::error(msg, Some(raw.span.clone()))
                                .label("outside the project")
                                .hint(hint),
                        );
                        return None;
                    }
                }
                Some(PathDecl {
                    path,
                    dir,
                    store: true,
                })
            }
            Err(why) => {
                self.err(Diagnostic::error(
                    format!("{what} `{}` {why}", raw.value),
                    Some(raw.span.clone()),
                ));
                None
            }
        }
    }

    /// Why `rel` (normalised, inside the project by its text) really leads outside it through
    /// a symbolic link, if it does: the link and its target. Each directory is checked once.
    pub(super) fn leads_outside(&mut self, rel: &str) -> Option<String> {
        if self.recorded.is_some() {
            return None;
        }
        let (parent, _) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir_verdict = if parent.is_empty() {
            None
        } else if let Some(v) = self.escapes.get(parent) {
            v.clone()
        } else {
            let v = self.escape_reason(parent);
            self.escapes.insert(parent.to_string(), v.clone());
            v
        };
        if dir_verdict.is_some() {
            return dir_verdict;
        }
        // the last name: only a link needs the whole walk
        let is_link = std::fs::symlink_metadata(self.root.join(rel))
            .is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            self.escape_reason(rel)
        } else {
            None
        }
    }

    pub(super) fn escape_reason(&self, rel: &str) -> Option<String> {
        match crate::beneath::stays_beneath(self.root, Path::new(rel)) {
            Ok(()) => None,
            Err(crate::beneath::Problem::Link { link, target }) => Some(format!(
                "`{}` is a symbolic link to `{}`",
                link.strip_prefix(self.root).unwrap_or(&link).display(),
                target.display()
            )),
            Err(p) if p.is_escape() => Some(p.describe()),
            // unreadable, a loop: not an escape; running the step will say what is wrong
            Err(_) => None,
        }
    }

    pub(super) fn input_span(
        &self,
        raw: &RawPipeline,
        step: usize,
        path: &str,
    ) -> Option<std::ops::Range<usize>> {
        raw.steps[step]
            .inputs
            .iter()
            .find(|p| {
                normalize(self.root, p.value.trim_end_matches('/'))
                    .map(|(n, _)| n)
                    .as_deref()
                    == Ok(path)
            })
            .map(|p| p.span.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_keeps_paths_inside() {
        let root = Path::new("/p");
        assert_eq!(
            normalize(root, "a/./b/../c").unwrap(),
            ("a/c".to_string(), true)
        );
        assert!(!normalize(root, "../x").unwrap().1);
        assert_eq!(normalize(root, "/p/a").unwrap(), ("a".to_string(), true));
        assert!(normalize(root, ".").is_err());
    }

    #[test]
    fn within_respects_component_boundaries() {
        assert!(within("data/x.csv", "data"));
        assert!(!within("data2/x.csv", "data"));
        assert!(within("data", "data"));
    }
}

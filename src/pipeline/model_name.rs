//! Model names, aliases and version labels, as text. Names and aliases follow GTO's rule (so
//! `model export-tags` writes tags `gto` reads, and git accepts them as refs): lowercase
//! letters, digits, `-` and `/`, starting with a letter, ending with a letter or digit, at least
//! two characters, no `//`; an alias is not a version label nor a reserved word. A step's
//! `model` key is checked here before anything runs; the registry (`store::models`) and every
//! `model` command check here too.

use crate::error::{Error, Result};

/// Why `s` cannot be a model name or alias, or `None`.
fn name_problem(s: &str) -> Option<&'static str> {
    if s.len() < 2 {
        return Some("it must be at least 2 characters long");
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '/')))
    {
        return Some(if c.is_ascii_uppercase() {
            "it has an uppercase letter"
        } else {
            "it has a character other than lowercase letters, digits, `-` and `/`"
        });
    }
    if !s.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
        return Some("it must start with a letter");
    }
    if !s
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Some("it must end with a letter or a digit");
    }
    if s.contains("//") {
        return Some("it has `//`");
    }
    None
}

/// The nearest allowed spelling of `s`, if there is one.
fn suggestion(s: &str) -> Option<String> {
    let mut out = String::new();
    for c in s.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '/' {
            out.push(c);
        } else if !out.ends_with('-') && !out.ends_with('/') {
            out.push('-');
        }
    }
    while out.contains("//") {
        out = out.replace("//", "/");
    }
    let out = out
        .trim_start_matches(|c: char| !c.is_ascii_lowercase())
        .trim_end_matches(['-', '/'])
        .to_string();
    (out != s && name_problem(&out).is_none()).then_some(out)
}

const NAME_RULE: &str = "use lowercase letters, digits, `-` and `/` (the characters git tags and GTO accept): start with a letter, end with a letter or digit, at least 2 characters, e.g. `churn` or `team/churn-model`";

/// Check a model name; `Error::invalid` (exit 2) saying what is allowed.
pub fn check_name(name: &str) -> Result<()> {
    check("model name", name)
}

/// Check a name or an alias (`what` names which in the error) against the rule.
pub fn check(what: &str, s: &str) -> Result<()> {
    let Some(problem) = name_problem(s) else {
        return Ok(());
    };
    let mut e = Error::invalid(format!("{what} `{s}` is not allowed: {problem}")).hint(NAME_RULE);
    if let Some(better) = suggestion(s) {
        e = e.hint(format!("did you mean `{better}`?"));
    }
    Err(e)
}

/// Words an alias cannot be: they already mean something after `NAME@`.
const RESERVED_ALIASES: &[&str] = &["latest", "last", "latest-replay", "greatest"];

/// Check an alias: a name that is not a version label (`v2`) nor a reserved word.
pub fn check_alias(alias: &str) -> Result<()> {
    check("alias", alias)?;
    if parse_version(alias).is_ok() {
        return Err(Error::invalid(format!(
            "alias `{alias}` is not allowed: it reads as a version label"
        ))
        .hint("an alias is a word such as `production`, `staging` or `champion`"));
    }
    if RESERVED_ALIASES.contains(&alias) {
        return Err(Error::invalid(format!(
            "alias `{alias}` is not allowed: `{alias}` is reserved"
        ))
        .hint("an alias is a word such as `production`, `staging` or `champion`"));
    }
    Ok(())
}

/// A version label: as written (`v3`, `v1.2.0`), its canonical semver (`3.0.0`), its major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub label: String,
    pub semver: String,
    pub major: u64,
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn ident_ok(s: &str, numeric_no_leading_zero: bool) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && (!numeric_no_leading_zero
                    || !p.chars().all(|c| c.is_ascii_digit())
                    || number(p).is_some())
        })
}

/// `vN`, `N`, `vX.Y.Z[-pre][+build]` or `X.Y.Z[...]` (semantic versioning 2.0.0).
pub fn parse_version(s: &str) -> Result<Label> {
    let bad = || {
        Error::invalid(format!("`{s}` is not a version")).hint(
            "write a number (`3`, `v3`) or a semantic version (`1.2.0`, `v1.2.0`, `2.0.0-rc.1`)",
        )
    };
    let body = s.strip_prefix('v').unwrap_or(s);
    if let Some(n) = number(body) {
        return Ok(Label {
            label: format!("v{n}"),
            semver: format!("{n}.0.0"),
            major: n,
        });
    }
    let (core, build) = match body.split_once('+') {
        Some((c, b)) if ident_ok(b, false) => (c, Some(b)),
        Some(_) => return Err(bad()),
        None => (body, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) if ident_ok(p, true) => (c, Some(p)),
        Some(_) => return Err(bad()),
        None => (core, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let [major, minor, patch] = parts.as_slice() else {
        return Err(bad());
    };
    let (Some(major), Some(_), Some(_)) = (number(major), number(minor), number(patch)) else {
        return Err(bad());
    };
    let mut semver = core.to_string();
    if let Some(p) = pre {
        semver += &format!("-{p}");
    }
    if let Some(b) = build {
        semver += &format!("+{b}");
    }
    Ok(Label {
        label: format!("v{semver}"),
        semver,
        major,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_gto_and_git() {
        for ok in ["churn", "team/churn-model", "m2", "a1/b2"] {
            assert!(name_problem(ok).is_none(), "{ok}");
        }
        for bad in [
            "",
            "c",
            "Churn",
            "churn_model",
            "2churn",
            "churn-",
            "a//b",
            "churn@x",
            "a b",
            "a.b",
            "churn/",
        ] {
            assert!(name_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(suggestion("Churn_Model").as_deref(), Some("churn-model"));
        assert_eq!(suggestion("my model/").as_deref(), Some("my-model"));
    }

    #[test]
    fn versions_are_numbers_or_semver() {
        let l = parse_version("v3").unwrap();
        assert_eq!(
            (l.label.as_str(), l.semver.as_str(), l.major),
            ("v3", "3.0.0", 3)
        );
        assert_eq!(parse_version("3").unwrap().label, "v3");
        let l = parse_version("1.2.0-rc.1+b5").unwrap();
        assert_eq!(
            (l.label.as_str(), l.semver.as_str()),
            ("v1.2.0-rc.1+b5", "1.2.0-rc.1+b5")
        );
        for bad in [
            "v",
            "v01",
            "1.2",
            "1.2.x",
            "01.2.3",
            "1.2.3-",
            "1.2.3-01",
            "production",
        ] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
        assert!(check_alias("v2").is_err());
        assert!(check_alias("latest").is_err());
        assert!(check_alias("production").is_ok());
    }
}

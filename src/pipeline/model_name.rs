//! The rule for model names and aliases, GTO's (so `model export-tags` writes tags `gto` reads,
//! and git accepts them as refs): lowercase letters, digits, `-` and `/`, starting with a letter,
//! ending with a letter or digit, at least two characters, no `//`. A step's `model` key is
//! checked with it before anything runs; the model registry (`store::models`) and every `model`
//! command check with it too.

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
}

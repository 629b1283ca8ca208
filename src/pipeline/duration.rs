//! Durations as people write them (`90s`, `30m`, `1h 30m`), with errors that say what is wrong
//! in words rather than as a byte offset.

use std::time::Duration;

/// Parse a duration; the error names the part that is wrong (without examples: callers add the
/// ones that fit).
pub fn parse(text: &str) -> Result<Duration, String> {
    use humantime::DurationError as E;
    humantime::parse_duration(text).map_err(|e| {
        // the part of `text` from a byte offset, as far as the next space
        let at = |i: usize| -> String {
            text.get(i..)
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string()
        };
        match e {
            E::Empty => "it is empty".into(),
            E::NumberExpected(0) => format!("`{text}` does not start with a number"),
            E::NumberExpected(i) => format!("a number is missing before `{}`", at(i)),
            E::InvalidCharacter(i) => {
                let c = text.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
                format!("`{c}` cannot be part of a duration")
            }
            E::UnknownUnit { unit, value, .. } if unit.is_empty() => {
                format!("`{value}` has no unit: write `{value}s`, `{value}m` or `{value}h`")
            }
            E::UnknownUnit { unit, .. } => format!(
                "`{unit}` is not a unit of time (ms, s, m, h, d, w, or words like `sec`, `min`, `hours`)"
            ),
            E::NumberOverflow => format!("`{text}` is too long, or finer than a nanosecond"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_words() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse("x5").unwrap_err(),
            "`x5` does not start with a number"
        );
        assert_eq!(
            parse("5").unwrap_err(),
            "`5` has no unit: write `5s`, `5m` or `5h`"
        );
        assert!(
            parse("5 parsecs")
                .unwrap_err()
                .starts_with("`parsecs` is not a unit")
        );
        assert_eq!(parse("").unwrap_err(), "it is empty");
        assert_eq!(
            parse("5s,").unwrap_err(),
            "`,` cannot be part of a duration"
        );
        assert_eq!(
            parse("1h min").unwrap_err(),
            "a number is missing before `min`"
        );
    }
}

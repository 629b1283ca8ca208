//! The text forms of a runs filter's parts (`--since`, `--param`, `--metric`, `--sort` of
//! `mlrun runs`, and the same keys in the web view's URLs), parsed into `query::RunFilter`'s
//! values. Errors are plain text: clap and the web view each say them their own way.

use super::query::Cmp;

/// `--since`: `2d`, `3h`, `90m` ago, or a date / date-time in local time, or RFC 3339.
pub fn parse_since(s: &str) -> Result<i64, String> {
    let now = crate::store::record::now_ms();
    let t = s.trim();
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(now - d.as_millis() as i64);
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let tz = jiff::tz::TimeZone::system();
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>()
        && let Ok(z) = dt.to_zoned(tz.clone())
    {
        return Ok(z.timestamp().as_millisecond());
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>()
        && let Ok(z) = d.to_zoned(tz)
    {
        return Ok(z.timestamp().as_millisecond());
    }
    Err(format!(
        "`{s}` is neither a duration nor a date (examples: 2d, 3h, 90m, 2024-05-01, 2024-05-01T14:00)"
    ))
}

/// `--param key=value`: the value is read as in `mlrun run -p` (TOML, else a string).
pub fn parse_param(s: &str) -> Result<(String, serde_json::Value), String> {
    crate::pipeline::params::parse_override(s).map_err(|e| {
        e.hints
            .first()
            .map_or_else(|| e.message.clone(), |h| format!("{}; {h}", e.message))
    })
}

/// `--metric 'accuracy>0.9'`
pub fn parse_metric(s: &str) -> Result<(String, Cmp, f64), String> {
    let bad = || {
        format!(
            "`{s}` is not a metric comparison (examples: accuracy>0.9, loss<=0.2, epochs=10, f1!=0)"
        )
    };
    let i = s.find(['<', '>', '=', '!']).ok_or_else(bad)?;
    let (key, rest) = (s[..i].trim(), &s[i..]);
    let (cmp, value) = [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        ("!=", Cmp::Ne),
        ("==", Cmp::Eq),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
        ("=", Cmp::Eq),
    ]
    .iter()
    .find_map(|(op, c)| rest.strip_prefix(op).map(|v| (*c, v.trim())))
    .ok_or_else(bad)?;
    if key.is_empty() {
        return Err(bad());
    }
    let v: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` in `{s}` is not a number (metrics are numbers)"))?;
    Ok((key.to_string(), cmp, v))
}

/// `--sort METRIC` (highest first) or `METRIC:asc` / `METRIC:desc`.
pub fn parse_sort(s: &str) -> Result<(String, bool), String> {
    let (key, asc) = match s.rsplit_once(':') {
        Some((k, "asc")) => (k, true),
        Some((k, "desc")) => (k, false),
        Some((k, other)) => {
            return Err(format!(
                "`{other}` is not a sort order; write `{k}:asc` or `{k}:desc`"
            ));
        }
        None => (s, false),
    };
    if key.trim().is_empty() {
        return Err("name the metric to sort by, e.g. `--sort accuracy`".into());
    }
    Ok((key.trim().to_string(), asc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_comparisons() {
        assert_eq!(
            parse_metric("accuracy>0.9").unwrap(),
            ("accuracy".into(), Cmp::Gt, 0.9)
        );
        assert_eq!(
            parse_metric(" loss <= 2 ").unwrap(),
            ("loss".into(), Cmp::Le, 2.0)
        );
        assert_eq!(parse_metric("f1!=0").unwrap(), ("f1".into(), Cmp::Ne, 0.0));
        assert_eq!(parse_metric("n=10").unwrap(), ("n".into(), Cmp::Eq, 10.0));
        assert!(parse_metric("accuracy").is_err());
        assert!(parse_metric(">0.9").is_err());
        assert!(parse_metric("accuracy>high").is_err());
        assert!(parse_metric("accuracy=>1").is_err());
    }

    #[test]
    fn since_takes_durations_and_dates() {
        let now = crate::store::record::now_ms();
        let two_days = parse_since("2d").unwrap();
        assert!((now - two_days - 2 * 86_400_000).abs() < 5_000);
        assert!(parse_since("2024-05-01").unwrap() < now);
        assert!(parse_since("2024-05-01T14:00").unwrap() > parse_since("2024-05-01").unwrap());
        assert!(parse_since("yesterday-ish").is_err());
    }

    #[test]
    fn sort_orders() {
        assert_eq!(parse_sort("acc").unwrap(), ("acc".into(), false));
        assert_eq!(parse_sort("loss:asc").unwrap(), ("loss".into(), true));
        let e = parse_sort("loss:up").unwrap_err();
        assert!(e.contains("`loss:asc` or `loss:desc`"), "{e}");
    }
}

//! Timestamps in the store are milliseconds since the Unix epoch; people see local time.

pub fn local(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => ms.to_string(),
    }
}

/// RFC 3339 in UTC, for JSON consumers that prefer text to epoch numbers.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// A run name that names several runs, as people read it: the candidates with their start in
/// local time.
impl From<crate::store::query::ResolveError> for crate::error::Error {
    fn from(e: crate::store::query::ResolveError) -> Self {
        use crate::store::query::ResolveError;
        match e {
            ResolveError::Failed(e) => e,
            ResolveError::Removed(r) => r.into(),
            ResolveError::Ambiguous {
                target,
                matched,
                candidates,
            } => {
                let mut e = crate::error::Error::other(format!(
                    "run id `{target}` is ambiguous: {} runs start with it",
                    if matched > 10 {
                        "more than 10".to_string()
                    } else {
                        matched.to_string()
                    }
                ));
                for (id, pipeline, started) in &candidates {
                    e = e.cause(format!("{id}  {pipeline}  {}", local(*started)));
                }
                e.hint("type more characters of the id")
            }
        }
    }
}

/// A run id prefix that names a run removed with `mlrun rm`: who removed it and when, in local
/// time.
impl From<crate::store::query::RemovedRun> for crate::error::Error {
    fn from(r: crate::store::query::RemovedRun) -> Self {
        crate::error::Error::other(format!(
            "run {} ({}, {}) was removed by {} on {} (`mlrun rm`)",
            r.shown_id,
            r.pipeline,
            local(r.started_at),
            r.removed_by,
            local(r.removed_at)
        ))
        .hint("list runs with `mlrun runs`")
    }
}

//! A run's and a step's status: enums from the runner to the store, each bound as one column
//! text; a text that is no status is an error when read, never taken as `failed`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Running,
    Succeeded,
    Failed,
    /// stopped after its `timeout`
    TimedOut,
    Interrupted,
    NotRun,
    /// skipped: an earlier execution with the same cache key produced what is on disk
    Cached,
    /// skipped: the earlier execution's outputs were restored from the object store
    Restored,
}

/// The column text of a status (`runs.status`, `step_execs.status`), the one place it is
/// spelt: statements bind the enum, and reading a text no status has is an error, never a
/// guess.
macro_rules! status_column {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every status, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }

            /// The status a column's text names; `None` for a text that is none.
            pub fn from_column(text: &str) -> Option<$ty> {
                match text {
                    $($text => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl rusqlite::types::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $ty {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<$ty> {
                let text = v.as_str()?;
                $ty::from_column(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!(concat!("`{}` is no ", stringify!($ty)), text).into(),
                    )
                })
            }
        }
    };
}

status_column!(RunStatus {
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Interrupted => "interrupted",
});

status_column!(StepStatus {
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Interrupted => "interrupted",
    NotRun => "not_run",
    TimedOut => "timed_out",
    Cached => "cached",
    Restored => "restored",
});

/// The `--json` form of a status is its column text.
impl serde::Serialize for RunStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl serde::Serialize for StepStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl StepStatus {
    /// Succeeded, by running or by reusing an earlier execution: dependants may run.
    pub fn ok(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Cached | StepStatus::Restored
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn every_status_round_trips_through_its_column() {
        let conn = Connection::open_in_memory().unwrap();
        for &s in StepStatus::ALL {
            let back: StepStatus = conn.query_row("SELECT ?1", [s], |r| r.get(0)).unwrap();
            assert_eq!(back, s);
            assert_eq!(StepStatus::from_column(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for &s in RunStatus::ALL {
            let back: RunStatus = conn.query_row("SELECT ?1", [s], |r| r.get(0)).unwrap();
            assert_eq!(back, s);
        }
        let texts: std::collections::BTreeSet<&str> =
            StepStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(texts.len(), StepStatus::ALL.len(), "one text per status");
    }

    #[test]
    fn a_text_no_status_has_is_an_error_not_a_failure() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(StepStatus::from_column("Failed"), None);
        assert_eq!(StepStatus::from_column("skipped"), None);
        let read = conn.query_row("SELECT 'skipped'", [], |r| r.get::<_, StepStatus>(0));
        let err = read.unwrap_err().to_string();
        assert!(err.contains("`skipped` is no StepStatus"), "{err}");
    }
}

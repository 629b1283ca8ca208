//! One error type for the whole tool: a kind (which picks the exit code), a message, its causes
//! and hints. Printed as `error: …`, `  caused by: …` (one line per cause), `hint: …`.
//!
//! The causes are kept as error values (an `io::Error`, a `rusqlite::Error`, another `Error`, or
//! a sentence when there is no error value), so `source()` leads to what really failed. Hints are
//! data too: a caller adds them with `hint` (as jj's command errors carry theirs) instead of
//! writing them into the message, and they are rendered last, each on its own `hint:` line.
//!
//! Diagnostics that point into pipeline.toml are pre-rendered (file:line:col, the line, a caret)
//! into the message by `pipeline::diag`.

use std::fmt;

/// Documented exit codes (README "Exit codes"). A failed step passes its own code through instead.
pub mod exit {
    pub const OK: i32 = 0;
    /// mlrun itself failed: store, I/O, git, an unknown run id, …
    pub const FAILURE: i32 = 1;
    /// the pipeline or the command line is invalid; nothing was run
    pub const INVALID: i32 = 2;
    /// a step ran past its `timeout` (as `timeout(1)` reports it)
    pub const TIMED_OUT: i32 = 124;
    /// another mlrun holds this pipeline's lock (EX_TEMPFAIL): try again later or `--wait-lock`
    pub const LOCKED: i32 = 75;
    /// interrupted by SIGINT (128 + 2)
    pub const INTERRUPTED: i32 = 130;
    /// terminated by SIGTERM (128 + 15)
    pub const TERMINATED: i32 = 143;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// pipeline.toml or command-line input is wrong: exit 2
    Invalid,
    /// the lineage store cannot be opened or written: exit 1
    Store,
    /// anything else mlrun could not do: exit 1
    Other,
    /// another mlrun is running the same pipeline: exit 75
    Locked,
}

/// A cause: any error value, or a sentence (`String` and `&str` convert to one).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// why, outermost first: each rendered as a `caused by:` line; the first is `source()`
    pub causes: Vec<Cause>,
    /// what the user can do, each rendered as a `hint:` line after the causes
    pub hints: Vec<String>,
    /// Set when the message is a multi-line rendered diagnostic (already starts with `error:`).
    pub rendered: bool,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            causes: Vec::new(),
            hints: Vec::new(),
            rendered: false,
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Kind::Invalid, message)
    }
    pub fn store(message: impl Into<String>) -> Self {
        Self::new(Kind::Store, message)
    }
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(Kind::Other, message)
    }
    /// A diagnostic already rendered by `pipeline::diag` (one or many, each with its caret).
    pub fn rendered(text: String) -> Self {
        Error {
            rendered: true,
            ..Self::new(Kind::Invalid, text)
        }
    }
    /// Add a cause: an error value (kept as it is, for `source()`), or a sentence.
    pub fn cause(mut self, cause: impl Into<Cause>) -> Self {
        self.causes.push(cause.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
    /// Add several hints (those of another error, say), in order.
    pub fn hints(mut self, hints: impl IntoIterator<Item = String>) -> Self {
        self.hints.extend(hints);
        self
    }
    /// The message and the causes on one line, `: `-separated, without `error:` or the hints
    /// (for a step's failure reason, a diagnostic, a note in the store).
    pub fn one_line(&self) -> String {
        let mut out = self.message.clone();
        for c in &self.causes {
            out.push_str(": ");
            out.push_str(&c.to_string());
        }
        out
    }
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Invalid => exit::INVALID,
            Kind::Store | Kind::Other => exit::FAILURE,
            Kind::Locked => exit::LOCKED,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rendered {
            f.write_str(self.message.trim_end())?;
        } else {
            write!(f, "error: {}", self.message)?;
        }
        for c in &self.causes {
            write!(f, "\n  caused by: {c}")?;
        }
        for h in &self.hints {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.causes
            .first()
            .map(|c| c.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        ) {
            // SQLite refuses the statement and rolls its transaction back: nothing was written
            return Error::store(
                "the lineage store is damaged; SQLite stopped this operation and wrote nothing for it",
            )
                .cause(e)
                .hint("`mlrun fsck` shows the damage; put the database back from a backup, or move it aside to start a new store (the stored objects are kept)");
        }
        Error::store("lineage store query failed").cause(e)
    }
}

/// Attach a message to a lower-level error, keeping it as the cause.
pub trait Context<T> {
    fn context(self, kind: Kind, message: impl FnOnce() -> String) -> Result<T>;
    fn other_ctx(self, message: impl FnOnce() -> String) -> Result<T>
    where
        Self: Sized,
    {
        self.context(Kind::Other, message)
    }
    fn store_ctx(self, message: impl FnOnce() -> String) -> Result<T>
    where
        Self: Sized,
    {
        self.context(Kind::Store, message)
    }
}

impl<T, E: Into<Cause>> Context<T> for std::result::Result<T, E> {
    fn context(self, kind: Kind, message: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(kind, message()).cause(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn causes_are_kept_as_error_values() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no access");
        let e = Error::store("cannot write the lineage store").cause(io);
        let source = e.source().expect("a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the io::Error itself");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn an_error_as_cause_keeps_its_own_chain() {
        let inner = Error::other("inner").cause(std::fmt::Error);
        let outer = Error::other("outer").cause(inner);
        let inner = outer.source().unwrap().downcast_ref::<Error>().unwrap();
        assert_eq!(inner.message, "inner");
        assert!(inner.source().unwrap().is::<std::fmt::Error>());
        assert!(Error::other("alone").source().is_none());
    }

    #[test]
    fn rendering_puts_causes_then_hints_on_their_own_lines() {
        let e = Error::invalid("bad thing")
            .cause("a sentence")
            .cause(std::io::Error::other("an io error"))
            .hint("do this")
            .hints(["or that".to_string()]);
        assert_eq!(
            e.to_string(),
            "error: bad thing\n  caused by: a sentence\n  caused by: an io error\nhint: do this\nhint: or that"
        );
        assert_eq!(e.one_line(), "bad thing: a sentence: an io error");
        assert_eq!(e.exit_code(), exit::INVALID);
    }

    #[test]
    fn context_keeps_the_lower_error() {
        let r: std::result::Result<(), std::io::Error> = Err(std::io::Error::other("disk"));
        let e = r.other_ctx(|| "cannot save".into()).unwrap_err();
        assert_eq!(e.to_string(), "error: cannot save\n  caused by: disk");
        assert!(e.source().unwrap().is::<std::io::Error>());
    }
}

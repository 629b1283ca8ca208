//! One error type for the whole tool: a kind (which picks the exit code), a message, a chain of
//! causes and hints. Printed as `error: …`, `  caused by: …`, `hint: …`.
//!
//! Diagnostics that point into pipeline.toml are pre-rendered (file:line:col, the line, a caret)
//! into the message by `pipeline::diag`, so this type stays a plain value.

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

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub causes: Vec<String>,
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
    pub fn cause(mut self, cause: impl fmt::Display) -> Self {
        self.causes.push(cause.to_string());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
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

impl std::error::Error for Error {}

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

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, kind: Kind, message: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(kind, message()).cause(e))
    }
}

//! Integration tests: the real binary, in temporary git repositories, against real files, real
//! subprocesses and the real SQLite store.

mod common;
mod execution;
mod export;
mod history;
mod query;
mod record;
mod validate;

//! Integration tests: the real binary, in temporary git repositories, against real files, real
//! subprocesses and the real SQLite store.

mod common;
mod execution;
mod incremental;
mod query;
mod record;
mod trace;
mod validate;

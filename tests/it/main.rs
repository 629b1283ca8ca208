//! Integration tests: the real binary, in temporary git repositories, against real files, real
//! subprocesses and the real SQLite store.

mod common;
mod execution;
mod export;
mod history;
mod hostile;
mod incremental;
mod logs;
mod orphans;
mod query;
mod record;
mod reliability;
mod replay;
mod trace;
mod validate;

//! Integration tests: the real binary, in temporary git repositories, against real files, real
//! subprocesses and the real SQLite store.

mod common;
mod execution;
mod export;
mod history;
mod hostile;
mod incremental;
mod models;
mod orphans;
mod paths;
mod query;
mod record;
mod reliability;
mod replay;
mod replay_history;
mod reports;
mod store;
mod secrets;
mod trace;
mod validate;

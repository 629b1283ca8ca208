//! Integration tests: the real binary, in temporary git repositories, against real files, real
//! subprocesses and the real SQLite store.

mod common;
mod daily;
mod execution;
mod export;
mod history;
mod hostile;
mod import;
mod incremental;
mod interactions;
mod logs;
mod models;
mod orphans;
mod packages;
mod paths;
mod query;
mod record;
mod reliability;
mod replay;
mod replay_history;
mod reports;
mod secrets;
mod store;
mod trace;
mod truth;
mod ui;
mod validate;

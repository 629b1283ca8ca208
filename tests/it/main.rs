//! Integration tests: the real binary, in temporary git repositories, against real files, real
//! subprocesses and the real SQLite store.

mod checkout;
mod common;
mod daily;
mod execution;
mod explain;
mod export;
mod help;
mod history;
mod hostile;
mod import;
mod incremental;
mod interactions;
mod live;
mod logs;
mod models;
mod orphans;
mod packages;
mod paths;
mod pinned;
mod query;
mod record;
mod reliability;
mod replay;
mod replay_history;
mod reports;
mod secrets;
mod slurm;
mod store;
mod structure;
mod sweep;
mod targets;
mod trace;
mod truth;
mod ui;
mod validate;

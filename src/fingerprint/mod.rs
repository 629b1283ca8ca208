//! Fingerprints taken around every step: file and directory hashes (`hash`, reading files through
//! `reader`), git state (`git`),
//! the machine and interpreters (`system`), the packages installed for them (`packages`) and
//! environment variables with secrets redacted (`env`). This module only observes; it never
//! changes the project.

pub mod cache;
pub mod env;
pub mod git;
pub mod hash;
pub mod key;
pub mod metrics;
pub mod packages;
pub mod reader;
pub mod system;

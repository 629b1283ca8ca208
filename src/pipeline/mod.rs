//! pipeline.toml → `Plan`: parse (`raw`), check and resolve (`plan`), with `diag` rendering
//! findings and `params` handling parameters.

pub mod diag;
pub mod params;
pub mod plan;
pub mod raw;

pub use plan::{Cmd, LoadOptions, PathDecl, Plan, Step, TraceMode, load};

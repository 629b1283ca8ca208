//! pipeline.toml → `Plan`: parse (`raw`), check and resolve (`plan`), with `diag` rendering
//! findings and `params` handling parameters.

pub mod diag;
pub mod duration;
pub mod lockfiles;
pub mod model_name;
pub mod params;
pub mod plan;
pub mod raw;

pub use plan::{Cmd, LoadOptions, PathDecl, Plan, Rewrite, Step, TraceMode, load};

/// `pipeline.toml` in the current directory, else in the nearest parent that has one, up to the
/// root of the git repository (never above it), so `mlrun` works from a project's subdirectory.
/// Other paths are taken as given.
pub fn locate(given: &std::path::Path) -> std::path::PathBuf {
    if given != std::path::Path::new("pipeline.toml") || given.exists() {
        return given.to_path_buf();
    }
    let Ok(cwd) = std::env::current_dir() else {
        return given.to_path_buf();
    };
    for dir in cwd.ancestors() {
        let candidate = dir.join("pipeline.toml");
        if candidate.is_file() {
            return candidate;
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    given.to_path_buf()
}

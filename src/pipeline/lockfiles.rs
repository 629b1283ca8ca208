//! `[pipeline] lockfiles` patterns: which files under the project a glob names. Validation warns
//! about a pattern that names nothing; a run hashes what it names (`fingerprint::system`).

use std::path::{Path, PathBuf};

/// The files under `root` a `[pipeline] lockfiles` glob matches (`*` within a name, `**` across
/// directories), without entering `.git` or `.mlrun` or following links to directories.
pub fn expand(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, globset::Error> {
    let pattern = pattern.trim_start_matches("./");
    let glob = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()?
        .compile_matcher();
    // walk from the part before the first wildcard, only as deep as the pattern can reach
    let parts: Vec<&str> = pattern.split('/').collect();
    let literal = parts
        .iter()
        .take_while(|p| !p.contains(['*', '?', '[', '{']))
        .count()
        .min(parts.len() - 1);
    let base: PathBuf = parts[..literal].iter().collect();
    let depth = if pattern.contains("**") {
        usize::MAX
    } else {
        parts.len() - literal
    };
    let mut out = Vec::new();
    let mut stack = vec![(root.join(&base), base.clone(), 0usize)];
    while let Some((dir, rel, d)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let r = rel.join(&name);
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                if d + 1 < depth && name != ".git" && name != ".mlrun" {
                    stack.push((e.path(), r, d + 1));
                }
            } else if glob.is_match(&r) {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

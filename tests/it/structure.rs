//! The shape of the code itself: checks that keep the module map of ARCHITECTURE.md true.

use std::process::Command;

/// `scripts/modgraph.py --check` finds no import cycle between the top-level modules of `src/`
/// (a new `use crate::X` that closes one fails here, naming the file and line of each edge).
#[test]
fn no_module_import_cycles() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(format!("{root}/scripts/modgraph.py"))
        .arg("--check")
        .output()
        .expect("python3 runs scripts/modgraph.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("no import cycle"), "{text}");
}

//! `--help` of mlrun and of every subcommand, pinned word for word: the command-line
//! definitions live beside their handlers, and moving them must not change what users read.

use crate::common::Env;

const COMMANDS: &[&[&str]] = &[
    &[],
    &["run"],
    &["runs"],
    &["show"],
    &["lineage"],
    &["diff"],
    &["compare"],
    &["note"],
    &["init"],
    &["completions"],
    &["export"],
    &["status"],
    &["replay"],
    &["check"],
    &["checkout"],
    &["rm"],
    &["ui"],
    &["gc"],
    &["fsck"],
    &["import"],
    &["model"],
    &["model", "register"],
    &["model", "alias"],
    &["model", "list"],
    &["model", "show"],
    &["model", "export-tags"],
    &["model", "import-tags"],
];

#[test]
fn help_of_every_command() {
    let env = Env::plain();
    for words in COMMANDS {
        let mut args = words.to_vec();
        args.push("--help");
        let out = env.mlrun(&args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert_eq!(out.stderr, "", "{args:?}");
        let name = if words.is_empty() {
            "help_mlrun".to_string()
        } else {
            format!("help_{}", words.join("_").replace('-', "_"))
        };
        insta::assert_snapshot!(name, out.stdout);
    }
}

/// `-h` is the short form: the same text without the long descriptions.
#[test]
fn short_help_of_run() {
    let env = Env::plain();
    let out = env.mlrun(&["run", "-h"]);
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!(out.stdout);
}

//! Property tests over pipeline parsing and validation: whatever the bytes, `from_source` returns
//! a plan or an error; it never panics. Documents are built from TOML fragments that exercise
//! every key with right and wrong types, so the walker and the checker see realistic input, and
//! from raw bytes for the parser. `PROPTEST_CASES=100000 cargo test --release --test
//! fuzz_pipeline` runs a long campaign (see README).

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn check(source: String) {
    let root = std::env::temp_dir();
    let file: PathBuf = root.join("fuzz-pipeline.toml");
    let _ = mlrun::pipeline::plan::from_source(source, file, Path::new("pipeline.toml"), &[]);
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"x\"".to_string()),
        Just("\"\"".to_string()),
        Just("\"echo {params.a}\"".to_string()),
        Just("\"{params.\"".to_string()),
        Just("[\"a\", \"b/\"]".to_string()),
        Just("[\"../x\", \"/abs\", \"./a/../b\"]".to_string()),
        Just("[{ path = \"o\", store = false }]".to_string()),
        Just("[{ store = 1 }]".to_string()),
        Just("[]".to_string()),
        Just("[[[]]]".to_string()),
        Just("{ A = \"1\", B = 2 }".to_string()),
        Just("1".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("1e999".to_string()),
        Just("true".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("\"30m\"".to_string()),
        Just("\"\\u00e9\\n\"".to_string()),
        "[a-z*./{}_ -]{0,12}".prop_map(|s| format!("{s:?}")),
    ]
}

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "cmd",
        "inputs",
        "outputs",
        "params",
        "metrics",
        "env",
        "cwd",
        "after",
        "timeout",
        "retries",
        "retry-delay",
        "name",
        "params-file",
        "redact",
        "keep",
        "allow-outside",
        "store",
        "path",
        "a",
        "train.lr",
        "\"quoted key\"",
    ])
}

fn table() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[pipeline]".to_string()),
        Just("[params]".to_string()),
        Just("[params.train]".to_string()),
        Just("[env]".to_string()),
        Just("[steps]".to_string()),
        "[a-c]{1,2}".prop_map(|n| format!("[steps.{n}]")),
        Just("[[steps]]".to_string()),
        Just("[steps.a.env]".to_string()),
    ]
}

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (table(), prop::collection::vec((key(), value()), 0..6)),
        0..6,
    )
    .prop_map(|tables| {
        let mut doc = String::new();
        for (header, entries) in tables {
            doc += &header;
            doc.push('\n');
            for (k, v) in entries {
                doc += &format!("{k} = {v}\n");
            }
        }
        doc
    })
}

proptest! {
    // PROPTEST_CASES (read by the default config) sets a longer campaign; 2,000 per test keeps
    // `cargo test` quick.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn structured_documents_never_panic(doc in document()) {
        check(doc);
    }

    #[test]
    fn arbitrary_text_never_panics(doc in "\\PC{0,300}") {
        check(doc);
    }

    #[test]
    fn mutated_valid_documents_never_panic(cut in 0usize..400, insert in "[\\[\\]{}\"'=\\n.a-z0-9]{0,8}") {
        let valid = "[pipeline]\nname = \"p\"\n[params]\nlr = 0.1\n[steps.a]\ncmd = \"echo {params.lr} > o\"\noutputs = [\"o\"]\nparams = [\"lr\"]\n[steps.b]\ncmd = [\"cat\", \"o\"]\ninputs = [\"o\"]\nafter = [\"a\"]\ntimeout = \"1m\"\n";
        let at = cut.min(valid.len());
        let at = (0..=at).rev().find(|i| valid.is_char_boundary(*i)).unwrap_or(0);
        check(format!("{}{}{}", &valid[..at], insert, &valid[at..]));
    }
}

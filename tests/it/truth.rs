//! The record tells the whole truth: metric values are exact.

use proptest::strategy::{Strategy, ValueTree};
use serde_json::Value;

use crate::common::{Env, Out, one};

fn project(pipeline: &str, files: &[(&str, &str)]) -> Env {
    let env = Env::git();
    for (path, content) in files {
        env.write(path, content);
    }
    env.write("pipeline.toml", pipeline);
    env.commit("fixture");
    env
}

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

// --- 12.2: metric values are stored exactly -----------------------------------------------

#[test]
fn metric_values_round_trip_exactly_through_the_store_json_filters_diff_and_export() {
    let env = project(
        r#"
[params]
auc = "0.9114273274303613"

[steps.evaluate]
cmd = "printf '{\"roc_auc\": %s, \"n_test\": 1500, \"loss\": NaN}' {params.auc} > metrics.json && echo 'peak=inf' >> \"$MLRUN_METRICS\""
outputs = ["metrics.json"]
metrics = ["metrics.json"]
"#,
        &[],
    );
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    // the text rounds for people
    assert!(out.all().contains("loss=nan"), "{out:?}");
    assert!(out.all().contains("n_test=1500"), "{out:?}");

    let show = env.mlrun(&["show", "--json"]);
    assert!(
        show.stdout.contains("\"roc_auc\": 0.9114273274303613"),
        "{}",
        show.stdout
    );
    let j = json(&show);
    let m = &j["steps"][0]["metrics"];
    assert_eq!(
        m["roc_auc"].as_f64().unwrap().to_bits(),
        0.9114273274303613_f64.to_bits()
    );
    assert_eq!(m["n_test"], 1500, "integers stay integers: {m}");
    assert_eq!(m["loss"], "nan", "{m}");
    assert_eq!(m["peak"], "inf", "{m}");
    let db = env.db();
    let stored: f64 = one(&db, "SELECT value FROM metrics WHERE key = 'roc_auc'");
    assert_eq!(stored.to_bits(), 0.9114273274303613_f64.to_bits());

    let found = env.mlrun(&["runs", "--json", "--metric", "roc_auc>=0.9114273274303613"]);
    assert_eq!(json(&found).as_array().unwrap().len(), 1, "{found:?}");
    let none = env.mlrun(&["runs", "--json", "--metric", "roc_auc>0.9114273274303613"]);
    assert_eq!(json(&none).as_array().unwrap().len(), 0, "{none:?}");

    let export = env.mlrun(&["export", "latest", "--format", "openlineage"]);
    assert!(
        export.stdout.contains("\"roc_auc\":0.9114273274303613"),
        "{export:?}"
    );
    let prov = env.mlrun(&["export", "latest", "--format", "prov"]);
    assert!(prov.stdout.contains("0.9114273274303613"), "{prov:?}");

    // one ulp more: a different value, which diff reports exactly (and shows in full)
    let first: String = one(&db, "SELECT id FROM runs");
    let out = env.mlrun(&["run", "-p", "auc=\"0.9114273274303614\""]);
    assert_eq!(out.code, 0, "{out:?}");
    let diff = env.mlrun(&["diff", &first, "latest", "--json"]);
    let d = json(&diff);
    let changed = d["metrics"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "nan and inf are unchanged: {d}");
    assert_eq!(changed[0]["a"].as_f64().unwrap(), 0.9114273274303613);
    assert_eq!(changed[0]["b"].as_f64().unwrap(), 0.9114273274303614);
    let text = env.mlrun(&["diff", &first, "latest"]);
    assert!(
        text.stdout.contains("0.9114273274303613") && text.stdout.contains("0.9114273274303614"),
        "{text:?}"
    );
}

/// Random doubles (any bit pattern proptest makes, infinities and NaN included), written by
/// Python (`repr`, `json.dump`) as JSON, YAML, TOML and `$MLRUN_METRICS` lines by one real
/// step, come back bit for bit from `mlrun show --json` and `mlrun runs --json`.
#[test]
fn random_doubles_written_by_python_round_trip_bit_for_bit() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let values: Vec<f64> = proptest::collection::vec(proptest::num::f64::ANY, 250)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let mut values = values;
    values.extend([0.9114273274303613, -0.0, 5e-324, f64::MAX, 1e16, 1500.0]);
    let hex: String = values
        .iter()
        .map(|v| format!("{:016x}\n", v.to_bits()))
        .collect();
    let env = project(
        r#"
[steps.write]
cmd = "python3 write.py"
inputs = ["write.py", "bits.txt"]
outputs = ["m.json", "m.yaml", "m.toml"]
metrics = ["m.json", "m.yaml", "m.toml"]
"#,
        &[
            ("bits.txt", &hex),
            (
                "write.py",
                r#"import json, math, os, struct
vals = [struct.unpack('>d', bytes.fromhex(h))[0] for h in open('bits.txt').read().split()]
json.dump({'j%d' % i: v for i, v in enumerate(vals)}, open('m.json', 'w'))
def text(v, nan, inf):
    if math.isnan(v): return nan
    if math.isinf(v): return inf if v > 0 else '-' + inf
    return repr(v)
with open('m.yaml', 'w') as f:
    for i, v in enumerate(vals): f.write('y%d: %s\n' % (i, text(v, '.nan', '.inf')))
with open('m.toml', 'w') as f:
    for i, v in enumerate(vals): f.write('t%d = %s\n' % (i, text(v, 'nan', 'inf')))
with open(os.environ['MLRUN_METRICS'], 'a') as f:
    for i, v in enumerate(vals): f.write('l%d=%r\n' % (i, v))
"#,
            ),
        ],
    );
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains("warning"), "{out:?}");
    let show = json(&env.mlrun(&["show", "--json"]));
    let runs = json(&env.mlrun(&["runs", "--json"]));
    for (metrics, what) in [
        (&show["steps"][0]["metrics"], "show --json"),
        (&runs[0]["metrics"], "runs --json"),
    ] {
        for (i, v) in values.iter().enumerate() {
            for prefix in ["j", "y", "t", "l"] {
                let key = format!("{prefix}{i}");
                let got = &metrics[&key];
                let back = match got {
                    Value::String(s) if s == "nan" => f64::NAN,
                    Value::String(s) if s == "inf" => f64::INFINITY,
                    Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
                    Value::Number(n) => n.as_f64().unwrap(),
                    other => panic!("{what}: {key} = {other}"),
                };
                assert!(
                    back.to_bits() == v.to_bits() || (back.is_nan() && v.is_nan()),
                    "{what}: {key}: wrote {v:e} ({:016x}), read back {back:e} ({:016x})",
                    v.to_bits(),
                    back.to_bits()
                );
            }
        }
    }
}

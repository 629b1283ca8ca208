//! `mlrun export`: every OpenLineage event validates against the official 2-0-2 schemas (local
//! copies in tests/fixtures/openlineage, no network), and the PROV-JSON document is well-formed
//! with every relation naming declared ids.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use crate::history::{History, history};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openlineage")
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Resolves `https://openlineage.io/spec/.../NAME.json` to the local copy of NAME.json.
struct Local;

impl jsonschema::Retrieve for Local {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let path = fixtures().join(&name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("no local copy of {}: {e}", uri.as_str()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_retriever(Local)
        .should_validate_formats(true)
        .build(schema)
        .expect("schema compiles")
}

/// The event schema, and for each facet name the validator of the file that defines it.
pub(crate) struct Schemas {
    pub(crate) event: jsonschema::Validator,
    facets: BTreeMap<String, jsonschema::Validator>,
}

pub(crate) fn schemas() -> Schemas {
    let mut event_schema = load("OpenLineage.json");
    // validate against the RunEvent definition
    event_schema["$ref"] = Value::String("#/$defs/RunEvent".into());
    let mut facets = BTreeMap::new();
    for f in std::fs::read_dir(fixtures()).unwrap() {
        let f = f.unwrap().file_name().to_string_lossy().into_owned();
        if !f.ends_with("Facet.json") {
            continue;
        }
        let schema = load(&f);
        for name in schema["properties"].as_object().unwrap().keys() {
            facets.insert(name.clone(), validator(&schema));
        }
    }
    Schemas {
        event: validator(&event_schema),
        facets,
    }
}

pub(crate) fn check_facets(s: &Schemas, facets: &Value, where_: &str, errors: &mut Vec<String>) {
    let Some(map) = facets.as_object() else {
        return;
    };
    for (name, body) in map {
        let wrapped = serde_json::json!({ name.clone(): body });
        match s.facets.get(name) {
            Some(v) => {
                for e in v.iter_errors(&wrapped) {
                    errors.push(format!(
                        "{where_} facet {name}: {e} at {}",
                        e.instance_path()
                    ));
                }
            }
            None => assert!(
                name.starts_with("mlrun_"),
                "{where_}: facet {name} is neither standard (with a local schema) nor mlrun's own"
            ),
        }
    }
}

// The schema validators are built once and each export of the same history (a run, its gap,
// `-o`) is validated and its links followed against it, one function per check.
#[test]
fn openlineage_events_are_schema_valid_and_linked() {
    let h = history();
    let s = schemas();
    // the validators do reject a broken event (the test can fail)
    let broken = serde_json::json!({"eventType": "DONE", "eventTime": "yesterday", "producer": "x", "schemaURL": "y", "run": {"runId": "nope"}, "job": {"namespace": "n"}});
    assert!(!s.event.is_valid(&broken));

    for (i, run) in h.runs.iter().enumerate() {
        let out = h
            .env
            .mlrun(&["export", &run[..12], "--format", "openlineage"]);
        assert_eq!(out.code, 0, "{out:?}");
        let events: Vec<Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON event"))
            .collect();
        events_are_valid(&s, i, &events);
        events_are_linked(run, i, &events, &out.stdout);
    }
    versions_params_and_metrics_are_where_they_belong(&h);
    the_gap_is_exported_and_o_writes_a_file(&h);
}

/// Every event valid against the schemas, with its facets.
fn events_are_valid(s: &Schemas, i: usize, events: &[Value]) {
    let mut errors = Vec::new();
    for (n, e) in events.iter().enumerate() {
        for err in s.event.iter_errors(e) {
            errors.push(format!("event {n}: {err} at {}", err.instance_path()));
        }
        check_facets(
            s,
            &e["run"]["facets"],
            &format!("event {n} run"),
            &mut errors,
        );
        check_facets(
            s,
            &e["job"]["facets"],
            &format!("event {n} job"),
            &mut errors,
        );
        for d in e["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(e["outputs"].as_array().into_iter().flatten())
        {
            check_facets(s, &d["facets"], &format!("event {n} dataset"), &mut errors);
        }
    }
    assert!(errors.is_empty(), "run {i}:\n{}", errors.join("\n"));
}

/// START and an end per step, plus the pipeline run's own pair, linked by `parent`.
fn events_are_linked(run: &str, i: usize, events: &[Value], stdout: &str) {
    let pipeline_uuid = uuid::Uuid::parse_str(run).unwrap().hyphenated().to_string();
    let steps = if i == 0 { 1 } else { 2 };
    assert_eq!(events.len(), 2 + 2 * steps, "{}", stdout);
    assert_eq!(events[0]["eventType"], "START");
    assert_eq!(events[0]["run"]["runId"], pipeline_uuid.as_str());
    assert_eq!(events.last().unwrap()["eventType"], "COMPLETE");
    let mut per_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events[1..events.len() - 1] {
        let id = e["run"]["runId"].as_str().unwrap().to_string();
        per_run
            .entry(id)
            .or_default()
            .push(e["eventType"].as_str().unwrap().to_string());
        assert_eq!(
            e["run"]["facets"]["parent"]["run"]["runId"],
            pipeline_uuid.as_str()
        );
        assert_eq!(e["run"]["facets"]["processing_engine"]["name"], "mlrun");
        let loc = &e["job"]["facets"]["sourceCodeLocation"];
        assert_eq!(loc["type"], "git");
        assert!(loc["version"].as_str().unwrap().len() == 40, "{loc}");
    }
    assert_eq!(per_run.len(), steps);
    for kinds in per_run.values() {
        assert_eq!(kinds, &["START", "COMPLETE"]);
    }
}

/// Content hashes are the dataset versions; params and metrics are where they belong.
fn versions_params_and_metrics_are_where_they_belong(h: &History) {
    let out = h
        .env
        .mlrun(&["export", &h.runs[1][..12], "--format", "openlineage"]);
    let events: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let fit_done = events
        .iter()
        .find(|e| e["eventType"] == "COMPLETE" && e["job"]["name"] == "train.fit")
        .expect("fit completes");
    let input = fit_done["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"].as_str().unwrap().ends_with("/data/clean.csv"))
        .unwrap();
    assert_eq!(input["namespace"], "file");
    assert_eq!(
        input["facets"]["version"]["datasetVersion"],
        h.env.sha256sum("data/clean.csv")
    );
    let params = &fit_done["run"]["facets"]["executionParameters"]["parameters"];
    assert!(
        params
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"key": "lr", "value": "0.1"})),
        "{params}"
    );
    assert_eq!(
        fit_done["run"]["facets"]["mlrun_metrics"]["metrics"]["loss"],
        0.4
    );
    assert_eq!(
        fit_done["job"]["facets"]["sourceCodeLocation"]["version"],
        h.env.git_cmd(&["rev-parse", "HEAD~1"]).as_str()
    );
}

/// The gap is carried into the export; `-o` writes a file.
fn the_gap_is_exported_and_o_writes_a_file(h: &History) {
    let out = h
        .env
        .mlrun(&["export", &h.runs[0][..12], "--format", "openlineage"]);
    assert!(
        out.stdout
            .contains("\"gap\":\"data version unknown: produced outside mlrun\""),
        "{out:?}"
    );
    // -o writes a file
    let file = h.env.path("events.jsonl");
    let out = h.env.mlrun(&[
        "export",
        "latest",
        "--format",
        "openlineage",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 6);
}

const RELATIONS: &[(&str, &[&str])] = &[
    ("used", &["prov:activity", "prov:entity"]),
    ("wasGeneratedBy", &["prov:entity", "prov:activity"]),
    (
        "wasDerivedFrom",
        &["prov:generatedEntity", "prov:usedEntity", "prov:activity"],
    ),
    ("wasAssociatedWith", &["prov:activity", "prov:agent"]),
    ("actedOnBehalfOf", &["prov:delegate", "prov:responsible"]),
];

/// Checks the PROV-JSON structure; returns the problems found.
pub(crate) fn prov_problems(doc: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let known: BTreeSet<&str> = [
        "prefix",
        "entity",
        "activity",
        "agent",
        "bundle",
        "used",
        "wasGeneratedBy",
        "wasDerivedFrom",
        "wasAssociatedWith",
        "actedOnBehalfOf",
    ]
    .into();
    let prefixes: BTreeSet<String> = doc["prefix"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let qualified = |id: &str, p: &mut Vec<String>| {
        if id.starts_with("_:") {
            return;
        }
        match id.split_once(':') {
            Some((pre, _)) if prefixes.contains(pre) || pre == "prov" => {}
            _ => p.push(format!("`{id}` does not use a declared prefix")),
        }
    };
    for k in doc.as_object().unwrap().keys() {
        if !known.contains(k.as_str()) {
            p.push(format!("unknown top-level key {k}"));
        }
    }
    let bundles = doc["bundle"].as_object().cloned().unwrap_or_default();
    for (bid, b) in &bundles {
        qualified(bid, &mut p);
        if doc["entity"][bid]["prov:type"]["$"] != "prov:Bundle" {
            p.push(format!(
                "bundle {bid} is not declared as a prov:Bundle entity"
            ));
        }
        let mut declared: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for kind in ["entity", "activity", "agent"] {
            let ids: BTreeSet<String> = b[kind]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for id in &ids {
                qualified(id, &mut p);
            }
            declared.insert(kind, ids);
        }
        let all: BTreeSet<&String> = declared.values().flatten().collect();
        for (rel, fields) in RELATIONS {
            for (rid, r) in b[*rel].as_object().into_iter().flatten() {
                qualified(rid, &mut p);
                for f in *fields {
                    let Some(target) = r[*f].as_str() else {
                        p.push(format!("{rel} {rid} lacks {f}"));
                        continue;
                    };
                    let kind = if f.contains("ntity") {
                        "entity"
                    } else if f.contains("ctivity") {
                        "activity"
                    } else {
                        "agent"
                    };
                    if !declared[kind].contains(target) {
                        p.push(format!(
                            "{rel} {rid}: {f} `{target}` is not a declared {kind}"
                        ));
                    }
                }
            }
        }
        for (k, _) in b.as_object().unwrap() {
            if !known.contains(k.as_str()) || k == "bundle" {
                p.push(format!("unknown key {k} in bundle {bid}"));
            }
        }
        if all.is_empty() {
            p.push(format!("bundle {bid} is empty"));
        }
    }
    if bundles.len() != 1 {
        p.push(format!("{} bundles, expected one per run", bundles.len()));
    }
    p
}

#[test]
fn prov_json_is_well_formed() {
    let h = history();
    let out = h
        .env
        .mlrun(&["export", &h.runs[1][..12], "--format", "prov"]);
    assert_eq!(out.code, 0, "{out:?}");
    let doc: Value = serde_json::from_str(&out.stdout).expect("PROV-JSON is JSON");
    let problems = prov_problems(&doc);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let b = doc["bundle"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    // two executions, their versions, both agents; fit's model was derived from its inputs
    assert_eq!(b["activity"].as_object().unwrap().len(), 2);
    let agents: Vec<&Value> = b["agent"].as_object().unwrap().values().collect();
    let types: BTreeSet<&str> = agents
        .iter()
        .map(|a| a["prov:type"]["$"].as_str().unwrap())
        .collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["prov:Person", "prov:SoftwareAgent"]
    );
    let model = format!(
        "mlrun:av/model@{}",
        b["entity"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, e)| e["mlrun:path"] == "model")
            .unwrap()
            .1["mlrun:sha256"]
            .as_str()
            .unwrap()
    );
    let derived_from: BTreeSet<&str> = b["wasDerivedFrom"]
        .as_object()
        .unwrap()
        .values()
        .filter(|d| d["prov:generatedEntity"] == model.as_str())
        .map(|d| d["prov:usedEntity"].as_str().unwrap())
        .collect();
    assert_eq!(
        derived_from.len(),
        2,
        "data/clean.csv and fit.sh: {derived_from:?}"
    );
    assert!(b["wasGeneratedBy"].as_object().unwrap().len() >= 2);
    assert!(b["used"].as_object().unwrap().len() >= 5);

    // the checker itself catches a dangling reference (the test can fail)
    let mut broken = doc.clone();
    let bid = broken["bundle"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    broken["bundle"][&bid]["used"]["_:x"] =
        serde_json::json!({"prov:activity": "mlrun:exec/none", "prov:entity": "mlrun:av/none"});
    assert_eq!(prov_problems(&broken).len(), 2);

    // the prep run's gap is marked on its entity
    let out = h
        .env
        .mlrun(&["export", &h.runs[0][..12], "--format", "prov"]);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(prov_problems(&doc).is_empty());
    let b = doc["bundle"].as_object().unwrap().values().next().unwrap();
    let raw = b["entity"]
        .as_object()
        .unwrap()
        .values()
        .find(|e| e["mlrun:path"] == "raw/input.csv")
        .unwrap();
    assert_eq!(
        raw["mlrun:gap"],
        "data version unknown: produced outside mlrun"
    );
}

//! OpenLineage 2-0-2 RunEvents for one recorded run, as JSON lines.
//!
//! The pipeline run is the parent job (`PIPELINE`); each step execution is a child job
//! (`PIPELINE.STEP`) with a START event and a COMPLETE / FAIL / ABORT event, linked to the
//! pipeline run by the `parent` facet. Datasets are files (`namespace` `file`, `name` the absolute
//! path) whose `version.datasetVersion` is the content hash. Params are `executionParameters`;
//! metrics and mlrun's own facts are custom facets (`mlrun_metrics`, `mlrun_execution`,
//! `mlrun_packages`, `mlrun_artifact`). Every event must validate against the official schemas (tests do that).

use serde_json::{Value, json};

use crate::pipeline::params;
use crate::report::time;
use crate::store::lineage::GAP_REASON;

use crate::store::lineage::{ExportRun, Io};
use crate::store::query::StepInfo;

pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const PARENT_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
const ENGINE_SCHEMA: &str = "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";
const PARAMS_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-0/ExecutionParametersRunFacet.json#/$defs/ExecutionParametersRunFacet";
const ERROR_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const LOCATION_SCHEMA: &str = "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet";
const SOURCE_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-0-1/SourceCodeJobFacet.json#/$defs/SourceCodeJobFacet";
const JOB_TYPE_SCHEMA: &str =
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const VERSION_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet";
/// mlrun's own facets have no published schema; their URIs name them (README "Export").
const MLRUN_FACET_SCHEMA: &str = "urn:mlrun:openlineage:facets:1-0-0";

pub const JOB_NAMESPACE: &str = "mlrun";

/// `_producer` of every event and facet: this mlrun, by version.
pub fn producer() -> String {
    format!("urn:mlrun:{}", env!("CARGO_PKG_VERSION"))
}

fn facet(schema: &str, body: Value) -> Value {
    let mut v = json!({ "_producer": producer(), "_schemaURL": schema });
    if let (Some(o), Value::Object(b)) = (v.as_object_mut(), body) {
        o.extend(b);
    }
    v
}

/// A run id as OpenLineage wants it: a hyphenated UUID.
pub fn uuid_of_run(id: &str) -> String {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string())
        .unwrap_or_else(|_| id.to_string())
}

/// Step executions have no UUID in the store: derive a stable, time-ordered one (a UUIDv7
/// with the step's start time and bits of a hash of run, step and attempt), so exporting twice
/// gives the same ids.
pub fn uuid_of_exec(run_id: &str, step: &str, attempt: i64, started_at: Option<i64>) -> String {
    let digest =
        crate::fingerprint::hash::sha256_bytes(format!("{run_id}\0{step}\0{attempt}").as_bytes());
    let mut bytes = [0u8; 10];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&digest[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    let ms = started_at.unwrap_or(0).max(0) as u64;
    uuid::Builder::from_unix_timestamp_millis(ms, &bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

fn end_event_type(status: &str) -> Option<&'static str> {
    match status {
        "succeeded" | "cached" | "restored" => Some("COMPLETE"),
        "failed" | "timed_out" => Some("FAIL"),
        "interrupted" => Some("ABORT"),
        _ => None,
    }
}

fn source_location(r: &ExportRun) -> Option<Value> {
    let g = r.detail.git.as_ref()?;
    let commit = g.commit.as_ref()?;
    // `url` must be a URI: a remote like `git@host:x.git` is not one, a local path becomes file://
    let remote_uri = g.remote_url.as_ref().filter(|u| u.contains("://")).cloned();
    let url = remote_uri
        .clone()
        .or_else(|| r.workdir.as_ref().map(|w| format!("file://{w}")))?;
    let mut body = json!({ "type": "git", "url": url, "version": commit });
    if let Some(u) = &g.remote_url {
        body["repoUrl"] = json!(u);
    }
    if let Some(b) = &g.branch {
        body["branch"] = json!(b);
    }
    if let Some(p) = &r.pipeline_path_in_repo {
        body["path"] = json!(p);
    }
    Some(facet(LOCATION_SCHEMA, body))
}

fn dataset(r: &ExportRun, io: &Io, output: bool) -> Value {
    let v = &io.version;
    let name = format!("{}/{}", r.detail.root.trim_end_matches('/'), v.path);
    let mut artifact = json!({
        "path": v.path,
        "type": v.kind,
        "size": v.size,
        "files": v.nfiles,
    });
    if let Some(o) = &io.origin {
        artifact["origin"] = json!(o);
    }
    if io.gap {
        artifact["gap"] = json!(GAP_REASON);
    }
    let mut d = json!({
        "namespace": "file",
        "name": name,
        "facets": {
            "version": facet(VERSION_SCHEMA, json!({ "datasetVersion": v.hash })),
            "mlrun_artifact": facet(MLRUN_FACET_SCHEMA, artifact),
        }
    });
    if output {
        d["outputFacets"] = json!({});
    } else {
        d["inputFacets"] = json!({});
    }
    d
}

fn params_facet(p: &std::collections::BTreeMap<String, Value>) -> Value {
    let list: Vec<Value> = p
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": params::render(v) }))
        .collect();
    facet(PARAMS_SCHEMA, json!({ "parameters": list }))
}

fn engine_facet() -> Value {
    facet(
        ENGINE_SCHEMA,
        json!({
            "name": "mlrun",
            "version": env!("CARGO_PKG_VERSION"),
            "openlineageAdapterVersion": env!("CARGO_PKG_VERSION"),
        }),
    )
}

fn job_type(kind: &str) -> Value {
    facet(
        JOB_TYPE_SCHEMA,
        json!({ "processingType": "BATCH", "integration": "MLRUN", "jobType": kind }),
    )
}

/// `mlrun_packages`: each interpreter the step ran with (program, executable, prefix, kind)
/// and its installed distributions with exact versions.
fn packages_facet(r: &ExportRun, s: &StepInfo) -> Option<Value> {
    let env = s
        .env_id
        .as_ref()
        .and_then(|e| r.detail.environments.get(e))?;
    if env.packages.is_empty() {
        return None;
    }
    let interpreters: Vec<Value> = env
        .packages
        .iter()
        .map(|(prog, e)| {
            json!({
                "program": prog,
                "executable": e.env.executable,
                "realPath": e.env.real_path,
                "prefix": e.env.prefix,
                "kind": e.env.kind,
                "version": e.env.version,
                "packagesHash": e.env.hash,
                "packages": e.packages.iter().map(|p| json!({
                    "name": p.name, "version": p.version, "source": p.source,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Some(facet(
        MLRUN_FACET_SCHEMA,
        json!({ "interpreters": interpreters }),
    ))
}

/// Every event of the run, in time order: the pipeline's START, each step's START and end, the
/// pipeline's end (when it has ended).
pub fn events(r: &ExportRun) -> Vec<Value> {
    events_in(r, JOB_NAMESPACE)
}

/// The events of a run with its jobs in namespace `ns` (a team's OpenLineage namespace).
pub fn events_in(r: &ExportRun, ns: &str) -> Vec<Value> {
    let mut out = vec![pipeline_start(r, ns)];
    for s in &r.detail.steps {
        out.extend(step_events(r, s, ns));
    }
    out.extend(pipeline_end(r, &r.detail.steps, ns));
    // time order; a step's START before its end even within the same millisecond
    sort_by_time(&mut out);
    out
}

/// Events in time order (stable: a step's START stays before its end within one millisecond).
pub fn sort_by_time(events: &mut [Value]) {
    events.sort_by_key(|e| {
        e["eventTime"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_millisecond())
    });
}

/// The pipeline run's START.
pub fn pipeline_start(r: &ExportRun, ns: &str) -> Value {
    let d = &r.detail;
    let run_uuid = uuid_of_run(&d.id);
    let mut pipeline_job_facets = json!({ "jobType": job_type("DAG") });
    if let Some(loc) = source_location(r) {
        pipeline_job_facets["sourceCodeLocation"] = loc;
    }
    let pipeline_run_facets = json!({
        "processing_engine": engine_facet(),
        "executionParameters": params_facet(&d.params),
        "mlrun_run": facet(MLRUN_FACET_SCHEMA, json!({
            "id": d.id,
            "status": d.status,
            "hostname": d.hostname,
            "user": d.user,
            "pipelineFile": d.pipeline_file,
        })),
    });
    json!({
        "eventType": "START",
        "eventTime": time::rfc3339(d.started_at),
        "producer": producer(),
        "schemaURL": SCHEMA_URL,
        "run": { "runId": run_uuid, "facets": pipeline_run_facets },
        "job": { "namespace": ns, "name": d.pipeline, "facets": pipeline_job_facets },
        "inputs": [],
        "outputs": [],
    })
}

/// One step execution's START, and its end once it has ended; nothing for a step that never
/// started. Its inputs and outputs are those `r.io` holds for it.
pub fn step_events(r: &ExportRun, s: &StepInfo, ns: &str) -> Vec<Value> {
    let d = &r.detail;
    let Some(started) = s.started_at else {
        return Vec::new(); // never started (not_run): no OpenLineage run
    };
    let run_uuid = uuid_of_run(&d.id);
    let parent = facet(
        PARENT_SCHEMA,
        json!({
            "run": { "runId": run_uuid },
            "job": { "namespace": ns, "name": d.pipeline },
            "root": {
                "run": { "runId": run_uuid },
                "job": { "namespace": ns, "name": d.pipeline },
            },
        }),
    );
    let mut out = Vec::new();
    let id = uuid_of_exec(&d.id, &s.name, s.attempt, s.started_at);
    let (inputs, outputs) = r.io.get(&s.exec_id).cloned().unwrap_or_default();
    let ins: Vec<Value> = inputs.iter().map(|i| dataset(r, i, false)).collect();
    let outs: Vec<Value> = outputs.iter().map(|o| dataset(r, o, true)).collect();
    let mut job_facets = json!({
        "jobType": job_type("TASK"),
        "sourceCode": facet(SOURCE_SCHEMA, json!({ "language": "shell", "sourceCode": s.cmd })),
    });
    if let Some(loc) = source_location(r) {
        job_facets["sourceCodeLocation"] = loc;
    }
    let job = json!({
        "namespace": ns,
        "name": format!("{}.{}", d.pipeline, s.name),
        "facets": job_facets,
    });
    let mut run_facets = json!({
        "parent": parent,
        "processing_engine": engine_facet(),
        "executionParameters": params_facet(&s.params),
    });
    out.push(json!({
        "eventType": "START",
        "eventTime": time::rfc3339(started),
        "producer": producer(),
        "schemaURL": SCHEMA_URL,
        "run": { "runId": id, "facets": run_facets.clone() },
        "job": job.clone(),
        "inputs": ins,
        "outputs": [],
    }));
    let Some(kind) = end_event_type(&s.status) else {
        return out;
    };
    let exact: serde_json::Map<String, serde_json::Value> = s
        .metrics
        .iter()
        .map(|(k, v)| (k.clone(), crate::fingerprint::metrics::to_json(*v)))
        .collect();
    run_facets["mlrun_metrics"] = facet(MLRUN_FACET_SCHEMA, json!({ "metrics": exact }));
    let mut execution = json!({
        "status": s.status,
        "attempt": s.attempt,
        "cwd": s.cwd,
        "argv": s.argv,
    });
    if let Some(c) = s.exit_code {
        execution["exitCode"] = json!(c);
    }
    if let Some(sig) = s.signal {
        execution["signal"] = json!(sig);
    }
    if let Some(rid) = r.reused.get(&s.exec_id) {
        execution["reusedRunId"] = json!(uuid_of_run(rid));
    }
    run_facets["mlrun_execution"] = facet(MLRUN_FACET_SCHEMA, execution);
    if let Some(p) = packages_facet(r, s) {
        run_facets["mlrun_packages"] = p;
    }
    if kind != "COMPLETE" {
        let message = s.error.clone().unwrap_or_else(|| match s.exit_code {
            Some(c) => format!("exited with code {c}"),
            None => s.status.clone(),
        });
        run_facets["errorMessage"] = facet(
            ERROR_SCHEMA,
            json!({ "message": message, "programmingLanguage": "shell" }),
        );
    }
    out.push(json!({
        "eventType": kind,
        "eventTime": time::rfc3339(s.ended_at.unwrap_or(started)),
        "producer": producer(),
        "schemaURL": SCHEMA_URL,
        "run": { "runId": id, "facets": run_facets },
        "job": job,
        "inputs": ins,
        "outputs": outs,
    }));
    out
}

/// A step's execution has ended (its end event can be made).
pub fn step_ended(s: &StepInfo) -> bool {
    s.started_at.is_some() && end_event_type(&s.status).is_some()
}

/// The pipeline run's end once it has ended, with the metrics of `steps` (all of the run's,
/// in time order: a later step's value of a metric wins), or `None` while it runs.
pub fn pipeline_end(r: &ExportRun, steps: &[StepInfo], ns: &str) -> Option<Value> {
    let d = &r.detail;
    let kind = end_event_type(&d.status)?;
    let mut metrics = serde_json::Map::new();
    for s in steps {
        for (k, v) in &s.metrics {
            metrics.insert(
                format!("{}.{k}", s.name),
                crate::fingerprint::metrics::to_json(*v),
            );
        }
    }
    let mut facets = json!({
        "processing_engine": engine_facet(),
        "mlrun_metrics": facet(MLRUN_FACET_SCHEMA, json!({ "metrics": metrics })),
    });
    if kind != "COMPLETE" {
        facets["errorMessage"] = facet(
            ERROR_SCHEMA,
            json!({
                "message": format!("run {}{}", d.status,
                    d.exit_code.map_or_else(String::new, |c| format!(" (exit {c})"))),
                "programmingLanguage": "shell",
            }),
        );
    }
    Some(json!({
        "eventType": kind,
        "eventTime": time::rfc3339(d.ended_at.unwrap_or(d.started_at)),
        "producer": producer(),
        "schemaURL": SCHEMA_URL,
        "run": { "runId": uuid_of_run(&d.id), "facets": facets },
        "job": { "namespace": ns, "name": d.pipeline },
        "inputs": [],
        "outputs": [],
    }))
}

/// What identifies an event for delivery: its type and OpenLineage run id (a job run has at most
/// one event of each type).
pub fn event_key(e: &Value) -> String {
    format!(
        "{}:{}",
        e["eventType"].as_str().unwrap_or(""),
        e["run"]["runId"].as_str().unwrap_or("")
    )
}

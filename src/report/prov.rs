//! W3C PROV-JSON for one recorded run: a document holding one bundle per run.
//!
//! Entities are artifact versions (`mlrun:av/PATH@HASH`), activities are step executions
//! (`mlrun:exec/RUN/STEP/ATTEMPT`), agents are mlrun itself (a software agent) and the user who
//! ran it (a person, on whose behalf mlrun acted). Relations: `used`, `wasGeneratedBy`,
//! `wasDerivedFrom` (each output from each input of the same execution), `wasAssociatedWith`
//! (each execution with both agents), `actedOnBehalfOf`. Every relation names only ids declared
//! in the same bundle, and every id uses a declared prefix (tests check both). An activity's
//! attributes carry its interpreters (`mlrun:interpreter/PROGRAM`, `mlrun:prefix/PROGRAM`) and
//! each installed package's version (`mlrun:package/NAME`).

use serde_json::{Map, Value, json};

use crate::pipeline::params;
use crate::report::time;
use crate::store::lineage::{ExportRun, GAP_REASON, Io};
use crate::store::query::{RunDetail, StepInfo};

pub const PREFIX_MLRUN: &str = "urn:mlrun:";

fn entity_id(io: &Io) -> String {
    format!("mlrun:av/{}@{}", io.version.path, io.version.hash)
}

fn typed(value: impl Into<String>, ty: &str) -> Value {
    json!({ "$": value.into(), "type": ty })
}

/// The PROV-JSON document for `r`.
pub fn document(r: &ExportRun) -> Value {
    let d = &r.detail;
    let mut p = Prov::new(d);
    for s in &d.steps {
        let Some(started) = s.started_at else {
            continue; // never started: no activity
        };
        p.step(r, s, started);
    }
    let bundle_id = format!("mlrun:run/{}", d.id);
    let agent = p.agent.clone();
    json!({
        "prefix": { "mlrun": PREFIX_MLRUN },
        "entity": { bundle_id.clone(): run_entity(d) },
        "agent": agent,
        "bundle": { bundle_id: p.bundle() },
    })
}

/// The run's bundle as an entity of its own: pipeline, status, start, commit.
fn run_entity(d: &RunDetail) -> Value {
    let mut run_entity = json!({
        "prov:type": typed("prov:Bundle", "prov:QUALIFIED_NAME"),
        "prov:label": format!("mlrun run {} of {}", d.id, d.pipeline),
        "mlrun:pipeline": d.pipeline,
        "mlrun:status": d.status,
        "mlrun:startedAt": time::rfc3339(d.started_at),
    });
    if let Some(g) = &d.git
        && let Some(c) = &g.commit
    {
        run_entity["mlrun:commit"] = json!(c);
        run_entity["mlrun:dirty"] = json!(g.dirty);
    }
    run_entity
}

/// The bundle's records, kind by kind, as they are gathered step by step.
struct Prov {
    mlrun_agent: String,
    user_agent: String,
    entity: Map<String, Value>,
    activity: Map<String, Value>,
    agent: Map<String, Value>,
    used: Map<String, Value>,
    generated: Map<String, Value>,
    derived: Map<String, Value>,
    associated: Map<String, Value>,
    behalf: Map<String, Value>,
    /// the last blank node's number (one sequence for every kind)
    n: usize,
}

impl Prov {
    /// mlrun, acting on behalf of the user who ran it.
    fn new(d: &RunDetail) -> Prov {
        let mlrun_agent = format!("mlrun:agent/mlrun-{}", env!("CARGO_PKG_VERSION"));
        let user_agent = format!("mlrun:agent/user/{}@{}", d.user, d.hostname);
        let mut agent = Map::new();
        let mut behalf = Map::new();
        agent.insert(
            mlrun_agent.clone(),
            json!({
                "prov:type": typed("prov:SoftwareAgent", "prov:QUALIFIED_NAME"),
                "prov:label": format!("mlrun {}", env!("CARGO_PKG_VERSION")),
            }),
        );
        agent.insert(
            user_agent.clone(),
            json!({
                "prov:type": typed("prov:Person", "prov:QUALIFIED_NAME"),
                "prov:label": d.user,
                "mlrun:hostname": d.hostname,
            }),
        );
        behalf.insert(
            "_:behalf".into(),
            json!({ "prov:delegate": mlrun_agent, "prov:responsible": user_agent }),
        );
        Prov {
            mlrun_agent,
            user_agent,
            entity: Map::new(),
            activity: Map::new(),
            agent,
            used: Map::new(),
            generated: Map::new(),
            derived: Map::new(),
            associated: Map::new(),
            behalf,
            n: 0,
        }
    }

    fn blank(&mut self, kind: &str) -> String {
        self.n += 1;
        format!("_:{kind}{}", self.n)
    }

    /// A step that started: its activity, its agents, its inputs and outputs as entities, what
    /// it used, generated and derived.
    fn step(&mut self, r: &ExportRun, s: &StepInfo, started: i64) {
        let act = format!("mlrun:exec/{}/{}/{}", r.detail.id, s.name, s.attempt);
        self.activity.insert(act.clone(), activity(r, s, started));
        for ag in [self.mlrun_agent.clone(), self.user_agent.clone()] {
            let id = self.blank("assoc");
            self.associated
                .insert(id, json!({ "prov:activity": act, "prov:agent": ag }));
        }
        let (inputs, outputs) = r.io.get(&s.exec_id).cloned().unwrap_or_default();
        for io in inputs.iter().chain(&outputs) {
            self.add_entity(io);
        }
        for io in &inputs {
            let mut u = json!({ "prov:activity": act, "prov:entity": entity_id(io), "prov:time": time::rfc3339(started) });
            if let Some(o) = &io.origin {
                u["mlrun:origin"] = json!(o);
            }
            let id = self.blank("used");
            self.used.insert(id, u);
        }
        for io in &outputs {
            let mut g = json!({ "prov:entity": entity_id(io), "prov:activity": act });
            if let Some(e) = s.ended_at {
                g["prov:time"] = json!(time::rfc3339(e));
            }
            let id = self.blank("gen");
            self.generated.insert(id, g);
            for i in &inputs {
                let id = self.blank("der");
                self.derived.insert(
                    id,
                    json!({
                        "prov:generatedEntity": entity_id(io),
                        "prov:usedEntity": entity_id(i),
                        "prov:activity": act,
                    }),
                );
            }
        }
    }

    /// An artifact version: the first origin seen is kept, but never a gap mark lost.
    fn add_entity(&mut self, io: &Io) {
        let id = entity_id(io);
        let v = &io.version;
        let mut e = json!({
            "prov:type": typed(if v.kind == "dir" { "mlrun:Directory" } else { "mlrun:File" }, "prov:QUALIFIED_NAME"),
            "prov:label": v.path,
            "mlrun:path": v.path,
            "mlrun:sha256": v.hash,
            "mlrun:size": v.size,
            "mlrun:files": v.nfiles,
        });
        if io.gap {
            e["mlrun:gap"] = json!(GAP_REASON);
        }
        match self.entity.get_mut(&id) {
            Some(existing) if io.gap => existing["mlrun:gap"] = json!(GAP_REASON),
            Some(_) => {}
            None => {
                self.entity.insert(id, e);
            }
        }
    }

    /// The bundle: each kind of record that has any.
    fn bundle(self) -> Map<String, Value> {
        let mut bundle = Map::new();
        bundle.insert("prefix".into(), json!({ "mlrun": PREFIX_MLRUN }));
        for (k, v) in [
            ("entity", self.entity),
            ("activity", self.activity),
            ("agent", self.agent),
            ("used", self.used),
            ("wasGeneratedBy", self.generated),
            ("wasDerivedFrom", self.derived),
            ("wasAssociatedWith", self.associated),
            ("actedOnBehalfOf", self.behalf),
        ] {
            if !v.is_empty() {
                bundle.insert(k.into(), Value::Object(v));
            }
        }
        bundle
    }
}

/// A step's activity: times, status, command, params, metrics, where it was reused from, and
/// its interpreters' environments and packages, one attribute each.
fn activity(r: &ExportRun, s: &StepInfo, started: i64) -> Value {
    let d = &r.detail;
    let mut a = json!({
        "prov:startTime": time::rfc3339(started),
        "prov:label": format!("{} ({})", s.name, s.status),
        "mlrun:step": s.name,
        "mlrun:status": s.status,
        "mlrun:command": s.cmd,
    });
    if let Some(e) = s.ended_at {
        a["prov:endTime"] = json!(time::rfc3339(e));
    }
    if let Some(c) = s.exit_code {
        a["mlrun:exitCode"] = json!(c);
    }
    for (k, v) in &s.params {
        a[format!("mlrun:param/{k}")] = json!(params::render(v));
    }
    for (k, v) in &s.metrics {
        a[format!("mlrun:metric/{k}")] = crate::fingerprint::metrics::to_json(*v);
    }
    if let Some(rid) = r.reused.get(&s.exec_id) {
        a["mlrun:reusedRun"] = json!(rid);
    }
    if let Some(env) = s.env_id.as_ref().and_then(|e| d.environments.get(e)) {
        for (prog, e) in &env.packages {
            a[format!("mlrun:interpreter/{prog}")] = json!(e.env.executable);
            a[format!("mlrun:prefix/{prog}")] = json!(format!("{} {}", e.env.kind, e.env.prefix));
            a[format!("mlrun:packagesHash/{prog}")] = json!(e.env.hash);
            for p in &e.packages {
                a[format!("mlrun:package/{}", p.name)] = json!(p.version);
            }
        }
    }
    a
}

//! The plan as it is recorded and shown: every secret in it replaced by its keyed marker.
//!
//! Secret params (by their key, `redact`/`keep`, or a credential-looking value), secret `env`
//! values, and secrets inside commands (those values wherever they were substituted, credential
//! patterns, `NAME=value` with a secret NAME, the value after `--password`) become
//! `<redacted:HASH>`. The recorded plan, the step's command and argv, its params, its cache key
//! parts, the live `▸` line, `show`, `status` and the exports all read this form; only the
//! process that runs gets the real values. A marker changes when its secret does, so the cache
//! key still notices a new password.

use std::collections::BTreeMap;

use crate::fingerprint::env::Redactor;
use crate::pipeline::params;
use crate::pipeline::plan::Cmd;
use crate::pipeline::{Plan, Step};

pub struct Recorded {
    /// the plan with its secrets replaced by markers
    pub plan: Plan,
    /// (name, value) of the secrets declared in pipeline.toml and the params: a param's key or a
    /// variable's name, so a value substituted into a command gets the same marker as its param
    pub known: Vec<(String, String)>,
    /// every secret value found, to mask in output and in the recorded pipeline file
    pub secrets: Vec<String>,
    /// the key the markers are made with (`Redactor::key_id`)
    pub marker_key: String,
}

impl Recorded {
    pub fn of(r: &Redactor, plan: &Plan) -> Recorded {
        let mut m = Marking {
            r,
            known: Vec::new(),
            secrets: Vec::new(),
            cmds_started: false,
        };
        let p = plan.rewritten(&mut m);
        let Marking {
            known,
            mut secrets,
            cmds_started,
            ..
        } = m;
        if !cmds_started {
            secrets = known.iter().map(|(_, v)| v.clone()).collect();
        }
        secrets.sort();
        secrets.dedup();
        Recorded {
            plan: p,
            known,
            secrets,
            marker_key: r.key_id(),
        }
    }

    /// mlrun's own command line as recorded (`-p db.password=…` among it).
    pub fn argv(&self, r: &Redactor, argv: &[String]) -> Vec<String> {
        r.redact_argv(argv, &self.known, &mut Vec::new())
    }
}

/// Secret params and env values become markers (each found secret noted with its name); then
/// the commands are masked with every secret found so far.
struct Marking<'r> {
    r: &'r Redactor,
    known: Vec<(String, String)>,
    secrets: Vec<String>,
    cmds_started: bool,
}

impl crate::pipeline::Rewrite for Marking<'_> {
    fn values(
        &mut self,
        _step: Option<&str>,
        params: &mut params::Params,
        env: &mut BTreeMap<String, String>,
    ) {
        let (masked, found) = self.r.params(params);
        *params = masked;
        self.known.extend(found);
        for (k, v) in env.iter_mut() {
            if self.r.is_secret(k, v) {
                let marker = self.r.marker(k, v);
                self.known.push((k.clone(), std::mem::replace(v, marker)));
            }
        }
    }

    fn cmd(&mut self, c: &mut Cmd) {
        if !self.cmds_started {
            // the commands are masked with every value found among params and env
            self.cmds_started = true;
            self.secrets = self.known.iter().map(|(_, v)| v.clone()).collect();
        }
        *c = cmd(self.r, c, &self.known, &mut self.secrets);
    }
}

fn cmd(r: &Redactor, c: &Cmd, known: &[(String, String)], found: &mut Vec<String>) -> Cmd {
    match c {
        Cmd::Shell(s) => Cmd::Shell(r.redact_text(s, known, found)),
        Cmd::Argv(a) => Cmd::Argv(r.redact_argv(a, known, found)),
    }
}

/// Record a step's `MLRUN_PARAM_*` variables as its params are: a secret param's variable gets
/// the param's marker (whatever the variable's name says), a kept param's variable its value.
/// Returns the secret values.
pub fn param_vars(r: &Redactor, step: &Step, vars: &mut BTreeMap<String, String>) -> Vec<String> {
    let mut secrets = Vec::new();
    for (k, v) in &step.params {
        let value = params::render(v);
        let recorded = if r.param_is_secret(k, v) {
            let marker = r.marker(k, &value);
            secrets.push(value);
            marker
        } else {
            value
        };
        vars.insert(params::env_name(k), recorded);
    }
    secrets
}

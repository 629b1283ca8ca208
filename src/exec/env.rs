//! What a step runs with: mlrun's own environment (judged once per run, `Inherited`), then
//! `[env]`, the step's `env` and the `MLRUN_*` variables; what of it is recorded (secrets as
//! markers), and the secret values to mask in the step's output.

use std::collections::BTreeMap;

use super::{Ctx, recorded};
use crate::fingerprint::env::Redactor;
use crate::pipeline::{Step, params};

/// The environment a step runs with (mlrun's own, then `[env]`, then the step's `env`, then the
/// MLRUN_* variables), its redacted record, and the secret values to mask in its output.
pub(super) fn of_step(
    ctx: &Ctx,
    step: &Step,
    metrics_file: &std::path::Path,
) -> (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    Vec<String>,
) {
    let mut env: BTreeMap<String, String> = step.env.clone();
    env.insert("MLRUN_RUN_ID".into(), ctx.run_id.clone());
    env.insert("MLRUN_STEP".into(), step.name.clone());
    env.insert(
        "MLRUN_METRICS".into(),
        metrics_file.to_string_lossy().into_owned(),
    );
    for (k, v) in &step.params {
        env.insert(params::env_name(k), params::render(v));
    }
    // mlrun's own environment was judged once for the run (`Inherited`); only what the step
    // sets is judged here.
    let mut vars = BTreeMap::new();
    let mut secrets = Vec::new();
    for (k, recorded, secret) in ctx
        .inherited
        .0
        .iter()
        .filter(|(k, ..)| !env.contains_key(k))
    {
        vars.insert(k.clone(), recorded.clone());
        secrets.extend(secret.iter().cloned());
    }
    let (own, own_secrets) = ctx
        .redactor
        .capture(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    vars.extend(own);
    secrets.extend(own_secrets);
    // params are judged as params (`MLRUN_PARAM_*` follow them); what the plan holds secret
    // (in params, env, commands) is masked in this step's output too
    secrets.extend(recorded::param_vars(&ctx.redactor, step, &mut vars));
    secrets.extend(ctx.recorded.secrets.iter().cloned());
    (env, vars, secrets)
}

/// mlrun's own environment as every step records it: (name, recorded value, the secret value
/// when it is one), in the order the process environment lists it. It does not change during a
/// run, so the secret tests on every variable run once per run instead of once per step.
pub(super) struct Inherited(Vec<(String, String, Option<String>)>);

impl Inherited {
    pub(super) fn capture(redactor: &Redactor) -> Self {
        Inherited(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .filter_map(|(k, v)| {
                    let (recorded, secret) = redactor.capture_one(&k, &v)?;
                    Some((k, recorded, secret))
                })
                .collect(),
        )
    }
}

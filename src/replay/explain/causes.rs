//! The candidate causes of a difference, ranked: for an output stable between two replays, what
//! the recorded step and the replay differ in (inputs, environment variables, packages,
//! interpreter, system); for a nondeterministic one, the usual causes for what the step used.

use super::*;
use crate::fingerprint::env::is_marker;
use crate::fingerprint::packages;
use crate::store::query::EnvInfo;

/// Variables that differ between any two processes and say nothing about a step's results.
pub(super) const NOISE_VARS: &[&str] = &[
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "TERM_SESSION_ID",
    "WINDOWID",
    "XDG_SESSION_ID",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "SSH_CLIENT",
    "SSH_CONNECTION",
    "SSH_TTY",
    "SSH_AUTH_SOCK",
    "GPG_TTY",
];

/// What the recorded step and its replay differ in, most likely first.
pub(super) fn change_candidates(
    cx: &Context,
    step: &crate::pipeline::plan::Step,
    orig_exec: Option<i64>,
    first_exec: Option<i64>,
) -> Result<Vec<Cause>> {
    let (Some(oe), Some(re)) = (orig_exec, first_exec) else {
        return Ok(Vec::new());
    };
    let text = step_text(cx.root, step);
    let mut scored: Vec<(u32, Cause)> = Vec::new();

    // inputs: restored from the record, so one that differs came from a step that differs
    let ins = |e| -> Result<BTreeMap<String, String>> {
        Ok(cx
            .store
            .recorded_io(e, "in")?
            .into_iter()
            .map(|io| (io.path, io.fp.hash().to_string()))
            .collect())
    };
    let (ia, ib) = (ins(oe)?, ins(re)?);
    for (p, h) in &ia {
        let maker = cx
            .plan
            .steps()
            .iter()
            .find(|s| {
                s.outputs
                    .iter()
                    .any(|o| crate::pipeline::plan::within(p, &o.path))
            })
            .map(|s| s.name.clone());
        let (text, after) = match ib.get(p) {
            Some(h2) if h2 == h => continue,
            Some(h2) => (
                match &maker {
                    Some(m) => format!(
                        "input {p} differs from the record (step `{m}` made it differently)"
                    ),
                    None => format!("input {p} differs from the record"),
                },
                Some(short(h2)),
            ),
            None => (format!("input {p} was not read in the replay"), None),
        };
        scored.push((
            100,
            Cause {
                kind: "input",
                name: p.clone(),
                before: Some(short(h)),
                after,
                text,
            },
        ));
    }
    for p in ib.keys().filter(|p| !ia.contains_key(*p)) {
        scored.push((
            95,
            Cause {
                kind: "input",
                name: p.clone(),
                before: None,
                after: Some(short(&ib[p])),
                text: format!("input {p} was read in the replay only"),
            },
        ));
    }

    let (ea, eb) = (cx.store.exec_env(oe)?, cx.store.exec_env(re)?);
    if let (Some(ea), Some(eb)) = (&ea, &eb) {
        env_var_causes(&text, ea, eb, &mut scored);
        package_causes(&text, ea, eb, &mut scored);
        system_causes(ea, eb, &mut scored);
    }
    scored.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut out: Vec<Cause> = scored.into_iter().map(|(_, c)| c).collect();
    if out.is_empty() {
        out.push(Cause {
            kind: "hint",
            name: "undeclared".into(),
            before: None,
            after: None,
            text: "nothing recorded differs (inputs, variables, packages, interpreter, system): the step may read something it does not declare (`mlrun run --trace` finds it), the network, or the date".into(),
        });
    }
    Ok(out)
}

pub(super) fn short(h: &str) -> String {
    format!("{}…", &h[..12.min(h.len())])
}

pub(super) fn env_var_causes(text: &str, a: &EnvInfo, b: &EnvInfo, out: &mut Vec<(u32, Cause)>) {
    let keys: BTreeSet<&String> = a.env_vars.keys().chain(b.env_vars.keys()).collect();
    for k in keys {
        if NOISE_VARS.contains(&k.as_str()) {
            continue;
        }
        let (x, y) = (a.env_vars.get(k), b.env_vars.get(k));
        if x == y {
            continue;
        }
        let secret = x.is_some_and(|v| is_marker(v)) || y.is_some_and(|v| is_marker(v));
        let show = |v: Option<&String>| match v {
            None => "(unset)".to_string(),
            Some(_) if secret => "(secret)".to_string(),
            Some(v) => format!("{:?}", cut(v, 60)),
        };
        let named = names(text, k);
        let mut t = if secret {
            format!("environment variable {k} (a secret) changed")
        } else {
            format!("environment variable {k}: {} → {}", show(x), show(y))
        };
        if named {
            t += " (the step names it)";
        }
        out.push((
            if named { 90 } else { 40 },
            Cause {
                kind: "env_var",
                name: k.clone(),
                before: x.map(|_| show(x)).map(|s| s.trim_matches('"').to_string()),
                after: y.map(|_| show(y)).map(|s| s.trim_matches('"').to_string()),
                text: t,
            },
        ));
    }
}

pub(super) fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

pub(super) fn package_causes(text: &str, a: &EnvInfo, b: &EnvInfo, out: &mut Vec<(u32, Cause)>) {
    let strip = |v: &str| v.split(" (").next().unwrap_or(v).to_string();
    for (prog, va) in &a.interpreters {
        let vb = b.interpreters.get(prog);
        if vb.map(|v| strip(v)) != Some(strip(va)) {
            out.push((
                70,
                Cause {
                    kind: "interpreter",
                    name: prog.clone(),
                    before: Some(strip(va)),
                    after: vb.map(|v| strip(v)),
                    text: format!(
                        "interpreter {prog}: {} → {}",
                        strip(va),
                        vb.map(|v| strip(v)).unwrap_or_else(|| "not found".into())
                    ),
                },
            ));
        }
    }
    for (prog, pa) in &a.packages {
        let Some(pb) = b.packages.get(prog) else {
            continue;
        };
        if pa.env.executable != pb.env.executable || pa.env.prefix != pb.env.prefix {
            out.push((
                65,
                Cause {
                    kind: "interpreter",
                    name: prog.clone(),
                    before: Some(pa.env.prefix.clone()),
                    after: Some(pb.env.prefix.clone()),
                    text: format!(
                        "{prog} runs from another environment: {} → {}",
                        pa.env.prefix, pb.env.prefix
                    ),
                },
            ));
        }
        for (name, x, y) in packages::compare(&pa.packages, &pb.packages) {
            // the name as code imports it: `scikit-learn` → `scikit_learn`, `PyYAML` → `pyyaml`
            let import = packages::normalise(&name).replace('-', "_");
            let named = names(text, &import) || names(text, &name);
            let mut t = packages::describe(&[(name.clone(), x.clone(), y.clone())])
                .pop()
                .unwrap_or_default();
            t = format!("package {t}");
            if named {
                t += " (the step imports it)";
            }
            out.push((
                if named { 85 } else { 60 },
                Cause {
                    kind: "package",
                    name,
                    before: x,
                    after: y,
                    text: t,
                },
            ));
        }
    }
    for (f, h) in &a.lockfiles {
        if b.lockfiles.get(f) != Some(h) {
            out.push((
                50,
                Cause {
                    kind: "lockfile",
                    name: f.clone(),
                    before: Some(short(h)),
                    after: b.lockfiles.get(f).map(|h| short(h)),
                    text: format!("lock file {f} differs"),
                },
            ));
        }
    }
}

pub(super) fn system_causes(a: &EnvInfo, b: &EnvInfo, out: &mut Vec<(u32, Cause)>) {
    let mut cmp = |name: &str, x: String, y: String| {
        if x != y {
            out.push((
                30,
                Cause {
                    kind: "system",
                    name: name.into(),
                    text: format!("{name}: {x} → {y}"),
                    before: Some(x),
                    after: Some(y),
                },
            ));
        }
    };
    cmp(
        "OS",
        format!("{} {}", a.os, a.os_version),
        format!("{} {}", b.os, b.os_version),
    );
    cmp("kernel", a.kernel.clone(), b.kernel.clone());
    cmp("arch", a.arch.clone(), b.arch.clone());
    cmp("CPU", a.cpu_model.clone(), b.cpu_model.clone());
    cmp(
        "CPU cores",
        a.cpu_cores.to_string(),
        b.cpu_cores.to_string(),
    );
}

/// The usual causes of nondeterminism for what the step used (its interpreters and packages,
/// as recorded with the replay), most likely first.
pub(super) fn nondeterminism_hints(
    store: &Store,
    exec: Option<i64>,
    step: &crate::pipeline::plan::Step,
) -> Vec<Cause> {
    let used = Used::of(store, exec, step);
    let mut out = vec![];
    out.extend(seed_hints(&used));
    out.extend(thread_hint(&used));
    out.extend(parallel_hint(&used));
    out.push(hint(
        "clock",
        "the clock: a timestamp, a duration or a date-based name written into the output".into(),
    ));
    out
}

/// What a step used, as recorded with the replay: interpreters, packages, variables, cores.
struct Used {
    programs: Vec<String>,
    pkgs: BTreeSet<String>,
    vars: BTreeMap<String, String>,
    python: bool,
    cores: i64,
}

impl Used {
    fn of(store: &Store, exec: Option<i64>, step: &crate::pipeline::plan::Step) -> Used {
        let env = exec.and_then(|e| store.exec_env(e).ok().flatten());
        let cmd = step.cmd.display();
        let programs: Vec<String> = env
            .as_ref()
            .map(|e| e.interpreters.keys().cloned().collect())
            .unwrap_or_default();
        let pkgs: BTreeSet<String> = env
            .as_ref()
            .map(|e| {
                e.packages
                    .values()
                    .flat_map(|p| p.packages.iter().map(|p| packages::normalise(&p.name)))
                    .collect()
            })
            .unwrap_or_default();
        let vars: BTreeMap<String, String> =
            env.as_ref().map(|e| e.env_vars.clone()).unwrap_or_default();
        let python = programs.iter().any(|p| p.starts_with("python")) || cmd.contains("python");
        let cores = env.as_ref().map_or(0, |e| e.cpu_cores);
        Used {
            programs,
            pkgs,
            vars,
            python,
            cores,
        }
    }

    fn has(&self, p: &str) -> bool {
        self.pkgs.contains(p)
    }
}

fn hint(name: &str, text: String) -> Cause {
    Cause {
        kind: "hint",
        name: name.into(),
        before: None,
        after: None,
        text,
    }
}

/// Unseeded random numbers (how to seed each library the step has), and Python's hash seed.
fn seed_hints(u: &Used) -> Vec<Cause> {
    let mut out = Vec::new();
    if u.python {
        let mut seeds = vec!["`random.seed(…)`".to_string()];
        if u.has("numpy") {
            seeds.push("`np.random.default_rng(seed)`".into());
        }
        if u.has("torch") {
            seeds.push(
                "`torch.manual_seed(…)` and `torch.use_deterministic_algorithms(True)`".into(),
            );
        }
        if u.has("tensorflow") {
            seeds.push("`tf.random.set_seed(…)`".into());
        }
        if u.has("scikit-learn") {
            seeds.push("`random_state=` on estimators and splits".into());
        }
        out.push(hint(
            "random seed",
            format!("unseeded random numbers: seed them ({})", seeds.join(", ")),
        ));
        if !u.vars.contains_key("PYTHONHASHSEED") {
            out.push(hint(
                "PYTHONHASHSEED",
                "PYTHONHASHSEED is not set: the order of sets (and hashes of strings) changes from one process to the next; set it in the step's `env` (e.g. \"0\")".into(),
            ));
        }
    } else {
        out.push(hint(
            "random seed",
            "unseeded random numbers, or iteration over an unordered collection".into(),
        ));
    }
    out
}

/// Multi-threaded math, when the step has a library or program that does it.
fn thread_hint(u: &Used) -> Option<Cause> {
    let threaded = [
        "numpy",
        "scipy",
        "torch",
        "tensorflow",
        "scikit-learn",
        "xgboost",
        "lightgbm",
        "jax",
        "jaxlib",
    ]
    .iter()
    .any(|p| u.has(p))
        || u.programs
            .iter()
            .any(|p| p == "Rscript" || p == "R" || p == "julia");
    if !threaded {
        return None;
    }
    let unset: Vec<&str> = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]
        .into_iter()
        .filter(|v| !u.vars.contains_key(*v))
        .collect();
    let cores = u.cores;
    Some(hint(
        "threads",
        if unset.is_empty() {
            "multi-threaded math sums in a different order from run to run; try the thread counts at 1".into()
        } else {
            format!(
                "thread counts {} are not set{}: multi-threaded math sums in a different order from run to run; set them to 1 to test",
                unset.join(", "),
                if cores > 0 {
                    format!(" ({cores} cores here)")
                } else {
                    String::new()
                }
            )
        },
    ))
}

/// Parallel workers finishing in another order.
fn parallel_hint(u: &Used) -> Option<Cause> {
    let parallel = ["joblib", "torch", "dask", "ray"].iter().any(|p| u.has(p)) || u.python;
    if !parallel {
        return None;
    }
    let mut how = Vec::new();
    if u.has("joblib") || u.has("scikit-learn") {
        how.push("joblib `n_jobs`");
    }
    if u.has("torch") {
        how.push("DataLoader `num_workers`");
    }
    how.push("multiprocessing");
    Some(hint(
        "parallel workers",
        format!(
            "parallel workers ({}) finishing in another order and writing results in that order",
            how.join(", ")
        ),
    ))
}

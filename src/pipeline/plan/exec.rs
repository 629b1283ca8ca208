//! `executor` and the Slurm resources (`cpus`, `mem`, `gpus`, `time`, `partition`, `account`,
//! `sbatch-args`), in `[pipeline]` and in a step: each key checked once, the step's value over
//! the pipeline's, into what `exec::slurm` turns into `sbatch` arguments.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::check::Checker;
use crate::pipeline::diag::Diagnostic;
use crate::pipeline::raw::{RawExec, Sp};

/// Where a step runs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// a subprocess of mlrun on this machine
    #[default]
    Local,
    /// a Slurm job (`sbatch`), run on a node by `mlrun __job-step`
    Slurm,
}

impl Executor {
    pub fn as_str(self) -> &'static str {
        match self {
            Executor::Local => "local",
            Executor::Slurm => "slurm",
        }
    }

    pub fn parse(s: &str) -> Option<Executor> {
        match s {
            "local" => Some(Executor::Local),
            "slurm" => Some(Executor::Slurm),
            _ => None,
        }
    }
}

/// What a Slurm job asks for; every field as checked, `None` for the cluster's default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `--mem`, as Slurm writes it: a number and a unit letter (`16G`, `512M`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// `--gpus`: `N` or `TYPE:N`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<String>,
    /// the job's time limit (the step's `timeout`, when shorter, is enforced too)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sbatch_args: Vec<String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }

    pub fn time(&self) -> Option<Duration> {
        self.time_ms.map(Duration::from_millis)
    }
}

/// Options mlrun gives `sbatch` itself: set in `sbatch-args`, they would break the job's
/// wrapper, its logs or mlrun's reading of the job id.
const OWN_OPTIONS: &[(&str, Option<&str>)] = &[
    ("--output", Some("-o")),
    ("--error", Some("-e")),
    ("--input", Some("-i")),
    ("--parsable", None),
    ("--wait", Some("-W")),
    ("--wrap", None),
    ("--chdir", Some("-D")),
    ("--array", Some("-a")),
    ("--test-only", None),
    ("--export", None),
];

impl Checker<'_> {
    /// A step's executor and resources: its own keys over the pipeline's.
    pub(super) fn executor(
        &mut self,
        step: &str,
        pipeline: &RawExec,
        own: &RawExec,
    ) -> (Executor, Resources) {
        let pick = |o: &Option<Sp<String>>, p: &Option<Sp<String>>, key: &str| {
            o.as_ref()
                .map(|v| (v.clone(), format!("steps.{step}.{key}")))
                .or_else(|| p.as_ref().map(|v| (v.clone(), format!("pipeline.{key}"))))
        };
        let executor = match pick(&own.executor, &pipeline.executor, "executor") {
            None => Executor::Local,
            Some((v, key)) => match Executor::parse(&v.value) {
                Some(e) => e,
                None => {
                    self.err(
                        Diagnostic::error(
                            format!(
                                "`{key}` must be \"local\" or \"slurm\", not \"{}\"",
                                v.value
                            ),
                            Some(v.span.clone()),
                        )
                        .label("unknown executor"),
                    );
                    Executor::Local
                }
            },
        };
        let mut r = Resources::default();
        let cpus = own
            .cpus
            .as_ref()
            .map(|c| (c, format!("steps.{step}.cpus")))
            .or_else(|| pipeline.cpus.as_ref().map(|c| (c, "pipeline.cpus".into())));
        if let Some((c, key)) = cpus {
            if (1..=1_000_000).contains(&c.value) {
                r.cpus = Some(c.value as u32);
            } else {
                self.err(Diagnostic::error(
                    format!("`{key}` must be a number of CPUs, 1 or more"),
                    Some(c.span.clone()),
                ));
            }
        }
        if let Some((m, key)) = pick(&own.mem, &pipeline.mem, "mem") {
            r.mem = self.mem(&key, &m);
        }
        if let Some((g, key)) = pick(&own.gpus, &pipeline.gpus, "gpus") {
            r.gpus = self.gpus(&key, &g);
        }
        if let Some((t, key)) = pick(&own.time, &pipeline.time, "time") {
            r.time_ms = self.duration(&key, &t, false).map(|d| d.as_millis() as u64);
        }
        for (field, name) in [(0, "partition"), (1, "account")] {
            let (o, p) = if field == 0 {
                (&own.partition, &pipeline.partition)
            } else {
                (&own.account, &pipeline.account)
            };
            if let Some((v, key)) = pick(o, p, name) {
                let ok = !v.value.is_empty()
                    && v.value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ','));
                if !ok {
                    self.err(
                        Diagnostic::error(
                            format!("`{key}` is not a Slurm {name} name: \"{}\"", v.value),
                            Some(v.span.clone()),
                        )
                        .hint("names are letters, digits, `_`, `-` and `.` (`sinfo -s` lists the partitions)"),
                    );
                } else if field == 0 {
                    r.partition = Some(v.value);
                } else {
                    r.account = Some(v.value);
                }
            }
        }
        let args = own
            .sbatch_args
            .as_ref()
            .map(|a| (a, format!("steps.{step}.sbatch-args")))
            .or_else(|| {
                pipeline
                    .sbatch_args
                    .as_ref()
                    .map(|a| (a, "pipeline.sbatch-args".into()))
            });
        if let Some((args, key)) = args {
            for a in args {
                if self.sbatch_arg(&key, a) {
                    r.sbatch_args.push(a.value.clone());
                }
            }
        }
        (executor, r)
    }

    fn mem(&mut self, key: &str, v: &Sp<String>) -> Option<String> {
        static MEM: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"(?i)^\s*([0-9]+)\s*([KMGT]?)(?:I?B)?\s*$").expect("a valid regex")
        });
        match MEM.captures(&v.value) {
            Some(c) if c[1].parse::<u64>().is_ok_and(|n| n > 0) => Some(format!(
                "{}{}",
                &c[1],
                if c[2].is_empty() {
                    "M".to_string()
                } else {
                    c[2].to_uppercase()
                }
            )),
            _ => {
                self.err(
                    Diagnostic::error(
                        format!("`{key}` is not an amount of memory: \"{}\"", v.value),
                        Some(v.span.clone()),
                    )
                    .label("not an amount of memory")
                    .hint(
                        "write it as Slurm does: \"16G\", \"512M\" (a number alone is megabytes)",
                    ),
                );
                None
            }
        }
    }

    fn gpus(&mut self, key: &str, v: &Sp<String>) -> Option<String> {
        let (kind, n) = match v.value.rsplit_once(':') {
            Some((k, n)) => (Some(k), n),
            None => (None, v.value.as_str()),
        };
        let kind_ok = kind.is_none_or(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
        match n.parse::<u32>() {
            Ok(n) if kind_ok && n > 0 => Some(v.value.clone()),
            Ok(0) if kind.is_none() => None,
            _ => {
                self.err(
                    Diagnostic::error(
                        format!("`{key}` is not a number of GPUs: \"{}\"", v.value),
                        Some(v.span.clone()),
                    )
                    .hint("write `gpus = 2` or `gpus = \"a100:2\"`"),
                );
                None
            }
        }
    }

    fn sbatch_arg(&mut self, key: &str, a: &Sp<String>) -> bool {
        let text = a.value.as_str();
        if !text.starts_with('-') {
            self.err(
                Diagnostic::error(
                    format!("`{key}`: \"{text}\" is not an sbatch option"),
                    Some(a.span.clone()),
                )
                .hint("write each option with its value in one string: `sbatch-args = [\"--qos=long\", \"--constraint=v100\"]`"),
            );
            return false;
        }
        let name = text.split('=').next().unwrap_or(text);
        for (long, short) in OWN_OPTIONS {
            let is_short = short.is_some_and(|s| name.starts_with(s) && !name.starts_with("--"));
            if name == *long || is_short {
                self.err(
                    Diagnostic::error(
                        format!("`{key}`: mlrun sets `{long}` itself, so \"{text}\" cannot be given"),
                        Some(a.span.clone()),
                    )
                    .hint("the job's output is followed live and kept in the record; its working directory is the step's `cwd`"),
                );
                return false;
            }
        }
        true
    }
}

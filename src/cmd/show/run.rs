//! `show RUN`: a run's steps with their inputs, outputs, git, environment and packages.

use crate::report::Role;
use crate::report::{self, Style, short_hash, time};
use crate::store::packages::EnvPackages;
use crate::store::query::{EnvInfo, GitInfo, IoInfo, RunDetail, StepInfo};

pub(super) fn git_line(g: &GitInfo) -> String {
    if !g.is_repo {
        return "no git repository".into();
    }
    let mut s = match &g.commit {
        Some(c) => c[..12.min(c.len())].to_string(),
        None => "no commit yet".into(),
    };
    if let Some(b) = &g.branch {
        s += &format!(" on {b}");
    }
    if g.dirty {
        s += &format!(
            " (dirty: {} changed file{}",
            g.changed.len(),
            if g.changed.len() == 1 { "" } else { "s" }
        );
        s += &format!(", diff {} kept)", report::size(g.diff_bytes as u64));
    } else {
        s += " (clean)";
    }
    if !g.untracked.is_empty() {
        s += &format!(" · {} untracked", g.untracked.len());
    }
    if let Some(e) = &g.error {
        s += &format!(" · git error: {e}");
    }
    s
}

pub(super) fn io_line(io: &IoInfo) -> String {
    let what = if io.kind == "dir" {
        format!(
            "{}, {}",
            report::files(io.nfiles.max(0) as u64),
            report::size(io.size as u64)
        )
    } else {
        report::size(io.size as u64)
    };
    let path = if io.kind == "dir" {
        format!("{}/", io.path)
    } else {
        io.path.clone()
    };
    format!("{path}  {}  {what}", short_hash(&io.hash))
}

pub(super) fn env_lines(e: &EnvInfo, style: &Style) -> Vec<String> {
    let mut out = vec![
        format!(
            "system    {} {} · kernel {} · {}",
            e.os, e.os_version, e.kernel, e.arch
        ),
        format!(
            "machine   {} · {} cores · {} memory · host {} · user {}",
            if e.cpu_model.is_empty() {
                "unknown CPU"
            } else {
                &e.cpu_model
            },
            e.cpu_cores,
            report::size(e.mem_bytes as u64),
            e.hostname,
            e.user
        ),
    ];
    for (p, v) in &e.interpreters {
        out.push(format!("{:<9} {v}", p));
    }
    for (f, h) in &e.lockfiles {
        out.push(format!("lockfile  {f} {}", short_hash(h)));
    }
    let redacted = e
        .env_vars
        .values()
        .filter(|v| v.starts_with("<redacted:"))
        .count();
    out.push(format!(
        "env vars  {} recorded{}",
        e.env_vars.len(),
        if redacted > 0 {
            style.paint(Role::Muted, &format!(", {redacted} redacted"))
        } else {
            String::new()
        }
    ));
    out
}

/// The distinct interpreter environments of a run's steps: (program, environment, the steps
/// that used it), in step order.
pub fn run_package_envs(d: &RunDetail) -> Vec<(&String, &EnvPackages, Vec<&str>)> {
    let mut out: Vec<(&String, &EnvPackages, Vec<&str>)> = Vec::new();
    for s in &d.steps {
        let Some(env) = s.env_id.as_ref().and_then(|e| d.environments.get(e)) else {
            continue;
        };
        for (p, e) in &env.packages {
            match out.iter_mut().find(|(q, f, _)| {
                *q == p && f.env.executable == e.env.executable && f.env.hash == e.env.hash
            }) {
                Some((_, _, steps)) => {
                    if !steps.contains(&s.name.as_str()) {
                        steps.push(&s.name);
                    }
                }
                None => out.push((p, e, vec![s.name.as_str()])),
            }
        }
    }
    out
}

/// `venv /p/.venv · 312 packages`
pub(super) fn package_summary(e: &EnvPackages) -> String {
    format!(
        "{} {} · {} package{}",
        e.env.kind,
        e.env.prefix,
        e.env.count,
        if e.env.count == 1 { "" } else { "s" }
    )
}

/// `--packages`: each environment's distributions, one per line.
pub(super) fn package_lists(envs: &[(&String, &EnvPackages)], style: &Style) -> String {
    let mut o = String::new();
    for (prog, e) in envs {
        let real = if e.env.real_path != e.env.executable {
            format!(" → {}", e.env.real_path)
        } else {
            String::new()
        };
        o += &format!(
            "\n{} {}\n",
            style.paint(Role::Strong, &format!("packages of {prog}")),
            style.paint(
                Role::Muted,
                &format!(
                    "({} {}; {}{real}; {} package{})",
                    e.env.kind,
                    e.env.prefix,
                    e.env.executable,
                    e.env.count,
                    if e.env.count == 1 { "" } else { "s" }
                )
            )
        );
        if e.packages.is_empty() && e.env.count > 0 {
            o += &format!(
                "  {}\n",
                style.paint(
                    Role::Warn,
                    "the list is missing from the store (`mlrun fsck` checks it)"
                )
            );
        }
        let w = e.packages.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in &e.packages {
            let src = if p.source == "conda" {
                style.paint(Role::Muted, "  (conda)")
            } else {
                String::new()
            };
            o += &format!("  {:<w$}  {}{src}\n", p.name, p.version);
        }
    }
    o
}

pub(super) fn detail_has_retries(d: &RunDetail, step: &str) -> bool {
    d.steps.iter().any(|s| s.name == step && s.attempt > 1)
}

pub fn render(d: &RunDetail, style: &Style) -> String {
    let mut o = String::new();
    let exit = d
        .exit_code
        .map_or_else(String::new, |c| format!(" (exit {c})"));
    o += &format!(
        "{} {}  {}  {}{exit}\n",
        style.paint(Role::Strong, "run"),
        style.paint(Role::Accent, &d.short_id),
        d.pipeline,
        style.status(&d.status)
    );
    if let Some(r) = &d.replay_of {
        let verdict = d
            .replay_verdict
            .as_deref()
            .map(|v| style.status(v))
            .unwrap_or_else(|| "no verdict".into());
        let shown = d.replay_of_short.as_deref().unwrap_or(r);
        o += &format!(
            "  replay    of run {} · {verdict}\n",
            style.paint(Role::Accent, shown)
        );
    }
    if let Some(m) = &d.message {
        // every line of it, aligned under the first
        let text = m.trim().replace('\n', "\n            ");
        o += &format!("  message   {text}\n");
    }
    o += &format!(
        "  started   {}{}\n",
        time::local(d.started_at),
        d.duration_ms.map_or_else(String::new, |ms| format!(
            " · took {}",
            report::duration_ms(ms)
        ))
    );
    o += &format!("  pipeline  {}\n", d.pipeline_file);
    if let Some(t) = &d.targets {
        o += &format!("  targets   {} (and the steps they need)\n", t.join(" "));
    }
    if let Some(s) = &d.sweep_id {
        o += &format!("  sweep     {s} (`mlrun runs --sweep {s}`)\n");
    }
    if let Some(g) = &d.git {
        o += &format!("  git       {}\n", git_line(g));
        if let Some(url) = &g.remote_url {
            o += &format!("  remote    {url}\n");
        }
    }
    o += &format!(
        "  by        {}@{} · mlrun {}\n",
        d.user, d.hostname, d.mlrun_version
    );
    if !d.params.is_empty() {
        let p = report::params_line(&d.params);
        o += &format!("  params    {}\n", p);
    }
    for s in &d.steps {
        o += &step_text(d, s, style);
    }
    if let Some(e) = d.environments.values().next() {
        o += &format!("\n{}\n", style.paint(Role::Strong, "environment"));
        for l in env_lines(e, style) {
            o += &format!("  {l}\n");
        }
        let envs = run_package_envs(d);
        let ran = d.steps.iter().filter(|s| s.env_id.is_some()).count();
        for (prog, e, steps) in &envs {
            let which = if envs.len() > 1 && steps.len() < ran {
                format!(
                    " (step{} {})",
                    if steps.len() == 1 { "" } else { "s" },
                    steps.join(", ")
                )
            } else {
                String::new()
            };
            o += &format!(
                "  packages  {prog}: {}{which}  {}\n",
                package_summary(e),
                style.paint(Role::Muted, "(--packages lists them)")
            );
        }
        if d.environments.len() > 1 {
            o += &format!(
                "  ({} distinct step environments; see --json)\n",
                d.environments.len()
            );
        }
    }
    o
}

/// One step of `show RUN`: its mark, status and times, command, inputs and outputs, metrics and
/// how its output was kept.
fn step_text(d: &RunDetail, s: &StepInfo, style: &Style) -> String {
    let mut o = String::new();
    o += &step_head(d, s, style);
    o += &format!("    cmd     {}\n", s.cmd);
    if let Some(j) = &s.job {
        o += &format!("    job     {}\n", report::job_line(j));
    }
    if !s.cwd.is_empty() {
        o += &format!("    cwd     {}\n", s.cwd);
    }
    let observed = |io: &IoInfo| {
        if io.observed {
            format!("  {}", style.paint(Role::Warn, "(observed)"))
        } else {
            String::new()
        }
    };
    for i in &s.inputs {
        o += &format!("    in      {}{}\n", io_line(i), observed(i));
    }
    for i in &s.outputs {
        let note = if i.observed {
            observed(i)
        } else if i.stored {
            String::new()
        } else {
            style.paint(Role::Muted, "  (bytes not stored: cannot be restored)")
        };
        let known = d
            .determinism
            .get(&s.name)
            .and_then(|f| f.iter().find(|f| f.path == i.path && f.nondeterministic()));
        let note = match known {
            Some(f) => format!(
                "{note}  {}",
                style.paint(
                    Role::Warn,
                    &format!("(nondeterministic, since run {})", f.since_run_short)
                )
            ),
            None => note,
        };
        o += &format!("    out     {}{note}\n", io_line(i));
    }
    if !s.params.is_empty() {
        let p = report::params_line(&s.params);
        o += &format!("    params  {}\n", p);
    }
    if !s.metrics.is_empty() {
        let m = report::metrics_line(&s.metrics);
        o += &format!("    metrics {}\n", m);
    }
    if s.changed_tracked_files {
        o += &format!(
            "    {}\n",
            style.paint(
                Role::Warn,
                "note    this step changed tracked files in the git working tree"
            )
        );
    }
    if !s.repo_changes.is_empty() {
        o += &format!(
            "    repo    {}\n",
            style.paint(
                Role::Warn,
                &crate::fingerprint::git::describe_ref_changes(&s.repo_changes)
            )
        );
    }
    if s.keep_outputs {
        o += &format!(
            "    note    {}\n",
            style.paint(
                Role::Muted,
                "outputs kept in place (keep-outputs): not checked to be newly written"
            )
        );
    }
    if let Some(env) = s.env_id.as_ref().and_then(|e| d.environments.get(e))
        && !env.interpreters.is_empty()
    {
        let i: Vec<String> = env
            .interpreters
            .values()
            .map(|v| v.split(" (").next().unwrap_or(v).to_string())
            .collect();
        o += &format!("    uses    {}\n", i.join(", "));
    }
    if s.stdout_bytes > 0 || s.stderr_bytes > 0 {
        // a long log: the database has its first and last 64 KiB, the object store the rest
        let kept = |stream: &str| match s.logs.get(stream) {
            Some(l) if l.object.is_some() && l.stored => " (whole log in the object store)",
            Some(l) if l.object.is_some() => " (only its first and last 64 KiB kept)",
            _ => "",
        };
        o += &format!(
            "    logs    {} stdout{}, {} stderr{} {}\n",
            report::size(s.stdout_bytes as u64),
            kept("stdout"),
            report::size(s.stderr_bytes as u64),
            kept("stderr"),
            style.paint(Role::Muted, "(mlrun show --logs)")
        );
    }
    o
}

/// A step's first lines: mark, name, status, attempt, exit code or signal, duration; the run it
/// was reused from; its error.
fn step_head(d: &RunDetail, s: &StepInfo, style: &Style) -> String {
    let mut o = String::new();
    let mark = match s.status.as_str() {
        "succeeded" => style.paint(Role::Good, "✓"),
        "cached" | "restored" => style.paint(Role::Good, "="),
        "failed" => style.paint(Role::Bad, "✗"),
        "not_run" => style.paint(Role::Warn, "-"),
        _ => style.paint(Role::Warn, "!"),
    };
    let mut head = format!(
        "\n{mark} {}  {}",
        style.paint(Role::Strong, &s.name),
        style.status(&s.status)
    );
    if s.attempt > 1 || detail_has_retries(d, &s.name) {
        head += &format!("  attempt {}", s.attempt);
    }
    if let Some(c) = s.exit_code {
        head += &format!("  exit {c}");
    }
    if let Some(sig) = s.signal {
        head += &format!(" ({})", crate::exec::unix::signal_name(sig));
    }
    if let Some(ms) = s.duration_ms {
        head += &format!("  {}", report::duration_ms(ms));
    }
    o += &head;
    o += "\n";
    if let Some(r) = &s.reused_run {
        o += &format!(
            "    reused  the results of run {} (the step did not run again)\n",
            s.reused_run_short.as_deref().unwrap_or(r)
        );
    }
    if let Some(e) = &s.error {
        o += &format!("    {}     {}\n", style.paint(Role::Muted, "why"), e);
    }
    o
}

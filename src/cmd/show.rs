//! `mlrun show RUN`: everything recorded about one run.

use std::path::Path;

use crate::cli::ShowArgs;
use crate::error::Result;
use crate::pipeline::params;
use crate::report::{self, ColorChoice, Style, short_hash, time};
use crate::store::query::{self, EnvInfo, GitInfo, IoInfo, RunDetail};
use crate::store::{self, Store};

pub fn show(args: ShowArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let store = Store::open_existing(&store::find_dir(store_dir)?)?;
    let id = query::resolve_run(&store.conn, &args.run)?;
    let detail = query::run_detail(&store.conn, &id, args.patch || args.json)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&detail).unwrap_or_default()
        );
        return Ok(0);
    }
    let style = Style::stdout(color);
    print!("{}", render(&detail, &style));
    for s in &detail.steps {
        if args.logs && (s.stdout_bytes > 0 || s.stderr_bytes > 0) {
            for stream in ["stdout", "stderr"] {
                let data = query::step_log(&store.conn, s.exec_id, stream)?;
                if data.is_empty() {
                    continue;
                }
                println!("\n{} {} {}", style.bold("──"), s.name, style.dim(stream));
                print!("{}", String::from_utf8_lossy(&data));
            }
        }
    }
    if args.patch
        && let Some(diff) = detail.git.as_ref().and_then(|g| g.diff.as_ref())
    {
        println!(
            "\n{}",
            style.bold("uncommitted diff at the start of the run:")
        );
        print!("{diff}");
    }
    Ok(0)
}

fn git_line(g: &GitInfo) -> String {
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

fn io_line(io: &IoInfo) -> String {
    let what = if io.kind == "dir" {
        format!("{} files, {}", io.nfiles, report::size(io.size as u64))
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

fn env_lines(e: &EnvInfo, style: &Style) -> Vec<String> {
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
            style.dim(&format!(", {redacted} redacted"))
        } else {
            String::new()
        }
    ));
    out
}

pub fn render(d: &RunDetail, style: &Style) -> String {
    let mut o = String::new();
    let exit = d
        .exit_code
        .map_or_else(String::new, |c| format!(" (exit {c})"));
    o += &format!(
        "{} {}  {}  {}{exit}\n",
        style.bold("run"),
        style.cyan(&d.short_id),
        d.pipeline,
        style.status(&d.status)
    );
    if let Some(r) = &d.replay_of {
        o += &format!("  replay of {r}\n");
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
        let p: Vec<String> = d
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", params::render(v)))
            .collect();
        o += &format!("  params    {}\n", p.join(" "));
    }
    for s in &d.steps {
        let mark = match s.status.as_str() {
            "succeeded" => style.green("✓"),
            "cached" | "restored" => style.green("="),
            "failed" => style.red("✗"),
            "not_run" => style.yellow("-"),
            _ => style.yellow("!"),
        };
        let mut head = format!(
            "\n{mark} {}  {}",
            style.bold(&s.name),
            style.status(&s.status)
        );
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
                "    {}  outputs of run {} reused\n",
                style.dim("reuse"),
                &r[..r.len().min(10)]
            );
        }
        if let Some(e) = &s.error {
            o += &format!("    {}    {}\n", style.dim("why"), e);
        }
        o += &format!("    cmd     {}\n", s.cmd);
        if !s.cwd.is_empty() {
            o += &format!("    cwd     {}\n", s.cwd);
        }
        let observed = |io: &IoInfo| {
            if io.observed {
                format!("  {}", style.yellow("(observed)"))
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
                style.dim("  (bytes not stored: cannot be restored)")
            };
            o += &format!("    out     {}{note}\n", io_line(i));
        }
        if !s.params.is_empty() {
            let p: Vec<String> = s
                .params
                .iter()
                .map(|(k, v)| format!("{k}={}", params::render(v)))
                .collect();
            o += &format!("    params  {}\n", p.join(" "));
        }
        if !s.metrics.is_empty() {
            let m: Vec<String> = s
                .metrics
                .iter()
                .map(|(k, v)| format!("{k}={}", report::metric(*v)))
                .collect();
            o += &format!("    metrics {}\n", m.join(" "));
        }
        if s.changed_tracked_files {
            o += &format!(
                "    {}\n",
                style.yellow("note    this step changed tracked files in the git working tree")
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
            o += &format!(
                "    logs    {} stdout, {} stderr {}\n",
                report::size(s.stdout_bytes as u64),
                report::size(s.stderr_bytes as u64),
                style.dim("(mlrun show --logs)")
            );
        }
    }
    if let Some(e) = d.environments.values().next() {
        o += &format!("\n{}\n", style.bold("environment"));
        for l in env_lines(e, style) {
            o += &format!("  {l}\n");
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

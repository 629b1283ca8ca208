//! `mlrun show RUN`: everything recorded about one run.

use std::path::Path;

use serde::Serialize;

use crate::cli::ShowArgs;
use crate::cmd::target::{self, Target};
use crate::error::Result;
use crate::report::{self, ColorChoice, Style, emit, short_hash, time};
use crate::store::lineage::{self, Card, GAP_REASON, Member, Version};
use crate::store::query::{self, EnvInfo, GitInfo, IoInfo, RunDetail};
use crate::store::{self, Store};

pub fn show(args: ShowArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    let mut only_step = None;
    let id = match target::resolve(&store, &args.target)? {
        Target::Run(id) => id,
        Target::Exec { run_id, step, .. } => {
            only_step = Some(step);
            run_id
        }
        Target::Version(v, note) => return show_version(&store, &v, None, note, &args, color),
        Target::File(v, m, note) => return show_version(&store, &v, Some(m), note, &args, color),
    };
    if args.files {
        Style::stderr(color).note(
            "`--files` lists the files of a directory version: name one, e.g. `mlrun show data/`",
        );
    }
    let mut detail = query::run_detail(&store.conn, &id, args.patch || args.json)?;
    if let Some(step) = &only_step {
        // `RUN:STEP`: that step's executions (every attempt) with the run's context
        detail.steps.retain(|s| &s.name == step);
    }
    if args.json {
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&detail).unwrap_or_default()
        ));
        return Ok(0);
    }
    let style = Style::stdout(color);
    let mut o = render(&detail, &style);
    for s in &detail.steps {
        if args.logs && (s.stdout_bytes > 0 || s.stderr_bytes > 0) {
            for stream in ["stdout", "stderr"] {
                let data = query::step_log(&store.conn, s.exec_id, stream)?;
                if data.is_empty() {
                    continue;
                }
                let attempt = if s.attempt > 1 {
                    format!(" attempt {}", s.attempt)
                } else {
                    String::new()
                };
                o += &format!(
                    "\n{} {}{attempt} {}\n",
                    style.bold("──"),
                    s.name,
                    style.dim(stream)
                );
                o += &String::from_utf8_lossy(&data);
            }
        }
    }
    if args.patch
        && let Some(diff) = detail.git.as_ref().and_then(|g| g.diff.as_ref())
    {
        o += &format!(
            "\n{}\n",
            style.bold("uncommitted diff at the start of the run:")
        );
        o += diff;
    }
    emit(&o);
    Ok(0)
}

/// One file of a directory version (`show DIR --files`).
#[derive(Serialize)]
struct FileRow {
    /// relative to the directory
    path: String,
    hash: String,
    size: u64,
    mode: String,
}

/// The model card's JSON: the card, plus the file a target named inside a directory, plus the
/// directory's files with `--files`.
#[derive(Serialize)]
struct CardJson<'a> {
    #[serde(flatten)]
    card: &'a Card,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a Member>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<FileRow>>,
    /// the model versions this version is registered as
    models: Vec<ModelName>,
}

/// A name a version is registered under (`mlrun model register`), in the card.
#[derive(Serialize)]
struct ModelName {
    name: String,
    version: String,
    aliases: Vec<String>,
}

/// `mlrun show PATH`: the model card of a version, or of a file inside a directory version.
fn show_version(
    store: &Store,
    v: &Version,
    file: Option<Member>,
    note: Option<String>,
    args: &ShowArgs,
    color: ColorChoice,
) -> Result<i32> {
    if let Some(n) = note {
        Style::stderr(color).note(&n);
    }
    let card = lineage::card(&store.conn, v.av_id)?;
    let files = match (args.files, v.kind.as_str(), &file) {
        (true, "dir", None) => Some(
            query::dir_entry_list(&store.conn, &v.hash)?
                .into_iter()
                .map(|e| FileRow {
                    path: e.relpath,
                    hash: e.hash,
                    size: e.size,
                    mode: format!("{:o}", e.mode),
                })
                .collect::<Vec<_>>(),
        ),
        (true, ..) => {
            let path = file.as_ref().map_or(v.path.as_str(), |m| m.path.as_str());
            Style::stderr(color).note(&format!(
                "`--files` lists the files of a directory version; `{path}` is a file"
            ));
            None
        }
        _ => None,
    };
    let names: Vec<ModelName> = crate::store::models::versions_of_av(&store.conn, v.av_id)?
        .into_iter()
        .map(|m| ModelName {
            name: m.name,
            version: m.version,
            aliases: m.aliases,
        })
        .collect();
    if args.json {
        let out = CardJson {
            card: &card,
            file: file.as_ref(),
            files,
            models: names,
        };
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&out).unwrap_or_default()
        ));
        return Ok(0);
    }
    let style = Style::stdout(color);
    let mut o = match &file {
        Some(m) => render_file_card(&card, m, &style),
        None => render_card(&card, &style),
    };
    if !names.is_empty() {
        let line = format!(
            "  model     {}\n",
            names
                .iter()
                .map(|m| {
                    let mut s = format!("{}@{}", m.name, m.version);
                    if !m.aliases.is_empty() {
                        s += &format!(" ({})", m.aliases.join(", "));
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        // under the `content` line of the card's head
        let at = o
            .find("\n  content ")
            .and_then(|i| o[i + 1..].find('\n').map(|j| i + j + 2))
            .unwrap_or(0);
        o.insert_str(at, &line);
    }
    if let Some(files) = &files {
        o += &format!(
            "\n{}\n",
            style.bold(&format!("files of {}/ ({})", v.path, files.len()))
        );
        let w = files.iter().map(|f| f.path.len()).max().unwrap_or(0);
        for f in files {
            o += &format!(
                "  {:<w$}  {}  {:>10}\n",
                f.path,
                style.dim(short_hash(&f.hash)),
                report::size(f.size)
            );
        }
    }
    emit(&o);
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

fn detail_has_retries(d: &RunDetail, step: &str) -> bool {
    d.steps.iter().any(|s| s.name == step && s.attempt > 1)
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
        let verdict = d
            .replay_verdict
            .as_deref()
            .map(|v| style.status(v))
            .unwrap_or_else(|| "no verdict".into());
        let shown = d.replay_of_short.as_deref().unwrap_or(r);
        o += &format!("  replay    of run {} · {verdict}\n", style.cyan(shown));
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
        let p = report::params_line(&d.params);
        o += &format!("  params    {}\n", p);
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

fn version_size(kind: &str, size: i64, nfiles: i64) -> String {
    if kind == "dir" {
        format!(
            "{nfiles} file{}, {}",
            if nfiles == 1 { "" } else { "s" },
            report::size(size as u64)
        )
    } else {
        report::size(size as u64)
    }
}

/// The model card of one artifact version.
pub fn render_card(c: &Card, style: &Style) -> String {
    let v = &c.version;
    let slash = if v.kind == "dir" { "/" } else { "" };
    let mut o = format!(
        "{} {}{slash}  {}  {}\n",
        style.bold("artifact"),
        style.bold(&v.path),
        style.cyan(short_hash(&v.hash)),
        version_size(&v.kind, v.size, v.nfiles)
    );
    o += &format!("  content   {}\n", v.hash);
    o + &card_body(c, style)
}

/// The card of a file inside a directory version: its own hash and size, then what made the
/// directory version holding it (the file was produced with it).
pub fn render_file_card(c: &Card, m: &Member, style: &Style) -> String {
    let v = &c.version;
    let mut o = format!(
        "{} {}  {}  {}\n",
        style.bold("artifact"),
        style.bold(&m.path),
        style.cyan(short_hash(&m.hash)),
        report::size(m.size)
    );
    o += &format!("  content   {}\n", m.hash);
    o += &format!(
        "  part of   {}/  {}  {} {}\n",
        v.path,
        style.cyan(short_hash(&v.hash)),
        version_size(&v.kind, v.size, v.nfiles),
        style.dim(&format!("(`mlrun show {}/ --files` lists them)", v.path))
    );
    o + &card_body(c, style)
}

/// Everything of a card below its first lines: producer, inputs, readers, versions.
fn card_body(c: &Card, style: &Style) -> String {
    let v = &c.version;
    let slash = if v.kind == "dir" { "/" } else { "" };
    let mut o = String::new();
    if !c.stored {
        o += &format!(
            "  bytes     {}\n",
            if c.in_git {
                style.dim("not in the object store: git has them at the recorded commit")
            } else {
                style.yellow("not stored: this version cannot be restored (removed by `mlrun gc`, or kept with `store = false` / `--no-store`)")
            }
        );
    }
    match (&c.produced_by, &c.run) {
        (Some(e), Some(r)) => {
            o += &format!(
                "  made by   step `{}` of run {} ({}) · {}\n",
                e.step,
                style.cyan(&r.short_id),
                r.pipeline,
                style.status(&e.status)
            );
            let when = e.started_at.map_or_else(|| "-".into(), time::local);
            let took = e
                .started_at
                .zip(e.ended_at)
                .map_or_else(String::new, |(s, t)| {
                    format!(" · took {}", report::duration_ms(t - s))
                });
            o += &format!("  when      {when}{took}\n");
            let mut host = format!("{}@{}", r.user, r.hostname);
            if let Some(env) = &c.environment {
                host += &format!(
                    " · {} {} · kernel {} · {}",
                    env.os, env.os_version, env.kernel, env.arch
                );
            }
            o += &format!("  host      {host}\n");
            if let Some(g) = &c.git {
                o += &format!("  commit    {}\n", git_line(g));
            }
            o += &format!("  command   {}\n", e.cmd);
            if !e.params.is_empty() {
                let p = report::params_line(&e.params);
                o += &format!("  params    {}\n", p);
            }
            if !e.metrics.is_empty() {
                let m = report::metrics_line(&e.metrics);
                o += &format!("  metrics   {}\n", m);
            }
        }
        _ if c.gap => {
            let why = c.gap_reason.as_deref().unwrap_or(GAP_REASON);
            o += &format!("  made by   {}\n", style.red(&format!("⚠ {why}")));
        }
        _ => {
            o += "  made by   no step: a file tracked in git, read as it was committed\n";
        }
    }
    if !c.inputs.is_empty() {
        o += &format!("\n{}\n", style.bold("made from"));
        let w = c
            .inputs
            .iter()
            .map(|i| i.version.path.len() + usize::from(i.version.kind == "dir"))
            .max()
            .unwrap_or(0);
        for i in &c.inputs {
            let iv = &i.version;
            let p = format!("{}{}", iv.path, if iv.kind == "dir" { "/" } else { "" });
            let whence = match (&i.produced_by, i.origin.as_deref()) {
                (Some(p), _) => format!("made by `{}` in run {}", p.step, style.cyan(&p.short_id)),
                (None, Some("git")) => "tracked in git at the commit above".into(),
                (None, _) if i.uncommitted => {
                    "tracked in git, with uncommitted edits (diff recorded)".into()
                }
                _ if i.gap => style.red(&format!(
                    "⚠ {}",
                    i.gap_reason.as_deref().unwrap_or(GAP_REASON)
                )),
                _ => "no recorded producer".into(),
            };
            o += &format!(
                "  {p:<w$}  {}  {:>16}  {whence}\n",
                style.dim(short_hash(&iv.hash)),
                version_size(&iv.kind, iv.size, iv.nfiles)
            );
        }
    }
    if !c.used_by.is_empty() {
        o += &format!(
            "\n{}\n",
            style.bold(&if c.used_by_total > c.used_by.len() {
                format!(
                    "used by (newest {} of {})",
                    c.used_by.len(),
                    c.used_by_total
                )
            } else {
                "used by".to_string()
            })
        );
        for u in &c.used_by {
            let e = &u.exec;
            let m = report::metrics_line(&e.metrics);
            o += &format!(
                "  `{}` in run {} · {}{}\n",
                e.step,
                style.cyan(&u.short_id),
                style.status(&e.status),
                if m.is_empty() {
                    String::new()
                } else {
                    format!(" · {}", m)
                }
            );
        }
    }
    if !c.also_produced_by.is_empty() {
        o += &format!("\n{}\n", style.bold("same content also made by"));
        for p in &c.also_produced_by {
            o += &format!(
                "  `{}` in run {} · {}{}\n",
                p.step,
                style.cyan(&p.short_id),
                style.status(&p.status),
                if p.status == "cached" || p.status == "restored" {
                    " (reused the result above)"
                } else {
                    ""
                }
            );
        }
    }
    o += &format!(
        "\n{}\n",
        style.bold(&format!(
            "versions of {}{slash} ({})",
            v.path, c.versions_total
        ))
    );
    for ov in &c.versions {
        let this = ov.version.av_id == v.av_id;
        let who = match (&ov.short_id, &ov.step) {
            (Some(r), Some(s)) => format!(
                "{} `{s}` in run {}",
                if ov.produced { "made by" } else { "read by" },
                style.cyan(r)
            ),
            _ => "no run".into(),
        };
        o += &format!(
            "  {} {}  {}  {:>16}  {who}{}\n",
            if this { "*" } else { " " },
            style.dim(short_hash(&ov.version.hash)),
            time::local(ov.at.unwrap_or(ov.version.first_seen)),
            version_size(&ov.version.kind, ov.version.size, ov.version.nfiles),
            if this { "  ← this version" } else { "" }
        );
    }
    if c.versions_total > c.versions.len() {
        o += &format!(
            "  {}\n",
            style.dim(&format!(
                "… and {} older",
                c.versions_total - c.versions.len()
            ))
        );
    }
    o
}

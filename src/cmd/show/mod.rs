//! `mlrun show RUN`: everything recorded about one run.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use serde::Serialize;

use crate::cmd::target::{self, Target};
use crate::error::{Error, Result};
use crate::exec::capture::Lines;
use crate::report::Role;
use crate::report::{self, ColorChoice, Style, emit, short_hash, time};
use crate::store::lineage::{Card, GAP_REASON, Member, Version};
use crate::store::logs::LogObjects;
use crate::store::packages::EnvPackages;
use crate::store::query::{self, EnvInfo, GitInfo, IoInfo, RunDetail};
use crate::store::{self, Store};

#[derive(Debug, clap::Args)]
#[command(after_help = crate::cmd::target::TARGET_HELP)]
pub struct ShowArgs {
    /// A run (id prefix, `latest`, `latest~1`, `latest-replay`), or an artifact: PATH,
    /// PATH@RUN or a content-hash prefix
    #[arg(value_name = "TARGET", default_value = "latest")]
    pub target: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,

    /// For a directory version: list its files, each with its hash and size
    #[arg(long)]
    pub files: bool,

    /// Also print each step's captured stdout and stderr (a long log: its first and last
    /// 64 KiB, with a line saying how much was cut)
    #[arg(long)]
    pub logs: bool,

    /// Print every log whole, from the object store (implies --logs)
    #[arg(long)]
    pub full: bool,

    /// Print only this stream of one step execution (TARGET: RUN:STEP), whole and byte for
    /// byte as recorded, and nothing else: `mlrun show latest:train --log stdout > train.log`
    #[arg(long, value_name = "STREAM", value_parser = ["stdout", "stderr"], conflicts_with_all = ["json", "logs", "patch"])]
    pub log: Option<String>,

    /// Also print the uncommitted diff recorded at the start of the run
    #[arg(long)]
    pub patch: bool,

    /// Also list the packages installed for each step's interpreters (name and exact version)
    #[arg(long)]
    pub packages: bool,
}

pub fn show(args: ShowArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    let mut only_step = None;
    let resolved = target::resolve(&store, &args.target)?;
    if let Some(stream) = &args.log {
        return one_log(&store, resolved, stream);
    }
    let id = match resolved {
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
    let mut detail = store.run_detail(&id, args.patch || args.json)?;
    if let Some(step) = &only_step {
        // `RUN:STEP`: that step's executions (every attempt) with the run's context
        detail.steps.retain(|s| &s.name == step);
    }
    detail.determinism = store
        .determinism_of_pipeline(&detail.pipeline)?
        .into_iter()
        .filter(|(step, _)| detail.steps.iter().any(|s| &s.name == step))
        .collect();
    if args.json {
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&detail).unwrap_or_default()
        ));
        return Ok(0);
    }
    let style = Style::stdout(color);
    let mut out = Out::stdout();
    out.text(&render(&detail, &style));
    if args.logs || args.full {
        let objects = LogObjects::new(&store.dir);
        for s in &detail.steps {
            // a reused step ran nothing: its logs are those of the execution it reused
            let (exec, from) = match (&s.reused_run, s.stdout_bytes + s.stderr_bytes) {
                (Some(_), 0) => match store.reused_origin(s.exec_id)? {
                    Some((e, run)) if e != s.exec_id => (e, Some(store.short_id(&run)?)),
                    _ => (s.exec_id, None),
                },
                _ => (s.exec_id, None),
            };
            for stream in ["stdout", "stderr"] {
                let data = store.step_log(exec, stream)?;
                if data.bytes == 0 {
                    continue;
                }
                let attempt = if s.attempt > 1 {
                    format!(" attempt {}", s.attempt)
                } else {
                    String::new()
                };
                let reused = match &from {
                    Some(run) => format!(
                        " {}",
                        style.paint(
                            Role::Muted,
                            &format!(
                                "(from run {run}: this run reused that execution, {})",
                                s.status
                            )
                        )
                    ),
                    None => String::new(),
                };
                out.text(&format!(
                    "\n{} {}{attempt} {}{reused}\n",
                    style.paint(Role::Strong, "──"),
                    s.name,
                    style.paint(Role::Muted, stream)
                ));
                let name = format!("{}:{}", from.as_deref().unwrap_or(&detail.short_id), s.name);
                print_log(&mut out, &objects, &data, args.full, &name, &style)?;
            }
        }
    } else {
        // a failed step's last words, without --logs
        for s in detail
            .steps
            .iter()
            .filter(|s| matches!(s.status.as_str(), "failed" | "timed_out" | "interrupted"))
        {
            let data = store.step_log(s.exec_id, "stderr")?;
            let bytes = data.tail.as_deref().unwrap_or(&data.head[..]);
            let text = String::from_utf8_lossy(bytes);
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                continue;
            }
            let from = lines.len().saturating_sub(FAILED_TAIL_LINES);
            out.text(&format!(
                "\n{} {} {} {}\n",
                style.paint(Role::Strong, "──"),
                s.name,
                style.paint(Role::Muted, "stderr"),
                style.paint(
                    Role::Muted,
                    &if from > 0 || data.tail.is_some() {
                        format!(
                            "(its last {} lines; `mlrun show {}:{} --logs` prints the rest)",
                            lines.len() - from,
                            detail.short_id,
                            s.name
                        )
                    } else {
                        format!("({} failed)", s.name)
                    }
                )
            ));
            out.text(&format!("{}\n", lines[from..].join("\n")));
        }
    }
    if args.packages {
        let envs: Vec<(&String, &EnvPackages)> = run_package_envs(&detail)
            .into_iter()
            .map(|(p, e, _)| (p, e))
            .collect();
        if envs.is_empty() {
            // a store from before packages were recorded keeps the interpreters its steps used
            let python = detail
                .steps
                .iter()
                .filter_map(|s| s.env_id.as_ref().and_then(|e| detail.environments.get(e)))
                .flat_map(|e| e.interpreters.keys())
                .find(|p| {
                    let base = p.rsplit('/').next().unwrap_or(p);
                    base.starts_with("python") || base.starts_with("pypy")
                });
            let why = match python {
                Some(p) => format!(
                    "no packages recorded, though its steps ran `{p}`: the run was recorded by an mlrun from before packages were recorded, or the interpreter's environment could not be read"
                ),
                None => "no packages recorded: no step ran a Python interpreter (or one in a conda environment)".to_string(),
            };
            out.text(&format!("\n{}\n", style.paint(Role::Muted, &why)));
        }
        out.text(&package_lists(&envs, &style));
    }
    if args.patch
        && let Some(diff) = detail.git.as_ref().and_then(|g| g.diff.as_ref())
    {
        out.text(&format!(
            "\n{}\n",
            style.paint(Role::Strong, "uncommitted diff at the start of the run:")
        ));
        out.text(diff);
    }
    out.finish();
    if let Some(n) = crate::live::pending_note(&store, Some(&id)) {
        Style::stderr(color).note(&n);
    }
    Ok(0)
}

/// How many lines of a failed step's stderr `show` prints without `--logs`.
const FAILED_TAIL_LINES: usize = 20;

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
    let card = store.card(v.av_id)?;
    let files = match (args.files, v.kind.as_str(), &file) {
        (true, "dir", None) => Some(
            store
                .dir_entry_list(&v.hash)?
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
    let names: Vec<ModelName> = store
        .model_versions_of(v.av_id)?
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
            style.paint(
                Role::Strong,
                &format!("files of {}/ ({})", v.path, files.len())
            )
        );
        let w = files.iter().map(|f| f.path.len()).max().unwrap_or(0);
        for f in files {
            o += &format!(
                "  {:<w$}  {}  {:>10}\n",
                f.path,
                style.paint(Role::Muted, short_hash(&f.hash)),
                report::size(f.size)
            );
        }
    }
    if args.packages
        && let Some(env) = &card.environment
    {
        let envs: Vec<(&String, &EnvPackages)> = env.packages.iter().collect();
        o += &package_lists(&envs, &style);
    }
    emit(&o);
    Ok(0)
}

/// Where `show` writes: stdout, buffered; a closed pipe (`| head`) ends the output quietly.
/// Log bytes go out as recorded, except to a terminal, where they are made safe to look at
/// (`terminal_safe`): a log replayed raw could move the cursor, recolour or retitle the
/// terminal, or hide lines.
struct Out {
    w: std::io::BufWriter<std::io::Stdout>,
    closed: bool,
    terminal: bool,
}

impl Out {
    fn stdout() -> Out {
        Out {
            w: std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout()),
            closed: false,
            terminal: std::io::stdout().is_terminal(),
        }
    }

    fn text(&mut self, s: &str) {
        self.raw(s.as_bytes());
    }

    fn raw(&mut self, b: &[u8]) {
        if !self.closed && self.w.write_all(b).is_err() {
            self.closed = true;
        }
    }

    /// A log, from `r`, in constant memory.
    fn log(&mut self, mut r: impl Read) -> std::io::Result<()> {
        let mut lines = Lines::new(&[]);
        let mut buf = vec![0u8; 256 * 1024];
        while !self.closed {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if self.terminal {
                lines.push(&buf[..n], &[], |l| self.text(&terminal_safe(l)));
            } else {
                self.raw(&buf[..n]);
            }
        }
        lines.finish(|l| self.text(&terminal_safe(l)));
        Ok(())
    }

    fn finish(mut self) {
        let _ = self.w.flush();
    }
}

/// A log's bytes as a terminal can show them without obeying them: control characters in
/// caret notation (ESC as `^[`, as `cat -v` does), C1 controls as `\u{9b}`, invalid UTF-8 as
/// U+FFFD; tabs and newlines kept. A line redrawn with carriage returns (a progress bar) shows
/// its last state, as it did on the terminal it was printed to.
fn terminal_safe(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let (body, newline) = match text.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (&*text, ""),
    };
    let body = body.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
    let mut out = String::with_capacity(body.len() + 1);
    for c in body.chars() {
        match c {
            '\t' => out.push(c),
            '\u{7f}' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c if ('\u{80}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push_str(newline);
    out
}

/// One recorded stream: whole, or its head, a line saying what was cut and where the whole
/// log is, and its tail; with `full`, the whole log from the object store.
fn print_log(
    out: &mut Out,
    objects: &LogObjects,
    data: &query::StepLogData,
    full: bool,
    name: &str,
    style: &Style,
) -> Result<()> {
    let Some(hash) = &data.full_hash else {
        return out
            .log(&data.head[..])
            .map_err(|e| Error::other("cannot print the log").cause(e));
    };
    if full && data.stored {
        return out.log(objects.open(hash)?).map_err(|e| {
            Error::other(format!("the whole log of `{name}` cannot be read"))
                .cause(e)
                .hint("`mlrun fsck` checks every stored log")
        });
    }
    let tail = data.tail.as_deref().unwrap_or_default();
    out.log(&data.head[..])
        .map_err(|e| Error::other("cannot print the log").cause(e))?;
    if !data.head.ends_with(b"\n") {
        out.text("\n");
    }
    let cut = (data.bytes - data.head.len() as i64 - tail.len() as i64).max(0) as u64;
    let whole = if data.stored && objects.has(hash) {
        format!(
            "the whole log ({}) is object sha256:{hash}; `mlrun show {name} --logs --full` prints it",
            report::size(data.bytes as u64)
        )
    } else {
        format!(
            "the whole log (sha256:{hash}) is not in the store: it could not be kept, or `mlrun gc` deleted it"
        )
    };
    out.text(&format!(
        "{}\n",
        style.paint(
            Role::Muted,
            &format!("… {} cut: {whole}", report::size(cut))
        )
    ));
    out.log(tail)
        .map_err(|e| Error::other("cannot print the log").cause(e))
}

/// `show RUN:STEP --log STREAM`: that stream's bytes and nothing else.
fn one_log(store: &Store, target: Target, stream: &str) -> Result<i32> {
    let (exec_id, name) = match target {
        Target::Exec {
            run_id,
            step,
            exec_id,
        } => (exec_id, format!("{}:{step}", store.short_id(&run_id)?)),
        Target::Run(run_id) => {
            let short = store.short_id(&run_id)?;
            let steps = store.steps_of(&run_id)?;
            match steps.as_slice() {
                [only] => (
                    store.exec_of(&run_id, only)?.unwrap_or_default(),
                    format!("{short}:{only}"),
                ),
                _ => {
                    return Err(Error::other(format!(
                        "--log prints one step's log, and run {short} has {} steps",
                        steps.len()
                    ))
                    .hint(format!(
                        "name the step: `mlrun show {short}:STEP --log {stream}` ({})",
                        steps.join(", ")
                    )));
                }
            }
        }
        Target::Version(..) | Target::File(..) => {
            return Err(
                Error::other("--log needs a step execution (RUN:STEP), not an artifact")
                    .hint("`mlrun show PATH` names the run and step that made it"),
            );
        }
    };
    let data = store.step_log(exec_id, stream)?;
    let mut out = Out::stdout();
    let objects = LogObjects::new(&store.dir);
    let result = match &data.full_hash {
        None => out.log(&data.head[..]).map_err(|e| Error::other("cannot print the log").cause(e)),
        Some(hash) if data.stored => out.log(objects.open(hash)?).map_err(|e| {
            Error::other(format!("the whole {stream} of `{name}` cannot be read"))
                .cause(e)
                .hint("`mlrun fsck` checks every stored log")
        }),
        Some(hash) => Err(Error::other(format!(
            "the whole {stream} of `{name}` (sha256:{hash}) is not in the store: it could not be kept, or `mlrun gc` deleted it"
        ))
        .hint(format!("`mlrun show {name} --logs` prints its first and last 64 KiB"))),
    };
    out.finish();
    result.map(|()| 0)
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
fn package_summary(e: &EnvPackages) -> String {
    format!(
        "{} {} · {} package{}",
        e.env.kind,
        e.env.prefix,
        e.env.count,
        if e.env.count == 1 { "" } else { "s" }
    )
}

/// `--packages`: each environment's distributions, one per line.
fn package_lists(envs: &[(&String, &EnvPackages)], style: &Style) -> String {
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
        o += &format!("    cmd     {}\n", s.cmd);
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
        style.paint(Role::Strong, "artifact"),
        style.paint(Role::Strong, &v.path),
        style.paint(Role::Accent, short_hash(&v.hash)),
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
        style.paint(Role::Strong, "artifact"),
        style.paint(Role::Strong, &m.path),
        style.paint(Role::Accent, short_hash(&m.hash)),
        report::size(m.size)
    );
    o += &format!("  content   {}\n", m.hash);
    o += &format!(
        "  part of   {}/  {}  {} {}\n",
        v.path,
        style.paint(Role::Accent, short_hash(&v.hash)),
        version_size(&v.kind, v.size, v.nfiles),
        style.paint(
            Role::Muted,
            &format!("(`mlrun show {}/ --files` lists them)", v.path)
        )
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
                style.paint(
                    Role::Muted,
                    "not in the object store: git has them at the recorded commit",
                )
            } else {
                style.paint(Role::Warn, "not stored: this version cannot be restored (removed by `mlrun gc`, or kept with `store = false` / `--no-store`)")
            }
        );
    }
    match (&c.produced_by, &c.run) {
        (Some(e), Some(r)) => {
            o += &format!(
                "  made by   step `{}` of run {} ({}) · {}\n",
                e.step,
                style.paint(Role::Accent, &r.short_id),
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
            if let Some(env) = &c.environment {
                for (prog, p) in &env.packages {
                    o += &format!("  packages  {prog}: {}\n", package_summary(p));
                }
            }
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
            o += &format!(
                "  made by   {}\n",
                style.paint(Role::Bad, &format!("⚠ {why}"))
            );
        }
        _ => {
            o += "  made by   no step: a file tracked in git, read as it was committed\n";
        }
    }
    if !c.inputs.is_empty() {
        o += &format!("\n{}\n", style.paint(Role::Strong, "made from"));
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
                (Some(p), _) => format!(
                    "made by `{}` in run {}",
                    p.step,
                    style.paint(Role::Accent, &p.short_id)
                ),
                (None, Some("git")) => "tracked in git at the commit above".into(),
                (None, _) if i.uncommitted => {
                    "tracked in git, with uncommitted edits (diff recorded)".into()
                }
                _ if i.gap => style.paint(
                    Role::Bad,
                    &format!("⚠ {}", i.gap_reason.as_deref().unwrap_or(GAP_REASON)),
                ),
                _ => "no recorded producer".into(),
            };
            o += &format!(
                "  {p:<w$}  {}  {:>16}  {whence}\n",
                style.paint(Role::Muted, short_hash(&iv.hash)),
                version_size(&iv.kind, iv.size, iv.nfiles)
            );
        }
    }
    if !c.used_by.is_empty() {
        o += &format!(
            "\n{}\n",
            style.paint(
                Role::Strong,
                &if c.used_by_total > c.used_by.len() {
                    format!(
                        "used by (newest {} of {})",
                        c.used_by.len(),
                        c.used_by_total
                    )
                } else {
                    "used by".to_string()
                }
            )
        );
        for u in &c.used_by {
            let e = &u.exec;
            let m = report::metrics_line(&e.metrics);
            o += &format!(
                "  `{}` in run {} · {}{}\n",
                e.step,
                style.paint(Role::Accent, &u.short_id),
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
        o += &format!(
            "\n{}\n",
            style.paint(Role::Strong, "same content also made by")
        );
        for p in &c.also_produced_by {
            o += &format!(
                "  `{}` in run {} · {}{}\n",
                p.step,
                style.paint(Role::Accent, &p.short_id),
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
        style.paint(
            Role::Strong,
            &format!("versions of {}{slash} ({})", v.path, c.versions_total)
        )
    );
    for ov in &c.versions {
        let this = ov.version.av_id == v.av_id;
        let who = match (&ov.short_id, &ov.step) {
            (Some(r), Some(s)) => format!(
                "{} `{s}` in run {}",
                if ov.produced { "made by" } else { "read by" },
                style.paint(Role::Accent, r)
            ),
            _ => "no run".into(),
        };
        o += &format!(
            "  {} {}  {}  {:>16}  {who}{}\n",
            if this { "*" } else { " " },
            style.paint(Role::Muted, short_hash(&ov.version.hash)),
            time::local(ov.at.unwrap_or(ov.version.first_seen)),
            version_size(&ov.version.kind, ov.version.size, ov.version.nfiles),
            if this { "  ← this version" } else { "" }
        );
    }
    if c.versions_total > c.versions.len() {
        o += &format!(
            "  {}\n",
            style.paint(
                Role::Muted,
                &format!("… and {} older", c.versions_total - c.versions.len())
            )
        );
    }
    o
}

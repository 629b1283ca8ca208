//! `model export-tags --import`: GTO tags already in the repository read back into the
//! registry (versions and alias moves), skipping what the registry already holds.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::fingerprint::system::user_name;
use crate::report::{emit, short_hash, time};
use crate::store::models::{self};
use crate::store::record::now_ms;
use crate::store::{self, Store};

use super::*;

/// One annotated tag of the repository.
pub(super) struct GitTag {
    name: String,
    commit: String,
    /// seconds since the epoch
    date: i64,
    tagger: String,
    message: String,
}

pub(super) fn read_tags(root: &Path) -> Result<Vec<GitTag>> {
    let listing = git(
        root,
        &[
            "for-each-ref",
            "refs/tags",
            "--format=%(refname:strip=2)%00%(objecttype)%00%(*objectname)%00%(taggerdate:unix)%00%(taggername)%00%(contents)%00%00",
        ],
        &[],
    )?;
    let mut out = Vec::new();
    for rec in listing.split("\0\0") {
        let f: Vec<&str> = rec.trim_start_matches('\n').splitn(6, '\0').collect();
        let [name, kind, commit, date, tagger, message] = f.as_slice() else {
            continue;
        };
        // GTO reads annotated tags only
        if *kind != "tag" {
            continue;
        }
        out.push(GitTag {
            name: name.to_string(),
            commit: commit.to_string(),
            date: date.parse().unwrap_or(0),
            tagger: tagger.to_string(),
            message: message.trim_end().to_string(),
        });
    }
    Ok(out)
}

/// A tag name parsed as GTO does.
pub(super) enum GtoTag {
    Register {
        name: String,
        version: String,
    },
    Deregister,
    Stage {
        name: String,
        stage: String,
        assign: bool,
        counter: u64,
    },
    Other,
}

pub(super) fn parse_gto_tag(tag: &str) -> Option<GtoTag> {
    const NAME: &str = "[a-z][a-z0-9/-]*[a-z0-9]";
    const SEMVER: &str =
        r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?";
    let re = regex::Regex::new(&format!(
        r"^(?P<artifact>{NAME})(?:(?:#(?P<stage>{NAME})|@(?P<version>v{SEMVER}))(?P<cancel>!?)|@(?P<other>deprecated|created))(?:#(?P<counter>[0-9]+))?$"
    ))
    .ok()?;
    let c = re.captures(tag)?;
    let name = c["artifact"].to_string();
    let cancel = c.name("cancel").is_some_and(|m| m.as_str() == "!");
    Some(if let Some(v) = c.name("version") {
        let version = v.as_str().to_string();
        if cancel {
            GtoTag::Deregister
        } else {
            GtoTag::Register { name, version }
        }
    } else if let Some(st) = c.name("stage") {
        GtoTag::Stage {
            name,
            stage: st.as_str().to_string(),
            assign: !cancel,
            counter: c
                .name("counter")
                .and_then(|m| m.as_str().parse().ok())
                .unwrap_or(0),
        }
    } else {
        GtoTag::Other
    })
}

/// What `import-tags` did, or would do, with each tag.
#[derive(Debug, Serialize)]
pub(super) struct Imported {
    tag: String,
    /// `registered`, `already`, `moved`, `current` (the alias already points there),
    /// `skipped`; with --dry-run `would-register`, `would-move`
    status: String,
    detail: String,
}

pub(super) fn import_tags(args: ModelExportTagsArgs, store_dir: Option<&Path>) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let mut store = Store::open_existing(&dir)?;
    let root = project_repo(
        &dir,
        "import-tags reads the git tags of the project's repository",
    )?;
    // artifacts.yaml paths are relative to the repository's top; mlrun's to the project
    let prefix = git(&root, &["rev-parse", "--show-prefix"], &[])?
        .trim()
        .to_string();
    let mut tags = read_tags(&root)?;
    tags.sort_by_key(|t| {
        let counter = match parse_gto_tag(&t.name) {
            Some(GtoTag::Stage { counter, .. }) => counter,
            _ => 0,
        };
        (t.date, counter)
    });
    let mut im = Importer {
        store: &mut store,
        root: &root,
        prefix: &prefix,
        by: user_name(),
        now: now_ms(),
        dry_run: args.dry_run,
        done: Vec::new(),
    };
    // registrations first: a stage names a version by its commit
    // (name, commit) → label
    let mut at_commit: BTreeMap<(String, String), String> = BTreeMap::new();
    for t in &tags {
        match parse_gto_tag(&t.name) {
            Some(GtoTag::Register { name, version }) => {
                im.register(t, name, &version, &mut at_commit)?
            }
            Some(GtoTag::Deregister) => im.note(
                &t.name,
                "skipped",
                "mlrun never deregisters a version (versions are immutable)".into(),
            ),
            Some(GtoTag::Other) => {
                im.note(&t.name, "skipped", "deprecations are not imported".into())
            }
            _ => {}
        }
    }
    let (active, last) = im.replay_stages(&tags, &at_commit);
    let log = im.store.alias_log(None)?;
    for ((name, stage), t) in &last {
        let want = active
            .get(&(name.clone(), stage.clone()))
            .and_then(|a| a.last().cloned());
        im.move_alias(name, stage, t, want, &log)?;
    }
    report(&im.done, tags.len(), args.json);
    Ok(0)
}

/// (model name, stage), or (model name, commit) for `at_commit`.
type NameStage = (String, String);

/// What importing tags works with, and what it did with each tag so far.
struct Importer<'a> {
    store: &'a mut Store,
    root: &'a Path,
    /// the project's directory inside the repository (`sub/`), or empty
    prefix: &'a str,
    by: String,
    now: i64,
    dry_run: bool,
    done: Vec<Imported>,
}

/// `from git tag NAME (by TAGGER, DATE)`: where an imported change came from.
fn tagged(t: &GitTag) -> String {
    format!(
        "from git tag {} (by {}, {})",
        t.name,
        t.tagger,
        time::local(t.date * 1000)
    )
}

impl Importer<'_> {
    fn note(&mut self, tag: &str, status: &str, detail: String) {
        self.done.push(Imported {
            tag: tag.to_string(),
            status: status.to_string(),
            detail,
        })
    }

    /// A registration tag: the version it names registered (its label kept in `at_commit`
    /// for the stage tags), or why not.
    fn register(
        &mut self,
        t: &GitTag,
        name: String,
        version: &str,
        at_commit: &mut BTreeMap<(String, String), String>,
    ) -> Result<()> {
        let label = crate::pipeline::model_name::parse_version(version)?;
        // mlrun's own numbers read back as they were written
        let label = if label.semver == format!("{}.0.0", label.major) {
            crate::pipeline::model_name::parse_version(&label.major.to_string())?
        } else {
            label
        };
        let Some(av) = self.version_named(t, &name)? else {
            return Ok(());
        };
        if crate::pipeline::model_name::check_name(&name).is_err() {
            self.note(
                &t.name,
                "skipped",
                format!("`{name}` is not a model name mlrun accepts"),
            );
            return Ok(());
        }
        if self.dry_run {
            at_commit.insert((name.clone(), t.commit.clone()), label.label.clone());
            self.note(&t.name, "would-register", format!("{name}@{}", label.label));
            return Ok(());
        }
        let exec = self.store.model_producer(av, None)?;
        let run = match exec {
            Some(e) => self.store.run_of_exec(e)?,
            None => None,
        };
        let msg = format!("imported {}", tagged(t));
        match self.store.register_model(&models::NewVersion {
            name: &name,
            av_id: av,
            exec_id: exec,
            run_id: run.as_deref(),
            version: Some(&label),
            by: &self.by,
            message: Some(&msg),
            auto: false,
            at: self.now,
        }) {
            Ok(r) => {
                at_commit.insert((name.clone(), t.commit.clone()), r.version.version.clone());
                let status = if r.new { "registered" } else { "already" };
                self.note(&t.name, status, format!("{name}@{}", r.version.version));
            }
            Err(e) => self.note(&t.name, "skipped", e.message),
        }
        Ok(())
    }

    /// The recorded version a registration tag names: the `PATH HASH` line export-tags writes,
    /// else the path GTO's artifacts.yaml gives at the tag's commit and the one version of it
    /// runs at that commit produced. None (noted): it cannot be told.
    fn version_named(&mut self, t: &GitTag, name: &str) -> Result<Option<i64>> {
        let by_line = t.message.lines().find_map(|l| {
            let (p, h) = l.rsplit_once(' ')?;
            (h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| (p.to_string(), h.to_string()))
        });
        // a line naming a version this store never recorded: artifacts.yaml may still say
        if let Some((p, h)) = by_line
            && let Some(v) = self.store.version_by_content(&p, &h)?
        {
            return Ok(Some(v.av_id));
        }
        let Some(p) = self.artifacts_yaml_path(t, name) else {
            self.note(
                &t.name,
                "skipped",
                "neither its message nor artifacts.yaml at its commit says which file it is".into(),
            );
            return Ok(None);
        };
        match self.store.produced_at_commit(&p, &t.commit)?.as_slice() {
            [one] => Ok(Some(*one)),
            [] => {
                self.note(
                    &t.name,
                    "skipped",
                    format!(
                        "no recorded run at commit {} produced `{p}`",
                        short_hash(&t.commit)
                    ),
                );
                Ok(None)
            }
            _ => {
                self.note(
                    &t.name,
                    "skipped",
                    format!(
                        "runs at commit {} produced several versions of `{p}`",
                        short_hash(&t.commit)
                    ),
                );
                Ok(None)
            }
        }
    }

    /// The path of model `name` in GTO's artifacts.yaml at the tag's commit, relative to the
    /// project.
    fn artifacts_yaml_path(&self, t: &GitTag, name: &str) -> Option<String> {
        let prefix = self.prefix;
        let yaml = git(
            self.root,
            &["show", &format!("{}:{prefix}artifacts.yaml", t.commit)],
            &[],
        )
        .ok()
        .or_else(|| {
            git(
                self.root,
                &["show", &format!("{}:artifacts.yaml", t.commit)],
                &[],
            )
            .ok()
        });
        yaml.and_then(|y| serde_norway::from_str::<serde_json::Value>(&y).ok())
            .and_then(|v| v.get(name)?.get("path")?.as_str().map(str::to_string))
            .map(|p| {
                p.strip_prefix(prefix)
                    .unwrap_or(&p)
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string()
            })
    }

    /// Replay GTO's assignments per (name, stage): the labels each stage holds, newest last,
    /// and the newest tag of each.
    fn replay_stages<'t>(
        &mut self,
        tags: &'t [GitTag],
        at_commit: &BTreeMap<NameStage, String>,
    ) -> (
        BTreeMap<NameStage, Vec<String>>,
        BTreeMap<NameStage, &'t GitTag>,
    ) {
        let mut active: BTreeMap<NameStage, Vec<String>> = BTreeMap::new();
        let mut last: BTreeMap<NameStage, &GitTag> = BTreeMap::new();
        for t in tags {
            let Some(GtoTag::Stage {
                name,
                stage,
                assign,
                ..
            }) = parse_gto_tag(&t.name)
            else {
                continue;
            };
            let Some(label) = at_commit
                .get(&(name.clone(), t.commit.clone()))
                .cloned()
                .or_else(|| {
                    self.store
                        .model_versions(&name)
                        .ok()?
                        .into_iter()
                        .find(|v| v.commit.as_deref() == Some(t.commit.as_str()))
                        .map(|v| v.version)
                })
            else {
                self.note(
                    &t.name,
                    "skipped",
                    format!(
                        "no version of `{name}` is registered at commit {}",
                        short_hash(&t.commit)
                    ),
                );
                continue;
            };
            let a = active.entry((name.clone(), stage.clone())).or_default();
            a.retain(|l| *l != label);
            if assign {
                a.push(label);
            }
            last.insert((name, stage), t);
        }
        (active, last)
    }

    /// The alias moves when the newest tag leaves it somewhere other than where it points and
    /// is newer than its last move.
    fn move_alias(
        &mut self,
        name: &str,
        stage: &str,
        t: &GitTag,
        want: Option<String>,
        log: &[models::AliasMove],
    ) -> Result<()> {
        if crate::pipeline::model_name::check_alias(stage).is_err() {
            self.note(
                &t.name,
                "skipped",
                format!("`{stage}` is not an alias mlrun accepts"),
            );
            return Ok(());
        }
        let state = self.store.alias_state(name, stage)?;
        let now_at = state.as_ref().and_then(|(l, _)| l.clone());
        if now_at == want {
            self.note(
                &t.name,
                "current",
                format!("{name}@{stage} is {}", want.as_deref().unwrap_or("not set")),
            );
            return Ok(());
        }
        // a tag export-tags wrote from this store's log stands for that move, made at its own
        // time (the tag's date may have been pushed later to keep GTO's order)
        let tag_ms = t
            .message
            .lines()
            .find_map(|l| l.strip_prefix(MOVE_TRAILER))
            .and_then(|id| id.trim().parse::<i64>().ok())
            .and_then(|id| log.iter().find(|m| m.id == id))
            .filter(|m| m.name == *name && m.alias == *stage)
            .map_or(t.date * 1000, |m| m.at);
        if let Some((_, moved)) = &state
            && *moved >= tag_ms
        {
            self.note(
                &t.name,
                "skipped",
                format!("{name}@{stage} moved in mlrun after this tag"),
            );
            return Ok(());
        }
        if self.dry_run {
            self.note(
                &t.name,
                "would-move",
                format!("{name}@{stage} → {}", want.as_deref().unwrap_or("removed")),
            );
            return Ok(());
        }
        let msg = format!("imported {}", tagged(t));
        match self
            .store
            .set_alias(name, stage, want.as_deref(), &self.by, Some(&msg), self.now)
        {
            Ok(_) => self.note(
                &t.name,
                "moved",
                format!("{name}@{stage} → {}", want.as_deref().unwrap_or("removed")),
            ),
            Err(e) => self.note(&t.name, "skipped", e.message),
        }
        Ok(())
    }
}

/// What became of each tag (`--json`: the list), and how many changes that made.
fn report(done: &[Imported], tags: usize, json: bool) {
    if json {
        emit(&(serde_json::to_string_pretty(done).unwrap_or_default() + "\n"));
        return;
    }
    let mut s = String::new();
    for d in done {
        s += &format!("{:<14} {}  {}\n", d.status, d.tag, d.detail);
    }
    let changed = done
        .iter()
        .filter(|d| matches!(d.status.as_str(), "registered" | "moved"))
        .count();
    s += &format!(
        "{changed} change{} ({} tag{} read)\n",
        if changed == 1 { "" } else { "s" },
        tags,
        if tags == 1 { "" } else { "s" }
    );
    emit(&s);
}

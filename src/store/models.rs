//! Model names: registered versions (`NAME@v3`, `NAME@v1.2.0`), each bound for good to one
//! artifact version (a path and its content) and the execution that produced it, and aliases
//! (`NAME@production`): movable pointers whose every move is a row of an append-only log.
//!
//! Names and aliases follow GTO's rule, checked by `pipeline::model_name` (a step's `model` key
//! is checked with it before anything runs).

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::During;
use super::lineage::{VERSION_COLS, VERSION_COLUMNS, VERSION_FROM, version_row};
use crate::error::{Error, Result};
use crate::pipeline::model_name::{Label, check_alias, parse_version};
use crate::store::query;

/// One registered version, as listed and as printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelVersion {
    pub name: String,
    /// `v3`, `v1.2.0`
    pub version: String,
    /// the canonical semantic version (`v3` is `3.0.0`)
    pub semver: String,
    pub path: String,
    pub hash: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: i64,
    pub nfiles: i64,
    pub av_id: i64,
    /// the step execution that produced it (null: no recorded execution did)
    pub exec_id: Option<i64>,
    pub run_id: Option<String>,
    pub short_id: Option<String>,
    pub step: Option<String>,
    /// the commit the run started at, and whether the work tree was dirty
    pub commit: Option<String>,
    pub dirty: Option<bool>,
    pub registered_at: i64,
    pub registered_by: String,
    pub message: Option<String>,
    /// registered by a step's `model` key when the step ran
    pub auto: bool,
    /// the aliases pointing at it now
    pub aliases: Vec<String>,
    #[serde(skip)]
    pub id: i64,
}

/// A model version's columns after the artifact version's (`VERSION_COLS`, read by
/// `version_row`), and the tables they come from joined to `VERSION_FROM`.
const MV_COLS: &str = "m.name, mv.label, mv.semver, mv.step_exec, mv.run_id, s.step, g.commit_sha,
       g.dirty, mv.registered_at, mv.registered_by, mv.message, mv.auto, mv.id";
const MV_JOIN: &str =
    "JOIN model_versions mv ON mv.av_id = v.id JOIN models m ON m.id = mv.model_id
  LEFT JOIN step_execs s ON s.id = mv.step_exec
  LEFT JOIN runs r ON r.id = mv.run_id LEFT JOIN git_snapshots g ON g.id = r.git_start";

fn mv_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ModelVersion> {
    let v = version_row(r)?;
    let at = |i: usize| VERSION_COLUMNS + i;
    Ok(ModelVersion {
        name: r.get(at(0))?,
        version: r.get(at(1))?,
        semver: r.get(at(2))?,
        path: v.path,
        hash: v.hash,
        kind: v.kind,
        size: v.size,
        nfiles: v.nfiles,
        av_id: v.av_id,
        exec_id: r.get(at(3))?,
        run_id: r.get(at(4))?,
        short_id: None,
        step: r.get(at(5))?,
        commit: r.get(at(6))?,
        dirty: r.get(at(7))?,
        registered_at: r.get(at(8))?,
        registered_by: r.get(at(9))?,
        message: r.get(at(10))?,
        auto: r.get(at(11))?,
        aliases: Vec::new(),
        id: r.get(at(12))?,
    })
}

/// The current aliases of a model: alias → version row id.
fn current_aliases(conn: &Connection, model_id: i64) -> Result<BTreeMap<String, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.alias, l.to_version FROM model_alias_log l
          WHERE l.model_id = ?1
            AND l.id = (SELECT max(id) FROM model_alias_log x
                         WHERE x.model_id = l.model_id AND x.alias = l.alias)
            AND l.to_version IS NOT NULL",
    )?;
    let rows = stmt
        .query_map([model_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Versions matching `cond` (SQL over `mv`, `m`), newest first, with short ids and aliases.
fn versions_where(
    conn: &Connection,
    cond: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<ModelVersion>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {VERSION_COLS}, {MV_COLS} FROM {VERSION_FROM} {MV_JOIN}
         WHERE {cond} ORDER BY mv.id DESC"
    ))?;
    let mut out: Vec<ModelVersion> = stmt
        .query_map(args, mv_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut aliases: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for v in &mut out {
        if let Some(run) = &v.run_id {
            v.short_id = Some(query::short_id(conn, run)?);
        }
        if !aliases.contains_key(&v.name) {
            let id = model_id(conn, &v.name)?.unwrap_or_default();
            aliases.insert(v.name.clone(), current_aliases(conn, id)?);
        }
        v.aliases = aliases[&v.name]
            .iter()
            .filter(|(_, to)| **to == v.id)
            .map(|(a, _)| a.clone())
            .collect();
    }
    Ok(out)
}

/// Whether the store has the model tables: a store written by an older mlrun that can only be
/// opened read-only (a full disk, a read-only file system) was never migrated, and has no models.
fn registry_exists(conn: &Connection) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'model_versions'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub(super) fn model_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    if !registry_exists(conn)? {
        return Ok(None);
    }
    Ok(conn
        .query_row("SELECT id FROM models WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Every registered name, for hints.
pub(super) fn names(conn: &Connection) -> Result<Vec<String>> {
    if !registry_exists(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare("SELECT name FROM models ORDER BY name")?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// All versions of a model, newest first.
pub(super) fn versions(conn: &Connection, name: &str) -> Result<Vec<ModelVersion>> {
    versions_where(conn, "m.name = ?1", &[&name])
}

/// The model versions bound to an artifact version (for the model card).
pub(super) fn versions_of_av(conn: &Connection, av_id: i64) -> Result<Vec<ModelVersion>> {
    if !registry_exists(conn)? {
        return Ok(Vec::new());
    }
    versions_where(conn, "mv.av_id = ?1", &[&av_id])
}

/// What `NAME@REF` names: a version label (`v2`, `v1.2.0`, `2`), else a current alias.
/// `Ok(None)` when the model exists but has no such version or alias; errors when no model has
/// that name are the caller's to word.
pub(super) fn by_ref(
    conn: &Connection,
    name: &str,
    reference: &str,
) -> Result<Option<ModelVersion>> {
    let Some(mid) = model_id(conn, name)? else {
        return Ok(None);
    };
    if let Ok(l) = parse_version(reference) {
        return Ok(versions_where(
            conn,
            "mv.model_id = ?1 AND mv.semver = ?2",
            &[&mid, &l.semver],
        )?
        .pop());
    }
    if let Some(id) = current_aliases(conn, mid)?.get(reference) {
        return Ok(versions_where(conn, "mv.id = ?1", &[id])?.pop());
    }
    Ok(None)
}

/// The error for `NAME@REF` when REF is neither a version nor an alias of NAME.
pub(super) fn no_such_ref(conn: &Connection, name: &str, reference: &str) -> Result<Error> {
    let vs = versions(conn, name)?;
    let aliases = match model_id(conn, name)? {
        Some(id) => current_aliases(conn, id)?,
        None => BTreeMap::new(),
    };
    let what = if parse_version(reference).is_ok() {
        "no version"
    } else {
        "no version or alias"
    };
    let mut e = Error::other(format!("model `{name}` has {what} `{reference}`"));
    let labels: Vec<String> = vs.iter().rev().map(|v| v.version.clone()).collect();
    e = e.hint(format!("its versions: {}", labels.join(", ")));
    if !aliases.is_empty() {
        e = e.hint(format!(
            "its aliases: {}",
            aliases
                .iter()
                .map(|(a, id)| {
                    let l = vs.iter().find(|v| v.id == *id).map_or("?", |v| &v.version);
                    format!("{a} → {l}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(e)
}

/// The error for a name no model has.
pub(super) fn no_such_model(conn: &Connection, name: &str) -> Result<Error> {
    let all = names(conn)?;
    let mut e = Error::other(format!("no model is named `{name}`"));
    if let Some(best) = crate::pipeline::diag::did_you_mean(name, all.iter().map(String::as_str)) {
        e = e.hint(format!("did you mean `{best}`?"));
    }
    Ok(if all.is_empty() {
        e.hint("register one with `mlrun model register NAME PATH`, or give a step `model = \"NAME\"` in pipeline.toml")
    } else {
        e.hint(format!("registered models: {}", all.join(", ")))
    })
}

/// What to register.
pub struct NewVersion<'a> {
    pub name: &'a str,
    pub av_id: i64,
    pub exec_id: Option<i64>,
    pub run_id: Option<&'a str>,
    /// the label asked for; `None`: the next `vN`
    pub version: Option<&'a Label>,
    pub by: &'a str,
    pub message: Option<&'a str>,
    pub auto: bool,
    pub at: i64,
}

/// The outcome of a registration.
#[derive(Debug, Serialize)]
pub struct Registered {
    /// false: this content was already registered under the name (nothing was written)
    pub new: bool,
    pub version: ModelVersion,
}

/// Register a version (one immediate transaction). The same content under the same name again
/// is that version (`new: false`); a label already bound to other content is an error.
pub(super) fn register(conn: &mut Connection, nv: &NewVersion<'_>) -> Result<Registered> {
    crate::pipeline::model_name::check_name(nv.name)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT OR IGNORE INTO models (name, created_at) VALUES (?1, ?2)",
        params![nv.name, nv.at],
    )?;
    let mid: i64 = tx.query_row("SELECT id FROM models WHERE name = ?1", [nv.name], |r| {
        r.get(0)
    })?;
    let same_content = versions_where(
        &tx,
        "mv.model_id = ?1 AND mv.av_id = ?2",
        &[&mid, &nv.av_id],
    )?
    .pop();
    if let Some(v) = same_content {
        if let Some(l) = nv.version
            && l.semver != v.semver
        {
            return Err(Error::other(format!(
                "this content of `{}{}` is already registered as {}@{}, not {}",
                v.path,
                if v.kind == "dir" { "/" } else { "" },
                nv.name,
                v.version,
                l.label
            ))
            .hint("versions are immutable: one content has one version under a name; point an alias at it instead (`mlrun model alias`)"));
        }
        return Ok(Registered {
            new: false,
            version: v,
        });
    }
    let label = match nv.version {
        Some(l) => {
            if let Some(other) = versions_where(
                &tx,
                "mv.model_id = ?1 AND mv.semver = ?2",
                &[&mid, &l.semver],
            )?
            .pop()
            {
                return Err(Error::other(format!(
                    "{}@{} already exists, bound to other content: `{}{}` {}",
                    nv.name,
                    other.version,
                    other.path,
                    if other.kind == "dir" { "/" } else { "" },
                    crate::fingerprint::hash::short_hash(&other.hash)
                ))
                .hint("versions are immutable; register this content under a new version, or leave out --version for the next number"));
            }
            l.clone()
        }
        None => {
            let max: Option<i64> = tx.query_row(
                "SELECT max(major) FROM model_versions WHERE model_id = ?1",
                [mid],
                |r| r.get(0),
            )?;
            let n = max.unwrap_or(0) as u64 + 1;
            Label {
                label: format!("v{n}"),
                semver: format!("{n}.0.0"),
                major: n,
            }
        }
    };
    tx.execute(
        "INSERT INTO model_versions (model_id, label, semver, major, av_id, step_exec, run_id,
                                     registered_at, registered_by, message, auto)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            mid,
            label.label,
            label.semver,
            label.major as i64,
            nv.av_id,
            nv.exec_id,
            nv.run_id,
            nv.at,
            nv.by,
            nv.message,
            nv.auto
        ],
    )?;
    let id = tx.last_insert_rowid();
    let v = versions_where(&tx, "mv.id = ?1", &[&id])?
        .pop()
        .ok_or_else(|| Error::store("the version just registered is missing"))?;
    tx.commit()?;
    Ok(Registered {
        new: true,
        version: v,
    })
}

/// A step's `model` key: register the version of `path` with content `hash` that step execution
/// `exec_id` of run `run_id` just produced (and recorded). `Ok(None)`: nothing to register (the
/// run is a replay, which runs in a scratch tree, or the version was not recorded).
#[expect(clippy::too_many_arguments, reason = "the parts of one registration")]
pub(super) fn register_produced(
    conn: &mut Connection,
    name: &str,
    path: &str,
    hash: &str,
    exec_id: i64,
    run_id: &str,
    by: &str,
    at: i64,
) -> Result<Option<Registered>> {
    let replay: Option<String> = conn
        .query_row("SELECT replay_of FROM runs WHERE id = ?1", [run_id], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    if replay.is_some() {
        return Ok(None);
    }
    let Some(v) = crate::store::lineage::version_by_content(conn, path, hash)? else {
        return Ok(None);
    };
    register(
        conn,
        &NewVersion {
            name,
            av_id: v.av_id,
            exec_id: Some(exec_id),
            run_id: Some(run_id),
            version: None,
            by,
            message: None,
            auto: true,
            at,
        },
    )
    .map(Some)
}

/// The step execution of `run_id` that produced `av_id` (the one that really ran, else one that
/// reused it), else the version's preferred producer anywhere.
pub(super) fn producer(conn: &Connection, av_id: i64, run_id: Option<&str>) -> Result<Option<i64>> {
    if let Some(run) = run_id
        && let Some(e) = conn
            .query_row(
                "SELECT s.id FROM io_edges e JOIN step_execs s ON s.id = e.step_exec
                  WHERE e.av_id = ?1 AND e.direction = 'out' AND s.run_id = ?2
                  ORDER BY s.reused_exec IS NOT NULL, s.id DESC LIMIT 1",
                params![av_id, run],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
    {
        // a reused execution stands for the one it reused
        let reused: Option<i64> = conn.query_row(
            "SELECT reused_exec FROM step_execs WHERE id = ?1",
            [e],
            |r| r.get(0),
        )?;
        return Ok(Some(reused.unwrap_or(e)));
    }
    crate::store::lineage::preferred_producer(conn, av_id)
}

/// The version of `path` that a succeeded step of a run started at `commit` produced, when
/// exactly one such version exists (replays left out): how a git tag on a commit names content.
pub(super) fn produced_at_commit(conn: &Connection, path: &str, commit: &str) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT v.id FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id
           JOIN io_edges e ON e.av_id = v.id AND e.direction = 'out'
           JOIN step_execs s ON s.id = e.step_exec JOIN runs r ON r.id = s.run_id
           JOIN git_snapshots g ON g.id = r.git_start
          WHERE a.path = ?1 AND g.commit_sha = ?2 AND r.replay_of IS NULL
            AND s.status IN ('succeeded', 'cached', 'restored')
          LIMIT 2",
    )?;
    let rows = stmt
        .query_map(params![path, commit], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// The current alias and when it last moved (`None`: never set).
pub(super) fn alias_state(
    conn: &Connection,
    name: &str,
    alias: &str,
) -> Result<Option<(Option<String>, i64)>> {
    let Some(mid) = model_id(conn, name)? else {
        return Ok(None);
    };
    Ok(conn
        .query_row(
            "SELECT t.label, l.at FROM model_alias_log l
               LEFT JOIN model_versions t ON t.id = l.to_version
              WHERE l.model_id = ?1 AND l.alias = ?2 ORDER BY l.id DESC LIMIT 1",
            params![mid, alias],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// The run of a step execution.
pub(super) fn run_of_exec(conn: &Connection, exec_id: i64) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT run_id FROM step_execs WHERE id = ?1",
            [exec_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// One move of an alias, as logged.
#[derive(Debug, Clone, Serialize)]
pub struct AliasMove {
    pub name: String,
    pub alias: String,
    /// the version it pointed at before (null: it was not set)
    pub from: Option<String>,
    /// the version it points at after (null: removed)
    pub to: Option<String>,
    pub at: i64,
    pub by: String,
    pub message: Option<String>,
    /// the commit of the run that made `to` (or `from` for a removal), for git tags
    #[serde(skip)]
    pub commit: Option<String>,
    #[serde(skip)]
    pub id: i64,
}

/// Move (or, with `to` None, remove) an alias to a version (a label, or another alias: the
/// version it points at now). `Ok(None)`: it already pointed there (nothing is logged). Errors: no such model, no such version, removing an alias that is not set.
pub(super) fn set_alias(
    conn: &mut Connection,
    name: &str,
    alias: &str,
    to: Option<&str>,
    by: &str,
    message: Option<&str>,
    at: i64,
) -> Result<Option<AliasMove>> {
    crate::pipeline::model_name::check_name(name)?;
    check_alias(alias)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(mid) = model_id(&tx, name)? else {
        return Err(no_such_model(&tx, name)?);
    };
    let current = current_aliases(&tx, mid)?.get(alias).copied();
    let to_id = match to {
        // a version label, or another alias of the model (`alias churn production staging`
        // promotes what staging points at)
        Some(r) => match by_ref(&tx, name, r)? {
            Some(v) => Some(v.id),
            None => return Err(no_such_ref(&tx, name, r)?),
        },
        None => {
            if current.is_none() {
                return Err(Error::other(format!(
                    "model `{name}` has no alias `{alias}` to remove"
                ))
                .hint(format!("`mlrun model show {name}` lists its aliases")));
            }
            None
        }
    };
    if current == to_id {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO model_alias_log (model_id, alias, from_version, to_version, at, by, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![mid, alias, current, to_id, at, by, message],
    )?;
    let id = tx.last_insert_rowid();
    let m = alias_log(&tx, Some(mid))?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| Error::store("the alias move just logged is missing"))?;
    tx.commit()?;
    Ok(Some(m))
}

/// The alias log, oldest first: of one model, or of all.
pub(super) fn alias_log(conn: &Connection, model_id: Option<i64>) -> Result<Vec<AliasMove>> {
    let mut stmt = conn.prepare(
        "SELECT m.name, l.alias, f.label, t.label, l.at, l.by, l.message, g.commit_sha, l.id
           FROM model_alias_log l JOIN models m ON m.id = l.model_id
           LEFT JOIN model_versions f ON f.id = l.from_version
           LEFT JOIN model_versions t ON t.id = l.to_version
           LEFT JOIN runs r ON r.id = COALESCE(t.run_id, f.run_id)
           LEFT JOIN git_snapshots g ON g.id = r.git_start
          WHERE ?1 IS NULL OR l.model_id = ?1
          ORDER BY l.id",
    )?;
    let rows = stmt
        .query_map([model_id], |r| {
            Ok(AliasMove {
                name: r.get(0)?,
                alias: r.get(1)?,
                from: r.get(2)?,
                to: r.get(3)?,
                at: r.get(4)?,
                by: r.get(5)?,
                message: r.get(6)?,
                commit: r.get(7)?,
                id: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// A model with its versions (newest first), current aliases and alias history (oldest first).
#[derive(Debug, Serialize)]
pub struct Model {
    pub name: String,
    pub created_at: i64,
    pub versions: Vec<ModelVersion>,
    /// alias → version label
    pub aliases: BTreeMap<String, String>,
    pub history: Vec<AliasMove>,
}

pub(super) fn model(conn: &Connection, name: &str) -> Result<Option<Model>> {
    let Some((mid, created_at)) = conn
        .query_row(
            "SELECT id, created_at FROM models WHERE name = ?1",
            [name],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let versions = versions(conn, name)?;
    let aliases = current_aliases(conn, mid)?
        .into_iter()
        .filter_map(|(a, id)| {
            versions
                .iter()
                .find(|v| v.id == id)
                .map(|v| (a, v.version.clone()))
        })
        .collect();
    Ok(Some(Model {
        name: name.to_string(),
        created_at,
        versions,
        aliases,
        history: alias_log(conn, Some(mid))?,
    }))
}

/// Every model, by name.
pub(super) fn all(conn: &Connection) -> Result<Vec<Model>> {
    let mut out = Vec::new();
    for n in names(conn)? {
        if let Some(m) = model(conn, &n)? {
            out.push(m);
        }
    }
    Ok(out)
}

impl super::Store {
    /// The id of model `name`.
    pub fn model_id(&self, name: &str) -> Result<Option<i64>> {
        model_id(&self.conn, name).during(format_args!("looking up model `{name}`"))
    }

    /// The registered versions of model `name`, oldest first.
    pub fn model_versions(&self, name: &str) -> Result<Vec<ModelVersion>> {
        versions(&self.conn, name).during(format_args!("reading the versions of model `{name}`"))
    }

    /// The model versions that name artifact version `av_id`.
    pub fn model_versions_of(&self, av_id: i64) -> Result<Vec<ModelVersion>> {
        versions_of_av(&self.conn, av_id).during(format_args!(
            "reading the model versions of version {av_id}"
        ))
    }

    /// The version of model `name` that `reference` (a version or an alias) names.
    pub fn model_by_ref(&self, name: &str, reference: &str) -> Result<Option<ModelVersion>> {
        by_ref(&self.conn, name, reference).during(format_args!("resolving `{name}@{reference}`"))
    }

    /// The error for a reference model `name` does not have, naming the ones it has.
    pub fn no_such_model_ref(&self, name: &str, reference: &str) -> Result<Error> {
        no_such_ref(&self.conn, name, reference)
            .during(format_args!("resolving `{name}@{reference}`"))
    }

    /// The error for an unknown model, naming the closest known one.
    pub fn no_such_model(&self, name: &str) -> Result<Error> {
        no_such_model(&self.conn, name).during(format_args!("looking up model `{name}`"))
    }

    /// Register a model version (idempotent by content; one immediate transaction).
    pub fn register_model(&mut self, nv: &NewVersion<'_>) -> Result<Registered> {
        register(&mut self.conn, nv)
            .during(format_args!("registering a version of model `{}`", nv.name))
    }

    /// Register the output a step's `model` key names (see `models::register_produced`).
    #[expect(clippy::too_many_arguments, reason = "the parts of one registration")]
    pub fn register_produced_model(
        &mut self,
        name: &str,
        path: &str,
        hash: &str,
        exec_id: i64,
        run_id: &str,
        by: &str,
        at: i64,
    ) -> Result<Option<Registered>> {
        register_produced(&mut self.conn, name, path, hash, exec_id, run_id, by, at).during(
            format_args!("registering model `{name}` from step output `{path}`"),
        )
    }

    /// The execution that produced version `av_id` (in run `run_id` when given).
    pub fn model_producer(&self, av_id: i64, run_id: Option<&str>) -> Result<Option<i64>> {
        producer(&self.conn, av_id, run_id)
            .during(format_args!("finding the producer of version {av_id}"))
    }

    /// Versions of `path` that runs at commit `commit` produced.
    pub fn produced_at_commit(&self, path: &str, commit: &str) -> Result<Vec<i64>> {
        produced_at_commit(&self.conn, path, commit).during(format_args!(
            "finding versions of `{path}` made at commit {commit}"
        ))
    }

    /// Where alias `alias` of model `name` points now, and since when.
    pub fn alias_state(&self, name: &str, alias: &str) -> Result<Option<(Option<String>, i64)>> {
        alias_state(&self.conn, name, alias)
            .during(format_args!("reading alias `{alias}` of model `{name}`"))
    }

    /// The run an execution belongs to.
    pub fn run_of_exec(&self, exec_id: i64) -> Result<Option<String>> {
        run_of_exec(&self.conn, exec_id)
            .during(format_args!("reading the run of execution {exec_id}"))
    }

    /// Move (or, with `to` None, remove) an alias: one row appended to the log.
    pub fn set_alias(
        &mut self,
        name: &str,
        alias: &str,
        to: Option<&str>,
        by: &str,
        message: Option<&str>,
        at: i64,
    ) -> Result<Option<AliasMove>> {
        set_alias(&mut self.conn, name, alias, to, by, message, at)
            .during(format_args!("moving alias `{alias}` of model `{name}`"))
    }

    /// The alias moves, oldest first (of one model when given).
    pub fn alias_log(&self, model_id: Option<i64>) -> Result<Vec<AliasMove>> {
        alias_log(&self.conn, model_id).during("reading the alias log")
    }

    /// Model `name` with its versions and aliases.
    pub fn model(&self, name: &str) -> Result<Option<Model>> {
        model(&self.conn, name).during(format_args!("reading model `{name}`"))
    }

    /// Every registered model.
    pub fn all_models(&self) -> Result<Vec<Model>> {
        all(&self.conn).during("reading the registered models")
    }
}

#[cfg(test)]
mod tests;

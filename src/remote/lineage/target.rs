//! What a lineage TARGET names on the remote: the rules of `cmd::target`, over the remote's
//! keys (a path's versions are its `io_edges` rows, a directory's manifest is in `contents`).

use std::collections::HashSet;
use std::path::Path;

use super::{Remote, Seed, VKey, producer_sql};
use crate::beneath::lexical as normalise;
use crate::error::{Error, Result};
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::hash::{self, manifest_lookup};
use crate::report::{short_hash, time};
use crate::store::lineage::{Found, Member};
use crate::store::query::short_between;
use crate::store::query::{MIN_SHORT, hex_prefix, is_hex_id, is_run_name};

fn never_recorded(arg: &str) -> Error {
    Error::other(format!("`{arg}` is not in the remote's record")).hint(
        "`mlrun runs --remote` lists the runs on the remote; `mlrun push` sends local ones there",
    )
}

impl Remote {
    /// What TARGET names on the remote, by the local rules (`cmd::target`).
    pub(super) fn resolve(&mut self, arg: &str) -> Result<Found<Seed>> {
        if arg.is_empty() {
            return Err(Error::invalid("an empty target names nothing")
                .hint("name a path, PATH@RUN, a run id, RUN:STEP or a content hash"));
        }
        if let Some(found) = self.model(arg)? {
            return Ok(found);
        }
        if let Some((p, r)) = arg.rsplit_once('@')
            && !p.is_empty()
            && !r.is_empty()
            && !Path::new(arg).exists()
        {
            return self.at_run(p, r);
        }
        let on_disk = Path::new(arg);
        if on_disk.exists() {
            return self.current(arg, on_disk);
        }
        if let Some((r, step)) = arg.split_once(':')
            && !step.is_empty()
            && (is_run_name(r) || is_hex_id(r))
        {
            return self.exec(r, step);
        }
        if arg.contains('/') || arg.contains('.') {
            return self.recorded(arg)?.ok_or_else(|| never_recorded(arg));
        }
        let path = self.store_path(arg)?;
        if self.has_path(&path)?
            && let Some(t) = self.recorded(arg)?
        {
            return Ok(t);
        }
        if is_run_name(arg) {
            return Ok(Found {
                seed: Seed::Run(self.resolve_run(arg)?),
                file: None,
                note: None,
                link: None,
            });
        }
        if is_hex_id(arg) {
            return self.hex_target(arg);
        }
        Err(never_recorded(arg))
    }

    /// The model version `arg` names on the remote, by the local rule 0 (`cmd::target`):
    /// `NAME@REF` where NAME has versions there (pushed with their runs) and REF is a version
    /// (`v2`, `1.2.0`) or an alias's newest move, or `models:/NAME@REF`, which must be one.
    fn model(&mut self, arg: &str) -> Result<Option<Found<Seed>>> {
        let (forced, rest) = match arg.strip_prefix("models:/") {
            Some(r) => (true, r),
            None => (false, arg),
        };
        if !forced && Path::new(arg).exists() {
            return Ok(None);
        }
        let Some((name, reference)) = rest.split_once('@') else {
            if forced {
                return Err(Error::invalid(format!("`{arg}` names no version")).hint(
                    "write models:/NAME@VERSION or models:/NAME@ALIAS, e.g. models:/churn@v2",
                ));
            }
            return Ok(None);
        };
        if forced {
            crate::pipeline::model_name::check_name(name)?;
        }
        let labels: Vec<String> = self
            .query(
                "looking up a model",
                "SELECT label FROM model_versions WHERE name = $1 ORDER BY major, semver",
                &[&name],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if labels.is_empty() {
            if forced {
                return Err(Error::other(format!("the remote has no model `{name}`"))
                    .hint("`mlrun push` sends a model's versions with the runs that made them"));
            }
            return Ok(None);
        }
        let semver = crate::pipeline::model_name::parse_version(reference)
            .ok()
            .map(|l| l.semver);
        let rows = match &semver {
            Some(v) => self.query(
                "reading a model version",
                "SELECT path, blob_hash FROM model_versions WHERE name = $1 AND semver = $2",
                &[&name, v],
            )?,
            None => self.query(
                "reading a model alias",
                "SELECT v.path, v.blob_hash
                   FROM (SELECT to_label FROM model_alias_log WHERE name = $1 AND alias = $2
                          ORDER BY at DESC LIMIT 1) a
                   JOIN model_versions v ON v.name = $1 AND v.label = a.to_label",
                &[&name, &reference],
            )?,
        };
        if let Some(r) = rows.first() {
            return Ok(Some(Self::version_found((r.get(0), r.get(1)), None)));
        }
        if !forced {
            let path = self.store_path(name)?;
            if Path::new(name).exists() || self.has_path(&path)? {
                return Ok(None);
            }
        }
        let what = if semver.is_some() {
            "no version"
        } else {
            "no version or alias"
        };
        Err(Error::other(format!(
            "model `{name}` on the remote has {what} `{reference}`"
        ))
        .hint(format!("its versions there: {}", labels.join(", "))))
    }

    /// The path `arg` names, relative to the project root, `/`-separated.
    fn store_path(&self, arg: &str) -> Result<String> {
        let trimmed = arg.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { arg } else { trimmed };
        let cwd = std::env::current_dir()
            .map_err(|e| Error::other("cannot read the current directory").cause(e))?;
        let abs = normalise(&cwd.join(trimmed));
        let root = normalise(&cwd.join(&self.root));
        if let Ok(rel) = abs.strip_prefix(&root) {
            let s = rel.to_string_lossy().replace('\\', "/");
            if !s.is_empty() {
                return Ok(s);
            }
        }
        Ok(trimmed.trim_start_matches("./").to_string())
    }

    /// A run name (`latest`, `latest-replay`, an id prefix, `~N`) to a run id on the remote.
    fn resolve_run(&mut self, target: &str) -> Result<String> {
        let (base, back) = match target.rsplit_once('~') {
            None => (target, 0),
            Some((b, "")) => (b, 1),
            Some((b, n)) => (
                b,
                n.parse::<i64>().map_err(|_| {
                    Error::invalid(format!("`{target}`: `~{n}` is not a number of runs"))
                        .hint("`latest~1` is the run before the latest")
                })?,
            ),
        };
        let latest = [
            ("latest", false),
            ("last", false),
            ("latest-replay", true),
            ("last-replay", true),
        ];
        if let Some((_, replays)) = latest.iter().find(|(n, _)| *n == base) {
            let rows = self.query(
                "resolving a run",
                "SELECT id FROM runs WHERE (replay_of IS NOT NULL) = $1
                 ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET $2",
                &[replays, &back],
            )?;
            return rows.first().map(|r| r.get(0)).ok_or_else(|| {
                Error::other(format!("`{target}` names no run on the remote"))
                    .hint("`mlrun runs --remote` lists the runs on the remote")
            });
        }
        let prefix = hex_prefix(base);
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!("`{target}` is not a run id")).hint(
                "run ids are hexadecimal, like `0193a4f1c2`; `latest` names the newest run",
            ));
        }
        let found = self.run_candidates(&prefix)?;
        let id = match found.as_slice() {
            [] => {
                return Err(
                    Error::other(format!("no run on the remote matches `{target}`"))
                        .hint("`mlrun runs --remote` lists the runs on the remote"),
                );
            }
            [one] => one.clone(),
            many => {
                let mut e = Error::invalid(format!(
                    "`{target}` names {} runs on the remote",
                    if many.len() > 10 {
                        "more than 10".to_string()
                    } else {
                        many.len().to_string()
                    }
                ));
                for id in many.iter().take(10) {
                    e = e.cause(id.clone());
                }
                return Err(e.hint("give more digits of the run id"));
            }
        };
        if back == 0 {
            return Ok(id);
        }
        let rows = self.query(
            "resolving a run",
            "SELECT p.id FROM runs r JOIN runs p
               ON (p.started_at, p.id) < (r.started_at, r.id)
              AND (p.replay_of IS NOT NULL) = (r.replay_of IS NOT NULL)
             WHERE r.id = $1 ORDER BY p.started_at DESC, p.id DESC LIMIT 1 OFFSET $2",
            &[&id, &(back - 1)],
        )?;
        rows.first().map(|r| r.get(0)).ok_or_else(|| {
            Error::other(format!(
                "`{target}` names no run: fewer than {back} runs were recorded before it"
            ))
            .hint("`mlrun runs --remote` lists the runs on the remote")
        })
    }

    /// Run ids starting with `prefix` (at most 11).
    fn run_candidates(&mut self, prefix: &str) -> Result<Vec<String>> {
        let upper = format!("{prefix}g");
        let rows = self.query(
            "looking up runs",
            "SELECT id FROM runs WHERE id >= $1 AND id < $2 ORDER BY id LIMIT 11",
            &[&prefix, &upper],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Versions whose content hash starts with `prefix` (at most 11).
    fn versions_by_hash_prefix(&mut self, prefix: &str) -> Result<Vec<VKey>> {
        let upper = format!("{prefix}g");
        let rows = self.query(
            "looking up a content hash",
            "SELECT DISTINCT blob_hash, path FROM io_edges
             WHERE blob_hash >= $1 AND blob_hash < $2 ORDER BY blob_hash, path LIMIT 11",
            &[&prefix, &upper],
        )?;
        Ok(rows.iter().map(|r| (r.get(1), r.get(0))).collect())
    }

    fn has_version(&mut self, path: &str, hash: &str) -> Result<bool> {
        let rows = self.query(
            "looking up a version",
            "SELECT 1 FROM io_edges WHERE path = $1 AND blob_hash = $2 LIMIT 1",
            &[&path, &hash],
        )?;
        Ok(!rows.is_empty())
    }

    fn has_path(&mut self, path: &str) -> Result<bool> {
        let rows = self.query(
            "looking up a path",
            "SELECT 1 FROM io_edges WHERE path = $1 LIMIT 1",
            &[&path],
        )?;
        Ok(!rows.is_empty())
    }

    /// The version of `path` most recently used or produced (a replay's only when no other run
    /// recorded it), as the local `latest_version`.
    fn latest_version(&mut self, path: &str) -> Result<Option<VKey>> {
        let rows = self.query(
            "reading the latest version of a path",
            "SELECT e.blob_hash FROM io_edges e
               JOIN step_execs s ON s.run_id = e.run_id AND s.step = e.step AND s.attempt = e.attempt
               JOIN runs r ON r.id = e.run_id
             WHERE e.path = $1
             ORDER BY r.replay_of IS NOT NULL, COALESCE(s.started_at, 0) DESC, s.seq DESC NULLS LAST,
                      e.direction = 'out' DESC LIMIT 1",
            &[&path],
        )?;
        Ok(rows.first().map(|r| (path.to_string(), r.get(0))))
    }

    /// The version of `path` run `run` produced, else the one it read.
    fn version_in_run(&mut self, path: &str, run: &str) -> Result<Option<VKey>> {
        let rows = self.query(
            "reading the version of a path in a run",
            "SELECT e.blob_hash FROM io_edges e
               JOIN step_execs s ON s.run_id = e.run_id AND s.step = e.step AND s.attempt = e.attempt
             WHERE e.run_id = $2 AND e.path = $1
             ORDER BY e.direction = 'out' DESC, s.seq DESC NULLS LAST LIMIT 1",
            &[&path, &run],
        )?;
        Ok(rows.first().map(|r| (path.to_string(), r.get(0))))
    }

    /// Recorded paths that are directories holding `path`, nearest first.
    fn recorded_parent_dirs(&mut self, path: &str) -> Result<Vec<String>> {
        let mut parents = Vec::new();
        let mut p = path;
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            parents.push(p.to_string());
        }
        if parents.is_empty() {
            return Ok(parents);
        }
        let rows = self.query(
            "looking up recorded directories",
            "SELECT DISTINCT b.path FROM unnest($1::text[]) AS b(path)
             WHERE EXISTS (SELECT 1 FROM io_edges e WHERE e.path = b.path)",
            &[&parents],
        )?;
        let found: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        Ok(parents.into_iter().filter(|p| found.contains(p)).collect())
    }

    /// A directory version's manifest (its canonical bytes, in `contents`).
    pub(super) fn manifest(&mut self, hash: &str) -> Result<Option<Vec<u8>>> {
        let rows = self.query(
            "reading a directory manifest",
            "SELECT data FROM contents WHERE hash = $1",
            &[&hash],
        )?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn member(&mut self, dir: &VKey, relpath: &str) -> Result<Option<Member>> {
        let Some(m) = self.manifest(&dir.1)? else {
            return Ok(None);
        };
        Ok(manifest_lookup(&m, relpath).map(|e| Member {
            path: format!("{}/{}", dir.0, e.relpath),
            dir: dir.0.clone(),
            dir_hash: dir.1.clone(),
            relpath: e.relpath,
            hash: e.hash,
            size: e.size,
            mode: e.mode,
        }))
    }

    /// The newest version of directory `dir` listing `relpath` (with content `file_hash`).
    fn dir_version_containing(
        &mut self,
        dir: &str,
        relpath: &str,
        file_hash: Option<&str>,
    ) -> Result<Option<(VKey, Member)>> {
        let rows = self.query(
            "reading the versions of a directory",
            "SELECT e.blob_hash FROM io_edges e JOIN blobs b ON b.hash = e.blob_hash
             WHERE e.path = $1 AND b.kind = 'dir'
             GROUP BY e.blob_hash ORDER BY min(e.first_seen) DESC, e.blob_hash DESC",
            &[&dir],
        )?;
        for r in rows {
            let key: VKey = (dir.to_string(), r.get(0));
            if let Some(m) = self.member(&key, relpath)?
                && file_hash.is_none_or(|h| m.hash == h)
            {
                return Ok(Some((key, m)));
            }
        }
        Ok(None)
    }

    /// "`hash` made by `step` in run SHORT (when)", for notes.
    fn describe(&mut self, v: &VKey) -> Result<String> {
        let rows = self.query(
            "finding the producer of a version",
            &format!(
                "SELECT p.run_id, p.step, s.started_at,
                        (SELECT max(id) FROM runs x WHERE x.id < p.run_id),
                        (SELECT min(id) FROM runs x WHERE x.id > p.run_id)
                 FROM ({}) p JOIN step_execs s
                   ON s.run_id = p.run_id AND s.step = p.step AND s.attempt = p.attempt",
                producer_sql("$1", "$2")
            ),
            &[&v.0, &v.1],
        )?;
        Ok(match rows.first() {
            Some(r) => {
                let run: String = r.get(0);
                let step: String = r.get(1);
                let at: Option<i64> = r.get(2);
                let (prev, next): (Option<String>, Option<String>) = (r.get(3), r.get(4));
                format!(
                    "{} made by `{step}` in run {} ({})",
                    short_hash(&v.1),
                    short_between(&run, prev.as_deref(), next.as_deref()),
                    at.map_or_else(|| "-".into(), time::local)
                )
            }
            None => short_hash(&v.1).to_string(),
        })
    }

    fn version_found(v: VKey, note: Option<String>) -> Found<Seed> {
        Found {
            seed: Seed::Version(v),
            file: None,
            note,
            link: None,
        }
    }

    fn file_found(v: VKey, m: Member, note: Option<String>) -> Found<Seed> {
        Found {
            seed: Seed::Version(v),
            file: Some(m),
            note,
            link: None,
        }
    }

    /// A path that exists here: its current content, as the remote recorded it.
    fn current(&mut self, arg: &str, on_disk: &Path) -> Result<Found<Seed>> {
        let path = self.store_path(arg)?;
        let fp = hash::fingerprint(on_disk, &HashCache::disabled())?;
        if self.has_version(&path, fp.hash())? {
            return Ok(Self::version_found((path, fp.hash().to_string()), None));
        }
        for dir in self.recorded_parent_dirs(&path)? {
            let rel = &path[dir.len() + 1..];
            if let Some((v, m)) = self.dir_version_containing(&dir, rel, Some(fp.hash()))? {
                return Ok(Self::file_found(v, m, None));
            }
        }
        if let Some(v) = self.latest_version(&path)? {
            let note = format!(
                "the current content of `{path}` ({}) is not in the remote's record; showing its latest recorded version, {}",
                short_hash(fp.hash()),
                self.describe(&v)?
            );
            return Ok(Self::version_found(v, Some(note)));
        }
        Err(never_recorded(arg))
    }

    /// A path that is not here: its latest version on the remote.
    fn recorded(&mut self, arg: &str) -> Result<Option<Found<Seed>>> {
        let path = self.store_path(arg)?;
        if let Some(v) = self.latest_version(&path)? {
            let note = format!(
                "`{path}` is not on disk; showing its latest recorded version, {}",
                self.describe(&v)?
            );
            return Ok(Some(Self::version_found(v, Some(note))));
        }
        for dir in self.recorded_parent_dirs(&path)? {
            let rel = &path[dir.len() + 1..];
            if let Some((v, m)) = self.dir_version_containing(&dir, rel, None)? {
                let note = format!(
                    "`{path}` is not on disk; showing its latest recorded version, in {} of `{dir}/`",
                    short_hash(&v.1)
                );
                return Ok(Some(Self::file_found(v, m, Some(note))));
            }
        }
        Ok(None)
    }

    fn at_run(&mut self, path_arg: &str, run_arg: &str) -> Result<Found<Seed>> {
        let run = self.resolve_run(run_arg).map_err(|e| {
            if path_arg.contains('/') || path_arg.contains('.') {
                e
            } else {
                e.hint(
                    "a model version (`NAME@v2`) is on the remote once `mlrun push` sent its run",
                )
            }
        })?;
        let path = self.store_path(path_arg)?;
        if let Some(v) = self.version_in_run(&path, &run)? {
            return Ok(Self::version_found(v, None));
        }
        for dir in self.recorded_parent_dirs(&path)? {
            if let Some(v) = self.version_in_run(&dir, &run)?
                && let Some(m) = self.member(&v, &path[dir.len() + 1..])?
            {
                return Ok(Self::file_found(v, m, None));
            }
        }
        Err(Error::other(format!(
            "run {} did not read or write `{path}`",
            &run[..MIN_SHORT.min(run.len())]
        )))
    }

    fn exec(&mut self, run_arg: &str, step: &str) -> Result<Found<Seed>> {
        let run = self.resolve_run(run_arg)?;
        let rows = self.query(
            "looking up a step",
            "SELECT step, attempt FROM step_execs WHERE run_id = $1 ORDER BY step, attempt DESC",
            &[&run],
        )?;
        let attempt = rows
            .iter()
            .find(|r| r.get::<_, String>(0) == step)
            .map(|r| r.get::<_, i64>(1));
        match attempt {
            Some(a) => Ok(Found {
                seed: Seed::Exec((run, step.to_string(), a)),
                file: None,
                note: None,
                link: None,
            }),
            None => {
                let mut steps: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                steps.dedup();
                Err(Error::other(format!(
                    "run {} has no step `{step}`",
                    &run[..MIN_SHORT.min(run.len())]
                ))
                .hint(format!("its steps: {}", steps.join(", "))))
            }
        }
    }

    fn hex_target(&mut self, arg: &str) -> Result<Found<Seed>> {
        let prefix = hex_prefix(arg);
        let runs = self.run_candidates(&prefix)?;
        let versions = if arg.contains('-') {
            Vec::new()
        } else {
            self.versions_by_hash_prefix(&prefix)?
        };
        match (runs.is_empty(), versions.as_slice()) {
            (false, []) => Ok(Found {
                seed: Seed::Run(self.resolve_run(arg)?),
                file: None,
                note: None,
                link: None,
            }),
            (true, [one]) => Ok(Self::version_found(one.clone(), None)),
            (true, []) => Err(never_recorded(arg)),
            (true, many) => {
                let mut e = Error::other(format!(
                    "content hash `{arg}` is ambiguous: {} recorded versions match",
                    if many.len() > 10 {
                        "more than 10".to_string()
                    } else {
                        many.len().to_string()
                    }
                ));
                for (p, h) in many.iter().take(10) {
                    e = e.cause(format!("{h}  {p}"));
                }
                Err(e.hint("type more characters of the hash, or name the version as PATH@RUN"))
            }
            (false, _) => Err(Error::other(format!(
                "`{arg}` is ambiguous: it starts both a run id and a content hash"
            ))
            .hint("type more characters")),
        }
    }
}

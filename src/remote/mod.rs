//! The team remote: runs' records on PostgreSQL (`pg`), their objects on S3 (`objects`), and
//! what moves between them and the local store (`push`, `pull`, objects fetched on demand).
//!
//! The order of a push is what keeps the remote whole: a run's objects are uploaded first, then
//! its record is written in one transaction keyed by its UUID; so a run on the remote always has
//! its objects, a push stopped anywhere leaves at most objects no run names yet (harmless, and
//! reused by the next push), and pushing again writes nothing twice.

pub mod cache;
pub mod lineage;
pub mod objects;
pub mod pg;
pub mod repair;
pub mod runs;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::config::{Config, Remote};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::portable::{LocalDir, LocalObject};
use std::collections::HashSet;

pub use objects::{Bucket, FetchError};
pub use pg::Record;

/// The configured remote of the project whose store is `store_dir`, or an error saying how to
/// configure one.
pub fn configured(store_dir: &Path) -> Result<Remote> {
    Config::load(store_dir)?.remote.ok_or_else(|| {
        Error::invalid("no remote is configured")
            .hint("add a [remote] table with `db = \"postgres://HOST:PORT/DB\"` and `objects = \"s3://BUCKET/PREFIX\"` to mlrun.toml, or set MLRUN_REMOTE_DB and MLRUN_REMOTE_OBJECTS")
    })
}

/// Where the store of a command that may create it (pull, replay on a fresh clone) is: the
/// one found, else `.mlrun` beside the nearest `mlrun.toml`, else in the current directory.
pub fn store_dir_or_new(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Ok(d) = crate::store::find_dir(explicit) {
        return Ok(d);
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Error::other("cannot read the current directory").cause(e))?;
    let root = cwd
        .ancestors()
        .find(|d| d.join(crate::config::FILE).is_file())
        .unwrap_or(&cwd);
    Ok(root.join(crate::store::STORE_DIR))
}

/// Both halves of a remote, connected.
pub struct Connected {
    pub remote: Remote,
    pub record: Record,
    pub bucket: Bucket,
}

impl Connected {
    pub fn open(remote: &Remote) -> Result<Connected> {
        let bucket = Bucket::open(remote)?;
        bucket.check()?;
        let record = Record::connect(remote)?;
        Ok(Connected {
            remote: remote.clone(),
            record,
            bucket,
        })
    }
}

impl Connected {
    /// Download `names` into the store in `store_dir`, each verified (packed ones by range).
    /// `hand_over`: they are restored next (`objects::Bucket::fetch`).
    pub fn fetch(
        &mut self,
        store_dir: &Path,
        names: &[String],
        hand_over: bool,
    ) -> Result<Vec<(String, FetchError)>> {
        let packed = self.record.pack_locations(names)?;
        Ok(self.bucket.fetch(store_dir, names, &packed, hand_over))
    }

    /// Read `names` on the remote and check each hashes to its name (`fsck --remote`).
    pub fn verify(&mut self, names: &[String]) -> Result<Vec<(String, FetchError)>> {
        let packed = self.record.pack_locations(names)?;
        Ok(self.bucket.verify(names, &packed))
    }
}

impl Record {
    /// A query of a `--remote` view (`lineage`, `runs`): its rows, or an error naming what it
    /// was for and the server's reason.
    pub(crate) fn read(
        &mut self,
        what: &str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        self.client.query(sql, params).map_err(|e| {
            let reason = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            Error::store(format!(
                "the remote record {} failed while {what}: {reason}",
                self.shown()
            ))
        })
    }
}

/// What `push` did with one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pushed {
    pub run: String,
    /// false: the remote had it already (another push got there first)
    pub written: bool,
    pub objects: usize,
    pub uploaded: usize,
}

/// A progress line on stderr when it is a terminal.
struct Progress {
    on: bool,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            on: !quiet && std::io::stderr().is_terminal(),
        }
    }
    fn show(&self, text: &str) {
        if self.on {
            let mut e = std::io::stderr();
            let _ = write!(e, "\r\x1b[2K{text}");
            let _ = e.flush();
        }
    }
    fn clear(&self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// What a push sent besides runs' records (`store::shared`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Sent {
    pub model_versions: usize,
    pub alias_moves: usize,
    pub determinism: usize,
    pub removals: usize,
    /// What was not applied there, and why
    pub notes: Vec<String>,
}

/// Push `runs` (all not yet pushed when empty): for each, its objects the remote lacks, then
/// its record in one transaction; then the model versions, alias moves, determinism findings
/// and removals the remote has not been sent (`store::shared` says which). Nothing to push:
/// the remote is not contacted.
pub fn push(
    store: &mut Store,
    remote: &Remote,
    runs: Vec<String>,
    quiet: bool,
) -> Result<(Vec<Pushed>, Sent)> {
    let key = remote.key();
    let runs = if runs.is_empty() {
        store.runs_not_pushed(&key)?
    } else {
        runs
    };
    if runs.is_empty() && store.extras_not_pushed(&key)?.is_empty() {
        return Ok((Vec::new(), Sent::default()));
    }
    let mut conn = Connected::open(remote)?;
    let progress = Progress::new(quiet);
    let mut out = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let (rec, local, dirs) = store.portable_run(run)?;
        if rec.table(&crate::store::portable::RUNS).is_empty() {
            return Err(Error::other(format!("no run {run} in the local store")));
        }
        if rec.table(&crate::store::portable::RUNS)[0][7]
            == rusqlite::types::Value::Text("running".into())
        {
            return Err(Error::invalid(format!("run {run} is still running"))
                .hint("push it once it has ended"));
        }
        let objects = rec.objects().len();
        let jobs = lacking(store, &mut conn, &key, &local, &dirs)?;
        // what `fsck --remote --repair` found damaged goes again, each on its own
        let dir_names: Vec<String> = dirs.iter().map(|d| d.name.clone()).collect();
        let damaged = damaged_among(&mut conn, &jobs, &dir_names)?;
        let total = jobs.len();
        let mut todo = Vec::with_capacity(total);
        for o in jobs {
            let size = match std::fs::metadata(&o.path) {
                Ok(m) if m.is_file() => m.len(),
                _ => {
                    return Err(Error::store(format!(
                        "run {run} needs object {} that the local store no longer has",
                        o.name
                    ))
                    .hint("`mlrun fsck` says what is missing; the run cannot be pushed whole"));
                }
            };
            todo.push(objects::ToUpload {
                loose: damaged.contains(&o.name),
                name: o.name,
                path: o.path,
                size,
            });
        }
        let short = &run[..run.len().min(8)];
        let mut up = 0;
        let Connected { bucket, record, .. } = &mut conn;
        let r = bucket.upload(todo, |u| {
            // recorded there (and where, for a pack) before anything names them
            let names = match u {
                objects::Uploaded::Loose(name) => {
                    record.add_objects(None, &[(name.clone(), 0, 0)])?;
                    vec![name]
                }
                objects::Uploaded::Pack(id, entries) => {
                    record.add_objects(Some(&id), &entries)?;
                    entries.into_iter().map(|e| e.0).collect()
                }
            };
            store.mark_objects_on_remote(&key, &names)?;
            up += names.len();
            progress.show(&format!(
                "push [{}/{}] {short}: objects {up}/{total}",
                i + 1,
                runs.len(),
            ));
            Ok(())
        });
        r?;
        // every file of the run's directories is there now
        store.mark_objects_on_remote(&key, &dir_names)?;
        let healed: Vec<String> = dir_names
            .into_iter()
            .filter(|d| damaged.contains(d))
            .collect();
        if !healed.is_empty() {
            conn.record.clear_damaged(&healed)?;
        }
        progress.show(&format!("push [{}/{}] {short}: record", i + 1, runs.len()));
        let written = conn.record.push_run(&rec)?;
        store.mark_on_remote(&key, run, "pushed")?;
        out.push(Pushed {
            run: run.clone(),
            written,
            objects,
            uploaded: total,
        });
    }
    progress.clear();
    // after the runs: a version or a finding is sent once its run is there
    let ex = store.extras_not_pushed(&key)?;
    let mut sent = Sent::default();
    if !ex.is_empty() {
        let (settled, notes) = conn.record.push_extras(&ex)?;
        store.mark_items(&key, &settled)?;
        [
            sent.model_versions,
            sent.alias_moves,
            sent.determinism,
            sent.removals,
        ] = ex.rows.each_ref().map(Vec::len);
        sent.notes = notes;
    }
    Ok((out, sent))
}

/// Of the objects to upload and the run's directories, those `fsck --remote --repair` marked
/// damaged (not asked when nothing is to be uploaded).
fn damaged_among(
    conn: &mut Connected,
    jobs: &[LocalObject],
    dir_names: &[String],
) -> Result<std::collections::BTreeSet<String>> {
    if jobs.is_empty() {
        return Ok(Default::default());
    }
    let names: Vec<String> = jobs.iter().map(|o| o.name.clone()).collect();
    conn.record
        .damaged_among(&[names.as_slice(), dir_names].concat())
}

/// Of a run's objects (`local`, and the files of `dirs`), those the remote lacks: what the
/// local index does not know to be there and the remote says it does not have (one question
/// per batch). A directory the remote has whole (a run there names it) is not listed file by
/// file. What the remote has is remembered in the local index.
fn lacking(
    store: &mut Store,
    conn: &mut Connected,
    key: &str,
    local: &[LocalObject],
    dirs: &[LocalDir],
) -> Result<Vec<LocalObject>> {
    let mut ask = |store: &mut Store, names: Vec<String>| -> Result<HashSet<String>> {
        let unknown = store.objects_not_on_remote(key, &names)?;
        let there = conn.record.objects_present(&unknown)?;
        store.mark_objects_on_remote(key, &there.iter().cloned().collect::<Vec<_>>())?;
        Ok(unknown.into_iter().filter(|n| !there.contains(n)).collect())
    };
    let names = local.iter().chain(&[]).map(|o| o.name.clone());
    let wanted = ask(
        store,
        names.chain(dirs.iter().map(|d| d.name.clone())).collect(),
    )?;
    let mut out: Vec<LocalObject> = local
        .iter()
        .filter(|o| wanted.contains(&o.name))
        .cloned()
        .collect();
    for d in dirs.iter().filter(|d| wanted.contains(&d.name)) {
        let files = d.objects(&store.dir);
        let wanted = ask(store, files.iter().map(|o| o.name.clone()).collect())?;
        out.extend(files.into_iter().filter(|o| wanted.contains(&o.name)));
    }
    let mut seen = HashSet::new();
    out.retain(|o| seen.insert(o.name.clone()));
    Ok(out)
}

/// What `pull` did with one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pulled {
    pub run: String,
    /// false: the local store had it already
    pub written: bool,
    /// objects fetched (with --objects or on demand)
    pub fetched: usize,
}

/// Bring the records of the remote's runs matching `filter` here (oldest first, so a reuse of
/// an earlier run's step links to it); with `objects`, their objects too.
pub fn pull(
    store: &mut Store,
    conn: &mut Connected,
    filter: &pg::RunFilter,
    objects: bool,
) -> Result<Vec<Pulled>> {
    let key = conn.remote.key();
    let mut runs = conn.record.list_runs(filter)?;
    runs.reverse();
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let mut out = Vec::new();
    for r in runs {
        let written = if store.has_run(&r.id)? {
            false
        } else {
            let rec = conn.record.fetch_run(&r.id)?;
            import(store, &mut conn.record, &key, &rec)?
        };
        let fetched = if objects {
            fetch_objects(store, conn, &r.id)?
        } else {
            0
        };
        out.push(Pulled {
            run: r.id,
            written,
            fetched,
        });
    }
    // their model versions and alias moves, the findings on their pipelines, the removals
    let ex = conn.record.fetch_extras(&ids, filter.pipeline.as_deref())?;
    store.import_extras(&key, &ex)?;
    Ok(out)
}

/// Write a run pulled from the remote into `store` (the run it replayed first, when that is on
/// the remote and not here: the record links them). False: it was here already.
pub fn import(
    store: &mut Store,
    record: &mut Record,
    key: &str,
    rec: &crate::store::portable::RunRecord,
) -> Result<bool> {
    let replay_of = rec
        .table(&crate::store::portable::RUNS)
        .first()
        .and_then(|row| crate::store::portable::RunRecord::text(row, 20))
        .map(str::to_string);
    if let Some(orig) = replay_of
        && !store.has_run(&orig)?
        && record
            .runs_present(std::slice::from_ref(&orig))?
            .contains(&orig)
    {
        let first = record.fetch_run(&orig)?;
        import(store, record, key, &first)?;
    }
    // what a run on the remote needs is there: the next push need not upload it
    store.mark_objects_on_remote(key, &rec.objects())?;
    store.import_run(rec, key)
}

/// Fetch the objects run `run` needs that the local store lacks, each verified. An object that
/// does not hash to its name is refused: the error names it.
pub fn fetch_objects(store: &Store, conn: &mut Connected, run: &str) -> Result<usize> {
    let rec = conn.record.fetch_run(run)?;
    let missing = store.objects_missing_for(&rec.objects());
    if missing.is_empty() {
        store.objects_arrived(run)?;
        return Ok(0);
    }
    let problems = conn.fetch(&store.dir, &missing, false)?;
    store.objects_arrived(run)?;
    if let Some((name, p)) = problems.into_iter().next() {
        return Err(match p {
            FetchError::Missing => Error::other(format!(
                "the remote objects {} lack object {name} that run {run} needs",
                conn.bucket.shown()
            ))
            .hint("`mlrun fsck --remote` lists what is missing; push the run again from a machine that has it"),
            FetchError::Corrupt { actual } => Error::other(format!(
                "refused object {name} from the remote objects {}: its bytes hash to {actual}",
                conn.bucket.shown()
            ))
            .hint("the copy on the remote is damaged; `mlrun fsck --remote` lists such objects"),
            FetchError::Failed(e) => e,
        });
    }
    Ok(missing.len())
}

/// Before `replay` / `checkout` of `target`: with a remote configured, a run that is only on
/// the remote is pulled, and the objects the run needs that are not here are fetched. Without
/// a remote, nothing happens. Returns the store directory to use.
pub fn bring_here(explicit: Option<&Path>, target: &str) -> Result<Option<PathBuf>> {
    let dir = store_dir_or_new(explicit)?;
    let Some(remote) = Config::load(&dir)?.remote else {
        return Ok(None);
    };
    let mut store = Store::open(&dir)?;
    // PATH@RUN and RUN:STEP name a run too
    let target = match (target.rsplit_once('@'), target.split_once(':')) {
        (Some((_, run)), _) if !run.is_empty() => run,
        (None, Some((run, _))) => run,
        _ => target,
    };
    let run = store.resolve_run(target).ok();
    let looks_like_id = target.len() >= 4 && target.chars().all(|c| c.is_ascii_hexdigit());
    if run.is_none() && !looks_like_id {
        return Ok(Some(dir));
    }
    // a run made here has its objects here: the remote is not asked
    if let Some(r) = &run
        && !store.was_pulled(&remote.key(), r)?
    {
        return Ok(Some(dir));
    }
    let mut conn = Connected::open(&remote)?;
    let run = match run {
        Some(r) => r,
        None => {
            let filter = pg::RunFilter {
                ids: vec![target.to_ascii_lowercase()],
                ..Default::default()
            };
            let found = conn.record.list_runs(&filter)?;
            match found.as_slice() {
                [one] => {
                    let rec = conn.record.fetch_run(&one.id)?;
                    import(&mut store, &mut conn.record, &remote.key(), &rec)?;
                    one.id.clone()
                }
                [] => return Ok(Some(dir)),
                _ => {
                    return Err(Error::invalid(format!(
                        "`{target}` names {} runs on the remote",
                        found.len()
                    ))
                    .hint("give more digits of the run id"));
                }
            }
        }
    };
    if store.is_on_remote(&remote.key(), &run)?
        || conn
            .record
            .runs_present(std::slice::from_ref(&run))?
            .contains(&run)
    {
        fetch_objects(&store, &mut conn, &run)?;
    }
    Ok(Some(dir))
}

/// A read-only view of runs on the remote for `show`, `diff` and `compare --remote`: the
/// records of the runs `ids` name, and of the runs matching `filter` (which a name such as
/// `latest~2` is resolved among), read from PostgreSQL into a throwaway local store, so the
/// commands print exactly what they print for local runs. With `named_only`, `filter`'s runs
/// are read only when `ids` name no run there (a hex TARGET may be a content hash instead).
pub struct View {
    _tmp: tempfile::TempDir,
    pub store_dir: PathBuf,
}

pub fn view(
    store_dir: Option<&Path>,
    filter: &pg::RunFilter,
    ids: &[String],
    named_only: bool,
) -> Result<View> {
    let dir = store_dir_or_new(store_dir)?;
    let remote = configured(&dir)?;
    let mut record = Record::connect(&remote)?;
    let tmp = tempfile::Builder::new()
        .prefix("mlrun-remote-view-")
        .tempdir()
        .map_err(|e| Error::other("cannot create a temporary directory").cause(e))?;
    let view_dir = tmp.path().join(crate::store::STORE_DIR);
    let mut store = Store::open(&view_dir)?;
    let mut runs = Vec::new();
    if !ids.is_empty() {
        let by_id = pg::RunFilter {
            ids: ids.to_vec(),
            ..Default::default()
        };
        runs.extend(record.list_runs(&by_id)?);
    }
    if !named_only || runs.is_empty() {
        runs.extend(record.list_runs(filter)?);
    }
    runs.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    runs.dedup_by(|a, b| a.id == b.id);
    for r in &runs {
        let rec = record.fetch_run(&r.id)?;
        // the runs whose results its steps reused, so they are said to be (as `import` brings
        // the run a replay replayed)
        for reused in reused_runs(&rec) {
            if !store.has_run(&reused)? {
                let first = record.fetch_run(&reused)?;
                if !first.table(&crate::store::portable::RUNS).is_empty() {
                    view_import(&mut store, &mut record, &remote.key(), &first)?;
                }
            }
        }
        view_import(&mut store, &mut record, &remote.key(), &rec)?;
    }
    Ok(View {
        _tmp: tmp,
        store_dir: view_dir,
    })
}

/// A run read into a view: imported, what the remote keeps shown as kept.
fn view_import(
    store: &mut Store,
    record: &mut Record,
    key: &str,
    rec: &crate::store::portable::RunRecord,
) -> Result<()> {
    import(store, record, key, rec)?;
    let on_remote: HashSet<String> = rec.objects().into_iter().collect();
    store.mark_stored(&rec.run_id, |name| on_remote.contains(name))
}

/// The other runs whose step results a run's steps reused.
fn reused_runs(rec: &crate::store::portable::RunRecord) -> Vec<String> {
    let mut out: Vec<String> = rec
        .table(&crate::store::portable::STEPS)
        .iter()
        .filter_map(|row| crate::store::portable::RunRecord::text(row, 18))
        .filter(|r| *r != rec.run_id)
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How many of the newest runs a view must hold for `targets`: `at_least`, or more when one
/// names `latest~N` (alone, `PATH@latest~N` or `latest~N:STEP`), which is the N+1th newest.
pub fn newest_needed(targets: &[&str], at_least: usize) -> usize {
    targets
        .iter()
        .filter_map(|t| {
            let t = t.rsplit_once('@').map_or(*t, |(_, run)| run);
            let t = t.split_once(':').map_or(t, |(run, _)| run);
            t.strip_prefix("latest~")?.parse::<usize>().ok()
        })
        .map(|n| n.saturating_add(1))
        .fold(at_least, usize::max)
}

/// The run id prefixes named in command-line targets (`01a2…`, `PATH@01a2…`, `01a2…:STEP`).
pub fn ids_in(targets: &[&str]) -> Vec<String> {
    targets
        .iter()
        .filter_map(|t| {
            let t = match (t.rsplit_once('@'), t.split_once(':')) {
                (Some((_, run)), _) => run,
                (None, Some((run, _))) => run,
                _ => t,
            };
            (t.len() >= 4 && t.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| t.to_ascii_lowercase())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_view_holds_enough_newest_runs_for_latest_n() {
        use super::newest_needed;
        assert_eq!(newest_needed(&["latest"], 20), 20);
        assert_eq!(newest_needed(&["latest~3", "abcd1234"], 20), 20);
        assert_eq!(newest_needed(&["latest~25"], 20), 26);
        assert_eq!(newest_needed(&["model.pkl@latest~40"], 20), 41);
        assert_eq!(newest_needed(&["latest~30:train"], 20), 31);
        assert_eq!(newest_needed(&["latest~x", "latest~"], 20), 20);
        assert_eq!(newest_needed(&["latest~99999999999999999999999"], 20), 20);
    }
}

//! `mlrun cancel RUN`: cancel the Slurm jobs of a run that may still be running on the cluster
//! (an mlrun killed with SIGKILL cannot cancel them itself; the next command names them).

use std::path::Path;

use crate::error::{Error, Result};
use crate::report::{self, ColorChoice, Role, Style};
use crate::store::{self, Store};

#[derive(Debug, clap::Args)]
#[command(after_help = crate::cmd::target::RUN_HELP)]
pub struct CancelArgs {
    /// The run: an id prefix, `latest`, `latest~1`
    #[arg(value_name = "RUN")]
    pub run: String,

    /// Print what was cancelled as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn cancel(args: CancelArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let dir = store::find_dir(store_dir)?;
    let style = Style::stdout(color);
    let mut store = Store::open_existing(&dir)?;
    let id = store.resolve_run(&args.run)?;
    let short = store.short_id(&id)?;
    let open = store.open_jobs(&id)?;
    let ids: Vec<String> = open.iter().map(|j| j.job_id.clone()).collect();
    let results = crate::exec::slurm::cancel_jobs(&ids);
    let failed: Vec<&(String, Option<String>)> =
        results.iter().filter(|(_, e)| e.is_some()).collect();
    // a job the scheduler no longer knows has ended: nothing is left to cancel
    let gone =
        |e: &str| e.contains("Invalid job id") || e.contains("already completing or completed");
    let real_failures: Vec<&&(String, Option<String>)> = failed
        .iter()
        .filter(|(_, e)| e.as_deref().is_some_and(|e| !gone(e)))
        .collect();
    if real_failures.is_empty() {
        store.jobs_cancelled(&id, crate::store::record::now_ms())?;
    }
    if args.json {
        let jobs: Vec<serde_json::Value> = open
            .iter()
            .zip(&results)
            .map(|(j, (_, e))| {
                serde_json::json!({
                    "job_id": j.job_id,
                    "step": j.step,
                    "attempt": j.attempt,
                    "cancelled": e.is_none(),
                    "error": e,
                })
            })
            .collect();
        let doc = serde_json::json!({ "run_id": id, "short_id": short, "jobs": jobs });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if open.is_empty() {
        report::emit(&format!(
            "run {} has no Slurm jobs that may still be running\n",
            style.paint(Role::Accent, &short)
        ));
    } else {
        let mut text = String::new();
        for (j, (_, e)) in open.iter().zip(&results) {
            text += &match e {
                None => format!("cancelled job {} (step {})\n", j.job_id, j.step),
                Some(e) if gone(e) => {
                    format!("job {} (step {}) had already ended\n", j.job_id, j.step)
                }
                Some(e) => format!(
                    "{} job {} (step {}): {e}\n",
                    style.paint(Role::Bad, "could not cancel"),
                    j.job_id,
                    j.step
                ),
            };
        }
        report::emit(&text);
    }
    if let Some((job, e)) = real_failures.first().map(|r| (&r.0, r.1.clone())) {
        return Err(Error::other(format!(
            "could not cancel job {job} of run {short}: {}",
            e.unwrap_or_default()
        )));
    }
    Ok(0)
}

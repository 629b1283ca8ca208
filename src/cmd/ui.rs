//! `mlrun ui`: serve the local, read-only web view of the store (see `crate::ui`).

use std::net::IpAddr;
use std::path::Path;

use clap::Args;

use crate::error::Result;
use crate::report::Role;
use crate::report::{ColorChoice, Style};
use crate::store::{self, Store};

#[derive(Debug, Args)]
#[command(after_help = "\
Pages (stable URLs, to paste into a review or a CI log):
  /runs?status=failed&sort=accuracy    the runs table (filters as `mlrun runs`)
  /run/ID                              one run: steps, data, params, metrics, git, logs
  /compare?runs=A,B,C                  runs side by side, with deltas
  /lineage?path=model.pkl&depth=4      the lineage graph (&dir=down: what came of it)
  /artifact?path=model.pkl             the model card, as `mlrun show PATH`

Examples:
  mlrun ui                   serve on http://127.0.0.1:8321/
  mlrun ui --port 0 --open   any free port, and open it in the browser")]
pub struct UiArgs {
    /// TCP port to listen on (0: any free port)
    #[arg(long, default_value_t = 8321, value_name = "N")]
    pub port: u16,

    /// Address to listen on. Anything but a loopback address (127.0.0.1, ::1) shows your runs,
    /// logs and diffs to the network, without authentication
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: IpAddr,

    /// Open the page in the browser ($BROWSER, else xdg-open)
    #[arg(long)]
    pub open: bool,
}

pub fn ui(args: UiArgs, store_dir: Option<&Path>, color: ColorChoice) -> Result<i32> {
    let store = Store::open_read(&store::find_dir(store_dir)?)?;
    if !args.bind.is_loopback() {
        let style = Style::stderr(color);
        eprintln!(
            "{} serving on {}: anyone who can reach this machine can read every run, log and diff in the store (there is no authentication)",
            style.paint(Role::Warn, "warning:"),
            args.bind
        );
    }
    crate::ui::serve(
        store,
        crate::ui::Options {
            bind: args.bind,
            port: args.port,
            open: args.open,
        },
    )
}

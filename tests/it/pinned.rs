//! What people read, pinned whole: the output of `mlrun run` (steps that ran, were reused and
//! failed), `status` and replay verdicts, in an environment whose clock, host, user and commit
//! dates are fixed (`Env::fixed`), so the commits, hashes and times in them are real.

use insta::assert_snapshot;

use crate::common::{Env, fixed_settings};

const PIPELINE: &str = r#"
[params]
n = 1

[steps.prep]
cmd = "echo {params.n} > n.txt"
outputs = ["n.txt"]
params = ["n"]

[steps.stable]
cmd = "echo stable > s.txt"
outputs = ["s.txt"]

[steps.check]
cmd = "cat n.txt s.txt > report.txt; echo 'check: n must be 0' >&2; exit 3"
inputs = ["n.txt", "s.txt"]
outputs = ["report.txt"]
"#;

#[test]
fn run_and_status_output_with_ran_cached_and_failed_steps() {
    let env = Env::fixed();
    env.write("pipeline.toml", PIPELINE);
    env.commit("pipeline");
    let first = env.mlrun(&["run", "-j", "1"]);
    assert_eq!(first.code, 3, "{first:?}");
    let second = env.mlrun(&["run", "-j", "1", "-p", "n=2"]);
    assert_eq!(second.code, 3, "{second:?}");
    let status = env.mlrun(&["status"]);
    let runs = env.run_ids();
    assert_eq!(runs.len(), 2);
    fixed_settings(&env, &runs).bind(|| {
        assert_snapshot!("run_first", format!("{first:?}"));
        assert_snapshot!("run_ran_cached_failed", format!("{second:?}"));
        assert_snapshot!("status_after_failure", format!("{status:?}"));
    });
}

#[test]
fn replay_verdicts_identical_and_differs() {
    let env = Env::fixed();
    // `same` makes the same bytes every time; `counted` writes how many times it ran (the
    // count kept outside the project, in the test's HOME), so its replay makes other bytes
    env.write(
        "pipeline.toml",
        r#"
[steps.same]
cmd = "echo same > same.txt"
outputs = ["same.txt"]

[steps.counted]
cmd = "echo run >> $HOME/count && wc -l < $HOME/count | tr -d ' ' > counted.txt"
outputs = ["counted.txt"]
"#,
    );
    env.commit("pipeline");
    let run = env.mlrun(&["run", "-j", "1"]);
    assert_eq!(run.code, 0, "{run:?}");
    let replay = env.mlrun(&["replay", "latest", "-j", "1"]);
    let show = env.mlrun(&["show", "latest-replay"]);
    let runs = env.run_ids();
    fixed_settings(&env, &runs).bind(|| {
        assert_snapshot!("replay_identical_and_differs", format!("{replay:?}"));
        assert_snapshot!("show_replay", format!("{show:?}"));
    });
}

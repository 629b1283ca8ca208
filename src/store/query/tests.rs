use rusqlite::Connection;

use super::*;
use crate::error::Error;

/// An ambiguous prefix comes back as data (the store formats no times); people see it
/// through `report`, with each candidate's start in local time.
#[test]
fn an_ambiguous_prefix_lists_its_candidates() {
    let store = crate::store::Store::in_memory();
    store.execute_batch_for_test(
        "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');
         INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid) VALUES
           ('0193a4f1c2d47abc0000000000000001', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 1, 'h', 'u', '0', '[]', 1),
           ('0193a4f1c2d47abc8000000000000002', 'q', 'q.toml', '/p', 's', '{}', '{}', 'succeeded', 2, 'h', 'u', '0', '[]', 1);",
    );
    let Err(ResolveError::Ambiguous {
        target,
        matched,
        candidates,
    }) = store.resolve_run("0193a4f1")
    else {
        panic!("ambiguous");
    };
    assert_eq!(
        (target.as_str(), matched, candidates.len()),
        ("0193a4f1", 2, 2)
    );
    let shown = Error::from(store.resolve_run("0193a4f1").unwrap_err()).to_string();
    assert!(
        shown.starts_with("error: run id `0193a4f1` is ambiguous: 2 runs start with it"),
        "{shown}"
    );
    assert!(
        shown.contains("caused by: 0193a4f1c2d47abc0000000000000001  p  ")
            && shown.contains("hint: type more characters of the id"),
        "{shown}"
    );
    assert!(matches!(
        store.resolve_run("0193a4f2"),
        Err(ResolveError::Failed(_))
    ));
}

#[test]
fn a_failed_listing_says_it_was_reading_the_runs_list() {
    let store = crate::store::Store::in_memory();
    store.execute_batch_for_test("DROP TABLE metrics");
    let shown = store
        .list_runs(&RunFilter::default())
        .unwrap_err()
        .to_string();
    assert!(
        shown.starts_with("error: lineage store query failed while reading the runs list"),
        "{shown}"
    );
    assert!(
        shown.contains("caused by: no such table: metrics"),
        "{shown}"
    );
}

/// Shown ids cover the 48-bit timestamp, the version digit and 12 random bits, and grow past
/// any prefix another run shares (runs started in the same millisecond).
#[test]
fn shown_ids_cover_the_timestamp_and_grow_when_shared() {
    let mut c = Connection::open_in_memory().unwrap();
    crate::store::migrate(&mut c).unwrap();
    c.execute_batch(
        "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');
         INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid) VALUES
           ('0193a4f1c2d47abc0000000000000001', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 1, 'h', 'u', '0', '[]', 1),
           ('0193a4f1c2d47abc8000000000000002', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 1, 'h', 'u', '0', '[]', 1),
           ('0193a4f1c2d57def0000000000000003', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 2, 'h', 'u', '0', '[]', 1);",
    )
    .unwrap();
    let short = |id: &str| short_id(&c, id).unwrap();
    assert_eq!(
        short("0193a4f1c2d57def0000000000000003"),
        "0193a4f1c2d57def"
    );
    assert_eq!(
        short("0193a4f1c2d47abc0000000000000001"),
        "0193a4f1c2d47abc0"
    );
    assert_eq!(
        short("0193a4f1c2d47abc8000000000000002"),
        "0193a4f1c2d47abc8"
    );
    let all = short_ids(&c).unwrap();
    for (id, s) in &all {
        assert_eq!(&short(id), s);
        assert_eq!(&resolve_run(&c, s).unwrap(), id);
    }
    // relative names: `latest~N` counts back, `RUN~N` from any run
    assert_eq!(
        resolve_run(&c, "latest").unwrap(),
        "0193a4f1c2d57def0000000000000003"
    );
    assert_eq!(
        resolve_run(&c, "latest~2").unwrap(),
        "0193a4f1c2d47abc0000000000000001"
    );
    assert_eq!(
        resolve_run(&c, "0193a4f1c2d57def~").unwrap(),
        "0193a4f1c2d47abc8000000000000002"
    );
    assert!(resolve_run(&c, "latest~3").is_err());
    assert!(is_run_name("latest~1") && is_run_name("latest-replay") && is_run_name("0193a4~2"));
    assert!(!is_run_name("0193a4") && !is_run_name("model~1"));
}

/// Sorting or filtering 10,000 runs by a metric reads each run's value from an index,
/// not from a row of every step of every run.
#[test]
fn a_runs_metric_is_read_from_the_steps_index() {
    let mut c = Connection::open_in_memory().unwrap();
    crate::store::migrate(&mut c).unwrap();
    let mut st = c
        .prepare(&format!(
            "EXPLAIN QUERY PLAN SELECT {RUN_METRIC} FROM runs r"
        ))
        .unwrap();
    let plan: Vec<String> = st
        .query_map(["acc"], |r| r.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("COVERING INDEX steps_by_run_seq"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}

/// A run whose two steps report the same metric: the later step's value is the run's, in
/// the listing, the filter and the sort alike.
#[test]
fn a_runs_metric_is_its_last_steps() {
    let mut c = Connection::open_in_memory().unwrap();
    crate::store::migrate(&mut c).unwrap();
    c.execute_batch(
        "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');
         INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid)
           VALUES ('r1', 'p', 'p.toml', '/p', 's', '{}', '{\"lr\":0.1,\"name\":\"a\"}', 'succeeded', 1, 'h', 'u', '0', '[]', 1),
                  ('r2', 'p', 'p.toml', '/p', 's', '{}', '{\"lr\":1,\"name\":\"b\"}', 'succeeded', 2, 'h', 'u', '0', '[]', 1);
         INSERT INTO step_execs (id, run_id, step, cmd, argv, cwd, status) VALUES
           (1, 'r1', 'a', '', '[]', '', 'succeeded'), (2, 'r1', 'b', '', '[]', '', 'succeeded'),
           (3, 'r2', 'a', '', '[]', '', 'succeeded');
         INSERT INTO metrics (step_exec, key, value, source) VALUES (2, 'acc', 0.9, 'x'), (1, 'acc', 0.5, 'x'), (3, 'acc', 0.7, 'x');",
    )
    .unwrap();
    let ids = |f: RunFilter| -> Vec<(String, f64)> {
        list_runs(&c, &f)
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.metrics["acc"]))
            .collect()
    };
    assert_eq!(
        ids(RunFilter::default()),
        [("r2".into(), 0.7), ("r1".into(), 0.9)]
    );
    let f = |m: Vec<(String, Cmp, f64)>| RunFilter {
        metrics: m,
        ..RunFilter::default()
    };
    assert_eq!(ids(f(vec![("acc".into(), Cmp::Gt, 0.8)])).len(), 1);
    assert!(ids(f(vec![("acc".into(), Cmp::Lt, 0.6)])).is_empty());
    let sorted = ids(RunFilter {
        sort: Some(("acc".into(), false)),
        ..RunFilter::default()
    });
    assert_eq!(sorted[0].0, "r1");
    // sorted in the query: either way, with a metric filter, a page at an offset
    let sort = |asc: bool, metrics: Vec<(String, Cmp, f64)>, offset: usize| RunFilter {
        sort: Some(("acc".into(), asc)),
        metrics,
        offset,
        limit: Some(1),
        ..RunFilter::default()
    };
    assert_eq!(ids(sort(true, vec![], 0)), [("r2".into(), 0.7)]);
    assert_eq!(ids(sort(false, vec![], 1)), [("r2".into(), 0.7)]);
    assert!(ids(sort(false, vec![], 2)).is_empty());
    assert_eq!(
        ids(sort(true, vec![("acc".into(), Cmp::Gt, 0.8)], 0)),
        [("r1".into(), 0.9)]
    );
    // a run without the metric comes last, whichever the order
    c.execute_batch(
        "INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid)
           VALUES ('r3', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 3, 'h', 'u', '0', '[]', 1);",
    )
    .unwrap();
    for asc in [true, false] {
        let all = list_runs(
            &c,
            &RunFilter {
                sort: Some(("acc".into(), asc)),
                ..RunFilter::default()
            },
        )
        .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].id, "r3", "asc {asc}");
    }
    let c = &c;
    let ids = |f: RunFilter| -> Vec<(String, f64)> {
        list_runs(c, &f)
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.metrics.get("acc").copied().unwrap_or(f64::NAN)))
            .collect()
    };
    // params: numbers compare as numbers (1 = 1.0), strings as strings
    let p = |k: &str, v: serde_json::Value| RunFilter {
        params: vec![(k.into(), v)],
        ..RunFilter::default()
    };
    assert_eq!(ids(p("lr", serde_json::json!(1.0)))[0].0, "r2");
    assert_eq!(ids(p("name", serde_json::json!("a")))[0].0, "r1");
    assert!(ids(p("name", serde_json::json!(1))).is_empty());
}

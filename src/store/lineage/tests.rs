use rusqlite::{Connection, params};

use super::*;

/// A small store with the real schema: run 1 makes `data` from `raw` (external, no
/// producer) and `gen.py` (git); run 2 trains `model` from `data`; a third execution is
/// a cached copy of the training.
fn store() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    crate::store::migrate(&mut c).unwrap();
    c.execute_batch(
        "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x'');
         INSERT INTO git_snapshots (id, is_repo, commit_sha, dirty, changed, untracked) VALUES ('g', 1, 'c0ffee', 0, '[]', '[]');
         INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, git_start, hostname, user, mlrun_version, argv, pid)
           VALUES ('r1', 'prep', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 1, 'g', 'h', 'u', '0', '[]', 1),
                  ('r2', 'train', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 2, 'g', 'h', 'u', '0', '[]', 1),
                  ('r3', 'train', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 3, 'g', 'h', 'u', '0', '[]', 1);
         INSERT INTO step_execs (id, run_id, step, cmd, argv, cwd, status, started_at, git_before, reused_exec) VALUES
           (1, 'r1', 'prep', 'p', '[]', '', 'succeeded', 1, 'g', NULL),
           (2, 'r2', 'train', 't', '[]', '', 'succeeded', 2, 'g', NULL),
           (3, 'r3', 'train', 't', '[]', '', 'cached', 3, 'g', 2);
         INSERT INTO blobs (hash, kind, size, nfiles, stored) VALUES ('h1', 'file', 1, 1, 0), ('h2', 'file', 1, 1, 0), ('h3', 'file', 1, 1, 0), ('h4', 'file', 1, 1, 0);
         INSERT INTO artifacts (id, path) VALUES (1, 'raw'), (2, 'gen.py'), (3, 'data'), (4, 'model');
         INSERT INTO artifact_versions (id, artifact_id, blob_hash, first_seen) VALUES (1, 1, 'h1', 0), (2, 2, 'h2', 0), (3, 3, 'h3', 0), (4, 4, 'h4', 0);
         INSERT INTO io_edges (step_exec, direction, av_id, declared, origin) VALUES (1, 'in', 1, 1, 'external'), (1, 'in', 2, 1, 'git'), (1, 'out', 3, 1, NULL),
           (2, 'in', 3, 1, 'external'), (2, 'out', 4, 1, NULL),
           (3, 'in', 3, 1, 'external'), (3, 'out', 4, 1, NULL);",
    )
    .unwrap();
    c
}

fn ids(g: &Graph) -> Vec<&str> {
    let mut v: Vec<&str> = g.nodes.iter().map(Node::id).collect();
    v.sort();
    v
}

#[test]
fn upstream_crosses_runs_and_prefers_the_real_producer() {
    let c = store();
    let g = traverse(&c, &Seed::Version(4), Direction::Up, None).unwrap();
    assert_eq!(
        ids(&g),
        [
            "av:1",
            "av:2",
            "av:3",
            "av:4",
            "commit:c0ffee",
            "exec:1",
            "exec:2",
            "run:r1",
            "run:r2"
        ]
    );
    let gaps: Vec<&str> = g.gaps().map(|v| v.path.as_str()).collect();
    assert_eq!(
        gaps,
        ["raw"],
        "gen.py is tracked in git; raw has no producer"
    );
    assert!(g.edges.contains(&GraphEdge {
        from: "commit:c0ffee".into(),
        to: "av:2".into(),
        kind: "committed",
        origin: None,
        observed: false,
    }));
    match g.node("av:4").unwrap() {
        Node::ArtifactVersion {
            producers, reused, ..
        } => assert_eq!((*producers, *reused), (2, 1)),
        _ => panic!("av:4 is a version"),
    }
}

#[test]
fn hash_prefixes_resolve_or_list_the_candidates() {
    let c = store();
    assert_eq!(resolve_hash(&c, "h3").unwrap().unwrap().path, "data");
    assert!(resolve_hash(&c, "h9").unwrap().is_none());
    let e = resolve_hash(&c, "h").unwrap_err();
    assert!(
        e.message.contains("is ambiguous: 4 recorded versions"),
        "{e}"
    );
    assert_eq!(e.causes.len(), 4, "{e}");
    assert!(
        e.causes
            .iter()
            .any(|l| l.to_string().contains("h2  gen.py")),
        "{e}"
    );
}

#[test]
fn depth_limits_the_walk() {
    let c = store();
    let g = traverse(&c, &Seed::Version(4), Direction::Up, Some(1)).unwrap();
    let v: Vec<&str> = ids(&g)
        .into_iter()
        .filter(|i| i.starts_with("av") || i.starts_with("exec"))
        .collect();
    assert_eq!(v, ["av:3", "av:4", "exec:2"]);
}

#[test]
fn downstream_reaches_every_consumer_including_reuses() {
    let c = store();
    let g = traverse(&c, &Seed::Version(1), Direction::Down, None).unwrap();
    let v: Vec<&str> = ids(&g)
        .into_iter()
        .filter(|i| i.starts_with("av") || i.starts_with("exec"))
        .collect();
    assert_eq!(v, ["av:1", "av:3", "av:4", "exec:1", "exec:2", "exec:3"]);
    assert!(
        g.edges
            .iter()
            .any(|e| e.kind == "reused" && e.from == "exec:2" && e.to == "exec:3")
    );
}

#[test]
fn a_cycle_across_runs_terminates() {
    let c = store();
    // run 3's "training" also wrote `raw`: raw -> data -> model -> raw
    c.execute_batch("INSERT INTO io_edges (step_exec, direction, av_id, declared, origin) VALUES (2, 'out', 1, 1, NULL);")
        .unwrap();
    let g = traverse(&c, &Seed::Version(4), Direction::Up, None).unwrap();
    assert!(g.node("av:1").is_some());
    assert_eq!(g.gaps().count(), 0);
    let g = traverse(&c, &Seed::Version(1), Direction::Down, None).unwrap();
    assert!(g.node("av:4").is_some());
}

/// The planner must keep using the io_edges indexes, even after ANALYZE (FINDINGS: a Bloom
/// filter inside the recursive step made a 15-node walk 1000x slower).
#[test]
fn the_walk_uses_the_io_edges_indexes_after_analyze() {
    let c = store();
    // enough rows for ANALYZE statistics to matter
    let tx = c.unchecked_transaction().unwrap();
    for i in 10..3000i64 {
        tx.execute(
            "INSERT INTO step_execs (id, run_id, step, cmd, argv, cwd, status, started_at) VALUES (?1, 'r2', 's' || ?1, '', '[]', '', 'succeeded', ?1)",
            [i],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO io_edges (step_exec, direction, av_id, declared, origin) VALUES (?1, 'in', 1, 1, 'external'), (?1, 'in', 2, 1, 'git'), (?1, 'out', 3, 1, NULL)",
            [i],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    c.execute_batch("ANALYZE").unwrap();
    for dir in [Direction::Up, Direction::Down] {
        for limited in [false, true] {
            let sql = walk_sql(dir, limited);
            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let row = |r: &rusqlite::Row<'_>| r.get::<_, String>(3);
            let plan: Vec<String> = if limited {
                stmt.query_map(params!["[[0,4]]", 3], row)
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect()
            } else {
                stmt.query_map(params!["[[0,4]]"], row)
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect()
            };
            let text = plan.join("\n");
            assert!(!text.contains("BLOOM"), "{dir:?} {limited}:\n{text}");
            assert!(
                !text.contains("SCAN io_edges")
                    && !text.contains("SCAN i ")
                    && !text.contains("SCAN o "),
                "{dir:?} {limited}: io_edges must not be scanned:\n{text}"
            );
            let (by_av, by_exec) = match dir {
                Direction::Up => (
                    "SEARCH o USING COVERING INDEX io_by_av",
                    "SEARCH i USING PRIMARY KEY",
                ),
                Direction::Down => (
                    "SEARCH i USING COVERING INDEX io_by_av",
                    "SEARCH o USING PRIMARY KEY",
                ),
            };
            assert!(text.contains(by_av), "{dir:?} {limited}:\n{text}");
            assert!(text.contains(by_exec), "{dir:?} {limited}:\n{text}");
        }
    }
}

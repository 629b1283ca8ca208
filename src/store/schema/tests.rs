#[test]
fn migrations_apply_to_an_empty_database() {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    super::super::migrate(&mut conn).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, super::latest());
    // applying again is a no-op
    super::super::migrate(&mut conn).unwrap();
}

/// `sqlite_master` as (type, name, table, sql), sorted, and the schema version.
fn schema_of(conn: &rusqlite::Connection) -> (Vec<[Option<String>; 4]>, i64) {
    let mut st = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    let v = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    (rows, v)
}

/// What `schema_new.sql` must hold: the migrated schema in creation order, tables first.
fn expected_new_sql(conn: &rusqlite::Connection) -> String {
    let mut st = conn
        .prepare(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2
               ELSE 3 END, rowid",
        )
        .unwrap();
    let sqls = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    sqls.iter()
        .map(|s| format!("{};\n", s.trim_end()))
        .collect()
}

#[test]
fn a_new_store_gets_the_migrated_schema() {
    // every migration, one by one, from version 0 (what an existing store went through)
    let migrated = rusqlite::Connection::open_in_memory().unwrap();
    for m in super::MIGRATIONS {
        m.code.map_or(Ok(()), |c| c(&migrated)).unwrap();
        migrated.execute_batch(m.sql).unwrap();
    }
    migrated
        .pragma_update(None, "user_version", super::latest())
        .unwrap();
    // a new store: `migrate` on an empty database takes the one batch
    let mut fresh = rusqlite::Connection::open_in_memory().unwrap();
    super::super::migrate(&mut fresh).unwrap();
    let want = expected_new_sql(&migrated);
    assert!(
        schema_of(&fresh) == schema_of(&migrated),
        "src/store/schema_new.sql differs from what the migrations leave; it must hold, after \
         its comment lines:\n{want}"
    );
    assert!(
        super::NEW.ends_with(&want),
        "schema_new.sql: not in creation order"
    );
}

#[test]
fn migration_2_moves_directory_entries_into_verifiable_manifests() {
    use crate::fingerprint::hash::{
        Entry, MODE_EXEC, MODE_FILE, manifest, parse_manifest, sha256_bytes,
    };
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(super::V1).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    // inserted out of order: the manifest must come out sorted bytewise
    let entries = vec![
        Entry {
            relpath: "b.csv".into(),
            raw: None,
            mode: MODE_FILE,
            hash: sha256_bytes(b"b"),
            size: 1,
        },
        Entry {
            relpath: "A/run.sh".into(),
            raw: None,
            mode: MODE_EXEC,
            hash: sha256_bytes(b"a"),
            size: 2,
        },
    ];
    let mut sorted = entries.clone();
    sorted.sort_by(|a, b| a.relpath.as_bytes().cmp(b.relpath.as_bytes()));
    let dir = sha256_bytes(&manifest(&sorted));
    let empty = sha256_bytes(b"");
    conn.execute(
        "INSERT INTO blobs (hash, kind, size, nfiles) VALUES (?1, 'dir', 3, 2), (?2, 'dir', 0, 0)",
        [&dir, &empty],
    )
    .unwrap();
    for e in entries.iter().rev() {
        conn.execute(
            "INSERT INTO blobs (hash, kind, size, nfiles) VALUES (?1, 'file', ?2, 1)",
            rusqlite::params![e.hash, e.size as i64],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO dir_entries (dir_hash, relpath, mode, file_hash, size) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![dir, e.relpath, e.mode as i64, e.hash, e.size as i64],
        )
        .unwrap();
    }
    // one of the files is also a version of its own: its blob row stays
    conn.execute_batch(&format!(
        "INSERT INTO artifacts (id, path) VALUES (1, 'b.csv');
         INSERT INTO artifact_versions (artifact_id, blob_hash, first_seen) VALUES (1, '{}', 0);
         INSERT INTO hash_cache VALUES ('/p/b.csv', 1, 2, 3, 4, 5, 'h', 6);",
        entries[0].hash
    ))
    .unwrap();

    super::super::migrate(&mut conn).unwrap();
    let data: Vec<u8> = conn
        .query_row("SELECT data FROM contents WHERE hash = ?1", [&dir], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(sha256_bytes(&data), dir);
    assert_eq!(parse_manifest(&data), Some(sorted));
    let none: Vec<u8> = conn
        .query_row("SELECT data FROM contents WHERE hash = ?1", [&empty], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(none.is_empty());
    let files: Vec<String> = conn
        .prepare("SELECT hash FROM blobs WHERE kind = 'file'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(files, vec![entries[0].hash.clone()]);
    for gone in ["dir_entries", "hash_cache"] {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                [gone],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "{gone} dropped");
    }
}

#[test]
fn migration_18_rebuilds_tables_of_large_rows_with_a_rowid_keeping_rows_indexes_and_references() {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    crate::store::configure(&conn).unwrap();
    for m in &super::MIGRATIONS[..17] {
        let tx = conn.transaction().unwrap();
        if let Some(code) = m.code {
            code(&tx).unwrap();
        }
        tx.execute_batch(m.sql).unwrap();
        tx.commit().unwrap();
    }
    conn.pragma_update(None, "user_version", 17).unwrap();
    let big = vec![7u8; 3 << 20]; // spills onto overflow pages
    conn.execute(
        "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x''), ('big', ?1, ?2)",
        rusqlite::params![big.len() as i64, big],
    )
    .unwrap();
    conn.execute_batch(
        "INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid)
           VALUES ('r1', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 1, 'h', 'u', '0', '[]', 1);
         UPDATE runs SET message = 'kept' WHERE id = 'r1';",
    )
    .unwrap();

    let indexes = |conn: &rusqlite::Connection| -> Vec<String> {
        conn.prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'index'
             AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    };
    let before = indexes(&conn);
    super::super::migrate(&mut conn).unwrap();
    for table in super::WITH_ROWID {
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        // (a renamed table's definition names it quoted)
        assert!(
            sql.starts_with(&format!("CREATE TABLE \"{table}\" (")),
            "{sql}"
        );
    }
    assert!(before.contains(&"runs_sweep".to_string()), "{before:?}");
    assert_eq!(indexes(&conn), before, "every index made again");
    let message: Option<String> = conn
        .query_row("SELECT message FROM runs WHERE id = 'r1'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        message.as_deref(),
        Some("kept"),
        "columns added later are kept"
    );
    let data: Vec<u8> = conn
        .query_row("SELECT data FROM contents WHERE hash = 'big'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(data, big);
    let spec: String = conn
        .query_row(
            "SELECT c.hash FROM runs r JOIN contents c ON c.hash = r.spec_hash",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(spec, "s");
    // foreign keys are on again, and still name the rebuilt table
    let on: i64 = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert_eq!(on, 1);
    let unknown = conn.execute_batch(
        "INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid)
           VALUES ('r2', 'p', 'p.toml', '/p', 'nowhere', '{}', '{}', 'succeeded', 1, 'h', 'u', '0', '[]', 1);",
    );
    assert!(unknown.is_err(), "a run naming no content is refused");
    assert!(
        conn.execute("DELETE FROM contents WHERE hash = 's'", [])
            .is_err()
    );
}

#[test]
fn migration_4_erases_the_old_marker_salt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lineage.db");
    let salt = "0123456789abcdef0123456789abcdefSALT";
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(super::V1).unwrap();
        conn.execute_batch(super::V2).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('salt', ?1)", [salt])
            .unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('other', 'kept')", [])
            .unwrap();
    }
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    super::super::migrate(&mut conn).unwrap();
    let keys: Vec<String> = conn
        .prepare("SELECT key FROM meta")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(keys, ["other"]);
    drop(conn);
    // the bytes are gone from the file, not only unlinked from the table
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.windows(salt.len()).any(|w| w == salt.as_bytes()));
}

#[test]
fn migration_7_keeps_logs_recorded_whole_readable() {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(super::V1).unwrap();
    conn.execute_batch(super::V2).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
    conn.execute_batch(
        "INSERT INTO contents (hash, size, data) VALUES ('s', 0, x''), ('l', 6, CAST('hello\n' AS BLOB));
         INSERT INTO runs (id, pipeline, pipeline_file, root, spec_hash, plan, params, status, started_at, hostname, user, mlrun_version, argv, pid)
           VALUES ('r1', 'p', 'p.toml', '/p', 's', '{}', '{}', 'succeeded', 1, 'h', 'u', '0', '[]', 1);
         INSERT INTO step_execs (id, run_id, step, cmd, argv, cwd, status) VALUES (1, 'r1', 'a', '', '[]', '', 'succeeded');
         INSERT INTO step_logs (step_exec, stream, content_hash, bytes) VALUES (1, 'stdout', 'l', 6);",
    )
    .unwrap();
    super::super::migrate(&mut conn).unwrap();
    let log = crate::store::query::step_log(&conn, 1, "stdout").unwrap();
    assert_eq!(log.head, b"hello\n");
    assert_eq!(log.bytes, 6);
    assert!(log.tail.is_none() && log.full_hash.is_none() && !log.stored);
    let detail = crate::store::query::run_detail(&conn, "r1", false).unwrap();
    let info = &detail.steps[0].logs["stdout"];
    assert_eq!(
        (info.bytes, info.cut_bytes, info.object.is_none()),
        (6, 0, true)
    );
}

#[test]
fn finding_runs_left_running_does_not_read_every_run() {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    super::super::migrate(&mut conn).unwrap();
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id, hostname, pid, pid_start, boot_id FROM runs WHERE status = 'running'",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("runs_running"), "{plan}");
}

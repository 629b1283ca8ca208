use super::*;

#[test]
fn a_store_without_the_model_tables_has_no_models() {
    // as a store of an older schema opened read-only is
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(crate::store::schema::V1_FOR_TESTS)
        .unwrap();
    assert!(names(&conn).unwrap().is_empty());
    assert!(versions_of_av(&conn, 1).unwrap().is_empty());
    assert!(model_id(&conn, "churn").unwrap().is_none());
    assert!(all(&conn).unwrap().is_empty());
}

#[test]
fn versions_and_the_alias_log_cannot_be_rewritten() {
    let mut conn = Connection::open_in_memory().unwrap();
    crate::store::migrate(&mut conn).unwrap();
    conn.execute_batch(
        "INSERT INTO blobs (hash, kind, size, nfiles) VALUES ('aa', 'file', 1, 1);
         INSERT INTO artifacts (id, path) VALUES (1, 'm.pkl');
         INSERT INTO artifact_versions (id, artifact_id, blob_hash, first_seen) VALUES (1, 1, 'aa', 0);",
    )
    .unwrap();
    let nv = NewVersion {
        name: "churn",
        av_id: 1,
        exec_id: None,
        run_id: None,
        version: None,
        by: "me",
        message: None,
        auto: false,
        at: 1,
    };
    assert!(register(&mut conn, &nv).unwrap().new);
    assert!(!register(&mut conn, &nv).unwrap().new);
    set_alias(&mut conn, "churn", "prod", Some("v1"), "me", None, 2).unwrap();
    for sql in [
        "UPDATE model_versions SET av_id = 2",
        "DELETE FROM model_versions",
        "UPDATE model_alias_log SET to_version = NULL",
        "DELETE FROM model_alias_log",
    ] {
        let e = conn.execute(sql, []).unwrap_err().to_string();
        assert!(
            e.contains("immutable") || e.contains("never") || e.contains("append-only"),
            "{sql}: {e}"
        );
    }
}

use super::*;

fn fingerprint_nc(p: &Path) -> Result<Fingerprint> {
    fingerprint(p, &HashCache::disabled())
}

#[test]
fn empty_file_has_the_well_known_hash() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("e");
    std::fs::write(&p, b"").unwrap();
    assert_eq!(
        hash_file(&p).unwrap().0,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn dir_hash_depends_on_names_and_contents_not_order() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("x/sub")).unwrap();
    std::fs::write(d.path().join("x/b"), b"2").unwrap();
    std::fs::write(d.path().join("x/sub/a"), b"1").unwrap();
    let h1 = fingerprint_nc(&d.path().join("x")).unwrap();
    assert_eq!(h1.nfiles(), 2);
    std::fs::write(d.path().join("x/b"), b"3").unwrap();
    let h2 = fingerprint_nc(&d.path().join("x")).unwrap();
    assert_ne!(h1.hash(), h2.hash());
}

#[test]
fn special_files_inside_a_directory_are_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("x/sub")).unwrap();
    std::fs::write(d.path().join("x/a"), b"1").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(d.path().join("x/sub/s")).unwrap();
    let err = fingerprint_nc(&d.path().join("x")).unwrap_err();
    assert!(err.message.contains("is a socket"), "{err}");
}

#[test]
fn entries_record_mode_size_and_links() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("x");
    std::fs::create_dir(&x).unwrap();
    std::fs::write(x.join("run.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        x.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(x.join("data"), b"12345").unwrap();
    std::os::unix::fs::symlink("data", x.join("link")).unwrap();
    let Fingerprint::Dir { entries, size, .. } = fingerprint_nc(&x).unwrap() else {
        panic!("a directory")
    };
    let got: Vec<(&str, u32, u64)> = entries
        .iter()
        .map(|e| (e.relpath.as_str(), e.mode, e.size))
        .collect();
    assert_eq!(
        got,
        [
            ("data", MODE_FILE, 5),
            ("link", MODE_LINK, 0),
            ("run.sh", MODE_EXEC, 10)
        ]
    );
    assert_eq!(entries[1].hash, sha256_bytes(b"data"));
    assert_eq!(size, 15);
}

#[test]
fn a_tree_of_more_directories_than_are_held_open_hashes_as_one_walk() {
    // files are stat'ed relative to their open directory, OPEN_DIRS directories at a time
    let d = tempfile::tempdir().unwrap();
    let mut expect = Vec::new();
    for i in 0..OPEN_DIRS * 2 + 3 {
        let sub = format!("d{i:03}/e{}", i % 3);
        std::fs::create_dir_all(d.path().join(&sub)).unwrap();
        for (name, body) in [("a", format!("a{i}")), ("b b", format!("bb{i}"))] {
            let rel = format!("{sub}/{name}");
            std::fs::write(d.path().join(&rel), &body).unwrap();
            std::fs::set_permissions(
                d.path().join(&rel),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
            .unwrap();
            expect.push((rel, body));
        }
    }
    expect.sort();
    // the manifest as documented, computed independently of the walk
    let mut m = Vec::new();
    for (rel, body) in &expect {
        m.extend_from_slice(
            format!(
                "100644 {} {} {rel}\0",
                sha256_bytes(body.as_bytes()),
                body.len()
            )
            .as_bytes(),
        );
    }
    let store = crate::store::Store::in_memory();
    let cache = store.load_stat_cache(d.path()).unwrap();
    let fp = fingerprint(d.path(), &cache).unwrap();
    assert_eq!(fp.nfiles(), expect.len());
    assert_eq!(fp.hash(), sha256_bytes(&m));
    let Fingerprint::Dir { entries, .. } = &fp else {
        panic!("a directory")
    };
    assert_eq!(manifest(entries), m);
    assert_eq!(manifest_len(entries), m.len());
    // the second walk takes what the first learnt from the cache: the same answer
    assert_eq!(fingerprint(d.path(), &cache).unwrap(), fp);
}

#[test]
fn symlink_loops_do_not_hang() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("x")).unwrap();
    std::os::unix::fs::symlink("..", d.path().join("x/up")).unwrap();
    let f = fingerprint_nc(&d.path().join("x")).unwrap();
    assert_eq!(f.nfiles(), 1);
}

#[test]
fn numbers_are_written_as_fmt_writes_them() {
    let values = [
        0,
        1,
        7,
        8,
        9,
        10,
        0o644,
        0o755,
        0o120000,
        1023,
        1024,
        99_999,
        u64::MAX,
    ]
    .into_iter()
    .chain((0..64).map(|s| 1u64 << s))
    .chain((0..64).map(|s| (1u64 << s) - 1));
    for v in values {
        let (mut oct, mut dec) = (Vec::new(), Vec::new());
        push_number(&mut oct, v, 8);
        push_number(&mut dec, v, 10);
        assert_eq!(oct, format!("{v:o}").into_bytes());
        assert_eq!(dec, format!("{v}").into_bytes());
    }
}

#[test]
fn the_manifest_hashed_in_chunks_is_the_manifest_written_whole() {
    // more records than one 64 KiB chunk holds, so records straddle chunk boundaries
    let entries: Vec<Entry> = (0..3000)
        .map(|i| Entry {
            relpath: format!("d/f{i:05}.bin"),
            raw: None,
            mode: if i % 3 == 0 { MODE_EXEC } else { MODE_FILE },
            hash: sha256_bytes(&i.to_string().into_bytes()),
            size: i * 37,
        })
        .collect();
    let whole = manifest(&entries);
    assert!(whole.len() > 3 * (64 << 10));
    assert_eq!(manifest_hash(&entries), sha256_bytes(&whole));
    assert_eq!(whole.len(), manifest_len(&entries));
}

#[test]
fn manifests_parse_back_and_single_entries_are_found() {
    let e = |relpath: &str, mode, size| Entry {
        relpath: relpath.to_string(),
        raw: None,
        mode,
        hash: sha256_bytes(relpath.as_bytes()),
        size,
    };
    // "a b/x" ends with " b/x": the lookup of "b/x" must not take it for "b/x"'s record
    let entries = vec![
        e("a b/x", MODE_FILE, 1),
        e("b/x", MODE_EXEC, 22),
        e("link", MODE_LINK, 0),
        e("z z z", MODE_FILE, 333),
    ];
    let m = manifest(&entries);
    assert_eq!(parse_manifest(&m), Some(entries.clone()));
    for want in &entries {
        assert_eq!(manifest_lookup(&m, &want.relpath).as_ref(), Some(want));
    }
    assert_eq!(manifest_lookup(&m, "x"), None);
    assert_eq!(manifest_lookup(&m, "b"), None);
    let only_a_b = manifest(&entries[..1]);
    assert_eq!(manifest_lookup(&only_a_b, "b/x"), None);
    assert_eq!(parse_manifest(b""), Some(vec![]));
    assert_eq!(parse_manifest(&m[..m.len() - 1]), None, "cut short");
    assert_eq!(parse_manifest(b"100644 nothex 1 f\0"), None);
}

#[test]
fn a_directory_hash_is_the_sha256_of_its_manifest() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("s")).unwrap();
    std::fs::write(d.path().join("s/one"), b"1").unwrap();
    std::fs::write(d.path().join("two words"), b"22").unwrap();
    let Fingerprint::Dir { hash, entries, .. } = fingerprint_nc(d.path()).unwrap() else {
        panic!("not a directory")
    };
    assert_eq!(sha256_bytes(&manifest(&entries)), hash);
    assert_eq!(parse_manifest(&manifest(&entries)), Some(entries.to_vec()));
}

#[test]
fn utf8_names_keep_the_hash_they_always_had() {
    // computed from the documented manifest format, independently of this code
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    std::fs::write(d.path().join("b"), b"2").unwrap();
    std::fs::write(d.path().join("sub/a"), b"1").unwrap();
    std::fs::write(d.path().join("\u{e9}.txt"), b"x").unwrap();
    for p in ["b", "sub/a", "\u{e9}.txt"] {
        std::fs::set_permissions(
            d.path().join(p),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    assert_eq!(
        fingerprint_nc(d.path()).unwrap().hash(),
        "8cde262454eba63f6b4afe27d6037b4aee6aec3a62e10a111928d53ff9ebd743"
    );
}

#[test]
fn non_utf8_names_are_kept_byte_exactly() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    let (x, y) = (d.path().join("x"), d.path().join("y"));
    std::fs::create_dir(&x).unwrap();
    std::fs::create_dir(&y).unwrap();
    std::fs::write(x.join(std::ffi::OsStr::from_bytes(b"a\xff")), b"same").unwrap();
    std::fs::write(y.join("a\u{FFFD}"), b"same").unwrap();
    let fx = fingerprint_nc(&x).unwrap();
    let fy = fingerprint_nc(&y).unwrap();
    assert_ne!(fx.hash(), fy.hash());
    let Fingerprint::Dir { entries, .. } = fx else {
        panic!("a directory")
    };
    assert_eq!(entries[0].relpath, "a\u{FFFD}", "shown lossily");
    assert_eq!(entries[0].bytes(), b"a\xff");
    let m = manifest(&entries);
    assert!(m.windows(3).any(|w| w == b" a\xff"));
    assert_eq!(parse_manifest(&m), Some(entries.to_vec()));
}

use super::*;
use crate::fingerprint::cache::HashCache;
use crate::fingerprint::hash::fingerprint;

/// Files under `dir` (recursively), besides the scratch space's owner notes.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else if e.path().extension() != Some(OsStr::new("owner")) {
            out.push(e.path());
        }
    }
    out
}

/// A large file written an hour ago (so the stat cache may vouch for it).
fn large_old_file(path: &Path, seed: u8) {
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i as u8) ^ seed).collect();
    let mut f = File::create(path).unwrap();
    for _ in 0..(ahead::MIN_SIZE >> 20) {
        f.write_all(&block).unwrap();
    }
    f.write_all(b"tail").unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    f.set_modified(hour_ago).unwrap();
}

#[test]
fn a_copy_made_while_a_large_file_is_hashed_is_kept_only_if_the_file_did_not_change() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let store = crate::store::Store::in_memory();
    let cache = store.load_stat_cache(d.path()).unwrap();
    let objects = Objects::new(&d.path().join("store"));
    let tmp = d.path().join("store/objects/tmp");

    // unchanged: the copy made while hashing is the object (same inode), nothing is left
    let a = d.path().join("a.bin");
    large_old_file(&a, 1);
    objects.copy_ahead(&a);
    let fp = fingerprint(&a, &cache).unwrap();
    let copies = files_under(&tmp);
    assert_eq!(copies.len(), 1, "one copy ahead: {copies:?}");
    let copy_ino = std::fs::metadata(&copies[0]).unwrap().ino();
    objects.put(&a, &fp, &cache).unwrap();
    let obj = objects.path_of(fp.hash());
    assert_eq!(std::fs::metadata(&obj).unwrap().ino(), copy_ino);
    assert_eq!(hash_of(&obj).unwrap(), fp.hash());
    assert!(files_under(&tmp).is_empty());

    // changed after it was hashed: the copy is dropped and the change is caught
    let b = d.path().join("b.bin");
    large_old_file(&b, 2);
    objects.copy_ahead(&b);
    let fp = fingerprint(&b, &cache).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&b)
        .unwrap()
        .write_all(b"more")
        .unwrap();
    let err = objects.put(&b, &fp, &cache).unwrap_err();
    assert!(
        err.message.contains("changed while it was being stored"),
        "{}",
        err.message
    );
    assert!(!objects.has(fp.hash()));
    assert!(files_under(&tmp).is_empty());

    // already stored: the copy is stopped and removed
    objects.copy_ahead(&a);
    let fp = fingerprint(&a, &cache).unwrap();
    objects.put(&a, &fp, &cache).unwrap();
    assert!(files_under(&tmp).is_empty());

    // never taken (the step was reused): cancelled and removed
    let c = d.path().join("c.bin");
    large_old_file(&c, 3);
    objects.copy_ahead(&c);
    objects.cancel_ahead(&c);
    assert!(files_under(&tmp).is_empty());
}

#[test]
fn store_and_restore_a_directory_with_a_link() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), b"alpha").unwrap();
    std::fs::write(src.join("sub/b"), b"beta").unwrap();
    std::os::unix::fs::symlink("a", src.join("link")).unwrap();
    let fp = fingerprint(&src, &HashCache::disabled()).unwrap();
    let objects = Objects::new(&d.path().join("store"));
    objects.put(&src, &fp, &HashCache::disabled()).unwrap();
    assert!(objects.can_restore(&fp));
    let dest = d.path().join("out/restored");
    objects.restore(&fp, d.path(), "out/restored").unwrap();
    assert_eq!(
        fingerprint(&dest, &HashCache::disabled()).unwrap().hash(),
        fp.hash()
    );
    assert_eq!(
        std::fs::read_link(dest.join("link")).unwrap(),
        Path::new("a")
    );
}

#[test]
fn a_corrupt_object_is_detected_and_not_restored() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("f");
    std::fs::write(&f, b"good bytes").unwrap();
    let fp = fingerprint(&f, &HashCache::disabled()).unwrap();
    let objects = Objects::new(&d.path().join("store"));
    objects.put(&f, &fp, &HashCache::disabled()).unwrap();
    let obj = objects.path_of(fp.hash());
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&obj, b"bad bytes!").unwrap();
    assert!(matches!(
        objects.verify(fp.hash()),
        Err(Problem::Corrupt { .. })
    ));
    std::fs::write(&f, b"current").unwrap();
    let err = objects.restore(&fp, d.path(), "f").unwrap_err();
    assert!(err.message.contains("is corrupt"), "{err}");
    assert_eq!(
        std::fs::read(&f).unwrap(),
        b"current",
        "destination untouched"
    );
}

/// A cache that has hashed `f` well after its last modification (the stat cache's rule).
fn vouching_cache(f: &Path) -> (crate::store::Store, HashCache, Fingerprint) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    File::options()
        .write(true)
        .open(f)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let store = crate::store::Store::in_memory();
    let cache = store.load_stat_cache(f.parent().unwrap()).unwrap();
    let fp = fingerprint(f, &cache).unwrap();
    let meta = std::fs::metadata(f).unwrap();
    assert_eq!(cache.get(f, &meta).as_deref(), Some(fp.hash()), "vouched");
    (store, cache, fp)
}

#[test]
fn a_file_the_stat_cache_vouches_for_is_copied_without_rereading_and_verifies() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("f");
    std::fs::write(&f, vec![7u8; 3 << 20]).unwrap();
    let (_conn, cache, fp) = vouching_cache(&f);
    let objects = Objects::new(&d.path().join("store"));
    objects.put(&f, &fp, &cache).unwrap();
    assert!(objects.verify(fp.hash()).is_ok());
}

#[test]
fn a_file_changed_after_it_was_hashed_is_not_stored_under_the_old_hash() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("f");
    std::fs::write(&f, b"hashed bytes").unwrap();
    let (_conn, cache, fp) = vouching_cache(&f);
    std::fs::write(&f, b"other bytes!").unwrap();
    let objects = Objects::new(&d.path().join("store"));
    let err = objects.put(&f, &fp, &cache).unwrap_err();
    assert!(
        err.message.contains("changed while it was being stored"),
        "{err}"
    );
    assert!(!objects.has(fp.hash()));
}

#[test]
fn only_filesystem_wide_refusals_stop_reflink_attempts() {
    use nix::errno::Errno;
    let err = |e: Errno| std::io::Error::from_raw_os_error(e as i32);
    assert!(cannot_clone_here(&err(Errno::EOPNOTSUPP)));
    assert!(cannot_clone_here(&err(Errno::ENOTTY)));
    assert!(cannot_clone_here(&err(Errno::EINVAL)));
    assert!(
        !cannot_clone_here(&err(Errno::EXDEV)),
        "depends on the source"
    );
    assert!(!cannot_clone_here(&err(Errno::ENOENT)));
    assert!(!cannot_clone_here(&err(Errno::EACCES)));
}

#[test]
fn many_files_are_stored_intact_whether_or_not_reflink_works() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..50u8 {
        std::fs::write(src.join(format!("f{i}")), vec![i; 1000 + i as usize]).unwrap();
    }
    let fp = fingerprint(&src, &HashCache::disabled()).unwrap();
    let objects = Objects::new(&d.path().join("store"));
    objects.put(&src, &fp, &HashCache::disabled()).unwrap();
    let Fingerprint::Dir { entries, .. } = &fp else {
        panic!("a directory")
    };
    for e in entries.iter() {
        assert!(objects.verify(&e.hash).is_ok(), "{}", e.relpath);
    }
}

#[test]
fn a_crash_before_the_rename_leaves_no_object() {
    // Simulate: the temporary copy was written, then the process died before rename.
    let d = tempfile::tempdir().unwrap();
    let objects = Objects::new(&d.path().join("store"));
    let tmp = objects.tmp_path().unwrap();
    std::fs::write(&tmp, b"half").unwrap();
    assert!(objects.list().is_empty(), "temporaries are not objects");
    assert!(!objects.has(&crate::fingerprint::hash::sha256_bytes(b"half")));
}

#[test]
fn a_sparse_file_stays_sparse_in_the_store_and_when_restored() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("sparse.bin");
    let file = File::create(&f).unwrap();
    file.set_len(16 << 20).unwrap();
    drop(file);
    let mut tail = File::options().write(true).open(&f).unwrap();
    std::io::Seek::seek(&mut tail, std::io::SeekFrom::Start(10 << 20)).unwrap();
    tail.write_all(b"data in the middle").unwrap();
    drop(tail);
    let fp = fingerprint(&f, &HashCache::disabled()).unwrap();
    let objects = Objects::new(&d.path().join("store"));
    objects.put(&f, &fp, &HashCache::disabled()).unwrap();
    let obj = std::fs::metadata(objects.path_of(fp.hash())).unwrap();
    assert_eq!(obj.len(), 16 << 20);
    assert!(obj.blocks() * 512 < 4 << 20, "{} blocks", obj.blocks());
    assert!(objects.verify(fp.hash()).is_ok());
    let back = d.path().join("restored.bin");
    objects.restore(&fp, d.path(), "restored.bin").unwrap();
    let meta = std::fs::metadata(&back).unwrap();
    assert!(meta.blocks() * 512 < 4 << 20, "{} blocks", meta.blocks());
    assert_eq!(
        fingerprint(&back, &HashCache::disabled()).unwrap().hash(),
        fp.hash()
    );
}

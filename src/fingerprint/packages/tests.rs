use super::*;

fn dist(dir: &Path, name: &str, version: &str) {
    let d = dir.join(format!("{}-{version}.dist-info", name.replace('-', "_")));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("METADATA"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: not-this\n"),
    )
    .unwrap();
}

#[test]
fn names_are_normalised_as_pep_503_says() {
    assert_eq!(normalise("Foo.Bar__baz"), "foo-bar-baz");
    assert_eq!(normalise("scikit_learn"), "scikit-learn");
}

#[test]
fn a_virtualenv_is_read_from_its_layout() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::fs::write(base.join("bin/python3.11"), b"\x7fELF").unwrap();
    let base_site = base.join("lib/python3.11/site-packages");
    dist(&base_site, "numpy", "1.26.4");
    let venv = t.path().join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::os::unix::fs::symlink(base.join("bin/python3.11"), venv.join("bin/python3")).unwrap();
    std::fs::write(
        venv.join("pyvenv.cfg"),
        format!(
            "home = {}\ninclude-system-site-packages = true\nversion = 3.11.7\n",
            base.join("bin").display()
        ),
    )
    .unwrap();
    let site = venv.join("lib/python3.11/site-packages");
    dist(&site, "Scikit_Learn", "1.5.0");
    dist(&site, "numpy", "2.0.0"); // shadows the base's
    std::fs::create_dir_all(site.join("old-0.1-py3.11.egg-info")).unwrap();
    std::fs::write(
        site.join("flat-2.0-py3.11.egg-info"),
        "Name: flat\nVersion: 2.0\n",
    )
    .unwrap();
    let vars: BTreeMap<String, String> = [(
        "PATH".to_string(),
        venv.join("bin").to_string_lossy().into_owned(),
    )]
    .into();
    let c = PackageCache::default();
    let found = c.inspect(&["python3".into(), "cp".into()], t.path(), &vars);
    let i = &found["python3"];
    assert_eq!(i.env.kind, "venv");
    assert_eq!(i.env.prefix, venv.to_string_lossy());
    assert_eq!(i.env.version.as_deref(), Some("3.11"));
    let set = i.set.as_ref().unwrap();
    let got: Vec<(&str, &str, &str)> = set
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str(), p.source.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("flat", "2.0", "egg-info"),
            ("numpy", "2.0.0", "dist-info"),
            ("old", "0.1", "egg-info"),
            ("Scikit_Learn", "1.5.0", "dist-info"),
        ]
    );
    assert_eq!(i.env.count, 4);
    // the same run asks again: no new scan, same answer
    let again = c.inspect(&["python3".into()], t.path(), &vars);
    assert_eq!(again["python3"].env, i.env);
}

#[test]
fn a_remembered_scan_is_used_only_while_the_directories_are_unchanged_and_old() {
    let t = tempfile::tempdir().unwrap();
    let prefix = t.path().join("conda");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join("conda-meta")).unwrap();
    std::fs::write(prefix.join("bin/python3.12"), b"\x7fELF").unwrap();
    std::fs::write(
        prefix.join("conda-meta/libzstd-1.5.6-ha6fb4c9_0.json"),
        "{}",
    )
    .unwrap();
    std::fs::write(
        prefix.join("conda-meta/python-dateutil-2.9.0-pyhd8ed1ab_0.json"),
        "{}",
    )
    .unwrap();
    dist(
        &prefix.join("lib/python3.12/site-packages"),
        "python-dateutil",
        "2.9.0.post0",
    );
    let vars: BTreeMap<String, String> = [(
        "PATH".to_string(),
        prefix.join("bin").to_string_lossy().into_owned(),
    )]
    .into();
    let first = PackageCache::default().inspect(&["python3.12".into()], t.path(), &vars);
    let i = &first["python3.12"];
    assert_eq!(i.env.kind, "conda");
    let names: Vec<(&str, &str)> = i
        .set
        .as_ref()
        .unwrap()
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        names,
        [("libzstd", "1.5.6"), ("python-dateutil", "2.9.0.post0")]
    );
    let mut remembered = i.remember.clone().unwrap();
    // just made: racy, scanned again
    let c = PackageCache::new(vec![remembered.clone()]);
    assert!(
        c.inspect(&["python3.12".into()], t.path(), &vars)["python3.12"]
            .set
            .is_some()
    );
    // old enough: not scanned
    remembered.scanned_at_ns += 3 * RACY_NS;
    let c = PackageCache::new(vec![remembered.clone()]);
    let hit = &c.inspect(&["python3.12".into()], t.path(), &vars)["python3.12"];
    assert!(hit.set.is_none());
    assert_eq!(hit.env, i.env);
    // an installation changes the directory: scanned again
    dist(
        &prefix.join("lib/python3.12/site-packages"),
        "rich",
        "13.7.1",
    );
    let c = PackageCache::new(vec![remembered]);
    let miss = &c.inspect(&["python3.12".into()], t.path(), &vars)["python3.12"];
    assert_eq!(miss.env.count, 3);
}

#[test]
fn a_pyenv_shim_is_followed_to_the_version_pyenv_picks() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("pyenv");
    std::fs::create_dir_all(root.join("shims")).unwrap();
    std::fs::write(
        root.join("shims/python3"),
        "#!/usr/bin/env bash\nexec pyenv exec\n",
    )
    .unwrap();
    for v in ["3.11.7", "3.12.1"] {
        let bin = root.join("versions").join(v).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let minor = &v[..4];
        std::fs::write(bin.join(format!("python{minor}")), b"\x7fELF").unwrap();
        std::os::unix::fs::symlink(format!("python{minor}"), bin.join("python3")).unwrap();
        dist(
            &root
                .join("versions")
                .join(v)
                .join(format!("lib/python{minor}/site-packages")),
            "pip",
            v,
        );
    }
    std::fs::write(root.join("version"), "3.11.7\n").unwrap();
    let project = t.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let mut vars: BTreeMap<String, String> = [(
        "PATH".to_string(),
        root.join("shims").to_string_lossy().into_owned(),
    )]
    .into();
    let version = |vars: &BTreeMap<String, String>| {
        let found = PackageCache::default().inspect(&["python3".into()], &project, vars);
        let i = &found["python3"];
        assert_eq!(i.env.kind, "system");
        (
            i.env.version.clone().unwrap(),
            i.set.as_ref().unwrap().packages[0].version.clone(),
        )
    };
    // the global version file
    assert_eq!(version(&vars), ("3.11".to_string(), "3.11.7".to_string()));
    // the project's .python-version wins over it
    std::fs::write(project.join(".python-version"), "3.12.1\n").unwrap();
    assert_eq!(version(&vars), ("3.12".to_string(), "3.12.1".to_string()));
    // and PYENV_VERSION over both
    vars.insert("PYENV_VERSION".into(), "3.11.7".into());
    assert_eq!(version(&vars), ("3.11".to_string(), "3.11.7".to_string()));
}

#[test]
fn differences_name_each_package() {
    let p = |n: &str, v: &str| Package {
        name: n.into(),
        version: v.into(),
        source: "dist-info".into(),
    };
    let a = [p("numpy", "1.26.4"), p("scipy", "1.13.0"), p("Same", "1")];
    let b = [p("numpy", "2.0.0"), p("rich", "13.7.1"), p("same", "1")];
    assert_eq!(
        describe(&compare(&a, &b)),
        [
            "numpy 1.26.4 → 2.0.0",
            "rich 13.7.1 added",
            "scipy 1.13.0 missing"
        ]
    );
}

#[test]
fn interpreters_are_recognised_by_name() {
    assert!(is_interpreter("python3"));
    assert!(is_interpreter("/usr/bin/python3.11"));
    assert!(is_interpreter("Rscript"));
    assert!(!is_interpreter("cp"));
    assert!(!is_interpreter("sh"));
}

//! The packages of a step's interpreter are part of its record: a real virtualenv built here
//! (offline: the local package is a wheel written by hand), checked against `pip list` of that
//! virtualenv; a version change shows in `diff`, `show`, `export` and `replay`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{Env, json, one};

const PIPELINE: &str = r#"
[steps.train]
cmd = "python3 train.py"
inputs = ["train.py", "deps/requirements.txt"]
outputs = ["model.txt"]
"#;

const TRAIN: &str = "import tinypkg\nopen('model.txt', 'w').write('made with tinypkg ' + tinypkg.__version__ + '\\n')\n";

/// A wheel for `tinypkg` VERSION, written by hand (a zip with its dist-info): no build backend,
/// no network.
pub(crate) fn wheel(dir: &Path, version: &str) -> PathBuf {
    let path = dir.join(format!("tinypkg-{version}-py3-none-any.whl"));
    let script = format!(
        r#"import zipfile
di = "tinypkg-{version}.dist-info"
with zipfile.ZipFile({path:?}, "w") as z:
    z.writestr("tinypkg/__init__.py", "__version__ = '{version}'\n")
    z.writestr(di + "/METADATA", "Metadata-Version: 2.1\nName: tinypkg\nVersion: {version}\nSummary: a test\n\nName: not-the-name\n")
    z.writestr(di + "/WHEEL", "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(di + "/RECORD", "tinypkg/__init__.py,,\n" + di + "/METADATA,,\n" + di + "/WHEEL,,\n" + di + "/RECORD,,\n")
"#,
        path = path.to_string_lossy()
    );
    run(Command::new("python3").args(["-c", &script]));
    path
}

pub(crate) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn pip(venv: &Path, args: &[&str]) -> String {
    run(Command::new(venv.join("bin/python"))
        .args(["-m", "pip", "--disable-pip-version-check", "--no-input"])
        .args(args)
        .env("PIP_NO_INDEX", "1")
        .env("PIP_CONFIG_FILE", "/dev/null"))
}

/// name → version, as `pip list --format json` of the virtualenv says.
fn pip_list(venv: &Path) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&pip(venv, &["list", "--format", "json"])).unwrap();
    let mut l: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_lowercase(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    l.sort();
    l
}

/// name → version of `python3`'s packages in a step environment of `show --json`.
fn recorded(env: &Value) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = env["packages"]["python3"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_lowercase(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    l.sort();
    l
}

fn step_env(show: &Value) -> Value {
    let id = show["steps"][0]["env_id"].as_str().unwrap();
    show["environments"][id].clone()
}

// One scenario in named phases: one virtualenv is built (python -m venv and pip are slow) and
// its package upgraded midway; every reader of the recorded lists (show, diff, export, replay)
// is checked against the same two runs, which separate tests would each have to build again.
#[test]
fn a_virtualenvs_packages_are_recorded_diffed_exported_and_checked_by_replay() {
    let mut env = Env::git();
    let venv = env.home.join("venv");
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    let wheels = env.home.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let (w1, w2) = (wheel(&wheels, "1.0"), wheel(&wheels, "2.0"));
    pip(&venv, &["install", "-q", w1.to_str().unwrap()]);
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.set_env("PATH", &path);
    env.write(".gitignore", "/.mlrun/\n/model.txt\n");
    env.write("pipeline.toml", PIPELINE);
    env.write("train.py", TRAIN);
    env.write("deps/requirements.txt", "tinypkg==1.0\n");
    env.commit("pipeline");

    let (show1, listed) = the_first_run_records_what_pip_lists(&env, &venv);
    let first = show1["id"].as_str().unwrap();
    an_upgrade_is_recorded_and_diffed(&env, &venv, &w2, first, &listed);
    exports_carry_the_packages(&env, &venv);
    replay_names_the_package_change(&env, first);
    an_interpreter_from_another_environment_is_a_warning(env, &venv, first);
}

/// The first run records the virtualenv's packages, as pip lists them, shown as text and on the
/// model card; a second run in the same environment stores the list once.
fn the_first_run_records_what_pip_lists(env: &Env, venv: &Path) -> (Value, Vec<(String, String)>) {
    let out = env.mlrun(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    let show1 = json(&env.mlrun(&["show", "--json"]));
    let e1 = step_env(&show1);
    let py = &e1["packages"]["python3"];
    assert_eq!(py["kind"], "venv");
    assert_eq!(
        Path::new(py["prefix"].as_str().unwrap()),
        venv.canonicalize().unwrap().as_path()
    );
    assert_eq!(
        Path::new(py["executable"].as_str().unwrap()),
        venv.join("bin/python3").as_path()
    );
    // exactly what pip says the virtualenv has
    let listed = pip_list(venv);
    assert!(
        listed.contains(&("tinypkg".into(), "1.0".into())),
        "{listed:?}"
    );
    assert_eq!(recorded(&e1), listed);
    assert_eq!(py["count"], listed.len());
    // the requirements file kept under deps/ (a declared input) is a recorded lock file
    assert!(
        e1["lockfiles"]["deps/requirements.txt"].is_string(),
        "{}",
        e1["lockfiles"]
    );

    // text: a count, and the list with --packages
    let text = env.mlrun(&["show"]);
    assert!(
        text.stdout.contains(&format!(
            "packages  python3: venv {} · {} packages",
            venv.canonicalize().unwrap().display(),
            listed.len()
        )),
        "{text:?}"
    );
    let list = env.mlrun(&["show", "--packages"]);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["tinypkg", "1.0"]),
        "{list:?}"
    );
    // the model card names the environment too
    let card = env.mlrun(&["show", "model.txt", "--packages"]);
    assert!(card.stdout.contains("packages  python3: venv"), "{card:?}");
    assert!(card.stdout.contains("tinypkg"), "{card:?}");

    // a second run in the same environment stores the list once
    let again = env.mlrun(&["run", "--force"]);
    assert_eq!(again.code, 0, "{again:?}");
    let db = env.db();
    assert_eq!(one::<i64>(&db, "SELECT COUNT(*) FROM package_sets"), 1);

    (show1, listed)
}

/// Upgrade the package: the next run records 2.0, and diff names the change.
fn an_upgrade_is_recorded_and_diffed(
    env: &Env,
    venv: &Path,
    w2: &Path,
    first: &str,
    listed: &[(String, String)],
) {
    pip(venv, &["install", "-q", "--upgrade", w2.to_str().unwrap()]);
    let out = env.mlrun(&["run", "--force"]);
    assert_eq!(out.code, 0, "{out:?}");
    let show3 = json(&env.mlrun(&["show", "--json"]));
    assert_eq!(recorded(&step_env(&show3)), pip_list(venv));
    let d = env.mlrun(&["diff", first, "latest"]);
    assert_eq!(d.code, 0, "{d:?}");
    assert!(
        d.stdout.contains("packages  1 changed, 0 added, 0 removed"),
        "{d:?}"
    );
    assert!(
        d.stdout
            .lines()
            .any(|l| l.contains("~ tinypkg") && l.contains("1.0 → 2.0")),
        "{d:?}"
    );
    let section: String = d
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("environment"))
        .take_while(|l| !l.starts_with("steps"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::with_settings!({filters => vec![(r"\d+ unchanged", "[N] unchanged")]}, {
        insta::assert_snapshot!("diff_packages", section);
    });
    let dj = json(&env.mlrun(&["diff", first, "latest", "--json"]));
    let changes = dj["environment"]["packages"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{dj}");
    assert_eq!(changes[0]["name"], "tinypkg");
    assert_eq!(changes[0]["status"], "changed");
    assert_eq!(changes[0]["a"], "1.0");
    assert_eq!(changes[0]["b"], "2.0");
    assert_eq!(dj["environment"]["unchanged"], false);
    assert_eq!(
        dj["environment"]["packages_unchanged"],
        listed.len() - 1,
        "{dj}"
    );
}

/// Export: an OpenLineage run facet and PROV attributes.
fn exports_carry_the_packages(env: &Env, venv: &Path) {
    let ol = env.mlrun(&["export", "latest", "--format", "openlineage"]);
    assert_eq!(ol.code, 0, "{ol:?}");
    let complete: Value = ol
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| {
            e["eventType"] == "COMPLETE" && e["job"]["name"].as_str().unwrap().ends_with(".train")
        })
        .unwrap();
    // every event stays valid against the OpenLineage schemas, the new facet included
    let schemas = crate::export::schemas();
    let mut errors = Vec::new();
    for (n, e) in ol.stdout.lines().enumerate() {
        let e: Value = serde_json::from_str(e).unwrap();
        errors.extend(
            schemas
                .event
                .iter_errors(&e)
                .map(|err| format!("event {n}: {err} at {}", err.instance_path())),
        );
        crate::export::check_facets(&schemas, &e["run"]["facets"], "run", &mut errors);
    }
    assert!(errors.is_empty(), "{errors:#?}");
    let facet = &complete["run"]["facets"]["mlrun_packages"];
    assert!(
        facet["_producer"]
            .as_str()
            .unwrap()
            .starts_with("urn:mlrun:")
    );
    assert_eq!(facet["_schemaURL"], "urn:mlrun:openlineage:facets:1-0-0");
    let interp = &facet["interpreters"][0];
    assert_eq!(interp["program"], "python3");
    assert_eq!(interp["kind"], "venv");
    assert!(
        interp["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "tinypkg" && p["version"] == "2.0"),
        "{facet}"
    );
    let prov = json(&env.mlrun(&["export", "latest", "--format", "prov"]));
    assert_eq!(crate::export::prov_problems(&prov), Vec::<String>::new());
    let bundle = prov["bundle"].as_object().unwrap().values().next().unwrap();
    let act = bundle["activity"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(act["mlrun:package/tinypkg"], "2.0", "{act}");
    assert_eq!(
        Path::new(act["mlrun:interpreter/python3"].as_str().unwrap()),
        venv.join("bin/python3").as_path()
    );
}

/// Replay the first run: the package differs before anything runs, and the verdict names it.
fn replay_names_the_package_change(env: &Env, first: &str) {
    let r = env.mlrun(&["replay", first]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(
            "warning: environment differs from the recorded run: python3 package tinypkg 1.0 → 2.0"
        ),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("likely cause: 1 package differs from the recorded run: tinypkg 1.0 → 2.0"),
        "{r:?}"
    );
    let verdict: String = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("✗ train") || l.contains("likely cause"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("replay_likely_cause", verdict);
    let rj = env.mlrun(&["replay", first, "--json"]);
    let v: Value = serde_json::from_str(&rj.stdout).unwrap();
    assert_eq!(
        v["steps"][0]["package_changes"][0], "tinypkg 1.0 → 2.0",
        "{v}"
    );
}

/// An interpreter from another environment is a warning too.
fn an_interpreter_from_another_environment_is_a_warning(env: Env, venv: &Path, first: &str) {
    let other = env.home.join("other");
    run(Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&other));
    let mut env2 = env;
    env2.set_env(
        "PATH",
        &format!(
            "{}:{}",
            other.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    let r = env2.mlrun(&["replay", first]);
    assert!(
        r.stderr.contains(&format!(
            "python3: interpreter {} (venv {}) → {} (venv {})",
            venv.join("bin/python3").display(),
            venv.canonicalize().unwrap().display(),
            other.join("bin/python3").display(),
            other.canonicalize().unwrap().display(),
        )),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("python3 package tinypkg 1.0 missing"),
        "{r:?}"
    );
}

#[test]
fn lock_files_are_found_where_users_keep_them() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        r#"
[pipeline]
lockfiles = ["envs/**/*.yml"]
[steps.a]
cmd = "echo hi > ../out.txt"
cwd = "src"
inputs = ["deps/"]
outputs = ["out.txt"]
"#,
    );
    env.write("deps/requirements-dev.txt", "pytest\n");
    env.write("src/uv.lock", "version = 1\n");
    env.write("envs/ml/conda.yml", "name: ml\n");
    env.write("requirements.txt", "numpy\n");
    env.write("notes.txt", "not a lock file\n");
    env.commit("project");
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let show = json(&env.mlrun(&["show", "--json"]));
    let locks = &step_env(&show)["lockfiles"];
    let mut names: Vec<&str> = locks
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "deps/requirements-dev.txt",
            "envs/ml/conda.yml",
            "requirements.txt",
            "src/uv.lock"
        ]
    );
    assert_eq!(locks["src/uv.lock"], env.sha256sum("src/uv.lock"));
}

#[test]
fn lock_file_patterns_are_validated_where_they_are_written() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[pipeline]\nlockfiles = [\"deps/[.lock\", \"../up.lock\"]\n[steps.a]\ncmd = \"echo > ran.txt\"\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!env.path("ran.txt").exists());
    insta::assert_snapshot!("lockfiles_invalid", out.stderr);

    env.write(
        "pipeline.toml",
        "[pipeline]\nlockfiles = [\"deps/*.lock\"]\n[steps.a]\ncmd = \"echo > ran.txt\"\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_snapshot!("lockfiles_matching_nothing", out.stderr);
}

#[test]
fn fsck_checks_the_recorded_package_lists() {
    let env = Env::git();
    env.write(
        "pipeline.toml",
        "[steps.a]\ncmd = \"python3 -c 'print(1)' > out.txt\"\noutputs = [\"out.txt\"]\n",
    );
    let out = env.mlrun(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    let db = env.db();
    let n: i64 = one(&db, "SELECT COUNT(*) FROM package_sets");
    assert_eq!(n, 1, "python3's packages are recorded");
    assert_eq!(env.mlrun(&["fsck"]).code, 0);
    db.execute("UPDATE package_sets SET data = CAST('[]' AS BLOB)", [])
        .unwrap();
    let out = env.mlrun(&["fsck"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("package list corrupt"), "{out:?}");
    db.execute_batch("DELETE FROM package_scan_cache; DELETE FROM package_sets;")
        .unwrap();
    let out = env.mlrun(&["fsck", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["findings"][0]["problem"], "package list missing", "{v}");
}

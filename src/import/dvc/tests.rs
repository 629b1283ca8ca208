use super::convert::*;
use super::expand::*;
use super::template::*;
use super::write::*;
use super::*;

fn y(s: &str) -> Y {
    serde_norway::from_str(s).unwrap()
}

fn vars(s: &str, source: Option<&str>) -> Vars {
    let mut v = Vars::default();
    let Y::Mapping(m) = y(s) else { panic!() };
    v.merge(m, source).unwrap();
    v
}

#[test]
fn templates_expand_from_vars_and_items() {
    let v = vars(
        "lr: 0.001\nsmall: 1.0e-5\nflag: true\nmodel: {name: cnn, layers: [1, 2]}\nn: 3",
        None,
    );
    let mut local = Mapping::new();
    local.insert("item".into(), y("{city: Paris, n: 2}"));
    let e = |s: &str| expand(s, &local, &v, Mode::Text).unwrap();
    assert_eq!(
        e("a ${lr} ${ small } ${flag}"),
        Y::String("a 0.001 1e-05 true".into())
    );
    assert_eq!(
        e("${model.name}/${model.layers[1]}"),
        Y::String("cnn/2".into())
    );
    assert_eq!(e("${item.city}-${item.n}"), Y::String("Paris-2".into()));
    assert_eq!(e("cost \\${n} ${n}"), Y::String("cost ${n} 3".into()));
    assert_eq!(
        expand("${nope.x}", &local, &v, Mode::Text),
        Err(TemplateError::Undefined("nope.x".into()))
    );
    assert!(matches!(
        expand("${model}", &local, &v, Mode::Text),
        Err(TemplateError::NotText(_, "a mapping"))
    ));
    assert!(matches!(
        expand("${lr", &local, &v, Mode::Text),
        Err(TemplateError::Malformed(_))
    ));
    assert_eq!(
        expand("${model.layers}", &local, &v, Mode::Iterable).unwrap(),
        y("[1, 2]")
    );
}

#[test]
fn cmd_unpacks_mappings_and_keeps_params_for_mlrun() {
    let mut v = vars("train: {lr: 0.1, epochs: 3}", Some("params.yaml"));
    let Y::Mapping(m) =
        y("args: {name: a b, fast: true, slow: false, ids: [1, x y], opt: {depth: 2}}")
    else {
        panic!()
    };
    v.merge(m, None).unwrap();
    let mode = Mode::Cmd {
        params_file: Some("params.yaml"),
    };
    let got = expand(
        "train.py ${args} --lr ${train.lr}",
        &Mapping::new(),
        &v,
        mode,
    )
    .unwrap();
    assert_eq!(
        got,
        Y::String(
            "train.py --name 'a b' --fast --ids 1 'x y' --opt.depth 2 --lr {params.train.lr}"
                .into()
        )
    );
    // an item shadows a params name; other files' values are expanded now
    let mut local = Mapping::new();
    local.insert("train".into(), y("{lr: 5}"));
    assert_eq!(
        expand("${train.lr}", &local, &v, mode).unwrap(),
        Y::String("5".into())
    );
}

#[test]
fn foreach_names_follow_dvc() {
    let (items, key) = foreach_items(&y("[us, uk]")).unwrap();
    assert!(!key);
    assert_eq!(
        items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["us", "uk"]
    );
    let (items, _) = foreach_items(&y("[{a: 1}, {a: 2}]")).unwrap();
    assert_eq!(
        items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["0", "1"]
    );
    let (items, key) = foreach_items(&y("{zeta: 1, alpha: 2}")).unwrap();
    assert!(key);
    assert_eq!(
        items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["zeta", "alpha"]
    );
    assert!(foreach_items(&y("3")).is_none());
}

#[test]
fn matrix_is_the_product_in_dvc_order() {
    let axes = vec![
        ("model".to_string(), vec![y("cnn"), y("xgb")]),
        ("lr".to_string(), vec![y("0.1"), y("{a: 1}")]),
    ];
    let items = matrix_items(&axes);
    let names: Vec<_> = items.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["cnn-0.1", "cnn-lr1", "xgb-0.1", "xgb-lr1"]);
    assert_eq!(items[2].1.get("model"), Some(&y("xgb")));
}

#[test]
fn names_and_paths() {
    assert_eq!(step_name("train@cnn-0.1"), "train.cnn-0.1");
    assert_eq!(step_name("eval@a/b c"), "eval.a_b_c");
    assert_eq!(normalize("./src/../data/"), "data/");
    assert_eq!(normalize("sub/./x"), "sub/x");
    assert_eq!(normalize("."), "");
    assert_eq!(py_float(1.0), "1.0");
    assert_eq!(py_float(1e16), "1e+16");
    assert_eq!(sh_quote("it's"), "'it'\"'\"'s'");
    let tricky = "a \"b\" \\ c\nd\u{1}";
    let t: toml::Table = toml::from_str(&format!("k = {}", tstr(tricky))).unwrap();
    assert_eq!(t["k"].as_str(), Some(tricky));
}

#[test]
fn undefined_template_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dvc.yaml");
    let text = "stages:\n  prep:\n    cmd: echo hi\n  train:\n    deps: [a]\n    cmd: python3 t.py --lr ${lr}\n";
    let err = convert_text(
        text,
        &Options {
            file: &file,
            shown: Path::new("dvc.yaml"),
            prefix: "",
        },
    )
    .unwrap_err();
    assert!(
        err.message
            .starts_with("dvc.yaml:6: stage `train`, `cmd`: `${lr}` is not defined"),
        "{}",
        err.message
    );
}

fn convert_in(dir: &Path, files: &[(&str, &str)]) -> Result<Conversion> {
    for (p, c) in files {
        std::fs::write(dir.join(p), c).unwrap();
    }
    let file = dir.join("dvc.yaml");
    convert(&Options {
        file: &file,
        shown: Path::new("dvc.yaml"),
        prefix: "",
    })
}

#[test]
fn matrix_axes_from_vars_stage_vars_and_colliding_names() {
    let dir = tempfile::tempdir().unwrap();
    let c = convert_in(
        dir.path(),
        &[
            ("params.yaml", "lrs: [0.1, 0.2]\n"),
            (
                "dvc.yaml",
                "stages:\n  fit.0.1:\n    cmd: echo clash\n  fit:\n    vars:\n      - opt: adam\n    matrix:\n      lr: ${lrs}\n    cmd: echo ${item.lr} ${opt} ${key}\n",
            ),
        ],
    )
    .unwrap();
    let names: Vec<_> = c.steps.iter().map(|(m, d)| format!("{m}<{d}")).collect();
    assert_eq!(
        names,
        ["fit.0.1<fit.0.1", "fit.0.1-2<fit@0.1", "fit.0.2<fit@0.2"]
    );
    assert!(c.toml.contains("cmd = \"echo 0.2 adam 0.2\""), "{}", c.toml);
    // a name defined twice is refused, as DVC refuses it
    let err = convert_in(
        dir.path(),
        &[(
            "dvc.yaml",
            "vars:\n  - lrs: 1\nstages:\n  a:\n    cmd: echo\n",
        )],
    )
    .unwrap_err();
    assert!(
        err.message.contains("`lrs` is already defined"),
        "{}",
        err.message
    );
}

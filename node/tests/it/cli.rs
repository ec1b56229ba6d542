//! The `meshml` binary end to end: real processes, real files in temporary directories.

use std::path::Path;
use std::process::{Command, Output};

fn meshml(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshml"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("meshml runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn data(name: &str) -> String {
    format!("{}/../data/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn local_fit_on_bundled_iris_then_predict() {
    let dir = tempfile::tempdir().unwrap();
    let fit = meshml(dir.path(), &["local", "fit"]);
    let out = text(&fit.stdout);
    assert!(fit.status.success(), "{out}{}", text(&fit.stderr));
    assert!(
        out.contains("150 rows, 4 features, 3 classes (setosa, versicolor, virginica)"),
        "{out}"
    );
    assert!(
        out.contains("120 train / 30 test (stratified, seed 42)"),
        "{out}"
    );
    assert!(
        out.contains("true \\ predicted  setosa  versicolor  virginica"),
        "{out}"
    );
    let acc: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("accuracy:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("an accuracy line");
    assert!(acc >= 0.9, "{acc}");
    assert!(dir.path().join("iris.mlm").exists());

    let pred = meshml(
        dir.path(),
        &[
            "local",
            "predict",
            "--model",
            "iris.mlm",
            "--data",
            &data("iris.csv"),
            "--out",
            "preds.csv",
        ],
    );
    assert!(pred.status.success(), "{}", text(&pred.stderr));
    let csv = std::fs::read_to_string(dir.path().join("preds.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 151);
    assert_eq!(lines[0], "species");
    assert_eq!(lines[1], "setosa");
    assert!(lines[1..]
        .iter()
        .all(|l| ["setosa", "versicolor", "virginica"].contains(l)));
    assert!(
        text(&pred.stdout).contains("accuracy:"),
        "the input had the target column"
    );
}

#[test]
fn predict_probabilities_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    assert!(meshml(
        dir.path(),
        &["local", "fit", "--model", "gaussian_nb", "--out", "nb.mlm"]
    )
    .status
    .success());
    let p = meshml(
        dir.path(),
        &["local", "predict", "--model", "nb.mlm", "--proba"],
    );
    assert!(p.status.success(), "{}", text(&p.stderr));
    let out = text(&p.stdout);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("species,p_setosa,p_versicolor,p_virginica")
    );
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let s: f64 = f[1..].iter().map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((s - 1.0).abs() < 1e-4, "{l}");
    }
}

#[test]
fn every_estimator_fits_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let digits = data("digits.csv");
    for (model, extra) in [
        (
            "logistic_regression",
            vec!["--set", "C=0.5", "--set", "max_iter=500"],
        ),
        ("gaussian_nb", vec![]),
        (
            "decision_tree",
            vec!["--set", "max_depth=4", "--set", "criterion=entropy"],
        ),
        (
            "standard_scaler+logistic_regression",
            vec!["--set", "logistic_regression__C=10"],
        ),
    ] {
        let mut args = vec![
            "local", "fit", "--data", &digits, "--model", model, "--out", "m.mlm",
        ];
        args.extend(extra);
        let o = meshml(dir.path(), &args);
        assert!(o.status.success(), "{model}: {}", text(&o.stderr));
        assert!(text(&o.stdout).contains("1437 train / 360 test"), "{model}");
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ragged.csv"), "a,b,y\n1,2,x\n3,y\n").unwrap();
    std::fs::write(dir.path().join("fake.mlm"), "not a model").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["local", "fit", "--set", "C=abc"],
            "invalid parameter 'C' for logistic_regression: 'abc' is not a number",
        ),
        (&["local", "fit", "--set", "C"], "--set expects NAME=VALUE"),
        (
            &["local", "fit", "--set", "C=-1"],
            "must be a finite number > 0",
        ),
        (
            &["local", "fit", "--model", "svm"],
            "unknown estimator 'svm'",
        ),
        (
            &["local", "fit", "--data", "ragged.csv"],
            "ragged.csv:3: expected 3 fields as in the header, found 2",
        ),
        (
            &["local", "fit", "--data", "missing.csv"],
            "missing.csv: No such file",
        ),
        (
            &["local", "fit", "--test-size", "1.5"],
            "must be a fraction in (0, 1)",
        ),
        (
            &["local", "fit", "--target", "colour"],
            "target column 'colour' is not in the header",
        ),
        (
            &["local", "predict", "--model", "fake.mlm"],
            "not a meshml model artifact",
        ),
    ];
    for (args, expected) in cases {
        let o = meshml(dir.path(), args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = text(&o.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn predict_refuses_data_without_the_model_features() {
    let dir = tempfile::tempdir().unwrap();
    assert!(meshml(dir.path(), &["local", "fit"]).status.success());
    std::fs::write(
        dir.path().join("other.csv"),
        "sepal_length,petal_width\n1,2\n",
    )
    .unwrap();
    let o = meshml(
        dir.path(),
        &[
            "local",
            "predict",
            "--model",
            "iris.mlm",
            "--data",
            "other.csv",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("feature column(s) sepal_width, petal_length"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn dataset_put_ls_show_export_rm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("store");
    let d = d.to_str().unwrap();
    let iris = data("iris.csv");
    let o = meshml(
        dir.path(),
        &[
            "dataset",
            "--data-dir",
            d,
            "put",
            &iris,
            "--chunk-rows",
            "40",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("stored dataset 'iris': 150 rows, 4 features, 3 classes: setosa, versicolor, virginica, 4 chunks"), "{}", text(&o.stdout));

    let ls = text(&meshml(dir.path(), &["dataset", "ls", "--data-dir", d]).stdout);
    assert!(ls.lines().nth(1).unwrap().starts_with("iris "), "{ls}");
    let show = text(&meshml(dir.path(), &["dataset", "show", "iris", "--data-dir", d]).stdout);
    assert!(show.contains("chunks:    4"), "{show}");

    let o = meshml(
        dir.path(),
        &[
            "dataset",
            "export",
            "iris",
            "--data-dir",
            d,
            "--out",
            "back.csv",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let back =
        meshml_models::io::load_csv(dir.path().join("back.csv"), &Default::default()).unwrap();
    assert_eq!(back, meshml_models::io::iris());

    // Errors: duplicate, bad CSV (nothing stored), unknown dataset.
    let o = meshml(dir.path(), &["dataset", "--data-dir", d, "put", &iris]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("a dataset named 'iris' exists already"),
        "{}",
        text(&o.stderr)
    );
    std::fs::write(dir.path().join("bad.csv"), "a,y\n1,x\n2\n").unwrap();
    let o = meshml(dir.path(), &["dataset", "--data-dir", d, "put", "bad.csv"]);
    assert!(
        text(&o.stderr).contains("bad.csv:3: expected 2 fields"),
        "{}",
        text(&o.stderr)
    );
    assert!(!text(&meshml(dir.path(), &["dataset", "ls", "--data-dir", d]).stdout).contains("bad"));

    let o = meshml(dir.path(), &["dataset", "rm", "iris", "--data-dir", d]);
    assert!(
        text(&o.stdout).contains("removed dataset 'iris': 4 chunks deleted"),
        "{}",
        text(&o.stdout)
    );
    let o = meshml(dir.path(), &["dataset", "show", "iris", "--data-dir", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("no dataset named 'iris'"));
}

#[test]
fn predict_a_stored_dataset_chunk_by_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("store");
    let d = d.to_str().unwrap();
    let digits = data("digits.csv");
    assert!(meshml(
        dir.path(),
        &[
            "dataset",
            "--data-dir",
            d,
            "put",
            &digits,
            "--chunk-rows",
            "500"
        ]
    )
    .status
    .success());
    let fit = meshml(
        dir.path(),
        &[
            "local",
            "fit",
            "--data",
            &digits,
            "--model",
            "gaussian_nb",
            "--out",
            "nb.mlm",
        ],
    );
    assert!(fit.status.success());
    let o = meshml(
        dir.path(),
        &[
            "local",
            "predict",
            "--model",
            "nb.mlm",
            "--dataset",
            "digits",
            "--data-dir",
            d,
            "--out",
            "p.csv",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report = text(&o.stdout);
    assert!(
        report.starts_with("predicted: 1797 rows with gaussian_nb -> p.csv"),
        "{report}"
    );
    // The same predictions as predicting the CSV file directly, in the same row order.
    let o2 = meshml(
        dir.path(),
        &[
            "local", "predict", "--model", "nb.mlm", "--data", &digits, "--out", "q.csv",
        ],
    );
    assert!(o2.status.success());
    let p = std::fs::read_to_string(dir.path().join("p.csv")).unwrap();
    assert_eq!(
        p,
        std::fs::read_to_string(dir.path().join("q.csv")).unwrap()
    );
    assert_eq!(p.lines().count(), 1798);
    assert_eq!(
        report.lines().nth(1),
        text(&o2.stdout).lines().nth(1),
        "same accuracy line"
    );

    let o = meshml(
        dir.path(),
        &[
            "local",
            "predict",
            "--model",
            "nb.mlm",
            "--dataset",
            "nope",
            "--data-dir",
            d,
        ],
    );
    assert!(text(&o.stderr).contains("no dataset named 'nope'"));
}

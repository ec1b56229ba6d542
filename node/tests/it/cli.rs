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

/// Checks that the command `what` was refused the way a user should see it: exit code 1, an
/// error saying `says`, no panic. Returns the error text.
fn assert_refused(o: &Output, what: &dyn std::fmt::Debug, says: &str) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{what:?}: {err}");
    assert!(err.contains(says), "{what:?}: {err}");
    assert!(!err.contains("panicked"), "{what:?}: {err}");
    err
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
fn kmeans_on_its_own_predicts_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let fit = meshml(
        dir.path(),
        &[
            "local",
            "fit",
            "--model",
            "kmeans",
            "--set",
            "n_clusters=3",
            "--set",
            "random_state=0",
            "--out",
            "km.mlm",
        ],
    );
    assert!(fit.status.success(), "{}", text(&fit.stderr));
    let report = text(&fit.stdout);
    // The test rows' inertia and cluster sizes, no accuracy against the species.
    let inertia = figure(&report, "inertia:");
    assert!(inertia > 0.0, "{report}");
    assert!(
        report.contains("clusters:  ") && !report.contains("accuracy"),
        "{report}"
    );
    let sizes: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("clusters:  "))
        .unwrap()
        .split(" test rows")
        .next()
        .unwrap()
        .split(", ")
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    assert_eq!(sizes, 30, "{report}");
    let p = meshml(dir.path(), &["local", "predict", "--model", "km.mlm"]);
    assert!(p.status.success(), "{}", text(&p.stderr));
    let out = text(&p.stdout);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("cluster"));
    let clusters: std::collections::BTreeSet<&str> = lines.collect();
    assert_eq!(clusters.into_iter().collect::<Vec<_>>(), ["0", "1", "2"]);
    let proba = meshml(
        dir.path(),
        &["local", "predict", "--model", "km.mlm", "--proba"],
    );
    assert_refused(&proba, &"--proba", "is a clusterer");
    // The target is not read: 60 integer values (60 classes, were they read as classes)
    // are not stratified by, and a test file's unseen values are no error.
    let rows = |from: usize| -> String {
        (from..from + 60)
            .map(|i| format!("{},{},{i}\n", i % 7, (i * 3) % 11))
            .collect()
    };
    std::fs::write(dir.path().join("c.csv"), format!("a,b,y\n{}", rows(0))).unwrap();
    std::fs::write(dir.path().join("t.csv"), format!("a,b,y\n{}", rows(100))).unwrap();
    for extra in [&[][..], &["--test-data", "t.csv"][..]] {
        let mut args = vec![
            "local",
            "fit",
            "--data",
            "c.csv",
            "--model",
            "kmeans",
            "--set",
            "n_clusters=2",
            "--out",
            "c.mlm",
        ];
        args.extend_from_slice(extra);
        let o = meshml(dir.path(), &args);
        assert!(o.status.success(), "{extra:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stdout).contains("clusters 0 to 1"),
            "{}",
            text(&o.stdout)
        );
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
        assert_refused(&meshml(dir.path(), args), args, expected);
    }
}

/// The number after `key` on the report line that starts with it.
fn figure(report: &str, key: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no '{key}' line in:\n{report}"));
    line[key.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn local_fit_with_a_fixed_test_file_no_test_rows_or_a_regressor() {
    use meshml_models::io::{load_csv, read_csv, CsvOptions, TargetKind};
    use meshml_models::model_selection::{train_test_split, TestSize};
    use meshml_models::{Classifier, Estimator, Fit};
    let dir = tempfile::tempdir().unwrap();
    let iris = std::fs::read_to_string(data("iris.csv")).unwrap();
    let lines: Vec<&str> = iris.lines().collect();
    // A fixed split: every fifth row tests. The test file's columns come in another order.
    let (mut train, mut test) = (vec![lines[0].to_string()], Vec::new());
    test.push("species,petal_width,petal_length,sepal_width,sepal_length".to_string());
    for (i, l) in lines[1..].iter().enumerate() {
        if i % 5 == 0 {
            let f: Vec<&str> = l.split(',').collect();
            test.push(format!("{},{},{},{},{}", f[4], f[3], f[2], f[1], f[0]));
        } else {
            train.push(l.to_string());
        }
    }
    std::fs::write(dir.path().join("train.csv"), train.join("\n") + "\n").unwrap();
    std::fs::write(dir.path().join("test.csv"), test.join("\n") + "\n").unwrap();
    let o = meshml(
        dir.path(),
        &[
            "local",
            "fit",
            "--data",
            "train.csv",
            "--test-data",
            "test.csv",
            "--model",
            "gaussian_nb",
        ],
    );
    let report = text_of(&o);
    assert!(o.status.success(), "{report}");
    assert!(
        report.contains("120 train / 30 test (test rows from test.csv)"),
        "{report}"
    );
    // The same fit in process, on the same rows, scores the same.
    let opts = CsvOptions::default();
    let tr = load_csv(dir.path().join("train.csv"), &opts).unwrap();
    let model = Estimator::from_name("gaussian_nb")
        .unwrap()
        .fit(&tr)
        .unwrap();
    let plain: Vec<String> = lines[1..]
        .iter()
        .step_by(5)
        .map(|l| l.to_string())
        .collect();
    let te = read_csv(
        format!("{}\n{}\n", lines[0], plain.join("\n")).as_bytes(),
        "test",
        &opts,
    )
    .unwrap();
    let want = model.score(te.x(), te.class_target().unwrap().0).unwrap();
    assert!(
        (figure(&report, "accuracy:") - want).abs() < 1e-4,
        "{report} vs {want}"
    );
    // A class the training rows lack is refused, naming it.
    std::fs::write(
        dir.path().join("odd.csv"),
        format!(
            "{}\n5.0,3.0,1.5,0.2,setosa\n5.0,3.0,1.5,0.2,tulip\n",
            lines[0]
        ),
    )
    .unwrap();
    let args = [
        "local",
        "fit",
        "--data",
        "train.csv",
        "--test-data",
        "odd.csv",
    ];
    assert_refused(
        &meshml(dir.path(), &args),
        &args,
        "class(es) tulip are not in the training data",
    );

    // --test-size 0: every row trains, nothing is scored.
    let o = meshml(
        dir.path(),
        &["local", "fit", "--test-size", "0", "--out", "all.mlm"],
    );
    let report = text_of(&o);
    assert!(o.status.success(), "{report}");
    assert!(report.contains("150 train / 0 test"), "{report}");
    assert!(!report.contains("accuracy:"), "{report}");
    assert!(dir.path().join("all.mlm").exists());

    // A regressor: petal width from the other measurements, R² and MAE on the held-out rows.
    let numeric: Vec<String> = lines
        .iter()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect();
    std::fs::write(dir.path().join("iris4.csv"), numeric.join("\n") + "\n").unwrap();
    let o = meshml(
        dir.path(),
        &[
            "local",
            "fit",
            "--data",
            "iris4.csv",
            "--target",
            "petal_width",
            "--regression",
            "--model",
            "linear_regression",
        ],
    );
    let report = text_of(&o);
    assert!(o.status.success(), "{report}");
    let all = load_csv(
        dir.path().join("iris4.csv"),
        &CsvOptions::default()
            .with_target("petal_width")
            .with_kind(TargetKind::Regression),
    )
    .unwrap();
    let (tr_idx, te_idx) = train_test_split(150, TestSize::Fraction(0.2), 42, None).unwrap();
    let (tr, te) = (all.select(&tr_idx).unwrap(), all.select(&te_idx).unwrap());
    let m = Estimator::from_name("linear_regression")
        .unwrap()
        .fit(&tr)
        .unwrap();
    let pred = m.predict_values(te.x()).unwrap();
    let y = te.value_target().unwrap();
    let r2 = meshml_models::metrics::r2_score(&y, &pred).unwrap();
    let mae = meshml_models::metrics::mean_absolute_error(&y, &pred).unwrap();
    assert!(r2 > 0.9, "{r2}");
    assert!(
        (figure(&report, "r2:") - r2).abs() < 1e-4,
        "{report} vs {r2}"
    );
    assert!(
        (figure(&report, "mae:") - mae).abs() < 1e-4,
        "{report} vs {mae}"
    );
}

fn text_of(o: &Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

/// Runs `meshml` with its address space capped at `mib` MiB (`ulimit -v`), so a reader that
/// grows without bound fails the test instead of the machine.
fn meshml_capped(dir: &Path, mib: u64, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {}; exec \"$0\" \"$@\"", mib * 1024))
        .arg(env!("CARGO_BIN_EXE_meshml"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("meshml runs")
}

#[test]
fn a_multi_gigabyte_file_without_a_line_break_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // 3 GiB of zero bytes and no line break, sparse: no disk is used.
    let big = std::fs::File::create(dir.path().join("big.csv")).unwrap();
    big.set_len(3 << 30).unwrap();
    drop(big);
    assert!(meshml(dir.path(), &["local", "fit", "--out", "iris.mlm"])
        .status
        .success());
    let store = dir.path().join("store");
    let cases: &[&[&str]] = &[
        &["local", "fit", "--data", "big.csv"],
        &[
            "local", "predict", "--model", "iris.mlm", "--data", "big.csv",
        ],
        &[
            "dataset",
            "--data-dir",
            store.to_str().unwrap(),
            "put",
            "big.csv",
        ],
    ];
    for args in cases {
        // The whole line in memory would be 3 GiB and more (it was: 11.5 GB for `local fit`,
        // a 2 GiB allocation that aborted for `dataset put`); the cap is half of that.
        let o = meshml_capped(dir.path(), 1536, args);
        let err = assert_refused(&o, args, "big.csv:1: a record longer than 4194304 bytes");
        assert!(err.contains("--max-line-bytes"), "{args:?}: {err}");
    }
    // Nothing was stored.
    let ls = meshml(
        dir.path(),
        &["dataset", "ls", "--data-dir", store.to_str().unwrap()],
    );
    assert!(!text(&ls.stdout).contains("big"), "{}", text(&ls.stdout));
    // A smaller cap is the user's to set, and names itself.
    std::fs::write(
        dir.path().join("wide.csv"),
        format!("{}\n", "x,".repeat(3000) + "y"),
    )
    .unwrap();
    let args = [
        "local",
        "fit",
        "--data",
        "wide.csv",
        "--max-columns",
        "1000",
    ];
    assert_refused(
        &meshml(dir.path(), &args),
        &args,
        "the header names 3001 columns; at most 1000 are read",
    );
}

#[test]
fn local_predict_streams_a_large_file_in_bounded_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    assert!(meshml(dir.path(), &["local", "fit", "--out", "iris.mlm"])
        .status
        .success());
    // A million rows (25 MB): features and labels held whole would take about 100 MB more
    // than the program itself; read in batches, they fit in its own 40.
    let iris = std::fs::read_to_string(data("iris.csv")).unwrap();
    let mut lines = iris.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.path().join("big.csv")).unwrap());
    writeln!(f, "{header}").unwrap();
    for i in 0..1_000_000 {
        writeln!(f, "{}", rows[i % rows.len()]).unwrap();
    }
    drop(f);
    let args = [
        "local", "predict", "--model", "iris.mlm", "--data", "big.csv", "--out", "p.csv",
    ];
    let o = meshml_capped(dir.path(), 64, &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report = text(&o.stdout);
    assert!(report.contains("predicted: 1000000 rows"), "{report}");
    assert!(report.contains("accuracy:"), "{report}");
    let written = std::fs::read_to_string(dir.path().join("p.csv")).unwrap();
    assert_eq!(written.lines().count(), 1_000_001);
    // The same predictions as the bundled iris rows predicted at once, row for row.
    let small = meshml(dir.path(), &["local", "predict", "--model", "iris.mlm"]);
    let small = text(&small.stdout);
    let once: Vec<&str> = small.lines().skip(1).collect();
    assert_eq!(once.len(), 150);
    for (i, line) in written.lines().skip(1).take(450).enumerate() {
        assert_eq!(line, once[i % once.len()], "row {i}");
    }
}

#[test]
fn predict_refuses_columns_the_model_was_not_fitted_on_unless_told_to_drop_them() {
    let dir = tempfile::tempdir().unwrap();
    assert!(meshml(dir.path(), &["local", "fit", "--out", "iris.mlm"])
        .status
        .success());
    let iris = std::fs::read_to_string(data("iris.csv")).unwrap();
    let wide: Vec<String> = iris
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{l},{}", if i == 0 { "row_id" } else { "7" }))
        .collect();
    std::fs::write(dir.path().join("wide.csv"), wide.join("\n") + "\n").unwrap();
    let args = [
        "local", "predict", "--model", "iris.mlm", "--data", "wide.csv",
    ];
    assert_refused(
        &meshml(dir.path(), &args),
        &args,
        "wide.csv:1: column(s) row_id are not features the model was fitted on",
    );
    let dropped = meshml(
        dir.path(),
        &[
            "local",
            "predict",
            "--model",
            "iris.mlm",
            "--data",
            "wide.csv",
            "--ignore-extra-columns",
        ],
    );
    let plain = meshml(
        dir.path(),
        &[
            "local",
            "predict",
            "--model",
            "iris.mlm",
            "--data",
            &data("iris.csv"),
        ],
    );
    assert!(dropped.status.success(), "{}", text(&dropped.stderr));
    assert_eq!(text(&dropped.stdout), text(&plain.stdout));
}

#[test]
fn local_fit_says_when_a_solver_stops_at_max_iter() {
    let dir = tempfile::tempdir().unwrap();
    let fit = |max_iter: &str| {
        meshml(
            dir.path(),
            &[
                "local",
                "fit",
                "--model",
                "logistic_regression",
                "--set",
                &format!("max_iter={max_iter}"),
            ],
        )
    };
    let o = fit("2");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report = text(&o.stdout);
    assert!(
        report.contains("warning:   ConvergenceWarning: LogisticRegression (lbfgs) did not converge within max_iter=2 iterations"),
        "{report}"
    );
    // Piped, so no colour codes anywhere.
    assert!(!report.contains('\u{1b}') && !text(&o.stderr).contains('\u{1b}'));
    let o = fit("1000");
    assert!(!text(&o.stdout).contains("warning"), "{}", text(&o.stdout));
}

#[test]
fn a_failed_out_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(meshml(dir.path(), &["local", "fit", "--out", "iris.mlm"])
        .status
        .success());
    // Good rows first (written before the bad one is read), then a ragged row.
    let iris = std::fs::read_to_string(data("iris.csv")).unwrap();
    let mut lines: Vec<&str> = iris.lines().collect();
    lines.insert(120, "5.0,3.1");
    std::fs::write(dir.path().join("ragged.csv"), lines.join("\n") + "\n").unwrap();
    std::fs::write(dir.path().join("kept.csv"), "earlier output\n").unwrap();
    for out in ["fresh.csv", "kept.csv"] {
        let args = [
            "local",
            "predict",
            "--model",
            "iris.mlm",
            "--data",
            "ragged.csv",
            "--out",
            out,
        ];
        assert_refused(
            &meshml(dir.path(), &args),
            &args,
            "ragged.csv:121: expected 5 fields",
        );
    }
    assert!(!dir.path().join("fresh.csv").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("kept.csv")).unwrap(),
        "earlier output\n"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["iris.mlm", "kept.csv", "ragged.csv"]);

    // The same for a dataset export that fails.
    let args = [
        "dataset",
        "export",
        "nope",
        "--data-dir",
        "store",
        "--out",
        "fresh.csv",
    ];
    assert_refused(&meshml(dir.path(), &args), &args, "no dataset named 'nope'");
    assert!(!dir.path().join("fresh.csv").exists());
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

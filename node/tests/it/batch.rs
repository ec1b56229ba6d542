//! Batch prediction on a three-node mesh of real `meshml node` processes on 127.0.0.1:
//! `meshml predict` to a file, to a new replicated dataset, for a classifier and a
//! regressor, in the dataset's row order, each chunk predicted where it is stored; and the
//! errors a user can make.

use crate::common;

use std::time::Duration;

use crate::common::{call, data_path, finished_job, meshml, submit_job, three_node_cluster, Node};
use meshml_models::io::{load_csv, CsvOptions, TargetKind};
use meshml_models::plan::{run_job, JobKind, JobSpec, LocalExecutor};
use meshml_models::{Classifier, Estimator};
use serde_json::json;

fn fit(n: &Node, dataset: &str, spec: &JobSpec, name: &str) {
    let id = submit_job(n, &json!({ "dataset": dataset, "job": spec, "name": name }));
    finished_job(n, &id);
}

fn spec(model: &str, set: &[(&str, &str)]) -> JobSpec {
    let mut e = Estimator::from_name(model).unwrap();
    for (k, v) in set {
        e.set_param(k, v).unwrap();
    }
    JobSpec {
        kind: JobKind::Fit { estimator: e },
        seed: 0,
    }
}

#[test]
fn every_holder_predicts_its_chunks_and_the_rows_come_back_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _, _) = three_node_cluster(tmp.path(), &["--slots", "1"]);
    // Six chunks of 300 rows, two copies each, spread over the three members.
    common::put_dataset(&nodes[0], "digits", "digits", 2, 300);
    common::put_dataset_with(
        &nodes[0],
        "digits-reg",
        "digits",
        2,
        300,
        "&regression=true",
    );
    common::put_dataset(&nodes[0], "iris", "iris", 1, 150);
    let lr = spec(
        "standard_scaler+logistic_regression",
        &[("max_iter", "300")],
    );
    let ridge = spec("ridge", &[("alpha", "1.0")]);
    fit(&nodes[0], "digits", &lr, "digits-lr");
    fit(&nodes[0], "digits-reg", &ridge, "digits-ridge");

    let digits = load_csv(data_path("digits"), &CsvOptions::default()).unwrap();
    let (_, classes) = digits.class_target().unwrap();
    let local = run_job(&lr, &digits, &LocalExecutor::new(1), &|_| {})
        .unwrap()
        .model
        .unwrap();
    let want: Vec<String> = local
        .predict(digits.x())
        .unwrap()
        .into_iter()
        .map(|c| classes.label(c).to_string())
        .collect();
    let proba = local.predict_proba(digits.x()).unwrap().to_vec();

    // To a file, with probabilities, through a node that is not the driver.
    let url = nodes[1].http_url();
    let out = tmp.path().join("preds.csv");
    let (ok, stdout, stderr) = meshml(&[
        "predict",
        "--node",
        &url,
        "--model",
        "digits-lr",
        "--dataset",
        "digits",
        "--out",
        out.to_str().unwrap(),
        "--proba",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("predicted 1797 rows of 'digits' with digits-lr@1"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "digit");
    assert_eq!(
        header[1..],
        ["p_0", "p_1", "p_2", "p_3", "p_4", "p_5", "p_6", "p_7", "p_8", "p_9"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 1797);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], want[i], "row {i}");
        for (j, p) in r[1..].iter().enumerate() {
            let p: f32 = p.parse().unwrap();
            assert!((p - proba[i * 10 + j]).abs() < 1e-5, "row {i} class {j}");
        }
    }
    // Each member predicted the chunks it holds: each loaded the model, so each now holds
    // a copy of it.
    let lr_holders = || {
        let (_, models) = call(&nodes[0], "GET", "/v1/models", None);
        models
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "digits-lr")
            .map_or(0, |m| m["locations"].as_array().unwrap().len())
    };
    let all_hold = common::wait_for(Duration::from_secs(5), || lr_holders() == 3).is_some();
    if !all_hold {
        let (_, models) = call(&nodes[0], "GET", "/v1/models", None);
        let (_, datasets) = call(&nodes[0], "GET", "/v1/datasets/digits", None);
        let peers: Vec<_> = nodes
            .iter()
            .map(|n| call(n, "GET", "/v1/status", None).1["peers"].clone())
            .collect();
        panic!(
            "every member holds the model after predicting its chunks\nmodels: {models}\ndigits: {datasets}\npeers: {peers:?}"
        );
    }

    // A regressor, to standard output.
    let values = load_csv(
        data_path("digits"),
        &CsvOptions::default().with_kind(TargetKind::Regression),
    )
    .unwrap();
    let want_values = run_job(&ridge, &values, &LocalExecutor::new(1), &|_| {})
        .unwrap()
        .model
        .unwrap()
        .predict_values(values.x())
        .unwrap();
    let (ok, stdout, stderr) = meshml(&[
        "predict",
        "--node",
        &url,
        "--model",
        "digits-ridge",
        "--dataset",
        "digits-reg",
    ]);
    assert!(ok, "{stderr}");
    let got: Vec<f32> = stdout.lines().skip(1).map(|l| l.parse().unwrap()).collect();
    assert_eq!(got.len(), 1797);
    for (a, b) in got.iter().zip(&want_values) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }

    // The same regressor downloaded, then predicted without a mesh.
    let file = tmp.path().join("ridge.mlm");
    let (ok, stdout, stderr) = meshml(&[
        "model",
        "get",
        "digits-ridge",
        "--out",
        file.to_str().unwrap(),
        "--node",
        &url,
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("digits-ridge: ridge"), "{stdout}");
    let preds = tmp.path().join("ridge.csv");
    let digits_csv = data_path("digits");
    let (ok, stdout, stderr) = meshml(&[
        "local",
        "predict",
        "--model",
        file.to_str().unwrap(),
        "--data",
        &digits_csv,
        "--out",
        preds.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let offline: Vec<f32> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(offline, got, "offline and mesh predictions of one artifact");
    let r2 = meshml_models::metrics::r2_score(&values.value_target().unwrap(), &got).unwrap();
    assert!(
        stdout.contains(&format!("r2:        {r2:.4} against column")),
        "{stdout} (r2 {r2})"
    );
    let (ok, _, stderr) = meshml(&[
        "local",
        "predict",
        "--model",
        file.to_str().unwrap(),
        "--proba",
    ]);
    assert!(
        !ok && stderr.contains("--proba is for classifiers"),
        "{stderr}"
    );
    let (ok, _, stderr) = meshml(&["model", "get", "nothing", "--node", &url]);
    assert!(!ok && stderr.contains("no model 'nothing'"), "{stderr}");

    // Into a new replicated dataset: the row number, the probabilities, the prediction.
    let (ok, stdout, stderr) = meshml(&[
        "predict",
        "--node",
        &nodes[2].http_url(),
        "--model",
        "digits-lr@1",
        "--dataset",
        "digits",
        "--into",
        "digits-preds",
        "--replicas",
        "2",
        "--proba",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("-> dataset 'digits-preds'"), "{stdout}");
    let (code, d) = call(&nodes[0], "GET", "/v1/datasets/digits-preds", None);
    assert_eq!(code, 200, "{d}");
    let view = &d["dataset"];
    assert_eq!(view["rows"], 1797, "{d}");
    assert_eq!(
        view["features"], 11,
        "the row number and ten probabilities: {d}"
    );
    assert_eq!(view["classes"].as_array().unwrap().len(), 10, "{d}");
    assert!(common::wait_for(Duration::from_secs(5), || {
        call(&nodes[1], "GET", "/v1/datasets/digits-preds", None).1["dataset"]["min_replicas"] == 2
    })
    .is_some());

    // Aliases from the command line.
    let (ok, stdout, stderr) = meshml(&[
        "model",
        "alias",
        "digits-lr",
        "production",
        "1",
        "--node",
        &url,
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "digits-lr@production -> version 1\n");
    let (ok, stdout, _) = meshml(&["models", "--node", &url]);
    assert!(ok);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("digits-lr "))
        .unwrap();
    assert!(
        line.contains("production") && line.ends_with('3'),
        "{stdout}"
    );
    let (ok, _, stderr) = meshml(&[
        "model",
        "alias",
        "digits-lr",
        "production",
        "5",
        "--node",
        &url,
    ]);
    assert!(!ok && stderr.contains("no model digits-lr@5"), "{stderr}");

    // Mistakes a user can make, each with a message.
    for (args, says) in [
        (
            vec!["--model", "nothing", "--dataset", "digits"],
            "no model 'nothing'",
        ),
        (
            vec!["--model", "digits-lr", "--dataset", "nothing"],
            "no dataset 'nothing'",
        ),
        (
            vec!["--model", "digits-lr", "--dataset", "iris"],
            "lacks the model's feature",
        ),
        (
            vec![
                "--model",
                "digits-ridge",
                "--dataset",
                "digits-reg",
                "--proba",
            ],
            "no probabilities",
        ),
        (
            vec![
                "--model",
                "digits-lr",
                "--dataset",
                "digits",
                "--into",
                "digits-preds",
            ],
            "exists",
        ),
    ] {
        let mut a = vec!["predict", "--node", url.as_str()];
        a.extend(args);
        let (ok, _, stderr) = meshml(&a);
        assert!(!ok);
        assert!(stderr.contains(says), "{a:?}: {stderr}");
    }
}

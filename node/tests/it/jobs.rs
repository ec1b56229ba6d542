//! Jobs on a three-node mesh of real `meshml node` processes on 127.0.0.1: a dataset put
//! with two replicas per chunk, then every meta-estimator run as a job, each giving the
//! same result as the local executor for the same seed, each task run exactly once.

// Tests report timings on stderr.
#![allow(clippy::print_stderr)]

use crate::common;

use std::time::Duration;

use crate::common::{
    call, data_path, finished_job, meshml, status, submit_job, three_node_cluster, wait_for, Node,
};
use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::metrics::ConfusionMatrix;
use meshml_models::plan::{run_job, Distribution, JobKind, JobResult, JobSpec, LocalExecutor};
use meshml_models::{Classifier, Dataset, Estimator};

fn local(job: &JobSpec, data: &Dataset) -> JobResult {
    run_job(job, data, &LocalExecutor::new(2), &|_| {}).unwrap()
}

fn executions(nodes: &[Node], job_tasks: usize) -> u64 {
    let total: u64 = nodes
        .iter()
        .map(|n| {
            status(n)["worker"]["executed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["runs"].as_u64().unwrap())
                .sum::<u64>()
        })
        .sum();
    assert!(total >= job_tasks as u64);
    total
}

#[test]
fn every_meta_estimator_on_a_three_node_mesh_equals_the_local_executor() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _, _) = three_node_cluster(tmp.path(), &["--slots", "2"]);

    // The dataset: four chunks of 40 rows (the last 30), each on two of the three members.
    let put = common::put_dataset(&nodes[1], "iris", "iris", 2, 40);
    assert_eq!(put["rows"], 150);
    assert_eq!(put["chunks"], 4);
    let placed: u64 = put["chunks_per_member"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(placed, 8, "{put}");
    // The answering node has the dataset at once; the others within moments.
    let (code, list) = call(&nodes[1], "GET", "/v1/datasets", None);
    assert_eq!(code, 200);
    assert_eq!(list[0]["name"], "iris");
    assert_eq!(list[0]["min_replicas"], 2, "{list}");
    for n in &nodes {
        assert!(wait_for(Duration::from_secs(5), || {
            let (_, list) = call(n, "GET", "/v1/datasets", None);
            list[0]["name"] == "iris" && list[0]["min_replicas"] == 2
        })
        .is_some());
    }
    let (code, again) = call(
        &nodes[2],
        "POST",
        "/v1/datasets?name=iris&replicas=2",
        Some(("text/csv", b"a,b\n1,x\n")),
    );
    assert_eq!(code, 409, "{again}");

    let iris = load_csv(data_path("iris"), &CsvOptions::default()).unwrap();
    let (y, classes) = iris.class_target().unwrap();
    let lr = Estimator::from_name("logistic_regression").unwrap();
    let mut forest = Estimator::from_name("random_forest").unwrap();
    forest.set_param("n_estimators", "30").unwrap();
    let jobs = vec![
        JobKind::GridSearch {
            estimator: lr.clone(),
            grid: vec![(
                "C".into(),
                vec!["0.01".into(), "0.1".into(), "1".into(), "10".into()],
            )],
            cv: 5,
            refit: true,
        },
        JobKind::RandomSearch {
            estimator: Estimator::from_name("decision_tree").unwrap(),
            space: vec![(
                "max_depth".into(),
                Distribution::IntRange { low: 1, high: 6 },
            )],
            n_iter: 4,
            cv: 3,
            refit: true,
        },
        JobKind::OneVsRest {
            estimator: lr.clone(),
        },
        JobKind::OneVsOne {
            estimator: lr.clone(),
        },
        JobKind::MultiSearch {
            searches: vec![
                (
                    lr.clone(),
                    vec![("C".into(), vec!["0.1".into(), "1".into()])],
                ),
                (
                    Estimator::from_name("gaussian_nb").unwrap(),
                    vec![("var_smoothing".into(), vec!["1e-9".into(), "1e-5".into()])],
                ),
            ],
            cv: 3,
            refit: true,
        },
        JobKind::Fit { estimator: forest },
        JobKind::Bagging {
            estimator: Estimator::from_name("gaussian_nb").unwrap(),
            n_estimators: 5,
        },
        JobKind::Voting {
            estimators: vec![lr.clone(), Estimator::from_name("gaussian_nb").unwrap()],
            soft: true,
        },
        JobKind::Stacking {
            estimators: vec![lr.clone(), Estimator::from_name("gaussian_nb").unwrap()],
            final_estimator: lr.clone(),
            cv: 3,
        },
        JobKind::Cascade {
            groups: vec![
                vec!["setosa".into()],
                vec!["versicolor".into(), "virginica".into()],
            ],
            router: lr.clone(),
            estimator: Estimator::from_name("decision_tree").unwrap(),
        },
        JobKind::GridSearch {
            estimator: Estimator::from_name(
                "standard_scaler+select_from_model+logistic_regression",
            )
            .unwrap(),
            grid: vec![(
                "select_from_model__C".into(),
                vec!["0.05".into(), "1".into()],
            )],
            cv: 3,
            refit: true,
        },
        JobKind::MultiOutput {
            estimator: Estimator::from_name("ridge").unwrap(),
            targets: vec!["petal_length".into(), "petal_width".into()],
        },
    ];
    // Regression on digits, the digit as a number.
    common::put_dataset_with(
        &nodes[0],
        "digits-reg",
        "digits",
        2,
        500,
        "&regression=true",
    );
    let digits = load_csv(
        data_path("digits"),
        &CsvOptions::default().with_kind(meshml_models::io::TargetKind::Regression),
    )
    .unwrap();
    let mut rf_reg = Estimator::from_name("random_forest_regressor").unwrap();
    rf_reg.set_param("n_estimators", "20").unwrap();
    rf_reg.set_param("max_depth", "6").unwrap();
    let regression_jobs = vec![
        JobKind::GridSearch {
            estimator: Estimator::from_name("ridge").unwrap(),
            grid: vec![("alpha".into(), vec!["0.1".into(), "100".into()])],
            cv: 3,
            refit: true,
        },
        JobKind::Fit { estimator: rf_reg },
    ];
    let n_jobs = jobs.len() + regression_jobs.len();
    let jobs = jobs
        .into_iter()
        .map(|k| ("iris", k))
        .chain(regression_jobs.into_iter().map(|k| ("digits-reg", k)));
    let mut tasks_total = 0;
    for (i, (dataset, kind)) in jobs.enumerate() {
        let spec = JobSpec { kind, seed: 7 };
        let t = std::time::Instant::now();
        let request =
            serde_json::json!({ "dataset": dataset, "job": spec, "test_dataset": dataset });
        let mesh = finished_job(&nodes[i % 3], &submit_job(&nodes[i % 3], &request));
        let data = if dataset == "iris" { &iris } else { &digits };
        let here = local(&spec, data);
        eprintln!("{}: {:?} on the mesh", spec.describe(), t.elapsed());
        let result = &mesh["result"];
        assert_eq!(result["tasks"].as_u64().unwrap() as usize, here.tasks);
        tasks_total += here.tasks;
        if let Some(cv) = &here.cv {
            let theirs: Vec<f64> = result["cv"]["mean_test_score"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(theirs, cv.mean_test_score, "{}", spec.describe());
            assert_eq!(
                result["cv"]["best_index"].as_u64().unwrap() as usize,
                cv.best_index
            );
        }
        // The registered model predicts exactly what the local one does.
        let model = here.model.as_ref().unwrap();
        if result["test"]["metric"] != "accuracy" {
            // A regressor (R²) or a multi-output model (mean score over targets).
            // The mesh scores the test set chunk by chunk (R² from sums merged with Chan's
            // update), the local model in one pass: equal to rounding.
            let score = result["test"]["score"].as_f64().unwrap();
            let want = model.evaluate(data).unwrap();
            assert!(
                (score - want).abs() <= 1e-12 * want.abs().max(1.0),
                "{}: {score} against {want}",
                spec.describe()
            );
            continue;
        }
        let pred = model.predict(iris.x()).unwrap();
        let cm = ConfusionMatrix::new(y, &pred, classes.labels()).unwrap();
        let counts: Vec<Vec<usize>> =
            serde_json::from_value(result["test"]["counts"].clone()).unwrap();
        assert_eq!(counts, cm.counts(), "{}", spec.describe());
        assert!(result["model"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{dataset}-")));
    }
    // Every task ran once, no more: nothing failed or was lost.
    assert_eq!(executions(&nodes, tasks_total), tasks_total as u64);
    let (_, models) = call(&nodes[0], "GET", "/v1/models", None);
    assert_eq!(models.as_array().unwrap().len(), n_jobs, "{models}");
}

#[test]
fn bad_jobs_are_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _, _) = three_node_cluster(tmp.path(), &[]);
    common::put_dataset(&nodes[0], "iris", "iris", 1, 40);
    let submit = |body: &str| {
        call(
            &nodes[1],
            "POST",
            "/v1/jobs",
            Some(("application/json", body.as_bytes())),
        )
    };
    let (code, v) = submit("{not json");
    assert_eq!(code, 400, "{v}");
    let grid = |dataset: &str, value: &str| {
        serde_json::json!({
            "dataset": dataset,
            "job": {"kind": "grid_search", "estimator": {"kind": "logistic_regression", "params": Estimator::from_name("logistic_regression").map(|e| match e { Estimator::LogisticRegression(p) => serde_json::to_value(p).unwrap(), _ => unreachable!() }).unwrap()},
                    "grid": [["C", [value]]], "cv": 5, "refit": true, "seed": 0}
        })
        .to_string()
    };
    let (code, v) = submit(&grid("nope", "1"));
    assert_eq!(code, 404, "{v}");
    let (code, v) = submit(&grid("iris", "-1"));
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains('C'), "{v}");
    let (code, v) = submit(&grid("iris", "1"));
    assert_eq!(code, 202, "{v}");
    let (code, _) = call(&nodes[0], "GET", "/v1/jobs/nope", None);
    assert_eq!(code, 404);
    let (code, v) = call(
        &nodes[0],
        "POST",
        "/v1/datasets?name=bad/name",
        Some(("text/csv", b"x")),
    );
    assert_eq!(code, 400, "{v}");
}

#[test]
fn the_cli_stores_datasets_and_runs_jobs_through_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _, _) = three_node_cluster(tmp.path(), &[]);
    let url = nodes[2].http_url();
    let (ok, out, err) = meshml(&[
        "dataset",
        "put",
        &data_path("iris"),
        "--name",
        "iris",
        "--replicas",
        "2",
        "--chunk-rows",
        "50",
        "--node",
        &url,
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("stored 'iris' on the mesh: 150 rows, 4 features, 3 chunks"),
        "{out}"
    );
    // A bad file's error names the file as the user knows it, not the node's upload path.
    let ragged = tmp.path().join("my ragged&data.csv");
    std::fs::write(&ragged, "a,b,y\n1,2,x\n3,y\n").unwrap();
    let (ok, out, err) = meshml(&[
        "dataset",
        "put",
        ragged.to_str().unwrap(),
        "--name",
        "ragged",
        "--target",
        "y",
        "--replicas",
        "1",
        "--node",
        &url,
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("my ragged&data.csv:3: expected 3 fields as in the header, found 2"),
        "{err}"
    );
    assert!(
        !err.contains("incoming") && !err.contains("upload-"),
        "{err}"
    );
    let job = tmp.path().join("job.toml");
    std::fs::write(
        &job,
        "dataset = \"iris\"\nkind = \"grid_search\"\nmodel = \"logistic_regression\"\ncv = 3\ntest_dataset = \"iris\"\n[grid]\nC = [0.01, 1]\n",
    )
    .unwrap();
    let (ok, out, err) = meshml(&[
        "fit",
        "--job",
        job.to_str().unwrap(),
        "--node",
        &url,
        "--name",
        "iris-cli",
    ]);
    assert!(ok, "{out}{err}");
    for want in [
        "succeeded",
        "tasks: 7/7",
        "best params: C=1",
        "rank  mean score",
        "model: iris-cli@1",
        "confusion matrix",
    ] {
        assert!(out.contains(want), "'{want}' missing from:\n{out}");
    }
    // A search whose folds stop at max_iter says so: in the result, per candidate in the
    // table, and in the job's JSON.
    let (ok, out, err) = meshml(&[
        "fit",
        "--dataset",
        "iris",
        "--model",
        "logistic_regression",
        "--grid",
        "max_iter=2,1000",
        "--cv",
        "3",
        "--node",
        &url,
    ]);
    assert!(ok, "{out}{err}");
    let stopped = "ConvergenceWarning: LogisticRegression (lbfgs) did not converge within max_iter=2 iterations; increase max_iter or scale the features (3 times)";
    assert!(out.contains(&format!("warning: {stopped}")), "{out}");
    assert!(out.contains("max_iter=2  [1]"), "{out}");
    let (_, jobs) = common::call(&nodes[0], "GET", "/v1/jobs", None);
    let warned: Vec<&serde_json::Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| {
            j["result"]["warnings"]
                .as_array()
                .is_some_and(|w| !w.is_empty())
        })
        .collect();
    assert_eq!(warned.len(), 1, "{jobs}");
    assert_eq!(warned[0]["result"]["warnings"][0], stopped);
    assert_eq!(warned[0]["result"]["cv"]["warnings"][0][0], stopped);
    assert_eq!(
        warned[0]["result"]["cv"]["warnings"][1],
        serde_json::json!([])
    );
    let id = warned[0]["id"].as_str().unwrap();
    let (ok, out, _) = meshml(&["job", "show", id, "--node", &url]);
    assert!(ok && out.contains(&format!("warning: {stopped}")), "{out}");

    let (ok, out, _) = meshml(&[
        "fit",
        "--dataset",
        "iris",
        "--model",
        "gaussian_nb",
        "--one-vs-rest",
        "--node",
        &url,
        "--detach",
    ]);
    assert!(ok);
    let id = out.trim().to_string();
    assert!(!id.is_empty());
    assert!(wait_for(Duration::from_secs(60), || meshml(&[
        "job", "show", &id, "--node", &url
    ])
    .1
    .contains("succeeded"))
    .is_some());
    let (ok, out, _) = meshml(&["jobs", "--node", &url]);
    assert!(ok && out.lines().count() == 4, "{out}");
    assert!(out.contains("one_vs_rest(gaussian_nb) on iris"), "{out}");
    let (ok, _, err) = meshml(&[
        "fit",
        "--dataset",
        "nope",
        "--model",
        "gaussian_nb",
        "--node",
        &url,
    ]);
    assert!(!ok && err.contains("no dataset 'nope'"), "{err}");
    let (ok, _, err) = meshml(&["job", "cancel", &id, "--node", &url]);
    assert!(!ok && err.contains("already ended"), "{err}");
}

#[test]
fn the_demo_runs_a_grid_search_and_one_vs_rest_on_three_nodes() {
    let (ok, out, err) = meshml(&["demo"]);
    assert!(ok, "{out}{err}");
    for want in [
        "cluster of 3 formed",
        "stored 'digits-train' on the mesh: 1437 rows",
        "grid_search(standard_scaler+logistic_regression) on digits-train",
        "tasks: 21/21",
        "best params: C=",
        "rank  mean score",
        "accuracy on 'digits-test'",
        "one_vs_rest(logistic_regression) on iris-train",
        "true \\ predicted  setosa  versicolor  virginica",
    ] {
        assert!(out.contains(want), "'{want}' missing from:\n{out}");
    }
}

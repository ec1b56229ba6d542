//! Data-parallel fits on three `meshml node` processes on 127.0.0.1: digits stored with two
//! copies in chunks, fitted in passes over the chunks where they are, equal to the
//! in-memory fit; the mode chosen by the training memory; a driver and a worker killed in
//! the middle of a fit, which ends with the very model of a fault-free run.

// Tests report timings on stderr.
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use crate::common::{
    data_path, finished_job, job_view, meshml, put_dataset, put_dataset_with, submit_job,
    three_node_cluster, wait_for, Node,
};
use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::plan::{JobKind, JobSpec};
use meshml_models::{Dataset, Estimator, Fit, FittedModel, ModelArtifact};
use serde_json::json;

/// The model registered as `name`, downloaded through `n`.
fn model(n: &Node, name: &str, dir: &std::path::Path) -> FittedModel {
    let file = dir.join(format!("{name}.mlm"));
    let (ok, _, err) = meshml(&[
        "model",
        "get",
        name,
        "--out",
        file.to_str().unwrap(),
        "--node",
        &n.http_url(),
    ]);
    assert!(ok, "{err}");
    ModelArtifact::load(&file).unwrap().model
}

/// A linear model's weights then intercepts (the final step of a pipeline).
fn weights(m: &FittedModel) -> Vec<f64> {
    match m {
        FittedModel::Pipeline(p) => weights(&p.estimator),
        FittedModel::LogisticRegression(m) => {
            let mut w = m.coef().to_vec();
            w.extend_from_slice(m.intercept());
            w
        }
        FittedModel::LinearRegression(m) => {
            let mut w = m.coef().to_vec();
            w.push(m.intercept());
            w
        }
        FittedModel::GaussianNb(m) => {
            let mut w = m.theta().to_vec();
            w.extend_from_slice(m.var());
            w.extend_from_slice(m.class_prior());
            w
        }
        other => panic!("not a linear model: {other:?}"),
    }
}

#[track_caller]
fn assert_rel(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max);
    assert!(
        worst <= tol * scale,
        "{what}: off by {worst:e} (relative {:e})",
        worst / scale
    );
}

fn digits() -> Dataset {
    load_csv(data_path("digits"), &CsvOptions::default()).unwrap()
}

/// A data-parallel job run in this process over chunks of `rows` rows, merged in chunk
/// order as a driver merges them: its model, and a search's table.
fn over_chunks(
    spec: &JobSpec,
    data: &Dataset,
    rows: usize,
) -> (
    Option<FittedModel>,
    Option<Box<meshml_models::plan::CvResults>>,
) {
    use meshml_models::parallel::{compute_all, DataParallelJob, JobNext};
    let idx: Vec<usize> = (0..data.n_samples()).collect();
    let chunks: Vec<Dataset> = idx.chunks(rows).map(|c| data.select(c).unwrap()).collect();
    let mut job =
        DataParallelJob::new(spec, &data.select(&[]).unwrap(), data.n_samples() as u64).unwrap();
    loop {
        match job.ask().unwrap() {
            JobNext::Done { model, cv } => return (model, cv),
            JobNext::Pass(pass) => job.tell(compute_all(&pass, &chunks).unwrap()).unwrap(),
        }
    }
}

#[test]
fn fits_over_the_chunks_of_three_nodes_equal_the_in_memory_ones() {
    let tmp = tempfile::tempdir().unwrap();
    // digits takes 467 KiB in memory: more than a quarter MiB of training memory.
    let (nodes, _, _) =
        three_node_cluster(tmp.path(), &["--slots", "1", "--train-memory-mb", "0.25"]);
    put_dataset(&nodes[0], "digits", "digits", 2, 200);
    let url = nodes[1].http_url();
    let fit = |model: &str, name: &str, extra: &[&str]| {
        let mut args = vec![
            "fit",
            "--node",
            &url,
            "--dataset",
            "digits",
            "--model",
            model,
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        let (ok, out, err) = meshml(&args);
        assert!(ok, "{err}");
        (out, err)
    };

    // Chosen by size: data-parallel, said before the wait and in the result.
    let (out, err) = fit(
        "standard_scaler+logistic_regression",
        "dp-lr",
        &["--set", "tol=1e-8", "--set", "max_iter=1000"],
    );
    let why = "data-parallel: the dataset takes 456.3 KiB in memory, more than this node's \
               training memory (256.0 KiB, --train-memory-mb)";
    assert!(out.contains(&format!(": {why}\n")), "{out}\n{err}");
    assert!(out.contains(&format!("mode: {why}")), "{out}");
    assert!(out.contains("passes over the data: "), "{out}");
    let mut e = Estimator::from_name("standard_scaler+logistic_regression").unwrap();
    e.set_param("tol", "1e-8").unwrap();
    e.set_param("max_iter", "1000").unwrap();
    let here = e.fit(&digits()).unwrap();
    let mesh = model(&nodes[2], "dp-lr", tmp.path());
    assert_rel(
        "logistic regression",
        &weights(&mesh),
        &weights(&here),
        1e-4,
    );

    // In memory when asked, whatever the size.
    let (out, _) = fit(
        "standard_scaler+logistic_regression",
        "mem-lr",
        &["--set", "tol=1e-8", "--set", "max_iter=1000", "--in-memory"],
    );
    assert!(out.contains("mode: in memory: asked for"), "{out}");
    assert!(out.contains("tasks: 1/1"), "{out}");
    let mem = model(&nodes[2], "mem-lr", tmp.path());
    assert_rel("in memory", &weights(&mem), &weights(&here), 1e-4);

    // Gaussian naive Bayes through the API, data-parallel as asked.
    let id = submit_job(
        &nodes[0],
        &json!({ "dataset": "digits", "name": "dp-nb", "data_parallel": true,
                 "job": fit_spec(Estimator::from_name("gaussian_nb").unwrap()) }),
    );
    let v = finished_job(&nodes[0], &id);
    assert_eq!(v["mode"], "data-parallel: asked for");
    assert_eq!(v["passes"]["passes"], 1, "{v}");
    let want = Estimator::from_name("gaussian_nb")
        .unwrap()
        .fit(&digits())
        .unwrap();
    assert_rel(
        "naive Bayes",
        &weights(&model(&nodes[0], "dp-nb", tmp.path())),
        &weights(&want),
        1e-6,
    );

    // PCA and k-means as steps: one pass of scatter sums, a sample pass, Lloyd passes;
    // the same components and centres as in memory from the same seed.
    let mut e = Estimator::from_name("standard_scaler+pca+kmeans+gaussian_nb").unwrap();
    for (k, v) in [
        ("n_components", "20"),
        ("n_clusters", "10"),
        ("random_state", "3"),
    ] {
        e.set_param(k, v).unwrap();
    }
    let id = submit_job(
        &nodes[1],
        &json!({ "dataset": "digits", "name": "dp-km", "data_parallel": true,
                 "job": fit_spec(e.clone()) }),
    );
    let v = finished_job(&nodes[1], &id);
    assert!(v["passes"]["passes"].as_u64().unwrap() > 4, "{v}");
    let (FittedModel::Pipeline(got), FittedModel::Pipeline(want)) = (
        model(&nodes[2], "dp-km", tmp.path()),
        e.fit(&digits()).unwrap(),
    ) else {
        panic!("not pipelines")
    };
    use meshml_models::estimator::FittedTransformer as T;
    let (T::Pca(a), T::Pca(b)) = (&got.steps[1], &want.steps[1]) else {
        panic!("not pca")
    };
    assert_rel("pca", a.components(), b.components(), 1e-6);
    let (T::Kmeans(a), T::Kmeans(b)) = (&got.steps[2], &want.steps[2]) else {
        panic!("not kmeans")
    };
    assert_rel("kmeans", a.cluster_centers(), b.cluster_centers(), 1e-6);
    assert_rel(
        "naive Bayes on distances",
        &weights(&got.estimator),
        &weights(&want.estimator),
        1e-5,
    );

    // k-means on its own: a clusterer, data-parallel; the same centres as in memory, its
    // classes the clusters, the test set's inertia summed chunk by chunk, served clusters.
    let (out, err) = fit(
        "kmeans",
        "dp-clusters",
        &[
            "--set",
            "n_clusters=10",
            "--set",
            "random_state=3",
            "--data-parallel",
            "--test-dataset",
            "digits",
        ],
    );
    let mut e = Estimator::from_name("kmeans").unwrap();
    e.set_param("n_clusters", "10").unwrap();
    e.set_param("random_state", "3").unwrap();
    let want = e.fit(&digits()).unwrap();
    let (FittedModel::Kmeans(a), FittedModel::Kmeans(b)) =
        (&model(&nodes[0], "dp-clusters", tmp.path()), &want)
    else {
        panic!("not k-means on its own")
    };
    assert_rel(
        "kmeans alone",
        a.cluster_centers(),
        b.cluster_centers(),
        1e-6,
    );
    let inertia: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("inertia on 'digits': "))
        .unwrap_or_else(|| panic!("no inertia in {out}\n{err}"))
        .parse()
        .unwrap();
    assert_rel("inertia", &[inertia], &[b.inertia()], 1e-4);
    let rows: Vec<Vec<f32>> = (0..5).map(|i| digits().x().row(i)).collect();
    let (code, r) = crate::common::call(
        &nodes[2],
        "POST",
        "/v1/models/dp-clusters/predict",
        Some((
            "application/json",
            json!({ "instances": rows }).to_string().as_bytes(),
        )),
    );
    assert_eq!(code, 200, "{r}");
    let head = digits().select(&[0, 1, 2, 3, 4]).unwrap();
    let clusters: Vec<String> = b
        .predict(head.x())
        .unwrap()
        .iter()
        .map(u32::to_string)
        .collect();
    assert_eq!(r["predictions"], json!(clusters), "{r}");

    // SGD: an epoch per pass, each chunk's model averaged; the mesh's run is the one a
    // single process makes over the same 200-row chunks, number for number.
    let mut e = Estimator::from_name("standard_scaler+sgd_classifier").unwrap();
    for (k, v) in [
        ("loss", "log_loss"),
        ("random_state", "1"),
        ("max_iter", "15"),
    ] {
        e.set_param(k, v).unwrap();
    }
    let id = submit_job(
        &nodes[2],
        &json!({ "dataset": "digits", "name": "dp-sgd", "data_parallel": true,
                 "job": fit_spec(e.clone()) }),
    );
    let v = finished_job(&nodes[2], &id);
    assert_eq!(v["passes"]["passes"], 17, "{v}");
    let fit = JobSpec {
        kind: JobKind::Fit { estimator: e },
        seed: 0,
    };
    let want = over_chunks(&fit, &digits(), 200).0.unwrap();
    let got = model(&nodes[0], "dp-sgd", tmp.path());
    assert_eq!(got, want, "SGD on the mesh and in one process");

    // A grid search: 2 candidates x 3 folds as fits in lockstep, each pass shared; the
    // table and the refit model are those one process computes over the same chunks.
    let mut e = Estimator::from_name("standard_scaler+logistic_regression").unwrap();
    e.set_param("max_iter", "50").unwrap();
    let spec = JobSpec {
        kind: JobKind::GridSearch {
            estimator: e,
            grid: vec![("C".into(), vec!["0.1".into(), "1".into()])],
            cv: 3,
            refit: true,
        },
        seed: 5,
    };
    let id = submit_job(
        &nodes[0],
        &json!({ "dataset": "digits", "name": "dp-grid", "data_parallel": true, "job": spec }),
    );
    let v = finished_job(&nodes[0], &id);
    let (want_model, want_cv) = over_chunks(&spec, &digits(), 200);
    let (want_model, want_cv) = (want_model.unwrap(), want_cv.unwrap());
    let got_cv: meshml_models::plan::CvResults =
        serde_json::from_value(v["result"]["cv"].clone()).unwrap();
    assert_eq!(got_cv.split_scores, want_cv.split_scores);
    assert_eq!(got_cv.best_index, want_cv.best_index);
    assert_eq!(model(&nodes[1], "dp-grid", tmp.path()), want_model);

    // Ridge on digits as a regression (the digit as a number).
    put_dataset_with(
        &nodes[0],
        "digits-reg",
        "digits",
        2,
        300,
        "&regression=true",
    );
    let (ok, out, err) = meshml(&[
        "fit",
        "--node",
        &url,
        "--dataset",
        "digits-reg",
        "--model",
        "ridge",
        "--name",
        "dp-ridge",
        "--data-parallel",
        "--set",
        "alpha=0.5",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("mode: data-parallel: asked for"), "{out}");
    let reg = load_csv(
        data_path("digits"),
        &CsvOptions {
            kind: meshml_models::io::TargetKind::Regression,
            ..CsvOptions::default()
        },
    )
    .unwrap();
    let mut r = Estimator::from_name("ridge").unwrap();
    r.set_param("alpha", "0.5").unwrap();
    let want = r.fit(&reg).unwrap();
    let got = model(&nodes[1], "dp-ridge", tmp.path());
    assert_rel("ridge", &weights(&got), &weights(&want), 1e-6);

    // What cannot run data-parallel is refused at once, saying why.
    let (ok, _, err) = meshml(&[
        "fit",
        "--node",
        &url,
        "--dataset",
        "digits",
        "--model",
        "decision_tree",
    ]);
    assert!(!ok);
    assert!(
        err.contains("data-parallel (the dataset takes 456.3 KiB in memory")
            && err.contains("decision_tree does not fit data-parallel yet"),
        "{err}"
    );
}

fn fit_spec(estimator: Estimator) -> serde_json::Value {
    serde_json::to_value(JobSpec {
        kind: JobKind::Fit { estimator },
        seed: 0,
    })
    .unwrap()
}

/// A logistic regression on unscaled digits that runs its full `max_iter` (a fit of many
/// passes, so that a fault lands in the middle of it).
fn long_fit(name: &str) -> serde_json::Value {
    let mut e = Estimator::from_name("logistic_regression").unwrap();
    e.set_param("max_iter", "300").unwrap();
    e.set_param("tol", "1e-12").unwrap();
    json!({ "dataset": "digits", "name": name, "data_parallel": true, "job": fit_spec(e) })
}

/// Waits until the job has checkpointed at least `passes` passes, and checks that it still
/// runs; returns the passes checkpointed.
fn wait_passes(n: &Node, id: &str, passes: u64) -> u64 {
    let mut last = serde_json::Value::Null;
    let ok = wait_for(Duration::from_secs(120), || {
        last = job_view(n, id);
        last["passes"]["passes"].as_u64().unwrap_or(0) >= passes
    });
    assert!(ok.is_some(), "{last}");
    assert_eq!(
        last["state"], "running",
        "the fit ended before the fault: {last}"
    );
    last["passes"]["passes"].as_u64().unwrap()
}

/// A three-node mesh with digits in chunks of 100 rows, two copies each, and the weights of
/// a fault-free long fit on it.
fn mesh_and_clean_fit(dir: &std::path::Path) -> (Vec<Node>, String, Vec<f64>, serde_json::Value) {
    let (nodes, driver, _) = three_node_cluster(dir, &["--slots", "1"]);
    put_dataset(&nodes[0], "digits", "digits", 2, 100);
    let t = Instant::now();
    let id = submit_job(&nodes[0], &long_fit("clean"));
    let clean = finished_job(&nodes[0], &id);
    eprintln!(
        "fault-free: {} passes in {:?}",
        clean["passes"]["passes"],
        t.elapsed()
    );
    assert!(
        clean["result"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("ConvergenceWarning"),
        "{clean}"
    );
    let want = weights(&model(&nodes[0], "clean", dir));
    (nodes, driver, want, clean)
}

#[test]
fn a_worker_killed_mid_fit_leaves_the_model_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, driver, want, clean) = mesh_and_clean_fit(tmp.path());
    // Its chunks go to their other holders within the pass.
    let id = submit_job(&nodes[0], &long_fit("worker-killed"));
    let at = wait_passes(&nodes[0], &id, 20);
    eprintln!(
        "worker killed after {at} of {} passes",
        clean["passes"]["passes"]
    );
    let victim = nodes.iter().position(|n| n.id != driver).unwrap();
    drop(nodes.remove(victim));
    let v = finished_job(&nodes[0], &id);
    assert_eq!(v["passes"]["passes"], clean["passes"]["passes"]);
    let got = weights(&model(&nodes[0], "worker-killed", tmp.path()));
    assert_eq!(got, want, "a worker's death changed the model");
}

#[test]
fn a_driver_killed_mid_fit_is_resumed_from_its_checkpoint_to_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, driver, want, clean) = mesh_and_clean_fit(tmp.path());
    let via = nodes.iter().position(|n| n.id != driver).unwrap();
    let id = submit_job(&nodes[via], &long_fit("driver-killed"));
    let at = wait_passes(&nodes[via], &id, 20);
    eprintln!(
        "driver killed after {at} of {} passes",
        clean["passes"]["passes"]
    );
    let d = nodes.iter().position(|n| n.id == driver).unwrap();
    let t = Instant::now();
    drop(nodes.remove(d));
    let v = finished_job(&nodes[0], &id);
    eprintln!("driver killed: the fit ended {:?} later", t.elapsed());
    let got = weights(&model(&nodes[0], "driver-killed", tmp.path()));
    assert_eq!(got, want, "a new driver's resumption changed the model");
    assert_eq!(v["result"]["warnings"], clean["result"]["warnings"]);
}

/// A process's peak resident memory (VmHWM), bytes.
fn peak_rss(n: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", n.child.id())).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// `rows` rows of 16 features in [-2, 2) (4 decimals) and one of 3 classes, from a linear
/// score with noise: seeded, so every run has the same table.
fn synthetic_csv(rows: usize) -> String {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut csv: String = (0..16).map(|j| format!("f{j},")).collect();
    csv.push_str("label\n");
    for _ in 0..rows {
        let x: Vec<f64> = (0..16)
            .map(|_| (next() * 4.0 - 2.0) * 1e4)
            .map(|v| v.round() / 1e4)
            .collect();
        // Scores with their noise drawn first, in class order.
        let scores: Vec<f64> = (0..3)
            .map(|c| {
                x.iter()
                    .enumerate()
                    .map(|(j, v)| v * (((j * 7 + c * 3) % 5) as f64 - 2.0))
                    .sum::<f64>()
                    + 2.0 * next()
            })
            .collect();
        let class = (0..3)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        for v in &x {
            csv.push_str(&format!("{v},"));
        }
        csv.push_str(&format!("c{class}\n"));
    }
    csv
}

#[test]
fn a_fit_on_more_data_than_any_node_may_hold_stays_within_its_memory() {
    let tmp = tempfile::tempdir().unwrap();
    // 600,000 x 17 cells take 38.9 MiB in memory; each node may hold 1 MiB for training.
    let (nodes, _, _) = three_node_cluster(tmp.path(), &["--slots", "1", "--train-memory-mb", "1"]);
    let csv = synthetic_csv(600_000);
    let (code, stored) = crate::common::call(
        &nodes[0],
        "POST",
        "/v1/datasets?name=big&replicas=2&chunk_rows=10000",
        Some(("text/csv", csv.as_bytes())),
    );
    assert_eq!(code, 201, "{stored}");
    let before: Vec<u64> = nodes.iter().map(peak_rss).collect();
    let mut e = Estimator::from_name("standard_scaler+logistic_regression").unwrap();
    e.set_param("tol", "1e-8").unwrap();
    e.set_param("max_iter", "500").unwrap();
    let id = submit_job(
        &nodes[1],
        &json!({ "dataset": "big", "name": "big-lr", "job": fit_spec(e.clone()) }),
    );
    let v = finished_job(&nodes[1], &id);
    assert!(
        v["mode"].as_str().unwrap().starts_with(
            "data-parallel: the dataset takes 38.9 MiB in memory, more than this node's \
             training memory (1.0 MiB"
        ),
        "{v}"
    );
    let passes = v["passes"]["passes"].as_u64().unwrap();
    // Each member's peak memory grew by less than half the dataset's size (an in-memory
    // fit holds the whole matrix, and copies of it): its cache, the chunk it computes with
    // its copies, and buffers that do not grow with the data (7.5 MB over a fit of a
    // quarter of these rows in 5,000-row chunks, 12-14 MB over these in 20,000-row chunks,
    // 10-14 MB in the 10,000-row chunks here).
    let grew: Vec<u64> = (nodes.iter().zip(&before))
        .map(|(n, b)| peak_rss(n).saturating_sub(*b) >> 10)
        .collect();
    let before: Vec<u64> = before.iter().map(|b| b >> 10).collect();
    eprintln!("peak memory grew by {grew:?} KiB over {passes} passes (from {before:?} KiB)");
    assert!(grew.iter().all(|g| *g < 19_900), "{grew:?} KiB");
    let data =
        meshml_models::io::read_csv(csv.as_bytes(), "big.csv", &CsvOptions::default()).unwrap();
    let here = e.fit(&data).unwrap();
    let got = model(&nodes[2], "big-lr", tmp.path());
    assert_rel("more than memory", &weights(&got), &weights(&here), 1e-4);
}

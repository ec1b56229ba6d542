//! Helpers shared by the parity tests: bundled data, flattened reference numbers, and
//! element-wise comparison.
#![allow(dead_code)]

use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::plan::{run_job, CvResults, JobKind, JobResult, JobSpec, LocalExecutor};
use meshml_models::{Dataset, Estimator, Target};
use serde_json::Value;

/// A bundled dataset (`data/NAME.csv`).
pub fn data(name: &str) -> Dataset {
    let path = format!("{}/../data/{name}.csv", env!("CARGO_MANIFEST_DIR"));
    load_csv(path, &CsvOptions::default()).expect("bundled data loads")
}

/// Iris's first three measurements predicting the petal width.
pub fn iris_regression() -> Dataset {
    let iris = data("iris");
    let x = iris.x().select_cols(&[0, 1, 2]).unwrap();
    let y: Vec<f32> = iris.x().data().chunks_exact(4).map(|r| r[3]).collect();
    Dataset::new(
        x,
        Target::Values(y),
        iris.feature_names()[..3].to_vec(),
        "petal_width",
    )
    .unwrap()
}

/// An estimator by name, solved tightly (`tol=1e-10`, a large `max_iter`) so that the
/// comparison does not depend on where an iterative solver stops.
pub fn tight(name: &str) -> Estimator {
    let mut e = Estimator::from_name(name).unwrap();
    e.set_param("tol", "1e-10").unwrap();
    e.set_param("max_iter", "100000").unwrap();
    e
}

/// Runs a job with seed 0 on the local executor (two threads).
pub fn run(kind: JobKind, data: &Dataset) -> JobResult {
    run_job(
        &JobSpec { kind, seed: 0 },
        data,
        &LocalExecutor::new(2),
        &|_| {},
    )
    .unwrap()
}

/// A search's fold scores (to 1e-12) and best candidate against scikit-learn's
/// `split_test_scores` and `best_index`.
#[track_caller]
pub fn assert_splits(r: &Value, cv: &CvResults) {
    let split: Vec<f64> = cv.split_scores.iter().flatten().copied().collect();
    assert_close(
        "split scores",
        &split,
        &flat(&r["split_test_scores"]),
        1e-12,
    );
    assert_eq!(cv.best_index as u64, r["best_index"].as_u64().unwrap());
}

/// Every number in a (nested) JSON array, in order.
pub fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        Value::Bool(b) => vec![f64::from(u8::from(*b))],
        other => panic!("not numeric: {other}"),
    }
}

/// Fails at the largest difference above `tol`, naming its position and both values.
#[track_caller]
pub fn assert_close(what: &str, ours: &[f64], theirs: &[f64], tol: f64) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths differ");
    let (i, worst) = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0f64), |m, (i, d)| if d > m.1 { (i, d) } else { m });
    assert!(
        worst <= tol,
        "{what}: max |diff| {worst:e} at {i} ({} vs {}) exceeds {tol:e}",
        ours[i],
        theirs[i]
    );
}

/// The "mod5" split: row `i` is a test row when `i % 5 == 0`, a training row otherwise.
pub fn mod5(d: &Dataset) -> (Dataset, Dataset) {
    let test: Vec<usize> = (0..d.n_samples()).filter(|i| i % 5 == 0).collect();
    let train: Vec<usize> = (0..d.n_samples()).filter(|i| i % 5 != 0).collect();
    (d.select(&train).unwrap(), d.select(&test).unwrap())
}

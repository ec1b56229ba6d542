//! Helpers shared by the parity tests: bundled data, flattened reference numbers, and
//! element-wise comparison.
#![allow(dead_code)]

use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::Dataset;
use serde_json::Value;

/// A bundled dataset (`data/NAME.csv`).
pub fn data(name: &str) -> Dataset {
    let path = format!("{}/../data/{name}.csv", env!("CARGO_MANIFEST_DIR"));
    load_csv(path, &CsvOptions::default()).expect("bundled data loads")
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

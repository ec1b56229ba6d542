//! Gradient boosting against scikit-learn 1.9 (`tests/reference/sklearn_hgb.json`, from
//! `tools/sklearn_hgb_reference.py`): on small closed cases without early stopping the same
//! trees, so the same raw prediction of every training row within 1e-6; on digits,
//! breast_cancer, nassCDS (native categories, missing cells) and diamonds the test
//! accuracy within 0.5 point, R² within 0.005.

use std::sync::OnceLock;

use meshml_models::boosting::FittedHistGradientBoosting;
use meshml_models::io::{read_csv, CsvOptions};
use meshml_models::{Classes, Dataset, Estimator, Fit, FittedModel, Matrix, Model, Target};
use serde_json::Value;

use super::common::{data, mod5};
use super::tables_parity::{diamonds, nass, split};

fn reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/reference/sklearn_hgb.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    })
}

fn fit(name: &str, params: &[(String, String)], d: &Dataset) -> FittedModel {
    let mut e = Estimator::from_name(name).unwrap();
    for (k, v) in params {
        e.set_param(k, v).unwrap();
    }
    e.fit(d).unwrap()
}

fn boosted(m: &FittedModel) -> &FittedHistGradientBoosting {
    match m {
        FittedModel::HistGradientBoosting(b) => b,
        other => panic!("not a boosted model: {other:?}"),
    }
}

/// The JSON parameter value as `set_param` text (`[1, 0, 0]` for a list).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(text).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

#[test]
fn closed_cases_grow_scikit_learns_trees() {
    let c = &reference()["closed"];
    let rows = c["x"].as_array().unwrap();
    let x: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter())
        .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
        .collect();
    let x = Matrix::from_vec(rows.len(), 3, x).unwrap();
    let names: Vec<String> = ["x0", "x1", "x2"].map(String::from).to_vec();
    for case in c["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let y: Vec<f64> = case_target(c, case);
        let d = if case["classifier"].as_bool().unwrap() {
            let ids = y.iter().map(|&v| v as u32).collect();
            let k = y.iter().fold(0.0f64, |a, &b| a.max(b)) as usize + 1;
            let target = Target::Classes {
                ids,
                classes: Classes::range(k),
            };
            Dataset::new(x.clone(), target, names.clone(), "y").unwrap()
        } else {
            let target = Target::Values(y.iter().map(|&v| v as f32).collect());
            Dataset::new(x.clone(), target, names.clone(), "y").unwrap()
        };
        let mut params: Vec<(String, String)> = case["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect();
        params.push(("early_stopping".into(), "false".into()));
        params.push(("random_state".into(), "0".into()));
        let est = if case["classifier"].as_bool().unwrap() {
            "hist_gradient_boosting_classifier"
        } else {
            "hist_gradient_boosting_regressor"
        };
        let m = fit(est, &params, &d);
        let b = boosted(&m);
        let leaves: Vec<u64> = b
            .trees()
            .iter()
            .map(|t| t.iter().filter(|n| n.is_leaf()).count() as u64)
            .collect();
        let want: Vec<u64> = case["n_leaves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(leaves, want, "{name}: leaves per tree");
        let raw = b.raw_predict(&x).unwrap();
        let k = b.n_trees_per_iteration();
        for (i, row) in case["raw"].as_array().unwrap().iter().enumerate() {
            for (c, v) in row.as_array().unwrap().iter().enumerate() {
                let want = v.as_f64().unwrap();
                let got = raw[i * k + c];
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{name}: row {i} tree {c}: {got} against scikit-learn's {want}"
                );
            }
        }
    }
}

fn case_target(c: &Value, case: &Value) -> Vec<f64> {
    c["targets"][case["target"].as_str().unwrap()]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn seeded() -> Vec<(String, String)> {
    vec![("random_state".into(), "0".into())]
}

/// Fits the classifier on mod5's training rows; the test accuracy within 0.5 point of
/// scikit-learn's, and the predictions of nearly every test row the same.
fn classifier_parity(what: &str, d: &Dataset) {
    let r = &reference()[what];
    let (train, test) = mod5(d);
    let m = fit("hist_gradient_boosting_classifier", &seeded(), &train);
    let pred = m.as_classifier().unwrap().predict(test.x()).unwrap();
    let acc = meshml_models::metrics::accuracy(test.class_target().unwrap().0, &pred).unwrap();
    let want = r["accuracy"].as_f64().unwrap();
    assert!(
        (acc - want).abs() <= 0.005,
        "{what}: accuracy {acc} against {want}"
    );
    let theirs: Vec<u32> = r["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let same = pred.iter().zip(&theirs).filter(|(a, b)| a == b).count();
    assert!(
        same as f64 >= 0.99 * theirs.len() as f64,
        "{what}: {same} of {} test predictions as scikit-learn's",
        theirs.len()
    );
    assert_eq!(boosted(&m).n_iter(), r["n_iter"].as_u64().unwrap() as usize);
}

#[test]
fn digits_matches_scikit_learn() {
    classifier_parity("digits", &data("digits"));
}

#[test]
fn breast_cancer_matches_scikit_learn() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/breast_cancer.csv.gz");
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let d = read_csv(gz, "breast_cancer.csv", &CsvOptions::default()).unwrap();
    let want: Vec<String> = reference()["breast_cancer"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(d.classes().unwrap().labels(), want.as_slice());
    classifier_parity("breast_cancer", &d);
}

#[test]
fn tables_with_categories_and_missing_cells_match_scikit_learn() {
    // nassCDS: 7 text columns split natively, missing cells in two columns.
    let (train, test) = split("nassCDS", nass());
    let m = fit("hist_gradient_boosting_classifier", &seeded(), &train);
    let acc = m.evaluate(&test).unwrap();
    let want = reference()["nassCDS"]["accuracy"].as_f64().unwrap();
    assert!(
        (acc - want).abs() <= 0.005,
        "nassCDS: accuracy {acc} against {want}"
    );
    // diamonds' price: R² within 0.005.
    let (train, test) = split("diamonds", diamonds());
    let m = fit("hist_gradient_boosting_regressor", &seeded(), &train);
    let r2 = m.evaluate(&test).unwrap();
    let want = reference()["diamonds"]["r2"].as_f64().unwrap();
    assert!(
        (r2 - want).abs() <= 0.005,
        "diamonds: R² {r2} against {want}"
    );
    // Early stopping ran on both (more than 10,000 rows) and stopped before max_iter
    // on nassCDS, as scikit-learn's did.
    assert!(boosted(&m).n_iter() <= 100);
    assert!(!boosted(&m).validation_score().is_empty());
}

//! SGD against scikit-learn's ranges over seeds (its shuffles use its own generator):
//! `tests/reference/sklearn_sgd.json`, from `tools/sklearn_sgd_reference.py`.

use std::sync::OnceLock;

use meshml_models::preprocessing::StandardScalerParams;
use meshml_models::{Dataset, Estimator, Fit, Transformer};
use serde_json::Value;

use super::common::{data, iris_regression};

fn reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        serde_json::from_str(include_str!("../reference/sklearn_sgd.json")).expect("reference JSON")
    })
}

/// The mod-5 split (test = every fifth row), scaled on the training rows.
fn split(d: &Dataset) -> (Dataset, Dataset) {
    let n = d.n_samples();
    let train: Vec<usize> = (0..n).filter(|i| i % 5 != 0).collect();
    let test: Vec<usize> = (0..n).filter(|i| i % 5 == 0).collect();
    let (a, b) = (d.select(&train).unwrap(), d.select(&test).unwrap());
    let s = StandardScalerParams::default().fit_matrix(a.x()).unwrap();
    let scale = |d: &Dataset| {
        d.with_x(s.transform(d.x()).unwrap(), d.feature_names().to_vec())
            .unwrap()
    };
    (scale(&a), scale(&b))
}

fn estimator(name: &str, params: &Value, seed: u64) -> Estimator {
    let mut e = Estimator::from_name(name).unwrap();
    for (k, v) in params.as_object().unwrap() {
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        e.set_param(k, &v).unwrap();
    }
    e.set_param("random_state", &seed.to_string()).unwrap();
    e
}

#[test]
fn sgd_scores_fall_in_scikit_learns_range_over_seeds() {
    let digits = split(&data("digits"));
    let iris = split(&iris_regression());
    for (key, name, (train, test)) in [
        ("classifier_digits", "sgd_classifier", &digits),
        ("regressor_iris", "sgd_regressor", &iris),
    ] {
        for r in reference()[key].as_array().unwrap() {
            let (lo, hi) = (
                r["score_min"].as_f64().unwrap(),
                r["score_max"].as_f64().unwrap(),
            );
            let mut scores = Vec::new();
            let mut iters = Vec::new();
            for seed in 0..5 {
                let m = estimator(name, &r["params"], seed).fit(train).unwrap();
                scores.push(m.evaluate(test).unwrap());
                let meshml_models::FittedModel::Sgd(s) = &m else {
                    panic!("not sgd")
                };
                iters.push(s.n_iter());
            }
            scores.sort_by(f64::total_cmp);
            let median = scores[2];
            // The shuffles differ: our median lands within scikit-learn's range over its
            // seeds, widened by one test row in four hundred.
            assert!(
                median >= lo - 0.0025 * lo.abs() && median <= hi + 0.0025 * hi.abs(),
                "{key} {}: our scores {scores:?}, scikit-learn's from {lo} to {hi}",
                r["params"]
            );
            // The same stopping rule: the median epochs land in scikit-learn's range.
            iters.sort_unstable();
            let (a, b) = (
                r["n_iter_min"].as_u64().unwrap() as usize,
                r["n_iter_max"].as_u64().unwrap() as usize,
            );
            assert!(
                (a..=b).contains(&iters[2]),
                "{key} {}: our epochs {iters:?}, scikit-learn's from {a} to {b}",
                r["params"]
            );
        }
    }
}

#[test]
fn sgd_probabilities_exist_for_log_loss_and_modified_huber_only() {
    use meshml_models::Classifier;
    let (train, test) = split(&data("iris"));
    for (loss, proba) in [
        ("log_loss", true),
        ("modified_huber", true),
        ("hinge", false),
    ] {
        let mut e = Estimator::from_name("sgd_classifier").unwrap();
        e.set_param("loss", loss).unwrap();
        e.set_param("random_state", "0").unwrap();
        let m = e.fit(&train).unwrap();
        let pred = m.predict(test.x()).unwrap();
        match m.predict_proba(test.x()) {
            Ok(p) => {
                assert!(proba, "{loss}");
                for (row, &c) in p.to_vec().chunks_exact(3).zip(&pred) {
                    let sum: f32 = row.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-5, "{loss}: {row:?}");
                    // One versus rest: the largest probability is the largest decision.
                    let best = (0..3).fold(0, |b, j| if row[j] > row[b] { j } else { b });
                    assert!(row[best] - row[c as usize] < 1e-6, "{loss}: {row:?} {c}");
                }
            }
            Err(e) => {
                assert!(!proba, "{loss}: {e}");
                assert!(e.to_string().contains("loss='hinge'"), "{e}");
            }
        }
        assert!(m.evaluate(&test).unwrap() > 0.8, "{loss}");
    }
}

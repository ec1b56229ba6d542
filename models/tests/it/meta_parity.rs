//! Meta-estimators (plans run on the local executor) against scikit-learn 1.9.1 on the
//! bundled iris and digits data. Reference numbers: `tests/reference/sklearn_meta.json`,
//! from `tools/sklearn_meta_reference.py`. Logistic regression is solved tightly on both
//! sides, so searches agree fold by fold; forests and bagging draw different random
//! numbers than scikit-learn, so their test accuracy is compared with scikit-learn's range
//! over five seeds.

use std::sync::OnceLock;

use meshml_models::plan::{JobKind, JobResult};
use meshml_models::{Classifier, Dataset, Estimator};
use serde_json::Value;

use crate::common::{assert_close, assert_splits, data, flat, mod5, run, tight};

fn reference() -> &'static Value {
    static R: OnceLock<Value> = OnceLock::new();
    R.get_or_init(|| {
        serde_json::from_str(include_str!("../reference/sklearn_meta.json"))
            .expect("reference JSON")
    })
}

fn check_search(r: &Value, result: &JobResult, data: &Dataset) {
    let cv = result.cv.as_ref().unwrap();
    assert_splits(r, cv);
    assert_close(
        "mean",
        &cv.mean_test_score,
        &flat(&r["mean_test_score"]),
        1e-12,
    );
    assert_close(
        "std",
        &cv.std_test_score,
        &flat(&r["std_test_score"]),
        1e-12,
    );
    let rank: Vec<f64> = cv.rank_test_score.iter().map(|&r| f64::from(r)).collect();
    assert_eq!(rank, flat(&r["rank_test_score"]));
    for (ours, theirs) in cv.params.iter().zip(r["params"].as_array().unwrap()) {
        for (k, v) in ours {
            let t: f64 = theirs[k].as_str().unwrap().parse().unwrap();
            assert_eq!(v.parse::<f64>().unwrap(), t, "{k}");
        }
    }
    let (y, _) = data.class_target().unwrap();
    let acc = result.model.as_ref().unwrap().score(data.x(), y).unwrap();
    assert_eq!(acc, r["train_accuracy_refit"].as_f64().unwrap());
}

#[test]
fn grid_search_on_iris_matches_fold_by_fold() {
    let iris = data("iris");
    let kind = JobKind::GridSearch {
        estimator: tight("logistic_regression"),
        grid: vec![(
            "C".into(),
            ["0.01", "0.1", "1.0", "10.0"].map(String::from).to_vec(),
        )],
        cv: 5,
        refit: true,
    };
    check_search(&reference()["grid_iris"], &run(kind, &iris), &iris);
}

#[test]
fn grid_search_over_a_pipeline_on_digits_matches_fold_by_fold() {
    let digits = data("digits");
    let kind = JobKind::GridSearch {
        estimator: tight("standard_scaler+logistic_regression"),
        grid: vec![(
            "logistic_regression__C".into(),
            ["0.01", "0.1", "1.0"].map(String::from).to_vec(),
        )],
        cv: 3,
        refit: true,
    };
    check_search(
        &reference()["grid_digits_scaled"],
        &run(kind, &digits),
        &digits,
    );
}

#[test]
fn one_vs_rest_and_soft_voting_match_probabilities() {
    let iris = data("iris");
    let proba = |r: &JobResult| -> Vec<f64> {
        let m = r.model.as_ref().unwrap();
        m.predict_proba(iris.x())
            .unwrap()
            .to_vec()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let ovr = run(
        JobKind::OneVsRest {
            estimator: tight("logistic_regression"),
        },
        &iris,
    );
    assert_eq!(ovr.tasks, 3, "one task per class");
    let r = &reference()["ovr_iris"];
    assert_close("ovr proba", &proba(&ovr), &flat(&r["proba"]), 1e-4);
    let (y, _) = iris.class_target().unwrap();
    let acc = ovr.model.as_ref().unwrap().score(iris.x(), y).unwrap();
    assert_eq!(acc, r["train_accuracy"].as_f64().unwrap());

    let vote = run(
        JobKind::Voting {
            estimators: vec![
                tight("logistic_regression"),
                Estimator::from_name("gaussian_nb").unwrap(),
            ],
            soft: true,
        },
        &iris,
    );
    assert_close(
        "soft voting proba",
        &proba(&vote),
        &flat(&reference()["voting_soft_iris"]["proba"]),
        1e-4,
    );
}

#[test]
fn one_vs_one_predicts_like_scikit_learn() {
    for (name, key) in [("iris", "ovo_iris"), ("digits", "ovo_digits")] {
        let d = data(name);
        let est = if name == "digits" {
            tight("standard_scaler+logistic_regression")
        } else {
            tight("logistic_regression")
        };
        let r = run(JobKind::OneVsOne { estimator: est }, &d);
        let k = d.classes().unwrap().len();
        assert_eq!(r.tasks, k * (k - 1) / 2, "one task per pair of classes");
        let pred: Vec<f64> = r
            .model
            .as_ref()
            .unwrap()
            .predict(d.x())
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        assert_eq!(pred, flat(&reference()[key]["predict"]), "{name}");
    }
}

#[test]
fn a_multi_model_search_matches_a_list_of_grids() {
    let iris = data("iris");
    let r = run(
        JobKind::MultiSearch {
            searches: vec![
                (
                    tight("logistic_regression"),
                    vec![("C".into(), vec!["0.1".into(), "1.0".into()])],
                ),
                (
                    Estimator::from_name("gaussian_nb").unwrap(),
                    vec![("var_smoothing".into(), vec!["1e-9".into(), "1e-5".into()])],
                ),
            ],
            cv: 5,
            refit: true,
        },
        &iris,
    );
    let cv = r.cv.as_ref().unwrap();
    let theirs = &reference()["multi_iris"];
    assert_close(
        "mean",
        &cv.mean_test_score,
        &flat(&theirs["mean_test_score"]),
        1e-12,
    );
    let rank: Vec<f64> = cv.rank_test_score.iter().map(|&r| f64::from(r)).collect();
    assert_eq!(rank, flat(&theirs["rank_test_score"]));
    assert_eq!(cv.best_index as u64, theirs["best_index"].as_u64().unwrap());
    assert_eq!(
        cv.params[2][0],
        ("estimator".to_string(), "gaussian_nb".to_string())
    );
    assert!(r.model.is_some());
}

/// Our accuracy must lie within `slack` of scikit-learn's range over five seeds.
#[track_caller]
fn within_range(what: &str, ours: f64, theirs: &Value, slack: f64) {
    let t = flat(&theirs["test_accuracy"]);
    let (lo, hi) = t
        .iter()
        .fold((1.0f64, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(
        ours >= lo - slack && ours <= hi + slack,
        "{what}: {ours} outside scikit-learn's [{lo}, {hi}] +- {slack}"
    );
}

#[test]
fn forest_and_bagging_accuracy_is_in_scikit_learns_range() {
    let (train, test) = mod5(&data("digits"));
    let (y, _) = test.class_target().unwrap();
    let forest = run(
        JobKind::Fit {
            estimator: Estimator::from_name("random_forest").unwrap(),
        },
        &train,
    );
    assert_eq!(forest.tasks, 10, "100 trees in batches of 10");
    let acc = forest.model.as_ref().unwrap().score(test.x(), y).unwrap();
    within_range("random forest", acc, &reference()["forest_digits"], 0.01);

    let bag = run(
        JobKind::Bagging {
            estimator: Estimator::from_name("decision_tree").unwrap(),
            n_estimators: 20,
        },
        &train,
    );
    let acc = bag.model.as_ref().unwrap().score(test.x(), y).unwrap();
    within_range("bagging", acc, &reference()["bagging_digits"], 0.015);
}

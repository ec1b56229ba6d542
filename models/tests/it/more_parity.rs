//! Regressors, L1 logistic regression, model-based feature selection, stacking and
//! multi-output models against scikit-learn 1.9.1 on the bundled data. Reference numbers:
//! `tests/reference/sklearn_more.json`, from `tools/sklearn_more_reference.py`.

use std::sync::OnceLock;

use meshml_models::linear::{
    LinearRegressionParams, LogisticRegressionParams, Penalty, RidgeParams,
};
use meshml_models::meta::Output;
use meshml_models::plan::{run_job, JobKind, JobSpec, LocalExecutor};
use meshml_models::preprocessing::StandardScalerParams;
use meshml_models::{Classifier, Dataset, Estimator, Fit, FittedModel, Matrix, Target};
use serde_json::Value;

use crate::common::{assert_close, assert_splits, data, flat, iris_regression, run, tight};

fn reference() -> &'static Value {
    static R: OnceLock<Value> = OnceLock::new();
    R.get_or_init(|| {
        serde_json::from_str(include_str!("../reference/sklearn_more.json"))
            .expect("reference JSON")
    })
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn standardised_iris() -> Dataset {
    let iris = data("iris");
    let s = StandardScalerParams::default()
        .fit_matrix(iris.x())
        .unwrap();
    use meshml_models::Transformer;
    let x = s.transform(iris.x()).unwrap();
    iris.with_x(x, iris.feature_names().to_vec()).unwrap()
}

/// Versicolor and virginica only, as a two-class dataset.
fn two_classes(d: &Dataset) -> Dataset {
    let rows: Vec<usize> = (50..150).collect();
    let sub = d.select(&rows).unwrap();
    let (ids, _) = sub.class_target().unwrap();
    Dataset::new(
        sub.x().clone(),
        Target::Classes {
            ids: ids.iter().map(|c| c - 1).collect(),
            classes: meshml_models::Classes::from_labels(&["versicolor", "virginica"]),
        },
        sub.feature_names().to_vec(),
        "species",
    )
    .unwrap()
}

fn l1(c: f64) -> LogisticRegressionParams {
    LogisticRegressionParams::default()
        .with_penalty(Penalty::L1)
        .with_c(c)
        .with_tol(1e-10)
        .with_max_iter(200_000)
}

/// Intercepts of a multinomial model are defined up to a common shift: compare them
/// centred.
fn centred(v: &[f64]) -> Vec<f64> {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| x - m).collect()
}

#[test]
fn l1_logistic_regression_matches_saga() {
    let iris = standardised_iris();
    for r in reference()["l1_iris"].as_array().unwrap() {
        let c = r["C"].as_f64().unwrap();
        let m = l1(c).fit(&iris).unwrap();
        assert!(m.converged());
        assert_close(&format!("coef C={c}"), m.coef(), &flat(&r["coef"]), 1e-5);
        // Zeros are exact on both sides.
        let zeros = |v: &[f64]| v.iter().map(|x| *x == 0.0).collect::<Vec<_>>();
        assert_eq!(zeros(m.coef()), zeros(&flat(&r["coef"])), "C={c}");
        assert_close(
            &format!("intercept C={c}"),
            &centred(m.intercept()),
            &centred(&flat(&r["intercept"])),
            1e-5,
        );
    }
    let binary = two_classes(&iris);
    let r = &reference()["l1_binary"];
    let m = l1(0.1).fit(&binary).unwrap();
    assert_close("binary coef", m.coef(), &flat(&r["coef"]), 1e-5);
    assert_close(
        "binary intercept",
        m.intercept(),
        &flat(&r["intercept"]),
        1e-5,
    );
}

#[test]
fn feature_selection_in_a_grid_search_matches_fold_by_fold() {
    let iris = data("iris");
    let r = &reference()["select_grid_iris"];
    let mut e =
        Estimator::from_name("standard_scaler+select_from_model+logistic_regression").unwrap();
    for (k, v) in [
        ("select_from_model__tol", "1e-10"),
        ("select_from_model__max_iter", "200000"),
        ("logistic_regression__tol", "1e-10"),
        ("logistic_regression__max_iter", "100000"),
    ] {
        e.set_param(k, v).unwrap();
    }
    let cs = ["0.02", "0.1", "1.0"].map(String::from).to_vec();
    let result = run(
        JobKind::GridSearch {
            estimator: e.clone(),
            grid: vec![("select_from_model__estimator__C".into(), cs.clone())],
            cv: 5,
            refit: true,
        },
        &iris,
    );
    assert_splits(r, &result.cv.unwrap());
    // The number of features each C keeps on the whole data.
    for (c, want) in cs.iter().zip(flat(&r["support"])) {
        let mut p = e.clone();
        p.set_param("select_from_model__C", c).unwrap();
        let FittedModel::Pipeline(fitted) = p.fit(&iris).unwrap() else {
            panic!("a pipeline")
        };
        let kept = fitted.estimator.n_features();
        assert_eq!(kept as f64, want, "C={c}");
    }
}

#[test]
fn least_squares_match_closed_form_and_minimum_norm_solutions() {
    let d = iris_regression();
    let r = &reference()["linear_iris"];
    let ols = LinearRegressionParams::default().fit(&d).unwrap();
    // The features are f32 here, f64 in scikit-learn: agreement to about 1e-7.
    assert_close("ols coef", ols.coef(), &flat(&r["ols_coef"]), 1e-6);
    assert_close(
        "ols intercept",
        &[ols.intercept()],
        &flat(&r["ols_intercept"]),
        1e-6,
    );
    let ridge = RidgeParams {
        alpha: 3.0,
        fit_intercept: true,
    }
    .fit(&d)
    .unwrap();
    assert_close("ridge coef", ridge.coef(), &flat(&r["ridge_coef"]), 1e-6);
    assert_close(
        "ridge intercept",
        &[ridge.intercept()],
        &flat(&r["ridge_intercept"]),
        1e-6,
    );
    let m = Estimator::from_name("linear_regression")
        .unwrap()
        .fit(&d)
        .unwrap();
    let r2 = m.evaluate(&d).unwrap();
    assert!((r2 - r["ols_r2"].as_f64().unwrap()).abs() < 1e-6, "{r2}");

    // Digits: integer labels are the regression target; constant pixels make the system
    // singular.
    let digits = data("digits");
    let (train, test) = mod5(digits.n_samples());
    let m = Estimator::from_name("linear_regression")
        .unwrap()
        .fit(&digits.select(&train).unwrap())
        .unwrap();
    let test = digits.select(&test).unwrap();
    let r = &reference()["linear_digits"];
    assert_close(
        "digits predictions",
        &f64s(&m.predict_values(test.x()).unwrap()),
        &flat(&r["predict_test"]),
        2e-3,
    );
    assert!((m.evaluate(&test).unwrap() - r["r2_test"].as_f64().unwrap()).abs() < 1e-4);
}

fn mod5(n: usize) -> (Vec<usize>, Vec<usize>) {
    (
        (0..n).filter(|i| i % 5 != 0).collect(),
        (0..n).filter(|i| i % 5 == 0).collect(),
    )
}

#[test]
fn regression_trees_match_for_every_depth() {
    let d = iris_regression();
    for r in reference()["tree_reg_iris"].as_array().unwrap() {
        let mut e = Estimator::from_name("decision_tree_regressor").unwrap();
        e.set_param("random_state", "0").unwrap();
        let depth = r["max_depth"]
            .as_u64()
            .map_or("None".to_string(), |v| v.to_string());
        e.set_param("max_depth", &depth).unwrap();
        let m = e.fit(&d).unwrap();
        let FittedModel::DecisionTree(t) = &m else {
            panic!()
        };
        // Grown to the end, scikit-learn also splits nodes whose targets are all equal
        // but whose variance rounds to a hair above zero in its f64 sums (of other
        // numbers than our f32 data): such splits change no prediction, only the count.
        if r["max_depth"].is_u64() {
            assert_eq!(
                t.n_leaves() as u64,
                r["n_leaves"].as_u64().unwrap(),
                "depth {depth}"
            );
        }
        assert_close(
            &format!("depth {depth}"),
            &f64s(&m.predict_values(d.x()).unwrap()),
            &flat(&r["predict"]),
            1e-6,
        );
    }
}

#[test]
fn forest_regressor_r2_is_in_scikit_learns_range() {
    let digits = data("digits");
    let (train, test) = mod5(digits.n_samples());
    let (train, test) = (
        digits.select(&train).unwrap(),
        digits.select(&test).unwrap(),
    );
    let theirs = flat(&reference()["forest_reg_digits"]["test_r2"]);
    let (lo, hi) = theirs
        .iter()
        .fold((1.0f64, 0.0f64), |m, &v| (m.0.min(v), m.1.max(v)));
    let mut e = Estimator::from_name("random_forest_regressor").unwrap();
    e.set_param("n_estimators", "30").unwrap();
    for seed in 0..3u64 {
        let result = run_job(
            &JobSpec {
                kind: JobKind::Fit {
                    estimator: e.clone(),
                },
                seed,
            },
            &train,
            &LocalExecutor::new(2),
            &|_| {},
        )
        .unwrap();
        assert_eq!(result.tasks, 3, "30 trees in batches of 10");
        let r2 = result.model.unwrap().evaluate(&test).unwrap();
        assert!(
            r2 > lo - 0.02 && r2 < hi + 0.02,
            "seed {seed}: {r2} vs [{lo}, {hi}]"
        );
    }
}

#[test]
fn multi_output_ridge_matches_per_target_fits() {
    let iris = data("iris");
    let mut ridge = Estimator::from_name("ridge").unwrap();
    ridge.set_param("alpha", "1.0").unwrap();
    let result = run(
        JobKind::MultiOutput {
            estimator: ridge,
            targets: vec!["petal_length".into(), "petal_width".into()],
        },
        &iris,
    );
    let FittedModel::MultiOutput(m) = result.model.as_ref().unwrap() else {
        panic!()
    };
    assert_eq!(m.features, ["sepal_length", "sepal_width"]);
    let r = &reference()["multi_output_ridge"];
    for (i, member) in m.members.iter().enumerate() {
        let FittedModel::LinearRegression(l) = member else {
            panic!()
        };
        assert_close("coef", l.coef(), &flat(&r["coef"][i]), 1e-6);
        assert_close(
            "intercept",
            &[l.intercept()],
            &flat(&r["intercept"][i]),
            1e-6,
        );
    }
    let (mean, per_target) = m.evaluate(&iris).unwrap();
    assert_eq!(per_target.len(), 2);
    assert!((mean - r["r2"].as_f64().unwrap()).abs() < 1e-6, "{mean}");
    let x = iris.x().select_cols(&[0, 1]).unwrap();
    let out = m.predict_outputs(&x).unwrap();
    assert!(matches!(&out[0], Output::Values(v) if v.len() == 150));
}

#[test]
fn multi_output_classification_predicts_labels_of_each_column() {
    // Species and the (integer) rounded petal width from the sepal and petal lengths.
    let iris = data("iris");
    let width: Vec<f32> = iris
        .x()
        .data()
        .chunks_exact(4)
        .map(|r| r[3].round())
        .collect();
    let mut x = Vec::with_capacity(150 * 4);
    for (row, w) in iris.x().data().chunks_exact(4).zip(&width) {
        x.extend_from_slice(&[row[0], row[1], row[2], *w]);
    }
    let d = iris
        .with_x(
            Matrix::from_vec(150, 4, x).unwrap(),
            iris.feature_names().to_vec(),
        )
        .unwrap();
    let mut tree = Estimator::from_name("decision_tree").unwrap();
    tree.set_param("max_depth", "3").unwrap();
    let result = run(
        JobKind::MultiOutput {
            estimator: tree,
            targets: vec!["species".into(), "petal_width".into()],
        },
        &d,
    );
    let FittedModel::MultiOutput(m) = result.model.as_ref().unwrap() else {
        panic!()
    };
    assert_eq!(m.labels[0], ["setosa", "versicolor", "virginica"]);
    assert_eq!(m.labels[1], ["0", "1", "2", "3"]);
    let (mean, scores) = m.evaluate(&d).unwrap();
    assert!(scores.iter().all(|s| *s > 0.85), "{scores:?}");
    assert!((mean - (scores[0] + scores[1]) / 2.0).abs() < 1e-12);
    let x = d.x().select_cols(&[0, 1, 2]).unwrap();
    let Output::Labels(species) = &m.predict_outputs(&x).unwrap()[0] else {
        panic!()
    };
    assert_eq!(species[0], "setosa");
}

#[test]
fn stacking_matches_probabilities() {
    let iris = data("iris");
    let kind = |final_estimator| JobKind::Stacking {
        estimators: vec![
            tight("logistic_regression"),
            Estimator::from_name("gaussian_nb").unwrap(),
        ],
        final_estimator,
        cv: 5,
    };
    let result = run(kind(tight("logistic_regression")), &iris);
    assert_eq!(result.tasks, 2 * 5 + 2 + 1);
    let p = result.model.unwrap().predict_proba(iris.x()).unwrap();
    assert_close(
        "stacking proba",
        &f64s(&p.to_vec()),
        &flat(&reference()["stacking_iris"]["proba"]),
        1e-4,
    );
    let binary = two_classes(&iris);
    let result = run(kind(tight("logistic_regression")), &binary);
    let p = f64s(
        &result
            .model
            .unwrap()
            .predict_proba(binary.x())
            .unwrap()
            .to_vec(),
    );
    assert_close(
        "binary stacking proba",
        &p,
        &flat(&reference()["stacking_binary"]["proba"]),
        1e-4,
    );
}

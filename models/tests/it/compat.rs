//! Format compatibility: every estimator specification, job specification and fitted model
//! kind encodes to the bytes pinned in `tests/fixtures/`, and the pinned bytes decode back
//! to a model that predicts what it predicted when they were written.
//!
//! The fixtures were written by the code before the estimator registry replaced the
//! hand-written enums, so these tests prove that old job files (JSON, TOML) and old model
//! artifacts (MessagePack, `.mlm`) still load. To rewrite them after a deliberate format
//! change (which also needs a new `ARTIFACT_FORMAT_VERSION`), run the tests with
//! `MESHML_BLESS_FIXTURES=1`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use meshml_models::meta::Output;
use meshml_models::plan::{run_job, Distribution, JobKind, JobSpec, LocalExecutor};
use meshml_models::{Classifier, Dataset, Estimator, Fit, FittedModel, ModelArtifact, Provenance};
use serde_json::Value;

use crate::common::data;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn bless() -> bool {
    std::env::var_os("MESHML_BLESS_FIXTURES").is_some()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn est(name: &str, params: &[(&str, &str)]) -> Estimator {
    let mut e = Estimator::from_name(name).unwrap();
    for (k, v) in params {
        e.set_param(k, v).unwrap();
    }
    e
}

/// Every estimator kind with default parameters, and with every kind of parameter value
/// set (enums, options, nested parameters, pipelines).
fn specs() -> Vec<(&'static str, Estimator)> {
    vec![
        ("logistic_regression", est("logistic_regression", &[])),
        (
            "logistic_regression_l1",
            est("logistic_regression", &[("penalty", "l1"), ("C", "0.5")]),
        ),
        (
            "logistic_regression_none",
            est(
                "logistic_regression",
                &[("penalty", "none"), ("fit_intercept", "false")],
            ),
        ),
        ("gaussian_nb", est("gaussian_nb", &[])),
        (
            "gaussian_nb_smoothing",
            est("gaussian_nb", &[("var_smoothing", "1e-6")]),
        ),
        ("decision_tree", est("decision_tree", &[])),
        (
            "decision_tree_set",
            est(
                "decision_tree",
                &[
                    ("criterion", "entropy"),
                    ("max_depth", "3"),
                    ("max_features", "sqrt"),
                    ("min_samples_leaf", "2"),
                    ("random_state", "7"),
                ],
            ),
        ),
        ("random_forest", est("random_forest", &[])),
        (
            "random_forest_set",
            est(
                "random_forest",
                &[
                    ("n_estimators", "7"),
                    ("max_depth", "4"),
                    ("random_state", "3"),
                ],
            ),
        ),
        ("linear_regression", est("linear_regression", &[])),
        ("ridge", est("ridge", &[("alpha", "0.25")])),
        (
            "decision_tree_regressor",
            est("decision_tree_regressor", &[]),
        ),
        (
            "decision_tree_regressor_set",
            est(
                "decision_tree_regressor",
                &[("max_depth", "2"), ("random_state", "1")],
            ),
        ),
        (
            "random_forest_regressor",
            est("random_forest_regressor", &[]),
        ),
        (
            "random_forest_regressor_set",
            est(
                "random_forest_regressor",
                &[("n_estimators", "3"), ("random_state", "5")],
            ),
        ),
        (
            "pipeline",
            est(
                "standard_scaler+logistic_regression",
                &[("with_mean", "false"), ("C", "2")],
            ),
        ),
        (
            "pipeline_select",
            est(
                "standard_scaler+select_from_model+decision_tree",
                &[("select_from_model__C", "0.1"), ("threshold", "0.01")],
            ),
        ),
    ]
}

fn jobs() -> Vec<(&'static str, JobSpec)> {
    let lr = || est("logistic_regression", &[]);
    let kinds = vec![
        (
            "fit",
            JobKind::Fit {
                estimator: est("random_forest", &[]),
            },
        ),
        (
            "grid_search",
            JobKind::GridSearch {
                estimator: est("standard_scaler+logistic_regression", &[]),
                grid: vec![("C".into(), vec!["0.1".into(), "1".into()])],
                cv: 3,
                refit: true,
            },
        ),
        (
            "random_search",
            JobKind::RandomSearch {
                estimator: est("decision_tree", &[]),
                space: vec![
                    (
                        "max_depth".into(),
                        Distribution::IntRange { low: 1, high: 5 },
                    ),
                    (
                        "criterion".into(),
                        Distribution::Choice(vec!["gini".into(), "entropy".into()]),
                    ),
                    (
                        "min_impurity_decrease".into(),
                        Distribution::Uniform {
                            low: 0.0,
                            high: 0.1,
                        },
                    ),
                ],
                n_iter: 4,
                cv: 5,
                refit: false,
            },
        ),
        (
            "random_search_log",
            JobKind::RandomSearch {
                estimator: lr(),
                space: vec![(
                    "C".into(),
                    Distribution::LogUniform {
                        low: 0.01,
                        high: 10.0,
                    },
                )],
                n_iter: 2,
                cv: 2,
                refit: true,
            },
        ),
        (
            "multi_search",
            JobKind::MultiSearch {
                searches: vec![
                    (lr(), vec![("C".into(), vec!["1".into()])]),
                    (est("gaussian_nb", &[]), vec![]),
                ],
                cv: 3,
                refit: true,
            },
        ),
        ("one_vs_rest", JobKind::OneVsRest { estimator: lr() }),
        ("one_vs_one", JobKind::OneVsOne { estimator: lr() }),
        (
            "bagging",
            JobKind::Bagging {
                estimator: est("decision_tree", &[]),
                n_estimators: 4,
            },
        ),
        (
            "voting",
            JobKind::Voting {
                estimators: vec![lr(), est("gaussian_nb", &[])],
                soft: true,
            },
        ),
        (
            "stacking",
            JobKind::Stacking {
                estimators: vec![est("gaussian_nb", &[]), est("decision_tree", &[])],
                final_estimator: lr(),
                cv: 3,
            },
        ),
        (
            "cascade",
            JobKind::Cascade {
                groups: vec![
                    vec!["setosa".into()],
                    vec!["versicolor".into(), "virginica".into()],
                ],
                router: lr(),
                estimator: est("decision_tree", &[]),
            },
        ),
        (
            "multi_output",
            JobKind::MultiOutput {
                estimator: est("ridge", &[]),
                targets: vec!["petal_length".into(), "petal_width".into()],
            },
        ),
    ];
    kinds
        .into_iter()
        .map(|(n, kind)| (n, JobSpec { kind, seed: 11 }))
        .collect()
}

/// Compares `text` with the fixture `name`, or rewrites the fixture when blessing.
fn check_text(name: &str, text: &str) {
    let path = fixture(name);
    if bless() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(&path).unwrap();
    let (pinned, now): (BTreeMap<String, Value>, BTreeMap<String, Value>) = (
        serde_json::from_str(&pinned).unwrap(),
        serde_json::from_str(text).unwrap(),
    );
    assert_eq!(
        pinned.keys().collect::<Vec<_>>(),
        now.keys().collect::<Vec<_>>(),
        "{name}"
    );
    for (k, v) in &pinned {
        assert_eq!(v, &now[k], "{name}: {k} encodes differently");
    }
}

#[test]
fn estimator_specs_keep_their_json_and_messagepack_encoding() {
    let mut out = BTreeMap::new();
    for (name, e) in specs() {
        let json = serde_json::to_string(&e).unwrap();
        let mp = rmp_serde::to_vec_named(&e).unwrap();
        out.insert(
            name.to_string(),
            serde_json::json!({ "json": json, "msgpack": hex(&mp) }),
        );
    }
    check_text(
        "estimators.json",
        &serde_json::to_string_pretty(&out).unwrap(),
    );
    // The pinned encodings decode to the same specifications.
    let pinned: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("estimators.json")).unwrap())
            .unwrap();
    for (name, e) in specs() {
        let entry = &pinned[name];
        let from_json: Estimator = serde_json::from_str(entry["json"].as_str().unwrap()).unwrap();
        assert_eq!(from_json, e, "{name}");
        let from_mp: Estimator =
            rmp_serde::from_slice(&unhex(entry["msgpack"].as_str().unwrap())).unwrap();
        assert_eq!(from_mp, e, "{name}");
    }
}

#[test]
fn job_specs_keep_their_json_and_toml_encoding() {
    let mut out = BTreeMap::new();
    for (name, j) in jobs() {
        let json = serde_json::to_string(&j).unwrap();
        let toml = toml::to_string(&j).unwrap();
        out.insert(
            name.to_string(),
            serde_json::json!({ "json": json, "toml": toml }),
        );
    }
    check_text("jobs.json", &serde_json::to_string_pretty(&out).unwrap());
    let pinned: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("jobs.json")).unwrap()).unwrap();
    for (name, j) in jobs() {
        let entry = &pinned[name];
        let from_json: JobSpec = serde_json::from_str(entry["json"].as_str().unwrap()).unwrap();
        assert_eq!(from_json, j, "{name}");
        let from_toml: JobSpec = toml::from_str(entry["toml"].as_str().unwrap()).unwrap();
        assert_eq!(from_toml, j, "{name}");
    }
}

fn iris_values() -> Dataset {
    // Petal width from the other three columns.
    let iris = data("iris");
    let x = iris.x().select_cols(&[0, 1, 2]).unwrap();
    let y: Vec<f32> = iris.x().data().chunks_exact(4).map(|r| r[3]).collect();
    Dataset::new(
        x,
        meshml_models::Target::Values(y),
        iris.feature_names()[..3].to_vec(),
        "petal_width",
    )
    .unwrap()
}

fn job_model(kind: JobKind, data: &Dataset) -> FittedModel {
    run_job(
        &JobSpec { kind, seed: 3 },
        data,
        &LocalExecutor::new(2),
        &|_| {},
    )
    .unwrap()
    .model
    .unwrap()
}

/// One fitted model of every kind (and every way of combining an ensemble), with the data
/// it predicts on.
fn fitted() -> Vec<(&'static str, FittedModel, Dataset)> {
    let iris = data("iris");
    let values = iris_values();
    let small_forest = |name| {
        est(
            name,
            &[
                ("n_estimators", "3"),
                ("max_depth", "3"),
                ("random_state", "0"),
            ],
        )
    };
    let fit = |e: Estimator, d: &Dataset| e.fit(d).unwrap();
    let lr = || est("logistic_regression", &[]);
    vec![
        ("logistic_regression", fit(lr(), &iris), iris.clone()),
        (
            "logistic_regression_l1",
            fit(est("logistic_regression", &[("penalty", "l1")]), &iris),
            iris.clone(),
        ),
        (
            "gaussian_nb",
            fit(est("gaussian_nb", &[]), &iris),
            iris.clone(),
        ),
        (
            "decision_tree",
            fit(
                est(
                    "decision_tree",
                    &[("max_depth", "3"), ("random_state", "0")],
                ),
                &iris,
            ),
            iris.clone(),
        ),
        (
            "random_forest",
            fit(small_forest("random_forest"), &iris),
            iris.clone(),
        ),
        (
            "linear_regression",
            fit(est("linear_regression", &[]), &values),
            values.clone(),
        ),
        (
            "ridge",
            fit(est("ridge", &[("alpha", "0.5")]), &values),
            values.clone(),
        ),
        (
            "decision_tree_regressor",
            fit(
                est(
                    "decision_tree_regressor",
                    &[("max_depth", "3"), ("random_state", "0")],
                ),
                &values,
            ),
            values.clone(),
        ),
        (
            "random_forest_regressor",
            fit(small_forest("random_forest_regressor"), &values),
            values.clone(),
        ),
        (
            "pipeline",
            fit(
                est("standard_scaler+select_from_model+logistic_regression", &[]),
                &iris,
            ),
            iris.clone(),
        ),
        (
            "one_vs_rest",
            job_model(JobKind::OneVsRest { estimator: lr() }, &iris),
            iris.clone(),
        ),
        (
            "one_vs_one",
            job_model(JobKind::OneVsOne { estimator: lr() }, &iris),
            iris.clone(),
        ),
        (
            "voting_hard",
            job_model(
                JobKind::Voting {
                    estimators: vec![lr(), est("gaussian_nb", &[])],
                    soft: false,
                },
                &iris,
            ),
            iris.clone(),
        ),
        (
            "voting_regressor",
            job_model(
                JobKind::Voting {
                    estimators: vec![est("ridge", &[]), est("linear_regression", &[])],
                    soft: true,
                },
                &values,
            ),
            values.clone(),
        ),
        (
            "stacking",
            job_model(
                JobKind::Stacking {
                    estimators: vec![est("gaussian_nb", &[]), lr()],
                    final_estimator: lr(),
                    cv: 3,
                },
                &iris,
            ),
            iris.clone(),
        ),
        (
            "cascade",
            job_model(
                JobKind::Cascade {
                    groups: vec![
                        vec!["setosa".into()],
                        vec!["versicolor".into(), "virginica".into()],
                    ],
                    router: lr(),
                    estimator: est("gaussian_nb", &[]),
                },
                &iris,
            ),
            iris.clone(),
        ),
        (
            "multi_output",
            job_model(
                JobKind::MultiOutput {
                    estimator: est("ridge", &[]),
                    targets: vec!["petal_length".into(), "petal_width".into()],
                },
                &iris,
            ),
            iris.clone(),
        ),
    ]
}

/// What a model predicts on `data`, as JSON: classes and probabilities, values, or every
/// output of a multi-output model.
fn predictions(m: &FittedModel, d: &Dataset) -> Value {
    if let FittedModel::MultiOutput(mo) = m {
        let cols: Vec<usize> = mo
            .features
            .iter()
            .map(|f| d.feature_names().iter().position(|n| n == f).unwrap())
            .collect();
        let x = d.x().select_cols(&cols).unwrap();
        let outputs: Vec<Value> = mo
            .predict_outputs(&x)
            .unwrap()
            .into_iter()
            .map(|o| match o {
                Output::Labels(l) => serde_json::json!({ "labels": l }),
                Output::Values(v) => serde_json::json!({ "values": v }),
            })
            .collect();
        return Value::Array(outputs);
    }
    if m.is_regressor() {
        return serde_json::to_value(m.predict_values(d.x()).unwrap()).unwrap();
    }
    serde_json::json!({
        "predict": m.predict(d.x()).unwrap(),
        "proba": m.predict_proba(d.x()).unwrap().to_vec(),
    })
}

#[test]
fn fitted_models_keep_their_messagepack_encoding_and_predictions() {
    let dir = fixture("fitted");
    let mut preds = BTreeMap::new();
    for (name, model, d) in fitted() {
        let path = dir.join(format!("{name}.msgpack"));
        if bless() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, rmp_serde::to_vec_named(&model).unwrap()).unwrap();
            preds.insert(name.to_string(), predictions(&model, &d));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let back: FittedModel = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            rmp_serde::to_vec_named(&back).unwrap(),
            bytes,
            "{name} re-encodes differently"
        );
        preds.insert(name.to_string(), predictions(&back, &d));
    }
    // One line per model keeps the file small and its diffs readable.
    let lines: Vec<String> = preds
        .iter()
        .map(|(k, v)| format!("  {}: {}", Value::from(k.as_str()), v))
        .collect();
    check_text(
        "fitted/predictions.json",
        &format!("{{\n{}\n}}\n", lines.join(",\n")),
    );
}

#[test]
fn model_artifacts_keep_their_file_format() {
    let iris = data("iris");
    let estimator = est(
        "standard_scaler+decision_tree",
        &[("max_depth", "2"), ("random_state", "0")],
    );
    let model = estimator.fit(&iris).unwrap();
    let provenance = Provenance {
        created_at_unix: 1_700_000_000,
        meshml_version: "0.1.0".into(),
        dataset: Some("iris".into()),
        n_samples: 150,
        seed: Some(0),
        job: Some("job-1".into()),
    };
    let mut artifact = ModelArtifact::new(estimator, model, &iris, provenance).unwrap();
    artifact.metrics.insert("test_accuracy".into(), 0.9);
    let path = fixture("iris_tree.mlm");
    if bless() {
        std::fs::write(&path, artifact.to_bytes().unwrap()).unwrap();
        return;
    }
    let loaded = ModelArtifact::load(&path).unwrap();
    assert_eq!(loaded.to_bytes().unwrap(), std::fs::read(&path).unwrap());
    assert_eq!(loaded.kind(), "standard_scaler+decision_tree");
    assert_eq!(
        loaded.model.predict(iris.x()).unwrap(),
        artifact.model.predict(iris.x()).unwrap()
    );
}

//! The small-data case (issue 2): load, split, fit, evaluate, save, reload, predict, with no
//! cluster, through the same code path as `meshml local`.

use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::{Classifier, ModelArtifact};
use meshml_node::cli::FitArgs;
use meshml_tests::bundled;

fn args(data: Option<std::path::PathBuf>, model: &str, out: std::path::PathBuf) -> FitArgs {
    FitArgs {
        data,
        target: None,
        model: model.into(),
        set: vec![],
        test_size: 0.2,
        test_data: None,
        regression: false,
        seed: 7,
        no_stratify: false,
        out: Some(out),
        limits: Default::default(),
    }
}

#[test]
fn issue_2_saved_model_predicts_like_the_fitted_one() {
    let dir = tempfile::tempdir().unwrap();
    for model in [
        "logistic_regression",
        "gaussian_nb",
        "decision_tree",
        "standard_scaler+logistic_regression",
    ] {
        let path = dir.path().join(format!("{model}.mlm"));
        let mut report = Vec::new();
        let r = meshml_node::local::fit(
            &args(Some(bundled("digits.csv")), model, path.clone()),
            &mut report,
        )
        .unwrap();
        let art = ModelArtifact::load(&path).unwrap();
        assert_eq!(art.kind(), model);
        assert_eq!(art.feature_names.len(), 64);
        assert_eq!(Some(art.metrics["test_accuracy"]), r.test_accuracy);
        assert_eq!(art.provenance.seed, Some(7));
        assert_eq!(art.provenance.n_samples, 1437);
        // The saved model reproduces the reported test accuracy on the same split.
        let digits = load_csv(bundled("digits.csv"), &CsvOptions::default()).unwrap();
        let (_, test) = meshml_models::model_selection::train_test_split(
            digits.n_samples(),
            meshml_models::model_selection::TestSize::Fraction(0.2),
            7,
            Some(digits.class_target().unwrap().0),
        )
        .unwrap();
        let test = digits.select(&test).unwrap();
        let acc = art
            .model
            .score(test.x(), test.class_target().unwrap().0)
            .unwrap();
        assert_eq!(Some(acc), r.test_accuracy, "{model}");
        assert!(acc > 0.75, "{model}: {acc}");
    }
}

#[test]
fn issue_2_same_seed_same_model_file_contents() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.mlm");
    let b = dir.path().join("b.mlm");
    meshml_node::local::fit(&args(None, "decision_tree", a.clone()), &mut Vec::new()).unwrap();
    meshml_node::local::fit(&args(None, "decision_tree", b.clone()), &mut Vec::new()).unwrap();
    let (a, b) = (
        ModelArtifact::load(a).unwrap(),
        ModelArtifact::load(b).unwrap(),
    );
    assert_eq!(a.model, b.model);
    assert_eq!(a.estimator, b.estimator);
}

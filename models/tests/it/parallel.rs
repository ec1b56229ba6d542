//! Data-parallel fits against in-memory ones: the data split into chunks, each pass run
//! chunk by chunk and merged, the state checkpointed (MessagePack) and restored between
//! every two passes, as a driver and its successor would.

use meshml_models::estimator::FittedTransformer;
use meshml_models::parallel::{compute, compute_all, DataParallelFit, Next, Partial};
use meshml_models::{Classifier, Dataset, Estimator, Fit, FittedModel, Target};

use super::common::data;

/// Fits `estimator` data-parallel over chunks of `rows` rows; returns the model and the
/// passes it took.
fn fit_dp(estimator: &Estimator, data: &Dataset, rows: usize) -> (FittedModel, u64) {
    let schema = data.select(&[]).unwrap();
    let mut fit = DataParallelFit::new(estimator, &schema, data.n_samples() as u64).unwrap();
    let idx: Vec<usize> = (0..data.n_samples()).collect();
    let chunks: Vec<Dataset> = idx.chunks(rows).map(|c| data.select(c).unwrap()).collect();
    for _ in 0..10_000 {
        // A checkpoint and a resume between every two passes.
        let bytes = rmp_serde::to_vec_named(&fit).unwrap();
        fit = rmp_serde::from_slice(&bytes).unwrap();
        match fit.ask().unwrap() {
            Next::Done(m) => return (m, fit.passes()),
            Next::Pass(pass) => {
                fit.tell(compute_all(&pass, &chunks).unwrap()).unwrap();
            }
        }
    }
    panic!("no model after 10,000 passes");
}

/// The final estimator of a model or pipeline.
fn last(m: &FittedModel) -> &FittedModel {
    match m {
        FittedModel::Pipeline(p) => &p.estimator,
        m => m,
    }
}

/// The largest difference relative to the largest magnitude of `want`.
#[track_caller]
fn assert_rel(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    let (i, diff) = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold(
            (0, 0.0),
            |best, (i, d)| if d > best.1 { (i, d) } else { best },
        );
    assert!(
        diff / scale <= tol,
        "{what}: element {i}: {} against {} (relative {:e} > {tol:e})",
        got[i],
        want[i],
        diff / scale
    );
}

fn coefficients(m: &FittedModel) -> Vec<f64> {
    match last(m) {
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
        other => panic!("not linear: {other:?}"),
    }
}

#[test]
fn logistic_regression_over_chunks_is_the_in_memory_model() {
    let digits = data("digits");
    let iris = data("iris");
    // Converged (tol=1e-8), the two fits are one model. Stopped early, each solver stops
    // somewhere within its tolerance: the paths share their first iterations (tol=1e-4),
    // but sums of f32 products in another order round differently, and on this
    // ill-conditioned problem the stopping points at tol=1e-6 differ by 4e-4 (relative),
    // as two solvers' would.
    for (data, name, tol) in [
        (&digits, "standard_scaler+logistic_regression", "1e-4"),
        (&digits, "standard_scaler+logistic_regression", "1e-8"),
        (&iris, "logistic_regression", "1e-6"),
    ] {
        let mut e = Estimator::from_name(name).unwrap();
        e.set_param("tol", tol).unwrap();
        e.set_param("max_iter", "1000").unwrap();
        let want = e.fit(data).unwrap();
        for rows in [1797, 400, 200, 97, 13] {
            let (got, passes) = fit_dp(&e, data, rows);
            assert_rel(
                &format!("{name} tol={tol}, chunks of {rows}"),
                &coefficients(&got),
                &coefficients(&want),
                1e-4,
            );
            let (FittedModel::LogisticRegression(a), FittedModel::LogisticRegression(b)) =
                (last(&got), last(&want))
            else {
                unreachable!()
            };
            assert!(a.converged() && b.converged(), "{name} tol={tol}");
            // Sums in another order round differently: near a tight tolerance the
            // solver may take a few more or fewer steps.
            let (i, j) = (a.n_iter() as f64, b.n_iter() as f64);
            assert!(
                (i - j).abs() <= 0.1 * j,
                "{name} tol={tol}: {i} iterations against {j}"
            );
            assert!(passes > 10, "{passes}");
        }
    }
    // A binary problem (one weight row) without intercept.
    let ids: Vec<usize> = (0..digits.n_samples())
        .filter(|&i| digits.class_target().unwrap().0[i] < 2)
        .collect();
    let two = digits.select(&ids).unwrap();
    let mut e = Estimator::from_name("standard_scaler+logistic_regression").unwrap();
    e.set_param("fit_intercept", "false").unwrap();
    e.set_param("C", "0.1").unwrap();
    let want = e.fit(&two).unwrap();
    let (got, _) = fit_dp(&e, &two, 50);
    assert_rel("binary", &coefficients(&got), &coefficients(&want), 1e-4);
}

#[test]
fn closed_form_models_over_chunks_are_the_in_memory_ones() {
    let digits = data("digits");
    // Regression: the first 63 pixels predict the last one.
    let x = digits
        .x()
        .select_cols(&(0..63).collect::<Vec<_>>())
        .unwrap();
    let y: Vec<f32> = digits.x().data().chunks_exact(64).map(|r| r[63]).collect();
    let reg = Dataset::new(
        x,
        Target::Values(y),
        digits.feature_names()[..63].to_vec(),
        "pixel_7_7",
    )
    .unwrap();
    for name in [
        "linear_regression",
        "ridge",
        "standard_scaler+ridge",
        "standard_scaler+linear_regression",
    ] {
        for intercept in ["true", "false"] {
            let mut e = Estimator::from_name(name).unwrap();
            e.set_param("fit_intercept", intercept).unwrap();
            let want = e.fit(&reg).unwrap();
            let (got, passes) = fit_dp(&e, &reg, 211);
            assert_rel(
                &format!("{name} fit_intercept={intercept}"),
                &coefficients(&got),
                &coefficients(&want),
                1e-6,
            );
            assert_eq!(passes, 1 + u64::from(name.starts_with("standard")));
        }
    }
    for name in ["gaussian_nb", "standard_scaler+gaussian_nb"] {
        let e = Estimator::from_name(name).unwrap();
        let want = e.fit(&digits).unwrap();
        let (got, _) = fit_dp(&e, &digits, 300);
        let (FittedModel::GaussianNb(a), FittedModel::GaussianNb(b)) = (last(&got), last(&want))
        else {
            panic!("not naive Bayes")
        };
        assert_rel("theta", a.theta(), b.theta(), 1e-6);
        assert_rel("var", a.var(), b.var(), 1e-6);
        assert_rel("priors", a.class_prior(), b.class_prior(), 1e-12);
        // The same predictions.
        assert_eq!(
            got.predict(digits.x()).unwrap(),
            want.predict(digits.x()).unwrap()
        );
    }
}

#[test]
fn what_does_not_fit_data_parallel_is_refused_by_name() {
    let digits = data("digits");
    let schema = digits.select(&[]).unwrap();
    for (name, says) in [
        (
            "decision_tree",
            "decision_tree does not fit data-parallel yet",
        ),
        (
            "select_from_model+logistic_regression",
            "the step select_from_model",
        ),
        ("linear_regression", "needs a numeric target"),
    ] {
        let e = Estimator::from_name(name).unwrap();
        let err = DataParallelFit::new(&e, &schema, 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{name}: {err}");
    }
    let mut e = Estimator::from_name("logistic_regression").unwrap();
    e.set_param("penalty", "l1").unwrap();
    let err = DataParallelFit::new(&e, &schema, 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("penalty='l1'"), "{err}");
    // A chunk with a class the counts did not see is refused, not mis-encoded.
    let e = Estimator::from_name("logistic_regression").unwrap();
    let mut fit = DataParallelFit::new(&e, &schema, 10).unwrap();
    let Next::Pass(count) = fit.ask().unwrap() else {
        panic!()
    };
    let first_two: Vec<usize> = (0..digits.n_samples())
        .filter(|&i| digits.class_target().unwrap().0[i] < 2)
        .collect();
    fit.tell(compute(&count, digits.select(&first_two).unwrap()).unwrap())
        .unwrap();
    let Next::Pass(loss) = fit.ask().unwrap() else {
        panic!()
    };
    let err = compute(&loss, digits.clone()).unwrap_err().to_string();
    assert!(err.contains("absent from the class counts"), "{err}");
}

#[test]
fn a_checkpoint_too_large_whole_drops_the_curvature_pairs_and_still_converges() {
    let digits = data("digits");
    let mut e = Estimator::from_name("standard_scaler+logistic_regression").unwrap();
    e.set_param("tol", "1e-8").unwrap();
    e.set_param("max_iter", "1000").unwrap();
    let want = e.fit(&digits).unwrap();
    let schema = digits.select(&[]).unwrap();
    let mut fit = DataParallelFit::new(&e, &schema, digits.n_samples() as u64).unwrap();
    let one = |fit: &mut DataParallelFit| match fit.ask().unwrap() {
        Next::Pass(p) => fit.tell(compute(&p, digits.clone()).unwrap()).unwrap(),
        Next::Done(_) => panic!("done early"),
    };
    for _ in 0..30 {
        one(&mut fit);
    }
    let whole = fit.checkpoint(usize::MAX).unwrap();
    let lite = fit.checkpoint(whole.len() - 1).unwrap();
    assert!(
        lite.len() * 3 < whole.len(),
        "{} vs {}",
        lite.len(),
        whole.len()
    );
    assert!(fit.checkpoint(lite.len() - 1).is_none());
    let mut resumed: DataParallelFit = rmp_serde::from_slice(&lite).unwrap();
    assert_eq!(resumed.passes(), 30);
    let got = loop {
        match resumed.ask().unwrap() {
            Next::Pass(p) => resumed.tell(compute(&p, digits.clone()).unwrap()).unwrap(),
            Next::Done(m) => break m,
        }
    };
    assert_rel(
        "resumed without history",
        &coefficients(&got),
        &coefficients(&want),
        1e-4,
    );
}

/// The fitted steps of a pipeline.
fn steps(m: &FittedModel) -> &[FittedTransformer] {
    match m {
        FittedModel::Pipeline(p) => &p.steps,
        _ => panic!("not a pipeline"),
    }
}

#[test]
fn pca_and_kmeans_steps_over_chunks_are_the_in_memory_ones() {
    let digits = data("digits");
    // PCA (one pass of scatter sums), then logistic regression on the scaled components.
    let mut e = Estimator::from_name("pca+standard_scaler+logistic_regression").unwrap();
    e.set_param("n_components", "10").unwrap();
    e.set_param("tol", "1e-8").unwrap();
    e.set_param("max_iter", "1000").unwrap();
    let want = e.fit(&digits).unwrap();
    let (got, _) = fit_dp(&e, &digits, 250);
    let (FittedTransformer::Pca(a), FittedTransformer::Pca(b)) =
        (&steps(&got)[0], &steps(&want)[0])
    else {
        panic!("not pca")
    };
    assert_rel("components", a.components(), b.components(), 1e-6);
    assert_rel(
        "variance",
        a.explained_variance(),
        b.explained_variance(),
        1e-9,
    );
    assert_rel("lr on pca", &coefficients(&got), &coefficients(&want), 1e-4);

    // k-means (a sample pass, Lloyd passes, one for the inertia) from the same seed: the
    // same starts, so the same centres; then naive Bayes on the distances.
    let mut e = Estimator::from_name("standard_scaler+kmeans+gaussian_nb").unwrap();
    e.set_param("n_clusters", "10").unwrap();
    e.set_param("random_state", "7").unwrap();
    e.set_param("n_init", "3").unwrap();
    let want = e.fit(&digits).unwrap();
    for rows in [1797, 301, 64] {
        let (got, passes) = fit_dp(&e, &digits, rows);
        let (FittedTransformer::Kmeans(a), FittedTransformer::Kmeans(b)) =
            (&steps(&got)[1], &steps(&want)[1])
        else {
            panic!("not kmeans")
        };
        assert_rel("centres", a.cluster_centers(), b.cluster_centers(), 1e-9);
        assert_eq!(a.n_iter(), b.n_iter());
        assert_rel("inertia", &[a.inertia()], &[b.inertia()], 1e-9);
        // The scaler's pass, the sample, the longest run's Lloyd passes and its inertia
        // pass, naive Bayes.
        assert!(passes >= a.n_iter() as u64 + 4, "{passes}");
        assert_eq!(
            got.predict(digits.x()).unwrap(),
            want.predict(digits.x()).unwrap()
        );
    }
}

#[test]
fn kmeans_starts_from_a_sample_that_does_not_depend_on_the_chunks() {
    // 30,000 rows: more than the start's sample takes whole, so rows are sampled by the
    // hash of their values; the chunks see the same sample as one block does.
    let mut rng = meshml_models::rng::Rng::seed_from_u64(5);
    let (n, d) = (30_000, 3);
    let mut x = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i % 4) as f32 * 3.0;
        for _ in 0..d {
            x.push(c + rng.next_f64() as f32);
        }
        y.push(c);
    }
    let data = Dataset::new(
        meshml_models::Matrix::from_vec(n, d, x).unwrap(),
        Target::Values(y),
        vec!["a".into(), "b".into(), "c".into()],
        "y",
    )
    .unwrap();
    // Behind a scaler or PCA too: their statistics merged chunk by chunk may differ from one block's in
    // the last bits, so k-means' input does; the sample is drawn by the hash of the rows the
    // pipeline was given, not of what the scaler made of them.
    for (name, step) in [
        ("kmeans+ridge", 0),
        ("standard_scaler+kmeans+ridge", 1),
        ("pca+kmeans+ridge", 1),
    ] {
        let mut e = Estimator::from_name(name).unwrap();
        e.set_param("n_clusters", "6").unwrap();
        e.set_param("random_state", "2").unwrap();
        let want = e.fit(&data).unwrap();
        let (got, _) = fit_dp(&e, &data, 7_001);
        let (FittedTransformer::Kmeans(a), FittedTransformer::Kmeans(b)) =
            (&steps(&got)[step], &steps(&want)[step])
        else {
            panic!("not kmeans")
        };
        assert_rel(name, a.cluster_centers(), b.cluster_centers(), 1e-9);
        assert_rel("ridge", &coefficients(&got), &coefficients(&want), 1e-6);
    }
}

#[test]
fn kmeans_on_its_own_over_chunks_is_the_in_memory_clusterer() {
    let digits = data("digits");
    for name in ["kmeans", "standard_scaler+kmeans"] {
        let mut e = Estimator::from_name(name).unwrap();
        assert!(e.is_clusterer() && !e.is_regressor(), "{name}");
        e.set_param("n_clusters", "8").unwrap();
        e.set_param("random_state", "4").unwrap();
        let want = e.fit(&digits).unwrap();
        let (got, _) = fit_dp(&e, &digits, 400);
        let (FittedModel::Kmeans(a), FittedModel::Kmeans(b)) = (last(&got), last(&want)) else {
            panic!("{name}: not k-means on its own")
        };
        assert_rel(name, a.cluster_centers(), b.cluster_centers(), 1e-9);
        assert_eq!(a.n_iter(), b.n_iter(), "{name}");
        // Its classes are the clusters; its score is minus the inertia (the target unread).
        assert_eq!(got.n_classes(), 8);
        assert_eq!(
            got.predict(digits.x()).unwrap(),
            want.predict(digits.x()).unwrap()
        );
        let inertia = want.inertia(digits.x()).unwrap();
        assert_rel("inertia", &[inertia], &[b.inertia()], 1e-9);
        assert_eq!(want.evaluate(&digits).unwrap(), -inertia);
        assert!(want.predict_proba(digits.x()).is_err());
        let art = meshml_models::ModelArtifact::new(
            e.clone(),
            want.clone(),
            &digits,
            meshml_models::artifact::Provenance::default(),
        )
        .unwrap();
        assert_eq!(
            art.classes.labels(),
            ["0", "1", "2", "3", "4", "5", "6", "7"]
        );
    }
}

#[test]
fn a_kmeans_search_over_chunks_scores_minus_the_inertia_and_refuses_other_sums() {
    use meshml_models::metrics::TestSums;
    use meshml_models::parallel::{DataParallelJob, JobNext, PassOp};
    use meshml_models::plan::{JobKind, JobSpec};
    let iris = data("iris");
    let spec = JobSpec {
        kind: JobKind::GridSearch {
            estimator: Estimator::from_name("kmeans").unwrap(),
            grid: vec![("n_clusters".into(), vec!["2".into(), "6".into()])],
            cv: 3,
            refit: true,
        },
        seed: 2,
    };
    let idx: Vec<usize> = (0..150).collect();
    let chunks: Vec<Dataset> = idx.chunks(40).map(|c| iris.select(c).unwrap()).collect();
    let is_scoring = |pass: &meshml_models::parallel::Pass| matches!(&pass.op, PassOp::Multi(p) if p.iter().all(|p| matches!(p.op, PassOp::Score { .. })));
    // Each fold's score is minus its held-out rows' inertia: more clusters score higher.
    let mut job = DataParallelJob::new(&spec, &iris.select(&[]).unwrap(), 150).unwrap();
    let (model, cv) = loop {
        match job.ask().unwrap() {
            JobNext::Done { model, cv } => break (model.unwrap(), cv.unwrap()),
            JobNext::Pass(pass) => job.tell(compute_all(&pass, &chunks).unwrap()).unwrap(),
        }
    };
    assert!(cv.split_scores.iter().flatten().all(|&s| s < 0.0), "{cv:?}");
    assert!(cv.mean_test_score[0] < cv.mean_test_score[1], "{cv:?}");
    assert!(model.is_clusterer() && model.n_classes() == 6);
    // A scoring answer of another kind, or a negative inertia, fails the job.
    for bad in [
        TestSums::Inertia(-1.0),
        TestSums::Classes(vec![vec![1; 3]; 3]),
    ] {
        let mut job = DataParallelJob::new(&spec, &iris.select(&[]).unwrap(), 150).unwrap();
        let err = loop {
            let JobNext::Pass(pass) = job.ask().unwrap() else {
                panic!("done without scoring")
            };
            let mut part = compute_all(&pass, &chunks).unwrap();
            if is_scoring(&pass) {
                let Partial::Multi(parts) = &mut part else {
                    panic!("not a shared pass")
                };
                parts[0] = Partial::Score(Some(bad.clone()));
                break job.tell(part).unwrap_err();
            }
            job.tell(part).unwrap();
        };
        assert!(err.to_string().contains("another pass"), "{err}");
    }
}

#[test]
fn sgd_epochs_over_chunks_average_the_chunks_models() {
    use meshml_models::preprocessing::StandardScalerParams;
    use meshml_models::Transformer;
    let digits = data("digits");
    let train: Vec<usize> = (0..digits.n_samples()).filter(|i| i % 5 != 0).collect();
    let test: Vec<usize> = (0..digits.n_samples()).filter(|i| i % 5 == 0).collect();
    let (train, test) = (
        digits.select(&train).unwrap(),
        digits.select(&test).unwrap(),
    );
    let s = StandardScalerParams::default()
        .fit_matrix(train.x())
        .unwrap();
    let scale = |d: &Dataset| {
        d.with_x(s.transform(d.x()).unwrap(), d.feature_names().to_vec())
            .unwrap()
    };
    let (train, test) = (scale(&train), scale(&test));
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../reference/sklearn_sgd.json")).unwrap();
    for (i, loss) in ["hinge", "log_loss", "modified_huber"].iter().enumerate() {
        let r = &reference["classifier_digits"][i];
        assert_eq!(r["params"]["loss"], *loss);
        let mut e = Estimator::from_name("sgd_classifier").unwrap();
        e.set_param("loss", loss).unwrap();
        e.set_param("random_state", "3").unwrap();
        e.set_param("max_iter", "100").unwrap();
        // All rows as one chunk: the in-memory fit, number for number.
        let want = e.fit(&train).unwrap();
        let (one, passes) = fit_dp(&e, &train, train.n_samples());
        assert_eq!(one, want, "{loss}");
        let FittedModel::Sgd(m) = &want else {
            panic!("not sgd")
        };
        // The class counts, then one pass per epoch.
        assert_eq!(passes, 1 + m.n_iter() as u64);
        // Four chunks: each epoch averages four models; the accuracy stays within
        // scikit-learn's range over seeds (widened by two test rows in 360).
        let (lo, hi) = (
            r["score_min"].as_f64().unwrap(),
            r["score_max"].as_f64().unwrap(),
        );
        let (four, _) = fit_dp(&e, &train, 360);
        let acc = four.evaluate(&test).unwrap();
        assert!(
            acc >= lo - 2.0 / 360.0 && acc <= hi + 2.0 / 360.0,
            "{loss}: {acc} against {lo}..{hi}"
        );
    }
    // A regressor: digits' pixels predicting the digit.
    let values = |d: &Dataset| {
        let (ids, _) = d.class_target().unwrap();
        Dataset::new(
            d.x().clone(),
            Target::Values(ids.iter().map(|&c| c as f32).collect()),
            d.feature_names().to_vec(),
            "digit",
        )
        .unwrap()
    };
    let (train, test) = (values(&train), values(&test));
    let mut e = Estimator::from_name("sgd_regressor").unwrap();
    e.set_param("random_state", "0").unwrap();
    let want = e.fit(&train).unwrap();
    assert_eq!(fit_dp(&e, &train, train.n_samples()).0, want);
    let (a, b) = (
        want.evaluate(&test).unwrap(),
        fit_dp(&e, &train, 250).0.evaluate(&test).unwrap(),
    );
    assert!((a - b).abs() < 0.02, "R2 {a} in memory, {b} over chunks");
}

#[test]
fn a_partial_results_size_is_bounded_through_the_steps() {
    // nassCDS: numeric and categorical columns.
    let nass = super::tables_parity::nass();
    let schema = nass.select(&[]).unwrap();
    let kinds = schema.kinds();
    let cats: usize = kinds
        .iter()
        .filter_map(|k| k.categories().map(|c| c.len()))
        .sum();
    let d = nass.n_features();
    let k = nass.classes().unwrap().len();
    let size = |name: &str| {
        let e = Estimator::from_name(name).unwrap();
        DataParallelFit::new(&e, &schema, nass.n_samples() as u64)
            .unwrap()
            .largest_partial_bytes()
    };
    // One-hot widens the model's input: at least a weight per class and category.
    let wide = size("simple_imputer+one_hot_encoder+logistic_regression");
    let narrow = size("simple_imputer+ordinal_encoder+logistic_regression");
    let k = if k == 2 { 1 } else { k };
    assert!(wide >= 8 * k * (d + cats), "{wide}");
    assert!(wide > narrow, "{wide} against {narrow}");
    // Least squares after one-hot: the normal equations of the widened input.
    let mut e = Estimator::from_name("simple_imputer+one_hot_encoder+ridge").unwrap();
    e.set_param("one_hot_encoder__handle_unknown", "ignore")
        .unwrap();
    let values = Dataset::new(
        schema.x().clone(),
        Target::Values(Vec::new()),
        schema.feature_names().to_vec(),
        "v",
    )
    .unwrap()
    .with_kinds(kinds.clone())
    .unwrap();
    let ridge = DataParallelFit::new(&e, &values, nass.n_samples() as u64)
        .unwrap()
        .largest_partial_bytes();
    assert!(ridge >= 8 * (d + cats) * (d + cats), "{ridge}");
}

#[test]
fn imputer_and_encoder_steps_over_chunks_are_the_in_memory_ones() {
    // nassCDS: text columns with missing cells, and numeric ones with missing cells.
    let nass = super::tables_parity::nass();
    for name in [
        "simple_imputer+one_hot_encoder+standard_scaler+logistic_regression",
        "simple_imputer+ordinal_encoder+gaussian_nb",
    ] {
        let mut e = Estimator::from_name(name).unwrap();
        if name.contains("logistic") {
            e.set_param("max_iter", "1000").unwrap();
            e.set_param("tol", "1e-8").unwrap();
            e.set_param("one_hot_encoder__handle_unknown", "ignore")
                .unwrap();
        }
        let want = e.fit(nass).unwrap();
        let (got, passes) = fit_dp(&e, nass, 5_000);
        // The imputer's means come from sums merged over chunks (another order of f64
        // additions); the encoders' categories and counts are the same.
        let (a, b) = (steps(&got), steps(&want));
        // (Debug text: an ordinal encoder's NaN code for missing cells is not == itself.)
        assert_eq!(
            format!("{:?}", a[1]),
            format!("{:?}", b[1]),
            "{name}: the encoder"
        );
        let FittedTransformer::SimpleImputer(ia) = &a[0] else {
            panic!("not an imputer")
        };
        let FittedTransformer::SimpleImputer(ib) = &b[0] else {
            panic!("not an imputer")
        };
        assert_eq!(ia.statistics(), ib.statistics(), "{name}: the imputer");
        if name.contains("logistic") {
            assert_rel(name, &coefficients(&got), &coefficients(&want), 1e-4);
        } else {
            let (FittedModel::GaussianNb(x), FittedModel::GaussianNb(y)) =
                (last(&got), last(&want))
            else {
                panic!("not naive Bayes")
            };
            assert_rel("theta", x.theta(), y.theta(), 1e-6);
            assert_rel("var", x.var(), y.var(), 1e-6);
        }
        assert_eq!(
            got.predict(nass.x()).unwrap(),
            want.predict(nass.x()).unwrap(),
            "{name}"
        );
        assert!(passes >= 3, "{passes}");
    }
    // What is not a sum is refused at once, saying so.
    let mut e = Estimator::from_name("simple_imputer+one_hot_encoder+logistic_regression").unwrap();
    e.set_param("strategy", "median").unwrap();
    let err = DataParallelFit::new(&e, &nass.select(&[]).unwrap(), 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("strategy='median'"), "{err}");
    e.set_param("strategy", "most_frequent").unwrap();
    let err = DataParallelFit::new(&e, &nass.select(&[]).unwrap(), 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs every value, not sums"), "{err}");
}

#[test]
fn a_grid_search_over_chunks_shares_each_pass_among_its_fits() {
    use meshml_models::parallel::{DataParallelSearch, RowFilter, SearchNext};
    let digits = data("digits");
    let mut e = Estimator::from_name("standard_scaler+logistic_regression").unwrap();
    // Converged tightly, so that the refit equals the in-memory fit (as above).
    e.set_param("max_iter", "1000").unwrap();
    e.set_param("tol", "1e-8").unwrap();
    let values = ["0.01", "0.1", "1", "10"];
    let (folds, seed) = (3u32, 11u64);
    let schema = digits.select(&[]).unwrap();
    let n = digits.n_samples();
    let params = values
        .iter()
        .map(|v| vec![("C".to_string(), v.to_string())])
        .collect();
    let mut search =
        DataParallelSearch::new(&e, params, folds, true, seed, &schema, n as u64).unwrap();
    let idx: Vec<usize> = (0..n).collect();
    let chunks: Vec<Dataset> = idx.chunks(300).map(|c| digits.select(c).unwrap()).collect();
    let (model, cv) = loop {
        // A checkpoint and a resume between every two passes.
        let bytes = rmp_serde::to_vec_named(&search).unwrap();
        search = rmp_serde::from_slice(&bytes).unwrap();
        match search.ask().unwrap() {
            SearchNext::Done { model, cv } => break (model.unwrap(), cv),
            SearchNext::Pass(pass) => {
                search.tell(compute_all(&pass, &chunks).unwrap()).unwrap();
            }
        }
    };
    // Each fold's fits are the in-memory fits on its training rows, scored on its rows.
    let fold: Vec<u32> = digits
        .x()
        .data()
        .chunks_exact(64)
        .map(|r| RowFilter::fold_of(r, seed, folds))
        .collect();
    for (c, value) in ["0.01", "0.1", "1", "10"].iter().enumerate() {
        let mut cand = e.clone();
        cand.set_param("C", value).unwrap();
        for k in 0..folds {
            let (train, test): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| fold[i] != k);
            let m = cand.fit(&digits.select(&train).unwrap()).unwrap();
            let want = m.evaluate(&digits.select(&test).unwrap()).unwrap();
            let got = cv.split_scores[c][k as usize];
            assert!(
                (got - want).abs() <= 1.0 / test.len() as f64,
                "C={value} fold {k}: {got} against {want}"
            );
        }
    }
    let mut best = e.clone();
    best.set_param("C", &cv.best_params()[0].1).unwrap();
    let want = best.fit(&digits).unwrap();
    assert_rel("refit", &coefficients(&model), &coefficients(&want), 1e-4);
    // Shared passes: the fold counts, the slowest fit's passes, one scoring pass, the
    // refit's. Separate fits would each read the data for every pass of their own.
    let fits: u64 = search.fit_passes().iter().sum();
    let slowest = *search.fit_passes().iter().max().unwrap();
    let refit = search.passes() - 1 - slowest - 1;
    let separate = fits + search.fit_passes().len() as u64 + refit;
    assert_eq!(search.passes(), 1 + slowest + 1 + refit);
    assert!(
        search.passes() * 4 < separate,
        "{} shared passes against {separate} for separate fits",
        search.passes()
    );
}

#[test]
fn a_random_search_over_chunks_draws_the_in_memory_searchs_candidates() {
    use meshml_models::parallel::{DataParallelJob, JobNext};
    use meshml_models::plan::{Distribution, JobKind, JobSpec};
    let iris = data("iris");
    let spec = JobSpec {
        kind: JobKind::RandomSearch {
            estimator: Estimator::from_name("gaussian_nb").unwrap(),
            space: vec![(
                "var_smoothing".into(),
                Distribution::LogUniform {
                    low: 1e-9,
                    high: 1e-1,
                },
            )],
            n_iter: 4,
            cv: 3,
            refit: false,
        },
        // The seed common::run gives the in-memory search.
        seed: 0,
    };
    let mut job = DataParallelJob::new(&spec, &iris.select(&[]).unwrap(), 150).unwrap();
    let idx: Vec<usize> = (0..150).collect();
    let chunks: Vec<Dataset> = idx.chunks(40).map(|c| iris.select(c).unwrap()).collect();
    let (model, cv) = loop {
        match job.ask().unwrap() {
            JobNext::Done { model, cv } => break (model, cv.unwrap()),
            JobNext::Pass(pass) => {
                job.tell(compute_all(&pass, &chunks).unwrap()).unwrap();
            }
        }
    };
    // The same draws as the in-memory search's (the folds differ: rows hashed here).
    let here = super::common::run(spec.kind.clone(), &iris);
    assert_eq!(cv.params, here.cv.unwrap().params);
    assert!(model.is_none(), "refit=false registers no model");
    // Naive Bayes takes one pass per fit: counts, the fits' one shared pass, the scores.
    assert_eq!(job.passes(), 3);
    assert!(
        cv.mean_test_score.iter().all(|s| (0.5..=1.0).contains(s)),
        "{cv:?}"
    );
}

#[test]
fn malformed_partial_results_are_refused_with_an_error() {
    use meshml_models::parallel::PassOp;
    // Partial results come from other nodes: a wrong shape is an error, never a panic.
    let iris = data("iris");
    let schema = iris.select(&[]).unwrap();
    let run_until = |e: &Estimator, stop: &dyn Fn(&PassOp) -> bool| {
        let mut fit = DataParallelFit::new(e, &schema, 150).unwrap();
        loop {
            let Next::Pass(p) = fit.ask().unwrap() else {
                panic!("done before the pass")
            };
            if stop(&p.op) {
                return (fit, p);
            }
            fit.tell(compute(&p, iris.clone()).unwrap()).unwrap();
        }
    };
    // k-means: a far row labelled with a cluster that does not exist.
    let mut e = Estimator::from_name("kmeans+gaussian_nb").unwrap();
    e.set_param("n_clusters", "3").unwrap();
    let (mut fit, p) = run_until(&e, &|op| matches!(op, PassOp::Lloyd { .. }));
    let Partial::Lloyd(mut parts) = compute(&p, iris.clone()).unwrap() else {
        panic!("not lloyd")
    };
    parts[0].far[0].label = 1_000_000;
    assert!(fit.tell(Partial::Lloyd(parts)).is_err());
    // The imputer: statistics of other columns.
    let e = Estimator::from_name("simple_imputer+gaussian_nb").unwrap();
    let (mut fit, p) = run_until(&e, &|op| matches!(op, PassOp::ColumnStats { .. }));
    let Partial::ColumnStats(mut c) = compute(&p, iris.clone()).unwrap() else {
        panic!("not column stats")
    };
    c.sum.pop();
    assert!(fit.tell(Partial::ColumnStats(c)).is_err());
    // SGD: an epoch's intercepts missing.
    let e = Estimator::from_name("sgd_classifier").unwrap();
    let (mut fit, p) = run_until(&e, &|op| matches!(op, PassOp::SgdEpoch(_)));
    let Partial::Sgd(mut s) = compute(&p, iris.clone()).unwrap() else {
        panic!("not sgd")
    };
    s.model.b.clear();
    assert!(fit.tell(Partial::Sgd(s)).is_err());
    // A pass naming far too many folds is refused before anything is allocated.
    let huge = meshml_models::parallel::Pass {
        prep: Vec::new(),
        model: None,
        op: PassOp::FoldCounts {
            folds: u32::MAX,
            seed: 0,
        },
        rows: None,
    };
    assert!(compute(&huge, iris.clone()).is_err());
    // A search's shared pass checks its rows when any of its fits does.
    let inner = meshml_models::parallel::Pass {
        model: Some("gaussian_nb".into()),
        ..huge.clone()
    };
    let multi = meshml_models::parallel::Pass {
        op: PassOp::Multi(vec![huge.clone(), inner]),
        ..huge.clone()
    };
    assert!(multi.checks_input() && !huge.checks_input());
}

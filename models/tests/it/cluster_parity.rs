//! PCA and k-means against scikit-learn's numbers for the same data and parameters:
//! `tests/reference/sklearn_cluster.json`, from `tools/sklearn_cluster_reference.py`.

use std::sync::OnceLock;

use meshml_models::cluster::{KMeansInit, KMeansParams};
use meshml_models::decomposition::{NComponents, PcaParams};
use meshml_models::{Fit, Params, Transformer};
use serde_json::Value;

use super::common::{assert_close, data, flat};

fn reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        serde_json::from_str(include_str!("../reference/sklearn_cluster.json"))
            .expect("reference JSON")
    })
}

/// The largest magnitude of `v`, so tolerances are relative to the numbers' size.
fn scale(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

#[test]
fn pca_matches_scikit_learn_with_its_signs() {
    let (iris, digits) = (data("iris"), data("digits"));
    for (key, data, n_components, whiten) in [
        ("pca_iris", &iris, None, false),
        (
            "pca_iris_2_whiten",
            &iris,
            Some(NComponents::Count(2)),
            true,
        ),
        (
            "pca_iris_095",
            &iris,
            Some(NComponents::Fraction(0.95)),
            false,
        ),
        (
            "pca_digits_10",
            &digits,
            Some(NComponents::Count(10)),
            false,
        ),
    ] {
        let p = PcaParams {
            n_components,
            whiten,
        }
        .fit(data)
        .unwrap();
        // The solver meshml runs, and the full SVD: the same numbers.
        for solver in ["covariance_eigh", "full"] {
            let r = &reference()[key][solver];
            let what = |s: &str| format!("{key} {solver} {s}");
            assert_eq!(
                p.n_components() as u64,
                r["n_components"].as_u64().unwrap(),
                "{key}"
            );
            let comps = flat(&r["components"]);
            assert_close(&what("components"), p.components(), &comps, 1e-4);
            let var = flat(&r["explained_variance"]);
            assert_close(
                &what("variance"),
                p.explained_variance(),
                &var,
                1e-5 * scale(&var),
            );
            let ratio = flat(&r["explained_variance_ratio"]);
            assert_close(&what("ratio"), p.explained_variance_ratio(), &ratio, 1e-6);
            let noise = r["noise_variance"].as_f64().unwrap();
            assert!(
                (p.noise_variance() - noise).abs() <= 1e-5 * scale(&var),
                "{key}: noise variance {} against {noise}",
                p.noise_variance()
            );
            let head: Vec<usize> = (0..5).collect();
            let t = p.transform(&data.x().select_rows(&head).unwrap()).unwrap();
            let want = flat(&r["transform_head"]);
            let got: Vec<f64> = t.to_vec().iter().map(|&v| f64::from(v)).collect();
            assert_close(
                &what("transform"),
                &got,
                &want,
                1e-4 * scale(&want).max(1.0),
            );
        }
    }
}

#[test]
fn kmeans_from_given_centres_takes_scikit_learns_lloyd_steps() {
    let (iris, digits) = (data("iris"), data("digits"));
    for (key, data) in [("kmeans_iris", &iris), ("kmeans_digits", &digits)] {
        let r = &reference()[key];
        let rows: Vec<usize> = r["init_rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let init = rows
            .iter()
            .map(|&i| data.x().row(i).iter().map(|&v| f64::from(v)).collect())
            .collect();
        let m = KMeansParams {
            n_clusters: rows.len(),
            init: KMeansInit::Array(init),
            ..KMeansParams::default()
        }
        .fit(data)
        .unwrap();
        let centres = flat(&r["centers"]);
        assert_close(key, m.cluster_centers(), &centres, 1e-5 * scale(&centres));
        let inertia = r["inertia"].as_f64().unwrap();
        assert!(
            (m.inertia() - inertia).abs() <= 1e-6 * inertia,
            "{key}: inertia {} against {inertia}",
            m.inertia()
        );
        assert_eq!(m.n_iter() as u64, r["n_iter"].as_u64().unwrap(), "{key}");
        let labels: Vec<f64> = m
            .predict(data.x())
            .unwrap()
            .iter()
            .map(|&l| f64::from(l))
            .collect();
        assert_eq!(labels, flat(&r["labels"]), "{key} labels");
        let head: Vec<usize> = (0..5).collect();
        let t = m.transform(&data.x().select_rows(&head).unwrap()).unwrap();
        let got: Vec<f64> = t.to_vec().iter().map(|&v| f64::from(v)).collect();
        let want = flat(&r["transform_head"]);
        assert_close(key, &got, &want, 1e-4 * scale(&want));
        // scikit-learn's score is minus the inertia.
        assert!((m.score(data.x()).unwrap() + inertia).abs() <= 1e-6 * inertia);
    }
}

#[test]
fn kmeans_plus_plus_lands_in_scikit_learns_range_over_seeds() {
    let (iris, digits) = (data("iris"), data("digits"));
    for (key, data) in [
        ("kmeans_pp_iris_3", &iris),
        ("kmeans_pp_digits_10", &digits),
    ] {
        let r = &reference()[key];
        let (lo, hi) = (r["min"].as_f64().unwrap(), r["max"].as_f64().unwrap());
        let mut ours = Vec::new();
        for seed in 0..5 {
            let mut p = KMeansParams::default();
            p.set_param("n_clusters", &r["k"].to_string()).unwrap();
            p.set_param("random_state", &seed.to_string()).unwrap();
            ours.push(p.fit(data).unwrap().inertia());
        }
        ours.sort_by(f64::total_cmp);
        let median = ours[2];
        // scikit-learn's 20 seeds span [lo, hi]; ours land among them (a bad start can
        // happen to both: the median is the test), within the 1e-6 that one optimum's
        // inertia differs by (float32 rows against scikit-learn's float64, as above).
        assert!(
            median >= lo * (1.0 - 1e-6) && median <= hi * (1.0 + 1e-6),
            "{key}: our inertias {ours:?}, scikit-learn's from {lo} to {hi}"
        );
    }
    // Random starts: n_init="auto" runs 10 and keeps the best.
    let mut p = KMeansParams::default();
    p.set_param("init", "random").unwrap();
    p.set_param("n_clusters", "3").unwrap();
    p.set_param("random_state", "1").unwrap();
    assert_eq!(p.runs(), 10);
    let r = &reference()["kmeans_pp_iris_3"];
    let best = p.fit(&iris).unwrap().inertia();
    assert!(best <= r["max"].as_f64().unwrap() * (1.0 + 1e-9), "{best}");
}

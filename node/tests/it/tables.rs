//! A real table with text columns and missing cells (nassCDS) on a three-node mesh of
//! `meshml node` processes on 127.0.0.1: stored with two copies, its schema shown, a grid
//! search over `C` of an imputer + one-hot + scaler + logistic-regression pipeline, batch
//! prediction, and a served prediction with a text feature and a null, each equal to the
//! local executor on the same table.

use std::io::Read;

use crate::common::{call, finished_job, meshml, submit_job, three_node_cluster};
use meshml_models::io::{read_csv, CsvOptions};
use meshml_models::plan::{run_job, JobKind, JobSpec, LocalExecutor};
use meshml_models::schema::ColumnKind;
use meshml_models::{Classifier, Estimator, Matrix};
use serde_json::json;

/// nassCDS (data/tables/nassCDS.csv.gz) as CSV text.
fn nass_csv() -> Vec<u8> {
    let path = format!(
        "{}/../data/tables/nassCDS.csv.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    text
}

fn pipeline() -> Estimator {
    let mut e =
        Estimator::from_name("simple_imputer+one_hot_encoder+standard_scaler+logistic_regression")
            .unwrap();
    e.set_param("simple_imputer__strategy", "median").unwrap();
    e.set_param("one_hot_encoder__handle_unknown", "ignore")
        .unwrap();
    e.set_param("logistic_regression__max_iter", "300").unwrap();
    e
}

#[test]
fn a_mixed_table_is_searched_batch_predicted_and_served_like_the_local_executor() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _, _) = three_node_cluster(tmp.path(), &["--slots", "1"]);
    let csv = nass_csv();
    let (code, stored) = call(
        &nodes[0],
        "POST",
        "/v1/datasets?name=nass&replicas=2&chunk_rows=5000&source=nassCDS.csv",
        Some(("text/csv", &csv)),
    );
    assert_eq!(code, 201, "{stored}");
    assert_eq!(stored["rows"], 26217);
    assert_eq!(stored["chunks"], 6);

    // The schema, through another node.
    let (_, detail) = call(&nodes[1], "GET", "/v1/datasets/nass", None);
    let columns = detail["columns"].as_array().unwrap();
    let col = |name: &str| columns.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(col("dvcat")["type"], "categorical");
    assert_eq!(col("dvcat")["categories"], 5);
    assert_eq!(col("dvcat")["top"][0], json!(["10-24", 12848]));
    assert_eq!(col("injSeverity")["type"], "numeric");
    assert_eq!(col("injSeverity")["missing"], 153);
    let (ok, shown, err) = meshml(&["dataset", "show", "nass", "--node", &nodes[2].http_url()]);
    assert!(ok, "{err}");
    assert!(
        shown.contains(
            "airbag       categorical        0           2  airbag (14419), none (11798)"
        ),
        "{shown}"
    );

    // A grid search over C: the same fold scores and best candidate as here.
    let local_data = read_csv(csv.as_slice(), "nassCDS.csv", &CsvOptions::default()).unwrap();
    let spec = JobSpec {
        kind: JobKind::GridSearch {
            estimator: pipeline(),
            grid: vec![(
                "logistic_regression__C".into(),
                vec!["0.01".into(), "1".into()],
            )],
            cv: 3,
            refit: true,
        },
        seed: 3,
    };
    let id = submit_job(
        &nodes[1],
        &json!({ "dataset": "nass", "job": spec, "name": "nass-lr" }),
    );
    let mesh = finished_job(&nodes[1], &id);
    let here = run_job(&spec, &local_data, &LocalExecutor::new(2), &|_| {}).unwrap();
    let cv = here.cv.as_ref().unwrap();
    let theirs: Vec<f64> =
        serde_json::from_value(mesh["result"]["cv"]["mean_test_score"].clone()).unwrap();
    assert_eq!(theirs, cv.mean_test_score);
    assert_eq!(
        mesh["result"]["cv"]["best_index"].as_u64().unwrap() as usize,
        cv.best_index
    );
    let model = here.model.unwrap();
    let (_, classes) = local_data.class_target().unwrap();

    // Batch prediction of the stored table: every row as the local model predicts it.
    let out = tmp.path().join("preds.csv");
    let (ok, _, err) = meshml(&[
        "predict",
        "--node",
        &nodes[2].http_url(),
        "--model",
        "nass-lr",
        "--dataset",
        "nass",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let want: Vec<&str> = model
        .predict(local_data.x())
        .unwrap()
        .into_iter()
        .map(|c| classes.label(c))
        .collect();
    let text = std::fs::read_to_string(&out).unwrap();
    let got: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(got, want);

    // Served: one instance by name with text cells and a null (a missing injSeverity), one
    // by position with a category the model never saw.
    let named = json!({
        "dvcat": "25-39", "weight": 25.069, "airbag": "none", "seatbelt": "belted",
        "frontal": 1, "sex": "f", "ageOFocc": 26, "yearacc": 1997, "yearVeh": 1990,
        "abcat": "unavail", "occRole": "driver", "deploy": 0, "injSeverity": null
    });
    let row =
        json!(["99+", 25.069, "none", "belted", 1, "f", 26, 1997, 1990, "unavail", "driver", 0, 3]);
    let (code, r) = call(
        &nodes[0],
        "POST",
        "/v1/models/nass-lr/predict",
        Some((
            "application/json",
            json!({ "instances": [named, row], "probabilities": true })
                .to_string()
                .as_bytes(),
        )),
    );
    assert_eq!(code, 200, "{r}");
    // The same rows encoded here: categories as codes (an unseen one unknown), null NaN.
    let code_of = |j: usize, v: &str| -> f32 {
        match local_data.kind(j) {
            ColumnKind::Categorical { categories } => categories
                .id_of(v)
                .map_or(meshml_models::schema::UNKNOWN_CODE, |c| c as f32),
            other => panic!("{other:?}"),
        }
    };
    let x = Matrix::from_vec(
        2,
        13,
        vec![
            code_of(0, "25-39"),
            25.069,
            code_of(2, "none"),
            code_of(3, "belted"),
            1.0,
            code_of(5, "f"),
            26.0,
            1997.0,
            1990.0,
            code_of(9, "unavail"),
            code_of(10, "driver"),
            0.0,
            f32::NAN, //
            code_of(0, "99+"),
            25.069,
            code_of(2, "none"),
            code_of(3, "belted"),
            1.0,
            code_of(5, "f"),
            26.0,
            1997.0,
            1990.0,
            code_of(9, "unavail"),
            code_of(10, "driver"),
            0.0,
            3.0,
        ],
    )
    .unwrap();
    let p = model.predict_proba(&x).unwrap();
    let served: Vec<Vec<f32>> = serde_json::from_value(r["probabilities"].clone()).unwrap();
    for i in 0..2 {
        for (k, q) in served[i].iter().enumerate() {
            assert!(
                (q - p.row(i)[k]).abs() < 1e-6,
                "instance {i}: {served:?} vs {p:?}"
            );
        }
    }
}

//! Times a meshml job side by side with ../shared/bench's peers: prints one JSON line in
//! the harness's format (`bench`, `tool`, `variant`, `dataset`, `fit_s`, `accuracy`).
//!
//! ```text
//! cargo run --release -p meshml-node --example job_bench -- BENCH DATASET MODE
//!   BENCH    gridsearch_lr | ovr_lr | random_forest
//!   DATASET  digits | synth200k          (PEERS_DATA/{DATASET}_train.csv and _test.csv)
//!   MODE     mesh:NODES:SLOTS            (in-process nodes on 127.0.0.1)
//!          | local:THREADS               (the same plan on the local executor)
//! ```
//!
//! `fit_s` is from submission to the job's end (mesh) or the run (local); data loading and
//! cluster start-up are reported apart (`load_s`, `startup_s`), as the peers do.

// A benchmark prints its record.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::plan::{run_job, JobKind, JobSpec, LocalExecutor};
use meshml_models::{Classifier, Estimator};
use meshml_node::demo::{node_config, wait_for_cluster};
use meshml_node::fit::{follow, put_dataset, NodeApi};
use meshml_node::job::JobRequest;

fn job(bench: &str) -> JobSpec {
    let mut lr = Estimator::from_name("logistic_regression").unwrap();
    lr.set_param("max_iter", "1000").unwrap();
    let kind = match bench {
        "gridsearch_lr" => JobKind::GridSearch {
            estimator: lr,
            grid: vec![(
                "C".into(),
                ["0.01", "0.1", "1", "10"].map(String::from).to_vec(),
            )],
            cv: 5,
            refit: true,
        },
        "ovr_lr" => JobKind::OneVsRest { estimator: lr },
        "random_forest" => {
            let mut rf = Estimator::from_name("random_forest").unwrap();
            rf.set_param("n_estimators", "100").unwrap();
            JobKind::Fit { estimator: rf }
        }
        other => panic!("unknown bench {other}"),
    };
    JobSpec { kind, seed: 0 }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bench, dataset, mode] = <[String; 3]>::try_from(args).expect("BENCH DATASET MODE");
    let dir = std::env::var("PEERS_DATA").unwrap_or_else(|_| "/tmp/peers/data".into());
    let train = format!("{dir}/{dataset}_train.csv");
    let test = format!("{dir}/{dataset}_test.csv");
    let spec = job(&bench);
    let mut rec = serde_json::json!({
        "bench": bench, "tool": "meshml", "dataset": dataset,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let parts: Vec<&str> = mode.split(':').collect();
    match parts.as_slice() {
        ["local", threads] => {
            let threads: usize = threads.parse().unwrap();
            rec["variant"] = format!("local executor, {threads} threads").into();
            let t = Instant::now();
            let tr = load_csv(&train, &CsvOptions::default()).unwrap();
            let te = load_csv(&test, &CsvOptions::default()).unwrap();
            rec["load_s"] = t.elapsed().as_secs_f64().into();
            let t = Instant::now();
            let r = run_job(&spec, &tr, &LocalExecutor::new(threads), &|_| {}).unwrap();
            rec["fit_s"] = t.elapsed().as_secs_f64().into();
            let m = r.model.unwrap();
            rec["accuracy"] = m
                .score(te.x(), te.class_target().unwrap().0)
                .unwrap()
                .into();
            if let Some(cv) = r.cv {
                rec["best_params"] = serde_json::json!(cv.best_params());
                rec["best_cv_accuracy"] = cv.best_score().into();
            }
        }
        ["mesh", nodes, slots] => {
            let (n, slots): (usize, usize) = (nodes.parse().unwrap(), slots.parse().unwrap());
            rec["variant"] = format!("mesh, {n} in-process nodes x {slots} slots").into();
            let tmp = tempfile::tempdir().unwrap();
            let t = Instant::now();
            let mut handles = Vec::new();
            for i in 0..n {
                let boot = handles
                    .first()
                    .and_then(|h: &meshml_node::node::NodeHandle| h.info().listen.first().cloned());
                let a = node_config(&tmp.path().join(format!("n{i}")), n, boot.as_deref(), slots);
                handles.push(meshml_node::node::spawn(a).unwrap());
            }
            let api = NodeApi {
                node: format!("http://{}", handles[0].info().http[0]),
                token_file: None,
            };
            wait_for_cluster(&api, n).unwrap();
            rec["startup_s"] = t.elapsed().as_secs_f64().into();
            let t = Instant::now();
            let mut sink = std::io::sink();
            for (file, name) in [(&train, "train"), (&test, "test")] {
                put_dataset(
                    &api,
                    std::path::Path::new(file),
                    &format!("name={name}&replicas={n}&chunk_rows=20000"),
                    &mut sink,
                )
                .unwrap();
            }
            rec["load_s"] = t.elapsed().as_secs_f64().into();
            let req = JobRequest {
                dataset: "train".into(),
                job: spec,
                name: Some("bench".into()),
                test_dataset: Some("test".into()),
                data_parallel: None,
                mode: None,
            };
            let t = Instant::now();
            let id = meshml_node::fit::submit(&api, &req).unwrap();
            let v = follow(&api, &id).unwrap();
            rec["fit_s"] = t.elapsed().as_secs_f64().into();
            assert_eq!(v.state, "succeeded", "{:?}", v.error);
            let r = v.result.unwrap();
            rec["tasks"] = r.tasks.into();
            rec["end_ms"] = serde_json::json!(r.end_ms);
            rec["accuracy"] = r.test.map(|t| t.score).into();
            if let Some(cv) = r.cv {
                rec["best_params"] = serde_json::json!(cv.best_params());
                rec["best_cv_accuracy"] = cv.best_score().into();
            }
            for h in handles {
                h.stop().unwrap();
            }
        }
        _ => panic!("MODE is mesh:NODES:SLOTS or local:THREADS"),
    }
    println!("{rec}");
}

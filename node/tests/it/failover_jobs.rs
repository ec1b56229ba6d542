//! Faults during jobs on three `meshml node` processes on 127.0.0.1:
//! - SIGKILL a worker in the middle of a grid search: the job completes with the result
//!   the local executor gives;
//! - SIGKILL the driver in the middle of a grid search: a new driver finishes it, and no
//!   task whose completion was committed before the kill runs again (counted from the
//!   workers' execution counters);
//! - a member removed after a SIGKILL: the driver restores two copies of every chunk.

// Tests report timings on stderr.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{
    call, data_path, finished_job, job_view, put_dataset, raft, status, submit_job,
    three_node_cluster, wait_for, Node,
};
use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::plan::{run_job, JobKind, JobSpec, LocalExecutor};
use meshml_models::Estimator;
use serde_json::Value;

/// A grid search of 30 cross-validation fits plus a refit on digits.
fn grid() -> JobSpec {
    JobSpec {
        kind: JobKind::GridSearch {
            estimator: Estimator::from_name("logistic_regression").unwrap(),
            grid: vec![(
                "C".into(),
                ["0.001", "0.01", "0.1", "1", "10", "100"]
                    .map(String::from)
                    .to_vec(),
            )],
            cv: 5,
            refit: true,
        },
        seed: 3,
    }
}

fn means(v: &Value) -> Vec<f64> {
    v["result"]["cv"]["mean_test_score"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Waits until at least `k` tasks of the job are done (and the job still runs).
fn wait_done(n: &Node, id: &str, k: u64) {
    assert!(
        wait_for(Duration::from_secs(120), || job_view(n, id)["done"]
            .as_u64()
            .unwrap_or(0)
            >= k)
        .is_some(),
        "{}",
        job_view(n, id)
    );
}

fn cluster(dir: &std::path::Path, extra: &[&str]) -> (Vec<Node>, String) {
    let (nodes, driver, _) = three_node_cluster(dir, extra);
    (nodes, driver)
}

#[test]
fn killing_a_worker_mid_grid_search_leaves_the_result_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, driver) = cluster(tmp.path(), &["--slots", "1"]);
    put_dataset(&nodes[0], "digits", "digits", 2, 200);
    let spec = grid();
    let id = submit_job(
        &nodes[0],
        &serde_json::json!({ "dataset": "digits", "job": &spec }),
    );
    wait_done(&nodes[0], &id, 4);
    let victim = nodes.iter().position(|n| n.id != driver).unwrap();
    let t = Instant::now();
    drop(nodes.remove(victim));
    let survivor = &nodes[0];
    let v = finished_job(survivor, &id);
    eprintln!("worker killed: job finished {:?} later", t.elapsed());
    let digits = load_csv(data_path("digits"), &CsvOptions::default()).unwrap();
    let here = run_job(&spec, &digits, &LocalExecutor::new(2), &|_| {}).unwrap();
    assert_eq!(means(&v), here.cv.unwrap().mean_test_score);
}

#[test]
fn killing_the_driver_mid_job_reruns_no_committed_task() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, driver) = cluster(tmp.path(), &["--slots", "1"]);
    put_dataset(&nodes[0], "digits", "digits", 2, 200);
    let spec = grid();
    let submit_via = nodes.iter().position(|n| n.id != driver).unwrap();
    let id = submit_job(
        &nodes[submit_via],
        &serde_json::json!({ "dataset": "digits", "job": &spec }),
    );
    wait_done(&nodes[submit_via], &id, 6);
    // What was committed before the kill, and who ran it.
    let before = job_view(&nodes[submit_via], &id);
    let committed: BTreeMap<String, Vec<u64>> = before["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "succeeded")
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["holders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert!(committed.len() >= 6);
    let d = nodes.iter().position(|n| n.id == driver).unwrap();
    let dead_id = status(&nodes[d])["raft"]["node_id"].as_u64().unwrap();
    let t = Instant::now();
    drop(nodes.remove(d));
    let v = finished_job(&nodes[0], &id);
    eprintln!(
        "driver killed with {} of {} tasks committed: job finished {:?} later (new driver {:?})",
        committed.len(),
        before["total"],
        t.elapsed(),
        raft(&nodes[0]).2
    );
    let digits = load_csv(data_path("digits"), &CsvOptions::default()).unwrap();
    let here = run_job(&spec, &digits, &LocalExecutor::new(2), &|_| {}).unwrap();
    assert_eq!(means(&v), here.cv.unwrap().mean_test_score);

    // Runs of each task on the surviving nodes.
    let mut runs: BTreeMap<String, u64> = BTreeMap::new();
    for n in &nodes {
        for e in status(n)["worker"]["executed"].as_array().unwrap() {
            if e["job"] == id.as_str() {
                *runs
                    .entry(e["task"].as_str().unwrap().to_string())
                    .or_default() += e["runs"].as_u64().unwrap();
            }
        }
    }
    let mut rerun = 0;
    for (task, holders) in &committed {
        // A committed task ran once, on its holder: never again on a survivor.
        let expected = u64::from(!holders.contains(&dead_id));
        if runs.get(task).copied().unwrap_or(0) != expected {
            rerun += 1;
        }
    }
    assert_eq!(
        rerun, 0,
        "committed tasks run again: runs {runs:?}, committed {committed:?}"
    );
}

#[test]
fn a_removed_members_chunks_get_their_second_copy_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, driver) = cluster(tmp.path(), &["--remove-after-ms", "3000"]);
    put_dataset(&nodes[0], "iris", "iris", 2, 20);
    let victim = nodes.iter().position(|n| n.id != driver).unwrap();
    drop(nodes.remove(victim));
    let t = Instant::now();
    let restored = wait_for(Duration::from_secs(60), || {
        let (_, list) = call(&nodes[0], "GET", "/v1/datasets", None);
        let members = status(&nodes[0])["raft"]["voters"]
            .as_array()
            .map_or(0, Vec::len);
        members == 2 && list[0]["min_replicas"] == 2
    });
    assert!(
        restored.is_some(),
        "{}",
        call(&nodes[0], "GET", "/v1/datasets/iris", None).1
    );
    eprintln!(
        "two copies of every chunk again {:?} after the kill",
        t.elapsed()
    );
    // Every recorded copy is real: a job reading every chunk succeeds.
    let id = submit_job(
        &nodes[1],
        &serde_json::json!({ "dataset": "iris", "job": JobSpec {
            kind: JobKind::Fit {
                estimator: Estimator::from_name("gaussian_nb").unwrap(),
            },
            seed: 0,
        } }),
    );
    finished_job(&nodes[1], &id);
}

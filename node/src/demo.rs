//! `meshml demo`: the embedded default. Three nodes start in this process (each with its
//! own identity, data directory, libp2p listener and HTTP API on 127.0.0.1), form a cluster,
//! store the bundled digits and iris data with two copies of every chunk, then run a grid
//! search and a one-vs-rest job with progress bars, and print the best parameters, the
//! cross-validation table and confusion matrices on held-out rows.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshml_models::model_selection::{train_test_split, TestSize};
use meshml_models::plan::{JobKind, JobSpec};
use meshml_models::Estimator;

use meshml_client::api::StatusView;

use crate::cli::DemoArgs;
use crate::config::NodeConfig;
use crate::fit::{follow, print_result, put_dataset, NodeApi};
use crate::job::JobRequest;
use crate::node::NodeHandle;
use crate::{w, NodeError};

/// The bundled digits data (1797 8x8 images, 10 classes).
pub const DIGITS_CSV: &str = include_str!("../../data/digits.csv");

/// The configuration of an in-process node on 127.0.0.1 (no mDNS, heartbeats every 250 ms)
/// with `slots` worker slots that expects `expect` nodes and joins through `bootstrap`.
pub fn node_config(dir: &Path, expect: usize, bootstrap: Option<&str>, slots: usize) -> NodeConfig {
    NodeConfig {
        data_dir: Some(dir.to_path_buf()),
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        bootstrap: bootstrap.map(str::to_string).into_iter().collect(),
        http: "127.0.0.1:0".into(),
        expect,
        mdns: false,
        heartbeat: Duration::from_millis(250),
        peer_timeout: Duration::from_millis(2000),
        slots: Some(slots),
        ..NodeConfig::default()
    }
}

/// Splits bundled CSV text into train and test files (20% held out, stratified).
fn split_csv(text: &str, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), NodeError> {
    let data = meshml_models::io::read_csv(text.as_bytes(), name, &Default::default())?;
    let (ids, _) = data.class_target()?;
    let (train, test) = train_test_split(data.n_samples(), TestSize::Fraction(0.2), 0, Some(ids))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let rows: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    let write = |idx: &[usize], file: PathBuf| -> Result<PathBuf, NodeError> {
        let mut body = String::with_capacity(text.len());
        body.push_str(header);
        body.push('\n');
        for &i in idx {
            body.push_str(rows[i]);
            body.push('\n');
        }
        std::fs::write(&file, body).map_err(|e| NodeError::io(file.display().to_string(), e))?;
        Ok(file)
    };
    Ok((
        write(&train, dir.join(format!("{name}-train.csv")))?,
        write(&test, dir.join(format!("{name}-test.csv")))?,
    ))
}

/// Waits until the node behind `api` sees a driver and `n` recorded members.
pub fn wait_for_cluster(api: &NodeApi, n: usize) -> Result<Duration, NodeError> {
    let t = Instant::now();
    let client = api.client()?;
    while t.elapsed() < Duration::from_secs(60) {
        let status: Result<StatusView, _> =
            client.get("/v1/status", "status document", Duration::from_secs(10));
        let formed = status
            .ok()
            .and_then(|s| s.raft)
            .is_some_and(|r| r.driver.is_some() && r.members.len() == n);
        if formed {
            return Ok(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(NodeError::Usage(format!(
        "the {n} demo nodes did not form a cluster within 60 s"
    )))
}

fn submit(api: &NodeApi, req: &JobRequest, out: &mut dyn Write) -> Result<(), NodeError> {
    let id = crate::fit::submit(api, req)?;
    w(out, format_args!("\n== {} ==\n", req.job.describe()))?;
    out.flush().map_err(|e| NodeError::io("stdout", e))?;
    let view = follow(api, &id)?;
    Ok(print_result(&view, out)?)
}

/// Runs the demo.
pub fn run(args: DemoArgs, out: &mut dyn Write) -> Result<(), NodeError> {
    let n = args.nodes.max(1);
    let tmp;
    let root = match args.dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().map_err(|e| NodeError::io("temporary directory", e))?;
            tmp.path().to_path_buf()
        }
    };
    let started = Instant::now();
    let mut nodes: Vec<NodeHandle> = Vec::with_capacity(n);
    for i in 0..n {
        let boot = nodes.first().and_then(|f| f.info().listen.first().cloned());
        let dir = root.join(format!("node-{i}"));
        nodes.push(crate::node::spawn(node_config(
            &dir,
            n,
            boot.as_deref(),
            1,
        ))?);
    }
    for (i, node) in nodes.iter().enumerate() {
        let info = node.info();
        w(
            out,
            format_args!(
                "node {i}: {} http://{}\n",
                info.peer,
                info.http.first().map_or(String::new(), ToString::to_string)
            ),
        )?;
    }
    let api = NodeApi {
        node: format!(
            "http://{}",
            nodes[0].info().http.first().expect("an HTTP address")
        ),
        token_file: None,
    };
    let formed = wait_for_cluster(&api, n)?;
    w(
        out,
        format_args!("cluster of {n} formed in {:.1}s\n\n", formed.as_secs_f64()),
    )?;

    let data = root.join("data");
    std::fs::create_dir_all(&data).map_err(|e| NodeError::io(data.display().to_string(), e))?;
    let replicas = 2.min(n);
    let (digits_train, digits_test) = split_csv(DIGITS_CSV, &data, "digits")?;
    let (iris_train, iris_test) = split_csv(meshml_models::io::IRIS_CSV, &data, "iris")?;
    for (file, name) in [
        (&digits_train, "digits-train"),
        (&digits_test, "digits-test"),
        (&iris_train, "iris-train"),
        (&iris_test, "iris-test"),
    ] {
        put_dataset(
            &api,
            file,
            &format!("name={name}&replicas={replicas}&chunk_rows=300"),
            out,
        )?;
    }

    let lr = Estimator::from_name("standard_scaler+logistic_regression")?;
    let grid = JobRequest {
        dataset: "digits-train".into(),
        job: JobSpec {
            kind: JobKind::GridSearch {
                estimator: lr.clone(),
                grid: vec![(
                    "C".into(),
                    ["0.01", "0.1", "1", "10"].map(String::from).to_vec(),
                )],
                cv: 5,
                refit: true,
            },
            seed: 0,
        },
        name: Some("digits-lr".into()),
        test_dataset: Some("digits-test".into()),
        data_parallel: None,
        mode: None,
    };
    submit(&api, &grid, out)?;
    let ovr = JobRequest {
        dataset: "iris-train".into(),
        job: JobSpec {
            kind: JobKind::OneVsRest {
                estimator: Estimator::from_name("logistic_regression")?,
            },
            seed: 0,
        },
        name: Some("iris-ovr".into()),
        test_dataset: Some("iris-test".into()),
        data_parallel: None,
        mode: None,
    };
    submit(&api, &ovr, out)?;
    w(
        out,
        format_args!(
            "\ndemo finished in {:.1}s; stopping the nodes\n",
            started.elapsed().as_secs_f64()
        ),
    )?;
    for node in nodes {
        node.stop()?;
    }
    Ok(())
}

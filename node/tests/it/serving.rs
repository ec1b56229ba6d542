//! Online prediction on a three-node mesh of real `meshml node` processes on 127.0.0.1:
//! every route, JSON and MessagePack, every kind of bad input, aliases, a promotion under
//! load, and the OpenAPI document against the routes.

// Tests report timings on stderr.
#![allow(clippy::print_stderr)]

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{
    call, data_path, finished_job, raw_call, submit_job, three_node_cluster, Node,
};
use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::plan::{run_job, JobKind, JobSpec, LocalExecutor};
use meshml_models::{Classifier, Estimator};
use serde_json::{json, Value};

fn lr(c: &str) -> JobSpec {
    let mut e = Estimator::from_name("logistic_regression").unwrap();
    e.set_param("C", c).unwrap();
    e.set_param("max_iter", "500").unwrap();
    JobSpec {
        kind: JobKind::Fit { estimator: e },
        seed: 0,
    }
}

fn fit(n: &Node, spec: &JobSpec, name: &str) -> String {
    let id = submit_job(n, &json!({ "dataset": "iris", "job": spec, "name": name }));
    let v = finished_job(n, &id);
    v["result"]["model"].as_str().unwrap().to_string()
}

fn post(n: &Node, path: &str, body: &Value) -> (u16, Value) {
    call(
        n,
        "POST",
        path,
        Some(("application/json", body.to_string().as_bytes())),
    )
}

fn rows(iris: &meshml_models::Dataset) -> Vec<Vec<f32>> {
    (0..iris.n_samples()).map(|i| iris.x().row(i)).collect()
}

#[test]
fn any_node_serves_any_model_and_refuses_bad_input_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _, _) = three_node_cluster(tmp.path(), &["--slots", "1", "--max-request-mb", "1"]);
    common::put_dataset(&nodes[0], "iris", "iris", 2, 50);
    assert_eq!(fit(&nodes[0], &lr("1.0"), "iris-lr"), "iris-lr@1");
    assert_eq!(fit(&nodes[0], &lr("0.01"), "iris-lr"), "iris-lr@2");
    // The driver keeps two copies of every artifact.
    let copies = common::wait_for(Duration::from_secs(10), || {
        let (_, models) = call(&nodes[1], "GET", "/v1/models", None);
        models.as_array().is_some_and(|m| {
            m.iter()
                .all(|v| v["locations"].as_array().unwrap().len() >= 2)
        })
    });
    assert!(copies.is_some(), "every model version on two members");

    let iris = load_csv(data_path("iris"), &CsvOptions::default()).unwrap();
    let (_, classes) = iris.class_target().unwrap();
    let expect = |c: &str| -> Vec<String> {
        let m = run_job(&lr(c), &iris, &LocalExecutor::new(1), &|_| {})
            .unwrap()
            .model
            .unwrap();
        m.predict(iris.x())
            .unwrap()
            .into_iter()
            .map(|k| classes.label(k).to_string())
            .collect()
    };
    let (v1, v2) = (expect("1.0"), expect("0.01"));
    assert_ne!(v1, v2, "the two versions disagree somewhere");

    // Every node answers, the newest version by default; a node that lacked the artifact
    // fetched it and is now a holder.
    for n in &nodes {
        let (code, r) = post(
            n,
            "/v1/models/iris-lr/predict",
            &json!({ "instances": rows(&iris) }),
        );
        assert_eq!(code, 200, "{r}");
        assert_eq!(r["version"], 2);
        let got: Vec<String> = serde_json::from_value(r["predictions"].clone()).unwrap();
        assert_eq!(got, v2);
    }
    let holders = |m: &Value| -> usize {
        m.as_array()
            .unwrap()
            .iter()
            .find(|m| m["version"] == 2)
            .map_or(0, |v| v["locations"].as_array().unwrap().len())
    };
    let all = common::wait_for(Duration::from_secs(5), || {
        holders(&call(&nodes[2], "GET", "/v1/models", None).1) == 3
    });
    assert!(all.is_some(), "every node that served version 2 holds it");
    let (_, models) = call(&nodes[2], "GET", "/v1/models", None);
    let entry = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["version"] == 2)
        .unwrap();
    assert_eq!(entry["loaded_here"], true);

    // A version by number; instances by feature name; probabilities.
    let names = iris.feature_names();
    let named: Vec<Value> = rows(&iris)
        .iter()
        .map(|r| {
            names
                .iter()
                .zip(r)
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    let (code, r) = post(
        &nodes[1],
        "/v1/models/iris-lr/versions/1/predict",
        &json!({ "instances": named, "probabilities": true }),
    );
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["version"], 1);
    assert_eq!(
        serde_json::from_value::<Vec<String>>(r["predictions"].clone()).unwrap(),
        v1
    );
    assert_eq!(r["classes"], json!(["setosa", "versicolor", "virginica"]));
    for p in r["probabilities"].as_array().unwrap() {
        let s: f64 = p
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((s - 1.0).abs() < 1e-5);
    }

    // MessagePack in and out.
    let body = rmp_serde::to_vec_named(&json!({ "instances": rows(&iris) })).unwrap();
    let (code, headers, bytes) = raw_call(
        &nodes[2],
        "POST",
        "/v1/models/iris-lr@1/predict",
        &[("Content-Type", "application/msgpack")],
        &body,
    );
    assert_eq!(code, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.contains("msgpack")));
    let r: Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(
        serde_json::from_value::<Vec<String>>(r["predictions"].clone()).unwrap(),
        v1
    );
    // `Accept` picks the answer's format: MessagePack in, JSON out.
    let (code, headers, bytes) = raw_call(
        &nodes[2],
        "POST",
        "/v1/models/iris-lr@1/predict",
        &[
            ("Content-Type", "application/msgpack"),
            ("Accept", "application/json"),
        ],
        &body,
    );
    assert_eq!(code, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.contains("application/json")));
    let r: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        serde_json::from_value::<Vec<String>>(r["predictions"].clone()).unwrap(),
        v1
    );
    // An error follows it too: a bad JSON request that asks for MessagePack gets its error so.
    let (code, headers, bytes) = raw_call(
        &nodes[2],
        "POST",
        "/v1/models/iris-lr@1/predict",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/msgpack"),
        ],
        b"{not json",
    );
    assert_eq!(code, 400);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.contains("msgpack")));
    let e: Value = rmp_serde::from_slice(&bytes).unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{e}"
    );

    // Aliases: production wins over the newest version; NAME@ALIAS names one.
    let (code, r) = call(
        &nodes[1],
        "PUT",
        "/v1/models/iris-lr/aliases/production",
        Some(("application/json", br#"{"version": 1}"#)),
    );
    assert_eq!(code, 200, "{r}");
    call(
        &nodes[1],
        "PUT",
        "/v1/models/iris-lr/aliases/staging",
        Some(("application/json", br#"{"version": 2}"#)),
    );
    let one = json!({ "instances": [rows(&iris)[0]] });
    for (n, path, version) in [
        (&nodes[0], "/v1/models/iris-lr/predict", 1),
        (&nodes[2], "/v1/models/iris-lr@staging/predict", 2),
        (&nodes[2], "/v1/models/iris-lr@production/predict", 1),
    ] {
        let ok = common::wait_for(Duration::from_secs(5), || {
            post(n, path, &one).1["version"] == version
        });
        assert!(ok.is_some(), "{path} answers version {version}");
    }

    // Bad input: a 4xx with a JSON error that says what is wrong, never a 5xx.
    let big = vec![b'x'; 1_200_000];
    let bad: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "/v1/models/iris-lr/predict",
            br#"{"instances": [[1, 2, 3]]}"#.to_vec(),
            "application/json",
            400,
            "has 3 values; the model reads 4",
        ),
        (
            "/v1/models/iris-lr/predict",
            br#"{"instances": [{"sepal_length": 1, "petal_area": 2}]}"#.to_vec(),
            "application/json",
            400,
            "unknown feature 'petal_area'",
        ),
        (
            "/v1/models/iris-lr/predict",
            br#"{"instances": [{"sepal_length": 1}]}"#.to_vec(),
            "application/json",
            400,
            "lacks feature 'sepal_width'",
        ),
        (
            "/v1/models/iris-lr/predict",
            br#"{"instances": [[1, "two", 3, 4]]}"#.to_vec(),
            "application/json",
            400,
            "'two' is not a number",
        ),
        (
            "/v1/models/iris-lr/predict",
            br#"{"instances": [[1, NaN, 3, 4]]}"#.to_vec(),
            "application/json",
            400,
            "invalid JSON body",
        ),
        (
            "/v1/models/iris-lr/predict",
            rmp_serde::to_vec_named(&std::collections::BTreeMap::from([(
                "instances",
                vec![vec![1.0, f64::INFINITY, 3.0, 4.0]],
            )]))
            .unwrap(),
            "application/msgpack",
            400,
            "inf is not a finite number",
        ),
        (
            "/v1/models/iris-lr/predict",
            br#"{"instances": []}"#.to_vec(),
            "application/json",
            400,
            "no instances",
        ),
        (
            "/v1/models/iris-lr/predict",
            br#"{"rows": [[1, 2, 3, 4]]}"#.to_vec(),
            "application/json",
            400,
            "unknown field `rows`",
        ),
        (
            "/v1/models/iris-lr/predict",
            b"not json".to_vec(),
            "application/json",
            400,
            "invalid JSON body",
        ),
        (
            "/v1/models/iris-lr/predict",
            big,
            "application/json",
            413,
            "over this node's limit",
        ),
        (
            "/v1/models/no-such/predict",
            br#"{"instances": [[1, 2, 3, 4]]}"#.to_vec(),
            "application/json",
            404,
            "no model 'no-such'",
        ),
        (
            "/v1/models/iris-lr/versions/9/predict",
            br#"{"instances": [[1, 2, 3, 4]]}"#.to_vec(),
            "application/json",
            404,
            "no version or alias '9'",
        ),
        (
            "/v1/models/iris-lr/versions/latest/predict",
            br#"{"instances": [[1, 2, 3, 4]]}"#.to_vec(),
            "application/json",
            404,
            "not a version number",
        ),
        (
            "/v1/models/iris-lr@canary/predict",
            br#"{"instances": [[1, 2, 3, 4]]}"#.to_vec(),
            "application/json",
            404,
            "no version or alias 'canary'",
        ),
    ];
    for (path, body, ctype, status, says) in bad {
        let (code, _, bytes) = raw_call(&nodes[1], "POST", path, &[("Content-Type", ctype)], &body);
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_eq!(code, status, "{path}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{path}: '{msg}' lacks '{says}'");
    }
    let (code, r) = call(
        &nodes[1],
        "PUT",
        "/v1/models/iris-lr/aliases/production",
        Some(("application/json", br#"{"version": 7}"#)),
    );
    assert_eq!(code, 404, "{r}");
    let (code, r) = call(
        &nodes[1],
        "PUT",
        "/v1/models/iris-lr/aliases/3",
        Some(("application/json", br#"{"version": 1}"#)),
    );
    assert_eq!(code, 400, "{r}");
}

#[test]
fn promoting_a_version_under_load_fails_no_request() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _, _) = three_node_cluster(tmp.path(), &["--slots", "1"]);
    common::put_dataset(&nodes[0], "iris", "iris", 2, 50);
    fit(&nodes[0], &lr("1.0"), "m");
    fit(&nodes[0], &lr("0.01"), "m");
    let set = |v: u32| {
        let (code, r) = call(
            &nodes[0],
            "PUT",
            "/v1/models/m/aliases/production",
            Some((
                "application/json",
                format!("{{\"version\": {v}}}").as_bytes(),
            )),
        );
        assert_eq!(code, 200, "{r}");
    };
    set(1);
    // The clients start from a mesh that agrees on version 1: the alias reaches the other
    // nodes' replicas a moment after node 0 applied it.
    let on_v1 = |n: &Node| {
        call(n, "GET", "/v1/models", None)
            .1
            .as_array()
            .is_some_and(|ms| {
                ms.iter().any(|m| {
                    m["version"] == 1
                        && m["aliases"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x == "production"))
                })
            })
    };
    assert!(
        common::wait_for(Duration::from_secs(10), || nodes[1..].iter().all(on_v1)).is_some(),
        "the alias did not reach every node"
    );
    let iris = load_csv(data_path("iris"), &CsvOptions::default()).unwrap();
    let body = json!({ "instances": rows(&iris)[..10] }).to_string();
    // Two clients, each a bounded loop (count and time), on the two nodes that did not
    // take the promotion.
    // The promotion waits until both clients have had an answer (the first request on a
    // node loads the model, which can take a while on a loaded machine).
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Vec<(u16, u64)>> = std::thread::scope(|s| {
        let clients: Vec<_> = [nodes[1].http_url(), nodes[2].http_url()]
            .into_iter()
            .map(|url| {
                let body = body.clone();
                let answered = &answered;
                s.spawn(move || {
                    let started = Instant::now();
                    let mut seen: Vec<(u16, u64)> = Vec::new();
                    let mut after_switch = 0;
                    for _ in 0..20_000 {
                        if started.elapsed() > Duration::from_secs(30) || after_switch > 200 {
                            break;
                        }
                        if seen.last().is_some_and(|(_, v)| *v == 2) {
                            after_switch += 1;
                        }
                        let mut r: &[u8] = body.as_bytes();
                        let (code, text) = meshml_node::status::http_call(
                            &url,
                            "POST",
                            "/v1/models/m/predict",
                            None,
                            Some(("application/json", &mut r, body.len() as u64)),
                            Duration::from_secs(30),
                        )
                        .unwrap();
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        seen.push((code, v["version"].as_u64().unwrap_or(0)));
                        if seen.len() == 1 {
                            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    seen
                })
            })
            .collect();
        let waiting = Instant::now();
        while answered.load(std::sync::atomic::Ordering::SeqCst) < 2
            && waiting.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        set(2);
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for seen in results {
        let failed = seen.iter().filter(|(c, _)| *c != 200).count();
        assert_eq!(failed, 0, "{} of {} requests failed", failed, seen.len());
        let versions: Vec<u64> = seen.iter().map(|(_, v)| *v).collect();
        assert_eq!(versions.first(), Some(&1));
        assert_eq!(
            versions.last(),
            Some(&2),
            "the promotion reached every node"
        );
        // Once a node answers with the new version it never goes back.
        let first_new = versions.iter().position(|v| *v == 2).unwrap();
        assert!(versions[first_new..].iter().all(|v| *v == 2));
        eprintln!("{} requests, switched after {first_new}", versions.len());
    }
}

#[test]
fn the_openapi_document_describes_every_route_as_it_behaves() {
    let tmp = tempfile::tempdir().unwrap();
    let n = common::start(&tmp.path().join("a"), &[]);
    let (code, doc) = call(&n, "GET", "/v1/openapi.json", None);
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, ops) in paths {
        let concrete = path
            .replace("{name}", "nothing")
            .replace("{version}", "1")
            .replace("{alias}", "staging")
            .replace("{id}", "no-such-job");
        for (method, op) in ops.as_object().unwrap() {
            let documented: Vec<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            let (code, r) = call(
                &n,
                &method.to_uppercase(),
                &concrete,
                Some(("application/json", b"")),
            );
            assert!(
                documented.contains(&code),
                "{method} {path} answered {code} ({r}), documented: {documented:?}"
            );
            assert_ne!(
                r["error"].as_str().map(|e| e.starts_with("no such route")),
                Some(true),
                "{method} {path} is not routed"
            );
            checked += 1;
        }
    }
    assert!(checked >= 14, "{checked} operations");
    // And an undocumented route is not served.
    let (code, _) = call(&n, "GET", "/v1/nothing", None);
    assert_eq!(code, 404);
}

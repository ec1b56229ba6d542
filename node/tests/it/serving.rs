//! Online prediction on a three-node mesh of real `meshml node` processes on 127.0.0.1:
//! every route, JSON and MessagePack, every kind of bad input, aliases, a promotion under
//! load, and the OpenAPI document against the routes.

// Tests report timings on stderr.
#![allow(clippy::print_stderr)]

use crate::common;

use std::cell::RefCell;
use std::collections::BTreeSet;
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
    assert_eq!(doc["openapi"], "3.1.0");
    let api = Api {
        doc: doc.clone(),
        covered: Default::default(),
    };
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
            let (code, r) = api.exchange(
                &n,
                &method.to_uppercase(),
                &concrete,
                &[("content-type", "application/json")],
                b"",
            );
            assert!(documented.contains(&code));
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

/// The OpenAPI document a node serves, and a check of real exchanges against it.
struct Api {
    doc: Value,
    /// `METHOD /template` of every operation that answered 2xx.
    covered: RefCell<BTreeSet<String>>,
}

impl Api {
    fn fetch(n: &Node) -> Api {
        let (code, doc) = call(n, "GET", "/v1/openapi.json", None);
        assert_eq!(code, 200);
        Api {
            doc,
            covered: RefCell::default(),
        }
    }

    /// The documented operation a request goes to: its path template and description.
    fn operation(&self, method: &str, path: &str) -> (String, &Value) {
        let path = path.split('?').next().unwrap();
        let parts: Vec<&str> = path.split('/').collect();
        for (template, item) in self.doc["paths"].as_object().unwrap() {
            let t: Vec<&str> = template.split('/').collect();
            let matches = t.len() == parts.len()
                && t.iter()
                    .zip(&parts)
                    .all(|(a, b)| a == b || a.starts_with('{'));
            if let Some(op) = item.get(method.to_lowercase()).filter(|_| matches) {
                return (template.clone(), op);
            }
        }
        panic!("{method} {path} is not in the document")
    }

    /// Whether `instance` is valid under `schema`, a schema of the document.
    fn check(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let mut root = schema.clone();
        root["components"] = self.doc["components"].clone();
        let v = jsonschema::draft202012::new(&root).map_err(|e| e.to_string())?;
        let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Sends a request and checks the exchange against the document: the answer's status
    /// and media type are documented for the operation and its body (JSON or MessagePack)
    /// is valid under the documented schema; a request body the document allows is what
    /// a 2xx answer needs, and one it forbids is refused. Returns the status and the
    /// decoded body (`Null` for a file).
    fn exchange(
        &self,
        n: &Node,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        let (template, op) = self.operation(method, path);
        let what = format!("{method} {path}");
        let (code, answer_headers, bytes) = common::raw_call(n, method, path, headers, body);
        let header = |h: &[(String, String)], name: &str| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.split(';').next().unwrap().trim().to_string())
        };
        let decode = |media: &str, bytes: &[u8]| -> Option<Value> {
            match media {
                "application/json" => serde_json::from_slice(bytes).ok(),
                "application/msgpack" => rmp_serde::from_slice(bytes).ok(),
                _ => None,
            }
        };
        // The request body, as the document describes it.
        if let Some(media) = header(
            &headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
            "content-type",
        ) {
            let schema = &op["requestBody"]["content"][&media]["schema"];
            if let (false, Some(sent)) = (schema.is_null(), decode(&media, body)) {
                match self.check(schema, &sent) {
                    Ok(()) => {}
                    Err(e) => assert!(
                        (400..500).contains(&code),
                        "{what}: the document forbids the body ({e}) but the node answered {code}"
                    ),
                }
                if (200..300).contains(&code) {
                    self.check(schema, &sent).unwrap();
                }
            }
        }
        let documented = &op["responses"][code.to_string()];
        assert!(
            documented.is_object(),
            "{what} answered {code} ({}), not documented",
            String::from_utf8_lossy(&bytes)
        );
        let media = header(&answer_headers, "content-type").unwrap_or_default();
        let content = &documented["content"][&media];
        assert!(
            content.is_object(),
            "{what} answered {code} as '{media}', documented: {}",
            documented["content"]
        );
        let value = match decode(&media, &bytes) {
            Some(v) => {
                if let Err(e) = self.check(&content["schema"], &v) {
                    panic!("{what} answered {code} with {v}, against the document: {e}");
                }
                v
            }
            None if media.starts_with("application/json") || media.contains("msgpack") => {
                panic!("{what}: {code} body does not decode as {media}")
            }
            None => Value::Null,
        };
        for h in documented["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            assert!(
                header(&answer_headers, h).is_some(),
                "{what}: no {h} header"
            );
        }
        if (200..300).contains(&code) {
            self.covered
                .borrow_mut()
                .insert(format!("{} {template}", method.to_lowercase()));
        }
        (code, value)
    }

    fn json(&self, n: &Node, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.exchange(
            n,
            method,
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    fn get(&self, n: &Node, path: &str) -> (u16, Value) {
        self.exchange(n, "GET", path, &[], b"")
    }
}

/// A whole session through the API of a real node, every answer checked against the
/// OpenAPI document it serves: each operation answers 2xx at least once, and refusals
/// (JSON and MessagePack) are documented error bodies.
#[test]
fn every_answer_of_a_session_conforms_to_the_openapi_document() {
    let tmp = tempfile::tempdir().unwrap();
    let n = common::start(&tmp.path().join("a"), &["--slots", "1"]);
    let api = Api::fetch(&n);
    api.get(&n, "/v1/health");
    api.get(&n, "/v1/status");
    api.get(&n, "/v1/openapi.json");

    // Datasets.
    let iris = std::fs::read(data_path("iris")).unwrap();
    let put = "/v1/datasets?name=iris&replicas=1&chunk_rows=40&source=iris.csv";
    let csv = [("content-type", "text/csv")];
    assert_eq!(api.exchange(&n, "POST", put, &csv, &iris).0, 201);
    assert_eq!(api.exchange(&n, "POST", put, &csv, &iris).0, 409);
    let (code, refusal) = api.exchange(&n, "POST", "/v1/datasets?replicas=two", &csv, &iris);
    assert_eq!(code, 400);
    assert!(
        refusal["error"].as_str().unwrap().contains("replicas"),
        "{refusal}"
    );
    let bad = "/v1/datasets?name=bad&replicas=1";
    assert_eq!(api.exchange(&n, "POST", bad, &csv, b"a,b\n1\n").0, 400);
    let (_, listed) = api.get(&n, "/v1/datasets");
    assert_eq!(listed[0]["rows"], 150);
    assert_eq!(
        api.get(&n, "/v1/datasets/iris").1["chunks"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(api.get(&n, "/v1/datasets/iris/rows").0, 200);
    assert_eq!(api.get(&n, "/v1/datasets/iris/rows?format=parquet").0, 200);
    assert_eq!(api.get(&n, "/v1/datasets/iris/rows?format=xlsx").0, 400);
    assert_eq!(api.get(&n, "/v1/datasets/nothing").0, 404);

    // Jobs: a search that stops at max_iter (warnings, a cv table), a refused one, and
    // a long one cancelled.
    let mut lr = Estimator::from_name("logistic_regression").unwrap();
    lr.set_param("max_iter", "3").unwrap();
    let search = json!({
        "dataset": "iris",
        "name": "iris-lr",
        "test_dataset": "iris",
        "job": { "kind": "grid_search", "estimator": lr, "grid": [["C", ["0.1", "1"]]],
                 "cv": 3, "refit": true, "seed": 1 },
    });
    let (code, created) = api.json(&n, "POST", "/v1/jobs", &search);
    assert_eq!(code, 202);
    let id = created["id"].as_str().unwrap().to_string();
    let mut unseeded = search.clone();
    unseeded["job"].as_object_mut().unwrap().remove("seed");
    assert_eq!(api.json(&n, "POST", "/v1/jobs", &unseeded).0, 400);
    let mut view = Value::Null;
    common::wait_for(Duration::from_secs(120), || {
        view = api.get(&n, &format!("/v1/jobs/{id}?tasks=true")).1;
        view["state"] != "running"
    });
    assert_eq!(view["state"], "succeeded", "{view}");
    assert!(
        !view["result"]["warnings"].as_array().unwrap().is_empty(),
        "{view}"
    );
    assert_eq!(view["result"]["cv"]["params"].as_array().unwrap().len(), 2);
    let mut forest = Estimator::from_name("random_forest").unwrap();
    forest.set_param("n_estimators", "400").unwrap();
    let long = json!({
        "dataset": "iris",
        "job": { "kind": "grid_search", "estimator": forest,
                 "grid": [["max_depth", ["2", "3", "4", "5", "6", "7"]]],
                 "cv": 5, "refit": true, "seed": 1 },
    });
    let long_id = api.json(&n, "POST", "/v1/jobs", &long).1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel = format!("/v1/jobs/{long_id}/cancel");
    assert_eq!(api.json(&n, "POST", &cancel, &json!({})).0, 200);
    assert_eq!(api.json(&n, "POST", &cancel, &json!({})).0, 409);
    assert_eq!(api.get(&n, "/v1/jobs").1.as_array().unwrap().len(), 2);

    // Models and online prediction, in JSON and in MessagePack.
    assert_eq!(api.get(&n, "/v1/models").1[0]["name"], "iris-lr");
    let instances = json!({ "instances": [[5.1, 3.5, 1.4, 0.2], {"sepal_length": 6.7,
        "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}], "probabilities": true });
    let (code, answer) = api.json(&n, "POST", "/v1/models/iris-lr/predict", &instances);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["probabilities"].as_array().unwrap().len(), 2);
    let msgpack = [
        ("content-type", "application/msgpack"),
        ("accept", "application/msgpack"),
    ];
    let packed = rmp_serde::to_vec_named(&instances).unwrap();
    let path = "/v1/models/iris-lr/versions/1/predict";
    let (code, packed_answer) = api.exchange(&n, "POST", path, &msgpack, &packed);
    assert_eq!(code, 200);
    assert_eq!(packed_answer["predictions"], answer["predictions"]);
    let p = |a: &Value| a["probabilities"][1][2].as_f64().unwrap();
    assert!((p(&packed_answer) - p(&answer)).abs() < 1e-6);
    let wrong = rmp_serde::to_vec_named(&json!({ "instances": [["a", 1]] })).unwrap();
    let (code, refusal) = api.exchange(&n, "POST", path, &msgpack, &wrong);
    assert_eq!(code, 400);
    assert!(refusal["error"].is_string());
    let not_json = [
        ("content-type", "application/json"),
        ("accept", "application/msgpack"),
    ];
    assert_eq!(api.exchange(&n, "POST", path, &not_json, b"{").0, 400);
    assert_eq!(
        api.json(&n, "POST", "/v1/models/nope/predict", &instances)
            .0,
        404
    );
    assert_eq!(api.get(&n, "/v1/models/iris-lr/artifact").0, 200);
    let alias = "/v1/models/iris-lr/aliases/production";
    assert_eq!(api.json(&n, "PUT", alias, &json!({ "version": 1 })).0, 200);
    assert_eq!(
        api.json(&n, "PUT", alias, &json!({ "version": "one" })).0,
        400
    );

    // Batch prediction.
    let (code, batch) = api.json(
        &n,
        "POST",
        "/v1/predictions",
        &json!({ "model": "iris-lr", "dataset": "iris", "proba": true }),
    );
    assert_eq!(code, 202, "{batch}");
    let batch = batch["id"].as_str().unwrap().to_string();
    let mut view = Value::Null;
    common::wait_for(Duration::from_secs(60), || {
        view = api.get(&n, &format!("/v1/predictions/{batch}")).1;
        view["state"] != "running"
    });
    assert_eq!(view["state"], "succeeded", "{view}");
    assert_eq!(
        api.get(&n, "/v1/predictions").1.as_array().unwrap().len(),
        1
    );
    assert_eq!(api.get(&n, &format!("/v1/predictions/{batch}/csv")).0, 200);

    // Removal, once the cancelled job has ended.
    common::wait_for(Duration::from_secs(30), || {
        api.get(&n, &format!("/v1/jobs/{long_id}")).1["state"] != "running"
    });
    assert_eq!(
        api.exchange(&n, "DELETE", "/v1/datasets/iris", &[], b"").0,
        200
    );
    assert_eq!(
        api.exchange(&n, "DELETE", "/v1/datasets/iris", &[], b"").0,
        404
    );

    // Every operation of the document answered 2xx at least once.
    let mut all = BTreeSet::new();
    for (path, item) in api.doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            all.insert(format!("{method} {path}"));
        }
    }
    let covered = api.covered.borrow();
    let missed: Vec<&String> = all.difference(&covered).collect();
    assert!(missed.is_empty(), "never answered 2xx: {missed:?}");
}

//! Helpers for tests that run real `meshml node` processes on 127.0.0.1 (and, in
//! [`netns`], in network namespaces).
#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running node process; killed when dropped.
pub struct Node {
    pub child: Child,
    pub id: String,
    pub addr: String,
    pub http: String,
    pub lines: mpsc::Receiver<String>,
}

impl Node {
    /// The HTTP API's base URL.
    pub fn http_url(&self) -> String {
        if self.http.starts_with("http://") {
            self.http.clone()
        } else {
            format!("http://{}", self.http)
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const TIMEOUT_MS: &str = "1500";

pub fn start(dir: &Path, extra: &[&str]) -> Node {
    start_with_timeout(dir, TIMEOUT_MS, extra)
}

pub fn start_with_timeout(dir: &Path, peer_timeout_ms: &str, extra: &[&str]) -> Node {
    let child = Command::new(env!("CARGO_BIN_EXE_meshml"))
        .args(["node", "--data-dir"])
        .arg(dir)
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http",
            "127.0.0.1:0",
            "--no-mdns",
        ])
        .args([
            "--heartbeat-ms",
            "250",
            "--peer-timeout-ms",
            peer_timeout_ms,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("meshml node starts");
    adopt(child)
}

/// Reads a started node's id and addresses from its stdout.
pub fn adopt(mut child: Child) -> Node {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::sync_channel::<String>(64);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = meshml_node::node::read_startup(std::iter::from_fn(|| {
        rx.recv_timeout(Duration::from_secs(20)).ok()
    }))
    .expect("the node prints its addresses");
    let (id, addr, http) = (start.peer, start.listen, start.http);
    Node {
        child,
        id,
        addr,
        http,
        lines: rx,
    }
}

pub fn status(n: &Node) -> Value {
    let (code, body) = meshml_node::status::http_get(&n.http, "/v1/status", None).unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

pub fn alive(n: &Node) -> Vec<String> {
    let mut v: Vec<String> = status(n)["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "alive")
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Polls `cond` every 100 ms for at most `limit`; returns how long it took.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// (role, term, driver peer id) as a node reports them.
pub fn raft(n: &Node) -> (String, u64, Option<String>) {
    let r = status(n)["raft"].clone();
    (
        r["role"].as_str().unwrap_or("").to_string(),
        r["term"].as_u64().unwrap_or(0),
        r["driver"].as_str().map(str::to_string),
    )
}

/// The driver all `nodes` agree on, if they agree and it is one of them, leading.
pub fn agreed_driver(nodes: &[&Node]) -> Option<(String, u64)> {
    let views: Vec<_> = nodes.iter().map(|n| raft(n)).collect();
    let driver = views.first()?.2.clone()?;
    let leaders: Vec<&Node> = nodes
        .iter()
        .zip(&views)
        .filter(|(_, v)| v.0 == "leader")
        .map(|(n, _)| *n)
        .collect();
    let agree = views
        .iter()
        .all(|v| v.2.as_deref() == Some(driver.as_str()));
    (agree && leaders.len() == 1 && leaders[0].id == driver).then(|| (driver, views[0].1))
}

/// Starts nodes a, b, c (`--expect 3`, b and c bootstrapping from a, each also given
/// `extra`) and waits until they agree on one driver; returns them in that order with the
/// driver's peer id and term.
pub fn three_node_cluster(dir: &std::path::Path, extra: &[&str]) -> (Vec<Node>, String, u64) {
    let flags = |boot: Option<&str>| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(["--expect".to_string(), "3".to_string()]);
        if let Some(b) = boot {
            v.extend(["--bootstrap".to_string(), b.to_string()]);
        }
        v
    };
    let run = |name: &str, f: Vec<String>| {
        start(
            &dir.join(name),
            &f.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let a = run("a", flags(None));
    let b = run("b", flags(Some(&a.addr)));
    let c = run("c", flags(Some(&a.addr)));
    let nodes = vec![a, b, c];
    let mut agreed = None;
    assert!(
        wait_for(Duration::from_secs(30), || {
            agreed = agreed_driver(&nodes.iter().collect::<Vec<_>>());
            agreed.is_some()
        })
        .is_some(),
        "three nodes agree on one driver"
    );
    let (driver, term) = agreed.unwrap();
    // The driver records every member (with its slots) in the replicated state.
    assert!(
        wait_for(Duration::from_secs(15), || {
            status(&nodes[0])["raft"]["members"]
                .as_array()
                .map_or(0, Vec::len)
                == 3
        })
        .is_some(),
        "three member records"
    );
    (nodes, driver, term)
}

/// A bundled dataset's CSV path.
pub fn data_path(name: &str) -> String {
    format!("{}/../data/{name}.csv", env!("CARGO_MANIFEST_DIR"))
}

/// An HTTP request to `n`'s API with an optional body (content type, bytes); returns the
/// status and the JSON answer (a string when it is not JSON).
pub fn call(n: &Node, method: &str, path: &str, body: Option<(&str, &[u8])>) -> (u16, Value) {
    use meshml_node::status::http_call;
    let (code, text) = match body {
        None => http_call(
            &n.http_url(),
            method,
            path,
            None,
            None,
            Duration::from_secs(60),
        ),
        Some((ctype, bytes)) => {
            let mut r: &[u8] = bytes;
            http_call(
                &n.http_url(),
                method,
                path,
                None,
                Some((ctype, &mut r, bytes.len() as u64)),
                Duration::from_secs(120),
            )
        }
    }
    .unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Stores bundled `file` on the mesh through `n` as `name`; returns the API's answer.
pub fn put_dataset(n: &Node, name: &str, file: &str, replicas: usize, chunk_rows: usize) -> Value {
    put_dataset_with(n, name, file, replicas, chunk_rows, "")
}

/// [`put_dataset`] with more query parameters (`&regression=true`).
pub fn put_dataset_with(
    n: &Node,
    name: &str,
    file: &str,
    replicas: usize,
    chunk_rows: usize,
    extra: &str,
) -> Value {
    let bytes = std::fs::read(data_path(file)).unwrap();
    let (code, v) = call(
        n,
        "POST",
        &format!("/v1/datasets?name={name}&replicas={replicas}&chunk_rows={chunk_rows}{extra}"),
        Some(("text/csv", &bytes)),
    );
    assert_eq!(code, 201, "{v}");
    v
}

/// Submits a job request (JSON) through `n`; returns the job id.
pub fn submit_job(n: &Node, request: &Value) -> String {
    let (code, v) = call(
        n,
        "POST",
        "/v1/jobs",
        Some(("application/json", request.to_string().as_bytes())),
    );
    assert_eq!(code, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// A job's view with its tasks.
pub fn job_view(n: &Node, id: &str) -> Value {
    call(n, "GET", &format!("/v1/jobs/{id}?tasks=true"), None).1
}

/// Waits (at most 180 s) for a job to end and checks that it succeeded.
pub fn finished_job(n: &Node, id: &str) -> Value {
    let mut last = Value::Null;
    let done = wait_for(Duration::from_secs(180), || {
        last = job_view(n, id);
        last["state"] != "running"
    });
    assert!(done.is_some(), "job {id} still running: {last}");
    assert_eq!(last["state"], "succeeded", "{last}");
    last
}

/// Runs the `meshml` binary; returns success, stdout and stderr.
pub fn meshml(args: &[&str]) -> (bool, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_meshml"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A raw HTTP/1.1 exchange on loopback (for binary bodies): status, headers (lower-case
/// names) and body bytes.
pub fn raw_call(
    n: &Node,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let host = n.http_url().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[end + 4..].to_vec())
}

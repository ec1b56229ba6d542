//! Driver failover time with real processes on 127.0.0.1: start three `meshml node`s
//! (`--expect 3`), wait for one driver, SIGKILL it, and time until the other two agree on
//! a new one (polling their HTTP APIs every 10 ms). Default Raft timings.
//!
//! `cargo build --release --bin meshml && cargo run --release -p meshml-node --example
//! failover_bench -- target/release/meshml [ROUNDS]`

// A benchmark binary reports on stdout.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Node {
    child: Child,
    id: String,
    addr: String,
    http: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &str, dir: &std::path::Path, extra: &[&str]) -> Node {
    let mut child = Command::new(bin)
        .args(["node", "--data-dir"])
        .arg(dir)
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http",
            "127.0.0.1:0",
            "--no-mdns",
            "--expect",
            "3",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("meshml starts");
    let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let start = meshml_node::node::read_startup(lines.map_while(Result::ok))
        .expect("the node prints its addresses");
    let (id, addr, http) = (start.peer, start.listen, start.http);
    Node {
        child,
        id,
        addr,
        http,
    }
}

fn driver(n: &Node) -> Option<(String, String)> {
    let (code, body) = meshml_node::status::http_get(&n.http, "/v1/status", None).ok()?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some((
        v["raft"]["role"].as_str()?.to_string(),
        v["raft"]["driver"].as_str()?.to_string(),
    ))
}

fn agreed(nodes: &[Node]) -> Option<String> {
    let views: Vec<(String, String)> = nodes.iter().map(driver).collect::<Option<_>>()?;
    let d = views[0].1.clone();
    let one_leader = views.iter().filter(|v| v.0 == "leader").count() == 1;
    (one_leader && views.iter().all(|v| v.1 == d) && nodes.iter().any(|n| n.id == d)).then_some(d)
}

fn main() {
    let bin = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/meshml".into());
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let mut times = Vec::new();
    for round in 0..rounds {
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = start(&bin, &tmp.path().join("a"), &[]);
        let b = start(&bin, &tmp.path().join("b"), &["--bootstrap", &a.addr]);
        let c = start(&bin, &tmp.path().join("c"), &["--bootstrap", &a.addr]);
        let mut nodes = vec![a, b, c];
        let t = Instant::now();
        let first = loop {
            if let Some(d) = agreed(&nodes) {
                break d;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "no driver");
            std::thread::sleep(Duration::from_millis(10));
        };
        // Let heartbeats settle, then kill the driver.
        std::thread::sleep(Duration::from_secs(1));
        let idx = nodes
            .iter()
            .position(|n| n.id == first)
            .expect("driver is a node");
        let killed = Instant::now();
        drop(nodes.remove(idx));
        let took = loop {
            if agreed(&nodes).is_some_and(|d| d != first) {
                break killed.elapsed();
            }
            assert!(killed.elapsed() < Duration::from_secs(60), "no new driver");
            std::thread::sleep(Duration::from_millis(10));
        };
        println!(
            "{{\"bench\":\"failover\",\"round\":{round},\"seconds\":{:.3}}}",
            took.as_secs_f64()
        );
        times.push(took.as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"bench\":\"failover\",\"median_s\":{:.3},\"min_s\":{:.3},\"max_s\":{:.3}}}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}

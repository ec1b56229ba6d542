//! mDNS discovery between two nodes in network namespaces this test creates (mDNS ignores
//! loopback, so it cannot be tested on 127.0.0.1). Needs root and iproute2; where
//! namespaces cannot be created the test says so on stderr and checks nothing else.

// Tests report skips and timings on stderr.
#![allow(clippy::print_stderr)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Two namespaces joined by a veth pair; everything is removed on drop.
struct Netns {
    names: [String; 2],
    children: Vec<Child>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

impl Netns {
    fn create() -> Result<Self, String> {
        let tag = std::process::id() % 100_000;
        let ns = Netns {
            names: [format!("mml{tag}a"), format!("mml{tag}b")],
            children: Vec::new(),
        };
        let (a, b) = (ns.names[0].as_str(), ns.names[1].as_str());
        ip(&["netns", "add", a])?;
        ip(&["netns", "add", b])?;
        let (va, vb) = (format!("v{tag}a"), format!("v{tag}b"));
        ip(&[
            "link", "add", &va, "netns", a, "type", "veth", "peer", "name", &vb, "netns", b,
        ])?;
        for (n, v, addr) in [(a, &va, "10.213.7.1/24"), (b, &vb, "10.213.7.2/24")] {
            ip(&["-n", n, "addr", "add", addr, "dev", v])?;
            ip(&["-n", n, "link", "set", v, "up", "multicast", "on"])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
            ip(&["-n", n, "route", "add", "224.0.0.0/4", "dev", v])?;
        }
        Ok(ns)
    }

    fn spawn(&mut self, i: usize, data: &std::path::Path, listen: &str) -> std::path::PathBuf {
        let out = data.with_extension("out");
        let f = std::fs::File::create(&out).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.names[i],
                env!("CARGO_BIN_EXE_meshml"),
                "node",
                "--data-dir",
            ])
            .arg(data)
            .args([
                "--listen",
                listen,
                "--http",
                "127.0.0.1:7070",
                "--heartbeat-ms",
                "250",
            ])
            .stdout(f)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        out
    }

    fn alive_peers(&self, i: usize) -> usize {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.names[i],
                env!("CARGO_BIN_EXE_meshml"),
                "status",
                "--json",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = match serde_json::from_slice(&o.stdout) {
            Ok(v) => v,
            Err(_) => return 0,
        };
        v["peers"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| p["state"] == "alive").count())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

#[test]
fn mdns_finds_a_peer_on_the_lan_without_bootstrap_addresses() {
    let mut ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("SKIPPED mdns test: cannot create network namespaces here ({e})");
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    ns.spawn(0, &tmp.path().join("a"), "/ip4/10.213.7.1/tcp/7000");
    ns.spawn(1, &tmp.path().join("b"), "/ip4/10.213.7.2/tcp/7000");
    let t = Instant::now();
    let mut found = false;
    while t.elapsed() < Duration::from_secs(30) {
        if ns.alive_peers(0) == 1 && ns.alive_peers(1) == 1 {
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(found, "the two nodes found each other by mDNS within 30 s");
    eprintln!("mdns discovery took {:?}", t.elapsed());
}

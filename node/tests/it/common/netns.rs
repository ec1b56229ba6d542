//! A LAN of network namespaces made by the test itself: a "switch" namespace holding a
//! bridge, and one namespace per host joined to it by a veth pair, with addresses
//! 10.213.N.1, .2, ... Nothing touches the machine's own network; everything (processes
//! and namespaces) is removed on drop, also when the test panics.
//!
//! Partitions are blackhole routes inside the host namespaces, so a cut is exact (the
//! hosts on each side still reach each other) and healing deletes the routes.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub struct Lan {
    prefix: String,
    switch: String,
    pub hosts: Vec<String>,
    net: u32,
    children: Vec<Child>,
    cuts: Vec<(usize, usize)>,
}

pub fn ip(args: &[&str]) -> Result<(), String> {
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

impl Lan {
    /// Creates `n` hosts on one bridge. Fails (for the caller to skip) where namespaces
    /// cannot be made, as without root.
    pub fn create(n: usize, multicast: bool) -> Result<Self, String> {
        let tag = std::process::id() % 100_000;
        let net = 16 + std::process::id() % 200;
        let prefix = format!("mml{tag}");
        let mut lan = Lan {
            switch: format!("{prefix}sw"),
            hosts: Vec::new(),
            prefix,
            net,
            children: Vec::new(),
            cuts: Vec::new(),
        };
        ip(&["netns", "add", &lan.switch])?;
        ip(&["-n", &lan.switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &lan.switch, "link", "set", "br0", "up"])?;
        for i in 0..n {
            let host = format!("{}h{i}", lan.prefix);
            ip(&["netns", "add", &host])?;
            lan.hosts.push(host.clone());
            let (inner, outer) = (format!("eth{i}"), format!("p{i}"));
            ip(&[
                "link",
                "add",
                &inner,
                "netns",
                &host,
                "type",
                "veth",
                "peer",
                "name",
                &outer,
                "netns",
                &lan.switch,
            ])?;
            ip(&["-n", &lan.switch, "link", "set", &outer, "master", "br0"])?;
            ip(&["-n", &lan.switch, "link", "set", &outer, "up"])?;
            let addr = format!("{}/24", lan.addr(i));
            ip(&["-n", &host, "addr", "add", &addr, "dev", &inner])?;
            ip(&["-n", &host, "link", "set", &inner, "up"])?;
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
            if multicast {
                ip(&["-n", &host, "link", "set", &inner, "multicast", "on"])?;
                ip(&["-n", &host, "route", "add", "224.0.0.0/4", "dev", &inner])?;
            }
        }
        Ok(lan)
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("10.213.{}.{}", self.net, i + 1)
    }

    /// Starts `program args` inside host `i`'s namespace, stdout to `out`.
    pub fn spawn(&mut self, i: usize, args: &[&str], out: &Path) -> &mut Child {
        let f = std::fs::File::create(out).expect("output file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i]])
            .args(args)
            .stdout(f)
            .stderr(Stdio::null())
            .spawn()
            .expect("ip netns exec starts");
        self.children.push(child);
        self.children.last_mut().expect("just pushed")
    }

    /// Starts `meshml node` in host `i` with its data in `data`, listening on the host's
    /// address (TCP 7000), its HTTP API on the host's own 127.0.0.1:7070 and 250 ms
    /// heartbeats, plus `extra`; its output goes to `data` with the extension `out`.
    pub fn start_node(&mut self, i: usize, data: &Path, extra: &[&str]) {
        let listen = format!("/ip4/{}/tcp/7000", self.addr(i));
        let data_dir = data.to_str().expect("a UTF-8 path").to_string();
        let mut args = vec![
            env!("CARGO_BIN_EXE_meshml"),
            "node",
            "--data-dir",
            &data_dir,
            "--listen",
            &listen,
            "--http",
            "127.0.0.1:7070",
            "--heartbeat-ms",
            "250",
        ];
        args.extend_from_slice(extra);
        self.spawn(i, &args, &data.with_extension("out"));
    }

    /// `meshml status --json` as host `i`'s node answers it (`Null` when it does not).
    pub fn status(&self, i: usize) -> serde_json::Value {
        let o = self.exec(i, &[env!("CARGO_BIN_EXE_meshml"), "status", "--json"]);
        serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Runs `program args` to completion inside host `i`'s namespace.
    pub fn exec(&self, i: usize, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.hosts[i]])
            .args(args)
            .output()
            .expect("ip netns exec runs")
    }

    /// Cuts every host in `side` off from every host not in it, both ways.
    pub fn partition(&mut self, side: &[usize]) -> Result<(), String> {
        for a in side.iter().copied() {
            for b in (0..self.hosts.len()).filter(|b| !side.contains(b)) {
                for (x, y) in [(a, b), (b, a)] {
                    let dst = format!("{}/32", self.addr(y));
                    ip(&["-n", &self.hosts[x], "route", "add", "blackhole", &dst])?;
                    self.cuts.push((x, y));
                }
            }
        }
        Ok(())
    }

    /// Restores every cut link.
    pub fn heal(&mut self) -> Result<(), String> {
        for (x, y) in std::mem::take(&mut self.cuts) {
            let dst = format!("{}/32", self.addr(y));
            ip(&["-n", &self.hosts[x], "route", "del", "blackhole", &dst])?;
        }
        Ok(())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Anything else still running in the namespaces (a child a program left behind)
        // goes too, before the namespaces are deleted.
        for h in &self.hosts {
            if let Ok(o) = Command::new("ip").args(["netns", "pids", h]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
        }
        for h in &self.hosts {
            let _ = ip(&["netns", "del", h]);
        }
        let _ = ip(&["netns", "del", &self.switch]);
    }
}

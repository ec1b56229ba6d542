//! Hosts in network namespaces for `meshml-sim run --hosts netns`: a "switch" namespace
//! holding a bridge, one namespace per host joined to it by a veth pair (addresses
//! 10.214.N.1, .2, ...), and a control namespace (10.214.N.254) where the simulator itself
//! runs, so that it reaches every node's HTTP API over the bridge. The machine's own
//! network is never touched: every address lives inside namespaces made here.
//!
//! Faults are real ones: a partition is a set of blackhole routes inside the hosts (exact:
//! hosts on one side still reach each other, and the control namespace reaches all), a
//! slow or lossy link is `tc netem` on the two hosts' interfaces, filtered to the other
//! end's address (where the kernel has `sch_netem`), and a kill is SIGKILL to the node's
//! process.
//!
//! Everything is removed when the [`Lan`] that made it is dropped (also on a panic), on
//! SIGINT or SIGTERM (see [`Lan::clean_on_signal`]), and by `meshml-sim netns-clean`,
//! which removes what a run killed outright left behind.

use std::process::Command;

/// Namespace names start with this, then the owning process's id.
const PREFIX: &str = "mmls";

/// What making or changing the namespaces failed at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// A tool could not be started.
    #[error("{program}: {source}")]
    Spawn {
        /// `ip` or `tc`.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("{program} {args}: {stderr}")]
    Failed {
        /// `ip` or `tc`.
        program: String,
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
    /// The kernel lacks `sch_netem`.
    #[error(
        "this kernel has no netem queueing discipline (sch_netem), which slow links between \
         namespaces need; run the scenario with --hosts in-process for message-level delays \
         ({0})"
    )]
    NoNetem(Box<NetnsError>),
    /// A `--lan` spec that does not parse.
    #[error("not a LAN spec: {0}")]
    BadSpec(String),
}

/// Runs `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<(), NetnsError> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), NetnsError> {
    let o = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            program: program.to_string(),
            source,
        })?;
    if o.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Failed {
            program: program.to_string(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        })
    }
}

/// A LAN of hosts; `owner` says whether dropping it removes the namespaces (the process
/// that made it) or not (the simulator running inside its control namespace).
#[derive(Debug)]
pub struct Lan {
    /// Namespace names start with this.
    pub prefix: String,
    /// The third byte of the 10.214.N.0/24 network.
    pub net: u32,
    /// Host count.
    pub hosts: usize,
    owner: bool,
    cuts: Vec<(usize, usize)>,
    /// Per host, the HTB classes in use (for the next slow link's class number).
    bands: Vec<u32>,
}

impl Lan {
    /// Creates `hosts` hosts and the control namespace. Fails (removing what it made)
    /// where namespaces cannot be made, as without root.
    pub fn create(hosts: usize) -> Result<Self, NetnsError> {
        let pid = std::process::id();
        let lan = Lan {
            prefix: format!("{PREFIX}{pid}"),
            net: pid % 250 + 1,
            hosts,
            owner: true,
            cuts: Vec::new(),
            bands: vec![0; hosts],
        };
        lan.build()?;
        Ok(lan)
    }

    /// The LAN made by another process (`spec` as [`Lan::spec`] wrote it), not removed on
    /// drop.
    pub fn attach(spec: &str) -> Result<Self, NetnsError> {
        let bad = || NetnsError::BadSpec(spec.to_string());
        let mut it = spec.split(',');
        let prefix = it.next().ok_or_else(bad)?.to_string();
        let net = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let hosts = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        if !prefix.starts_with(PREFIX) {
            return Err(bad());
        }
        Ok(Lan {
            prefix,
            net,
            hosts,
            owner: false,
            cuts: Vec::new(),
            bands: vec![0; hosts],
        })
    }

    /// What [`Lan::attach`] reads.
    pub fn spec(&self) -> String {
        format!("{},{},{}", self.prefix, self.net, self.hosts)
    }

    fn switch(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// Host `i`'s namespace.
    pub fn host(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }

    /// The control namespace.
    pub fn control(&self) -> String {
        format!("{}ctl", self.prefix)
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("10.214.{}.{}", self.net, i + 1)
    }

    /// Host `i`'s interface (inside its namespace).
    fn dev(i: usize) -> String {
        format!("eth{i}")
    }

    fn build(&self) -> Result<(), NetnsError> {
        let made = (|| {
            let sw = self.switch();
            ip(&["netns", "add", &sw])?;
            ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
            ip(&["-n", &sw, "link", "set", "br0", "up"])?;
            let mut ends: Vec<(String, String, String)> = (0..self.hosts)
                .map(|i| (self.host(i), Self::dev(i), format!("{}/24", self.addr(i))))
                .collect();
            ends.push((
                self.control(),
                "ctl0".into(),
                format!("10.214.{}.254/24", self.net),
            ));
            for (k, (ns, dev, addr)) in ends.iter().enumerate() {
                let outer = format!("p{k}");
                ip(&["netns", "add", ns])?;
                ip(&[
                    "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", &outer,
                    "netns", &sw,
                ])?;
                ip(&["-n", &sw, "link", "set", &outer, "master", "br0"])?;
                ip(&["-n", &sw, "link", "set", &outer, "up"])?;
                ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
                ip(&["-n", ns, "link", "set", dev, "up"])?;
                ip(&["-n", ns, "link", "set", "lo", "up"])?;
            }
            Ok(())
        })();
        if made.is_err() {
            remove(&self.prefix);
        }
        made
    }

    /// Cuts every host in `side` off from every host not in it, both ways.
    pub fn partition(&mut self, side: &[usize]) -> Result<(), NetnsError> {
        for a in side.iter().copied() {
            for b in (0..self.hosts).filter(|b| !side.contains(b)) {
                for (x, y) in [(a, b), (b, a)] {
                    let dst = format!("{}/32", self.addr(y));
                    ip(&["-n", &self.host(x), "route", "add", "blackhole", &dst])?;
                    self.cuts.push((x, y));
                }
            }
        }
        Ok(())
    }

    /// Delays (and loses a share of) the packets between hosts `a` and `b`, both ways:
    /// an HTB root on each end's interface (ordinary traffic in class 1:1), and per slow
    /// link a class with a `netem` leaf that a `u32` filter on the other end's address
    /// selects. Fails with a clear message where the kernel has no `netem` (`sch_netem`).
    pub fn slow_link(
        &mut self,
        a: usize,
        b: usize,
        delay_ms: u64,
        loss: f64,
    ) -> Result<(), NetnsError> {
        for (x, y) in [(a, b), (b, a)] {
            let (ns, dev) = (self.host(x), Self::dev(x));
            let tc = |args: &[&str]| -> Result<(), NetnsError> {
                let mut all = vec!["-n", ns.as_str()];
                all.extend_from_slice(args);
                run("tc", &all)
            };
            if self.bands[x] == 0 {
                tc(&[
                    "qdisc", "add", "dev", &dev, "root", "handle", "1:", "htb", "default", "1",
                ])?;
                tc(&[
                    "class", "add", "dev", &dev, "parent", "1:", "classid", "1:1", "htb", "rate",
                    "10gbit", "quantum", "60000",
                ])?;
                self.bands[x] = 1;
            }
            self.bands[x] += 1;
            let class = format!("1:{:x}", self.bands[x]);
            let handle = format!("{:x}:", self.bands[x] + 0x10);
            tc(&[
                "class", "add", "dev", &dev, "parent", "1:", "classid", &class, "htb", "rate",
                "10gbit", "quantum", "60000",
            ])?;
            let delay = format!("{delay_ms}ms");
            let loss = format!("{:.3}%", loss * 100.0);
            tc(&[
                "qdisc", "add", "dev", &dev, "parent", &class, "handle", &handle, "netem", "delay",
                &delay, "loss", &loss,
            ])
            .map_err(|e| match e {
                // tc's own words where the kernel lacks the qdisc.
                NetnsError::Failed { ref stderr, .. } if stderr.contains("unknown") => {
                    NetnsError::NoNetem(Box::new(e))
                }
                e => e,
            })?;
            let dst = format!("{}/32", self.addr(y));
            tc(&[
                "filter", "add", "dev", &dev, "parent", "1:0", "protocol", "ip", "prio", "1",
                "u32", "match", "ip", "dst", &dst, "flowid", &class,
            ])?;
        }
        Ok(())
    }

    /// Restores every cut and slowed link.
    pub fn heal(&mut self) -> Result<(), NetnsError> {
        for (x, y) in std::mem::take(&mut self.cuts) {
            let dst = format!("{}/32", self.addr(y));
            ip(&["-n", &self.host(x), "route", "del", "blackhole", &dst])?;
        }
        for x in 0..self.hosts {
            if self.bands[x] > 0 {
                let (ns, dev) = (self.host(x), Self::dev(x));
                run("tc", &["-n", &ns, "qdisc", "del", "dev", &dev, "root"])?;
                self.bands[x] = 0;
            }
        }
        Ok(())
    }

    /// Removes the LAN on SIGINT or SIGTERM, then exits (status 130), for the process that
    /// made it.
    pub fn clean_on_signal(&self) {
        let prefix = self.prefix.clone();
        let spawned = std::thread::Builder::new()
            .name("netns-cleanup".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    let Ok(mut term) =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    remove(&prefix);
                    std::process::exit(130);
                });
            });
        if let Err(e) = spawned {
            tracing::warn!(cause = %e, "no clean-up on signals");
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if self.owner {
            remove(&self.prefix);
        }
    }
}

/// The simulator's namespaces that exist now.
fn existing() -> Vec<String> {
    let o = Command::new("ip").args(["netns", "list"]).output();
    let Ok(o) = o else { return Vec::new() };
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(String::from)
        .collect()
}

/// Kills every process in the namespaces named `prefix...` and deletes them.
pub fn remove(prefix: &str) {
    let names: Vec<String> = existing()
        .into_iter()
        .filter(|n| {
            n.strip_prefix(prefix)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    for n in &names {
        if let Ok(o) = Command::new("ip").args(["netns", "pids", n]).output() {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
    for n in &names {
        let _ = ip(&["netns", "del", n]);
    }
}

/// Removes the namespaces of simulator runs whose process is gone; returns their names.
pub fn clean_stale() -> Vec<String> {
    let mut gone = Vec::new();
    for n in existing() {
        let digits: String = n[PREFIX.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let alive = !digits.is_empty() && std::path::Path::new("/proc").join(&digits).exists();
        if !alive {
            gone.push(n);
        }
    }
    let prefixes: std::collections::BTreeSet<String> = gone
        .iter()
        .map(|n| {
            let digits: String = n[PREFIX.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            format!("{PREFIX}{digits}")
        })
        .collect();
    for p in prefixes {
        remove(&p);
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_round_trips_and_bad_ones_are_refused() {
        let lan = Lan {
            prefix: "mmls42".into(),
            net: 43,
            hosts: 8,
            owner: false,
            cuts: Vec::new(),
            bands: vec![0; 8],
        };
        let back = Lan::attach(&lan.spec()).unwrap();
        assert_eq!(
            (back.prefix.as_str(), back.net, back.hosts),
            ("mmls42", 43, 8)
        );
        assert_eq!(back.addr(7), "10.214.43.8");
        assert_eq!(back.host(3), "mmls42h3");
        assert!(Lan::attach("other,1,2").is_err());
        assert!(Lan::attach("mmls1,x,2").is_err());
        assert!(!back.owner, "an attached LAN is not removed on drop");
    }
}

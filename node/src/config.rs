//! [`NodeConfig`]: what a node runs with, apart from the command line that fills it.
//!
//! `meshml node` maps its flags onto a `NodeConfig`; the demo, the simulator and tests build
//! one directly. [`NodeConfig::validate`] checks it as a whole before anything starts, so a
//! bad value is refused with the flag's name before a port is bound or a file written.

use std::path::PathBuf;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::NodeError;

/// Shortest heartbeat interval a node accepts.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);

/// The configuration of a node (the daemon).
///
/// [`NodeConfig::default`] is what `meshml node` runs with when no flag is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Data directory (identity key, datasets, Raft log). `None`: `$MESHML_DATA_DIR`, else
    /// `~/.meshml`. Default `None`.
    pub data_dir: Option<PathBuf>,
    /// libp2p addresses to listen on (multiaddrs). Default `/ip4/0.0.0.0/tcp/7000`.
    pub listen: Vec<String>,
    /// Peers to join through, `/ip4/ADDR/tcp/PORT/p2p/PEER_ID`. Default none.
    pub bootstrap: Vec<String>,
    /// Pre-shared key file: only nodes with the same key connect. Default none (open).
    pub secret_file: Option<PathBuf>,
    /// HTTP API address. Default `127.0.0.1:7070`.
    pub http: String,
    /// Bearer token file for the HTTP API; required when `http` is not a loopback
    /// address. Default none.
    pub http_token_file: Option<PathBuf>,
    /// Cluster name (nodes only form a cluster with the same name). Default `meshml`.
    pub cluster: String,
    /// Form the cluster once this many nodes (this one included) see each other. Default 1.
    pub expect: usize,
    /// How long to look for an existing cluster to join before forming one. Default 2 s.
    pub form_window: Duration,
    /// The driver removes a member unreachable this long. Default 30 s.
    pub remove_after: Duration,
    /// mDNS discovery on the local network. Default on.
    pub mdns: bool,
    /// Heartbeat interval, at least [`MIN_HEARTBEAT`]. Default 1 s.
    pub heartbeat: Duration,
    /// A peer silent this long is reported gone; longer than `heartbeat` (a node uses at
    /// least two heartbeats). Default 5 s.
    pub peer_timeout: Duration,
    /// A peer gone this long is forgotten (out of the peer table and the routing table).
    /// Default 10 minutes.
    pub forget_after: Duration,
    /// Tasks this node runs at once; `None`: its cores. Default `None`.
    pub slots: Option<usize>,
    /// Memory for datasets materialised for tasks, bytes (least recently used go first).
    /// Default 1 GiB.
    pub cache_bytes: u64,
    /// Memory for models loaded to serve predictions, bytes. Default 1 GiB.
    pub model_cache_bytes: u64,
    /// Memory a fit may take for its training data, bytes: a job whose dataset is larger
    /// runs data-parallel. `None`: half the memory available at start. Default `None`.
    pub train_memory_bytes: Option<u64>,
    /// Read back every stored chunk this often and replace copies that fail their check
    /// (a pass also runs shortly after start); `None` turns it off. Default one day.
    pub scrub_every: Option<Duration>,
    /// The scrubber reads at most this many bytes per second. Default 64 MiB.
    pub scrub_bytes_per_s: u64,
    /// Largest prediction request body, bytes (larger ones are refused with 413).
    /// Default 16 MiB.
    pub max_request_bytes: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            listen: vec!["/ip4/0.0.0.0/tcp/7000".into()],
            bootstrap: Vec::new(),
            secret_file: None,
            http: "127.0.0.1:7070".into(),
            http_token_file: None,
            cluster: "meshml".into(),
            expect: 1,
            form_window: Duration::from_millis(2000),
            remove_after: Duration::from_millis(30_000),
            mdns: true,
            heartbeat: Duration::from_millis(1000),
            peer_timeout: Duration::from_millis(5000),
            forget_after: Duration::from_secs(600),
            slots: None,
            cache_bytes: 1 << 30,
            model_cache_bytes: 1 << 30,
            train_memory_bytes: None,
            scrub_every: Some(Duration::from_secs(86_400)),
            scrub_bytes_per_s: 64 << 20,
            max_request_bytes: 16 << 20,
        }
    }
}

/// The addresses of a checked configuration, parsed.
#[derive(Debug)]
pub(crate) struct Addresses {
    /// Where to listen.
    pub listen: Vec<Multiaddr>,
    /// Whom to join through.
    pub bootstrap: Vec<(PeerId, Multiaddr)>,
}

fn usage(msg: impl Into<String>) -> NodeError {
    NodeError::Usage(msg.into())
}

/// Splits `/ip4/.../p2p/ID` into peer id and address.
pub fn parse_bootstrap(s: &str) -> Result<(PeerId, Multiaddr), NodeError> {
    let addr: Multiaddr = s
        .parse()
        .map_err(|e| usage(format!("--bootstrap {s}: not a multiaddr ({e})")))?;
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok((peer, addr)),
        _ => Err(usage(format!(
            "--bootstrap {s}: must end with /p2p/PEER_ID (printed by the node at start-up)"
        ))),
    }
}

/// Whether an HTTP bind address is on the loopback interface.
pub fn is_loopback(http: &str) -> bool {
    http.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or_else(|_| http.starts_with("localhost:"))
}

impl NodeConfig {
    /// Checks the configuration as a whole; the error names the flag at fault.
    pub fn validate(&self) -> Result<(), NodeError> {
        self.addresses().map(|_| ())
    }

    /// Checks the configuration and parses its addresses.
    pub(crate) fn addresses(&self) -> Result<Addresses, NodeError> {
        if self.listen.is_empty() {
            return Err(usage("--listen: give at least one address"));
        }
        let listen = self
            .listen
            .iter()
            .map(|l| {
                l.parse()
                    .map_err(|e| usage(format!("--listen {l}: not a multiaddr ({e})")))
            })
            .collect::<Result<_, _>>()?;
        let bootstrap = self
            .bootstrap
            .iter()
            .map(|b| parse_bootstrap(b))
            .collect::<Result<_, _>>()?;
        if self.http_token_file.is_none() && !is_loopback(&self.http) {
            return Err(usage(format!(
                "--http {} is not a loopback address: give --http-token-file so the API is not open to the network",
                self.http
            )));
        }
        if self.cluster.is_empty() {
            return Err(usage("--cluster: the cluster name is empty"));
        }
        if self.expect == 0 {
            return Err(usage("--expect: at least 1 (this node)"));
        }
        if self.slots == Some(0) {
            return Err(usage("--slots: at least 1"));
        }
        if self.heartbeat < MIN_HEARTBEAT {
            return Err(usage(format!(
                "--heartbeat-ms {}: at least {} ms",
                self.heartbeat.as_millis(),
                MIN_HEARTBEAT.as_millis()
            )));
        }
        if self.peer_timeout <= self.heartbeat {
            return Err(usage(format!(
                "--peer-timeout-ms {} must be longer than --heartbeat-ms {} (else every peer is gone between two heartbeats)",
                self.peer_timeout.as_millis(),
                self.heartbeat.as_millis()
            )));
        }
        if self.scrub_every.is_some() && self.scrub_bytes_per_s == 0 {
            return Err(usage(
                "--scrub-mb-s: at least 1 while scrubbing is on (--scrub-every-s 0 turns it off)",
            ));
        }
        if self.max_request_bytes == 0 {
            return Err(usage("--max-request-mb: at least 1"));
        }
        Ok(Addresses { listen, bootstrap })
    }

    /// The peer timeout the membership uses: at least two heartbeats.
    pub fn effective_peer_timeout(&self) -> Duration {
        self.peer_timeout.max(self.heartbeat * 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: &NodeConfig) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn the_defaults_are_valid() {
        NodeConfig::default().validate().unwrap();
    }

    #[test]
    fn an_api_off_loopback_needs_a_token() {
        let mut c = NodeConfig {
            http: "0.0.0.0:7070".into(),
            ..NodeConfig::default()
        };
        assert!(err(&c).contains("--http 0.0.0.0:7070 is not a loopback address"));
        c.http_token_file = Some("token".into());
        c.validate().unwrap();
        for loopback in ["127.0.0.1:0", "[::1]:7070", "localhost:7070"] {
            let c = NodeConfig {
                http: loopback.into(),
                ..NodeConfig::default()
            };
            c.validate().unwrap();
        }
    }

    #[test]
    fn addresses_must_parse() {
        let c = NodeConfig {
            listen: vec!["tcp/7000".into()],
            ..NodeConfig::default()
        };
        assert!(err(&c).contains("--listen tcp/7000: not a multiaddr"));
        let c = NodeConfig {
            listen: Vec::new(),
            ..NodeConfig::default()
        };
        assert!(err(&c).contains("--listen"));
        let c = NodeConfig {
            bootstrap: vec!["/ip4/127.0.0.1/tcp/7000".into()],
            ..NodeConfig::default()
        };
        assert!(err(&c).contains("must end with /p2p/PEER_ID"));
        let c = NodeConfig {
            bootstrap: vec!["nonsense".into()],
            ..NodeConfig::default()
        };
        assert!(err(&c).contains("--bootstrap nonsense: not a multiaddr"));
        let peer = PeerId::random();
        let c = NodeConfig {
            bootstrap: vec![format!("/ip4/127.0.0.1/tcp/7000/p2p/{peer}")],
            ..NodeConfig::default()
        };
        let a = c.addresses().unwrap();
        assert_eq!(a.bootstrap[0].0, peer);
        assert_eq!(a.listen.len(), 1);
    }

    #[test]
    fn counts_and_intervals_are_checked() {
        let bad = [
            NodeConfig {
                slots: Some(0),
                ..NodeConfig::default()
            },
            NodeConfig {
                expect: 0,
                ..NodeConfig::default()
            },
            NodeConfig {
                cluster: String::new(),
                ..NodeConfig::default()
            },
            NodeConfig {
                heartbeat: Duration::from_millis(5),
                ..NodeConfig::default()
            },
            NodeConfig {
                heartbeat: Duration::from_millis(500),
                peer_timeout: Duration::from_millis(500),
                ..NodeConfig::default()
            },
            NodeConfig {
                scrub_bytes_per_s: 0,
                ..NodeConfig::default()
            },
            NodeConfig {
                max_request_bytes: 0,
                ..NodeConfig::default()
            },
        ];
        let flags = [
            "--slots",
            "--expect",
            "--cluster",
            "--heartbeat-ms",
            "--peer-timeout-ms",
            "--scrub-mb-s",
            "--max-request-mb",
        ];
        for (c, flag) in bad.iter().zip(flags) {
            assert!(err(c).contains(flag), "{flag}: {}", err(c));
        }
        // Scrubbing off: its rate does not matter.
        NodeConfig {
            scrub_every: None,
            scrub_bytes_per_s: 0,
            ..NodeConfig::default()
        }
        .validate()
        .unwrap();
        NodeConfig {
            slots: Some(1),
            ..NodeConfig::default()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn a_short_peer_timeout_is_raised_to_two_heartbeats() {
        let c = NodeConfig {
            heartbeat: Duration::from_millis(1000),
            peer_timeout: Duration::from_millis(1500),
            ..NodeConfig::default()
        };
        c.validate().unwrap();
        assert_eq!(c.effective_peer_timeout(), Duration::from_millis(2000));
    }

    #[test]
    fn bootstrap_addresses_need_a_peer_id() {
        let id = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let (p, a) = parse_bootstrap(&format!("/ip4/127.0.0.1/tcp/7000/p2p/{id}")).unwrap();
        assert_eq!(p, id);
        assert_eq!(a.to_string(), format!("/ip4/127.0.0.1/tcp/7000/p2p/{id}"));
        assert!(parse_bootstrap("/ip4/127.0.0.1/tcp/7000")
            .unwrap_err()
            .to_string()
            .contains("/p2p/PEER_ID"));
        assert!(parse_bootstrap("nonsense").is_err());
        assert!(
            is_loopback("127.0.0.1:7070") && is_loopback("[::1]:1") && !is_loopback("0.0.0.0:7070")
        );
    }
}

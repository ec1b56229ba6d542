//! The network: one task owns the libp2p [`Swarm`](libp2p::Swarm); everything else talks
//! to it through a cloneable [`Client`] (bounded command queue, one-shot replies) and
//! receives what happens on the network as [`Event`]s from a bounded queue.
//!
//! The swarm runs tcp + (optional pre-shared-key private network) + noise + yamux, with
//! identify, ping, Kademlia (server mode, private protocol name), mDNS, gossipsub for small
//! control messages, and request-response with the MessagePack [`codec`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), meshml_node::network::NetworkError> {
//! use meshml_node::network::{self, NetworkConfig};
//! let key = libp2p::identity::Keypair::generate_ed25519();
//! let (client, mut events, event_loop) = network::new(key, NetworkConfig::default())?;
//! tokio::spawn(event_loop.run());
//! client.listen("/ip4/127.0.0.1/tcp/0".parse().unwrap()).await?;
//! while let Some(event) = events.recv().await {
//!     // hand it to the actors
//! #   let _ = event;
//! }
//! # Ok(()) }
//! ```

pub mod codec;
mod event_loop;
pub mod faults;
pub mod identity;

use std::time::Duration;

use libp2p::{
    allow_block_list, connection_limits, gossipsub, identify, kad, mdns, ping, request_response,
    swarm::behaviour::toggle::Toggle,
};
use libp2p::{Multiaddr, PeerId};
use meshml_protocol::{Announcement, Capabilities, Request, Response};
use tokio::sync::{mpsc, oneshot};

pub use event_loop::EventLoop;

/// Kademlia protocol name: a private DHT, not the public IPFS one.
pub const KAD_PROTOCOL: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/meshml/kad/1");
/// Identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/meshml/id/1";
/// Gossipsub topic of control announcements.
pub const CONTROL_TOPIC: &str = "meshml/control/1";

/// Network settings. [`NetworkConfig::default`] documents the defaults.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Pre-shared key of a private cluster; peers without it cannot connect.
    pub psk: Option<libp2p::pnet::PreSharedKey>,
    /// Run mDNS discovery (default true; it ignores loopback).
    pub mdns: bool,
    /// Idle connections are kept this long (default 1 hour, for long-running nodes).
    pub idle_timeout: Duration,
    /// Request-response timeout (default 30 s).
    pub request_timeout: Duration,
    /// Capacity of the command and event queues (default 1024).
    pub queue: usize,
    /// What this node offers, advertised through identify.
    pub capabilities: Capabilities,
    /// Cluster name, advertised through identify.
    pub cluster: String,
    /// Simulated link faults (the simulator's); `None` for a real node.
    pub faults: Option<std::sync::Arc<faults::LinkFaults>>,
    /// A connected peer that has not identified itself as a meshml node of this cluster
    /// within this time is disconnected (default 5 s). Until it has, it is in no peer
    /// list, routing table or redial set.
    pub identify_timeout: Duration,
    /// A peer that identified as another protocol family or cluster is refused this long
    /// (default 10 minutes).
    pub refuse_for: Duration,
    /// Established connections at most per peer (default 4) and in all (default 512).
    pub max_connections_per_peer: u32,
    /// See `max_connections_per_peer`.
    pub max_connections: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            psk: None,
            mdns: true,
            idle_timeout: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
            queue: 1024,
            capabilities: Capabilities {
                cores: 1,
                memory_bytes: 0,
                free_disk_bytes: 0,
                started_ms: 0,
            },
            cluster: "meshml".into(),
            faults: None,
            identify_timeout: Duration::from_secs(5),
            refuse_for: Duration::from_secs(600),
            max_connections_per_peer: 4,
            max_connections: 512,
        }
    }
}

impl NetworkConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), NetworkError> {
        if self.queue == 0 {
            return Err(NetworkError::Config(
                "queue capacity must be at least 1".into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(NetworkError::Config(
                "request timeout must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Network failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// Invalid settings.
    #[error("network configuration: {0}")]
    Config(String),
    /// The transport or behaviour could not be built.
    #[error("cannot build the network: {0}")]
    Build(String),
    /// Listening failed.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        message: String,
    },
    /// Dialing failed.
    #[error("cannot dial {0}")]
    Dial(String),
    /// A request failed (timeout, connection lost, refused).
    #[error("request to {peer} failed: {message}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        message: String,
    },
    /// Publishing an announcement failed.
    #[error("cannot publish: {0}")]
    Publish(String),
    /// The event loop has stopped.
    #[error("the network event loop has stopped")]
    Stopped,
    /// Reading a key file failed.
    #[error("{0}")]
    Key(String),
}

/// What the network reports to the node.
#[derive(Debug)]
pub enum Event {
    /// Listening on a new address.
    Listening(Multiaddr),
    /// A connection to a peer opened (the first one).
    Connected(PeerId),
    /// The last connection to a peer closed.
    Disconnected(PeerId),
    /// A peer said who it is.
    Identified {
        /// The peer.
        peer: PeerId,
        /// Its listen addresses.
        addrs: Vec<Multiaddr>,
        /// Its agent string (`meshml/VERSION`).
        agent: String,
        /// Parsed capabilities and protocol version, if it is a meshml node.
        info: Option<PeerAdvert>,
    },
    /// A request from a peer; answer it with [`Client::respond`].
    Request {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: Request,
        /// Where the answer goes.
        channel: request_response::ResponseChannel<Response>,
    },
    /// An announcement from a peer.
    Announcement {
        /// The original sender.
        from: PeerId,
        /// The announcement.
        message: Announcement,
    },
}

/// What a meshml node advertises about itself through identify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAdvert {
    /// Its protocol version.
    pub protocol_version: u32,
    /// Its cluster name.
    pub cluster: String,
    /// What it offers.
    pub capabilities: Capabilities,
}

impl PeerAdvert {
    /// The identify agent string: `meshml/0.1.0 proto=1 cluster=NAME cores=2 mem=... disk=...
    /// started=...`.
    pub fn agent_string(&self) -> String {
        format!(
            "meshml/{} proto={} cluster={} cores={} mem={} disk={} started={}",
            env!("CARGO_PKG_VERSION"),
            self.protocol_version,
            self.cluster,
            self.capabilities.cores,
            self.capabilities.memory_bytes,
            self.capabilities.free_disk_bytes,
            self.capabilities.started_ms
        )
    }

    /// Parses an agent string; `None` if it is not a meshml node's.
    pub fn parse(agent: &str) -> Option<Self> {
        let mut parts = agent.split_whitespace();
        if !parts.next()?.starts_with("meshml/") {
            return None;
        }
        let mut advert = PeerAdvert {
            protocol_version: 0,
            cluster: String::new(),
            capabilities: Capabilities {
                cores: 0,
                memory_bytes: 0,
                free_disk_bytes: 0,
                started_ms: 0,
            },
        };
        for kv in parts {
            let (k, v) = kv.split_once('=')?;
            match k {
                "proto" => advert.protocol_version = v.parse().ok()?,
                "cluster" => advert.cluster = v.to_string(),
                "cores" => advert.capabilities.cores = v.parse().ok()?,
                "mem" => advert.capabilities.memory_bytes = v.parse().ok()?,
                "disk" => advert.capabilities.free_disk_bytes = v.parse().ok()?,
                "started" => advert.capabilities.started_ms = v.parse().ok()?,
                _ => {}
            }
        }
        Some(advert)
    }
}

/// Commands from [`Client`] to the [`EventLoop`].
#[derive(Debug)]
pub(crate) enum Command {
    Listen {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    AddBootstrap {
        peer: PeerId,
        addr: Multiaddr,
    },
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, NetworkError>>,
    },
    Respond {
        channel: request_response::ResponseChannel<Response>,
        response: Response,
    },
    Publish {
        message: Announcement,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Disconnect {
        peer: PeerId,
    },
    Forget {
        peer: PeerId,
    },
}

/// A cloneable handle to the network.
#[derive(Debug, Clone)]
pub struct Client {
    local: PeerId,
    commands: mpsc::Sender<Command>,
    faults: Option<std::sync::Arc<faults::LinkFaults>>,
}

impl Client {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetworkError::Stopped)?;
        rx.await.map_err(|_| NetworkError::Stopped)
    }

    /// Starts listening on `addr`.
    pub async fn listen(&self, addr: Multiaddr) -> Result<(), NetworkError> {
        self.call(|reply| Command::Listen { addr, reply }).await?
    }

    /// Dials `addr` (which may end in `/p2p/PEER_ID`).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetworkError> {
        self.call(|reply| Command::Dial { addr, reply }).await?
    }

    /// Adds a bootstrap peer to Kademlia and dials it.
    pub async fn bootstrap(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NetworkError> {
        self.commands
            .send(Command::AddBootstrap { peer, addr })
            .await
            .map_err(|_| NetworkError::Stopped)
    }

    /// Sends a request and waits for the response.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, NetworkError> {
        if let Some(f) = &self.faults {
            match f.outbound(&self.local, &peer) {
                Err(why) => {
                    return Err(NetworkError::Request {
                        peer,
                        message: why.into(),
                    })
                }
                Ok(d) if !d.is_zero() => tokio::time::sleep(d).await,
                Ok(_) => {}
            }
        }
        self.call(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Answers an inbound request.
    pub async fn respond(
        &self,
        channel: request_response::ResponseChannel<Response>,
        response: Response,
    ) -> Result<(), NetworkError> {
        self.commands
            .send(Command::Respond { channel, response })
            .await
            .map_err(|_| NetworkError::Stopped)
    }

    /// Broadcasts an announcement to the cluster.
    pub async fn publish(&self, message: Announcement) -> Result<(), NetworkError> {
        self.call(|reply| Command::Publish { message, reply })
            .await?
    }

    /// The addresses this node listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Fetches a whole chunk from `peer` in pieces of at most
    /// [`meshml_protocol::MAX_PIECE`] bytes (one request in flight), checking its BLAKE3
    /// hash at the end. Objects of any size cross in frames of at most 4 MiB.
    pub async fn fetch_chunk(
        &self,
        peer: PeerId,
        id: meshml_protocol::ChunkId,
    ) -> Result<Vec<u8>, NetworkError> {
        let fail = |message: String| NetworkError::Request { peer, message };
        let mut out: Vec<u8> = Vec::new();
        loop {
            let request = Request::GetChunk {
                id,
                offset: out.len() as u64,
                max_len: meshml_protocol::MAX_PIECE as u32,
            };
            match self.request(peer, request).await? {
                Response::Piece(p) => {
                    if p.offset != out.len() as u64 || p.bytes.len() > meshml_protocol::MAX_PIECE {
                        return Err(fail(format!(
                            "piece at offset {} does not continue at {}",
                            p.offset,
                            out.len()
                        )));
                    }
                    if p.bytes.is_empty() && (out.len() as u64) < p.total_len {
                        return Err(fail("empty piece before the end of the chunk".into()));
                    }
                    if out.capacity() == 0 {
                        out.reserve_exact(p.total_len.min(1 << 32) as usize);
                    }
                    out.extend_from_slice(&p.bytes);
                    if out.len() as u64 >= p.total_len {
                        break;
                    }
                }
                Response::Error(e) => return Err(fail(format!("{:?}: {}", e.code, e.message))),
                other => return Err(fail(format!("unexpected answer {other:?}"))),
            }
        }
        let actual = *blake3::hash(&out).as_bytes();
        if &actual != id.as_bytes() {
            return Err(fail(format!("chunk {id} arrived corrupt")));
        }
        Ok(out)
    }

    /// Closes every connection to `peer`.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetworkError> {
        self.commands
            .send(Command::Disconnect { peer })
            .await
            .map_err(|_| NetworkError::Stopped)
    }

    /// Drops a peer gone for good from the routing table, so that nothing redials it.
    pub async fn forget(&self, peer: PeerId) -> Result<(), NetworkError> {
        self.commands
            .send(Command::Forget { peer })
            .await
            .map_err(|_| NetworkError::Stopped)
    }
}

/// The behaviours of a meshml swarm.
#[derive(libp2p::swarm::NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Peers refused for a while (another protocol family or cluster): their connections
    /// are closed and new ones denied.
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Caps on connections, per peer and in all.
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    gossipsub: gossipsub::Behaviour,
    rr: request_response::Behaviour<codec::MsgpackCodec>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Behaviour")
    }
}

/// Builds the network: a client handle, the event queue, and the event loop to spawn.
pub fn new(
    key: libp2p::identity::Keypair,
    config: NetworkConfig,
) -> Result<(Client, mpsc::Receiver<Event>, EventLoop), NetworkError> {
    config.validate()?;
    let local = key.public().to_peer_id();
    let swarm = event_loop::build_swarm(key, &config)?;
    let (cmd_tx, cmd_rx) = mpsc::channel(config.queue);
    let (ev_tx, ev_rx) = mpsc::channel(config.queue);
    Ok((
        Client {
            local,
            commands: cmd_tx,
            faults: config.faults.clone(),
        },
        ev_rx,
        EventLoop::new(swarm, cmd_rx, ev_tx, &config),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_strings_round_trip() {
        let a = PeerAdvert {
            protocol_version: 1,
            cluster: "lab".into(),
            capabilities: Capabilities {
                cores: 16,
                memory_bytes: 1 << 34,
                free_disk_bytes: 123,
                started_ms: 0,
            },
        };
        assert_eq!(PeerAdvert::parse(&a.agent_string()), Some(a));
        assert_eq!(PeerAdvert::parse("rust-libp2p/0.57"), None);
        assert_eq!(PeerAdvert::parse("meshml/0.1 proto=x"), None);
    }
}

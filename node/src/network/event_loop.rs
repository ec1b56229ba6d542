//! The task that owns the swarm.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::upgrade::Version;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{
    connection_limits, gossipsub, identify, kad, mdns, noise, ping, tcp, yamux, Multiaddr, PeerId,
    Swarm, Transport,
};
use meshml_protocol::{decode, encode, Announcement, Response, PROTOCOL_VERSION};
use tokio::sync::{mpsc, oneshot};

use super::{
    codec, Behaviour, BehaviourEvent, Command, Event, NetworkConfig, NetworkError, PeerAdvert,
};

/// How long a peer that connected and never identified is refused.
const SILENT_REFUSED_FOR: Duration = Duration::from_secs(60);

/// Largest gossip message: control traffic only.
const MAX_GOSSIP: usize = 64 * 1024;

pub(crate) fn build_swarm(
    key: libp2p::identity::Keypair,
    config: &NetworkConfig,
) -> Result<Swarm<Behaviour>, NetworkError> {
    let build = |e: &dyn std::fmt::Display| NetworkError::Build(e.to_string());
    let psk = config.psk;
    let advert = PeerAdvert {
        protocol_version: PROTOCOL_VERSION,
        cluster: config.cluster.clone(),
        capabilities: config.capabilities.clone(),
    };
    let mdns_on = config.mdns;
    let request_timeout = config.request_timeout;
    let (max_per_peer, max_total) = (
        config.max_connections_per_peer.max(1),
        config.max_connections.max(1),
    );
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(
            |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
                let noise = noise::Config::new(key)?;
                let yamux = yamux::Config::default();
                Ok(match psk {
                    Some(psk) => tcp
                        .and_then(move |socket, _| {
                            libp2p::pnet::PnetConfig::new(psk).handshake(socket)
                        })
                        .upgrade(Version::V1Lazy)
                        .authenticate(noise)
                        .multiplex(yamux)
                        .map(|(p, m), _| (p, StreamMuxerBox::new(m)))
                        .boxed(),
                    None => tcp
                        .upgrade(Version::V1Lazy)
                        .authenticate(noise)
                        .multiplex(yamux)
                        .map(|(p, m), _| (p, StreamMuxerBox::new(m)))
                        .boxed(),
                })
            },
        )
        .map_err(|e| build(&e))?
        .with_behaviour(
            |key| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                let peer = key.public().to_peer_id();
                let identify = identify::Behaviour::new(
                    identify::Config::new(super::IDENTIFY_PROTOCOL.into(), key.public())
                        .with_agent_version(advert.agent_string()),
                );
                let mut kad_cfg = kad::Config::new(super::KAD_PROTOCOL);
                kad_cfg.set_query_timeout(Duration::from_secs(30));
                let mut kad =
                    kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), kad_cfg);
                // Without a confirmed external address Kademlia would stay a client.
                kad.set_mode(Some(kad::Mode::Server));
                let mdns = if mdns_on {
                    Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer)?)
                } else {
                    None
                };
                let gossip_cfg = gossipsub::ConfigBuilder::default()
                    .heartbeat_interval(Duration::from_secs(1))
                    .validation_mode(gossipsub::ValidationMode::Strict)
                    .max_transmit_size(MAX_GOSSIP)
                    .build()?;
                let mut gossipsub = gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    gossip_cfg,
                )?;
                gossipsub.subscribe(&gossipsub::IdentTopic::new(super::CONTROL_TOPIC))?;
                let rr = request_response::Behaviour::with_codec(
                    codec::MsgpackCodec::default(),
                    [(codec::PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(request_timeout),
                );
                let limits = connection_limits::ConnectionLimits::default()
                    .with_max_established_per_peer(Some(max_per_peer))
                    .with_max_established(Some(max_total))
                    .with_max_pending_incoming(Some(max_total.min(128)));
                Ok(Behaviour {
                    blocked: Default::default(),
                    limits: connection_limits::Behaviour::new(limits),
                    identify,
                    ping: ping::Behaviour::new(ping::Config::new()),
                    kad,
                    mdns: mdns.into(),
                    gossipsub,
                    rr,
                })
            },
        )
        .map_err(|e| build(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

/// Owns the swarm: runs until every [`super::Client`] is dropped.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    pending_requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, NetworkError>>>,
    pending_dials: HashMap<libp2p::swarm::ConnectionId, oneshot::Sender<Result<(), NetworkError>>>,
    /// This node's cluster: peers of another are refused.
    cluster: String,
    /// Connected peers that have not identified yet, since when, and where they came from.
    unidentified: HashMap<PeerId, (Instant, Multiaddr)>,
    /// Connected peers identified as meshml nodes of this cluster.
    identified: HashSet<PeerId>,
    /// Peers refused (blocked) until then.
    refused: HashMap<PeerId, Instant>,
    identify_timeout: Duration,
    refuse_for: Duration,
    topic: gossipsub::IdentTopic,
    dropped_events: u64,
    faults: Option<std::sync::Arc<super::faults::LinkFaults>>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer", self.swarm.local_peer_id())
            .field("pending_requests", &self.pending_requests.len())
            .finish()
    }
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
        config: &NetworkConfig,
    ) -> Self {
        Self {
            swarm,
            commands,
            events,
            pending_requests: HashMap::new(),
            pending_dials: HashMap::new(),
            cluster: config.cluster.clone(),
            unidentified: HashMap::new(),
            identified: HashSet::new(),
            refused: HashMap::new(),
            identify_timeout: config.identify_timeout,
            refuse_for: config.refuse_for,
            topic: gossipsub::IdentTopic::new(super::CONTROL_TOPIC),
            dropped_events: 0,
            faults: config.faults.clone(),
        }
    }

    /// Drops peers that have not identified in time, and lifts refusals that expired.
    fn check_peers(&mut self) {
        let now = Instant::now();
        let late: Vec<PeerId> = self
            .unidentified
            .iter()
            .filter(|(_, (since, _))| now.duration_since(*since) >= self.identify_timeout)
            .map(|(p, _)| *p)
            .collect();
        for peer in late {
            tracing::info!(%peer, timeout_ms = self.identify_timeout.as_millis() as u64, "peer did not identify in time");
            // Refused for a minute, so that it cannot hold a connection by redialing.
            self.refuse(peer, "did not identify in time", SILENT_REFUSED_FOR);
        }
        let expired: Vec<PeerId> = self
            .refused
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.refused.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    /// Refuses a peer that is not a meshml node of this cluster: closed, out of the routing
    /// table, and blocked for a while (at most a bounded number of them are remembered).
    fn refuse(&mut self, peer: PeerId, why: &str, ban: Duration) {
        tracing::info!(%peer, why, "refusing a peer");
        self.unidentified.remove(&peer);
        if self.identified.remove(&peer) {
            // It was reported connected: report it gone.
            self.emit(Event::Disconnected(peer));
        }
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
        const MAX_REFUSED: usize = 4096;
        if self.refused.len() >= MAX_REFUSED {
            // Forget the refusal closest to its end.
            if let Some(first) = self
                .refused
                .iter()
                .min_by_key(|(_, u)| **u)
                .map(|(p, _)| *p)
            {
                self.refused.remove(&first);
                self.swarm.behaviour_mut().blocked.unblock_peer(first);
            }
        }
        self.refused.insert(peer, Instant::now() + ban);
        // Blocking closes its connections and denies new ones.
        self.swarm.behaviour_mut().blocked.block_peer(peer);
    }

    /// Why a peer's identify refuses it, if it does.
    fn foreign(&self, advert: Option<&PeerAdvert>) -> Option<String> {
        match advert {
            None => Some("not a meshml node".into()),
            Some(a) if a.protocol_version != PROTOCOL_VERSION => Some(format!(
                "speaks meshml protocol {}, this node {}",
                a.protocol_version, PROTOCOL_VERSION
            )),
            Some(a) if a.cluster != self.cluster => Some(format!(
                "belongs to cluster '{}', this node to '{}'",
                a.cluster, self.cluster
            )),
            Some(_) => None,
        }
    }

    /// Whether requests and announcements from `peer` are taken: it identified as one of
    /// this cluster's nodes, or its identify is still on the way (a request can race it).
    fn accepts(&self, peer: &PeerId) -> bool {
        !self.refused.contains_key(peer)
    }

    /// Runs the loop.
    #[tracing::instrument(skip(self), fields(peer = %self.swarm.local_peer_id()))]
    pub async fn run(mut self) {
        let mut bootstrap_tick = tokio::time::interval(Duration::from_secs(10));
        let mut peer_tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => {
                        tracing::debug!("every client is gone; the network stops");
                        return;
                    }
                },
                _ = peer_tick.tick() => self.check_peers(),
                _ = bootstrap_tick.tick() => {
                    // Refresh the routing table; finds peers that joined through others.
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
        }
    }

    /// Whether the simulated link from `peer` to this node is cut.
    fn cut_from(&self, peer: &libp2p::PeerId) -> bool {
        self.faults
            .as_ref()
            .is_some_and(|f| f.is_cut(peer, self.swarm.local_peer_id()))
    }

    /// Hands an event to the node; a full queue drops it (and says so) rather than stall
    /// the swarm. A request that cannot be queued is answered "unavailable, retry".
    fn emit(&mut self, event: Event) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Event::Request { channel, peer, .. })) => {
                tracing::warn!(%peer, "event queue full: refusing a request");
                let _ = self.swarm.behaviour_mut().rr.send_response(
                    channel,
                    Response::Error(meshml_protocol::RemoteError {
                        code: meshml_protocol::ErrorCode::Unavailable,
                        message: "node busy".into(),
                        retryable: true,
                    }),
                );
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped_events += 1;
                tracing::warn!(
                    dropped = self.dropped_events,
                    "event queue full: event dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Listen { addr, reply } => {
                let r = self.swarm.listen_on(addr.clone()).map(|_| ()).map_err(|e| {
                    NetworkError::Listen {
                        addr,
                        message: e.to_string(),
                    }
                });
                let _ = reply.send(r);
            }
            Command::Dial { addr, reply } => {
                let opts = libp2p::swarm::dial_opts::DialOpts::unknown_peer_id()
                    .address(addr.clone())
                    .build();
                let peer = addr.iter().find_map(|p| match p {
                    libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                    _ => None,
                });
                let opts = match peer {
                    Some(p) => libp2p::swarm::dial_opts::DialOpts::peer_id(p)
                        .addresses(vec![addr.clone()])
                        .build(),
                    None => opts,
                };
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetworkError::Dial(format!("{addr}: {e}"))));
                    }
                }
            }
            Command::AddBootstrap { peer, addr } => {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::warn!(%peer, %addr, cause = %e, "cannot dial bootstrap peer");
                }
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = self.swarm.behaviour_mut().rr.send_request(&peer, request);
                self.pending_requests.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .rr
                    .send_response(channel, response)
                    .is_err()
                {
                    tracing::debug!("response not sent: the requester is gone");
                }
            }
            Command::Publish { message, reply } => {
                let r = encode(&message, MAX_GOSSIP)
                    .map_err(|e| NetworkError::Publish(e.to_string()))
                    .and_then(|bytes| {
                        self.swarm
                            .behaviour_mut()
                            .gossipsub
                            .publish(self.topic.clone(), bytes)
                            .map(|_| ())
                            .map_err(|e| NetworkError::Publish(e.to_string()))
                    });
                let _ = reply.send(r);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Disconnect { peer } => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Forget { peer } => {
                if !self.swarm.is_connected(&peer) {
                    self.swarm.behaviour_mut().kad.remove_peer(&peer);
                }
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.emit(Event::Listening(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                connection_id,
                endpoint,
                ..
            } => {
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
                // Nothing learns of the peer until it identifies as one of this cluster's
                // nodes (or it is dropped after `identify_timeout`).
                if num_established.get() == 1 && !self.identified.contains(&peer_id) {
                    tracing::debug!(peer = %peer_id, "connected; waiting for identify");
                    self.unidentified.insert(
                        peer_id,
                        (Instant::now(), endpoint.get_remote_address().clone()),
                    );
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.unidentified.remove(&peer_id);
                if self.identified.remove(&peer_id) {
                    tracing::debug!(peer = %peer_id, "disconnected");
                    self.emit(Event::Disconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
                ..
            } => {
                tracing::debug!(peer = ?peer_id, cause = %error, "outgoing connection failed");
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetworkError::Dial(error.to_string())));
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(from = %send_back_addr, cause = %error, "incoming connection refused");
            }
            SwarmEvent::Behaviour(b) => self.on_behaviour_event(b),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let advert = PeerAdvert::parse(&info.agent_version);
                if let Some(why) = self.foreign(advert.as_ref()) {
                    tracing::info!(peer = %peer_id, agent = %info.agent_version, "{why}");
                    self.refuse(peer_id, &why, self.refuse_for);
                    return;
                }
                let from = self.unidentified.remove(&peer_id).map(|(_, a)| a);
                let kad = &mut self.swarm.behaviour_mut().kad;
                for a in info.listen_addrs.iter().chain(from.iter()) {
                    kad.add_address(&peer_id, a.clone());
                }
                if self.identified.insert(peer_id) {
                    tracing::debug!(peer = %peer_id, "connected and identified");
                    self.emit(Event::Connected(peer_id));
                }
                self.emit(Event::Identified {
                    peer: peer_id,
                    addrs: info.listen_addrs,
                    agent: info.agent_version,
                    info: advert,
                });
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. })
                if self.refused.contains_key(&peer) =>
            {
                self.swarm.behaviour_mut().kad.remove_peer(&peer);
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) if !self.swarm.is_connected(&peer) && peer != *self.swarm.local_peer_id() => {
                let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                    .addresses(addresses.into_vec())
                    .build();
                let _ = self.swarm.dial(opts);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
                for (peer, addr) in list {
                    if !self.swarm.is_connected(&peer) && !self.refused.contains_key(&peer) {
                        tracing::debug!(%peer, %addr, "mDNS discovered");
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer, addr.clone());
                        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                            .addresses(vec![addr])
                            .build();
                        let _ = self.swarm.dial(opts);
                    }
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                message,
                propagation_source,
                ..
            }) => {
                let from = message.source.unwrap_or(propagation_source);
                if self.cut_from(&from) || self.cut_from(&propagation_source) {
                    return;
                }
                if !self.accepts(&from) || !self.accepts(&propagation_source) {
                    return;
                }
                match decode::<Announcement>(&message.data, MAX_GOSSIP) {
                    Ok(m) => self.emit(Event::Announcement { from, message: m }),
                    Err(e) => {
                        tracing::debug!(peer = %from, cause = %e, "malformed announcement ignored")
                    }
                }
            }
            BehaviourEvent::Rr(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => {
                        if self.cut_from(&peer) || !self.accepts(&peer) {
                            // Unanswered: the sender sees the stream closed.
                            drop(channel);
                            return;
                        }
                        self.emit(Event::Request {
                            peer,
                            request,
                            channel,
                        });
                    }
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => {
                        if let Some(reply) = self.pending_requests.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                }
            }
            BehaviourEvent::Rr(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(NetworkError::Request {
                        peer,
                        message: error.to_string(),
                    }));
                }
            }
            BehaviourEvent::Rr(request_response::Event::InboundFailure { peer, error, .. }) => {
                tracing::debug!(%peer, cause = %error, "inbound request failed");
            }
            _ => {}
        }
    }
}

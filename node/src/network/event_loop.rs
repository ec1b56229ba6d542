//! The task that owns the swarm.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::upgrade::Version;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, kad, mdns, noise, ping, tcp, yamux, Swarm, Transport};
use meshml_protocol::{decode, encode, Announcement, Response, PROTOCOL_VERSION};
use tokio::sync::{mpsc, oneshot};

use super::{
    codec, Behaviour, BehaviourEvent, Command, Event, NetworkConfig, NetworkError, PeerAdvert,
};

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
                Ok(Behaviour {
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
        faults: Option<std::sync::Arc<super::faults::LinkFaults>>,
    ) -> Self {
        Self {
            swarm,
            commands,
            events,
            pending_requests: HashMap::new(),
            pending_dials: HashMap::new(),
            topic: gossipsub::IdentTopic::new(super::CONTROL_TOPIC),
            dropped_events: 0,
            faults,
        }
    }

    /// Runs the loop.
    #[tracing::instrument(skip(self), fields(peer = %self.swarm.local_peer_id()))]
    pub async fn run(mut self) {
        let mut bootstrap_tick = tokio::time::interval(Duration::from_secs(10));
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
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer_id, endpoint.get_remote_address().clone());
                if num_established.get() == 1 {
                    tracing::debug!(peer = %peer_id, "connected");
                    self.emit(Event::Connected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                tracing::debug!(peer = %peer_id, "disconnected");
                self.emit(Event::Disconnected(peer_id));
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
                if advert.is_none() {
                    tracing::info!(peer = %peer_id, agent = %info.agent_version, "not a meshml node; disconnecting");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                for a in &info.listen_addrs {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, a.clone());
                }
                self.emit(Event::Identified {
                    peer: peer_id,
                    addrs: info.listen_addrs,
                    agent: info.agent_version,
                    info: advert,
                });
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
                    if !self.swarm.is_connected(&peer) {
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
                        if self.cut_from(&peer) {
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

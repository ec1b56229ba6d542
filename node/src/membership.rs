//! The membership actor: the peer table (who, where, what they offer, when last heard
//! from) fed by network events and heartbeats, and the events "peer joined" / "peer left".
//!
//! Liveness comes from heartbeat announcements (sent every `heartbeat` interval): a peer
//! not heard from for `peer_timeout` is reported gone. A clean shutdown announces itself
//! and is reported at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use libp2p::{Multiaddr, PeerId};
use meshml_protocol::{Announcement, ErrorCode, Heartbeat, NodeId, RemoteError, Request, Response};

use crate::network::{Client, Event, PeerAdvert};

/// Membership settings.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// How often this node announces itself (default 1 s).
    pub heartbeat: Duration,
    /// A peer silent this long is gone (default 5 s).
    pub peer_timeout: Duration,
    /// A peer gone this long is forgotten: out of the peer table and the routing table, so
    /// nothing redials it (default 10 minutes). A forgotten peer that comes back joins
    /// again as new.
    pub forget_after: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(5),
            forget_after: Duration::from_secs(600),
        }
    }
}

/// Whether a peer is considered part of the mesh.
pub use meshml_client::api::{PeerState, PeerView};

#[derive(Debug)]
struct Entry {
    addrs: Vec<Multiaddr>,
    advert: Option<PeerAdvert>,
    last_seen: Instant,
    state: PeerState,
    connected: bool,
    /// Announced its departure: heartbeats still in flight do not revive it; a new
    /// connection does.
    left: bool,
}

/// Membership changes, for subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum MembershipEvent {
    /// A peer became alive.
    Joined(PeerId),
    /// A peer is gone.
    Left(PeerId),
}

/// A network event for the actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct NetEvent(pub Event);

/// Asks for the peer table.
#[derive(Debug, Message)]
#[rtype(result = "Vec<PeerView>")]
pub struct GetPeers;

/// Subscribes to membership events.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<MembershipEvent>);

/// Announces this node's departure (before shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave;

/// The actor.
#[derive(Debug)]
pub struct Membership {
    local: PeerId,
    client: Client,
    config: MembershipConfig,
    peers: HashMap<PeerId, Entry>,
    subscribers: Vec<Recipient<MembershipEvent>>,
    seq: u64,
    /// Set once this node announced its departure: no more heartbeats.
    leaving: bool,
}

impl Membership {
    /// A membership actor publishing through `client`.
    pub fn new(client: Client, config: MembershipConfig) -> Self {
        Self {
            local: client.local_peer_id(),
            client,
            config,
            peers: HashMap::new(),
            subscribers: Vec::new(),
            seq: 0,
            leaving: false,
        }
    }

    fn notify(&self, e: MembershipEvent) {
        for s in &self.subscribers {
            if s.try_send(e.clone()).is_err() {
                tracing::warn!(event = ?e, "a membership subscriber is full or gone");
            }
        }
    }

    fn seen(&mut self, peer: PeerId) -> &mut Entry {
        let now = Instant::now();
        let entry = self.peers.entry(peer).or_insert_with(|| Entry {
            addrs: Vec::new(),
            advert: None,
            last_seen: now,
            state: PeerState::Gone,
            connected: false,
            left: false,
        });
        entry.last_seen = now;
        let joined = entry.state == PeerState::Gone && peer != self.local;
        if joined {
            entry.state = PeerState::Alive;
            tracing::info!(%peer, "peer joined");
            self.notify(MembershipEvent::Joined(peer));
        }
        self.peers.get_mut(&peer).expect("just inserted")
    }

    fn expire(&mut self) {
        let timeout = self.config.peer_timeout;
        let mut gone = Vec::new();
        for (peer, e) in &mut self.peers {
            if e.state == PeerState::Alive && e.last_seen.elapsed() > timeout {
                e.state = PeerState::Gone;
                gone.push(*peer);
            }
        }
        for peer in gone {
            tracing::info!(%peer, timeout_ms = timeout.as_millis() as u64, "peer gone: no heartbeat");
            self.notify(MembershipEvent::Left(peer));
        }
    }

    /// Drops peers gone (and disconnected) for longer than `forget_after`; returns them.
    fn forget(&mut self) -> Vec<PeerId> {
        let after = self.config.forget_after;
        let old: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| {
                e.state == PeerState::Gone && !e.connected && e.last_seen.elapsed() > after
            })
            .map(|(p, _)| *p)
            .collect();
        for p in &old {
            self.peers.remove(p);
            tracing::info!(peer = %p, after_ms = after.as_millis() as u64, "forgot a peer gone this long");
        }
        old
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.leaving {
            return;
        }
        self.seq += 1;
        let hb = Announcement::Heartbeat(Heartbeat {
            node: NodeId::new(self.local.to_string()),
            seq: self.seq,
            running_tasks: 0,
        });
        let client = self.client.clone();
        ctx.spawn(
            async move {
                // With no peers subscribed yet, publishing fails: that is normal.
                if let Err(e) = client.publish(hb).await {
                    tracing::trace!(cause = %e, "heartbeat not published");
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(self.config.heartbeat, |act, ctx| {
            act.heartbeat(ctx);
            act.expire();
            let forgotten = act.forget();
            if !forgotten.is_empty() {
                let client = act.client.clone();
                ctx.spawn(
                    async move {
                        for p in forgotten {
                            let _ = client.forget(p).await;
                        }
                    }
                    .into_actor(act),
                );
            }
        });
    }
}

impl Handler<NetEvent> for Membership {
    type Result = ();

    fn handle(&mut self, NetEvent(event): NetEvent, ctx: &mut Context<Self>) {
        match event {
            Event::Connected(peer) => {
                let e = self.seen(peer);
                e.connected = true;
                e.left = false;
            }
            Event::Disconnected(peer) => {
                if let Some(e) = self.peers.get_mut(&peer) {
                    e.connected = false;
                }
            }
            Event::Identified {
                peer, addrs, info, ..
            } => {
                let e = self.seen(peer);
                e.addrs = addrs;
                e.advert = info;
            }
            Event::Announcement { from, message } => match message {
                Announcement::Heartbeat(_) if !self.peers.get(&from).is_some_and(|e| e.left) => {
                    self.seen(from);
                }
                Announcement::Leaving { .. } => {
                    if let Some(e) = self.peers.get_mut(&from) {
                        e.left = true;
                        if e.state == PeerState::Alive {
                            e.state = PeerState::Gone;
                            tracing::info!(peer = %from, "peer left");
                            self.notify(MembershipEvent::Left(from));
                        }
                    }
                }
                _ => {}
            },
            Event::Request {
                peer,
                request,
                channel,
            } => {
                // A request refreshes a peer the table knows; it does not add one (a peer
                // enters the table once identified, or by its heartbeats).
                if self.peers.contains_key(&peer) {
                    self.seen(peer);
                }
                let response = match request {
                    Request::Heartbeat(_) => Response::Ack,
                    other => Response::Error(RemoteError {
                        code: ErrorCode::BadRequest,
                        message: format!(
                            "this node does not serve {} requests yet",
                            request_kind(&other)
                        ),
                        retryable: false,
                    }),
                };
                let client = self.client.clone();
                ctx.spawn(
                    async move {
                        let _ = client.respond(channel, response).await;
                    }
                    .into_actor(self),
                );
            }
            Event::Listening(_) => {}
        }
    }
}

fn request_kind(r: &Request) -> String {
    format!("{r:?}")
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("these")
        .to_string()
}

impl Handler<GetPeers> for Membership {
    type Result = MessageResult<GetPeers>;

    fn handle(&mut self, _: GetPeers, _: &mut Context<Self>) -> Self::Result {
        let mut v: Vec<PeerView> = self
            .peers
            .iter()
            .filter(|(p, _)| **p != self.local)
            .map(|(p, e)| {
                let caps = e.advert.as_ref().map(|a| a.capabilities.clone());
                PeerView {
                    id: p.to_string(),
                    state: e.state,
                    connected: e.connected,
                    last_seen_ms: e.last_seen.elapsed().as_millis() as u64,
                    addrs: e.addrs.iter().map(ToString::to_string).collect(),
                    cores: caps.as_ref().map_or(0, |c| c.cores),
                    memory_bytes: caps.as_ref().map_or(0, |c| c.memory_bytes),
                    free_disk_bytes: caps.as_ref().map_or(0, |c| c.free_disk_bytes),
                    started_ms: caps.as_ref().map_or(0, |c| c.started_ms),
                    cluster: e
                        .advert
                        .as_ref()
                        .map_or_else(String::new, |a| a.cluster.clone()),
                }
            })
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        MessageResult(v)
    }
}

impl Handler<Subscribe> for Membership {
    type Result = ();

    fn handle(&mut self, Subscribe(r): Subscribe, _: &mut Context<Self>) {
        self.subscribers.push(r);
    }
}

impl Handler<Leave> for Membership {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Leave, _: &mut Context<Self>) -> Self::Result {
        self.leaving = true;
        let client = self.client.clone();
        let node = NodeId::new(self.local.to_string());
        Box::pin(async move {
            let _ = client.publish(Announcement::Leaving { node }).await;
        })
    }
}

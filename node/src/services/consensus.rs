//! Consensus: this node's view of the replicated state and its way to change it.
//!
//! Any node changes the replicated state through the driver ([`Consensus::propose`]
//! forwards to it when this node is not the driver), reads the state it has applied, and
//! knows the live members and their addresses.

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use meshml_protocol::{ErrorCode, RemoteError, Request, Response};
use meshml_storage::raft::{ClusterCommand, ClusterResponse, ClusterState, StateMachine};
use openraft::error::{ClientWriteError, RaftError};

use crate::error::MeshError;
use crate::network::Client;
use crate::raft::{node_id, AlivePeers, ClusterRaft};

/// A member alive now, as [`Consensus::live_members`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMember {
    /// Its Raft node id.
    pub id: u64,
    /// Its libp2p peer id.
    pub peer: PeerId,
    /// Its worker slots.
    pub slots: usize,
    /// When its process started, as it announces it (0 for this node or when unknown): a
    /// new value means it restarted and lost the tasks it ran.
    pub started_ms: u64,
}

/// How long a lookup that decides a user's answer waits for a change committed through
/// another node to reach this one ([`Consensus::find_soon`]).
pub const REPLICA_LAG: Duration = Duration::from_secs(2);

struct Inner {
    raft: ClusterRaft,
    state: StateMachine,
    client: Client,
    alive: AlivePeers,
}

/// The consensus service. Cheap to clone.
#[derive(Clone)]
pub struct Consensus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Consensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consensus")
            .field("node", &self.inner.client.local_peer_id())
            .finish()
    }
}

/// A wire error answer.
pub(crate) fn remote(code: ErrorCode, message: impl Into<String>, retryable: bool) -> Response {
    Response::Error(RemoteError {
        code,
        message: message.into(),
        retryable,
    })
}

impl Consensus {
    /// Consensus over the Raft node `raft` and its `state`, reaching other members through
    /// `client`; `alive` lists the members heard from.
    pub fn new(raft: ClusterRaft, state: StateMachine, client: Client, alive: AlivePeers) -> Self {
        Self {
            inner: Arc::new(Inner {
                raft,
                state,
                client,
                alive,
            }),
        }
    }

    /// The Raft node.
    pub fn raft(&self) -> &ClusterRaft {
        &self.inner.raft
    }

    /// The replicated state machine.
    pub fn state(&self) -> &StateMachine {
        &self.inner.state
    }

    /// The network handle.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// This node's Raft id.
    pub fn id(&self) -> u64 {
        node_id(&self.inner.client.local_peer_id())
    }

    /// Live members with their slots, this node included, by node id.
    pub async fn live_members(&self) -> Vec<LiveMember> {
        let alive: std::collections::HashMap<u64, u64> = (self.inner.alive)()
            .await
            .into_iter()
            .map(|(p, info)| (node_id(&p), info.started_ms))
            .chain([(self.id(), 0)])
            .collect();
        let mut out: Vec<LiveMember> = self.inner.state.read(|s| {
            s.members
                .iter()
                .filter_map(|(id, m)| {
                    Some(LiveMember {
                        id: *id,
                        peer: m.peer_id.parse().ok()?,
                        slots: m.cores.max(1) as usize,
                        started_ms: *alive.get(id)?,
                    })
                })
                .collect()
        });
        if !out.iter().any(|m| m.id == self.id()) {
            out.push(LiveMember {
                id: self.id(),
                peer: self.inner.client.local_peer_id(),
                slots: std::thread::available_parallelism().map_or(1, |n| n.get()),
                started_ms: 0,
            });
        }
        out.sort_by_key(|m| m.id);
        out
    }

    /// The node ids of the live members, this node included, in order.
    pub async fn live_ids(&self) -> Vec<u64> {
        self.live_members()
            .await
            .into_iter()
            .map(|m| m.id)
            .collect()
    }

    /// The peer id of member `id`, from the replicated state or the Raft membership.
    pub fn peer_of(&self, id: u64) -> Option<PeerId> {
        if id == self.id() {
            return Some(self.inner.client.local_peer_id());
        }
        self.inner
            .state
            .read(|s| s.members.get(&id).and_then(|m| m.peer_id.parse().ok()))
            .or_else(|| {
                self.inner
                    .raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .and_then(|n| n.addr.parse().ok())
            })
    }

    /// Commits `cmd` to the replicated state through the driver, waiting out an election
    /// (up to 20 s).
    pub async fn propose(&self, cmd: ClusterCommand) -> Result<ClusterResponse, MeshError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut last = String::from("no driver elected");
        while tokio::time::Instant::now() < deadline {
            match self.inner.raft.client_write(cmd.clone()).await {
                Ok(r) => return Ok(r.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let Some(peer) = f.leader_node.and_then(|n| n.addr.parse::<PeerId>().ok()) {
                        let command = rmp_serde::to_vec_named(&cmd).expect("commands encode");
                        match self
                            .inner
                            .client
                            .request(peer, Request::Propose { command })
                            .await
                        {
                            Ok(Response::Consensus { payload }) => {
                                return rmp_serde::from_slice(&payload).map_err(|e| {
                                    MeshError::internal(format!("driver's answer: {e}"))
                                })
                            }
                            Ok(Response::Error(e)) if !e.retryable => {
                                return Err(MeshError::from(e))
                            }
                            Ok(other) => last = format!("driver answered {other:?}"),
                            Err(e) => last = e.to_string(),
                        }
                    }
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(MeshError::unavailable(format!(
            "the cluster did not commit the change within 20 s: {last}"
        )))
    }

    /// Waits (at most 5 s) until this node has applied a state in which `done` holds: a
    /// change committed through the driver reaches a follower's replica a moment later,
    /// and an API answer must not be contradicted by the next request to the same node.
    pub async fn wait_applied(
        &self,
        done: impl Fn(&ClusterState) -> bool,
    ) -> Result<(), MeshError> {
        self.find_soon(Duration::from_secs(5), |s| done(s).then_some(()))
            .await
            .ok_or_else(|| {
                MeshError::unavailable("the change was committed but has not reached this node yet")
            })
    }

    /// What `find` finds in the applied state, waiting up to `within` for it to appear: a
    /// change committed a moment ago through another node (a dataset just stored, say)
    /// reaches this node's replica with the driver's next append. `None` when it has not
    /// appeared by then.
    pub async fn find_soon<T>(
        &self,
        within: Duration,
        find: impl Fn(&ClusterState) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(found) = self.inner.state.read(&find) {
                return Some(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Answers a `Propose` from another node: commits it if this node is the driver.
    pub async fn serve_propose(&self, command: &[u8]) -> Response {
        let cmd: ClusterCommand = match rmp_serde::from_slice(command) {
            Ok(c) => c,
            Err(e) => return remote(ErrorCode::BadRequest, format!("bad command: {e}"), false),
        };
        match self.inner.raft.client_write(cmd).await {
            Ok(r) => Response::Consensus {
                payload: rmp_serde::to_vec_named(&r.data).expect("responses encode"),
            },
            Err(e) => remote(ErrorCode::Unavailable, e.to_string(), true),
        }
    }
}

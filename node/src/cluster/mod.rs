//! The cluster: the Raft group whose leader is the driver.
//!
//! - Node ids are derived from libp2p peer ids ([`node_id`]); a member's `BasicNode.addr`
//!   holds its peer id, so Raft RPCs find their way over the existing network.
//! - Raft RPCs travel as [`meshml_protocol::Request::Consensus`] over request-response
//!   ([`network`]); inbound ones are answered by [`serve_consensus`].
//! - Formation ([`Formation`]): with `--expect N`, once N meshml nodes of the same cluster
//!   know each other, the one with the lowest node id initialises the group with all of
//!   them as voters. A node expecting 1 forms a cluster of its own.

pub mod network;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use meshml_protocol::{ConsensusKind, Response};
use meshml_storage::raft::TypeConfig;
use openraft::{BasicNode, Raft, ServerState};
use serde::Serialize;

/// The Raft group handle.
pub type ClusterRaft = Raft<TypeConfig>;

/// A peer's node id in the Raft group: the first 8 bytes of the BLAKE3 hash of its peer id
/// (never 0).
pub fn node_id(peer: &PeerId) -> u64 {
    let h = blake3::hash(&peer.to_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes")).max(1)
}

/// Raft timings for real nodes: 150 ms heartbeats, elections after 500-1000 ms of silence
/// (a failover target under 3 s on a LAN).
pub fn default_config(cluster: &str) -> openraft::Config {
    openraft::Config {
        cluster_name: cluster.to_string(),
        heartbeat_interval: 150,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        install_snapshot_timeout: 10_000,
        ..Default::default()
    }
}

/// Opens the Raft log and state in `dir` and starts the Raft node.
pub async fn start(
    dir: &std::path::Path,
    local: PeerId,
    client: crate::network::Client,
    config: openraft::Config,
) -> Result<(ClusterRaft, meshml_storage::raft::StateMachine), String> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(16 * 1024 * 1024)
        .open()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let (log, sm) = meshml_storage::raft::open(&db)
        .await
        .map_err(|e| e.to_string())?;
    let config = Arc::new(config.validate().map_err(|e| e.to_string())?);
    let net = network::Network::new(client);
    let raft = Raft::new(node_id(&local), config, net, log, sm.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok((raft, sm))
}

/// Answers an inbound consensus request with the local Raft node.
pub async fn serve_consensus(raft: &ClusterRaft, kind: ConsensusKind, payload: &[u8]) -> Response {
    fn reply<T: Serialize>(r: &T) -> Response {
        Response::Consensus {
            payload: rmp_serde::to_vec_named(r).expect("raft replies encode"),
        }
    }
    let bad = |e: rmp_serde::decode::Error| {
        Response::Error(meshml_protocol::RemoteError {
            code: meshml_protocol::ErrorCode::BadRequest,
            message: format!("malformed consensus request: {e}"),
            retryable: false,
        })
    };
    match kind {
        ConsensusKind::AppendEntries => match rmp_serde::from_slice(payload) {
            Ok(rpc) => reply(&raft.append_entries(rpc).await),
            Err(e) => bad(e),
        },
        ConsensusKind::Vote => match rmp_serde::from_slice(payload) {
            Ok(rpc) => reply(&raft.vote(rpc).await),
            Err(e) => bad(e),
        },
        ConsensusKind::InstallSnapshot => match rmp_serde::from_slice(payload) {
            Ok(rpc) => reply(&raft.install_snapshot(rpc).await),
            Err(e) => bad(e),
        },
    }
}

/// The cluster as one node sees it, for `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// This node's Raft id.
    pub node_id: u64,
    /// leader, follower, candidate or learner.
    pub role: String,
    /// Current Raft term.
    pub term: u64,
    /// The driver (Raft leader): its peer id, if known.
    pub driver: Option<String>,
    /// Voting and learning members: peer ids.
    pub voters: Vec<String>,
    /// Learners: peer ids.
    pub learners: Vec<String>,
    /// Last log index applied here.
    pub applied: Option<u64>,
}

/// What the local Raft node reports.
pub fn view(raft: &ClusterRaft) -> ClusterView {
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let name = |id: &u64| {
        membership
            .get_node(id)
            .map_or_else(|| id.to_string(), |n: &BasicNode| n.addr.clone())
    };
    let voters: Vec<String> = membership.voter_ids().map(|id| name(&id)).collect();
    let learners: Vec<String> = membership.learner_ids().map(|id| name(&id)).collect();
    ClusterView {
        node_id: m.id,
        role: match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        }
        .to_string(),
        term: m.current_term,
        driver: m.current_leader.map(|l| name(&l)),
        voters,
        learners,
        applied: m.last_applied.map(|l| l.index),
    }
}

/// Forms the cluster once `expect` meshml nodes (this one included) see each other.
#[derive(Debug)]
pub struct Formation {
    /// How many nodes to wait for.
    pub expect: usize,
    /// How often to look.
    pub poll: Duration,
}

impl Formation {
    /// Waits for `expect` nodes, then initialises the group if this node has the lowest id
    /// and the group has no membership yet. Returns once initialised (here or elsewhere).
    pub async fn run(
        &self,
        raft: &ClusterRaft,
        local: PeerId,
        alive: impl Fn() -> futures::future::BoxFuture<'static, Vec<PeerId>>,
    ) -> Result<(), String> {
        loop {
            if raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .next()
                .is_some()
            {
                return Ok(()); // initialised already (restart, or another node did it)
            }
            let mut peers = alive().await;
            peers.push(local);
            peers.sort_by_key(node_id);
            peers.dedup();
            if peers.len() >= self.expect {
                let chosen: Vec<PeerId> = peers.into_iter().take(self.expect).collect();
                if node_id(&chosen[0]) == node_id(&local) {
                    let members: BTreeMap<u64, BasicNode> = chosen
                        .iter()
                        .map(|p| (node_id(p), BasicNode::new(p.to_string())))
                        .collect();
                    tracing::info!(members = members.len(), "initialising the cluster");
                    match raft.initialize(members).await {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            tracing::debug!(cause = %e, "initialise refused (already initialised?)")
                        }
                    }
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

//! The cluster: the Raft group whose leader is the driver.
//!
//! - Node ids are derived from libp2p peer ids ([`node_id`]); a member's `BasicNode.addr`
//!   holds its peer id, so Raft RPCs find their way over the existing network.
//! - Raft RPCs travel as [`meshml_protocol::Request::Consensus`] over request-response
//!   ([`network`]); inbound ones are answered by [`serve_consensus`].
//! - Formation ([`Formation`]): with `--expect N`, once N meshml nodes of the same cluster
//!   know each other, the one with the lowest node id initialises the group with all of
//!   them as voters. A node expecting 1 forms a cluster of its own.
//! - [`autopilot`]: on the driver, removes unreachable members and promotes learners.

pub mod autopilot;
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

/// Most voters the cluster keeps; further members join as learners.
pub const MAX_VOTERS: usize = 5;

fn initialized(raft: &ClusterRaft) -> bool {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .next()
        .is_some()
}

/// Answers `ClusterInfo` and `JoinCluster` requests.
pub async fn serve_membership(
    raft: &ClusterRaft,
    request: &meshml_protocol::Request,
) -> Option<Response> {
    use meshml_protocol::{ErrorCode, RemoteError, Request};
    match request {
        Request::ClusterInfo => {
            let m = raft.metrics().borrow().clone();
            let membership = m.membership_config.membership();
            let driver = m
                .current_leader
                .and_then(|l| membership.get_node(&l).map(|n: &BasicNode| n.addr.clone()));
            Some(Response::ClusterInfo {
                initialized: initialized(raft),
                driver,
                term: m.current_term,
            })
        }
        Request::JoinCluster { peer } => Some(match join(raft, peer).await {
            Ok(()) => Response::Ack,
            Err(message) => Response::Error(RemoteError {
                code: ErrorCode::Unavailable,
                message,
                retryable: true,
            }),
        }),
        _ => None,
    }
}

/// On the driver: adds `peer` as a learner, then promotes it while there are fewer than
/// [`MAX_VOTERS`] voters.
async fn join(raft: &ClusterRaft, peer: &str) -> Result<(), String> {
    let pid: PeerId = peer
        .parse()
        .map_err(|e| format!("'{peer}' is not a peer id: {e}"))?;
    let id = node_id(&pid);
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return Err(format!(
            "not the driver; ask {}",
            m.current_leader.map_or_else(
                || "the driver (none elected yet)".to_string(),
                |l| l.to_string()
            )
        ));
    }
    let membership = m.membership_config.membership().clone();
    if membership.voter_ids().any(|v| v == id) {
        return Ok(());
    }
    if membership.get_node(&id).is_none() {
        raft.add_learner(id, BasicNode::new(peer), true)
            .await
            .map_err(|e| e.to_string())?;
    }
    let voters = membership.voter_ids().count();
    if voters < MAX_VOTERS {
        let add: std::collections::BTreeSet<u64> = [id].into_iter().collect();
        raft.change_membership(openraft::ChangeMembers::AddVoterIds(add), true)
            .await
            .map_err(|e| e.to_string())?;
    }
    tracing::info!(%peer, voter = voters < MAX_VOTERS, "member joined the cluster");
    Ok(())
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
    /// Members and what they offer, from the replicated state.
    pub members: Vec<meshml_storage::raft::MemberInfo>,
}

/// What the local Raft node reports.
pub fn view(raft: &ClusterRaft, state: &meshml_storage::raft::StateMachine) -> ClusterView {
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
        members: state.state().members.into_values().collect(),
    }
}

/// Forms or joins the cluster.
///
/// A node with no cluster state looks at the meshml peers of its cluster name: if one of
/// them belongs to an initialised cluster, it asks that cluster's driver to add it. If none
/// does, and at least `expect` nodes (itself included) see each other, and `window` has
/// passed since start-up, the one with the lowest node id initialises the group with
/// the `expect` lowest ids as voters.
#[derive(Debug)]
pub struct Formation {
    /// How many nodes to wait for before initialising.
    pub expect: usize,
    /// How long to look for an existing cluster before initialising one.
    pub window: Duration,
    /// How often to look.
    pub poll: Duration,
}

impl Formation {
    /// Runs until this node belongs to an initialised cluster.
    pub async fn run(
        &self,
        raft: &ClusterRaft,
        client: &crate::network::Client,
        alive: impl Fn() -> futures::future::BoxFuture<'static, Vec<PeerId>>,
    ) -> Result<(), String> {
        let local = client.local_peer_id();
        let started = tokio::time::Instant::now();
        loop {
            if initialized(raft) {
                return Ok(());
            }
            let peers = alive().await;
            // Join an existing cluster through its driver.
            let mut found_cluster = false;
            for p in &peers {
                if let Ok(Response::ClusterInfo {
                    initialized: true,
                    driver,
                    ..
                }) = client
                    .request(*p, meshml_protocol::Request::ClusterInfo)
                    .await
                {
                    found_cluster = true;
                    let Some(driver) = driver.and_then(|d| d.parse::<PeerId>().ok()) else {
                        continue;
                    };
                    let join = meshml_protocol::Request::JoinCluster {
                        peer: local.to_string(),
                    };
                    match client.request(driver, join).await {
                        Ok(Response::Ack) => tracing::info!(%driver, "joined the cluster"),
                        Ok(other) => tracing::debug!(?other, "join refused; retrying"),
                        Err(e) => tracing::debug!(cause = %e, "join failed; retrying"),
                    }
                    break;
                }
            }
            if !found_cluster && started.elapsed() >= self.window {
                let mut all = peers;
                all.push(local);
                all.sort_by_key(node_id);
                all.dedup();
                if all.len() >= self.expect && node_id(&all[0]) == node_id(&local) {
                    let members: BTreeMap<u64, BasicNode> = all
                        .iter()
                        .take(self.expect)
                        .map(|p| (node_id(p), BasicNode::new(p.to_string())))
                        .collect();
                    tracing::info!(members = members.len(), "initialising the cluster");
                    if let Err(e) = raft.initialize(members).await {
                        tracing::debug!(cause = %e, "initialise refused (already initialised?)");
                    }
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

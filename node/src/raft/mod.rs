//! The Raft group whose leader is the driver ([`crate::driver`]).
//!
//! - Node ids are derived from libp2p peer ids ([`node_id`]); a member's `BasicNode.addr`
//!   holds its peer id, so Raft RPCs find their way over the existing network.
//! - Raft RPCs travel as [`meshml_protocol::Request::Consensus`] over request-response
//!   ([`network`]); inbound ones are answered by [`serve_consensus`].
//! - Formation ([`Formation`]): with `--expect N`, once N meshml nodes of the same cluster
//!   know each other, the one with the lowest node id initialises the group with all of
//!   them as voters. A node expecting 1 forms a cluster of its own.
//! - [`autopilot`]: run by the driver, removes unreachable members and promotes learners.
//! - [`view`]: the group as `/v1/status` reports it.

pub mod autopilot;
pub mod network;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use meshml_client::api::{DriverView, MemberView, RaftView};
use meshml_protocol::{ConsensusKind, Response};
use meshml_storage::raft::TypeConfig;
use openraft::{BasicNode, Raft, ServerState};

/// The Raft group handle.
pub type ClusterRaft = Raft<TypeConfig>;

/// Lists the live peers with what they offer.
pub type AlivePeers = Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Vec<(PeerId, meshml_storage::raft::MemberInfo)>>
        + Send
        + Sync,
>;

/// What the cluster layer fails at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The Raft database could not be opened.
    #[error("{path}: {source}")]
    Open {
        /// Its directory.
        path: String,
        /// Why.
        #[source]
        source: sled::Error,
    },
    /// The Raft log or state could not be read.
    #[error("raft storage: {0}")]
    Storage(Box<openraft::StorageError<u64>>),
    /// Raft refused the configuration, or failed to start or to change the membership.
    #[error("raft: {0}")]
    Raft(String),
    /// This node promised to join another node's cluster for a while.
    #[error("promised to {initiator} for another {left:?}")]
    Promised {
        /// Who holds the promise.
        initiator: String,
        /// How long it still binds.
        left: std::time::Duration,
    },
    /// This node already belongs to a cluster.
    #[error("already a member of a cluster")]
    AlreadyMember,
    /// A peer id that does not parse.
    #[error("'{0}' is not a peer id")]
    BadPeer(String),
    /// Only the driver adds members.
    #[error("not the driver; ask {0}")]
    NotDriver(String),
    /// A membership change is not committed yet.
    #[error("a membership change is in progress; retry")]
    MembershipChanging,
}

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
        // Snapshot chunks travel as MessagePack arrays of bytes (up to 2 bytes each) in
        // frames capped at 4 MiB.
        snapshot_max_chunk_size: 1024 * 1024,
        ..Default::default()
    }
}

/// Lets this node stand for election only while it sees a majority of the voters alive
/// (itself included), as heartbeats tell: what Raft's PreVote step gives, which openraft
/// 0.9 lacks. A node cut off from the rest would otherwise start election after election,
/// raising its term each time, and when the cut heals that term deposes the working
/// driver. Checked every `every`; runs as long as the node does.
pub async fn election_gate(raft: ClusterRaft, alive: AlivePeers, every: std::time::Duration) {
    let mut allowed = true;
    loop {
        tokio::time::sleep(every).await;
        let (me, voters): (u64, Vec<u64>) = {
            let m = raft.metrics().borrow().clone();
            (m.id, m.membership_config.membership().voter_ids().collect())
        };
        let live: std::collections::HashSet<u64> =
            alive().await.iter().map(|(p, _)| node_id(p)).collect();
        let (allow, seen) = elections_allowed(me, &voters, &live);
        if allow != allowed {
            allowed = allow;
            raft.runtime_config().elect(allow);
            if allow {
                tracing::info!(
                    seen,
                    voters = voters.len(),
                    "a majority of voters is back: elections allowed"
                );
            } else {
                tracing::warn!(
                    seen,
                    voters = voters.len(),
                    "a majority of voters is out of sight: no elections"
                );
            }
        }
    }
}

/// Whether `me` may stand for election, seeing `live` peers alive: a majority of `voters`
/// counting itself (always, when there are no voters yet); and how many voters it sees.
pub fn elections_allowed(
    me: u64,
    voters: &[u64],
    live: &std::collections::HashSet<u64>,
) -> (bool, usize) {
    let seen = voters
        .iter()
        .filter(|v| **v == me || live.contains(v))
        .count();
    (voters.is_empty() || seen * 2 > voters.len(), seen)
}

/// Opens the Raft log and state in `dir` and starts the Raft node.
pub async fn start(
    dir: &std::path::Path,
    local: PeerId,
    client: crate::network::Client,
    config: openraft::Config,
) -> Result<(ClusterRaft, meshml_storage::raft::StateMachine), ClusterError> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(16 * 1024 * 1024)
        .open()
        .map_err(|source| ClusterError::Open {
            path: dir.display().to_string(),
            source,
        })?;
    let (log, sm) = meshml_storage::raft::open(&db)
        .await
        .map_err(|e| ClusterError::Storage(Box::new(e)))?;
    let config = Arc::new(
        config
            .validate()
            .map_err(|e| ClusterError::Raft(e.to_string()))?,
    );
    let net = network::Network::new(client);
    let raft = Raft::new(node_id(&local), config, net, log, sm.clone())
        .await
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
    Ok((raft, sm))
}

/// Answers an inbound consensus request with the local Raft node.
pub async fn serve_consensus(raft: &ClusterRaft, kind: ConsensusKind, payload: &[u8]) -> Response {
    fn reply<T: serde::Serialize>(r: &T) -> Response {
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

/// How often a member checks whether it has been left behind ([`Formation::watch`]).
pub const STRANDED_CHECK: Duration = Duration::from_secs(2);

/// How long a member may know no leader before it asks a driver to take it back.
pub const STRANDED_AFTER: Duration = Duration::from_secs(5);

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

/// How long a formation promise binds the node that gave it.
pub const PROMISE_TTL: Duration = Duration::from_secs(10);

/// An unformed node's promise to one initiator (see [`Formation`]): while it lasts, no
/// other node gets one, so two initiators cannot both collect every member's promise
/// unless their member sets are disjoint.
#[derive(Debug, Default)]
pub struct Promises {
    given: std::sync::Mutex<Option<(String, std::time::Instant)>>,
}

impl Promises {
    /// Promises `initiator` for [`PROMISE_TTL`] unless a promise to another node still
    /// binds; renewing a promise to the same initiator extends it.
    pub fn grant(&self, initiator: &str) -> Result<(), ClusterError> {
        self.grant_at(initiator, std::time::Instant::now())
    }

    fn grant_at(&self, initiator: &str, now: std::time::Instant) -> Result<(), ClusterError> {
        let mut given = self.given.lock().expect("promises");
        match &*given {
            Some((other, until)) if other != initiator && *until > now => {
                Err(ClusterError::Promised {
                    initiator: other.clone(),
                    left: *until - now,
                })
            }
            _ => {
                *given = Some((initiator.to_string(), now + PROMISE_TTL));
                Ok(())
            }
        }
    }
}

/// Answers `ClusterInfo`, `JoinCluster` and `PromiseFormation` requests.
pub async fn serve_membership(
    raft: &ClusterRaft,
    promises: &Promises,
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
            Err(e) => Response::Error(RemoteError {
                code: ErrorCode::Unavailable,
                message: e.to_string(),
                retryable: true,
            }),
        }),
        Request::PromiseFormation { initiator } => {
            let answer = if initialized(raft) {
                Err(ClusterError::AlreadyMember)
            } else {
                promises.grant(initiator)
            };
            Some(match answer {
                Ok(()) => Response::Ack,
                Err(e) => Response::Error(RemoteError {
                    code: ErrorCode::Unavailable,
                    message: e.to_string(),
                    retryable: true,
                }),
            })
        }
        _ => None,
    }
}

/// On the driver: adds `peer` as a learner, then promotes it while there are fewer than
/// [`MAX_VOTERS`] voters.
async fn join(raft: &ClusterRaft, peer: &str) -> Result<(), ClusterError> {
    let pid: PeerId = peer
        .parse()
        .map_err(|_| ClusterError::BadPeer(peer.to_string()))?;
    let id = node_id(&pid);
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return Err(ClusterError::NotDriver(m.current_leader.map_or_else(
            || "the driver (none elected yet)".to_string(),
            |l| l.to_string(),
        )));
    }
    // A membership the driver has not committed yet may still be lost (a driver cut off
    // from its quorum appends changes it can never commit): answer only on committed ones.
    if m.membership_config.log_id().as_ref().map(|l| l.index) > m.last_applied.map(|l| l.index) {
        return Err(ClusterError::MembershipChanging);
    }
    let membership = m.membership_config.membership().clone();
    if membership.voter_ids().any(|v| v == id) {
        return Ok(());
    }
    if membership.get_node(&id).is_none() {
        raft.add_learner(id, BasicNode::new(peer), true)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
    }
    let voters = membership.voter_ids().count();
    if voters < MAX_VOTERS {
        let add: std::collections::BTreeSet<u64> = [id].into_iter().collect();
        raft.change_membership(openraft::ChangeMembers::AddVoterIds(add), true)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
    }
    tracing::info!(%peer, voter = voters < MAX_VOTERS, "member joined the cluster");
    Ok(())
}

/// What the local Raft node reports, for `/v1/status`; `driving` is the driver actor
/// running on this node, if any.
pub fn view(
    raft: &ClusterRaft,
    state: &meshml_storage::raft::StateMachine,
    driving: Option<DriverView>,
) -> RaftView {
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let name = |id: &u64| {
        membership
            .get_node(id)
            .map_or_else(|| id.to_string(), |n: &BasicNode| n.addr.clone())
    };
    let voters: Vec<String> = membership.voter_ids().map(|id| name(&id)).collect();
    let learners: Vec<String> = membership.learner_ids().map(|id| name(&id)).collect();
    RaftView {
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
        last_log: m.last_log_index,
        members: state
            .state()
            .members
            .into_values()
            .map(|m| MemberView {
                peer_id: m.peer_id,
                addrs: m.addrs,
                cores: m.cores,
                memory_bytes: m.memory_bytes,
                free_disk_bytes: m.free_disk_bytes,
            })
            .collect(),
        driving,
    }
}

/// Forms or joins the cluster.
///
/// A node with no cluster state looks at the meshml peers of its cluster name: if one of
/// them belongs to an initialised cluster, it asks that cluster's driver to add it. If none
/// does, and at least `expect` nodes (itself included) see each other, and `window` has
/// passed since start-up, the one with the lowest node id initialises the group with
/// the `expect` lowest ids as voters, once each of them has promised ([`Promises`]) not to
/// take part in another initialisation. Views that differ (say six nodes started with
/// `--expect 5`, one of them not yet seen by all) therefore cannot produce two clusters
/// unless at least twice `expect` unformed nodes split into groups that never see each
/// other.
#[derive(Debug)]
pub struct Formation {
    /// This node's promises, shared with the request handler.
    pub promises: Arc<Promises>,
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
    ) {
        let local = client.local_peer_id();
        let started = tokio::time::Instant::now();
        loop {
            if initialized(raft) {
                return;
            }
            let peers = alive().await;
            // Join an existing cluster through its driver.
            let found_cluster = self.join_driver(client, &peers, |_| true).await;
            if !found_cluster && started.elapsed() >= self.window {
                let mut all = peers;
                all.push(local);
                all.sort_by_key(node_id);
                all.dedup();
                if all.len() >= self.expect
                    && node_id(&all[0]) == node_id(&local)
                    && self.promised(client, &all[..self.expect]).await
                {
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

    /// Asks `peers` in turn which cluster they belong to, until one belongs to an
    /// initialised cluster; if it reports a driver for which `want(term)` holds, asks that
    /// driver to add this node. Returns whether any peer belongs to an initialised cluster.
    async fn join_driver(
        &self,
        client: &crate::network::Client,
        peers: &[PeerId],
        want: impl Fn(u64) -> bool,
    ) -> bool {
        let local = client.local_peer_id();
        let mut found_cluster = false;
        for p in peers {
            let Ok(Response::ClusterInfo {
                initialized: true,
                driver,
                term,
            }) = client
                .request(*p, meshml_protocol::Request::ClusterInfo)
                .await
            else {
                continue;
            };
            found_cluster = true;
            // One answer is enough: the watch asks a different peer first next time.
            let Some(driver) = driver.and_then(|d| d.parse::<PeerId>().ok()) else {
                break;
            };
            if driver == local || !want(term) {
                break;
            }
            let join = meshml_protocol::Request::JoinCluster {
                peer: local.to_string(),
            };
            match client.request(driver, join).await {
                Ok(Response::Ack) => tracing::debug!(%driver, "the driver has this node"),
                Ok(other) => tracing::debug!(?other, "join refused; retrying"),
                Err(e) => tracing::debug!(cause = %e, "join failed; retrying"),
            }
            break;
        }
        found_cluster
    }

    /// Runs for the life of a member: a node left behind asks the current driver to take
    /// it (back) in. Left behind means a peer reports a driver in a newer term than this
    /// node's (a learner whose only leader was cut off and deposed never hears the new
    /// one), or this node has known no leader for [`STRANDED_AFTER`] (a member removed by
    /// the autopilot while it was cut off campaigns forever otherwise). The driver answers
    /// at once when the node is already a committed member.
    pub async fn watch(
        &self,
        raft: &ClusterRaft,
        client: &crate::network::Client,
        alive: impl Fn() -> futures::future::BoxFuture<'static, Vec<PeerId>>,
    ) {
        let mut leaderless_since: Option<tokio::time::Instant> = None;
        let mut turn = 0usize;
        loop {
            tokio::time::sleep(STRANDED_CHECK).await;
            let m = raft.metrics().borrow().clone();
            if m.state == ServerState::Leader || m.state == ServerState::Shutdown {
                leaderless_since = None;
                continue;
            }
            let leaderless = m.current_leader.is_none();
            let since = match (leaderless, leaderless_since) {
                (false, _) => None,
                (true, Some(t)) => Some(t),
                (true, None) => Some(tokio::time::Instant::now()),
            };
            leaderless_since = since;
            let stranded = since.is_some_and(|t| t.elapsed() >= STRANDED_AFTER);
            let mut peers = alive().await;
            if !peers.is_empty() {
                turn = turn.wrapping_add(1);
                let k = turn % peers.len();
                peers.rotate_left(k);
            }
            let my_term = m.current_term;
            self.join_driver(client, &peers, |term| stranded || term > my_term)
                .await;
        }
    }

    /// Collects the promises of `members` (this node first) for this node to initialise.
    async fn promised(&self, client: &crate::network::Client, members: &[PeerId]) -> bool {
        let local = client.local_peer_id();
        let me = local.to_string();
        if let Err(why) = self.promises.grant(&me) {
            tracing::debug!(%why, "not initialising: this node promised another");
            return false;
        }
        for p in members.iter().filter(|p| **p != local) {
            let ask = meshml_protocol::Request::PromiseFormation {
                initiator: me.clone(),
            };
            match client.request(*p, ask).await {
                Ok(Response::Ack) => {}
                other => {
                    tracing::info!(peer = %p, answer = ?other, "not initialising yet: no promise");
                    return false;
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_elects_only_while_it_sees_a_majority_of_voters() {
        let live = |ids: &[u64]| {
            ids.iter()
                .copied()
                .collect::<std::collections::HashSet<_>>()
        };
        let voters = [1, 2, 3, 4, 5];
        // Cut off alone, or with one other: no elections.
        assert_eq!(elections_allowed(1, &voters, &live(&[])), (false, 1));
        assert_eq!(elections_allowed(1, &voters, &live(&[2, 9])), (false, 2));
        // Three of five (itself included): allowed.
        assert_eq!(elections_allowed(1, &voters, &live(&[2, 3])), (true, 3));
        // Live peers that are not voters do not count.
        assert!(!elections_allowed(1, &voters, &live(&[7, 8, 9])).0);
        // A single voter, and a node before any membership, always may.
        assert!(elections_allowed(1, &[1], &live(&[])).0);
        assert!(elections_allowed(1, &[], &live(&[])).0);
        // Two voters: it needs the other one too.
        assert!(!elections_allowed(1, &[1, 2], &live(&[])).0);
        assert!(elections_allowed(1, &[1, 2], &live(&[2])).0);
    }

    #[test]
    fn a_promise_binds_for_its_lifetime_and_only_to_one_initiator() {
        let p = Promises::default();
        let t0 = std::time::Instant::now();
        assert!(p.grant_at("a", t0).is_ok());
        let e = p
            .grant_at("b", t0 + Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("promised to a"), "{e}");
        // Renewing for the same initiator extends the promise.
        assert!(p.grant_at("a", t0 + Duration::from_secs(9)).is_ok());
        assert!(p.grant_at("b", t0 + Duration::from_secs(12)).is_err());
        // Once it lapses another initiator may have it.
        assert!(p
            .grant_at("b", t0 + Duration::from_secs(9) + PROMISE_TTL)
            .is_ok());
        assert!(p.grant_at("a", t0 + Duration::from_secs(20)).is_err());
    }

    #[test]
    fn node_ids_are_stable_and_never_zero() {
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        assert_eq!(node_id(&peer), node_id(&peer));
        assert_ne!(node_id(&peer), 0);
    }
}

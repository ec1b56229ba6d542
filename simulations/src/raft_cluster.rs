//! Raft clusters in one process: openraft nodes with meshml's sled-backed log and state
//! machine (temporary databases), wired by an in-memory router that can crash nodes and
//! cut links. For election, failover and partition tests without sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshml_storage::raft::{
    self, ClusterCommand, ClusterResponse, ClusterState, StateMachine, TypeConfig,
};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft, ServerState};

type Rpc<T, E = RaftError<u64>> = Result<T, RPCError<u64, BasicNode, E>>;

/// Delivers RPCs between the nodes of a [`RaftCluster`].
#[derive(Default)]
pub struct Router {
    nodes: Mutex<BTreeMap<u64, Raft<TypeConfig>>>,
    down: Mutex<BTreeSet<u64>>,
    cut: Mutex<BTreeSet<(u64, u64)>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field(
                "nodes",
                &self.nodes.lock().expect("lock").keys().collect::<Vec<_>>(),
            )
            .field("down", &self.down.lock().expect("lock"))
            .finish()
    }
}

impl Router {
    fn reach(&self, from: u64, to: u64) -> Result<Raft<TypeConfig>, std::io::Error> {
        let unreachable = |why: &str| {
            std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("{from} -> {to}: {why}"),
            )
        };
        if self.down.lock().expect("lock").contains(&to)
            || self.down.lock().expect("lock").contains(&from)
        {
            return Err(unreachable("node down"));
        }
        if self.cut.lock().expect("lock").contains(&(from, to)) {
            return Err(unreachable("link cut"));
        }
        self.nodes
            .lock()
            .expect("lock")
            .get(&to)
            .cloned()
            .ok_or_else(|| unreachable("no such node"))
    }
}

/// The network factory of one node.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    router: Arc<Router>,
    from: u64,
}

/// A connection from one node to another.
#[derive(Debug)]
pub struct SimConnection {
    router: Arc<Router>,
    from: u64,
    to: u64,
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimConnection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> SimConnection {
        SimConnection {
            router: self.router.clone(),
            from: self.from,
            to: target,
        }
    }
}

impl SimConnection {
    // The error type is openraft's RPCError, fixed by the RaftNetwork trait.
    #[allow(clippy::result_large_err)]
    fn target<E: std::error::Error>(
        &self,
    ) -> Result<Raft<TypeConfig>, RPCError<u64, BasicNode, E>> {
        self.router
            .reach(self.from, self.to)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }
}

impl RaftNetwork<TypeConfig> for SimConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _: RPCOption,
    ) -> Rpc<AppendEntriesResponse<u64>> {
        let raft = self.target()?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        let raft = self.target()?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, _: RPCOption) -> Rpc<VoteResponse<u64>> {
        let raft = self.target()?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

/// Election and heartbeat timings for simulations: 50 ms heartbeats, 150-300 ms elections.
pub fn fast_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "sim".into(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Default::default()
    }
}

/// A cluster of `n` Raft nodes (ids 1..=n) in this process.
#[derive(Debug)]
pub struct RaftCluster {
    router: Arc<Router>,
    state_machines: BTreeMap<u64, StateMachine>,
}

impl RaftCluster {
    /// Starts `n` voters and initialises the cluster from node 1.
    pub async fn start(
        n: u64,
        config: openraft::Config,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let config = Arc::new(config.validate()?);
        let router = Arc::new(Router::default());
        let mut state_machines = BTreeMap::new();
        for id in 1..=n {
            let db = sled::Config::new().temporary(true).open()?;
            let (log, sm) = raft::open(&db).await?;
            state_machines.insert(id, sm.clone());
            let net = SimNetwork {
                router: router.clone(),
                from: id,
            };
            let r = Raft::new(id, config.clone(), net, log, sm).await?;
            router.nodes.lock().expect("lock").insert(id, r);
        }
        let members: BTreeMap<u64, BasicNode> = (1..=n)
            .map(|id| (id, BasicNode::new(format!("sim-{id}"))))
            .collect();
        let first = router.nodes.lock().expect("lock")[&1].clone();
        first.initialize(members).await?;
        Ok(Self {
            router,
            state_machines,
        })
    }

    fn raft(&self, id: u64) -> Option<Raft<TypeConfig>> {
        self.router.nodes.lock().expect("lock").get(&id).cloned()
    }

    fn live(&self) -> Vec<u64> {
        let down = self.router.down.lock().expect("lock").clone();
        self.router
            .nodes
            .lock()
            .expect("lock")
            .keys()
            .copied()
            .filter(|id| !down.contains(id))
            .collect()
    }

    /// Live nodes that consider themselves leader, with their terms.
    pub fn leaders(&self) -> Vec<(u64, u64)> {
        self.live()
            .into_iter()
            .filter_map(|id| {
                let m = self.raft(id)?.metrics().borrow().clone();
                (m.state == ServerState::Leader).then_some((id, m.current_term))
            })
            .collect()
    }

    /// Waits until the live nodes in `among` (all live nodes if empty) agree on one leader
    /// that is itself live and leading; returns it.
    pub async fn wait_leader(&self, among: &[u64], timeout: Duration) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let ids: Vec<u64> = if among.is_empty() {
                self.live()
            } else {
                among.to_vec()
            };
            let views: Vec<Option<u64>> = ids
                .iter()
                .map(|&id| {
                    self.raft(id)
                        .and_then(|r| r.metrics().borrow().current_leader)
                })
                .collect();
            if let Some(Some(l)) = views.first() {
                let agreed = views.iter().all(|v| *v == Some(*l));
                let leading = self
                    .raft(*l)
                    .is_some_and(|r| r.metrics().borrow().state == ServerState::Leader);
                if agreed && leading && ids.contains(l) {
                    return Some(*l);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Proposes a command through node `via` (which must be the leader).
    pub async fn write(&self, via: u64, cmd: ClusterCommand) -> Result<ClusterResponse, String> {
        let r = self.raft(via).ok_or("no such node")?;
        r.client_write(cmd)
            .await
            .map(|resp| resp.data)
            .map_err(|e| e.to_string())
    }

    /// The replicated state as node `id` has applied it.
    pub fn state(&self, id: u64) -> ClusterState {
        self.state_machines[&id].state()
    }

    /// Stops node `id` as a crash would: no more messages in or out.
    pub async fn crash(&self, id: u64) {
        self.router.down.lock().expect("lock").insert(id);
        if let Some(r) = self.raft(id) {
            let _ = r.shutdown().await;
        }
    }

    /// Cuts every link between `side` and the rest, both ways.
    pub fn partition(&self, side: &[u64]) {
        let all: Vec<u64> = self
            .router
            .nodes
            .lock()
            .expect("lock")
            .keys()
            .copied()
            .collect();
        let mut cut = self.router.cut.lock().expect("lock");
        for &a in side {
            for &b in all.iter().filter(|b| !side.contains(b)) {
                cut.insert((a, b));
                cut.insert((b, a));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.router.cut.lock().expect("lock").clear();
    }

    /// Shuts every node down.
    pub async fn shutdown(&self) {
        for id in self.live() {
            if let Some(r) = self.raft(id) {
                let _ = r.shutdown().await;
            }
        }
    }
}

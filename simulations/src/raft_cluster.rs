//! Raft clusters in one process: openraft nodes with meshml's sled-backed log and state
//! machine (databases in a temporary folder), wired by an in-memory router that can crash nodes and
//! cut links. For election, failover and partition tests without sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
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
use tempfile::TempDir;

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

/// Why a write through the in-process cluster failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// No node has that id.
    #[error("no node {0}")]
    NoSuchNode(u64),
    /// Raft refused it (not the leader, shutting down, ...).
    #[error("raft: {0}")]
    Raft(String),
}

/// A cluster of `n` Raft nodes (ids 1..=n) in this process, each with its sled database in
/// a directory of a temporary folder (so a node can be stopped and started again).
#[derive(Debug)]
pub struct RaftCluster {
    router: Arc<Router>,
    state_machines: BTreeMap<u64, StateMachine>,
    config: Arc<openraft::Config>,
    dir: PathBuf,
    _tmp: Option<TempDir>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens node `id`'s database under `dir` and starts its Raft node. The database of a node
/// that was just shut down may still be held for a moment; opening is retried for 5 s.
async fn spawn_node(
    dir: &Path,
    id: u64,
    config: Arc<openraft::Config>,
    router: Arc<Router>,
) -> Result<(Raft<TypeConfig>, StateMachine), BoxError> {
    let path = dir.join(format!("node-{id}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let db = loop {
        match sled::Config::new().path(&path).open() {
            Ok(db) => break db,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let (log, sm) = raft::open(&db).await?;
    let net = SimNetwork { router, from: id };
    let r = Raft::new(id, config, net, log, sm.clone()).await?;
    Ok((r, sm))
}

impl RaftCluster {
    /// Starts `n` voters and initialises the cluster from node 1.
    pub async fn start(n: u64, config: openraft::Config) -> Result<Self, BoxError> {
        let config = Arc::new(config.validate()?);
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().to_path_buf();
        let router = Arc::new(Router::default());
        let mut state_machines = BTreeMap::new();
        for id in 1..=n {
            let (r, sm) = spawn_node(&dir, id, config.clone(), router.clone()).await?;
            state_machines.insert(id, sm);
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
            config,
            dir,
            _tmp: Some(tmp),
        })
    }

    /// Starts node `id` again from its database after [`RaftCluster::crash`]: it rejoins
    /// with what it had persisted and catches up from the leader.
    pub async fn restart(&mut self, id: u64) -> Result<(), BoxError> {
        // Drop every handle on the old database before opening it again.
        self.state_machines.remove(&id);
        self.router.nodes.lock().expect("lock").remove(&id);
        let (r, sm) = spawn_node(&self.dir, id, self.config.clone(), self.router.clone()).await?;
        self.state_machines.insert(id, sm);
        self.router.nodes.lock().expect("lock").insert(id, r);
        self.router.down.lock().expect("lock").remove(&id);
        Ok(())
    }

    /// Starts a new node `id` and adds it to the cluster as a learner through `via` (the
    /// leader).
    pub async fn add_learner(&mut self, via: u64, id: u64) -> Result<(), BoxError> {
        let (r, sm) = spawn_node(&self.dir, id, self.config.clone(), self.router.clone()).await?;
        self.state_machines.insert(id, sm);
        self.router.nodes.lock().expect("lock").insert(id, r);
        let leader = self.raft(via).ok_or("no such node")?;
        leader
            .add_learner(id, BasicNode::new(format!("sim-{id}")), true)
            .await?;
        Ok(())
    }

    /// Node `id`'s Raft handle (the same type `meshml node` runs), while it is known.
    pub fn raft_handle(&self, id: u64) -> Option<Raft<TypeConfig>> {
        self.raft(id)
    }

    /// Node `id`'s state machine.
    pub fn state_machine(&self, id: u64) -> Option<StateMachine> {
        self.state_machines.get(&id).cloned()
    }

    /// Node `id`'s Raft metrics.
    pub fn metrics(&self, id: u64) -> Option<openraft::RaftMetrics<u64, BasicNode>> {
        self.raft(id).map(|r| r.metrics().borrow().clone())
    }

    /// How many leader snapshots node `id` has installed since it (re)started.
    pub fn snapshots_installed(&self, id: u64) -> u64 {
        self.state_machines
            .get(&id)
            .map_or(0, StateMachine::snapshots_installed)
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
    pub async fn write(
        &self,
        via: u64,
        cmd: ClusterCommand,
    ) -> Result<ClusterResponse, WriteError> {
        let r = self.raft(via).ok_or(WriteError::NoSuchNode(via))?;
        r.client_write(cmd)
            .await
            .map(|resp| resp.data)
            .map_err(|e| WriteError::Raft(e.to_string()))
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

//! The services every node offers the mesh, over its local store and the replicated state:
//!
//! - proposals: any node changes the replicated state through the driver ([`Mesh::propose`]
//!   forwards to it when this node is not the driver);
//! - chunks: serving pieces, fetching chunks a task needs from a replica (verified), and
//!   keeping replicas a peer asks this node to fetch;
//! - datasets: `dataset put` through a node ingests the file, places each chunk on
//!   `replicas` live members by rendezvous hashing, has them fetch their copies, and only
//!   then records the dataset and its chunk locations in the replicated state;
//! - materialised datasets for tasks, cached within a memory cap.
//!
//! Disk work runs on tokio's blocking pool, never on network or actor threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use meshml_models::Dataset;
use meshml_protocol::{ChunkId, ErrorCode, NodeId, Piece, RemoteError, Request, Response};
use meshml_storage::ingest::{ingest_file, IngestOptions};
use meshml_storage::raft::{ClusterCommand, ClusterResponse, ClusterState, StateMachine};
use meshml_storage::{DatasetManifest, Store};
use openraft::error::{ClientWriteError, RaftError};

use crate::cluster::driver::AlivePeers;
use crate::cluster::{node_id, ClusterRaft};
use crate::network::Client;

/// Owner under which a node keeps its replicas of a mesh dataset.
pub fn dataset_owner(name: &str) -> String {
    format!("dataset.{name}")
}

pub use crate::error::MeshError;

/// A member alive now, as [`Mesh::live_members`] lists it.
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

pub use meshml_client::api::PutDatasetRequest;

/// Memory caps of a node's caches, bytes.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Datasets materialised for tasks.
    pub datasets: u64,
    /// Models loaded for serving.
    pub models: u64,
}

/// Memory cap of the materialised-dataset cache.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

struct Inner {
    raft: ClusterRaft,
    state: StateMachine,
    client: Client,
    store: Arc<Mutex<Store>>,
    dir: PathBuf,
    alive: AlivePeers,
    cache: Mutex<crate::lru::Lru<String, Arc<Dataset>>>,
    loading: tokio::sync::Mutex<()>,
    pieces: Mutex<PieceCache>,
    models: crate::serving::ModelCache,
    batches: crate::batch::Batches,
    scrub: crate::scrub::ScrubStats,
}

/// Chunks being served piece by piece: a large chunk (a task output of several trees is
/// ~100 MB) is read and verified once, not once per 1 MiB piece.
#[derive(Default)]
struct PieceCache {
    entries: Vec<(ChunkId, Arc<Vec<u8>>)>,
}

/// Bytes the piece cache keeps at most.
const PIECE_CACHE_BYTES: usize = 512 << 20;

impl PieceCache {
    fn get(&mut self, id: &ChunkId) -> Option<Arc<Vec<u8>>> {
        let at = self.entries.iter().position(|(i, _)| i == id)?;
        let e = self.entries.remove(at);
        let bytes = e.1.clone();
        self.entries.push(e);
        Some(bytes)
    }

    fn put(&mut self, id: ChunkId, bytes: Arc<Vec<u8>>) {
        self.entries.retain(|(i, _)| *i != id);
        self.entries.push((id, bytes));
        while self.entries.len() > 1
            && self.entries.iter().map(|(_, b)| b.len()).sum::<usize>() > PIECE_CACHE_BYTES
        {
            self.entries.remove(0);
        }
    }
}

/// A node's mesh services. Cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("node", &self.inner.client.local_peer_id())
            .finish()
    }
}

fn remote(code: ErrorCode, message: impl Into<String>, retryable: bool) -> Response {
    Response::Error(RemoteError {
        code,
        message: message.into(),
        retryable,
    })
}

impl Mesh {
    /// The services over `store` (opened in `dir`), the Raft node and the network.
    pub fn new(
        raft: ClusterRaft,
        state: StateMachine,
        client: Client,
        store: Store,
        dir: PathBuf,
        alive: AlivePeers,
        limits: CacheLimits,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                raft,
                state,
                client,
                store: Arc::new(Mutex::new(store)),
                dir,
                alive,
                cache: Mutex::new(crate::lru::Lru::new(limits.datasets)),
                loading: tokio::sync::Mutex::new(()),
                pieces: Mutex::new(PieceCache::default()),
                models: crate::serving::ModelCache::new(limits.models),
                batches: crate::batch::Batches::default(),
                scrub: crate::scrub::ScrubStats::default(),
            }),
        }
    }

    /// The batch predictions this node runs.
    pub fn batches(&self) -> &crate::batch::Batches {
        &self.inner.batches
    }

    /// What the scrubber has checked and repaired.
    pub fn scrub_stats(&self) -> &crate::scrub::ScrubStats {
        &self.inner.scrub
    }

    /// The models loaded for serving.
    pub fn models(&self) -> &crate::serving::ModelCache {
        &self.inner.models
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

    /// Runs `f` on the local store on the blocking pool.
    pub async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, meshml_storage::StorageError> + Send + 'static,
    ) -> Result<T, MeshError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || {
            let s = store.lock().expect("store lock");
            f(&s)
        })
        .await
        .map_err(|e| MeshError::internal(format!("store task failed: {e}")))?
        .map_err(|e| MeshError::internal(e.to_string()))
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
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.inner.state.read(&done) {
            if tokio::time::Instant::now() >= deadline {
                return Err(MeshError::unavailable(
                    "the change was committed but has not reached this node yet",
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
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

    /// Answers `GetChunk` from the local store.
    pub async fn serve_get_chunk(&self, id: ChunkId, offset: u64, max_len: u32) -> Response {
        let cached = self.inner.pieces.lock().expect("piece cache").get(&id);
        let read = match cached {
            Some(b) => Ok(b),
            None => self.with_store(move |s| s.chunk(&id)).await.map(|b| {
                let b = Arc::new(b);
                if b.len() > meshml_protocol::MAX_PIECE {
                    self.inner
                        .pieces
                        .lock()
                        .expect("piece cache")
                        .put(id, b.clone());
                }
                b
            }),
        };
        match read {
            Ok(bytes) => {
                let start = (offset as usize).min(bytes.len());
                let len = (max_len as usize).min(meshml_protocol::MAX_PIECE);
                let end = start.saturating_add(len).min(bytes.len());
                Response::Piece(Piece {
                    offset: start as u64,
                    total_len: bytes.len() as u64,
                    bytes: bytes[start..end].to_vec(),
                })
            }
            Err(e) => remote(ErrorCode::NotFound, format!("chunk {id}: {e}"), true),
        }
    }

    /// Answers `Replicate`: fetches the chunks this node lacks from `source` (verified)
    /// and keeps them all for `owner`.
    pub async fn serve_replicate(
        &self,
        owner: String,
        chunks: Vec<ChunkId>,
        source: &str,
    ) -> Response {
        let Ok(source) = source.parse::<PeerId>() else {
            return remote(ErrorCode::BadRequest, "source is not a peer id", false);
        };
        for id in chunks {
            let have = self.with_store(move |s| s.has_chunk(&id)).await;
            let sized = match have {
                Ok(true) => self
                    .with_store(move |s| s.chunk(&id).map(|b| b.len() as u64))
                    .await
                    .map(|n| (id, n)),
                Ok(false) => match self.inner.client.fetch_chunk(source, id).await {
                    Ok(bytes) => {
                        let owner = owner.clone();
                        self.with_store(move |s| {
                            s.put_pinned(&owner, &bytes)
                                .map(|_| (id, bytes.len() as u64))
                        })
                        .await
                    }
                    Err(e) => return remote(ErrorCode::Unavailable, e.to_string(), true),
                },
                Err(e) => Err(e),
            };
            match sized {
                Ok(pin) => {
                    let owner = owner.clone();
                    if let Err(e) = self.with_store(move |s| s.pin(&owner, &[pin])).await {
                        return remote(ErrorCode::Internal, e.to_string(), true);
                    }
                }
                Err(e) => return remote(ErrorCode::Internal, e.to_string(), true),
            }
        }
        Response::Ack
    }

    /// Ingests `file` as a mesh dataset: chunks on `replicas` live members each (chosen by
    /// rendezvous hashing), then the manifest and locations in the replicated state.
    pub async fn put_dataset(
        &self,
        file: PathBuf,
        req: PutDatasetRequest,
    ) -> Result<(DatasetManifest, BTreeMap<u64, usize>), MeshError> {
        meshml_storage::error::check_name(&req.name).map_err(|e| MeshError::bad(e.to_string()))?;
        if req.replicas == 0 {
            return Err(MeshError::bad("replicas must be at least 1"));
        }
        if req.chunk_rows == 0 {
            return Err(MeshError::bad("chunk_rows must be at least 1"));
        }
        if self
            .inner
            .state
            .read(|s| s.datasets.contains_key(&req.name))
        {
            return Err(MeshError::conflict(format!(
                "dataset '{}' exists on the mesh",
                req.name
            )));
        }
        // 1. Ingest into a staging store of its own (any failure leaves nothing behind).
        let staging_dir =
            self.inner
                .dir
                .join("incoming")
                .join(format!("{}-{}", req.name, std::process::id()));
        let (dir2, req2, file2) = (staging_dir.clone(), req.clone(), file.clone());
        let ingested = tokio::task::spawn_blocking(move || -> Result<_, MeshError> {
            let bad = |e: &dyn std::fmt::Display| MeshError::bad(e.to_string());
            let _ = std::fs::remove_dir_all(&dir2);
            let staging = Store::open(&dir2).map_err(|e| bad(&e))?;
            let mut csv = meshml_models::io::CsvOptions::default();
            if let Some(t) = &req2.target {
                csv.target = Some(t.clone());
            }
            if req2.regression {
                csv.kind = meshml_models::io::TargetKind::Regression;
            }
            let opts = IngestOptions {
                chunk_rows: req2.chunk_rows,
                csv,
            };
            let path = if req2.format == "parquet" {
                let p = file2.with_extension("parquet");
                std::fs::rename(&file2, &p).map_err(|e| bad(&e))?;
                p
            } else {
                file2
            };
            let m = ingest_file(&staging, &path, &req2.name, &opts, &mut |_| {})
                .map_err(|e| bad(&e))?;
            let chunks = m
                .chunks
                .iter()
                .map(|c| staging.chunk(&c.id).map(|b| (c.id, b)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(&e))?;
            Ok((m, chunks))
        })
        .await
        .map_err(|e| MeshError::internal(e.to_string()))?;
        let _ = std::fs::remove_dir_all(&staging_dir);
        let (manifest, chunks) = ingested?;

        // 2. Place every chunk; stage all of them here so that replicas can fetch them.
        let members = self.live_members().await;
        let ids: Vec<NodeId> = members
            .iter()
            .map(|m| NodeId::new(m.id.to_string()))
            .collect();
        let r = req.replicas.min(members.len());
        let me = self.id();
        let staging_owner = format!("staging.{}", req.name);
        let owner = dataset_owner(&req.name);
        let mut per_node: BTreeMap<u64, Vec<ChunkId>> = BTreeMap::new();
        let mut locations = Vec::with_capacity(chunks.len());
        for (id, _) in &chunks {
            let holders: Vec<u64> = meshml_storage::placement::place(id, &ids, r)
                .iter()
                .filter_map(|n| n.as_str().parse().ok())
                .collect();
            for h in &holders {
                per_node.entry(*h).or_default().push(*id);
            }
            locations.push((*id, holders));
        }
        let (so, o, mine) = (
            staging_owner.clone(),
            owner.clone(),
            per_node.get(&me).cloned().unwrap_or_default(),
        );
        self.with_store(move |s| {
            let mut pins = Vec::new();
            for (_, bytes) in &chunks {
                let id = s.put_pinned(&so, bytes)?;
                pins.push((id, bytes.len() as u64));
            }
            let keep: Vec<(ChunkId, u64)> = pins
                .iter()
                .filter(|(id, _)| mine.contains(id))
                .copied()
                .collect();
            if !keep.is_empty() {
                s.pin(&o, &keep)?;
            }
            Ok(())
        })
        .await?;

        // 3. Every other holder fetches its copies from here, in batches.
        let source = self.inner.client.local_peer_id().to_string();
        let mut counts = BTreeMap::new();
        let mut result = Ok(());
        for (node, list) in &per_node {
            counts.insert(*node, list.len());
            if *node == me {
                continue;
            }
            let Some(peer) = self.peer_of(*node) else {
                result = Err(MeshError::unavailable(format!(
                    "member {node} has no address"
                )));
                break;
            };
            for batch in list.chunks(16) {
                let req = Request::Replicate {
                    owner: owner.clone(),
                    chunks: batch.to_vec(),
                    source: source.clone(),
                };
                match self.inner.client.request(peer, req).await {
                    Ok(Response::Ack) => {}
                    Ok(other) => {
                        result = Err(MeshError::unavailable(format!(
                            "member {peer} did not take its replicas: {other:?}"
                        )));
                    }
                    Err(e) => {
                        result = Err(MeshError::unavailable(format!(
                            "member {peer} did not take its replicas: {e}"
                        )));
                    }
                }
                if result.is_err() {
                    break;
                }
            }
            if result.is_err() {
                break;
            }
        }
        // 4. Record the dataset once every copy is stored.
        if result.is_ok() {
            let cmd = ClusterCommand::PutDataset {
                manifest: manifest.clone(),
                locations,
                replicas: req.replicas,
            };
            let name = req.name.clone();
            result = match self.propose(cmd).await {
                Ok(r) if r.ok => self.wait_applied(|s| s.datasets.contains_key(&name)).await,
                Ok(r) => Err(MeshError::conflict(r.error.unwrap_or_default())),
                Err(e) => Err(e),
            };
        }
        let so = staging_owner.clone();
        let o = owner.clone();
        let failed = result.is_err();
        self.with_store(move |s| {
            if failed {
                s.unpin(&o)?;
            }
            s.unpin(&so)
        })
        .await?;
        result.map(|()| (manifest, counts))
    }

    /// The dataset `name` in memory, from the cache or assembled from chunks (local ones
    /// read here, others fetched from a replica and verified).
    pub async fn load_dataset(&self, name: &str) -> Result<Arc<Dataset>, MeshError> {
        let key = name.to_string();
        if let Some(d) = self.inner.cache.lock().expect("cache").get(&key) {
            return Ok(d);
        }
        let _one_at_a_time = self.inner.loading.lock().await;
        if let Some(d) = self.inner.cache.lock().expect("cache").get(&key) {
            return Ok(d);
        }
        let (manifest, holders) = self.dataset_holders(name)?;
        let mut decoded = Vec::with_capacity(manifest.chunks.len());
        for (c, hs) in manifest.chunks.iter().zip(holders) {
            let id = c.id;
            let (bytes, _) = self.chunk_from(id, &hs).await.map_err(|why| {
                MeshError::unavailable(format!("chunk {id} of '{name}' is unreachable: {why}"))
            })?;
            let chunk = tokio::task::spawn_blocking(move || {
                meshml_storage::encoding::Chunk::decode(&id, &bytes)
            })
            .await
            .map_err(|e| MeshError::internal(e.to_string()))?
            .map_err(|e| MeshError::internal(e.to_string()))?;
            decoded.push(chunk);
        }
        let d = tokio::task::spawn_blocking(move || manifest.assemble(decoded))
            .await
            .map_err(|e| MeshError::internal(e.to_string()))?
            .map_err(|e| MeshError::internal(e.to_string()))?;
        let d = Arc::new(d);
        let bytes = (d.n_samples() * (d.n_features() + 1) * 4) as u64;
        self.inner
            .cache
            .lock()
            .expect("cache")
            .put(key, d.clone(), bytes);
        Ok(d)
    }

    /// Chunk `id` from this node's store if it is there, else from the first of `holders`
    /// that serves it (verified against its hash); says whether it came from another
    /// member. A local copy that fails its check is replaced by the holder's (read repair),
    /// and counts as local. The error (unavailable) says why the last holder tried failed.
    pub async fn chunk_from(
        &self,
        id: ChunkId,
        holders: &[u64],
    ) -> Result<(Vec<u8>, bool), MeshError> {
        let mut why = String::from("no holder recorded");
        let mut damaged = false;
        if self
            .with_store(move |s| s.has_chunk(&id))
            .await
            .unwrap_or(false)
        {
            match self.with_store(move |s| s.chunk(&id)).await {
                Ok(b) => return Ok((b, false)),
                Err(e) => {
                    damaged = true;
                    why = e.to_string();
                }
            }
        }
        for h in holders.iter().filter(|h| **h != self.id()) {
            let Some(peer) = self.peer_of(*h) else {
                why = format!("member {h} has no address");
                continue;
            };
            match self.inner.client.fetch_chunk(peer, id).await {
                Ok(b) if damaged => {
                    // The local copy failed its check: replace it with the good one, so this
                    // node holds (and serves) a sound copy again.
                    let copy = b.clone();
                    return match self.with_store(move |s| s.repair_chunk(&id, &copy)).await {
                        Ok(()) => {
                            tracing::warn!(%id, from = h, cause = %why, "a damaged local copy was replaced from a holder");
                            Ok((b, false))
                        }
                        Err(e) => {
                            tracing::warn!(%id, cause = %e, "a damaged local copy could not be replaced");
                            Ok((b, true))
                        }
                    };
                }
                Ok(b) => return Ok((b, true)),
                Err(e) => why = e.to_string(),
            }
        }
        Err(MeshError::unavailable(why))
    }

    /// A dataset's manifest and the holders of each of its chunks.
    pub fn dataset_holders(
        &self,
        name: &str,
    ) -> Result<(DatasetManifest, Vec<Vec<u64>>), MeshError> {
        self.inner
            .state
            .read(|s: &ClusterState| {
                let m = s.datasets.get(name)?.clone();
                let h: Vec<Vec<u64>> = m
                    .chunks
                    .iter()
                    .map(|c| s.chunk_locations.get(&c.id).cloned().unwrap_or_default())
                    .collect();
                Some((m, h))
            })
            .ok_or_else(|| MeshError::not_found(format!("no dataset '{name}' on the mesh")))
    }

    /// Where this node keeps its files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_piece_cache_keeps_recent_chunks_within_its_cap() {
        let id = |b: u8| ChunkId::from_bytes([b; 32]);
        let mut c = PieceCache::default();
        c.put(id(1), Arc::new(vec![0; 300 << 20]));
        c.put(id(2), Arc::new(vec![0; 100 << 20]));
        assert!(c.get(&id(1)).is_some(), "within the cap");
        // A third large one pushes out the least recently used (2, since 1 was just read).
        c.put(id(3), Arc::new(vec![0; 200 << 20]));
        assert!(c.get(&id(2)).is_none());
        assert!(c.get(&id(1)).is_some() && c.get(&id(3)).is_some());
        // One chunk over the cap on its own is still kept (it is being served).
        c.put(id(4), Arc::new(vec![0; 600 << 20]));
        assert_eq!(c.entries.len(), 1);
        assert!(c.get(&id(4)).is_some());
    }
}

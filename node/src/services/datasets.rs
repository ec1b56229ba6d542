//! Datasets: replicated, checksummed tables on the mesh, and their rows in memory.
//!
//! `dataset put` through a node ingests the file, places each chunk on `replicas` live
//! members by rendezvous hashing, has them fetch their copies, and only then records the
//! dataset and its chunk locations in the replicated state. A task's dataset is assembled
//! from its chunks (local ones read here, others fetched from a holder and verified) and
//! cached within a memory cap.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use meshml_models::Dataset;
use meshml_protocol::{ChunkId, NodeId, Request, Response};
use meshml_storage::export::{TableFormat, TableWriter};
use meshml_storage::ingest::{ingest_file, IngestOptions};
use meshml_storage::raft::{ClusterCommand, ClusterState};
use meshml_storage::{DatasetManifest, Store};

use super::chunks::Chunks;
use super::consensus::Consensus;

/// Largest encoded manifest (with its columns' categories) a mesh dataset may have: it is
/// proposed to the replicated log, whose messages fit in a frame
/// ([`meshml_protocol::codec::MAX_FRAME`], 4 MiB) with room to spare.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
use crate::error::MeshError;

pub use meshml_client::api::PutDatasetRequest;

/// A new owner for the copies of dataset `name` being stored: `dataset.NAME.NONCE`, unique
/// to this put (the replicated state records it with the dataset).
fn new_dataset_owner(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let nonce = blake3::hash(format!("{name} {nanos} {}", std::process::id()).as_bytes());
    format!("dataset.{name}.{}", &nonce.to_hex()[..16])
}

struct Inner {
    chunks: Chunks,
    /// Datasets in memory, by owner (unique to each time a dataset is stored).
    cache: Mutex<crate::lru::Lru<String, Arc<Dataset>>>,
    loading: tokio::sync::Mutex<()>,
    /// Owners of the datasets this node is storing now (not recorded yet).
    storing: Mutex<std::collections::HashSet<String>>,
    /// The release pass's memory, one for the node (a removal is applied once).
    tracker: tokio::sync::Mutex<ReleaseTracker>,
}

/// The dataset service. Cheap to clone.
#[derive(Clone)]
pub struct Datasets {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Datasets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datasets").finish_non_exhaustive()
    }
}

impl Datasets {
    /// Datasets over `chunks`, with at most `cache_bytes` of them kept in memory.
    pub fn new(chunks: Chunks, cache_bytes: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                chunks,
                cache: Mutex::new(crate::lru::Lru::new(cache_bytes)),
                loading: tokio::sync::Mutex::new(()),
                storing: Mutex::new(Default::default()),
                tracker: tokio::sync::Mutex::new(ReleaseTracker::default()),
            }),
        }
    }

    /// The chunks the datasets are made of.
    pub fn chunks(&self) -> &Chunks {
        &self.inner.chunks
    }

    /// The consensus service that records them.
    pub fn consensus(&self) -> &Consensus {
        self.inner.chunks.consensus()
    }

    /// Ingests `file` as a mesh dataset: chunks on `replicas` live members each (chosen by
    /// rendezvous hashing), then the manifest and locations in the replicated state.
    pub async fn put(
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
            .consensus()
            .state()
            .read(|s| s.datasets.contains_key(&req.name))
        {
            return Err(MeshError::conflict(format!(
                "dataset '{}' exists on the mesh",
                req.name
            )));
        }
        // 1. Ingest into a staging store of its own (any failure leaves nothing behind).
        let staging_dir = self.chunks().dir().join("incoming").join(format!(
            "{}-{}",
            req.name,
            std::process::id()
        ));
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
            csv.categorical = req2.categorical.clone();
            csv.numeric = req2.numeric.clone();
            if let Some(na) = &req2.na_values {
                csv.na_values = std::iter::once(String::new())
                    .chain(na.iter().cloned())
                    .collect();
            }
            if let Some(m) = req2.max_categories {
                csv.max_categories = m;
            }
            // Errors name the input as the user knows it, never the staging path.
            let source = req2
                .source
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| format!("upload of '{}'", req2.name));
            let opts = IngestOptions {
                chunk_rows: req2.chunk_rows,
                csv,
                source: Some(source),
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
        // The manifest, categories included, travels in the replicated log, whose messages
        // are at most a frame: a dataset whose schema would not fit is refused here.
        let manifest_bytes = rmp_serde::to_vec_named(&manifest)
            .map_err(|e| MeshError::internal(e.to_string()))?
            .len();
        if manifest_bytes > MAX_MANIFEST_BYTES {
            let widest = manifest
                .columns
                .iter()
                .zip(&manifest.feature_names)
                .max_by_key(|(c, _)| c.kind.categories().map_or(0, |c| c.len()))
                .map(|(c, n)| {
                    format!(
                        "'{n}' has {} categories",
                        c.kind.categories().map_or(0, |c| c.len())
                    )
                })
                .unwrap_or_default();
            return Err(MeshError::bad(format!(
                "the schema of '{}' takes {manifest_bytes} bytes (its categories; {widest}); \
                 a mesh dataset's schema is replicated to every member and may take at most \
                 {MAX_MANIFEST_BYTES}: drop high-cardinality text columns (ids, free text), or \
                 declare them --numeric",
                req.name
            )));
        }

        // 2. Place every chunk; stage all of them here so that replicas can fetch them.
        let members = self.consensus().live_members().await;
        let ids: Vec<NodeId> = members
            .iter()
            .map(|m| NodeId::new(m.id.to_string()))
            .collect();
        let r = req.replicas.min(members.len());
        let me = self.consensus().id();
        let staging_owner = format!("staging.{}", req.name);
        let owner = new_dataset_owner(&req.name);
        self.inner
            .storing
            .lock()
            .expect("storing")
            .insert(owner.clone());
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
        self.chunks()
            .with_store(move |s| {
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
        let source = self.consensus().client().local_peer_id().to_string();
        let mut counts = BTreeMap::new();
        let mut result = Ok(());
        for (node, list) in &per_node {
            counts.insert(*node, list.len());
            if *node == me {
                continue;
            }
            let Some(peer) = self.consensus().peer_of(*node) else {
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
                match self.consensus().client().request(peer, req).await {
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
                owner: Some(owner.clone()),
            };
            let name = req.name.clone();
            result = match self.consensus().propose(cmd).await {
                Ok(r) if r.ok => {
                    self.consensus()
                        .wait_applied(|s| s.datasets.contains_key(&name))
                        .await
                }
                Ok(r) => Err(MeshError::conflict(r.error.unwrap_or_default())),
                Err(e) => Err(e),
            };
        }
        let so = staging_owner.clone();
        let o = owner.clone();
        let failed = result.is_err();
        let unpinned = self
            .chunks()
            .with_store(move |s| {
                if failed {
                    s.unpin(&o)?;
                }
                s.unpin(&so)
            })
            .await;
        self.inner.storing.lock().expect("storing").remove(&owner);
        unpinned?;
        result.map(|()| (manifest, counts))
    }

    /// The dataset `name` in memory, from the cache or assembled from chunks (local ones
    /// read here, others fetched from a replica and verified).
    pub async fn load(&self, name: &str) -> Result<Arc<Dataset>, MeshError> {
        // By owner: a dataset removed and stored again under its name is another dataset.
        let key = self
            .consensus()
            .state()
            .read(|s| s.datasets.contains_key(name).then(|| s.dataset_owner(name)))
            .ok_or_else(|| MeshError::not_found(format!("no dataset '{name}' on the mesh")))?;
        if let Some(d) = self.inner.cache.lock().expect("cache").get(&key) {
            return Ok(d);
        }
        let _one_at_a_time = self.inner.loading.lock().await;
        if let Some(d) = self.inner.cache.lock().expect("cache").get(&key) {
            return Ok(d);
        }
        let (manifest, holders) = self.holders(name)?;
        let mut data = manifest
            .assembler()
            .map_err(|e| MeshError::internal(e.to_string()))?;
        for (c, hs) in manifest.chunks.iter().zip(holders) {
            let id = c.id;
            let (bytes, _) = self.chunks().chunk_from(id, &hs).await.map_err(|why| {
                MeshError::unavailable(format!("chunk {id} of '{name}' is unreachable: {why}"))
            })?;
            // Each chunk is decoded into the dataset's matrix as it arrives.
            data = tokio::task::spawn_blocking(move || {
                let mut data = data;
                data.push(&id, &bytes).map(|()| data)
            })
            .await
            .map_err(|e| MeshError::internal(e.to_string()))?
            .map_err(|e| MeshError::internal(e.to_string()))?;
        }
        let d = tokio::task::spawn_blocking(move || data.finish())
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

    /// A dataset's manifest and the holders of each of its chunks.
    pub fn holders(&self, name: &str) -> Result<(DatasetManifest, Vec<Vec<u64>>), MeshError> {
        self.consensus()
            .state()
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
}

/// How often a node looks for copies of datasets removed from the mesh.
pub const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a node keeps copies of a dataset the replicated state neither records nor
/// remembers removing (the removal is older than the state remembers), counted from the
/// last copy pinned for it here: a dataset being stored pins its copies before it is
/// recorded, and the node storing it never frees them meanwhile.
pub const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(1800);

/// What the release pass remembers between looks.
#[derive(Debug, Default)]
struct ReleaseTracker {
    /// Removals already applied here, by number.
    applied: std::collections::BTreeSet<u64>,
    /// Owners of copies here that the state neither records nor remembers, since when.
    absent_since: BTreeMap<String, std::time::Instant>,
}

impl Datasets {
    /// Removes dataset `name` from the mesh: the removal goes through Raft, and every
    /// holder then frees its copies (see [`Datasets::release`]). Refused while an
    /// unfinished job reads it.
    pub async fn remove(&self, name: &str) -> Result<DatasetManifest, MeshError> {
        let (manifest, _) = self.holders(name)?;
        let users: Vec<String> = self.consensus().state().read(|s| {
            s.jobs
                .iter()
                .filter(|(_, j)| j.state == meshml_storage::raft::JobState::Running)
                .filter(|(_, j)| {
                    rmp_serde::from_slice::<meshml_client::api::JobRequest>(&j.spec)
                        .is_ok_and(|r| r.dataset == name || r.test_dataset.as_deref() == Some(name))
                })
                .map(|(id, _)| id.to_string())
                .collect()
        });
        if !users.is_empty() {
            return Err(MeshError::conflict(format!(
                "dataset '{name}' is in use by running job(s) {}; cancel them or wait",
                users.join(", ")
            )));
        }
        let r = self
            .consensus()
            .propose(ClusterCommand::RemoveDataset {
                name: name.to_string(),
            })
            .await?;
        if !r.ok {
            let why = r.error.unwrap_or_default();
            return Err(match r.rejection {
                Some(meshml_storage::raft::Rejection::NotFound) => MeshError::not_found(why),
                _ => MeshError::conflict(why),
            });
        }
        self.consensus()
            .wait_applied(|s| !s.datasets.contains_key(name))
            .await?;
        // This node frees its copies now (its release pass would within RELEASE_EVERY, as
        // the other holders' do).
        self.release().await;
        Ok(manifest)
    }

    /// Frees this node's copies of datasets no longer on the mesh: for each removal the
    /// replicated state remembers (once), the copies kept for the removed dataset's owner,
    /// except chunks another recorded dataset has here, which move to that dataset's owner;
    /// and, after [`ORPHAN_GRACE`] without new copies, those of an owner the state neither
    /// records nor remembers. Also drops removed datasets from the in-memory cache.
    pub async fn release(&self) {
        // One pass at a time, with the node's memory of what it applied.
        let mut tracker = self.inner.tracker.lock().await;
        let me = self.consensus().id();
        // Recorded owners; each removal with the chunks of it that a recorded dataset has
        // on this node (with that dataset's owner).
        type Keep = Vec<(String, Vec<(ChunkId, u64)>)>;
        let (recorded, removals): (std::collections::BTreeSet<String>, Vec<(u64, String, Keep)>) =
            self.consensus().state().read(|s| {
                let recorded = s.datasets.keys().map(|n| s.dataset_owner(n)).collect();
                let removals = s
                    .removed_datasets
                    .iter()
                    .filter(|r| !tracker.applied.contains(&r.id))
                    .map(|r| {
                        let removed: std::collections::BTreeSet<ChunkId> =
                            r.chunks.iter().copied().collect();
                        let keep: Keep = s
                            .datasets
                            .iter()
                            .map(|(n, m)| {
                                let mine = m
                                    .chunks
                                    .iter()
                                    .filter(|c| removed.contains(&c.id))
                                    .filter(|c| {
                                        s.chunk_locations
                                            .get(&c.id)
                                            .is_some_and(|h| h.contains(&me))
                                    })
                                    .map(|c| (c.id, c.bytes))
                                    .collect::<Vec<_>>();
                                (s.dataset_owner(n), mine)
                            })
                            .filter(|(_, mine)| !mine.is_empty())
                            .collect();
                        (r.id, r.owner.clone(), keep)
                    })
                    .collect();
                (recorded, removals)
            });
        // Forget removals the state no longer remembers (bounded memory on a long-lived node).
        let remembered: std::collections::BTreeSet<u64> = self
            .consensus()
            .state()
            .read(|s| s.removed_datasets.iter().map(|r| r.id).collect());
        tracker.applied.retain(|id| remembered.contains(id));
        for (id, owner, keep) in removals {
            self.inner.cache.lock().expect("cache").remove(&owner);
            let o = owner.clone();
            let freed = self
                .chunks()
                .with_store(move |s| {
                    for (other, chunks) in &keep {
                        // Still listed here for another dataset: kept for it.
                        let have: Vec<(ChunkId, u64)> = chunks
                            .iter()
                            .filter(|(c, _)| s.has_chunk(c).unwrap_or(false))
                            .copied()
                            .collect();
                        if !have.is_empty() {
                            s.pin(other, &have)?;
                        }
                    }
                    s.unpin(&o)
                })
                .await;
            match freed {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(%owner, freed = n, "freed the copies of a removed dataset");
                    }
                    tracker.applied.insert(id);
                }
                Err(e) => {
                    tracing::warn!(%owner, error = %e, "cannot free a removed dataset's copies")
                }
            }
        }
        // Copies of an owner neither recorded nor being stored: freed once no copy came for
        // ORPHAN_GRACE (an ingest in progress pins copies before its dataset is recorded).
        let owners = match self.chunks().with_store(|s| s.owners()).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the chunk owners");
                return;
            }
        };
        let storing = self.inner.storing.lock().expect("storing").clone();
        let clock = std::time::Instant::now();
        let held: Vec<String> = owners
            .into_keys()
            .filter(|o| o.starts_with("dataset."))
            .collect();
        tracker.absent_since.retain(|o, _| held.contains(o));
        let mut orphans = Vec::new();
        for o in held {
            if recorded.contains(&o) || storing.contains(&o) {
                tracker.absent_since.remove(&o);
                continue;
            }
            let since = tracker.absent_since.entry(o.clone()).or_insert(clock);
            if let Some(t) = self.chunks().last_touched(&o) {
                *since = (*since).max(t);
            }
            if clock.duration_since(*since) >= ORPHAN_GRACE {
                orphans.push(o);
            }
        }
        for owner in orphans {
            tracker.absent_since.remove(&owner);
            let o = owner.clone();
            match self.chunks().with_store(move |s| s.unpin(&o)).await {
                Ok(freed) => {
                    tracing::info!(%owner, freed, "freed copies of a dataset the mesh does not record")
                }
                Err(e) => tracing::warn!(%owner, error = %e, "cannot free orphaned copies"),
            }
        }
    }

    /// Runs [`Datasets::release`] every [`RELEASE_EVERY`], forever.
    pub async fn release_forever(self) {
        loop {
            tokio::time::sleep(RELEASE_EVERY).await;
            self.release().await;
        }
    }
}

/// A dataset being written out, chunk by chunk (see [`Datasets::export`]).
struct Export {
    datasets: Datasets,
    manifest: DatasetManifest,
    layout: Arc<meshml_storage::encoding::ChunkLayout>,
    holders: Vec<Vec<u64>>,
    next: usize,
    writer: Option<TableWriter<Vec<u8>>>,
}

impl Export {
    /// The next piece of the file: a chunk's rows, then the end of the file, then `None`.
    async fn step(&mut self) -> Result<Option<Vec<u8>>, MeshError> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(None);
        };
        let name = self.manifest.name.clone();
        if self.next == self.manifest.chunks.len() {
            return tokio::task::spawn_blocking(move || writer.finish())
                .await
                .map_err(|e| MeshError::internal(e.to_string()))?
                .map(Some)
                .map_err(|e| MeshError::internal(e.to_string()));
        }
        let i = self.next;
        let id = self.manifest.chunks[i].id;
        let (bytes, _) = self
            .datasets
            .chunks()
            .chunk_from(id, &self.holders[i])
            .await
            .map_err(|why| {
                MeshError::unavailable(format!("chunk {id} of '{name}' is unreachable: {why}"))
            })?;
        let layout = self.layout.clone();
        let (writer, out) = tokio::task::spawn_blocking(move || {
            let chunk = layout.decode(&id, &bytes)?;
            writer.write_chunk(&chunk)?;
            let out = std::mem::take(writer.output()?);
            Ok::<_, meshml_storage::StorageError>((writer, out))
        })
        .await
        .map_err(|e| MeshError::internal(e.to_string()))?
        .map_err(|e| MeshError::internal(e.to_string()))?;
        self.writer = Some(writer);
        self.next += 1;
        Ok(Some(out))
    }
}

impl Datasets {
    /// Dataset `name` written in `format` as a stream of pieces: one chunk at a time,
    /// fetched from a live holder (verified, with read repair) in row order, so memory stays
    /// at about one chunk whatever the dataset's size. Refused up front when a chunk has no
    /// live holder; a failure later ends the stream with the error.
    pub async fn export(
        &self,
        name: &str,
        format: TableFormat,
    ) -> Result<
        (
            DatasetManifest,
            impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + 'static,
        ),
        MeshError,
    > {
        let (manifest, holders) = self.holders(name)?;
        let live = self.consensus().live_ids().await;
        if let Some((c, _)) = manifest
            .chunks
            .iter()
            .zip(&holders)
            .find(|(_, hs)| !hs.iter().any(|h| live.contains(h)))
        {
            return Err(MeshError::unavailable(format!(
                "chunk {} of '{name}' has no live holder; start a member that holds it",
                c.id
            )));
        }
        let first = TableWriter::new(format, &manifest, Vec::new())
            .map_err(|e| MeshError::internal(e.to_string()))?;
        let layout = Arc::new(
            manifest
                .layout()
                .map_err(|e| MeshError::internal(e.to_string()))?,
        );
        let state = Export {
            datasets: self.clone(),
            manifest: manifest.clone(),
            layout,
            holders,
            next: 0,
            writer: Some(first),
        };
        let stream = futures::stream::unfold(Some(state), |state| async move {
            let mut st = state?;
            match st.step().await {
                Ok(Some(piece)) => Some((Ok(piece), Some(st))),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(dataset = %st.manifest.name, error = %e, "export failed");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        });
        Ok((manifest, stream))
    }
}

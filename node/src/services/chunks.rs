//! Chunks: this node's store of content-addressed chunks, and chunks from other members.
//!
//! Serves chunks piece by piece, fetches the chunks a task needs from a holder (verified
//! against their hash, replacing a damaged local copy: read repair), and keeps the replicas
//! another member asks this node to hold. Disk work runs on tokio's blocking pool, never
//! on network or actor threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use meshml_protocol::{ChunkId, ErrorCode, Piece, Response};
use meshml_storage::Store;

use super::consensus::{remote, Consensus};
use crate::error::MeshError;

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

struct Inner {
    consensus: Consensus,
    store: Arc<Mutex<Store>>,
    dir: PathBuf,
    pieces: Mutex<PieceCache>,
    /// When each owner last had copies pinned for it here (a dataset being stored is not
    /// recorded yet: the release pass leaves its copies alone while they keep coming).
    touched: Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// The chunk service. Cheap to clone.
#[derive(Clone)]
pub struct Chunks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunks")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Chunks {
    /// The chunks of `store` (opened in `dir`); other members are found through `consensus`.
    pub fn new(consensus: Consensus, store: Store, dir: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                consensus,
                store: Arc::new(Mutex::new(store)),
                dir,
                pieces: Mutex::new(PieceCache::default()),
                touched: Mutex::new(Default::default()),
            }),
        }
    }

    /// The consensus service these chunks find holders through.
    pub fn consensus(&self) -> &Consensus {
        &self.inner.consensus
    }

    /// Where this node keeps its files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
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

    /// Notes that copies were pinned for `owner` now.
    pub fn touch(&self, owner: &str) {
        let mut t = self.inner.touched.lock().expect("touched");
        // Bounded: the owner touched longest ago goes first.
        if t.len() >= 4096 && !t.contains_key(owner) {
            if let Some(oldest) = t.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone()) {
                t.remove(&oldest);
            }
        }
        t.insert(owner.to_string(), std::time::Instant::now());
    }

    /// When copies were last pinned for `owner` here, if this process saw it.
    pub fn last_touched(&self, owner: &str) -> Option<std::time::Instant> {
        self.inner
            .touched
            .lock()
            .expect("touched")
            .get(owner)
            .copied()
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
        self.touch(&owner);
        for id in chunks {
            let have = self.with_store(move |s| s.has_chunk(&id)).await;
            let sized = match have {
                Ok(true) => self
                    .with_store(move |s| s.chunk(&id).map(|b| b.len() as u64))
                    .await
                    .map(|n| (id, n)),
                Ok(false) => match self.consensus().client().fetch_chunk(source, id).await {
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
        self.touch(&owner);
        Response::Ack
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
        let consensus = self.consensus();
        for h in holders.iter().filter(|h| **h != consensus.id()) {
            let Some(peer) = consensus.peer_of(*h) else {
                why = format!("member {h} has no address");
                continue;
            };
            match consensus.client().fetch_chunk(peer, id).await {
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

//! Chunk repair, run by the driver: restores the copy count of dataset chunks and model
//! artifacts that lost holders (a member removed).
//!
//! Each short chunk gets new holders by rendezvous rank among the live members, which fetch
//! it from a live holder; the new location is recorded once stored. At most
//! [`REPAIR_BATCH`] chunks per pass; the driver runs a pass every [`REPAIR_EVERY`].

use meshml_protocol::{ChunkId, ErrorCode, RemoteError, Request, Response};
use meshml_storage::raft::ClusterCommand;

use crate::services::chunks::Chunks;

/// How often the driver looks for chunks with too few copies.
pub const REPAIR_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Chunks re-replicated per pass, at most.
pub const REPAIR_BATCH: usize = 64;

/// Copies of a model artifact the driver keeps (capped by the live members).
pub const MODEL_REPLICAS: usize = 2;

/// What a repaired chunk belongs to.
#[derive(Debug)]
enum Held {
    /// A dataset's chunk.
    Dataset(String),
    /// A model version's artifact.
    Model(String, u32),
}

/// One repair pass (see the module docs).
pub async fn repair(chunks: &Chunks) {
    let live = chunks.consensus().live_ids().await;
    // Dataset chunks short of their replica count, and model artifacts with fewer than
    // MODEL_REPLICAS copies.
    let short: Vec<(Held, ChunkId, Vec<u64>, usize)> = chunks.consensus().state().read(|s| {
        let mut out = Vec::new();
        for (name, m) in &s.datasets {
            let want = s
                .dataset_replicas
                .get(name)
                .copied()
                .unwrap_or(1)
                .min(live.len());
            for c in &m.chunks {
                let holders = s.chunk_locations.get(&c.id).cloned().unwrap_or_default();
                if holders.len() < want && out.len() < REPAIR_BATCH {
                    out.push((Held::Dataset(name.clone()), c.id, holders, want));
                }
            }
        }
        let want = MODEL_REPLICAS.min(live.len());
        for (name, versions) in &s.models {
            for (v, r) in versions {
                if r.locations.len() < want && out.len() < REPAIR_BATCH {
                    out.push((
                        Held::Model(name.clone(), *v),
                        r.artifact,
                        r.locations.clone(),
                        want,
                    ));
                }
            }
        }
        out
    });
    for (what, chunk, holders, want) in short {
        let Some(source) = holders.iter().find(|h| live.contains(h)).copied() else {
            tracing::warn!(?what, %chunk, "no live copy left");
            continue;
        };
        let targets: Vec<u64> = by_rank(&chunk, &live)
            .into_iter()
            .filter(|n| !holders.contains(n))
            .take(want - holders.len())
            .collect();
        for target in targets {
            let Some(src) = chunks.consensus().peer_of(source) else {
                continue;
            };
            let owner = match &what {
                Held::Dataset(d) => chunks.consensus().state().read(|s| s.dataset_owner(d)),
                Held::Model(m, _) => format!("model.{m}"),
            };
            let stored = replicate_to(chunks, owner, chunk, src, target).await;
            if stored == Response::Ack {
                let cmd = match &what {
                    Held::Dataset(_) => ClusterCommand::AddChunkLocation {
                        chunk,
                        member: target,
                    },
                    Held::Model(name, version) => ClusterCommand::AddModelLocation {
                        name: name.clone(),
                        version: *version,
                        member: target,
                    },
                };
                let r = chunks.consensus().propose(cmd).await;
                tracing::info!(?what, %chunk, member = target, ok = ?r.map(|r| r.ok), "copy made");
            } else {
                tracing::info!(?what, %chunk, member = target, answer = ?stored, "copy failed; will retry");
            }
        }
    }
}

/// Has member `target` fetch `chunk` from `source` and keep it for `owner` (this node
/// fetches it itself); the member's answer, or why it could not be asked.
pub async fn replicate_to(
    chunks: &Chunks,
    owner: String,
    chunk: ChunkId,
    source: libp2p::PeerId,
    target: u64,
) -> Response {
    if target == chunks.consensus().id() {
        return chunks
            .serve_replicate(owner, vec![chunk], &source.to_string())
            .await;
    }
    let unavailable = |message: String| {
        Response::Error(RemoteError {
            code: ErrorCode::Unavailable,
            message,
            retryable: true,
        })
    };
    let Some(peer) = chunks.consensus().peer_of(target) else {
        return unavailable(format!("member {target} has no address"));
    };
    let req = Request::Replicate {
        owner,
        chunks: vec![chunk],
        source: source.to_string(),
    };
    chunks
        .consensus()
        .client()
        .request(peer, req)
        .await
        .unwrap_or_else(|e| unavailable(e.to_string()))
}

/// `members` in rendezvous order for `chunk` (the placement rule of every copy).
pub fn by_rank(chunk: &ChunkId, members: &[u64]) -> Vec<u64> {
    let names: Vec<meshml_protocol::NodeId> = members
        .iter()
        .map(|id| meshml_protocol::NodeId::new(id.to_string()))
        .collect();
    meshml_storage::placement::rank(chunk, &names)
        .into_iter()
        .filter_map(|n| n.as_str().parse::<u64>().ok())
        .collect()
}

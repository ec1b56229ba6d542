//! The scrubber: every node reads back the chunks it stores, checks each against its
//! content address, and replaces a copy that fails from another holder.
//!
//! Read repair (`Chunks::chunk_from`) only finds damage in chunks a task happens to read on
//! this node; a copy no task reads here could rot unnoticed until the other copies are
//! gone. The scrubber closes that gap: a pass starts shortly after the node starts (a
//! restart after a crash is when damage is most likely) and then once per interval. A
//! pass reads at a bounded rate so it never starves tasks of disk, and copies that could
//! not be replaced (no holder reachable yet) are retried with a growing pause.

use crate::services::chunks::Chunks;
use meshml_protocol::ChunkId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the scrubber runs.
#[derive(Debug, Clone, Copy)]
pub struct ScrubConfig {
    /// Pause between the node's start and the first pass.
    pub first_after: Duration,
    /// Pause between the starts of two full passes.
    pub every: Duration,
    /// Bytes read per second at most.
    pub bytes_per_s: u64,
}

/// What the scrubber has done, for `/v1/status`.
#[derive(Debug, Default)]
pub struct ScrubStats {
    passes: AtomicU64,
    checked: AtomicU64,
    bytes: AtomicU64,
    repaired: AtomicU64,
    /// Damaged copies not replaced yet.
    pending: Mutex<Vec<ChunkId>>,
    last_pass_ms: AtomicU64,
}

pub use meshml_client::api::ScrubView;

impl ScrubStats {
    /// A snapshot for the status page.
    pub fn view(&self) -> ScrubView {
        ScrubView {
            passes: self.passes.load(Ordering::Relaxed),
            checked: self.checked.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            repaired: self.repaired.load(Ordering::Relaxed),
            damaged: self
                .pending
                .lock()
                .expect("scrub stats")
                .iter()
                .map(ToString::to_string)
                .collect(),
            last_pass_ms: self.last_pass_ms.load(Ordering::Relaxed),
        }
    }

    fn mark_damaged(&self, id: ChunkId) {
        let mut p = self.pending.lock().expect("scrub stats");
        if !p.contains(&id) {
            p.push(id);
        }
    }

    fn mark_sound(&self, id: &ChunkId) {
        self.pending
            .lock()
            .expect("scrub stats")
            .retain(|p| p != id);
    }

    /// Counts what checking `id` found; the bytes read.
    fn count(&self, id: ChunkId, c: &Checked) -> u64 {
        match c {
            Checked::Sound(n) => {
                self.checked.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(*n, Ordering::Relaxed);
                self.mark_sound(&id);
                *n
            }
            Checked::Repaired(n) => {
                self.checked.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(*n, Ordering::Relaxed);
                self.repaired.fetch_add(1, Ordering::Relaxed);
                self.mark_sound(&id);
                tracing::warn!(%id, "scrub: a damaged copy was replaced from another holder");
                *n
            }
            Checked::Damaged(why) => {
                self.checked.fetch_add(1, Ordering::Relaxed);
                self.mark_damaged(id);
                tracing::error!(%id, cause = %why, "scrub: a damaged copy could not be replaced yet");
                0
            }
            Checked::Gone => {
                self.mark_sound(&id);
                0
            }
        }
    }
}

/// What checking one copy found.
enum Checked {
    Sound(u64),
    Repaired(u64),
    Damaged(String),
    /// Gone from the store since the pass listed it (removed, or collected).
    Gone,
}

/// Reads `id` from the local store and, if it fails its check, replaces it from a holder.
async fn check(chunks: &Chunks, id: ChunkId) -> Checked {
    let read = chunks
        .with_store(move |s| {
            if !s.has_chunk(&id)? {
                return Ok(None);
            }
            Ok(Some(s.chunk(&id)))
        })
        .await;
    match read {
        Ok(None) => Checked::Gone,
        Ok(Some(Ok(b))) => Checked::Sound(b.len() as u64),
        Ok(Some(Err(_))) | Err(_) => {
            let holders = chunks
                .consensus()
                .state()
                .read(|s| s.chunk_locations.get(&id).cloned())
                .unwrap_or_default();
            // `chunk_from` finds the local copy damaged and replaces it from a holder.
            match chunks.chunk_from(id, &holders).await {
                Ok((b, false)) => Checked::Repaired(b.len() as u64),
                Ok((_, true)) => Checked::Damaged("the good copy could not be stored".into()),
                Err(why) => Checked::Damaged(why.to_string()),
            }
        }
    }
}

/// One full pass over the local chunks, at most `bytes_per_s`, counted in `stats`.
pub async fn pass(chunks: &Chunks, stats: &ScrubStats, bytes_per_s: u64) {
    let started = Instant::now();
    let ids = match chunks.with_store(|s| s.chunks().ids()).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(cause = %e, "scrub: cannot list the local chunks");
            return;
        }
    };
    let mut read = 0u64;
    for id in ids {
        let c = check(chunks, id).await;
        read += stats.count(id, &c);
        // Stay under the rate: sleep until the bytes read so far are due.
        let due = Duration::from_secs_f64(read as f64 / bytes_per_s.max(1) as f64);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
    let ms = started.elapsed().as_millis() as u64;
    stats.last_pass_ms.store(ms, Ordering::Relaxed);
    stats.passes.fetch_add(1, Ordering::Relaxed);
    let v = stats.view();
    tracing::info!(
        checked = v.checked,
        repaired = v.repaired,
        damaged = v.damaged.len(),
        ms,
        "scrub pass done"
    );
}

/// Runs the scrubber over `chunks` for as long as the node runs, counting in `stats`.
pub async fn run(chunks: Chunks, stats: Arc<ScrubStats>, cfg: ScrubConfig) {
    tokio::time::sleep(cfg.first_after).await;
    pass(&chunks, &stats, cfg.bytes_per_s).await;
    let mut next_pass = Instant::now() + cfg.every;
    // Damaged copies left over are retried: 1 s, then doubling up to a minute.
    let mut retry = Duration::from_secs(1);
    loop {
        let pending: Vec<ChunkId> = stats.pending.lock().expect("scrub").clone();
        let wait = if pending.is_empty() {
            retry = Duration::from_secs(1);
            next_pass.saturating_duration_since(Instant::now())
        } else {
            retry
        };
        tokio::time::sleep(wait).await;
        if Instant::now() >= next_pass {
            pass(&chunks, &stats, cfg.bytes_per_s).await;
            next_pass = Instant::now() + cfg.every;
            continue;
        }
        for id in pending {
            let c = check(&chunks, id).await;
            stats.count(id, &c);
        }
        retry = (retry * 2).min(Duration::from_secs(60));
    }
}

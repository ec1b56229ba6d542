//! A node's mesh services, bundled for those that use most of them (the HTTP routes and the
//! network bridge). Each is built in `node.rs`, where the daemon is wired; code that needs
//! one service takes that one (the driver and a worker their datasets, the scrubber its
//! chunks).

use std::sync::Arc;

use crate::batch::Batches;
use crate::scrub::ScrubStats;
use crate::services::chunks::Chunks;
use crate::services::consensus::Consensus;
use crate::services::datasets::Datasets;
use crate::serving::Models;

/// Every mesh service of one node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Mesh {
    /// The replicated state and proposals through the driver.
    pub consensus: Consensus,
    /// The local chunk store and chunks from holders.
    pub chunks: Chunks,
    /// Datasets on the mesh.
    pub datasets: Datasets,
    /// Registered models loaded for serving.
    pub models: Models,
    /// Batch predictions this node runs.
    pub batches: Batches,
    /// What the scrubber has checked and repaired.
    pub scrub: Arc<ScrubStats>,
    /// Memory a fit may take for its training data, bytes (larger datasets are fitted
    /// data-parallel).
    pub train_memory: u64,
}

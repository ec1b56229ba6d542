//! The consensus log and replicated state of a cluster, in sled, for openraft 0.9.
//!
//! - [`TypeConfig`]: the Raft types: node ids are `u64` (the cluster maps libp2p peer ids
//!   to them), commands are [`ClusterCommand`]s applied to a [`ClusterState`].
//! - [`LogStore`]: the Raft log, vote and committed index in sled trees; appends are flushed
//!   before openraft is told they are durable.
//! - [`StateMachine`]: applies commands to the cluster state, persists it with the last
//!   applied log id, builds and installs snapshots (so a node that was away catches up).
//!
//! Bulk bytes never go through Raft: datasets appear here as manifests and chunk locations.

// openraft's traits fix the error type (StorageError, ~224 bytes); boxing it here would
// only add conversions at every call.
#![allow(clippy::result_large_err)]

mod log_store;
mod state;
mod state_machine;

pub use log_store::LogStore;
pub use state::{
    legacy_dataset_owner, Checkpoint, ClusterCommand, ClusterResponse, ClusterState, JobRecord,
    JobState, MemberInfo, ModelRecord, Rejection, RemovedDataset, TaskRecord, MAX_CHECKPOINT_BYTES,
    REMEMBERED_REMOVALS,
};
pub use state_machine::StateMachine;

openraft::declare_raft_types!(
    /// Raft types of a meshml cluster.
    pub TypeConfig:
        D = ClusterCommand,
        R = ClusterResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Opens the log store and state machine of a cluster in `db` (trees prefixed `raft.`).
pub async fn open(db: &sled::Db) -> Result<(LogStore, StateMachine), openraft::StorageError<u64>> {
    Ok((LogStore::open(db)?, StateMachine::open(db)?))
}

/// Flushes `db` on tokio's blocking pool. Not sled's `flush_async`: that runs on sled's
/// own small I/O pool, and the write it waits for needs a thread of the same pool, so
/// with more databases flushing at once than the pool has threads (16 nodes in one
/// process) every flush waits forever.
async fn flush(db: &sled::Db) -> std::result::Result<(), openraft::AnyError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || db.flush())
        .await
        .map_err(io_err)?
        .map(|_| ())
        .map_err(io_err)
}

fn io_err(e: impl std::error::Error + 'static) -> openraft::AnyError {
    openraft::AnyError::new(&e)
}

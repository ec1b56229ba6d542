//! The state machine: [`ClusterState`] plus the last applied log id and membership,
//! persisted in sled after every batch, with snapshots.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogId, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{io_err, ClusterResponse, ClusterState, TypeConfig};

type Result<T> = std::result::Result<T, StorageError<u64>>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    state: ClusterState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// The state machine. Clones share state (the snapshot builder is a clone).
#[derive(Debug, Clone)]
pub struct StateMachine {
    db: sled::Db,
    tree: sled::Tree,
    applied: Arc<Mutex<Applied>>,
    snapshots_built: Arc<std::sync::atomic::AtomicU64>,
    snapshots_installed: Arc<std::sync::atomic::AtomicU64>,
    /// Counts the changes applied, for those who wait on them.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

const APPLIED: &[u8] = b"applied";
const SNAPSHOT: &[u8] = b"snapshot";

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).expect("state encodes")
}

impl StateMachine {
    /// Opens the state machine stored in `db`.
    pub fn open(db: &sled::Db) -> Result<Self> {
        let tree = db
            .open_tree("raft.state")
            .map_err(|e| StorageIOError::read_state_machine(io_err(e)))?;
        let applied = match tree
            .get(APPLIED)
            .map_err(|e| StorageIOError::read_state_machine(io_err(e)))?
        {
            Some(b) => rmp_serde::from_slice(&b)
                .map_err(|e| StorageIOError::read_state_machine(io_err(e)))?,
            None => Applied::default(),
        };
        Ok(Self {
            db: db.clone(),
            tree,
            applied: Arc::new(Mutex::new(applied)),
            snapshots_built: Arc::default(),
            snapshots_installed: Arc::default(),
            changes: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// A receiver that sees a change whenever entries are applied or a snapshot installed
    /// (the driver picks up a submitted job at once instead of on its next tick).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// How many snapshots from a leader this state machine has installed since it was
    /// opened (a node that was away catches up this way once the log it missed is gone).
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Reads the current cluster state without copying it (keep `f` short: it holds the
    /// state machine's lock).
    pub fn read<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> T {
        f(&self.applied.lock().expect("lock").state)
    }

    /// A copy of the current cluster state.
    pub fn state(&self) -> ClusterState {
        self.applied.lock().expect("lock").state.clone()
    }

    async fn persist(&self) -> std::result::Result<(), openraft::AnyError> {
        let bytes = encode(&*self.applied.lock().expect("lock"));
        self.tree.insert(APPLIED, bytes).map_err(io_err)?;
        super::flush(&self.db).await
    }

    fn stored_snapshot(&self) -> std::result::Result<Option<StoredSnapshot>, openraft::AnyError> {
        match self.tree.get(SNAPSHOT).map_err(io_err)? {
            Some(b) => rmp_serde::from_slice(&b).map(Some).map_err(io_err),
            None => Ok(None),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let (data, last, membership) = {
            let a = self.applied.lock().expect("lock");
            (encode(&a.state), a.last_applied, a.membership.clone())
        };
        let n = self
            .snapshots_built
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
            snapshot_id: format!("{}-{n}", last.map_or(0, |l| l.index)),
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        self.tree
            .insert(SNAPSHOT, encode(&stored))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), io_err(e)))?;
        super::flush(&self.db)
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>)> {
        let a = self.applied.lock().expect("lock");
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ClusterResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        {
            let mut a = self.applied.lock().expect("lock");
            for e in entries {
                a.last_applied = Some(*e.get_log_id());
                out.push(match e.payload {
                    EntryPayload::Blank => ClusterResponse {
                        ok: true,
                        ..Default::default()
                    },
                    EntryPayload::Normal(cmd) => a.state.apply(&cmd),
                    EntryPayload::Membership(m) => {
                        a.membership = StoredMembership::new(Some(e.log_id), m);
                        ClusterResponse {
                            ok: true,
                            ..Default::default()
                        }
                    }
                });
            }
        }
        self.persist()
            .await
            .map_err(StorageIOError::write_state_machine)?;
        self.changes.send_modify(|n| *n += 1);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let data = snapshot.into_inner();
        let state: ClusterState = rmp_serde::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), io_err(e)))?;
        {
            let mut a = self.applied.lock().expect("lock");
            a.state = state;
            a.last_applied = meta.last_log_id;
            a.membership = meta.last_membership.clone();
        }
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        self.tree
            .insert(SNAPSHOT, encode(&stored))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), io_err(e)))?;
        self.persist()
            .await
            .map_err(StorageIOError::write_state_machine)?;
        self.snapshots_installed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let s = self
            .stored_snapshot()
            .map_err(StorageIOError::read_state_machine)?;
        Ok(s.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

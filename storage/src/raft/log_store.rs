//! The Raft log, vote and committed index in sled.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogId, StorageError, StorageIOError, Vote};

use super::{io_err, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"last_purged";

/// The log store. Cloning shares the same trees (openraft reads through a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    db: sled::Db,
    /// index (u64 big-endian) -> entry (MessagePack)
    log: sled::Tree,
    /// vote, committed, last purged log id
    meta: sled::Tree,
}

type Result<T> = std::result::Result<T, StorageError<u64>>;

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).expect("raft records encode")
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> std::result::Result<T, openraft::AnyError> {
    rmp_serde::from_slice(b).map_err(io_err)
}

impl LogStore {
    /// Opens the log trees of `db`.
    pub fn open(db: &sled::Db) -> Result<Self> {
        let tree = |n: &str| -> Result<sled::Tree> {
            db.open_tree(n)
                .map_err(|e| StorageIOError::<u64>::read_logs(io_err(e)).into())
        };
        Ok(Self {
            db: db.clone(),
            log: tree("raft.log")?,
            meta: tree("raft.log_meta")?,
        })
    }

    async fn flush(&self) -> std::result::Result<(), openraft::AnyError> {
        super::flush(&self.db).await
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> std::result::Result<Option<T>, openraft::AnyError> {
        match self.meta.get(key).map_err(io_err)? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(i.to_be_bytes()),
            Bound::Excluded(&i) => Bound::Excluded(i.to_be_bytes()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(i.to_be_bytes()),
            Bound::Excluded(&i) => Bound::Excluded(i.to_be_bytes()),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.log
            .range::<[u8; 8], _>((start, end))
            .map(|kv| {
                let (_, v) = kv.map_err(|e| StorageIOError::read_logs(io_err(e)))?;
                decode(&v).map_err(|e| StorageIOError::read_logs(e).into())
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId<u64>> =
            self.get_meta(PURGED).map_err(StorageIOError::read_logs)?;
        let last = match self
            .log
            .last()
            .map_err(|e| StorageIOError::read_logs(io_err(e)))?
        {
            Some((_, v)) => {
                let e: Entry<TypeConfig> = decode(&v).map_err(StorageIOError::read_logs)?;
                Some(*e.get_log_id())
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<()> {
        self.meta
            .insert(VOTE, encode(vote))
            .map_err(|e| StorageIOError::write_vote(io_err(e)))?;
        self.flush().await.map_err(StorageIOError::write_vote)?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>> {
        Ok(self.get_meta(VOTE).map_err(StorageIOError::read_vote)?)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<()> {
        self.meta
            .insert(COMMITTED, encode(&committed))
            .map_err(|e| StorageIOError::write(io_err(e)))?;
        self.flush().await.map_err(StorageIOError::write)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>> {
        Ok(self
            .get_meta::<Option<LogId<u64>>>(COMMITTED)
            .map_err(StorageIOError::read)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        for e in entries {
            self.log
                .insert(e.get_log_id().index.to_be_bytes(), encode(&e))
                .map_err(|err| StorageIOError::write_logs(io_err(err)))?;
        }
        // Durable before openraft may count it.
        let flushed = self.flush().await;
        let io = flushed
            .as_ref()
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(io);
        flushed.map_err(StorageIOError::write_logs)?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<()> {
        self.remove_entries(log_id.index.to_be_bytes()..).await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<()> {
        self.meta
            .insert(PURGED, encode(&log_id))
            .map_err(|e| StorageIOError::write_logs(io_err(e)))?;
        self.remove_entries(..=log_id.index.to_be_bytes()).await
    }
}

impl LogStore {
    /// Removes the entries whose keys fall in `range`, then flushes.
    async fn remove_entries<R: RangeBounds<[u8; 8]>>(&self, range: R) -> Result<()> {
        let keys: Vec<sled::IVec> = self
            .log
            .range(range)
            .keys()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| StorageIOError::write_logs(io_err(e)))?;
        for k in keys {
            self.log
                .remove(k)
                .map_err(|e| StorageIOError::write_logs(io_err(e)))?;
        }
        self.flush().await.map_err(StorageIOError::write_logs)?;
        Ok(())
    }
}

//! The error type of the storage crate.

use std::path::PathBuf;

use meshml_protocol::ChunkId;

/// Result alias of the storage crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Errors of the storage crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Stored bytes do not hash to their id: the copy is corrupt and must be re-fetched.
    #[error("chunk {id} is corrupt: its bytes hash to {actual}")]
    Corrupt {
        /// The expected id.
        id: ChunkId,
        /// What the bytes hash to.
        actual: ChunkId,
    },
    /// A stored chunk is damaged in a way that keeps it from being read back.
    #[error("chunk {id} is corrupt: {message}")]
    Damaged {
        /// The chunk.
        id: ChunkId,
        /// What is wrong.
        message: String,
    },
    /// This store has no copy of the chunk.
    #[error("chunk {0} is not in this store")]
    Missing(ChunkId),
    /// No dataset of that name.
    #[error("no dataset named '{0}'")]
    DatasetNotFound(String),
    /// A dataset of that name exists already.
    #[error("a dataset named '{0}' exists already; remove it first (meshml dataset rm {0})")]
    DatasetExists(String),
    /// A dataset or model name that cannot be used.
    #[error("invalid name '{0}': use 1-128 letters, digits, '.', '_' or '-'")]
    InvalidName(String),
    /// No model of that name (and version).
    #[error("no model named '{0}'")]
    ModelNotFound(String),
    /// Bad input data or a model-layer failure (CSV errors name the line and column).
    #[error(transparent)]
    Model(#[from] meshml_models::ModelError),
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another meshml process")]
    Locked(PathBuf),
    /// The embedded database failed; `Corruption` means its files are damaged.
    #[error("storage database{}: {source}", if matches!(source, sled::Error::Corruption { .. }) { " is corrupt" } else { "" })]
    Db {
        /// The sled error.
        #[from]
        source: sled::Error,
    },
    /// A record in the database cannot be decoded.
    #[error("stored {what} is corrupt: {message}")]
    Record {
        /// What kind of record (`dataset manifest 'iris'`).
        what: String,
        /// Why it cannot be read.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Checks a dataset or model name.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidName(name.to_string()))
    }
}

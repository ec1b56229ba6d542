//! # meshml-storage
//!
//! Where a node keeps datasets and models: content-addressed, checksummed chunks and model
//! artifacts, with dataset manifests and the model index in a sled database, streaming CSV ingest and
//! CSV export, and replica placement by rendezvous hashing.
//!
//! # Layout
//!
//! - [`chunk`]: chunk ids (BLAKE3 of the bytes) and verification.
//! - [`encoding`]: the chunk formats: Arrow record batches in Arrow's IPC stream format
//!   (typed, nullable, text dictionary-encoded), and the row-major MessagePack chunks of
//!   datasets stored before, still read; [`encoding::ChunkLayout`] encodes and decodes a
//!   dataset's chunks.
//! - [`store`]: the [`ChunkStore`] trait, [`FileStore`] (fsynced files, the default),
//!   [`SledStore`] (paged into sled) and [`MemStore`].
//! - [`catalog`]: [`Store`], a data directory's database: manifests, chunks, models,
//!   removal with shared-chunk accounting, garbage collection after a crash;
//!   [`Assembler`] builds a dataset's matrix chunk by chunk.
//! - [`ingest`], [`parquet_rows`] (with [`parquet_pages`]), [`export`]: CSV and Parquet in,
//!   CSV and Parquet out, with bounded memory.
//! - [`placement`]: which nodes hold a chunk's replicas.
//! - [`raft`]: the consensus log and replicated cluster state (openraft) in sled.
//!
//! # Example
//!
//! ```
//! use meshml_storage::{ingest::{ingest_csv, IngestOptions}, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let csv = "a,b,label\n1,2,x\n3,4,y\n5,6,x\n";
//! let opts = IngestOptions { chunk_rows: 2, ..IngestOptions::default() };
//! let m = ingest_csv(&store, csv.as_bytes(), "t.csv", "small", &opts, &mut |_| {})?;
//! assert_eq!((m.rows, m.chunks.len()), (3, 2));
//! let data = store.load_dataset("small")?;
//! assert_eq!(data.x().to_vec(), vec![1., 2., 3., 4., 5., 6.]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod catalog;
pub mod chunk;
pub mod encoding;
pub mod error;
pub mod export;
pub mod ingest;
pub mod parquet_pages;
pub mod parquet_rows;
pub mod placement;
pub mod raft;
pub mod rows;
pub mod store;

pub use catalog::{
    damage_chunk, Assembler, Backend, ChunkRef, Compaction, DatasetManifest, ModelEntry, Removal,
    Store, StoreOptions, TargetSchema,
};
pub use chunk::{chunk_id, verify};
pub use error::{Result, StorageError};
pub use placement::{place, rank};
pub use store::{ChunkStore, FileStore, MemStore, SledStore, PAGE_SIZE};

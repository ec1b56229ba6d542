//! # meshml-protocol
//!
//! The wire vocabulary of meshml: typed ids, messages, and the MessagePack codec with size
//! caps. Pure data: no IO, no async runtime, no networking, so it can be fuzzed and read by
//! other languages (messages are encoded as maps with field names).
//!
//! # Layout
//!
//! - [`ids`]: newtypes for node, dataset, chunk, job, task and model ids.
//! - [`message`]: requests, responses and announcements.
//! - [`codec`]: [`encode`] and [`decode`] with an explicit size cap.
//!
//! # Example
//!
//! ```
//! use meshml_protocol::{decode, encode, Heartbeat, NodeId, Request, MAX_FRAME};
//!
//! let msg = Request::Heartbeat(Heartbeat { node: NodeId::new("n1"), seq: 7, running_tasks: 2 });
//! let bytes = encode(&msg, MAX_FRAME)?;
//! assert_eq!(decode::<Request>(&bytes, MAX_FRAME)?, msg);
//! # Ok::<(), meshml_protocol::ProtocolError>(())
//! ```

#![warn(missing_docs)]

pub mod codec;
pub mod ids;
pub mod message;

pub use codec::{decode, encode, ProtocolError, MAX_FRAME};
pub use ids::{ChunkId, DatasetId, JobId, ModelId, NodeId, TaskId};
pub use message::{
    Announcement, Capabilities, ConsensusKind, ErrorCode, Heartbeat, Hello, Piece, RemoteError,
    Request, Response, TaskState, MAX_PIECE,
};

/// The wire-format version. Bump it on any release that changes how messages are encoded
/// or what they mean; peers with a different version refuse each other's `Hello`.
///
/// 2: chunks are Arrow IPC record batches (storage chunk format 2) and dataset manifests
/// carry column kinds; a version-1 node would take every new chunk for a corrupt one.
/// 3: data-parallel fits (`TrainChunks`, `Trained`, checkpoints in the replicated state).
/// 4: new passes inside `TrainChunks` (SGD epochs, PCA and k-means steps, column
/// statistics, searches' fold filters and shared passes); checkpoints hold a job, not a fit.
pub const PROTOCOL_VERSION: u32 = 4;

//! Messages between peers.
//!
//! - [`Request`] / [`Response`]: point-to-point, over libp2p request-response, in frames of
//!   at most [`crate::MAX_FRAME`] bytes. Bulk bytes (chunks, model artifacts) travel in
//!   pieces of at most [`MAX_PIECE`] bytes, addressed by offset.
//! - [`Announcement`]: small control messages broadcast over gossipsub.
//!
//! Every request carries what the receiver needs to check it: assignments carry the Raft
//! term of the driver that issued them, so a worker can reject a stale driver. Failures
//! travel as data ([`RemoteError`]) with a `retryable` flag.

use serde::{Deserialize, Serialize};

use crate::ids::{ChunkId, DatasetId, JobId, ModelId, NodeId, TaskId};

/// Largest bulk piece in one message (leaves room for the envelope inside a frame).
pub const MAX_PIECE: usize = 4 * 1024 * 1024 - 64 * 1024;

/// What a node offers to the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Worker slots (CPU cores by default).
    pub cores: u32,
    /// Memory available for datasets and models, in bytes.
    pub memory_bytes: u64,
    /// Free disk in the data directory, in bytes.
    pub free_disk_bytes: u64,
    /// When the node's process started, milliseconds since the Unix epoch: a new value
    /// means the node restarted and lost the tasks it was running.
    #[serde(default)]
    pub started_ms: u64,
}

/// Greeting exchanged when peers first talk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The sender.
    pub node: NodeId,
    /// The cluster name it belongs to or wants to form.
    pub cluster: String,
    /// What it offers.
    pub capabilities: Capabilities,
}

/// Periodic liveness signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The sender.
    pub node: NodeId,
    /// Increases by one per heartbeat; a restart starts again from 0.
    pub seq: u64,
    /// Tasks the sender is running now.
    pub running_tasks: u32,
}

/// A piece of a content-addressed object (a chunk or a model artifact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Byte offset of this piece in the whole object.
    pub offset: u64,
    /// Size of the whole object.
    pub total_len: u64,
    /// The bytes.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// Why a remote call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request was malformed or invalid.
    BadRequest,
    /// The thing asked for does not exist here.
    NotFound,
    /// The sender's term is older than the receiver's.
    StaleTerm,
    /// The receiver is busy or shutting down.
    Unavailable,
    /// The receiver failed while handling the request.
    Internal,
    /// Protocol versions differ.
    VersionMismatch,
}

/// A failure, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// The kind of failure.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// Whether the same request may succeed later (or elsewhere).
    pub retryable: bool,
}

/// Raft messages of the consensus layer, carried opaquely (the cluster layer encodes the
/// consensus library's own types inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsensusKind {
    /// Log replication and heartbeats.
    AppendEntries,
    /// Leader election.
    Vote,
    /// Snapshot transfer.
    InstallSnapshot,
}

/// State of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Accepted, waiting for a slot.
    Queued,
    /// Running.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Failed.
    Failed,
    /// Cancelled by the driver.
    Cancelled,
}

/// Requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Greeting; answered with the receiver's own [`Hello`].
    Hello(Hello),
    /// Liveness; answered with [`Response::Ack`].
    Heartbeat(Heartbeat),
    /// A piece of a chunk.
    GetChunk {
        /// The chunk.
        id: ChunkId,
        /// Where to start.
        offset: u64,
        /// At most this many bytes (capped at [`MAX_PIECE`]).
        max_len: u32,
    },
    /// Stores a piece of a chunk; the receiver verifies the hash once all pieces are in.
    PutChunk {
        /// The chunk.
        id: ChunkId,
        /// The piece.
        piece: Piece,
    },
    /// A piece of a model artifact.
    GetModel {
        /// Model name.
        model: ModelId,
        /// Version; `None` for the latest.
        version: Option<u32>,
        /// Where to start.
        offset: u64,
        /// At most this many bytes.
        max_len: u32,
    },
    /// Stores a piece of a model artifact (replication of the model registry's bytes).
    PutModel {
        /// Model name.
        model: ModelId,
        /// Version.
        version: u32,
        /// The piece.
        piece: Piece,
    },
    /// Runs a task of a job.
    AssignTask {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// Raft term of the driver that assigned it.
        term: u64,
        /// The task specification (MessagePack of the models crate's task type).
        #[serde(with = "serde_bytes")]
        spec: Vec<u8>,
    },
    /// Progress or completion of a task, from worker to driver.
    TaskUpdate {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// The term of the assignment.
        term: u64,
        /// New state.
        state: TaskState,
        /// The result (MessagePack) when succeeded.
        #[serde(with = "serde_bytes")]
        result: Vec<u8>,
        /// The failure when failed.
        error: Option<RemoteError>,
    },
    /// Submits a job (MessagePack of the models crate's job spec).
    SubmitJob {
        /// The job specification.
        #[serde(with = "serde_bytes")]
        spec: Vec<u8>,
    },
    /// Asks for a job's state.
    JobStatus {
        /// The job.
        job: JobId,
    },
    /// Cancels a job.
    CancelJob {
        /// The job.
        job: JobId,
    },
    /// Predicts rows with a registered model.
    Predict {
        /// Model name.
        model: ModelId,
        /// Version; `None` for the alias or latest.
        version: Option<u32>,
        /// Rows.
        rows: u32,
        /// Columns.
        cols: u32,
        /// Features, `rows x cols` little-endian f32, row-major.
        #[serde(with = "serde_bytes")]
        features: Vec<u8>,
        /// Also return class probabilities.
        proba: bool,
    },
    /// Asks which chunks of a dataset the receiver holds.
    DatasetChunks {
        /// The dataset.
        dataset: DatasetId,
    },
    /// Asks whether the receiver belongs to an initialised cluster, and who drives it.
    ClusterInfo,
    /// Asks the driver to add the sender to the cluster (as a voter while there are fewer
    /// than five, else as a learner).
    JoinCluster {
        /// The joining node's peer id.
        peer: String,
    },
    /// Asks an unformed node to promise that `initiator` alone may initialise a cluster
    /// with it for a while; the initiator initialises only once every member has promised.
    PromiseFormation {
        /// The initiating node's peer id.
        initiator: String,
    },
    /// Asks the receiver to fetch `chunks` from `source` (a peer id) and keep them for
    /// `owner` (a replicated dataset); answered once every chunk is stored.
    Replicate {
        /// Who the chunks are kept for (`dataset.NAME`).
        owner: String,
        /// The chunks.
        chunks: Vec<ChunkId>,
        /// The peer to fetch them from.
        source: String,
    },
    /// Asks the driver to commit a change to the replicated state (MessagePack of the
    /// storage crate's cluster command); answered with `Consensus` carrying the outcome.
    Propose {
        /// The command.
        #[serde(with = "serde_bytes")]
        command: Vec<u8>,
    },
    /// A consensus (Raft) message.
    Consensus {
        /// Which Raft RPC.
        kind: ConsensusKind,
        /// The consensus library's request, encoded.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Asks a holder of `chunk` to predict rows `offset..offset + rows` of it with a model
    /// version (batch prediction: the work goes to the data); answered with
    /// `ChunkPredictions`.
    PredictChunk {
        /// Model name.
        model: String,
        /// Version.
        version: u32,
        /// The dataset chunk (held by the receiver).
        chunk: ChunkId,
        /// First row of the slice, within the chunk.
        offset: u32,
        /// Rows of the slice.
        rows: u32,
        /// Also return class probabilities.
        proba: bool,
    },
    /// Asks a member to run one pass of a data-parallel fit over `chunks` of `dataset`
    /// (chunks it holds, or fetches from a holder), one chunk at a time; answered with
    /// `Trained`, one partial result per chunk.
    TrainChunks {
        /// The job.
        job: JobId,
        /// Raft term of the driver that asks.
        term: u64,
        /// The dataset.
        dataset: String,
        /// The pass's number in the fit.
        pass: u64,
        /// The chunks, by their index in the dataset.
        chunks: Vec<(u32, ChunkId)>,
        /// What to compute (MessagePack of the models crate's data-parallel pass).
        #[serde(with = "serde_bytes")]
        spec: Vec<u8>,
    },
}

/// Responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// Done, nothing to return.
    Ack,
    /// The receiver's greeting.
    Hello(Hello),
    /// A piece of a chunk or artifact.
    Piece(Piece),
    /// A job was accepted.
    JobAccepted {
        /// Its id.
        job: JobId,
    },
    /// A job's state.
    JobStatus {
        /// The job.
        job: JobId,
        /// Tasks done.
        done: u32,
        /// Tasks in all.
        total: u32,
        /// Overall state.
        state: TaskState,
    },
    /// Predictions.
    Prediction {
        /// Class id per row.
        classes: Vec<u32>,
        /// Probabilities, `rows x n_classes` little-endian f32, when asked for.
        #[serde(with = "serde_bytes")]
        proba: Vec<u8>,
        /// The model version that answered.
        version: u32,
    },
    /// Predictions for a slice of a chunk, in row order.
    ChunkPredictions {
        /// Class id per row (a classifier).
        classes: Vec<u32>,
        /// Value per row, little-endian f32 (a regressor).
        #[serde(with = "serde_bytes")]
        values: Vec<u8>,
        /// Probabilities, `rows x n_classes` little-endian f32, when asked for.
        #[serde(with = "serde_bytes")]
        proba: Vec<u8>,
    },
    /// A data-parallel pass's partial results, one per chunk asked for (by index), and
    /// how long the member computed, milliseconds.
    Trained {
        /// (chunk index, MessagePack of the partial result).
        partials: Vec<(u32, serde_bytes::ByteBuf)>,
        /// Compute time, milliseconds.
        ms: u64,
    },
    /// Chunks held.
    Chunks {
        /// Their ids.
        ids: Vec<ChunkId>,
    },
    /// Cluster membership as the receiver sees it.
    ClusterInfo {
        /// Whether it belongs to an initialised cluster.
        initialized: bool,
        /// The driver's peer id, if known.
        driver: Option<String>,
        /// The receiver's current term.
        term: u64,
    },
    /// A consensus (Raft) reply.
    Consensus {
        /// The consensus library's response, encoded.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// A failure.
    Error(RemoteError),
}

/// Control messages broadcast to every peer (gossipsub); small by design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Announcement {
    /// Liveness.
    Heartbeat(Heartbeat),
    /// A node is leaving on purpose.
    Leaving {
        /// The node.
        node: NodeId,
    },
    /// A new driver took over.
    DriverChanged {
        /// The driver.
        node: NodeId,
        /// Its Raft term.
        term: u64,
    },
}

//! Messages between peers. Later protocol versions add variants; a peer refuses a `Hello`
//! whose [`crate::PROTOCOL_VERSION`] differs from its own.

use serde::{Deserialize, Serialize};

use crate::ids::NodeId;

/// What a node offers to the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Worker slots (CPU cores by default).
    pub cores: u32,
    /// Memory available for datasets and models, in bytes.
    pub memory_bytes: u64,
    /// Free disk in the data directory, in bytes.
    pub free_disk_bytes: u64,
}

/// The first message on a new connection.
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

/// Every message of this protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Message {
    /// Connection greeting.
    Hello(Hello),
    /// Liveness.
    Heartbeat(Heartbeat),
    /// A version or validation refusal, as data.
    Refused {
        /// Why.
        reason: String,
        /// Whether retrying the same request later may succeed.
        retryable: bool,
    },
}

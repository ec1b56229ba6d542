//! Typed identifiers. Each is a distinct type, so a job id cannot be passed where a task id
//! is expected:
//!
//! ```compile_fail
//! use meshml_protocol::{JobId, TaskId};
//! fn cancel(_: &TaskId) {}
//! cancel(&JobId::new("job-1"));
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string id.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A node: the text form of its libp2p peer id.
    NodeId
);
string_id!(
    /// A dataset, by its user-given name.
    DatasetId
);
string_id!(
    /// A job submitted to the driver.
    JobId
);
string_id!(
    /// One task of a job.
    TaskId
);
string_id!(
    /// A registered model name.
    ModelId
);

/// A chunk: the BLAKE3 hash of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChunkId(#[serde(with = "serde_bytes")] [u8; 32]);

impl ChunkId {
    /// Wraps a 32-byte hash.
    pub fn from_bytes(hash: [u8; 32]) -> Self {
        Self(hash)
    }

    /// The hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the 64-character lowercase hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", &self.to_string()[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_id_hex_round_trip() {
        let id = ChunkId::from_bytes([0xab; 32]);
        let hex = id.to_string();
        assert_eq!(hex.len(), 64);
        assert_eq!(ChunkId::from_hex(&hex), Some(id));
        assert_eq!(ChunkId::from_hex("xyz"), None);
        assert_eq!(ChunkId::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn string_ids_are_transparent_on_the_wire() {
        let bytes = rmp_serde::to_vec(&JobId::new("j1")).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec("j1").unwrap());
    }
}

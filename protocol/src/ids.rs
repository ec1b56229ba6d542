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

impl std::borrow::Borrow<str> for JobId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// One task of a job: its stage in the job's plan and its index within the stage. Ids sort
/// in plan order. On the wire and in the replicated state it is the text `SSS.IIIIII`
/// (zero-padded stage and index), so records written before the id was a struct still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    /// The stage of the plan (0 first).
    pub stage: u32,
    /// The task's index within its stage.
    pub index: u32,
}

impl TaskId {
    /// Task `index` of `stage`.
    pub fn new(stage: u32, index: u32) -> Self {
        Self { stage, index }
    }

    /// Parses the text form `stage.index` (digits on both sides).
    pub fn parse(s: &str) -> Option<Self> {
        let (stage, index) = s.split_once('.')?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(stage) || !digits(index) {
            return None;
        }
        Some(Self {
            stage: stage.parse().ok()?,
            index: index.parse().ok()?,
        })
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}.{:06}", self.stage, self.index)
    }
}

impl std::str::FromStr for TaskId {
    type Err = crate::ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| crate::ProtocolError::BadId(s.to_string()))
    }
}

impl Serialize for TaskId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("task id '{s}' is not of the form stage.index"))
        })
    }
}
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
    fn task_ids_sort_in_plan_order_and_travel_as_their_text() {
        let mut ids = [TaskId::new(1, 0), TaskId::new(0, 10), TaskId::new(0, 2)];
        ids.sort();
        let text: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["000.000002", "000.000010", "001.000000"]);
        assert_eq!(TaskId::parse("001.000000"), Some(TaskId::new(1, 0)));
        for bad in ["x", "1", "1.", ".2", "1.-2", "a.b", "1.2.3"] {
            assert_eq!(TaskId::parse(bad), None, "{bad}");
        }
        let bytes = rmp_serde::to_vec(&TaskId::new(3, 7)).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec("003.000007").unwrap());
        assert_eq!(
            rmp_serde::from_slice::<TaskId>(&bytes).unwrap(),
            TaskId::new(3, 7)
        );
        assert!(rmp_serde::from_slice::<TaskId>(&rmp_serde::to_vec("7").unwrap()).is_err());
    }

    #[test]
    fn string_ids_are_transparent_on_the_wire() {
        let bytes = rmp_serde::to_vec(&JobId::new("j1")).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec("j1").unwrap());
    }
}

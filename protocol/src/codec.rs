//! MessagePack encoding with explicit size caps.
//!
//! Messages are encoded as maps with field names (`rmp_serde::to_vec_named`) so that other
//! languages can read them. Every decode is given a cap: input over the cap is refused
//! before any parsing, so a hostile peer cannot make a node allocate without bound.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest frame peers exchange: 4 MiB. Bigger payloads travel in pieces.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Errors of the codec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The message is larger than allowed.
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// Encoding failed.
    #[error("cannot encode message: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The bytes are not a valid message.
    #[error("malformed message: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// An id's text form is malformed.
    #[error("malformed id '{0}'")]
    BadId(String),
}

/// Encodes `msg`, refusing results over `limit` bytes.
pub fn encode<T: Serialize>(msg: &T, limit: usize) -> Result<Vec<u8>, ProtocolError> {
    let bytes = rmp_serde::to_vec_named(msg)?;
    if bytes.len() > limit {
        return Err(ProtocolError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    Ok(bytes)
}

/// Decodes a message from `bytes`, refusing input over `limit` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, ProtocolError> {
    if bytes.len() > limit {
        return Err(ProtocolError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    Ok(rmp_serde::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Capabilities, Heartbeat, Hello, NodeId, Request, Response, PROTOCOL_VERSION};

    fn hello() -> Request {
        Request::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            node: NodeId::new("12D3KooW"),
            cluster: "lab".into(),
            capabilities: Capabilities {
                cores: 2,
                memory_bytes: 24 << 30,
                free_disk_bytes: u64::MAX,
                started_ms: 0,
            },
        })
    }

    #[test]
    fn caps_are_enforced_both_ways() {
        let m = hello();
        let b = encode(&m, MAX_FRAME).unwrap();
        assert!(matches!(encode(&m, 8), Err(ProtocolError::TooLarge { .. })));
        assert!(matches!(
            decode::<Request>(&b, b.len() - 1),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let b = encode(&hello(), MAX_FRAME).unwrap();
        for cut in 0..b.len() {
            assert!(decode::<Request>(&b[..cut], MAX_FRAME).is_err());
        }
        assert!(decode::<Request>(&[0xc1, 0xff, 0x00], MAX_FRAME).is_err());
        // A huge announced array length must not allocate: it fails on missing data.
        assert!(decode::<Response>(&[0xdd, 0xff, 0xff, 0xff, 0xff], MAX_FRAME).is_err());
    }

    #[test]
    fn fields_are_named_on_the_wire() {
        let hb = Request::Heartbeat(Heartbeat {
            node: NodeId::new("n"),
            seq: 1,
            running_tasks: 0,
        });
        let b = encode(&hb, MAX_FRAME).unwrap();
        let text = String::from_utf8_lossy(&b);
        assert!(text.contains("running_tasks") && text.contains("heartbeat"));
    }
}

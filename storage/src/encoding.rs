//! The chunk format: a block of rows, features as little-endian `f32` row-major bytes and
//! targets as little-endian `u32` label ids or `f32` values, in MessagePack (field names,
//! `serde_bytes` payloads). A chunk's id is the BLAKE3 hash of these bytes.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use meshml_protocol::ChunkId;

/// The targets of a chunk's rows.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkTargets {
    /// Label ids into the dataset manifest's label table (first-appearance order).
    Labels(Vec<u32>),
    /// Regression values.
    Values(Vec<f32>),
}

/// A decoded chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Rows in the chunk.
    pub rows: usize,
    /// Feature columns.
    pub cols: usize,
    /// `rows x cols` features, row-major.
    pub features: Vec<f32>,
    /// One target per row.
    pub targets: ChunkTargets,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TargetsRepr {
    Labels(#[serde(with = "serde_bytes")] Vec<u8>),
    Values(#[serde(with = "serde_bytes")] Vec<u8>),
}

#[derive(Serialize, Deserialize)]
struct ChunkRepr {
    rows: u32,
    cols: u32,
    #[serde(with = "serde_bytes")]
    features: Vec<u8>,
    targets: TargetsRepr,
}

/// Values as little-endian bytes (how chunks and predictions carry f32 arrays).
pub fn le_bytes_f32(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Values from little-endian bytes (a trailing partial value is ignored; callers check
/// the length).
pub fn f32s_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

fn le_bytes_u32(v: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

impl Chunk {
    /// Encodes the chunk.
    pub fn encode(&self) -> Vec<u8> {
        let repr = ChunkRepr {
            rows: self.rows as u32,
            cols: self.cols as u32,
            features: le_bytes_f32(&self.features),
            targets: match &self.targets {
                ChunkTargets::Labels(l) => TargetsRepr::Labels(le_bytes_u32(l)),
                ChunkTargets::Values(v) => TargetsRepr::Values(le_bytes_f32(v)),
            },
        };
        rmp_serde::to_vec_named(&repr).expect("chunks always encode")
    }

    /// Decodes chunk `id` from its bytes (already hash-checked by the store), checking that
    /// the sizes agree.
    pub fn decode(id: &ChunkId, bytes: &[u8]) -> Result<Self> {
        let damaged = |message: String| StorageError::Damaged { id: *id, message };
        let r: ChunkRepr =
            rmp_serde::from_slice(bytes).map_err(|e| damaged(format!("cannot decode: {e}")))?;
        let (rows, cols) = (r.rows as usize, r.cols as usize);
        if r.features.len() != rows * cols * 4 {
            return Err(damaged(format!(
                "{} feature bytes for {rows} x {cols} values",
                r.features.len()
            )));
        }
        let features = f32s_from_le(&r.features);
        let (tbytes, is_labels) = match &r.targets {
            TargetsRepr::Labels(b) => (b, true),
            TargetsRepr::Values(b) => (b, false),
        };
        if tbytes.len() != rows * 4 {
            return Err(damaged(format!(
                "{} target bytes for {rows} rows",
                tbytes.len()
            )));
        }
        let words = tbytes
            .chunks_exact(4)
            .map(|b| <[u8; 4]>::try_from(b).expect("4 bytes"));
        let targets = if is_labels {
            ChunkTargets::Labels(words.map(u32::from_le_bytes).collect())
        } else {
            ChunkTargets::Values(words.map(f32::from_le_bytes).collect())
        };
        Ok(Self {
            rows,
            cols,
            features,
            targets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size_checks() {
        let c = Chunk {
            rows: 2,
            cols: 3,
            features: vec![1.0, -2.5, 3.25, f32::MIN_POSITIVE, 0.0, 7.0],
            targets: ChunkTargets::Labels(vec![1, 0]),
        };
        let bytes = c.encode();
        let id = crate::chunk_id(&bytes);
        assert_eq!(Chunk::decode(&id, &bytes).unwrap(), c);
        let v = Chunk {
            targets: ChunkTargets::Values(vec![0.5, 1.5]),
            ..c.clone()
        };
        assert_eq!(Chunk::decode(&id, &v.encode()).unwrap(), v);
        // Payloads are raw bytes (bin), not arrays of integers: 24 feature bytes appear as-is.
        assert!(bytes.windows(4).any(|w| w == (-2.5f32).to_le_bytes()));
        assert!(bytes.len() < 24 + 8 + 60, "{} bytes", bytes.len());
        let e = Chunk::decode(&id, &bytes[..bytes.len() - 3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is corrupt: cannot decode"), "{e}");
    }
}

//! Content addressing: a chunk's id is the BLAKE3 hash of its bytes, and every read is
//! checked against it.

use meshml_protocol::ChunkId;

use crate::error::StorageError;

/// The id of a chunk with these bytes.
pub fn chunk_id(bytes: &[u8]) -> ChunkId {
    ChunkId::from_bytes(*blake3::hash(bytes).as_bytes())
}

/// Checks that `bytes` are the chunk `id`.
pub fn verify(id: &ChunkId, bytes: &[u8]) -> Result<(), StorageError> {
    let actual = chunk_id(bytes);
    if &actual == id {
        Ok(())
    } else {
        Err(StorageError::Corrupt { id: *id, actual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_content_addresses() {
        let a = chunk_id(b"rows 0..100");
        assert_eq!(a, chunk_id(b"rows 0..100"));
        assert_ne!(a, chunk_id(b"rows 0..101"));
        // Known BLAKE3 value of the empty input.
        assert_eq!(
            chunk_id(b"").to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn a_flipped_byte_is_reported_with_the_chunk_id() {
        let bytes = b"features and targets".to_vec();
        let id = chunk_id(&bytes);
        assert!(verify(&id, &bytes).is_ok());
        let mut bad = bytes.clone();
        bad[3] ^= 1;
        let e = verify(&id, &bad).unwrap_err().to_string();
        assert!(e.starts_with(&format!("chunk {id} is corrupt")), "{e}");
    }
}

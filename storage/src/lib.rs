//! # meshml-storage
//!
//! Where dataset chunks and models live. This first part is the pure core that every
//! store shares: content addressing of chunks and replica placement by rendezvous hashing.
//! The sled-backed stores build on it.
//!
//! # Layout
//!
//! - [`chunk`]: chunk ids (BLAKE3 of the bytes) and verification.
//! - [`placement`]: which nodes hold a chunk's replicas.

#![warn(missing_docs)]

pub mod chunk;
pub mod placement;

pub use chunk::{chunk_id, verify, StorageError};
pub use placement::{place, rank};

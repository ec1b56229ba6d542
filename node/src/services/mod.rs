//! The services a node offers the mesh, one per concern, each over the one below it:
//!
//! - [`consensus`]: the replicated state, changing it through the driver, live members
//!   and their addresses;
//! - [`chunks`]: the local chunk store, chunks fetched from holders (verified, with read
//!   repair), pieces served and replicas kept for other members;
//! - [`datasets`]: ingesting and placing datasets, and assembling one in memory for a task
//!   (cached within a cap).
//!
//! Each is cheap to clone (an `Arc` inside). Model serving ([`crate::serving::Models`]) and
//! batch prediction ([`crate::batch::Batches`]) are built on them; [`crate::mesh::Mesh`]
//! bundles them all for the routes, and `node.rs` composes it.

pub mod chunks;
pub mod consensus;
pub mod datasets;

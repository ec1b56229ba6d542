//! # meshml-sim
//!
//! Simulations of meshml on one machine. This first part is the deterministic simulated
//! network that the pure state machines (driver scheduling, election) are tested over:
//! seeded message delays and drops, partitions, and a virtual clock. No sockets and no
//! wall-clock time, so a failing seed replays exactly.
//!
//! # Layout
//!
//! - [`net`]: [`SimNet`], a seeded network of numbered nodes.
//! - [`raft_cluster`]: in-process openraft clusters over an in-memory router with crashes
//!   and partitions.
//! - [`det`]: the deterministic mode (scheduler and election rules over [`SimNet`]).
//! - [`scenario`]: scenarios on real nodes (in this process, as processes, or in network
//!   namespaces) with faults on a timeline, and their reports.
//! - [`netns`]: hosts in network namespaces, with real partitions and `tc netem` links.

#![warn(missing_docs)]

pub mod det;
pub mod net;
pub mod netns;
pub mod raft_cluster;
pub mod scenario;

pub use net::{Delivery, LinkConfig, SimNet};

//! Integration tests of the store: one binary, a module per area.

mod raft;
mod space;
mod store;

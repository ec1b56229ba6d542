//! Integration tests of the simulator: one binary, a module per area.

mod det_seeds;
mod raft;
mod scenarios;

//! Integration tests of the `meshml` node: one binary, a module per area.

mod autopilot;
mod batch;
mod cli;
mod cluster;
mod common;
mod crash;
mod datasets;
mod failover_jobs;
mod jobs;
mod mdns;
mod mesh;
mod network;
mod parallel;
mod partition;
mod serving;
mod tables;

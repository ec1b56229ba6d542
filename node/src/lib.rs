//! # meshml-node
//!
//! The meshml node and its command-line tool, `meshml`: the small-data path
//! (`meshml local fit` / `predict`, no mesh), the node's dataset store (`meshml dataset`),
//! and the long-running node (`meshml node`) with its network, membership and HTTP API.
//! The commands that talk to a running node (`fit`, `jobs`, `job`, `status`, `predict`,
//! `models`, `model`, `dataset put --replicas`) and the HTTP API's types live in
//! `meshml_client`; this crate wires them into its command line, and its routes build
//! the client's types. [`demo`] is the one place that uses both sides.
//!
//! # Layout
//!
//! From the ground up; a module imports only from the ones listed before it (no import
//! circles, between files or between folders):
//!
//! - [`error`] ([`error::MeshError`], what the services fail with, mapped to HTTP statuses
//!   only in the routes), [`lru`] (the caches' LRU), [`job`] (job requests, task specs and
//!   reports), [`logging`], [`config`] ([`NodeConfig`], the daemon's configuration that
//!   `meshml node`'s flags fill, checked by [`NodeConfig::validate`]), [`cli`] (clap
//!   definitions), [`columns`] (a model's columns matched to a dataset's; prediction CSV
//!   lines), and [`fit`], [`predict`], [`status`]: re-exports of `meshml_client`'s commands
//!   at their old paths, for the node's internals, the demo and the simulator.
//! - [`network`]: the libp2p swarm, its event loop and client handle; [`membership`]: the
//!   peer-table actor (liveness from heartbeats).
//! - [`raft`]: the Raft group (start, formation, the election gate, membership changes, the
//!   autopilot, the status view).
//! - [`services`]: the mesh services, each over the one below it: [`services::consensus`]
//!   (the replicated state, proposals through the driver, live members),
//!   [`services::chunks`] (the local store, verified fetches, read repair),
//!   [`services::datasets`] (placement, ingest, datasets assembled for tasks).
//! - [`serving`] (registered models loaded for online prediction), [`batch`] (batch
//!   prediction over chunks where they are) and [`scrub`] (the background read-back of every
//!   stored chunk), built on the services.
//! - [`driver`]: what the Raft leader runs for its term and what it drives: the job board
//!   ([`driver::board`], a pure state machine the simulator drives too) and its
//!   [`driver::scheduler`], the [`driver::inbox`] workers report through, the
//!   [`driver::worker`] every node runs, model registration and chunk repair.
//! - [`mesh`]: every service of one node in one bundle, for the routes and the network bridge.
//! - [`http`]: the HTTP API: the server, [`http::routes`] (routes building
//!   `meshml_client::api` types) and [`http::state`].
//! - [`dataset`], [`local`]: the `dataset` and `local` commands, writing their report to any
//!   `io::Write`.
//! - [`node`]: `meshml node`, where the daemon is wired: it builds the services and starts
//!   the network, Raft, the driver's supervisor, the worker and the API.
//! - [`demo`]: `meshml demo`, a three-node mesh in one process.

#![warn(missing_docs)]

pub mod batch;
pub mod cli;
pub mod columns;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod driver;
pub mod error;
pub mod fit;
pub mod http;
pub mod job;
pub mod local;
pub mod logging;
pub mod lru;
pub mod membership;
pub mod mesh;
pub mod network;
pub mod node;
pub mod predict;
pub mod raft;
pub mod scrub;
pub mod services;
pub mod serving;
pub mod status;

pub use cli::{Cli, Command};
pub use config::NodeConfig;

/// Errors of the node crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// An error from the models crate (data, parameters, artifacts).
    #[error(transparent)]
    Model(#[from] meshml_models::ModelError),
    /// An error from the store.
    #[error(transparent)]
    Storage(#[from] meshml_storage::StorageError),
    /// An error of a command that talks to a node (see `meshml_client`).
    #[error(transparent)]
    Client(#[from] meshml_client::ClientError),
    /// A command-line value is malformed.
    #[error("{0}")]
    Usage(String),
    /// Writing output failed.
    #[error("{path}: {source}")]
    Io {
        /// What was being written (`stdout` or a path).
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl NodeError {
    /// An I/O error on `path` (a file, or `stdout`).
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Writes a command's report to `out`.
pub(crate) fn w(
    out: &mut dyn std::io::Write,
    text: std::fmt::Arguments<'_>,
) -> Result<(), NodeError> {
    out.write_fmt(text).map_err(|e| NodeError::io("output", e))
}

/// One thread per task: parallelism comes from running tasks side by side, not from
/// threading each matrix product (candle reads `RAYON_NUM_THREADS` on every product).
/// Sets it to 1 unless the user set it; for a program's `main`, before other threads start.
pub fn one_thread_per_task() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
}

/// Runs a parsed command line, writing the command's report to `out`.
pub fn run(cli: Cli, out: &mut dyn std::io::Write) -> Result<(), NodeError> {
    match cli.command {
        Command::Local(local) => local::run(local, out),
        Command::Dataset(args) => dataset::run(args, out),
        Command::Node(args) => node::run(args.config(), out),
        Command::Status(args) => Ok(meshml_client::status::run(args, out)?),
        Command::Fit(cmd) => Ok(meshml_client::fit::fit(cmd, out)?),
        Command::Jobs(cmd) => Ok(meshml_client::fit::jobs(cmd, out)?),
        Command::Job(cmd) => Ok(meshml_client::fit::job(cmd, out)?),
        Command::Predict(cmd) => Ok(meshml_client::predict::predict(cmd, out)?),
        Command::Models(cmd) => Ok(meshml_client::predict::models(cmd, out)?),
        Command::Model(cmd) => Ok(meshml_client::predict::model(cmd, out)?),
        Command::Demo(args) => demo::run(args, out),
        Command::Secret(cli::SecretCommand::New) => out
            .write_all(network::identity::new_psk().as_bytes())
            .map_err(|e| NodeError::io("stdout", e)),
    }
}

//! # meshml-client
//!
//! Everything needed to talk to a meshml node over its HTTP API, without the daemon:
//! the typed API (the request and response bodies the node's routes build and return),
//! one HTTP client, and the `meshml` commands that go through a node (`fit`, `jobs`,
//! `job`, `status`, `predict`, `models`, `model`, and `dataset put|ls|show|export|rm` on the mesh).
//!
//! Its dependency tree holds no actix, libp2p, openraft or sled (CI checks it): a tool or
//! a test that only talks to nodes links this crate alone.
//!
//! # Layout
//!
//! - [`api`]: the request and response types of every route, and the JSON error body.
//! - [`http`]: [`Client`], a handle on one node's API (bearer token, JSON and MessagePack
//!   bodies, streamed uploads and downloads), and raw `http_*` helpers that return the
//!   status.
//! - [`node_api`]: the `--node`/`--token-file` flags every command shares.
//! - [`fit`]: `meshml fit`, `jobs`, `job show|cancel`, and job files (TOML).
//! - [`predict`]: `meshml predict` (batch prediction), `models`, `model alias|get`.
//! - [`status`]: `meshml status`.
//! - [`dataset`]: `meshml dataset put --replicas|ls|show|export|rm --node`: datasets on the
//!   mesh, in and out through any node.
//! - [`output`]: output files that appear only whole (a failed `--out` leaves nothing).
//! - [`progress`]: the progress display of commands that follow work on the mesh.
//! - [`table`]: the plain-text tables of listings.
//!
//! # Usage
//!
//! ```no_run
//! use std::time::Duration;
//! use meshml_client::{api::JobView, Client};
//!
//! let node = Client::new("http://127.0.0.1:7070", None)?;
//! let jobs: Vec<JobView> = node.get("/v1/jobs", "job list", Duration::from_secs(30))?;
//! # Ok::<(), meshml_client::ClientError>(())
//! ```

#![warn(missing_docs)]

pub mod api;
pub mod dataset;
mod error;
pub mod fit;
pub mod http;
pub mod node_api;
pub mod output;
pub mod predict;
pub mod progress;
pub mod status;
pub mod table;

pub use error::ClientError;
pub use http::Client;
pub use node_api::NodeApi;

/// Writes a command's report to `out`.
pub(crate) fn w(
    out: &mut dyn std::io::Write,
    text: std::fmt::Arguments<'_>,
) -> Result<(), ClientError> {
    out.write_fmt(text)
        .map_err(|e| ClientError::io("output", e))
}

/// Reads a bearer token file (the token is its trimmed contents).
pub fn read_token_file(path: &std::path::Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| ClientError::io(path.display().to_string(), e))
}

/// `1.5 MiB` style sizes.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

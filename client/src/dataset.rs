//! `meshml dataset put FILE --replicas R`: a CSV or Parquet file stored on the mesh
//! through a node's API (the node chunks it and places the copies).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::api::DatasetStored;
use crate::node_api::NodeApi;
use crate::{w, ClientError};

/// What `dataset put` through a node asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions {
    /// Dataset name (default: the file's name).
    pub name: Option<String>,
    /// Copies of each chunk.
    pub replicas: usize,
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// Target column (default: the last).
    pub target: Option<String>,
    /// Read the target as real values.
    pub regression: bool,
}

/// The dataset name: the one given, else the file's stem.
pub fn dataset_name(name: Option<String>, file: &Path) -> Result<String, ClientError> {
    match name {
        Some(n) => Ok(n),
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or_else(|| {
                ClientError::Usage(format!("cannot name a dataset after {}", file.display()))
            }),
    }
}

/// `meshml dataset put FILE --replicas R [--node URL]`.
pub fn put(
    api: &NodeApi,
    file: &Path,
    opts: &PutOptions,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let name = dataset_name(opts.name.clone(), file)?;
    let enc = |v: &str| {
        percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut query = format!(
        "name={}&replicas={}&chunk_rows={}",
        enc(&name),
        opts.replicas,
        opts.chunk_rows
    );
    if let Some(t) = &opts.target {
        query.push_str(&format!("&target={}", enc(t)));
    }
    // Errors in the file name it as the user knows it, not as the node stores the upload.
    if let Some(f) = file.file_name() {
        query.push_str(&format!("&source={}", enc(&f.to_string_lossy())));
    }
    if opts.regression {
        query.push_str("&regression=true");
    }
    let is_parquet = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    if is_parquet {
        query.push_str("&format=parquet");
    }
    put_dataset(api, file, &query, out)
}

/// Stores `file` on the mesh through the node with the query of `POST /v1/datasets`
/// (`name=N&replicas=R...`); the upload streams from disk. Reports the placement.
pub fn put_dataset(
    api: &NodeApi,
    file: &Path,
    query: &str,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let f =
        std::fs::File::open(file).map_err(|e| ClientError::io(file.display().to_string(), e))?;
    let started = Instant::now();
    let v: DatasetStored = api.client()?.upload(
        &format!("/v1/datasets?{query}"),
        &f,
        "application/octet-stream",
        "answer to an upload",
        Duration::from_secs(3600),
    )?;
    w(
        out,
        format_args!(
            "stored '{}' on the mesh: {} rows, {} features, {} chunks ({}), in {:.1}s\n",
            v.name,
            v.rows,
            v.features,
            v.chunks,
            crate::human_bytes(v.bytes),
            started.elapsed().as_secs_f64()
        ),
    )?;
    for (member, n) in &v.chunks_per_member {
        w(out, format_args!("  member {member}: {n} chunks\n"))?;
    }
    Ok(())
}

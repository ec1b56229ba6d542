//! Streaming ingest of CSV and Parquet: rows are read one at a time into chunks of
//! `chunk_rows` rows, so memory stays bounded by one chunk whatever the file size. Bad
//! input is reported with its line (or row) and column, with the same checks as
//! `meshml local`, and a failed ingest leaves no dataset and no chunks behind.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use meshml_models::io::{CsvOptions, CsvRows, LabelTable, RawTarget};

pub use crate::rows::RowSource;
use meshml_models::ModelError;

use crate::catalog::{now_unix, ChunkRef, DatasetManifest, Store, TargetSchema};
use crate::encoding::{Chunk, ChunkTargets};
use crate::error::{check_name, Result, StorageError};

/// Default rows per chunk.
pub const DEFAULT_CHUNK_ROWS: usize = 20_000;

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Rows per chunk (>= 1).
    pub chunk_rows: usize,
    /// Target column and kind.
    pub csv: CsvOptions,
    /// What to call the input in error messages (default: the file's path).
    pub source: Option<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            chunk_rows: DEFAULT_CHUNK_ROWS,
            csv: CsvOptions::default(),
            source: None,
        }
    }
}

/// Progress of an ingest, passed to the caller's callback after every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes consumed.
    pub bytes_read: u64,
    /// Rows stored.
    pub rows: u64,
    /// Chunks stored.
    pub chunks: usize,
}

/// Ingests a file as dataset `name`: Parquet when its name ends in `.parquet` or `.pq`,
/// CSV otherwise.
pub fn ingest_file(
    store: &Store,
    path: &Path,
    name: &str,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<DatasetManifest> {
    let is_parquet = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    if is_parquet {
        ingest_parquet_file(store, path, name, opts, progress)
    } else {
        ingest_csv_file(store, path, name, opts, progress)
    }
}

/// Ingests a Parquet file (flat numeric feature columns and a target column).
pub fn ingest_parquet_file(
    store: &Store,
    path: &Path,
    name: &str,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<DatasetManifest> {
    let source = opts
        .source
        .clone()
        .unwrap_or_else(|| path.display().to_string());
    ingest_rows(store, &source, name, opts, progress, || {
        crate::parquet_rows::ParquetRows::open(path, &source, &opts.csv)
    })
}

/// Ingests a CSV file as dataset `name`.
pub fn ingest_csv_file(
    store: &Store,
    path: &Path,
    name: &str,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<DatasetManifest> {
    let f = File::open(path).map_err(|e| StorageError::io(path, e))?;
    let source = opts
        .source
        .clone()
        .unwrap_or_else(|| path.display().to_string());
    ingest_csv(store, f, &source, name, opts, progress)
}

/// Ingests CSV text from `rdr` as dataset `name`; `source` names it in errors.
pub fn ingest_csv<R: Read>(
    store: &Store,
    rdr: R,
    source: &str,
    name: &str,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<DatasetManifest> {
    ingest_rows(store, source, name, opts, progress, || {
        Ok(CsvRows::new(rdr, source, &opts.csv)?)
    })
}

/// Checks the name, writes the chunks of the rows `open` yields, then the manifest; on any
/// failure removes the chunks it wrote (unless another dataset uses them).
fn ingest_rows<S: RowSource>(
    store: &Store,
    source: &str,
    name: &str,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(Progress),
    open: impl FnOnce() -> Result<S>,
) -> Result<DatasetManifest> {
    check_name(name)?;
    if opts.chunk_rows == 0 {
        return Err(StorageError::Model(ModelError::data(
            "--chunk-rows",
            "must be at least 1",
        )));
    }
    if store.has_dataset(name)? {
        return Err(StorageError::DatasetExists(name.to_string()));
    }
    let mut written = Vec::new();
    let result = open().and_then(|mut rows| {
        write_chunks(store, &mut rows, source, name, opts, progress, &mut written)
    });
    if result.is_err() {
        // Leave nothing behind: drop this ingest's chunks unless a dataset uses them.
        let live = store.referenced_chunks()?;
        for id in written.iter().filter(|id| !live.contains(*id)) {
            store.chunks().remove(id)?;
        }
        store.flush()?;
    }
    result
}

fn write_chunks<S: RowSource>(
    store: &Store,
    rows: &mut S,
    source: &str,
    name: &str,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(Progress),
    written: &mut Vec<meshml_protocol::ChunkId>,
) -> Result<DatasetManifest> {
    let d = rows.n_features();
    let mut x: Vec<f32> = Vec::with_capacity(opts.chunk_rows * d);
    let mut labels: Vec<u32> = Vec::with_capacity(opts.chunk_rows);
    let mut values: Vec<f32> = Vec::new();
    let mut table = LabelTable::default();
    let mut chunks = Vec::new();
    let mut total: u64 = 0;
    let mut flush_chunk = |x: &mut Vec<f32>,
                           labels: &mut Vec<u32>,
                           values: &mut Vec<f32>,
                           bytes_read: u64|
     -> Result<()> {
        let n = x.len() / d;
        if n == 0 {
            return Ok(());
        }
        let targets = if values.is_empty() {
            ChunkTargets::Labels(std::mem::take(labels))
        } else {
            ChunkTargets::Values(std::mem::take(values))
        };
        let chunk = Chunk {
            rows: n,
            cols: d,
            features: std::mem::take(x),
            targets,
        };
        let bytes = chunk.encode();
        let id = store.chunks().write(&bytes)?;
        written.push(id);
        chunks.push(ChunkRef {
            id,
            rows: n as u32,
            bytes: bytes.len() as u64,
        });
        total += n as u64;
        x.reserve(opts.chunk_rows * d);
        progress(Progress {
            bytes_read,
            rows: total,
            chunks: chunks.len(),
        });
        Ok(())
    };
    let mut in_chunk = 0usize;
    while let Some((line, t)) = rows.next_into(&mut x)? {
        match t {
            RawTarget::Label(l) => labels.push(table.intern(&l, line)),
            RawTarget::Value(v) => values.push(v),
        }
        in_chunk += 1;
        if in_chunk == opts.chunk_rows {
            flush_chunk(&mut x, &mut labels, &mut values, rows.bytes_read())?;
            in_chunk = 0;
        }
    }
    flush_chunk(&mut x, &mut labels, &mut values, rows.bytes_read())?;
    if total == 0 {
        return Err(ModelError::data(source, "no data rows after the header line").into());
    }
    let target = match opts.csv.kind {
        meshml_models::io::TargetKind::Regression => TargetSchema::Values,
        meshml_models::io::TargetKind::Classification => {
            let (classes, class_of_label) =
                table.finish(source, rows.target_name(), rows.target_col())?;
            TargetSchema::Classes {
                label_table: table.labels().to_vec(),
                classes,
                class_of_label,
            }
        }
    };
    let manifest = DatasetManifest {
        name: name.to_string(),
        feature_names: rows.feature_names(),
        target_name: rows.target_name().to_string(),
        target,
        rows: total,
        chunks,
        created_at_unix: now_unix(),
        source: source.to_string(),
    };
    store.put_manifest(&manifest)?;
    Ok(manifest)
}

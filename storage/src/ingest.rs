//! Streaming ingest of CSV and Parquet: rows are read one at a time into chunks of
//! `chunk_rows` rows, so memory stays bounded by one chunk whatever the file size. Bad
//! input is reported with its line (or row) and column, with the same checks as
//! `meshml local`, and a failed ingest leaves no dataset and no chunks behind.
//!
//! A CSV file is first read as numbers only: a numbers-only file is one pass. At the first
//! text cell (or when a column is declared categorical) its chunks so far are dropped and
//! the file is read again: once to infer the column kinds and the categories of text
//! columns ([`meshml_models::io::infer`], bounded by the category caps; twice when a column
//! shows text after numbers), then to write the chunks, categories as their codes into the
//! sorted categories the manifest keeps.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use meshml_models::io::{infer_kinds, CsvOptions, CsvRows, LabelTable, RawTarget};
use meshml_models::schema::ColumnKind;

pub use crate::rows::RowSource;
use meshml_models::ModelError;

use crate::catalog::{
    now_unix, ChunkRef, ColumnSummary, DatasetManifest, Store, TargetSchema, TOP_CATEGORIES,
};
use crate::encoding::{Chunk, ChunkLayout, ChunkTargets, ARROW_FORMAT};
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
    let source = opts
        .source
        .clone()
        .unwrap_or_else(|| path.display().to_string());
    let open = || File::open(path).map_err(|e| meshml_models::ModelError::io(path, e));
    // First as numbers only (one pass over a numbers-only file); at the first text cell
    // the chunks written so far are dropped and the kinds are inferred.
    if opts.csv.categorical.is_empty() {
        let numeric = ingest_rows(store, &source, name, opts, progress, || {
            Ok(CsvRows::new(open()?, &source, &opts.csv)?)
        });
        match numeric {
            Err(StorageError::Model(meshml_models::ModelError::TextCell { .. })) => {}
            done => return done,
        }
    }
    ingest_rows(store, &source, name, opts, progress, || {
        let kinds = infer_kinds(&mut || open(), &source, &opts.csv)?;
        Ok(CsvRows::new(open()?, &source, &opts.csv)?.with_kinds(kinds)?)
    })
}

/// Ingests CSV text from `rdr` as dataset `name`; `source` names it in errors. The text is
/// spooled to a temporary file in the store's directory first, since kinds are inferred
/// in a pass of their own.
pub fn ingest_csv<R: Read>(
    store: &Store,
    mut rdr: R,
    source: &str,
    name: &str,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<DatasetManifest> {
    let dir = store.dir();
    let mut spool = tempfile::NamedTempFile::new_in(dir).map_err(|e| StorageError::io(dir, e))?;
    std::io::copy(&mut rdr, spool.as_file_mut()).map_err(|e| StorageError::io(spool.path(), e))?;
    let opts = IngestOptions {
        source: Some(source.to_string()),
        ..opts.clone()
    };
    ingest_csv_file(store, spool.path(), name, &opts, progress)
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
    let mut chunks = Vec::new();
    let mut total: u64 = 0;
    let mut tally = ColumnTally::new(rows.kinds());
    let classes = matches!(opts.csv.kind, meshml_models::io::TargetKind::Classification);
    let mut layout = ChunkLayout::new(
        &rows.feature_names(),
        &rows.kinds(),
        rows.target_name(),
        classes.then(LabelTable::default),
    );
    let mut flush_chunk = |layout: &ChunkLayout,
                           x: &mut Vec<f32>,
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
        tally.add(x);
        let chunk = Chunk {
            rows: n,
            cols: d,
            features: std::mem::take(x),
            targets,
        };
        let bytes = layout.encode(&chunk)?;
        // The buffers go back for the next chunk's rows (no fresh pages each chunk).
        *x = chunk.features;
        x.clear();
        match chunk.targets {
            ChunkTargets::Labels(mut l) => {
                l.clear();
                *labels = l;
            }
            ChunkTargets::Values(mut v) => {
                v.clear();
                *values = v;
            }
        }
        let id = store.chunks().write(&bytes)?;
        written.push(id);
        chunks.push(ChunkRef {
            id,
            rows: n as u32,
            bytes: bytes.len() as u64,
        });
        total += n as u64;
        progress(Progress {
            bytes_read,
            rows: total,
            chunks: chunks.len(),
        });
        Ok(())
    };
    let mut in_chunk = 0usize;
    while let Some((line, t)) = rows.next_into(&mut x)? {
        match (t, layout.labels_mut()) {
            (RawTarget::Label(l), Some(table)) => labels.push(table.intern(&l, line)),
            (RawTarget::Value(v), _) => values.push(v),
            (RawTarget::Label(_), None) => {
                return Err(
                    ModelError::Shape("a class label for a regression target".into()).into(),
                )
            }
        }
        in_chunk += 1;
        if in_chunk == opts.chunk_rows {
            flush_chunk(&layout, &mut x, &mut labels, &mut values, rows.bytes_read())?;
            in_chunk = 0;
        }
    }
    flush_chunk(&layout, &mut x, &mut labels, &mut values, rows.bytes_read())?;
    if total == 0 {
        return Err(ModelError::data(source, "no data rows after the header line").into());
    }
    let target = match opts.csv.kind {
        meshml_models::io::TargetKind::Regression => TargetSchema::Values,
        meshml_models::io::TargetKind::Classification => {
            let table = layout
                .labels()
                .ok_or_else(|| ModelError::Shape("class labels without a table".into()))?;
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
        columns: tally.finish(),
        chunk_format: ARROW_FORMAT,
    };
    store.put_manifest(&manifest)?;
    Ok(manifest)
}

/// Missing cells and category counts of each feature column, as chunks are written.
struct ColumnTally {
    kinds: Vec<ColumnKind>,
    missing: Vec<u64>,
    /// Per column, the count of each category code (empty for numbers).
    counts: Vec<Vec<u64>>,
}

impl ColumnTally {
    fn new(kinds: Vec<ColumnKind>) -> Self {
        let counts = kinds
            .iter()
            .map(|k| vec![0; k.categories().map_or(0, |c| c.len())])
            .collect();
        Self {
            missing: vec![0; kinds.len()],
            kinds,
            counts,
        }
    }

    /// Counts the cells of a chunk's row-major features.
    fn add(&mut self, x: &[f32]) {
        let d = self.kinds.len();
        if d == 0 {
            return;
        }
        for row in x.chunks_exact(d) {
            for (j, &v) in row.iter().enumerate() {
                if v.is_nan() {
                    self.missing[j] += 1;
                } else if let Some(c) = self.counts[j].get_mut(v as usize) {
                    *c += 1;
                }
            }
        }
    }

    fn finish(self) -> Vec<ColumnSummary> {
        self.kinds
            .into_iter()
            .zip(self.missing)
            .zip(self.counts)
            .map(|((kind, missing), counts)| {
                let mut order: Vec<usize> = (0..counts.len()).collect();
                order.sort_by_key(|&c| std::cmp::Reverse(counts[c]));
                let top = match kind.categories() {
                    Some(cats) => order
                        .iter()
                        .take(TOP_CATEGORIES)
                        .filter(|&&c| counts[c] > 0)
                        .map(|&c| (cats.label(c as u32).to_string(), counts[c]))
                        .collect(),
                    None => Vec::new(),
                };
                ColumnSummary { kind, missing, top }
            })
            .collect()
    }
}

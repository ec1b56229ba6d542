//! Writing datasets as CSV or Parquet (Spark's `saveAsTextFile`), chunk by chunk.
//!
//! [`TableWriter`] turns decoded chunks into a file's bytes one chunk at a time, so a
//! dataset of any size is written in the memory of one chunk (a Parquet row group per
//! chunk). The local store's export ([`export`]) and a node's streamed export over HTTP both
//! use it.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use meshml_models::schema::ColumnKind;
use parquet::basic::{Compression, ConvertedType, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, FloatType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::catalog::{DatasetManifest, Store, TargetSchema};
use crate::encoding::{Chunk, ChunkTargets};
use crate::error::{Result, StorageError};

fn csv_err(e: csv::Error) -> StorageError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => StorageError::io("output", io),
        other => StorageError::io("output", std::io::Error::other(format!("{other:?}"))),
    }
}

/// Runs `f` on a CSV writer into `buf` (no header row) and flushes it.
fn write_csv(
    buf: &mut Vec<u8>,
    f: impl FnOnce(&mut csv::Writer<&mut Vec<u8>>) -> csv::Result<()>,
) -> Result<()> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(buf);
    f(&mut w).map_err(csv_err)?;
    w.flush().map_err(|e| StorageError::io("output", e))
}

fn pq_err(e: parquet::errors::ParquetError) -> StorageError {
    StorageError::io(
        "output",
        std::io::Error::other(format!("writing Parquet: {e}")),
    )
}

/// The file formats a dataset is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableFormat {
    /// CSV with a header: the feature names, then the target.
    #[default]
    Csv,
    /// Parquet: one `FLOAT` column per feature, the target as `FLOAT` (regression) or a
    /// UTF-8 string (labels as written), one row group per chunk, Snappy-compressed.
    Parquet,
}

impl TableFormat {
    /// The format a file name asks for: `.parquet` or `.pq` is Parquet, anything else CSV.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq") => {
                Self::Parquet
            }
            _ => Self::Csv,
        }
    }

    /// Parses `csv` or `parquet`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "parquet" | "pq" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// Its name in URLs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }

    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
}

enum Sink<W: Write + Send> {
    /// The output, a reused buffer of one chunk's CSV, and a reused record.
    Csv(W, Vec<u8>, Vec<String>),
    Parquet(Box<SerializedFileWriter<W>>),
}

fn bad(name: &str, message: impl Into<String>) -> StorageError {
    StorageError::Record {
        what: format!("dataset '{name}'"),
        message: message.into(),
    }
}

/// A row's label, checked against the label table.
fn label<'a>(name: &str, table: &'a [String], id: u32) -> Result<&'a str> {
    table
        .get(id as usize)
        .map(String::as_str)
        .ok_or_else(|| bad(name, format!("label id {id} outside the label table")))
}

/// Writes a dataset's rows, a chunk at a time, as CSV or Parquet into `W`.
pub struct TableWriter<W: Write + Send> {
    name: String,
    target: TargetSchema,
    kinds: Vec<ColumnKind>,
    /// Feature columns with missing cells: optional in Parquet.
    optional: Vec<bool>,
    cols: usize,
    rows: u64,
    sink: Sink<W>,
}

impl<W: Write + Send> std::fmt::Debug for TableWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableWriter({}, {} rows)", self.name, self.rows)
    }
}

/// The Parquet schema of a dataset: numeric features as FLOAT, categorical ones as UTF-8
/// strings, booleans as BOOLEAN (each optional where it has missing cells), the target last.
fn parquet_schema(m: &DatasetManifest) -> Result<Type> {
    let float = |name: &str| {
        Type::primitive_type_builder(name, PhysicalType::FLOAT)
            .with_repetition(Repetition::REQUIRED)
            .build()
            .map(Arc::new)
    };
    let kinds = m.kinds();
    let mut fields = m
        .feature_names
        .iter()
        .enumerate()
        .map(|(j, n)| {
            let repetition = if m.columns.get(j).is_some_and(|c| c.missing > 0) {
                Repetition::OPTIONAL
            } else {
                Repetition::REQUIRED
            };
            let b = match &kinds[j] {
                ColumnKind::Categorical { .. } => {
                    Type::primitive_type_builder(n, PhysicalType::BYTE_ARRAY)
                        .with_logical_type(Some(LogicalType::String))
                        .with_converted_type(ConvertedType::UTF8)
                }
                ColumnKind::Boolean => Type::primitive_type_builder(n, PhysicalType::BOOLEAN),
                ColumnKind::Numeric | ColumnKind::Indicator => {
                    Type::primitive_type_builder(n, PhysicalType::FLOAT)
                }
            };
            b.with_repetition(repetition).build().map(Arc::new)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pq_err)?;
    let target = match &m.target {
        TargetSchema::Values => float(&m.target_name),
        TargetSchema::Classes { .. } => {
            Type::primitive_type_builder(&m.target_name, PhysicalType::BYTE_ARRAY)
                .with_repetition(Repetition::REQUIRED)
                .with_logical_type(Some(LogicalType::String))
                .with_converted_type(ConvertedType::UTF8)
                .build()
                .map(Arc::new)
        }
    }
    .map_err(pq_err)?;
    fields.push(target);
    Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
        .map_err(pq_err)
}

impl<W: Write + Send> TableWriter<W> {
    /// A writer of dataset `m` in `format` into `out`; CSV gets its header now.
    pub fn new(format: TableFormat, m: &DatasetManifest, out: W) -> Result<Self> {
        let sink = match format {
            TableFormat::Csv => {
                let mut header = m.feature_names.clone();
                header.push(m.target_name.clone());
                let mut buf = Vec::new();
                write_csv(&mut buf, |w| w.write_record(&header))?;
                let mut out = out;
                out.write_all(&buf)
                    .map_err(|e| StorageError::io("output", e))?;
                buf.clear();
                Sink::Csv(out, buf, Vec::with_capacity(header.len()))
            }
            TableFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_created_by(format!("meshml {}", env!("CARGO_PKG_VERSION")))
                    .build();
                let w =
                    SerializedFileWriter::new(out, Arc::new(parquet_schema(m)?), Arc::new(props))
                        .map_err(pq_err)?;
                Sink::Parquet(Box::new(w))
            }
        };
        Ok(Self {
            name: m.name.clone(),
            target: m.target.clone(),
            kinds: m.kinds(),
            optional: (0..m.n_features())
                .map(|j| m.columns.get(j).is_some_and(|c| c.missing > 0))
                .collect(),
            cols: m.n_features(),
            rows: 0,
            sink,
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn bad(&self, message: impl Into<String>) -> StorageError {
        bad(&self.name, message)
    }

    /// Appends a chunk's rows (CSV records, or one Parquet row group).
    pub fn write_chunk(&mut self, c: &Chunk) -> Result<()> {
        if c.cols != self.cols || c.features.len() != c.rows * c.cols {
            return Err(self.bad(format!(
                "a chunk has {} columns, the dataset {}",
                c.cols, self.cols
            )));
        }
        let table: &[String] = match (&c.targets, &self.target) {
            (ChunkTargets::Labels(l), TargetSchema::Classes { label_table, .. })
                if l.len() == c.rows =>
            {
                label_table
            }
            (ChunkTargets::Values(v), TargetSchema::Values) if v.len() == c.rows => &[],
            _ => return Err(self.bad("chunk targets do not match the manifest")),
        };
        let name = self.name.as_str();
        let (kinds, optional) = (&self.kinds, &self.optional);
        match &mut self.sink {
            Sink::Csv(out, buf, record) => {
                buf.clear();
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(&mut *buf);
                for r in 0..c.rows {
                    let target = match &c.targets {
                        ChunkTargets::Labels(l) => label(name, table, l[r])?.to_string(),
                        ChunkTargets::Values(v) => v[r].to_string(),
                    };
                    record.clear();
                    record.extend(
                        c.features[r * c.cols..(r + 1) * c.cols]
                            .iter()
                            .zip(kinds)
                            .map(|(v, k)| k.format_cell(*v)),
                    );
                    record.push(target);
                    w.write_record(&*record).map_err(csv_err)?;
                }
                w.flush().map_err(|e| StorageError::io("output", e))?;
                drop(w);
                out.write_all(buf)
                    .map_err(|e| StorageError::io("output", e))?;
            }
            Sink::Parquet(w) => {
                let labels: Vec<ByteArray> = match &c.targets {
                    ChunkTargets::Labels(l) => l
                        .iter()
                        .map(|&id| label(name, table, id).map(ByteArray::from))
                        .collect::<Result<_>>()?,
                    ChunkTargets::Values(_) => Vec::new(),
                };
                let mut group = w.next_row_group().map_err(pq_err)?;
                let mut j = 0;
                while let Some(mut col) = group.next_column().map_err(pq_err)? {
                    if j < c.cols {
                        let cells = (0..c.rows).map(|r| c.features[r * c.cols + j]);
                        // Definition levels: 1 for a value, 0 for a missing cell (read only
                        // by an optional column, which a column with missing cells is).
                        let levels: Vec<i16> =
                            cells.clone().map(|v| i16::from(!v.is_nan())).collect();
                        let present = cells.filter(|v| !v.is_nan());
                        let def = optional[j].then_some(levels.as_slice());
                        if !optional[j] && levels.contains(&0) {
                            return Err(bad(
                                name,
                                "a missing cell in a column the manifest says has none",
                            ));
                        }
                        match &kinds[j] {
                            ColumnKind::Categorical { categories } => {
                                let values = present
                                    .map(|v| {
                                        categories
                                            .labels()
                                            .get(v as usize)
                                            .map(|l| ByteArray::from(l.as_str()))
                                            .ok_or_else(|| {
                                                bad(
                                                    name,
                                                    format!("category code {v} outside the schema"),
                                                )
                                            })
                                    })
                                    .collect::<Result<Vec<_>>>()?;
                                col.typed::<ByteArrayType>()
                                    .write_batch(&values, def, None)
                                    .map_err(pq_err)?;
                            }
                            ColumnKind::Boolean => {
                                let values: Vec<bool> = present.map(|v| v != 0.0).collect();
                                col.typed::<BoolType>()
                                    .write_batch(&values, def, None)
                                    .map_err(pq_err)?;
                            }
                            ColumnKind::Numeric | ColumnKind::Indicator => {
                                let values: Vec<f32> = present.collect();
                                col.typed::<FloatType>()
                                    .write_batch(&values, def, None)
                                    .map_err(pq_err)?;
                            }
                        };
                    } else {
                        match &c.targets {
                            ChunkTargets::Labels(_) => col
                                .typed::<ByteArrayType>()
                                .write_batch(&labels, None, None)
                                .map_err(pq_err)?,
                            ChunkTargets::Values(v) => col
                                .typed::<FloatType>()
                                .write_batch(v, None, None)
                                .map_err(pq_err)?,
                        };
                    }
                    col.close().map_err(pq_err)?;
                    j += 1;
                }
                group.close().map_err(pq_err)?;
            }
        }
        self.rows += c.rows as u64;
        Ok(())
    }

    /// The output so far, everything written reaching it (for a caller that drains it).
    pub fn output(&mut self) -> Result<&mut W> {
        match &mut self.sink {
            Sink::Csv(out, ..) => Ok(out),
            Sink::Parquet(w) => {
                w.flush().map_err(|e| StorageError::io("output", e))?;
                Ok(w.inner_mut())
            }
        }
    }

    /// Ends the file (Parquet's footer) and returns the output, flushed.
    pub fn finish(self) -> Result<W> {
        match self.sink {
            Sink::Csv(mut out, ..) => {
                out.flush().map_err(|e| StorageError::io("output", e))?;
                Ok(out)
            }
            Sink::Parquet(w) => {
                let mut out = w.into_inner().map_err(pq_err)?;
                out.flush().map_err(|e| StorageError::io("output", e))?;
                Ok(out)
            }
        }
    }
}

/// Writes dataset `name` from the local store in `format`: every row in order, one chunk
/// in memory at a time (encoded into a buffer, then copied to `out`). Numbers are written
/// in their shortest form that reads back to the same `f32`; labels exactly as they were
/// ingested.
pub fn export(
    store: &Store,
    name: &str,
    format: TableFormat,
    mut out: impl Write,
) -> Result<DatasetManifest> {
    let m = store.dataset(name)?;
    let io = |e| StorageError::io("output", e);
    let mut w = TableWriter::new(format, &m, Vec::new())?;
    let layout = m.layout()?;
    for i in 0..m.chunks.len() {
        w.write_chunk(&store.read_chunk(&m, &layout, i)?)?;
        let piece = w.output()?;
        out.write_all(piece).map_err(io)?;
        piece.clear();
    }
    out.write_all(&w.finish()?).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(m)
}

/// [`export`] as CSV.
pub fn export_csv(store: &Store, name: &str, out: impl Write) -> Result<DatasetManifest> {
    export(store, name, TableFormat::Csv, out)
}

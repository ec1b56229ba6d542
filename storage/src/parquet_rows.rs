//! Reading Parquet files row by row for ingest (one row group decoded at a time).

use std::fs::File;
use std::path::Path;

use meshml_models::io::{CsvOptions, RawTarget, TargetKind};
use meshml_models::ModelError;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::Field;

use crate::error::{Result, StorageError};
use crate::rows::RowSource;

/// Rows of a Parquet file: flat numeric feature columns and one target column.
pub struct ParquetRows {
    source: String,
    names: Vec<String>,
    target_col: usize,
    kind: TargetKind,
    rows: RowIter<'static>,
    /// The Parquet reader panicked on this file: no more rows are read.
    broken: bool,
    row: u64,
    total_rows: u64,
    file_bytes: u64,
}

impl std::fmt::Debug for ParquetRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ParquetRows({}, row {} of {})",
            self.source, self.row, self.total_rows
        )
    }
}

fn pq_err(source: &str, e: parquet::errors::ParquetError) -> StorageError {
    ModelError::data(source, format!("cannot read Parquet: {e}")).into()
}

/// Largest Parquet footer (file metadata) read: a hostile footer cannot make the reader
/// allocate more. Real footers are kilobytes to a few MiB.
pub const MAX_FOOTER_BYTES: u64 = 64 << 20;

/// Largest column chunk (compressed or not) read: the reader holds one page of one at a
/// time, and a page is at most its column chunk. Writers default to row groups of 128 MiB
/// or less in all.
pub const MAX_COLUMN_CHUNK_BYTES: i64 = 512 << 20;

/// Checks the footer's length (the file's last 8 bytes) before the reader trusts it.
fn check_footer(file: &File, file_bytes: u64, source: &str) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let refuse = |why: String| -> StorageError { ModelError::data(source, why).into() };
    if file_bytes < 12 {
        return Err(refuse(format!(
            "not a Parquet file ({file_bytes} bytes; a Parquet file has at least 12)"
        )));
    }
    let mut tail = [0u8; 8];
    let mut f = file;
    f.seek(SeekFrom::End(-8))
        .and_then(|_| f.read_exact(&mut tail))
        .and_then(|()| f.seek(SeekFrom::Start(0)))
        .map_err(|e| StorageError::io(source, e))?;
    if &tail[4..] != b"PAR1" {
        return Err(refuse(
            "not a Parquet file (no PAR1 magic at its end)".into(),
        ));
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer > file_bytes - 12 {
        return Err(refuse(format!(
            "the Parquet footer claims {footer} bytes of metadata in a file of {file_bytes}"
        )));
    }
    if footer > MAX_FOOTER_BYTES {
        return Err(refuse(format!(
            "the Parquet footer is {footer} bytes; at most {MAX_FOOTER_BYTES} are read"
        )));
    }
    Ok(())
}

/// Checks what the footer says about the row groups against the file and the caps.
fn check_row_groups(
    meta: &parquet::file::metadata::ParquetMetaData,
    file_bytes: u64,
    source: &str,
) -> Result<()> {
    for (g, rg) in meta.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let (compressed, raw) = (c.compressed_size(), c.uncompressed_size());
            let start = crate::parquet_pages::chunk_start(c);
            let bad = compressed < 0
                || raw < 0
                || start < 0
                || (start as u64).saturating_add(compressed as u64) > file_bytes;
            if bad {
                return Err(ModelError::data(
                    source,
                    format!(
                        "row group {g}, column '{}': the footer places it outside the file",
                        c.column_path().string()
                    ),
                )
                .into());
            }
            if compressed.max(raw) > MAX_COLUMN_CHUNK_BYTES {
                return Err(ModelError::data(
                    source,
                    format!(
                        "row group {g}, column '{}': a column chunk of {} bytes; at most {MAX_COLUMN_CHUNK_BYTES} are read (write smaller row groups)",
                        c.column_path().string(),
                        compressed.max(raw)
                    ),
                )
                .into());
            }
        }
    }
    Ok(())
}

impl ParquetRows {
    /// Opens `path` and checks its schema; `source` names it in errors. The footer, the
    /// column count, every column chunk's size and every page header
    /// ([`crate::parquet_pages`]) are checked against the file and caps before anything is
    /// decoded, so a hostile file cannot make the reader allocate much.
    pub fn open(path: &Path, source: &str, opts: &CsvOptions) -> Result<Self> {
        let source = source.to_string();
        let file = File::open(path).map_err(|e| StorageError::io(&source, e))?;
        let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        check_footer(&file, file_bytes, &source)?;
        let pages = file.try_clone().map_err(|e| StorageError::io(&source, e))?;
        // The Parquet crate panics on some corrupt inputs: a corrupt file, not a crash.
        let reader = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            SerializedFileReader::new(file)
        }))
        .map_err(|_| {
            StorageError::from(ModelError::data(
                &source,
                "cannot read Parquet: the file is corrupt (its footer could not be decoded)",
            ))
        })?
        .map_err(|e| pq_err(&source, e))?;
        check_row_groups(reader.metadata(), file_bytes, &source)?;
        crate::parquet_pages::check_pages(&pages, reader.metadata())
            .map_err(|why| StorageError::from(ModelError::data(&source, why)))?;
        let meta = reader.metadata().file_metadata();
        let schema = meta.schema_descr();
        if schema.num_columns() > opts.max_columns {
            return Err(ModelError::data(
                &source,
                format!(
                    "the file has {} columns; at most {} are read (--max-columns)",
                    schema.num_columns(),
                    opts.max_columns
                ),
            )
            .into());
        }
        let names: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
        if schema.root_schema().get_fields().len() != names.len() {
            return Err(
                ModelError::data(&source, "nested Parquet columns are not supported").into(),
            );
        }
        if names.len() < 2 {
            return Err(ModelError::data(
                &source,
                "need at least one feature column besides the target",
            )
            .into());
        }
        let target_col = match &opts.target {
            None => names.len() - 1,
            Some(t) => names.iter().position(|n| n == t).ok_or_else(|| {
                ModelError::data(
                    &source,
                    format!(
                        "target column '{t}' is not in the file; columns are: {}",
                        names.join(", ")
                    ),
                )
            })?,
        };
        let total_rows = meta.num_rows().max(0) as u64;
        Ok(Self {
            source,
            names,
            target_col,
            kind: opts.kind,
            rows: reader.into_iter(),
            broken: false,
            row: 0,
            total_rows,
            file_bytes,
        })
    }

    fn at(&self, col: usize) -> String {
        format!(
            "{}: row {}, column '{}' ({})",
            self.source,
            self.row,
            self.names[col],
            col + 1
        )
    }

    fn number(&self, f: &Field, col: usize) -> Result<f64> {
        let v = match f {
            Field::Bool(b) => f64::from(u8::from(*b)),
            Field::Byte(v) => f64::from(*v),
            Field::Short(v) => f64::from(*v),
            Field::Int(v) => f64::from(*v),
            Field::Long(v) => *v as f64,
            Field::UByte(v) => f64::from(*v),
            Field::UShort(v) => f64::from(*v),
            Field::UInt(v) => f64::from(*v),
            Field::ULong(v) => *v as f64,
            Field::Float(v) => f64::from(*v),
            Field::Double(v) => *v,
            Field::Float16(v) => f64::from(f32::from(*v)),
            Field::Null => return Err(ModelError::data(self.at(col), "missing value").into()),
            other => {
                return Err(
                    ModelError::data(self.at(col), format!("{other} is not a number")).into(),
                )
            }
        };
        if !v.is_finite() {
            return Err(ModelError::data(
                self.at(col),
                "NaN and infinite values are not supported",
            )
            .into());
        }
        Ok(v)
    }
}

impl RowSource for ParquetRows {
    fn feature_names(&self) -> Vec<String> {
        (0..self.names.len())
            .filter(|&c| c != self.target_col)
            .map(|c| self.names[c].clone())
            .collect()
    }

    fn target_name(&self) -> &str {
        &self.names[self.target_col]
    }

    fn target_col(&self) -> usize {
        self.target_col
    }

    fn n_features(&self) -> usize {
        self.names.len() - 1
    }

    fn bytes_read(&self) -> u64 {
        if self.total_rows == 0 {
            0
        } else {
            (self.file_bytes as f64 * self.row as f64 / self.total_rows as f64) as u64
        }
    }

    fn next_into(&mut self, x: &mut Vec<f32>) -> Result<Option<(u64, RawTarget)>> {
        if self.broken {
            return Err(
                ModelError::data(&self.source, "cannot read Parquet: the file is corrupt").into(),
            );
        }
        // The Parquet crate panics on some corrupt pages (e.g. "Num of bytes exceed
        // MAX_VLQ_BYTE_LEN" in its RLE decoder, found by fuzzing): that is a corrupt file,
        // not a crash.
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.rows.next()));
        let Ok(next) = next else {
            self.broken = true;
            return Err(ModelError::data(
                format!("{}: row {}", self.source, self.row + 1),
                "cannot read Parquet: the file is corrupt (its reader failed on a page)",
            )
            .into());
        };
        let Some(row) = next else {
            return Ok(None);
        };
        self.row += 1;
        let row = row.map_err(|e| pq_err(&self.source, e))?;
        let start = x.len();
        let mut target = None;
        for (col, (_, field)) in row.get_column_iter().enumerate() {
            let parsed = if col == self.target_col {
                let t = match (self.kind, field) {
                    (_, Field::Null) => {
                        Err(ModelError::data(self.at(col), "missing target value").into())
                    }
                    (TargetKind::Classification, Field::Str(s)) => Ok(RawTarget::Label(s.clone())),
                    (TargetKind::Classification, f) => {
                        self.number(f, col).map(|v| RawTarget::Label(v.to_string()))
                    }
                    (TargetKind::Regression, f) => {
                        self.number(f, col).map(|v| RawTarget::Value(v as f32))
                    }
                };
                t.map(|t| target = Some(t))
            } else {
                self.number(field, col).map(|v| x.push(v as f32))
            };
            if let Err(e) = parsed {
                x.truncate(start);
                return Err(e);
            }
        }
        Ok(target.map(|t| (self.row, t)))
    }
}

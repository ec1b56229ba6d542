//! Reading Parquet files row by row for ingest (one row group decoded at a time).
//!
//! Column kinds come from the Parquet schema: strings are categorical, booleans boolean,
//! numbers numeric (`--categorical` and `--numeric` override), nulls are missing cells. The
//! categories of categorical columns are gathered in a first pass over the rows, capped as
//! for CSV (`--max-categories`).

use std::fs::File;
use std::path::Path;

use meshml_models::io::{CsvOptions, RawTarget, TargetKind};
use meshml_models::schema::{ColumnKind, UNKNOWN_CODE};
use meshml_models::{Classes, ModelError};
use parquet::basic::Type as PhysicalType;
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
    /// The kind of every column (the target's is unused).
    kinds: Vec<ColumnKind>,
    /// Strings read as missing.
    na_values: Vec<String>,
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
        for (list, what) in [
            (&opts.categorical, "categorical"),
            (&opts.numeric, "numeric"),
        ] {
            for n in list {
                if !names.contains(n) || *n == names[target_col] {
                    return Err(ModelError::data(
                        &source,
                        format!(
                            "column '{n}' given as {what} is not a feature column; columns are: {}",
                            names.join(", ")
                        ),
                    )
                    .into());
                }
            }
        }
        // Strings are categories, booleans booleans, the rest numbers, unless told.
        let mut categorical = vec![false; names.len()];
        let mut kinds: Vec<ColumnKind> = schema
            .columns()
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let name = &names[j];
                if opts.numeric.contains(name) {
                    return ColumnKind::Numeric;
                }
                // Strings (BYTE_ARRAY); FIXED_LEN_BYTE_ARRAY holds float16 and decimals.
                let text = c.physical_type() == PhysicalType::BYTE_ARRAY;
                if j != target_col && (text || opts.categorical.contains(name)) {
                    categorical[j] = true;
                    return ColumnKind::Categorical {
                        categories: Classes::from_labels::<&str>(&[]),
                    };
                }
                if c.physical_type() == PhysicalType::BOOLEAN {
                    ColumnKind::Boolean
                } else {
                    ColumnKind::Numeric
                }
            })
            .collect();
        if categorical.iter().any(|&c| c) {
            let scan = file_for_scan(path, &source)?;
            let sets = categories(scan, &names, &categorical, opts, &source)?;
            for (j, set) in sets.into_iter().enumerate() {
                if let Some(set) = set {
                    let labels: Vec<String> = set.into_iter().collect();
                    kinds[j] = ColumnKind::Categorical {
                        categories: Classes::from_labels(&labels),
                    };
                }
            }
        }
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
            kinds,
            na_values: opts.na_values.clone(),
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

    /// A feature cell in its column's kind: NaN for null, a category's code, 1 or 0.
    fn cell(&self, f: &Field, col: usize) -> Result<f32> {
        if is_missing(f, &self.na_values) {
            return Ok(f32::NAN);
        }
        match &self.kinds[col] {
            ColumnKind::Categorical { categories } => {
                let text = field_text(f).ok_or_else(|| {
                    StorageError::from(ModelError::data(
                        self.at(col),
                        format!("{f} is not a category"),
                    ))
                })?;
                let code = categories.id_of(&text).map_or(UNKNOWN_CODE, |c| c as f32);
                if code == UNKNOWN_CODE {
                    return Err(ModelError::data(
                        self.at(col),
                        format!("'{text}' is not one of the column's categories (did the file change while it was read?)"),
                    )
                    .into());
                }
                Ok(code)
            }
            _ => self.number(f, col).map(|v| v as f32),
        }
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

    fn kinds(&self) -> Vec<ColumnKind> {
        (0..self.names.len())
            .filter(|&c| c != self.target_col)
            .map(|c| self.kinds[c].clone())
            .collect()
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
                self.cell(field, col).map(|v| x.push(v))
            };
            if let Err(e) = parsed {
                x.truncate(start);
                return Err(e);
            }
        }
        Ok(target.map(|t| (self.row, t)))
    }
}

/// A second reader of the file, for the pass that gathers categories (its footer and pages
/// were checked by [`ParquetRows::open`]).
fn file_for_scan(path: &Path, source: &str) -> Result<SerializedFileReader<File>> {
    let file = File::open(path).map_err(|e| StorageError::io(source, e))?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        SerializedFileReader::new(file)
    }))
    .map_err(|_| {
        StorageError::from(ModelError::data(
            source,
            "cannot read Parquet: the file is corrupt",
        ))
    })?
    .map_err(|e| pq_err(source, e))
}

/// Whether a cell is missing: null, a NaN float (as some writers mark missing) or a string
/// among the missing markers (`NA`, ...), as in a CSV file.
fn is_missing(f: &Field, na_values: &[String]) -> bool {
    match f {
        Field::Null => true,
        Field::Float(v) => v.is_nan(),
        Field::Double(v) => v.is_nan(),
        Field::Str(s) => na_values.iter().any(|na| na == s),
        _ => false,
    }
}

/// The text of a cell read as a category: a string as it is, a number as written
/// (integers without a decimal point), a boolean as `True`/`False`.
fn field_text(f: &Field) -> Option<String> {
    Some(match f {
        Field::Str(s) => s.clone(),
        Field::Bytes(b) => String::from_utf8(b.data().to_vec()).ok()?,
        Field::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        _ => return None,
    })
}

/// The distinct values of the `categorical` columns, at most `max` each (an error names
/// the column past it).
fn categories(
    reader: SerializedFileReader<File>,
    names: &[String],
    categorical: &[bool],
    opts: &CsvOptions,
    source: &str,
) -> Result<Vec<Option<std::collections::HashSet<String>>>> {
    let max = opts.max_categories;
    let mut bytes = 0usize;
    let mut sets: Vec<Option<std::collections::HashSet<String>>> = categorical
        .iter()
        .map(|&c| c.then(std::collections::HashSet::new))
        .collect();
    let mut rows = reader.into_iter();
    let mut row_no = 0u64;
    loop {
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rows.next())).map_err(
            |_| {
                StorageError::from(ModelError::data(
                    format!("{source}: row {}", row_no + 1),
                    "cannot read Parquet: the file is corrupt (its reader failed on a page)",
                ))
            },
        )?;
        let Some(row) = next else { break };
        row_no += 1;
        let row = row.map_err(|e| pq_err(source, e))?;
        for (j, (_, field)) in row.get_column_iter().enumerate() {
            let Some(set) = sets.get_mut(j).and_then(Option::as_mut) else {
                continue;
            };
            if is_missing(field, &opts.na_values) {
                continue;
            }
            let Some(text) = field_text(field) else {
                return Err(ModelError::data(
                    format!("{source}: row {row_no}, column '{}'", names[j]),
                    format!("{field} is not a category"),
                )
                .into());
            };
            if !set.contains(&text) {
                if set.len() >= max {
                    return Err(ModelError::data(
                        format!("{source}, column '{}'", names[j]),
                        format!(
                            "has more than {max} distinct categories (an id or free text?); \
                             drop the column, declare it numeric with --numeric, or raise \
                             the cap with --max-categories"
                        ),
                    )
                    .into());
                }
                bytes += text.len() + 32;
                if bytes > meshml_models::io::infer::MAX_CATEGORY_BYTES {
                    return Err(ModelError::data(
                        format!("{source}, column '{}'", names[j]),
                        format!(
                            "the categories of all text columns take more than {} MiB; drop \
                             high-cardinality text columns or declare them numeric",
                            meshml_models::io::infer::MAX_CATEGORY_BYTES >> 20
                        ),
                    )
                    .into());
                }
                set.insert(text);
            }
        }
    }
    Ok(sets)
}

//! The chunk formats. A chunk is a block of a dataset's rows; its id is the BLAKE3 hash of
//! its bytes.
//!
//! - **Format 2 ([`ARROW_FORMAT`], written since typed columns).** One Arrow record batch in
//!   Arrow's IPC stream format: one field per feature column, named by its header, then the
//!   target. Numbers are nullable `Float32` (a missing cell is null); categories are
//!   dictionary-encoded text (`Dictionary(Int8|Int16|Int32, Utf8)`, the key width fixed by the
//!   column's number of categories, the dictionary holding the categories the chunk uses, in
//!   the manifest's order); booleans are nullable `Boolean`. Class labels are
//!   `Dictionary(Int32, Utf8)` of the labels as written; regression targets `Float32`. Any
//!   Arrow reader (DataFusion, pyarrow) reads a chunk as it is.
//! - **Format 1 ([`ROWS_FORMAT`], datasets stored before).** MessagePack (field names,
//!   `serde_bytes` payloads): features as little-endian `f32` row-major bytes, targets as
//!   little-endian `u32` label ids or `f32` values. Still read; no longer written.
//!
//! Either decodes to a [`Chunk`]: the rows as the models' row-major `f32` matrix, categories
//! as their codes into the manifest's categories and missing cells as NaN.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, Int32Type, Int8Type};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, BooleanArray, DictionaryArray, Float32Array,
    PrimitiveArray, RecordBatch, StringArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use meshml_models::io::LabelTable;
use meshml_models::schema::ColumnKind;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use meshml_protocol::ChunkId;

/// MessagePack, row-major: the format of datasets stored before typed columns.
pub const ROWS_FORMAT: u8 = 1;
/// Arrow IPC stream, one record batch: the format chunks are written in.
pub const ARROW_FORMAT: u8 = 2;

/// The targets of a chunk's rows.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkTargets {
    /// Label ids into the dataset manifest's label table (first-appearance order).
    Labels(Vec<u32>),
    /// Regression values.
    Values(Vec<f32>),
}

/// A decoded chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Rows in the chunk.
    pub rows: usize,
    /// Feature columns.
    pub cols: usize,
    /// `rows x cols` features, row-major: numbers, category codes, 0/1, NaN where missing.
    pub features: Vec<f32>,
    /// One target per row.
    pub targets: ChunkTargets,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TargetsRepr {
    Labels(#[serde(with = "serde_bytes")] Vec<u8>),
    Values(#[serde(with = "serde_bytes")] Vec<u8>),
}

#[derive(Serialize, Deserialize)]
struct ChunkRepr {
    rows: u32,
    cols: u32,
    #[serde(with = "serde_bytes")]
    features: Vec<u8>,
    targets: TargetsRepr,
}

/// Values as little-endian bytes (how predictions carry f32 arrays).
pub fn le_bytes_f32(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Values from little-endian bytes (a trailing partial value is ignored; callers check
/// the length).
pub fn f32s_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

fn le_bytes_u32(v: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Which format `bytes` are in: an Arrow IPC stream opens with the continuation marker
/// `0xFFFFFFFF`, a format-1 chunk with a MessagePack map.
pub fn format_of(bytes: &[u8]) -> u8 {
    if bytes.starts_with(&[0xFF; 4]) {
        ARROW_FORMAT
    } else {
        ROWS_FORMAT
    }
}

impl Chunk {
    /// Encodes the chunk in format 1 ([`ROWS_FORMAT`]), as datasets were stored before
    /// typed columns: for compatibility tests and the format benchmark.
    pub fn encode_rows(&self) -> Vec<u8> {
        let repr = ChunkRepr {
            rows: self.rows as u32,
            cols: self.cols as u32,
            features: le_bytes_f32(&self.features),
            targets: match &self.targets {
                ChunkTargets::Labels(l) => TargetsRepr::Labels(le_bytes_u32(l)),
                ChunkTargets::Values(v) => TargetsRepr::Values(le_bytes_f32(v)),
            },
        };
        rmp_serde::to_vec_named(&repr).expect("chunks always encode")
    }

    /// Decodes a format-1 chunk, checking that the sizes agree.
    pub fn decode_rows(id: &ChunkId, bytes: &[u8]) -> Result<Self> {
        let damaged = |message: String| damaged(id, message);
        let r: ChunkRepr =
            rmp_serde::from_slice(bytes).map_err(|e| damaged(format!("cannot decode: {e}")))?;
        let (rows, cols) = (r.rows as usize, r.cols as usize);
        if rows.checked_mul(cols).and_then(|n| n.checked_mul(4)) != Some(r.features.len()) {
            return Err(damaged(format!(
                "{} feature bytes for {rows} x {cols} values",
                r.features.len()
            )));
        }
        let features = f32s_from_le(&r.features);
        let (tbytes, is_labels) = match &r.targets {
            TargetsRepr::Labels(b) => (b, true),
            TargetsRepr::Values(b) => (b, false),
        };
        if tbytes.len() != rows * 4 {
            return Err(damaged(format!(
                "{} target bytes for {rows} rows",
                tbytes.len()
            )));
        }
        let words = tbytes
            .chunks_exact(4)
            .map(|b| <[u8; 4]>::try_from(b).expect("4 bytes"));
        let targets = if is_labels {
            ChunkTargets::Labels(words.map(u32::from_le_bytes).collect())
        } else {
            ChunkTargets::Values(words.map(f32::from_le_bytes).collect())
        };
        Ok(Self {
            rows,
            cols,
            features,
            targets,
        })
    }
}

fn damaged(id: &ChunkId, message: String) -> StorageError {
    StorageError::Damaged { id: *id, message }
}

/// A dataset's chunk layout: its columns' names and kinds and its target, as an Arrow
/// schema. Encodes chunks in [`ARROW_FORMAT`] and decodes either format.
#[derive(Debug, Clone)]
pub struct ChunkLayout {
    schema: SchemaRef,
    kinds: Vec<ColumnKind>,
    /// Class labels as written (the manifest's label table), or `None` for values.
    labels: Option<LabelTable>,
    /// The format the dataset's chunks are in.
    format: u8,
}

/// The narrowest dictionary key that holds `n` codes.
fn key_type(n: usize) -> DataType {
    if n <= 1 << 7 {
        DataType::Int8
    } else if n <= 1 << 15 {
        DataType::Int16
    } else {
        DataType::Int32
    }
}

fn dictionary(key: DataType) -> DataType {
    DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8))
}

impl ChunkLayout {
    /// The layout of a dataset with these feature columns and target; `labels` are the
    /// label table of a classification target (`None` for regression). At ingest the label
    /// table grows as rows arrive ([`ChunkLayout::labels_mut`]).
    pub fn new(
        feature_names: &[String],
        kinds: &[ColumnKind],
        target_name: &str,
        labels: Option<LabelTable>,
    ) -> Self {
        let mut fields: Vec<Field> = feature_names
            .iter()
            .zip(kinds)
            .map(|(name, kind)| {
                let t = match kind {
                    ColumnKind::Numeric | ColumnKind::Indicator => DataType::Float32,
                    ColumnKind::Boolean => DataType::Boolean,
                    ColumnKind::Categorical { categories } => {
                        dictionary(key_type(categories.len()))
                    }
                };
                Field::new(name, t, true)
            })
            .collect();
        let target = match &labels {
            Some(_) => Field::new(target_name, dictionary(DataType::Int32), false),
            None => Field::new(target_name, DataType::Float32, false),
        };
        fields.push(target);
        Self {
            schema: Arc::new(Schema::new(fields)),
            kinds: kinds.to_vec(),
            labels,
            format: ARROW_FORMAT,
        }
    }

    /// The layout of a dataset whose chunks are in `format` ([`ROWS_FORMAT`] or
    /// [`ARROW_FORMAT`]): decoding checks each chunk is.
    pub fn in_format(mut self, format: u8) -> Self {
        self.format = format;
        self
    }

    /// The label table of a classification target (`None` for values).
    pub fn labels(&self) -> Option<&LabelTable> {
        self.labels.as_ref()
    }

    /// The label table, to add labels as rows arrive (a label keeps its id).
    pub fn labels_mut(&mut self) -> Option<&mut LabelTable> {
        self.labels.as_mut()
    }

    /// The chunks' Arrow schema: the feature columns, then the target.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The chunk as an Arrow record batch.
    pub fn batch(&self, chunk: &Chunk) -> Result<RecordBatch> {
        let d = self.kinds.len();
        let bad = |m: String| StorageError::Model(meshml_models::ModelError::Shape(m));
        if chunk.cols != d || chunk.features.len() != chunk.rows * d {
            return Err(bad(format!(
                "a chunk of {} x {} ({} values) for {d} columns",
                chunk.rows,
                chunk.cols,
                chunk.features.len()
            )));
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(d + 1);
        for (j, (kind, column)) in self
            .kinds
            .iter()
            .zip(to_columns(&chunk.features, chunk.rows, d))
            .enumerate()
        {
            let cells = || column.iter().copied();
            let nulls = || {
                column
                    .iter()
                    .any(|v| v.is_nan())
                    .then(|| NullBuffer::from_iter(cells().map(|v| !v.is_nan())))
            };
            let array: ArrayRef = match kind {
                ColumnKind::Numeric | ColumnKind::Indicator => {
                    let nulls = nulls();
                    Arc::new(Float32Array::new(column.into(), nulls))
                }
                ColumnKind::Boolean => {
                    if let Some(v) = cells().find(|&v| !(v == 0.0 || v == 1.0 || v.is_nan())) {
                        return Err(bad(format!("{v} in boolean column {j}")));
                    }
                    let values = BooleanBuffer::from_iter(cells().map(|v| v == 1.0));
                    Arc::new(BooleanArray::new(values, nulls()))
                }
                ColumnKind::Categorical { categories } => {
                    let (names, n) = (categories.labels(), categories.len());
                    let codes = cells()
                        .map(|v| match v {
                            v if v.is_nan() => Ok(None),
                            v if v >= 0.0 && v.fract() == 0.0 && (v as usize) < n => {
                                Ok(Some(v as u32))
                            }
                            v => Err(bad(format!("code {v} in column {j} of {n} categories"))),
                        })
                        .collect::<Result<Vec<Option<u32>>>>()?;
                    dictionary_column(&key_type(n), &codes, names)
                }
            };
            columns.push(array);
        }
        let target: ArrayRef = match (&chunk.targets, &self.labels) {
            (ChunkTargets::Labels(ids), Some(table)) => {
                let labels = table.labels();
                if let Some(&id) = ids.iter().find(|&&i| i as usize >= labels.len()) {
                    return Err(bad(format!(
                        "label id {id} outside a table of {}",
                        labels.len()
                    )));
                }
                let codes: Vec<Option<u32>> = ids.iter().map(|&i| Some(i)).collect();
                dictionary_column(&DataType::Int32, &codes, labels)
            }
            (ChunkTargets::Values(v), None) => Arc::new(Float32Array::from(v.clone())),
            _ => return Err(bad("the chunk's targets are not the layout's kind".into())),
        };
        if target.len() != chunk.rows {
            return Err(bad(format!(
                "{} targets for {} rows",
                target.len(),
                chunk.rows
            )));
        }
        columns.push(target);
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| bad(format!("cannot build the chunk's record batch: {e}")))
    }

    /// Encodes the chunk in [`ARROW_FORMAT`].
    pub fn encode(&self, chunk: &Chunk) -> Result<Vec<u8>> {
        let batch = self.batch(chunk)?;
        let fail = |e: arrow_schema::ArrowError| {
            StorageError::Model(meshml_models::ModelError::Shape(format!(
                "cannot write the chunk as Arrow IPC: {e}"
            )))
        };
        // Sized for the arrays and the messages around them: the bytes grow no copies.
        let out = Vec::with_capacity(batch.get_array_memory_size() + 4096);
        let mut w = arrow_ipc::writer::StreamWriter::try_new(out, &self.schema).map_err(fail)?;
        w.write(&batch).map_err(fail)?;
        w.finish().map_err(fail)?;
        w.into_inner().map_err(fail)
    }

    /// Decodes a chunk of this layout in either format: format 2 is checked against the
    /// layout (types, categories, labels), format 1 for its sizes.
    pub fn decode(&self, id: &ChunkId, bytes: &[u8]) -> Result<Chunk> {
        let format = format_of(bytes);
        self.check_format(id, format)?;
        if format == ROWS_FORMAT {
            let c = Chunk::decode_rows(id, bytes)?;
            if c.cols != self.kinds.len() {
                return Err(damaged(
                    id,
                    format!("{} columns, not {}", c.cols, self.kinds.len()),
                ));
            }
            return Ok(c);
        }
        let mut features = Vec::new();
        let (rows, targets) = self.append(id, &read_batch(id, bytes)?, &mut features)?;
        Ok(Chunk {
            rows,
            cols: self.kinds.len(),
            features,
            targets,
        })
    }

    /// Decodes a chunk of this layout (either format) straight onto the end of `x`, a
    /// row-major matrix of the layout's columns; returns its rows and targets. On an error
    /// `x` is as it was.
    pub fn decode_into(
        &self,
        id: &ChunkId,
        bytes: &[u8],
        x: &mut Vec<f32>,
    ) -> Result<(usize, ChunkTargets)> {
        if format_of(bytes) == ROWS_FORMAT {
            let c = self.decode(id, bytes)?;
            x.extend_from_slice(&c.features);
            return Ok((c.rows, c.targets));
        }
        self.check_format(id, ARROW_FORMAT)?;
        self.append(id, &read_batch(id, bytes)?, x)
    }

    fn check_format(&self, id: &ChunkId, format: u8) -> Result<()> {
        if format == self.format {
            return Ok(());
        }
        Err(damaged(
            id,
            format!(
                "a format-{format} chunk in a dataset of format {}",
                self.format
            ),
        ))
    }

    /// Appends the rows of a record batch of this layout to `x` (row-major; each column is
    /// written into place once) and returns their number and targets. Every column is
    /// checked and converted before `x` grows: a batch's declared length is then backed by
    /// its buffers, and `x` is left as it was on an error.
    fn append(
        &self,
        id: &ChunkId,
        batch: &RecordBatch,
        x: &mut Vec<f32>,
    ) -> Result<(usize, ChunkTargets)> {
        let damaged = |m: String| damaged(id, m);
        let d = self.kinds.len();
        if batch.num_columns() != d + 1 {
            return Err(damaged(format!(
                "{} columns, not {} and the target",
                batch.num_columns(),
                d
            )));
        }
        let rows = batch.num_rows();
        let mut columns: Vec<Cow<'_, [f32]>> = Vec::with_capacity(d);
        for (j, kind) in self.kinds.iter().enumerate() {
            let col = batch.column(j);
            let wrong = || {
                damaged(format!(
                    "column {j} is {}, not {}",
                    col.data_type(),
                    kind.type_name()
                ))
            };
            let column: Cow<'_, [f32]> = match kind {
                ColumnKind::Numeric | ColumnKind::Indicator => {
                    let a = col.as_primitive_opt::<arrow_array::types::Float32Type>();
                    let a = a.ok_or_else(wrong)?;
                    match a.nulls().filter(|n| n.null_count() > 0) {
                        None => Cow::Borrowed(a.values()),
                        Some(n) => a
                            .values()
                            .iter()
                            .zip(n.iter())
                            .map(|(&v, ok)| if ok { v } else { f32::NAN })
                            .collect(),
                    }
                }
                ColumnKind::Boolean => {
                    let a = col.as_boolean_opt().ok_or_else(wrong)?;
                    a.iter()
                        .map(|v| v.map_or(f32::NAN, |b| if b { 1.0 } else { 0.0 }))
                        .collect()
                }
                ColumnKind::Categorical { categories } => {
                    dictionary_codes(col.as_ref(), &|s| categories.id_of(s))
                        .map_err(|m| damaged(format!("column {j}: {m}")))?
                        .into_iter()
                        .map(|c| c.map_or(f32::NAN, |c| c as f32))
                        .collect()
                }
            };
            columns.push(column);
        }
        let t = batch.column(d);
        let targets = match &self.labels {
            Some(table) => {
                let codes = dictionary_codes(t.as_ref(), &|s| table.id_of(s))
                    .map_err(|m| damaged(format!("the target: {m}")))?;
                let ids = codes
                    .into_iter()
                    .map(|c| c.ok_or_else(|| damaged("a missing label".into())))
                    .collect::<Result<Vec<u32>>>()?;
                ChunkTargets::Labels(ids)
            }
            None => {
                let a = t
                    .as_primitive_opt::<arrow_array::types::Float32Type>()
                    .filter(|a| a.null_count() == 0)
                    .ok_or_else(|| {
                        damaged(format!(
                            "the target is {}, not non-null Float32",
                            t.data_type()
                        ))
                    })?;
                if let Some(v) = a.values().iter().find(|v| !v.is_finite()) {
                    return Err(damaged(format!("a target value of {v}")));
                }
                ChunkTargets::Values(a.values().to_vec())
            }
        };
        let n = rows
            .checked_mul(d)
            .filter(|_| columns.iter().all(|c| c.len() == rows))
            .ok_or_else(|| damaged(format!("{rows} rows of {d} columns")))?;
        x.try_reserve(n)
            .map_err(|_| damaged(format!("{rows} rows of {d} columns do not fit in memory")))?;
        interleave(&columns, rows, x);
        Ok((rows, targets))
    }
}

/// Rows per block of [`to_columns`]: a block of a chunk's rows stays in the first-level
/// cache while each of its columns is read out.
const BLOCK_ROWS: usize = 64;

/// A row-major `rows x d` matrix as its `d` columns.
fn to_columns(x: &[f32], rows: usize, d: usize) -> Vec<Vec<f32>> {
    let mut columns = vec![vec![0f32; rows]; d];
    for r0 in (0..rows).step_by(BLOCK_ROWS) {
        let r1 = (r0 + BLOCK_ROWS).min(rows);
        for (j, c) in columns.iter_mut().enumerate() {
            for (o, i) in c[r0..r1].iter_mut().zip(r0..r1) {
                *o = x[i * d + j];
            }
        }
    }
    columns
}

/// Columns of `rows` cells appended to the row-major matrix `out`, a row at a time (the
/// writes sequential, each column read where it was left).
fn interleave(columns: &[Cow<'_, [f32]>], rows: usize, out: &mut Vec<f32>) {
    let columns: Vec<&[f32]> = columns.iter().map(|c| &c[..rows]).collect();
    for i in 0..rows {
        out.extend(columns.iter().map(|c| c[i]));
    }
}

/// The one record batch of a format-2 chunk. The IPC reader's own checks stand between
/// hostile bytes and the arrays (a chunk's hash proves only which bytes it is); a panic in
/// the reader is caught and reported as damage too.
pub fn read_batch(id: &ChunkId, bytes: &[u8]) -> Result<RecordBatch> {
    std::panic::catch_unwind(|| read_one_batch(id, bytes))
        .unwrap_or_else(|_| Err(damaged(id, "the Arrow reader cannot decode it".into())))
}

fn read_one_batch(id: &ChunkId, bytes: &[u8]) -> Result<RecordBatch> {
    let damaged = |m: String| damaged(id, m);
    let mut buf = Buffer::from(bytes);
    let mut decoder = arrow_ipc::reader::StreamDecoder::new();
    let mut batch = None;
    while !buf.is_empty() {
        let b = decoder
            .decode(&mut buf)
            .map_err(|e| damaged(format!("cannot decode: {e}")))?;
        if let Some(b) = b {
            if batch.replace(b).is_some() {
                return Err(damaged("more than one record batch".into()));
            }
        }
    }
    decoder
        .finish()
        .map_err(|e| damaged(format!("cannot decode: {e}")))?;
    batch.ok_or_else(|| damaged("no record batch".into()))
}

/// A dictionary column of `codes` (`None` missing) into `names`: the dictionary holds the
/// names the column uses, in code order.
fn dictionary_column(key: &DataType, codes: &[Option<u32>], names: &[String]) -> ArrayRef {
    let mut local = vec![u32::MAX; names.len()];
    for c in codes.iter().flatten() {
        local[*c as usize] = 0;
    }
    let mut used = Vec::new();
    for (c, l) in local.iter_mut().enumerate() {
        if *l == 0 {
            *l = used.len() as u32;
            used.push(names[c].as_str());
        }
    }
    let values: ArrayRef = Arc::new(StringArray::from_iter_values(used));
    let keys = codes.iter().map(|c| c.map(|c| local[c as usize]));
    match key {
        DataType::Int8 => dict::<Int8Type>(keys, values),
        DataType::Int16 => dict::<Int16Type>(keys, values),
        _ => dict::<Int32Type>(keys, values),
    }
}

fn dict<K>(keys: impl Iterator<Item = Option<u32>>, values: ArrayRef) -> ArrayRef
where
    K: ArrowPrimitiveType + arrow_array::types::ArrowDictionaryKeyType,
    K::Native: TryFrom<u32>,
    <K::Native as TryFrom<u32>>::Error: std::fmt::Debug,
{
    let keys: PrimitiveArray<K> = keys
        .map(|k| k.map(|k| K::Native::try_from(k).expect("key width fits the categories")))
        .collect();
    Arc::new(DictionaryArray::<K>::try_new(keys, values).expect("keys index the dictionary"))
}

/// Each cell of a dictionary-encoded text column as the code `code_of` gives its text
/// (`None` where the cell is null); an error names text `code_of` does not know.
fn dictionary_codes(
    col: &dyn Array,
    code_of: &dyn Fn(&str) -> Option<u32>,
) -> std::result::Result<Vec<Option<u32>>, String> {
    let dict = col
        .as_any_dictionary_opt()
        .ok_or_else(|| format!("{}, not dictionary-encoded text", col.data_type()))?;
    let values = dict
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| format!("a dictionary of {}, not Utf8", dict.values().data_type()))?;
    // A null in the dictionary is a missing cell, as a null key is.
    let map = (0..values.len())
        .map(|i| match values.is_valid(i).then(|| values.value(i)) {
            None => Ok(None),
            Some(s) => code_of(s)
                .map(Some)
                .ok_or_else(|| format!("the category {s:?} is not the dataset's")),
        })
        .collect::<std::result::Result<Vec<Option<u32>>, String>>()?;
    let nulls = dict.keys().logical_nulls();
    if map.is_empty() {
        // Every cell must be null (normalized_keys wants a non-empty dictionary).
        return match nulls {
            Some(n) if n.null_count() == col.len() => Ok(vec![None; col.len()]),
            _ if col.is_empty() => Ok(Vec::new()),
            _ => Err("keys into an empty dictionary".into()),
        };
    }
    let keys = dict.normalized_keys();
    keys.iter()
        .enumerate()
        .map(|(i, &k)| {
            if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                Ok(None)
            } else {
                map.get(k)
                    .copied()
                    .ok_or_else(|| format!("key {k} outside a dictionary of {}", map.len()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshml_models::dataset::LabelKind;
    use meshml_models::schema::Categories;

    fn layout(labels: bool) -> ChunkLayout {
        let cats =
            Categories::from_parts(vec!["a".into(), "b".into(), "c".into()], LabelKind::Text);
        ChunkLayout::new(
            &["x".into(), "colour".into(), "flag".into()],
            &[
                ColumnKind::Numeric,
                ColumnKind::Categorical { categories: cats },
                ColumnKind::Boolean,
            ],
            "y",
            labels.then(|| LabelTable::from_labels(&["yes".into(), "no".into()])),
        )
    }

    fn chunk(targets: ChunkTargets) -> Chunk {
        let nan = f32::NAN;
        Chunk {
            rows: 3,
            cols: 3,
            features: vec![1.5, 2.0, 1.0, nan, nan, 0.0, -0.0, 0.0, nan],
            targets,
        }
    }

    fn same(a: &Chunk, b: &Chunk) {
        assert_eq!((a.rows, a.cols, &a.targets), (b.rows, b.cols, &b.targets));
        let bits = |c: &Chunk| c.features.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // NaN and -0.0 come back bit for bit (a missing cell is the canonical NaN).
        assert_eq!(bits(a), bits(b));
    }

    #[test]
    fn arrow_round_trip_is_typed_and_checked() {
        let l = layout(true);
        let c = chunk(ChunkTargets::Labels(vec![1, 0, 1]));
        let bytes = l.encode(&c).unwrap();
        assert_eq!(format_of(&bytes), ARROW_FORMAT);
        let id = crate::chunk_id(&bytes);
        same(&l.decode(&id, &bytes).unwrap(), &c);
        // The batch is what any Arrow reader sees: typed, nullable, text as text.
        let b = read_batch(&id, &bytes).unwrap();
        assert_eq!(b.schema().field(0).name(), "x");
        assert_eq!(b.column(0).null_count(), 1);
        assert_eq!(b.schema().field(1).data_type(), &dictionary(DataType::Int8));
        let colour = b.column(1).as_dictionary::<Int8Type>();
        let used: Vec<&str> = colour
            .values()
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(
            used,
            ["a", "c"],
            "only the categories the chunk uses, in order"
        );
        assert_eq!(colour.null_count(), 1);
        assert!(!b.column(2).as_boolean().value(1));
        assert_eq!(b.column(2).null_count(), 1);
        let y = b.column(3).as_dictionary::<Int32Type>();
        assert_eq!(y.values().as_string::<i32>().value(0), "yes");
        // Deterministic: the same rows give the same bytes (and so the same id).
        assert_eq!(l.encode(&c).unwrap(), bytes);
        // Truncated bytes are damage, not a panic.
        let e = l
            .decode(&id, &bytes[..bytes.len() - 9])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is corrupt"), "{e}");
        // Regression targets.
        let l = layout(false);
        let c = chunk(ChunkTargets::Values(vec![0.5, -1.0, 2.0]));
        let bytes = l.encode(&c).unwrap();
        same(&l.decode(&id, &bytes).unwrap(), &c);
    }

    #[test]
    fn a_chunk_of_another_layout_is_damage() {
        let c = chunk(ChunkTargets::Labels(vec![1, 0, 1]));
        let bytes = layout(true).encode(&c).unwrap();
        let id = crate::chunk_id(&bytes);
        // Regression layout reading a classification chunk.
        let e = layout(false).decode(&id, &bytes).unwrap_err().to_string();
        assert!(e.contains("the target is"), "{e}");
        // A layout whose categories lack one the chunk holds.
        let fewer = Categories::from_parts(vec!["a".into(), "b".into()], LabelKind::Text);
        let l = ChunkLayout::new(
            &["x".into(), "colour".into(), "flag".into()],
            &[
                ColumnKind::Numeric,
                ColumnKind::Categorical { categories: fewer },
                ColumnKind::Boolean,
            ],
            "y",
            Some(LabelTable::from_labels(&["yes".into(), "no".into()])),
        );
        let e = l.decode(&id, &bytes).unwrap_err().to_string();
        assert!(e.contains("column 1: the category \"c\""), "{e}");
        // Numbers where a category belongs.
        let e = ChunkLayout::new(
            &["x".into(), "colour".into(), "flag".into()],
            &vec![ColumnKind::Numeric; 3],
            "y",
            Some(LabelTable::from_labels(&["yes".into(), "no".into()])),
        )
        .decode(&id, &bytes)
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("column 1 is Dictionary(Int8, Utf8), not numeric"),
            "{e}"
        );
        // A code outside the categories is refused at encode time.
        let mut bad = c.clone();
        bad.features[1] = 3.0;
        assert!(layout(true).encode(&bad).is_err());
    }

    fn ipc(batch: &RecordBatch) -> Vec<u8> {
        let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).unwrap();
        w.write(batch).unwrap();
        w.finish().unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn wide_categories_get_wider_keys_and_labels_can_arrive_late() {
        let many: Vec<String> = (0..200).map(|i| format!("c{i:03}")).collect();
        let cats = Categories::from_parts(many, LabelKind::Text);
        let mut l = ChunkLayout::new(
            &["wide".into()],
            &[ColumnKind::Categorical { categories: cats }],
            "y",
            Some(LabelTable::from_labels(&["first".into()])),
        );
        assert_eq!(
            l.schema().field(0).data_type(),
            &dictionary(DataType::Int16)
        );
        let c1 = Chunk {
            rows: 2,
            cols: 1,
            features: vec![199.0, 3.0],
            targets: ChunkTargets::Labels(vec![0, 0]),
        };
        let b1 = l.encode(&c1).unwrap();
        // A label first seen in the second chunk.
        assert_eq!(l.labels_mut().unwrap().intern("later", 9), 1);
        let c2 = Chunk {
            targets: ChunkTargets::Labels(vec![1, 0]),
            ..c1.clone()
        };
        let b2 = l.encode(&c2).unwrap();
        let id = crate::chunk_id(&b2);
        // Both decode with the final table; the first chunk's bytes did not depend on it.
        same(&l.decode(&id, &b1).unwrap(), &c1);
        same(&l.decode(&id, &b2).unwrap(), &c2);
        assert_eq!(l.encode(&c1).unwrap(), b1);
        // Decoding appends to a matrix, and leaves it as it was on an error.
        let mut x = vec![7.0];
        let (rows, _) = l.decode_into(&id, &b1, &mut x).unwrap();
        assert_eq!((rows, x), (2, vec![7.0, 199.0, 3.0]));
        let mut x = vec![7.0];
        assert!(layout(true).decode_into(&id, &b1, &mut x).is_err());
        assert_eq!(x, [7.0]);
        // An empty chunk is a chunk of no rows.
        let empty = Chunk {
            rows: 0,
            cols: 1,
            features: vec![],
            targets: ChunkTargets::Labels(vec![]),
        };
        same(&l.decode(&id, &l.encode(&empty).unwrap()).unwrap(), &empty);
    }

    #[test]
    fn hostile_batches_are_damage_before_any_allocation() {
        use arrow_array::NullArray;
        // Null columns need no buffers, so a batch can claim any length: refused by type
        // before the matrix is sized by it.
        let fields: Vec<Field> = ["x", "colour", "flag", "y"]
            .iter()
            .map(|n| Field::new(*n, DataType::Null, true))
            .collect();
        let huge = 1usize << 40;
        let cols: Vec<ArrayRef> = (0..4)
            .map(|_| Arc::new(NullArray::new(huge)) as ArrayRef)
            .collect();
        let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        let bytes = ipc(&b);
        let id = crate::chunk_id(&bytes);
        let mut x = Vec::new();
        let e = layout(true).decode_into(&id, &bytes, &mut x).unwrap_err();
        assert!(
            e.to_string().contains("column 0 is Null, not numeric"),
            "{e}"
        );
        assert_eq!(x.capacity(), 0);
        // A regression target must be finite.
        let l = layout(false);
        let c = chunk(ChunkTargets::Values(vec![0.5, f32::INFINITY, 2.0]));
        let bad = ipc(&l.batch(&c).unwrap());
        let e = l.decode(&id, &bad).unwrap_err().to_string();
        assert!(e.contains("a target value of inf"), "{e}");
        // A null in a dictionary (pyarrow's null_encoding="encode") is a missing cell.
        let keys = arrow_array::Int8Array::from(vec![0, 1, 1]);
        let values: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), None]));
        let colour: ArrayRef = Arc::new(DictionaryArray::try_new(keys, values).unwrap());
        let c = chunk(ChunkTargets::Labels(vec![1, 0, 1]));
        let mut b = l.batch(&chunk(ChunkTargets::Values(vec![0.0; 3]))).unwrap();
        b = RecordBatch::try_new(
            layout(true).schema().clone(),
            vec![
                b.column(0).clone(),
                colour,
                b.column(2).clone(),
                layout(true).batch(&c).unwrap().column(3).clone(),
            ],
        )
        .unwrap();
        let got = layout(true).decode(&id, &ipc(&b)).unwrap();
        let colour: Vec<f32> = got.features.iter().skip(1).step_by(3).copied().collect();
        assert_eq!(colour[0], 1.0);
        assert!(colour[1].is_nan() && colour[2].is_nan());
        // A boolean column holds 0, 1 or missing only.
        let mut odd = chunk(ChunkTargets::Labels(vec![1, 0, 1]));
        odd.features[2] = 2.0;
        let e = layout(true).encode(&odd).unwrap_err().to_string();
        assert!(e.contains("2 in boolean column 2"), "{e}");
    }

    #[test]
    fn a_chunk_written_by_pyarrow_decodes() {
        // tools/make_fixtures.py: the rows of `chunk()` with labels no, yes, no.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/chunk_pyarrow.arrows"
        );
        let bytes = std::fs::read(path).unwrap();
        let id = crate::chunk_id(&bytes);
        same(
            &layout(true).decode(&id, &bytes).unwrap(),
            &chunk(ChunkTargets::Labels(vec![1, 0, 1])),
        );
    }

    #[test]
    fn format_one_still_reads() {
        let c = chunk(ChunkTargets::Labels(vec![1, 0, 1]));
        let bytes = c.encode_rows();
        assert_eq!(format_of(&bytes), ROWS_FORMAT);
        let id = crate::chunk_id(&bytes);
        let old = layout(true).in_format(ROWS_FORMAT);
        same(&old.decode(&id, &bytes).unwrap(), &c);
        // Each chunk must be in its dataset's format.
        let e = layout(true).decode(&id, &bytes).unwrap_err().to_string();
        assert!(
            e.contains("a format-1 chunk in a dataset of format 2"),
            "{e}"
        );
        let arrow = layout(true).encode(&c).unwrap();
        assert!(old.decode(&id, &arrow).is_err());
        // Payloads are raw bytes (bin), not arrays of integers.
        assert!(bytes.windows(4).any(|w| w == 1.5f32.to_le_bytes()));
        let e = Chunk::decode_rows(&id, &bytes[..bytes.len() - 3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is corrupt: cannot decode"), "{e}");
    }
}

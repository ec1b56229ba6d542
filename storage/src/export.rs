//! Writing datasets and predictions as CSV (Spark's `saveAsTextFile`), chunk by chunk.

use std::io::Write;

use crate::catalog::{DatasetManifest, Store, TargetSchema};
use crate::encoding::ChunkTargets;
use crate::error::{Result, StorageError};

fn csv_err(e: csv::Error) -> StorageError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => StorageError::io("output", io),
        other => StorageError::io("output", std::io::Error::other(format!("{other:?}"))),
    }
}

/// Writes dataset `name` as CSV: a header of the feature names then the target, and every
/// row in order. Numbers are written in their shortest form that reads back to the same
/// `f32`; labels exactly as they were ingested. Reads one chunk at a time.
pub fn export_csv(store: &Store, name: &str, out: impl Write) -> Result<DatasetManifest> {
    let m = store.dataset(name)?;
    let mut w = csv::Writer::from_writer(out);
    let mut header = m.feature_names.clone();
    header.push(m.target_name.clone());
    w.write_record(&header).map_err(csv_err)?;
    let mut record: Vec<String> = Vec::with_capacity(header.len());
    for i in 0..m.chunks.len() {
        let c = store.read_chunk(&m, i)?;
        for r in 0..c.rows {
            record.clear();
            record.extend(
                c.features[r * c.cols..(r + 1) * c.cols]
                    .iter()
                    .map(f32::to_string),
            );
            record.push(match (&c.targets, &m.target) {
                (ChunkTargets::Labels(l), TargetSchema::Classes { label_table, .. }) => label_table
                    .get(l[r] as usize)
                    .cloned()
                    .ok_or_else(|| StorageError::Record {
                        what: format!("dataset '{name}'"),
                        message: format!("label id {} outside the label table", l[r]),
                    })?,
                (ChunkTargets::Values(v), TargetSchema::Values) => v[r].to_string(),
                _ => {
                    return Err(StorageError::Record {
                        what: format!("dataset '{name}'"),
                        message: "chunk targets do not match the manifest".into(),
                    })
                }
            });
            w.write_record(&record).map_err(csv_err)?;
        }
    }
    w.flush().map_err(|e| StorageError::io("output", e))?;
    Ok(m)
}

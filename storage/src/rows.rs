//! Row sources: a stream of parsed rows, what the CSV reader and the Parquet reader
//! ([`crate::parquet_rows`]) give the chunk writer ([`crate::ingest`]).

use std::io::Read;

use meshml_models::io::{CsvRows, RawTarget};
use meshml_models::schema::ColumnKind;

use crate::error::Result;

/// A stream of parsed rows: what CSV and Parquet readers give the chunk writer.
pub trait RowSource {
    /// Feature column names.
    fn feature_names(&self) -> Vec<String>;
    /// Target column name.
    fn target_name(&self) -> &str;
    /// 0-based position of the target column.
    fn target_col(&self) -> usize;
    /// Number of feature columns.
    fn n_features(&self) -> usize;
    /// Input bytes consumed so far (estimated where the format does not tell).
    fn bytes_read(&self) -> u64;
    /// Appends the next row's features to `x` and returns its line (or row) number and
    /// target; `None` at the end.
    fn next_into(&mut self, x: &mut Vec<f32>) -> Result<Option<(u64, RawTarget)>>;
    /// The kind of each feature column (all numeric unless the source says otherwise).
    fn kinds(&self) -> Vec<ColumnKind> {
        vec![ColumnKind::Numeric; self.n_features()]
    }
}

impl<R: Read> RowSource for CsvRows<R> {
    fn feature_names(&self) -> Vec<String> {
        CsvRows::feature_names(self)
    }
    fn target_name(&self) -> &str {
        CsvRows::target_name(self)
    }
    fn target_col(&self) -> usize {
        CsvRows::target_col(self)
    }
    fn n_features(&self) -> usize {
        CsvRows::n_features(self)
    }
    fn bytes_read(&self) -> u64 {
        CsvRows::bytes_read(self)
    }
    fn next_into(&mut self, x: &mut Vec<f32>) -> Result<Option<(u64, RawTarget)>> {
        Ok(CsvRows::next_into(self, x)?)
    }
    fn kinds(&self) -> Vec<ColumnKind> {
        CsvRows::kinds(self)
    }
}

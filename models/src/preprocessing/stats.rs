//! Per-column counts that the imputer and the encoders learn from: sums over rows, so an
//! in-memory fit computes them in one scan and a data-parallel fit merges them over chunks
//! ([`crate::parallel::PassOp::ColumnStats`]).

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};

/// Rows, and per column: missing cells, the sum of a numeric column's present cells, and a
/// categorical (or boolean) column's rows per category code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// Rows.
    pub n: u64,
    /// Missing cells per column.
    pub missing: Vec<u64>,
    /// Per numeric column, the sum of its present cells (0 for the others).
    pub sum: Vec<f64>,
    /// Per categorical column, rows per category code (empty for a numeric column).
    pub counts: Vec<Vec<u64>>,
}

/// The categories of one column seen in training: the codes present (ascending) and how
/// often, and the count of missing cells.
pub(crate) struct Seen {
    pub(crate) codes: Vec<u32>,
    pub(crate) counts: Vec<u64>,
    pub(crate) missing: u64,
}

impl ColumnStats {
    /// The statistics of `data`'s rows, in one scan.
    pub fn of(data: &Dataset) -> Self {
        let d = data.n_features();
        let cats: Vec<Option<usize>> = (0..d)
            .map(|j| data.kind(j).categories().map(|c| c.len()))
            .collect();
        let mut s = ColumnStats {
            n: data.n_samples() as u64,
            missing: vec![0; d],
            sum: vec![0.0; d],
            counts: cats.iter().map(|c| vec![0; c.unwrap_or(0)]).collect(),
        };
        for row in data.x().data().chunks_exact(d.max(1)) {
            for (j, &v) in row.iter().enumerate() {
                if v.is_nan() {
                    s.missing[j] += 1;
                } else if cats[j].is_some() {
                    // Codes are checked against the schema when a chunk is decoded.
                    if let Some(c) = s.counts[j].get_mut(v as usize).filter(|_| v >= 0.0) {
                        *c += 1;
                    }
                } else {
                    s.sum[j] += f64::from(v);
                }
            }
        }
        s
    }

    /// Adds another block's.
    pub fn merge(&mut self, o: &ColumnStats) -> Result<()> {
        let shapes = |s: &ColumnStats| s.counts.iter().map(Vec::len).collect::<Vec<_>>();
        if self.missing.len() != o.missing.len()
            || shapes(self) != shapes(o)
            || [self, o]
                .iter()
                .any(|s| s.sum.len() != s.missing.len() || s.counts.len() != s.missing.len())
        {
            return Err(ModelError::Shape(
                "column statistics of other columns".into(),
            ));
        }
        self.n += o.n;
        for j in 0..self.missing.len() {
            self.missing[j] += o.missing[j];
            self.sum[j] += o.sum[j];
            for (a, b) in self.counts[j].iter_mut().zip(&o.counts[j]) {
                *a += b;
            }
        }
        Ok(())
    }

    /// Checks that the statistics are of `schema`'s columns (they may come from another
    /// node): one entry per column, a count per category, no more missing cells or
    /// counted categories than rows.
    pub fn check(&self, schema: &Dataset) -> Result<()> {
        let d = schema.n_features();
        let bad = || ModelError::Shape("column statistics of other columns".into());
        if self.missing.len() != d || self.sum.len() != d || self.counts.len() != d {
            return Err(bad());
        }
        for j in 0..d {
            let cats = schema.kind(j).categories().map_or(0, |c| c.len());
            if self.counts[j].len() != cats
                || self.missing[j] > self.n
                || self.counts[j].iter().sum::<u64>() > self.n - self.missing[j]
            {
                return Err(bad());
            }
        }
        Ok(())
    }

    /// Present cells of column `j`.
    pub(crate) fn present(&self, j: usize) -> u64 {
        self.n - self.missing[j]
    }

    /// The categories column `j` holds.
    pub(crate) fn seen(&self, j: usize) -> Seen {
        let all = &self.counts[j];
        let codes: Vec<u32> = (0..all.len() as u32)
            .filter(|&c| all[c as usize] > 0)
            .collect();
        Seen {
            counts: codes.iter().map(|&c| all[c as usize]).collect(),
            codes,
            missing: self.missing[j],
        }
    }
}

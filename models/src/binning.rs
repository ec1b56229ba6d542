//! Histogram binning: every column mapped to at most 255 small integers, the input of
//! histogram-based trees and gradient boosting (issue 18).
//!
//! A numeric column's thresholds are scikit-learn's (`_BinMapper`): with at most `max_bins`
//! distinct values, the midpoints between consecutive ones; with more, the quantiles at
//! `1/max_bins, 2/max_bins, ...` by numpy's `averaged_inverted_cdf` rule, duplicates
//! dropped. A value `v` goes to bin `i` when `thresholds[i - 1] < v <= thresholds[i]`.
//! A categorical column's bins are its category codes. Missing cells go to the last bin,
//! `max_bins`, whatever the column. Thresholds are computed in `f64` from the `f32` cells,
//! as scikit-learn computes them from the same cells as `float64`: the same thresholds and
//! bins (`models/tests/it/binning_parity.rs`).
//!
//! Above `subsample` rows (scikit-learn's default 200,000) the thresholds come from a
//! sample of about that many rows, picked by a hash of each row's values and the seed (as
//! k-means picks its starts' sample), not by scikit-learn's draw with replacement: the same
//! rows whatever the chunks, so a data-parallel fit can bin as the in-memory one does.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::schema::ColumnKind;

/// The most bins a column's non-missing values may take (one more holds missing cells).
pub const MAX_BINS: usize = 255;

/// Rows the thresholds are computed from by default (scikit-learn's `subsample`).
pub const DEFAULT_SUBSAMPLE: usize = 200_000;

/// scikit-learn clips thresholds to this (`ALMOST_INF`).
const ALMOST_INF: f64 = 1e300;

/// How one column maps to bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnBins {
    /// Increasing upper bounds of the bins but the last non-missing one.
    Numeric(Vec<f64>),
    /// One bin per category code.
    Categorical(u32),
}

impl ColumnBins {
    /// Bins its non-missing values take.
    pub fn n_bins_non_missing(&self) -> usize {
        match self {
            ColumnBins::Numeric(t) => t.len() + 1,
            ColumnBins::Categorical(n) => *n as usize,
        }
    }

    /// The bin of one cell (`missing` for a missing one).
    pub fn bin(&self, v: f32, missing: u8) -> u8 {
        if v.is_nan() {
            return missing;
        }
        match self {
            // The first threshold at or above the value: its index is the bin.
            ColumnBins::Numeric(t) => t.partition_point(|&th| th < f64::from(v)) as u8,
            // A code past the known categories (unseen at fit) reads as missing.
            ColumnBins::Categorical(n) => {
                if v >= 0.0 && (v as u32) < *n {
                    v as u8
                } else {
                    missing
                }
            }
        }
    }
}

/// Maps columns to bins (scikit-learn's `_BinMapper`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinMapper {
    columns: Vec<ColumnBins>,
    max_bins: u8,
}

/// A matrix of bins, column by column (what histograms are built from).
#[derive(Debug, Clone, PartialEq)]
pub struct Binned {
    rows: usize,
    cols: usize,
    /// Column `j` is `data[j * rows..(j + 1) * rows]`.
    data: Vec<u8>,
}

impl Binned {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The bins row by row: row `r`'s are `[r * cols..(r + 1) * cols]` (what histograms
    /// are summed from, a row's bins read together).
    pub fn row_major(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.rows * self.cols];
        for j in 0..self.cols {
            for (i, &b) in self.column(j).iter().enumerate() {
                out[i * self.cols + j] = b;
            }
        }
        out
    }

    /// The bins of column `j`.
    pub fn column(&self, j: usize) -> &[u8] {
        &self.data[j * self.rows..(j + 1) * self.rows]
    }
}

impl BinMapper {
    /// Thresholds for every column of `x` (of kinds `kinds`) into at most `max_bins` bins
    /// (2..=255) each plus the missing bin; the quantiles from a sample of about
    /// `subsample` rows when there are more (see the module docs), drawn with `seed`.
    pub fn fit(
        x: &Matrix,
        kinds: &[ColumnKind],
        max_bins: usize,
        subsample: Option<usize>,
        seed: u64,
    ) -> Result<Self> {
        if !(2..=MAX_BINS).contains(&max_bins) {
            return Err(ModelError::param(
                "binning",
                "max_bins",
                format!("must be between 2 and {MAX_BINS}, got {max_bins}"),
            ));
        }
        if kinds.len() != x.cols() {
            return Err(ModelError::Shape(format!(
                "{} column kinds for {} columns",
                kinds.len(),
                x.cols()
            )));
        }
        let (n, d) = (x.rows(), x.cols());
        let rows: Vec<usize> = match subsample {
            Some(s) if n > s => {
                let keys = crate::cluster::row_keys(x);
                let cut = (s as f64 / n as f64 * u64::MAX as f64) as u64;
                (0..n)
                    .filter(|&i| crate::cluster::seeded(keys[i], seed) <= cut)
                    .collect()
            }
            _ => (0..n).collect(),
        };
        let xd = x.data();
        let xd: &[f32] = &xd;
        let column = |j: usize| -> Result<ColumnBins> {
            Ok(match kinds[j].categories() {
                Some(c) => {
                    if c.len() > max_bins {
                        return Err(ModelError::data(
                            "binning",
                            format!(
                                "categorical column {j} has {} categories, more than \
                                 max_bins={max_bins}; encode it (ordinal_encoder) or raise \
                                 max_bins up to {MAX_BINS}",
                                c.len()
                            ),
                        ));
                    }
                    ColumnBins::Categorical(c.len() as u32)
                }
                None => {
                    let mut values: Vec<f64> = rows
                        .iter()
                        .map(|&i| xd[i * d + j])
                        .filter(|v| !v.is_nan())
                        .map(f64::from)
                        .collect();
                    ColumnBins::Numeric(thresholds(&mut values, max_bins))
                }
            })
        };
        // Columns sort apart: spread over threads, every `threads`-th to each.
        let threads = crate::parallel_threads(rows.len() * d).min(d.max(1));
        let mut found: Vec<(usize, Result<ColumnBins>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        (t..d)
                            .step_by(threads)
                            .map(|j| (j, column(j)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        found.sort_by_key(|(j, _)| *j);
        let columns = found
            .into_iter()
            .map(|(_, c)| c)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            columns,
            max_bins: max_bins as u8,
        })
    }

    /// The bin missing cells go to (`max_bins`, the same for every column).
    pub fn missing_bin(&self) -> u8 {
        self.max_bins
    }

    /// Every column's bins.
    pub fn columns(&self) -> &[ColumnBins] {
        &self.columns
    }

    /// The bins of every cell of `x`.
    pub fn transform(&self, x: &Matrix) -> Result<Binned> {
        let (n, d) = (x.rows(), x.cols());
        if d != self.columns.len() {
            return Err(ModelError::Shape(format!(
                "binning: {d} columns, fitted on {}",
                self.columns.len()
            )));
        }
        let xd = x.data();
        let xd: &[f32] = &xd;
        let mut data = vec![0u8; n * d];
        let threads = crate::parallel_threads(n * d).min(d.max(1));
        let per = d.div_ceil(threads).max(1);
        let max_bins = self.max_bins;
        if n > 0 {
            std::thread::scope(|s| {
                for (t, out) in data.chunks_mut(per * n).enumerate() {
                    let columns = &self.columns;
                    s.spawn(move || {
                        for (k, out) in out.chunks_mut(n).enumerate() {
                            let j = t * per + k;
                            let c = &columns[j];
                            for (i, b) in out.iter_mut().enumerate() {
                                *b = c.bin(xd[i * d + j], max_bins);
                            }
                        }
                    });
                }
            });
        }
        Ok(Binned {
            rows: n,
            cols: d,
            data,
        })
    }
}

/// A numeric column's thresholds from its non-missing `values` (sorted here), as
/// scikit-learn's `_find_binning_thresholds`.
pub fn thresholds(values: &mut [f64], max_bins: usize) -> Vec<f64> {
    values.sort_unstable_by(f64::total_cmp);
    let mut distinct: Vec<f64> = values.to_vec();
    distinct.dedup();
    if distinct.len() <= 1 {
        return Vec::new();
    }
    let mut t: Vec<f64> = if distinct.len() <= max_bins {
        distinct.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect()
    } else {
        // numpy's percentiles at linspace(0, 100, max_bins + 1)[1..-1], method
        // averaged_inverted_cdf: virtual index n*q - 1; on an integer index the mean of
        // the two neighbours (numpy's lerp at 0.5), else the next value.
        let n = values.len();
        let step = 100.0 / max_bins as f64;
        (1..max_bins)
            .map(|i| {
                let q = (i as f64 * step) / 100.0;
                let v = n as f64 * q - 1.0;
                let lo = v.floor();
                let below = (lo.max(0.0) as usize).min(n - 1);
                let above = (below + 1).min(n - 1);
                let (a, b) = (values[below], values[above]);
                if v - lo == 0.0 {
                    b - (b - a) * 0.5
                } else {
                    b
                }
            })
            .collect()
    };
    t.dedup();
    for v in &mut t {
        *v = v.min(ALMOST_INF);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_split_at_midpoints_and_missing_goes_last() {
        let x = Matrix::from_vec(5, 1, vec![1.0, 3.0, f32::NAN, 3.0, 2.0]).unwrap();
        let m = BinMapper::fit(&x, &[ColumnKind::Numeric], 255, None, 0).unwrap();
        assert_eq!(m.columns()[0], ColumnBins::Numeric(vec![1.5, 2.5]));
        let b = m.transform(&x).unwrap();
        assert_eq!(b.column(0), [0, 2, 255, 2, 1]);
    }

    #[test]
    fn many_values_split_at_quantiles() {
        // 1..=8 into 4 bins: the 25th, 50th and 75th percentiles fall on whole indices
        // (2, 4, 6), so each is the mean of two neighbours.
        let mut v: Vec<f64> = (1..=8).map(f64::from).collect();
        assert_eq!(thresholds(&mut v, 4), [2.5, 4.5, 6.5]);
        // 1..=10 into 4 bins: 2.5, 5 and 7.5 rows: the next value up.
        let mut v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(thresholds(&mut v, 4), [3.0, 5.5, 8.0]);
        assert!(thresholds(&mut [4.0, 4.0], 4).is_empty());
    }

    #[test]
    fn categories_are_their_own_bins_and_too_many_are_refused() {
        let kinds = [ColumnKind::Categorical {
            categories: crate::dataset::Classes::from_labels(&["a", "b", "c"]),
        }];
        let x = Matrix::from_vec(4, 1, vec![2.0, 0.0, f32::NAN, 1.0]).unwrap();
        let m = BinMapper::fit(&x, &kinds, 255, None, 0).unwrap();
        assert_eq!(m.transform(&x).unwrap().column(0), [2, 0, 255, 1]);
        let e = BinMapper::fit(&x, &kinds, 2, None, 0).unwrap_err();
        assert!(e.to_string().contains("3 categories"), "{e}");
        assert!(BinMapper::fit(&x, &kinds, 256, None, 0).is_err());
    }
}

//! Gradient histograms over binned columns, what a histogram tree chooses its splits from
//! (issue 18): per column and bin, the sums of the rows' gradients and hessians and the
//! rows counted, as scikit-learn's `HISTOGRAM_DTYPE` (sums in `f64` of `f32` gradients).
//!
//! A node's histograms are built from its rows, or for the larger child of a split as the
//! parent's minus the smaller child's (scikit-learn's subtraction trick); histograms of the
//! same node built over different row blocks (chunks) merge by adding.

use serde::{Deserialize, Serialize};

use crate::binning::Binned;
use crate::error::{ModelError, Result};

/// One bin's sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Sum of the gradients.
    pub g: f64,
    /// Sum of the hessians (unset when the loss's hessian is constant: then `count` is
    /// what splits read).
    pub h: f64,
    /// Rows.
    pub count: u32,
}

/// Every column's histogram for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    n_bins: usize,
    /// Column `j`'s bins are `bins[j * n_bins..(j + 1) * n_bins]`.
    bins: Vec<Bin>,
}

impl Histograms {
    /// The histograms of `rows` of `binned` (`n_bins` per column, the missing bin
    /// included), with the rows' `gradients` and, unless the hessian is constant, their
    /// `hessians` (both indexed by row).
    pub fn build(
        binned: &Binned,
        rows: &[u32],
        gradients: &[f32],
        hessians: Option<&[f32]>,
        n_bins: usize,
    ) -> Result<Self> {
        let n = binned.rows();
        if gradients.len() != n || hessians.is_some_and(|h| h.len() != n) {
            return Err(ModelError::Shape(format!(
                "{} gradients for {n} rows",
                gradients.len()
            )));
        }
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= n) {
            return Err(ModelError::Shape(format!("row {bad} of {n}")));
        }
        let cols = binned.cols();
        let mut bins = vec![Bin::default(); cols * n_bins];
        for j in 0..cols {
            let column = binned.column(j);
            let hist = &mut bins[j * n_bins..(j + 1) * n_bins];
            if let Some(&b) = rows
                .iter()
                .map(|&r| &column[r as usize])
                .find(|&&b| usize::from(b) >= n_bins)
            {
                return Err(ModelError::Shape(format!(
                    "bin {b} of column {j}, past {n_bins} bins"
                )));
            }
            match hessians {
                Some(h) => {
                    for &r in rows {
                        let r = r as usize;
                        let bin = &mut hist[usize::from(column[r])];
                        bin.g += f64::from(gradients[r]);
                        bin.h += f64::from(h[r]);
                        bin.count += 1;
                    }
                }
                None => {
                    for &r in rows {
                        let r = r as usize;
                        let bin = &mut hist[usize::from(column[r])];
                        bin.g += f64::from(gradients[r]);
                        bin.count += 1;
                    }
                }
            }
        }
        Ok(Self { n_bins, bins })
    }

    /// Bins per column.
    pub fn n_bins(&self) -> usize {
        self.n_bins
    }

    /// Column `j`'s histogram.
    pub fn column(&self, j: usize) -> &[Bin] {
        &self.bins[j * self.n_bins..(j + 1) * self.n_bins]
    }

    /// The other child's histograms: this node's (the parent's) minus one child's.
    pub fn minus(&self, child: &Histograms) -> Result<Histograms> {
        self.same_shape(child)?;
        let mut bins = self.bins.clone();
        for (p, c) in bins.iter_mut().zip(&child.bins) {
            if c.count > p.count {
                return Err(ModelError::data(
                    "histograms",
                    "a child with more rows than its parent",
                ));
            }
            p.g -= c.g;
            p.h -= c.h;
            p.count -= c.count;
        }
        Ok(Histograms {
            n_bins: self.n_bins,
            bins,
        })
    }

    /// Adds the histograms of the same node over other rows (another chunk's).
    pub fn merge(&mut self, other: &Histograms) -> Result<()> {
        self.same_shape(other)?;
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            a.g += b.g;
            a.h += b.h;
            a.count = a
                .count
                .checked_add(b.count)
                .ok_or_else(|| ModelError::data("histograms", "more than 2^32 rows in one node"))?;
        }
        Ok(())
    }

    fn same_shape(&self, o: &Histograms) -> Result<()> {
        if self.n_bins != o.n_bins || self.bins.len() != o.bins.len() {
            return Err(ModelError::Shape(format!(
                "histograms of {} x {} bins and {} x {}",
                self.bins.len() / self.n_bins.max(1),
                self.n_bins,
                o.bins.len() / o.n_bins.max(1),
                o.n_bins
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binning::BinMapper;
    use crate::matrix::Matrix;
    use crate::schema::ColumnKind;

    fn data() -> (Binned, Vec<f32>, Vec<f32>) {
        let n = 200;
        let x: Vec<f32> = (0..n * 2)
            .map(|i| {
                if i % 37 == 0 {
                    f32::NAN
                } else {
                    ((i * 13) % 29) as f32
                }
            })
            .collect();
        let x = Matrix::from_vec(n, 2, x).unwrap();
        let m =
            BinMapper::fit(&x, &[ColumnKind::Numeric, ColumnKind::Numeric], 8, None, 0).unwrap();
        let g = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let h = (0..n).map(|i| 0.5 + (i % 3) as f32).collect();
        (m.transform(&x).unwrap(), g, h)
    }

    #[test]
    fn sums_per_bin_subtract_and_merge() {
        let (b, g, h) = data();
        let all: Vec<u32> = (0..200).collect();
        let whole = Histograms::build(&b, &all, &g, Some(&h), 9).unwrap();
        // Each column's bins add up to every row's gradient, and each bin to its rows'.
        for j in 0..2 {
            let col = whole.column(j);
            assert_eq!(col.iter().map(|b| b.count).sum::<u32>(), 200);
            for (k, bin) in col.iter().enumerate() {
                let rows: Vec<usize> = (0..200)
                    .filter(|&r| usize::from(b.column(j)[r]) == k)
                    .collect();
                assert_eq!(bin.count as usize, rows.len());
                let want: f64 = rows.iter().map(|&r| f64::from(g[r])).sum();
                assert!((bin.g - want).abs() < 1e-9, "{j} {k}");
                let want: f64 = rows.iter().map(|&r| f64::from(h[r])).sum();
                assert!((bin.h - want).abs() < 1e-9, "{j} {k}");
            }
            // The missing bin holds the NaN cells.
            assert!(col[8].count > 0);
        }
        // The larger child as the parent minus the smaller; a node over two blocks as the
        // sum of the blocks'.
        let (left, right): (Vec<u32>, Vec<u32>) = all.iter().partition(|&&r| r % 3 == 0);
        let l = Histograms::build(&b, &left, &g, Some(&h), 9).unwrap();
        let r = Histograms::build(&b, &right, &g, Some(&h), 9).unwrap();
        let derived = whole.minus(&l).unwrap();
        let mut merged = l.clone();
        merged.merge(&r).unwrap();
        for j in 0..2 {
            for (d, want) in derived.column(j).iter().zip(r.column(j)) {
                assert_eq!(d.count, want.count);
                assert!((d.g - want.g).abs() < 1e-9 && (d.h - want.h).abs() < 1e-9);
            }
            for (m, w) in merged.column(j).iter().zip(whole.column(j)) {
                assert_eq!(m.count, w.count);
                assert!((m.g - w.g).abs() < 1e-9);
            }
        }
        // A constant hessian leaves the sums of hessians unset.
        let c = Histograms::build(&b, &all, &g, None, 9).unwrap();
        assert!(c.column(0).iter().all(|b| b.h == 0.0));
        // Shapes are checked.
        assert!(Histograms::build(&b, &[200], &g, None, 9).is_err());
        assert!(Histograms::build(&b, &all, &g[1..], None, 9).is_err());
        assert!(Histograms::build(&b, &all, &g, None, 8).is_err());
        assert!(l.minus(&whole).is_err());
    }
}

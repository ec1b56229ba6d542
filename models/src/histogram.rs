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
        let identity = rows.len() == n && rows.iter().enumerate().all(|(i, &r)| r as usize == i);
        let ordered = |v: &[f32]| -> Vec<f32> { rows.iter().map(|&r| v[r as usize]).collect() };
        let og = ordered(gradients);
        let oh = hessians.map(ordered);
        let by_row = binned.row_major();
        Self::from_rows(
            &by_row,
            binned.cols(),
            rows,
            identity,
            &og,
            oh.as_deref(),
            n_bins,
        )
    }

    /// [`Histograms::build`] from the bins row by row (`by_row[r * cols + j]`, see
    /// [`Binned::row_major`]) and the gradients (and hessians) already in the order of
    /// `rows` (`og[i]` is row `rows[i]`'s); `identity` says `rows` is every row in order.
    pub(crate) fn from_rows(
        by_row: &[u8],
        cols: usize,
        rows: &[u32],
        identity: bool,
        og: &[f32],
        oh: Option<&[f32]>,
        n_bins: usize,
    ) -> Result<Self> {
        if n_bins == 0 || n_bins > 256 {
            return Err(ModelError::Shape(format!("{n_bins} bins per column")));
        }
        let mut full = Self::zeroed(cols);
        full.fill(by_row, rows, identity, og, oh, usize::MAX);
        if n_bins == 256 {
            return Ok(full);
        }
        if (0..cols).any(|j| full.column(j)[n_bins..].iter().any(|b| b.count > 0)) {
            return Err(ModelError::Shape(format!(
                "a bin past {n_bins} bins in the binned columns"
            )));
        }
        Ok(Self {
            n_bins,
            bins: (0..cols)
                .flat_map(|j| full.column(j)[..n_bins].iter().copied())
                .collect(),
        })
    }

    /// Empty histograms of 256 bins for `cols` columns (what [`Histograms::fill`] sums
    /// into; a `u8` bin always fits).
    pub(crate) fn zeroed(cols: usize) -> Self {
        Self {
            n_bins: 256,
            bins: vec![Bin::default(); cols * 256],
        }
    }

    /// Sums `rows` into these 256-bin histograms, after zeroing them (a buffer is reused
    /// from node to node). Each row's bins are read together (`by_row`, see
    /// [`Histograms::from_rows`]) and added to every column's histogram; a large node
    /// splits its rows over up to `threads` threads, each summing into its own histograms.
    pub(crate) fn fill(
        &mut self,
        by_row: &[u8],
        rows: &[u32],
        identity: bool,
        og: &[f32],
        oh: Option<&[f32]>,
        threads: usize,
    ) {
        debug_assert_eq!(self.n_bins, 256);
        let cols = self.bins.len() / 256;
        self.bins.fill(Bin::default());
        let threads = crate::parallel_threads(rows.len() * cols / 16).min(threads);
        let (hists, _) = self.bins.as_chunks_mut::<256>();
        if threads <= 1 {
            fill_rows(by_row, cols, 0, rows, identity, og, oh, hists);
            return;
        }
        let per = rows.len().div_ceil(threads).max(1);
        let others: Vec<Vec<Bin>> = std::thread::scope(|s| {
            let handles: Vec<_> = rows
                .chunks(per)
                .enumerate()
                .skip(1)
                .map(|(t, part)| {
                    s.spawn(move || {
                        let mut own = vec![Bin::default(); cols * 256];
                        let (h, _) = own.as_chunks_mut::<256>();
                        fill_rows(by_row, cols, t * per, part, identity, og, oh, h);
                        own
                    })
                })
                .collect();
            fill_rows(
                by_row,
                cols,
                0,
                &rows[..per.min(rows.len())],
                identity,
                og,
                oh,
                hists,
            );
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for own in &others {
            for (x, y) in self.bins.iter_mut().zip(own) {
                x.g += y.g;
                x.h += y.h;
                x.count += y.count;
            }
        }
    }

    /// Bins over all columns.
    pub(crate) fn bins_len(&self) -> usize {
        self.bins.len()
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
        let mut other = self.clone();
        other.subtract(child)?;
        Ok(other)
    }

    /// Turns this node's (the parent's) histograms into its other child's, in place:
    /// [`Histograms::minus`] without a copy.
    pub fn subtract(&mut self, child: &Histograms) -> Result<()> {
        self.same_shape(child)?;
        for (p, c) in self.bins.iter_mut().zip(&child.bins) {
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
        Ok(())
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

/// Adds rows `part` (the `first`.. entries of the node's rows) into one histogram per
/// column: the hot loop. Each row's bins sit together in `by_row`, and a `u8` bin always
/// indexes a 256-bin histogram, so there is no bounds check per cell.
#[allow(clippy::too_many_arguments)]
fn fill_rows(
    by_row: &[u8],
    cols: usize,
    first: usize,
    part: &[u32],
    identity: bool,
    og: &[f32],
    oh: Option<&[f32]>,
    out: &mut [[Bin; 256]],
) {
    for (k, &r) in part.iter().enumerate() {
        let i = first + k;
        let r = if identity { i } else { r as usize };
        let bins = &by_row[r * cols..(r + 1) * cols];
        let g = f64::from(og[i]);
        match oh {
            Some(oh) => {
                let h = f64::from(oh[i]);
                for (hist, &b) in out.iter_mut().zip(bins) {
                    let bin = &mut hist[usize::from(b)];
                    bin.g += g;
                    bin.h += h;
                    bin.count += 1;
                }
            }
            None => {
                for (hist, &b) in out.iter_mut().zip(bins) {
                    let bin = &mut hist[usize::from(b)];
                    bin.g += g;
                    bin.count += 1;
                }
            }
        }
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

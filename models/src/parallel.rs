//! Data-parallel fitting: a fit as passes over chunks of rows that no one node holds whole.
//!
//! A [`DataParallelFit`] is the fit's state between passes. [`DataParallelFit::ask`] says
//! what the next pass computes (a [`Pass`]); a worker runs it on each chunk it holds with
//! [`compute`] (decode a chunk, compute, drop it) and merges the chunks' [`Partial`]s; the
//! caller merges the workers' partials and hands the sum to [`DataParallelFit::tell`].
//! What each estimator needs from the data is a sum or a mergeable statistic:
//!
//! - `standard_scaler` (as a pipeline step): per-column counts, means and centred sums of
//!   squares ([`Moments`], merged with Chan, Golub and LeVeque's update);
//! - `gaussian_nb`: the same per class, plus over all rows for the smoothing term;
//! - `linear_regression` and `ridge`: the means and the centred cross-products `XcᵀXc`
//!   and `Xcᵀyc` ([`CrossMoments`]), then the same solve as in memory;
//! - `logistic_regression` (L2 or none, lbfgs): the class counts, then one pass per
//!   objective evaluation: each chunk's log-loss and gradient summed. L-BFGS runs on the
//!   driver with the exact full-data gradient ([`crate::optim::LbfgsRun`]), in `f32` and
//!   then in `f64` as the in-memory fit does, so both end at the same model within the
//!   solver's tolerance;
//! - `sgd_classifier` and `sgd_regressor`: one pass per epoch, each chunk running SGD from
//!   the epoch's start and the driver averaging the chunks' models (see
//!   [`crate::linear::SgdEpoch`]);
//! - `pca` and `kmeans` steps: the scatter matrix ([`CrossMoments`] of the features), and
//!   k-means' sample and Lloyd passes ([`crate::cluster`]).
//!
//! The state is plain data (serde): a driver checkpoints it and a new driver resumes from
//! it. Nothing here does I/O.

use serde::{Deserialize, Serialize};

use crate::cluster::{KMeansAsk, KMeansFit, KMeansPart, LloydPart, SamplePart};
use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::estimator::{
    apply_step, Estimator, FittedModel, FittedPipeline, FittedTransformer, TransformerSpec,
};
use crate::linear::{
    add_penalty, log_loss_part, solve_normal, FittedLogisticRegression, Penalty, SgdEpoch, SgdFit,
    SgdPart, SgdTarget,
};
use crate::metrics::TestSums;
use crate::optim::{Lbfgs, LbfgsAsk, LbfgsRun, Termination};
use crate::preprocessing::ColumnStats;
use crate::schema::check_model_input;
use crate::traits::Classifier;
use crate::traits::{ClassMap, Params};

mod job;
mod search;
pub use job::{DataParallelJob, JobNext};
pub use search::{DataParallelSearch, SearchNext};

/// Per-column count, mean and centred sum of squares of the present (non-NaN) cells of
/// the marked columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Present cells per column.
    pub count: Vec<u64>,
    /// Their mean.
    pub mean: Vec<f64>,
    /// Their centred sum of squares.
    pub m2: Vec<f64>,
}

impl Moments {
    /// No rows yet, `d` columns.
    pub fn new(d: usize) -> Self {
        Self {
            count: vec![0; d],
            mean: vec![0.0; d],
            m2: vec![0.0; d],
        }
    }

    /// The moments of `rows` (each `d` wide) in the columns marked in `mask` (all when
    /// `None`), in two passes in `f64`.
    pub fn of<'a, I>(rows: I, d: usize, mask: Option<&[bool]>) -> Self
    where
        I: Iterator<Item = &'a [f32]> + Clone,
    {
        let mut m = Self::new(d);
        let on = |j: usize| mask.is_none_or(|mk| mk[j]);
        for row in rows.clone() {
            for (j, &v) in row.iter().enumerate() {
                if on(j) && !v.is_nan() {
                    m.mean[j] += f64::from(v);
                    m.count[j] += 1;
                }
            }
        }
        for j in 0..d {
            if m.count[j] > 0 {
                m.mean[j] /= m.count[j] as f64;
            }
        }
        for row in rows {
            for (j, &v) in row.iter().enumerate() {
                if on(j) && !v.is_nan() {
                    let diff = f64::from(v) - m.mean[j];
                    m.m2[j] += diff * diff;
                }
            }
        }
        m
    }

    /// Adds another block's moments.
    pub fn merge(&mut self, o: &Moments) -> Result<()> {
        same_len(self.count.len(), o.count.len())?;
        for v in [&self.mean, &self.m2, &o.mean, &o.m2] {
            same_len(self.count.len(), v.len())?;
        }
        for j in 0..self.count.len() {
            let (na, nb) = (self.count[j] as f64, o.count[j] as f64);
            if nb == 0.0 {
                continue;
            }
            let n = na + nb;
            let delta = o.mean[j] - self.mean[j];
            self.mean[j] += delta * nb / n;
            self.m2[j] += o.m2[j] + delta * delta * na * nb / n;
            self.count[j] += o.count[j];
        }
        Ok(())
    }

    /// Each column's variance (population, over its present cells; 0 without any).
    pub fn variance(&self) -> Vec<f64> {
        self.m2
            .iter()
            .zip(&self.count)
            .map(|(m2, &c)| if c == 0 { 0.0 } else { m2 / c as f64 })
            .collect()
    }
}

/// Means of `X` and `y` and their centred cross-products `XcᵀXc` (`d x d`) and `Xcᵀyc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossMoments {
    /// Rows.
    pub n: u64,
    /// Column means.
    pub mean_x: Vec<f64>,
    /// The target's mean.
    pub mean_y: f64,
    /// `XcᵀXc`, row-major.
    pub xx: Vec<f64>,
    /// `Xcᵀyc`.
    pub xy: Vec<f64>,
}

impl CrossMoments {
    /// The cross moments of a block of rows, in `f64`.
    pub fn of(x: &crate::matrix::Matrix, y: &[f32]) -> Result<Self> {
        same_len(x.rows(), y.len())?;
        Ok(Self::build(x, |i| y[i]))
    }

    /// The moments of the features alone (the target's parts are zero): the centred
    /// scatter matrix PCA decomposes.
    pub fn of_features(x: &crate::matrix::Matrix) -> Self {
        Self::build(x, |_| 0.0)
    }

    fn build(x: &crate::matrix::Matrix, y: impl Fn(usize) -> f32 + Clone) -> Self {
        let (n, d) = (x.rows(), x.cols());
        let y = (0..n).map(y);
        let mut mean_x = vec![0.0f64; d];
        let mut mean_y = 0.0f64;
        for (row, v) in x.data().chunks_exact(d.max(1)).zip(y.clone()) {
            for (m, &c) in mean_x.iter_mut().zip(row) {
                *m += f64::from(c);
            }
            mean_y += f64::from(v);
        }
        if n > 0 {
            mean_x.iter_mut().for_each(|m| *m /= n as f64);
            mean_y /= n as f64;
        }
        let mut xx = vec![0.0f64; d * d];
        let mut xy = vec![0.0f64; d];
        let mut c = vec![0.0f64; d];
        for (row, v) in x.data().chunks_exact(d.max(1)).zip(y) {
            for j in 0..d {
                c[j] = f64::from(row[j]) - mean_x[j];
            }
            let cy = f64::from(v) - mean_y;
            for i in 0..d {
                let ci = c[i];
                xy[i] += ci * cy;
                let out = &mut xx[i * d..(i + 1) * d];
                for (o, &cj) in out[i..].iter_mut().zip(&c[i..]) {
                    *o += ci * cj;
                }
            }
        }
        // The lower triangle mirrors the upper.
        for i in 0..d {
            for j in 0..i {
                xx[i * d + j] = xx[j * d + i];
            }
        }
        Self {
            n: n as u64,
            mean_x,
            mean_y,
            xx,
            xy,
        }
    }

    /// Adds another block's moments.
    pub fn merge(&mut self, o: &CrossMoments) -> Result<()> {
        let d = self.xy.len();
        same_len(d, o.xy.len())?;
        for m in [&*self, o] {
            same_len(d, m.mean_x.len())?;
            same_len(d * d, m.xx.len())?;
        }
        if o.n == 0 {
            return Ok(());
        }
        let (na, nb) = (self.n as f64, o.n as f64);
        let n = na + nb;
        let d = self.xy.len();
        let dx: Vec<f64> = o
            .mean_x
            .iter()
            .zip(&self.mean_x)
            .map(|(b, a)| b - a)
            .collect();
        let dy = o.mean_y - self.mean_y;
        let w = na * nb / n;
        for i in 0..d {
            self.xy[i] += o.xy[i] + dx[i] * dy * w;
            for j in 0..d {
                self.xx[i * d + j] += o.xx[i * d + j] + dx[i] * dx[j] * w;
            }
            self.mean_x[i] += dx[i] * nb / n;
        }
        self.mean_y += dy * nb / n;
        self.n += o.n;
        Ok(())
    }
}

/// The numbers in a k-means pass's partial result: each run's sums, counts and far rows.
fn kmeans_partial(p: &crate::cluster::KMeansParams, d: usize) -> usize {
    p.runs() * (2 * p.n_clusters * d + 4 * p.n_clusters + 1)
}

/// The size of an SGD partial of `k` problems over `d` features, in numbers.
fn sgd_partial(k: usize, d: usize) -> usize {
    4 * k * d + 6 * k + 4
}

fn same_len(a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(ModelError::Shape(format!(
            "partial results of {a} and {b} columns"
        )))
    }
}

/// What one pass computes on every chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    /// Fitted transformers every chunk goes through first.
    pub prep: Vec<FittedTransformer>,
    /// The estimator whose input the chunk is once through `prep` (its name, for the
    /// input check: numbers only, no missing cells), or `None` for a transformer's pass.
    pub model: Option<String>,
    /// The statistic.
    pub op: PassOp,
    /// Only these rows of each chunk (a cross-validation fold's), picked before `prep`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowFilter>,
}

/// The rows of one cross-validation split: a row's fold is a hash of its values (and the
/// search's seed) modulo the folds, so each chunk knows its rows' folds where it lies, and
/// the split does not depend on how rows are chunked (equal rows share a fold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowFilter {
    /// Folds.
    pub folds: u32,
    /// The fold.
    pub fold: u32,
    /// The hash's seed.
    pub seed: u64,
    /// Keep the rows outside the fold (training), else those in it (testing).
    pub train: bool,
}

impl RowFilter {
    /// The fold of a row.
    pub fn fold_of(row: &[f32], seed: u64, folds: u32) -> u32 {
        (crate::cluster::row_hash(row, seed) % u64::from(folds.max(1))) as u32
    }

    /// The rows of `chunk` this filter keeps.
    pub fn apply(&self, chunk: Dataset) -> Result<Dataset> {
        let d = chunk.n_features().max(1);
        let keep: Vec<usize> = chunk
            .x()
            .data()
            .chunks_exact(d)
            .enumerate()
            .filter(|(_, r)| (Self::fold_of(r, self.seed, self.folds) == self.fold) != self.train)
            .map(|(i, _)| i)
            .collect();
        if keep.len() == chunk.n_samples() {
            return Ok(chunk);
        }
        chunk.select(&keep)
    }
}

/// Most folds a pass may name (a fold count is a vector of this length).
pub const MAX_FOLDS: u32 = 1 << 16;

impl Pass {
    /// Whether the pass (or one inside it) checks its rows as a model's input.
    pub fn checks_input(&self) -> bool {
        self.model.is_some()
            || matches!(&self.op, PassOp::Multi(passes) if passes.iter().any(Pass::checks_input))
    }

    /// About how many bytes one chunk's partial result of this pass takes in MessagePack,
    /// with `d` feature columns.
    pub fn partial_bytes(&self, d: usize) -> usize {
        9 * match &self.op {
            PassOp::Moments { mask } => 3 * mask.len() + 8,
            PassOp::ClassMoments { n_classes } => 3 * d * (n_classes + 1) + 8 * n_classes,
            PassOp::ClassCounts { n_classes } => *n_classes,
            PassOp::CrossMoments | PassOp::Scatter => d * d + 2 * d + 8,
            PassOp::ColumnStats { categories } => 3 * d + categories + 8,
            PassOp::LogLoss { w, .. } => w.len() + 1,
            // About twice the expected share of a chunk of 65,536 rows.
            PassOp::KMeansSample { p, .. } => {
                3 * d + 8 + (p.clamp(0.0, 1.0) * 131_072.0) as usize * (d + 2)
            }
            PassOp::Lloyd { centres } => centres
                .iter()
                .map(|c| 2 * c.len() + 4 * c.len() / d.max(1) + 1)
                .sum(),
            PassOp::SgdEpoch(e) => sgd_partial(e.start.k, d),
            PassOp::FoldCounts { folds, .. } => *folds as usize,
            PassOp::Score { model } => model.n_classes().pow(2) + 8,
            PassOp::Multi(passes) => {
                return passes.iter().map(|p| p.partial_bytes(d)).sum::<usize>() + 8;
            }
        }
    }
}

/// The statistic a pass computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassOp {
    /// [`Moments`] of the marked columns.
    Moments {
        /// The columns.
        mask: Vec<bool>,
    },
    /// [`Moments`] of every column per class, and over all rows.
    ClassMoments {
        /// The dataset's classes.
        n_classes: usize,
    },
    /// Rows per class.
    ClassCounts {
        /// The dataset's classes.
        n_classes: usize,
    },
    /// [`CrossMoments`] of the features and the target.
    CrossMoments,
    /// [`CrossMoments`] of the features alone (PCA).
    Scatter,
    /// [`ColumnStats`]: missing cells, sums and category counts per column (the imputer
    /// and the encoders).
    ColumnStats {
        /// The categories of all columns together (for the partial's size).
        categories: usize,
    },
    /// k-means' first pass: column moments and the rows whose hash falls in the first
    /// `p` of the range ([`SamplePart`]).
    KMeansSample {
        /// The sampled share of the hash range.
        p: f64,
        /// The hash's seed.
        seed: u64,
    },
    /// A Lloyd pass: for each set of `k x d` centres, the rows' nearest-centre sums
    /// ([`LloydPart`]).
    Lloyd {
        /// Centre sets, row-major.
        centres: Vec<Vec<f64>>,
    },
    /// An SGD epoch from the given start ([`SgdPart`]).
    SgdEpoch(Box<SgdEpoch>),
    /// Rows per cross-validation fold ([`RowFilter::fold_of`]).
    FoldCounts {
        /// Folds.
        folds: u32,
        /// The hash's seed.
        seed: u64,
    },
    /// A fitted model's test sums on the rows ([`TestSums`]).
    Score {
        /// The model.
        model: Box<FittedModel>,
    },
    /// Several passes on each chunk, read once (a search's fits in lockstep).
    Multi(Vec<Pass>),
    /// The log-loss and its gradient at `w`, summed over the rows and scaled by `inv_n`.
    LogLoss {
        /// The classes present in training (dataset class ids).
        present: Vec<u32>,
        /// The dataset's classes.
        n_classes: usize,
        /// Whether `w` ends with intercepts.
        fit_intercept: bool,
        /// The point.
        w: Vec<f64>,
        /// One over the training rows.
        inv_n: f64,
        /// Products in `f64` (else `f32`).
        wide: bool,
    },
}

/// A pass's result over some chunks; partials of the same pass merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partial {
    /// Of [`PassOp::Moments`].
    Moments(Moments),
    /// Of [`PassOp::ClassMoments`]: per class, then over all rows.
    ClassMoments {
        /// Per class (dataset class ids).
        classes: Vec<Moments>,
        /// Over all rows.
        all: Moments,
    },
    /// Of [`PassOp::ClassCounts`].
    ClassCounts(Vec<u64>),
    /// Of [`PassOp::CrossMoments`] and [`PassOp::Scatter`].
    CrossMoments(CrossMoments),
    /// Of [`PassOp::ColumnStats`].
    ColumnStats(ColumnStats),
    /// Of [`PassOp::KMeansSample`].
    KMeansSample(SamplePart),
    /// Of [`PassOp::Lloyd`], one per centre set.
    Lloyd(Vec<LloydPart>),
    /// Of [`PassOp::SgdEpoch`].
    Sgd(SgdPart),
    /// Of [`PassOp::FoldCounts`].
    FoldCounts(Vec<u64>),
    /// Of [`PassOp::Score`]; `None` for no rows.
    Score(Option<TestSums>),
    /// Of [`PassOp::Multi`], in its order.
    Multi(Vec<Partial>),
    /// Of [`PassOp::LogLoss`].
    LogLoss {
        /// The objective's data part.
        f: f64,
        /// Its gradient.
        g: Vec<f64>,
    },
}

impl Partial {
    /// Adds another partial of the same pass.
    pub fn merge(&mut self, other: &Partial) -> Result<()> {
        match (self, other) {
            (Partial::Moments(a), Partial::Moments(b)) => a.merge(b),
            (
                Partial::ClassMoments { classes, all },
                Partial::ClassMoments {
                    classes: c2,
                    all: a2,
                },
            ) => {
                same_len(classes.len(), c2.len())?;
                for (a, b) in classes.iter_mut().zip(c2) {
                    a.merge(b)?;
                }
                all.merge(a2)
            }
            (Partial::ClassCounts(a), Partial::ClassCounts(b)) => {
                same_len(a.len(), b.len())?;
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                Ok(())
            }
            (Partial::CrossMoments(a), Partial::CrossMoments(b)) => a.merge(b),
            (Partial::KMeansSample(a), Partial::KMeansSample(b)) => a.merge(b),
            (Partial::ColumnStats(a), Partial::ColumnStats(b)) => a.merge(b),
            (Partial::Sgd(a), Partial::Sgd(b)) => a.merge(b),
            (Partial::FoldCounts(a), Partial::FoldCounts(b)) => {
                same_len(a.len(), b.len())?;
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                Ok(())
            }
            (Partial::Score(a), Partial::Score(b)) => match (a.as_mut(), b) {
                (_, None) => Ok(()),
                (None, Some(b)) => {
                    *a = Some(b.clone());
                    Ok(())
                }
                (Some(a), Some(b)) => a.merge(b),
            },
            (Partial::Multi(a), Partial::Multi(b)) => {
                same_len(a.len(), b.len())?;
                a.iter_mut().zip(b).try_for_each(|(x, y)| x.merge(y))
            }
            (Partial::Lloyd(a), Partial::Lloyd(b)) => {
                same_len(a.len(), b.len())?;
                a.iter_mut().zip(b).try_for_each(|(x, y)| x.merge(y))
            }
            (Partial::LogLoss { f, g }, Partial::LogLoss { f: f2, g: g2 }) => {
                same_len(g.len(), g2.len())?;
                *f += f2;
                g.iter_mut().zip(g2).for_each(|(x, y)| *x += y);
                Ok(())
            }
            _ => Err(ModelError::data(
                "data-parallel fit",
                "partial results of different passes",
            )),
        }
    }
}

/// Runs a pass on one chunk of rows (a dataset with the training set's schema).
pub fn compute(pass: &Pass, chunk: Dataset) -> Result<Partial> {
    compute_with(pass, chunk, true)
}

/// Runs a pass on every chunk and merges the partials in chunk order, as the driver's
/// engine does: a data-parallel job run in one process.
pub fn compute_all(pass: &Pass, chunks: &[Dataset]) -> Result<Partial> {
    let mut total: Option<Partial> = None;
    for c in chunks {
        let p = compute(pass, c.clone())?;
        match &mut total {
            None => total = Some(p),
            Some(t) => t.merge(&p)?,
        }
    }
    total.ok_or_else(|| ModelError::data("data-parallel pass", "no chunks"))
}

/// [`compute`], with the model's input check (numbers only, no missing cells, all finite:
/// two scans of the chunk) left out when `check_input` is false: a worker that keeps a
/// chunk in memory across passes checks it once. The check on the raw chunk stands for
/// every pass, as the steps a pass applies first (scalers) keep the columns' kinds and
/// their missing cells.
pub fn compute_with(pass: &Pass, chunk: Dataset, check_input: bool) -> Result<Partial> {
    if let PassOp::Multi(passes) = &pass.op {
        if passes.iter().any(|p| matches!(p.op, PassOp::Multi(_))) {
            return Err(ModelError::data("data-parallel pass", "nested passes"));
        }
        return passes
            .iter()
            .map(|p| compute_with(p, chunk.clone(), check_input))
            .collect::<Result<Vec<_>>>()
            .map(Partial::Multi);
    }
    let chunk = match &pass.rows {
        Some(f) if f.folds < 2 || f.folds > MAX_FOLDS || f.fold >= f.folds => {
            return Err(ModelError::data(
                "data-parallel pass",
                "a fold out of range",
            ))
        }
        Some(f) => f.apply(chunk)?,
        None => chunk,
    };
    if let PassOp::FoldCounts { folds, seed } = &pass.op {
        if *folds < 2 || *folds > MAX_FOLDS {
            return Err(ModelError::data(
                "data-parallel pass",
                "a fold count out of range",
            ));
        }
        let mut counts = vec![0u64; (*folds).max(1) as usize];
        for r in chunk.x().data().chunks_exact(chunk.n_features().max(1)) {
            counts[RowFilter::fold_of(r, *seed, *folds) as usize] += 1;
        }
        return Ok(Partial::FoldCounts(counts));
    }
    if let PassOp::Score { model } = &pass.op {
        return Ok(Partial::Score(if chunk.n_samples() == 0 {
            None
        } else {
            Some(TestSums::of(model, &chunk)?)
        }));
    }
    // What a pass says of the data must be what the chunk holds (a pass comes over the
    // network).
    let classes = chunk.classes().map_or(0, |c| c.len());
    let claimed = match &pass.op {
        PassOp::ClassMoments { n_classes }
        | PassOp::ClassCounts { n_classes }
        | PassOp::LogLoss { n_classes, .. } => Some(*n_classes),
        PassOp::SgdEpoch(e) => e.classes.as_ref().map(|m| m.n_classes),
        _ => None,
    };
    if claimed.is_some_and(|n| n != classes) {
        return Err(ModelError::data(
            "data-parallel pass",
            format!("for {claimed:?} classes, on a dataset of {classes}"),
        ));
    }
    if let PassOp::LogLoss { present, .. } = &pass.op {
        if present.len() < 2 || present.iter().any(|&c| c as usize >= classes) {
            return Err(ModelError::data(
                "data-parallel pass",
                "classes out of the dataset's range",
            ));
        }
    }
    // k-means samples its starts by the rows as stored, before the steps (see
    // `Checked<KMeansParams>::fit_step`).
    let keys = match &pass.op {
        PassOp::KMeansSample { .. } => crate::cluster::row_keys(chunk.x()),
        _ => Vec::new(),
    };
    let mut data = chunk;
    for step in &pass.prep {
        data = apply_step(step, data)?;
    }
    if let Some(model) = pass.model.as_ref().filter(|_| check_input) {
        check_model_input(&data, model, false)?;
        data.x().check_finite("training data")?;
    }
    let x = data.x();
    let d = x.cols();
    let xd = x.data();
    let rows = xd.chunks_exact(d.max(1));
    Ok(match &pass.op {
        PassOp::Moments { mask } => {
            same_len(mask.len(), d)?;
            Partial::Moments(Moments::of(rows, d, Some(mask)))
        }
        PassOp::ClassMoments { n_classes } => {
            let (ids, _) = data.class_target()?;
            let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); *n_classes];
            for (i, &c) in ids.iter().enumerate() {
                by_class
                    .get_mut(c as usize)
                    .ok_or_else(|| ModelError::Shape(format!("class id {c}")))?
                    .push(i);
            }
            let classes = by_class
                .iter()
                .map(|rows| Moments::of(rows.iter().map(|&i| &xd[i * d..(i + 1) * d]), d, None))
                .collect();
            Partial::ClassMoments {
                classes,
                all: Moments::of(rows, d, None),
            }
        }
        PassOp::ClassCounts { n_classes } => {
            let (ids, _) = data.class_target()?;
            let mut counts = vec![0u64; *n_classes];
            for &c in ids {
                *counts
                    .get_mut(c as usize)
                    .ok_or_else(|| ModelError::Shape(format!("class id {c}")))? += 1;
            }
            Partial::ClassCounts(counts)
        }
        PassOp::CrossMoments => {
            let y = data.value_target()?;
            if let Some(bad) = y.iter().position(|v| !v.is_finite()) {
                return Err(ModelError::data(
                    "training data",
                    format!("target of row {bad} of a chunk is not a finite number"),
                ));
            }
            Partial::CrossMoments(CrossMoments::of(x, &y)?)
        }
        PassOp::Scatter => Partial::CrossMoments(CrossMoments::of_features(x)),
        PassOp::ColumnStats { .. } => Partial::ColumnStats(ColumnStats::of(&data)),
        PassOp::KMeansSample { p, seed } => {
            Partial::KMeansSample(SamplePart::of(x, &keys, *p, *seed)?)
        }
        PassOp::Lloyd { centres } => {
            if centres.is_empty()
                || centres
                    .iter()
                    .any(|c| c.is_empty() || c.len() % d.max(1) != 0)
            {
                return Err(ModelError::data(
                    "data-parallel pass",
                    format!("k-means centres that are not rows of {d} features"),
                ));
            }
            Partial::Lloyd(LloydPart::of(x, centres))
        }
        PassOp::FoldCounts { .. } | PassOp::Score { .. } | PassOp::Multi(_) => {
            unreachable!("handled above")
        }
        PassOp::SgdEpoch(e) => Partial::Sgd(if e.classes.is_some() {
            e.run(x, &SgdTarget::Classes(data.class_target()?.0))?
        } else {
            let y = data.value_target()?;
            if let Some(bad) = y.iter().position(|v| !v.is_finite()) {
                return Err(ModelError::data(
                    "training data",
                    format!("target of row {bad} of a chunk is not a finite number"),
                ));
            }
            e.run(x, &SgdTarget::Values(&y))?
        }),
        PassOp::LogLoss {
            present,
            n_classes,
            fit_intercept,
            w,
            inv_n,
            wide,
        } => {
            let (ids, _) = data.class_target()?;
            let map = ClassMap {
                present: present.clone(),
                n_classes: *n_classes,
            };
            if let Some(c) = ids.iter().find(|&&c| !present.contains(&c)) {
                return Err(ModelError::data(
                    "training data",
                    format!("a chunk holds class id {c}, absent from the class counts"),
                ));
            }
            let y = map.encode(ids);
            let k = if present.len() == 2 { 1 } else { present.len() };
            let (f, g) = log_loss_part(x, &y, k, *fit_intercept, w, *inv_n, *wide)?;
            Partial::LogLoss { f, g }
        }
    })
}

/// What the fit needs next.
#[derive(Debug, Clone)]
pub enum Next {
    /// A pass over every chunk.
    Pass(Pass),
    /// Nothing: the model.
    Done(FittedModel),
}

/// Where the fit stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stage {
    /// Fitting the pipeline's transformer step `i` in one pass (scaler, PCA).
    Step(usize),
    /// Fitting the pipeline's k-means step `i`.
    KMeans { i: usize, fit: Box<KMeansFit> },
    /// Counting classes (logistic regression).
    Counts,
    /// L-BFGS.
    Lbfgs {
        map: ClassMap,
        /// Products in `f64` (the polish after an `f32` run stalled).
        wide: bool,
        /// Iterations of the `f32` run before this one.
        before: usize,
        run: LbfgsRun,
    },
    /// The one pass of a closed-form model (or the start of an SGD regressor).
    Final,
    /// SGD epochs.
    Sgd(Box<SgdFit>),
    /// Finished.
    Done(FittedModel),
}

/// A data-parallel fit between passes (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataParallelFit {
    steps: Vec<TransformerSpec>,
    /// The schema (no rows) of the next step's input: the data's, through the steps fitted.
    schema: Dataset,
    fitted: Vec<FittedTransformer>,
    last: Estimator,
    /// Feature columns of the next step's input.
    n_features: usize,
    n_samples: u64,
    n_classes: usize,
    stage: Stage,
    passes: u64,
    /// The objective after each L-BFGS evaluation, with its gradient's largest component,
    /// or SGD's mean objective after each epoch (the gradient NaN).
    losses: Vec<(f64, f64)>,
    warnings: Vec<String>,
    /// The point of the objective evaluation asked for last.
    asked: Option<Vec<f64>>,
}

impl DataParallelFit {
    /// Estimators that fit data-parallel, as the error for the others lists them.
    pub const SUPPORTED: &'static str = "logistic_regression (lbfgs, penalty l2 or none), \
        sgd_classifier, sgd_regressor, gaussian_nb, linear_regression, ridge and kmeans, after \
        standard_scaler, simple_imputer (not median), one_hot_encoder, ordinal_encoder, pca and \
        kmeans steps";

    /// A fit of `estimator` on data whose schema `schema` has (its rows are not read:
    /// a dataset of no rows will do) and which holds `n_samples` rows.
    pub fn new(estimator: &Estimator, schema: &Dataset, n_samples: u64) -> Result<Self> {
        let unsupported = |what: &str| {
            ModelError::data(
                "data-parallel fit",
                format!(
                    "{what} does not fit data-parallel yet; these do: {}",
                    Self::SUPPORTED
                ),
            )
        };
        let (steps, last) = match estimator {
            Estimator::Pipeline(p) => (p.steps.clone(), (*p.estimator).clone()),
            e => (Vec::new(), e.clone()),
        };
        // While only scalers came before a step, its input has the data's columns and kinds,
        // and what it takes can be checked now; after other steps, on the first pass.
        let mut plain = true;
        for s in &steps {
            s.validate()?;
            match s {
                TransformerSpec::StandardScaler(p) => {
                    if plain {
                        p.check_ref()?.scaled(schema)?;
                    }
                }
                TransformerSpec::Pca(_) | TransformerSpec::Kmeans(_) => {
                    if plain {
                        check_model_input(schema, s.name(), true)?;
                    }
                    plain = false;
                }
                TransformerSpec::SimpleImputer(p) => {
                    if p.strategy == crate::preprocessing::ImputeStrategy::Median {
                        return Err(unsupported(
                            "simple_imputer with strategy='median' (a median is not a sum)",
                        ));
                    }
                    if plain {
                        p.check_ref()?.check_parallel(schema)?;
                    }
                    plain = false;
                }
                TransformerSpec::OneHotEncoder(_) | TransformerSpec::OrdinalEncoder(_) => {
                    plain = false;
                }
                other => return Err(unsupported(&format!("the step {}", other.name()))),
            }
        }
        match &last {
            Estimator::LogisticRegression(p) => {
                p.check_ref()?;
                if p.penalty == Penalty::L1 {
                    return Err(unsupported("logistic_regression with penalty='l1'"));
                }
            }
            Estimator::GaussianNb(p) => {
                p.check_ref()?;
            }
            Estimator::LinearRegression(p) => {
                p.check_ref()?;
            }
            Estimator::Ridge(p) => {
                p.check_ref()?;
            }
            Estimator::SgdClassifier(p) => {
                p.check_ref()?;
            }
            Estimator::SgdRegressor(p) => {
                p.check_ref()?;
            }
            Estimator::Kmeans(p) => {
                p.check_ref()?;
            }
            other => return Err(unsupported(&other.name())),
        }
        // Scalers keep the columns' names and kinds: the model's input check can run on
        // the schema now (categorical columns), and on every chunk (missing cells).
        if plain {
            check_model_input(schema, &last.name(), true)?;
        }
        let n_classes = schema.classes().map_or(0, |c| c.len());
        // A clusterer reads no target.
        if !last.is_clusterer() && last.is_regressor() == schema.classes().is_some() {
            return Err(ModelError::data(
                "training data",
                if last.is_regressor() {
                    format!("{} needs a numeric target", last.name())
                } else {
                    format!("{} needs a class target", last.name())
                },
            ));
        }
        if n_samples == 0 {
            return Err(ModelError::data("training data", "no rows"));
        }
        Ok(Self {
            stage: if steps.is_empty() {
                Self::final_stage(&last)
            } else {
                Stage::Step(0)
            },
            steps,
            schema: schema.select(&[])?,
            fitted: Vec::new(),
            last,
            n_features: schema.n_features(),
            n_samples,
            n_classes,
            passes: 0,
            losses: Vec::new(),
            warnings: Vec::new(),
            asked: None,
        })
    }

    fn final_stage(last: &Estimator) -> Stage {
        match last {
            Estimator::LogisticRegression(_) | Estimator::SgdClassifier(_) => Stage::Counts,
            _ => Stage::Final,
        }
    }

    /// Feature columns of the model's input.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// About how many bytes the largest partial result of one chunk takes, at submission
    /// (the normal equations of a least-squares fit grow with the square of the features).
    /// Each step's input width is bounded from the schema: a one-hot encoder adds at most
    /// a column per category, an imputer's indicators at most one per column, a PCA or
    /// k-means step outputs its components or distances.
    pub fn largest_partial_bytes(&self) -> usize {
        let k = self.n_classes;
        let cats: usize = self
            .schema
            .kinds()
            .iter()
            .filter_map(|c| c.categories().map(|c| c.len()))
            .sum();
        // Column statistics: missing cells, sums and squares, and category counts.
        let stats = |d: usize| 3 * d + 8 + cats;
        let mut d = self.n_features;
        let mut largest = stats(d);
        for s in &self.steps {
            let (partial, out) = match s {
                TransformerSpec::Pca(p) => (
                    d * d + 2 * d + 8,
                    match p.n_components {
                        Some(crate::decomposition::NComponents::Count(c)) => c.min(d),
                        _ => d,
                    },
                ),
                TransformerSpec::Kmeans(p) => (kmeans_partial(p, d), p.n_clusters),
                TransformerSpec::OneHotEncoder(_) => (stats(d), d + cats),
                TransformerSpec::SimpleImputer(p) if p.add_indicator => (stats(d), 2 * d),
                _ => (stats(d), d),
            };
            largest = largest.max(partial);
            d = out;
        }
        let last = match &self.last {
            Estimator::LogisticRegression(_) => {
                let k = if k == 2 { 1 } else { k };
                k * (d + 1) + 1
            }
            Estimator::GaussianNb(_) => 3 * d * (k + 1) + 8 * k,
            Estimator::SgdClassifier(_) => sgd_partial(if k <= 2 { 1 } else { k }, d),
            Estimator::SgdRegressor(_) => sgd_partial(1, d),
            Estimator::Kmeans(p) => kmeans_partial(p, d),
            _ => d * d + 2 * d + 8,
        };
        9 * largest.max(last).max(3 * d + 8)
    }

    /// The state as a checkpoint of at most `max_bytes` (MessagePack): whole, or without
    /// the solver's curvature pairs and the evaluations of its iteration under way (a fit
    /// resumed from that takes a steepest-descent step first: the same model within the
    /// solver's tolerance, not the same bits); `None` when even that is larger.
    pub fn checkpoint(&self, max_bytes: usize) -> Option<Vec<u8>> {
        let whole = rmp_serde::to_vec_named(self).ok()?;
        if whole.len() <= max_bytes {
            return Some(whole);
        }
        let mut lite = self.clone();
        lite.lighten();
        let bytes = rmp_serde::to_vec_named(&lite).ok()?;
        (bytes.len() <= max_bytes).then_some(bytes)
    }

    /// Drops the solver's curvature pairs and the evaluation under way (see
    /// [`DataParallelFit::checkpoint`]).
    pub(crate) fn lighten(&mut self) {
        if let Stage::Lbfgs { run, .. } = &mut self.stage {
            run.forget_history();
        }
        self.asked = None;
    }

    /// Passes told so far.
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// The objective after each evaluation so far, with its gradient's largest component
    /// (logistic regression), or after each SGD epoch (its mean over the rows; NaN for the
    /// gradient, which SGD does not compute).
    pub fn losses(&self) -> &[(f64, f64)] {
        &self.losses
    }

    /// Warnings the fit raised (a solver that stopped at `max_iter`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What the current stage is, for people (`standard_scaler`, `lbfgs`, ...).
    pub fn stage(&self) -> String {
        match &self.stage {
            Stage::Step(i) => self.steps[*i].name().to_string(),
            Stage::KMeans { fit, .. } => format!("kmeans iteration {}", fit.n_iter()),
            Stage::Counts => "class counts".into(),
            Stage::Lbfgs { run, .. } => format!("lbfgs iteration {}", run.n_iter()),
            Stage::Final => self.last.name(),
            Stage::Sgd(fit) => format!("sgd epoch {}", fit.epochs() + 1),
            Stage::Done(_) => "done".into(),
        }
    }

    /// The columns scaler step `i` learns.
    fn mask(&self, i: usize) -> Result<Vec<bool>> {
        match &self.steps[i] {
            TransformerSpec::StandardScaler(p) => p.check_ref()?.scaled(&self.schema),
            _ => Err(ModelError::data("data-parallel fit", "not a scaler")),
        }
    }

    /// Step `i` is fitted: its output's schema is the next step's input.
    fn fitted_step(&mut self, i: usize, t: FittedTransformer) -> Result<()> {
        self.schema = apply_step(&t, self.schema.clone())?;
        self.n_features = self.schema.n_features();
        self.fitted.push(t);
        self.next_step(i);
        Ok(())
    }

    /// After step `i`: the next step, or the model's first stage.
    fn next_step(&mut self, i: usize) {
        self.stage = if i + 1 < self.steps.len() {
            Stage::Step(i + 1)
        } else {
            Self::final_stage(&self.last)
        };
    }

    /// A pass of step `i`: scalers, imputers and encoders read any cells; PCA and k-means
    /// check theirs as a model does (numbers, none missing).
    fn step_pass(&self, i: usize, op: PassOp) -> Pass {
        let step = &self.steps[i];
        Pass {
            prep: self.fitted.clone(),
            model: matches!(step, TransformerSpec::Pca(_) | TransformerSpec::Kmeans(_))
                .then(|| step.name().to_string()),
            op,
            rows: None,
        }
    }

    fn pass(&self, model: bool, op: PassOp) -> Pass {
        Pass {
            prep: self.fitted.clone(),
            model: model.then(|| self.last.name()),
            op,
            rows: None,
        }
    }

    /// What the fit needs next: a pass over the data, or nothing (the model).
    pub fn ask(&mut self) -> Result<Next> {
        loop {
            let op = match &mut self.stage {
                Stage::Done(m) => return Ok(Next::Done(m.clone())),
                Stage::Step(i) => {
                    let i = *i;
                    let op = match &self.steps[i] {
                        TransformerSpec::Kmeans(p) => {
                            let fit =
                                KMeansFit::new(&p.check_ref()?, self.n_features, self.n_samples)?;
                            self.stage = Stage::KMeans {
                                i,
                                fit: Box::new(fit),
                            };
                            continue;
                        }
                        TransformerSpec::Pca(_) => PassOp::Scatter,
                        TransformerSpec::StandardScaler(_) => PassOp::Moments {
                            mask: self.mask(i)?,
                        },
                        _ => PassOp::ColumnStats {
                            categories: self
                                .schema
                                .kinds()
                                .iter()
                                .map(|k| k.categories().map_or(0, |c| c.len()))
                                .sum(),
                        },
                    };
                    return Ok(Next::Pass(self.step_pass(i, op)));
                }
                Stage::KMeans { i, fit } => {
                    // Step `i`, or the model itself when `i` is past the steps.
                    let (i, model) = (*i, *i == self.steps.len());
                    let op = match fit.ask() {
                        KMeansAsk::Sample { p, seed } => PassOp::KMeansSample { p, seed },
                        KMeansAsk::Lloyd(centres) => PassOp::Lloyd { centres },
                        KMeansAsk::Done(m) if model => {
                            self.finish(m.into())?;
                            continue;
                        }
                        KMeansAsk::Done(m) => {
                            self.fitted_step(i, FittedTransformer::Kmeans(m))?;
                            continue;
                        }
                    };
                    return Ok(Next::Pass(if model {
                        self.pass(true, op)
                    } else {
                        self.step_pass(i, op)
                    }));
                }
                Stage::Counts => PassOp::ClassCounts {
                    n_classes: self.n_classes,
                },
                Stage::Final => match &self.last {
                    Estimator::GaussianNb(_) => PassOp::ClassMoments {
                        n_classes: self.n_classes,
                    },
                    Estimator::Kmeans(p) => {
                        let fit = KMeansFit::new(&p.check_ref()?, self.n_features, self.n_samples)?;
                        self.stage = Stage::KMeans {
                            i: self.steps.len(),
                            fit: Box::new(fit),
                        };
                        continue;
                    }
                    Estimator::SgdRegressor(p) => {
                        self.stage = Stage::Sgd(Box::new(SgdFit::new(p, self.n_features, None)));
                        continue;
                    }
                    _ => PassOp::CrossMoments,
                },
                Stage::Sgd(fit) => match fit.ask() {
                    Some(epoch) => PassOp::SgdEpoch(Box::new(epoch)),
                    None => {
                        let (model, warning) = fit.model();
                        self.warnings.extend(warning);
                        self.finish(model.into())?;
                        continue;
                    }
                },
                Stage::Lbfgs {
                    map,
                    wide,
                    before,
                    run,
                } => {
                    let (map, wide, before) = (map.clone(), *wide, *before);
                    let Estimator::LogisticRegression(p) = &self.last else {
                        unreachable!("lbfgs is logistic regression");
                    };
                    let opt = Lbfgs {
                        max_iter: p.max_iter.saturating_sub(before),
                        gtol: p.tol,
                        ..Lbfgs::default()
                    };
                    match run.ask(&opt)? {
                        LbfgsAsk::Evaluate(w) => {
                            self.asked = Some(w.clone());
                            PassOp::LogLoss {
                                present: map.present.clone(),
                                n_classes: map.n_classes,
                                fit_intercept: p.fit_intercept,
                                w,
                                inv_n: 1.0 / self.n_samples as f64,
                                wide,
                            }
                        }
                        LbfgsAsk::Done(res) => {
                            self.lbfgs_done(map, wide, before, res)?;
                            continue;
                        }
                    }
                }
            };
            return Ok(Next::Pass(self.pass(true, op)));
        }
    }

    fn fit_intercept(&self) -> bool {
        match &self.last {
            Estimator::LogisticRegression(p) => p.fit_intercept,
            Estimator::LinearRegression(p) => p.fit_intercept,
            Estimator::Ridge(p) => p.fit_intercept,
            _ => false,
        }
    }

    /// An L-BFGS run ended: polish in `f64` when the `f32` run stalled above the tolerance
    /// (as the in-memory fit does), else the model.
    fn lbfgs_done(
        &mut self,
        map: ClassMap,
        wide: bool,
        before: usize,
        res: crate::optim::LbfgsResult,
    ) -> Result<()> {
        let Estimator::LogisticRegression(p) = self.last.clone() else {
            unreachable!("lbfgs is logistic regression");
        };
        let n_iter = before + res.n_iter;
        let stalled = matches!(
            res.termination,
            Termination::LineSearch | Termination::Objective
        );
        if !wide && stalled && res.gnorm_inf > p.tol && n_iter < p.max_iter {
            self.stage = Stage::Lbfgs {
                map,
                wide: true,
                before: n_iter,
                run: LbfgsRun::new(res.x),
            };
            return Ok(());
        }
        let converged = res.converged();
        if !converged {
            self.warnings.push(crate::warnings::not_converged(
                "LogisticRegression",
                "lbfgs",
                p.max_iter,
            ));
        }
        let model = FittedLogisticRegression::from_solution(
            &res.x,
            self.n_features,
            p.fit_intercept,
            map,
            n_iter,
            converged,
        );
        self.finish(model.into())
    }

    fn finish(&mut self, model: FittedModel) -> Result<()> {
        let model = if self.steps.is_empty() {
            model
        } else {
            FittedModel::Pipeline(FittedPipeline {
                steps: self.fitted.clone(),
                estimator: Box::new(model),
            })
        };
        self.stage = Stage::Done(model);
        Ok(())
    }

    /// The merged result of the pass [`DataParallelFit::ask`] asked for.
    pub fn tell(&mut self, partial: Partial) -> Result<()> {
        self.passes += 1;
        let wrong = || ModelError::data("data-parallel fit", "a partial result of another pass");
        match (&mut self.stage, partial) {
            (Stage::Step(i), Partial::Moments(m)) => {
                let i = *i;
                let TransformerSpec::StandardScaler(p) = &self.steps[i] else {
                    return Err(wrong());
                };
                let mask = self.mask(i)?;
                same_len(mask.len(), m.count.len())?;
                let scaler = p.check_ref()?.finish(m.mean, &m.m2, &m.count, &mask)?;
                self.fitted_step(i, FittedTransformer::StandardScaler(scaler))?;
            }
            (Stage::Step(i), Partial::ColumnStats(c)) => {
                let i = *i;
                c.check(&self.schema)?;
                let t = match &self.steps[i] {
                    TransformerSpec::SimpleImputer(p) => FittedTransformer::SimpleImputer(
                        p.check_ref()?.fit_stats(&self.schema, &c, None)?,
                    ),
                    TransformerSpec::OneHotEncoder(p) => FittedTransformer::OneHotEncoder(
                        p.check_ref()?.fit_stats(&self.schema, &c)?,
                    ),
                    TransformerSpec::OrdinalEncoder(p) => FittedTransformer::OrdinalEncoder(
                        p.check_ref()?.fit_stats(&self.schema, &c)?,
                    ),
                    _ => return Err(wrong()),
                };
                self.fitted_step(i, t)?;
            }
            (Stage::Step(i), Partial::CrossMoments(m)) => {
                let i = *i;
                let TransformerSpec::Pca(p) = &self.steps[i] else {
                    return Err(wrong());
                };
                same_len(m.mean_x.len(), self.n_features)?;
                same_len(m.xx.len(), self.n_features * self.n_features)?;
                let pca = p.check_ref()?.finish(m)?;
                self.fitted_step(i, FittedTransformer::Pca(pca))?;
            }
            (Stage::KMeans { fit, .. }, Partial::KMeansSample(s)) => {
                fit.tell(KMeansPart::Sample(s))?;
            }
            (Stage::KMeans { fit, .. }, Partial::Lloyd(parts)) => {
                fit.tell(KMeansPart::Lloyd(parts))?;
            }
            (Stage::Sgd(fit), Partial::Sgd(part)) => {
                let objective = fit.tell(part)?;
                // SGD has no gradient to show.
                self.losses.push((objective, f64::NAN));
            }
            (Stage::Counts, Partial::ClassCounts(counts)) => {
                same_len(counts.len(), self.n_classes)?;
                let map = ClassMap::from_counts(&counts, &self.last.name())?;
                if let Estimator::SgdClassifier(p) = &self.last {
                    self.stage = Stage::Sgd(Box::new(SgdFit::new(p, self.n_features, Some(map))));
                    return Ok(());
                }
                let k = if map.present.len() == 2 {
                    1
                } else {
                    map.present.len()
                };
                let d = self.n_features;
                let b = if self.fit_intercept() { k } else { 0 };
                self.stage = Stage::Lbfgs {
                    map,
                    wide: false,
                    before: 0,
                    run: LbfgsRun::new(vec![0.0; k * d + b]),
                };
            }
            (Stage::Lbfgs { run, map, .. }, Partial::LogLoss { mut f, mut g }) => {
                let Estimator::LogisticRegression(p) = &self.last else {
                    return Err(wrong());
                };
                let Some(w) = self.asked.take() else {
                    return Err(wrong());
                };
                same_len(w.len(), g.len())?;
                let l2 = p.check_ref()?.l2(self.n_samples as usize);
                let k = if map.present.len() == 2 {
                    1
                } else {
                    map.present.len()
                };
                add_penalty(&mut f, &mut g, &w, l2, k * self.n_features);
                let gn = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                self.losses.push((f, gn));
                run.tell(f, g);
            }
            (Stage::Final, Partial::ClassMoments { classes, all }) => {
                let Estimator::GaussianNb(p) = &self.last else {
                    return Err(wrong());
                };
                // No cell is missing (the input check), so a class's rows are its count in
                // any column.
                let rows = |m: &Moments| m.count.first().copied().unwrap_or(0);
                same_len(classes.len(), self.n_classes)?;
                let counts: Vec<u64> = classes.iter().map(rows).collect();
                let map = ClassMap::from_counts(&counts, "gaussian_nb")?;
                let mut count = Vec::new();
                let (mut theta, mut var) = (Vec::new(), Vec::new());
                for &c in &map.present {
                    let m = &classes[c as usize];
                    count.push(rows(m));
                    theta.extend_from_slice(&m.mean);
                    var.extend_from_slice(&m.m2);
                }
                let max_var = all.variance().into_iter().fold(0.0, f64::max);
                let model = p.check_ref()?.finish(map, &count, theta, var, max_var)?;
                self.finish(model.into())?;
            }
            (Stage::Final, Partial::CrossMoments(c)) => {
                let alpha = match &self.last {
                    Estimator::Ridge(p) => p.alpha,
                    Estimator::LinearRegression(_) => 0.0,
                    _ => return Err(wrong()),
                };
                let d = c.xy.len();
                let model = if self.fit_intercept() {
                    solve_normal(c.xx, &c.xy, alpha, Some((&c.mean_x, c.mean_y)))?
                } else {
                    // The raw products: XᵀX = XcᵀXc + n x̄x̄ᵀ, Xᵀy = Xcᵀyc + n x̄ ȳ.
                    let n = c.n as f64;
                    let mut xx = c.xx;
                    let mut xy = c.xy;
                    for i in 0..d {
                        xy[i] += n * c.mean_x[i] * c.mean_y;
                        for j in 0..d {
                            xx[i * d + j] += n * c.mean_x[i] * c.mean_x[j];
                        }
                    }
                    solve_normal(xx, &xy, alpha, None)?
                };
                self.finish(model.into())?;
            }
            _ => return Err(wrong()),
        }
        Ok(())
    }
}

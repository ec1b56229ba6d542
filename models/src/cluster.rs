//! k-means clustering (scikit-learn's `KMeans`, Lloyd's algorithm).
//!
//! The fit is written once, as passes over blocks of rows ([`KMeansFit`]): an in-memory
//! fit runs it on all rows as one block, a data-parallel one on chunks where they live, so
//! both give the same centres from the same data.
//!
//! 1. **One pass for the start**: the per-column variances (scikit-learn's tolerance is
//!    `tol` times their mean) and a sample of rows ([`SamplePart`]). A row is in the
//!    sample when a hash of its values (and the seed) falls below a threshold, so the
//!    sample does not depend on how rows are split into chunks; it is ordered by that hash.
//!    It holds every row up to [`init_sample_rows`] rows of data and about that many past
//!    it; `init` (k-means++, greedy with `2 + ln k` trials per centre as in scikit-learn, or
//!    `random`) runs on it, once per `n_init`.
//! 2. **Lloyd passes** ([`LloydPart`]): for the centres of every run still going, each row
//!    joins its nearest centre; the pass sums rows, counts and squared distances per
//!    cluster, and keeps the rows farthest from their centres. The new centres are the
//!    means. A cluster left empty takes the farthest row, as scikit-learn relocates it. A
//!    run stops when the centres move less than the tolerance (the sum of squared shifts)
//!    or after `max_iter` passes; one more pass gives its inertia at the final centres
//!    (scikit-learn's last E-step). All `n_init` runs share each pass.
//! 3. The run with the lowest inertia wins (the first on ties).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::parallel::Moments;
use crate::rng::Rng;
use crate::schema::{check_model_input, ColumnKind};
use crate::traits::{
    parse_opt_usize, parse_value, unknown_param, Checked, Classifier, Fit, Model, Params,
    Transformer,
};

/// How a k-means run picks its first centres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KMeansInit {
    /// k-means++ (greedy, `2 + ln k` candidates per centre).
    #[serde(rename = "k-means++")]
    KMeansPlusPlus,
    /// `n_clusters` distinct rows at random.
    Random,
    /// These centres (`n_clusters` rows of `n_features`).
    Array(Vec<Vec<f64>>),
}

/// Hyperparameters of k-means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KMeansParams {
    /// Clusters. Default 8.
    pub n_clusters: usize,
    /// Initial centres. Default k-means++.
    pub init: KMeansInit,
    /// Runs from different starts; `None` is scikit-learn's `"auto"`: 10 for `random`,
    /// else 1.
    #[serde(default)]
    pub n_init: Option<usize>,
    /// Lloyd iterations per run. Default 300.
    pub max_iter: usize,
    /// Stop when the centres' squared shifts sum below `tol` times the mean column
    /// variance. Default 1e-4.
    pub tol: f64,
    /// Seed of the starts.
    #[serde(default)]
    pub random_state: Option<u64>,
}

impl Default for KMeansParams {
    fn default() -> Self {
        Self {
            n_clusters: 8,
            init: KMeansInit::KMeansPlusPlus,
            n_init: None,
            max_iter: 300,
            tol: 1e-4,
            random_state: None,
        }
    }
}

impl Params for KMeansParams {
    const NAME: &'static str = "kmeans";
    const ALIASES: &'static [&'static str] = &["KMeans", "k_means"];
    const DESCRIPTION: &'static str = "k-means clustering (Lloyd); transforms to centre distances";
    const PARAM_NAMES: &'static [&'static str] = &[
        "n_clusters",
        "init",
        "n_init",
        "max_iter",
        "tol",
        "random_state",
    ];

    fn validate(&self) -> Result<()> {
        let bad = |k: &str, m: String| Err(ModelError::param(Self::NAME, k, m));
        if self.n_clusters == 0 {
            return bad("n_clusters", "must be >= 1".into());
        }
        if self.n_init == Some(0) {
            return bad("n_init", "must be >= 1 or auto".into());
        }
        if self.max_iter == 0 {
            return bad("max_iter", "must be >= 1".into());
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return bad(
                "tol",
                format!("must be a finite number >= 0, got {}", self.tol),
            );
        }
        if let KMeansInit::Array(c) = &self.init {
            if c.len() != self.n_clusters {
                return bad(
                    "init",
                    format!(
                        "{} initial centres for n_clusters={}",
                        c.len(),
                        self.n_clusters
                    ),
                );
            }
            let d = c.first().map_or(0, Vec::len);
            if d == 0
                || c.iter()
                    .any(|r| r.len() != d || r.iter().any(|v| !v.is_finite()))
            {
                return bad(
                    "init",
                    "initial centres must be rows of the same length, finite".into(),
                );
            }
        }
        Ok(())
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "n_clusters" => {
                self.n_clusters = parse_value(Self::NAME, key, value, "a positive integer")?
            }
            "init" => {
                self.init = match value.trim() {
                    "k-means++" | "kmeans++" => KMeansInit::KMeansPlusPlus,
                    "random" => KMeansInit::Random,
                    v => {
                        return Err(ModelError::param(
                            Self::NAME,
                            key,
                            format!(
                                "'{v}' is not k-means++ or random (centres go in a job file: \
                                 init = {{ array = [[...], ...] }})"
                            ),
                        ))
                    }
                }
            }
            "n_init" => {
                self.n_init = match value.trim() {
                    "auto" => None,
                    v => parse_opt_usize(Self::NAME, key, v)?,
                }
            }
            "max_iter" => {
                self.max_iter = parse_value(Self::NAME, key, value, "a positive integer")?
            }
            "tol" => self.tol = parse_value(Self::NAME, key, value, "a number")?,
            "random_state" => {
                self.random_state = parse_opt_usize(Self::NAME, key, value)?.map(|v| v as u64)
            }
            _ => return Err(unknown_param::<Self>(key)),
        }
        Ok(())
    }

    fn seed_unset(&mut self, seed: u64) {
        self.random_state.get_or_insert(seed);
    }
}

impl KMeansParams {
    /// Runs: `n_init`, or scikit-learn's `"auto"` (10 for random starts, else 1); one for
    /// given centres.
    pub fn runs(&self) -> usize {
        match (&self.init, self.n_init) {
            (KMeansInit::Array(_), _) => 1,
            (_, Some(n)) => n,
            (KMeansInit::Random, None) => 10,
            (KMeansInit::KMeansPlusPlus, None) => 1,
        }
    }
}

/// A fitted k-means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedKMeans {
    /// `k x d` row-major.
    centres: Vec<f64>,
    k: usize,
    /// Sum of squared distances of the rows to their nearest centre (`inertia_`).
    inertia: f64,
    /// Lloyd iterations of the winning run (`n_iter_`).
    n_iter: usize,
}

impl FittedKMeans {
    /// The centres, `n_clusters x n_features` row-major (`cluster_centers_`).
    pub fn cluster_centers(&self) -> &[f64] {
        &self.centres
    }

    /// Clusters.
    pub fn n_clusters(&self) -> usize {
        self.k
    }

    /// Sum of squared distances of the training rows to their nearest centre.
    pub fn inertia(&self) -> f64 {
        self.inertia
    }

    /// Lloyd iterations of the winning run.
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    fn d(&self) -> usize {
        self.centres.len() / self.k.max(1)
    }

    /// The centres' width, once the model is known to be whole (a model decoded from
    /// another node may not be).
    fn checked_d(&self) -> Result<usize> {
        if self.k == 0 || self.centres.is_empty() || !self.centres.len().is_multiple_of(self.k) {
            return Err(ModelError::data(
                KMeansParams::NAME,
                "a model without centres, or whose centres are not k rows",
            ));
        }
        Ok(self.d())
    }

    /// The nearest centre of every row (`predict`).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        let d = self.checked_d()?;
        crate::traits::check_input(x, d, KMeansParams::NAME)?;
        Ok(x.data()
            .chunks_exact(d)
            .map(|row| nearest(row, &self.centres, d).0 as u32)
            .collect())
    }

    /// Minus the sum of squared distances of the rows to their nearest centre
    /// (scikit-learn's `score`).
    pub fn score(&self, x: &Matrix) -> Result<f64> {
        Ok(-Model::inertia(self, x)?)
    }
}

/// k-means on its own is a model whose classes are its clusters.
impl Classifier for FittedKMeans {
    fn n_features(&self) -> usize {
        self.d()
    }

    fn n_classes(&self) -> usize {
        self.k
    }

    fn predict_proba(&self, _x: &Matrix) -> Result<Matrix> {
        Err(ModelError::data(
            "kmeans",
            "k-means has no probabilities: it predicts each row's cluster",
        ))
    }

    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        FittedKMeans::predict(self, x)
    }
}

impl Model for FittedKMeans {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Ok(self)
    }

    fn is_clusterer(&self) -> bool {
        true
    }

    fn inertia(&self, x: &Matrix) -> Result<f64> {
        let d = self.checked_d()?;
        crate::traits::check_input(x, d, KMeansParams::NAME)?;
        Ok(x.data()
            .chunks_exact(d)
            .map(|row| nearest(row, &self.centres, d).1)
            .sum::<f64>())
    }
}

impl Transformer for FittedKMeans {
    fn n_features_in(&self) -> usize {
        self.d()
    }

    /// Distances to every centre (scikit-learn's `transform`).
    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        let d = self.checked_d()?;
        crate::traits::check_input(x, d, KMeansParams::NAME)?;
        let mut out = Vec::with_capacity(x.rows() * self.k);
        for row in x.data().chunks_exact(d) {
            for c in self.centres.chunks_exact(d) {
                out.push(dist2(row, c).sqrt() as f32);
            }
        }
        Matrix::from_vec(x.rows(), self.k, out)
    }

    fn feature_names_out(&self, _names: &[String]) -> Vec<String> {
        (0..self.k).map(|i| format!("kmeans{i}")).collect()
    }

    fn kinds_out(&self, _kinds: &[ColumnKind]) -> Vec<ColumnKind> {
        vec![ColumnKind::Numeric; self.k]
    }
}

impl Fit for Checked<KMeansParams> {
    type Fitted = FittedKMeans;

    /// The passes of [`KMeansFit`] on all rows as one block.
    fn fit(&self, data: &Dataset) -> Result<FittedKMeans> {
        check_model_input(data, KMeansParams::NAME, false)?;
        self.fit_matrix(data.x())
    }
}

impl Checked<KMeansParams> {
    /// Fits on the rows of a matrix of numbers.
    pub fn fit_matrix(&self, x: &Matrix) -> Result<FittedKMeans> {
        self.fit_keyed(x, &row_keys(x))
    }

    /// Fits on `data`, a pipeline's rows after its earlier steps, sampling the starts by
    /// `keys`: the [`row_keys`] of the rows the pipeline was given. Steps fitted over chunks
    /// may differ from one block's in the last bits; the rows they were given do not.
    pub(crate) fn fit_step(&self, data: &Dataset, keys: &[u64]) -> Result<FittedKMeans> {
        check_model_input(data, KMeansParams::NAME, false)?;
        self.fit_keyed(data.x(), keys)
    }

    fn fit_keyed(&self, x: &Matrix, keys: &[u64]) -> Result<FittedKMeans> {
        x.check_finite("training data")?;
        let mut fit = KMeansFit::new(self, x.cols(), x.rows() as u64)?;
        loop {
            let part = match fit.ask() {
                KMeansAsk::Done(m) => return Ok(m),
                KMeansAsk::Sample { p, seed } => {
                    KMeansPart::Sample(SamplePart::of(x, keys, p, seed)?)
                }
                KMeansAsk::Lloyd(centres) => KMeansPart::Lloyd(LloydPart::of(x, &centres)),
            };
            fit.tell(part)?;
        }
    }
}

/// Squared Euclidean distance, in `f64`.
fn dist2(row: &[f32], c: &[f64]) -> f64 {
    row.iter()
        .zip(c)
        .map(|(&a, b)| {
            let t = f64::from(a) - b;
            t * t
        })
        .sum()
}

/// The nearest of the `d`-wide centres (the first on ties) and the squared distance.
fn nearest(row: &[f32], centres: &[f64], d: usize) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (i, c) in centres.chunks_exact(d).enumerate() {
        let t = dist2(row, c);
        if t < best.1 {
            best = (i, t);
        }
    }
    best
}

/// Sample rows of data for the starts: all rows up to this many, and about this many
/// beyond (at least 20 per cluster, and fewer for very wide rows, so one chunk's share
/// stays within a worker's answer).
pub fn init_sample_rows(k: usize, d: usize) -> usize {
    let by_bytes = (1usize << 20) / (4 * d + 24);
    by_bytes.clamp(1000, 10_000).max(20 * k)
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of a row's values and the seed, the same wherever the row is.
pub(crate) fn row_hash(row: &[f32], seed: u64) -> u64 {
    let mut h = mix(seed ^ 0x9E37_79B9_7F4A_7C15);
    for v in row {
        h = mix(h ^ u64::from(v.to_bits()));
    }
    h
}

/// A row key's hash under `seed`: rows are sampled by this falling below a cut.
pub(crate) fn seeded(key: u64, seed: u64) -> u64 {
    mix(key ^ mix(seed ^ 0x9E37_79B9_7F4A_7C15))
}

/// Every row's [`row_hash`] with seed 0: what identifies a row, wherever it is stored.
pub(crate) fn row_keys(x: &Matrix) -> Vec<u64> {
    x.data()
        .chunks_exact(x.cols().max(1))
        .map(|r| row_hash(r, 0))
        .collect()
}

/// The first pass's result over some rows: column moments and the sampled rows with their
/// hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplePart {
    /// Every column's moments.
    pub moments: Moments,
    /// Sampled rows, each with its hash.
    pub rows: Vec<(u64, Vec<f32>)>,
}

impl SamplePart {
    /// The moments of `x` and its rows whose hash (of the row's key, one per row, and the
    /// seed) falls in the first `p` of the range.
    pub fn of(x: &Matrix, keys: &[u64], p: f64, seed: u64) -> Result<Self> {
        let d = x.cols();
        if keys.len() != x.rows() {
            return Err(ModelError::Shape(format!(
                "{} row keys for {} rows",
                keys.len(),
                x.rows()
            )));
        }
        let xd = x.data();
        let rows = xd.chunks_exact(d.max(1));
        let cut = if p >= 1.0 {
            u64::MAX
        } else {
            (p * u64::MAX as f64) as u64
        };
        let sample = if p <= 0.0 {
            Vec::new()
        } else {
            rows.clone()
                .zip(keys)
                .filter_map(|(r, &key)| {
                    let h = seeded(key, seed);
                    (h <= cut).then(|| (h, r.to_vec()))
                })
                .collect()
        };
        Ok(Self {
            moments: Moments::of(rows, d, None),
            rows: sample,
        })
    }

    /// Adds another block's.
    pub fn merge(&mut self, o: &SamplePart) -> Result<()> {
        self.moments.merge(&o.moments)?;
        self.rows.extend(o.rows.iter().cloned());
        Ok(())
    }
}

/// A row far from its centre, a candidate for an empty cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Far {
    /// Squared distance to its centre.
    pub dist: f64,
    /// Its cluster.
    pub label: u32,
    /// The row.
    pub row: Vec<f32>,
}

/// Farthest first; ties by the row's values, then the cluster, so the order is the same
/// however rows are split.
fn far_order(a: &Far, b: &Far) -> Ordering {
    b.dist
        .total_cmp(&a.dist)
        .then_with(|| {
            a.row
                .iter()
                .zip(&b.row)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
        .then(a.label.cmp(&b.label))
}

/// One run's Lloyd pass over some rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LloydPart {
    /// Per cluster, the sum of its rows (`k x d`).
    pub sums: Vec<f64>,
    /// Per cluster, its rows.
    pub counts: Vec<u64>,
    /// Sum of squared distances to the nearest centre.
    pub inertia: f64,
    /// The rows farthest from their centres, at most `k`: farthest first, ties by the
    /// row's values.
    pub far: Vec<Far>,
}

impl LloydPart {
    /// Every run's pass over `x`: `centres` holds each run's `k x d` centres.
    pub fn of(x: &Matrix, centres: &[Vec<f64>]) -> Vec<LloydPart> {
        let d = x.cols().max(1);
        centres
            .iter()
            .map(|c| {
                let k = c.len() / d;
                let mut part = LloydPart {
                    sums: vec![0.0; k * d],
                    counts: vec![0; k],
                    inertia: 0.0,
                    far: Vec::new(),
                };
                for row in x.data().chunks_exact(d) {
                    let (i, t) = nearest(row, c, d);
                    part.counts[i] += 1;
                    part.inertia += t;
                    for (s, &v) in part.sums[i * d..(i + 1) * d].iter_mut().zip(row) {
                        *s += f64::from(v);
                    }
                    let full = part.far.len() >= k;
                    if !full || part.far.last().is_some_and(|f| t >= f.dist) {
                        part.far.push(Far {
                            dist: t,
                            label: i as u32,
                            row: row.to_vec(),
                        });
                        part.far.sort_by(far_order);
                        part.far.truncate(k);
                    }
                }
                part
            })
            .collect()
    }

    /// Adds another block's pass of the same run.
    pub fn merge(&mut self, o: &LloydPart) -> Result<()> {
        if self.sums.len() != o.sums.len() || self.counts.len() != o.counts.len() {
            return Err(ModelError::Shape("k-means partials of other shapes".into()));
        }
        self.sums.iter_mut().zip(&o.sums).for_each(|(a, b)| *a += b);
        self.counts
            .iter_mut()
            .zip(&o.counts)
            .for_each(|(a, b)| *a += b);
        self.inertia += o.inertia;
        self.far.extend(o.far.iter().cloned());
        self.far.sort_by(far_order);
        self.far.truncate(self.counts.len());
        Ok(())
    }
}

/// What a k-means fit needs next.
#[derive(Debug, Clone)]
pub enum KMeansAsk {
    /// The first pass: moments and the rows whose hash (with `seed`) falls in the first
    /// `p` of the range.
    Sample {
        /// The sampled share of the hash range.
        p: f64,
        /// The hash's seed.
        seed: u64,
    },
    /// A Lloyd pass with each running start's centres.
    Lloyd(Vec<Vec<f64>>),
    /// The model.
    Done(FittedKMeans),
}

/// A pass's merged result.
#[derive(Debug, Clone)]
pub enum KMeansPart {
    /// Of [`KMeansAsk::Sample`].
    Sample(SamplePart),
    /// Of [`KMeansAsk::Lloyd`], one per centre set asked.
    Lloyd(Vec<LloydPart>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    centres: Vec<f64>,
    n_iter: usize,
    /// Stopped; its next pass gives the inertia.
    stopped: bool,
    inertia: Option<f64>,
}

/// A k-means fit between passes (see the module docs): plain data, so a data-parallel
/// driver checkpoints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KMeansFit {
    params: KMeansParams,
    d: usize,
    n: u64,
    seed: u64,
    /// `tol` times the mean column variance, once known.
    tol: Option<f64>,
    runs: Vec<Run>,
}

impl KMeansFit {
    /// A fit on `n` rows of `d` columns.
    pub fn new(params: &Checked<KMeansParams>, d: usize, n: u64) -> Result<Self> {
        let k = params.n_clusters;
        if n < k as u64 {
            return Err(ModelError::data(
                "training data",
                format!("n_samples={n} should be >= n_clusters={k}"),
            ));
        }
        if let KMeansInit::Array(c) = &params.init {
            if c[0].len() != d {
                return Err(ModelError::param(
                    KMeansParams::NAME,
                    "init",
                    format!("initial centres of {} features for data of {d}", c[0].len()),
                ));
            }
        }
        Ok(Self {
            params: params.params().clone(),
            d,
            n,
            seed: params.random_state.unwrap_or(0),
            tol: None,
            runs: Vec::new(),
        })
    }

    /// Lloyd iterations so far of the runs still going (for progress).
    pub fn n_iter(&self) -> usize {
        self.runs.iter().map(|r| r.n_iter).max().unwrap_or(0)
    }

    /// What the fit needs next.
    pub fn ask(&self) -> KMeansAsk {
        if self.tol.is_none() {
            let p = match self.params.init {
                KMeansInit::Array(_) => 0.0,
                _ => init_sample_rows(self.params.n_clusters, self.d) as f64 / self.n as f64,
            };
            return KMeansAsk::Sample {
                p: p.min(1.0),
                seed: self.seed,
            };
        }
        let going: Vec<Vec<f64>> = self
            .runs
            .iter()
            .filter(|r| r.inertia.is_none())
            .map(|r| r.centres.clone())
            .collect();
        if !going.is_empty() {
            return KMeansAsk::Lloyd(going);
        }
        let mut best = &self.runs[0];
        for r in &self.runs[1..] {
            if r.inertia < best.inertia {
                best = r;
            }
        }
        KMeansAsk::Done(FittedKMeans {
            centres: best.centres.clone(),
            k: self.params.n_clusters,
            inertia: best.inertia.unwrap_or(0.0),
            n_iter: best.n_iter,
        })
    }

    /// The merged result of the pass [`KMeansFit::ask`] asked for.
    pub fn tell(&mut self, part: KMeansPart) -> Result<()> {
        let wrong = || ModelError::data("k-means", "a partial result of another pass");
        match part {
            KMeansPart::Sample(s) if self.tol.is_none() => {
                if s.moments.count.len() != self.d
                    || s.moments.mean.len() != self.d
                    || s.moments.m2.len() != self.d
                    || s.rows.iter().any(|(_, r)| r.len() != self.d)
                {
                    return Err(wrong());
                }
                let var = s.moments.variance();
                self.tol = Some(self.params.tol * var.iter().sum::<f64>() / self.d as f64);
                self.runs = self.starts(s.rows)?;
            }
            KMeansPart::Lloyd(parts) => {
                let going: Vec<&mut Run> = self
                    .runs
                    .iter_mut()
                    .filter(|r| r.inertia.is_none())
                    .collect();
                if going.is_empty() || going.len() != parts.len() {
                    return Err(wrong());
                }
                let (d, tol) = (self.d, self.tol.unwrap_or(0.0));
                let k = self.params.n_clusters;
                for (run, part) in going.into_iter().zip(parts) {
                    // A partial may come from another node: its shape is checked before use.
                    if part.sums.len() != run.centres.len()
                        || part.counts.len() != k
                        || part
                            .far
                            .iter()
                            .any(|f| f.label as usize >= k || f.row.len() != d)
                    {
                        return Err(wrong());
                    }
                    if run.stopped {
                        run.inertia = Some(part.inertia);
                        continue;
                    }
                    let new = update(&part, d);
                    let shift: f64 = new
                        .iter()
                        .zip(&run.centres)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    run.centres = new;
                    run.n_iter += 1;
                    run.stopped = shift <= tol || run.n_iter >= self.params.max_iter;
                }
            }
            KMeansPart::Sample(_) => return Err(wrong()),
        }
        Ok(())
    }

    /// Each run's first centres.
    fn starts(&self, mut sample: Vec<(u64, Vec<f32>)>) -> Result<Vec<Run>> {
        let (k, d) = (self.params.n_clusters, self.d);
        let run = |centres| Run {
            centres,
            n_iter: 0,
            stopped: false,
            inertia: None,
        };
        if let KMeansInit::Array(c) = &self.params.init {
            return Ok(vec![run(c.concat())]);
        }
        sample.sort_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                a.1.iter()
                    .zip(&b.1)
                    .map(|(x, y)| x.total_cmp(y))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
        });
        let rows: Vec<&[f32]> = sample.iter().map(|(_, r)| r.as_slice()).collect();
        if rows.len() < k {
            return Err(ModelError::data(
                "training data",
                format!(
                    "the sample for the starting centres has {} rows, fewer than \
                     n_clusters={k}",
                    rows.len()
                ),
            ));
        }
        let mut rng = Rng::seed_from_u64(self.seed);
        Ok((0..self.params.runs())
            .map(|_| {
                run(match self.params.init {
                    KMeansInit::Random => rng.permutation(rows.len())[..k]
                        .iter()
                        .flat_map(|&i| rows[i].iter().map(|&v| f64::from(v)))
                        .collect(),
                    _ => plus_plus(&rows, k, d, &mut rng),
                })
            })
            .collect())
    }
}

/// The means of a Lloyd pass, with scikit-learn's relocation of empty clusters: each takes
/// the next farthest row from its cluster.
fn update(part: &LloydPart, d: usize) -> Vec<f64> {
    let k = part.counts.len();
    let mut sums = part.sums.clone();
    let mut counts = part.counts.clone();
    let empty: Vec<usize> = (0..k).filter(|&c| counts[c] == 0).collect();
    for (&e, f) in empty.iter().zip(&part.far) {
        let old = f.label as usize;
        if counts[old] == 0 {
            continue;
        }
        for (j, &v) in f.row.iter().enumerate() {
            sums[old * d + j] -= f64::from(v);
            sums[e * d + j] = f64::from(v);
        }
        counts[old] -= 1;
        counts[e] = 1;
    }
    for c in 0..k {
        if counts[c] > 0 {
            let inv = 1.0 / counts[c] as f64;
            sums[c * d..(c + 1) * d].iter_mut().for_each(|s| *s *= inv);
        }
    }
    sums
}

/// Greedy k-means++ on `rows`: the first centre uniformly, each next one the best of
/// `2 + ln k` candidates drawn in proportion to the squared distance to the centres so far.
fn plus_plus(rows: &[&[f32]], k: usize, d: usize, rng: &mut Rng) -> Vec<f64> {
    let m = rows.len();
    let trials = 2 + (k as f64).ln() as usize;
    let mut centres: Vec<f64> = Vec::with_capacity(k * d);
    let first: Vec<f64> = rows[rng.below(m)].iter().map(|&v| f64::from(v)).collect();
    let mut closest: Vec<f64> = rows.iter().map(|r| dist2(r, &first)).collect();
    centres.extend(first);
    for _ in 1..k {
        let pot: f64 = closest.iter().sum();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let r = rng.next_f64() * pot;
            let mut acc = 0.0;
            let mut pick = m - 1;
            for (i, c) in closest.iter().enumerate() {
                acc += c;
                if acc > r {
                    pick = i;
                    break;
                }
            }
            let cand: Vec<f64> = rows[pick].iter().map(|&v| f64::from(v)).collect();
            let new: Vec<f64> = rows
                .iter()
                .zip(&closest)
                .map(|(r, &c)| c.min(dist2(r, &cand)))
                .collect();
            let p: f64 = new.iter().sum();
            if best.as_ref().is_none_or(|b| p < b.0) {
                best = Some((p, pick, new));
            }
        }
        let (_, pick, new) = best.expect("at least two trials");
        closest = new;
        centres.extend(rows[pick].iter().map(|&v| f64::from(v)));
    }
    centres
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> Matrix {
        // Two tight groups around (0, 0) and (10, 10).
        let mut v = Vec::new();
        for i in 0..20 {
            let e = (i % 5) as f32 * 0.1;
            v.extend([e, -e]);
            v.extend([10.0 + e, 10.0 - e]);
        }
        Matrix::from_vec(40, 2, v).unwrap()
    }

    #[test]
    fn two_blobs_give_their_means_and_the_partial_passes_merge() {
        let x = blobs();
        let mut p = KMeansParams {
            n_clusters: 2,
            random_state: Some(3),
            ..KMeansParams::default()
        };
        let m = p.check_ref().unwrap().fit_matrix(&x).unwrap();
        let mut c = m.cluster_centers().to_vec();
        if c[0] > c[2] {
            c.rotate_left(2);
        }
        for (got, want) in c.iter().zip([0.2, -0.2, 10.2, 9.8]) {
            approx::assert_abs_diff_eq!(*got, want, epsilon = 1e-6);
        }
        // inertia: 20 rows per blob with offsets (e, -e), e in {0, .1, .2, .3, .4} four
        // times each, around the mean offset 0.2: 2 * 4 * 2 * (0.04 + 0.01 + 0 + 0.01 + 0.04)
        approx::assert_abs_diff_eq!(m.inertia(), 1.6, epsilon = 1e-5);
        assert_eq!(m.predict(&x).unwrap()[0], m.predict(&x).unwrap()[2]);
        assert_ne!(m.predict(&x).unwrap()[0], m.predict(&x).unwrap()[1]);
        // Split into blocks and merged: the same sums.
        let centres = vec![vec![0.0, 0.0, 1.0, 1.0]];
        let whole = LloydPart::of(&x, &centres);
        let a = x.select_rows(&(0..13).collect::<Vec<_>>()).unwrap();
        let b = x.select_rows(&(13..40).collect::<Vec<_>>()).unwrap();
        let mut merged = LloydPart::of(&a, &centres);
        merged[0].merge(&LloydPart::of(&b, &centres)[0]).unwrap();
        assert_eq!(merged[0].counts, whole[0].counts);
        assert_eq!(merged[0].far, whole[0].far);
        approx::assert_abs_diff_eq!(merged[0].inertia, whole[0].inertia, epsilon = 1e-9);
        p.n_clusters = 41;
        assert!(p.check_ref().unwrap().fit_matrix(&x).is_err());
    }

    #[test]
    fn an_empty_cluster_takes_the_farthest_row() {
        // Centres at 0 and 100 on rows 0, 1, 2, 9: the second is empty and takes row 9.
        let x = Matrix::from_vec(4, 1, vec![0., 1., 2., 9.]).unwrap();
        let part = LloydPart::of(&x, &[vec![0.0, 100.0]]).remove(0);
        assert_eq!(part.counts, vec![4, 0]);
        let c = update(&part, 1);
        assert_eq!(c, vec![1.0, 9.0]);
    }
}

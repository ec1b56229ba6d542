//! Gradient-boosted histogram trees: scikit-learn's `HistGradientBoostingClassifier` and
//! `HistGradientBoostingRegressor` (issue 18).
//!
//! Columns are binned once ([`crate::binning`], scikit-learn's thresholds); each
//! iteration computes every row's gradient and hessian of the loss ([`Loss`]) at the
//! current raw predictions, grows one tree per class from their histograms
//! ([`grower`]), and adds the tree's leaf values, shrunk by `learning_rate`, to the raw
//! predictions. Missing cells bin apart and each split learns their side; categorical
//! columns split into two sets of categories. Early stopping holds out a share of the
//! rows and stops when the loss on them has not improved for `n_iter_no_change`
//! iterations.
//!
//! ```
//! use meshml_models::boosting::{EarlyStopping, HistGradientBoostingClassifierParams};
//! use meshml_models::{io::iris, Classifier, Fit};
//!
//! let mut p = HistGradientBoostingClassifierParams::default();
//! p.boosting.max_iter = 20;
//! p.boosting.random_state = Some(0);
//! let model = p.fit(&iris())?;
//! assert!(model.score(iris().x(), iris().class_target()?.0)? > 0.95);
//! // One tree per class and iteration; gain-based importances sum to 1.
//! assert_eq!(model.trees().len(), 20 * 3);
//! assert!((model.feature_importances().iter().sum::<f64>() - 1.0).abs() < 1e-9);
//! # Ok::<(), meshml_models::ModelError>(())
//! ```
//!
//! Differences from scikit-learn: `interaction_cst`, `loss="gamma"` and `warm_start` are
//! not supported; `scoring` is the loss only; the validation rows and the columns a split
//! may use (`max_features < 1`) are drawn with meshml's generator; above 200,000 rows the
//! binning sample is picked by a hash of the rows; with `class_weight` the bins are
//! computed without the weights (scikit-learn weighs its quantiles); of splittable nodes
//! with exactly equal gains the first found splits first (scikit-learn's heap may take
//! another). With none of these in play the trees are scikit-learn's (the parity tests
//! check raw predictions on closed cases); otherwise the accuracy is compared.

pub mod grower;
pub mod loss;
mod packed;
mod params;

use serde::{Deserialize, Serialize};

pub use loss::Loss;
pub use params::{
    BoostingLoss, CategoricalFeatures, ClassWeight, EarlyStopping,
    HistGradientBoostingClassifierParams, HistGradientBoostingParams,
    HistGradientBoostingRegressorParams,
};

use crate::binning::{BinMapper, ColumnBins, DEFAULT_SUBSAMPLE};
use crate::dataset::{Classes, Dataset};
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::model_selection::{train_test_split, TestSize};
use crate::rng::Rng;
use crate::schema::ColumnKind;
use crate::traits::{check_input_missing_ok, ClassMap, Classifier, Fit, Model, Params};
use crate::Checked;
use grower::{Feature, GrowerParams, TreeNode, Workspace};

/// A fitted boosted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedHistGradientBoosting {
    loss: Loss,
    baseline: Vec<f64>,
    /// Iteration-major: tree `k` of iteration `i` is `trees[i * baseline.len() + k]`.
    trees: Vec<Vec<TreeNode>>,
    n_features: usize,
    /// The classifier's classes (`None` for a regressor).
    classes: Option<ClassMap>,
    /// Per iteration, minus the training loss (scikit-learn's `train_score_`), when
    /// early stopping ran.
    train_score: Vec<f64>,
    /// Per iteration, minus the validation loss, when early stopping held rows out.
    validation_score: Vec<f64>,
    /// The trees packed for prediction, made on first use.
    #[serde(skip)]
    packed: PackedCache,
}

/// [`packed::Packed`] made once, on first use; models equal whether or not it is made.
#[derive(Debug, Clone, Default)]
struct PackedCache(std::sync::OnceLock<Box<packed::Packed>>);

impl PartialEq for PackedCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl FittedHistGradientBoosting {
    /// Iterations run (scikit-learn's `n_iter_`): `max_iter`, or fewer when early
    /// stopping ended the fit.
    pub fn n_iter(&self) -> usize {
        self.trees.len() / self.baseline.len().max(1)
    }

    /// Trees per iteration (scikit-learn's `n_trees_per_iteration_`).
    pub fn n_trees_per_iteration(&self) -> usize {
        self.baseline.len()
    }

    /// Every tree, iteration-major.
    pub fn trees(&self) -> &[Vec<TreeNode>] {
        &self.trees
    }

    /// The raw prediction before any tree (scikit-learn's `_baseline_prediction`).
    pub fn baseline(&self) -> &[f64] {
        &self.baseline
    }

    /// Minus the training loss after each iteration (with early stopping; the first
    /// entry is the baseline's).
    pub fn train_score(&self) -> &[f64] {
        &self.train_score
    }

    /// Minus the validation loss after each iteration (with early stopping on held-out
    /// rows; the first entry is the baseline's).
    pub fn validation_score(&self) -> &[f64] {
        &self.validation_score
    }

    /// Gain-based importance of every column: the loss reductions of its splits, summed
    /// over all trees and normalised to sum to 1 (all zeros when no tree split).
    pub fn feature_importances(&self) -> Vec<f64> {
        let mut imp = vec![0.0; self.n_features];
        for node in self.trees.iter().flatten().filter(|n| !n.is_leaf()) {
            imp[node.feature as usize] += node.gain;
        }
        let total: f64 = imp.iter().sum();
        if total > 0.0 {
            imp.iter_mut().for_each(|v| *v /= total);
        }
        imp
    }

    /// The raw predictions (scikit-learn's `decision_function` for a classifier, before
    /// the inverse link for a regressor), row-major: `n x n_trees_per_iteration`.
    pub fn raw_predict(&self, x: &Matrix) -> Result<Vec<f64>> {
        check_input_missing_ok(x, self.n_features, self.name())?;
        let (n, d) = (x.rows(), x.cols());
        let k = self.baseline.len();
        let xd = x.data();
        let mut out: Vec<f64> = (0..n * k).map(|i| self.baseline[i % k]).collect();
        if n == 0 || d == 0 {
            return Ok(out);
        }
        let packed = self
            .packed
            .0
            .get_or_init(|| Box::new(packed::Packed::new(&self.trees)));
        let xd: &[f32] = &xd[..n * d];
        // Rows split over threads; within a block, tree by tree, so that one tree's
        // nodes stay in cache over the rows.
        let threads = crate::parallel_threads(n * self.trees.len() * 4);
        let per = n.div_ceil(threads);
        let block = |x: &[f32], out: &mut [f64]| {
            for t in 0..self.trees.len() {
                packed.add_tree(t, x, d, out, k, t % k);
            }
        };
        if threads > 1 {
            std::thread::scope(|s| {
                for (x, out) in xd.chunks(per * d).zip(out.chunks_mut(per * k)) {
                    s.spawn(move || block(x, out));
                }
            });
        } else {
            block(xd, &mut out);
        }
        Ok(out)
    }

    fn name(&self) -> &'static str {
        if self.classes.is_some() {
            HistGradientBoostingClassifierParams::NAME
        } else {
            HistGradientBoostingRegressorParams::NAME
        }
    }
}

/// The value of the leaf `row` reaches.
fn leaf_value(tree: &[TreeNode], row: &[f32]) -> f64 {
    let mut node = &tree[0];
    while !node.is_leaf() {
        let v = row[node.feature as usize];
        let left = if v.is_nan() {
            node.missing_left
        } else if let Some(set) = &node.categories {
            // Codes the training rows did not hold go where missing cells go: the fit
            // folded them into the set.
            if (0.0..256.0).contains(&v) {
                set[v as usize >> 6] >> (v as usize & 63) & 1 == 1
            } else {
                node.missing_left
            }
        } else {
            f64::from(v) <= node.threshold
        };
        node = &tree[if left { node.left } else { node.right } as usize];
    }
    node.value
}

impl Classifier for FittedHistGradientBoosting {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.classes.as_ref().map_or(0, |c| c.n_classes)
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        let classes = self.classes.as_ref().ok_or_else(|| {
            ModelError::data(self.name(), "a regressor predicts values, not classes")
        })?;
        let raw = self.raw_predict(x)?;
        let n = x.rows();
        let k = self.baseline.len();
        let mut local = Vec::with_capacity(n * classes.present.len());
        if k == 1 {
            for r in raw {
                let p = loss::expit(r);
                local.push((1.0 - p) as f32);
                local.push(p as f32);
            }
        } else {
            let mut p = vec![0.0; k];
            for row in raw.chunks(k) {
                p.copy_from_slice(row);
                loss::softmax(&mut p);
                local.extend(p.iter().map(|&v| v as f32));
            }
        }
        classes.expand(local, n)
    }
}

impl Model for FittedHistGradientBoosting {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        if self.classes.is_some() {
            Ok(self)
        } else {
            Err(ModelError::data(
                self.name(),
                "a regressor predicts values, not classes",
            ))
        }
    }

    fn n_inputs(&self) -> usize {
        self.n_features
    }

    fn is_regressor(&self) -> bool {
        self.classes.is_none()
    }

    fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        if self.classes.is_some() {
            return Err(ModelError::data(
                self.name(),
                "a classifier predicts classes, not values",
            ));
        }
        Ok(self
            .raw_predict(x)?
            .into_iter()
            .map(|r| self.loss.inverse_link(r) as f32)
            .collect())
    }
}

impl crate::traits::Member for FittedHistGradientBoosting {}

impl Fit for Checked<HistGradientBoostingClassifierParams> {
    type Fitted = FittedHistGradientBoosting;

    fn fit(&self, data: &Dataset) -> Result<FittedHistGradientBoosting> {
        let name = HistGradientBoostingClassifierParams::NAME;
        let (ids, classes) = data.class_target()?;
        let map = ClassMap::from_targets(ids, classes.len(), name)?;
        let local = map.encode(ids);
        let k = map.present.len();
        let y: Vec<f64> = local.iter().map(|&c| f64::from(c)).collect();
        let weights = class_weights(&self.boosting, &local, &map, classes)?;
        let loss = if k == 2 {
            Loss::Binomial
        } else {
            Loss::Multinomial(k)
        };
        if k > 2
            && self
                .boosting
                .monotonic_cst
                .as_ref()
                .is_some_and(|m| m.iter().any(|&c| c != 0))
        {
            return Err(ModelError::param(
                name,
                "monotonic_cst",
                "monotonic constraints are not supported for more than two classes",
            ));
        }
        let mut m = boost(
            &self.boosting,
            name,
            data,
            &y,
            weights.as_deref(),
            loss,
            Some(&local),
        )?;
        m.classes = Some(map);
        Ok(m)
    }
}

impl Fit for Checked<HistGradientBoostingRegressorParams> {
    type Fitted = FittedHistGradientBoosting;

    fn fit(&self, data: &Dataset) -> Result<FittedHistGradientBoosting> {
        let name = HistGradientBoostingRegressorParams::NAME;
        let y: Vec<f64> = data.value_target()?.iter().map(|&v| f64::from(v)).collect();
        if let Some(bad) = y.iter().find(|v| !v.is_finite()) {
            return Err(ModelError::data(name, format!("the target holds {bad}")));
        }
        let loss = match self.boosting.loss {
            BoostingLoss::SquaredError => Loss::SquaredError,
            BoostingLoss::AbsoluteError => Loss::AbsoluteError,
            BoostingLoss::Quantile => Loss::Quantile(self.boosting.quantile.unwrap_or(0.5)),
            BoostingLoss::Poisson => {
                if y.iter().any(|&v| v < 0.0) || y.iter().all(|&v| v == 0.0) {
                    return Err(ModelError::data(
                        name,
                        "loss=poisson needs targets >= 0 that are not all 0",
                    ));
                }
                Loss::Poisson
            }
            BoostingLoss::LogLoss => unreachable!("checked by validate"),
        };
        boost(&self.boosting, name, data, &y, None, loss, None)
    }
}

/// Per-row weights from `class_weight` (none when unset).
fn class_weights(
    p: &HistGradientBoostingParams,
    local: &[u32],
    map: &ClassMap,
    classes: &Classes,
) -> Result<Option<Vec<f64>>> {
    let k = map.present.len();
    let per_class: Vec<f64> = match &p.class_weight {
        None => return Ok(None),
        Some(ClassWeight::Balanced) => {
            let mut counts = vec![0usize; k];
            local.iter().for_each(|&c| counts[c as usize] += 1);
            counts
                .iter()
                .map(|&c| local.len() as f64 / (k as f64 * c as f64))
                .collect()
        }
        Some(ClassWeight::Weights(w)) => {
            let mut out = vec![1.0; k];
            for (label, weight) in w {
                let id = classes.id_of(label).ok_or_else(|| {
                    ModelError::param(
                        HistGradientBoostingClassifierParams::NAME,
                        "class_weight",
                        format!("'{label}' is not a class of the target"),
                    )
                })?;
                if let Some(pos) = map.present.iter().position(|&c| c == id) {
                    out[pos] = *weight;
                }
            }
            out
        }
    };
    Ok(Some(local.iter().map(|&c| per_class[c as usize]).collect()))
}

/// The kinds the binning sees: categorical for the columns that split as categories,
/// numeric for the rest.
fn split_kinds(
    p: &HistGradientBoostingParams,
    name: &'static str,
    data: &Dataset,
) -> Result<Vec<ColumnKind>> {
    let d = data.n_features();
    let mut kinds: Vec<ColumnKind> = (0..d)
        .map(|j| match data.kind(j) {
            k @ ColumnKind::Categorical { .. } => k.clone(),
            _ => ColumnKind::Numeric,
        })
        .collect();
    match &p.categorical_features {
        CategoricalFeatures::FromDtype => {}
        CategoricalFeatures::None => kinds.fill(ColumnKind::Numeric),
        CategoricalFeatures::Columns(cols) => {
            let chosen: Vec<usize> = cols
                .iter()
                .map(|c| {
                    data.feature_names()
                        .iter()
                        .position(|f| f == c)
                        .or_else(|| c.parse::<usize>().ok().filter(|&j| j < d))
                        .ok_or_else(|| {
                            ModelError::param(
                                name,
                                "categorical_features",
                                format!("'{c}' is neither a column name nor an index below {d}"),
                            )
                        })
                })
                .collect::<Result<_>>()?;
            for (j, kind) in kinds.iter_mut().enumerate() {
                if !chosen.contains(&j) {
                    *kind = ColumnKind::Numeric;
                } else if !matches!(kind, ColumnKind::Categorical { .. }) {
                    // Numeric codes: non-negative integers below max_bins.
                    let xd = data.x().data();
                    let mut top = 0usize;
                    for i in 0..data.n_samples() {
                        let v = xd[i * d + j];
                        if v.is_nan() {
                            continue;
                        }
                        if v < 0.0 || v.fract() != 0.0 || v as usize >= p.max_bins {
                            return Err(ModelError::data(
                                name,
                                format!(
                                    "categorical column '{}' holds {v}: category codes must be \
                                     integers from 0 to max_bins - 1 = {}",
                                    data.feature_names()[j],
                                    p.max_bins - 1
                                ),
                            ));
                        }
                        top = top.max(v as usize);
                    }
                    *kind = ColumnKind::Categorical {
                        categories: Classes::range(top + 1),
                    };
                }
            }
        }
    }
    Ok(kinds)
}

/// Early stopping's rule (scikit-learn's `_should_stop`): stop when none of the last
/// `n_iter_no_change` scores beat the one before them by more than `tol`.
fn should_stop(scores: &[f64], n_iter_no_change: usize, tol: f64) -> bool {
    let reference = n_iter_no_change + 1;
    if scores.len() < reference {
        return false;
    }
    let base = scores[scores.len() - reference] + tol;
    !scores[scores.len() - reference + 1..]
        .iter()
        .any(|&s| s > base)
}

/// A class's index and its stretch of the training rows' raw predictions.
type ClassRows<'a> = (usize, &'a mut [f64]);

/// The boosting loop shared by the classifier and the regressor; `y` is the class
/// index or the value, `stratify` the classes to stratify the validation split by.
fn boost(
    p: &HistGradientBoostingParams,
    name: &'static str,
    data: &Dataset,
    y: &[f64],
    w: Option<&[f64]>,
    loss: Loss,
    stratify: Option<&[u32]>,
) -> Result<FittedHistGradientBoosting> {
    let (n_all, d) = (data.n_samples(), data.n_features());
    if n_all == 0 || d == 0 {
        return Err(ModelError::data(
            name,
            format!("needs rows and feature columns, got {n_all} rows of {d} columns"),
        ));
    }
    let kinds = split_kinds(p, name, data)?;
    if let Some(m) = &p.monotonic_cst {
        if m.len() != d {
            return Err(ModelError::param(
                name,
                "monotonic_cst",
                format!("has {} constraints for {d} columns", m.len()),
            ));
        }
        if let Some(j) = (0..d).find(|&j| m[j] != 0 && kinds[j].categories().is_some()) {
            return Err(ModelError::param(
                name,
                "monotonic_cst",
                format!(
                    "column '{}' is categorical and cannot be monotonic",
                    data.feature_names()[j]
                ),
            ));
        }
    }
    let seed = crate::rng::seed_or_clock(p.random_state);
    let early = match p.early_stopping {
        EarlyStopping::Auto => n_all > 10_000,
        EarlyStopping::On => true,
        EarlyStopping::Off => false,
    };
    // Held-out rows for early stopping.
    let (train, val): (Vec<usize>, Vec<usize>) = match (early, p.validation_fraction) {
        (true, Some(f)) => train_test_split(n_all, TestSize::Fraction(f), seed, stratify)?,
        _ => ((0..n_all).collect(), Vec::new()),
    };
    let pick = |idx: &[usize], v: &[f64]| -> Vec<f64> { idx.iter().map(|&i| v[i]).collect() };
    let (x_tr, x_val) = if val.is_empty() {
        (std::borrow::Cow::Borrowed(data.x()), None)
    } else {
        (
            std::borrow::Cow::Owned(data.x().select_rows(&train)?),
            Some(data.x().select_rows(&val)?),
        )
    };
    let (y_tr, y_val) = (pick(&train, y), pick(&val, y));
    let (w_tr, w_val) = (w.map(|w| pick(&train, w)), w.map(|w| pick(&val, w)));
    let n = y_tr.len();
    let mapper = BinMapper::fit(&x_tr, &kinds, p.max_bins, Some(DEFAULT_SUBSAMPLE), seed)?;
    let binned = mapper.transform(&x_tr)?;
    let by_row = binned.row_major();
    let missing = mapper.missing_bin();
    let features: Vec<Feature> = mapper
        .columns()
        .iter()
        .enumerate()
        .map(|(j, c)| Feature {
            n_bins_non_missing: c.n_bins_non_missing(),
            has_missing: binned.column(j).contains(&missing),
            categorical: matches!(c, ColumnBins::Categorical(_)),
            monotonic: p.monotonic_cst.as_ref().map_or(0, |m| m[j]),
        })
        .collect();
    // Categories present in the rows given to fit, validation rows included (as
    // scikit-learn learns them before its split); others predict as missing cells.
    let known: Vec<grower::Bitset> = {
        let xd = data.x().data();
        (0..d)
            .map(|j| {
                let mut set = [0u64; 4];
                if let ColumnBins::Categorical(n_cat) = mapper.columns()[j] {
                    for v in xd.iter().skip(j).step_by(d) {
                        if *v >= 0.0 && (*v as u32) < n_cat {
                            set[*v as usize >> 6] |= 1 << (*v as usize & 63);
                        }
                    }
                }
                set
            })
            .collect()
    };
    let gp = GrowerParams {
        max_leaf_nodes: p.max_leaf_nodes,
        max_depth: p.max_depth,
        min_samples_leaf: p.min_samples_leaf,
        l2_regularization: p.l2_regularization,
        min_hessian_to_split: 1e-3,
        shrinkage: p.learning_rate,
        feature_fraction: p.max_features,
        n_bins: usize::from(missing) + 1,
        threads: 1,
    };
    let k = loss.trees_per_iteration();
    let baseline = loss.baseline(&y_tr, w_tr.as_deref());
    let mut raw: Vec<f64> = baseline
        .iter()
        .flat_map(|&b| std::iter::repeat_n(b, n))
        .collect();
    let n_val = val.len();
    let mut raw_val: Vec<f64> = baseline
        .iter()
        .flat_map(|&b| std::iter::repeat_n(b, n_val))
        .collect();
    let constant_hessian = loss.constant_hessian() && w_tr.is_none();
    let mut g = vec![0f32; n * k];
    let mut h = vec![if constant_hessian { 1.0 } else { 0.0 }; n * k];
    let mut trees: Vec<Vec<TreeNode>> = Vec::with_capacity(p.max_iter * k);
    let (mut train_score, mut validation_score) = (Vec::new(), Vec::new());
    let check_stop = |raw: &[f64],
                      raw_val: &[f64],
                      train_score: &mut Vec<f64>,
                      validation_score: &mut Vec<f64>| {
        train_score.push(-loss.mean(&y_tr, raw, w_tr.as_deref()));
        if n_val > 0 {
            validation_score.push(-loss.mean(&y_val, raw_val, w_val.as_deref()));
            should_stop(validation_score, p.n_iter_no_change, p.tol)
        } else {
            should_stop(train_score, p.n_iter_no_change, p.tol)
        }
    };
    if early {
        check_stop(&raw, &raw_val, &mut train_score, &mut validation_score);
    }
    let _span = tracing::debug_span!("boost", estimator = name, rows = n, cols = d).entered();
    // The trees of one iteration (one per class) grow in parallel, each on one thread;
    // a single tree spreads its large histograms over the threads instead.
    let threads = crate::parallel_threads(n * d);
    let outer = threads.min(k);
    let inner = GrowerParams {
        threads: if outer > 1 { 1 } else { threads },
        ..gp
    };
    // One tree: grown, its leaves' values set, the training rows' raw predictions moved
    // by them, and its splits given thresholds (and unseen categories a side).
    let grow_one =
        |tree: u64, gc: &[f32], hc: Option<&[f32]>, raw_c: &mut [f64], ws: &mut Workspace| {
            let mut rng = Rng::derive(seed ^ 0x6862_6f6f_7374, tree);
            let mut grown =
                grower::grow(&binned, &by_row, &features, gc, hc, &inner, &mut rng, ws)?;
            if loss.updates_leaves() {
                for (leaf, range) in &grown.leaves {
                    let rows = &grown.rows[range.clone()];
                    let res: Vec<f64> = rows
                        .iter()
                        .map(|&r| y_tr[r as usize] - raw_c[r as usize])
                        .collect();
                    let wl: Option<Vec<f64>> = w_tr
                        .as_ref()
                        .map(|w| rows.iter().map(|&r| w[r as usize]).collect());
                    grown.nodes[*leaf].value =
                        p.learning_rate * loss.leaf_value(&res, wl.as_deref());
                }
            }
            for (leaf, range) in &grown.leaves {
                let v = grown.nodes[*leaf].value;
                for &r in &grown.rows[range.clone()] {
                    raw_c[r as usize] += v;
                }
            }
            ws.recycle(grown.rows);
            let mut nodes = grown.nodes;
            for node in nodes.iter_mut().filter(|n| !n.is_leaf()) {
                let j = node.feature as usize;
                match (&mut node.categories, &mapper.columns()[j]) {
                    (Some(set), _) => {
                        // Categories unseen in training go where missing cells go.
                        for (word, known) in set.iter_mut().zip(&known[j]) {
                            if node.missing_left {
                                *word |= !known;
                            } else {
                                *word &= *known;
                            }
                        }
                    }
                    (None, ColumnBins::Numeric(t)) => {
                        node.threshold = t
                            .get(usize::from(node.bin))
                            .copied()
                            .unwrap_or(f64::INFINITY);
                    }
                    (None, ColumnBins::Categorical(_)) => {}
                }
            }
            Ok::<_, ModelError>(nodes)
        };
    // Each thread's buffers, kept from iteration to iteration.
    let mut workspaces: Vec<Workspace> = (0..outer).map(|_| Workspace::default()).collect();
    for it in 0..p.max_iter {
        loss.gradients(&y_tr, &raw, w_tr.as_deref(), &mut g, &mut h);
        let mut jobs: Vec<(&mut Workspace, Vec<ClassRows<'_>>)> =
            workspaces.iter_mut().map(|ws| (ws, Vec::new())).collect();
        for (c, raw_c) in raw.chunks_mut(n.max(1)).enumerate() {
            jobs[c % outer].1.push((c, raw_c));
        }
        let (g, h) = (&g, &h);
        let work = |(ws, part): (&mut Workspace, Vec<ClassRows<'_>>)| {
            part.into_iter()
                .map(|(c, raw_c)| {
                    let gc = &g[c * n..(c + 1) * n];
                    let hc = (!constant_hessian).then(|| &h[c * n..(c + 1) * n]);
                    (c, grow_one((it * k + c) as u64, gc, hc, raw_c, ws))
                })
                .collect::<Vec<(usize, Result<Vec<TreeNode>>)>>()
        };
        let mut grown: Vec<(usize, Result<Vec<TreeNode>>)> = if outer > 1 {
            std::thread::scope(|s| {
                let handles: Vec<_> = jobs
                    .into_iter()
                    .map(|part| s.spawn(|| work(part)))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        } else {
            jobs.into_iter().flat_map(work).collect()
        };
        grown.sort_by_key(|(c, _)| *c);
        for (c, nodes) in grown {
            let nodes = nodes?;
            if let Some(xv) = &x_val {
                let xd = xv.data();
                for i in 0..n_val {
                    raw_val[c * n_val + i] += leaf_value(&nodes, &xd[i * d..(i + 1) * d]);
                }
            }
            trees.push(nodes);
        }
        if early && check_stop(&raw, &raw_val, &mut train_score, &mut validation_score) {
            break;
        }
    }
    Ok(FittedHistGradientBoosting {
        loss,
        baseline,
        trees,
        n_features: d,
        classes: None,
        train_score,
        validation_score,
        packed: PackedCache::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Target;
    use crate::Estimator;

    fn est(name: &str, params: &[(&str, &str)]) -> Result<Estimator> {
        let mut e = Estimator::from_name(name)?;
        for (k, v) in params {
            e.set_param(k, v)?;
        }
        e.validate()?;
        Ok(e)
    }

    #[test]
    fn parameters_are_checked_with_scikit_learns_rules() {
        let c = "hist_gradient_boosting_classifier";
        let r = "hist_gradient_boosting_regressor";
        let err = |n, p: &[(&str, &str)]| est(n, p).unwrap_err().to_string();
        assert!(err(c, &[("loss", "squared_error")]).contains("log_loss"));
        assert!(err(r, &[("loss", "log_loss")]).contains("classifier"));
        assert!(err(r, &[("loss", "quantile")]).contains("quantile in (0, 1)"));
        assert!(est(r, &[("loss", "quantile"), ("quantile", "0.9")]).is_ok());
        assert!(err(c, &[("max_bins", "256")]).contains("between 2 and 255"));
        assert!(err(c, &[("max_features", "0")]).contains("(0, 1]"));
        assert!(err(c, &[("scoring", "accuracy")]).contains("loss"));
        assert!(err(c, &[("monotonic_cst", "[1, 2]")]).contains("-1, 0 or 1"));
        assert!(err(r, &[("class_weight", "balanced")]).contains("no such parameter"));
        assert!(err(c, &[("early_stopping", "maybe")]).contains("auto, true or false"));
        assert!(err(c, &[("quantile", "0.5")]).contains("no such parameter"));
        // Lists read as scikit-learn writes them.
        let e = est(
            c,
            &[
                ("monotonic_cst", "[1, 0, -1]"),
                ("class_weight", "a:2,b:0.5"),
            ],
        )
        .unwrap();
        let Estimator::HistGradientBoostingClassifier(p) = e else {
            panic!()
        };
        assert_eq!(p.boosting.monotonic_cst, Some(vec![1, 0, -1]));
        assert_eq!(
            p.boosting.class_weight,
            Some(ClassWeight::Weights(vec![
                ("a".into(), 2.0),
                ("b".into(), 0.5)
            ]))
        );
    }

    /// `n` rows: a signal column, a categorical column whose code 3 never occurs, and a
    /// noise column; the target follows the signal and category 1.
    fn toy(n: usize) -> Dataset {
        let mut rng = Rng::seed_from_u64(7);
        let mut x = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let s = rng.next_f64() as f32;
            let cat = (i % 3) as f32;
            x.extend([s, cat, rng.next_f64() as f32]);
            y.push(u32::from(s > 0.7 || cat == 1.0));
        }
        let kinds = vec![
            ColumnKind::Numeric,
            ColumnKind::Categorical {
                categories: Classes::range(4),
            },
            ColumnKind::Numeric,
        ];
        let x = Matrix::from_vec(n, 3, x).unwrap();
        let target = Target::Classes {
            ids: y,
            classes: Classes::range(2),
        };
        let names = ["s", "c", "noise"].map(String::from).to_vec();
        Dataset::new(x, target, names, "y")
            .unwrap()
            .with_kinds(kinds)
            .unwrap()
    }

    fn boosted(e: &Estimator, d: &Dataset) -> FittedHistGradientBoosting {
        match e.fit(d).unwrap() {
            crate::FittedModel::HistGradientBoosting(b) => b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn categories_split_natively_and_unseen_ones_go_where_missing_cells_go() {
        let d = toy(600);
        let e = est(
            "hist_gradient_boosting_classifier",
            &[("random_state", "0"), ("max_iter", "20")],
        )
        .unwrap();
        let m = boosted(&e, &d);
        assert!(m.score(d.x(), d.class_target().unwrap().0).unwrap() > 0.99);
        // The first split is on the category set {1} or the signal; some split is
        // categorical.
        assert!(m.trees().iter().flatten().any(|n| n.categories.is_some()));
        // Code 3 (no training row holds it) predicts as a missing cell does.
        let rows = Matrix::from_vec(2, 3, vec![0.5, 3.0, 0.5, 0.5, f32::NAN, 0.5]).unwrap();
        let raw = m.raw_predict(&rows).unwrap();
        assert_eq!(raw[0], raw[1]);
        // Split by its codes as numbers instead, the model is different but fits too.
        let e = est(
            "hist_gradient_boosting_classifier",
            &[
                ("random_state", "0"),
                ("max_iter", "20"),
                ("categorical_features", "None"),
            ],
        )
        .unwrap();
        let m = boosted(&e, &d);
        assert!(m.trees().iter().flatten().all(|n| n.categories.is_none()));
    }

    #[test]
    fn packed_trees_predict_as_the_fitted_ones() {
        let d = toy(3_000);
        let e = est(
            "hist_gradient_boosting_classifier",
            &[("random_state", "0"), ("max_iter", "15")],
        )
        .unwrap();
        let m = boosted(&e, &d);
        // Rows with missing cells, unseen and out-of-range codes, values on thresholds.
        let mut x = d
            .x()
            .select_rows(&(0..400).collect::<Vec<_>>())
            .unwrap()
            .to_vec();
        for (i, v) in x.iter_mut().enumerate() {
            match i % 17 {
                0 => *v = f32::NAN,
                5 => *v = 3.0,
                9 => *v = -2.0,
                _ => {}
            }
        }
        let first = m
            .trees()
            .iter()
            .flatten()
            .find(|n| !n.is_leaf() && n.categories.is_none());
        if let Some(n) = first {
            x[n.feature as usize] = n.threshold as f32;
        }
        let x = Matrix::from_vec(400, 3, x).unwrap();
        let raw = m.raw_predict(&x).unwrap();
        let xd = x.data();
        for i in 0..400 {
            let row = &xd[i * 3..(i + 1) * 3];
            let want = m
                .trees()
                .iter()
                .fold(m.baseline()[0], |acc, t| acc + leaf_value(t, row));
            assert_eq!(raw[i], want, "row {i}");
        }
    }

    #[test]
    fn no_rows_or_no_columns_is_an_error() {
        let e = est("hist_gradient_boosting_regressor", &[]).unwrap();
        let empty = Dataset::new(
            Matrix::from_vec(0, 2, vec![]).unwrap(),
            Target::Values(vec![]),
            vec!["a".into(), "b".into()],
            "y",
        )
        .unwrap();
        assert!(e.fit(&empty).unwrap_err().to_string().contains("0 rows"));
        let no_cols = Dataset::new(
            Matrix::from_vec(3, 0, vec![]).unwrap(),
            Target::Values(vec![1.0, 2.0, 3.0]),
            vec![],
            "y",
        )
        .unwrap();
        assert!(e
            .fit(&no_cols)
            .unwrap_err()
            .to_string()
            .contains("0 columns"));
    }

    #[test]
    fn early_stopping_ends_a_fit_that_stopped_improving() {
        let d = toy(2_000);
        let e = est(
            "hist_gradient_boosting_classifier",
            &[
                ("random_state", "0"),
                ("max_iter", "500"),
                ("early_stopping", "true"),
            ],
        )
        .unwrap();
        let m = boosted(&e, &d);
        assert!(m.n_iter() < 500, "ran {} iterations", m.n_iter());
        // One score for the baseline and one per iteration.
        assert_eq!(m.validation_score().len(), m.n_iter() + 1);
        assert_eq!(m.train_score().len(), m.n_iter() + 1);
    }

    #[test]
    fn balanced_class_weights_favour_the_rare_class() {
        // 5% positives behind a noisy signal.
        let n = 2_000;
        let mut rng = Rng::seed_from_u64(3);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let pos = rng.next_f64() < 0.05;
            x.push((rng.next_f64() + if pos { 0.6 } else { 0.0 }) as f32);
            y.push(u32::from(pos));
        }
        let x = Matrix::from_vec(n, 1, x).unwrap();
        let d = Dataset::from_classes(x, y).unwrap();
        let positives = |weight: &str| {
            let e = est(
                "hist_gradient_boosting_classifier",
                &[
                    ("random_state", "0"),
                    ("max_iter", "30"),
                    ("class_weight", weight),
                ],
            )
            .unwrap();
            let m = boosted(&e, &d);
            m.predict(d.x())
                .unwrap()
                .iter()
                .filter(|&&c| c == 1)
                .count()
        };
        assert!(positives("balanced") > 2 * positives("None").max(1));
    }

    #[test]
    fn early_stopping_rule_is_scikit_learns() {
        // Improving by more than tol within the last n_iter_no_change: go on.
        assert!(!should_stop(&[-3.0, -2.0, -1.0], 2, 0.0));
        // Too few scores to judge.
        assert!(!should_stop(&[-1.0, -1.0], 2, 0.0));
        // No score beats the reference by more than tol.
        assert!(should_stop(&[-1.0, -1.0, -1.0], 2, 0.0));
        assert!(should_stop(&[-1.0, -0.99, -0.995], 2, 0.1));
    }
}

use serde::{Deserialize, Serialize};

use super::hyperparams::{Criterion, DecisionTreeClassifierParams, DecisionTreeRegressorParams};
use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::rng::Rng;
use crate::traits::{check_input_missing_ok, Checked, Classifier, Fit, Model, Params};

/// Values closer than this are treated as equal when looking for split points
/// (scikit-learn's `FEATURE_THRESHOLD`).
const FEATURE_THRESHOLD: f32 = 1e-7;
const LEAF: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq)]
struct Node {
    /// Split feature, or `LEAF`.
    feature: u32,
    /// Rows with `x[feature] <= threshold` go left.
    threshold: f64,
    left: u32,
    right: u32,
    impurity: f64,
    weighted_samples: f64,
    /// Rows missing `x[feature]` (NaN) go left. Learnt where training rows had missing
    /// cells; elsewhere the side with more training weight, as scikit-learn does (1.3+).
    missing_left: bool,
}

impl Node {
    /// The side a missing cell takes when training saw none: the heavier child.
    fn heavier_left(nodes: &[Node], left: u32, right: u32) -> bool {
        nodes[left as usize].weighted_samples > nodes[right as usize].weighted_samples
    }
}

/// A fitted decision tree: a classifier, or a regressor when grown with the
/// `squared_error` criterion.
///
/// Serialised column by column (each node field as one little-endian byte string): a
/// forest of large trees encodes by copying memory, at about a third of the size of a
/// map per node. Decoding checks that the columns agree and the links stay in the tree.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "TreeRepr")]
pub struct FittedDecisionTree {
    nodes: Vec<Node>,
    /// Class fractions per node, `n_nodes x n_classes` row-major; for a regressor, the mean
    /// target of each node.
    values: Vec<f32>,
    /// Classes; 0 for a regressor.
    n_classes: usize,
    n_features: usize,
    depth: usize,
    /// Normalised total impurity decrease per feature.
    feature_importances: Vec<f64>,
    /// The tree laid out for prediction (derived from `nodes` and `values`).
    walk: Walker,
}

/// A tree laid out for prediction, in depth-first order (a node's left child is the next
/// node) with the values of leaves only; a pure leaf shares its class's one-hot row. A
/// forest's trees are walked for every row, and the walk is bound by how much of the tree
/// stays in cache, so the nodes are packed into 8 bytes where the tree allows it (fewer
/// than 255 features and 2^24 nodes; the 160k-row synthetic tree of 72k nodes is 0.6 MB,
/// inside a core's L2) and 16 bytes otherwise.
#[derive(Debug, Clone, PartialEq, Default)]
struct Walker {
    packed: Vec<Packed>,
    wide: Vec<Step>,
    leaves: Vec<f32>,
    /// Values per leaf.
    width: usize,
    /// Leading one-hot rows of `leaves` (the classes of a classifier; 0 for a regressor).
    one_hot: usize,
}

/// An 8-byte node: for a split, `meta` is the feature (low 8 bits, below `PACKED_LEAF`)
/// and the right child (high 24 bits); for a leaf, `PACKED_LEAF` and the leaf's index.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Packed {
    threshold: f32,
    meta: u32,
}

const PACKED_LEAF: u32 = 0xFF;

/// A 16-byte node: `feature` is `LEAF` for a leaf, whose index is `right`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Step {
    feature: u32,
    /// The largest f32 not above the split's f64 threshold: for an f32 value `v`,
    /// `v <= threshold` exactly when `v as f64 <= the f64 threshold`.
    threshold: f32,
    right: u32,
}

/// One step of a walk: the next node, or `None` at a leaf.
trait Layout {
    fn advance(&self, at: u32, row: &[f32]) -> Option<u32>;
    /// The index of the leaf at `at`.
    fn leaf(&self, at: u32) -> usize;
}

impl Layout for [Packed] {
    #[inline(always)]
    fn advance(&self, at: u32, row: &[f32]) -> Option<u32> {
        let s = self[at as usize];
        let feature = s.meta & PACKED_LEAF;
        if feature == PACKED_LEAF {
            return None;
        }
        Some(if row[feature as usize] > s.threshold {
            s.meta >> 8
        } else {
            at + 1
        })
    }

    #[inline(always)]
    fn leaf(&self, at: u32) -> usize {
        (self[at as usize].meta >> 8) as usize
    }
}

impl Layout for [Step] {
    #[inline(always)]
    fn advance(&self, at: u32, row: &[f32]) -> Option<u32> {
        let s = self[at as usize];
        if s.feature == LEAF {
            return None;
        }
        Some(if row[s.feature as usize] > s.threshold {
            s.right
        } else {
            at + 1
        })
    }

    #[inline(always)]
    fn leaf(&self, at: u32) -> usize {
        self[at as usize].right as usize
    }
}

/// Rows walked through a tree together: their steps do not depend on each other, so the
/// processor overlaps their cache misses.
const LANES: usize = 8;

/// The leaves of `LANES` consecutive rows of `rows` (`d` values each) from row `first`.
#[inline(always)]
fn walk_lanes<L: Layout + ?Sized>(
    steps: &L,
    rows: &[f32],
    d: usize,
    first: usize,
) -> [usize; LANES] {
    let block = &rows[first * d..(first + LANES) * d];
    let mut at = [0u32; LANES];
    loop {
        let mut moved = false;
        for (l, node) in at.iter_mut().enumerate() {
            if let Some(next) = steps.advance(*node, &block[l * d..(l + 1) * d]) {
                *node = next;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    at.map(|node| steps.leaf(node))
}

#[inline(always)]
fn walk_one<L: Layout + ?Sized>(steps: &L, row: &[f32]) -> usize {
    let mut at = 0;
    while let Some(next) = steps.advance(at, row) {
        at = next;
    }
    steps.leaf(at)
}

/// The largest f32 that is at most `t`.
fn f32_at_most(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) > t {
        r.next_down()
    } else {
        r
    }
}

impl Walker {
    /// `one_hot`: the values are class fractions, and a leaf of one class shares that
    /// class's row.
    fn new(nodes: &[Node], values: &[f32], width: usize, one_hot: bool) -> Self {
        // Depth-first order: a node, its left subtree, its right subtree.
        let mut order = Vec::with_capacity(nodes.len());
        let mut place = vec![0u32; nodes.len()];
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            place[i] = order.len() as u32;
            order.push(i);
            let n = &nodes[i];
            if n.feature != LEAF {
                stack.push(n.right as usize);
                stack.push(n.left as usize);
            }
        }
        let one_hot = if one_hot { width } else { 0 };
        let mut leaves = Vec::new();
        for c in 0..one_hot {
            leaves.extend((0..width).map(|j| if j == c { 1.0f32 } else { 0.0 }));
        }
        let mut leaf_of = |i: usize| -> u32 {
            let v = &values[i * width..(i + 1) * width];
            if one_hot > 0 && v.iter().all(|&x| x == 0.0 || x == 1.0) {
                if let Some(c) = v.iter().position(|&x| x == 1.0) {
                    if v.iter().filter(|&&x| x == 1.0).count() == 1 {
                        return c as u32;
                    }
                }
            }
            leaves.extend_from_slice(v);
            (leaves.len() / width - 1) as u32
        };
        let n_features = nodes
            .iter()
            .filter(|n| n.feature != LEAF)
            .map(|n| n.feature as usize + 1)
            .max()
            .unwrap_or(0);
        let mut w = Self {
            width,
            one_hot,
            ..Self::default()
        };
        if n_features <= PACKED_LEAF as usize && nodes.len() < (1 << 24) {
            w.packed = order
                .iter()
                .map(|&i| {
                    let n = &nodes[i];
                    if n.feature == LEAF {
                        Packed {
                            threshold: 0.0,
                            meta: PACKED_LEAF | (leaf_of(i) << 8),
                        }
                    } else {
                        Packed {
                            threshold: f32_at_most(n.threshold),
                            meta: n.feature | (place[n.right as usize] << 8),
                        }
                    }
                })
                .collect();
        } else {
            w.wide = order
                .iter()
                .map(|&i| {
                    let n = &nodes[i];
                    if n.feature == LEAF {
                        Step {
                            feature: LEAF,
                            threshold: 0.0,
                            right: leaf_of(i),
                        }
                    } else {
                        Step {
                            feature: n.feature,
                            threshold: f32_at_most(n.threshold),
                            right: place[n.right as usize],
                        }
                    }
                })
                .collect();
        }
        w.leaves = leaves;
        w
    }

    /// The index of the leaf `row` falls in.
    #[inline]
    fn leaf(&self, row: &[f32]) -> usize {
        if self.packed.is_empty() {
            walk_one(self.wide.as_slice(), row)
        } else {
            walk_one(self.packed.as_slice(), row)
        }
    }

    /// The values of a leaf.
    #[inline]
    fn values_of(&self, leaf: usize) -> &[f32] {
        &self.leaves[leaf * self.width..(leaf + 1) * self.width]
    }

    /// The values of the leaf `row` falls in.
    #[inline]
    fn values(&self, row: &[f32]) -> &[f32] {
        self.values_of(self.leaf(row))
    }

    /// Adds the leaf values of each row of `rows` (`d` values each) to `acc` (`width`
    /// per row).
    fn add_values(&self, rows: &[f32], d: usize, acc: &mut [f64]) {
        if self.packed.is_empty() {
            self.add_with(self.wide.as_slice(), rows, d, acc)
        } else {
            self.add_with(self.packed.as_slice(), rows, d, acc)
        }
    }

    #[inline(always)]
    fn add_with<L: Layout + ?Sized>(&self, steps: &L, rows: &[f32], d: usize, acc: &mut [f64]) {
        let k = self.width;
        let n = acc.len() / k;
        let mut add = |i: usize, leaf: usize| {
            if leaf < self.one_hot {
                // A pure leaf adds 1 to its class (and 0, which changes nothing, to the rest).
                acc[i * k + leaf] += 1.0;
            } else {
                for (a, v) in acc[i * k..(i + 1) * k].iter_mut().zip(self.values_of(leaf)) {
                    *a += f64::from(*v);
                }
            }
        };
        let mut i = 0;
        while i + LANES <= n {
            for (l, leaf) in walk_lanes(steps, rows, d, i).into_iter().enumerate() {
                add(i + l, leaf);
            }
            i += LANES;
        }
        for r in i..n {
            add(r, walk_one(steps, &rows[r * d..(r + 1) * d]));
        }
    }
}

/// The encoded form of a tree.
#[derive(Serialize, Deserialize)]
struct TreeRepr {
    #[serde(with = "serde_bytes")]
    feature: Vec<u8>,
    #[serde(with = "serde_bytes")]
    threshold: Vec<u8>,
    #[serde(with = "serde_bytes")]
    left: Vec<u8>,
    #[serde(with = "serde_bytes")]
    right: Vec<u8>,
    #[serde(with = "serde_bytes")]
    impurity: Vec<u8>,
    #[serde(with = "serde_bytes")]
    weighted_samples: Vec<u8>,
    #[serde(with = "serde_bytes")]
    values: Vec<u8>,
    n_classes: usize,
    n_features: usize,
    depth: usize,
    feature_importances: Vec<f64>,
    /// One byte per node (1: missing cells go left); written only when some split learnt
    /// its side from missing cells, else every split sends them to its heavier child.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    missing_left: Vec<u8>,
}

fn column<T, const N: usize>(
    values: impl Iterator<Item = T>,
    n: usize,
    f: impl Fn(T) -> [u8; N],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * N);
    for v in values {
        out.extend_from_slice(&f(v));
    }
    out
}

fn words<const N: usize>(
    bytes: &[u8],
    n: usize,
    what: &str,
) -> std::result::Result<Vec<[u8; N]>, String> {
    if bytes.len() != n * N {
        return Err(format!(
            "tree column '{what}' has {} bytes for {n} entries",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| c.try_into().expect("exact chunks"))
        .collect())
}

impl Serialize for FittedDecisionTree {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let n = self.nodes.len();
        let nodes = || self.nodes.iter();
        TreeRepr {
            feature: column(nodes().map(|v| v.feature), n, u32::to_le_bytes),
            threshold: column(nodes().map(|v| v.threshold), n, f64::to_le_bytes),
            left: column(nodes().map(|v| v.left), n, u32::to_le_bytes),
            right: column(nodes().map(|v| v.right), n, u32::to_le_bytes),
            impurity: column(nodes().map(|v| v.impurity), n, f64::to_le_bytes),
            weighted_samples: column(nodes().map(|v| v.weighted_samples), n, f64::to_le_bytes),
            values: column(
                self.values.iter().copied(),
                self.values.len(),
                f32::to_le_bytes,
            ),
            n_classes: self.n_classes,
            n_features: self.n_features,
            depth: self.depth,
            feature_importances: self.feature_importances.clone(),
            missing_left: if self.nodes.iter().all(|v| {
                v.feature == LEAF
                    || v.missing_left == Node::heavier_left(&self.nodes, v.left, v.right)
            }) {
                Vec::new()
            } else {
                nodes().map(|v| u8::from(v.missing_left)).collect()
            },
        }
        .serialize(s)
    }
}

impl TryFrom<TreeRepr> for FittedDecisionTree {
    type Error = String;

    fn try_from(r: TreeRepr) -> std::result::Result<Self, String> {
        let n = r.feature.len() / 4;
        let feature = words::<4>(&r.feature, n, "feature")?;
        let threshold = words::<8>(&r.threshold, n, "threshold")?;
        let left = words::<4>(&r.left, n, "left")?;
        let right = words::<4>(&r.right, n, "right")?;
        let impurity = words::<8>(&r.impurity, n, "impurity")?;
        let weighted = words::<8>(&r.weighted_samples, n, "weighted_samples")?;
        let width = r.n_classes.max(1);
        let cells = n
            .checked_mul(width)
            .ok_or_else(|| format!("a tree of {n} nodes and {width} classes is too large"))?;
        let values: Vec<f32> = words::<4>(&r.values, cells, "values")?
            .into_iter()
            .map(f32::from_le_bytes)
            .collect();
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let node = Node {
                feature: u32::from_le_bytes(feature[i]),
                threshold: f64::from_le_bytes(threshold[i]),
                left: u32::from_le_bytes(left[i]),
                right: u32::from_le_bytes(right[i]),
                impurity: f64::from_le_bytes(impurity[i]),
                weighted_samples: f64::from_le_bytes(weighted[i]),
                missing_left: false,
            };
            // Children come after their parent, so every walk ends at a leaf.
            let link_ok = |c: u32| (c as usize) > i && (c as usize) < n;
            if node.feature != LEAF
                && ((node.feature as usize) >= r.n_features
                    || !link_ok(node.left)
                    || !link_ok(node.right))
            {
                return Err(format!("tree node {i} links outside the tree"));
            }
            nodes.push(node);
        }
        if n == 0 {
            return Err("a tree without nodes".into());
        }
        if r.missing_left.is_empty() {
            for i in 0..n {
                if nodes[i].feature != LEAF {
                    nodes[i].missing_left =
                        Node::heavier_left(&nodes, nodes[i].left, nodes[i].right);
                }
            }
        } else if r.missing_left.len() != n {
            return Err(format!(
                "tree column 'missing_left' has {} bytes for {n} entries",
                r.missing_left.len()
            ));
        } else {
            for (node, &m) in nodes.iter_mut().zip(&r.missing_left) {
                node.missing_left = m != 0;
            }
        }
        Ok(Self::assemble(
            nodes,
            values,
            r.n_classes,
            r.n_features,
            r.depth,
            r.feature_importances,
        ))
    }
}

impl FittedDecisionTree {
    fn assemble(
        nodes: Vec<Node>,
        values: Vec<f32>,
        n_classes: usize,
        n_features: usize,
        depth: usize,
        feature_importances: Vec<f64>,
    ) -> Self {
        let walk = Walker::new(&nodes, &values, n_classes.max(1), n_classes > 0);
        Self {
            nodes,
            values,
            n_classes,
            n_features,
            depth,
            feature_importances,
            walk,
        }
    }

    /// Adds each row's leaf values (class fractions) to `acc` (`rows x n_classes`): how a
    /// forest averages its trees without a matrix per tree.
    pub(crate) fn add_proba(&self, x: &Matrix, acc: &mut [f64]) -> Result<()> {
        check_input_missing_ok(x, self.n_features, DecisionTreeClassifierParams::NAME)?;
        let d = self.n_features.max(1);
        let rows = &x.data()[..x.rows() * d];
        let width = self.walk.width;
        if !rows.iter().any(|v| v.is_nan()) {
            self.walk.add_values(rows, d, &mut acc[..x.rows() * width]);
            return Ok(());
        }
        // Rows with missing cells walk the nodes, where each split knows their side.
        for (i, row) in rows.chunks_exact(d).enumerate() {
            let out = &mut acc[i * width..(i + 1) * width];
            let values = if row.iter().any(|v| v.is_nan()) {
                self.node_values(row)
            } else {
                self.walk.values(row)
            };
            out.iter_mut()
                .zip(values)
                .for_each(|(a, v)| *a += f64::from(*v));
        }
        Ok(())
    }

    /// The values of the leaf `row` reaches walking the nodes themselves: the slow walk,
    /// for rows with missing cells.
    fn node_values(&self, row: &[f32]) -> &[f32] {
        let mut at = 0usize;
        loop {
            let n = &self.nodes[at];
            if n.feature == LEAF {
                let w = self.walk.width;
                return &self.values[at * w..(at + 1) * w];
            }
            let v = row[n.feature as usize];
            let left = if v.is_nan() {
                n.missing_left
            } else {
                f64::from(v) <= n.threshold
            };
            at = if left { n.left } else { n.right } as usize;
        }
    }

    /// Depth of the deepest leaf (the root alone has depth 0).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.nodes.iter().filter(|n| n.feature == LEAF).count()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Impurity-based feature importances, summing to 1 (all zero for a single leaf).
    pub fn feature_importances(&self) -> &[f64] {
        &self.feature_importances
    }

    /// True for a regression tree.
    pub fn is_regressor(&self) -> bool {
        self.n_classes == 0
    }

    /// A regression tree's prediction (the mean target of each row's leaf).
    pub fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        check_input_missing_ok(x, self.n_features, "decision_tree_regressor")?;
        if !self.is_regressor() {
            return Err(ModelError::data(
                "model",
                "a classification tree predicts classes, not values",
            ));
        }
        Ok(x.data()
            .chunks_exact(self.n_features.max(1))
            .take(x.rows())
            .map(|row| {
                if row.iter().any(|v| v.is_nan()) {
                    self.node_values(row)[0]
                } else {
                    self.walk.values(row)[0]
                }
            })
            .collect())
    }
}

impl Classifier for FittedDecisionTree {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        check_input_missing_ok(x, self.n_features, DecisionTreeClassifierParams::NAME)?;
        if self.is_regressor() {
            return Err(ModelError::data(
                "model",
                "a regression tree has no class probabilities",
            ));
        }
        let k = self.n_classes;
        let mut out = Vec::with_capacity(x.rows() * k);
        for row in x.data().chunks_exact(self.n_features.max(1)).take(x.rows()) {
            if row.iter().any(|v| v.is_nan()) {
                out.extend_from_slice(self.node_values(row));
            } else {
                out.extend_from_slice(self.walk.values(row));
            }
        }
        Matrix::from_vec(x.rows(), k, out)
    }
}

/// Impurity of a node from its statistics: class weights for a classifier, `[Σw, Σwy,
/// Σwy²]` for a regressor (whose impurity is the weighted variance).
fn impurity(criterion: Criterion, counts: &[f64], total: f64) -> f64 {
    if total <= 0.0 {
        return 0.0;
    }
    match criterion {
        Criterion::SquaredError => {
            let mean = counts[1] / total;
            (counts[2] / total - mean * mean).max(0.0)
        }
        Criterion::Gini => {
            1.0 - counts
                .iter()
                .map(|c| (c / total) * (c / total))
                .sum::<f64>()
        }
        Criterion::Entropy => counts
            .iter()
            .filter(|&&c| c > 0.0)
            .map(|&c| {
                let p = c / total;
                -p * p.log2()
            })
            .sum(),
    }
}

struct Best {
    feature: usize,
    threshold: f64,
    /// Negated weighted child impurity (higher is better).
    proxy: f64,
    /// Where rows missing the feature go.
    missing_left: bool,
}

/// The training target.
enum Y<'a> {
    Classes(&'a [u32]),
    Values(&'a [f32]),
}

/// Everything the recursive builder reads.
struct Builder<'a> {
    x: &'a [f32],
    d: usize,
    y: Y<'a>,
    w: Option<&'a [f64]>,
    /// Width of a node's statistics (classes, or 3 for a regressor).
    k: usize,
    criterion: Criterion,
    max_depth: usize,
    min_split: usize,
    min_leaf: usize,
    max_features: usize,
    min_impurity_decrease: f64,
    total_weight: f64,
    rng: Rng,
    nodes: Vec<Node>,
    values: Vec<f32>,
    importances: Vec<f64>,
    depth: usize,
    // Scratch buffers reused across nodes.
    pairs: Vec<(f32, u32)>,
    features: Vec<usize>,
}

impl Builder<'_> {
    fn weight(&self, i: u32) -> f64 {
        self.w.map_or(1.0, |w| w[i as usize])
    }

    /// Adds row `i` with weight `w` to node statistics.
    #[inline]
    fn add(&self, stats: &mut [f64], i: u32, w: f64) {
        match self.y {
            Y::Classes(y) => stats[y[i as usize] as usize] += w,
            Y::Values(y) => {
                let v = f64::from(y[i as usize]);
                stats[0] += w;
                stats[1] += w * v;
                stats[2] += w * v * v;
            }
        }
    }

    fn counts(&self, rows: &[u32]) -> (Vec<f64>, f64) {
        let mut c = vec![0.0; self.k];
        let mut t = 0.0;
        for &i in rows {
            let w = self.weight(i);
            self.add(&mut c, i, w);
            t += w;
        }
        (c, t)
    }

    /// Grows the subtree over `rows` and returns its node index.
    fn grow(&mut self, rows: &mut [u32], depth: usize) -> u32 {
        let (counts, total) = self.counts(rows);
        let imp = impurity(self.criterion, &counts, total);
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            feature: LEAF,
            threshold: 0.0,
            left: LEAF,
            right: LEAF,
            impurity: imp,
            weighted_samples: total,
            missing_left: false,
        });
        match self.y {
            Y::Classes(_) => self.values.extend(counts.iter().map(|&c| {
                if total > 0.0 {
                    (c / total) as f32
                } else {
                    0.0
                }
            })),
            Y::Values(_) => self.values.push(if total > 0.0 {
                (counts[1] / total) as f32
            } else {
                0.0
            }),
        }
        self.depth = self.depth.max(depth);
        let n = rows.len();
        let is_leaf = depth >= self.max_depth
            || n < self.min_split
            || n < 2 * self.min_leaf
            || imp <= f64::EPSILON;
        if is_leaf {
            return id;
        }
        let Some(best) = self.best_split(rows, &counts, total) else {
            return id;
        };
        // Weighted impurity decrease of this split, relative to all training weight.
        let (left_rows, right_rows): (Vec<u32>, Vec<u32>) = rows.iter().partition(|&&i| {
            let v = self.x[i as usize * self.d + best.feature];
            if v.is_nan() {
                best.missing_left
            } else {
                (v as f64) <= best.threshold
            }
        });
        let (lc, lt) = self.counts(&left_rows);
        let (rc, rt) = self.counts(&right_rows);
        let decrease = (total / self.total_weight)
            * (imp
                - (rt / total) * impurity(self.criterion, &rc, rt)
                - (lt / total) * impurity(self.criterion, &lc, lt));
        if decrease < self.min_impurity_decrease {
            return id;
        }
        self.importances[best.feature] += total * imp
            - lt * impurity(self.criterion, &lc, lt)
            - rt * impurity(self.criterion, &rc, rt);
        let nl = left_rows.len();
        rows[..nl].copy_from_slice(&left_rows);
        rows[nl..].copy_from_slice(&right_rows);
        let (l, r) = rows.split_at_mut(nl);
        let left = self.grow(l, depth + 1);
        let right = self.grow(r, depth + 1);
        let node = &mut self.nodes[id as usize];
        node.feature = best.feature as u32;
        node.threshold = best.threshold;
        node.left = left;
        node.right = right;
        node.missing_left = best.missing_left;
        id
    }

    /// The best split of `rows`, scikit-learn's `BestSplitter` (1.3+) over features drawn
    /// in random order. Rows missing the feature (NaN) are set apart: the thresholds
    /// between the sorted values are tried with them on the right, then (if there are any)
    /// on the left, and last the split of present against missing; the first best wins. A
    /// feature whose present values are all equal (or that has none) is constant.
    fn best_split(&mut self, rows: &[u32], counts: &[f64], total: f64) -> Option<Best> {
        let mut best: Option<Best> = None;
        // Draw candidate features without replacement (a lazy Fisher-Yates), until
        // `max_features` have been visited and at least one of them was not constant.
        self.features.clear();
        self.features.extend(0..self.d);
        let mut visited = 0usize;
        let mut constant = 0usize;
        let mut remaining = self.d;
        let mut left = vec![0.0f64; self.k];
        let mut missing = vec![0.0f64; self.k];
        while remaining > 0 && (visited < self.max_features || visited <= constant) {
            let j = self.rng.below(remaining);
            remaining -= 1;
            self.features.swap(j, remaining);
            let f = self.features[remaining];
            visited += 1;
            self.pairs.clear();
            missing.iter_mut().for_each(|v| *v = 0.0);
            let mut missing_w = 0.0;
            for &i in rows {
                let v = self.x[i as usize * self.d + f];
                if v.is_nan() {
                    let w = self.weight(i);
                    self.add(&mut missing, i, w);
                    missing_w += w;
                } else {
                    self.pairs.push((v, i));
                }
            }
            let n = self.pairs.len();
            let n_missing = rows.len() - n;
            self.pairs
                .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            if n == 0 || self.pairs[n - 1].0 <= self.pairs[0].0 + FEATURE_THRESHOLD {
                constant += 1;
                continue;
            }
            let searches: &[bool] = if n_missing > 0 {
                &[false, true]
            } else {
                &[false]
            };
            for &missing_go_left in searches {
                if missing_go_left {
                    left.copy_from_slice(&missing);
                } else {
                    left.iter_mut().for_each(|v| *v = 0.0);
                }
                let mut lw = if missing_go_left { missing_w } else { 0.0 };
                for p in 1..n {
                    let (_, i) = self.pairs[p - 1];
                    let w = self.weight(i);
                    self.add(&mut left, i, w);
                    lw += w;
                    if self.pairs[p].0 <= self.pairs[p - 1].0 + FEATURE_THRESHOLD {
                        continue;
                    }
                    let (n_left, n_right) = if missing_go_left {
                        (p + n_missing, n - p)
                    } else {
                        (p, n - p + n_missing)
                    };
                    if n_left < self.min_leaf || n_right < self.min_leaf {
                        continue;
                    }
                    let proxy = self.proxy(&left, lw, counts, total);
                    if best.as_ref().is_none_or(|b| proxy > b.proxy) {
                        let (a, b) = (self.pairs[p - 1].0, self.pairs[p].0);
                        let mut threshold = a as f64 / 2.0 + b as f64 / 2.0;
                        if threshold >= b as f64 || !threshold.is_finite() {
                            threshold = a as f64;
                        }
                        best = Some(Best {
                            feature: f,
                            threshold,
                            proxy,
                            missing_left: if n_missing == 0 {
                                n_left > n_right
                            } else {
                                missing_go_left
                            },
                        });
                    }
                }
            }
            // Every present value left, every missing one right.
            if n_missing > 0 && n >= self.min_leaf && n_missing >= self.min_leaf {
                left.iter_mut()
                    .zip(counts.iter().zip(&missing))
                    .for_each(|(l, (t, m))| *l = t - m);
                let proxy = self.proxy(&left, total - missing_w, counts, total);
                if best.as_ref().is_none_or(|b| proxy > b.proxy) {
                    best = Some(Best {
                        feature: f,
                        threshold: f64::INFINITY,
                        proxy,
                        missing_left: false,
                    });
                }
            }
        }
        best
    }

    /// scikit-learn's proxy of a split's impurity improvement: the negated weighted
    /// impurities of the children, the left one's statistics `left` (weight `lw`).
    fn proxy(&self, left: &[f64], lw: f64, counts: &[f64], total: f64) -> f64 {
        let rw = total - lw;
        let right: Vec<f64> = counts.iter().zip(left).map(|(t, l)| t - l).collect();
        -(lw * impurity(self.criterion, left, lw) + rw * impurity(self.criterion, &right, rw))
    }
}

impl DecisionTreeClassifierParams {
    /// Fits with optional per-row sample weights (bootstrap counts, class weights).
    ///
    /// This is the entry point for a tree that is a forest's member: it checks every
    /// parameter but the criterion's task (a forest's trees may use `squared_error`).
    pub fn fit_weighted(
        &self,
        data: &Dataset,
        weights: Option<&[f64]>,
    ) -> Result<FittedDecisionTree> {
        self.validate_tree()?;
        self.grow(data, weights)
    }

    /// Grows a tree from parameters already checked ([`Self::validate_tree`]).
    pub(crate) fn grow(
        &self,
        data: &Dataset,
        weights: Option<&[f64]>,
    ) -> Result<FittedDecisionTree> {
        let regression = self.criterion == Criterion::SquaredError;
        let values;
        let (y, k, n_classes) = if regression {
            values = data.value_target()?;
            if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
                return Err(ModelError::data(
                    "training data",
                    format!("target of row {bad} is not a finite number"),
                ));
            }
            (Y::Values(&values), 3, 0)
        } else {
            let (ids, classes) = data.class_target()?;
            (Y::Classes(ids), classes.len(), classes.len())
        };
        let x = data.x();
        x.check_no_infinity("training data")?;
        let (n, d) = (x.rows(), x.cols());
        if n == 0 {
            return Err(ModelError::data("training data", "no rows"));
        }
        if let Some(w) = weights {
            if w.len() != n || w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(ModelError::Shape(format!(
                    "need {n} finite non-negative sample weights, got {}",
                    w.len()
                )));
            }
        }
        let seed = crate::rng::seed_or_clock(self.random_state);
        let xd = x.data();
        let min_leaf = self.min_samples_leaf.resolve(n).max(1);
        let mut b = Builder {
            x: &xd,
            d,
            y,
            w: weights,
            k,
            criterion: self.criterion,
            max_depth: self.max_depth.unwrap_or(usize::MAX),
            min_split: self.min_samples_split.resolve(n).max(2 * min_leaf).max(2),
            min_leaf,
            max_features: self.max_features.resolve(d),
            min_impurity_decrease: self.min_impurity_decrease,
            total_weight: weights.map_or(n as f64, |w| w.iter().sum()),
            rng: Rng::seed_from_u64(seed),
            nodes: Vec::new(),
            values: Vec::new(),
            importances: vec![0.0; d],
            depth: 0,
            pairs: Vec::with_capacity(n),
            features: Vec::with_capacity(d),
        };
        // Rows with zero weight take no part (as in a bootstrap sample).
        let mut rows: Vec<u32> = (0..n as u32).filter(|&i| b.weight(i) > 0.0).collect();
        b.grow(&mut rows, 0);
        let total: f64 = b.importances.iter().sum();
        if total > 0.0 {
            b.importances.iter_mut().for_each(|v| *v /= total);
        }
        Ok(FittedDecisionTree::assemble(
            b.nodes,
            b.values,
            n_classes,
            d,
            b.depth,
            b.importances,
        ))
    }
}

impl Fit for Checked<DecisionTreeClassifierParams> {
    type Fitted = FittedDecisionTree;

    fn fit(&self, data: &Dataset) -> Result<FittedDecisionTree> {
        self.grow(data, None)
    }
}

impl Fit for Checked<DecisionTreeRegressorParams> {
    type Fitted = FittedDecisionTree;

    fn fit(&self, data: &Dataset) -> Result<FittedDecisionTree> {
        self.tree.grow(data, None)
    }
}

/// A forest's tree adds its leaves' fractions straight into the ensemble's sum (the same
/// additions in the same order, without a matrix per tree).
impl crate::traits::Member for FittedDecisionTree {
    fn add_proba(&self, x: &Matrix, acc: &mut [f64]) -> Result<()> {
        if self.n_classes() > 0 && self.n_classes() * x.rows() == acc.len() {
            FittedDecisionTree::add_proba(self, x, acc)
        } else {
            crate::traits::add_predicted_proba(self, x, acc)
        }
    }
}

impl Model for FittedDecisionTree {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Ok(self)
    }

    fn is_regressor(&self) -> bool {
        FittedDecisionTree::is_regressor(self)
    }

    fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        FittedDecisionTree::predict_values(self, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::MaxFeatures;

    fn xor() -> Dataset {
        let x = Matrix::from_vec(
            8,
            2,
            vec![
                0., 0., 0., 1., 1., 0., 1., 1., 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.9, 0.9,
            ],
        )
        .unwrap();
        Dataset::from_classes(x, vec![0, 1, 1, 0, 0, 1, 1, 0]).unwrap()
    }

    #[test]
    fn learns_xor_exactly_and_reports_shape() {
        let d = xor();
        let t = DecisionTreeClassifierParams::default()
            .with_random_state(Some(0))
            .fit(&d)
            .unwrap();
        // No single split helps on XOR, so greedy CART may go deeper than 2, but an
        // unlimited tree still fits the training rows exactly.
        assert_eq!(t.predict(d.x()).unwrap(), d.class_target().unwrap().0);
        let s: f64 = t.feature_importances().iter().sum();
        assert!((s - 1.0).abs() < 1e-12);
    }

    #[test]
    fn greedy_structure_on_a_one_dimensional_case() {
        // 0 0 1 1 0 0 along x: best first split isolates one block of zeros (gini 0.444 ->
        // weighted 0.333), the second separates the ones: depth 2, 3 leaves.
        let x = Matrix::from_vec(6, 1, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let d = Dataset::from_classes(x, vec![0, 0, 1, 1, 0, 0]).unwrap();
        let t = DecisionTreeClassifierParams::default()
            .with_random_state(Some(0))
            .fit(&d)
            .unwrap();
        assert_eq!((t.depth(), t.n_leaves()), (2, 3));
        assert_eq!(t.nodes[0].threshold, 2.5);
        assert_eq!(t.predict(d.x()).unwrap(), vec![0, 0, 1, 1, 0, 0]);
    }

    #[test]
    fn thresholds_are_midpoints() {
        let x = Matrix::from_vec(4, 1, vec![1., 2., 4., 8.]).unwrap();
        let d = Dataset::from_classes(x, vec![0, 0, 1, 1]).unwrap();
        let t = DecisionTreeClassifierParams::default()
            .with_random_state(Some(1))
            .fit(&d)
            .unwrap();
        assert_eq!(t.nodes[0].threshold, 3.0);
        let p = t
            .predict(&Matrix::from_vec(2, 1, vec![3.0, 3.01]).unwrap())
            .unwrap();
        assert_eq!(p, vec![0, 1]);
    }

    #[test]
    fn depth_and_leaf_limits_hold() {
        let d = xor();
        let t = DecisionTreeClassifierParams::default()
            .with_max_depth(Some(1))
            .with_random_state(Some(0))
            .fit(&d)
            .unwrap();
        assert_eq!(t.depth(), 1);
        let t = DecisionTreeClassifierParams::default()
            .with_min_samples_leaf(4)
            .with_random_state(Some(0))
            .fit(&d)
            .unwrap();
        assert!(t.n_leaves() <= 2);
    }

    #[test]
    fn same_seed_same_tree_with_feature_subsampling() {
        let d = crate::io::iris();
        let p = DecisionTreeClassifierParams::default()
            .with_max_features(MaxFeatures::Count(1))
            .with_random_state(Some(42));
        assert_eq!(p.fit(&d).unwrap(), p.fit(&d).unwrap());
    }

    #[test]
    fn a_regression_tree_splits_on_variance_and_predicts_leaf_means() {
        // y = 1, 1, 3, 3, 10, 12 along x: the first split separates the two large values
        // (the biggest variance drop), the next splits the rest in two.
        let x = Matrix::from_vec(6, 1, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let d = Dataset::new(
            x.clone(),
            crate::dataset::Target::Values(vec![1., 1., 3., 3., 10., 12.]),
            vec!["x".into()],
            "y",
        )
        .unwrap();
        let p = DecisionTreeRegressorParams {
            tree: DecisionTreeRegressorParams::default()
                .tree
                .with_max_depth(Some(2))
                .with_random_state(Some(0)),
        };
        let t = p.fit(&d).unwrap();
        assert_eq!(t.nodes[0].threshold, 4.5);
        assert_eq!(
            t.predict_values(&x).unwrap(),
            vec![1., 1., 3., 3., 10., 12.]
        );
        let stump = DecisionTreeRegressorParams {
            tree: p.tree.clone().with_max_depth(Some(1)),
        }
        .fit(&d)
        .unwrap();
        assert_eq!(
            stump.predict_values(&x).unwrap(),
            vec![2., 2., 2., 2., 11., 11.]
        );
        assert!(t.predict_proba(&x).is_err());
        assert!(DecisionTreeClassifierParams::default()
            .with_criterion(Criterion::SquaredError)
            .validate()
            .is_err());
    }

    #[test]
    fn missing_cells_take_the_side_that_lowers_impurity() {
        let nan = f32::NAN;
        // Class 1 exactly where x0 is missing: the best split is present against missing.
        let x = Matrix::from_vec(6, 1, vec![1., 2., 3., nan, nan, nan]).unwrap();
        let d = Dataset::from_classes(x, vec![0, 0, 0, 1, 1, 1]).unwrap();
        let t = DecisionTreeClassifierParams::default()
            .with_random_state(Some(0))
            .fit(&d)
            .unwrap();
        assert_eq!(t.node_count(), 3);
        assert_eq!(t.nodes[0].threshold, f64::INFINITY);
        assert!(!t.nodes[0].missing_left);
        let q = Matrix::from_vec(2, 1, vec![nan, 2.5]).unwrap();
        assert_eq!(t.predict(&q).unwrap(), vec![1, 0]);
        // Missing rows that look like the small values go left with them.
        let x = Matrix::from_vec(6, 1, vec![1., 2., 8., 9., nan, nan]).unwrap();
        let d = Dataset::from_classes(x, vec![0, 0, 1, 1, 0, 0]).unwrap();
        let t = DecisionTreeClassifierParams::default()
            .with_random_state(Some(0))
            .fit(&d)
            .unwrap();
        assert_eq!(t.node_count(), 3);
        assert_eq!(t.nodes[0].threshold, 5.0);
        assert!(t.nodes[0].missing_left);
        let q = Matrix::from_vec(3, 1, vec![nan, 1.5, 8.5]).unwrap();
        assert_eq!(t.predict(&q).unwrap(), vec![0, 0, 1]);
        // The learnt sides survive encoding; a tree without them reads them back as the
        // heavier child.
        let bytes = rmp_serde::to_vec_named(&t).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<FittedDecisionTree>(&bytes).unwrap(),
            t
        );
        // A tree that never saw a missing cell sends one to its heavier child (4 rows
        // against 2 here: x <= 2.5 holds the two class-0 rows).
        let x = Matrix::from_vec(6, 1, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let d = Dataset::from_classes(x, vec![0, 0, 1, 1, 1, 1]).unwrap();
        let t = DecisionTreeClassifierParams::default()
            .with_random_state(Some(0))
            .fit(&d)
            .unwrap();
        let q = Matrix::from_vec(1, 1, vec![nan]).unwrap();
        assert_eq!(t.predict(&q).unwrap(), vec![1]);
        assert!(t
            .predict(&Matrix::from_vec(1, 1, vec![f32::INFINITY]).unwrap())
            .is_err());
    }

    #[test]
    fn trees_encode_by_column_and_refuse_broken_links() {
        let d = crate::io::iris();
        let t = DecisionTreeClassifierParams::default()
            .with_random_state(Some(0))
            .fit(&d)
            .unwrap();
        let bytes = rmp_serde::to_vec_named(&t).unwrap();
        let back: FittedDecisionTree = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, t);
        // 36 bytes per node and 4 per class value, plus a few fixed fields.
        let payload = t.node_count() * (36 + 4 * 3);
        assert!(bytes.len() < payload + 300, "{} bytes", bytes.len());
        let mut bad = t.clone();
        bad.nodes[0].left = 0;
        let bytes = rmp_serde::to_vec_named(&bad).unwrap();
        let e = rmp_serde::from_slice::<FittedDecisionTree>(&bytes).unwrap_err();
        assert!(e.to_string().contains("links outside the tree"), "{e}");
    }

    #[test]
    fn f32_thresholds_split_exactly_where_the_f64_ones_do() {
        for (a, b) in [
            (1.0f32, 1.0f32.next_up()),
            (-3.5, -3.4999998),
            (0.1, 0.2),
            (1e30, 1.1e30),
        ] {
            let t = f64::from(a) / 2.0 + f64::from(b) / 2.0;
            let t32 = f32_at_most(t);
            for v in [a.next_down(), a, a.next_up(), b.next_down(), b, b.next_up()] {
                assert_eq!(v <= t32, f64::from(v) <= t, "{v} against {t}");
            }
        }
        assert_eq!(f32_at_most(f64::MAX), f32::MAX);
    }

    /// The leaf a row reaches through the fitted nodes and their f64 thresholds.
    fn node_walk(t: &FittedDecisionTree, row: &[f32]) -> usize {
        let mut i = 0;
        while t.nodes[i].feature != LEAF {
            let n = &t.nodes[i];
            let left = f64::from(row[n.feature as usize]) <= n.threshold;
            i = if left { n.left } else { n.right } as usize;
        }
        i
    }

    #[test]
    fn both_prediction_layouts_reach_the_leaves_of_the_fitted_nodes() {
        // 40 features fit the 8-byte nodes; 300 need the 16-byte ones.
        for (features, packed) in [(40usize, true), (300, false)] {
            let (n, k) = (600, 4);
            let mut rng = Rng::seed_from_u64(7);
            let x: Vec<f32> = (0..n * features)
                .map(|_| (rng.next_f64() * 4.0 - 2.0) as f32)
                .collect();
            // Classes from a few features, plus noise, so the tree is deep and has mixed
            // leaves once min_samples_leaf stops it.
            let y: Vec<u32> = x
                .chunks_exact(features)
                .map(|r| {
                    let s = r[0] + r[features - 1] * 0.5 + (rng.next_f64() as f32 - 0.5);
                    (s.abs() * 2.0) as u32 % k as u32
                })
                .collect();
            let d = Dataset::from_classes(Matrix::from_vec(n, features, x).unwrap(), y).unwrap();
            for leaf_size in [1, 5] {
                let t = DecisionTreeClassifierParams::default()
                    .with_min_samples_leaf(leaf_size)
                    .with_random_state(Some(1))
                    .fit(&d)
                    .unwrap();
                assert_eq!(t.walk.packed.is_empty(), !packed);
                let p = t.predict_proba(d.x()).unwrap();
                let mut acc = vec![0.0f64; n * k];
                t.add_proba(d.x(), &mut acc).unwrap();
                let mut mixed = 0;
                for (r, row) in d.x().data().chunks_exact(features).enumerate() {
                    let leaf = node_walk(&t, row);
                    let want = &t.values[leaf * k..(leaf + 1) * k];
                    mixed += usize::from(want.iter().all(|&v| v < 1.0));
                    assert_eq!(&p.data()[r * k..(r + 1) * k], want, "row {r}");
                    let sum: Vec<f32> = acc[r * k..(r + 1) * k].iter().map(|&v| v as f32).collect();
                    assert_eq!(sum, want, "row {r}");
                }
                assert_eq!(
                    mixed > 0,
                    leaf_size > 1,
                    "{features} features, leaves of {leaf_size}"
                );
            }
        }
    }

    #[test]
    fn weights_act_like_repeated_rows() {
        let d = crate::io::iris();
        let idx: Vec<usize> = (0..150).chain(0..30).collect();
        let mut w = vec![1.0; 150];
        w[..30].iter_mut().for_each(|v| *v = 2.0);
        let p = DecisionTreeClassifierParams::default()
            .with_max_depth(Some(3))
            .with_random_state(Some(3));
        let a = p.fit_weighted(&d, Some(&w)).unwrap();
        let b = p.fit(&d.select(&idx).unwrap()).unwrap();
        assert_eq!(a.predict(d.x()).unwrap(), b.predict(d.x()).unwrap());
    }
}

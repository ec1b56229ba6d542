//! One histogram tree grown leaf-wise from gradients, as scikit-learn's `TreeGrower` and
//! `Splitter` do: the node with the largest gain splits next; a node's histograms come
//! from its rows for the smaller child and by subtraction for the larger; every split
//! learns where missing cells go; categorical columns split by sorting their categories
//! by gradient over hessian (Fisher's grouping); monotonic constraints bound the children.

use serde::{Deserialize, Serialize};

use crate::binning::Binned;
use crate::error::Result;
use crate::histogram::{Bin, Histograms};
use crate::rng::Rng;

/// A set of bins (or category codes), 256 bits.
pub type Bitset = [u64; 4];

fn bit(set: &Bitset, b: usize) -> bool {
    set[b >> 6] >> (b & 63) & 1 == 1
}

fn set_bit(set: &mut Bitset, b: usize) {
    set[b >> 6] |= 1 << (b & 63);
}

/// What the grower knows of a column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feature {
    /// Bins its non-missing values take.
    pub n_bins_non_missing: usize,
    /// The training rows have missing cells in it.
    pub has_missing: bool,
    /// Split by category sets rather than thresholds.
    pub categorical: bool,
    /// 1 increasing, -1 decreasing, 0 unconstrained.
    pub monotonic: i8,
}

/// The grower's parameters (scikit-learn's names).
#[derive(Debug, Clone, PartialEq)]
pub struct GrowerParams {
    /// Most leaves; `None` for no limit.
    pub max_leaf_nodes: Option<usize>,
    /// Deepest a leaf may be (the root is at depth 0).
    pub max_depth: Option<usize>,
    /// Fewest rows in a leaf.
    pub min_samples_leaf: usize,
    /// L2 penalty on leaf values.
    pub l2_regularization: f64,
    /// Fewest hessians a child may sum to (scikit-learn's 1e-3).
    pub min_hessian_to_split: f64,
    /// Multiplies the leaves' values once grown (the learning rate).
    pub shrinkage: f64,
    /// Share of the columns a node's split is chosen among (scikit-learn's `max_features`).
    pub feature_fraction: f64,
    /// Bins per column, the missing bin included.
    pub n_bins: usize,
    /// Threads a large node's histograms may be summed on.
    pub threads: usize,
}

impl GrowerParams {
    fn missing_bin(&self) -> usize {
        self.n_bins - 1
    }
}

/// One node of a grown tree. A leaf has `left == 0` (the root is never a child).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    /// A leaf's value (shrunk); an inner node's value before shrinkage.
    pub value: f64,
    /// Training rows that reached the node.
    pub count: u32,
    /// The column split on.
    pub feature: u32,
    /// A numeric split: values at or below go left (`+inf` sends every value left and
    /// missing cells right).
    pub threshold: f64,
    /// The split's bin: bins at or below go left.
    pub bin: u8,
    /// Where missing cells go.
    pub missing_left: bool,
    /// Children's indices.
    pub left: u32,
    /// Right child.
    pub right: u32,
    /// The loss reduction of the split.
    pub gain: f64,
    /// A categorical split's categories (codes) that go left.
    pub categories: Option<Bitset>,
}

impl TreeNode {
    /// True for a leaf.
    pub fn is_leaf(&self) -> bool {
        self.left == 0
    }
}

/// The best split of a node.
#[derive(Debug, Clone)]
struct Split {
    gain: f64,
    feature: usize,
    bin: usize,
    missing_left: bool,
    g_left: f64,
    h_left: f64,
    value_left: f64,
    value_right: f64,
    categories: Option<Bitset>,
}

/// The constants of a node's split search.
struct Search<'a> {
    p: &'a GrowerParams,
    constant_hessian: bool,
    n: u32,
    g: f64,
    h: f64,
    lower: f64,
    upper: f64,
    loss_current: f64,
}

/// A node's value `-G / (H + l2)`, clipped to its bounds.
pub fn node_value(g: f64, h: f64, lower: f64, upper: f64, l2: f64) -> f64 {
    (-g / (h + l2 + 1e-15)).clamp(lower, upper)
}

impl Search<'_> {
    fn hess(&self, b: &Bin) -> f64 {
        if self.constant_hessian {
            f64::from(b.count)
        } else {
            b.h
        }
    }

    /// The gain of sending `(g_left, h_left)` left, or -1 for a split that breaks the
    /// monotonic constraint.
    fn gain(&self, g_left: f64, h_left: f64, monotonic: i8) -> f64 {
        let l2 = self.p.l2_regularization;
        let (g_right, h_right) = (self.g - g_left, self.h - h_left);
        let vl = node_value(g_left, h_left, self.lower, self.upper, l2);
        let vr = node_value(g_right, h_right, self.lower, self.upper, l2);
        if (monotonic == 1 && vl > vr) || (monotonic == -1 && vl < vr) {
            return -1.0;
        }
        self.loss_current - g_left * vl - g_right * vr
    }

    fn finish(
        &self,
        feature: usize,
        gain: f64,
        bin: usize,
        missing_left: bool,
        gl: f64,
        hl: f64,
    ) -> Split {
        let l2 = self.p.l2_regularization;
        Split {
            gain,
            feature,
            bin,
            missing_left,
            g_left: gl,
            h_left: hl,
            value_left: node_value(gl, hl, self.lower, self.upper, l2),
            value_right: node_value(self.g - gl, self.h - hl, self.lower, self.upper, l2),
            categories: None,
        }
    }

    /// A numeric column's best threshold: scanned left to right with missing cells
    /// going right, then (when the column has missing cells) right to left with them
    /// going left; a later candidate must gain strictly more.
    fn numeric(&self, j: usize, f: &Feature, hist: &[Bin]) -> Option<Split> {
        let min = self.p.min_samples_leaf as u32;
        let mh = self.p.min_hessian_to_split;
        let mut best = None;
        let mut best_gain = -1.0;
        let end = f.n_bins_non_missing - 1 + usize::from(f.has_missing);
        let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0u32);
        for (b, bin) in hist.iter().enumerate().take(end) {
            // An empty bin moves no row: its split is the previous bin's, which cannot
            // gain strictly more (scikit-learn scans it to the same effect).
            if bin.count == 0 {
                continue;
            }
            nl += bin.count;
            hl += self.hess(bin);
            gl += bin.g;
            if nl < min {
                continue;
            }
            if self.n - nl < min {
                break;
            }
            if hl < mh {
                continue;
            }
            if self.h - hl < mh {
                break;
            }
            let gain = self.gain(gl, hl, f.monotonic);
            if gain > best_gain && gain > 0.0 {
                best_gain = gain;
                best = Some(self.finish(j, gain, b, false, gl, hl));
            }
        }
        if f.has_missing {
            let (mut gr, mut hr, mut nr) = (0.0, 0.0, 0u32);
            for b in (0..f.n_bins_non_missing.saturating_sub(1)).rev() {
                let bin = &hist[b + 1];
                if bin.count == 0 {
                    continue;
                }
                nr += bin.count;
                hr += self.hess(bin);
                gr += bin.g;
                if nr < min {
                    continue;
                }
                if self.n - nr < min {
                    break;
                }
                if hr < mh {
                    continue;
                }
                if self.h - hr < mh {
                    break;
                }
                let (gl, hl) = (self.g - gr, self.h - hr);
                let gain = self.gain(gl, hl, f.monotonic);
                if gain > best_gain && gain > 0.0 {
                    best_gain = gain;
                    best = Some(self.finish(j, gain, b, true, gl, hl));
                }
            }
        }
        best
    }

    /// A categorical column's best set of categories: those with enough support sorted
    /// by `G / (H + 10)` (missing cells a category of their own), scanned from both ends
    /// up to the middle, so the rare categories stay right.
    fn categorical(&self, j: usize, f: &Feature, hist: &[Bin]) -> Option<Split> {
        const MIN_CAT_SUPPORT: f64 = 10.0;
        let support = f64::from(self.n) / self.h;
        let mut cats: Vec<(usize, f64)> = Vec::new();
        let missing = self.p.missing_bin();
        let candidates = (0..f.n_bins_non_missing).chain(f.has_missing.then_some(missing));
        for b in candidates {
            let h = self.hess(&hist[b]);
            if h * support >= MIN_CAT_SUPPORT {
                cats.push((b, hist[b].g / (h + MIN_CAT_SUPPORT)));
            }
        }
        if cats.len() <= 1 {
            return None;
        }
        cats.sort_by(|a, b| a.1.total_cmp(&b.1));
        let used = cats.len();
        let mut best_gain = -1.0;
        let mut found = None;
        for direction in [1i32, -1] {
            let middle = if direction == 1 {
                used.div_ceil(2)
            } else {
                used.div_ceil(2) - 1
            };
            let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0u32);
            for i in 0..middle {
                let k = if direction == 1 { i } else { used - 1 - i };
                let bin = &hist[cats[k].0];
                nl += bin.count;
                hl += self.hess(bin);
                gl += bin.g;
                let min = self.p.min_samples_leaf as u32;
                let mh = self.p.min_hessian_to_split;
                if nl < min || hl < mh {
                    continue;
                }
                if self.n - nl < min || self.h - hl < mh {
                    break;
                }
                let gain = self.gain(gl, hl, f.monotonic);
                if gain > best_gain && gain > 0.0 {
                    best_gain = gain;
                    found = Some((k, direction, gl, hl));
                }
            }
        }
        let (k, direction, gl, hl) = found?;
        let mut set = [0u64; 4];
        let chosen: &[(usize, f64)] = if direction == 1 {
            &cats[..=k]
        } else {
            &cats[k..]
        };
        for &(b, _) in chosen {
            set_bit(&mut set, b);
        }
        let missing_left = f.has_missing && bit(&set, missing);
        let mut s = self.finish(j, best_gain, 0, missing_left, gl, hl);
        s.categories = Some(set);
        Some(s)
    }
}

/// A node being grown.
struct Growing {
    depth: usize,
    start: usize,
    stop: usize,
    g: f64,
    h: f64,
    value: f64,
    lower: f64,
    upper: f64,
    hist: Option<Histograms>,
    split: Option<Split>,
    left: usize,
    right: usize,
    leaf: bool,
}

/// A grown tree and where its training rows ended.
#[derive(Debug)]
pub struct Grown {
    /// The tree.
    pub nodes: Vec<TreeNode>,
    /// Each leaf's node index and its rows' range in [`Grown::rows`].
    pub leaves: Vec<(usize, std::ops::Range<usize>)>,
    /// The training rows, grouped by leaf.
    pub rows: Vec<u32>,
}

/// Buffers a grower reuses from tree to tree (so that a fit of many small trees does not
/// spend its time allocating and zeroing fresh pages): histograms of finished nodes, the
/// row partition and the node's gradients in row order.
#[derive(Debug, Default)]
pub struct Workspace {
    pool: Vec<Histograms>,
    rows: Vec<u32>,
    scratch: Vec<u32>,
    og: Vec<f32>,
    oh: Vec<f32>,
}

impl Workspace {
    /// Takes back a grown tree's row partition ([`Grown::rows`]) for the next tree.
    pub fn recycle(&mut self, rows: Vec<u32>) {
        self.rows = rows;
    }
}

/// Grows one tree on `binned` (`by_row`: its [`Binned::row_major`] copy) from gradients
/// `g` and (unless the hessian is constant) hessians `h`, indexed by row. `rng` draws the
/// columns a node may split on when `feature_fraction < 1`; `ws` lends its buffers.
#[allow(clippy::too_many_arguments)]
pub fn grow(
    binned: &Binned,
    by_row: &[u8],
    features: &[Feature],
    g: &[f32],
    h: Option<&[f32]>,
    p: &GrowerParams,
    rng: &mut Rng,
    ws: &mut Workspace,
) -> Result<Grown> {
    let n = binned.rows();
    let mut rows = std::mem::take(&mut ws.rows);
    rows.clear();
    rows.extend(0..n as u32);
    let scratch = &mut ws.scratch;
    scratch.resize(n, 0);
    let (og, oh) = (&mut ws.og, &mut ws.oh);
    let mut pool = std::mem::take(&mut ws.pool);
    let cols = binned.cols();
    let mut hist_of = |rows: &[u32], identity: bool, pool: &mut Vec<Histograms>| {
        og.clear();
        og.extend(rows.iter().map(|&r| g[r as usize]));
        if let Some(h) = h {
            oh.clear();
            oh.extend(rows.iter().map(|&r| h[r as usize]));
        }
        let mut out = pool
            .pop()
            .filter(|h| h.bins_len() == cols * 256)
            .unwrap_or_else(|| Histograms::zeroed(cols));
        out.fill(
            by_row,
            rows,
            identity,
            og,
            h.map(|_| oh.as_slice()),
            p.threads,
        );
        out
    };
    let root_hist = hist_of(&rows, true, &mut pool);
    let g_root: f64 = root_hist.column(0).iter().map(|b| b.g).sum();
    let h_root = match h {
        Some(_) => root_hist.column(0).iter().map(|b| b.h).sum(),
        None => n as f64,
    };
    let mut nodes = vec![Growing {
        depth: 0,
        start: 0,
        stop: n,
        g: g_root,
        h: h_root,
        value: 0.0,
        lower: f64::NEG_INFINITY,
        upper: f64::INFINITY,
        hist: Some(root_hist),
        split: None,
        left: 0,
        right: 0,
        leaf: false,
    }];
    let mut splittable: Vec<usize> = Vec::new();
    let mut n_leaves_final = 0usize;
    let min2 = 2 * p.min_samples_leaf;
    let find = |node: &Growing, rng: &mut Rng| -> Option<Split> {
        let hist = node.hist.as_ref()?;
        let search = Search {
            p,
            constant_hessian: h.is_none(),
            n: (node.stop - node.start) as u32,
            g: node.g,
            h: node.h,
            lower: node.lower,
            upper: node.upper,
            loss_current: node.g * node.value,
        };
        let d = features.len();
        let mask: Option<Vec<bool>> = (p.feature_fraction < 1.0).then(|| {
            let k = ((p.feature_fraction * d as f64).ceil() as usize).max(1);
            let mut m: Vec<bool> = (0..d).map(|j| j < k).collect();
            rng.shuffle(&mut m);
            m
        });
        let mut best: Option<Split> = None;
        // Categorical columns first, as scikit-learn orders its columns (its encoder puts
        // them first): on equal gains the first column scanned wins.
        let cat_first = features
            .iter()
            .enumerate()
            .filter(|(_, f)| f.categorical)
            .chain(features.iter().enumerate().filter(|(_, f)| !f.categorical));
        for (j, f) in cat_first {
            if mask.as_ref().is_some_and(|m| !m[j]) {
                continue;
            }
            let col = hist.column(j);
            let s = if f.categorical {
                search.categorical(j, f, col)
            } else {
                search.numeric(j, f, col)
            };
            if let Some(s) = s {
                if best.as_ref().is_none_or(|b| s.gain > b.gain) {
                    best = Some(s);
                }
            }
        }
        best
    };
    if n < min2 || h_root < p.min_hessian_to_split {
        nodes[0].leaf = true;
    } else {
        match find(&nodes[0], rng) {
            Some(s) => {
                nodes[0].split = Some(s);
                splittable.push(0);
            }
            None => nodes[0].leaf = true,
        }
    }
    if nodes[0].leaf {
        n_leaves_final += 1;
    }
    while !splittable.is_empty() {
        // The splittable node of largest gain (the first of ties).
        let pos = (0..splittable.len())
            .reduce(|a, b| {
                let ga = nodes[splittable[a]]
                    .split
                    .as_ref()
                    .map_or(f64::MIN, |s| s.gain);
                let gb = nodes[splittable[b]]
                    .split
                    .as_ref()
                    .map_or(f64::MIN, |s| s.gain);
                if gb > ga {
                    b
                } else {
                    a
                }
            })
            .unwrap_or(0);
        let id = splittable.remove(pos);
        let (start, stop, depth) = (nodes[id].start, nodes[id].stop, nodes[id].depth);
        let Some(mut split) = nodes[id].split.take() else {
            continue;
        };
        let f = features[split.feature];
        // Partition the node's rows, stably: left ones in place, right ones after them.
        let column = binned.column(split.feature);
        let missing = p.missing_bin();
        let goes_left = |b: usize| match &split.categories {
            Some(set) => bit(set, b),
            None => (split.missing_left && b == missing) || b <= split.bin,
        };
        let mut nl = start;
        let mut nr = 0;
        for i in start..stop {
            let r = rows[i];
            if goes_left(usize::from(column[r as usize])) {
                rows[nl] = r;
                nl += 1;
            } else {
                scratch[nr] = r;
                nr += 1;
            }
        }
        rows[nl..stop].copy_from_slice(&scratch[..nr]);
        let g_right = nodes[id].g - split.g_left;
        let h_right = nodes[id].h - split.h_left;
        if !f.has_missing {
            split.missing_left = nl - start > stop - nl;
        }
        let (lower, upper) = (nodes[id].lower, nodes[id].upper);
        let child = |start, stop, g, h, value| Growing {
            depth: depth + 1,
            start,
            stop,
            g,
            h,
            value,
            lower,
            upper,
            hist: None,
            split: None,
            left: 0,
            right: 0,
            leaf: false,
        };
        let l = nodes.len();
        nodes.push(child(
            start,
            nl,
            split.g_left,
            split.h_left,
            split.value_left,
        ));
        nodes.push(child(nl, stop, g_right, h_right, split.value_right));
        let r = l + 1;
        nodes[id].left = l;
        nodes[id].right = r;
        let (vl, vr) = (split.value_left, split.value_right);
        let feature = split.feature;
        nodes[id].split = Some(split);
        let n_leaf_nodes = n_leaves_final + splittable.len() + 2;
        let mut finalize_all = false;
        if p.max_leaf_nodes.is_some_and(|m| n_leaf_nodes >= m) {
            nodes[l].leaf = true;
            nodes[r].leaf = true;
            finalize_all = true;
        } else if p.max_depth.is_some_and(|m| depth + 1 >= m) {
            nodes[l].leaf = true;
            nodes[r].leaf = true;
        } else {
            for c in [l, r] {
                if nodes[c].stop - nodes[c].start < min2 {
                    nodes[c].leaf = true;
                }
            }
        }
        if features[feature].monotonic != 0 {
            let mid = (vl + vr) / 2.0;
            let (ll, ul, lr, ur) = if features[feature].monotonic == 1 {
                (lower, mid, mid, upper)
            } else {
                (mid, upper, lower, mid)
            };
            nodes[l].lower = ll;
            nodes[l].upper = ul;
            nodes[r].lower = lr;
            nodes[r].upper = ur;
        }
        let parent_hist = nodes[id].hist.take();
        if nodes[l].leaf && nodes[r].leaf {
            pool.extend(parent_hist);
        } else {
            let (small, large) = if nl - start < stop - nl {
                (l, r)
            } else {
                (r, l)
            };
            let (s0, s1) = (nodes[small].start, nodes[small].stop);
            let small_hist = hist_of(&rows[s0..s1], false, &mut pool);
            let mut large_hist = parent_hist.ok_or_else(|| {
                crate::error::ModelError::data("grower", "a split node without histograms")
            })?;
            large_hist.subtract(&small_hist)?;
            nodes[small].hist = Some(small_hist);
            nodes[large].hist = Some(large_hist);
            for c in [l, r] {
                if !nodes[c].leaf {
                    match find(&nodes[c], rng) {
                        Some(s) => {
                            nodes[c].split = Some(s);
                            splittable.push(c);
                        }
                        None => nodes[c].leaf = true,
                    }
                }
                if nodes[c].leaf {
                    pool.extend(nodes[c].hist.take());
                }
            }
        }
        n_leaves_final += usize::from(nodes[l].leaf) + usize::from(nodes[r].leaf);
        if finalize_all {
            for c in splittable.drain(..) {
                nodes[c].leaf = true;
                nodes[c].split = None;
                pool.extend(nodes[c].hist.take());
            }
        }
    }
    // Every node's histograms go back to the pool for the next tree.
    pool.extend(nodes.iter_mut().filter_map(|n| n.hist.take()));
    ws.pool = pool;
    Ok(finish(nodes, rows, p.shrinkage))
}

fn finish(nodes: Vec<Growing>, rows: Vec<u32>, shrinkage: f64) -> Grown {
    let mut leaves = Vec::new();
    let out = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let count = (n.stop - n.start) as u32;
            match (&n.split, n.leaf) {
                (Some(s), false) => TreeNode {
                    value: n.value,
                    count,
                    feature: s.feature as u32,
                    threshold: 0.0,
                    bin: s.bin as u8,
                    missing_left: s.missing_left,
                    left: n.left as u32,
                    right: n.right as u32,
                    gain: s.gain,
                    categories: s.categories,
                },
                _ => {
                    leaves.push((i, n.start..n.stop));
                    TreeNode {
                        value: n.value * shrinkage,
                        count,
                        feature: 0,
                        threshold: 0.0,
                        bin: 0,
                        missing_left: false,
                        left: 0,
                        right: 0,
                        gain: 0.0,
                        categories: None,
                    }
                }
            }
        })
        .collect();
    Grown {
        nodes: out,
        leaves,
        rows,
    }
}

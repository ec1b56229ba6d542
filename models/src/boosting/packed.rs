//! Boosted trees packed for prediction: 16-byte nodes, children side by side, thresholds
//! as `f32` (the largest `f32` at or below the fitted `f64` threshold, so that `x <= t`
//! decides every `f32` cell as the `f64` comparison does), leaf values apart. Serving,
//! batch and local prediction all walk this layout; the fitted [`TreeNode`]s stay the
//! model's serialised form.

use super::grower::{Bitset, TreeNode};

const LEAF: u32 = 1 << 31;
const MISSING_LEFT: u32 = 1 << 30;
const CATEGORICAL: u32 = 1 << 29;
const INDEX: u32 = CATEGORICAL - 1;

/// One node: a split (`feature`, `threshold`; children at `next` and `next + 1`) or a
/// leaf (`next` indexes the leaf values).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    feature: u32,
    threshold: f32,
    next: u32,
    /// Flags, and for a categorical split the index of its category set.
    flags: u32,
}

/// Every tree of a model, packed.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Packed {
    nodes: Vec<Node>,
    /// Where each tree's root is.
    roots: Vec<u32>,
    values: Vec<f64>,
    sets: Vec<Bitset>,
}

/// The largest `f32` at or below `t`.
fn floor_f32(t: f64) -> f32 {
    let f = t as f32;
    if f64::from(f) > t {
        f.next_down()
    } else {
        f
    }
}

impl Packed {
    /// Packs `trees`, relabelling each tree's nodes breadth first so that siblings sit
    /// together.
    pub(crate) fn new(trees: &[Vec<TreeNode>]) -> Self {
        let mut p = Packed::default();
        for tree in trees {
            let root = p.nodes.len();
            p.roots.push(root as u32);
            p.nodes.push(Node {
                feature: 0,
                threshold: 0.0,
                next: 0,
                flags: 0,
            });
            // (index in `tree`, slot in `p.nodes`)
            let mut queue = std::collections::VecDeque::from([(0usize, root)]);
            while let Some((i, slot)) = queue.pop_front() {
                let n = &tree[i];
                p.nodes[slot] = if n.is_leaf() {
                    p.values.push(n.value);
                    Node {
                        feature: 0,
                        threshold: 0.0,
                        next: (p.values.len() - 1) as u32,
                        flags: LEAF,
                    }
                } else {
                    let next = p.nodes.len();
                    p.nodes.extend(
                        [Node {
                            feature: 0,
                            threshold: 0.0,
                            next: 0,
                            flags: 0,
                        }; 2],
                    );
                    queue.push_back((n.left as usize, next));
                    queue.push_back((n.right as usize, next + 1));
                    let mut flags = if n.missing_left { MISSING_LEFT } else { 0 };
                    if let Some(set) = n.categories {
                        flags |= CATEGORICAL | p.sets.len() as u32 & INDEX;
                        p.sets.push(set);
                    }
                    Node {
                        feature: n.feature,
                        threshold: floor_f32(n.threshold),
                        next: next as u32,
                        flags,
                    }
                };
            }
        }
        p
    }

    /// Adds tree `t`'s value for every row of `x` (row-major, `d` columns) to
    /// `out[i * stride + offset]`. Rows walk the tree eight at a time, a level each in
    /// turn, so that the eight walks' memory reads overlap instead of waiting one on
    /// another.
    pub(crate) fn add_tree(
        &self,
        t: usize,
        x: &[f32],
        d: usize,
        out: &mut [f64],
        stride: usize,
        offset: usize,
    ) {
        const LANES: usize = 8;
        let root = self.roots[t];
        for (b, rows) in x.chunks(LANES * d).enumerate() {
            let lanes = rows.len() / d;
            let mut at = [root; LANES];
            loop {
                let mut moving = false;
                for (l, row) in rows.chunks_exact(d).enumerate() {
                    let node = self.nodes[at[l] as usize];
                    if node.flags & LEAF != 0 {
                        continue;
                    }
                    moving = true;
                    at[l] = node.next + u32::from(!self.goes_left(&node, row));
                }
                if !moving {
                    break;
                }
            }
            for (l, &a) in at.iter().enumerate().take(lanes) {
                out[(b * LANES + l) * stride + offset] +=
                    self.values[self.nodes[a as usize].next as usize];
            }
        }
    }

    /// True when `row` goes left at split `node`.
    #[inline(always)]
    fn goes_left(&self, node: &Node, row: &[f32]) -> bool {
        let v = row[node.feature as usize];
        if v.is_nan() {
            node.flags & MISSING_LEFT != 0
        } else if node.flags & CATEGORICAL != 0 {
            if (0.0..256.0).contains(&v) {
                let set = &self.sets[(node.flags & INDEX) as usize];
                set[v as usize >> 6] >> (v as usize & 63) & 1 == 1
            } else {
                node.flags & MISSING_LEFT != 0
            }
        } else {
            v <= node.threshold
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_thresholds_decide_as_the_f64_ones() {
        for t in [
            0.1f64,
            -0.1,
            1e300,
            3.0,
            f64::INFINITY,
            16_777_217.0,
            -1e-40,
        ] {
            let f = floor_f32(t);
            assert!(f64::from(f) <= t);
            for x in [f, f.next_up(), f.next_down(), 0.0, 1.0, f32::MAX] {
                assert_eq!(x <= f, f64::from(x) <= t, "{x} against {t}");
            }
        }
    }
}

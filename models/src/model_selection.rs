//! Splitting rows for evaluation: train/test splits and (stratified) k-fold.
//!
//! Splits are row indices, so the same split can be recomputed from a seed on any peer.
//! Without shuffling, [`KFold`] and [`StratifiedKFold`] produce exactly scikit-learn's folds.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::rng::Rng;

/// Size of the test side of a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum TestSize {
    /// A fraction of the rows in (0, 1), rounded up.
    Fraction(f64),
    /// An absolute number of rows.
    Count(usize),
}

fn split_error(msg: impl Into<String>) -> ModelError {
    ModelError::data("split", msg)
}

/// Splits `0..n` into sorted train and test row indices, shuffled with `seed`; with
/// `stratify`, each class keeps (as nearly as possible) its share on both sides.
pub fn train_test_split(
    n: usize,
    test_size: TestSize,
    seed: u64,
    stratify: Option<&[u32]>,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let n_test = match test_size {
        TestSize::Fraction(f) if f > 0.0 && f < 1.0 => (f * n as f64).ceil() as usize,
        TestSize::Fraction(f) => {
            return Err(split_error(format!(
                "test size {f} must be a fraction in (0, 1)"
            )))
        }
        TestSize::Count(c) => c,
    };
    if n_test == 0 || n_test >= n {
        return Err(split_error(format!(
            "a test set of {n_test} rows out of {n} leaves no rows on one side"
        )));
    }
    let mut rng = Rng::seed_from_u64(seed);
    let mut test = match stratify {
        None => {
            let mut p = rng.permutation(n);
            p.truncate(n_test);
            p
        }
        Some(y) => {
            if y.len() != n {
                return Err(split_error(format!("{} labels for {n} rows", y.len())));
            }
            let by_class = rows_by_class(y);
            let counts: Vec<usize> = by_class.iter().map(Vec::len).collect();
            let n_classes = counts.iter().filter(|&&c| c > 0).count();
            if n_test < n_classes || n - n_test < n_classes {
                return Err(split_error(format!(
                    "cannot stratify {n_classes} classes into a test set of {n_test} and a train set of {} rows",
                    n - n_test
                )));
            }
            let alloc = allocate(&counts, n_test, &mut rng);
            let mut test = Vec::with_capacity(n_test);
            for (mut rows, take) in by_class.into_iter().zip(alloc) {
                rng.shuffle(&mut rows);
                test.extend_from_slice(&rows[..take]);
            }
            test
        }
    };
    test.sort_unstable();
    let mut is_test = vec![false; n];
    test.iter().for_each(|&i| is_test[i] = true);
    let train = (0..n).filter(|&i| !is_test[i]).collect();
    Ok((train, test))
}

fn rows_by_class(y: &[u32]) -> Vec<Vec<usize>> {
    let k = y.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut by_class = vec![Vec::new(); k];
    for (i, &c) in y.iter().enumerate() {
        by_class[c as usize].push(i);
    }
    by_class
}

/// Splits `total` draws among classes in proportion to `counts`: floors first, then one
/// more for the largest remainders (ties broken by `rng`), never above a class's count.
fn allocate(counts: &[usize], total: usize, rng: &mut Rng) -> Vec<usize> {
    let n: usize = counts.iter().sum();
    let exact: Vec<f64> = counts
        .iter()
        .map(|&c| c as f64 * total as f64 / n as f64)
        .collect();
    let mut alloc: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = total - alloc.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    rng.shuffle(&mut order);
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    for &c in order.iter().cycle().take(order.len() * 2) {
        if left == 0 {
            break;
        }
        if alloc[c] < counts[c] {
            alloc[c] += 1;
            left -= 1;
        }
    }
    alloc
}

/// One fold: training rows and test rows, both ascending.
pub type Fold = (Vec<usize>, Vec<usize>);

fn folds_from_assignment(assign: &[usize], k: usize) -> Vec<Fold> {
    (0..k)
        .map(|f| {
            let test = (0..assign.len()).filter(|&i| assign[i] == f).collect();
            let train = (0..assign.len()).filter(|&i| assign[i] != f).collect();
            (train, test)
        })
        .collect()
}

/// K-fold cross-validation: consecutive blocks (the first `n % k` one row larger), after an
/// optional seeded shuffle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KFold {
    /// Number of folds (>= 2).
    pub n_splits: usize,
    /// Shuffle rows before cutting blocks.
    pub shuffle: bool,
    /// Seed for the shuffle.
    pub seed: u64,
}

impl KFold {
    /// `n_splits` folds without shuffling.
    pub fn new(n_splits: usize) -> Self {
        Self {
            n_splits,
            shuffle: false,
            seed: 0,
        }
    }

    /// Shuffles with `seed` first.
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.shuffle = true;
        self.seed = seed;
        self
    }

    /// The folds of `n` rows.
    pub fn split(&self, n: usize) -> Result<Vec<Fold>> {
        let k = self.n_splits;
        if k < 2 || k > n {
            return Err(split_error(format!(
                "cannot make {k} folds of {n} rows (need 2 <= folds <= rows)"
            )));
        }
        let order: Vec<usize> = if self.shuffle {
            Rng::seed_from_u64(self.seed).permutation(n)
        } else {
            (0..n).collect()
        };
        let mut assign = vec![0usize; n];
        let mut start = 0;
        for f in 0..k {
            let size = n / k + usize::from(f < n % k);
            for &i in &order[start..start + size] {
                assign[i] = f;
            }
            start += size;
        }
        Ok(folds_from_assignment(&assign, k))
    }
}

/// Stratified k-fold: every fold keeps each class's share, using scikit-learn's allocation
/// (classes numbered by first appearance, sorted labels dealt round-robin to folds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StratifiedKFold {
    /// Number of folds (>= 2).
    pub n_splits: usize,
    /// Shuffle each class's rows among its folds.
    pub shuffle: bool,
    /// Seed for the shuffle.
    pub seed: u64,
}

impl StratifiedKFold {
    /// `n_splits` folds without shuffling.
    pub fn new(n_splits: usize) -> Self {
        Self {
            n_splits,
            shuffle: false,
            seed: 0,
        }
    }

    /// Shuffles with `seed`.
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.shuffle = true;
        self.seed = seed;
        self
    }

    /// The folds for class labels `y`.
    pub fn split(&self, y: &[u32]) -> Result<Vec<Fold>> {
        let (k, n) = (self.n_splits, y.len());
        if k < 2 || k > n {
            return Err(split_error(format!(
                "cannot make {k} folds of {n} rows (need 2 <= folds <= rows)"
            )));
        }
        // Encode classes in order of first appearance.
        let max = y.iter().copied().max().unwrap_or(0) as usize;
        let mut code = vec![usize::MAX; max + 1];
        let mut n_classes = 0;
        let enc: Vec<usize> = y
            .iter()
            .map(|&c| {
                if code[c as usize] == usize::MAX {
                    code[c as usize] = n_classes;
                    n_classes += 1;
                }
                code[c as usize]
            })
            .collect();
        let mut counts = vec![0usize; n_classes];
        enc.iter().for_each(|&c| counts[c] += 1);
        if counts.iter().all(|&c| c < k) {
            return Err(split_error(format!(
                "cannot make {k} stratified folds: no class has {k} or more rows"
            )));
        }
        if let Some(min) = counts.iter().min().filter(|&&m| m < k) {
            tracing::warn!(
                min_class_rows = min,
                n_splits = k,
                "the smallest class has fewer rows than folds"
            );
        }
        // allocation[f][c]: rows of class c in fold f, from dealing sorted labels round-robin.
        let mut sorted = enc.clone();
        sorted.sort_unstable();
        let mut allocation = vec![vec![0usize; n_classes]; k];
        for (i, &c) in sorted.iter().enumerate() {
            allocation[i % k][c] += 1;
        }
        let mut rng = Rng::seed_from_u64(self.seed);
        let mut assign = vec![0usize; n];
        for c in 0..n_classes {
            let mut folds: Vec<usize> = (0..k)
                .flat_map(|f| std::iter::repeat_n(f, allocation[f][c]))
                .collect();
            if self.shuffle {
                rng.shuffle(&mut folds);
            }
            let rows = (0..n).filter(|&i| enc[i] == c);
            for (i, f) in rows.zip(folds) {
                assign[i] = f;
            }
        }
        Ok(folds_from_assignment(&assign, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_sizes_and_disjointness() {
        let (tr, te) = train_test_split(150, TestSize::Fraction(0.2), 1, None).unwrap();
        assert_eq!((tr.len(), te.len()), (120, 30));
        let mut all: Vec<usize> = tr.iter().chain(&te).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..150).collect::<Vec<_>>());
        // ceil, like scikit-learn: 0.25 of 10 rows is 3 test rows
        let (_, te) = train_test_split(10, TestSize::Fraction(0.25), 1, None).unwrap();
        assert_eq!(te.len(), 3);
        assert_eq!(
            train_test_split(150, TestSize::Fraction(0.2), 1, None)
                .unwrap()
                .1,
            train_test_split(150, TestSize::Fraction(0.2), 1, None)
                .unwrap()
                .1
        );
        assert_ne!(
            train_test_split(150, TestSize::Fraction(0.2), 2, None)
                .unwrap()
                .1,
            te
        );
    }

    #[test]
    fn stratified_split_keeps_class_shares() {
        let y: Vec<u32> = (0..150).map(|i| (i / 50) as u32).collect();
        let (_, te) = train_test_split(150, TestSize::Fraction(0.2), 7, Some(&y)).unwrap();
        for c in 0..3 {
            assert_eq!(te.iter().filter(|&&i| y[i] == c).count(), 10);
        }
        // Uneven: 7/3 rows, 5 test rows -> 3.5/1.5 -> one class gets the extra row.
        let y2 = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
        let (_, te) = train_test_split(10, TestSize::Count(5), 3, Some(&y2)).unwrap();
        let ones = te.iter().filter(|&&i| y2[i] == 1).count();
        assert!(ones == 1 || ones == 2);
    }

    #[test]
    fn bad_splits_are_errors() {
        assert!(train_test_split(10, TestSize::Fraction(1.5), 0, None).is_err());
        assert!(train_test_split(10, TestSize::Count(10), 0, None).is_err());
        assert!(train_test_split(4, TestSize::Count(1), 0, Some(&[0, 1, 1, 0])).is_err());
        assert!(KFold::new(11).split(10).is_err());
        assert!(StratifiedKFold::new(3).split(&[0, 0, 1, 1]).is_err());
    }

    #[test]
    fn kfold_block_sizes() {
        let f = KFold::new(3).split(10).unwrap();
        assert_eq!(f[0].1, vec![0, 1, 2, 3]);
        assert_eq!(f[1].1, vec![4, 5, 6]);
        assert_eq!(f[2].1, vec![7, 8, 9]);
        let s = KFold::new(3).shuffled(5).split(10).unwrap();
        assert_ne!(s[0].1, f[0].1);
        assert_eq!(s.iter().map(|f| f.1.len()).sum::<usize>(), 10);
    }
}

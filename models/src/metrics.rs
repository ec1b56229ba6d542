//! Classification metrics with scikit-learn's definitions.
//!
//! Per-class scores are taken over the labels present in `y_true` or `y_pred` (as
//! scikit-learn's `unique_labels` does); a score whose denominator is zero counts as 0.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::matrix::Matrix;

fn check_lengths(y_true: &[u32], y_pred: &[u32]) -> Result<()> {
    if y_true.len() != y_pred.len() {
        return Err(ModelError::Shape(format!(
            "{} true labels but {} predictions",
            y_true.len(),
            y_pred.len()
        )));
    }
    if y_true.is_empty() {
        return Err(ModelError::Shape("no labels to score".into()));
    }
    Ok(())
}

/// The coefficient of determination `1 - SS_res / SS_tot` (scikit-learn's `r2_score`): 1
/// for a perfect fit, 0 for predicting the mean; a constant target scores 1 when predicted
/// exactly, else 0.
pub fn r2_score(y_true: &[f32], y_pred: &[f32]) -> Result<f64> {
    if y_true.len() != y_pred.len() || y_true.is_empty() {
        return Err(ModelError::Shape(format!(
            "r2_score needs equal, non-zero lengths; got {} and {}",
            y_true.len(),
            y_pred.len()
        )));
    }
    let n = y_true.len() as f64;
    let mean = y_true.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (mut res, mut tot) = (0.0f64, 0.0f64);
    for (&t, &p) in y_true.iter().zip(y_pred) {
        let (t, p) = (f64::from(t), f64::from(p));
        res += (t - p) * (t - p);
        tot += (t - mean) * (t - mean);
    }
    Ok(if tot > 0.0 {
        1.0 - res / tot
    } else if res == 0.0 {
        1.0
    } else {
        0.0
    })
}

/// A model's score on a test set as sums over blocks of rows, merged block by block, so
/// that a test set is scored one chunk at a time: a classifier's confusion counts
/// (`counts[true][predicted]`), or a regressor's residual sum of squares with the target's
/// count, mean and centred sum of squares (merged with Chan's update).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TestSums {
    /// A classifier's confusion counts.
    Classes(Vec<Vec<usize>>),
    /// A regressor's sums.
    Values {
        /// Rows.
        n: u64,
        /// The target's mean.
        mean: f64,
        /// The target's centred sum of squares.
        m2: f64,
        /// The sum of squared residuals.
        ss_res: f64,
    },
    /// A clusterer's inertia: the sum of squared distances to the nearest centre.
    Inertia(f64),
}

impl TestSums {
    /// The sums of `model`'s predictions on `data`.
    pub fn of(model: &crate::FittedModel, data: &crate::Dataset) -> Result<Self> {
        use crate::traits::{Classifier, Model};
        if model.is_clusterer() {
            Ok(TestSums::Inertia(Model::inertia(model, data.x())?))
        } else if model.is_regressor() {
            let y = data.value_target()?;
            let p = model.predict_values(data.x())?;
            check_values(&y, &p)?;
            let n = y.len() as f64;
            let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let (mut m2, mut ss_res) = (0.0, 0.0);
            for (&t, &q) in y.iter().zip(&p) {
                let (t, q) = (f64::from(t), f64::from(q));
                m2 += (t - mean) * (t - mean);
                ss_res += (t - q) * (t - q);
            }
            Ok(TestSums::Values {
                n: y.len() as u64,
                mean,
                m2,
                ss_res,
            })
        } else {
            let (y, classes) = data.class_target()?;
            let pred = model.predict(data.x())?;
            Ok(TestSums::Classes(confusion_counts(
                y,
                &pred,
                classes.len(),
            )?))
        }
    }

    /// Adds another block's.
    pub fn merge(&mut self, other: &TestSums) -> Result<()> {
        match (self, other) {
            (TestSums::Classes(a), TestSums::Classes(b))
                if a.len() == b.len() && a.iter().chain(b).all(|r| r.len() == a.len()) =>
            {
                for (ra, rb) in a.iter_mut().zip(b) {
                    ra.iter_mut().zip(rb).for_each(|(x, y)| *x += y);
                }
                Ok(())
            }
            (
                TestSums::Values {
                    n,
                    mean,
                    m2,
                    ss_res,
                },
                TestSums::Values {
                    n: n2,
                    mean: mean2,
                    m2: m22,
                    ss_res: r2,
                },
            ) => {
                let (na, nb) = (*n as f64, *n2 as f64);
                if nb > 0.0 {
                    let delta = mean2 - *mean;
                    *mean += delta * nb / (na + nb);
                    *m2 += m22 + delta * delta * na * nb / (na + nb);
                    *ss_res += r2;
                    *n += n2;
                }
                Ok(())
            }
            (TestSums::Inertia(a), TestSums::Inertia(b)) => {
                *a += b;
                Ok(())
            }
            _ => Err(ModelError::Shape("test sums of other kinds".into())),
        }
    }

    /// Accuracy (a classifier), R² with [`r2_score`]'s rules (a regressor), or minus the
    /// inertia (a clusterer, as scikit-learn's `KMeans.score`).
    pub fn score(&self) -> f64 {
        match self {
            TestSums::Classes(c) => {
                let total: usize = c.iter().flatten().sum();
                let right: usize = (0..c.len()).map(|i| c[i][i]).sum();
                if total == 0 {
                    0.0
                } else {
                    right as f64 / total as f64
                }
            }
            TestSums::Values { m2, ss_res, .. } => {
                if *m2 > 0.0 {
                    1.0 - ss_res / m2
                } else if *ss_res == 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            TestSums::Inertia(sum) => -sum,
        }
    }
}

fn check_values(y_true: &[f32], y_pred: &[f32]) -> Result<()> {
    if y_true.len() != y_pred.len() || y_true.is_empty() {
        return Err(ModelError::Shape(format!(
            "a test score needs equal, non-zero lengths; got {} and {}",
            y_true.len(),
            y_pred.len()
        )));
    }
    Ok(())
}

/// The mean of `|truth - prediction|` (scikit-learn's `mean_absolute_error`).
pub fn mean_absolute_error(y_true: &[f32], y_pred: &[f32]) -> Result<f64> {
    if y_true.len() != y_pred.len() || y_true.is_empty() {
        return Err(ModelError::Shape(format!(
            "mean_absolute_error needs equal, non-zero lengths; got {} and {}",
            y_true.len(),
            y_pred.len()
        )));
    }
    let sum: f64 = y_true
        .iter()
        .zip(y_pred)
        .map(|(&t, &p)| (f64::from(t) - f64::from(p)).abs())
        .sum();
    Ok(sum / y_true.len() as f64)
}

/// Fraction of predictions equal to the truth.
pub fn accuracy(y_true: &[u32], y_pred: &[u32]) -> Result<f64> {
    check_lengths(y_true, y_pred)?;
    let hits = y_true.iter().zip(y_pred).filter(|(a, b)| a == b).count();
    Ok(hits as f64 / y_true.len() as f64)
}

/// How per-class scores are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// Unweighted mean over classes.
    Macro,
    /// Mean weighted by each class's support (true count).
    Weighted,
}

/// Precision, recall and F1 of one class or an average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    /// tp / (tp + fp)
    pub precision: f64,
    /// tp / (tp + fn)
    pub recall: f64,
    /// 2 tp / (2 tp + fp + fn)
    pub f1: f64,
    /// Number of true rows of the class (total for an average).
    pub support: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Per-class precision/recall/F1 for every class id `0..n_classes`, plus whether each
/// class appears in `y_true` or `y_pred`.
pub fn per_class(y_true: &[u32], y_pred: &[u32], n_classes: usize) -> Result<Vec<(Prf, bool)>> {
    check_lengths(y_true, y_pred)?;
    let cm = confusion_counts(y_true, y_pred, n_classes)?;
    Ok((0..n_classes)
        .map(|c| {
            let tp = cm[c][c];
            let support: usize = cm[c].iter().sum();
            let predicted: usize = cm.iter().map(|row| row[c]).sum();
            let (fp, fn_) = (predicted - tp, support - tp);
            let prf = Prf {
                precision: ratio(tp, predicted),
                recall: ratio(tp, support),
                f1: ratio(2 * tp, 2 * tp + fp + fn_),
                support,
            };
            (prf, support + predicted > 0)
        })
        .collect())
}

/// Averaged precision, recall and F1.
pub fn precision_recall_f1(
    y_true: &[u32],
    y_pred: &[u32],
    n_classes: usize,
    average: Average,
) -> Result<Prf> {
    let per = per_class(y_true, y_pred, n_classes)?;
    let present: Vec<&Prf> = per.iter().filter(|(_, p)| *p).map(|(s, _)| s).collect();
    let total: usize = present.iter().map(|s| s.support).sum();
    let w = |s: &Prf| match average {
        Average::Macro => 1.0 / present.len() as f64,
        Average::Weighted => ratio(s.support, total),
    };
    Ok(Prf {
        precision: present.iter().map(|s| w(s) * s.precision).sum(),
        recall: present.iter().map(|s| w(s) * s.recall).sum(),
        f1: present.iter().map(|s| w(s) * s.f1).sum(),
        support: total,
    })
}

fn confusion_counts(y_true: &[u32], y_pred: &[u32], k: usize) -> Result<Vec<Vec<usize>>> {
    let mut m = vec![vec![0usize; k]; k];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if t as usize >= k || p as usize >= k {
            return Err(ModelError::Shape(format!(
                "class id {} out of range for {k} classes",
                t.max(p)
            )));
        }
        m[t as usize][p as usize] += 1;
    }
    Ok(m)
}

/// Mean negative log-likelihood of the true classes; probabilities are renormalised per row
/// and clipped to `[eps, 1 - eps]` (`eps` = `f64::EPSILON`), as scikit-learn does.
pub fn log_loss(y_true: &[u32], proba: &Matrix) -> Result<f64> {
    if proba.rows() != y_true.len() {
        return Err(ModelError::Shape(format!(
            "{} labels but {} probability rows",
            y_true.len(),
            proba.rows()
        )));
    }
    if y_true.is_empty() {
        return Err(ModelError::Shape("no labels to score".into()));
    }
    let k = proba.cols();
    let eps = f64::EPSILON;
    let mut total = 0.0;
    for (row, &t) in proba.data().chunks_exact(k).zip(y_true) {
        if t as usize >= k {
            return Err(ModelError::Shape(format!(
                "class id {t} out of range for {k} columns"
            )));
        }
        let clipped: Vec<f64> = row
            .iter()
            .map(|&p| (p as f64).clamp(eps, 1.0 - eps))
            .collect();
        let s: f64 = clipped.iter().sum();
        total -= (clipped[t as usize] / s).ln();
    }
    Ok(total / y_true.len() as f64)
}

/// A confusion matrix with class names: rows are true classes, columns predictions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    labels: Vec<String>,
    counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// Counts predictions; `labels[i]` names class id `i`.
    pub fn new(y_true: &[u32], y_pred: &[u32], labels: &[String]) -> Result<Self> {
        check_lengths(y_true, y_pred)?;
        Ok(Self {
            counts: confusion_counts(y_true, y_pred, labels.len())?,
            labels: labels.to_vec(),
        })
    }

    /// A matrix from counts already tallied (`counts[t][p]`), e.g. chunk by chunk.
    pub fn from_counts(labels: &[String], counts: Vec<Vec<usize>>) -> Result<Self> {
        if counts.len() != labels.len() || counts.iter().any(|r| r.len() != labels.len()) {
            return Err(ModelError::Shape(format!(
                "confusion counts must be {0} x {0}",
                labels.len()
            )));
        }
        Ok(Self {
            labels: labels.to_vec(),
            counts,
        })
    }

    /// Fraction of rows on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let total: usize = self.counts.iter().flatten().sum();
        let hits: usize = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        hits as f64 / total.max(1) as f64
    }

    /// `counts()[t][p]`: rows of true class `t` predicted as `p`.
    pub fn counts(&self) -> &[Vec<usize>] {
        &self.counts
    }

    /// Class names.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }
}

impl fmt::Display for ConfusionMatrix {
    /// A table like pandas prints a DataFrame over scikit-learn's `confusion_matrix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let corner = "true \\ predicted";
        let first = self
            .labels
            .iter()
            .map(String::len)
            .chain([corner.len()])
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = self
            .labels
            .iter()
            .enumerate()
            .map(|(j, l)| {
                let w = self
                    .counts
                    .iter()
                    .map(|r| r[j].to_string().len())
                    .max()
                    .unwrap_or(1);
                l.len().max(w)
            })
            .collect();
        write!(f, "{corner:<first$}")?;
        for (l, w) in self.labels.iter().zip(&widths) {
            write!(f, "  {l:>w$}")?;
        }
        writeln!(f)?;
        for (l, row) in self.labels.iter().zip(&self.counts) {
            write!(f, "{l:<first$}")?;
            for (v, w) in row.iter().zip(&widths) {
                write!(f, "  {v:>w$}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// A text report of per-class and averaged precision, recall, F1 and support, like
/// scikit-learn's `classification_report`.
pub fn classification_report(y_true: &[u32], y_pred: &[u32], labels: &[String]) -> Result<String> {
    use std::fmt::Write;
    let per = per_class(y_true, y_pred, labels.len())?;
    let w = labels
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max("weighted avg".len());
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>w$}  {:>9}  {:>9}  {:>9}  {:>7}",
        "", "precision", "recall", "f1-score", "support"
    );
    for (l, (p, _)) in labels.iter().zip(&per) {
        let _ = writeln!(
            s,
            "{l:>w$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>7}",
            p.precision, p.recall, p.f1, p.support
        );
    }
    let acc = accuracy(y_true, y_pred)?;
    let _ = writeln!(
        s,
        "{:>w$}  {:>9}  {:>9}  {acc:>9.4}  {:>7}",
        "accuracy",
        "",
        "",
        y_true.len()
    );
    for (name, avg) in [
        ("macro avg", Average::Macro),
        ("weighted avg", Average::Weighted),
    ] {
        let p = precision_recall_f1(y_true, y_pred, labels.len(), avg)?;
        let _ = writeln!(
            s,
            "{name:>w$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>7}",
            p.precision, p.recall, p.f1, p.support
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_absolute_error_by_hand() {
        // scikit-learn: mean_absolute_error([3, -0.5, 2, 7], [2.5, 0.0, 2, 8]) == 0.5
        let e = mean_absolute_error(&[3.0, -0.5, 2.0, 7.0], &[2.5, 0.0, 2.0, 8.0]).unwrap();
        assert!((e - 0.5).abs() < 1e-12, "{e}");
        assert!(mean_absolute_error(&[1.0], &[]).is_err());
    }

    #[test]
    fn hand_computed_scores() {
        let t = [0, 0, 1, 1];
        let p = [0, 1, 1, 1];
        assert_eq!(accuracy(&t, &p).unwrap(), 0.75);
        let m = precision_recall_f1(&t, &p, 2, Average::Macro).unwrap();
        // class 0: P=1, R=.5, F=2/3; class 1: P=2/3, R=1, F=.8
        approx::assert_abs_diff_eq!(m.precision, (1.0 + 2.0 / 3.0) / 2.0, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(m.recall, 0.75, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(m.f1, (2.0 / 3.0 + 0.8) / 2.0, epsilon = 1e-12);
        assert!(accuracy(&t, &p[..3]).is_err());
    }

    #[test]
    fn log_loss_closed_form() {
        let p = Matrix::from_vec(2, 2, vec![0.8, 0.2, 0.4, 0.6]).unwrap();
        let l = log_loss(&[0, 1], &p).unwrap();
        approx::assert_abs_diff_eq!(l, -(0.8f64.ln() + 0.6f64.ln()) / 2.0, epsilon = 1e-6);
        // A zero probability on the true class is clipped, not infinite.
        let z = Matrix::from_vec(1, 2, vec![0.0, 1.0]).unwrap();
        approx::assert_abs_diff_eq!(
            log_loss(&[0], &z).unwrap(),
            -f64::EPSILON.ln(),
            epsilon = 1e-9
        );
    }

    #[test]
    fn confusion_matrix_table_has_class_names() {
        let labels: Vec<String> = ["setosa", "versicolor"].map(String::from).to_vec();
        let cm = ConfusionMatrix::new(&[0, 1, 1], &[0, 0, 1], &labels).unwrap();
        assert_eq!(cm.counts(), &[vec![1, 0], vec![1, 1]]);
        let text = cm.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "true \\ predicted  setosa  versicolor");
        assert_eq!(lines[1], "setosa                 1           0");
        assert_eq!(lines[2], "versicolor             1           1");
    }

    #[test]
    fn test_sums_merged_over_blocks_give_the_whole_sets_scores() {
        use crate::{Estimator, Fit};
        let iris = crate::io::iris();
        let m = Estimator::from_name("gaussian_nb")
            .unwrap()
            .fit(&iris)
            .unwrap();
        let whole = TestSums::of(&m, &iris).unwrap();
        let (a, b): (Vec<usize>, Vec<usize>) = (0..150).partition(|i| i % 3 == 0);
        let mut merged = TestSums::of(&m, &iris.select(&a).unwrap()).unwrap();
        merged
            .merge(&TestSums::of(&m, &iris.select(&b).unwrap()).unwrap())
            .unwrap();
        assert_eq!(merged, whole);
        let (y, _) = iris.class_target().unwrap();
        let acc = accuracy(y, &crate::Classifier::predict(&m, iris.x()).unwrap()).unwrap();
        assert_eq!(merged.score(), acc);
        // A regressor: R² from merged moments equals r2_score's two passes.
        let x = iris.x().select_cols(&[0, 1, 2]).unwrap();
        let yv: Vec<f32> = iris.x().data().chunks_exact(4).map(|r| r[3]).collect();
        let reg = crate::Dataset::new(
            x,
            crate::Target::Values(yv.clone()),
            iris.feature_names()[..3].to_vec(),
            "w",
        )
        .unwrap();
        let m = Estimator::from_name("ridge").unwrap().fit(&reg).unwrap();
        let mut merged = TestSums::of(&m, &reg.select(&a).unwrap()).unwrap();
        merged
            .merge(&TestSums::of(&m, &reg.select(&b).unwrap()).unwrap())
            .unwrap();
        let want = r2_score(&yv, &m.predict_values(reg.x()).unwrap()).unwrap();
        assert!(
            (merged.score() - want).abs() < 1e-12,
            "{} {want}",
            merged.score()
        );
    }
}

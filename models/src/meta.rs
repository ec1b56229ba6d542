//! Fitted meta-estimators assembled from members that were fitted apart: stacking, a
//! two-step cascade, and multi-output models. The plan ([`crate::plan`]) fits their parts
//! as independent tasks and assembles them here. Each is generic over its members
//! ([`Member`]); the model enum holds them with members of its own type.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::traits::{argmax_rows, check_input, Classifier, Member, Model};

/// Columns a member adds to a stacked training set for `k` classes.
pub(crate) fn stack_width(k: usize) -> usize {
    if k == 2 {
        1
    } else {
        k
    }
}

/// A stacking classifier (scikit-learn's `StackingClassifier`): the final estimator
/// reads the members' class probabilities (for two classes, only the second column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedStacking<M> {
    /// The members, each fitted on every row.
    pub members: Vec<M>,
    /// The final estimator, fitted on the members' out-of-fold probabilities.
    pub final_estimator: Box<M>,
    /// Classes.
    pub n_classes: usize,
    /// Feature columns.
    pub n_features: usize,
}

impl<M: Member> FittedStacking<M> {
    /// The members' stacked probabilities for `x`.
    pub fn stacked(&self, x: &Matrix) -> Result<Matrix> {
        check_input(x, self.n_features, "stacking")?;
        let (n, k) = (x.rows(), self.n_classes);
        let width = stack_width(k);
        let m = self.members.len();
        let mut out = vec![0.0f32; n * m * width];
        for (j, member) in self.members.iter().enumerate() {
            let p = member.predict_proba(x)?;
            for (r, row) in p.data().chunks_exact(k).enumerate() {
                let dst = r * m * width + j * width;
                out[dst..dst + width].copy_from_slice(&row[k - width..]);
            }
        }
        Matrix::from_vec(n, m * width, out)
    }
}

impl<M: Member> Classifier for FittedStacking<M> {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        self.final_estimator.predict_proba(&self.stacked(x)?)
    }
}

/// A two-step (cascade) classifier: a router picks a group of classes, and the group's
/// own classifier picks the class within it. Probabilities multiply:
/// `P(c) = P(group of c) · P(c | group)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedCascade<M> {
    /// Predicts the group.
    pub router: Box<M>,
    /// The class ids of each group.
    pub groups: Vec<Vec<u32>>,
    /// Each group's classifier (`None` for a group of one class).
    pub members: Vec<Option<M>>,
    /// Classes.
    pub n_classes: usize,
    /// Feature columns.
    pub n_features: usize,
}

impl<M: Member> Classifier for FittedCascade<M> {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        check_input(x, self.n_features, "cascade")?;
        let (n, k) = (x.rows(), self.n_classes);
        let g = self.router.predict_proba(x)?;
        let gk = g.cols();
        let mut out = vec![0.0f32; n * k];
        for (gi, (classes, member)) in self.groups.iter().zip(&self.members).enumerate() {
            let within = member.as_ref().map(|m| m.predict_proba(x)).transpose()?;
            for r in 0..n {
                let pg = g.data()[r * gk + gi];
                match &within {
                    None => out[r * k + classes[0] as usize] = pg,
                    Some(w) => {
                        let wk = w.cols();
                        for (j, &c) in classes.iter().enumerate() {
                            out[r * k + c as usize] = pg * w.data()[r * wk + j];
                        }
                    }
                }
            }
        }
        Matrix::from_vec(n, k, out)
    }

    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        Ok(argmax_rows(&self.predict_proba(x)?))
    }
}

/// One model per target column on the same features (scikit-learn's
/// `MultiOutputClassifier` / `MultiOutputRegressor`): the features are the dataset's
/// feature columns that are not targets (the dataset's own target column is never a
/// feature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedMultiOutput<M> {
    /// The target columns, in order.
    pub targets: Vec<String>,
    /// The feature columns the members read.
    pub features: Vec<String>,
    /// The class labels of each classification target (empty for a regression target).
    pub labels: Vec<Vec<String>>,
    /// One model per target.
    pub members: Vec<M>,
}

/// One target's predictions.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Class labels.
    Labels(Vec<String>),
    /// Values.
    Values(Vec<f32>),
}

impl<M: Member> FittedMultiOutput<M> {
    /// Predictions of every target for `x` (whose columns are [`FittedMultiOutput::features`]).
    pub fn predict_outputs(&self, x: &Matrix) -> Result<Vec<Output>> {
        self.members
            .iter()
            .zip(&self.labels)
            .map(|(m, labels)| {
                if m.is_regressor() {
                    Ok(Output::Values(m.predict_values(x)?))
                } else {
                    m.predict(x)?
                        .into_iter()
                        .map(|c| {
                            labels.get(c as usize).cloned().ok_or_else(|| {
                                ModelError::data("multi_output", format!("no label for class {c}"))
                            })
                        })
                        .collect::<Result<Vec<_>>>()
                        .map(Output::Labels)
                }
            })
            .collect()
    }

    /// The mean over targets of each member's score (accuracy or R²) on `data`, which holds
    /// the feature and target columns by name; also each target's score.
    pub fn evaluate(&self, data: &Dataset) -> Result<(f64, Vec<f64>)> {
        let names = data.feature_names();
        let col = |name: &str| -> Result<usize> {
            names.iter().position(|n| n == name).ok_or_else(|| {
                ModelError::data(
                    "multi_output",
                    format!("the dataset has no column '{name}'"),
                )
            })
        };
        let keep = self
            .features
            .iter()
            .map(|f| col(f))
            .collect::<Result<Vec<_>>>()?;
        let x = data.x().select_cols(&keep)?;
        let all = data.x().data();
        let column =
            |j: usize| -> Vec<f32> { all.chunks_exact(names.len()).map(|r| r[j]).collect() };
        let mut scores = Vec::with_capacity(self.targets.len());
        for ((t, m), labels) in self.targets.iter().zip(&self.members).zip(&self.labels) {
            let own = t == data.target_name();
            let s = if m.is_regressor() {
                let truth = if own {
                    data.value_target()?.into_owned()
                } else {
                    column(col(t)?)
                };
                crate::metrics::r2_score(&truth, &m.predict_values(&x)?)?
            } else {
                let truth: Vec<String> = if own {
                    let (ids, classes) = data.class_target()?;
                    ids.iter().map(|&c| classes.label(c).to_string()).collect()
                } else {
                    column(col(t)?).iter().map(f32::to_string).collect()
                };
                let pred = m.predict(&x)?;
                let hits = pred
                    .iter()
                    .zip(&truth)
                    .filter(|(p, t)| labels.get(**p as usize) == Some(*t))
                    .count();
                hits as f64 / truth.len().max(1) as f64
            };
            scores.push(s);
        }
        let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
        Ok((mean, scores))
    }
}

impl<M: Member> Model for FittedStacking<M> {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Ok(self)
    }
}

impl<M: Member> Model for FittedCascade<M> {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Ok(self)
    }
}

impl<M: Member> Model for FittedMultiOutput<M> {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Err(ModelError::data(
            "model",
            "a multi-output model predicts several targets: use predict_outputs",
        ))
    }

    fn n_inputs(&self) -> usize {
        self.features.len()
    }

    fn evaluate(&self, data: &Dataset) -> Result<f64> {
        Ok(FittedMultiOutput::<M>::evaluate(self, data)?.0)
    }
}

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::linear::{LogisticRegressionParams, Penalty};
use crate::matrix::Matrix;
use crate::traits::{check_input, parse_value, Checked, Fit, Params, Transformer};

/// Hyperparameters of model-based feature selection (scikit-learn's `SelectFromModel`
/// around a `LogisticRegression`): fit the model, keep the features whose weight norm over
/// the classes reaches `threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SelectFromModelParams {
    /// The model whose weights rank the features. Default: L1 logistic regression.
    pub estimator: LogisticRegressionParams,
    /// Keep features whose importance is at least this; `None` means scikit-learn's
    /// default: 1e-5 for an L1 model, else the mean importance.
    pub threshold: Option<f64>,
}

impl Default for SelectFromModelParams {
    fn default() -> Self {
        Self {
            estimator: LogisticRegressionParams::default().with_penalty(Penalty::L1),
            threshold: None,
        }
    }
}

impl Params for SelectFromModelParams {
    const NAME: &'static str = "select_from_model";
    const ALIASES: &'static [&'static str] = &["SelectFromModel"];
    const DESCRIPTION: &'static str =
        "keep the features an L1 logistic regression gives weight (threshold, C)";
    const PARAM_NAMES: &'static [&'static str] = &[
        "threshold",
        "C",
        "penalty",
        "fit_intercept",
        "max_iter",
        "tol",
    ];

    fn validate(&self) -> Result<()> {
        if let Some(t) = self.threshold {
            if !(t.is_finite() && t >= 0.0) {
                return Err(ModelError::param(
                    Self::NAME,
                    "threshold",
                    format!("must be a number >= 0, got {t}"),
                ));
            }
        }
        self.estimator.validate()
    }

    /// `threshold`, or a parameter of the estimator (also as `estimator__NAME`, the
    /// scikit-learn spelling).
    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key.strip_prefix("estimator__").unwrap_or(key) {
            "threshold" => {
                self.threshold = match value.trim() {
                    "None" | "none" | "null" => None,
                    v => Some(parse_value(Self::NAME, key, v, "a number or None")?),
                }
            }
            k => self.estimator.set_param(k, value)?,
        }
        Ok(())
    }
}

/// A fitted feature selection: the kept columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedSelectFromModel {
    support: Vec<usize>,
    n_features_in: usize,
}

impl FittedSelectFromModel {
    /// The kept column indices, ascending (scikit-learn's `get_support(indices=True)`).
    pub fn support(&self) -> &[usize] {
        &self.support
    }
}

impl SelectFromModelParams {
    /// Fits the ranking model on `data` and keeps the features at or above the threshold.
    pub fn fit_data(&self, data: &Dataset) -> Result<FittedSelectFromModel> {
        self.check_ref()?.fit(data)
    }
}

impl Fit for Checked<SelectFromModelParams> {
    type Fitted = FittedSelectFromModel;

    fn fit(&self, data: &Dataset) -> Result<FittedSelectFromModel> {
        let model = self.estimator.fit(data)?;
        let d = data.n_features();
        let coef = model.coef();
        let mut importance = vec![0.0f64; d];
        for row in coef.chunks_exact(d.max(1)) {
            for (imp, w) in importance.iter_mut().zip(row) {
                *imp += w.abs();
            }
        }
        let threshold = self.threshold.unwrap_or_else(|| {
            if self.estimator.penalty == Penalty::L1 {
                1e-5
            } else {
                importance.iter().sum::<f64>() / d.max(1) as f64
            }
        });
        let support: Vec<usize> = (0..d).filter(|&j| importance[j] >= threshold).collect();
        if support.is_empty() {
            return Err(ModelError::data(
                SelectFromModelParams::NAME,
                format!(
                    "no feature reaches the threshold {threshold} (C = {}); raise C or lower the threshold",
                    self.estimator.c
                ),
            ));
        }
        Ok(FittedSelectFromModel {
            support,
            n_features_in: d,
        })
    }
}

impl Transformer for FittedSelectFromModel {
    fn n_features_in(&self) -> usize {
        self.n_features_in
    }

    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        check_input(x, self.n_features_in, SelectFromModelParams::NAME)?;
        x.select_cols(&self.support)
    }

    fn feature_names_out(&self, names: &[String]) -> Vec<String> {
        self.support.iter().map(|&j| names[j].clone()).collect()
    }

    fn kinds_out(&self, kinds: &[crate::schema::ColumnKind]) -> Vec<crate::schema::ColumnKind> {
        self.support.iter().map(|&j| kinds[j].clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strong_penalty_keeps_only_the_informative_features() {
        let data = crate::io::iris();
        let mut p = SelectFromModelParams::default();
        p.set_param("estimator__C", "0.02").unwrap();
        p.set_param("max_iter", "5000").unwrap();
        let few = p.fit_data(&data).unwrap();
        p.set_param("C", "10").unwrap();
        let all = p.fit_data(&data).unwrap();
        assert!(few.support().len() < all.support().len(), "{few:?} {all:?}");
        assert_eq!(all.support(), &[0, 1, 2, 3]);
        let t = few.transform(data.x()).unwrap();
        assert_eq!(t.cols(), few.support().len());
        assert_eq!(t.row(7)[0], data.x().row(7)[few.support()[0]]);
        p.set_param("threshold", "1e9").unwrap();
        let e = p.fit_data(&data).unwrap_err().to_string();
        assert!(e.contains("no feature reaches"), "{e}");
    }
}

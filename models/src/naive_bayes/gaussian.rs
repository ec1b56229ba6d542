use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::traits::{
    check_input, parse_value, unknown_param, Checked, ClassMap, Classifier, Fit, Model, Params,
};

/// Hyperparameters of Gaussian naive Bayes (scikit-learn's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GaussianNbParams {
    /// Fraction of the largest feature variance added to all variances. Default 1e-9.
    pub var_smoothing: f64,
    /// Fixed class priors (one per class, summing to 1); `None` estimates them from data.
    pub priors: Option<Vec<f64>>,
}

impl Default for GaussianNbParams {
    fn default() -> Self {
        Self {
            var_smoothing: 1e-9,
            priors: None,
        }
    }
}

impl Params for GaussianNbParams {
    const NAME: &'static str = "gaussian_nb";
    const ALIASES: &'static [&'static str] = &["GaussianNB", "naive_bayes"];
    const DESCRIPTION: &'static str = "Gaussian naive Bayes";
    const PARAM_NAMES: &'static [&'static str] = &["var_smoothing", "priors"];

    fn validate(&self) -> Result<()> {
        if !(self.var_smoothing.is_finite() && self.var_smoothing >= 0.0) {
            return Err(ModelError::param(
                Self::NAME,
                "var_smoothing",
                "must be >= 0",
            ));
        }
        if let Some(p) = &self.priors {
            let s: f64 = p.iter().sum();
            if p.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || (s - 1.0).abs() > 1e-8 {
                return Err(ModelError::param(
                    Self::NAME,
                    "priors",
                    "must be non-negative and sum to 1",
                ));
            }
        }
        Ok(())
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "var_smoothing" => {
                self.var_smoothing = parse_value(Self::NAME, key, value, "a number")?
            }
            "priors" => {
                self.priors = match value.trim() {
                    "None" | "none" | "null" => None,
                    v => Some(
                        v.split([',', ';', ' '])
                            .filter(|s| !s.is_empty())
                            .map(|s| parse_value(Self::NAME, key, s, "a list of numbers"))
                            .collect::<Result<_>>()?,
                    ),
                }
            }
            _ => return Err(unknown_param::<Self>(key)),
        }
        Ok(())
    }
}

/// A fitted Gaussian naive Bayes model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedGaussianNb {
    /// Per present class, per feature means (scikit-learn's `theta_`), row-major.
    theta: Vec<f64>,
    /// Per present class, per feature variances including smoothing (`var_`).
    var: Vec<f64>,
    /// Prior of each present class (`class_prior_`).
    class_prior: Vec<f64>,
    /// The smoothing added to every variance (`epsilon_`).
    epsilon: f64,
    n_features: usize,
    classes: ClassMap,
}

impl FittedGaussianNb {
    /// Class means, `k x n_features` row-major.
    pub fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// Class variances, `k x n_features` row-major.
    pub fn var(&self) -> &[f64] {
        &self.var
    }

    /// Class priors.
    pub fn class_prior(&self) -> &[f64] {
        &self.class_prior
    }

    /// Added variance.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// Joint log-likelihood of each row under each present class, `n x k`.
    fn joint_log_likelihood(&self, x: &Matrix) -> Vec<f64> {
        let d = self.n_features;
        let k = self.class_prior.len();
        let xd = x.data();
        // Per-class constant: log prior - 0.5 * sum(log(2 pi var)).
        let consts: Vec<f64> = (0..k)
            .map(|c| {
                self.class_prior[c].ln()
                    - 0.5
                        * self.var[c * d..(c + 1) * d]
                            .iter()
                            .map(|v| (2.0 * std::f64::consts::PI * v).ln())
                            .sum::<f64>()
            })
            .collect();
        let mut out = Vec::with_capacity(x.rows() * k);
        for row in xd.chunks_exact(d.max(1)).take(x.rows()) {
            for (c, cst) in consts.iter().enumerate() {
                let mut s = 0.0;
                for j in 0..d {
                    let diff = row[j] as f64 - self.theta[c * d + j];
                    s += diff * diff / self.var[c * d + j];
                }
                out.push(cst - 0.5 * s);
            }
        }
        out
    }
}

impl Classifier for FittedGaussianNb {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.classes.n_classes
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        check_input(x, self.n_features, GaussianNbParams::NAME)?;
        let k = self.class_prior.len();
        let jll = self.joint_log_likelihood(x);
        let mut p = Vec::with_capacity(jll.len());
        for row in jll.chunks_exact(k) {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            p.extend(row.iter().map(|v| (v - lse).exp() as f32));
        }
        self.classes.expand(p, x.rows())
    }

    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        // Argmax of the joint log-likelihood (not of rounded probabilities).
        check_input(x, self.n_features, GaussianNbParams::NAME)?;
        let k = self.class_prior.len();
        let jll = self.joint_log_likelihood(x);
        Ok(jll
            .chunks_exact(k)
            .map(|row| {
                let mut best = 0;
                for j in 1..k {
                    if row[j] > row[best] {
                        best = j;
                    }
                }
                self.classes.present[best]
            })
            .collect())
    }
}

impl Fit for Checked<GaussianNbParams> {
    type Fitted = FittedGaussianNb;

    fn fit(&self, data: &Dataset) -> Result<FittedGaussianNb> {
        let (ids, classes) = data.class_target()?;
        let x = data.x();
        x.check_finite("training data")?;
        let map = ClassMap::from_targets(ids, classes.len(), GaussianNbParams::NAME)?;
        let y = map.encode(ids);
        let (n, d, k) = (x.rows(), x.cols(), map.present.len());
        let xd = x.data();
        // Two passes per class in f64: means, then centred sums of squares.
        let mut count = vec![0u64; k];
        let mut theta = vec![0.0f64; k * d];
        for (row, &c) in xd.chunks_exact(d).zip(&y) {
            let c = c as usize;
            count[c] += 1;
            for j in 0..d {
                theta[c * d + j] += row[j] as f64;
            }
        }
        for c in 0..k {
            for j in 0..d {
                theta[c * d + j] /= count[c] as f64;
            }
        }
        let mut var = vec![0.0f64; k * d];
        for (row, &c) in xd.chunks_exact(d).zip(&y) {
            let c = c as usize;
            for j in 0..d {
                let diff = row[j] as f64 - theta[c * d + j];
                var[c * d + j] += diff * diff;
            }
        }
        // The smoothing term is a fraction of the largest variance over all the data.
        let mut max_var = 0.0f64;
        for j in 0..d {
            let mean = xd.chunks_exact(d).map(|r| r[j] as f64).sum::<f64>() / n as f64;
            let v = xd
                .chunks_exact(d)
                .map(|r| (r[j] as f64 - mean).powi(2))
                .sum::<f64>()
                / n as f64;
            max_var = max_var.max(v);
        }
        self.finish(map, &count, theta, var, max_var)
    }
}

impl Checked<GaussianNbParams> {
    /// The model from per-class row counts, means and centred sums of squares (`k x d`,
    /// row-major) and the largest variance of a column over all rows: an in-memory fit
    /// computes them in two passes, a data-parallel one merges them over chunks.
    pub(crate) fn finish(
        &self,
        map: ClassMap,
        count: &[u64],
        theta: Vec<f64>,
        mut var: Vec<f64>,
        max_var: f64,
    ) -> Result<FittedGaussianNb> {
        let k = map.present.len();
        let d = theta.len().checked_div(k).unwrap_or(0);
        let n: u64 = count.iter().sum();
        if let Some(p) = &self.priors {
            if p.len() != k {
                return Err(ModelError::param(
                    GaussianNbParams::NAME,
                    "priors",
                    format!("{} priors given for {k} classes", p.len()),
                ));
            }
        }
        let epsilon = self.var_smoothing * max_var;
        for c in 0..k {
            for j in 0..d {
                var[c * d + j] = var[c * d + j] / count[c] as f64 + epsilon;
            }
        }
        if var.iter().any(|&v| v <= 0.0) {
            return Err(ModelError::data(
                "training data",
                "a feature has zero variance within a class and var_smoothing is 0",
            ));
        }
        let class_prior = match &self.priors {
            Some(p) => p.clone(),
            None => count.iter().map(|&c| c as f64 / n as f64).collect(),
        };
        Ok(FittedGaussianNb {
            theta,
            var,
            class_prior,
            epsilon,
            n_features: d,
            classes: map,
        })
    }
}

impl Model for FittedGaussianNb {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_two_gaussians() {
        // Class 0 at {0, 2}, class 1 at {4, 6}: means 1 and 5, population variance 1.
        let x = Matrix::from_vec(4, 1, vec![0., 2., 4., 6.]).unwrap();
        let d = Dataset::from_classes(x, vec![0, 0, 1, 1]).unwrap();
        let m = GaussianNbParams {
            var_smoothing: 0.0,
            priors: None,
        }
        .fit(&d)
        .unwrap();
        assert_eq!(m.theta(), &[1.0, 5.0]);
        assert_eq!(m.var(), &[1.0, 1.0]);
        // At x = 3 both classes are equally likely.
        let p = m
            .predict_proba(&Matrix::from_vec(1, 1, vec![3.0]).unwrap())
            .unwrap();
        approx::assert_abs_diff_eq!(p.to_vec()[0], 0.5, epsilon = 1e-7);
        // At x = 1: ratio of densities exp(-(1-5)^2/2) / exp(0).
        let p = m
            .predict_proba(&Matrix::from_vec(1, 1, vec![1.0]).unwrap())
            .unwrap();
        let expected = 1.0 / (1.0 + (-8.0f64).exp());
        approx::assert_abs_diff_eq!(p.to_vec()[0] as f64, expected, epsilon = 1e-7);
    }

    #[test]
    fn priors_must_match_classes() {
        let d = Dataset::from_classes(Matrix::from_vec(2, 1, vec![0., 1.]).unwrap(), vec![0, 1])
            .unwrap();
        let p = GaussianNbParams {
            var_smoothing: 1e-9,
            priors: Some(vec![1.0]),
        };
        assert!(p.fit(&d).is_err());
        let mut q = GaussianNbParams::default();
        q.set_param("priors", "0.25,0.75").unwrap();
        assert_eq!(q.priors, Some(vec![0.25, 0.75]));
        assert!(q.fit(&d).is_ok());
    }
}

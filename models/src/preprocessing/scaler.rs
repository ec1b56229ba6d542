use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::traits::{check_input, parse_bool, unknown_param, Checked, Fit, Params, Transformer};

/// Hyperparameters of the standard scaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StandardScalerParams {
    /// Subtract the mean. Default true.
    pub with_mean: bool,
    /// Divide by the standard deviation. Default true.
    pub with_std: bool,
}

impl Default for StandardScalerParams {
    fn default() -> Self {
        Self {
            with_mean: true,
            with_std: true,
        }
    }
}

impl Params for StandardScalerParams {
    const NAME: &'static str = "standard_scaler";
    const ALIASES: &'static [&'static str] = &["StandardScaler"];
    const DESCRIPTION: &'static str = "remove the mean and scale to unit variance";
    const PARAM_NAMES: &'static [&'static str] = &["with_mean", "with_std"];

    fn validate(&self) -> Result<()> {
        Ok(())
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "with_mean" => self.with_mean = parse_bool(Self::NAME, key, value)?,
            "with_std" => self.with_std = parse_bool(Self::NAME, key, value)?,
            _ => return Err(unknown_param::<Self>(key)),
        }
        Ok(())
    }
}

/// A fitted standard scaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedStandardScaler {
    mean: Vec<f64>,
    scale: Vec<f64>,
    with_mean: bool,
    with_std: bool,
}

impl Fit for Checked<StandardScalerParams> {
    type Fitted = FittedStandardScaler;

    fn fit(&self, data: &Dataset) -> Result<FittedStandardScaler> {
        self.learn(data.x())
    }
}

impl StandardScalerParams {
    /// Learns column means and standard deviations (in `f64`) of a matrix.
    pub fn fit_matrix(&self, x: &Matrix) -> Result<FittedStandardScaler> {
        self.check_ref()?.learn(x)
    }
}

impl Checked<StandardScalerParams> {
    fn learn(&self, x: &Matrix) -> Result<FittedStandardScaler> {
        x.check_finite("training data")?;
        let (n, d) = (x.rows(), x.cols());
        if n == 0 {
            return Err(ModelError::data("training data", "no rows"));
        }
        let xd = x.data();
        let mut mean = vec![0.0f64; d];
        for row in xd.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0f64; d];
        for row in xd.chunks_exact(d) {
            for j in 0..d {
                let diff = row[j] as f64 - mean[j];
                var[j] += diff * diff;
            }
        }
        // A (near-)constant column keeps scale 1, as in scikit-learn.
        let scale = var
            .iter()
            .zip(&mean)
            .map(|(&v, &m)| {
                let s = (v / n as f64).sqrt();
                if s < 10.0 * f64::EPSILON * m.abs().max(1.0) {
                    1.0
                } else {
                    s
                }
            })
            .collect();
        Ok(FittedStandardScaler {
            mean,
            scale,
            with_mean: self.with_mean,
            with_std: self.with_std,
        })
    }
}

impl FittedStandardScaler {
    /// Column means (scikit-learn's `mean_`).
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Column scales (scikit-learn's `scale_`).
    pub fn scale(&self) -> &[f64] {
        &self.scale
    }
}

impl Transformer for FittedStandardScaler {
    fn n_features_in(&self) -> usize {
        self.mean.len()
    }

    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        check_input(x, self.mean.len(), StandardScalerParams::NAME)?;
        let d = self.mean.len();
        let mut out = x.to_vec();
        for row in out.chunks_exact_mut(d.max(1)) {
            for j in 0..d {
                let mut v = row[j] as f64;
                if self.with_mean {
                    v -= self.mean[j];
                }
                if self.with_std {
                    v /= self.scale[j];
                }
                row[j] = v as f32;
            }
        }
        Matrix::from_vec(x.rows(), d, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardises_columns_and_keeps_constant_ones_finite() {
        let x = Matrix::from_vec(4, 2, vec![1., 5., 2., 5., 3., 5., 4., 5.]).unwrap();
        let s = StandardScalerParams::default().fit_matrix(&x).unwrap();
        assert_eq!(s.mean(), &[2.5, 5.0]);
        approx::assert_abs_diff_eq!(s.scale()[0], 1.25f64.sqrt(), epsilon = 1e-12);
        assert_eq!(s.scale()[1], 1.0);
        let t = s.transform(&x).unwrap().to_vec();
        approx::assert_abs_diff_eq!(t[0], (-1.5 / 1.25f64.sqrt()) as f32, epsilon = 1e-6);
        assert_eq!(t[1], 0.0);
        assert!(s.transform(&Matrix::zeros(1, 3)).is_err());
    }
}

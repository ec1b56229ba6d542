use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::schema::ColumnKind;
use crate::traits::{parse_bool, unknown_param, Checked, Fit, Params, Transformer};

use super::columns::{check_width, parse_columns, select};

/// Hyperparameters of the standard scaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StandardScalerParams {
    /// Subtract the mean. Default true.
    pub with_mean: bool,
    /// Divide by the standard deviation. Default true.
    pub with_std: bool,
    /// The columns to scale; `None` means the numeric ones (categorical codes, booleans
    /// and encoders' indicator columns pass through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

impl Default for StandardScalerParams {
    fn default() -> Self {
        Self {
            with_mean: true,
            with_std: true,
            columns: None,
        }
    }
}

impl Params for StandardScalerParams {
    const NAME: &'static str = "standard_scaler";
    const ALIASES: &'static [&'static str] = &["StandardScaler"];
    const DESCRIPTION: &'static str = "remove the mean and scale to unit variance";
    const PARAM_NAMES: &'static [&'static str] = &["with_mean", "with_std", "columns"];

    fn validate(&self) -> Result<()> {
        Ok(())
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "with_mean" => self.with_mean = parse_bool(Self::NAME, key, value)?,
            "with_std" => self.with_std = parse_bool(Self::NAME, key, value)?,
            "columns" => self.columns = parse_columns(value),
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
        let scale = self.scaled(data)?;
        self.learn(data.x(), &scale)
    }
}

impl Checked<StandardScalerParams> {
    /// Which of the data's columns the scaler learns: the numeric ones, or those named in
    /// `columns` (which must be numeric).
    pub(crate) fn scaled(&self, data: &Dataset) -> Result<Vec<bool>> {
        let cols = select(
            data,
            self.columns.as_deref(),
            StandardScalerParams::NAME,
            |k| *k == ColumnKind::Numeric,
            ColumnKind::is_numeric,
            "numeric columns",
        )?;
        let mut scale = vec![false; data.n_features()];
        cols.iter().for_each(|&j| scale[j] = true);
        Ok(scale)
    }
}

impl StandardScalerParams {
    /// Learns column means and standard deviations (in `f64`) of a matrix.
    pub fn fit_matrix(&self, x: &Matrix) -> Result<FittedStandardScaler> {
        self.check_ref()?.learn(x, &vec![true; x.cols()])
    }
}

impl Checked<StandardScalerParams> {
    /// Learns the columns marked in `scaled`; the others keep mean 0 and scale 1, so they
    /// pass through unchanged. Missing cells (NaN) are left out of the statistics and stay
    /// missing, as in scikit-learn.
    fn learn(&self, x: &Matrix, scaled: &[bool]) -> Result<FittedStandardScaler> {
        let (n, d) = (x.rows(), x.cols());
        if n == 0 || d == 0 {
            return Err(ModelError::data(
                "training data",
                if n == 0 { "no rows" } else { "no columns" },
            ));
        }
        let xd = x.data();
        let mut mean = vec![0.0f64; d];
        let mut count = vec![0u64; d];
        for row in xd.chunks_exact(d) {
            for j in 0..d {
                let v = row[j];
                if scaled[j] && !v.is_nan() {
                    mean[j] += v as f64;
                    count[j] += 1;
                }
            }
        }
        for j in 0..d {
            mean[j] = if count[j] > 0 {
                mean[j] / count[j] as f64
            } else {
                0.0
            };
        }
        let mut var = vec![0.0f64; d];
        for row in xd.chunks_exact(d) {
            for j in 0..d {
                if scaled[j] && !row[j].is_nan() {
                    let diff = row[j] as f64 - mean[j];
                    var[j] += diff * diff;
                }
            }
        }
        self.finish(mean, &var, &count, scaled)
    }

    /// The scaler from each column's mean, centred sum of squares and count of present
    /// cells: an in-memory fit computes them in two passes, a data-parallel one merges them
    /// over chunks.
    pub(crate) fn finish(
        &self,
        mean: Vec<f64>,
        var: &[f64],
        count: &[u64],
        scaled: &[bool],
    ) -> Result<FittedStandardScaler> {
        let d = mean.len();
        if let Some(j) = (0..d).find(|&j| scaled[j] && !mean[j].is_finite()) {
            return Err(ModelError::data(
                format!("training data, column {j}"),
                "infinite values are not supported",
            ));
        }
        // A (near-)constant column keeps scale 1, as in scikit-learn.
        let scale = (0..d)
            .map(|j| {
                if !scaled[j] || count[j] == 0 {
                    return 1.0;
                }
                let (v, m) = (var[j], mean[j]);
                let s = (v / count[j] as f64).sqrt();
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
        check_width(x, self.mean.len(), StandardScalerParams::NAME)?;
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

    #[test]
    fn scales_numeric_columns_only_and_skips_missing_cells() {
        use crate::dataset::{Classes, Target};
        let nan = f32::NAN;
        let x = Matrix::from_vec(3, 2, vec![1., 0., nan, 1., 3., 1.]).unwrap();
        let d = Dataset::new(
            x,
            Target::Values(vec![0.; 3]),
            vec!["a".into(), "c".into()],
            "y",
        )
        .unwrap()
        .with_kinds(vec![
            ColumnKind::Numeric,
            ColumnKind::Categorical {
                categories: Classes::from_labels(&["p", "q"]),
            },
        ])
        .unwrap();
        let s = StandardScalerParams::default().fit(&d).unwrap();
        // a: mean 2, std 1 over its two values; c passes through.
        assert_eq!(s.mean(), &[2.0, 0.0]);
        assert_eq!(s.scale(), &[1.0, 1.0]);
        let t = s.transform(d.x()).unwrap().to_vec();
        assert_eq!((t[0], t[1], t[3], t[4], t[5]), (-1., 0., 1., 1., 1.));
        assert!(t[2].is_nan());
        let mut p = StandardScalerParams::default();
        p.set_param("columns", "c").unwrap();
        let e = p.fit(&d).unwrap_err().to_string();
        assert!(e.contains("column 'c' is categorical"), "{e}");
    }
}

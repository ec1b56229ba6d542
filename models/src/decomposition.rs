//! Principal component analysis (scikit-learn's `PCA`).
//!
//! The fit centres the data and eigen-decomposes its scatter matrix `XcᵀXc` (scikit-learn's
//! `covariance_eigh` solver, the one it picks for many more rows than columns). The scatter
//! is a sum over rows ([`CrossMoments`]), so a data-parallel fit merges it over chunks and
//! ends with the same decomposition as an in-memory fit. Components carry scikit-learn's
//! sign convention (`svd_flip` on the components: each component's entry of largest
//! magnitude is positive), so they equal scikit-learn's, not only up to sign.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::linalg::symmetric_eigen;
use crate::matrix::Matrix;
use crate::parallel::CrossMoments;
use crate::schema::{check_model_input, ColumnKind};
use crate::traits::{parse_bool, parse_value, unknown_param, Checked, Fit, Params, Transformer};

/// How many components a PCA keeps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum NComponents {
    /// This many (at most the smaller of rows and columns).
    Count(usize),
    /// As many as explain more than this fraction of the variance (in `(0, 1)`).
    Fraction(f64),
}

/// Hyperparameters of PCA.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PcaParams {
    /// Components to keep; `None` keeps `min(n_samples, n_features)`.
    #[serde(default)]
    pub n_components: Option<NComponents>,
    /// Scale each component to unit variance. Default false.
    #[serde(default)]
    pub whiten: bool,
}

impl Params for PcaParams {
    const NAME: &'static str = "pca";
    const ALIASES: &'static [&'static str] = &["PCA"];
    const DESCRIPTION: &'static str =
        "project onto the principal components (covariance eigen-decomposition)";
    const PARAM_NAMES: &'static [&'static str] = &["n_components", "whiten"];

    fn validate(&self) -> Result<()> {
        match self.n_components {
            Some(NComponents::Count(0)) => Err(ModelError::param(
                Self::NAME,
                "n_components",
                "must be >= 1 (or a fraction of the variance in (0, 1))",
            )),
            Some(NComponents::Fraction(f)) if !(f > 0.0 && f < 1.0) => Err(ModelError::param(
                Self::NAME,
                "n_components",
                format!("a fraction of the variance must be in (0, 1), got {f}"),
            )),
            _ => Ok(()),
        }
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "n_components" => {
                let v = value.trim();
                self.n_components = match v {
                    "None" | "none" | "null" => None,
                    "mle" => {
                        return Err(ModelError::param(
                            Self::NAME,
                            key,
                            "'mle' is not supported; give a count or a fraction of the \
                             variance in (0, 1)",
                        ))
                    }
                    _ if v.contains('.') || v.contains('e') => Some(NComponents::Fraction(
                        parse_value(Self::NAME, key, v, "a count or a fraction")?,
                    )),
                    _ => Some(NComponents::Count(parse_value(
                        Self::NAME,
                        key,
                        v,
                        "a count or a fraction",
                    )?)),
                }
            }
            "whiten" => self.whiten = parse_bool(Self::NAME, key, value)?,
            _ => return Err(unknown_param::<Self>(key)),
        }
        Ok(())
    }
}

/// A fitted PCA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedPca {
    /// Column means (`mean_`).
    mean: Vec<f64>,
    /// `k x d` row-major: one component per row (`components_`).
    components: Vec<f64>,
    /// Variance along each component, with `n - 1` degrees of freedom.
    explained_variance: Vec<f64>,
    /// Its share of the total variance.
    explained_variance_ratio: Vec<f64>,
    /// The variance the dropped components leave (`noise_variance_`).
    noise_variance: f64,
    whiten: bool,
}

impl Fit for Checked<PcaParams> {
    type Fitted = FittedPca;

    fn fit(&self, data: &Dataset) -> Result<FittedPca> {
        check_model_input(data, PcaParams::NAME, false)?;
        data.x().check_finite("training data")?;
        self.finish(CrossMoments::of_features(data.x()))
    }
}

impl Checked<PcaParams> {
    /// The PCA from the data's centred scatter matrix (`xx` of `m`, with its row count
    /// and means): an in-memory fit sums it over all rows, a data-parallel one merges it
    /// over chunks.
    pub(crate) fn finish(&self, m: CrossMoments) -> Result<FittedPca> {
        let d = m.mean_x.len();
        let n = m.n as usize;
        if n < 2 || d == 0 {
            return Err(ModelError::data(
                "training data",
                format!("pca needs at least 2 rows and 1 column, got {n} x {d}"),
            ));
        }
        let rank = n.min(d);
        let eig = symmetric_eigen(&m.xx, d)?;
        // Descending, clipped at zero (round-off can make a null direction negative).
        let order: Vec<usize> = (0..d).rev().collect();
        let var: Vec<f64> = order
            .iter()
            .map(|&j| eig.values[j].max(0.0) / (n - 1) as f64)
            .collect();
        let total: f64 = (0..d).map(|j| m.xx[j * d + j]).sum::<f64>() / (n - 1) as f64;
        let ratio: Vec<f64> = var
            .iter()
            .map(|v| if total > 0.0 { v / total } else { 0.0 })
            .collect();
        let k = match self.n_components {
            None => rank,
            Some(NComponents::Count(k)) if k > rank => {
                return Err(ModelError::param(
                    PcaParams::NAME,
                    "n_components",
                    format!(
                        "{k} must be at most min(n_samples, n_features) = {rank} for this data"
                    ),
                ))
            }
            Some(NComponents::Count(k)) => k,
            Some(NComponents::Fraction(f)) => {
                // scikit-learn: the first count whose cumulative ratio exceeds f.
                let mut acc = 0.0;
                let mut k = rank;
                for (i, r) in ratio.iter().take(rank).enumerate() {
                    acc += r;
                    if acc > f {
                        k = i + 1;
                        break;
                    }
                }
                k
            }
        };
        let mut components = Vec::with_capacity(k * d);
        for &j in order.iter().take(k) {
            let mut c: Vec<f64> = (0..d).map(|i| eig.vectors[i * d + j]).collect();
            // svd_flip: the entry of largest magnitude is positive (the first on ties).
            let mut big = 0;
            for (i, v) in c.iter().enumerate() {
                if v.abs() > c[big].abs() {
                    big = i;
                }
            }
            if c[big] < 0.0 {
                c.iter_mut().for_each(|v| *v = -*v);
            }
            components.extend(c);
        }
        let noise_variance = if k < rank {
            var[k..rank].iter().sum::<f64>() / (rank - k) as f64
        } else {
            0.0
        };
        Ok(FittedPca {
            mean: m.mean_x,
            components,
            explained_variance: var[..k].to_vec(),
            explained_variance_ratio: ratio[..k].to_vec(),
            noise_variance,
            whiten: self.whiten,
        })
    }
}

impl FittedPca {
    /// Components kept.
    pub fn n_components(&self) -> usize {
        self.explained_variance.len()
    }

    /// One component per row, `n_components x n_features` (`components_`).
    pub fn components(&self) -> &[f64] {
        &self.components
    }

    /// Column means (`mean_`).
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Variance along each component (`explained_variance_`).
    pub fn explained_variance(&self) -> &[f64] {
        &self.explained_variance
    }

    /// Each component's share of the total variance (`explained_variance_ratio_`).
    pub fn explained_variance_ratio(&self) -> &[f64] {
        &self.explained_variance_ratio
    }

    /// The mean variance of the dropped directions (`noise_variance_`).
    pub fn noise_variance(&self) -> f64 {
        self.noise_variance
    }
}

impl Transformer for FittedPca {
    fn n_features_in(&self) -> usize {
        self.mean.len()
    }

    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        let d = self.mean.len();
        crate::traits::check_input(x, d, PcaParams::NAME)?;
        let k = self.n_components();
        // scikit-learn divides by the components' standard deviations, at least machine
        // epsilon.
        let scale: Vec<f64> = self
            .explained_variance
            .iter()
            .map(|v| {
                if self.whiten {
                    v.sqrt().max(f64::EPSILON)
                } else {
                    1.0
                }
            })
            .collect();
        let mut out = Vec::with_capacity(x.rows() * k);
        let mut c = vec![0.0f64; d];
        for row in x.data().chunks_exact(d.max(1)) {
            for j in 0..d {
                c[j] = f64::from(row[j]) - self.mean[j];
            }
            for (comp, s) in self.components.chunks_exact(d.max(1)).zip(&scale) {
                let dot: f64 = comp.iter().zip(&c).map(|(a, b)| a * b).sum();
                out.push((dot / s) as f32);
            }
        }
        Matrix::from_vec(x.rows(), k, out)
    }

    fn feature_names_out(&self, _names: &[String]) -> Vec<String> {
        (0..self.n_components())
            .map(|i| format!("pca{i}"))
            .collect()
    }

    fn kinds_out(&self, _kinds: &[ColumnKind]) -> Vec<ColumnKind> {
        vec![ColumnKind::Numeric; self.n_components()]
    }
}

#[cfg(test)]
mod tests {
    use approx::assert_abs_diff_eq;

    use super::*;

    #[test]
    fn two_correlated_columns_have_the_closed_form_components() {
        // Points on the line y = x plus a perpendicular offset: the first component is
        // (1, 1)/√2 with the variance along the line.
        let pts = [
            (-2., -2.),
            (-1., -1.),
            (0., 0.),
            (1., 1.),
            (2., 2.),
            (0.5, -0.5),
        ];
        let x = Matrix::from_vec(
            pts.len(),
            2,
            pts.iter().flat_map(|&(a, b)| [a, b]).collect(),
        )
        .unwrap();
        let p = PcaParams::default()
            .check()
            .unwrap()
            .finish(CrossMoments::of_features(&x))
            .unwrap();
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert_abs_diff_eq!(p.components()[0], h, epsilon = 1e-12);
        assert_abs_diff_eq!(p.components()[1], h, epsilon = 1e-12);
        // Projections of the points on (1,1)/√2 are ±2√2, ±√2, 0, 0 (mean 0): sum of
        // squares 20, over n - 1 = 5.
        assert_abs_diff_eq!(p.explained_variance()[0], 4.0, epsilon = 1e-12);
        // The perpendicular: coordinates 0 and one 1/√2, whose mean is 1/(6√2): the
        // centred sum of squares is 1/2 - 1/12, over 5.
        assert_abs_diff_eq!(p.explained_variance()[1], 1.0 / 12.0, epsilon = 1e-12);
        let t = p.transform(&x).unwrap();
        assert_abs_diff_eq!(t.row(0)[0], (-2.0 * 2f64.sqrt()) as f32, epsilon = 1e-6);
        let mut one = PcaParams::default();
        one.set_param("n_components", "0.9").unwrap();
        let p = one
            .check()
            .unwrap()
            .finish(CrossMoments::of_features(&x))
            .unwrap();
        assert_eq!(p.n_components(), 1);
        assert_abs_diff_eq!(p.noise_variance(), 1.0 / 12.0, epsilon = 1e-12);
        assert!(PcaParams::default()
            .set_param("n_components", "mle")
            .is_err());
        assert!(PcaParams {
            n_components: Some(NComponents::Fraction(1.5)),
            whiten: false
        }
        .validate()
        .is_err());
    }
}

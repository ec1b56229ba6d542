//! Least squares: ordinary (`LinearRegression`) and L2-penalised (`Ridge`), solved in
//! closed form from the normal equations in `f64`.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::linalg;
use crate::matrix::Matrix;
use crate::traits::{
    check_input, parse_bool, parse_value, unknown_param, Checked, Classifier, Fit, Model, Params,
};

/// Hyperparameters of ordinary least squares (scikit-learn's `LinearRegression`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LinearRegressionParams {
    /// Fit an intercept (centre the data first). Default true.
    pub fit_intercept: bool,
}

impl Default for LinearRegressionParams {
    fn default() -> Self {
        Self {
            fit_intercept: true,
        }
    }
}

/// Hyperparameters of ridge regression (scikit-learn's `Ridge`): least squares plus
/// `alpha * ||w||²`, the intercept unpenalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RidgeParams {
    /// Penalty strength, >= 0. Default 1.0.
    pub alpha: f64,
    /// Fit an intercept. Default true.
    pub fit_intercept: bool,
}

impl Default for RidgeParams {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            fit_intercept: true,
        }
    }
}

impl Params for LinearRegressionParams {
    const NAME: &'static str = "linear_regression";
    const ALIASES: &'static [&'static str] = &["LinearRegression"];
    const DESCRIPTION: &'static str = "ordinary least squares";
    const PARAM_NAMES: &'static [&'static str] = &["fit_intercept"];

    fn validate(&self) -> Result<()> {
        Ok(())
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "fit_intercept" => self.fit_intercept = parse_bool(Self::NAME, key, value)?,
            _ => return Err(unknown_param::<Self>(key)),
        }
        Ok(())
    }
}

impl Params for RidgeParams {
    const NAME: &'static str = "ridge";
    const ALIASES: &'static [&'static str] = &["Ridge"];
    const DESCRIPTION: &'static str = "least squares with an L2 penalty (alpha)";
    const PARAM_NAMES: &'static [&'static str] = &["alpha", "fit_intercept"];

    fn validate(&self) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(ModelError::param(
                Self::NAME,
                "alpha",
                format!("must be a finite number >= 0, got {}", self.alpha),
            ));
        }
        Ok(())
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "alpha" => self.alpha = parse_value(Self::NAME, key, value, "a number")?,
            "fit_intercept" => self.fit_intercept = parse_bool(Self::NAME, key, value)?,
            _ => return Err(unknown_param::<Self>(key)),
        }
        Ok(())
    }
}

/// A fitted linear regressor: `y = x · coef + intercept`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedLinearRegression {
    coef: Vec<f64>,
    intercept: f64,
}

impl FittedLinearRegression {
    /// The weights (scikit-learn's `coef_`).
    pub fn coef(&self) -> &[f64] {
        &self.coef
    }

    /// The intercept (scikit-learn's `intercept_`).
    pub fn intercept(&self) -> f64 {
        self.intercept
    }

    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.coef.len()
    }

    /// Predictions for every row.
    pub fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        check_input(x, self.coef.len(), "linear model")?;
        let w = Matrix::from_vec(
            1,
            self.coef.len(),
            self.coef.iter().map(|&v| v as f32).collect(),
        )?;
        Ok(x.matmul_t(&w)?
            .to_vec()
            .into_iter()
            .map(|v| v + self.intercept as f32)
            .collect())
    }
}

impl Fit for Checked<LinearRegressionParams> {
    type Fitted = FittedLinearRegression;

    fn fit(&self, data: &Dataset) -> Result<FittedLinearRegression> {
        least_squares(data, 0.0, self.fit_intercept)
    }
}

impl Fit for Checked<RidgeParams> {
    type Fitted = FittedLinearRegression;

    fn fit(&self, data: &Dataset) -> Result<FittedLinearRegression> {
        least_squares(data, self.alpha, self.fit_intercept)
    }
}

/// Solves `(XcᵀXc + alpha I) w = Xcᵀyc` on centred data (when fitting an intercept). A
/// singular system (collinear or constant columns with `alpha = 0`) gets the minimum-norm
/// solution, as scikit-learn's least-squares solver gives.
fn least_squares(
    data: &Dataset,
    alpha: f64,
    fit_intercept: bool,
) -> Result<FittedLinearRegression> {
    let x = data.x();
    x.check_finite("training data")?;
    let y = data.value_target()?;
    if let Some(bad) = y.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::data(
            "training data",
            format!("target of row {bad} is not a finite number"),
        ));
    }
    let (n, d) = (x.rows(), x.cols());
    if n == 0 {
        return Err(ModelError::data("training data", "no rows"));
    }
    let x64 = x.tensor().to_dtype(DType::F64)?;
    let y64: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
    let (x_mean, y_mean) = if fit_intercept {
        let m = x64.mean_keepdim(0)?;
        (m, y64.iter().sum::<f64>() / n as f64)
    } else {
        (Tensor::zeros((1, d), DType::F64, x64.device())?, 0.0)
    };
    let xc = x64.broadcast_sub(&x_mean)?;
    let yc = Tensor::from_vec(
        y64.iter().map(|v| v - y_mean).collect::<Vec<f64>>(),
        (n, 1),
        xc.device(),
    )?;
    let gram = xc.t()?.matmul(&xc)?.to_vec2::<f64>()?;
    let rhs: Vec<f64> = xc.t()?.matmul(&yc)?.flatten_all()?.to_vec1()?;
    let g: Vec<f64> = gram.into_iter().flatten().collect();
    let means: Vec<f64> = x_mean.flatten_all()?.to_vec1()?;
    solve_normal(
        g,
        &rhs,
        alpha,
        fit_intercept.then_some((means.as_slice(), y_mean)),
    )
}

/// The model from the normal equations: `g = XcᵀXc` (`d x d`, row-major) and
/// `rhs = Xcᵀyc`, on data centred by `centre` (the column means and the target's mean)
/// when fitting an intercept, else on the raw data. An in-memory fit computes them from
/// its matrix, a data-parallel one merges them over chunks.
pub(crate) fn solve_normal(
    mut g: Vec<f64>,
    rhs: &[f64],
    alpha: f64,
    centre: Option<(&[f64], f64)>,
) -> Result<FittedLinearRegression> {
    let d = rhs.len();
    for i in 0..d {
        g[i * d + i] += alpha;
    }
    let coef = solve_scaled(&g, rhs, d)?;
    let intercept = match centre {
        Some((means, y_mean)) => y_mean - coef.iter().zip(means).map(|(w, m)| w * m).sum::<f64>(),
        None => 0.0,
    };
    Ok(FittedLinearRegression { coef, intercept })
}

/// Solves the normal equations with every column scaled to a unit diagonal, so that a
/// column's tests compare it with its own scale, not the largest column's. Columns with a
/// zero diagonal (constant after centring) get weight 0; a singular remainder gets the
/// minimum-norm solution (in the scaled coordinates).
fn solve_scaled(g: &[f64], rhs: &[f64], d: usize) -> Result<Vec<f64>> {
    let active: Vec<usize> = (0..d).filter(|&i| g[i * d + i] > 0.0).collect();
    let m = active.len();
    let scale: Vec<f64> = active.iter().map(|&i| 1.0 / g[i * d + i].sqrt()).collect();
    let mut a = vec![0.0f64; m * m];
    let mut b = vec![0.0f64; m];
    for (p, &i) in active.iter().enumerate() {
        b[p] = rhs[i] * scale[p];
        for (q, &j) in active.iter().enumerate() {
            a[p * m + q] = g[i * d + j] * scale[p] * scale[q];
        }
    }
    let ws = match linalg::cholesky_solve(&a, &b, m, 1e-12 * m as f64) {
        Some(ws) => ws,
        None => min_norm_solve(&a, &b, m)?,
    };
    let mut w = vec![0.0f64; d];
    for (p, &i) in active.iter().enumerate() {
        w[i] = ws[p] * scale[p];
    }
    Ok(w)
}

/// The minimum-norm solution of `A w = b` for symmetric positive semi-definite `A`, from
/// its eigen-decomposition, dropping eigenvalues below a relative cut-off.
fn min_norm_solve(a: &[f64], b: &[f64], d: usize) -> Result<Vec<f64>> {
    let eig = linalg::symmetric_eigen(a, d)?;
    let top = eig.values.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let cut = top * 1e-10 * d as f64;
    let mut w = vec![0.0; d];
    for (j, &lambda) in eig.values.iter().enumerate() {
        if lambda <= cut {
            continue;
        }
        let v = |k: usize| eig.vectors[k * d + j];
        let proj: f64 = (0..d).map(|k| v(k) * b[k]).sum::<f64>() / lambda;
        for k in 0..d {
            w[k] += proj * v(k);
        }
    }
    Ok(w)
}

impl Model for FittedLinearRegression {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Err(ModelError::data(
            "model",
            "a regressor predicts values, not classes",
        ))
    }

    fn n_inputs(&self) -> usize {
        self.n_features()
    }

    fn is_regressor(&self) -> bool {
        true
    }

    fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        FittedLinearRegression::predict_values(self, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Target;

    fn data(x: Vec<f32>, cols: usize, y: Vec<f32>) -> Dataset {
        let rows = y.len();
        let names = (0..cols).map(|j| format!("x{j}")).collect();
        Dataset::new(
            Matrix::from_vec(rows, cols, x).unwrap(),
            Target::Values(y),
            names,
            "y",
        )
        .unwrap()
    }

    #[test]
    fn exact_line_is_recovered() {
        // y = 2 x0 - 3 x1 + 5
        let x = vec![0., 0., 1., 0., 0., 1., 2., 3., -1., 4.];
        let y = vec![5., 7., 2., 0., -9.];
        let m = LinearRegressionParams::default()
            .fit(&data(x, 2, y.clone()))
            .unwrap();
        assert!((m.coef()[0] - 2.0).abs() < 1e-9 && (m.coef()[1] + 3.0).abs() < 1e-9);
        assert!((m.intercept() - 5.0).abs() < 1e-9);
    }

    #[test]
    fn ridge_matches_the_closed_form_in_one_dimension() {
        // Centred x = (-1, 0, 1), y = (0, 1, 5): w = Σxy / (Σx² + alpha) = 5 / (2 + 3).
        let d = data(vec![1., 2., 3.], 1, vec![0., 1., 5.]);
        let m = RidgeParams {
            alpha: 3.0,
            fit_intercept: true,
        }
        .fit(&d)
        .unwrap();
        assert!((m.coef()[0] - 1.0).abs() < 1e-12);
        assert!((m.intercept() - (2.0 - 2.0)).abs() < 1e-12);
    }

    #[test]
    fn duplicate_columns_get_the_minimum_norm_split() {
        // x1 = x0: any w0 + w1 = 2 fits; the minimum-norm answer is (1, 1).
        let d = data(
            vec![1., 1., 2., 2., 3., 3., 4., 4.],
            2,
            vec![2., 4., 6., 8.],
        );
        let m = LinearRegressionParams::default().fit(&d).unwrap();
        assert!((m.coef()[0] - 1.0).abs() < 1e-9, "{:?}", m.coef());
        assert!((m.coef()[1] - 1.0).abs() < 1e-9, "{:?}", m.coef());
        let p = m.predict_values(d.x()).unwrap();
        assert!((p[3] - 8.0).abs() < 1e-5);
    }

    #[test]
    fn a_small_scale_column_is_not_mistaken_for_a_singular_one() {
        // y = 3 b + 2e-6 p: a 0/1 column next to one a million times larger.
        let rows: Vec<(f32, f32)> = (0..40)
            .map(|i| ((i % 2) as f32, 1.0e6 * (1.0 + ((i * 7) % 13) as f32)))
            .collect();
        let x: Vec<f32> = rows.iter().flat_map(|(b, p)| [*b, *p]).collect();
        let y: Vec<f32> = rows.iter().map(|(b, p)| 3.0 * b + 2e-6 * p).collect();
        let m = LinearRegressionParams::default()
            .fit(&data(x, 2, y))
            .unwrap();
        assert!((m.coef()[0] - 3.0).abs() < 1e-4, "{:?}", m.coef());
        assert!((m.coef()[1] - 2e-6).abs() < 1e-10, "{:?}", m.coef());
    }

    #[test]
    fn bad_parameters_and_text_labels_are_refused() {
        let mut p = RidgeParams::default();
        p.set_param("alpha", "-1").unwrap();
        assert!(p.fit(&data(vec![1.], 1, vec![1.])).is_err());
        let e = LinearRegressionParams::default()
            .fit(&crate::io::iris())
            .unwrap_err()
            .to_string();
        assert!(e.contains("text labels"), "{e}");
    }
}

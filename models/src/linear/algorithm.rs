use crate::boosting::loss::{expit, log1p_exp};
use candle_core::{DType, Device, Tensor, WithDType};
use serde::{Deserialize, Serialize};

use super::hyperparams::{LogisticRegressionParams, Penalty};
use crate::dataset::Dataset;
use crate::error::Result;
use crate::matrix::Matrix;
use crate::optim::{Lbfgs, Termination};
use crate::traits::{check_input, Checked, ClassMap, Classifier, Fit, Model, Params};

/// A fitted logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedLogisticRegression {
    /// Row-major `k x n_features` weights; `k` is 1 for a binary problem (weights of the
    /// second class), else the number of classes present in training.
    coef: Vec<f64>,
    /// One intercept per row of `coef` (zeros when `fit_intercept` is false).
    intercept: Vec<f64>,
    n_features: usize,
    classes: ClassMap,
    n_iter: usize,
    converged: bool,
}

impl FittedLogisticRegression {
    /// The weights, `k x n_features` row-major (scikit-learn's `coef_`).
    pub fn coef(&self) -> &[f64] {
        &self.coef
    }

    /// The intercepts (scikit-learn's `intercept_`).
    pub fn intercept(&self) -> &[f64] {
        &self.intercept
    }

    /// L-BFGS iterations used (scikit-learn's `n_iter_`).
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Whether the solver met its tolerance within `max_iter`.
    pub fn converged(&self) -> bool {
        self.converged
    }

    fn rows(&self) -> usize {
        self.intercept.len()
    }

    /// Decision values `X · coefᵀ + intercept`, `n x k`.
    fn decision(&self, x: &Matrix) -> Result<Vec<f32>> {
        let k = self.rows();
        let w = Matrix::from_vec(
            k,
            self.n_features,
            self.coef.iter().map(|&v| v as f32).collect(),
        )?;
        let z = x.matmul_t(&w)?;
        let mut z = z.to_vec();
        for row in z.chunks_exact_mut(k) {
            for (v, b) in row.iter_mut().zip(&self.intercept) {
                *v += *b as f32;
            }
        }
        Ok(z)
    }
}

impl Classifier for FittedLogisticRegression {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.classes.n_classes
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        check_input(x, self.n_features, LogisticRegressionParams::NAME)?;
        let n = x.rows();
        let z = self.decision(x)?;
        let local = if self.rows() == 1 {
            let mut p = Vec::with_capacity(2 * n);
            for &t in &z {
                let s = expit(t as f64);
                p.push((1.0 - s) as f32);
                p.push(s as f32);
            }
            p
        } else {
            let k = self.rows();
            let mut p = z;
            for row in p.chunks_exact_mut(k) {
                softmax_in_place(row);
            }
            p
        };
        self.classes.expand(local, n)
    }

    /// The class with the largest decision value (the softmax and the sigmoid are
    /// monotone, so no probabilities are computed).
    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        check_input(x, self.n_features, LogisticRegressionParams::NAME)?;
        let z = self.decision(x)?;
        let present = &self.classes.present;
        if self.rows() == 1 {
            return Ok(z.iter().map(|&t| present[usize::from(t > 0.0)]).collect());
        }
        Ok(z.chunks_exact(self.rows())
            .map(|row| {
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = j;
                    }
                }
                present[best]
            })
            .collect())
    }
}

fn softmax_in_place(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in row.iter_mut() {
        *v /= s;
    }
}

/// Float types the objective can run in: `f32` for speed, `f64` to polish.
trait Real: WithDType {
    fn exp(self) -> Self;
    fn ln(self) -> Self;
}

impl Real for f32 {
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
}

impl Real for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
}

/// The penalised mean log-loss, scaled as scikit-learn scales it:
/// `mean_i loss_i + ||W||² / (2 C n)`.
struct Objective<'a> {
    y: &'a [u32],
    k: usize,
    d: usize,
    fit_intercept: bool,
    l2: f64,
    /// One over the number of rows of the whole training set (a chunk's share of the mean
    /// is its sum scaled by it).
    inv_n: f64,
}

impl Objective<'_> {
    fn n_params(&self) -> usize {
        self.k * self.d + if self.fit_intercept { self.k } else { 0 }
    }

    /// Loss and gradient with the products and the softmax in `T`; sums are `f64`.
    fn loss_grad<T: Real>(&self, x: &Tensor, w: &[f64], g: &mut [f64]) -> Result<f64> {
        let (k, d) = (self.k, self.d);
        let n = self.y.len();
        let inv_n = self.inv_n;
        let wt: Vec<T> = w[..k * d].iter().map(|&v| T::from_f64(v)).collect();
        let wm = Tensor::from_vec(wt, (k, d), &Device::Cpu)?;
        let b: Vec<T> = (0..k)
            .map(|j| {
                T::from_f64(if self.fit_intercept {
                    w[k * d + j]
                } else {
                    0.0
                })
            })
            .collect();
        let z = x.matmul(&wm.t()?)?.flatten_all()?.to_vec1::<T>()?;
        let mut r = vec![T::zero(); n * k];
        let mut gb = vec![0.0f64; k];
        let mut loss = 0.0f64;
        if k == 1 {
            for i in 0..n {
                let t = z[i].to_f64() + b[0].to_f64();
                let yi = self.y[i] as f64;
                loss += log1p_exp(t) - yi * t;
                let ri = expit(t) - yi;
                gb[0] += ri;
                r[i] = T::from_f64(ri * inv_n);
            }
        } else {
            let scale = T::from_f64(inv_n);
            let mut p = vec![T::zero(); k];
            for i in 0..n {
                let zi = &z[i * k..(i + 1) * k];
                let yi = self.y[i] as usize;
                let mut m = zi[0] + b[0];
                for (pj, (&zj, &bj)) in p.iter_mut().zip(zi.iter().zip(&b)) {
                    *pj = zj + bj;
                    if *pj > m {
                        m = *pj;
                    }
                }
                let zy = p[yi];
                let mut s = T::zero();
                for pj in p.iter_mut() {
                    *pj = (*pj - m).exp();
                    s += *pj;
                }
                loss += (s.ln() + m - zy).to_f64();
                let inv_s = T::one() / s;
                let ri = &mut r[i * k..(i + 1) * k];
                for j in 0..k {
                    let mut v = p[j] * inv_s;
                    if j == yi {
                        v -= T::one();
                    }
                    gb[j] += v.to_f64();
                    ri[j] = v * scale;
                }
            }
        }
        let rm = Tensor::from_vec(r, (n, k), &Device::Cpu)?;
        let gw = rm.t()?.matmul(x)?.flatten_all()?.to_vec1::<T>()?;
        let mut reg = 0.0;
        for (i, (gi, gwi)) in g[..k * d].iter_mut().zip(gw).enumerate() {
            *gi = gwi.to_f64() + self.l2 * w[i];
            reg += w[i] * w[i];
        }
        if self.fit_intercept {
            for (gi, v) in g[k * d..].iter_mut().zip(&gb) {
                *gi = v * inv_n;
            }
        }
        Ok(loss * inv_n + 0.5 * self.l2 * reg)
    }
}

impl Checked<LogisticRegressionParams> {
    /// The L2 penalty's weight in the mean loss over `n` rows.
    pub(crate) fn l2(&self, n: usize) -> f64 {
        match self.penalty {
            Penalty::L2 => 1.0 / (self.c * n as f64),
            Penalty::None | Penalty::L1 => 0.0,
        }
    }
}

/// The data part of the objective on some of the training rows: their log-loss summed and
/// scaled by `inv_n` (one over all training rows), with its gradient. `y` holds the rows'
/// classes as indices into the present classes; `k` is 1 for a binary problem. The
/// products run in `f64` when `wide`, else in `f32` as an in-memory fit starts. A
/// data-parallel fit adds these up over chunks, then the penalty ([`add_penalty`]).
pub(crate) fn log_loss_part(
    x: &Matrix,
    y: &[u32],
    k: usize,
    fit_intercept: bool,
    w: &[f64],
    inv_n: f64,
    wide: bool,
) -> Result<(f64, Vec<f64>)> {
    let obj = Objective {
        y,
        k,
        d: x.cols(),
        fit_intercept,
        l2: 0.0,
        inv_n,
    };
    if w.len() != obj.n_params() {
        return Err(crate::error::ModelError::Shape(format!(
            "{} weights for {} parameters",
            w.len(),
            obj.n_params()
        )));
    }
    let mut g = vec![0.0; obj.n_params()];
    let f = if wide {
        obj.loss_grad::<f64>(&x.tensor().to_dtype(DType::F64)?, w, &mut g)?
    } else {
        obj.loss_grad::<f32>(x.tensor(), w, &mut g)?
    };
    Ok((f, g))
}

/// Adds the L2 penalty `l2 ||W||² / 2` (the `k x d` weights, not the intercepts) to a
/// summed objective and its gradient.
pub(crate) fn add_penalty(f: &mut f64, g: &mut [f64], w: &[f64], l2: f64, kd: usize) {
    let mut reg = 0.0;
    for (gi, wi) in g[..kd].iter_mut().zip(&w[..kd]) {
        *gi += l2 * wi;
        reg += wi * wi;
    }
    *f += 0.5 * l2 * reg;
}

impl FittedLogisticRegression {
    /// The model from the solver's parameters: `k x d` weights, then (with an intercept)
    /// `k` intercepts.
    pub(crate) fn from_solution(
        w: &[f64],
        d: usize,
        fit_intercept: bool,
        classes: ClassMap,
        n_iter: usize,
        converged: bool,
    ) -> Self {
        let k = if classes.present.len() == 2 {
            1
        } else {
            classes.present.len()
        };
        Self {
            coef: w[..k * d].to_vec(),
            intercept: if fit_intercept {
                w[k * d..].to_vec()
            } else {
                vec![0.0; k]
            },
            n_features: d,
            classes,
            n_iter,
            converged,
        }
    }
}

impl Fit for Checked<LogisticRegressionParams> {
    type Fitted = FittedLogisticRegression;

    fn fit(&self, data: &Dataset) -> Result<FittedLogisticRegression> {
        let (ids, classes) = data.class_target()?;
        let x = data.x();
        x.check_finite("training data")?;
        let map = ClassMap::from_targets(ids, classes.len(), LogisticRegressionParams::NAME)?;
        let y = map.encode(ids);
        let k = if map.present.len() == 2 {
            1
        } else {
            map.present.len()
        };
        let n = x.rows();
        let obj = Objective {
            y: &y,
            k,
            d: x.cols(),
            fit_intercept: self.fit_intercept,
            l2: self.l2(n),
            inv_n: 1.0 / n as f64,
        };
        if self.penalty == Penalty::L1 {
            let x64 = x.tensor().to_dtype(DType::F64)?;
            let lambda = 1.0 / (self.c * n as f64);
            let res = fista(&obj, &x64, lambda, self.max_iter, self.tol)?;
            if !res.converged {
                crate::warnings::warn(crate::warnings::not_converged(
                    "LogisticRegression(penalty='l1')",
                    "FISTA",
                    self.max_iter,
                ));
            }
            let d = x.cols();
            let intercept = if self.fit_intercept {
                res.w[k * d..].to_vec()
            } else {
                vec![0.0; k]
            };
            return Ok(FittedLogisticRegression {
                coef: res.w[..k * d].to_vec(),
                intercept,
                n_features: d,
                classes: map,
                n_iter: res.n_iter,
                converged: res.converged,
            });
        }
        let opt = Lbfgs {
            max_iter: self.max_iter,
            gtol: self.tol,
            ..Lbfgs::default()
        };
        // Most of the descent runs in f32. If it stalls above `tol` (f32 rounding in the
        // gradient spoils the curvature pairs near the optimum), it finishes in f64 from there.
        let x32 = x.tensor();
        let mut res = opt.minimize(
            |w, g| obj.loss_grad::<f32>(x32, w, g),
            vec![0.0; obj.n_params()],
        )?;
        let stalled = matches!(
            res.termination,
            Termination::LineSearch | Termination::Objective
        );
        if stalled && res.gnorm_inf > self.tol && res.n_iter < self.max_iter {
            let x64 = x32.to_dtype(DType::F64)?;
            let polish = Lbfgs {
                max_iter: self.max_iter - res.n_iter,
                ..opt
            };
            let first = res.n_iter;
            res = polish.minimize(|w, g| obj.loss_grad::<f64>(&x64, w, g), res.x)?;
            res.n_iter += first;
            tracing::debug!(
                f32_iterations = first,
                total = res.n_iter,
                "logistic regression polished in f64"
            );
        }
        if !res.converged() {
            tracing::debug!(gradient = res.gnorm_inf, "L-BFGS stopped short");
            crate::warnings::warn(crate::warnings::not_converged(
                "LogisticRegression",
                "lbfgs",
                self.max_iter,
            ));
        }
        tracing::debug!(n_iter = res.n_iter, loss = res.f, termination = ?res.termination, "lbfgs done");
        let d = x.cols();
        let intercept = if self.fit_intercept {
            res.x[k * d..].to_vec()
        } else {
            vec![0.0; k]
        };
        Ok(FittedLogisticRegression {
            coef: res.x[..k * d].to_vec(),
            intercept,
            n_features: d,
            classes: map,
            n_iter: res.n_iter,
            converged: res.converged(),
        })
    }
}

/// The result of [`fista`].
struct Sparse {
    w: Vec<f64>,
    n_iter: usize,
    converged: bool,
}

/// Minimises `loss(w) + lambda * ||coef||₁` (the intercepts unpenalised) by FISTA with
/// backtracking on the step and a restart whenever the objective rises. Stops when the
/// proximal gradient mapping's largest component is at most `tol`.
fn fista(
    obj: &Objective<'_>,
    x: &Tensor,
    lambda: f64,
    max_iter: usize,
    tol: f64,
) -> Result<Sparse> {
    let m = obj.n_params();
    let penalised = obj.k * obj.d;
    let l1 = |w: &[f64]| lambda * w[..penalised].iter().map(|v| v.abs()).sum::<f64>();
    let mut w = vec![0.0f64; m];
    let mut z = w.clone();
    let mut g = vec![0.0f64; m];
    let mut scratch = vec![0.0f64; m];
    let mut p = vec![0.0f64; m];
    let mut t = 1.0f64;
    let mut lip = 1.0f64;
    let mut f_w = obj.loss_grad::<f64>(x, &w, &mut scratch)? + l1(&w);
    for iter in 1..=max_iter {
        let f_z = obj.loss_grad::<f64>(x, &z, &mut g)?;
        // Allow the step to grow again before backtracking.
        lip *= 0.8;
        let f_p = loop {
            for i in 0..m {
                let v = z[i] - g[i] / lip;
                p[i] = if i < penalised {
                    let s = lambda / lip;
                    v.signum() * (v.abs() - s).max(0.0)
                } else {
                    v
                };
            }
            let f_p = obj.loss_grad::<f64>(x, &p, &mut scratch)?;
            let mut lin = 0.0;
            let mut sq = 0.0;
            for i in 0..m {
                let dlt = p[i] - z[i];
                lin += g[i] * dlt;
                sq += dlt * dlt;
            }
            if f_p <= f_z + lin + 0.5 * lip * sq || lip > 1e12 {
                break f_p;
            }
            lip *= 2.0;
        };
        let mapping = (0..m)
            .map(|i| (lip * (z[i] - p[i])).abs())
            .fold(0.0, f64::max);
        let f_new = f_p + l1(&p);
        if f_new > f_w {
            // A plain step from the accepted point that does not decrease the objective:
            // the optimum within floating-point precision.
            let floor = z == w;
            if mapping <= tol || floor {
                tracing::debug!(iter, mapping, "l1 solver stopped");
                return Ok(Sparse {
                    w,
                    n_iter: iter,
                    converged: true,
                });
            }
            // Momentum overshot: restart from the last accepted point.
            t = 1.0;
            z.copy_from_slice(&w);
            continue;
        }
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        let beta = (t - 1.0) / t_next;
        for i in 0..m {
            z[i] = p[i] + beta * (p[i] - w[i]);
        }
        w.copy_from_slice(&p);
        f_w = f_new;
        t = t_next;
        if mapping <= tol {
            return Ok(Sparse {
                w,
                n_iter: iter,
                converged: true,
            });
        }
    }
    Ok(Sparse {
        w,
        n_iter: max_iter,
        converged: false,
    })
}

impl Model for FittedLogisticRegression {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn autotraits<T: Send + Sync + Unpin>() {}

    #[test]
    fn fitted_model_is_send_sync() {
        autotraits::<FittedLogisticRegression>();
        autotraits::<LogisticRegressionParams>();
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let x = Matrix::from_vec(
            5,
            2,
            vec![0.5, 1.0, -1.0, 2.0, 0.3, -0.7, 1.5, 0.2, -0.4, -1.1],
        )
        .unwrap();
        for (y, k) in [(vec![0u32, 1, 2, 1, 0], 3usize), (vec![0, 1, 1, 0, 1], 1)] {
            let obj = Objective {
                y: &y,
                k,
                d: 2,
                fit_intercept: true,
                l2: 0.3,
                inv_n: 1.0 / y.len() as f64,
            };
            let x = x.tensor().to_dtype(DType::F64).unwrap();
            let w: Vec<f64> = (0..obj.n_params()).map(|i| 0.1 * i as f64 - 0.2).collect();
            let mut g = vec![0.0; w.len()];
            obj.loss_grad::<f64>(&x, &w, &mut g).unwrap();
            for i in 0..w.len() {
                let h = 1e-3;
                let (mut wp, mut wm) = (w.clone(), w.clone());
                wp[i] += h;
                wm[i] -= h;
                let mut scratch = vec![0.0; w.len()];
                let fd = (obj.loss_grad::<f64>(&x, &wp, &mut scratch).unwrap()
                    - obj.loss_grad::<f64>(&x, &wm, &mut scratch).unwrap())
                    / (2.0 * h);
                assert!((fd - g[i]).abs() < 1e-4, "param {i}: {fd} vs {}", g[i]);
            }
        }
    }

    #[test]
    fn separable_binary_problem_is_learned() {
        let x = Matrix::from_vec(6, 1, vec![-3., -2., -1., 1., 2., 3.]).unwrap();
        let d = Dataset::from_classes(x.clone(), vec![0, 0, 0, 1, 1, 1]).unwrap();
        let m = LogisticRegressionParams::default().fit(&d).unwrap();
        assert_eq!(m.predict(&x).unwrap(), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(m.coef().len(), 1);
        assert!(m.coef()[0] > 0.0);
        // Symmetric data: the intercept is zero and p(0) = 0.5 exactly at x = 0.
        assert!(m.intercept()[0].abs() < 1e-6);
        let p = m
            .predict_proba(&Matrix::from_vec(1, 1, vec![0.0]).unwrap())
            .unwrap();
        assert!((p.to_vec()[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn invalid_params_are_rejected_before_fitting() {
        let d = Dataset::from_classes(Matrix::zeros(2, 1), vec![0, 1]).unwrap();
        let e = LogisticRegressionParams::default()
            .with_c(0.0)
            .fit(&d)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid parameter 'C' for logistic_regression: must be a finite number > 0, got 0"
        );
        let mut p = LogisticRegressionParams::default();
        assert!(p.set_param("C", "abc").is_err());
        assert!(p
            .set_param("gamma", "1")
            .unwrap_err()
            .to_string()
            .contains("known: C, penalty"));
        p.set_param("max_iter", "7").unwrap();
        assert_eq!(p.max_iter, 7);
    }

    #[test]
    fn l1_zeroes_weak_features_and_meets_the_optimality_conditions() {
        let data = crate::io::iris();
        let p = LogisticRegressionParams::default()
            .with_penalty(Penalty::L1)
            .with_c(0.05)
            .with_max_iter(20_000)
            .with_tol(1e-7);
        let m = p.fit(&data).unwrap();
        assert!(m.converged());
        let zeros = m.coef().iter().filter(|v| **v == 0.0).count();
        assert!(zeros >= 4, "{:?}", m.coef());
        // KKT: |grad_j| <= lambda where w_j = 0, grad_j = -lambda sign(w_j) elsewhere.
        let (ids, _) = data.class_target().unwrap();
        let obj = Objective {
            y: ids,
            k: 3,
            d: 4,
            fit_intercept: true,
            l2: 0.0,
            inv_n: 1.0 / ids.len() as f64,
        };
        let mut w = m.coef().to_vec();
        w.extend_from_slice(m.intercept());
        let mut g = vec![0.0; w.len()];
        let x = data.x().tensor().to_dtype(DType::F64).unwrap();
        obj.loss_grad::<f64>(&x, &w, &mut g).unwrap();
        let lambda = 1.0 / (0.05 * 150.0);
        for j in 0..12 {
            if w[j] == 0.0 {
                assert!(g[j].abs() <= lambda + 1e-6, "{j}: {}", g[j]);
            } else {
                assert!(
                    (g[j] + lambda * w[j].signum()).abs() < 1e-5,
                    "{j}: {}",
                    g[j]
                );
            }
        }
        for gi in &g[12..] {
            assert!(gi.abs() < 1e-6);
        }
    }

    #[test]
    fn predict_is_the_argmax_of_the_probabilities() {
        let iris = crate::io::iris();
        let rows: Vec<usize> = (50..150).collect();
        for data in [iris.clone(), iris.select(&rows).unwrap()] {
            let m = LogisticRegressionParams::default().fit(&data).unwrap();
            let p = m.predict_proba(data.x()).unwrap();
            assert_eq!(m.predict(data.x()).unwrap(), crate::traits::argmax_rows(&p));
        }
    }

    #[test]
    fn wrong_feature_count_is_an_error() {
        let x = Matrix::from_vec(4, 1, vec![0., 1., 2., 3.]).unwrap();
        let d = Dataset::from_classes(x, vec![0, 0, 1, 1]).unwrap();
        let m = LogisticRegressionParams::default().fit(&d).unwrap();
        let e = m.predict(&Matrix::zeros(1, 2)).unwrap_err().to_string();
        assert_eq!(
            e,
            "shape mismatch: logistic_regression was fitted on 1 features, got 2"
        );
    }
}

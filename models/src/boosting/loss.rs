//! The losses gradient boosting descends, as scikit-learn's `sklearn._loss` defines them:
//! the half losses (so that the squared error's gradient is `raw - y` and its hessian 1),
//! their links, the intercept-only starting point, and for the two losses that are not
//! differentiable (absolute error, quantile) the leaf values recomputed from the residuals.

use serde::{Deserialize, Serialize};

/// A boosting loss. Raw predictions live in link space: identity for the regression
/// losses but Poisson (log link), logit for binary and the symmetric multinomial logit for
/// multi-class classification.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Half squared error `(y - raw)² / 2`.
    SquaredError,
    /// Absolute error `|y - raw|`.
    AbsoluteError,
    /// Half Poisson deviance `exp(raw) - y·raw` (log link, `y >= 0`).
    Poisson,
    /// Pinball loss of one quantile in (0, 1).
    Quantile(f64),
    /// Half binomial deviance (logit link; `y` is 0 or 1).
    Binomial,
    /// Half multinomial deviance over this many classes (`y` is the class index).
    Multinomial(usize),
}

impl Loss {
    /// Trees grown per boosting iteration: one per class for the multinomial loss.
    pub fn trees_per_iteration(self) -> usize {
        match self {
            Loss::Multinomial(k) => k,
            _ => 1,
        }
    }

    /// True when the hessian is the same for every row (1) without sample weights:
    /// histograms then count rows instead of summing hessians.
    pub fn constant_hessian(self) -> bool {
        matches!(
            self,
            Loss::SquaredError | Loss::AbsoluteError | Loss::Quantile(_)
        )
    }

    /// True for the losses whose leaf values are recomputed from the residuals after a
    /// tree is grown from the gradients (scikit-learn's `differentiable = False`).
    pub fn updates_leaves(self) -> bool {
        matches!(self, Loss::AbsoluteError | Loss::Quantile(_))
    }

    /// The raw prediction of an intercept-only model (one value per tree of an
    /// iteration): scikit-learn's `fit_intercept_only`.
    pub fn baseline(self, y: &[f64], w: Option<&[f64]>) -> Vec<f64> {
        match self {
            Loss::SquaredError => vec![average(y, w)],
            Loss::AbsoluteError => vec![percentile(y, w, 0.5)],
            Loss::Quantile(q) => vec![percentile(y, w, q)],
            Loss::Poisson => vec![average(y, w).max(10.0 * f64::EPSILON).ln()],
            Loss::Binomial => {
                let eps = 10.0 * f64::EPSILON;
                let p = average(y, w).clamp(eps, 1.0 - eps);
                vec![(p / (1.0 - p)).ln()]
            }
            Loss::Multinomial(k) => {
                let eps = f64::EPSILON;
                let logs: Vec<f64> = (0..k)
                    .map(|c| {
                        let is_c: Vec<f64> = y
                            .iter()
                            .map(|&v| if v as usize == c { 1.0 } else { 0.0 })
                            .collect();
                        average(&is_c, w).clamp(eps, 1.0 - eps).ln()
                    })
                    .collect();
                let mean = logs.iter().sum::<f64>() / k as f64;
                logs.iter().map(|l| l - mean).collect()
            }
        }
    }

    /// Writes every row's gradient and (unless constant) hessian. `raw` holds the trees'
    /// raw predictions tree-major (`raw[k * n + i]`), as do `g` and `h`; gradients are
    /// stored as `f32`, as scikit-learn's `G_H_DTYPE`.
    pub fn gradients(
        self,
        y: &[f64],
        raw: &[f64],
        w: Option<&[f64]>,
        g: &mut [f32],
        h: &mut [f32],
    ) {
        let n = y.len();
        let weight = |i: usize| w.map_or(1.0, |w| w[i]);
        match self {
            // The hessian is 1, or the row's weight: written only when weighted (unweighted,
            // histograms count rows instead).
            Loss::SquaredError => {
                for i in 0..n {
                    g[i] = ((raw[i] - y[i]) * weight(i)) as f32;
                }
                write_weights(w, h);
            }
            Loss::AbsoluteError => {
                for i in 0..n {
                    let s = if raw[i] > y[i] { 1.0 } else { -1.0 };
                    g[i] = (s * weight(i)) as f32;
                }
                write_weights(w, h);
            }
            Loss::Quantile(q) => {
                for i in 0..n {
                    let s = if y[i] > raw[i] { -q } else { 1.0 - q };
                    g[i] = (s * weight(i)) as f32;
                }
                write_weights(w, h);
            }
            Loss::Poisson => {
                for i in 0..n {
                    let e = raw[i].exp();
                    g[i] = ((e - y[i]) * weight(i)) as f32;
                    h[i] = (e * weight(i)) as f32;
                }
            }
            Loss::Binomial => {
                for i in 0..n {
                    // scikit-learn's stable forms: from exp(-raw), so that confident
                    // predictions keep their small gradients and hessians.
                    let (gi, hi) = if raw[i] > -37.0 {
                        let e = (-raw[i]).exp();
                        (
                            ((1.0 - y[i]) - y[i] * e) / (1.0 + e),
                            e / ((1.0 + e) * (1.0 + e)),
                        )
                    } else {
                        let e = raw[i].exp();
                        (e - y[i], e)
                    };
                    g[i] = (gi * weight(i)) as f32;
                    h[i] = (hi * weight(i)) as f32;
                }
            }
            Loss::Multinomial(k) => {
                if n == 0 {
                    return;
                }
                // A softmax per row: rows split over threads, each writing its rows'
                // stretch of every class's block.
                let threads = crate::parallel_threads(n * k * 8);
                let per = n.div_ceil(threads);
                let mut gs: Vec<Vec<&mut [f32]>> = (0..threads).map(|_| Vec::new()).collect();
                let mut hs: Vec<Vec<&mut [f32]>> = (0..threads).map(|_| Vec::new()).collect();
                for (gc, hc) in g.chunks_mut(n).zip(h.chunks_mut(n)) {
                    for (t, (a, b)) in gc.chunks_mut(per).zip(hc.chunks_mut(per)).enumerate() {
                        gs[t].push(a);
                        hs[t].push(b);
                    }
                }
                std::thread::scope(|s| {
                    for (t, (mut g, mut h)) in gs.into_iter().zip(hs).enumerate() {
                        s.spawn(move || multinomial_rows(k, n, t * per, y, raw, w, &mut g, &mut h));
                    }
                });
            }
        }
    }

    /// The (weighted) mean loss of raw predictions `raw` (tree-major) against `y`, as
    /// scikit-learn's `loss(y_true, raw_prediction, sample_weight)`: early stopping's score
    /// is its negation.
    pub fn mean(self, y: &[f64], raw: &[f64], w: Option<&[f64]>) -> f64 {
        let n = y.len();
        let per_row = |i: usize| -> f64 {
            let r = raw[i];
            match self {
                Loss::SquaredError => 0.5 * (y[i] - r) * (y[i] - r),
                Loss::AbsoluteError => (y[i] - r).abs(),
                Loss::Quantile(q) => {
                    if y[i] >= r {
                        q * (y[i] - r)
                    } else {
                        (1.0 - q) * (r - y[i])
                    }
                }
                Loss::Poisson => r.exp() - y[i] * r,
                Loss::Binomial => log1p_exp(r) - y[i] * r,
                Loss::Multinomial(k) => {
                    let max = (0..k)
                        .map(|c| raw[c * n + i])
                        .fold(f64::NEG_INFINITY, f64::max);
                    let lse = max
                        + (0..k)
                            .map(|c| (raw[c * n + i] - max).exp())
                            .sum::<f64>()
                            .ln();
                    lse - raw[y[i] as usize * n + i]
                }
            }
        };
        let losses: Vec<f64> = (0..n).map(per_row).collect();
        average(&losses, w)
    }

    /// A leaf's value for the non-differentiable losses: the median (absolute error) or
    /// the quantile of the residuals `y - raw` of its rows, before shrinkage.
    pub fn leaf_value(self, residuals: &[f64], w: Option<&[f64]>) -> f64 {
        match self {
            Loss::Quantile(q) => percentile(residuals, w, q),
            _ => percentile(residuals, w, 0.5),
        }
    }

    /// Maps raw predictions to predicted values (regression) in place.
    pub fn inverse_link(self, raw: f64) -> f64 {
        match self {
            Loss::Poisson => raw.exp(),
            Loss::Binomial => expit(raw),
            _ => raw,
        }
    }
}

/// The multinomial gradients of rows `first..first + g[0].len()`: `g[c]` and `h[c]` are
/// class `c`'s stretch for those rows.
#[allow(clippy::too_many_arguments)]
fn multinomial_rows(
    k: usize,
    n: usize,
    first: usize,
    y: &[f64],
    raw: &[f64],
    w: Option<&[f64]>,
    g: &mut [&mut [f32]],
    h: &mut [&mut [f32]],
) {
    let mut p = vec![0.0; k];
    for r in 0..g.first().map_or(0, |s| s.len()) {
        let i = first + r;
        for (c, pc) in p.iter_mut().enumerate() {
            *pc = raw[c * n + i];
        }
        softmax(&mut p);
        let wi = w.map_or(1.0, |w| w[i]);
        for (c, &pc) in p.iter().enumerate() {
            let t = if y[i] as usize == c { 1.0 } else { 0.0 };
            g[c][r] = ((pc - t) * wi) as f32;
            h[c][r] = (pc * (1.0 - pc) * wi) as f32;
        }
    }
}

/// The hessians of a constant-hessian loss under sample weights: the weights.
fn write_weights(w: Option<&[f64]>, h: &mut [f32]) {
    if let Some(w) = w {
        for (h, &w) in h.iter_mut().zip(w) {
            *h = w as f32;
        }
    }
}

fn average(v: &[f64], w: Option<&[f64]>) -> f64 {
    match w {
        None => v.iter().sum::<f64>() / v.len().max(1) as f64,
        Some(w) => {
            let s: f64 = w.iter().sum();
            v.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() / s
        }
    }
}

/// The `q` quantile: numpy's default (linear) `percentile` unweighted; with weights,
/// scikit-learn's `_weighted_percentile` without averaging (the lowest value whose
/// cumulative weight reaches `q` of the total, an inverted CDF).
fn percentile(v: &[f64], w: Option<&[f64]>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    match w {
        None => {
            let mut s = v.to_vec();
            s.sort_unstable_by(f64::total_cmp);
            let pos = q * (s.len() - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(s.len() - 1);
            let frac = pos - lo as f64;
            s[lo] + (s[hi] - s[lo]) * frac
        }
        Some(w) => {
            let mut idx: Vec<usize> = (0..v.len()).collect();
            idx.sort_unstable_by(|&a, &b| v[a].total_cmp(&v[b]));
            let total: f64 = w.iter().sum();
            let target = q * total;
            let mut acc = 0.0;
            for &i in &idx {
                acc += w[i];
                if acc >= target {
                    return v[i];
                }
            }
            v[idx[idx.len() - 1]]
        }
    }
}

/// The logistic function, without overflow (the linear models' too).
pub fn expit(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + e^x)` without overflow (the linear models' too).
pub(crate) fn log1p_exp(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// Softmax of `p` in place.
pub fn softmax(p: &mut [f64]) {
    let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in p.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in p.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_are_the_intercept_only_fits() {
        let y = [1.0, 2.0, 3.0, 10.0];
        assert_eq!(Loss::SquaredError.baseline(&y, None), vec![4.0]);
        assert_eq!(Loss::AbsoluteError.baseline(&y, None), vec![2.5]);
        // numpy.percentile([1, 2, 3, 10], 90) = 7.9
        assert!((Loss::Quantile(0.9).baseline(&y, None)[0] - 7.9).abs() < 1e-12);
        assert!((Loss::Poisson.baseline(&y, None)[0] - 4f64.ln()).abs() < 1e-15);
        let b = Loss::Binomial.baseline(&[0.0, 1.0, 1.0, 1.0], None)[0];
        assert!((b - 3f64.ln()).abs() < 1e-12);
        // Class shares 1/4, 1/4, 1/2: log-shares centred on their mean.
        let m = Loss::Multinomial(3).baseline(&[0.0, 1.0, 2.0, 2.0], None);
        assert!((m.iter().sum::<f64>()).abs() < 1e-12);
        assert!((m[2] - m[0] - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn gradients_match_their_closed_forms() {
        let y = [0.0, 1.0];
        let raw = [0.0, 2.0];
        let (mut g, mut h) = (vec![0.0; 2], vec![0.0; 2]);
        Loss::Binomial.gradients(&y, &raw, None, &mut g, &mut h);
        assert_eq!(g[0], 0.5);
        assert_eq!(h[0], 0.25);
        assert!((f64::from(g[1]) - (expit(2.0) - 1.0)).abs() < 1e-7);
        Loss::SquaredError.gradients(&y, &raw, Some(&[2.0, 1.0]), &mut g, &mut h);
        assert_eq!(g, vec![0.0, 1.0]);
        // Multinomial: softmax minus the one-hot target, per class block.
        let (mut g, mut h) = (vec![0.0; 4], vec![0.0; 4]);
        Loss::Multinomial(2).gradients(&[1.0, 0.0], &[0.0, 0.0, 0.0, 0.0], None, &mut g, &mut h);
        assert_eq!(g, vec![0.5, -0.5, -0.5, 0.5]);
        assert_eq!(h, vec![0.25; 4]);
        // Confident predictions keep their small gradients (not 1 - 1 = 0).
        let (mut g, mut h) = (vec![0.0; 2], vec![0.0; 2]);
        Loss::Binomial.gradients(&[1.0, 0.0], &[40.0, -40.0], None, &mut g, &mut h);
        let tiny = (-40f64).exp();
        assert!((f64::from(g[0]) / -tiny - 1.0).abs() < 1e-6, "{}", g[0]);
        assert!((f64::from(g[1]) / tiny - 1.0).abs() < 1e-6 && h[0] > 0.0);
        // Weighted squared error: hessians are the weights.
        Loss::SquaredError.gradients(&[0.0, 0.0], &[1.0, 1.0], Some(&[2.0, 0.5]), &mut g, &mut h);
        assert_eq!(h, vec![2.0, 0.5]);
        // The mean loss of a perfect-ish binomial fit is near zero, of raw 0 is log 2.
        let l = Loss::Binomial.mean(&[0.0, 1.0], &[0.0, 0.0], None);
        assert!((l - 2f64.ln()).abs() < 1e-12);
        let l = Loss::Multinomial(2).mean(&[1.0, 0.0], &[0.0; 4], None);
        assert!((l - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn weighted_percentile_is_the_lowest_reaching_the_share() {
        let v = [3.0, 1.0, 2.0];
        assert_eq!(percentile(&v, Some(&[1.0, 1.0, 1.0]), 0.5), 2.0);
        assert_eq!(percentile(&v, Some(&[5.0, 1.0, 1.0]), 0.5), 3.0);
    }
}

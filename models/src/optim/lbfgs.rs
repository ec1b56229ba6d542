//! Limited-memory BFGS with a strong-Wolfe line search, in `f64`.
//!
//! Stopping rules follow scipy's L-BFGS-B as scikit-learn drives it: the largest absolute
//! gradient component at or below `gtol`, a relative decrease of the objective at or below
//! `ftol`, or `max_iter` iterations. A line search that cannot find a lower point (the
//! objective is flat at working precision) also ends the run.

use crate::error::{ModelError, Result};

/// Why the optimiser stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// The largest gradient component fell to `gtol`.
    Gradient,
    /// The objective stopped decreasing by more than `ftol` (relative).
    Objective,
    /// The line search found no lower point along the search direction.
    LineSearch,
    /// `max_iter` iterations were used.
    MaxIter,
}

/// The result of [`Lbfgs::minimize`].
#[derive(Debug, Clone)]
pub struct LbfgsResult {
    /// The final point.
    pub x: Vec<f64>,
    /// The objective there.
    pub f: f64,
    /// The largest absolute gradient component there.
    pub gnorm_inf: f64,
    /// Iterations used.
    pub n_iter: usize,
    /// Why it stopped.
    pub termination: Termination,
}

impl LbfgsResult {
    /// True unless the iteration budget ran out.
    pub fn converged(&self) -> bool {
        self.termination != Termination::MaxIter
    }
}

/// L-BFGS settings.
#[derive(Debug, Clone)]
pub struct Lbfgs {
    /// Number of correction pairs kept (scipy's `maxcor`, default 10).
    pub memory: usize,
    /// Iteration budget.
    pub max_iter: usize,
    /// Gradient tolerance (max-norm).
    pub gtol: f64,
    /// Relative objective-decrease tolerance.
    pub ftol: f64,
    /// Objective evaluations allowed per line search.
    pub max_linesearch: usize,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Self {
            memory: 10,
            max_iter: 100,
            gtol: 1e-4,
            ftol: 64.0 * f64::EPSILON,
            max_linesearch: 20,
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn inf_norm(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Point {
    x: Vec<f64>,
    f: f64,
    g: Vec<f64>,
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;

/// An L-BFGS run between two iterations: the current point with its objective and
/// gradient, and the correction pairs. [`Lbfgs::minimize`] runs one to the end; a
/// data-parallel fit keeps one in its (checkpointed) state and advances it with
/// [`LbfgsRun::ask`] and [`LbfgsRun::tell`], one objective evaluation per round.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LbfgsRun {
    /// The start point, until its objective is known.
    start: Option<Vec<f64>>,
    cur: Option<Point>,
    s_hist: Vec<Vec<f64>>,
    y_hist: Vec<Vec<f64>>,
    rho_hist: Vec<f64>,
    iter: usize,
    /// Objective evaluations of the iteration under way (its line search), in order.
    pending: Vec<(f64, Vec<f64>)>,
}

/// What an [`LbfgsRun`] needs next.
#[derive(Debug, Clone)]
pub enum LbfgsAsk {
    /// The objective and gradient at this point.
    Evaluate(Vec<f64>),
    /// Nothing: it has stopped.
    Done(LbfgsResult),
}

impl LbfgsRun {
    /// A run from `x0`.
    pub fn new(x0: Vec<f64>) -> Self {
        Self {
            start: Some(x0),
            cur: None,
            s_hist: Vec::new(),
            y_hist: Vec::new(),
            rho_hist: Vec::new(),
            iter: 0,
            pending: Vec::new(),
        }
    }

    /// Iterations done.
    pub fn n_iter(&self) -> usize {
        self.iter
    }

    /// The objective and the largest gradient component at the current point, once known.
    pub fn current(&self) -> Option<(f64, f64)> {
        self.cur.as_ref().map(|p| (p.f, inf_norm(&p.g)))
    }

    /// The next point to evaluate, or the result. The iteration under way is replayed from
    /// its start with the evaluations told so far (the optimiser is deterministic), so the
    /// run is its serialised state alone.
    pub fn ask(&mut self, opt: &Lbfgs) -> Result<LbfgsAsk> {
        if let Some(x0) = &self.start {
            return Ok(LbfgsAsk::Evaluate(x0.clone()));
        }
        loop {
            let mut trial = self.clone();
            trial.pending.clear();
            let mut told = self.pending.iter();
            let mut wanted: Option<Vec<f64>> = None;
            let outcome = opt.iterate(
                &mut trial,
                &mut |x: &[f64], g: &mut [f64]| match told.next() {
                    Some((f, gt)) if gt.len() == g.len() => {
                        g.copy_from_slice(gt);
                        Ok(*f)
                    }
                    Some(_) => Err(ModelError::data("L-BFGS", "a gradient of the wrong length")),
                    None => {
                        wanted = Some(x.to_vec());
                        Err(ModelError::data("L-BFGS", "waiting for an evaluation"))
                    }
                },
            );
            if let Some(x) = wanted {
                return Ok(LbfgsAsk::Evaluate(x));
            }
            match outcome? {
                Some(t) => {
                    let cur = trial.cur.clone().expect("a started run has a point");
                    return Ok(LbfgsAsk::Done(opt.result(cur, trial.iter, t)));
                }
                None => *self = trial,
            }
        }
    }

    /// Drops the curvature pairs and the evaluations of the iteration under way: the run
    /// goes on from its current point with a steepest-descent step (a smaller state to
    /// keep, a different path).
    pub fn forget_history(&mut self) {
        self.s_hist.clear();
        self.y_hist.clear();
        self.rho_hist.clear();
        self.pending.clear();
    }

    /// The objective `f` and gradient `g` at the point [`LbfgsRun::ask`] gave.
    pub fn tell(&mut self, f: f64, g: Vec<f64>) {
        match self.start.take() {
            Some(x) => self.cur = Some(Point { x, f, g }),
            None => self.pending.push((f, g)),
        }
    }
}

impl Lbfgs {
    /// Minimises `fg`, which writes the gradient at `x` into its second argument and returns
    /// the objective.
    pub fn minimize<F>(&self, mut fg: F, x0: Vec<f64>) -> Result<LbfgsResult>
    where
        F: FnMut(&[f64], &mut [f64]) -> Result<f64>,
    {
        let mut g = vec![0.0; x0.len()];
        let f = fg(&x0, &mut g)?;
        let mut run = LbfgsRun::new(x0);
        run.tell(f, g);
        loop {
            if let Some(t) = self.iterate(&mut run, &mut fg)? {
                let cur = run.cur.expect("a started run has a point");
                return Ok(self.result(cur, run.iter, t));
            }
        }
    }

    /// One iteration of a started run: `Some` when the run stops before it, `None` after
    /// a step (or after forgetting stale curvature pairs when no step was found).
    fn iterate<F>(&self, run: &mut LbfgsRun, fg: &mut F) -> Result<Option<Termination>>
    where
        F: FnMut(&[f64], &mut [f64]) -> Result<f64>,
    {
        let cur = run.cur.as_ref().expect("a started run has a point");
        let gn = inf_norm(&cur.g);
        if gn <= self.gtol {
            return Ok(Some(Termination::Gradient));
        }
        if run.iter >= self.max_iter {
            return Ok(Some(Termination::MaxIter));
        }
        let (s_hist, y_hist, rho_hist) = (&mut run.s_hist, &mut run.y_hist, &mut run.rho_hist);
        let mut alpha = vec![0.0; self.memory];
        // Two-loop recursion: d = -H g.
        let mut d: Vec<f64> = cur.g.iter().map(|v| -v).collect();
        let k = s_hist.len();
        for i in (0..k).rev() {
            alpha[i] = rho_hist[i] * dot(&s_hist[i], &d);
            for (dj, yj) in d.iter_mut().zip(&y_hist[i]) {
                *dj -= alpha[i] * yj;
            }
        }
        if k > 0 {
            let gamma = dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1]);
            d.iter_mut().for_each(|v| *v *= gamma);
        }
        for i in 0..k {
            let beta = rho_hist[i] * dot(&y_hist[i], &d);
            for (dj, sj) in d.iter_mut().zip(&s_hist[i]) {
                *dj += (alpha[i] - beta) * sj;
            }
        }
        let mut dphi0 = dot(&cur.g, &d);
        if dphi0 >= 0.0 {
            // Not a descent direction (can happen with noisy curvature): restart.
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            d = cur.g.iter().map(|v| -v).collect();
            dphi0 = dot(&cur.g, &d);
        }
        let step0 = if s_hist.is_empty() {
            (1.0 / dot(&d, &d).sqrt()).min(1.0)
        } else {
            1.0
        };
        let Some(next) = self.line_search(fg, cur, &d, dphi0, step0)? else {
            if s_hist.is_empty() {
                return Ok(Some(Termination::LineSearch));
            }
            // Stale curvature pairs can give a direction almost orthogonal to the
            // gradient; forget them and try steepest descent before giving up.
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            return Ok(None);
        };
        run.iter += 1;
        let s: Vec<f64> = next.x.iter().zip(&cur.x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next.g.iter().zip(&cur.g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > f64::EPSILON * dot(&y, &y) {
            if s_hist.len() == self.memory {
                s_hist.remove(0);
                y_hist.remove(0);
                rho_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
            rho_hist.push(1.0 / sy);
        }
        let rel = (cur.f - next.f) / cur.f.abs().max(next.f.abs()).max(1.0);
        run.cur = Some(next);
        if rel <= self.ftol {
            let cur = run.cur.as_ref().expect("just set");
            return Ok(Some(if inf_norm(&cur.g) <= self.gtol {
                Termination::Gradient
            } else {
                Termination::Objective
            }));
        }
        Ok(None)
    }

    fn result(&self, p: Point, n_iter: usize, termination: Termination) -> LbfgsResult {
        LbfgsResult {
            gnorm_inf: inf_norm(&p.g),
            x: p.x,
            f: p.f,
            n_iter,
            termination,
        }
    }

    /// Strong-Wolfe line search (Nocedal & Wright, algorithms 3.5 and 3.6) with cubic
    /// interpolation. Returns `None` when no acceptable lower point is found.
    fn line_search<F>(
        &self,
        fg: &mut F,
        cur: &Point,
        d: &[f64],
        dphi0: f64,
        step0: f64,
    ) -> Result<Option<Point>>
    where
        F: FnMut(&[f64], &mut [f64]) -> Result<f64>,
    {
        let mut evals = 0usize;
        let mut eval = |a: f64, evals: &mut usize| -> Result<(Point, f64)> {
            *evals += 1;
            let x: Vec<f64> = cur.x.iter().zip(d).map(|(xi, di)| xi + a * di).collect();
            let mut g = vec![0.0; x.len()];
            let f = fg(&x, &mut g)?;
            let dphi = dot(&g, d);
            Ok((Point { x, f, g }, dphi))
        };
        // (step, f, dphi) of the previous trial; step 0 is the current point.
        let (mut a_prev, mut f_prev, mut dphi_prev) = (0.0, cur.f, dphi0);
        let mut a = step0;
        let mut best: Option<Point> = None;
        while evals < self.max_linesearch {
            let (p, dphi) = eval(a, &mut evals)?;
            if !p.f.is_finite() {
                a = 0.5 * (a_prev + a);
                continue;
            }
            if p.f > cur.f + C1 * a * dphi0 || (a_prev > 0.0 && p.f >= f_prev) {
                return self.zoom(
                    &mut eval,
                    &mut evals,
                    cur,
                    dphi0,
                    (a_prev, f_prev, dphi_prev),
                    (a, p.f, dphi),
                    best,
                );
            }
            if dphi.abs() <= -C2 * dphi0 {
                return Ok(Some(p));
            }
            if dphi >= 0.0 {
                let (pf, pa) = (p.f, a);
                let keep = Some(p);
                return self.zoom(
                    &mut eval,
                    &mut evals,
                    cur,
                    dphi0,
                    (pa, pf, dphi),
                    (a_prev, f_prev, dphi_prev),
                    keep,
                );
            }
            a_prev = a;
            f_prev = p.f;
            dphi_prev = dphi;
            best = Some(p);
            a *= 2.0;
        }
        Ok(best.filter(|p| p.f < cur.f))
    }

    #[allow(clippy::too_many_arguments)]
    fn zoom<E>(
        &self,
        eval: &mut E,
        evals: &mut usize,
        cur: &Point,
        dphi0: f64,
        lo: (f64, f64, f64),
        hi: (f64, f64, f64),
        mut best_lo: Option<Point>,
    ) -> Result<Option<Point>>
    where
        E: FnMut(f64, &mut usize) -> Result<(Point, f64)>,
    {
        let (mut lo, mut hi) = (lo, hi);
        while *evals < self.max_linesearch {
            let a = interpolate(lo, hi);
            let (p, dphi) = eval(a, evals)?;
            if !p.f.is_finite() || p.f > cur.f + C1 * a * dphi0 || p.f >= lo.1 {
                hi = (a, p.f, dphi);
            } else {
                if dphi.abs() <= -C2 * dphi0 {
                    return Ok(Some(p));
                }
                if dphi * (hi.0 - lo.0) >= 0.0 {
                    hi = lo;
                }
                lo = (a, p.f, dphi);
                best_lo = Some(p);
            }
            if (hi.0 - lo.0).abs() <= 1e-12 * lo.0.abs().max(1e-20) {
                break;
            }
        }
        // Out of evaluations: accept the lowest sufficient-decrease point if there is one.
        Ok(best_lo.filter(|p| p.f < cur.f))
    }
}

/// Minimiser of the cubic through two points with slopes, kept well inside the bracket.
fn interpolate(lo: (f64, f64, f64), hi: (f64, f64, f64)) -> f64 {
    let (a0, f0, g0) = lo;
    let (a1, f1, g1) = hi;
    let d1 = g0 + g1 - 3.0 * (f0 - f1) / (a0 - a1);
    let disc = d1 * d1 - g0 * g1;
    let (left, right) = if a0 < a1 { (a0, a1) } else { (a1, a0) };
    let width = right - left;
    let mid = 0.5 * (left + right);
    if disc < 0.0 || !disc.is_finite() {
        return mid;
    }
    let d2 = (a1 - a0).signum() * disc.sqrt();
    let a = a1 - (a1 - a0) * (g1 + d2 - d1) / (g1 - g0 + 2.0 * d2);
    if !a.is_finite() {
        return mid;
    }
    a.clamp(left + 0.1 * width, right - 0.1 * width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64], g: &mut [f64]) -> Result<f64> {
        let (a, b) = (x[0], x[1]);
        g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
        g[1] = 200.0 * (b - a * a);
        Ok((1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2))
    }

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let opt = Lbfgs {
            max_iter: 500,
            gtol: 1e-10,
            ..Lbfgs::default()
        };
        let r = opt.minimize(rosenbrock, vec![-1.2, 1.0]).unwrap();
        assert!(r.converged(), "{r:?}");
        assert!(
            (r.x[0] - 1.0).abs() < 1e-6 && (r.x[1] - 1.0).abs() < 1e-6,
            "{r:?}"
        );
    }

    #[test]
    fn solves_a_quadratic_exactly() {
        // f(x) = 0.5 xᵀ A x - bᵀ x with A = diag(1, 10, 100): minimum at x = b / diag(A).
        let diag = [1.0, 10.0, 100.0];
        let b = [1.0, 2.0, 3.0];
        let f = |x: &[f64], g: &mut [f64]| -> Result<f64> {
            let mut v = 0.0;
            for i in 0..3 {
                g[i] = diag[i] * x[i] - b[i];
                v += 0.5 * diag[i] * x[i] * x[i] - b[i] * x[i];
            }
            Ok(v)
        };
        let opt = Lbfgs {
            gtol: 1e-12,
            ..Lbfgs::default()
        };
        let r = opt.minimize(f, vec![0.0; 3]).unwrap();
        for i in 0..3 {
            // ftol (relative decrease 64 eps) ends the run near 1e-10 here.
            approx::assert_abs_diff_eq!(r.x[i], b[i] / diag[i], epsilon = 1e-8);
        }
    }

    #[test]
    fn respects_the_iteration_budget() {
        let opt = Lbfgs {
            max_iter: 3,
            gtol: 0.0,
            ..Lbfgs::default()
        };
        let r = opt.minimize(rosenbrock, vec![-1.2, 1.0]).unwrap();
        assert_eq!(r.n_iter, 3);
        assert_eq!(r.termination, Termination::MaxIter);
    }
}

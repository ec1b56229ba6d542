//! Stochastic gradient descent: scikit-learn's `SGDClassifier` and `SGDRegressor`.
//!
//! The per-sample loop is scikit-learn's plain SGD: for each row (shuffled each epoch) the
//! prediction, the learning rate of the schedule (`optimal`, `invscaling`, `constant`,
//! `adaptive`), the loss and the penalised objective for the stopping rule, the L2 part of
//! the penalty as a scaling of the weights, the gradient step, the running average
//! (`average`), then the L1 part as a truncated gradient (Tsuruoka et al., cumulative
//! penalty). A classifier fits one binary problem per class (one versus rest; one problem
//! for two classes), each stopping on its own when its objective has not improved by `tol`
//! for `n_iter_no_change` epochs.
//!
//! **Epochs over chunks.** An epoch is a pass ([`SgdEpoch`]): each block of rows runs the
//! loop from the epoch's starting model ([`SgdStart`]) and returns its end model weighted
//! by its rows; the next start is the rows-weighted mean (iterative parameter mixing,
//! McDonald, Hall and Mann 2010), and the schedule's counter advances by the mean rows of a
//! block. A block shuffles its rows with a seed drawn from the epoch and its own contents,
//! so the fit does not depend on which worker runs which chunk. An in-memory fit is the same
//! with all rows as one block: scikit-learn's algorithm exactly, up to the order of the
//! shuffle.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::rng::Rng;
use crate::traits::{
    check_input, parse_bool, parse_value, unknown_param, Checked, ClassMap, Classifier, Fit, Model,
    Params,
};

/// The loss SGD minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SgdLoss {
    /// Linear SVM (classifier).
    Hinge,
    /// Logistic regression (classifier; probabilities).
    LogLoss,
    /// Smoothed hinge (classifier; probabilities).
    ModifiedHuber,
    /// Ordinary least squares (regressor).
    SquaredError,
    /// Huber's loss, quadratic within `epsilon` (regressor).
    Huber,
}

impl SgdLoss {
    fn name(self) -> &'static str {
        match self {
            SgdLoss::Hinge => "hinge",
            SgdLoss::LogLoss => "log_loss",
            SgdLoss::ModifiedHuber => "modified_huber",
            SgdLoss::SquaredError => "squared_error",
            SgdLoss::Huber => "huber",
        }
    }

    fn is_classification(self) -> bool {
        matches!(
            self,
            SgdLoss::Hinge | SgdLoss::LogLoss | SgdLoss::ModifiedHuber
        )
    }

    /// The loss and its derivative in the prediction `p`, for target `y` (±1 for hinge
    /// and modified Huber, 0/1 for the log loss, the value for a regressor).
    fn eval(self, y: f64, p: f64, epsilon: f64) -> (f64, f64) {
        match self {
            SgdLoss::Hinge => {
                let z = p * y;
                if z <= 1.0 {
                    (1.0 - z, -y)
                } else {
                    (0.0, 0.0)
                }
            }
            SgdLoss::ModifiedHuber => {
                let z = p * y;
                if z >= 1.0 {
                    (0.0, 0.0)
                } else if z >= -1.0 {
                    ((1.0 - z) * (1.0 - z), -2.0 * (1.0 - z) * y)
                } else {
                    (-4.0 * z, -4.0 * y)
                }
            }
            SgdLoss::LogLoss => {
                // log(1 + exp(p)) - y p, and its derivative sigmoid(p) - y, stably.
                let softplus = if p > 0.0 {
                    p + (-p).exp().ln_1p()
                } else {
                    p.exp().ln_1p()
                };
                let s = if p >= 0.0 {
                    1.0 / (1.0 + (-p).exp())
                } else {
                    let e = p.exp();
                    e / (1.0 + e)
                };
                (softplus - y * p, s - y)
            }
            SgdLoss::SquaredError => {
                let r = p - y;
                (0.5 * r * r, r)
            }
            SgdLoss::Huber => {
                let r = p - y;
                if r.abs() <= epsilon {
                    (0.5 * r * r, r)
                } else {
                    (epsilon * (r.abs() - 0.5 * epsilon), epsilon * r.signum())
                }
            }
        }
    }
}

/// The penalty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SgdPenalty {
    /// `alpha/2 ||w||²`.
    L2,
    /// `alpha ||w||₁`.
    L1,
    /// `alpha (l1_ratio ||w||₁ + (1 - l1_ratio)/2 ||w||²)`.
    Elasticnet,
    /// None.
    None,
}

/// How the step size changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LearningRate {
    /// `eta0`.
    Constant,
    /// `1 / (alpha (t0 + t))`, Bottou's heuristic for `t0`.
    Optimal,
    /// `eta0 / t^power_t`.
    Invscaling,
    /// `eta0`, divided by 5 each time the objective stalls for `n_iter_no_change` epochs.
    Adaptive,
}

/// Hyperparameters shared by the SGD classifier and regressor (scikit-learn's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SgdParams {
    /// The loss.
    pub loss: SgdLoss,
    /// The penalty. Default l2.
    pub penalty: SgdPenalty,
    /// Penalty strength (and the `optimal` schedule's scale). Default 1e-4.
    pub alpha: f64,
    /// The L1 share of the elastic net. Default 0.15.
    pub l1_ratio: f64,
    /// Fit an intercept. Default true.
    pub fit_intercept: bool,
    /// Epochs at most. Default 1000.
    pub max_iter: usize,
    /// Stop when the epoch's mean objective has not dropped below the best minus `tol`
    /// for `n_iter_no_change` epochs; `None` runs `max_iter` epochs. Default 1e-3.
    pub tol: Option<f64>,
    /// Shuffle the rows each epoch. Default true.
    pub shuffle: bool,
    /// Huber's threshold. Default 0.1.
    pub epsilon: f64,
    /// Seed of the shuffles.
    #[serde(default)]
    pub random_state: Option<u64>,
    /// The schedule.
    pub learning_rate: LearningRate,
    /// The first step size (all schedules but `optimal`). Default 0.01.
    pub eta0: f64,
    /// The `invscaling` exponent.
    pub power_t: f64,
    /// Epochs without improvement before stopping. Default 5.
    pub n_iter_no_change: usize,
    /// Averaged SGD: 0 is off, 1 averages every step, `n` averages from the `n`-th row
    /// seen on (scikit-learn's `average=True` or an integer). Default 0.
    pub average: u64,
}

impl SgdParams {
    fn classifier() -> Self {
        Self {
            loss: SgdLoss::Hinge,
            penalty: SgdPenalty::L2,
            alpha: 1e-4,
            l1_ratio: 0.15,
            fit_intercept: true,
            max_iter: 1000,
            tol: Some(1e-3),
            shuffle: true,
            epsilon: 0.1,
            random_state: None,
            learning_rate: LearningRate::Optimal,
            eta0: 0.01,
            power_t: 0.5,
            n_iter_no_change: 5,
            average: 0,
        }
    }

    fn regressor() -> Self {
        Self {
            loss: SgdLoss::SquaredError,
            learning_rate: LearningRate::Invscaling,
            power_t: 0.25,
            ..Self::classifier()
        }
    }

    const PARAM_NAMES: &'static [&'static str] = &[
        "loss",
        "penalty",
        "alpha",
        "l1_ratio",
        "fit_intercept",
        "max_iter",
        "tol",
        "shuffle",
        "epsilon",
        "random_state",
        "learning_rate",
        "eta0",
        "power_t",
        "n_iter_no_change",
        "average",
    ];

    fn validate(&self, name: &'static str, classifier: bool) -> Result<()> {
        let bad = |k: &str, m: String| Err(ModelError::param(name, k, m));
        if self.loss.is_classification() != classifier {
            return bad(
                "loss",
                format!(
                    "'{}' is a {} loss; {name} takes {}",
                    self.loss.name(),
                    if classifier {
                        "regression"
                    } else {
                        "classification"
                    },
                    if classifier {
                        "hinge, log_loss or modified_huber"
                    } else {
                        "squared_error or huber"
                    }
                ),
            );
        }
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return bad(
                "alpha",
                format!("must be a finite number >= 0, got {}", self.alpha),
            );
        }
        if self.learning_rate == LearningRate::Optimal && self.alpha == 0.0 {
            return bad(
                "alpha",
                "must be > 0 with learning_rate='optimal' (the schedule divides by it)".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.l1_ratio) {
            return bad(
                "l1_ratio",
                format!("must be in [0, 1], got {}", self.l1_ratio),
            );
        }
        if self.max_iter == 0 {
            return bad("max_iter", "must be >= 1".into());
        }
        if self.tol.is_some_and(|t| !t.is_finite()) {
            return bad("tol", "must be a finite number or None".into());
        }
        if !(self.epsilon >= 0.0 && self.epsilon.is_finite()) {
            return bad("epsilon", "must be a finite number >= 0".into());
        }
        if self.learning_rate != LearningRate::Optimal
            && !(self.eta0 > 0.0 && self.eta0.is_finite())
        {
            return bad(
                "eta0",
                format!("must be > 0 with this learning_rate, got {}", self.eta0),
            );
        }
        if !self.power_t.is_finite() {
            return bad("power_t", "must be a finite number".into());
        }
        if self.n_iter_no_change == 0 {
            return bad("n_iter_no_change", "must be >= 1".into());
        }
        Ok(())
    }

    fn set(&mut self, name: &'static str, key: &str, value: &str) -> Result<bool> {
        let v = value.trim();
        let pick = |options: &[&str]| -> Result<usize> {
            options.iter().position(|o| *o == v).ok_or_else(|| {
                ModelError::param(
                    name,
                    key,
                    format!("'{v}' is not one of {}", options.join(", ")),
                )
            })
        };
        match key {
            "loss" => {
                self.loss = [
                    SgdLoss::Hinge,
                    SgdLoss::LogLoss,
                    SgdLoss::ModifiedHuber,
                    SgdLoss::SquaredError,
                    SgdLoss::Huber,
                ][pick(&[
                    "hinge",
                    "log_loss",
                    "modified_huber",
                    "squared_error",
                    "huber",
                ])?]
            }
            "penalty" => {
                self.penalty = match v {
                    "None" | "none" | "null" => SgdPenalty::None,
                    _ => [SgdPenalty::L2, SgdPenalty::L1, SgdPenalty::Elasticnet]
                        [pick(&["l2", "l1", "elasticnet"])?],
                }
            }
            "learning_rate" => {
                self.learning_rate = [
                    LearningRate::Constant,
                    LearningRate::Optimal,
                    LearningRate::Invscaling,
                    LearningRate::Adaptive,
                ][pick(&["constant", "optimal", "invscaling", "adaptive"])?]
            }
            "alpha" => self.alpha = parse_value(name, key, v, "a number")?,
            "l1_ratio" => self.l1_ratio = parse_value(name, key, v, "a number")?,
            "fit_intercept" => self.fit_intercept = parse_bool(name, key, v)?,
            "max_iter" => self.max_iter = parse_value(name, key, v, "a positive integer")?,
            "tol" => {
                self.tol = match v {
                    "None" | "none" | "null" => None,
                    _ => Some(parse_value(name, key, v, "a number or None")?),
                }
            }
            "shuffle" => self.shuffle = parse_bool(name, key, v)?,
            "epsilon" => self.epsilon = parse_value(name, key, v, "a number")?,
            "random_state" => {
                self.random_state = match v {
                    "None" | "none" | "null" => None,
                    _ => Some(parse_value(name, key, v, "a non-negative integer")?),
                }
            }
            "eta0" => self.eta0 = parse_value(name, key, v, "a number")?,
            "power_t" => self.power_t = parse_value(name, key, v, "a number")?,
            "n_iter_no_change" => {
                self.n_iter_no_change = parse_value(name, key, v, "a positive integer")?
            }
            "average" => {
                self.average = match v {
                    "true" | "True" => 1,
                    "false" | "False" => 0,
                    _ => parse_value(name, key, v, "true, false or a positive integer")?,
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// L1 share of the penalty as the loop uses it (0 for l2, 1 for l1).
    fn l1(&self) -> f64 {
        match self.penalty {
            SgdPenalty::L2 | SgdPenalty::None => 0.0,
            SgdPenalty::L1 => 1.0,
            SgdPenalty::Elasticnet => self.l1_ratio,
        }
    }

    /// Bottou's `t0` of the `optimal` schedule: the first step is `typw / max(1, -dloss)`.
    fn optimal_init(&self) -> f64 {
        let typw = (1.0 / self.alpha.sqrt()).sqrt();
        let (_, g) = self.loss.eval(1.0, -typw, self.epsilon);
        let eta0 = typw / g.max(1.0);
        1.0 / (eta0 * self.alpha)
    }
}

macro_rules! sgd_params {
    ($t:ident, $name:literal, $alias:literal, $desc:literal, $defaults:ident, $classifier:literal) => {
        #[doc = concat!("Hyperparameters of scikit-learn's `", $alias, "`.")]
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $t(pub SgdParams);

        impl Default for $t {
            fn default() -> Self {
                Self(SgdParams::$defaults())
            }
        }

        impl Params for $t {
            const NAME: &'static str = $name;
            const ALIASES: &'static [&'static str] = &[$alias];
            const DESCRIPTION: &'static str = $desc;
            const PARAM_NAMES: &'static [&'static str] = SgdParams::PARAM_NAMES;

            fn validate(&self) -> Result<()> {
                self.0.validate(Self::NAME, $classifier)
            }

            fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
                if self.0.set(Self::NAME, key, value)? {
                    Ok(())
                } else {
                    Err(unknown_param::<Self>(key))
                }
            }

            fn seed_unset(&mut self, seed: u64) {
                self.0.random_state.get_or_insert(seed);
            }
        }

        impl std::ops::Deref for $t {
            type Target = SgdParams;
            fn deref(&self) -> &SgdParams {
                &self.0
            }
        }
    };
}

sgd_params!(
    SgdClassifierParams,
    "sgd_classifier",
    "SGDClassifier",
    "linear classifier by stochastic gradient descent (hinge, log_loss, modified_huber)",
    classifier,
    true
);
sgd_params!(
    SgdRegressorParams,
    "sgd_regressor",
    "SGDRegressor",
    "linear regressor by stochastic gradient descent (squared_error, huber)",
    regressor,
    false
);

/// What SGD carries from one epoch to the next, for `k` problems of `d` features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgdModel {
    /// Weights, `k x d`.
    pub w: Vec<f64>,
    /// Intercepts.
    pub b: Vec<f64>,
    /// The averaged weights and intercepts (with `average`).
    pub avg_w: Vec<f64>,
    /// See `avg_w`.
    pub avg_b: Vec<f64>,
    /// The L1 penalty applied so far to each weight, and (per problem) the total it could
    /// have been.
    pub q: Vec<f64>,
    /// See `q`.
    pub u: Vec<f64>,
}

impl SgdModel {
    fn zeros(k: usize, d: usize) -> Self {
        Self {
            w: vec![0.0; k * d],
            b: vec![0.0; k],
            avg_w: vec![0.0; k * d],
            avg_b: vec![0.0; k],
            q: vec![0.0; k * d],
            u: vec![0.0; k],
        }
    }

    fn with_capacity(k: usize, d: usize) -> Self {
        Self {
            w: Vec::with_capacity(k * d),
            b: Vec::with_capacity(k),
            avg_w: Vec::with_capacity(k * d),
            avg_b: Vec::with_capacity(k),
            q: Vec::with_capacity(k * d),
            u: Vec::with_capacity(k),
        }
    }

    /// Whether every part is of `k` problems of `d` features (a model may come from
    /// another node).
    fn is(&self, k: usize, d: usize) -> bool {
        [self.w.len(), self.avg_w.len(), self.q.len()] == [k * d; 3]
            && [self.b.len(), self.avg_b.len(), self.u.len()] == [k; 3]
    }

    /// Every part, for element-wise sums.
    fn parts_mut(&mut self) -> [&mut Vec<f64>; 6] {
        [
            &mut self.w,
            &mut self.b,
            &mut self.avg_w,
            &mut self.avg_b,
            &mut self.q,
            &mut self.u,
        ]
    }

    fn parts(&self) -> [&Vec<f64>; 6] {
        [&self.w, &self.b, &self.avg_w, &self.avg_b, &self.q, &self.u]
    }
}

/// The model at the start of an epoch, and the state of the stopping rule: plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgdStart {
    /// Problems (1 for a regressor or two classes, else one per class).
    pub k: usize,
    /// Features.
    pub d: usize,
    /// The model.
    pub model: SgdModel,
    /// The schedule's counter (rows seen, from 1).
    pub t: f64,
    /// Each problem's current step size (`adaptive`).
    pub eta: Vec<f64>,
    /// Problems still learning.
    pub active: Vec<bool>,
}

/// A block's epoch: its end model times its rows, and its objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgdPart {
    /// Rows.
    pub rows: u64,
    /// Blocks merged.
    pub blocks: u64,
    /// The end model, every number times the rows.
    pub model: SgdModel,
    /// Each problem's summed objective (loss plus penalty) over the rows.
    pub objective: Vec<f64>,
}

impl SgdPart {
    /// Adds another block's epoch.
    pub fn merge(&mut self, o: &SgdPart) -> Result<()> {
        let k = self.objective.len();
        let d = self.model.w.len() / k.max(1);
        if o.objective.len() != k || !self.model.is(k, d) || !o.model.is(k, d) {
            return Err(ModelError::Shape("SGD partials of other shapes".into()));
        }
        self.rows += o.rows;
        self.blocks += o.blocks;
        for (a, b) in self.model.parts_mut().into_iter().zip(o.model.parts()) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.objective
            .iter_mut()
            .zip(&o.objective)
            .for_each(|(x, y)| *x += y);
        Ok(())
    }
}

/// What one epoch pass computes: the start, the parameters, how targets map to problems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgdEpoch {
    /// The parameters.
    pub params: SgdParams,
    /// The start.
    pub start: SgdStart,
    /// The classes (a classifier), whose present ones are the problems.
    pub classes: Option<ClassMap>,
    /// The epoch (from 0), for the shuffle's seed.
    pub epoch: u64,
    /// The fit's seed.
    pub seed: u64,
}

/// A hash of a block's first row and size, so that its shuffle does not depend on who
/// runs it.
fn block_seed(x: &Matrix, seed: u64, epoch: u64) -> u64 {
    let d = x.cols().max(1);
    let mut h = Rng::derive(seed, epoch).next_u64() ^ (x.rows() as u64);
    if let Some(row) = x.data().chunks_exact(d).next() {
        for v in row {
            h = Rng::derive(h, u64::from(v.to_bits())).next_u64();
        }
    }
    h
}

impl SgdEpoch {
    /// Runs the epoch on a block of rows with its targets (class ids or values).
    pub fn run(&self, x: &Matrix, y: &Target<'_>) -> Result<SgdPart> {
        let p = &self.params;
        let s = &self.start;
        let (k, d, n) = (s.k, s.d, x.rows());
        if x.cols() != d
            || !s.model.is(k, d)
            || s.eta.len() != k
            || s.active.len() != k
            || match &self.classes {
                // The problems are the classes' (one for two), each present class a class
                // of the data: a pass comes over the network.
                Some(m) => {
                    k != (if m.present.len() > 2 {
                        m.present.len()
                    } else {
                        1
                    }) || m.present.len() < 2
                        || m.present.iter().any(|&c| c as usize >= m.n_classes)
                }
                None => k != 1,
            }
        {
            return Err(ModelError::Shape(format!(
                "an SGD epoch for {k} problems of {d} features, on {} columns",
                x.cols()
            )));
        }
        // Each problem's target for every row.
        let log = p.loss == SgdLoss::LogLoss;
        let targets: Vec<f64> = match (y, &self.classes) {
            (Target::Values(v), None) => v.iter().map(|&t| f64::from(t)).collect(),
            (Target::Classes(ids), Some(map)) => {
                let local = map.encode(ids);
                if local.contains(&u32::MAX) {
                    return Err(ModelError::data(
                        "training data",
                        "a block holds a class absent from the class counts",
                    ));
                }
                let mut t = Vec::with_capacity(n * k);
                for &c in &local {
                    for j in 0..k {
                        // Two classes: one problem, the second class positive.
                        let pos = if k == 1 { c == 1 } else { c as usize == j };
                        t.push(match (pos, log) {
                            (true, _) => 1.0,
                            (false, true) => 0.0,
                            (false, false) => -1.0,
                        });
                    }
                }
                t
            }
            _ => return Err(ModelError::data("SGD", "targets of the other kind")),
        };
        let kt = if self.classes.is_some() { k } else { 1 };
        let mut order: Vec<usize> = (0..n).collect();
        if p.shuffle {
            Rng::seed_from_u64(block_seed(x, self.seed, self.epoch)).shuffle(&mut order);
        }
        let l1 = p.l1();
        let optimal_init = if p.learning_rate == LearningRate::Optimal {
            p.optimal_init()
        } else {
            0.0
        };
        let xd = x.data();
        let mut out = SgdPart {
            rows: n as u64,
            // A block left empty by a fold's filter does not slow the schedule.
            blocks: u64::from(n > 0),
            model: SgdModel::with_capacity(k, d),
            objective: vec![0.0; k],
        };
        for j in 0..k {
            let m = &s.model;
            let mut w = m.w[j * d..(j + 1) * d].to_vec();
            let mut b = m.b[j];
            let mut avg_w = m.avg_w[j * d..(j + 1) * d].to_vec();
            let mut avg_b = m.avg_b[j];
            let mut q = m.q[j * d..(j + 1) * d].to_vec();
            let mut u = m.u[j];
            let mut t = s.t;
            if s.active[j] {
                let mut wscale = 1.0f64;
                // ||w_data||², kept up to date.
                let mut sq: f64 = w.iter().map(|v| v * v).sum();
                let mut obj = 0.0;
                for &i in &order {
                    let row = &xd[i * d..(i + 1) * d];
                    let yi = targets[i * kt + if kt == 1 { 0 } else { j }];
                    let mut dot: f64 = w.iter().zip(row).map(|(a, &v)| a * f64::from(v)).sum();
                    let pred = wscale * dot + b;
                    let eta = match p.learning_rate {
                        LearningRate::Optimal => 1.0 / (p.alpha * (optimal_init + t - 1.0)),
                        LearningRate::Invscaling => p.eta0 / t.powf(p.power_t),
                        _ => s.eta[j],
                    };
                    let (loss, dloss) = p.loss.eval(yi, pred, p.epsilon);
                    obj += loss;
                    if p.penalty != SgdPenalty::None {
                        let l1norm = if l1 > 0.0 {
                            wscale.abs() * w.iter().map(|v| v.abs()).sum::<f64>()
                        } else {
                            0.0
                        };
                        obj += p.alpha * ((1.0 - l1) * 0.5 * wscale * wscale * sq + l1 * l1norm);
                    }
                    let update = -eta * dloss.clamp(-1e12, 1e12);
                    if matches!(p.penalty, SgdPenalty::L2 | SgdPenalty::Elasticnet) {
                        wscale *= (1.0 - (1.0 - l1) * eta * p.alpha).max(0.0);
                        if wscale < 1e-9 {
                            w.iter_mut().for_each(|v| *v *= wscale);
                            sq *= wscale * wscale;
                            // w_data changed scale: so did its product with the row.
                            dot *= wscale;
                            wscale = 1.0;
                        }
                    }
                    if update != 0.0 {
                        let c = update / wscale;
                        let mut xx = 0.0;
                        for (a, &v) in w.iter_mut().zip(row) {
                            let v = f64::from(v);
                            *a += c * v;
                            xx += v * v;
                        }
                        sq += 2.0 * c * dot + c * c * xx;
                        if p.fit_intercept {
                            b += update;
                        }
                    }
                    if p.average > 0 && p.average as f64 <= t {
                        let m = t - p.average as f64 + 1.0;
                        for (a, v) in avg_w.iter_mut().zip(&w) {
                            *a += (wscale * v - *a) / m;
                        }
                        avg_b += (b - avg_b) / m;
                    }
                    if l1 > 0.0 {
                        u += l1 * eta * p.alpha;
                        for (a, qa) in w.iter_mut().zip(q.iter_mut()) {
                            let z = *a;
                            if wscale * z > 0.0 {
                                *a = (*a - (u + *qa) / wscale).max(0.0);
                            } else if wscale * z < 0.0 {
                                *a = (*a + (u - *qa) / wscale).min(0.0);
                            }
                            *qa += wscale * (*a - z);
                        }
                        sq = w.iter().map(|v| v * v).sum();
                    }
                    t += 1.0;
                }
                w.iter_mut().for_each(|v| *v *= wscale);
                if !b.is_finite() || w.iter().any(|v| !v.is_finite()) {
                    return Err(ModelError::data(
                        "training data",
                        format!(
                            "floating-point overflow in SGD at epoch {}; scaling the input \
                             (standard_scaler) might help",
                            self.epoch + 1
                        ),
                    ));
                }
                out.objective[j] = obj;
            }
            let r = n as f64;
            let o = &mut out.model;
            o.w.extend(w.iter().map(|v| v * r));
            o.b.push(b * r);
            o.avg_w.extend(avg_w.iter().map(|v| v * r));
            o.avg_b.push(avg_b * r);
            o.q.extend(q.iter().map(|v| v * r));
            o.u.push(u * r);
        }
        Ok(out)
    }
}

/// A block's targets.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Class ids (a classifier).
    Classes(&'a [u32]),
    /// Values (a regressor).
    Values(&'a [f32]),
}

/// An SGD fit between epochs: plain data (a data-parallel driver checkpoints it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SgdFit {
    params: SgdParams,
    classes: Option<ClassMap>,
    start: SgdStart,
    epoch: u64,
    seed: u64,
    best: Vec<f64>,
    no_change: Vec<usize>,
    /// Epochs each problem ran.
    n_iter: Vec<usize>,
    done: bool,
    warned: bool,
}

impl SgdFit {
    /// A fit of `d` features; `classes` for a classifier.
    pub fn new(params: &SgdParams, d: usize, classes: Option<ClassMap>) -> Self {
        let k = match &classes {
            Some(m) if m.present.len() > 2 => m.present.len(),
            _ => 1,
        };
        Self {
            start: SgdStart {
                k,
                d,
                model: SgdModel::zeros(k, d),
                t: 1.0,
                eta: vec![params.eta0; k],
                active: vec![true; k],
            },
            params: params.clone(),
            classes,
            epoch: 0,
            seed: params.random_state.unwrap_or(0),
            best: vec![f64::INFINITY; k],
            no_change: vec![0; k],
            n_iter: vec![0; k],
            done: false,
            warned: false,
        }
    }

    /// Epochs run so far.
    pub fn epochs(&self) -> u64 {
        self.epoch
    }

    /// The next epoch, or `None` when the fit is done.
    pub fn ask(&self) -> Option<SgdEpoch> {
        (!self.done).then(|| SgdEpoch {
            params: self.params.clone(),
            start: self.start.clone(),
            classes: self.classes.clone(),
            epoch: self.epoch,
            seed: self.seed,
        })
    }

    /// The epoch's merged result; returns the mean objective of the problems still
    /// learning.
    pub fn tell(&mut self, part: SgdPart) -> Result<f64> {
        let s = &mut self.start;
        let (k, d) = (s.k, s.d);
        if self.done || part.rows == 0 || !part.model.is(k, d) || part.objective.len() != k {
            return Err(ModelError::data("SGD", "a partial result of another pass"));
        }
        // The rows-weighted mean of the blocks' models.
        let r = part.rows as f64;
        s.model = part.model;
        for v in s.model.parts_mut() {
            v.iter_mut().for_each(|x| *x /= r);
        }
        s.t += r / part.blocks.max(1) as f64;
        let mut shown = Vec::new();
        for j in 0..k {
            if !s.active[j] {
                continue;
            }
            self.n_iter[j] += 1;
            let obj = part.objective[j] / r;
            shown.push(obj);
            if let Some(tol) = self.params.tol {
                if obj > self.best[j] - tol {
                    self.no_change[j] += 1;
                } else {
                    self.no_change[j] = 0;
                }
            }
            if obj < self.best[j] {
                self.best[j] = obj;
            }
            if self.no_change[j] >= self.params.n_iter_no_change {
                if self.params.learning_rate == LearningRate::Adaptive && s.eta[j] > 1e-6 {
                    s.eta[j] /= 5.0;
                    self.no_change[j] = 0;
                } else {
                    s.active[j] = false;
                }
            }
        }
        self.epoch += 1;
        if self.epoch as usize >= self.params.max_iter {
            if s.active.iter().any(|&a| a) && self.params.tol.is_some() {
                self.warned = true;
            }
            s.active.iter_mut().for_each(|a| *a = false);
        }
        self.done = !s.active.iter().any(|&a| a);
        Ok(shown.iter().sum::<f64>() / shown.len().max(1) as f64)
    }

    /// The model, once [`SgdFit::ask`] says the fit is done; the warning when it stopped at
    /// `max_iter`.
    pub fn model(&self) -> (FittedSgd, Option<String>) {
        let s = &self.start;
        let averaged = self.params.average > 0 && self.params.average as f64 <= s.t - 1.0;
        let (coef, intercept) = if averaged {
            (s.model.avg_w.clone(), s.model.avg_b.clone())
        } else {
            (s.model.w.clone(), s.model.b.clone())
        };
        let name = if self.classes.is_some() {
            "SGDClassifier"
        } else {
            "SGDRegressor"
        };
        (
            FittedSgd {
                coef,
                intercept,
                n_features: s.d,
                loss: self.params.loss,
                classes: self.classes.clone(),
                n_iter: self.n_iter.iter().copied().max().unwrap_or(0),
            },
            self.warned.then(|| {
                format!(
                    "{name}: maximum number of iterations ({}) reached before convergence; \
                     consider increasing max_iter",
                    self.params.max_iter
                )
            }),
        )
    }
}

/// A fitted SGD classifier or regressor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedSgd {
    /// `k x d`: one row per problem.
    coef: Vec<f64>,
    intercept: Vec<f64>,
    n_features: usize,
    loss: SgdLoss,
    /// The classes (a classifier).
    classes: Option<ClassMap>,
    n_iter: usize,
}

impl FittedSgd {
    /// Weights, one row per problem (`coef_`).
    pub fn coef(&self) -> &[f64] {
        &self.coef
    }

    /// Intercepts (`intercept_`).
    pub fn intercept(&self) -> &[f64] {
        &self.intercept
    }

    /// Epochs (the most any problem ran, `n_iter_`).
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// The decision values, `rows x k`.
    fn decision(&self, x: &Matrix) -> Result<Vec<f64>> {
        check_input(x, self.n_features, "sgd")?;
        let d = self.n_features;
        let mut out = Vec::with_capacity(x.rows() * self.intercept.len());
        for row in x.data().chunks_exact(d.max(1)) {
            for (w, b) in self.coef.chunks_exact(d.max(1)).zip(&self.intercept) {
                out.push(
                    w.iter()
                        .zip(row)
                        .map(|(a, &v)| a * f64::from(v))
                        .sum::<f64>()
                        + b,
                );
            }
        }
        Ok(out)
    }

    fn map(&self) -> Result<&ClassMap> {
        self.classes
            .as_ref()
            .ok_or_else(|| ModelError::data("model", "a regressor predicts values, not classes"))
    }
}

impl Classifier for FittedSgd {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.classes.as_ref().map_or(0, |m| m.n_classes)
    }

    /// Probabilities for `log_loss` (the sigmoid of each problem's decision, normalised
    /// over the classes) and `modified_huber` (`(clip(decision, -1, 1) + 1) / 2`,
    /// normalised; uniform where all are 0), as scikit-learn; the hinge loss has none.
    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        let map = self.map()?;
        let z = self.decision(x)?;
        let one = |t: f64| match self.loss {
            SgdLoss::LogLoss => 1.0 / (1.0 + (-t).exp()),
            _ => (t.clamp(-1.0, 1.0) + 1.0) / 2.0,
        };
        if !matches!(self.loss, SgdLoss::LogLoss | SgdLoss::ModifiedHuber) {
            return Err(ModelError::data(
                "model",
                format!(
                    "probability estimates are not available for loss='{}' (use log_loss or \
                     modified_huber)",
                    self.loss.name()
                ),
            ));
        }
        let k = self.intercept.len();
        let n = x.rows();
        let mut local = Vec::with_capacity(n * map.present.len());
        for row in z.chunks_exact(k) {
            if k == 1 {
                let p = one(row[0]);
                local.extend([(1.0 - p) as f32, p as f32]);
            } else {
                let p: Vec<f64> = row.iter().map(|&t| one(t)).collect();
                let sum: f64 = p.iter().sum();
                if sum > 0.0 {
                    local.extend(p.iter().map(|v| (v / sum) as f32));
                } else {
                    local.extend(std::iter::repeat_n((1.0 / k as f64) as f32, k));
                }
            }
        }
        map.expand(local, n)
    }

    /// The class of the largest decision value (the positive class of two when it is > 0).
    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        let map = self.map()?;
        let z = self.decision(x)?;
        let k = self.intercept.len();
        Ok(z.chunks_exact(k)
            .map(|row| {
                if k == 1 {
                    return map.present[usize::from(row[0] > 0.0)];
                }
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = j;
                    }
                }
                map.present[best]
            })
            .collect())
    }
}

impl Model for FittedSgd {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        self.map()?;
        Ok(self)
    }

    fn n_inputs(&self) -> usize {
        self.n_features
    }

    fn is_regressor(&self) -> bool {
        self.classes.is_none()
    }

    fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        if self.classes.is_some() {
            return Err(ModelError::data(
                "model",
                "a classifier predicts classes, not values",
            ));
        }
        Ok(self.decision(x)?.into_iter().map(|v| v as f32).collect())
    }
}

/// Runs every epoch on all rows as one block.
fn fit_all(params: &SgdParams, data: &Dataset, classes: Option<ClassMap>) -> Result<FittedSgd> {
    let x = data.x();
    x.check_finite("training data")?;
    if x.rows() == 0 {
        return Err(ModelError::data("training data", "no rows"));
    }
    let values;
    let y = match &classes {
        Some(_) => Target::Classes(data.class_target()?.0),
        None => {
            values = data.value_target()?;
            if values.iter().any(|v| !v.is_finite()) {
                return Err(ModelError::data(
                    "training data",
                    "the target has values that are not finite numbers",
                ));
            }
            Target::Values(&values)
        }
    };
    let mut fit = SgdFit::new(params, x.cols(), classes);
    while let Some(epoch) = fit.ask() {
        let part = epoch.run(x, &y)?;
        fit.tell(part)?;
    }
    let (model, warning) = fit.model();
    if let Some(w) = warning {
        crate::warnings::warn(w);
    }
    Ok(model)
}

impl Fit for Checked<SgdClassifierParams> {
    type Fitted = FittedSgd;

    fn fit(&self, data: &Dataset) -> Result<FittedSgd> {
        let (ids, classes) = data.class_target()?;
        let map = ClassMap::from_targets(ids, classes.len(), SgdClassifierParams::NAME)?;
        fit_all(&self.0, data, Some(map))
    }
}

impl Fit for Checked<SgdRegressorParams> {
    type Fitted = FittedSgd;

    fn fit(&self, data: &Dataset) -> Result<FittedSgd> {
        fit_all(&self.0, data, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_and_their_derivatives_match_the_closed_forms() {
        let e = 0.1;
        assert_eq!(SgdLoss::Hinge.eval(1.0, 0.5, e), (0.5, -1.0));
        assert_eq!(SgdLoss::Hinge.eval(-1.0, -2.0, e), (0.0, 0.0));
        assert_eq!(SgdLoss::ModifiedHuber.eval(1.0, 0.0, e), (1.0, -2.0));
        assert_eq!(SgdLoss::ModifiedHuber.eval(1.0, -3.0, e), (12.0, -4.0));
        let (l, g) = SgdLoss::LogLoss.eval(1.0, 0.0, e);
        assert!((l - 2f64.ln()).abs() < 1e-15 && (g + 0.5).abs() < 1e-15);
        let (l, g) = SgdLoss::LogLoss.eval(0.0, 800.0, e);
        assert!((l - 800.0).abs() < 1e-9 && (g - 1.0).abs() < 1e-15);
        assert_eq!(SgdLoss::SquaredError.eval(1.0, 3.0, e), (2.0, 2.0));
        let (l, g) = SgdLoss::Huber.eval(0.0, 1.0, e);
        assert!((l - 0.1 * 0.95).abs() < 1e-15 && (g - 0.1).abs() < 1e-15);
        // Bottou's t0 for alpha = 1e-4: typw = 10, a first step of 10.
        let p = SgdParams::classifier();
        assert!((p.optimal_init() - 1.0 / (10.0 * 1e-4)).abs() < 1e-9);
    }

    #[test]
    fn a_constant_step_on_one_row_takes_the_gradient_step() {
        // One row x = (1, 2), y = 3, squared error, constant eta 0.1, no penalty, no
        // shuffle: p = 0, dloss = -3, update 0.3: w = (0.3, 0.6), b = 0.3.
        let mut p = SgdParams::regressor();
        p.learning_rate = LearningRate::Constant;
        p.eta0 = 0.1;
        p.penalty = SgdPenalty::None;
        p.max_iter = 1;
        p.tol = None;
        let x = Matrix::from_vec(1, 2, vec![1.0, 2.0]).unwrap();
        let mut fit = SgdFit::new(&p, 2, None);
        let part = fit.ask().unwrap().run(&x, &Target::Values(&[3.0])).unwrap();
        assert!((fit.tell(part).unwrap() - 4.5).abs() < 1e-12);
        let (m, warn) = fit.model();
        assert!(warn.is_none());
        assert!((m.coef()[0] - 0.3).abs() < 1e-12 && (m.coef()[1] - 0.6).abs() < 1e-12);
        assert!((m.intercept()[0] - 0.3).abs() < 1e-12);
    }
}

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::traits::{parse_bool, parse_value, unknown_param, Params};

/// The regularisation term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Penalty {
    /// `0.5 * ||w||²`, weighted by `1 / C`.
    L2,
    /// `||w||₁`, weighted by `1 / C`: sparse weights. Solved by accelerated proximal
    /// gradient (FISTA) in `f64`, with the objective of scikit-learn's `saga` solver.
    L1,
    /// No penalty (the intercept is never penalised).
    None,
}

/// Hyperparameters of logistic regression, with scikit-learn's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogisticRegressionParams {
    /// Inverse regularisation strength; must be > 0. Default 1.0.
    #[serde(rename = "C")]
    pub c: f64,
    /// The penalty. Default L2.
    pub penalty: Penalty,
    /// Whether to fit an (unpenalised) intercept. Default true.
    pub fit_intercept: bool,
    /// Iteration budget: L-BFGS iterations, or proximal-gradient iterations for `l1`.
    /// Default 100.
    pub max_iter: usize,
    /// Stop when the largest gradient component (for `l1`, of the proximal gradient
    /// mapping) is at most `tol`. Default 1e-4.
    pub tol: f64,
}

impl Default for LogisticRegressionParams {
    fn default() -> Self {
        Self {
            c: 1.0,
            penalty: Penalty::L2,
            fit_intercept: true,
            max_iter: 100,
            tol: 1e-4,
        }
    }
}

impl LogisticRegressionParams {
    /// Sets `C`.
    pub fn with_c(mut self, c: f64) -> Self {
        self.c = c;
        self
    }

    /// Sets `max_iter`.
    pub fn with_max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Sets `tol`.
    pub fn with_tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Sets `fit_intercept`.
    pub fn with_fit_intercept(mut self, yes: bool) -> Self {
        self.fit_intercept = yes;
        self
    }

    /// Sets the penalty.
    pub fn with_penalty(mut self, p: Penalty) -> Self {
        self.penalty = p;
        self
    }
}

impl Params for LogisticRegressionParams {
    const NAME: &'static str = "logistic_regression";
    const ALIASES: &'static [&'static str] = &["LogisticRegression", "lr"];
    const DESCRIPTION: &'static str =
        "logistic regression (binary or multinomial): L2 by L-BFGS, or penalty=l1";
    const PARAM_NAMES: &'static [&'static str] =
        &["C", "penalty", "fit_intercept", "max_iter", "tol"];

    fn validate(&self) -> Result<()> {
        if !(self.c.is_finite() && self.c > 0.0) {
            return Err(ModelError::param(
                Self::NAME,
                "C",
                format!("must be a finite number > 0, got {}", self.c),
            ));
        }
        if self.max_iter == 0 {
            return Err(ModelError::param(Self::NAME, "max_iter", "must be >= 1"));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(ModelError::param(
                Self::NAME,
                "tol",
                format!("must be >= 0, got {}", self.tol),
            ));
        }
        Ok(())
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "C" | "c" => self.c = parse_value(Self::NAME, key, value, "a number")?,
            "fit_intercept" => self.fit_intercept = parse_bool(Self::NAME, key, value)?,
            "max_iter" => {
                self.max_iter = parse_value(Self::NAME, key, value, "a positive integer")?
            }
            "tol" => self.tol = parse_value(Self::NAME, key, value, "a number")?,
            "penalty" => {
                self.penalty = match value.trim() {
                    "l2" => Penalty::L2,
                    "l1" => Penalty::L1,
                    "none" | "None" | "null" => Penalty::None,
                    "elasticnet" => {
                        return Err(ModelError::param(
                            Self::NAME,
                            key,
                            "'elasticnet' is not supported; use l2, l1 or none",
                        ))
                    }
                    v => {
                        return Err(ModelError::param(
                            Self::NAME,
                            key,
                            format!("'{v}' is not one of l2, l1, none"),
                        ))
                    }
                }
            }
            _ => return Err(unknown_param::<Self>(key)),
        }
        Ok(())
    }
}

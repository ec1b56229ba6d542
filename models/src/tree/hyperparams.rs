use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::traits::{parse_opt_usize, parse_value, Params};

/// Impurity measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Gini impurity `1 - Σ p²`.
    Gini,
    /// Shannon entropy in bits (scikit-learn's `entropy` / `log_loss`).
    Entropy,
    /// Weighted variance of the target: regression trees.
    SquaredError,
}

/// A count of samples given as a number or as a fraction of the training rows (written as
/// a plain integer or float, as in scikit-learn).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SampleCount {
    /// An absolute number of samples.
    Count(usize),
    /// A fraction of the training rows, rounded up.
    Fraction(f64),
}

impl SampleCount {
    pub(crate) fn resolve(self, n: usize) -> usize {
        match self {
            SampleCount::Count(c) => c,
            SampleCount::Fraction(f) => (f * n as f64).ceil() as usize,
        }
    }

    fn parse(estimator: &'static str, key: &str, value: &str) -> Result<Self> {
        let v = value.trim();
        if v.contains(['.', 'e', 'E']) {
            Ok(SampleCount::Fraction(parse_value(
                estimator, key, v, "a number",
            )?))
        } else {
            Ok(SampleCount::Count(parse_value(
                estimator,
                key,
                v,
                "an integer",
            )?))
        }
    }
}

/// How many features to consider at each split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaxFeatures {
    /// Every feature (scikit-learn's `None`).
    All,
    /// `max(1, floor(sqrt(n_features)))`.
    Sqrt,
    /// `max(1, floor(log2(n_features)))`.
    Log2,
    /// A fixed number of features.
    Count(usize),
    /// `max(1, floor(fraction * n_features))`.
    Fraction(f64),
}

impl MaxFeatures {
    pub(crate) fn resolve(self, d: usize) -> usize {
        let v = match self {
            MaxFeatures::All => d,
            MaxFeatures::Sqrt => (d as f64).sqrt() as usize,
            MaxFeatures::Log2 => (d as f64).log2() as usize,
            MaxFeatures::Count(c) => c,
            MaxFeatures::Fraction(f) => (f * d as f64) as usize,
        };
        v.clamp(1, d.max(1))
    }
}

/// Hyperparameters of a decision-tree classifier (scikit-learn's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DecisionTreeClassifierParams {
    /// Impurity measure. Default gini.
    pub criterion: Criterion,
    /// Maximum depth (root at depth 0); `None` grows until leaves are pure.
    pub max_depth: Option<usize>,
    /// Minimum samples a node needs to be split. Default 2.
    pub min_samples_split: SampleCount,
    /// Minimum samples in each leaf. Default 1.
    pub min_samples_leaf: SampleCount,
    /// Features considered per split. Default all.
    pub max_features: MaxFeatures,
    /// A split must decrease weighted impurity by at least this much. Default 0.
    pub min_impurity_decrease: f64,
    /// Seed for the feature order at each node; `None` draws a fresh seed per fit.
    pub random_state: Option<u64>,
}

impl Default for DecisionTreeClassifierParams {
    fn default() -> Self {
        Self {
            criterion: Criterion::Gini,
            max_depth: None,
            min_samples_split: SampleCount::Count(2),
            min_samples_leaf: SampleCount::Count(1),
            max_features: MaxFeatures::All,
            min_impurity_decrease: 0.0,
            random_state: None,
        }
    }
}

impl DecisionTreeClassifierParams {
    /// Sets `max_depth`.
    pub fn with_max_depth(mut self, d: Option<usize>) -> Self {
        self.max_depth = d;
        self
    }

    /// Sets `criterion`.
    pub fn with_criterion(mut self, c: Criterion) -> Self {
        self.criterion = c;
        self
    }

    /// Sets `min_samples_leaf` to a count.
    pub fn with_min_samples_leaf(mut self, n: usize) -> Self {
        self.min_samples_leaf = SampleCount::Count(n);
        self
    }

    /// Sets `min_samples_split` to a count.
    pub fn with_min_samples_split(mut self, n: usize) -> Self {
        self.min_samples_split = SampleCount::Count(n);
        self
    }

    /// Sets `max_features`.
    pub fn with_max_features(mut self, m: MaxFeatures) -> Self {
        self.max_features = m;
        self
    }

    /// Sets `random_state`.
    pub fn with_random_state(mut self, seed: Option<u64>) -> Self {
        self.random_state = seed;
        self
    }
}

impl Params for DecisionTreeClassifierParams {
    const NAME: &'static str = "decision_tree";
    const ALIASES: &'static [&'static str] =
        &["decision_tree_classifier", "DecisionTreeClassifier"];
    const DESCRIPTION: &'static str = "CART decision tree (gini or entropy)";
    const PARAM_NAMES: &'static [&'static str] = &[
        "criterion",
        "max_depth",
        "min_samples_split",
        "min_samples_leaf",
        "max_features",
        "min_impurity_decrease",
        "random_state",
    ];

    fn validate(&self) -> Result<()> {
        if self.criterion == Criterion::SquaredError {
            return Err(ModelError::param(
                Self::NAME,
                "criterion",
                "squared_error is for regression: use decision_tree_regressor",
            ));
        }
        self.validate_tree()
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        self.set_tree_param(Self::NAME, key, value)
    }

    fn seed_unset(&mut self, seed: u64) {
        self.random_state.get_or_insert(seed);
    }
}

impl DecisionTreeClassifierParams {
    /// Checks everything but the criterion's task.
    pub(crate) fn validate_tree(&self) -> Result<()> {
        let n = Self::NAME;
        match self.min_samples_split {
            SampleCount::Count(c) if c < 2 => {
                return Err(ModelError::param(
                    n,
                    "min_samples_split",
                    format!("must be >= 2 or a fraction in (0, 1], got {c}"),
                ))
            }
            SampleCount::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(ModelError::param(
                    n,
                    "min_samples_split",
                    format!("a fraction must be in (0, 1], got {f}"),
                ))
            }
            _ => {}
        }
        match self.min_samples_leaf {
            SampleCount::Count(0) => {
                return Err(ModelError::param(
                    n,
                    "min_samples_leaf",
                    "must be >= 1 or a fraction in (0, 0.5)",
                ))
            }
            SampleCount::Fraction(f) if !(f > 0.0 && f < 0.5) => {
                return Err(ModelError::param(
                    n,
                    "min_samples_leaf",
                    format!("a fraction must be in (0, 0.5), got {f}"),
                ))
            }
            _ => {}
        }
        match self.max_features {
            MaxFeatures::Count(0) => {
                return Err(ModelError::param(n, "max_features", "must be >= 1"))
            }
            MaxFeatures::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(ModelError::param(
                    n,
                    "max_features",
                    format!("a fraction must be in (0, 1], got {f}"),
                ))
            }
            _ => {}
        }
        if self.max_depth == Some(0) {
            return Err(ModelError::param(n, "max_depth", "must be >= 1 or None"));
        }
        if !(self.min_impurity_decrease.is_finite() && self.min_impurity_decrease >= 0.0) {
            return Err(ModelError::param(
                n,
                "min_impurity_decrease",
                "must be >= 0",
            ));
        }
        Ok(())
    }

    /// Sets a tree parameter; errors name estimator `n`.
    pub(crate) fn set_tree_param(&mut self, n: &'static str, key: &str, value: &str) -> Result<()> {
        match key {
            "criterion" => {
                self.criterion = match value.trim() {
                    "gini" => Criterion::Gini,
                    "entropy" | "log_loss" => Criterion::Entropy,
                    "squared_error" => Criterion::SquaredError,
                    v => {
                        return Err(ModelError::param(
                            n,
                            key,
                            format!("'{v}' is not one of gini, entropy, log_loss, squared_error"),
                        ))
                    }
                }
            }
            "max_depth" => self.max_depth = parse_opt_usize(n, key, value)?,
            "min_samples_split" => self.min_samples_split = SampleCount::parse(n, key, value)?,
            "min_samples_leaf" => self.min_samples_leaf = SampleCount::parse(n, key, value)?,
            "max_features" => {
                self.max_features = match value.trim() {
                    "None" | "none" | "null" | "all" => MaxFeatures::All,
                    "sqrt" => MaxFeatures::Sqrt,
                    "log2" => MaxFeatures::Log2,
                    v if v.contains('.') => {
                        MaxFeatures::Fraction(parse_value(n, key, v, "a number")?)
                    }
                    v => MaxFeatures::Count(parse_value(
                        n,
                        key,
                        v,
                        "an integer, a fraction, sqrt, log2 or None",
                    )?),
                }
            }
            "min_impurity_decrease" => {
                self.min_impurity_decrease = parse_value(n, key, value, "a number")?
            }
            "random_state" => self.random_state = parse_opt_usize(n, key, value)?.map(|v| v as u64),
            _ => {
                return Err(ModelError::param(
                    n,
                    key,
                    format!("no such parameter; known: {}", Self::PARAM_NAMES.join(", ")),
                ))
            }
        }
        Ok(())
    }
}

/// Hyperparameters of a regression tree (scikit-learn's `DecisionTreeRegressor`): the
/// classifier's parameters with the `squared_error` criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct DecisionTreeRegressorParams {
    /// The tree's parameters; `criterion` is `squared_error`.
    pub tree: DecisionTreeClassifierParams,
}

impl Default for DecisionTreeRegressorParams {
    fn default() -> Self {
        Self {
            tree: DecisionTreeClassifierParams::default().with_criterion(Criterion::SquaredError),
        }
    }
}

impl Params for DecisionTreeRegressorParams {
    const NAME: &'static str = "decision_tree_regressor";
    const ALIASES: &'static [&'static str] = &["DecisionTreeRegressor"];
    const DESCRIPTION: &'static str = "CART regression tree (squared error)";
    const PARAM_NAMES: &'static [&'static str] = DecisionTreeClassifierParams::PARAM_NAMES;

    fn validate(&self) -> Result<()> {
        if self.tree.criterion != Criterion::SquaredError {
            return Err(ModelError::param(
                Self::NAME,
                "criterion",
                "a regressor supports squared_error only",
            ));
        }
        self.tree.validate_tree()
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        self.tree.set_tree_param(Self::NAME, key, value)
    }

    fn seed_unset(&mut self, seed: u64) {
        self.tree.random_state.get_or_insert(seed);
    }
}

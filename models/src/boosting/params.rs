//! The parameters of `hist_gradient_boosting_classifier` and `_regressor`, with
//! scikit-learn's names, defaults and checks.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::traits::{parse_opt_usize, parse_value, Params};

/// The loss a boosted model minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoostingLoss {
    /// Binomial or multinomial deviance (the classifier's only loss).
    LogLoss,
    /// Squared error (the regressor's default).
    SquaredError,
    /// Absolute error; leaves hold their rows' median residual.
    AbsoluteError,
    /// Poisson deviance, log link; targets must be >= 0 and not all 0.
    Poisson,
    /// Pinball loss of the `quantile` parameter.
    Quantile,
}

/// When to stop early on a held-out validation share (`validation_fraction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum EarlyStopping {
    /// On above 10,000 rows (scikit-learn's default).
    #[serde(rename = "auto")]
    Auto,
    /// Always.
    #[serde(rename = "true")]
    On,
    /// Never: exactly `max_iter` iterations.
    #[serde(rename = "false")]
    Off,
}

/// Which columns split as categories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CategoricalFeatures {
    /// The columns whose schema says categorical (scikit-learn's default "from_dtype").
    FromDtype,
    /// None: every column splits by thresholds (category codes as numbers).
    None,
    /// These columns, by name or index; a numeric one must hold codes `0..max_bins`.
    Columns(Vec<String>),
}

/// Class weights of the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// `n_samples / (n_classes * count(class))`.
    Balanced,
    /// A weight per class label (unlisted classes weigh 1).
    Weights(Vec<(String, f64)>),
}

/// What both boosted estimators take (scikit-learn's `HistGradientBoosting*` parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HistGradientBoostingParams {
    /// The loss; `log_loss` for the classifier, `squared_error` by default for the
    /// regressor.
    pub loss: BoostingLoss,
    /// The quantile of `loss="quantile"`, in (0, 1).
    pub quantile: Option<f64>,
    /// Shrinkage of every leaf value. Default 0.1.
    pub learning_rate: f64,
    /// Boosting iterations (trees per class for multi-class). Default 100.
    pub max_iter: usize,
    /// Most leaves a tree. Default 31; `None` for no limit.
    pub max_leaf_nodes: Option<usize>,
    /// Deepest a leaf may be (edges from the root). Default `None`.
    pub max_depth: Option<usize>,
    /// Fewest rows in a leaf. Default 20.
    pub min_samples_leaf: usize,
    /// L2 penalty on leaf values. Default 0.
    pub l2_regularization: f64,
    /// Share of the columns each split is chosen among, in (0, 1]. Default 1.
    pub max_features: f64,
    /// Bins per column for non-missing values, 2 to 255. Default 255.
    pub max_bins: usize,
    /// Which columns split as categories. Default from the schema.
    pub categorical_features: CategoricalFeatures,
    /// Per column: 1 increasing, -1 decreasing, 0 free. Default none.
    pub monotonic_cst: Option<Vec<i8>>,
    /// Early stopping. Default auto (on above 10,000 rows).
    pub early_stopping: EarlyStopping,
    /// Early stopping's score; only `loss` is supported.
    pub scoring: String,
    /// Share of the rows held out to score early stopping; `None` scores the
    /// training rows. Default 0.1.
    pub validation_fraction: Option<f64>,
    /// Stop when the last this many iterations did not improve on the one before by
    /// more than `tol`. Default 10.
    pub n_iter_no_change: usize,
    /// See `n_iter_no_change`. Default 1e-7.
    pub tol: f64,
    /// Class weights (classifier only). Default none.
    pub class_weight: Option<ClassWeight>,
    /// Seed of the binning sample, the validation split and the column draws.
    pub random_state: Option<u64>,
}

impl HistGradientBoostingParams {
    fn with_loss(loss: BoostingLoss) -> Self {
        Self {
            loss,
            quantile: None,
            learning_rate: 0.1,
            max_iter: 100,
            max_leaf_nodes: Some(31),
            max_depth: None,
            min_samples_leaf: 20,
            l2_regularization: 0.0,
            max_features: 1.0,
            max_bins: 255,
            categorical_features: CategoricalFeatures::FromDtype,
            monotonic_cst: None,
            early_stopping: EarlyStopping::Auto,
            scoring: "loss".into(),
            validation_fraction: Some(0.1),
            n_iter_no_change: 10,
            tol: 1e-7,
            class_weight: None,
            random_state: None,
        }
    }

    /// Sets `max_iter`.
    pub fn with_max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Sets `early_stopping`.
    pub fn with_early_stopping(mut self, e: EarlyStopping) -> Self {
        self.early_stopping = e;
        self
    }

    /// Sets `random_state`.
    pub fn with_random_state(mut self, seed: Option<u64>) -> Self {
        self.random_state = seed;
        self
    }

    fn validate_common(&self, n: &'static str) -> Result<()> {
        let bad = |k: &str, m: String| Err(ModelError::param(n, k, m));
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning_rate",
                format!("must be > 0, got {}", self.learning_rate),
            );
        }
        if self.max_iter == 0 {
            return bad("max_iter", "must be >= 1".into());
        }
        if self.max_leaf_nodes.is_some_and(|m| m < 2) {
            return bad("max_leaf_nodes", "must be >= 2 or None".into());
        }
        if self.max_depth == Some(0) {
            return bad("max_depth", "must be >= 1 or None".into());
        }
        if self.min_samples_leaf == 0 {
            return bad("min_samples_leaf", "must be >= 1".into());
        }
        if !(self.l2_regularization.is_finite() && self.l2_regularization >= 0.0) {
            return bad("l2_regularization", "must be >= 0".into());
        }
        if !(self.max_features > 0.0 && self.max_features <= 1.0) {
            return bad(
                "max_features",
                format!("must be in (0, 1], got {}", self.max_features),
            );
        }
        if !(2..=crate::binning::MAX_BINS).contains(&self.max_bins) {
            return bad(
                "max_bins",
                format!("must be between 2 and 255, got {}", self.max_bins),
            );
        }
        if let Some(m) = &self.monotonic_cst {
            if m.iter().any(|c| !(-1..=1).contains(c)) {
                return bad("monotonic_cst", "each constraint must be -1, 0 or 1".into());
            }
        }
        if self.scoring != "loss" {
            return bad(
                "scoring",
                format!(
                    "'{}' is not supported: early stopping scores the loss",
                    self.scoring
                ),
            );
        }
        if let Some(f) = self.validation_fraction {
            if !(f > 0.0 && f < 1.0) {
                return bad(
                    "validation_fraction",
                    format!("must be in (0, 1) or None, got {f}"),
                );
            }
        }
        if self.n_iter_no_change == 0 {
            return bad("n_iter_no_change", "must be >= 1".into());
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return bad("tol", "must be >= 0".into());
        }
        if let Some(ClassWeight::Weights(w)) = &self.class_weight {
            if w.iter().any(|(_, v)| !(v.is_finite() && *v > 0.0)) {
                return bad("class_weight", "weights must be > 0".into());
            }
        }
        Ok(())
    }

    fn set_common(
        &mut self,
        n: &'static str,
        names: &[&str],
        key: &str,
        value: &str,
    ) -> Result<()> {
        let v = value.trim();
        let num = |what| parse_value::<f64>(n, key, v, what);
        match key {
            "loss" => {
                self.loss = match v {
                    "log_loss" => BoostingLoss::LogLoss,
                    "squared_error" => BoostingLoss::SquaredError,
                    "absolute_error" => BoostingLoss::AbsoluteError,
                    "poisson" => BoostingLoss::Poisson,
                    "quantile" => BoostingLoss::Quantile,
                    _ => {
                        return Err(ModelError::param(
                            n,
                            key,
                            format!(
                                "'{v}' is not one of log_loss, squared_error, absolute_error, \
                                 poisson, quantile"
                            ),
                        ))
                    }
                }
            }
            "quantile" if names.contains(&"quantile") => {
                self.quantile = match v {
                    "None" | "none" | "null" => None,
                    _ => Some(num("a number")?),
                }
            }
            "learning_rate" => self.learning_rate = num("a number")?,
            "max_iter" => self.max_iter = parse_value(n, key, v, "an integer")?,
            "max_leaf_nodes" => self.max_leaf_nodes = parse_opt_usize(n, key, v)?,
            "max_depth" => self.max_depth = parse_opt_usize(n, key, v)?,
            "min_samples_leaf" => self.min_samples_leaf = parse_value(n, key, v, "an integer")?,
            "l2_regularization" => self.l2_regularization = num("a number")?,
            "max_features" => self.max_features = num("a fraction in (0, 1]")?,
            "max_bins" => self.max_bins = parse_value(n, key, v, "an integer")?,
            "categorical_features" => {
                self.categorical_features = match v {
                    "from_dtype" => CategoricalFeatures::FromDtype,
                    "None" | "none" | "null" | "" => CategoricalFeatures::None,
                    _ => CategoricalFeatures::Columns(
                        list(v).iter().map(|s| s.to_string()).collect(),
                    ),
                }
            }
            "monotonic_cst" => {
                self.monotonic_cst = match v {
                    "None" | "none" | "null" => None,
                    _ => Some(
                        list(v)
                            .iter()
                            .map(|c| parse_value(n, key, c, "a list of -1, 0 and 1"))
                            .collect::<Result<_>>()?,
                    ),
                }
            }
            "early_stopping" => {
                self.early_stopping = match v {
                    "auto" => EarlyStopping::Auto,
                    "true" | "True" | "1" => EarlyStopping::On,
                    "false" | "False" | "0" => EarlyStopping::Off,
                    _ => {
                        return Err(ModelError::param(
                            n,
                            key,
                            format!("'{v}' is not auto, true or false"),
                        ))
                    }
                }
            }
            "scoring" => self.scoring = v.to_string(),
            "validation_fraction" => {
                self.validation_fraction = match v {
                    "None" | "none" | "null" => None,
                    _ => Some(num("a fraction in (0, 1) or None")?),
                }
            }
            "n_iter_no_change" => self.n_iter_no_change = parse_value(n, key, v, "an integer")?,
            "tol" => self.tol = num("a number")?,
            "class_weight" if names.contains(&"class_weight") => {
                self.class_weight = match v {
                    "None" | "none" | "null" => None,
                    "balanced" => Some(ClassWeight::Balanced),
                    _ => Some(ClassWeight::Weights(
                        list(v)
                            .iter()
                            .map(|pair| {
                                let (label, w) = pair.rsplit_once(':').ok_or_else(|| {
                                    ModelError::param(
                                        n,
                                        "class_weight",
                                        format!("'{pair}' is not label:weight (or use balanced)"),
                                    )
                                })?;
                                Ok((
                                    label.trim().to_string(),
                                    parse_value(n, key, w, "a number")?,
                                ))
                            })
                            .collect::<Result<_>>()?,
                    )),
                }
            }
            "random_state" => self.random_state = parse_opt_usize(n, key, v)?.map(|s| s as u64),
            _ => {
                return Err(ModelError::param(
                    n,
                    key,
                    format!("no such parameter; known: {}", names.join(", ")),
                ))
            }
        }
        Ok(())
    }
}

/// Splits `a,b,c` or `[a, b, c]` into its trimmed items.
fn list(v: &str) -> Vec<&str> {
    v.trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|s| s.trim().trim_matches(['"', '\'']))
        .filter(|s| !s.is_empty())
        .collect()
}

macro_rules! boosted {
    ($(#[$doc:meta])* $name:ident, $est:literal, $alias:literal, $desc:literal, $loss:expr, [$($extra:literal),*]) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name {
            /// The parameters (boxed: they are the largest of any estimator's).
            pub boosting: Box<HistGradientBoostingParams>,
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    boosting: Box::new(HistGradientBoostingParams::with_loss($loss)),
                }
            }
        }

        impl Params for $name {
            const NAME: &'static str = $est;
            const ALIASES: &'static [&'static str] = &[$alias];
            const DESCRIPTION: &'static str = $desc;
            const PARAM_NAMES: &'static [&'static str] = &[
                "loss", $($extra,)* "learning_rate", "max_iter", "max_leaf_nodes", "max_depth",
                "min_samples_leaf", "l2_regularization", "max_features", "max_bins",
                "categorical_features", "monotonic_cst", "early_stopping", "scoring",
                "validation_fraction", "n_iter_no_change", "tol", "random_state",
            ];

            fn validate(&self) -> Result<()> {
                self.validate_kind()?;
                self.boosting.validate_common(Self::NAME)
            }

            fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
                self.boosting.set_common(Self::NAME, Self::PARAM_NAMES, key, value)
            }

            fn seed_unset(&mut self, seed: u64) {
                self.boosting.random_state.get_or_insert(seed);
            }
        }
    };
}

boosted!(
    /// scikit-learn's `HistGradientBoostingClassifier`: one tree per iteration for two
    /// classes, one per class and iteration for more.
    HistGradientBoostingClassifierParams,
    "hist_gradient_boosting_classifier",
    "HistGradientBoostingClassifier",
    "gradient-boosted histogram trees (log loss, native categories and missing cells)",
    BoostingLoss::LogLoss,
    ["class_weight"]
);

boosted!(
    /// scikit-learn's `HistGradientBoostingRegressor`.
    HistGradientBoostingRegressorParams,
    "hist_gradient_boosting_regressor",
    "HistGradientBoostingRegressor",
    "gradient-boosted histogram trees (squared, absolute, Poisson or quantile loss)",
    BoostingLoss::SquaredError,
    ["quantile"]
);

impl HistGradientBoostingClassifierParams {
    fn validate_kind(&self) -> Result<()> {
        if self.boosting.loss != BoostingLoss::LogLoss {
            return Err(ModelError::param(
                Self::NAME,
                "loss",
                "a classifier minimises log_loss; the other losses are the regressor's",
            ));
        }
        Ok(())
    }
}

impl HistGradientBoostingRegressorParams {
    fn validate_kind(&self) -> Result<()> {
        let b = &self.boosting;
        if b.loss == BoostingLoss::LogLoss {
            return Err(ModelError::param(
                Self::NAME,
                "loss",
                "log_loss is the classifier's: use hist_gradient_boosting_classifier",
            ));
        }
        if b.class_weight.is_some() {
            return Err(ModelError::param(
                Self::NAME,
                "class_weight",
                "is a classifier's parameter",
            ));
        }
        match (b.loss, b.quantile) {
            (BoostingLoss::Quantile, Some(q)) if q > 0.0 && q < 1.0 => Ok(()),
            (BoostingLoss::Quantile, q) => Err(ModelError::param(
                Self::NAME,
                "quantile",
                format!("loss=quantile needs a quantile in (0, 1), got {q:?}"),
            )),
            _ => Ok(()),
        }
    }
}

//! What a user asks for: a [`JobSpec`] (a [`JobKind`] and a seed), with the parameter
//! grids and distributions searches draw candidates from.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::estimator::Estimator;
use crate::rng::Rng;

/// A parameter grid: each parameter's name with the values to try.
pub type Grid = Vec<(String, Vec<String>)>;

/// A distribution to sample a parameter from in a random search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// One of these values, uniformly.
    Choice(Vec<String>),
    /// Uniform on `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Log-uniform on `[low, high)` (scipy's `loguniform`), for scales such as `C`.
    LogUniform {
        /// Lower bound (> 0).
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// A uniform integer in `low..=high`.
    IntRange {
        /// Smallest value.
        low: i64,
        /// Largest value.
        high: i64,
    },
}

impl Distribution {
    pub(crate) fn check(&self, name: &str) -> Result<()> {
        let bad = |m: &str| ModelError::data(format!("search space '{name}'"), m.to_string());
        match self {
            Distribution::Choice(v) if v.is_empty() => Err(bad("no values to choose from")),
            Distribution::Uniform { low, high }
                if low.partial_cmp(high) != Some(std::cmp::Ordering::Less) =>
            {
                Err(bad("needs low < high"))
            }
            Distribution::LogUniform { low, high }
                if *low <= 0.0 || low.partial_cmp(high) != Some(std::cmp::Ordering::Less) =>
            {
                Err(bad("needs 0 < low < high"))
            }
            Distribution::IntRange { low, high } if low > high => Err(bad("needs low <= high")),
            _ => Ok(()),
        }
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> String {
        match self {
            Distribution::Choice(v) => v[rng.below(v.len())].clone(),
            Distribution::Uniform { low, high } => {
                format!("{}", low + (high - low) * rng.next_f64())
            }
            Distribution::LogUniform { low, high } => {
                let (a, b) = (low.ln(), high.ln());
                format!("{}", (a + (b - a) * rng.next_f64()).exp())
            }
            Distribution::IntRange { low, high } => {
                let span = (high - low) as u64 + 1;
                format!("{}", low + (rng.next_u64() % span) as i64)
            }
        }
    }
}

/// What a job does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// Fit one estimator on every row (a random forest grows in batches of trees).
    Fit {
        /// The estimator.
        estimator: Estimator,
    },
    /// Exhaustive search over a grid with k-fold cross-validation (scikit-learn's
    /// `GridSearchCV`: candidates in `ParameterGrid` order, stratified folds, accuracy).
    GridSearch {
        /// The estimator whose parameters are searched.
        estimator: Estimator,
        /// Parameter name and the values to try.
        grid: Grid,
        /// Folds.
        cv: u32,
        /// Refit the best candidate on every row.
        refit: bool,
    },
    /// `n_iter` candidates sampled from distributions (scikit-learn's
    /// `RandomizedSearchCV`), cross-validated like a grid search.
    RandomSearch {
        /// The estimator whose parameters are searched.
        estimator: Estimator,
        /// Parameter name and its distribution.
        space: Vec<(String, Distribution)>,
        /// Candidates.
        n_iter: u32,
        /// Folds.
        cv: u32,
        /// Refit the best candidate on every row.
        refit: bool,
    },
    /// Several estimators, each with its own grid, cross-validated in one job; the cv table
    /// names each candidate's estimator (`estimator=NAME` first in its parameters).
    MultiSearch {
        /// Each estimator with the grid to search for it.
        searches: Vec<(Estimator, Grid)>,
        /// Folds.
        cv: u32,
        /// Refit the best candidate on every row.
        refit: bool,
    },
    /// One binary estimator per class (scikit-learn's `OneVsRestClassifier`).
    OneVsRest {
        /// The binary estimator.
        estimator: Estimator,
    },
    /// One binary estimator per pair of classes, on those classes' rows; prediction by
    /// votes, ties broken by summed confidences (scikit-learn's `OneVsOneClassifier`).
    OneVsOne {
        /// The binary estimator.
        estimator: Estimator,
    },
    /// The estimator fitted on `n_estimators` bootstrap samples, probabilities averaged
    /// (scikit-learn's `BaggingClassifier`).
    Bagging {
        /// The base estimator.
        estimator: Estimator,
        /// Members.
        n_estimators: u32,
    },
    /// Several estimators fitted apart, combined by averaged probabilities (`soft`) or
    /// by majority vote (scikit-learn's `VotingClassifier`); regressors are averaged
    /// (`VotingRegressor`).
    Voting {
        /// The members.
        estimators: Vec<Estimator>,
        /// Average probabilities instead of counting votes.
        soft: bool,
    },
    /// Members whose out-of-fold class probabilities (stratified `cv` folds) train a final
    /// estimator (scikit-learn's `StackingClassifier`). Every member's folds and full fits
    /// run in parallel; the final estimator is fitted once they are done.
    Stacking {
        /// The members.
        estimators: Vec<Estimator>,
        /// Reads the members' probabilities.
        final_estimator: Estimator,
        /// Folds for the out-of-fold probabilities.
        cv: u32,
    },
    /// A two-step classifier: `router` learns which group of classes a row belongs to,
    /// and one `estimator` per group learns the class within it. The router and every
    /// group's classifier are independent tasks.
    Cascade {
        /// Class labels of each group; every class in exactly one group.
        groups: Vec<Vec<String>>,
        /// Predicts the group.
        router: Estimator,
        /// Predicts the class within a group.
        estimator: Estimator,
    },
    /// The same features, several targets: one model per target column (scikit-learn's
    /// `MultiOutputClassifier` / `MultiOutputRegressor`). The features are every column
    /// not named in `targets`.
    MultiOutput {
        /// The model fitted for each target.
        estimator: Estimator,
        /// Target columns: feature columns of the dataset, or its target.
        targets: Vec<String>,
    },
}

/// A job: what to do, and the seed that makes it reproducible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobSpec {
    /// What to do.
    #[serde(flatten)]
    pub kind: JobKind,
    /// Seeds every random choice the job makes (and estimators without a `random_state`).
    pub seed: u64,
}

impl JobSpec {
    /// A short name for listings (`grid_search(logistic_regression)`).
    pub fn describe(&self) -> String {
        match &self.kind {
            JobKind::Fit { estimator } => format!("fit({})", estimator.name()),
            JobKind::GridSearch { estimator, .. } => format!("grid_search({})", estimator.name()),
            JobKind::RandomSearch { estimator, .. } => {
                format!("random_search({})", estimator.name())
            }
            JobKind::MultiSearch { searches, .. } => format!(
                "multi_search({})",
                searches
                    .iter()
                    .map(|(e, _)| e.name())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            JobKind::OneVsRest { estimator } => format!("one_vs_rest({})", estimator.name()),
            JobKind::OneVsOne { estimator } => format!("one_vs_one({})", estimator.name()),
            JobKind::Bagging { estimator, .. } => format!("bagging({})", estimator.name()),
            JobKind::Voting { estimators, .. } => format!(
                "voting({})",
                estimators
                    .iter()
                    .map(Estimator::name)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            JobKind::Stacking {
                estimators,
                final_estimator,
                ..
            } => format!(
                "stacking({} -> {})",
                estimators
                    .iter()
                    .map(Estimator::name)
                    .collect::<Vec<_>>()
                    .join(","),
                final_estimator.name()
            ),
            JobKind::Cascade {
                router, estimator, ..
            } => format!("cascade({} -> {})", router.name(), estimator.name()),
            JobKind::MultiOutput { estimator, targets } => {
                format!("multi_output({}; {})", estimator.name(), targets.join(","))
            }
        }
    }
}

impl JobKind {
    /// Every estimator the job names.
    pub fn estimators(&self) -> Vec<&Estimator> {
        match self {
            JobKind::Fit { estimator }
            | JobKind::GridSearch { estimator, .. }
            | JobKind::RandomSearch { estimator, .. }
            | JobKind::OneVsRest { estimator }
            | JobKind::OneVsOne { estimator }
            | JobKind::Bagging { estimator, .. }
            | JobKind::MultiOutput { estimator, .. } => vec![estimator],
            JobKind::MultiSearch { searches, .. } => searches.iter().map(|(e, _)| e).collect(),
            JobKind::Voting { estimators, .. } => estimators.iter().collect(),
            JobKind::Stacking {
                estimators,
                final_estimator,
                ..
            } => estimators.iter().chain([final_estimator]).collect(),
            JobKind::Cascade {
                router, estimator, ..
            } => vec![router, estimator],
        }
    }
}

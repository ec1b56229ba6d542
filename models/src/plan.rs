//! Jobs as plans of independent tasks: the one seam between the algorithms and where they
//! run.
//!
//! A [`JobSpec`] (fit, grid or random search with cross-validation, one-vs-rest, bagging,
//! voting) is expanded by a [`Planner`] into stages of [`Task`]s. Tasks of a stage do not
//! depend on each other; a stage may depend on the outputs of the one before (a search's
//! refit needs the best candidate). A task names its data by a deterministic row
//! selection ([`Rows`]: everything, one side of a fold, a bootstrap sample), never by a
//! copy, and [`run_task`] computes its output from the task and the dataset alone. The
//! planner's reduce step turns the outputs into a [`JobResult`].
//!
//! The same plan runs on the [`LocalExecutor`] (threads) and on the mesh (the node crate
//! ships each task to a worker), so for a fixed seed both give identical results.
//!
//! ```
//! use meshml_models::{io::iris, Estimator};
//! use meshml_models::plan::{run_job, JobKind, JobSpec, LocalExecutor};
//!
//! let spec = JobSpec {
//!     kind: JobKind::GridSearch {
//!         estimator: Estimator::from_name("logistic_regression")?,
//!         grid: vec![("C".into(), vec!["0.1".into(), "1".into()])],
//!         cv: 3,
//!         refit: true,
//!     },
//!     seed: 0,
//! };
//! let result = run_job(&spec, &iris(), &LocalExecutor::new(2), &|_| {})?;
//! let cv = result.cv.as_ref().unwrap();
//! assert_eq!(cv.mean_test_score.len(), 2);
//! assert!(result.model.is_some());
//! # Ok::<(), meshml_models::ModelError>(())
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::dataset::{Classes, Dataset, Target};
use crate::ensemble::{Combine, FittedEnsemble, RandomForestParams};
use crate::error::{ModelError, Result};
use crate::estimator::{Estimator, FittedModel};
use crate::model_selection::{KFold, StratifiedKFold};
use crate::rng::Rng;
use crate::traits::{Classifier, Fit};

/// Trees a forest task grows (a forest of 100 trees is 10 tasks).
pub const TREES_PER_TASK: usize = 10;

/// What planning needs to know of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Rows.
    pub n_samples: usize,
    /// Classes of the target (0 for a continuous target).
    pub n_classes: usize,
    /// The class labels, in class-id order (empty for a continuous target).
    pub labels: Vec<String>,
    /// Feature column names.
    pub features: Vec<String>,
    /// Target column name.
    pub target: String,
}

impl DataSummary {
    /// The summary of a dataset.
    pub fn of(data: &Dataset) -> Result<Self> {
        let labels = data
            .classes()
            .map(|c| c.labels().to_vec())
            .unwrap_or_default();
        Ok(Self {
            n_samples: data.n_samples(),
            n_classes: labels.len(),
            labels,
            features: data.feature_names().to_vec(),
            target: data.target_name().to_string(),
        })
    }

    fn class_id(&self, label: &str) -> Result<u32> {
        self.labels
            .iter()
            .position(|l| l == label)
            .map(|i| i as u32)
            .ok_or_else(|| {
                ModelError::data(
                    "cascade",
                    format!(
                        "'{label}' is not a class of the target; classes: {}",
                        self.labels.join(", ")
                    ),
                )
            })
    }
}

/// Which side of a fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Every row outside the fold.
    Train,
    /// The fold's rows.
    Test,
}

/// A deterministic selection of a dataset's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    /// Every row.
    All,
    /// One side of fold `i` of `k` (stratified by class, as scikit-learn's `cv=k` is for
    /// classifiers), optionally shuffled with a seed.
    Fold {
        /// Number of folds.
        k: u32,
        /// Which fold.
        i: u32,
        /// Keep each class's share in every fold.
        stratified: bool,
        /// Shuffle seed, if shuffled.
        shuffle: Option<u64>,
        /// Which side.
        side: Side,
    },
    /// `n` rows drawn with replacement, `n` the number of rows.
    Bootstrap {
        /// The draw's seed.
        seed: u64,
    },
}

impl Rows {
    /// The row indices (`None` for every row).
    pub fn indices(&self, data: &Dataset) -> Result<Option<Vec<usize>>> {
        match *self {
            Rows::All => Ok(None),
            Rows::Fold {
                k,
                i,
                stratified,
                shuffle,
                side,
            } => {
                let folds = if stratified {
                    let mut s = StratifiedKFold::new(k as usize);
                    if let Some(seed) = shuffle {
                        s = s.shuffled(seed);
                    }
                    s.split(data.class_target()?.0)?
                } else {
                    let mut s = KFold::new(k as usize);
                    if let Some(seed) = shuffle {
                        s = s.shuffled(seed);
                    }
                    s.split(data.n_samples())?
                };
                let (train, test) = folds
                    .into_iter()
                    .nth(i as usize)
                    .ok_or_else(|| ModelError::data("task", format!("no fold {i} of {k}")))?;
                Ok(Some(match side {
                    Side::Train => train,
                    Side::Test => test,
                }))
            }
            Rows::Bootstrap { seed } => {
                let n = data.n_samples();
                let mut rng = Rng::seed_from_u64(seed);
                let mut idx: Vec<usize> = (0..n).map(|_| rng.below(n.max(1))).collect();
                idx.sort_unstable();
                Ok(Some(idx))
            }
        }
    }

    fn select(&self, data: &Dataset) -> Result<Dataset> {
        match self.indices(data)? {
            None => Ok(data.clone()),
            Some(idx) => data.select(&idx),
        }
    }
}

/// How a task rewrites the target before fitting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relabel {
    /// As it is.
    None,
    /// Class `class` becomes 1, every other class 0.
    OneVsRest {
        /// The positive class.
        class: u32,
    },
    /// Only rows of classes `a` and `b`: `b` becomes 1, `a` 0.
    Pair {
        /// The class that becomes 0.
        a: u32,
        /// The class that becomes 1.
        b: u32,
    },
    /// Class `c` becomes class `groups[c]` (a cascade's first step).
    Group {
        /// The group of every class id.
        groups: Vec<u32>,
    },
    /// Only rows of these classes, which become `0..len` in this order (a cascade's
    /// second step within one group).
    Within {
        /// The classes kept.
        classes: Vec<u32>,
    },
    /// Column `target` becomes the target (class labels for a classifier, values for a
    /// regressor); the features are every feature column not named in `exclude`.
    Column {
        /// The column to predict (a feature column, or the dataset's target).
        target: String,
        /// Feature columns that are not features (all of a multi-output job's targets).
        exclude: Vec<String>,
        /// Turn the column into class labels.
        classes: bool,
    },
}

/// The work of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Fits `estimator` on the `train` rows (relabelled), scores it on the `eval` rows
    /// (accuracy), and returns the model when `keep_model`.
    Fit {
        /// What to fit.
        estimator: Estimator,
        /// Training rows.
        train: Rows,
        /// Target rewrite.
        relabel: Relabel,
        /// Rows to score on.
        eval: Option<Rows>,
        /// Return the fitted model.
        keep_model: bool,
        /// Also return the class probabilities of the `eval` rows (out-of-fold predictions
        /// for stacking).
        #[serde(default)]
        predict_eval: bool,
    },
    /// Fits a stacking ensemble's final estimator on the out-of-fold probabilities of its
    /// members (`oof[m * cv + i]`: member `m` on the test rows of fold `i`, row-major).
    Stack {
        /// The final estimator.
        estimator: Estimator,
        /// Folds the probabilities came from (stratified, unshuffled).
        cv: u32,
        /// Members stacked.
        members: u32,
        /// Out-of-fold probabilities, member-major then fold.
        oof: Vec<Vec<f32>>,
    },
    /// Grows trees `from..to` of a forest on every row.
    Trees {
        /// The forest (its `random_state` set).
        forest: RandomForestParams,
        /// First tree.
        from: u32,
        /// One past the last tree.
        to: u32,
    },
}

/// One independent unit of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Stage of the plan it belongs to.
    pub stage: u32,
    /// Position in its stage.
    pub index: u32,
    /// What to do.
    pub work: Work,
}

/// What a task produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOutput {
    /// Accuracy on the evaluation rows, if any.
    pub score: Option<f64>,
    /// The fitted model, if kept.
    pub model: Option<FittedModel>,
    /// Wall time of the fit, milliseconds.
    pub fit_ms: u64,
    /// Class probabilities of the evaluation rows, row-major, when asked for.
    #[serde(default)]
    pub predictions: Option<Vec<f32>>,
    /// The class labels of a target the task made from a column (multi-output).
    #[serde(default)]
    pub labels: Vec<String>,
}

fn relabel(data: Dataset, how: &Relabel) -> Result<Dataset> {
    let classes_of = |data: &Dataset, ids: Vec<u32>, classes: Classes, rows: Option<&[usize]>| {
        let x = match rows {
            Some(r) => data.x().select_rows(r)?,
            None => data.x().clone(),
        };
        Dataset::new(
            x,
            Target::Classes { ids, classes },
            data.feature_names().to_vec(),
            data.target_name().to_string(),
        )
    };
    match how {
        Relabel::None => Ok(data),
        Relabel::OneVsRest { class } => {
            let class = *class;
            let (ids, _) = data.class_target()?;
            let ids = ids.iter().map(|&c| u32::from(c == class)).collect();
            Dataset::new(
                data.x().clone(),
                Target::Classes {
                    ids,
                    classes: Classes::range(2),
                },
                data.feature_names().to_vec(),
                data.target_name().to_string(),
            )
        }
        Relabel::Pair { a, b } => {
            let (a, b) = (*a, *b);
            let (ids, _) = data.class_target()?;
            let rows: Vec<usize> = (0..ids.len())
                .filter(|&i| ids[i] == a || ids[i] == b)
                .collect();
            let ids: Vec<u32> = rows.iter().map(|&i| u32::from(ids[i] == b)).collect();
            let x = data.x().select_rows(&rows)?;
            Dataset::new(
                x,
                Target::Classes {
                    ids,
                    classes: Classes::range(2),
                },
                data.feature_names().to_vec(),
                data.target_name().to_string(),
            )
        }
        Relabel::Group { groups } => {
            let (ids, _) = data.class_target()?;
            let k = groups.iter().max().map_or(0, |m| *m as usize + 1);
            let ids = ids.iter().map(|&c| groups[c as usize]).collect();
            classes_of(&data, ids, Classes::range(k), None)
        }
        Relabel::Within { classes } => {
            let (ids, _) = data.class_target()?;
            let rows: Vec<usize> = (0..ids.len())
                .filter(|&i| classes.contains(&ids[i]))
                .collect();
            let local: Vec<u32> = rows
                .iter()
                .map(|&i| classes.iter().position(|&c| c == ids[i]).expect("kept") as u32)
                .collect();
            classes_of(&data, local, Classes::range(classes.len()), Some(&rows))
        }
        Relabel::Column {
            target,
            exclude,
            classes,
        } => column_target(&data, target, exclude, *classes),
    }
}

/// The dataset with column `target` as its target and the columns in `exclude` dropped.
fn column_target(
    data: &Dataset,
    target: &str,
    exclude: &[String],
    classes: bool,
) -> Result<Dataset> {
    let names = data.feature_names();
    let keep: Vec<usize> = (0..names.len())
        .filter(|&j| !exclude.contains(&names[j]))
        .collect();
    let x = data.x().select_cols(&keep)?;
    let kept: Vec<String> = keep.iter().map(|&j| names[j].clone()).collect();
    let new_target = if target == data.target_name() {
        if classes {
            data.target().clone()
        } else {
            Target::Values(data.value_target()?.into_owned())
        }
    } else {
        let j = names.iter().position(|n| n == target).ok_or_else(|| {
            ModelError::data(
                "multi_output",
                format!("the dataset has no column '{target}'"),
            )
        })?;
        let col: Vec<f32> = data
            .x()
            .data()
            .chunks_exact(names.len())
            .map(|r| r[j])
            .collect();
        if classes {
            if let Some(v) = col.iter().find(|v| v.fract() != 0.0) {
                return Err(ModelError::data(
                    "multi_output",
                    format!(
                        "column '{target}' has non-integer values ({v}): a classifier needs labels; use a regressor"
                    ),
                ));
            }
            let labels: Vec<String> = col.iter().map(|v| v.to_string()).collect();
            let c = Classes::from_labels(&labels);
            let ids = labels
                .iter()
                .map(|l| c.id_of(l).expect("a label of the column"))
                .collect();
            Target::Classes { ids, classes: c }
        } else {
            Target::Values(col)
        }
    };
    Dataset::new(x, new_target, kept, target.to_string())
}

/// Runs one task on the dataset it refers to. Deterministic: the same task on the same
/// data gives the same output wherever it runs.
pub fn run_task(task: &Task, data: &Dataset) -> Result<TaskOutput> {
    let started = std::time::Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    match &task.work {
        Work::Fit {
            estimator,
            train,
            relabel: how,
            eval,
            keep_model,
            predict_eval,
        } => {
            let train_data = relabel(train.select(data)?, how)?;
            let model = estimator.fit(&train_data)?;
            let fit_ms = ms();
            let (score, predictions) = match eval {
                None => (None, None),
                Some(rows) => {
                    let test = relabel(rows.select(data)?, how)?;
                    let p = if *predict_eval {
                        Some(model.predict_proba(test.x())?.to_vec())
                    } else {
                        None
                    };
                    (Some(model.evaluate(&test)?), p)
                }
            };
            let labels = match how {
                Relabel::Column { classes: true, .. } => train_data
                    .classes()
                    .map(|c| c.labels().to_vec())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            Ok(TaskOutput {
                score,
                model: keep_model.then_some(model),
                fit_ms,
                predictions,
                labels,
            })
        }
        Work::Trees { forest, from, to } => {
            let part = forest.fit_trees(data, *from as usize, *to as usize)?;
            Ok(TaskOutput {
                score: None,
                model: Some(FittedModel::Ensemble(part)),
                fit_ms: ms(),
                predictions: None,
                labels: Vec::new(),
            })
        }
        Work::Stack {
            estimator,
            cv,
            members,
            oof,
        } => {
            let meta = stacked_features(data, *cv, *members as usize, oof)?;
            let model = estimator.fit(&meta)?;
            Ok(TaskOutput {
                score: None,
                model: Some(model),
                fit_ms: ms(),
                predictions: None,
                labels: Vec::new(),
            })
        }
    }
}

/// Rebuilds the stacked training set: the out-of-fold probabilities of every member, in row
/// order (for two classes only the second column, as scikit-learn stacks them), with the
/// dataset's target.
fn stacked_features(data: &Dataset, cv: u32, members: usize, oof: &[Vec<f32>]) -> Result<Dataset> {
    let (_, classes) = data.class_target()?;
    let k = classes.len();
    let n = data.n_samples();
    let width = stack_width(k);
    if oof.len() != members * cv as usize {
        return Err(ModelError::data(
            "stacking",
            format!(
                "expected {} fold predictions, got {}",
                members * cv as usize,
                oof.len()
            ),
        ));
    }
    let mut x = vec![0.0f32; n * members * width];
    for m in 0..members {
        for i in 0..cv {
            let test = Rows::Fold {
                k: cv,
                i,
                stratified: true,
                shuffle: None,
                side: Side::Test,
            }
            .indices(data)?
            .unwrap_or_default();
            let p = &oof[m * cv as usize + i as usize];
            if p.len() != test.len() * k {
                return Err(ModelError::data(
                    "stacking",
                    format!(
                        "fold {i} of member {m} has {} probabilities for {} rows",
                        p.len(),
                        test.len()
                    ),
                ));
            }
            for (r, &row) in test.iter().enumerate() {
                let src = &p[r * k + (k - width)..(r + 1) * k];
                let dst = row * members * width + m * width;
                x[dst..dst + width].copy_from_slice(src);
            }
        }
    }
    let names = (0..members)
        .flat_map(|m| (0..width).map(move |c| format!("m{m}_p{c}")))
        .collect();
    Dataset::new(
        crate::matrix::Matrix::from_vec(n, members * width, x)?,
        data.target().clone(),
        names,
        data.target_name().to_string(),
    )
}

/// Columns a member adds to a stacked training set for `k` classes.
pub(crate) fn stack_width(k: usize) -> usize {
    if k == 2 {
        1
    } else {
        k
    }
}

/// A parameter grid: each parameter's name with the values to try.
pub type Grid = Vec<(String, Vec<String>)>;

/// A distribution to sample a parameter from in a random search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    fn check(&self, name: &str) -> Result<()> {
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

    fn sample(&self, rng: &mut Rng) -> String {
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Cross-validation results of a search, as scikit-learn's `cv_results_`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvResults {
    /// Each candidate's parameters.
    pub params: Vec<Vec<(String, String)>>,
    /// Score of each candidate on each fold.
    pub split_scores: Vec<Vec<f64>>,
    /// Mean over folds.
    pub mean_test_score: Vec<f64>,
    /// Population standard deviation over folds.
    pub std_test_score: Vec<f64>,
    /// Rank (1 is best; ties share the lowest rank).
    pub rank_test_score: Vec<u32>,
    /// The best candidate (the first of those ranked 1).
    pub best_index: usize,
}

impl CvResults {
    fn from_scores(params: Vec<Vec<(String, String)>>, split_scores: Vec<Vec<f64>>) -> Self {
        let mean: Vec<f64> = split_scores
            .iter()
            .map(|s| s.iter().sum::<f64>() / s.len() as f64)
            .collect();
        let std = split_scores
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                (s.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / s.len() as f64).sqrt()
            })
            .collect();
        let rank: Vec<u32> = mean
            .iter()
            .map(|m| 1 + mean.iter().filter(|o| *o > m).count() as u32)
            .collect();
        let best_index = rank.iter().position(|&r| r == 1).unwrap_or(0);
        Self {
            params,
            split_scores,
            mean_test_score: mean,
            std_test_score: std,
            rank_test_score: rank,
            best_index,
        }
    }

    /// The best candidate's parameters.
    pub fn best_params(&self) -> &[(String, String)] {
        &self.params[self.best_index]
    }

    /// The best mean score.
    pub fn best_score(&self) -> f64 {
        self.mean_test_score[self.best_index]
    }

    /// A text table: rank, mean, std and parameters of every candidate, best first.
    pub fn table(&self) -> String {
        let mut order: Vec<usize> = (0..self.params.len()).collect();
        order.sort_by_key(|&i| (self.rank_test_score[i], i));
        let mut out = format!(
            "{:>4}  {:>10}  {:>8}  params\n",
            "rank", "mean score", "std"
        );
        for i in order {
            let p = self.params[i]
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            out.push_str(&format!(
                "{:>4}  {:>10.4}  {:>8.4}  {p}\n",
                self.rank_test_score[i], self.mean_test_score[i], self.std_test_score[i]
            ));
        }
        out
    }
}

/// What a job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The final model (the fit, the refit best candidate, or the ensemble), if any.
    pub model: Option<FittedModel>,
    /// A search's cross-validation table.
    pub cv: Option<CvResults>,
    /// Tasks the plan ran.
    pub tasks: usize,
}

/// The next thing a job needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Run these tasks (one stage) and hand their outputs, in task order, to
    /// [`Planner::complete`].
    Run(Vec<Task>),
    /// The job is done.
    Done(Box<JobResult>),
}

/// Expands a job into stages of tasks and reduces their outputs. Its state is the spec
/// plus the outputs of the stages completed so far, so a new driver can rebuild it.
#[derive(Debug, Clone)]
pub struct Planner {
    spec: JobSpec,
    summary: DataSummary,
    candidates: Vec<Vec<(String, String)>>,
    done: Vec<Vec<TaskOutput>>,
}

fn with_params(estimator: &Estimator, params: &[(String, String)]) -> Result<Estimator> {
    let mut e = estimator.clone();
    for (k, v) in params {
        e.set_param(k, v)?;
    }
    e.validate()?;
    Ok(e)
}

/// The grid's candidates in scikit-learn's `ParameterGrid` order: names sorted, the last
/// varying fastest.
fn grid_candidates(grid: &[(String, Vec<String>)]) -> Result<Vec<Vec<(String, String)>>> {
    let mut items: Vec<&(String, Vec<String>)> = grid.iter().collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (name, values) in items {
        if values.is_empty() {
            return Err(ModelError::data(format!("grid '{name}'"), "has no values"));
        }
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((name.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    Ok(out)
}

impl Planner {
    /// Checks the job against the data it will run on (every candidate's parameters,
    /// fold counts, class counts) and prepares its first stage.
    pub fn new(spec: JobSpec, summary: DataSummary) -> Result<Self> {
        let check_cv = |cv: u32| -> Result<()> {
            if cv < 2 || cv as usize > summary.n_samples {
                return Err(ModelError::data(
                    "cv",
                    format!(
                        "needs 2 <= folds <= rows; got {cv} folds of {} rows",
                        summary.n_samples
                    ),
                ));
            }
            Ok(())
        };
        let candidates = match &spec.kind {
            JobKind::GridSearch {
                estimator,
                grid,
                cv,
                ..
            } => {
                check_cv(*cv)?;
                let c = grid_candidates(grid)?;
                for p in &c {
                    with_params(estimator, p)?;
                }
                c
            }
            JobKind::RandomSearch {
                estimator,
                space,
                n_iter,
                cv,
                ..
            } => {
                check_cv(*cv)?;
                if *n_iter == 0 {
                    return Err(ModelError::data("n_iter", "must be at least 1"));
                }
                for (name, d) in space {
                    d.check(name)?;
                }
                let mut rng = Rng::derive(spec.seed, 0x5EA2C4);
                let mut c = Vec::new();
                for _ in 0..*n_iter {
                    let p: Vec<(String, String)> = space
                        .iter()
                        .map(|(name, d)| (name.clone(), d.sample(&mut rng)))
                        .collect();
                    with_params(estimator, &p)?;
                    c.push(p);
                }
                c
            }
            JobKind::MultiSearch { searches, cv, .. } => {
                check_cv(*cv)?;
                if searches.is_empty() {
                    return Err(ModelError::data(
                        "multi_search",
                        "needs at least one estimator",
                    ));
                }
                let mut c = Vec::new();
                for (estimator, grid) in searches {
                    for p in grid_candidates(grid)? {
                        with_params(estimator, &p)?;
                        let mut named = vec![("estimator".to_string(), estimator.name())];
                        named.extend(p);
                        c.push(named);
                    }
                }
                c
            }
            JobKind::Voting { estimators, .. } if estimators.is_empty() => {
                return Err(ModelError::data("voting", "needs at least one estimator"));
            }
            JobKind::Bagging { n_estimators, .. } if *n_estimators == 0 => {
                return Err(ModelError::data(
                    "bagging",
                    "n_estimators must be at least 1",
                ));
            }
            JobKind::OneVsRest { .. } | JobKind::OneVsOne { .. } if summary.n_classes < 2 => {
                return Err(ModelError::data(
                    "one_vs_rest",
                    "needs at least two classes",
                ));
            }
            JobKind::Voting { estimators, soft } => {
                let regressors = estimators.iter().filter(|e| e.is_regressor()).count();
                if regressors > 0 && regressors < estimators.len() {
                    return Err(ModelError::data(
                        "voting",
                        "mixes classifiers and regressors",
                    ));
                }
                if regressors > 0 && !soft {
                    return Err(ModelError::data(
                        "voting",
                        "regressors are averaged: set soft = true",
                    ));
                }
                Vec::new()
            }
            JobKind::Stacking {
                estimators,
                final_estimator,
                cv,
            } => {
                check_cv(*cv)?;
                if estimators.is_empty() {
                    return Err(ModelError::data("stacking", "needs at least one estimator"));
                }
                if summary.n_classes < 2 {
                    return Err(ModelError::data("stacking", "needs at least two classes"));
                }
                if let Some(e) = estimators
                    .iter()
                    .chain([final_estimator])
                    .find(|e| e.is_regressor())
                {
                    return Err(ModelError::data(
                        "stacking",
                        format!("stacks classifiers; {} is a regressor", e.name()),
                    ));
                }
                Vec::new()
            }
            JobKind::Cascade {
                groups,
                router,
                estimator,
            } => {
                cascade_groups(groups, &summary)?;
                if router.is_regressor() || estimator.is_regressor() {
                    return Err(ModelError::data("cascade", "needs classifiers"));
                }
                Vec::new()
            }
            JobKind::MultiOutput { targets, .. } => {
                if targets.is_empty() {
                    return Err(ModelError::data(
                        "multi_output",
                        "needs at least one target",
                    ));
                }
                for (i, t) in targets.iter().enumerate() {
                    if targets[..i].contains(t) {
                        return Err(ModelError::data(
                            "multi_output",
                            format!("target '{t}' is named twice"),
                        ));
                    }
                    if *t != summary.target && !summary.features.contains(t) {
                        return Err(ModelError::data(
                            "multi_output",
                            format!(
                                "the dataset has no column '{t}'; columns: {}, {}",
                                summary.features.join(", "),
                                summary.target
                            ),
                        ));
                    }
                }
                if summary.features.iter().all(|f| targets.contains(f)) {
                    return Err(ModelError::data(
                        "multi_output",
                        "every feature column is a target: no features are left",
                    ));
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        for e in spec.kind.estimators() {
            e.validate()?;
        }
        if let JobKind::MultiSearch { searches, .. } = &spec.kind {
            let regressors = searches.iter().filter(|(e, _)| e.is_regressor()).count();
            if regressors > 0 && regressors < searches.len() {
                return Err(ModelError::data(
                    "multi_search",
                    "mixes classifiers (accuracy) and regressors (R²), whose scores do not compare",
                ));
            }
        }
        if let JobKind::OneVsRest { estimator } | JobKind::OneVsOne { estimator } = &spec.kind {
            if estimator.is_regressor() {
                return Err(ModelError::data(
                    "one_vs_rest",
                    format!("needs a classifier; {} is a regressor", estimator.name()),
                ));
            }
        }
        if let Some(e) = spec
            .kind
            .estimators()
            .into_iter()
            .find(|e| !e.is_regressor())
        {
            if summary.n_classes == 0 && !matches!(spec.kind, JobKind::MultiOutput { .. }) {
                return Err(ModelError::data(
                    "job",
                    format!(
                        "{} is a classifier, but target '{}' is continuous; use a regressor",
                        e.name(),
                        summary.target
                    ),
                ));
            }
        }
        Ok(Self {
            spec,
            summary,
            candidates,
            done: Vec::new(),
        })
    }

    /// Rebuilds a planner from the outputs of the stages already completed.
    pub fn resume(spec: JobSpec, summary: DataSummary, done: Vec<Vec<TaskOutput>>) -> Result<Self> {
        let mut p = Self::new(spec, summary)?;
        p.done = done;
        Ok(p)
    }

    /// The job.
    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    /// Stages completed so far.
    pub fn stages_done(&self) -> usize {
        self.done.len()
    }

    /// Records the outputs of the current stage (in task order) and says what comes next.
    pub fn complete(&mut self, outputs: Vec<TaskOutput>) -> Result<Step> {
        self.done.push(outputs);
        self.step()
    }

    fn seeded(&self, e: &Estimator) -> Estimator {
        let mut e = e.clone();
        e.seed_unset(self.spec.seed);
        e
    }

    /// Fold `i` of `cv`: stratified for a classifier, plain k-fold for a regressor (as
    /// scikit-learn's `cv=k` chooses).
    fn fold(&self, cv: u32, i: u32, side: Side, stratified: bool) -> Rows {
        Rows::Fold {
            k: cv,
            i,
            stratified,
            shuffle: None,
            side,
        }
    }

    /// One fit per fold of `cv`, scored on the fold (and returning its probabilities when
    /// `predict_eval`); folds are stratified for a classifier.
    fn fold_fits(&self, e: &Estimator, cv: u32, predict_eval: bool) -> Vec<Work> {
        let strat = !e.is_regressor();
        (0..cv)
            .map(|i| Work::Fit {
                estimator: e.clone(),
                train: self.fold(cv, i, Side::Train, strat),
                relabel: Relabel::None,
                eval: Some(self.fold(cv, i, Side::Test, strat)),
                keep_model: false,
                predict_eval,
            })
            .collect()
    }

    fn keep(&self, stage: u32, works: Vec<Work>) -> Step {
        Step::Run(
            works
                .into_iter()
                .enumerate()
                .map(|(i, work)| Task {
                    stage,
                    index: i as u32,
                    work,
                })
                .collect(),
        )
    }

    fn fit_all(estimator: Estimator) -> Work {
        Work::Fit {
            estimator,
            train: Rows::All,
            relabel: Relabel::None,
            eval: None,
            keep_model: true,
            predict_eval: false,
        }
    }

    fn models(&self, stage: usize) -> Result<Vec<FittedModel>> {
        self.done[stage]
            .iter()
            .map(|o| {
                o.model
                    .clone()
                    .ok_or_else(|| ModelError::data("task output", "a kept model is missing"))
            })
            .collect()
    }

    fn tasks_run(&self) -> usize {
        self.done.iter().map(Vec::len).sum()
    }

    fn ensemble(&self, combine: Combine, members: Vec<FittedModel>) -> Result<FittedModel> {
        let first = members
            .first()
            .ok_or_else(|| ModelError::data("ensemble", "no members"))?;
        let n_features = first.n_features();
        // Regressors average their values, whatever the target's labels are.
        let n_classes = if first.is_regressor() {
            0
        } else {
            self.summary.n_classes
        };
        Ok(FittedModel::Ensemble(FittedEnsemble {
            combine,
            members,
            n_classes,
            n_features,
        }))
    }

    fn cv_results(&self, cv: u32) -> Result<CvResults> {
        let outputs = &self.done[0];
        let k = cv as usize;
        if outputs.len() != self.candidates.len() * k {
            return Err(ModelError::data(
                "search",
                format!(
                    "expected {} fold scores, got {}",
                    self.candidates.len() * k,
                    outputs.len()
                ),
            ));
        }
        let scores = outputs
            .chunks(k)
            .map(|c| {
                c.iter()
                    .map(|o| {
                        o.score.ok_or_else(|| {
                            ModelError::data("task output", "a fold score is missing")
                        })
                    })
                    .collect::<Result<Vec<f64>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CvResults::from_scores(self.candidates.clone(), scores))
    }

    /// The estimator of a search candidate, with the candidate's parameters.
    fn candidate(&self, p: &[(String, String)]) -> Result<Estimator> {
        let e = match &self.spec.kind {
            JobKind::GridSearch { estimator, .. } | JobKind::RandomSearch { estimator, .. } => {
                with_params(estimator, p)?
            }
            JobKind::MultiSearch { searches, .. } => {
                let (name, rest) = p
                    .split_first()
                    .filter(|(k, _)| k.0 == "estimator")
                    .ok_or_else(|| {
                        ModelError::data("multi_search", "a candidate without its estimator")
                    })?;
                let (estimator, _) = searches
                    .iter()
                    .find(|(e, _)| e.name() == name.1)
                    .ok_or_else(|| {
                        ModelError::data("multi_search", format!("no estimator '{}'", name.1))
                    })?;
                with_params(estimator, rest)?
            }
            _ => return Err(ModelError::data("job", "not a search")),
        };
        Ok(self.seeded(&e))
    }

    /// A search: one scoring task per candidate and fold, then the refit of the best.
    fn search_step(&self, stage: u32, cv: u32, refit: bool) -> Result<Step> {
        if stage == 0 {
            let mut works = Vec::new();
            for p in &self.candidates {
                works.extend(self.fold_fits(&self.candidate(p)?, cv, false));
            }
            return Ok(self.keep(0, works));
        }
        let table = self.cv_results(cv)?;
        if refit && stage == 1 {
            let e = self.candidate(table.best_params())?;
            return Ok(self.keep(1, vec![Self::fit_all(e)]));
        }
        let model = if refit { self.models(1)?.pop() } else { None };
        Ok(Step::Done(Box::new(JobResult {
            model,
            cv: Some(table),
            tasks: self.tasks_run(),
        })))
    }

    /// The estimator the job's final model is: a search's best candidate, else the job's
    /// (first) estimator.
    pub fn final_estimator(&self, cv: Option<&CvResults>) -> Result<Estimator> {
        match (&self.spec.kind, cv) {
            (
                JobKind::GridSearch { .. }
                | JobKind::RandomSearch { .. }
                | JobKind::MultiSearch { .. },
                Some(cv),
            ) => self.candidate(cv.best_params()),
            (JobKind::MultiSearch { searches, .. }, None) => Ok(searches[0].0.clone()),
            (
                JobKind::Fit { estimator }
                | JobKind::GridSearch { estimator, .. }
                | JobKind::RandomSearch { estimator, .. }
                | JobKind::OneVsRest { estimator }
                | JobKind::OneVsOne { estimator }
                | JobKind::Bagging { estimator, .. }
                | JobKind::Cascade { estimator, .. }
                | JobKind::MultiOutput { estimator, .. },
                _,
            ) => Ok(estimator.clone()),
            (JobKind::Voting { estimators, .. }, _) => Ok(estimators[0].clone()),
            (
                JobKind::Stacking {
                    final_estimator, ..
                },
                _,
            ) => Ok(final_estimator.clone()),
        }
    }

    /// What the job needs now: the first stage before any [`Planner::complete`].
    pub fn step(&self) -> Result<Step> {
        let stage = self.done.len() as u32;
        match (&self.spec.kind, stage) {
            (JobKind::Fit { estimator }, 0) => Ok(match self.seeded(estimator) {
                Estimator::RandomForest(forest)
                | Estimator::RandomForestRegressor(
                    crate::ensemble::RandomForestRegressorParams { forest },
                ) => {
                    let n = forest.n_estimators;
                    let works = (0..n)
                        .step_by(TREES_PER_TASK)
                        .map(|from| Work::Trees {
                            forest: forest.clone(),
                            from: from as u32,
                            to: (from + TREES_PER_TASK).min(n) as u32,
                        })
                        .collect();
                    self.keep(0, works)
                }
                e => self.keep(0, vec![Self::fit_all(e)]),
            }),
            (JobKind::Fit { .. }, _) => {
                let mut models = self.models(0)?;
                let model = if models.len() == 1 {
                    models.pop()
                } else {
                    let parts = models
                        .into_iter()
                        .map(|m| match m {
                            FittedModel::Ensemble(e) => Ok(e),
                            _ => Err(ModelError::data("forest", "a batch is not an ensemble")),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Some(FittedModel::Ensemble(FittedEnsemble::concat(parts)?))
                };
                Ok(Step::Done(Box::new(JobResult {
                    model,
                    cv: None,
                    tasks: self.tasks_run(),
                })))
            }
            (
                JobKind::GridSearch { cv, refit, .. }
                | JobKind::RandomSearch { cv, refit, .. }
                | JobKind::MultiSearch { cv, refit, .. },
                s,
            ) => self.search_step(s, *cv, *refit),
            (JobKind::OneVsRest { estimator }, 0) => {
                let e = self.seeded(estimator);
                let classes: Vec<u32> = if self.summary.n_classes == 2 {
                    vec![1]
                } else {
                    (0..self.summary.n_classes as u32).collect()
                };
                let works = classes
                    .into_iter()
                    .map(|class| Work::Fit {
                        estimator: e.clone(),
                        train: Rows::All,
                        relabel: Relabel::OneVsRest { class },
                        eval: None,
                        keep_model: true,
                        predict_eval: false,
                    })
                    .collect();
                Ok(self.keep(0, works))
            }
            (JobKind::OneVsOne { estimator }, 0) => {
                let e = self.seeded(estimator);
                let works = class_pairs(self.summary.n_classes)
                    .into_iter()
                    .map(|(a, b)| Work::Fit {
                        estimator: e.clone(),
                        train: Rows::All,
                        relabel: Relabel::Pair { a, b },
                        eval: None,
                        keep_model: true,
                        predict_eval: false,
                    })
                    .collect();
                Ok(self.keep(0, works))
            }
            (
                JobKind::Bagging {
                    estimator,
                    n_estimators,
                },
                0,
            ) => {
                let works = (0..*n_estimators)
                    .map(|i| {
                        let mut e = estimator.clone();
                        e.seed_unset(Rng::derive(self.spec.seed, 2 * u64::from(i)).next_u64());
                        Work::Fit {
                            estimator: e,
                            train: Rows::Bootstrap {
                                seed: Rng::derive(self.spec.seed, 2 * u64::from(i) + 1).next_u64(),
                            },
                            relabel: Relabel::None,
                            eval: None,
                            keep_model: true,
                            predict_eval: false,
                        }
                    })
                    .collect();
                Ok(self.keep(0, works))
            }
            (JobKind::Voting { estimators, .. }, 0) => {
                let works = estimators
                    .iter()
                    .map(|e| Self::fit_all(self.seeded(e)))
                    .collect();
                Ok(self.keep(0, works))
            }
            (JobKind::Stacking { .. }, s) => self.stacking_step(s),
            (JobKind::Cascade { .. }, s) => self.cascade_step(s),
            (JobKind::MultiOutput { .. }, s) => self.multi_output_step(s),
            (
                JobKind::OneVsRest { .. }
                | JobKind::OneVsOne { .. }
                | JobKind::Bagging { .. }
                | JobKind::Voting { .. },
                _,
            ) => {
                let combine = match &self.spec.kind {
                    JobKind::OneVsRest { .. } => Combine::OneVsRest,
                    JobKind::OneVsOne { .. } => Combine::OneVsOne,
                    JobKind::Voting { soft: false, .. } => Combine::Vote,
                    _ => Combine::Average,
                };
                Ok(Step::Done(Box::new(JobResult {
                    model: Some(self.ensemble(combine, self.models(0)?)?),
                    cv: None,
                    tasks: self.tasks_run(),
                })))
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

/// The class ids of each cascade group; every class in exactly one group, at least two
/// groups.
fn cascade_groups(groups: &[Vec<String>], summary: &DataSummary) -> Result<Vec<Vec<u32>>> {
    if summary.n_classes < 2 {
        return Err(ModelError::data("cascade", "needs at least two classes"));
    }
    if groups.len() < 2 {
        return Err(ModelError::data("cascade", "needs at least two groups"));
    }
    let mut seen = vec![false; summary.n_classes];
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        if g.is_empty() {
            return Err(ModelError::data("cascade", "a group has no classes"));
        }
        let mut ids = Vec::with_capacity(g.len());
        for label in g {
            let c = summary.class_id(label)?;
            if std::mem::replace(&mut seen[c as usize], true) {
                return Err(ModelError::data(
                    "cascade",
                    format!("class '{label}' is in two groups"),
                ));
            }
            ids.push(c);
        }
        out.push(ids);
    }
    if let Some(c) = seen.iter().position(|s| !s) {
        return Err(ModelError::data(
            "cascade",
            format!("class '{}' is in no group", summary.labels[c]),
        ));
    }
    Ok(out)
}

impl Planner {
    /// Stacking: every member's out-of-fold fits and full fit (stage 0), the final
    /// estimator on the out-of-fold probabilities (stage 1).
    fn stacking_step(&self, stage: u32) -> Result<Step> {
        let JobKind::Stacking {
            estimators,
            final_estimator,
            cv,
        } = &self.spec.kind
        else {
            unreachable!("a stacking job")
        };
        let (m, cv) = (estimators.len(), *cv);
        match stage {
            0 => {
                let mut works = Vec::new();
                for e in estimators {
                    works.extend(self.fold_fits(&self.seeded(e), cv, true));
                }
                works.extend(estimators.iter().map(|e| Self::fit_all(self.seeded(e))));
                Ok(self.keep(0, works))
            }
            1 => {
                let oof = self.done[0][..m * cv as usize]
                    .iter()
                    .map(|o| {
                        o.predictions.clone().ok_or_else(|| {
                            ModelError::data("task output", "out-of-fold probabilities are missing")
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(self.keep(
                    1,
                    vec![Work::Stack {
                        estimator: self.seeded(final_estimator),
                        cv,
                        members: m as u32,
                        oof,
                    }],
                ))
            }
            _ => {
                let members = self.done[0][m * cv as usize..]
                    .iter()
                    .map(|o| {
                        o.model.clone().ok_or_else(|| {
                            ModelError::data("task output", "a member's model is missing")
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let n_features = members.first().map_or(0, Classifier::n_features);
                let final_estimator = Box::new(self.models(1)?.remove(0));
                Ok(Step::Done(Box::new(JobResult {
                    model: Some(FittedModel::Stacking(crate::meta::FittedStacking {
                        members,
                        final_estimator,
                        n_classes: self.summary.n_classes,
                        n_features,
                    })),
                    cv: None,
                    tasks: self.tasks_run(),
                })))
            }
        }
    }

    /// A cascade: the router and each group's classifier, all in one stage.
    fn cascade_step(&self, stage: u32) -> Result<Step> {
        let JobKind::Cascade {
            groups,
            router,
            estimator,
        } = &self.spec.kind
        else {
            unreachable!("a cascade job")
        };
        let ids = cascade_groups(groups, &self.summary)?;
        let mut of = vec![0u32; self.summary.n_classes];
        for (g, classes) in ids.iter().enumerate() {
            for &c in classes {
                of[c as usize] = g as u32;
            }
        }
        let fit = |e: &Estimator, relabel: Relabel| Work::Fit {
            estimator: self.seeded(e),
            train: Rows::All,
            relabel,
            eval: None,
            keep_model: true,
            predict_eval: false,
        };
        if stage == 0 {
            let mut works = vec![fit(router, Relabel::Group { groups: of })];
            works.extend(
                ids.iter()
                    .filter(|c| c.len() > 1)
                    .map(|c| fit(estimator, Relabel::Within { classes: c.clone() })),
            );
            return Ok(self.keep(0, works));
        }
        let mut models = self.models(0)?.into_iter();
        let router = Box::new(models.next().expect("the router's task"));
        let members = ids
            .iter()
            .map(|c| if c.len() > 1 { models.next() } else { None })
            .collect();
        Ok(Step::Done(Box::new(JobResult {
            model: Some(FittedModel::Cascade(crate::meta::FittedCascade {
                n_features: router.n_features(),
                router,
                groups: ids,
                members,
                n_classes: self.summary.n_classes,
            })),
            cv: None,
            tasks: self.tasks_run(),
        })))
    }

    /// Multi-output: one task per target.
    fn multi_output_step(&self, stage: u32) -> Result<Step> {
        let JobKind::MultiOutput { estimator, targets } = &self.spec.kind else {
            unreachable!("a multi-output job")
        };
        if stage == 0 {
            let e = self.seeded(estimator);
            let works = targets
                .iter()
                .map(|t| Work::Fit {
                    estimator: e.clone(),
                    train: Rows::All,
                    relabel: Relabel::Column {
                        target: t.clone(),
                        exclude: targets.clone(),
                        classes: !e.is_regressor(),
                    },
                    eval: None,
                    keep_model: true,
                    predict_eval: false,
                })
                .collect();
            return Ok(self.keep(0, works));
        }
        Ok(Step::Done(Box::new(JobResult {
            model: Some(FittedModel::MultiOutput(crate::meta::FittedMultiOutput {
                targets: targets.clone(),
                features: self
                    .summary
                    .features
                    .iter()
                    .filter(|f| !targets.contains(f))
                    .cloned()
                    .collect(),
                labels: self.done[0].iter().map(|o| o.labels.clone()).collect(),
                members: self.models(0)?,
            })),
            cv: None,
            tasks: self.tasks_run(),
        })))
    }
}

/// Every pair `(a, b)` of `n` classes with `a < b`, in scikit-learn's order.
pub fn class_pairs(n: usize) -> Vec<(u32, u32)> {
    let n = n as u32;
    (0..n)
        .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
        .collect()
}

/// Progress of a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Stage running.
    pub stage: usize,
    /// Tasks of the job done so far.
    pub done: usize,
    /// Tasks of the job known so far (later stages add theirs when they start).
    pub total: usize,
}

/// Runs the tasks of one stage.
pub trait Executor {
    /// Runs `tasks` on `data`, calling `done` after each task finishes; returns the
    /// outputs in task order, or the first error.
    fn run(
        &self,
        tasks: &[Task],
        data: &Dataset,
        done: &(dyn Fn() + Sync),
    ) -> Result<Vec<TaskOutput>>;
}

/// Runs tasks on a pool of threads in this process, one task per thread at a time.
#[derive(Debug, Clone, Copy)]
pub struct LocalExecutor {
    threads: usize,
}

impl LocalExecutor {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
        }
    }

    /// One thread per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Executor for LocalExecutor {
    fn run(
        &self,
        tasks: &[Task],
        data: &Dataset,
        done: &(dyn Fn() + Sync),
    ) -> Result<Vec<TaskOutput>> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let slots: Vec<Mutex<Option<Result<TaskOutput>>>> =
            tasks.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..self.threads.min(tasks.len()) {
                s.spawn(|| loop {
                    if failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(task) = tasks.get(i) else { break };
                    let out = run_task(task, data);
                    if out.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    *slots[i].lock().expect("task slot") = Some(out);
                    done();
                });
            }
        });
        let mut outputs = Vec::with_capacity(tasks.len());
        for s in slots {
            match s.into_inner().expect("task slot") {
                Some(Ok(o)) => outputs.push(o),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        if outputs.len() != tasks.len() {
            return Err(ModelError::data("job", "a task did not run"));
        }
        Ok(outputs)
    }
}

/// Runs a whole job on `data` with `executor`, reporting progress after every task.
pub fn run_job(
    spec: &JobSpec,
    data: &Dataset,
    executor: &dyn Executor,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<JobResult> {
    let mut planner = Planner::new(spec.clone(), DataSummary::of(data)?)?;
    let mut step = planner.step()?;
    let mut before = 0;
    loop {
        match step {
            Step::Done(result) => return Ok(*result),
            Step::Run(tasks) => {
                let stage = planner.stages_done();
                let total = before + tasks.len();
                let count = AtomicUsize::new(before);
                let tick = || {
                    let done = count.fetch_add(1, Ordering::SeqCst) + 1;
                    progress(Progress { stage, done, total });
                };
                let outputs = executor.run(&tasks, data, &tick)?;
                before = total;
                step = planner.complete(outputs)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::iris;

    fn lr() -> Estimator {
        Estimator::from_name("logistic_regression").unwrap()
    }

    #[test]
    fn grid_candidates_follow_parameter_grid_order() {
        let c = grid_candidates(&[
            ("max_iter".into(), vec!["100".into(), "200".into()]),
            ("C".into(), vec!["1".into(), "10".into()]),
        ])
        .unwrap();
        let flat: Vec<String> = c
            .iter()
            .map(|p| {
                p.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        assert_eq!(
            flat,
            [
                "C=1,max_iter=100",
                "C=1,max_iter=200",
                "C=10,max_iter=100",
                "C=10,max_iter=200"
            ]
        );
        assert!(grid_candidates(&[("C".into(), vec![])]).is_err());
    }

    #[test]
    fn bad_jobs_are_refused_before_any_task_runs() {
        let s = DataSummary::of(&iris()).unwrap();
        let grid = |name: &str, v: &str, cv: u32| JobSpec {
            kind: JobKind::GridSearch {
                estimator: lr(),
                grid: vec![(name.into(), vec![v.into()])],
                cv,
                refit: true,
            },
            seed: 0,
        };
        assert!(Planner::new(grid("C", "1", 5), s.clone()).is_ok());
        assert!(Planner::new(grid("C", "-1", 5), s.clone())
            .unwrap_err()
            .to_string()
            .contains('C'));
        assert!(Planner::new(grid("gamma", "1", 5), s.clone()).is_err());
        assert!(Planner::new(grid("C", "1", 1), s.clone()).is_err());
        assert!(Planner::new(grid("C", "1", 151), s.clone()).is_err());
        let voting = JobSpec {
            kind: JobKind::Voting {
                estimators: vec![],
                soft: true,
            },
            seed: 0,
        };
        assert!(Planner::new(voting, s).is_err());
    }

    #[test]
    fn a_search_is_one_task_per_candidate_and_fold_then_a_refit() {
        let data = iris();
        let spec = JobSpec {
            kind: JobKind::GridSearch {
                estimator: lr(),
                grid: vec![("C".into(), vec!["0.01".into(), "1".into(), "100".into()])],
                cv: 5,
                refit: true,
            },
            seed: 3,
        };
        let mut p = Planner::new(spec.clone(), DataSummary::of(&data).unwrap()).unwrap();
        let Step::Run(tasks) = p.step().unwrap() else {
            panic!()
        };
        assert_eq!(tasks.len(), 15);
        // Tasks carry row selections, not data.
        let bytes = rmp_serde::to_vec_named(&tasks[0]).unwrap();
        assert!(bytes.len() < 1024, "{} bytes", bytes.len());
        let outputs: Vec<TaskOutput> = tasks.iter().map(|t| run_task(t, &data).unwrap()).collect();
        let Step::Run(refit) = p.complete(outputs).unwrap() else {
            panic!()
        };
        assert_eq!(refit.len(), 1);
        let outputs: Vec<TaskOutput> = refit.iter().map(|t| run_task(t, &data).unwrap()).collect();
        let Step::Done(result) = p.complete(outputs).unwrap() else {
            panic!()
        };
        let cv = result.cv.unwrap();
        assert_eq!(result.tasks, 16);
        assert_eq!(
            cv.best_params(),
            &[("C".to_string(), "100".to_string())][..]
        );
        assert!(cv.mean_test_score[0] < cv.mean_test_score[2]);
        assert_eq!(cv.rank_test_score[cv.best_index], 1);
        assert!(cv.table().lines().nth(1).unwrap().contains("C=100"));
        // The same result from a thread pool, in one call.
        let again = run_job(&spec, &data, &LocalExecutor::new(3), &|_| {}).unwrap();
        assert_eq!(again.cv.unwrap(), cv);
        assert_eq!(again.model, result.model);
    }

    #[test]
    fn thread_count_does_not_change_any_result() {
        let data = iris();
        let mut forest = Estimator::from_name("random_forest").unwrap();
        forest.set_param("n_estimators", "25").unwrap();
        let tree = Estimator::from_name("decision_tree").unwrap();
        let jobs = [
            JobKind::Fit { estimator: forest },
            JobKind::OneVsRest { estimator: lr() },
            JobKind::OneVsOne { estimator: lr() },
            JobKind::Bagging {
                estimator: tree.clone(),
                n_estimators: 7,
            },
            JobKind::Voting {
                estimators: vec![lr(), tree, Estimator::from_name("gaussian_nb").unwrap()],
                soft: false,
            },
            JobKind::MultiSearch {
                searches: vec![
                    (lr(), vec![("C".into(), vec!["0.1".into(), "1".into()])]),
                    (
                        Estimator::from_name("decision_tree").unwrap(),
                        vec![("max_depth".into(), vec!["2".into(), "4".into()])],
                    ),
                ],
                cv: 3,
                refit: true,
            },
            JobKind::RandomSearch {
                estimator: lr(),
                space: vec![(
                    "C".into(),
                    Distribution::LogUniform {
                        low: 0.01,
                        high: 100.0,
                    },
                )],
                n_iter: 4,
                cv: 3,
                refit: false,
            },
            JobKind::Stacking {
                estimators: vec![lr(), Estimator::from_name("gaussian_nb").unwrap()],
                final_estimator: lr(),
                cv: 3,
            },
            JobKind::Cascade {
                groups: vec![
                    vec!["setosa".into()],
                    vec!["versicolor".into(), "virginica".into()],
                ],
                router: lr(),
                estimator: Estimator::from_name("decision_tree").unwrap(),
            },
        ];
        for kind in jobs {
            let spec = JobSpec { kind, seed: 11 };
            let seen = Mutex::new(Vec::new());
            let one = run_job(&spec, &data, &LocalExecutor::new(1), &|p| {
                seen.lock().unwrap().push(p)
            })
            .unwrap();
            let four = run_job(&spec, &data, &LocalExecutor::new(4), &|_| {}).unwrap();
            assert_eq!(one, four, "{}", spec.describe());
            let seen = seen.into_inner().unwrap();
            assert_eq!(seen.len(), one.tasks, "one progress report per task");
            assert_eq!(seen.last().unwrap().done, one.tasks);
            if let Some(m) = &one.model {
                let (y, _) = data.class_target().unwrap();
                assert!(m.score(data.x(), y).unwrap() > 0.9, "{}", spec.describe());
            }
        }
    }

    #[test]
    fn a_cascade_multiplies_group_and_within_group_probabilities() {
        let data = iris();
        let spec = JobSpec {
            kind: JobKind::Cascade {
                groups: vec![
                    vec!["virginica".into()],
                    vec!["setosa".into(), "versicolor".into()],
                ],
                router: lr(),
                estimator: lr(),
            },
            seed: 0,
        };
        let result = run_job(&spec, &data, &LocalExecutor::new(2), &|_| {}).unwrap();
        // The router and one classifier for the group of two; none for the singleton.
        assert_eq!(result.tasks, 2);
        let FittedModel::Cascade(c) = result.model.as_ref().unwrap() else {
            panic!("a cascade")
        };
        assert_eq!(c.groups, vec![vec![2], vec![0, 1]]);
        assert!(c.members[0].is_none());
        let p = c.predict_proba(data.x()).unwrap();
        let g = c.router.predict_proba(data.x()).unwrap();
        let w = c.members[1]
            .as_ref()
            .unwrap()
            .predict_proba(data.x())
            .unwrap();
        for i in 0..150 {
            let (p, g, w) = (p.row(i), g.row(i), w.row(i));
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert_eq!(p[2], g[0]);
            assert!((p[0] - g[1] * w[0]).abs() < 1e-7);
        }
        let (y, _) = data.class_target().unwrap();
        assert!(c.score(data.x(), y).unwrap() > 0.95);
    }

    #[test]
    fn bad_meta_estimators_are_refused_with_the_reason() {
        let s = DataSummary::of(&iris()).unwrap();
        let err = |kind: JobKind| {
            Planner::new(JobSpec { kind, seed: 0 }, s.clone())
                .unwrap_err()
                .to_string()
        };
        let cascade = |groups: Vec<Vec<&str>>| JobKind::Cascade {
            groups: groups
                .into_iter()
                .map(|g| g.into_iter().map(String::from).collect())
                .collect(),
            router: lr(),
            estimator: lr(),
        };
        assert!(err(cascade(vec![vec!["setosa"], vec!["versicolor"]]))
            .contains("'virginica' is in no group"));
        assert!(err(cascade(vec![
            vec!["setosa", "virginica"],
            vec!["virginica", "versicolor"]
        ]))
        .contains("in two groups"));
        assert!(err(cascade(vec![vec!["setosa"], vec!["rose"]])).contains("'rose' is not a class"));
        let multi = |targets: &[&str]| JobKind::MultiOutput {
            estimator: Estimator::from_name("ridge").unwrap(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
        };
        assert!(err(multi(&["petal_area"])).contains("no column 'petal_area'"));
        assert!(err(multi(&["sepal_length", "sepal_length"])).contains("named twice"));
        assert!(err(multi(&[
            "sepal_length",
            "sepal_width",
            "petal_length",
            "petal_width"
        ]))
        .contains("no features are left"));
        let stacking = JobKind::Stacking {
            estimators: vec![Estimator::from_name("ridge").unwrap()],
            final_estimator: lr(),
            cv: 5,
        };
        assert!(err(stacking).contains("ridge is a regressor"));
        let ridge = Estimator::from_name("ridge").unwrap();
        assert!(err(JobKind::OneVsRest {
            estimator: ridge.clone()
        })
        .contains("needs a classifier"));
        assert!(err(JobKind::MultiSearch {
            searches: vec![(lr(), vec![]), (ridge.clone(), vec![])],
            cv: 3,
            refit: true
        })
        .contains("do not compare"));
        // Parameters are checked as a direct fit checks them.
        let mut forest = Estimator::from_name("random_forest_regressor").unwrap();
        forest.set_param("criterion", "gini").unwrap();
        assert!(err(JobKind::Fit { estimator: forest }).contains("squared_error"));
        // A regressor on a classification target with text labels fails in its task;
        // a classifier on a continuous target is refused up front.
        let mut values = s.clone();
        values.n_classes = 0;
        values.labels.clear();
        let e = Planner::new(
            JobSpec {
                kind: JobKind::Fit { estimator: lr() },
                seed: 0,
            },
            values,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is continuous; use a regressor"), "{e}");
    }

    #[test]
    fn regressors_bagged_on_integer_labels_average_values() {
        // Digits' labels are integers: a regressor reads them as numbers.
        let digits = crate::io::load_csv(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../data/digits.csv"),
            &crate::io::CsvOptions::default(),
        )
        .unwrap();
        let mut tree = Estimator::from_name("decision_tree_regressor").unwrap();
        tree.set_param("max_depth", "6").unwrap();
        let spec = JobSpec {
            kind: JobKind::Bagging {
                estimator: tree,
                n_estimators: 4,
            },
            seed: 0,
        };
        let m = run_job(&spec, &digits, &LocalExecutor::new(2), &|_| {})
            .unwrap()
            .model
            .unwrap();
        assert!(m.is_regressor());
        assert!(m.evaluate(&digits).unwrap() > 0.5);
        // A multi-output classifier refuses a continuous column.
        let spec = JobSpec {
            kind: JobKind::MultiOutput {
                estimator: lr(),
                targets: vec!["petal_width".into()],
            },
            seed: 0,
        };
        let e = run_job(&spec, &iris(), &LocalExecutor::new(1), &|_| {}).unwrap_err();
        assert!(e.to_string().contains("non-integer values"), "{e}");
    }

    #[test]
    fn a_failing_task_fails_the_job_with_its_error() {
        // Bootstrap samples of 50 setosa rows have a single class: logistic regression
        // refuses them.
        let setosa = iris().select(&(0..50).collect::<Vec<_>>()).unwrap();
        let spec = JobSpec {
            kind: JobKind::Bagging {
                estimator: lr(),
                n_estimators: 4,
            },
            seed: 0,
        };
        let e = run_job(&spec, &setosa, &LocalExecutor::new(2), &|_| {}).unwrap_err();
        assert!(e.to_string().contains("two classes"), "{e}");
    }
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Rows.
    pub n_samples: usize,
    /// Classes of the target.
    pub n_classes: usize,
}

impl DataSummary {
    /// The summary of a classification dataset.
    pub fn of(data: &Dataset) -> Result<Self> {
        let (_, classes) = data.class_target()?;
        Ok(Self {
            n_samples: data.n_samples(),
            n_classes: classes.len(),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

fn relabel(data: Dataset, how: Relabel) -> Result<Dataset> {
    match how {
        Relabel::None => Ok(data),
        Relabel::OneVsRest { class } => {
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
    }
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
        } => {
            let train_data = relabel(train.select(data)?, *how)?;
            let model = estimator.fit(&train_data)?;
            let fit_ms = ms();
            let score = match eval {
                None => None,
                Some(rows) => {
                    let test = relabel(rows.select(data)?, *how)?;
                    let (y, _) = test.class_target()?;
                    Some(model.score(test.x(), y)?)
                }
            };
            Ok(TaskOutput {
                score,
                model: keep_model.then_some(model),
                fit_ms,
            })
        }
        Work::Trees { forest, from, to } => {
            let part = forest.fit_trees(data, *from as usize, *to as usize)?;
            Ok(TaskOutput {
                score: None,
                model: Some(FittedModel::Ensemble(part)),
                fit_ms: ms(),
            })
        }
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
    /// by majority vote (scikit-learn's `VotingClassifier`).
    Voting {
        /// The members.
        estimators: Vec<Estimator>,
        /// Average probabilities instead of counting votes.
        soft: bool,
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
            _ => Vec::new(),
        };
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

    fn fold(&self, cv: u32, i: u32, side: Side) -> Rows {
        Rows::Fold {
            k: cv,
            i,
            stratified: true,
            shuffle: None,
            side,
        }
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
        let n_features = members
            .first()
            .map(Classifier::n_features)
            .ok_or_else(|| ModelError::data("ensemble", "no members"))?;
        Ok(FittedModel::Ensemble(FittedEnsemble {
            combine,
            members,
            n_classes: self.summary.n_classes,
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
                let e = self.candidate(p)?;
                for i in 0..cv {
                    works.push(Work::Fit {
                        estimator: e.clone(),
                        train: self.fold(cv, i, Side::Train),
                        relabel: Relabel::None,
                        eval: Some(self.fold(cv, i, Side::Test)),
                        keep_model: false,
                    });
                }
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
                | JobKind::Bagging { estimator, .. },
                _,
            ) => Ok(estimator.clone()),
            (JobKind::Voting { estimators, .. }, _) => Ok(estimators[0].clone()),
        }
    }

    /// What the job needs now: the first stage before any [`Planner::complete`].
    pub fn step(&self) -> Result<Step> {
        let stage = self.done.len() as u32;
        match (&self.spec.kind, stage) {
            (JobKind::Fit { estimator }, 0) => Ok(match self.seeded(estimator) {
                Estimator::RandomForest(forest) => {
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
        let s = DataSummary {
            n_samples: 150,
            n_classes: 3,
        };
        let grid = |name: &str, v: &str, cv: u32| JobSpec {
            kind: JobKind::GridSearch {
                estimator: lr(),
                grid: vec![(name.into(), vec![v.into()])],
                cv,
                refit: true,
            },
            seed: 0,
        };
        assert!(Planner::new(grid("C", "1", 5), s).is_ok());
        assert!(Planner::new(grid("C", "-1", 5), s)
            .unwrap_err()
            .to_string()
            .contains('C'));
        assert!(Planner::new(grid("gamma", "1", 5), s).is_err());
        assert!(Planner::new(grid("C", "1", 1), s).is_err());
        assert!(Planner::new(grid("C", "1", 151), s).is_err());
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

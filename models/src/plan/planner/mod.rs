//! The planner: expands a [`JobSpec`] into stages of tasks and reduces their outputs into
//! a [`JobResult`]. Searches, one-vs-rest, one-vs-one, bagging, voting and forests are
//! here; the stages of stacking, cascades and multi-output jobs are in `meta_stages`.

use serde::{Deserialize, Serialize};

use super::cv::CvResults;
use super::data::{DataSummary, Relabel, Rows, Side};
use super::job::{JobKind, JobSpec};
use super::task::{Task, TaskOutput, Work};
use super::TREES_PER_TASK;
use crate::ensemble::{class_pairs, Combine, FittedEnsemble};
use crate::error::{ModelError, Result};
use crate::estimator::{Estimator, FittedModel};
use crate::rng::Rng;
use crate::traits::Classifier;

mod meta_stages;

use meta_stages::cascade_groups;

/// What a job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The final model (the fit, the refit best candidate, or the ensemble), if any.
    pub model: Option<FittedModel>,
    /// A search's cross-validation table.
    pub cv: Option<CvResults>,
    /// Tasks the plan ran.
    pub tasks: usize,
    /// Warnings its fits raised (every stage's, each once with a count).
    pub warnings: Vec<String>,
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

pub(crate) fn with_params(estimator: &Estimator, params: &[(String, String)]) -> Result<Estimator> {
    let mut e = estimator.clone();
    for (k, v) in params {
        e.set_param(k, v)?;
    }
    e.validate()?;
    Ok(e)
}

/// `n_iter` candidates drawn from `space` with the job's seed (each checked on
/// `estimator`).
pub(crate) fn random_candidates(
    estimator: &Estimator,
    space: &[(String, crate::plan::Distribution)],
    n_iter: u32,
    seed: u64,
) -> Result<Vec<Vec<(String, String)>>> {
    for (name, d) in space {
        d.check(name)?;
    }
    let mut rng = Rng::derive(seed, 0x5EA2C4);
    let mut c = Vec::new();
    for _ in 0..n_iter {
        let p: Vec<(String, String)> = space
            .iter()
            .map(|(name, d)| (name.clone(), d.sample(&mut rng)))
            .collect();
        with_params(estimator, &p)?;
        c.push(p);
    }
    Ok(c)
}

/// The grid's candidates in scikit-learn's `ParameterGrid` order: names sorted, the last
/// varying fastest.
pub(crate) fn grid_candidates(
    grid: &[(String, Vec<String>)],
) -> Result<Vec<Vec<(String, String)>>> {
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
                random_candidates(estimator, space, *n_iter, spec.seed)?
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
        if let Some(e) = spec
            .kind
            .estimators()
            .into_iter()
            .find(|e| e.is_clusterer())
        {
            if !matches!(
                spec.kind,
                JobKind::Fit { .. } | JobKind::GridSearch { .. } | JobKind::RandomSearch { .. }
            ) {
                return Err(ModelError::data(
                    "job",
                    format!(
                        "{} is a clusterer: it runs in fit, grid_search and random_search jobs \
                         (scored by minus its inertia, as scikit-learn's KMeans); {} needs \
                         classifiers or regressors",
                        e.name(),
                        spec.describe()
                    ),
                ));
            }
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
            .find(|e| !e.is_regressor() && !e.is_clusterer())
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
        let step = self.step()?;
        Ok(match step {
            Step::Done(mut result) => {
                result.warnings = crate::warnings::summarize(
                    self.done
                        .iter()
                        .flatten()
                        .flat_map(|o| o.warnings.iter().cloned()),
                );
                Step::Done(result)
            }
            run => run,
        })
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
        // A clusterer reads no target: its folds are plain.
        let strat = !e.is_regressor() && !e.is_clusterer();
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
        let mut cv = CvResults::from_scores(self.candidates.clone(), scores);
        cv.warnings = outputs
            .chunks(k)
            .map(|c| crate::warnings::summarize(c.iter().flat_map(|o| o.warnings.iter().cloned())))
            .collect();
        Ok(cv)
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
            warnings: Vec::new(),
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
                    warnings: Vec::new(),
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
                    warnings: Vec::new(),
                })))
            }
        }
    }
}

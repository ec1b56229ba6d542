//! A grid search over data that no node holds whole: every candidate on every fold as a
//! [`DataParallelFit`], all running in lockstep, so that each pass over the chunks serves
//! every fit still running ([`PassOp::Multi`]: a chunk is read and decoded once, then each
//! fit computes its partial on its fold's rows).
//!
//! 1. One pass counts the rows of each fold. A row's fold is a hash of its values
//!    ([`RowFilter`]): each chunk knows its rows' folds where it lies.
//! 2. Fit passes: each fit of candidate `c` on the rows outside fold `k` asks for its next
//!    pass; the passes go out together, each with its fold's filter, and each fit is told
//!    its own partial. A fit that is done drops out; the others go on.
//! 3. One pass scores every fit on its held-out fold ([`PassOp::Score`], sums), giving the
//!    cross-validation table (scikit-learn's `cv_results_`: mean, std and rank of the
//!    default score).
//! 4. With `refit`, the best candidate is fitted on all rows.
//!
//! The folds are not scikit-learn's `KFold` ones (those need row positions across chunks),
//! so the scores are not the in-memory search's, fold for fold; each fit on its fold's rows
//! is the in-memory fit on those rows.

use serde::{Deserialize, Serialize};

use super::{DataParallelFit, Next, Partial, Pass, PassOp, RowFilter};
use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::estimator::{Estimator, FittedModel};
use crate::metrics::TestSums;
use crate::plan::{with_params, CvResults};

/// What a search needs next.
#[derive(Debug, Clone)]
pub enum SearchNext {
    /// A pass over every chunk.
    Pass(Pass),
    /// Nothing: the cross-validation table, and the refit model (with `refit`).
    Done {
        /// The refit best candidate.
        model: Option<FittedModel>,
        /// The table.
        cv: Box<CvResults>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stage {
    Count,
    /// Fit `c * folds + k`: candidate `c` without fold `k`.
    Fit {
        fits: Vec<DataParallelFit>,
        models: Vec<Option<FittedModel>>,
    },
    Score {
        models: Vec<FittedModel>,
    },
    Refit {
        fit: Box<DataParallelFit>,
        cv: Box<CvResults>,
    },
    Done {
        model: Option<FittedModel>,
        cv: Box<CvResults>,
    },
}

/// A data-parallel grid search between passes (see the module docs): plain data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataParallelSearch {
    candidates: Vec<Estimator>,
    params: Vec<Vec<(String, String)>>,
    folds: u32,
    seed: u64,
    refit: bool,
    schema: Dataset,
    n_samples: u64,
    stage: Stage,
    passes: u64,
    /// The fits (or models) the last pass asked for, in its order.
    asked: Vec<usize>,
    warnings: Vec<Vec<String>>,
    fit_passes: Vec<u64>,
}

impl DataParallelSearch {
    /// A search of `estimator` over the candidates `params` (a grid's, or a random
    /// search's draws) with `folds`-fold cross-validation on data whose schema `schema` has
    /// (a dataset of no rows will do) and which holds `n_samples` rows; every candidate is
    /// checked now.
    pub fn new(
        estimator: &Estimator,
        params: Vec<Vec<(String, String)>>,
        folds: u32,
        refit: bool,
        seed: u64,
        schema: &Dataset,
        n_samples: u64,
    ) -> Result<Self> {
        if folds < 2 || u64::from(folds) > n_samples || folds > super::MAX_FOLDS {
            return Err(ModelError::data(
                "cv",
                format!("needs 2 <= folds <= rows; got {folds} folds of {n_samples} rows"),
            ));
        }
        let candidates = params
            .iter()
            .map(|p| with_params(estimator, p))
            .collect::<Result<Vec<_>>>()?;
        // Each candidate must run data-parallel: checked on the whole data's schema.
        for c in &candidates {
            DataParallelFit::new(c, schema, n_samples)?;
        }
        Ok(Self {
            warnings: vec![Vec::new(); candidates.len()],
            candidates,
            params,
            folds,
            seed,
            refit,
            schema: schema.select(&[])?,
            n_samples,
            stage: Stage::Count,
            passes: 0,
            asked: Vec::new(),
            fit_passes: Vec::new(),
        })
    }

    /// Passes told so far.
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Fits still running (for people).
    pub fn stage(&self) -> String {
        match &self.stage {
            Stage::Count => "fold counts".into(),
            Stage::Fit { models, .. } => format!(
                "{} of {} fits running",
                models.iter().filter(|m| m.is_none()).count(),
                models.len()
            ),
            Stage::Score { .. } => "scoring the folds".into(),
            Stage::Refit { fit, .. } => format!("refit: {}", fit.stage()),
            Stage::Done { .. } => "done".into(),
        }
    }

    fn filter(&self, fold: usize, train: bool) -> RowFilter {
        RowFilter {
            folds: self.folds,
            fold: fold as u32,
            seed: self.seed,
            train,
        }
    }

    fn multi(passes: Vec<Pass>) -> Pass {
        Pass {
            prep: Vec::new(),
            model: None,
            op: PassOp::Multi(passes),
            rows: None,
        }
    }

    /// What the search needs next.
    pub fn ask(&mut self) -> Result<SearchNext> {
        let k = self.folds as usize;
        loop {
            match &mut self.stage {
                Stage::Count => {
                    return Ok(SearchNext::Pass(Pass {
                        prep: Vec::new(),
                        model: None,
                        op: PassOp::FoldCounts {
                            folds: self.folds,
                            seed: self.seed,
                        },
                        rows: None,
                    }))
                }
                Stage::Fit { fits, models } => {
                    let mut passes = Vec::new();
                    let mut asked = Vec::new();
                    for (i, fit) in fits.iter_mut().enumerate() {
                        if models[i].is_some() {
                            continue;
                        }
                        match fit.ask()? {
                            Next::Done(m) => models[i] = Some(m),
                            Next::Pass(mut p) => {
                                p.rows = Some(RowFilter {
                                    folds: self.folds,
                                    fold: (i % k) as u32,
                                    seed: self.seed,
                                    train: true,
                                });
                                passes.push(p);
                                asked.push(i);
                            }
                        }
                    }
                    if !passes.is_empty() {
                        self.asked = asked;
                        return Ok(SearchNext::Pass(Self::multi(passes)));
                    }
                    for (i, f) in fits.iter().enumerate() {
                        self.warnings[i / k].extend(f.warnings().iter().cloned());
                    }
                    self.fit_passes = fits.iter().map(DataParallelFit::passes).collect();
                    let models = models.iter_mut().map(|m| m.take().expect("done")).collect();
                    self.stage = Stage::Score { models };
                }
                Stage::Score { models } => {
                    let models = models.clone();
                    let passes = models
                        .into_iter()
                        .enumerate()
                        .map(|(i, m)| Pass {
                            prep: Vec::new(),
                            model: None,
                            op: PassOp::Score { model: Box::new(m) },
                            rows: Some(self.filter(i % k, false)),
                        })
                        .collect();
                    self.asked = Vec::new();
                    return Ok(SearchNext::Pass(Self::multi(passes)));
                }
                Stage::Refit { fit, cv } => match fit.ask()? {
                    Next::Pass(p) => return Ok(SearchNext::Pass(p)),
                    Next::Done(m) => {
                        let cv = cv.clone();
                        self.stage = Stage::Done { model: Some(m), cv };
                    }
                },
                Stage::Done { model, cv } => {
                    return Ok(SearchNext::Done {
                        model: model.clone(),
                        cv: cv.clone(),
                    })
                }
            }
        }
    }

    /// The merged result of the pass [`DataParallelSearch::ask`] asked for.
    pub fn tell(&mut self, partial: Partial) -> Result<()> {
        self.passes += 1;
        let wrong = || ModelError::data("data-parallel search", "a partial result of another pass");
        let k = self.folds as usize;
        match (&mut self.stage, partial) {
            (Stage::Count, Partial::FoldCounts(counts)) => {
                if counts.len() != k || counts.iter().sum::<u64>() != self.n_samples {
                    return Err(wrong());
                }
                if let Some(f) = counts.iter().position(|&c| c == 0) {
                    return Err(ModelError::data(
                        "cv",
                        format!("fold {f} of {k} holds no rows; use fewer folds"),
                    ));
                }
                let mut fits = Vec::with_capacity(self.candidates.len() * k);
                for c in &self.candidates {
                    for &held in &counts {
                        fits.push(DataParallelFit::new(
                            c,
                            &self.schema,
                            self.n_samples - held,
                        )?);
                    }
                }
                let models = vec![None; fits.len()];
                self.stage = Stage::Fit { fits, models };
            }
            (Stage::Fit { fits, .. }, Partial::Multi(parts)) => {
                if parts.len() != self.asked.len() {
                    return Err(wrong());
                }
                for (&i, part) in self.asked.iter().zip(parts) {
                    fits[i].tell(part)?;
                }
            }
            (Stage::Score { models }, Partial::Multi(parts)) => {
                if parts.len() != models.len() {
                    return Err(wrong());
                }
                let mut split = vec![Vec::with_capacity(k); self.candidates.len()];
                for (i, part) in parts.into_iter().enumerate() {
                    let Partial::Score(Some(sums)) = part else {
                        return Err(wrong());
                    };
                    // The sums of the model's kind; a classifier's counts are square, of
                    // the data's classes.
                    let model = &models[i];
                    let fits = match &sums {
                        TestSums::Classes(c) => {
                            let n = self.schema.classes().map_or(0, |c| c.len());
                            !model.is_clusterer()
                                && !model.is_regressor()
                                && c.len() == n
                                && c.iter().all(|r| r.len() == n)
                        }
                        TestSums::Values { .. } => model.is_regressor(),
                        TestSums::Inertia(v) => model.is_clusterer() && *v >= 0.0,
                    };
                    if !fits {
                        return Err(wrong());
                    }
                    split[i / k].push(sums.score());
                }
                let mut cv = CvResults::from_scores(self.params.clone(), split);
                cv.warnings = self
                    .warnings
                    .iter()
                    .map(|w| crate::warnings::summarize(w.iter().cloned()))
                    .collect();
                let cv = Box::new(cv);
                self.stage = if self.refit {
                    let best = &self.candidates[cv.best_index];
                    let fit = DataParallelFit::new(best, &self.schema, self.n_samples)?;
                    Stage::Refit {
                        fit: Box::new(fit),
                        cv,
                    }
                } else {
                    Stage::Done { model: None, cv }
                };
            }
            (Stage::Refit { fit, .. }, p) => fit.tell(p)?,
            _ => return Err(wrong()),
        }
        Ok(())
    }

    /// Warnings of the refit (the candidates' are in the table).
    pub fn warnings(&self) -> &[String] {
        match &self.stage {
            Stage::Refit { fit, .. } => fit.warnings(),
            _ => &[],
        }
    }

    /// The refit's objective after each evaluation (none before the refit).
    pub fn losses(&self) -> &[(f64, f64)] {
        match &self.stage {
            Stage::Refit { fit, .. } => fit.losses(),
            _ => &[],
        }
    }

    /// Feature columns of the data.
    pub fn n_features(&self) -> usize {
        self.schema.n_features()
    }

    /// About how many bytes the largest partial result of one chunk takes: every fit's at
    /// once.
    pub fn largest_partial_bytes(&self) -> Result<usize> {
        // Candidates differ in size (k-means' `n_clusters`, PCA's `n_components`).
        let mut sum = 0usize;
        for c in &self.candidates {
            let one = DataParallelFit::new(c, &self.schema, self.n_samples)?;
            sum = sum.saturating_add(one.largest_partial_bytes());
        }
        Ok(sum.saturating_mul(self.folds as usize))
    }

    /// Drops every running fit's solver history (see [`DataParallelFit::checkpoint`]).
    pub(crate) fn lighten(&mut self) {
        match &mut self.stage {
            Stage::Fit { fits, .. } => fits.iter_mut().for_each(DataParallelFit::lighten),
            Stage::Refit { fit, .. } => fit.lighten(),
            _ => {}
        }
    }

    /// Each fit's own passes over the data (candidate `c` without fold `k` at
    /// `c * folds + k`), once the fits are done: what separate fits would have taken
    /// (each also scored in a pass of its own), against [`DataParallelSearch::passes`].
    pub fn fit_passes(&self) -> &[u64] {
        &self.fit_passes
    }
}

//! What the driver's engine runs: a data-parallel fit, or a data-parallel grid search.

use serde::{Deserialize, Serialize};

use super::{DataParallelFit, DataParallelSearch, Next, Partial, Pass, SearchNext};
use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::estimator::FittedModel;
use crate::plan::{grid_candidates, random_candidates, CvResults, JobKind, JobSpec};

/// What a data-parallel job needs next.
#[derive(Debug, Clone)]
pub enum JobNext {
    /// A pass over every chunk.
    Pass(Pass),
    /// Nothing: the model (a fit, a refit search) and the table (a search).
    Done {
        /// The model.
        model: Option<FittedModel>,
        /// A search's cross-validation table.
        cv: Option<Box<CvResults>>,
    },
}

/// A data-parallel job between passes: plain data, checkpointed by the driver.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataParallelJob {
    /// One estimator fitted.
    Fit(Box<DataParallelFit>),
    /// A grid search.
    Search(Box<DataParallelSearch>),
}

impl DataParallelJob {
    /// Jobs that run data-parallel, as the error for the others lists them.
    pub const KINDS: &'static str = "fit, grid_search and random_search";

    /// The job `spec` on data whose schema `schema` has (no rows needed), `n_samples` rows.
    pub fn new(spec: &JobSpec, schema: &Dataset, n_samples: u64) -> Result<Self> {
        match &spec.kind {
            JobKind::Fit { estimator } => Ok(Self::Fit(Box::new(DataParallelFit::new(
                estimator, schema, n_samples,
            )?))),
            JobKind::GridSearch {
                estimator,
                grid,
                cv,
                refit,
            } => Ok(Self::Search(Box::new(DataParallelSearch::new(
                estimator,
                grid_candidates(grid)?,
                *cv,
                *refit,
                spec.seed,
                schema,
                n_samples,
            )?))),
            JobKind::RandomSearch {
                estimator,
                space,
                n_iter,
                cv,
                refit,
            } => Ok(Self::Search(Box::new(DataParallelSearch::new(
                estimator,
                random_candidates(estimator, space, *n_iter, spec.seed)?,
                *cv,
                *refit,
                spec.seed,
                schema,
                n_samples,
            )?))),
            _ => Err(ModelError::data(
                "data-parallel job",
                format!(
                    "{} does not run data-parallel yet; these kinds do: {}",
                    spec.describe(),
                    Self::KINDS
                ),
            )),
        }
    }

    /// What the job needs next.
    pub fn ask(&mut self) -> Result<JobNext> {
        Ok(match self {
            Self::Fit(f) => match f.ask()? {
                Next::Pass(p) => JobNext::Pass(p),
                Next::Done(m) => JobNext::Done {
                    model: Some(m),
                    cv: None,
                },
            },
            Self::Search(s) => match s.ask()? {
                SearchNext::Pass(p) => JobNext::Pass(p),
                SearchNext::Done { model, cv } => JobNext::Done {
                    model,
                    cv: Some(cv),
                },
            },
        })
    }

    /// The merged result of the pass asked for.
    pub fn tell(&mut self, partial: Partial) -> Result<()> {
        match self {
            Self::Fit(f) => f.tell(partial),
            Self::Search(s) => s.tell(partial),
        }
    }

    /// Passes told so far.
    pub fn passes(&self) -> u64 {
        match self {
            Self::Fit(f) => f.passes(),
            Self::Search(s) => s.passes(),
        }
    }

    /// Where it stands, for people.
    pub fn stage(&self) -> String {
        match self {
            Self::Fit(f) => f.stage(),
            Self::Search(s) => s.stage(),
        }
    }

    /// The objective after each evaluation (a fit's, or a search's refit).
    pub fn losses(&self) -> &[(f64, f64)] {
        match self {
            Self::Fit(f) => f.losses(),
            Self::Search(s) => s.losses(),
        }
    }

    /// Warnings raised (the candidates' are in a search's table).
    pub fn warnings(&self) -> &[String] {
        match self {
            Self::Fit(f) => f.warnings(),
            Self::Search(s) => s.warnings(),
        }
    }

    /// Feature columns of the data.
    pub fn n_features(&self) -> usize {
        match self {
            Self::Fit(f) => f.n_features(),
            Self::Search(s) => s.n_features(),
        }
    }

    /// About how many bytes one chunk's largest partial result takes.
    pub fn largest_partial_bytes(&self) -> Result<usize> {
        match self {
            Self::Fit(f) => Ok(f.largest_partial_bytes()),
            Self::Search(s) => s.largest_partial_bytes(),
        }
    }

    /// The state as a checkpoint of at most `max_bytes`: whole, or without the solvers'
    /// curvature pairs (see [`DataParallelFit::checkpoint`]); `None` when even that is
    /// larger.
    pub fn checkpoint(&self, max_bytes: usize) -> Option<Vec<u8>> {
        let whole = rmp_serde::to_vec_named(self).ok()?;
        if whole.len() <= max_bytes {
            return Some(whole);
        }
        let mut lite = self.clone();
        match &mut lite {
            Self::Fit(f) => f.lighten(),
            Self::Search(s) => s.lighten(),
        }
        let bytes = rmp_serde::to_vec_named(&lite).ok()?;
        (bytes.len() <= max_bytes).then_some(bytes)
    }
}

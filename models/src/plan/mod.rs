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
//! The files, by concern: `data` (what a task reads: [`DataSummary`], [`Rows`],
//! [`Relabel`]), `task` ([`Task`], [`Work`], [`TaskOutput`], [`run_task`]), `job` (what a
//! user asks for: [`JobSpec`], [`JobKind`], grids and [`Distribution`]s), `planner`
//! ([`Planner`] and its stages, with the stacking, cascade and multi-output stages in
//! `planner/meta_stages`), `cv` ([`CvResults`]) and `executor` ([`Executor`],
//! [`LocalExecutor`], [`run_job`]). Everything public is re-exported here, so paths are
//! `meshml_models::plan::X`. The plan depends on the estimators, ensembles and meta-models
//! it assembles; none of them depends on the plan.
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

mod cv;
mod data;
mod executor;
mod job;
mod planner;
mod task;
#[cfg(test)]
mod tests;

pub use cv::CvResults;
pub use data::{DataSummary, Relabel, Rows, Side};
pub use executor::{run_job, Executor, LocalExecutor, Progress};
pub use job::{Distribution, Grid, JobKind, JobSpec};
pub(crate) use planner::{grid_candidates, random_candidates, with_params};
pub use planner::{JobResult, Planner, Step};
pub use task::{run_task, Task, TaskOutput, Work};

/// Every pair `(a, b)` of `n` classes with `a < b`, in scikit-learn's order (kept here for
/// callers of `plan::class_pairs`; it lives with the one-vs-one ensemble).
pub use crate::ensemble::class_pairs;

/// Trees a forest task grows (a forest of 100 trees is 10 tasks).
pub const TREES_PER_TASK: usize = 10;

//! # meshml-models
//!
//! The machine-learning library of meshml: datasets over candle-core tensors, estimators
//! with scikit-learn's parameter names and results, metrics, model selection, and the
//! model artifact format. No networking: the node crate runs these fits on a mesh.
//!
//! # Layout
//!
//! - [`matrix`]: [`Matrix`], a dense `f32` matrix on a candle tensor.
//! - [`dataset`], [`io`]: [`Dataset`] (features, names, class labels, column kinds) and
//!   CSV loading with errors that name the line and column; [`io::infer`] infers column
//!   kinds.
//! - [`schema`]: column kinds (numeric, categorical, boolean, indicator), how each is
//!   written into the `f32` matrix (categories as codes, missing cells as NaN), the check
//!   that refuses what an estimator cannot take, and [`schema::recode`] between two
//!   tables' categories.
//! - [`traits`]: [`Params`] (names, aliases, validation, [`Params::check`] into
//!   [`Checked`]), [`Fit`], [`Classifier`], [`Transformer`], and [`Model`], what every
//!   fitted kind implements; [`traits::Member`], what an ensemble or meta-estimator holds.
//! - Families, one module each: [`linear`] (logistic regression with L2 or L1, linear and
//!   ridge regression), [`naive_bayes`] (Gaussian NB), [`tree`] (classification and
//!   regression trees), [`ensemble`] (random forests for both, combined members),
//!   [`preprocessing`] (standard scaler, model-based feature selection, simple imputer,
//!   one-hot and ordinal encoders).
//! - [`estimator`]: the registry, one list from which a macro generates [`Estimator`]
//!   (estimators by name, with pipelines), [`FittedModel`] and their dispatch; what jobs
//!   and artifacts carry.
//! - [`meta`]: the fitted stacking, cascade and multi-output models. These and
//!   [`ensemble::FittedEnsemble`] are generic over their members ([`traits::Member`]), so
//!   they never name [`FittedModel`], which holds them with members of its own type: no
//!   module imports one that imports it back.
//! - [`plan`]: jobs (searches, one-vs-rest, one-vs-one, bagging, voting, stacking,
//!   cascades, multi-output, forests) as plans of independent tasks, and the local
//!   executor; a folder by concern (`data`, `task`, `job`, `planner`, `cv`, `executor`).
//!   It depends on the models it assembles, never the other way round.
//! - [`model_selection`], [`metrics`]: splits and scores.
//! - [`artifact`]: versioned, checksummed model files.
//! - [`optim`], [`rng`]: L-BFGS and a portable seeded generator; `linalg` (internal):
//!   Cholesky solves, the symmetric eigen-decomposition and the SVD over faer.
//! - `tests/it/`: the one integration-test binary: parity with scikit-learn
//!   (`sklearn_parity`, `meta_parity`, `more_parity`, `tables_parity`, numbers in
//!   `tests/reference/` from
//!   the scripts in `tools/`) and format compatibility (`compat`, bytes pinned in
//!   `tests/fixtures/`).
//!
//! # Adding an estimator
//!
//! One module and one registry line; nothing else in the crate names a specific estimator.
//!
//! 1. **Hyperparameters** (`src/<family>/hyperparams.rs`): a serde struct `FooParams`
//!    with scikit-learn's parameter names and defaults (`Default`), and `impl Params`:
//!    `NAME` (the snake_case name), `ALIASES` (scikit-learn's class name),
//!    `DESCRIPTION`, `PARAM_NAMES`, `validate` (each error names the parameter and the
//!    allowed range), `set_param` (text values, as on the command line) and, for a
//!    randomised estimator, `seed_unset`.
//! 2. **Algorithm** (`src/<family>/algorithm.rs`): `impl Fit for Checked<FooParams>`.
//!    Its parameters are already valid, so it does not validate them again; plain
//!    `FooParams` fits through a blanket implementation that checks first. The fitted
//!    type `FittedFoo` is serde too, implements [`Classifier`] (or predicts values) and
//!    [`Model`] (what [`FittedModel`] dispatches to). When `Fitted` is not the type the
//!    registry's `fitted` list names (a forest grows a `FittedEnsemble` of trees), add a
//!    `From` into [`FittedModel`] beside the registry.
//! 3. **Registry line** (`src/estimator/mod.rs`): `Foo(FooParams),` under `classifiers`
//!    or `regressors`, and `Foo(FittedFoo),` under `fitted` unless it shares a fitted
//!    kind. The variant name is the wire name in job files and artifacts: never rename
//!    one.
//! 4. **Tests**: closed-form cases in the module (`assert_abs_diff_eq!`); reference
//!    numbers from scikit-learn added to a `tools/sklearn_*_reference.py` script and
//!    compared in `tests/it/*_parity.rs` at a stated tolerance; the new kind added to
//!    `tests/it/compat.rs`, with fixtures rewritten by `MESHML_BLESS_FIXTURES=1 cargo
//!    test -p meshml-models --test it compat` (the diff must only add entries).
//!
//! ```ignore
//! // src/<family>/algorithm.rs: the shape of a fit (not compiled here).
//! impl Fit for Checked<FooParams> {
//!     type Fitted = FittedFoo;
//!
//!     fn fit(&self, data: &Dataset) -> Result<FittedFoo> {
//!         // `self` reads as `&FooParams`, already validated.
//!         todo_fit(self.alpha, data)
//!     }
//! }
//! ```
//!
//! # Example
//!
//! ```
//! use meshml_models::{io::iris, metrics::ConfusionMatrix, model_selection::{train_test_split, TestSize},
//!     Classifier, Estimator, Fit};
//!
//! let data = iris();
//! let (ids, classes) = data.class_target()?;
//! let (train, test) = train_test_split(data.n_samples(), TestSize::Fraction(0.2), 42, Some(ids))?;
//! let model = Estimator::from_name("logistic_regression")?.fit(&data.select(&train)?)?;
//! let test = data.select(&test)?;
//! let pred = model.predict(test.x())?;
//! let cm = ConfusionMatrix::new(test.class_target()?.0, &pred, classes.labels())?;
//! assert_eq!(cm.counts().len(), 3);
//! # Ok::<(), meshml_models::ModelError>(())
//! ```

#![warn(missing_docs)]

pub mod artifact;
pub mod binning;
pub mod boosting;
pub mod cluster;
pub mod dataset;
pub mod decomposition;
pub mod ensemble;
pub mod error;
pub mod estimator;
pub mod histogram;
pub mod io;
mod linalg;
pub mod linear;
pub mod matrix;
pub mod meta;
pub mod metrics;
pub mod model_selection;
pub mod naive_bayes;
pub mod optim;
pub mod parallel;
pub mod plan;
pub mod preprocessing;
pub mod rng;
pub mod schema;
pub mod traits;
pub mod tree;
pub mod warnings;

pub use artifact::{ModelArtifact, Provenance};
pub use dataset::{Classes, Dataset, Target};
pub use error::{ModelError, Result};
pub use estimator::{Estimator, FittedModel};
pub use matrix::Matrix;
pub use traits::{Checked, Classifier, Fit, Model, Params, Transformer};

/// Threads for one large loop of `work` cells (a histogram over a node's rows and
/// columns): the machine's cores, at most 4, when the work is worth a thread's start-up;
/// otherwise 1.
pub(crate) fn parallel_threads(work: usize) -> usize {
    if work < 1 << 16 {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

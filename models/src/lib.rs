//! # meshml-models
//!
//! The machine-learning library of meshml: datasets over candle-core tensors, estimators
//! with scikit-learn's parameter names and results, metrics, model selection, and the
//! model artifact format. No networking: the node crate runs these fits on a mesh.
//!
//! # Layout
//!
//! - [`matrix`]: [`Matrix`], a dense `f32` matrix on a candle tensor.
//! - [`dataset`], [`io`]: [`Dataset`] (features, names, class labels) and CSV loading with
//!   errors that name the line and column.
//! - [`traits`]: [`Params`], [`Fit`], [`Classifier`], [`Transformer`].
//! - Families: [`linear`] (logistic regression with L2 or L1, linear and ridge
//!   regression), [`naive_bayes`] (Gaussian NB), [`tree`] (classification and regression
//!   trees), [`ensemble`] (random forests for both, combined members), [`preprocessing`]
//!   (standard scaler, model-based feature selection).
//! - [`estimator`]: estimators by name, pipelines, and fitted models of any kind; what
//!   jobs and artifacts carry.
//! - [`model_selection`], [`metrics`]: splits and scores.
//! - [`plan`]: jobs (searches, one-vs-rest, one-vs-one, bagging, voting, stacking,
//!   cascades, multi-output, forests) as plans of independent tasks, and the local
//!   executor; [`meta`]: the fitted stacking, cascade and multi-output models.
//! - [`artifact`]: versioned, checksummed model files.
//! - [`optim`], [`rng`]: L-BFGS and a portable seeded generator.
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
pub mod dataset;
pub mod ensemble;
pub mod error;
pub mod estimator;
pub mod io;
mod linalg;
pub mod linear;
pub mod matrix;
pub mod meta;
pub mod metrics;
pub mod model_selection;
pub mod naive_bayes;
pub mod optim;
pub mod plan;
pub mod preprocessing;
pub mod rng;
pub mod traits;
pub mod tree;

pub use artifact::{ModelArtifact, Provenance};
pub use dataset::{Classes, Dataset, Target};
pub use error::{ModelError, Result};
pub use estimator::{Estimator, FittedModel};
pub use matrix::Matrix;
pub use traits::{Checked, Classifier, Fit, Model, Params, Transformer};

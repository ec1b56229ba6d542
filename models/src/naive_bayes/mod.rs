//! Naive Bayes classifiers.
//!
//! [`GaussianNbParams`] matches scikit-learn's `GaussianNB`: per-class means and population
//! variances, with `var_smoothing` times the largest feature variance added to every
//! variance. Statistics and log-likelihoods are computed in `f64`.
//!
//! ```
//! use meshml_models::{io::iris, naive_bayes::GaussianNbParams, Classifier, Fit};
//!
//! let data = iris();
//! let model = GaussianNbParams::default().fit(&data)?;
//! assert!(model.score(data.x(), data.class_target()?.0)? > 0.95);
//! # Ok::<(), meshml_models::ModelError>(())
//! ```

mod gaussian;

pub use gaussian::{FittedGaussianNb, GaussianNbParams};

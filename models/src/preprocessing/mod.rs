//! Feature transformers.
//!
//! [`StandardScalerParams`] matches scikit-learn's `StandardScaler`: it subtracts the
//! column mean and divides by the population standard deviation; a constant column keeps
//! scale 1 so it maps to zeros instead of NaN. [`SelectFromModelParams`] keeps the
//! features an (L1) logistic regression gives weight, as `SelectFromModel` does.

mod scaler;
mod select;

pub use scaler::{FittedStandardScaler, StandardScalerParams};
pub use select::{FittedSelectFromModel, SelectFromModelParams};

//! Feature transformers.
//!
//! [`StandardScalerParams`] matches scikit-learn's `StandardScaler`: it subtracts the
//! column mean and divides by the population standard deviation; a constant column keeps
//! scale 1 so it maps to zeros instead of NaN.

mod scaler;

pub use scaler::{FittedStandardScaler, StandardScalerParams};

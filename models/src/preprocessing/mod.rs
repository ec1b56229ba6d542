//! Feature transformers.
//!
//! [`StandardScalerParams`] matches scikit-learn's `StandardScaler`: it subtracts the
//! column mean and divides by the population standard deviation; a constant column keeps
//! scale 1 so it maps to zeros instead of NaN. [`SelectFromModelParams`] keeps the
//! features an (L1) logistic regression gives weight, as `SelectFromModel` does.
//!
//! For tables with text and missing cells: [`SimpleImputerParams`] (`SimpleImputer`),
//! [`OneHotEncoderParams`] (`OneHotEncoder`) and [`OrdinalEncoderParams`]
//! (`OrdinalEncoder`). Each step acts on the columns of its kind by default (the scaler on
//! numeric columns, the encoders on categorical and boolean ones, the imputer on all), as
//! `make_column_selector` by dtype would pick them, or on the columns named in its
//! `columns` parameter (`one_hot_encoder__columns=a,b`); the others pass through in place.

mod columns;
mod encode;
mod impute;
mod scaler;
mod select;
mod stats;

pub use encode::{
    Drop, FittedOneHotEncoder, FittedOrdinalEncoder, HandleUnknown, OneHotEncoderParams,
    OrdinalEncoderParams, OrdinalUnknown,
};
pub use impute::{FittedSimpleImputer, ImputeStrategy, SimpleImputerParams};
pub use scaler::{FittedStandardScaler, StandardScalerParams};
pub use select::{FittedSelectFromModel, SelectFromModelParams};
pub use stats::ColumnStats;

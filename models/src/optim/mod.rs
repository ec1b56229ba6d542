//! Numerical optimisers used by the estimators.

mod lbfgs;

pub use lbfgs::{Lbfgs, LbfgsResult, Termination};

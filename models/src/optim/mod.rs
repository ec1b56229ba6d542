//! Numerical optimisers used by the estimators.

mod lbfgs;

pub use lbfgs::{Lbfgs, LbfgsAsk, LbfgsResult, LbfgsRun, Termination};

//! Linear models.
//!
//! [`LogisticRegressionParams`] fits scikit-learn's `LogisticRegression` objective (L2
//! penalty with the `lbfgs` solver, or L1 with `saga`'s objective): binary problems with
//! one weight vector, multiclass problems with the multinomial (softmax) loss.
//! [`LinearRegressionParams`] and [`RidgeParams`] solve least squares in closed form. Matrix products run on candle-core; the element-wise
//! softmax and loss are fused in one plain loop with `f64` sums.
//!
//! ```
//! use meshml_models::{io::iris, linear::LogisticRegressionParams, Classifier, Fit};
//!
//! let data = iris();
//! let model = LogisticRegressionParams::default().with_c(1.0).with_max_iter(200).fit(&data)?;
//! let accuracy = model.score(data.x(), data.class_target()?.0)?;
//! assert!(accuracy > 0.95);
//! # Ok::<(), meshml_models::ModelError>(())
//! ```

mod algorithm;
mod hyperparams;
mod ridge;
mod sgd;

pub use algorithm::FittedLogisticRegression;
pub(crate) use algorithm::{add_penalty, log_loss_part};
pub use hyperparams::{LogisticRegressionParams, Penalty};
pub(crate) use ridge::solve_normal;
pub use ridge::{FittedLinearRegression, LinearRegressionParams, RidgeParams};
pub use sgd::{
    FittedSgd, LearningRate, SgdClassifierParams, SgdEpoch, SgdFit, SgdLoss, SgdModel, SgdParams,
    SgdPart, SgdPenalty, SgdRegressorParams, SgdStart, Target as SgdTarget,
};

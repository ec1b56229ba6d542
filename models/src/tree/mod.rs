//! Decision trees.
//!
//! [`DecisionTreeClassifierParams`] grows a CART tree the way scikit-learn's
//! `DecisionTreeClassifier` with `splitter="best"` does: at each node, candidate features
//! are drawn without replacement (`max_features` of them), each candidate's values at the
//! node are sorted, and the split with the lowest weighted child impurity wins; thresholds
//! are midpoints between consecutive distinct values. Work is done over each node's own
//! rows only, never rescanning the whole dataset.
//!
//! ```
//! use meshml_models::{io::iris, tree::DecisionTreeClassifierParams, Classifier, Fit};
//!
//! let data = iris();
//! let tree = DecisionTreeClassifierParams::default()
//!     .with_max_depth(Some(3))
//!     .with_random_state(Some(0))
//!     .fit(&data)?;
//! assert_eq!(tree.depth(), 3);
//! assert!(tree.score(data.x(), data.class_target()?.0)? > 0.95);
//! # Ok::<(), meshml_models::ModelError>(())
//! ```

mod classifier;
mod hyperparams;

pub use classifier::FittedDecisionTree;
pub use hyperparams::{
    Criterion, DecisionTreeClassifierParams, DecisionTreeRegressorParams, MaxFeatures, SampleCount,
};

//! The error type of the models crate.

use std::path::PathBuf;

/// Result alias used throughout `meshml-models`.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Everything that can go wrong while loading data, fitting, predicting or reading artifacts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Input data is malformed; `location` names the file, line and column where known.
    #[error("{location}: {message}")]
    InvalidData {
        /// Where the problem is, e.g. `iris.csv:7, column 'sepal_width'`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A cell read as a number holds text. A reader that assumed every column numeric (the
    /// one-pass fast path of [`crate::io::load_csv`]) reads the file again, inferring the
    /// column kinds, when it meets one.
    #[error("{location}: '{value}' is not a number")]
    TextCell {
        /// Where, e.g. `t.csv:3, column 'b' (2)`.
        location: String,
        /// The cell.
        value: String,
    },
    /// A hyperparameter is out of range, unknown, or of the wrong type.
    #[error("invalid parameter '{param}' for {estimator}: {message}")]
    InvalidParam {
        /// The estimator's name (`logistic_regression`).
        estimator: &'static str,
        /// The parameter name as scikit-learn spells it (`C`).
        param: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The estimator name is not known.
    #[error("unknown estimator '{0}'; known estimators: {1}")]
    UnknownEstimator(String, String),
    /// Shapes of the inputs do not agree (e.g. a model fitted on 4 features asked about 5).
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A model artifact could not be read.
    #[error("model artifact {path}: {message}")]
    Artifact {
        /// The artifact's path (or `<memory>`).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from the tensor library.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// MessagePack encoding failed.
    #[error("encoding failed: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// MessagePack decoding failed.
    #[error("decoding failed: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
}

impl ModelError {
    /// Shorthand for [`ModelError::InvalidData`].
    pub fn data(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidData {
            location: location.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`ModelError::InvalidParam`].
    pub fn param(
        estimator: &'static str,
        param: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::InvalidParam {
            estimator,
            param: param.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`ModelError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

//! The client's errors.

/// Errors of the client and of the commands that talk to a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A command-line value or a job file is malformed.
    #[error("{0}")]
    Usage(String),
    /// An error from the models crate (an estimator name, a parameter, an artifact).
    #[error(transparent)]
    Model(#[from] meshml_models::ModelError),
    /// Reading or writing a local file (or the output) failed.
    #[error("{path}: {source}")]
    Io {
        /// What was read or written (a path, or `output`).
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `--node` is not an `http://HOST:PORT` address.
    #[error("--node {node}: expected http://HOST:PORT")]
    BadAddress {
        /// The address given.
        node: String,
    },
    /// The node could not be reached, or the exchange broke off.
    #[error("{node} (is `meshml node` running there?): {source}")]
    Unreachable {
        /// The node's address.
        node: String,
        /// What the HTTP client reported.
        #[source]
        source: ureq::Error,
    },
    /// The node refused the request: its message and the HTTP status.
    #[error("{node}: {message} (HTTP {status})")]
    Refused {
        /// The node's address.
        node: String,
        /// The HTTP status.
        status: u16,
        /// The node's message (the `error` of its JSON body, else the body's text).
        message: String,
    },
    /// The node answered a document the client does not understand.
    #[error("{node}: unexpected {what}: {source}")]
    Decode {
        /// The node's address.
        node: String,
        /// What was expected.
        what: &'static str,
        /// The decoding error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ClientError {
    /// An I/O error on `path` (a file, or `output`).
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

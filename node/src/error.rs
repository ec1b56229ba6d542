//! The daemon's errors.
//!
//! A mesh service fails with a [`MeshError`]: a kind the caller can act on, and a message
//! for people. The HTTP routes map kinds to statuses ([`MeshError::status`], used only
//! there), and a failure that crosses the wire becomes a [`RemoteError`] through `From`;
//! nothing inside the daemon decides on a message's text or on a status number.

use meshml_protocol::{ErrorCode, RemoteError};

/// What a mesh service failed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The input is not valid (a parameter, a name, a file).
    #[error("{0}")]
    Invalid(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It exists already, or conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A member, the driver or the cluster cannot be reached or is busy.
    #[error("{message}")]
    Unavailable {
        /// What could not be done.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
    /// The local store failed.
    #[error("store: {0}")]
    Storage(String),
    /// Something failed that should not have.
    #[error("{0}")]
    Internal(String),
}

impl MeshError {
    /// Invalid input.
    pub fn bad(m: impl Into<String>) -> Self {
        Self::Invalid(m.into())
    }

    /// Not found.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::NotFound(m.into())
    }

    /// A conflict with the current state.
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::Conflict(m.into())
    }

    /// Unavailable for now: trying again may succeed.
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::Unavailable {
            message: m.into(),
            retryable: true,
        }
    }

    /// An internal failure.
    pub fn internal(m: impl Into<String>) -> Self {
        Self::Internal(m.into())
    }

    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Unavailable { retryable, .. } => *retryable,
            Self::Storage(_) => true,
            Self::Invalid(_) | Self::NotFound(_) | Self::Conflict(_) | Self::Internal(_) => false,
        }
    }

    /// The HTTP status the API answers this error with (for the routes).
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::Unavailable { .. } => 503,
            Self::Storage(_) | Self::Internal(_) => 500,
        }
    }
}

impl From<meshml_storage::StorageError> for MeshError {
    fn from(e: meshml_storage::StorageError) -> Self {
        Self::Storage(e.to_string())
    }
}

impl From<meshml_models::ModelError> for MeshError {
    fn from(e: meshml_models::ModelError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<MeshError> for RemoteError {
    fn from(e: MeshError) -> Self {
        let retryable = e.retryable();
        let code = match &e {
            MeshError::Invalid(_) | MeshError::Conflict(_) => ErrorCode::BadRequest,
            MeshError::NotFound(_) => ErrorCode::NotFound,
            MeshError::Unavailable { .. } => ErrorCode::Unavailable,
            MeshError::Storage(_) | MeshError::Internal(_) => ErrorCode::Internal,
        };
        RemoteError {
            code,
            message: e.to_string(),
            retryable,
        }
    }
}

impl From<RemoteError> for MeshError {
    fn from(e: RemoteError) -> Self {
        match e.code {
            ErrorCode::BadRequest => Self::Invalid(e.message),
            ErrorCode::NotFound => Self::NotFound(e.message),
            ErrorCode::Unavailable | ErrorCode::StaleTerm | ErrorCode::VersionMismatch => {
                Self::Unavailable {
                    message: e.message,
                    retryable: e.retryable,
                }
            }
            ErrorCode::Internal => Self::Internal(e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_statuses_and_wire_codes() {
        let cases = [
            (MeshError::bad("x"), 400, ErrorCode::BadRequest, false),
            (MeshError::not_found("x"), 404, ErrorCode::NotFound, false),
            (MeshError::conflict("x"), 409, ErrorCode::BadRequest, false),
            (
                MeshError::unavailable("x"),
                503,
                ErrorCode::Unavailable,
                true,
            ),
            (MeshError::internal("x"), 500, ErrorCode::Internal, false),
        ];
        for (e, status, code, retryable) in cases {
            assert_eq!(e.status(), status, "{e:?}");
            let wire = RemoteError::from(e.clone());
            assert_eq!((wire.code, wire.retryable), (code, retryable), "{e:?}");
            assert_eq!(wire.message, "x");
        }
        // A wire error comes back as the kind it was sent as.
        let e = MeshError::from(RemoteError::from(MeshError::not_found("no dataset 'd'")));
        assert_eq!(e, MeshError::not_found("no dataset 'd'"));
    }
}

//! The engine's error type. Each error has a kind; `berth-server` maps kinds to HTTP
//! statuses in one place, so the engine never knows about HTTP.

/// What went wrong, in terms a client can act on (containerd `errdefs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Conflict,
    NotModified,
    Unauthorized,
    Forbidden,
    Unavailable,
    NotImplemented,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Missing or wrong registry credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Something the engine needs (a registry) cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// A request this object's configuration cannot serve (logs of the `none` driver).
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Conflict(_) => ErrorKind::Conflict,
            EngineError::Unauthorized(_) => ErrorKind::Unauthorized,
            EngineError::Forbidden(_) => ErrorKind::Forbidden,
            EngineError::Unavailable(_) => ErrorKind::Unavailable,
            EngineError::NotImplemented(_) => ErrorKind::NotImplemented,
            EngineError::Io { .. } | EngineError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io<'a>(
        what: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> EngineError + 'a {
        move |source| EngineError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A filter the endpoint cannot use is the client's error.
impl From<berth_api_types::filters::FilterError> for EngineError {
    fn from(e: berth_api_types::filters::FilterError) -> Self {
        EngineError::InvalidArgument(e.to_string())
    }
}

/// A time argument that does not parse is the client's error.
impl From<berth_api_types::timestamp::TimestampError> for EngineError {
    fn from(e: berth_api_types::timestamp::TimestampError) -> Self {
        EngineError::InvalidArgument(e.to_string())
    }
}

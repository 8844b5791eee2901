//! The runtime's error type; each error has a kind the engine maps to its own.

use std::path::PathBuf;

/// What went wrong, in terms a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    Conflict,
    /// The container is not running (Docker answers 409).
    NotRunning,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A create request the spec builder refuses; worded like Docker's where clients
    /// parse it.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotRunning(String),
    /// The process could not be started; `exit_code` is Docker's (127 not found, 126 not
    /// executable, 128 otherwise).
    #[error("{message}")]
    StartFailed { message: String, exit_code: i32 },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl RuntimeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            RuntimeError::NotFound(_) => ErrorKind::NotFound,
            RuntimeError::Conflict(_) => ErrorKind::Conflict,
            RuntimeError::NotRunning(_) => ErrorKind::NotRunning,
            // Docker answers a failed start with 400 for a missing/unusable executable.
            RuntimeError::StartFailed { exit_code, .. } if *exit_code != 128 => {
                ErrorKind::InvalidArgument
            }
            RuntimeError::StartFailed { .. }
            | RuntimeError::Io { .. }
            | RuntimeError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
        source: std::io::Error,
    ) -> RuntimeError {
        RuntimeError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

//! Errors of the CRI layer and the one place where an engine error becomes a gRPC status.

use berth_engine::{EngineError, ErrorKind};
use tonic::{Code, Status};

/// Failures of the CRI server itself (not of one call).
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("cannot listen on the CRI socket: {0}")]
    Bind(#[from] berth_server::ServerError),
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
}

/// The gRPC status for an engine error: the code follows the error's kind, the message is
/// the engine's own words.
pub fn engine_status(e: EngineError) -> Status {
    let code = match e.kind() {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Conflict | ErrorKind::NotModified => Code::FailedPrecondition,
        ErrorKind::Unauthorized => Code::Unauthenticated,
        ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::NotImplemented => Code::Unimplemented,
        ErrorKind::Internal => Code::Internal,
    };
    Status::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_grpc_codes() {
        for (e, code) in [
            (
                EngineError::InvalidArgument("bad".into()),
                Code::InvalidArgument,
            ),
            (
                EngineError::NotFound("no such image".into()),
                Code::NotFound,
            ),
            (
                EngineError::Conflict("in use".into()),
                Code::FailedPrecondition,
            ),
            (
                EngineError::Unauthorized("who".into()),
                Code::Unauthenticated,
            ),
            (
                EngineError::Forbidden("denied".into()),
                Code::PermissionDenied,
            ),
            (EngineError::Unavailable("down".into()), Code::Unavailable),
            (
                EngineError::NotImplemented("later".into()),
                Code::Unimplemented,
            ),
            (EngineError::Internal("boom".into()), Code::Internal),
        ] {
            let msg = e.to_string();
            let s = engine_status(e);
            assert_eq!(s.code(), code, "{msg}");
            assert_eq!(s.message(), msg);
        }
    }
}

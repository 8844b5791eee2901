//! Errors: `ApiError` is what a route returns (a status plus Docker's `{"message"}` body);
//! `ServerError` is what setting up or running the listeners can fail with.
//!
//! The one place where an engine error kind becomes an HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_api_types::ErrorBody;
use berth_engine::{EngineError, ErrorKind};

/// An error answer: status and the message clients show to users.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

/// Docker's status for each kind (moby `errdefs/http_helpers.go`).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = status_of(e.kind());
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        ApiError::new(status, e.to_string())
    }
}

/// The request's own parameters that do not parse: each a 400 with the parser's text.
macro_rules! bad_request_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                ApiError::bad_request(e.to_string())
            }
        }
    )*};
}

bad_request_from!(
    berth_api_types::filters::FilterError,
    berth_api_types::timestamp::TimestampError,
    berth_api_types::version::UnsupportedVersion,
    berth_engine::distribution::AuthConfigError
);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody::new(self.message))).into_response()
    }
}

/// Failures of the listeners themselves (start-up, TLS reload).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
    #[error("refusing to listen on {addr} without mutual TLS: Berth never serves its API over plain TCP. Create certificates with `berth tls init --dir DIR --san <this host>` and start berthd with --tlsverify --tlscacert=DIR/ca.pem --tlscert=DIR/server-cert.pem --tlskey=DIR/server-key.pem")]
    TcpWithoutTls { addr: String },
    #[error("cannot listen on {endpoint}: {source}")]
    Bind {
        endpoint: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] berth_tls::TlsError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_docker_statuses() {
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorKind::Conflict), StatusCode::CONFLICT);
        assert_eq!(
            status_of(ErrorKind::InvalidArgument),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status_of(ErrorKind::NotModified), StatusCode::NOT_MODIFIED);
        let e: ApiError = EngineError::NotFound("No such container: x".into()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "No such container: x");
    }
}

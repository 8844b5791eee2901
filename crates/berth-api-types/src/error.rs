//! The error body every Docker API error response carries.

use serde::{Deserialize, Serialize};

/// `{"message": "..."}`, the body of every non-2xx answer (moby `api/types/error_response.go`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

impl ErrorBody {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

//! The router: one module per resource, each route one `Engine` call.

mod containers;
mod distribution;
mod images;
mod query;
mod system;

use std::sync::Arc;

use axum::Router;
use berth_engine::Engine;

use crate::ApiError;

/// Builds the API router over `engine`. Paths are unversioned here; `version` strips the
/// prefix before routing.
pub(crate) fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(images::routes())
        .merge(containers::routes())
        .merge(distribution::routes())
        .fallback(not_found)
        .with_state(engine)
}

/// dockerd's answer for a path it does not serve.
async fn not_found() -> ApiError {
    ApiError::not_found("page not found")
}

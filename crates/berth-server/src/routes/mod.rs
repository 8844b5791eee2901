//! The router: one module per resource, each route one `Engine` call.

mod archive;
mod attach_ws;
mod body;
mod build;
mod container_ops;
mod containers;
mod distribution;
mod events;
mod exec;
mod hijack;
mod images;
mod legacy;
mod networks;
mod query;
mod swarm;
mod system;
mod volumes;

use std::sync::Arc;

use axum::Router;
use berth_engine::Engine;

use crate::{ApiError, Authorizer};

/// What every route handler is given: the engine.
type AppState = Arc<Engine>;

/// Builds the API router over `engine`, behind `authz` when given. Paths are unversioned
/// here; `version` strips the prefix before routing.
pub(crate) fn router(engine: Arc<Engine>, authz: Option<Arc<Authorizer>>) -> Router {
    let router = Router::new()
        .merge(system::routes())
        .merge(images::routes())
        .merge(containers::routes())
        .merge(events::routes())
        .merge(container_ops::routes())
        .merge(exec::routes())
        .merge(distribution::routes())
        .merge(volumes::routes())
        .merge(networks::routes())
        .merge(archive::routes())
        .merge(build::routes())
        .merge(swarm::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(crate::metrics::remember_route))
        .with_state(engine.clone());
    match authz {
        Some(a) => router.layer(axum::middleware::from_fn_with_state(
            (a, engine),
            crate::authz::layer,
        )),
        None => router,
    }
}

/// dockerd's answer for a path it does not serve.
async fn not_found() -> ApiError {
    ApiError::not_found("page not found")
}

//! Swarm-mode routes (`/swarm`, `/services`, `/nodes`, `/tasks`, `/secrets`, `/configs`)
//! answered as dockerd answers them on a node that is in no swarm, and `GET /plugins` as
//! a daemon with no plugins installed (`/plugins/{name}/...` not found; installing one
//! not implemented). Berth has no swarm mode; client libraries call
//! `swarm leave` during clean-up and tolerate exactly dockerd's 503 there.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::Engine;

use crate::ApiError;

type AppState = Arc<Engine>;

/// moby `daemon/cluster` `errNoManager` for a node with no swarm node at all.
pub(crate) const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// moby `daemon/cluster` `errNoSwarm`: leaving when never joined.
pub(crate) const NOT_IN_SWARM: &str = "This node is not part of a swarm";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/swarm", get(no_manager))
        .route("/swarm/init", post(no_swarm_mode))
        .route("/swarm/join", post(no_swarm_mode))
        .route("/swarm/leave", post(leave))
        .route("/swarm/unlockkey", get(no_manager))
        .route("/swarm/update", post(no_manager))
        .route("/swarm/unlock", post(no_manager))
        .route("/services", get(no_manager))
        .route("/services/create", post(no_manager))
        .route("/services/{id}", get(no_manager).delete(no_manager))
        .route("/services/{id}/update", post(no_manager))
        .route("/services/{id}/logs", get(no_manager))
        .route("/nodes", get(no_manager))
        .route("/nodes/{id}", get(no_manager).delete(no_manager))
        .route("/nodes/{id}/update", post(no_manager))
        .route("/tasks", get(no_manager))
        .route("/tasks/{id}", get(no_manager))
        .route("/tasks/{id}/logs", get(no_manager))
        .route("/secrets", get(no_manager))
        .route("/secrets/create", post(no_manager))
        .route("/secrets/{id}", get(no_manager).delete(no_manager))
        .route("/secrets/{id}/update", post(no_manager))
        .route("/configs", get(no_manager))
        .route("/configs/create", post(no_manager))
        .route("/configs/{id}", get(no_manager).delete(no_manager))
        .route("/configs/{id}/update", post(no_manager))
        .route("/plugins", get(plugins))
        .route("/plugins/{name}/json", get(no_such_plugin))
        .route("/plugins/{name}", axum::routing::delete(no_such_plugin))
        .route("/plugins/{name}/enable", post(no_such_plugin))
        .route("/plugins/{name}/disable", post(no_such_plugin))
        .route("/plugins/{name}/set", post(no_such_plugin))
        .route("/plugins/{name}/push", post(no_such_plugin))
        .route("/plugins/{name}/upgrade", post(no_such_plugin))
        .route("/plugins/pull", post(no_plugin_support))
        .route("/plugins/create", post(no_plugin_support))
        .route("/plugins/privileges", get(no_plugin_support))
}

/// Every swarm read or write on a node outside any swarm.
async fn no_manager() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER)
}

/// `POST /swarm/leave` (with or without `force`) on a node outside any swarm.
async fn leave() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_IN_SWARM)
}

/// `init` and `join` would make this node a swarm member, which Berth cannot be.
async fn no_swarm_mode() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "swarm mode is not supported by berthd",
    )
}

/// A named plugin: none is installed (moby `plugin.errNotFound`).
async fn no_such_plugin(axum::extract::Path(name): axum::extract::Path<String>) -> ApiError {
    ApiError::not_found(format!("plugin {name:?} not found"))
}

/// Installing a plugin: Berth runs no managed plugins.
async fn no_plugin_support() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "managed plugins are not supported by berthd",
    )
}

/// `GET /plugins`: no managed plugins exist, so the list is empty.
async fn plugins() -> Json<[(); 0]> {
    Json([])
}

//! Swarm-mode routes (`/swarm`, `/services`, `/nodes`, `/tasks`, `/secrets`, `/configs`)
//! answered as dockerd answers them on a node that is in no swarm, and `GET /plugins` as
//! a daemon with no plugins installed (`/plugins/{name}/...` not found; installing one
//! not implemented). Berth has no swarm mode; client libraries call
//! `swarm leave` during clean-up and tolerate exactly dockerd's 503 there.

use std::sync::Arc;

use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::Engine;

use super::query::Query;
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
        .route("/swarm/update", post(swarm_update))
        .route("/swarm/unlock", post(no_manager))
        .route("/services", get(services))
        .route("/services/create", post(no_manager))
        .route("/services/{id}", get(service).delete(no_manager))
        .route("/services/{id}/update", post(no_manager))
        .route("/services/{id}/logs", get(logs))
        .route("/nodes", get(no_manager))
        .route("/nodes/{id}", get(no_manager).delete(no_manager))
        .route("/nodes/{id}/update", post(no_manager))
        .route("/tasks", get(no_manager))
        .route("/tasks/{id}", get(no_manager))
        .route("/tasks/{id}/logs", get(logs))
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
        .route("/plugins/{name}/enable", post(plugin_enable))
        .route("/plugins/{name}/disable", post(no_such_plugin))
        .route("/plugins/{name}/set", post(plugin_set))
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

/// moby's swarm routers read their parameters before asking the cluster: a malformed
/// boolean is a 400 (`invalid value for NAME: VALUE: strconv.ParseBool...`).
fn check_bool(q: &Query, key: &str) -> Result<(), ApiError> {
    q.parse_bool(key).map(|_| ()).map_err(|e| {
        let v = q.get(key).unwrap_or_default();
        ApiError::bad_request(format!("invalid value for {key}: {v}: {e}"))
    })
}

/// `GET /services?status=`.
async fn services(uri: Uri) -> ApiError {
    check_bool(&Query::from_uri(&uri), "status")
        .err()
        .unwrap_or(no_manager().await)
}

/// `GET /services/{id}?insertDefaults=`.
async fn service(uri: Uri) -> ApiError {
    let q = Query::from_uri(&uri);
    check_bool(&q, "insertDefaults")
        .err()
        .unwrap_or(no_manager().await)
}

/// `POST /swarm/update?version=&rotate...=` (moby `updateCluster`): the version must be
/// a number and each rotation flag a boolean, named without strconv's words.
async fn swarm_update(uri: Uri) -> ApiError {
    let q = Query::from_uri(&uri);
    let version = q.get("version").unwrap_or_default();
    if version.parse::<u64>().is_err() {
        return ApiError::bad_request(format!(
            "invalid swarm version '{version}': strconv.ParseUint: parsing {version:?}: invalid syntax"
        ));
    }
    for key in [
        "rotateWorkerToken",
        "rotateManagerToken",
        "rotateManagerUnlockKey",
    ] {
        if q.parse_bool(key).is_err() {
            let v = q.get(key).unwrap_or_default();
            return ApiError::bad_request(format!("invalid value for {key}: {v}"));
        }
    }
    no_manager().await
}

/// `GET /services/{id}/logs`, `GET /tasks/{id}/logs` (moby `swarmLogs`): a request for
/// neither stream is refused before the cluster is asked (dockerd 20.10 answers 500).
async fn logs(uri: Uri) -> ApiError {
    let q = Query::from_uri(&uri);
    if !(q.bool("stdout") || q.bool("stderr")) {
        return ApiError::bad_request("Bad parameters: you must choose at least one stream");
    }
    no_manager().await
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

/// `POST /plugins/{name}/enable?timeout=` (moby `enablePlugin`): the timeout is read
/// before the plugin is looked up; one that is not a number (or none) is refused in
/// strconv's words (a 400; dockerd answers 500).
async fn plugin_enable(
    axum::extract::Path(name): axum::extract::Path<String>,
    uri: Uri,
) -> ApiError {
    let q = Query::from_uri(&uri);
    let timeout = q.get("timeout").unwrap_or_default();
    if timeout.parse::<i64>().is_err() {
        return ApiError::bad_request(format!("strconv.Atoi: parsing {timeout:?}: invalid syntax"));
    }
    no_such_plugin(axum::extract::Path(name)).await
}

/// `POST /plugins/{name}/set` (moby `setPlugin`): the body, a list of `KEY=VALUE`
/// strings, is decoded before the plugin is looked up.
async fn plugin_set(
    axum::extract::Path(name): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> ApiError {
    if body.trim_ascii().is_empty() {
        return ApiError::bad_request("got EOF while reading request body");
    }
    use serde_json::Value;
    let go_type = |v: &Value| match v {
        Value::Object(_) => "object",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Null => "null",
    };
    // Go's encoding/json words for a value of the wrong type (`null` reads as empty).
    let wrong = match serde_json::from_slice::<Value>(&body) {
        Err(e) => return ApiError::bad_request(format!("invalid JSON: {e}")),
        Ok(Value::Null) => None,
        Ok(Value::Array(items)) => items
            .iter()
            .find(|i| !i.is_string() && !i.is_null())
            .map(|i| (go_type(i), "string")),
        Ok(other) => Some((go_type(&other), "[]string")),
    };
    if let Some((what, into)) = wrong {
        return ApiError::bad_request(format!(
            "json: cannot unmarshal {what} into Go value of type {into}"
        ));
    }
    no_such_plugin(axum::extract::Path(name)).await
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

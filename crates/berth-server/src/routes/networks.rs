//! Network routes: create, list, inspect, remove, prune, connect, disconnect.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_api_types::filters::Filters;
use serde_json::{Map, Value};

use super::query::Query;
use crate::ApiError;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

fn json_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

fn filters(uri: &Uri) -> Result<Filters, ApiError> {
    Filters::parse(Query::from_uri(uri).get("filters")).map_err(ApiError::from)
}

async fn create(State(engine): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let v = engine.network_create(json_body(&body)?).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    Ok(Json(engine.network_list(&filters(&uri)?).await?).into_response())
}

/// `GET /networks/{id}?verbose=&scope=` (moby `getNetwork`): a malformed `verbose` is a
/// 400 before the lookup; a `scope` the network does not have finds no network.
async fn inspect(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    if let Err(e) = q.parse_bool("verbose") {
        let v = q.get("verbose").unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "invalid value for verbose: {v}: {e}"
        )));
    }
    let network = engine.network_inspect(&id).await?;
    match q.get("scope").filter(|s| !s.is_empty()) {
        Some(scope) if network.get("Scope").and_then(|s| s.as_str()) != Some(scope) => {
            Err(ApiError::not_found(format!("network {id} not found")))
        }
        _ => Ok(Json(network).into_response()),
    }
}

async fn remove(
    State(engine): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    engine.network_delete(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    Ok(Json(engine.network_prune(&filters(&uri)?).await?).into_response())
}

async fn connect(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    engine.network_connect(&id, json_body(&body)?).await?;
    Ok(StatusCode::OK.into_response())
}

async fn disconnect(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    engine.network_disconnect(&id, json_body(&body)?).await?;
    Ok(StatusCode::OK.into_response())
}

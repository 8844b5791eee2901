//! Volume routes: create, list, inspect, remove, prune (local driver), and `/system/df`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use berth_api_types::filters::Filters;
use berth_api_types::ApiVersion;
use berth_engine::volumes::CreateVolume;

use super::query::Query;
use crate::ApiError;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
        .route("/system/df", get(df))
}

async fn create(
    State(engine): State<AppState>,
    role: Option<axum::Extension<crate::Role>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: CreateVolume = if body.iter().all(u8::is_ascii_whitespace) {
        CreateVolume::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    // With authorization on, the role that approved a bound device stays with the volume.
    let role = role.map(|axum::Extension(r)| r.as_str());
    let v = engine.volume_create_as(req, role).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let filters = Filters::parse(q.get("filters")).map_err(ApiError::from)?;
    Ok(Json(engine.volume_list(&filters).await?).into_response())
}

async fn inspect(
    State(engine): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(engine.volume_inspect(&name).await?).into_response())
}

async fn remove(
    State(engine): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    engine.volume_remove(&name, q.bool("force")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(
    State(engine): State<AppState>,
    version: Option<Extension<ApiVersion>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let filters = Filters::parse(q.get("filters")).map_err(ApiError::from)?;
    // Before API 1.42 a prune removed named volumes too (moby `volumes_routes.go`).
    let named_too = version.is_some_and(|Extension(v)| v < ApiVersion::new(1, 42));
    Ok(Json(engine.volume_prune(&filters, named_too).await?).into_response())
}

async fn df(
    State(engine): State<AppState>,
    version: Option<Extension<ApiVersion>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let types = q.all("type");
    let mut v = engine.system_df(&types).await?;
    if types.is_empty() || types.iter().any(|t| t == "build-cache") {
        // No record reads as dockerd's `null`.
        let (cache, size) = engine.build_cache_usage().await?;
        if !cache.is_empty() {
            v["BuildCache"] = serde_json::json!(cache);
        }
        v["BuilderSize"] = serde_json::json!(size);
    }
    super::legacy::system_df(&mut v, super::legacy::asked(version));
    Ok(Json(v).into_response())
}

//! Operations on a running container: `resize`, `top`, `stats` (one JSON object, or a
//! stream of lines), `pause`, `unpause`, `update`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::exec::{json_object, size};
use super::query::Query;
use crate::ApiError;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/update", post(update))
}

async fn resize(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let (h, w) = size(&uri)?;
    engine.container_resize(&id, h, w).await?;
    Ok(StatusCode::OK.into_response())
}

async fn top(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let t = engine
        .container_top(&id, q.get("ps_args").unwrap_or(""))
        .await?;
    Ok(Json(json!({"Titles": t.titles, "Processes": t.processes})).into_response())
}

async fn stats(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    // moby: `stream` defaults to true; `one-shot` only counts without streaming.
    let stream = q.get("stream").is_none() || q.bool("stream");
    let one_shot = q.bool("one-shot");
    if one_shot && stream {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    let mut rx = engine.container_stats(&id, stream, one_shot).await?;
    if !stream {
        let v = rx.recv().await.unwrap_or_default();
        return Ok(Json(v).into_response());
    }
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

async fn pause(
    State(engine): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    engine.container_pause(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn unpause(
    State(engine): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    engine.container_unpause(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn update(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let map = json_object(&body)?;
    let warnings = engine.container_update(&id, &map).await?;
    Ok(Json(json!({"Warnings": warnings})).into_response())
}

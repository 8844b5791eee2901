//! Registry routes: `POST /auth` (what `docker login` calls) and
//! `GET /distribution/{name}/json`, plus the `X-Registry-Auth` decoding and the progress
//! streaming that pull and push (in `images`) share.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::distribution::{ProgressStream, RegistryAuth};

use crate::ApiError;

use super::AppState;

/// Docker's credentials header.
const AUTH_HEADER: &str = "x-registry-auth";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth", post(auth))
        .route("/distribution/{*rest}", get(inspect))
}

/// The credentials of `X-Registry-Auth`. A header that does not decode counts as
/// anonymous, as dockerd treats it (moby `api/server/router/image/image_routes.go`).
pub(super) fn registry_auth(headers: &HeaderMap) -> Option<RegistryAuth> {
    let value = headers.get(AUTH_HEADER)?.to_str().ok()?;
    match RegistryAuth::from_header(value) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::debug!(error = %e, "ignoring undecodable X-Registry-Auth");
            Some(RegistryAuth::default())
        }
    }
}

/// Progress messages as `application/json` lines, sent as they come.
pub(super) fn progress_response(rx: ProgressStream) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let message = rx.recv().await?;
        let mut line = serde_json::to_vec(&message).expect("progress serializes");
        line.extend_from_slice(b"\r\n");
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn auth(State(engine): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let auth = RegistryAuth::from_json(&body).map_err(ApiError::from)?;
    Ok(Json(engine.registry_login(auth).await?).into_response())
}

async fn inspect(
    State(engine): State<AppState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = rest
        .strip_suffix("/json")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::not_found("page not found"))?;
    let auth = registry_auth(&headers).unwrap_or_default();
    Ok(Json(engine.distribution_inspect(name.to_string(), auth).await?).into_response())
}

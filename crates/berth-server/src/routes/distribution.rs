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

/// The most bytes of queued messages joined into one chunk.
const BATCH_MAX: usize = 64 << 10;

/// Progress messages as `application/json` lines, sent as they come; those already
/// queued go out together, in one chunk (a cached build's burst of lines is one write).
pub(super) fn progress_response(rx: ProgressStream) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let mut message = rx.recv().await?;
        let mut lines = Vec::new();
        loop {
            serde_json::to_writer(&mut lines, &message).expect("progress serializes");
            lines.extend_from_slice(b"\r\n");
            if lines.len() >= BATCH_MAX {
                break;
            }
            match rx.try_recv() {
                Ok(next) => message = next,
                Err(_) => break,
            }
        }
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(lines)), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn auth(State(engine): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    // No credentials at all is the client's error, in the words of dockerd's JSON decoder
    // (which answers it with a 500); it is not a login to Docker Hub.
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("EOF"));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api_types::image::ProgressMessage;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn queued_messages_go_out_in_one_chunk() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..3 {
            tx.send(ProgressMessage::stream(format!("line {i}\n")))
                .unwrap();
        }
        let mut body = progress_response(rx).into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let text = String::from_utf8(first.to_vec()).unwrap();
        assert_eq!(text.matches("\r\n").count(), 3, "{text:?}");
        assert!(text.starts_with(r#"{"stream":"line 0\n"}"#), "{text:?}");
        // Later messages come as they are sent; the body ends with the sender.
        tx.send(ProgressMessage::stream("last\n")).unwrap();
        drop(tx);
        let next = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&next[..], b"{\"stream\":\"last\\n\"}\r\n");
        assert!(body.frame().await.is_none());
    }
}

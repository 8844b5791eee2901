//! Exec routes: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (101 upgrade, then
//! the process's streams spliced to the client as for attach, see [`super::hijack`]),
//! `GET /exec/{id}/json`, `POST /exec/{id}/resize`.

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_api_types::stdcopy::{frame_header, Stream};
use berth_api_types::ApiVersion;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use super::body::receiver_body;

use super::hijack::{splice, stream_type, upgrade, upgraded};
use super::query::Query;
use crate::ApiError;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/json", get(inspect))
        .route("/exec/{id}/resize", post(resize))
}

/// A JSON object body; empty is `{}`.
pub(super) fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// `h` and `w` of a resize request (moby answers a bad value with 400).
pub(super) fn size(uri: &Uri) -> Result<(u16, u16), ApiError> {
    let q = Query::from_uri(uri);
    let num = |k: &str| -> Result<u16, ApiError> {
        let v = q.get(k).unwrap_or("");
        v.parse::<u16>().map_err(|_| {
            ApiError::bad_request(format!("strconv.Atoi: parsing \"{v}\": invalid syntax"))
        })
    };
    Ok((num("h")?, num("w")?))
}

async fn create(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let map = json_object(&body)?;
    let exec_id = engine.exec_create(&id, &map).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

async fn inspect(
    State(engine): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(engine.exec_inspect(&id).await?).into_response())
}

async fn resize(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let (h, w) = size(&uri)?;
    engine.exec_resize(&id, h, w).await?;
    Ok(StatusCode::OK.into_response())
}

/// moby's router writes a start error into the stream, framed as stdout without a tty.
fn error_bytes(tty: bool, message: &str) -> Vec<u8> {
    let text = format!("{message}\r\n");
    let mut out = Vec::new();
    if !tty {
        let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&frame_header(Stream::Stdout, len));
    }
    out.extend_from_slice(text.as_bytes());
    out
}

async fn start(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let upgrade_asked = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| !v.is_empty());
    let body = axum::body::to_bytes(std::mem::take(req.body_mut()), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
    let map = json_object(&body)?;
    let detach = map.get("Detach").and_then(Value::as_bool).unwrap_or(false);
    let tty = map.get("Tty").and_then(Value::as_bool);
    let started = engine.exec_start(&id, detach, tty).await?;
    let tty = started.tty;
    let detach_keys = started.detach_keys;
    if detach {
        started.start.await?;
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")]).into_response());
    }
    let ctype = stream_type(tty, req.extensions().get::<ApiVersion>());
    if !upgrade_asked {
        // A client without Upgrade: the output as the body.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            match started.start.await {
                Ok(Some(shim)) => {
                    use futures_util::StreamExt;
                    let mut s = tokio_util::io::ReaderStream::new(shim);
                    while let Some(Ok(b)) = s.next().await {
                        if tx.send(b).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = tx.send(Bytes::from(error_bytes(tty, &e.to_string()))).await;
                }
            }
        });
        return Ok(([(header::CONTENT_TYPE, ctype)], receiver_body(rx)).into_response());
    }
    let upgrade = upgrade(&mut req);
    tokio::spawn(async move {
        let Some(mut client) = upgrade.await else {
            return;
        };
        match started.start.await {
            Ok(Some(shim)) => {
                if splice(client, shim, detach_keys).await {
                    engine.exec_detached(&id);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "exec: start failed");
                let _ = client.write_all(&error_bytes(tty, &e.to_string())).await;
                let _ = client.shutdown().await;
            }
        }
    });
    Ok(upgraded(ctype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_are_framed_without_a_tty() {
        let b = error_bytes(false, "boom");
        assert_eq!(&b[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        assert_eq!(&b[8..], b"boom\r\n");
        assert_eq!(error_bytes(true, "boom"), b"boom\r\n");
    }

    #[test]
    fn resize_sizes() {
        let u: Uri = "/x?h=24&w=80".parse().unwrap();
        assert_eq!(size(&u).unwrap(), (24, 80));
        for bad in ["/x?h=a&w=80", "/x?w=80", "/x?h=-1&w=3", "/x?h=70000&w=1"] {
            assert!(size(&bad.parse().unwrap()).is_err(), "{bad}");
        }
    }
}

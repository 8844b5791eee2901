//! Exec routes: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (101 upgrade, then
//! the process's streams spliced to the client, as for attach), `GET /exec/{id}/json`,
//! `POST /exec/{id}/resize`; and [`splice`], the copy that attach uses too, which watches
//! a tty's input for the detach keys.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_api_types::detach::{Scan, Scanner};
use berth_api_types::stdcopy::{frame_header, Stream};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use super::body::receiver_body;
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

/// The 101 answer to an attach or exec start that hijacks the connection (`ctype`: the
/// raw or multiplexed stream's content type).
pub(super) fn upgraded(ctype: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, ctype)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_default()
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

/// Copies the client's input to the shim until it ends; with `detach_keys`, until the
/// client types them. Whole buffers are scanned, so typing costs no extra system call.
/// Whether the client detached.
async fn copy_input<R, W>(
    client: &mut R,
    shim: &mut W,
    detach_keys: Option<&[u8]>,
) -> std::io::Result<bool>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(keys) = detach_keys else {
        tokio::io::copy(client, shim).await?;
        return Ok(false);
    };
    let mut scanner = Scanner::new(keys);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            // Input ended in the middle of the sequence: it was typed, so it goes through.
            shim.write_all(scanner.held()).await?;
            return Ok(false);
        }
        match scanner.scan(&buf[..n]) {
            Scan::Forward(bytes) => shim.write_all(&bytes).await?,
            Scan::Detach(bytes) => {
                shim.write_all(&bytes).await?;
                return Ok(true);
            }
        }
    }
}

/// The connection an attach or exec upgrades to, once the client has read the 101 (see
/// `crate::peer`); `None` when the upgrade fails.
pub(super) fn upgrade(
    req: &mut Request,
) -> impl std::future::Future<Output = Option<TokioIo<hyper::upgrade::Upgraded>>> + use<> {
    let on_upgrade = hyper::upgrade::on(&mut *req);
    let probe = req.extensions().get::<crate::peer::PeerProbe>().cloned();
    async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return None;
            }
        };
        // Before any stream byte: see `crate::peer`.
        crate::peer::until_read(probe).await;
        Some(TokioIo::new(upgraded))
    }
}

/// Copies client → shim and shim → client until the shim's side ends (the process exited
/// and its output is drained), the client goes away, or (with `detach_keys`: a tty with
/// stdin) the client types the detach sequence. Attach and exec both use it; whether the
/// client detached.
///
/// A detach drops both connections; the shim takes the end of a tty attach as the end of
/// that attach only, so the process keeps running with its stdin open, to be attached
/// again (moby `container/stream/attach.go`, `copyEscapable`).
pub(super) async fn splice<C>(client: C, shim: UnixStream, detach_keys: Option<Vec<u8>>) -> bool
where
    C: AsyncRead + AsyncWrite + Send,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = shim.into_split();
    let input = async {
        if let Ok(true) = copy_input(&mut cr, &mut sw, detach_keys.as_deref()).await {
            return;
        }
        // The client closed its input: the shim closes the process's stdin (StdinOnce,
        // exec) or ends this attach (tty).
        let _ = sw.shutdown().await;
        std::future::pending::<()>().await
    };
    let output = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    let detached = tokio::select! {
        _ = input => true,
        _ = output => false,
    };
    if detached {
        tracing::debug!("attach: the client typed the detach keys");
        let _ = cw.shutdown().await;
    }
    detached
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
    let ctype = super::containers::stream_type(tty);
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

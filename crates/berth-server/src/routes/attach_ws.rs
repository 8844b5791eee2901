//! `GET /containers/{id}/attach/ws`: attach over a WebSocket (moby
//! `postContainersAttachWebsocket`). The container's output is never multiplexed (each
//! piece of stdout or stderr is one message, binary from API 1.28 on, text before), the
//! client's messages are its stdin, and with `logs` the log so far comes first, as for the
//! hijacked attach.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use berth_api_types::detach::{Scan, Scanner};
use berth_api_types::ApiVersion;
use berth_engine::containers::{AttachStreams, LogsOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use super::query::Query;
use super::AppState;
use crate::websocket as ws;
use crate::ApiError;

pub(super) async fn attach_ws(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    version: Option<Extension<ApiVersion>>,
    uri: Uri,
    mut req: Request,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let keys = detach_keys(&q)?;
    let key = websocket_key(&req).ok_or_else(|| {
        ApiError::bad_request("websocket: the client is not using the websocket protocol")
    })?;
    let streams = AttachStreams {
        stdin: q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
    };
    let stdin = streams.stdin;
    // As the hijacked attach: the log so far with `logs`, the live output with `stream`.
    let logs = q.bool("logs");
    let replay = match logs && (streams.stdout || streams.stderr) {
        true => Some(engine.container_logs(&id, replay_options(&streams)).await?),
        false => None,
    };
    let live = match q.bool("stream") {
        true => Some(engine.container_attach(&id, streams).await?),
        false => None,
    };
    let tty = live
        .as_ref()
        .map(|(t, _)| *t)
        .or(replay.as_ref().map(|(t, _)| *t));
    let opcode = match super::legacy::asked(version) >= ApiVersion::new(1, 28) {
        true => ws::OP_BINARY,
        false => ws::OP_TEXT,
    };
    let upgrade = super::hijack::upgrade(&mut req);
    tokio::spawn(async move {
        let Some(client) = upgrade.await else {
            return;
        };
        let (mut cr, mut cw) = tokio::io::split(client);
        if let Some((tty, mut rx)) = replay {
            let mut demux = Demux::new(tty);
            while let Some(b) = rx.recv().await {
                if send_output(&mut cw, opcode, &mut demux, &b).await.is_err() {
                    return;
                }
            }
        }
        let shim = match live {
            Some((_, pending)) => match pending.await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::debug!(error = %e, "attach/ws: no stream");
                    None
                }
            },
            None => None,
        };
        if let Some(shim) = shim {
            let detach_keys = (tty == Some(true) && stdin && !keys.is_empty()).then_some(keys);
            if pump(
                &mut cr,
                &mut cw,
                shim,
                tty == Some(true),
                opcode,
                detach_keys,
            )
            .await
            {
                engine.container_detached(&id);
            }
        }
        let _ = ws::write_close(&mut cw, ws::CLOSE_NORMAL).await;
        let _ = cw.shutdown().await;
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&ws::accept_key(&key)) {
        h.insert("sec-websocket-accept", v);
    }
    Ok(resp)
}

/// The `detachKeys` of either attach route (moby `daemon/attach.go` checks them before
/// looking for the container); none given: none scanned for.
pub(super) fn detach_keys(q: &Query) -> Result<Vec<u8>, ApiError> {
    match q.get("detachKeys") {
        None | Some("") => Ok(Vec::new()),
        Some(k) => berth_api_types::detach::parse(k)
            .map_err(|_| ApiError::bad_request(format!("Invalid detach keys ({k}) provided"))),
    }
}

/// The whole log so far (moby reads it with no tail), of the streams the attach asks for.
pub(super) fn replay_options(streams: &AttachStreams) -> LogsOptions {
    LogsOptions {
        stdout: streams.stdout,
        stderr: streams.stderr,
        follow: false,
        timestamps: false,
        tail: None,
        since: None,
        until: None,
        details: false,
    }
}

/// The client's `Sec-WebSocket-Key` when it asks for a WebSocket upgrade.
fn websocket_key(req: &Request) -> Option<String> {
    let h = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has(header::UPGRADE, "websocket") || !has(header::CONNECTION, "upgrade") {
        return None;
    }
    let key = h.get("sec-websocket-key")?.to_str().ok()?.trim();
    (!key.is_empty()).then(|| key.to_string())
}

/// Splits Docker's multiplexed frames (8-byte header: stream, 3 zeros, big-endian length)
/// into their payloads across arbitrary chunk boundaries; a tty's output passes as is.
struct Demux {
    raw: bool,
    header: [u8; 8],
    have: usize,
    left: usize,
}

impl Demux {
    fn new(raw: bool) -> Demux {
        Demux {
            raw,
            header: [0; 8],
            have: 0,
            left: 0,
        }
    }

    /// The payload pieces in `chunk`, in order.
    fn feed<'a>(&mut self, mut chunk: &'a [u8]) -> Vec<&'a [u8]> {
        if self.raw {
            return vec![chunk];
        }
        let mut out = Vec::new();
        while !chunk.is_empty() {
            if self.left == 0 {
                let take = (8 - self.have).min(chunk.len());
                self.header[self.have..self.have + take].copy_from_slice(&chunk[..take]);
                self.have += take;
                chunk = &chunk[take..];
                if self.have == 8 {
                    let [_, _, _, _, a, b, c, d] = self.header;
                    self.left = u32::from_be_bytes([a, b, c, d]) as usize;
                    self.have = 0;
                }
                continue;
            }
            let take = self.left.min(chunk.len());
            out.push(&chunk[..take]);
            self.left -= take;
            chunk = &chunk[take..];
        }
        out
    }
}

/// Sends what `chunk` carries of the container's output, one message per piece.
async fn send_output(
    w: &mut (impl AsyncWrite + Unpin),
    opcode: u8,
    demux: &mut Demux,
    chunk: &[u8],
) -> std::io::Result<()> {
    for piece in demux.feed(chunk) {
        if !piece.is_empty() {
            ws::write_frame(w, opcode, &[piece]).await?;
        }
    }
    Ok(())
}

/// Client messages to the process's stdin and its output to the client, until the output
/// ends, the client leaves, or (with `detach_keys`) types them; whether it detached.
async fn pump<R, W>(
    cr: &mut R,
    cw: &mut W,
    shim: UnixStream,
    tty: bool,
    opcode: u8,
    detach_keys: Option<Vec<u8>>,
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut sr, mut sw) = shim.into_split();
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let input = async {
        let mut scanner = detach_keys.as_deref().map(Scanner::new);
        loop {
            let frame = match ws::read_frame(cr).await {
                Ok(Some(f)) => f,
                Ok(None) | Err(_) => break,
            };
            match frame.opcode {
                ws::OP_CLOSE => break,
                ws::OP_PING => {
                    let _ = pong_tx.send(frame.payload).await;
                }
                ws::OP_TEXT | ws::OP_BINARY | ws::OP_CONTINUATION => {
                    let (bytes, detached) = match scanner.as_mut() {
                        None => (frame.payload, false),
                        Some(s) => match s.scan(&frame.payload) {
                            Scan::Forward(b) => (b.into_owned(), false),
                            Scan::Detach(b) => (b.into_owned(), true),
                        },
                    };
                    if sw.write_all(&bytes).await.is_err() {
                        break;
                    }
                    if detached {
                        return true;
                    }
                }
                _ => {}
            }
        }
        // The client closed its side: the shim closes stdin (or ends a tty attach).
        let _ = sw.shutdown().await;
        std::future::pending::<bool>().await
    };
    let output = async {
        let mut demux = Demux::new(tty);
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            tokio::select! {
                n = sr.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if send_output(cw, opcode, &mut demux, &buf[..n]).await.is_err() {
                            return;
                        }
                    }
                },
                Some(p) = pong_rx.recv() => {
                    if ws::write_frame(cw, ws::OP_PONG, &[&p]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        detached = input => detached,
        _ = output => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn demux_follows_frames_across_chunks() {
        let mut all = frame(1, b"hello ");
        all.extend(frame(2, b"err"));
        all.extend(frame(1, b""));
        all.extend(frame(1, b"!"));
        for cut in 0..all.len() {
            let mut d = Demux::new(false);
            let mut got = Vec::new();
            for part in [&all[..cut], &all[cut..]] {
                for p in d.feed(part) {
                    got.extend_from_slice(p);
                }
            }
            assert_eq!(got, b"hello err!", "cut at {cut}");
        }
        assert_eq!(Demux::new(true).feed(b"\x01raw"), [b"\x01raw".as_slice()]);
    }

    #[test]
    fn only_websocket_upgrades_have_a_key() {
        let req = |hs: &[(&str, &str)]| {
            let mut b = axum::http::Request::builder().uri("/x");
            for (k, v) in hs {
                b = b.header(*k, *v);
            }
            b.body(axum::body::Body::empty()).unwrap()
        };
        let ok = req(&[
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive, Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(
            websocket_key(&ok).as_deref(),
            Some("dGhlIHNhbXBsZSBub25jZQ==")
        );
        assert!(websocket_key(&req(&[("Upgrade", "tcp"), ("Connection", "Upgrade")])).is_none());
        assert!(
            websocket_key(&req(&[("Upgrade", "websocket"), ("Connection", "Upgrade")])).is_none()
        );
    }
}

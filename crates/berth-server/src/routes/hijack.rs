//! Hijacked connections, for attach and exec start: the 101 answer, the upgrade, and
//! [`splice`], the copy between client and shim that watches a tty's input for the
//! detach keys.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;
use berth_api_types::detach::{Scan, Scanner};
use berth_api_types::ApiVersion;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

/// The content type of a container's output stream, as dockerd names it: multiplexed
/// (stdcopy frames) without a tty from API 1.42 on, raw-stream otherwise (before 1.42 the
/// frames were there but the name said raw; moby `postContainersAttach`,
/// `postContainerExecStart`, `getContainersLogs`). `version`: the request's; none (no
/// `/vX.Y` prefix) is the latest.
pub(crate) fn stream_type(tty: bool, version: Option<&ApiVersion>) -> &'static str {
    let old_api = version.is_some_and(|v| *v < ApiVersion::new(1, 42));
    if tty || old_api {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// The 101 answer to an attach or exec start that hijacks the connection (`ctype`: the
/// raw or multiplexed stream's content type), with dockerd's status line
/// (`HTTP/1.1 101 UPGRADED`).
pub(super) fn upgraded(ctype: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .extension(hyper::ext::ReasonPhrase::from_static(b"UPGRADED"))
        .header(header::CONTENT_TYPE, ctype)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_default()
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

/// The connection an attach or exec upgrades to, once a unix client has read the 101
/// (see `crate::peer`); `None` when the upgrade fails.
pub(super) fn upgrade(
    req: &mut Request,
) -> impl std::future::Future<Output = Option<crate::peer::Hijacked>> + use<> {
    let on_upgrade = hyper::upgrade::on(&mut *req);
    async move {
        match on_upgrade.await {
            Ok(u) => Some(crate::peer::Hijacked::of(u).await),
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                None
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// dockerd 20.10 and 28: `raw-stream` before API 1.42 or with a tty, then
    /// `multiplexed-stream`; the 101's status line is `HTTP/1.1 101 UPGRADED`.
    #[test]
    fn stream_type_and_status_line_as_dockerd() {
        let raw = "application/vnd.docker.raw-stream";
        let mux = "application/vnd.docker.multiplexed-stream";
        let (v141, v142) = (ApiVersion::new(1, 41), ApiVersion::new(1, 42));
        assert_eq!(stream_type(false, Some(&v141)), raw);
        assert_eq!(stream_type(false, Some(&v142)), mux);
        assert_eq!(stream_type(false, None), mux);
        assert_eq!(stream_type(true, Some(&v142)), raw);
        let r = upgraded(mux);
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        let reason = r.extensions().get::<hyper::ext::ReasonPhrase>();
        assert_eq!(reason.map(|p| p.as_bytes()), Some(&b"UPGRADED"[..]));
    }
}

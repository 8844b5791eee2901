//! The CRI streaming server: `Exec`, `Attach` and `PortForward` answer a URL
//! (`http://<stream-address>/<kind>/<token>`) whose token stands for the request
//! ([`tokens`]); the client upgrades that URL to a WebSocket ([`ws`]: [`remote`] for exec
//! and attach, [`portforward`] for port forwarding) or to SPDY/3.1 ([`spdy`], client-go's
//! and so crictl's and the kubelet's clients' default: [`spdy_remote`],
//! [`spdy_portforward`]), and the session runs over it. It listens on a loopback TCP
//! address (daemon.json `cri.stream-address` and `cri.stream-port`, default 127.0.0.1 on
//! an ephemeral port), HTTP/1.1 only.

mod calls;
pub(crate) mod portforward;
pub(crate) mod remote;
pub(crate) mod spdy;
pub(crate) mod spdy_portforward;
pub(crate) mod spdy_remote;
pub(crate) mod tokens;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use berth_engine::Engine;
use berth_server::websocket as ws;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use tokens::{Pending, Tokens};

/// Where the streaming server listens by default: loopback, a port the kernel picks.
pub const DEFAULT_STREAM_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// The tokens and the base URL the gRPC calls hand out.
pub(crate) struct Streams {
    pub(crate) tokens: Tokens,
    base: String,
}

impl Streams {
    /// Caches `req`; the URL that serves it.
    pub(crate) fn url_for(&self, req: Pending) -> Result<String, tonic::Status> {
        let kind = req.kind();
        let token = self
            .tokens
            .insert(req)
            .map_err(|e| tonic::Status::resource_exhausted(e.to_string()))?;
        Ok(format!("{}/{kind}/{token}", self.base))
    }
}

/// The bound listener, not yet serving.
pub(crate) struct StreamServer {
    listener: TcpListener,
    pub(crate) streams: Arc<Streams>,
}

/// Why the streaming server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot listen for CRI streams on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl StreamServer {
    /// Binds `addr` (from within the daemon's runtime).
    pub(crate) fn bind(addr: SocketAddr) -> Result<Self, StreamError> {
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(TcpListener::from_std)
            .map_err(|source| StreamError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| StreamError::Bind { addr, source })?;
        tracing::info!(address = %local, "CRI streaming server listening");
        Ok(StreamServer {
            listener,
            streams: Arc::new(Streams {
                tokens: Tokens::default(),
                base: format!("http://{local}"),
            }),
        })
    }

    /// Serves until `shutdown` resolves; sessions under way go on to their end.
    pub(crate) async fn serve(self, engine: Arc<Engine>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "CRI streaming server: accept");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let streams = self.streams.clone();
            let engine = engine.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (streams, engine) = (streams.clone(), engine.clone());
                    async move { Ok::<_, Infallible>(handle(req, &streams, engine)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(30))
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "CRI streaming connection");
                }
            });
        }
    }
}

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn header<'a>(req: &'a Request<hyper::body::Incoming>, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The subprotocol to answer: the first of `ours` the client offers.
pub(crate) fn choose_protocol<'a>(offered: &str, ours: &[&'a str]) -> Option<&'a str> {
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    ours.iter().find(|p| offered.contains(p)).copied()
}

/// Every value of header `name`, comma-separated lists split.
fn header_values<'a>(req: &'a Request<hyper::body::Incoming>, name: &str) -> Vec<&'a str> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// The protocol to answer a SPDY upgrade with: the first the client offers that is ours
/// (as the kubelet's handshake picks).
pub(crate) fn negotiate<'a>(offered: &[&str], ours: &[&'a str]) -> Option<&'a str> {
    offered
        .iter()
        .find_map(|o| ours.iter().find(|p| *p == o).copied())
}

/// A SPDY/3.1 upgrade of `/<kind>/<token>`, answered as the kubelet's streaming server
/// does: `X-Stream-Protocol-Version` negotiated, 101 with `Upgrade: SPDY/3.1`.
/// The session a token stands for, taken (a token serves once), if it is of `kind`.
fn take_session(streams: &Streams, token: &str, kind: &str) -> Option<Pending> {
    streams.tokens.consume(token).filter(|p| p.kind() == kind)
}

/// The answer to a token that stands for no session of its kind.
fn no_session() -> Response<Full<Bytes>> {
    plain(
        StatusCode::NOT_FOUND,
        "no such session: unknown or expired token",
    )
}

/// Runs `serve` on the connection once the 101 answer has upgraded it (in a task of its
/// own; a failed upgrade is the client's end and only logged).
fn when_upgraded<F, Fut>(req: &mut Request<hyper::body::Incoming>, what: &'static str, serve: F)
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(u) => serve(TokioIo::new(u)).await,
            Err(e) => tracing::debug!(error = %e, protocol = what, "CRI stream: upgrade failed"),
        }
    });
}

/// A `101 Switching Protocols` answer to `upgrade` (`Connection: Upgrade`).
fn switching_protocols(upgrade: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static(upgrade),
    );
    r
}

fn handle_spdy(
    mut req: Request<hyper::body::Incoming>,
    kind: &str,
    token: &str,
    streams: &Streams,
    engine: Arc<Engine>,
) -> Response<Full<Bytes>> {
    if !header(&req, "connection")
        .to_ascii_lowercase()
        .contains("upgrade")
    {
        return plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request",
        );
    }
    let ours = if kind == "portforward" {
        spdy_portforward::PROTOCOLS
    } else {
        spdy_remote::PROTOCOLS
    };
    let offered = header_values(&req, "x-stream-protocol-version");
    if offered.is_empty() {
        return plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: header X-Stream-Protocol-Version does not exist in request",
        );
    }
    let Some(protocol) = negotiate(&offered, ours) else {
        let mut r = plain(
            StatusCode::FORBIDDEN,
            &format!(
                "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
                offered.join(" "),
                ours.join(" ")
            ),
        );
        for p in ours {
            r.headers_mut().append(
                "x-accepted-stream-protocol-versions",
                hyper::header::HeaderValue::from_static(p),
            );
        }
        return r;
    };
    let Some(pending) = take_session(streams, token, kind) else {
        return no_session();
    };
    when_upgraded(&mut req, "SPDY", move |upgraded| async move {
        match pending {
            Pending::Exec(r) => spdy_remote::exec(engine, r, upgraded, protocol).await,
            Pending::Attach(r) => spdy_remote::attach(engine, r, upgraded, protocol).await,
            Pending::PortForward(r) => spdy_portforward::serve(engine, r, upgraded).await,
        }
    });
    let mut r = switching_protocols("SPDY/3.1");
    let h = r.headers_mut();
    h.insert(
        "x-stream-protocol-version",
        hyper::header::HeaderValue::from_static(protocol),
    );
    r
}

/// One request: `GET /<kind>/<token>` upgrading to a WebSocket, or a SPDY/3.1 upgrade.
fn handle(
    mut req: Request<hyper::body::Incoming>,
    streams: &Streams,
    engine: Arc<Engine>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (Some(kind), Some(token)) = (parts.next(), parts.next()) else {
        return plain(StatusCode::NOT_FOUND, "404 page not found");
    };
    if !matches!(kind, "exec" | "attach" | "portforward") || token.contains('/') {
        return plain(StatusCode::NOT_FOUND, "404 page not found");
    }
    let upgrade = header(&req, "upgrade").to_ascii_lowercase();
    if upgrade.contains("spdy/3.1") {
        return handle_spdy(req, kind, token, streams, engine);
    }
    if upgrade != "websocket" || req.method() != hyper::Method::GET {
        return plain(
            StatusCode::BAD_REQUEST,
            "this URL must be upgraded to SPDY/3.1 or to a WebSocket (GET with Upgrade: websocket)",
        );
    }
    let key = header(&req, "sec-websocket-key").to_string();
    if key.is_empty() || header(&req, "sec-websocket-version") != "13" {
        return plain(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
        );
    }
    let ours = if kind == "portforward" {
        portforward::PROTOCOLS
    } else {
        remote::PROTOCOLS
    };
    let Some(protocol) = choose_protocol(header(&req, "sec-websocket-protocol"), ours) else {
        return plain(
            StatusCode::BAD_REQUEST,
            &format!(
                "unsupported subprotocol: this server speaks {}",
                ours.join(", ")
            ),
        );
    };
    let Some(pending) = take_session(streams, token, kind) else {
        return no_session();
    };
    // The port-forward query names the ports (`?port=80&port=8080`).
    let query_ports = portforward::query_ports(req.uri().query().unwrap_or(""));
    let v5 = protocol.starts_with("v5.");
    when_upgraded(&mut req, "WebSocket", move |upgraded| async move {
        match pending {
            Pending::Exec(r) => remote::exec(engine, r, upgraded, v5).await,
            Pending::Attach(r) => remote::attach(engine, r, upgraded, v5).await,
            Pending::PortForward(r) => portforward::serve(engine, r, query_ports, upgraded).await,
        }
    });
    let mut r = switching_protocols("websocket");
    let h = r.headers_mut();
    if let Ok(v) = hyper::header::HeaderValue::from_str(&ws::accept_key(&key)) {
        h.insert("sec-websocket-accept", v);
    }
    h.insert(
        "sec-websocket-protocol",
        hyper::header::HeaderValue::from_static(protocol),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_is_ours_in_our_order() {
        let ours = remote::PROTOCOLS;
        assert_eq!(
            choose_protocol("v4.channel.k8s.io, v5.channel.k8s.io", ours),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(
            choose_protocol("v4.channel.k8s.io", ours),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(choose_protocol("channel.k8s.io", ours), None);
        assert_eq!(choose_protocol("", ours), None);
    }

    #[test]
    fn spdy_protocol_is_the_clients_first_that_is_ours() {
        // client-go offers v5 first: over SPDY the kubelet answers v4.
        let offered = [
            "v5.channel.k8s.io",
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
        ];
        assert_eq!(
            negotiate(&offered, spdy_remote::PROTOCOLS),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(
            negotiate(
                &["v2.channel.k8s.io", "v4.channel.k8s.io"],
                spdy_remote::PROTOCOLS
            ),
            Some("v2.channel.k8s.io")
        );
        assert_eq!(
            negotiate(&["v5.channel.k8s.io"], spdy_remote::PROTOCOLS),
            None
        );
        assert_eq!(
            negotiate(&["portforward.k8s.io"], spdy_portforward::PROTOCOLS),
            Some("portforward.k8s.io")
        );
    }
}

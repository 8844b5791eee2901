//! Accepting and serving connections: unix sockets as they are, TCP only through a mutual
//! TLS handshake whose client certificate becomes the request's identity.
//!
//! Each connection is one HTTP/1.1 hyper connection with upgrades enabled (attach and
//! exec hijack it later). Shutdown stops the accept loops, asks every open connection to
//! finish its in-flight request, waits a bounded time, then removes the socket files.
//! SIGHUP's TLS reload swaps the config new handshakes use; open connections keep theirs,
//! except those whose client certificate the reloaded revocation list names: they are
//! closed (`revocable.rs`).
//!
//! Before a handshake completes a TCP client is a stranger: at most
//! [`MAX_HANDSHAKES_PER_IP`] handshakes from one address and [`MAX_HANDSHAKES`] in all are
//! in flight, each for at most [`HANDSHAKE_TIMEOUT`], and at most [`MAX_TLS_CONNECTIONS`]
//! connections are open; a connection past a cap is closed at once. On every connection a
//! request's header must arrive within [`HEADER_READ_TIMEOUT`] (a slow or idle client
//! cannot hold a descriptor forever); once a response streams or the connection is
//! hijacked (attach, exec, `logs -f`, events) no timeout applies.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use berth_engine::Engine;
use berth_sys::activation::ActivatedListener;
use berth_tls::TlsPaths;
use futures_util::FutureExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;
use tracing::Instrument;

use crate::listen::{bind_unix, Endpoint, ListenerOptions};
use crate::revocable::{Connections, Revocable};
use crate::{routes, version, ApiError, ServerError};

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's header, from the first read of it (which,
/// between requests on a kept-alive connection, is also how long the connection may idle).
/// dockerd has none; 30 s is hyper's default once a timer is set.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// TLS handshakes in flight at once on all TCP listeners together.
pub const MAX_HANDSHAKES: usize = 256;
/// TLS handshakes in flight at once from one client address: one address cannot take
/// every handshake slot.
pub const MAX_HANDSHAKES_PER_IP: usize = 32;
/// Open TLS connections (handshaking or served) on all TCP listeners together.
pub const MAX_TLS_CONNECTIONS: usize = 2048;
/// Test-only overrides, in milliseconds, of [`HANDSHAKE_TIMEOUT`] and
/// [`HEADER_READ_TIMEOUT`], read once; end-to-end tests of the timeouts use them.
pub const HANDSHAKE_TIMEOUT_ENV: &str = "BERTHD_TEST_HANDSHAKE_TIMEOUT_MS";
pub const HEADER_READ_TIMEOUT_ENV: &str = "BERTHD_TEST_HEADER_READ_TIMEOUT_MS";
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Who sent a request, as known when its connection was accepted: over TLS the verified
/// client certificate, on the unix socket the peer process's credentials (`SO_PEERCRED`).
/// Request handlers find it in the request's extensions; authorization and the audit log
/// read it there.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity {
    /// The certificate's subject in RFC 4514 form (`CN=alice,OU=berth:viewer`).
    pub subject: Option<Arc<str>>,
    /// The certificate's serial number in lower-case hex, as `berth tls` and openssl print it.
    pub serial: Option<Arc<str>>,
    /// The unix socket peer's uid, gid and pid when it connected.
    pub unix: Option<PeerCred>,
}

/// As the request span shows it: `cert:<subject>`, `uid:<uid>/pid:<pid>`, or `-`.
impl std::fmt::Display for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.subject, &self.unix) {
            (Some(subject), _) => write!(f, "cert:{subject}"),
            (
                None,
                Some(PeerCred {
                    uid,
                    pid: Some(pid),
                    ..
                }),
            ) => write!(f, "uid:{uid}/pid:{pid}"),
            (None, Some(PeerCred { uid, pid: None, .. })) => write!(f, "uid:{uid}"),
            (None, None) => f.write_str("-"),
        }
    }
}

/// A unix socket peer's credentials (`SO_PEERCRED`), taken when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub uid: u32,
    pub gid: u32,
    /// `None` when the kernel could not name it (a peer in another pid namespace).
    pub pid: Option<i32>,
}

/// The TLS settings new handshakes use; replaced as a whole on reload. It also keeps the
/// open TLS connections by client certificate, so that a reload whose revocation list
/// names a certificate closes that certificate's connections.
#[derive(Debug, Clone)]
pub struct TlsReloader {
    paths: TlsPaths,
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    connections: Arc<Connections>,
}

/// What a reload changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsReload {
    /// Certificates the revocation list names (0 without `--tlscrl`).
    pub revoked: usize,
    /// Open connections closed because their certificate is now revoked.
    pub closed: usize,
}

impl TlsReloader {
    fn load(paths: TlsPaths) -> Result<Self, ServerError> {
        let tls = berth_tls::load_server_tls(&paths)?;
        Ok(Self {
            paths,
            current: Arc::new(RwLock::new(tls.config)),
            connections: Arc::new(Connections::new(tls.revoked)),
        })
    }

    /// Re-reads the CA, certificate, key and revocation list, then closes the open
    /// connections of certificates the list now names. On error the old settings stay in
    /// force and nothing is closed.
    pub fn reload(&self) -> Result<TlsReload, ServerError> {
        let tls = berth_tls::load_server_tls(&self.paths)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = tls.config;
        let revoked = tls.revoked.len();
        let closed = self.connections.set_revoked(tls.revoked);
        Ok(TlsReload { revoked, closed })
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        tokio_rustls::TlsAcceptor::from(config)
    }
}

/// Bound listeners, ready to serve. They are bound before the engine opens, so that a
/// daemon that cannot listen (socket in use, bad TLS files, TCP without TLS) refuses to
/// start before it makes anything (bridges, firewall chains, restored containers).
pub struct Server {
    unix: Vec<(PathBuf, UnixListener)>,
    tcp: Vec<(SocketAddr, TcpListener)>,
    tls: Option<TlsReloader>,
    authorization: Option<Arc<crate::Authorizer>>,
}

impl Server {
    /// Binds every endpoint. TCP endpoints need `tls`; `activated` holds the sockets systemd
    /// passed, which `fd://` endpoints adopt.
    pub async fn bind(
        hosts: &[Endpoint],
        tls: Option<TlsPaths>,
        mut activated: Vec<ActivatedListener>,
        opts: &ListenerOptions,
    ) -> Result<Self, ServerError> {
        let tls = tls.map(TlsReloader::load).transpose()?;
        let mut unix = Vec::new();
        let mut tcp = Vec::new();
        for host in hosts {
            match host {
                Endpoint::Unix(path) => unix.push((path.clone(), bind_unix(path, opts)?)),
                Endpoint::Tcp(addr) => {
                    if tls.is_none() {
                        return Err(ServerError::TcpWithoutTls {
                            addr: addr.to_string(),
                        });
                    }
                    let l = TcpListener::bind(addr)
                        .await
                        .map_err(|source| ServerError::Bind {
                            endpoint: host.to_string(),
                            source,
                        })?;
                    let local = l.local_addr().unwrap_or(*addr);
                    tcp.push((local, l));
                }
                Endpoint::Fd(_) => {
                    for a in activated.drain(..) {
                        let adopt_err = |source| ServerError::Bind {
                            endpoint: host.to_string(),
                            source,
                        };
                        match a {
                            ActivatedListener::Unix(l) => {
                                l.set_nonblocking(true).map_err(adopt_err)?;
                                let path = l
                                    .local_addr()
                                    .ok()
                                    .and_then(|a| a.as_pathname().map(PathBuf::from))
                                    .unwrap_or_default();
                                unix.push((path, UnixListener::from_std(l).map_err(adopt_err)?));
                            }
                            ActivatedListener::Tcp(l) => {
                                if tls.is_none() {
                                    return Err(ServerError::TcpWithoutTls {
                                        addr: format!("{host} (systemd TCP socket)"),
                                    });
                                }
                                l.set_nonblocking(true).map_err(adopt_err)?;
                                let local = l.local_addr().map_err(adopt_err)?;
                                tcp.push((local, TcpListener::from_std(l).map_err(adopt_err)?));
                            }
                        }
                    }
                }
            }
        }
        Ok(Self {
            unix,
            tcp,
            tls,
            authorization: opts.authorization.clone(),
        })
    }

    /// Closes the listeners unserved (the engine failed to open) and removes their socket
    /// files, as `serve` does when it ends.
    pub fn abandon(self) {
        for (path, listener) in self.unix {
            drop(listener);
            let _ = std::fs::remove_file(path);
        }
    }

    /// The handle SIGHUP uses to reload TLS files, if TCP is served.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.clone()
    }

    /// Addresses of the bound TCP listeners (useful with port 0).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp.iter().map(|(a, _)| *a).collect()
    }

    /// Serves `engine` until `shutdown` resolves, then drains connections and removes
    /// socket files.
    pub async fn serve(self, engine: Arc<Engine>, shutdown: impl Future<Output = ()>) {
        crate::internal::set_roots(&engine.config().data_root, &engine.config().exec_root);
        let router = routes::router(engine, self.authorization);
        let (stop_tx, stop_rx) = watch::channel(false);
        // Every connection task holds a clone; `recv` returns None once all are gone.
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let mut loops = Vec::new();
        let mut socket_files = Vec::new();

        for (path, listener) in self.unix {
            tracing::info!(listen = %format!("unix://{}", path.display()), "API listening");
            socket_files.push(path);
            let (router, stop, alive) = (router.clone(), stop_rx.clone(), alive_tx.clone());
            loops.push(tokio::spawn(accept_unix(listener, router, stop, alive)));
        }
        for (addr, listener) in self.tcp {
            let tls = self
                .tls
                .clone()
                .expect("tcp listeners are bound only with TLS");
            tracing::info!(listen = %format!("tcp://{addr}"), tls = "mutual", "API listening");
            let (router, stop, alive) = (router.clone(), stop_rx.clone(), alive_tx.clone());
            loops.push(tokio::spawn(accept_tls(listener, tls, router, stop, alive)));
        }
        drop(alive_tx);

        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing open requests");
        let _ = stop_tx.send(true);
        for l in loops {
            let _ = l.await;
        }
        for path in &socket_files {
            let _ = std::fs::remove_file(path);
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, alive_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
        }
    }
}

async fn accept_unix(
    listener: UnixListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let stream = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed on unix socket");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let unix = stream.peer_cred().ok().map(|c| PeerCred {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        });
        let conn = ConnContext {
            identity: ClientIdentity {
                unix,
                ..ClientIdentity::default()
            },
        };
        tokio::spawn(serve_connection(
            stream,
            conn,
            router.clone(),
            stop.clone(),
            alive.clone(),
        ));
    }
}

/// `default`, or the positive number of milliseconds in the environment variable `name`.
fn duration_from_env(name: &str, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(default)
}

fn handshake_timeout() -> Duration {
    static T: OnceLock<Duration> = OnceLock::new();
    *T.get_or_init(|| duration_from_env(HANDSHAKE_TIMEOUT_ENV, HANDSHAKE_TIMEOUT))
}

fn header_read_timeout() -> Duration {
    static T: OnceLock<Duration> = OnceLock::new();
    *T.get_or_init(|| duration_from_env(HEADER_READ_TIMEOUT_ENV, HEADER_READ_TIMEOUT))
}

/// The caps on TCP clients, shared by every TLS listener.
#[derive(Clone)]
struct TlsBudget {
    connections: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
}

/// A handshake slot, given back on drop.
struct HandshakeSlot {
    _all: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl TlsBudget {
    fn new(connections: usize, handshakes: usize, max_per_ip: usize) -> Self {
        Self {
            connections: Arc::new(Semaphore::new(connections)),
            handshakes: Arc::new(Semaphore::new(handshakes)),
            per_ip: Arc::default(),
            max_per_ip,
        }
    }

    /// A connection slot and a handshake slot for a client at `ip`, or why not.
    fn admit(&self, ip: IpAddr) -> Result<(OwnedSemaphorePermit, HandshakeSlot), &'static str> {
        let conn = self
            .connections
            .clone()
            .try_acquire_owned()
            .map_err(|_| "too many TLS connections")?;
        let all = self
            .handshakes
            .clone()
            .try_acquire_owned()
            .map_err(|_| "too many TLS handshakes in flight")?;
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err("too many TLS handshakes in flight from this address");
        }
        *n += 1;
        drop(map);
        let slot = HandshakeSlot {
            _all: all,
            ip,
            per_ip: self.per_ip.clone(),
        };
        Ok((conn, slot))
    }
}

async fn accept_tls(
    listener: TcpListener,
    tls: TlsReloader,
    router: Router,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    static BUDGET: OnceLock<TlsBudget> = OnceLock::new();
    let budget = BUDGET
        .get_or_init(|| TlsBudget::new(MAX_TLS_CONNECTIONS, MAX_HANDSHAKES, MAX_HANDSHAKES_PER_IP))
        .clone();
    let timeout = handshake_timeout();
    let mut refusing = false;
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed on tcp socket");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (connection, handshake) = match budget.admit(peer.ip()) {
            Ok(slots) => {
                refusing = false;
                slots
            }
            Err(why) => {
                // One warning per run of refusals: a flood must not flood the log too.
                if !refusing {
                    tracing::warn!(%peer, "{why}: connections past the cap are closed");
                }
                refusing = true;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = tls.acceptor();
        let connections = tls.connections.clone();
        let (router, stop, alive) = (router.clone(), stop.clone(), alive.clone());
        tokio::spawn(async move {
            let _connection = connection;
            let handshake_result = tokio::time::timeout(timeout, acceptor.accept(stream)).await;
            drop(handshake);
            let tls_stream = match handshake_result {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let leaf = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first());
            let subject = leaf.and_then(berth_tls::peer_subject);
            let cert = leaf.and_then(berth_tls::CertId::of);
            let serial = cert.as_ref().map(|c| Arc::<str>::from(c.serial_hex()));
            let client = subject.as_deref().unwrap_or("");
            let Some(registration) = connections.register(cert, tls_stream.get_ref().0) else {
                tracing::warn!(%peer, client, "TLS client refused: its certificate was revoked during the handshake");
                return;
            };
            tracing::debug!(%peer, client, "TLS client connected");
            let closed = registration.closed();
            let conn = ConnContext {
                identity: ClientIdentity {
                    subject: subject.clone().map(Arc::from),
                    serial,
                    unix: None,
                },
            };
            let io = Revocable::new(tls_stream, registration);
            tokio::select! {
                () = serve_connection(io, conn, router, stop, alive) => {}
                () = closed.cancelled() => {
                    tracing::info!(%peer, client = subject.as_deref().unwrap_or(""), "connection closed: client certificate revoked");
                }
            }
        });
    }
}

/// Resolves once shutdown has begun (the guard `wait_for` returns must not live across
/// an await, hence this wrapper).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What every request on one connection shares.
#[derive(Clone)]
struct ConnContext {
    identity: ClientIdentity,
}

async fn serve_connection<IO>(
    io: IO,
    conn: ConnContext,
    router: Router,
    mut stop: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |req| handle_request(router.clone(), conn.clone(), req));
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout())
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(http);
    let result = tokio::select! {
        r = http.as_mut() => r,
        _ = stopped(&mut stop) => {
            http.as_mut().graceful_shutdown();
            http.await
        }
    };
    if let Err(e) = result {
        if !e.is_incomplete_message() {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// One request: version prefix, routing, Docker's common headers, and the log line.
///
/// The last line of defence: a panic while a route computes its answer is caught here,
/// logged with the request's method and path, and answered 500 with Docker's body; the
/// connection and the daemon go on. (Panics after the answer, in a streamed body or a
/// spawned task, end only that task: the release profile unwinds.)
async fn handle_request<B>(
    router: Router,
    conn: ConnContext,
    mut req: Request<B>,
) -> Result<Response<Body>, Infallible>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let uri = req.uri().clone();
    // Every line logged while the route runs (engine calls included) carries this span,
    // and tasks the route spawns inherit it where they are instrumented with it.
    let id = crate::internal::next_request_id();
    let _listed =
        crate::inflight::register(&id, method.as_str(), &path, &conn.identity.to_string());
    let span = tracing::info_span!("request", id = %id, client = %conn.identity);
    let (api_version, mut resp) = match version::apply(&mut req) {
        Err(e) => (None, e.into_response()),
        Ok(v) => {
            req.extensions_mut().insert(v);
            req.extensions_mut().insert(conn.identity.clone());
            let routed = AssertUnwindSafe(router.oneshot(req.map(Body::new)))
                .catch_unwind()
                .instrument(span.clone())
                .await;
            let resp = match routed {
                Ok(r) => r.unwrap_or_else(|e| match e {}),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .copied()
                        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                        .unwrap_or("(not a string)");
                    tracing::error!(%method, %path, panic = what, "request handler panicked");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal error: the request handler failed unexpectedly (see the daemon log)",
                    )
                    .into_response()
                }
            };
            (Some(v), resp)
        }
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION_HEADER));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    if resp.status() == StatusCode::INTERNAL_SERVER_ERROR {
        resp = crate::internal::redact(resp).instrument(span.clone()).await;
    }
    crate::metrics::record(&method, &resp, start.elapsed());
    let status = resp.status().as_u16();
    // Recorded only over TLS; on the unix socket the field is absent.
    let client = conn.identity.subject.as_deref();
    let api = api_version.map(|v| v.to_string()).unwrap_or_default();
    let micros = start.elapsed().as_micros() as u64;
    let _entered = span.enter();
    if status >= 500 {
        tracing::error!(%method, %path, status, duration_us = micros, api_version = %api, client, "request");
    } else {
        tracing::info!(%method, %path, status, duration_us = micros, api_version = %api, client, "request");
    }
    drop(_entered);
    Ok(crate::audit::record(&conn.identity, &method, &uri, start, resp).await)
}

/// `ApiVersion::CURRENT` as a static header value.
const API_VERSION_HEADER: &str = "1.50";

#[cfg(test)]
mod tests {
    use berth_api_types::ApiVersion;

    use super::*;

    #[test]
    fn tls_budget_caps_handshakes_per_address_and_gives_slots_back() {
        let budget = TlsBudget::new(4, 3, 2);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let a1 = budget.admit(a).unwrap();
        let a2 = budget.admit(a).unwrap();
        assert!(
            budget.admit(a).is_err(),
            "a third handshake from one address"
        );
        let b1 = budget.admit(b).unwrap();
        assert!(budget.admit(b).is_err(), "a fourth handshake in all");
        // A finished handshake frees its slots, the connection stays counted.
        let (conn_a1, hs_a1) = a1;
        drop(hs_a1);
        let a3 = budget.admit(a).unwrap();
        assert!(budget.admit(b).is_err(), "a fifth connection in all");
        drop((conn_a1, a2, b1, a3));
        assert_eq!(budget.connections.available_permits(), 4);
        assert_eq!(budget.handshakes.available_permits(), 3);
        assert!(budget.per_ip.lock().unwrap().is_empty());
    }

    #[test]
    fn header_constant_matches_current_version() {
        assert_eq!(API_VERSION_HEADER, ApiVersion::CURRENT.to_string());
    }

    async fn send(router: &Router, path: &str) -> (StatusCode, serde_json::Value) {
        let conn = ConnContext {
            identity: ClientIdentity::default(),
        };
        let req = Request::get(path).body(Body::empty()).unwrap();
        let resp = handle_request(router.clone(), conn, req).await.unwrap();
        let status = resp.status();
        assert_eq!(resp.headers()["Api-Version"], API_VERSION_HEADER);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    /// A panicking route answers 500 with Docker's body, and the same service answers the
    /// next request (before, the panic unwound out of the connection, or aborted berthd).
    #[tokio::test]
    async fn a_panic_in_a_route_is_a_500_and_serving_goes_on() {
        fn boom(s: &str) -> usize {
            s[..s.len() + 1].len()
        }
        let router = Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async { boom("x").to_string() }),
            )
            .route(
                "/fine",
                axum::routing::get(|| async { axum::Json(serde_json::json!({"ok": true})) }),
            );
        let (status, body) = send(&router, "/v1.50/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body["message"].as_str().unwrap().contains("internal error"),
            "{body}"
        );
        let (status, body) = send(&router, "/fine").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["ok"], true);
    }
}

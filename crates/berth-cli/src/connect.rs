//! Reaching the daemon: turns docker's global connection flags and environment into a
//! [`Target`] ([`resolve`]), then opens a [`Client`] — a bollard [`Docker`] on a transport
//! we build, with the API version negotiated through `/_ping` — and turns transport
//! failures into sentences a user can act on ([`Client::explain`]).
//!
//! Rules (docker's, except that TCP always means verified mutual TLS):
//! - context: a named one ([`crate::context`]) gives host and TLS files; otherwise
//! - host: `-H` (once), else `BERTH_HOST`, else `DOCKER_HOST`, else
//!   `unix:///run/berth.sock`; `tcp://`/`https://` default to port 2376;
//! - TLS verification: `--tlsverify[=bool]`, else `BERTH_TLS_VERIFY` or `DOCKER_TLS_VERIFY`
//!   set to anything non-empty (docker treats even `0` as on);
//! - files: `--tlscacert`/`--tlscert`/`--tlskey`, else `ca.pem`/`cert.pem`/`key.pem` in
//!   `BERTH_CERT_PATH`, else `DOCKER_CERT_PATH`, else the config dir (`--config`, else
//!   `DOCKER_CONFIG`, else `~/.docker`);
//! - a `tcp://` host without TLS verification is refused: Berth never talks plain TCP and
//!   never skips checking the daemon's certificate.
//!
//! Why we build the transport instead of calling bollard's `connect_with_*`:
//! - `Docker::connect_with_ssl` (bollard 0.21, `src/docker.rs`) puts the system's native
//!   root certificates into the trust store next to the given CA (and fails when the
//!   native store cannot be read), so a daemon with any publicly trusted certificate for
//!   that name would be accepted. Berth must trust only `ca.pem`. We use
//!   [`berth_tls::load_client_config`] (only the given roots; leaf plus intermediates from
//!   `cert.pem`; DNS and IP SANs checked by webpki) inside hyper-rustls' connector, whose
//!   server name is the URI's host, and hand the hyper client to bollard through
//!   `Docker::connect_with_custom_transport`. Requests still go through bollard.
//! - bollard's `negotiate_version` asks `/v<max>/version` at its own maximum (1.53), which
//!   any daemon with a lower maximum refuses, and bollard cannot read `/_ping`'s
//!   `Api-Version` header. We ping `/_ping` unversioned, as the docker CLI does, and build
//!   the `Docker` at min(server, 1.50).
//! - [`Client::get_json`] returns a response's JSON as the daemon sent it: bollard's typed
//!   models drop fields they do not know and skip empty ones, and `--format` should see
//!   what `docker --format` sees.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use berth_api_types::ApiVersion;
use berth_tls::TlsPaths;
use bollard::errors::Error as BollardError;
use bollard::{BollardRequest, ClientVersion, Docker};
use http::header::{HeaderValue, USER_AGENT};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;
use serde_json::Value;

use crate::endpoint::{bracket, resolve_default, Host, Target};
use crate::error::Error;
use crate::options::GlobalOptions;

/// The API version this client speaks, lowered to the daemon's when that is older.
pub const CLIENT_API_VERSION: ApiVersion = ApiVersion::CURRENT;
/// What a daemon that sends no `Api-Version` header speaks (the docker CLI's fallback).
pub const FALLBACK_API_VERSION: ApiVersion = ApiVersion::new(1, 24);
/// Per-request limit until the response headers arrive (bollard's default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Where the daemon is

/// The selected context's endpoint ([`crate::context`]: `--context`, `DOCKER_CONTEXT`,
/// `currentContext`), else [`resolve_default`].
pub fn resolve(
    opts: &GlobalOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, Error> {
    match crate::context::selected_target(opts, env)? {
        Some(target) => Ok(target),
        None => resolve_default(opts, env),
    }
}

// ---------------------------------------------------------------------------------------
// The connection

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Incoming>, BollardError>> + Send>>;

/// A hyper client behind a function, shared by bollard and our own few requests.
#[derive(Clone)]
struct Transport(Arc<dyn Fn(BollardRequest) -> ResponseFuture + Send + Sync>);

impl Transport {
    fn new<C>(connector: C) -> Transport
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
        let client =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
        let agent = HeaderValue::from_static(USER_AGENT_VALUE);
        Transport(Arc::new(move |mut req: BollardRequest| {
            req.headers_mut().entry(USER_AGENT).or_insert(agent.clone());
            let fut = client.request(req);
            Box::pin(async move { fut.await.map_err(BollardError::from) }) as ResponseFuture
        }))
    }

    async fn send(&self, req: BollardRequest) -> Result<Response<Incoming>, BollardError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, (self.0)(req)).await {
            Ok(r) => r,
            Err(_) => Err(BollardError::RequestTimeoutError),
        }
    }
}

const USER_AGENT_VALUE: &str = concat!("Berth-Client/", env!("CARGO_PKG_VERSION"), " (linux)");

/// The API version in use and how it was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// What requests use: min(server, [`CLIENT_API_VERSION`]).
    pub version: ApiVersion,
    /// The daemon's `Api-Version` header, if it sent a valid one.
    pub server: Option<ApiVersion>,
}

impl Negotiated {
    /// Chooses the version from the daemon's `Api-Version` header, as the docker CLI's
    /// `NegotiateAPIVersionPing` does (no header means 1.24).
    pub fn from_header(header: Option<&str>) -> Negotiated {
        let server = header.and_then(|h| h.trim().parse::<ApiVersion>().ok());
        let version = server
            .unwrap_or(FALLBACK_API_VERSION)
            .min(CLIENT_API_VERSION);
        Negotiated { version, server }
    }

    /// `Some(1.50)` when the daemon made us use an older version than ours.
    pub fn downgraded_from(&self) -> Option<ApiVersion> {
        (self.version < CLIENT_API_VERSION).then_some(CLIENT_API_VERSION)
    }
}

/// A connected client: bollard for the API, plus what the connection learned.
#[derive(Clone)]
pub struct Client {
    docker: Docker,
    transport: Transport,
    /// `unix://<hex path>` or `https://host:port`, without a trailing slash.
    base: String,
    target: Target,
    api: Negotiated,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.target)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `target` and negotiates the API version with `GET /_ping`.
    pub async fn connect(target: &Target) -> Result<Client, Error> {
        let (transport, base) = match (&target.host, &target.tls) {
            (Host::Unix(path), _) => (Transport::new(UnixConnector), unix_base(path)),
            (Host::Tcp { host, port }, Some(paths)) => {
                let config = berth_tls::load_client_config(paths)
                    .map_err(|e| tls_files_error(target, paths, &e))?;
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(CONNECT_TIMEOUT));
                let mut https = HttpsConnector::from((http, config));
                https.enforce_https();
                (
                    Transport::new(https),
                    format!("https://{}:{port}", bracket(host)),
                )
            }
            (Host::Tcp { .. }, None) => {
                return Err(Error::client(format!(
                    "refusing to connect to {} without TLS",
                    target.host
                )))
            }
        };
        tracing::debug!(host = %target.host, "pinging the daemon");
        let api = ping(&transport, &base)
            .await
            .map_err(|e| explain(target, e))?;
        tracing::debug!(version = %api.version, server = ?api.server, "negotiated API version");
        let transport_for_bollard = transport.clone();
        let docker = Docker::connect_with_custom_transport(
            move |req: BollardRequest| (transport_for_bollard.0)(req),
            Some(base.clone()),
            REQUEST_TIMEOUT.as_secs(),
            &ClientVersion {
                major_version: usize::from(api.version.major),
                minor_version: usize::from(api.version.minor),
            },
        )
        .map_err(|e| explain(target, e))?;
        Ok(Client {
            docker,
            transport,
            base,
            target: target.clone(),
            api,
        })
    }

    /// The bollard client, at the negotiated API version.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Where this client is connected.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The negotiated API version.
    pub fn api(&self) -> Negotiated {
        self.api
    }

    /// [`Client::explain`], except that an error inside a stream (`errorDetail`) is
    /// printed as the daemon wrote it, as docker does.
    pub fn daemon_err(&self, err: BollardError) -> Error {
        match err {
            BollardError::DockerStreamError { error } => Error::client(error),
            other => self.explain(other),
        }
    }

    /// Turns a bollard error from [`Client::docker`] calls into a user-facing error.
    pub fn explain(&self, err: BollardError) -> Error {
        explain(&self.target, err)
    }

    /// `GET /v<api><path>` and the body's JSON as sent. `path` starts with `/`.
    pub async fn get_json(&self, path: &str) -> Result<Value, Error> {
        let uri = format!("{}/v{}{path}", self.base, self.api.version);
        let req = Request::get(uri)
            .body(bollard::body_full(Default::default()))
            .map_err(|e| Error::client(format!("cannot build request for {path}: {e}")))?;
        let resp = self
            .transport
            .send(req)
            .await
            .map_err(|e| self.explain(e))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.explain(BollardError::from(e)))?
            .to_bytes();
        if !status.is_success() {
            return Err(daemon_error(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| {
            Error::client(format!(
                "cannot parse the daemon's answer to GET {path}: {e}"
            ))
        })
    }
}

/// bollard's and hyperlocal's spelling of a socket path as a URI authority.
fn unix_base(path: &Path) -> String {
    let hex: String = path
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("unix://{hex}")
}

async fn ping(transport: &Transport, base: &str) -> Result<Negotiated, BollardError> {
    let req = Request::get(format!("{base}/_ping")).body(bollard::body_full(Default::default()))?;
    let resp = transport.send(req).await?;
    let header = resp
        .headers()
        .get("api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Drain the body ("OK") so the connection can be reused.
    let _ = resp.into_body().collect().await;
    Ok(Negotiated::from_header(header.as_deref()))
}

/// An error status with Docker's `{"message": ...}` body (or any other body).
fn daemon_error(status: StatusCode, body: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct Body {
        message: String,
    }
    let message = match serde_json::from_slice::<Body>(body) {
        Ok(b) => b.message,
        Err(_) => {
            let text = String::from_utf8_lossy(body).trim().to_string();
            if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("unknown error")
                    .to_ascii_lowercase()
            } else {
                text
            }
        }
    };
    Error::Daemon {
        status: status.as_u16(),
        message,
    }
}

// ---------------------------------------------------------------------------------------
// Explaining failures

fn tls_files_error(target: &Target, paths: &TlsPaths, err: &berth_tls::TlsError) -> Error {
    Error::client(format!(
        "cannot load the TLS identity to connect to {}: {err}\n\
         (files: --tlscacert {}, --tlscert {}, --tlskey {}; by default ca.pem, cert.pem and \
         key.pem in DOCKER_CERT_PATH; `berth tls init` creates them)",
        target.host,
        paths.ca.display(),
        paths.cert.display(),
        paths.key.display(),
    ))
}

/// Turns a bollard/transport error into what to tell the user.
pub fn explain(target: &Target, err: BollardError) -> Error {
    match err {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => Error::Daemon {
            status: status_code,
            message,
        },
        BollardError::RequestTimeoutError => Error::client(format!(
            "timed out waiting for the Berth daemon at {}",
            target.host
        )),
        other => {
            if let Some(tls) = find_cause::<rustls::Error>(&other, |_| true) {
                return tls_error(target, tls);
            }
            let interesting = |e: &io::Error| {
                matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::NotFound
                        | io::ErrorKind::PermissionDenied
                        | io::ErrorKind::TimedOut
                )
            };
            if let Some(io) = find_cause::<io::Error>(&other, interesting) {
                return match io.kind() {
                    io::ErrorKind::PermissionDenied => Error::client(format!(
                        "permission denied while trying to connect to the Berth daemon socket at {}: \
                         run berth as root or as a member of berthd's --group",
                        target.host
                    )),
                    io::ErrorKind::TimedOut => Error::client(format!(
                        "timed out connecting to the Berth daemon at {}",
                        target.host
                    )),
                    _ => cannot_connect(target),
                };
            }
            Error::client(format!(
                "error during connect to {}: {}",
                target.host,
                cause_text(&other)
            ))
        }
    }
}

/// Docker's "Cannot connect to the Docker daemon at ... Is the docker daemon running?".
fn cannot_connect(target: &Target) -> Error {
    Error::client(format!(
        "Cannot connect to the Berth daemon at {}. Is berthd running?",
        target.host
    ))
}

fn tls_error(target: &Target, err: &rustls::Error) -> Error {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let host = &target.host;
    let (ca, cert) = match &target.tls {
        Some(p) => (p.ca.display().to_string(), p.cert.display().to_string()),
        None => ("ca.pem".into(), "cert.pem".into()),
    };
    let name = match host {
        Host::Tcp { host, .. } => host.as_str(),
        Host::Unix(_) => "",
    };
    let hint = "check DOCKER_CERT_PATH (or --tlscacert/--tlscert/--tlskey)";
    let msg = match err {
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => format!(
            "the daemon at {host} presented a certificate that is not signed by the CA in {ca}; {hint}"
        ),
        E::InvalidCertificate(C::NotValidForNameContext { presented, .. }) => format!(
            "the daemon's certificate is not valid for {name:?} (it is valid for: {}); connect \
             using one of those names, or re-issue the server certificate with \
             `berth tls init --san {name}`",
            presented
                .iter()
                .map(|p| presented_name(p))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        E::InvalidCertificate(C::NotValidForName) => format!(
            "the daemon's certificate is not valid for {name:?}; connect using a name it lists, \
             or re-issue the server certificate with `berth tls init --san {name}`"
        ),
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => format!(
            "the daemon at {host} presented an expired certificate; re-issue it with `berth tls init`"
        ),
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => format!(
            "the daemon at {host} presented a certificate that is not valid yet; check both clocks"
        ),
        E::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. }) => format!(
            "the daemon at {host} presented a certificate that is not a server certificate; \
             start berthd with server-cert.pem/server-key.pem from `berth tls init`"
        ),
        E::AlertReceived(
            alert @ (A::UnknownCA
            | A::BadCertificate
            | A::CertificateRequired
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::AccessDenied
            | A::DecryptError),
        ) => format!(
            "the daemon at {host} refused this client's certificate ({alert:?}): check that \
             {cert} is signed by the daemon's CA, has not expired and is a client certificate; {hint}"
        ),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            format!(
                "the daemon at {host} did not answer with TLS; is berthd listening there with --tlsverify?"
            )
        }
        other => format!("TLS handshake with the daemon at {host} failed: {other}; {hint}"),
    };
    Error::client(msg)
}

/// rustls spells presented names `DnsName("h")` / `IpAddress(10.0.0.1)`; show `h`.
fn presented_name(p: &str) -> &str {
    let inner = p
        .strip_prefix("DnsName(")
        .or_else(|| p.strip_prefix("IpAddress("))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(p);
    inner.trim_matches('"')
}

/// The first error of type `T` in `err`'s cause chain that satisfies `pred`, looking
/// inside `io::Error`s (whose `source()` skips the error they wrap).
fn find_cause<'a, T: StdError + 'static>(
    err: &'a (dyn StdError + 'static),
    pred: impl Fn(&T) -> bool,
) -> Option<&'a T> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>().filter(|t| pred(t)) {
            return Some(t);
        }
        cur = next_cause(e);
    }
    None
}

/// The error `e` wraps. Unlike `source()`, this looks through `#[error(transparent)]`
/// bollard variants and into `io::Error`s, whose `source()` skips what they wrap.
fn next_cause<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match e.downcast_ref::<BollardError>() {
        Some(BollardError::IOError { err }) => return Some(err),
        Some(BollardError::HyperResponseError { err }) => return Some(err),
        Some(BollardError::HttpClientError { err }) => return Some(err),
        _ => {}
    }
    match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
        Some(inner) => Some(inner),
        None => e.source(),
    }
}

/// The messages of `err`'s cause chain, skipping bollard's and hyper's generic wrappers.
fn cause_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        let generic = text.starts_with("Error in the hyper legacy client")
            || text.starts_with("client error (");
        if !generic && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = next_cause(e);
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::DEFAULT_SOCKET;

    fn tcp(host: &str, port: u16) -> Host {
        Host::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn negotiation_picks_the_lower_version() {
        let n = Negotiated::from_header(Some("1.41"));
        assert_eq!(n.version, ApiVersion::new(1, 41));
        assert_eq!(n.downgraded_from(), Some(CLIENT_API_VERSION));
        let n = Negotiated::from_header(Some("1.99"));
        assert_eq!(n.version, CLIENT_API_VERSION);
        assert_eq!(n.downgraded_from(), None);
        let n = Negotiated::from_header(None);
        assert_eq!(n.version, FALLBACK_API_VERSION);
        assert_eq!(n.server, None);
        let n = Negotiated::from_header(Some("garbage"));
        assert_eq!(n.version, FALLBACK_API_VERSION);
    }

    #[test]
    fn unix_base_is_hex_encoded_path() {
        assert_eq!(unix_base(Path::new("/a")), "unix://2f61");
    }

    #[test]
    fn daemon_error_bodies() {
        let e = daemon_error(StatusCode::NOT_FOUND, br#"{"message":"No such image: x"}"#);
        assert_eq!(
            e.to_string(),
            "Error response from daemon: No such image: x"
        );
        let e = daemon_error(StatusCode::BAD_GATEWAY, b"upstream broke\n");
        assert_eq!(e.to_string(), "Error response from daemon: upstream broke");
        let e = daemon_error(StatusCode::NOT_FOUND, b"");
        assert_eq!(e.to_string(), "Error response from daemon: not found");
    }

    #[test]
    fn refused_unix_socket_says_cannot_connect() {
        let target = Target {
            host: Host::Unix(DEFAULT_SOCKET.into()),
            tls: None,
        };
        let err = BollardError::IOError {
            err: io::Error::new(io::ErrorKind::ConnectionRefused, "refused"),
        };
        assert_eq!(
            explain(&target, err).to_string(),
            "Cannot connect to the Berth daemon at unix:///run/berth.sock. Is berthd running?"
        );
    }

    #[test]
    fn tls_errors_name_the_cause() {
        let target = Target {
            host: tcp("h", 2376),
            tls: Some(TlsPaths::in_dir(Path::new("/certs"))),
        };
        let wrap = |e: rustls::Error| BollardError::IOError {
            err: io::Error::other(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        let m = explain(
            &target,
            wrap(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        )
        .to_string();
        assert!(m.contains("not signed by the CA in /certs/ca.pem"), "{m}");
        assert!(m.contains("DOCKER_CERT_PATH"), "{m}");
        let m = explain(
            &target,
            wrap(rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA,
            )),
        )
        .to_string();
        assert!(m.contains("refused this client's certificate"), "{m}");
        assert!(m.contains("/certs/cert.pem"), "{m}");
        let m = explain(
            &target,
            wrap(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext {
                    expected: rustls::pki_types::ServerName::try_from("h").unwrap(),
                    presented: vec!["DnsName(\"a.test\")".into(), "IpAddress(10.0.0.1)".into()],
                },
            )),
        )
        .to_string();
        assert!(
            m.starts_with("the daemon's certificate is not valid for \"h\" (it is valid for: a.test, 10.0.0.1)"),
            "{m}"
        );
        let m = explain(
            &target,
            wrap(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType,
            )),
        )
        .to_string();
        assert!(m.contains("did not answer with TLS"), "{m}");
    }

    #[test]
    fn other_transport_errors_keep_their_causes() {
        let target = Target {
            host: tcp("nohost.invalid", 2376),
            tls: None,
        };
        let err = BollardError::IOError {
            err: io::Error::other("dns error: failed to lookup address information"),
        };
        assert_eq!(
            explain(&target, err).to_string(),
            "error during connect to tcp://nohost.invalid:2376: dns error: failed to lookup address information"
        );
    }
}

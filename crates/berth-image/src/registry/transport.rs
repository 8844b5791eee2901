//! Where a registry name leads: host, scheme and TLS.
//!
//! `docker.io` is served by `registry-1.docker.io`. HTTPS is always tried; plain HTTP only
//! for loopback hosts (`localhost`, 127.0.0.0/8, ::1, or a name resolving there) and the
//! configured insecure registries, and then only after HTTPS failed to connect, as dockerd
//! does (moby `registry/service_v2.go`). A listed insecure registry's HTTPS certificate is
//! not checked (dockerd's rule); loopback is not exempted from checks, unlike dockerd. Certificates trusted are the system's plus
//! `<certs.d>/<host:port>/*.crt`; a client certificate comes from `*.cert` with the
//! `*.key` of the same stem (moby `registry/registry.go` `ReadCertsDirectory`). Each
//! registry host gets one pooled HTTP client, made on first use and kept.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::auth::{parse_challenges, Challenge};
use super::silence::within;
use super::{RegistryConfig, RegistryError};

/// Docker Hub's name in references and the host that serves its API.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub(super) const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

/// One registry host, ready to use.
#[derive(Debug)]
pub struct Endpoint {
    /// The name as in references (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// `https://registry-1.docker.io` or `http://localhost:5000`.
    pub base: String,
    pub(crate) http: reqwest::Client,
    /// What `GET /v2/` challenged us with (`None`: the registry wants no auth).
    pub(crate) challenge: Option<Challenge>,
}

/// Makes and caches endpoints.
#[derive(Debug)]
pub(crate) struct Transport {
    certs_dirs: Vec<PathBuf>,
    insecure: Vec<String>,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
}

impl Transport {
    pub(crate) fn new(config: &RegistryConfig) -> Self {
        Transport {
            certs_dirs: config.certs_dirs.clone(),
            insecure: config.insecure_registries.clone(),
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    /// The endpoint for `domain`, probing it (`GET /v2/`) the first time.
    pub(crate) async fn endpoint(&self, domain: &str) -> Result<Arc<Endpoint>, RegistryError> {
        if let Some(e) = self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(domain)
        {
            return Ok(e.clone());
        }
        let host = if domain == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            domain
        };
        let mut tls = tls_config(&self.certs_dirs, domain)?;
        let listed_insecure = self.listed_insecure(host).await;
        if listed_insecure {
            // dockerd's rule for `insecure-registries`: HTTPS without certificate checks.
            // Only for registries the administrator listed; loopback keeps its checks.
            tls.dangerous()
                .set_certificate_verifier(Arc::new(UncheckedServerCert::new()));
        }
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| RegistryError::Tls(format!("cannot set up HTTP client: {e}")))?;
        let https = format!("https://{host}");
        let endpoint = match ping(&http, &https).await {
            Ok(challenge) => Endpoint {
                domain: domain.to_string(),
                base: https,
                http,
                challenge,
            },
            Err(e) if listed_insecure || is_loopback(host).await => {
                let plain = format!("http://{host}");
                tracing::debug!(registry = domain, error = %e, "HTTPS failed; trying plain HTTP");
                // When both fail, the HTTPS error says more (an untrusted certificate),
                // unless nothing listened there: then the plain HTTP one, the last
                // endpoint's, as dockerd reports it.
                let challenge = ping(&http, &plain).await.map_err(|plain_err| {
                    if e.is_refused() {
                        plain_err
                    } else {
                        e
                    }
                })?;
                Endpoint {
                    domain: domain.to_string(),
                    base: plain,
                    http,
                    challenge,
                }
            }
            Err(e) => return Err(e),
        };
        tracing::debug!(registry = domain, base = %endpoint.base, "registry endpoint ready");
        let endpoint = Arc::new(endpoint);
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(domain.to_string(), endpoint.clone());
        Ok(endpoint)
    }

    /// Listed in the insecure registries, by `host[:port]`, host, or a CIDR holding every
    /// address the host resolves to.
    async fn listed_insecure(&self, host: &str) -> bool {
        let (name, _) = split_host_port(host);
        if self.insecure.iter().any(|i| i == host || i == name) {
            return true;
        }
        let nets: Vec<(IpAddr, u8)> = self.insecure.iter().filter_map(|i| parse_cidr(i)).collect();
        if nets.is_empty() {
            return false;
        }
        let ips = resolve(host).await;
        !ips.is_empty()
            && ips.iter().all(|ip| {
                nets.iter()
                    .any(|(net, bits)| cidr_contains(*net, *bits, *ip))
            })
    }
}

/// `localhost`, or a host whose every address is a loopback one.
async fn is_loopback(host: &str) -> bool {
    let (name, _) = split_host_port(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let ips = resolve(host).await;
    !ips.is_empty() && ips.iter().all(IpAddr::is_loopback)
}

/// The addresses of `host[:port]`'s host (none when it does not resolve).
async fn resolve(host: &str) -> Vec<IpAddr> {
    let (name, port) = split_host_port(host);
    match name.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((name, port.unwrap_or(443)))
            .await
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .unwrap_or_default(),
    }
}

/// Accepts any server certificate (still checking the handshake's signatures): what an
/// administrator asks for by listing a registry in `insecure-registries`.
#[derive(Debug)]
struct UncheckedServerCert(Arc<rustls::crypto::CryptoProvider>);

impl UncheckedServerCert {
    fn new() -> Self {
        UncheckedServerCert(Arc::new(rustls::crypto::ring::default_provider()))
    }
}

impl rustls::client::danger::ServerCertVerifier for UncheckedServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `GET /v2/`: any answer means the scheme works; 401 tells how to authenticate.
async fn ping(http: &reqwest::Client, base: &str) -> Result<Option<Challenge>, RegistryError> {
    let url = format!("{base}/v2/");
    let resp = within(http.get(&url).send(), "GET", &url)
        .await?
        .map_err(|e| RegistryError::transport("GET", &url, &e))?;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        // Prefer bearer: it is what registries that offer both expect.
        let best = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }))
            .or(challenges.first())
            .cloned();
        return Ok(best.or(Some(Challenge::Basic)));
    }
    if !resp.status().is_success() {
        // Not a registry, or plain HTTP to a TLS port ("400 Client sent an HTTP request
        // to an HTTPS server").
        return Err(RegistryError::Http(format!(
            "GET \"{url}\": unexpected status {}",
            resp.status()
        )));
    }
    Ok(None)
}

/// `/etc/docker/certs.d`-style names: what `docker login SERVER` may send as the server
/// address (`https://index.docker.io/v1/`, `http://localhost:5000`, `localhost:5000/`).
pub fn normalize_server_address(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or_default();
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        h => h.to_string(),
    }
}

fn split_host_port(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        // [::1]:5000
        if let Some((ip, after)) = rest.split_once(']') {
            return (ip, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (host, None),
    }
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn cidr_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// The system's trusted roots, loaded once per process.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let result = rustls_native_certs::load_native_certs();
        for e in &result.errors {
            tracing::warn!(error = %e, "cannot load some system CA certificates");
        }
        result.certs
    })
}

/// Client TLS for `domain`: system roots plus certs.d CAs, and a client certificate when
/// certs.d has one. HTTP/1.1 only.
pub(super) fn tls_config(
    certs_dirs: &[PathBuf],
    domain: &str,
) -> Result<rustls::ClientConfig, RegistryError> {
    let mut roots = rustls::RootCertStore::empty();
    let (_, _ignored) = roots.add_parsable_certificates(native_roots().iter().cloned());
    let mut client_cert = None;
    // A path component must not escape the certs dir (`domain` comes from a reference).
    let safe = !domain.contains("..") && !domain.contains('/');
    for dir in certs_dirs.iter().filter(|_| safe).map(|d| d.join(domain)) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for path in &names {
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    for cert in read_certs(path)? {
                        roots.add(cert).map_err(|e| {
                            RegistryError::Tls(format!(
                                "invalid CA certificate {}: {e}",
                                path.display()
                            ))
                        })?;
                    }
                }
                Some("cert") if client_cert.is_none() => {
                    let key = path.with_extension("key");
                    if !key.exists() {
                        return Err(RegistryError::Tls(format!(
                            "missing key {} for client certificate {}. CA certificates must use the extension .crt",
                            key.display(),
                            path.display()
                        )));
                    }
                    let chain = read_certs(path)?;
                    let key_der = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
                        RegistryError::Tls(format!("cannot read client key {}: {e}", key.display()))
                    })?;
                    client_cert = Some((chain, key_der));
                }
                Some("key") if !path.with_extension("cert").exists() => {
                    return Err(RegistryError::Tls(format!(
                        "missing client certificate {} for key {}",
                        path.with_extension("cert").display(),
                        path.display()
                    )));
                }
                _ => {}
            }
        }
        tracing::debug!(dir = %dir.display(), "using registry certificates");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Tls(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            RegistryError::Tls(format!("invalid client certificate for {domain}: {e}"))
        })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, RegistryError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            RegistryError::Tls(format!("cannot read certificate {}: {e}", path.display()))
        })?;
    if certs.is_empty() {
        return Err(RegistryError::Tls(format!(
            "no certificate found in {}",
            path.display()
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_normalise() {
        for (input, want) in [
            ("", "docker.io"),
            ("https://index.docker.io/v1/", "docker.io"),
            ("docker.io", "docker.io"),
            ("http://localhost:5000", "localhost:5000"),
            ("localhost:5000/", "localhost:5000"),
            ("https://registry.example.com/v2/", "registry.example.com"),
        ] {
            assert_eq!(normalize_server_address(input), want, "{input}");
        }
    }

    #[test]
    fn host_port_and_cidrs() {
        assert_eq!(split_host_port("localhost:5000"), ("localhost", Some(5000)));
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("[::1]:5000"), ("::1", Some(5000)));
        assert_eq!(split_host_port("::1"), ("::1", None));
        let (net, bits) = parse_cidr("10.1.0.0/16").unwrap();
        assert!(cidr_contains(net, bits, "10.1.2.3".parse().unwrap()));
        assert!(!cidr_contains(net, bits, "10.2.0.1".parse().unwrap()));
        let (net, bits) = parse_cidr("0.0.0.0/0").unwrap();
        assert!(cidr_contains(net, bits, "8.8.8.8".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("example.com").is_none());
        let (net, bits) = parse_cidr("fd00::/8").unwrap();
        assert!(cidr_contains(net, bits, "fd12::1".parse().unwrap()));
        assert!(!cidr_contains(net, bits, "10.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn plain_http_only_for_loopback_and_listed() {
        let t = Transport::new(&RegistryConfig {
            insecure_registries: vec!["reg.internal:5000".into(), "192.168.0.0/16".into()],
            ..RegistryConfig::default()
        });
        // (host, loopback, listed insecure)
        for (host, loopback, listed) in [
            ("localhost:5000", true, false),
            ("127.0.0.1:5000", true, false),
            ("127.8.9.1", true, false),
            ("[::1]:5000", true, false),
            ("reg.internal:5000", false, true),
            ("192.168.3.4:80", false, true),
            ("10.0.0.1:5000", false, false),
            ("192.169.0.1", false, false),
        ] {
            assert_eq!(is_loopback(host).await, loopback, "{host}");
            assert_eq!(t.listed_insecure(host).await, listed, "{host}");
        }
    }

    /// A loopback registry nothing listens on: both schemes refused, and the error is the
    /// plain HTTP endpoint's (the last tried), as dockerd 20.10 reports it.
    #[tokio::test]
    async fn both_schemes_refused_reports_the_plain_one() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Transport::new(&RegistryConfig::default());
        let e = t.endpoint(&format!("127.0.0.1:{port}")).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("Get \"http://127.0.0.1:{port}/v2/\": dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
    }

    #[test]
    fn certs_dir_problems_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("reg:5000");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("client.cert"), "x").unwrap();
        let err = tls_config(&[dir.path().to_path_buf()], "reg:5000").unwrap_err();
        assert!(err.to_string().contains("missing key"), "{err}");
        std::fs::remove_file(host.join("client.cert")).unwrap();
        std::fs::write(host.join("ca.crt"), "not pem").unwrap();
        let err = tls_config(&[dir.path().to_path_buf()], "reg:5000").unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        // Other hosts are unaffected, and a missing dir is fine.
        tls_config(&[dir.path().to_path_buf()], "other:5000").unwrap();
        tls_config(&[dir.path().join("absent")], "reg:5000").unwrap();
    }
}

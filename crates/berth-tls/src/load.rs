//! Reading PEM trust material from disk and building the rustls configurations: the
//! daemon's (mutual TLS, client certificate required) and the client's (trust only our
//! CA, present our certificate). Owns the wording of every loading error; does not own
//! file generation ([`crate::generate`]) or when to reload (the server's SIGHUP handler).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, InconsistentKeys, RootCertStore, ServerConfig};

use crate::crl::{load_crls, RevokedSet};
use crate::error::read_file;
use crate::verify::RequireClientAuthEku;
use crate::{TlsError, TlsPaths};

/// The only application protocol berthd speaks over TLS (Docker's API is HTTP/1.1, and
/// attach/exec upgrade the connection, which HTTP/2 cannot do).
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// TLS 1.3 and 1.2, nothing older.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// "create it with `berth tls init --dir <parent>`".
fn init_hint(path: &Path) -> String {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    format!("create it with `berth tls init --dir {}`", dir.display())
}

/// Every `CERTIFICATE` block of `bytes`, in order; at least one.
pub(crate) fn parse_certs(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::MalformedPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#1, SEC1 or PKCS#8) of `bytes`.
pub(crate) fn parse_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        // The parser's own words could quote the file; keep key files out of messages.
        _ => TlsError::MalformedPem {
            path: path.to_path_buf(),
            reason: "the private key's PEM block is damaged".to_string(),
        },
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certs(path, &read_file(path, &init_hint(path))?)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    warn_if_key_readable_by_others(path);
    parse_key(path, &read_file(path, &init_hint(path))?)
}

/// Each certificate of the CA file becomes a trust anchor.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    roots_of(path, load_certs(path)?)
}

fn roots_of(path: &Path, certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

#[cfg(unix)]
fn warn_if_key_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "private key is readable by other users; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_key_readable_by_others(_path: &Path) {}

/// A server certificate whose EKU omits serverAuth loads fine but every client will refuse
/// it; say so at load time rather than leave the user with handshake failures.
fn warn_if_not_server_cert(path: &Path, leaf: &CertificateDer<'_>) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return;
    };
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        if !eku.value.server_auth && !eku.value.any {
            tracing::warn!(
                path = %path.display(),
                "certificate is not for servers (its extendedKeyUsage lacks serverAuth); clients will refuse it; use server-cert.pem from `berth tls init`"
            );
        }
    }
}

/// Maps rustls' refusal of a certificate/key pair to our wording.
fn key_error(paths: &TlsPaths, err: rustls::Error) -> TlsError {
    match err {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => TlsError::KeyMismatch {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
        },
        other => TlsError::UnusableKey {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
            reason: other.to_string(),
        },
    }
}

fn config_error(err: rustls::Error) -> TlsError {
    TlsError::Config {
        reason: err.to_string(),
    }
}

/// What berthd's TCP listener needs from its trust material: the rustls configuration and
/// the certificates that the revocation list (if any) names.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub revoked: RevokedSet,
}

/// Server config for berthd's TCP listener.
///
/// TLS 1.2 and 1.3 only, ALPN `http/1.1`. Presents `cert` (leaf, then intermediates) with
/// `key` (RSA PKCS#1/PKCS#8, ECDSA SEC1/PKCS#8). Requires a client certificate that chains
/// to a root in `ca` (every certificate there is a trust anchor), is within its validity
/// period, and whose leaf has an ExtendedKeyUsage extension listing clientAuth; anything
/// else fails the handshake with an alert. With `crl`, a client certificate that a list
/// there names is refused too (alert certificate_revoked).
pub fn load_server_config(paths: &TlsPaths) -> Result<Arc<ServerConfig>, TlsError> {
    Ok(load_server_tls(paths)?.config)
}

/// [`load_server_config`], with the revoked certificates of `paths.crl` named too.
pub fn load_server_tls(paths: &TlsPaths) -> Result<ServerTls, TlsError> {
    let provider = provider();
    let ca_certs = load_certs(&paths.ca)?;
    let crls = match &paths.crl {
        Some(crl) => Some(load_crls(crl, &paths.ca, &ca_certs)?),
        None => None,
    };
    let roots = Arc::new(roots_of(&paths.ca, ca_certs)?);
    let chain = load_certs(&paths.cert)?;
    let key = load_key(&paths.key)?;
    warn_if_not_server_cert(&paths.cert, &chain[0]);

    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    let mut revoked = RevokedSet::default();
    if let Some(crls) = crls {
        revoked = crls.revoked;
        // Only the client's own certificate is looked up, and a certificate whose issuer
        // has no list here passes: `berth tls` CAs sign clients directly, so one list from
        // the CA covers them all. With a company chain (root -> intermediate -> client),
        // checking the whole chain would refuse every client until a list for the root's
        // intermediates is supplied too, and a CA file with several CAs but one list would
        // lock out the clients of the others. The client's issuer must then be in --tlscacert
        // for its list to load (see `crl.rs`), which is where such an intermediate goes.
        builder = builder
            .with_crls(crls.ders)
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status();
    }
    let webpki = builder.build().map_err(|e| TlsError::Verifier {
        path: paths.ca.clone(),
        reason: e.to_string(),
    })?;
    let verifier = Arc::new(RequireClientAuthEku::new(webpki));

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(config_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| key_error(paths, e))?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        revoked,
    })
}

/// Client config for the berth CLI and tests: trusts only the roots in `ca`, presents
/// `cert`/`key`, verifies the server's name (DNS names and IP SANs) as usual, offers ALPN
/// `http/1.1`.
pub fn load_client_config(paths: &TlsPaths) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = load_roots(&paths.ca)?;
    let chain = load_certs(&paths.cert)?;
    let key = load_key(&paths.key)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(config_error)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| key_error(paths, e))?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

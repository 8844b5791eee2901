//! Test-only helpers: scratch directories, rcgen builders for certificates `init` would
//! never issue (wrong EKU, no EKU, expired, via an intermediate), and an in-memory pump
//! that runs a real rustls handshake between a server and a client connection.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use time::{Duration, OffsetDateTime};

use crate::generate::{self, InitOptions, InitReport};
use crate::TlsPaths;

/// A unique directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "berth-tls-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn init_opts(dir: &Path, sans: &[&str]) -> InitOptions {
    InitOptions {
        dir: dir.to_path_buf(),
        sans: sans.iter().map(|s| s.to_string()).collect(),
        client_name: "client".to_string(),
        days: 30,
        force: false,
    }
}

/// `berth tls init` into `dir/tls`.
pub(crate) fn init_in(dir: &Path, sans: &[&str]) -> InitReport {
    generate::init(&init_opts(&dir.join("tls"), sans)).unwrap()
}

/// The daemon's paths inside an `init` directory.
pub(crate) fn server_paths(tls_dir: &Path) -> TlsPaths {
    TlsPaths {
        ca: tls_dir.join("ca.pem"),
        cert: tls_dir.join("server-cert.pem"),
        key: tls_dir.join("server-key.pem"),
        crl: None,
    }
}

/// The CA that `init` wrote, usable to sign more certificates.
pub(crate) fn issuer_from(tls_dir: &Path) -> Issuer<'static, KeyPair> {
    let ca = std::fs::read_to_string(tls_dir.join("ca.pem")).unwrap();
    let key = std::fs::read_to_string(tls_dir.join("ca-key.pem")).unwrap();
    Issuer::from_ca_cert_pem(&ca, KeyPair::from_pem(&key).unwrap()).unwrap()
}

/// How a test leaf differs from what `init` issues.
pub(crate) struct Leaf {
    pub cn: &'static str,
    pub ekus: Vec<ExtendedKeyUsagePurpose>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Leaf {
    pub(crate) fn client(cn: &'static str) -> Self {
        let now = OffsetDateTime::now_utc();
        Leaf {
            cn,
            ekus: vec![ExtendedKeyUsagePurpose::ClientAuth],
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(1),
        }
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// Signs `leaf` with `issuer`; returns (cert PEM, key PEM).
pub(crate) fn sign_leaf(leaf: &Leaf, issuer: &Issuer<'_, KeyPair>) -> (String, String) {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(leaf.cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = leaf.ekus.clone();
    params.not_before = leaf.not_before;
    params.not_after = leaf.not_after;
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// An intermediate CA signed by `issuer`; returns (its cert PEM, an issuer for it).
pub(crate) fn intermediate(issuer: &Issuer<'_, KeyPair>) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::default();
    params.distinguished_name = name("berth intermediate");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// Writes a client's files into `dir` and returns paths that trust `ca`.
pub(crate) fn write_client(dir: &Path, ca: &Path, cert_pem: &str, key_pem: &str) -> TlsPaths {
    std::fs::create_dir_all(dir).unwrap();
    let paths = TlsPaths {
        ca: ca.to_path_buf(),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        crl: None,
    };
    std::fs::write(&paths.cert, cert_pem).unwrap();
    std::fs::write(&paths.key, key_pem).unwrap();
    paths
}

/// What a handshake ended with on each side.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub server_err: Option<rustls::Error>,
    pub client_err: Option<rustls::Error>,
    /// `peer_subject` of the client's certificate, as the server saw it.
    pub subject: Option<String>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<rustls::ProtocolVersion>,
}

impl Outcome {
    pub(crate) fn ok(&self) -> bool {
        self.server_err.is_none() && self.client_err.is_none() && self.version.is_some()
    }
}

/// Moves every byte `from` wants to send into `to`; true if anything moved.
fn pump(from: &mut Connection, to: &mut Connection) -> bool {
    let mut moved = false;
    while from.wants_write() {
        let mut buf = Vec::new();
        if from.write_tls(&mut buf).unwrap_or(0) == 0 {
            break;
        }
        moved = true;
        let mut rd = &buf[..];
        while !rd.is_empty() {
            if to.read_tls(&mut rd).unwrap_or(0) == 0 {
                return moved;
            }
        }
    }
    moved
}

/// Runs a full handshake in memory, alerts included, and reports both sides.
pub(crate) fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: &str,
) -> Outcome {
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut client = Connection::from(ClientConnection::new(client, name).unwrap());
    let mut server = Connection::from(ServerConnection::new(server).unwrap());
    let (mut server_err, mut client_err) = (None, None);
    for _ in 0..64 {
        let a = pump(&mut client, &mut server);
        if server_err.is_none() {
            server_err = server.process_new_packets().err();
        }
        let b = pump(&mut server, &mut client);
        if client_err.is_none() {
            client_err = client.process_new_packets().err();
        }
        let done = !client.is_handshaking() && !server.is_handshaking();
        if !a && !b && (done || server_err.is_some() || client_err.is_some()) {
            break;
        }
    }
    let ok = server_err.is_none() && client_err.is_none() && !server.is_handshaking();
    Outcome {
        subject: server
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(crate::peer_subject),
        alpn: server.alpn_protocol().map(<[u8]>::to_vec),
        version: if ok { server.protocol_version() } else { None },
        server_err,
        client_err,
    }
}

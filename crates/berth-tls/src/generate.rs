//! Certificate generation for `berth tls`: a private CA, the daemon's server certificate
//! and client certificates, written as PEM files with safe modes (keys 0600, certificates
//! 0644, the directory 0700) by temp file + rename, so a crash never leaves half a key.
//!
//! Owns the certificate profiles (which extensions each kind carries) and the file layout.
//! It does not own where the CLI puts files by default or how it prints the report.
//!
//! Layout of `init`'s directory, matching Docker's "protect the daemon socket" guide:
//! `ca.pem`, `ca-key.pem`, `server-cert.pem`, `server-key.pem`, `cert.pem`, `key.pem`;
//! plus `index.json`, the client certificates issued (see `index.rs`), and `crl.pem`, the
//! CA's revocation list (see `revoke.rs`).
//! Point berthd at `ca.pem`/`server-cert.pem`/`server-key.pem`; the same directory (or one
//! from [`new_client`]) is a ready `DOCKER_CERT_PATH` for a client.

use std::fs::{self, DirBuilder};
use std::net::IpAddr;
#[cfg(unix)]
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::crl::hex;
use crate::crl_write::write_crl;
use crate::error::read_file;
use crate::index::{rfc3339, Index, IssuedCert};
use crate::load::{parse_certs, parse_key};
use crate::TlsError;

pub use crate::crl_write::CRL_FILE;

/// The files a first set-up writes in its directory, in this order: the CA's certificate
/// and key, the server's, the first client's, the (empty) revocation list.
pub const INIT_FILES: [&str; 7] = [
    "ca.pem",
    "ca-key.pem",
    "server-cert.pem",
    "server-key.pem",
    "cert.pem",
    "key.pem",
    CRL_FILE,
];

/// The CA's common name.
const CA_NAME: &str = "berth CA";
/// The server certificate's common name when no SAN is given.
const DEFAULT_SERVER_NAME: &str = "berthd";
/// Always in the server certificate, so local TCP use works out of the box.
const ALWAYS_SANS: [&str; 2] = ["localhost", "127.0.0.1"];
/// RFC 5280's upper bound for a common name.
const MAX_CN_LEN: usize = 64;

const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o700;

/// What `berth tls init` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// Created (0700) if missing.
    pub dir: PathBuf,
    /// Extra server names: IP literals become IP SANs, anything else a DNS SAN.
    /// "localhost" and "127.0.0.1" are always added.
    pub sans: Vec<String>,
    /// The client certificate's CN (what the daemon logs as the caller's identity).
    pub client_name: String,
    /// Validity of every certificate, from one hour ago.
    pub days: u32,
    /// Overwrite existing files.
    pub force: bool,
}

/// What `init` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    pub dir: PathBuf,
    /// Every file written, in order: ca.pem, ca-key.pem, server-cert.pem, server-key.pem,
    /// cert.pem, key.pem, crl.pem.
    pub written: Vec<PathBuf>,
    /// The server certificate's SANs as issued (normalised, deduplicated, defaults added).
    pub sans: Vec<String>,
}

/// What `new_client` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientReport {
    pub dir: PathBuf,
    /// cert.pem, key.pem, ca.pem, in that order.
    pub written: Vec<PathBuf>,
}

/// Creates `opts.dir` (0700) and writes a new CA, a server certificate and a client
/// certificate into it.
///
/// - `ca.pem`, `ca-key.pem`: ECDSA P-256, CN "berth CA", basicConstraints CA:true,
///   keyUsage keyCertSign + cRLSign.
/// - `server-cert.pem`, `server-key.pem`: CN = first of `sans` (or "berthd"), SANs = every
///   entry of `sans` plus "localhost" and "127.0.0.1", EKU serverAuth, keyUsage
///   digitalSignature + keyEncipherment.
/// - `cert.pem`, `key.pem`: CN = `client_name`, EKU clientAuth only.
///
/// Keys are mode 0600, certificates 0644. Starts `index.json` (the certificates this CA
/// issued, for `berth tls revoke`) with the client certificate, and writes `crl.pem`, the
/// CA's revocation list, empty. Refuses to overwrite any of these files unless `force`. Certificates are valid from one hour ago (clock skew) for `days` days.
pub fn init(opts: &InitOptions) -> Result<InitReport, TlsError> {
    let validity = Validity::days(opts.days)?;
    check_client_name(&opts.client_name)?;
    let user_sans = opts
        .sans
        .iter()
        .map(|s| normalize_san(s))
        .collect::<Result<Vec<_>, _>>()?;
    let server_name = user_sans
        .first()
        .cloned()
        .unwrap_or_else(|| DEFAULT_SERVER_NAME.to_string());
    let mut sans: Vec<String> = Vec::new();
    for san in user_sans
        .into_iter()
        .chain(ALWAYS_SANS.iter().map(|s| s.to_string()))
    {
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    if server_name.chars().count() > MAX_CN_LEN {
        return Err(TlsError::InvalidArgument(format!(
            "the first SAN {server_name:?} is longer than {MAX_CN_LEN} characters and cannot be the server's common name; list a shorter name first"
        )));
    }

    let dir = &opts.dir;
    let [ca_pem, ca_key_pem, server_cert_pem, server_key_pem, cert_pem, key_pem, crl_pem] =
        INIT_FILES.map(|f| dir.join(f));
    create_private_dir(dir)?;
    if !opts.force {
        refuse_existing(
            &[
                &ca_pem,
                &ca_key_pem,
                &server_cert_pem,
                &server_key_pem,
                &cert_pem,
                &key_pem,
                &crl_pem,
            ],
            "--dir",
        )?;
    }

    let ca_key = new_key("the CA key")?;
    let ca_params = ca_params(validity);
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(gen_err("the CA certificate"))?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let server_key = new_key("the server key")?;
    let server_cert = server_params(&server_name, &sans, validity)?
        .signed_by(&server_key, &issuer)
        .map_err(gen_err("the server certificate"))?;

    let client_key = new_key("the client key")?;
    // A new CA: the index starts again with its first client.
    let mut index = Index::default();
    let client_serial = new_serial(&index)?;
    let client_cert = client_params(&opts.client_name, validity, &client_serial)
        .signed_by(&client_key, &issuer)
        .map_err(gen_err("the client certificate"))?;

    let mut written = Vec::with_capacity(7);
    for (path, contents, mode) in [
        (ca_pem, ca_cert.pem(), CERT_MODE),
        (ca_key_pem, ca_key.serialize_pem(), KEY_MODE),
        (server_cert_pem, server_cert.pem(), CERT_MODE),
        (server_key_pem, server_key.serialize_pem(), KEY_MODE),
        (cert_pem, client_cert.pem(), CERT_MODE),
        (key_pem, client_key.serialize_pem(), KEY_MODE),
    ] {
        write_atomic(&path, contents.as_bytes(), mode)?;
        written.push(path);
    }
    index
        .certificates
        .push(issued(&opts.client_name, &client_serial, validity));
    // An empty list, so berthd can run with --tlscrl from the start and later revocations
    // need only a SIGHUP. It saves the index too.
    let crl = write_crl(dir, &issuer, &mut index, OffsetDateTime::now_utc())?;
    written.push(crl.crl);
    tracing::debug!(dir = %dir.display(), ?sans, "generated berth CA, server and client certificates");
    Ok(InitReport {
        dir: dir.clone(),
        written,
        sans,
    })
}

/// Another client certificate (CN = `name`, EKU clientAuth) signed by the CA in `ca_dir`
/// (reads `ca.pem` and `ca-key.pem`). Writes `<out_dir>/cert.pem`, `key.pem` (0600) and a
/// copy of `ca.pem`, so `out_dir` is a ready `DOCKER_CERT_PATH`. Creates `out_dir` (0700)
/// if missing; refuses to overwrite any of the three files unless `force`. Adds the
/// certificate (random 16-byte serial) to `<ca_dir>/index.json`.
///
/// The CLI's default for `out_dir` is `<ca_dir>/clients/<name>`; `name` is checked to be a
/// safe path component for that reason.
pub fn new_client(
    ca_dir: &Path,
    name: &str,
    out_dir: &Path,
    days: u32,
    force: bool,
) -> Result<ClientReport, TlsError> {
    new_client_with_role(ca_dir, name, None, out_dir, days, force)
}

/// [`new_client`] with a role for `berthd --authorization roles`: the subject gets
/// `OU=berth:ROLE` (`role` is lower-case ASCII letters, e.g. `viewer`, `operator`, `admin`).
pub fn new_client_with_role(
    ca_dir: &Path,
    name: &str,
    role: Option<&str>,
    out_dir: &Path,
    days: u32,
    force: bool,
) -> Result<ClientReport, TlsError> {
    let validity = Validity::days(days)?;
    check_client_name(name)?;
    if let Some(r) = role {
        if r.is_empty() || r.len() > 32 || !r.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(TlsError::Generate {
                what: "the client certificate".into(),
                reason: format!("invalid role {r:?}: lower-case letters only"),
            });
        }
    }

    let ca = Ca::load(ca_dir)?;
    let issuer = ca.issuer()?;
    let mut index = Index::load(ca_dir)?;

    let cert_path = out_dir.join("cert.pem");
    let key_path = out_dir.join("key.pem");
    let ca_copy = out_dir.join("ca.pem");
    create_private_dir(out_dir)?;
    if !force {
        refuse_existing(&[&cert_path, &key_path, &ca_copy], "output directory")?;
    }

    let key = new_key("the client key")?;
    let serial = new_serial(&index)?;
    let mut params = client_params(name, validity, &serial);
    if let Some(r) = role {
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, format!("berth:{r}"));
    }
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(gen_err("the client certificate"))?;

    write_atomic(&cert_path, cert.pem().as_bytes(), CERT_MODE)?;
    write_atomic(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)?;
    // Rewriting ca.pem onto itself (out_dir == ca_dir with force) is harmless.
    write_atomic(&ca_copy, &ca.bytes, CERT_MODE)?;
    index.certificates.push(issued(name, &serial, validity));
    index.save(ca_dir)?;
    tracing::debug!(dir = %out_dir.display(), name, "generated client certificate");
    Ok(ClientReport {
        dir: out_dir.to_path_buf(),
        written: vec![cert_path, key_path, ca_copy],
    })
}

/// The CA of a `berth tls init` directory: `ca.pem` as read, the certificate in it that
/// `ca-key.pem` belongs to, and that key.
pub(crate) struct Ca {
    pub(crate) bytes: Vec<u8>,
    path: PathBuf,
    pub(crate) cert: CertificateDer<'static>,
    key: KeyPair,
}

impl Ca {
    pub(crate) fn load(ca_dir: &Path) -> Result<Ca, TlsError> {
        let ca_path = ca_dir.join("ca.pem");
        let ca_key_path = ca_dir.join("ca-key.pem");
        let hint = format!("run `berth tls init --dir {}` first", ca_dir.display());
        let bytes = read_file(&ca_path, &hint)?;
        let ca_certs = parse_certs(&ca_path, &bytes)?;
        let ca_key_der = parse_key(&ca_key_path, &read_file(&ca_key_path, &hint)?)?;
        let key = KeyPair::try_from(&ca_key_der).map_err(|e| TlsError::UnusableKey {
            cert: ca_path.clone(),
            key: ca_key_path.clone(),
            reason: format!("{e} (a CA key must be ECDSA, Ed25519 or RSA in PKCS#8)"),
        })?;
        drop(ca_key_der);
        // ca.pem may hold several roots; sign with the one this key belongs to.
        let cert = ca_certs
            .into_iter()
            .find(|c| public_key_of(c).as_deref() == Some(key.der_bytes()))
            .ok_or_else(|| TlsError::KeyMismatch {
                cert: ca_path.clone(),
                key: ca_key_path.clone(),
            })?;
        Ok(Ca {
            bytes,
            path: ca_path,
            cert,
            key,
        })
    }

    pub(crate) fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, TlsError> {
        Issuer::from_ca_cert_der(&self.cert, &self.key).map_err(|e| TlsError::BadCertificate {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }
}

/// A random positive serial number of 16 bytes (RFC 5280 allows 20; CAs/Browser Forum asks
/// for at least 64 random bits), unique in `index`.
fn new_serial(index: &Index) -> Result<SerialNumber, TlsError> {
    let random = rustls::crypto::ring::default_provider().secure_random;
    loop {
        let mut bytes = [0u8; 16];
        random.fill(&mut bytes).map_err(|_| TlsError::Generate {
            what: "a serial number".to_string(),
            reason: "the system random number generator failed".to_string(),
        })?;
        // Positive (top bit clear) and a full 16 bytes long (next bit set).
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        if !index.has_serial(&hex(&bytes)) {
            return Ok(SerialNumber::from_slice(&bytes));
        }
    }
}

/// The index entry of a client certificate just issued.
fn issued(name: &str, serial: &SerialNumber, validity: Validity) -> IssuedCert {
    IssuedCert {
        serial: hex(&serial.to_bytes()),
        name: name.to_string(),
        subject: format!("CN={name}"),
        not_after: rfc3339(validity.not_after),
        revoked: None,
    }
}

/// The raw subjectPublicKey bits of a certificate (what rcgen's `der_bytes` returns for a key).
fn public_key_of(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

#[derive(Clone, Copy)]
struct Validity {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Validity {
    /// From one hour ago (so a client whose clock is a little behind still accepts a
    /// fresh certificate) to `days` days from now.
    fn days(days: u32) -> Result<Self, TlsError> {
        if days == 0 {
            return Err(TlsError::InvalidArgument(
                "--days must be at least 1".to_string(),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let not_after = now
            .checked_add(Duration::days(i64::from(days)))
            .filter(|t| t.year() <= 9999)
            .ok_or_else(|| {
                TlsError::InvalidArgument(format!(
                    "--days {days} reaches past the year 9999; pick a smaller number"
                ))
            })?;
        Ok(Validity {
            not_before: now - Duration::hours(1),
            not_after,
        })
    }

    fn apply(self, params: &mut CertificateParams) {
        params.not_before = self.not_before;
        params.not_after = self.not_after;
    }
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity.apply(&mut params);
    params
}

fn server_params(
    cn: &str,
    sans: &[String],
    validity: Validity,
) -> Result<CertificateParams, TlsError> {
    // `new` makes IP literals IP SANs and everything else DNS SANs.
    let mut params = CertificateParams::new(sans.to_vec()).map_err(|e| {
        TlsError::InvalidArgument(format!(
            "cannot put {sans:?} in a certificate: {e}; use ASCII DNS names or IP addresses"
        ))
    })?;
    params.distinguished_name = common_name(cn);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity.apply(&mut params);
    Ok(params)
}

fn client_params(cn: &str, validity: Validity, serial: &SerialNumber) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.serial_number = Some(serial.clone());
    params.distinguished_name = common_name(cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity.apply(&mut params);
    params
}

fn new_key(what: &str) -> Result<KeyPair, TlsError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err(what))
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> TlsError + '_ {
    move |e| TlsError::Generate {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// An IP literal (brackets allowed around IPv6) or a DNS name, possibly `*.`-prefixed;
/// DNS names are lower-cased, IPs written canonically.
fn normalize_san(raw: &str) -> Result<String, TlsError> {
    let s = raw.trim();
    let unbracketed = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let host = s.strip_prefix("*.").unwrap_or(s);
    let valid = !host.is_empty()
        && !host.contains('*')
        && rustls::pki_types::DnsName::try_from(host).is_ok();
    if valid {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(TlsError::InvalidArgument(format!(
            "invalid SAN {raw:?}: neither an IP address nor a DNS name; pass names like `berth.example.com` or addresses like `10.0.0.5`"
        )))
    }
}

/// The client name is a CN and, at the CLI, a directory name under `clients/`.
fn check_client_name(name: &str) -> Result<(), TlsError> {
    let bad = name.trim().is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.chars().any(char::is_control)
        || name.chars().count() > MAX_CN_LEN;
    if bad {
        return Err(TlsError::InvalidArgument(format!(
            "invalid client name {name:?}: use 1 to {MAX_CN_LEN} characters without '/' or control characters, e.g. `alice`"
        )));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(DIR_MODE);
    builder.create(dir).map_err(|e| TlsError::write(dir, &e))
}

fn refuse_existing(paths: &[&PathBuf], other: &str) -> Result<(), TlsError> {
    match paths.iter().find(|p| fs::symlink_metadata(p).is_ok()) {
        Some(p) => Err(TlsError::Exists {
            path: p.to_path_buf(),
            hint: other.to_string(),
        }),
        None => Ok(()),
    }
}

/// Writes `contents` atomically with exactly `mode` (berth-sys: temp file, fsync, rename),
/// so readers see the old file or the whole new one, never half a key.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    berth_sys::fs::atomic_write(path, contents, mode).map_err(|e| TlsError::write(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_table() {
        for (input, want) in [
            ("127.0.0.1", Some("127.0.0.1")),
            ("::1", Some("::1")),
            ("[::1]", Some("::1")),
            ("  10.0.0.5 ", Some("10.0.0.5")),
            ("Berth.Example.com", Some("berth.example.com")),
            ("*.example.com", Some("*.example.com")),
            ("localhost", Some("localhost")),
            ("", None),
            ("a b", None),
            ("*", None),
            ("a.*.com", None),
            ("exa/mple", None),
        ] {
            let got = normalize_san(input).ok();
            assert_eq!(got.as_deref(), want, "normalize_san({input:?})");
        }
    }

    #[test]
    fn client_name_table() {
        for (input, ok) in [
            ("client", true),
            ("alice smith", true),
            ("", false),
            ("  ", false),
            (".", false),
            ("..", false),
            ("a/b", false),
            ("a\nb", false),
            (&"x".repeat(65), false),
            (&"x".repeat(64), true),
        ] {
            assert_eq!(check_client_name(input).is_ok(), ok, "{input:?}");
        }
    }

    #[test]
    fn days_bounds() {
        assert!(Validity::days(0).is_err());
        assert!(Validity::days(u32::MAX).is_err());
        let v = Validity::days(1).unwrap();
        assert!(v.not_before < OffsetDateTime::now_utc());
        assert!(v.not_after > OffsetDateTime::now_utc());
    }
}

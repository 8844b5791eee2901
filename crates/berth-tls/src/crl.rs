//! Revocation on the daemon's side: reading the PEM file of `--tlscrl`, checking that each
//! list in it is signed by a certificate of the CA file, and naming certificates by
//! (issuer, serial number) so that a reload can find the open connections of certificates
//! that are now revoked. The handshake check itself is rustls' (see `load.rs`); this module
//! does not own writing lists (`crl_write.rs`) or closing connections (berth-server).

use std::collections::HashSet;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use time::OffsetDateTime;

use crate::error::read_file;
use crate::TlsError;

/// A certificate's identity for revocation: its issuer's name (DER, as written in the
/// certificate) and its serial number (big-endian, without leading zero bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertId {
    issuer: Box<[u8]>,
    serial: Box<[u8]>,
}

impl CertId {
    /// The identity of a DER certificate; `None` if it does not parse.
    pub fn of(cert: &CertificateDer<'_>) -> Option<CertId> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        Some(CertId::new(cert.issuer().as_raw(), cert.raw_serial()))
    }

    /// From an issuer name (DER) and a serial number (big-endian; leading zero bytes are
    /// ignored).
    pub fn new(issuer: &[u8], serial: &[u8]) -> CertId {
        CertId {
            issuer: issuer.into(),
            serial: trim_serial(serial).into(),
        }
    }

    /// The serial number in lower-case hex, as `berth tls` and openssl print it.
    pub fn serial_hex(&self) -> String {
        hex(&self.serial)
    }
}

/// A DER INTEGER's content without the sign-padding zero bytes (at least one byte kept).
pub(crate) fn trim_serial(serial: &[u8]) -> &[u8] {
    let zeros = serial
        .iter()
        .take(serial.len().saturating_sub(1))
        .take_while(|b| **b == 0)
        .count();
    serial.get(zeros..).unwrap_or(serial)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The certificates the loaded revocation lists name, by issuer and serial.
#[derive(Debug, Clone, Default)]
pub struct RevokedSet(HashSet<CertId>);

impl FromIterator<CertId> for RevokedSet {
    fn from_iter<I: IntoIterator<Item = CertId>>(ids: I) -> Self {
        RevokedSet(ids.into_iter().collect())
    }
}

impl RevokedSet {
    pub fn contains(&self, id: &CertId) -> bool {
        self.0.contains(id)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The lists of one `--tlscrl` file, checked.
pub(crate) struct LoadedCrls {
    pub(crate) ders: Vec<CertificateRevocationListDer<'static>>,
    pub(crate) revoked: RevokedSet,
}

/// Reads every `X509 CRL` block of `path`; each must parse and be signed by a certificate
/// of `ca_certs` (read from `ca_path`) whose subject is the list's issuer. A list past its
/// nextUpdate is used anyway, with a warning (refusing every client of the CA because
/// nobody refreshed the list would lock the operator out of the daemon).
pub(crate) fn load_crls(
    path: &Path,
    ca_path: &Path,
    ca_certs: &[CertificateDer<'_>],
) -> Result<LoadedCrls, TlsError> {
    let hint = "write it with `berth tls revoke NAME --dir DIR` (DIR/crl.pem)";
    let bytes = read_file(path, hint)?;
    let ders = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::MalformedPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if ders.is_empty() {
        return Err(TlsError::NoCrl {
            path: path.to_path_buf(),
        });
    }
    let cas: Vec<_> = ca_certs
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
        .map(|(_, c)| c)
        .collect();
    let mut revoked = HashSet::new();
    for der in &ders {
        let bad = |reason: String| TlsError::BadCrl {
            path: path.to_path_buf(),
            reason,
        };
        let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| bad(e.to_string()))?;
        let issuer = crl.issuer();
        let signed_by_ca = cas.iter().any(|ca| {
            ca.subject().as_raw() == issuer.as_raw()
                && crl.verify_signature(ca.public_key()).is_ok()
        });
        if !signed_by_ca {
            return Err(TlsError::CrlNotFromCa {
                path: path.to_path_buf(),
                ca: ca_path.to_path_buf(),
                issuer: issuer.to_string(),
            });
        }
        // webpki parses the list again for the handshake; refuse here what it would refuse
        // there, so a bad list stops the start rather than every handshake.
        webpki::OwnedCertRevocationList::from_der(der.as_ref())
            .map_err(|e| bad(format!("{e:?}")))?;
        if let Some(next) = crl.next_update() {
            if next.timestamp() < OffsetDateTime::now_utc().unix_timestamp() {
                tracing::warn!(
                    path = %path.display(),
                    next_update = %next,
                    "the revocation list is past its nextUpdate; it is still used, refresh it with `berth tls revoke`"
                );
            }
        }
        for r in crl.iter_revoked_certificates() {
            revoked.insert(CertId::new(issuer.as_raw(), r.raw_serial()));
        }
    }
    Ok(LoadedCrls {
        ders,
        revoked: RevokedSet(revoked),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_trim_keeps_one_byte() {
        assert_eq!(trim_serial(&[0, 0x80, 1]), &[0x80, 1]);
        assert_eq!(trim_serial(&[0]), &[0]);
        assert_eq!(trim_serial(&[0, 0]), &[0]);
        assert_eq!(trim_serial(&[]), &[] as &[u8]);
        assert_eq!(trim_serial(&[5]), &[5]);
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
    }
}

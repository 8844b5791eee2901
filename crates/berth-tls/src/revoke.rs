//! `berth tls revoke`: mark the certificates issued under a name as revoked in the CA
//! directory's index and write the CA's revocation list (`DIR/crl.pem`, an X.509 v2 CRL
//! in PEM, signed with `ca-key.pem`) naming every revoked certificate. The daemon reads
//! that file with `--tlscrl` (`crl.rs`); this module does not own reloading it.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::crl::{hex, trim_serial};
use crate::crl_write::write_crl;
use crate::error::read_file;
use crate::generate::Ca;
use crate::index::{rfc3339, Index, IssuedCert};
use crate::load::parse_certs;
use crate::TlsError;

pub use crate::crl_write::CRL_VALID_DAYS;

/// What `revoke` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeReport {
    /// The list written.
    pub crl: PathBuf,
    /// Certificates of the name revoked by this call.
    pub revoked_now: Vec<IssuedCert>,
    /// Certificates of the name revoked by an earlier call.
    pub already_revoked: Vec<IssuedCert>,
    /// How many certificates the list names in all.
    pub listed: usize,
    /// The list's CRL number.
    pub crl_number: u64,
    /// The list's nextUpdate.
    pub next_update: OffsetDateTime,
}

/// Revokes every certificate the CA in `ca_dir` issued under `name` (its index entries)
/// and writes `ca_dir/crl.pem` anew with all revoked certificates, a CRL number one above
/// the last, thisUpdate now and nextUpdate [`CRL_VALID_DAYS`] later. Revoking a name
/// again changes nothing but refreshes the list. A name the index does not know is an
/// error that lists the names it does know.
pub fn revoke(ca_dir: &Path, name: &str) -> Result<RevokeReport, TlsError> {
    let ca = Ca::load(ca_dir)?;
    let mut index = Index::load(ca_dir)?;
    let now = OffsetDateTime::now_utc();

    let mut revoked_now = Vec::new();
    let mut already_revoked = Vec::new();
    for cert in index.certificates.iter_mut().filter(|c| c.name == name) {
        if cert.revoked.is_some() {
            already_revoked.push(cert.clone());
        } else {
            cert.revoked = Some(rfc3339(now));
            revoked_now.push(cert.clone());
        }
    }
    if revoked_now.is_empty() && already_revoked.is_empty() {
        let mut names: Vec<&str> = index.certificates.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let known = if names.is_empty() {
            String::new()
        } else {
            format!(" (it issued: {})", names.join(", "))
        };
        return Err(TlsError::UnknownClient {
            name: name.to_string(),
            dir: ca_dir.to_path_buf(),
            known,
        });
    }

    finish(ca_dir, &ca, index, now, revoked_now, already_revoked)
}

/// Revokes the certificate in the PEM file `cert` (its first certificate), which the CA in
/// `ca_dir` must have signed: for certificates the index does not name (issued before it
/// existed, or with another tool from the same CA). Adds it to the index if missing.
pub fn revoke_cert(ca_dir: &Path, cert: &Path) -> Result<RevokeReport, TlsError> {
    let ca = Ca::load(ca_dir)?;
    let mut index = Index::load(ca_dir)?;
    let now = OffsetDateTime::now_utc();

    let bytes = read_file(cert, "give the client's cert.pem")?;
    let der = parse_certs(cert, &bytes)?.swap_remove(0);
    let bad = |reason: String| TlsError::BadCertificate {
        path: cert.to_path_buf(),
        reason,
    };
    let (_, leaf) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    let (_, ca_cert) =
        x509_parser::parse_x509_certificate(ca.cert.as_ref()).map_err(|e| bad(e.to_string()))?;
    let ours = leaf.issuer().as_raw() == ca_cert.subject().as_raw()
        && leaf.verify_signature(Some(ca_cert.public_key())).is_ok();
    if !ours {
        return Err(TlsError::InvalidArgument(format!(
            "{} was not issued by the CA in {} (its issuer is {}); revoke it with the CA that signed it",
            cert.display(),
            ca_dir.display(),
            leaf.issuer()
        )));
    }
    let serial = hex(trim_serial(leaf.raw_serial()));
    let (mut revoked_now, mut already_revoked) = (Vec::new(), Vec::new());
    match index
        .certificates
        .iter_mut()
        .find(|c| c.serial.eq_ignore_ascii_case(&serial))
    {
        Some(entry) if entry.revoked.is_some() => already_revoked.push(entry.clone()),
        Some(entry) => {
            entry.revoked = Some(rfc3339(now));
            revoked_now.push(entry.clone());
        }
        None => {
            let subject = leaf.subject().to_string();
            let name = leaf
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map_or_else(|| subject.clone(), str::to_string);
            let not_after =
                OffsetDateTime::from_unix_timestamp(leaf.validity().not_after.timestamp())
                    .map(rfc3339)
                    .unwrap_or_default();
            let entry = IssuedCert {
                serial,
                name,
                subject,
                not_after,
                revoked: Some(rfc3339(now)),
            };
            index.certificates.push(entry.clone());
            revoked_now.push(entry);
        }
    }
    finish(ca_dir, &ca, index, now, revoked_now, already_revoked)
}

/// Writes the list for `index` and reports.
fn finish(
    ca_dir: &Path,
    ca: &Ca,
    mut index: Index,
    now: OffsetDateTime,
    revoked_now: Vec<IssuedCert>,
    already_revoked: Vec<IssuedCert>,
) -> Result<RevokeReport, TlsError> {
    let written = write_crl(ca_dir, &ca.issuer()?, &mut index, now)?;
    tracing::debug!(dir = %ca_dir.display(), crl_number = written.crl_number, listed = written.listed, "wrote revocation list");
    Ok(RevokeReport {
        crl: written.crl,
        revoked_now,
        already_revoked,
        listed: written.listed,
        crl_number: written.crl_number,
        next_update: written.next_update,
    })
}

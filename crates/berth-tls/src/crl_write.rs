//! Writing the CA's revocation list (`DIR/crl.pem`, an X.509 v2 CRL in PEM signed with
//! the CA key) from the index: by `berth tls init` (an empty list) and by `revoke`. Its own
//! module so that `generate` and `revoke` both use it and not each other; reading lists is
//! `crl.rs`'s.

use std::path::{Path, PathBuf};

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, RevokedCertParams, SerialNumber,
    SigningKey,
};
use time::{Duration, OffsetDateTime};

use crate::index::{parse_rfc3339, unhex, Index};
use crate::TlsError;

/// The revocation list `berth tls revoke` writes into the CA directory.
pub const CRL_FILE: &str = "crl.pem";

/// How long a list is current: its nextUpdate. berthd keeps using a list past it (with a
/// warning), so this only tells other verifiers (openssl, a proxy) when to expect a new one.
pub const CRL_VALID_DAYS: i64 = 30;
const CRL_MODE: u32 = 0o644;

/// What [`write_crl`] wrote.
pub(crate) struct WrittenCrl {
    pub(crate) crl: PathBuf,
    pub(crate) listed: usize,
    pub(crate) crl_number: u64,
    pub(crate) next_update: OffsetDateTime,
}

/// Writes `ca_dir/crl.pem` listing every revoked certificate of `index`, with the next
/// CRL number (saved in the index first: if writing the list fails, the next `revoke`
/// writes it from there).
pub(crate) fn write_crl(
    ca_dir: &Path,
    issuer: &Issuer<'_, impl SigningKey>,
    index: &mut Index,
    now: OffsetDateTime,
) -> Result<WrittenCrl, TlsError> {
    let mut revoked_certs = Vec::new();
    for cert in &index.certificates {
        let Some(when) = &cert.revoked else { continue };
        let serial = unhex(&cert.serial).ok_or_else(|| TlsError::BadIndex {
            path: Index::path(ca_dir),
            reason: format!("the serial {:?} is not hex", cert.serial),
        })?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: parse_rfc3339(when).unwrap_or(now),
            reason_code: None,
            invalidity_date: None,
        });
    }
    let crl_number = index.crl_number.saturating_add(1);
    let next_update = now + Duration::days(CRL_VALID_DAYS);
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update,
        crl_number: SerialNumber::from(crl_number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let pem = params
        .signed_by(issuer)
        .and_then(|c| c.pem())
        .map_err(|e| TlsError::Generate {
            what: "the revocation list".to_string(),
            reason: e.to_string(),
        })?;
    index.crl_number = crl_number;
    index.save(ca_dir)?;
    let crl = ca_dir.join(CRL_FILE);
    berth_sys::fs::atomic_write(&crl, pem.as_bytes(), CRL_MODE)
        .map_err(|e| TlsError::write(&crl, &e))?;
    Ok(WrittenCrl {
        crl,
        listed: params.revoked_certs.len(),
        crl_number,
        next_update,
    })
}

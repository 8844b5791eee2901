//! The daemon's client-certificate check: rustls' webpki chain, signature and validity
//! verification, plus the rule that the leaf must carry an ExtendedKeyUsage extension that
//! names id-kp-clientAuth. webpki alone accepts a leaf with no EKU extension at all (it reads
//! "no EKU" as "any purpose"); we refuse it, so a CA-signed server certificate or an
//! unrestricted certificate cannot log in as a client.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Wraps the webpki verifier; everything but the EKU rule is delegated to it.
#[derive(Debug)]
pub(crate) struct RequireClientAuthEku {
    inner: Arc<dyn ClientCertVerifier>,
}

impl RequireClientAuthEku {
    pub(crate) fn new(inner: Arc<dyn ClientCertVerifier>) -> Self {
        RequireClientAuthEku { inner }
    }
}

/// Ok when the certificate's EKU extension exists and lists clientAuth.
pub(crate) fn check_client_auth_eku(leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    match cert.extended_key_usage() {
        Ok(Some(eku)) if eku.value.client_auth => Ok(()),
        Ok(Some(_)) => {
            tracing::debug!("client certificate refused: its extendedKeyUsage lacks clientAuth");
            Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose,
            ))
        }
        Ok(None) => {
            tracing::debug!(
                "client certificate refused: it has no extendedKeyUsage extension (clientAuth required)"
            );
            Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose,
            ))
        }
        // A duplicated or unparsable EKU extension.
        Err(_) => Err(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        )),
    }
}

impl ClientCertVerifier for RequireClientAuthEku {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Chain and validity first, so an untrusted certificate is reported as such.
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_client_auth_eku(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

//! The one error type of berth-tls. Every message names the file it is about and says
//! what to do next, because these errors end up in front of the person running
//! `berthd --tlsverify` or `berth tls ...`. Messages never include key material. Also
//! [`read_file`], the one file read that turns a missing file into such a message.

use std::io;
use std::path::{Path, PathBuf};

/// Why loading or generating trust material failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read (missing, unreadable, not a file).
    #[error("tls: cannot read {}: {reason}; {hint}", path.display())]
    Read {
        path: PathBuf,
        /// The I/O error's kind, so callers can tell "missing" from "forbidden".
        kind: io::ErrorKind,
        /// The operating system's words, without the "(os error N)" suffix.
        reason: String,
        hint: String,
    },
    /// A certificate file held no `CERTIFICATE` PEM block.
    #[error(
        "tls: no certificate found in {}; it must hold one or more PEM `-----BEGIN CERTIFICATE-----` blocks (regenerate it with `berth tls init`)",
        path.display()
    )]
    NoCertificate { path: PathBuf },
    /// A key file held no private key PEM block.
    #[error(
        "tls: no private key found in {}; it must hold an unencrypted PEM private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },
    /// A PEM file is syntactically broken.
    #[error("tls: {} is not valid PEM: {reason}; regenerate it with `berth tls init`", path.display())]
    MalformedPem { path: PathBuf, reason: String },
    /// A certificate parsed as PEM but cannot be used (bad DER, unusable as a trust anchor).
    #[error("tls: {} holds a certificate that cannot be used: {reason}; regenerate it with `berth tls init`", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    /// The private key is not the one the certificate was issued for.
    #[error(
        "tls: private key {} does not match certificate {}; use the key that was generated together with that certificate",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The key could not be used with the certificate for another reason (unsupported
    /// algorithm, broken encoding).
    #[error(
        "tls: cannot use private key {} with certificate {}: {reason}; use an RSA or ECDSA key in PEM (PKCS#1, SEC1 or PKCS#8)",
        key.display(),
        cert.display()
    )]
    UnusableKey {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    /// Client-certificate verification could not be set up from the CA file.
    #[error("tls: cannot verify client certificates against {}: {reason}; check that it holds the CA certificate(s) that signed your clients", path.display())]
    Verifier { path: PathBuf, reason: String },
    /// rustls refused the configuration (should not happen with the built-in provider).
    #[error("tls: cannot build the TLS configuration: {reason}")]
    Config { reason: String },
    /// A file that would be overwritten already exists.
    #[error("tls: {} already exists; pass --force to overwrite it or pick another {hint}", path.display())]
    Exists {
        path: PathBuf,
        /// The flag naming the other place to pick, e.g. "--dir".
        hint: String,
    },
    /// A file or directory could not be written.
    #[error("tls: cannot write {}: {reason}; check that the directory is writable and the disk has space", path.display())]
    Write { path: PathBuf, reason: String },
    /// A caller-supplied value is unusable (SAN, name, validity).
    #[error("tls: {0}")]
    InvalidArgument(String),
    /// The `--tlscrl` file held no `X509 CRL` PEM block.
    #[error(
        "tls: no certificate revocation list found in {}; it must hold PEM `-----BEGIN X509 CRL-----` blocks (`berth tls revoke NAME --dir DIR` writes DIR/crl.pem)",
        path.display()
    )]
    NoCrl { path: PathBuf },
    /// A revocation list could not be parsed.
    #[error("tls: {} holds a revocation list that cannot be used: {reason}; write it again with `berth tls revoke`", path.display())]
    BadCrl { path: PathBuf, reason: String },
    /// A revocation list is not signed by any certificate of the CA file.
    #[error(
        "tls: the revocation list in {} (issuer {issuer}) is not signed by a CA in {}; use the list written by `berth tls revoke` with the CA that issued the client certificates",
        path.display(),
        ca.display()
    )]
    CrlNotFromCa {
        path: PathBuf,
        ca: PathBuf,
        issuer: String,
    },
    /// The index of issued certificates is unreadable.
    #[error("tls: {} is not a valid index of issued certificates: {reason}; fix or remove it (certificates issued before cannot then be revoked by name)", path.display())]
    BadIndex { path: PathBuf, reason: String },
    /// `revoke` was asked for a name the index does not know.
    #[error("tls: no certificate named {name:?} was issued from {}{known}; see {}", dir.display(), dir.join("index.json").display())]
    UnknownClient {
        name: String,
        dir: PathBuf,
        /// ", issued: a, b" or empty.
        known: String,
    },
    /// rcgen failed to produce a key or certificate.
    #[error("tls: cannot generate {what}: {reason}")]
    Generate { what: String, reason: String },
}

impl TlsError {
    /// A read failure of `path`, with a hint that fits the error: how to create a missing
    /// file, or to check permissions.
    pub(crate) fn read(path: &Path, err: &io::Error, create_hint: &str) -> Self {
        let hint = match err.kind() {
            io::ErrorKind::NotFound => create_hint.to_string(),
            io::ErrorKind::PermissionDenied => {
                "check that this user may read it (keys are usually mode 0600)".to_string()
            }
            _ => "check that the path names a readable file".to_string(),
        };
        TlsError::Read {
            path: path.to_path_buf(),
            kind: err.kind(),
            reason: io_reason(err),
            hint,
        }
    }

    /// A write failure of `path`.
    pub(crate) fn write(path: &Path, err: &io::Error) -> Self {
        TlsError::Write {
            path: path.to_path_buf(),
            reason: io_reason(err),
        }
    }
}

/// The OS message without Rust's " (os error N)" suffix: "No such file or directory".
pub(crate) fn io_reason(err: &io::Error) -> String {
    let s = err.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Reads a whole file; a missing file's error says how to create it.
pub(crate) fn read_file(path: &Path, create_hint: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::read(path, &e, create_hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_message_names_path_and_fix() {
        let err = io::Error::from_raw_os_error(2);
        let e = TlsError::read(
            Path::new("/x/ca.pem"),
            &err,
            "create it with `berth tls init --dir /x`",
        );
        assert_eq!(
            e.to_string(),
            "tls: cannot read /x/ca.pem: No such file or directory; create it with `berth tls init --dir /x`"
        );
    }

    #[test]
    fn permission_denied_hint() {
        let err = io::Error::from_raw_os_error(13);
        let e = TlsError::read(Path::new("/x/key.pem"), &err, "unused");
        let msg = e.to_string();
        assert!(msg.contains("Permission denied"), "{msg}");
        assert!(msg.contains("may read it"), "{msg}");
    }

    #[test]
    fn io_reason_keeps_custom_messages() {
        let err = io::Error::other("boom");
        assert_eq!(io_reason(&err), "boom");
    }
}

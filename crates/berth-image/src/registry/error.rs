//! The registry layer's one error type. Messages follow dockerd's where the docker CLI
//! shows them to users (`manifest unknown: manifest unknown`, `no matching manifest for
//! linux/amd64 in the manifest list entries`); none ever carries a password or token.

use std::error::Error as _;

use crate::store::StoreError;
use crate::{BlobError, Digest};

/// Why a pull, push or login failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry has no such manifest or blob (or repository).
    #[error("{0}")]
    NotFound(String),
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Denied(String),
    /// The caller asked for something impossible (bad platform string, no such tag
    /// locally).
    #[error("{0}")]
    InvalidArgument(String),
    /// A manifest of a kind Berth cannot pull.
    #[error("unsupported manifest media type {media_type:?} for {reference}: expected a Docker schema 2 or OCI image manifest, index or manifest list")]
    UnsupportedMediaType {
        media_type: String,
        reference: String,
    },
    /// An index without an entry for the platform asked for (dockerd's wording).
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform { platform: String },
    /// Content from the registry did not hash to the digest it was announced with.
    #[error("digest mismatch for {expected}: the registry sent content with digest {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// A malformed or inconsistent manifest, config or layer from the registry.
    #[error("{0}")]
    Invalid(String),
    /// The registry answered with an error we do not classify further.
    #[error("{0}")]
    Http(String),
    /// The registry could not be reached, or the connection broke for good.
    #[error("{0}")]
    Transport(String),
    /// Unusable TLS material in `certs.d`.
    #[error("{0}")]
    Tls(String),
    /// The image store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The client went away.
    #[error("operation cancelled")]
    Cancelled,
}

impl RegistryError {
    /// `Get "https://host/v2/": <innermost causes>`, as Go's `url.Error` prints.
    pub(crate) fn transport(method: &str, url: &str, e: &reqwest::Error) -> RegistryError {
        let mut causes = Vec::new();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            // hyper-util's "client error (Connect)" wrappers say nothing the cause does not.
            let generic = text.starts_with("client error (");
            if !generic && !causes.iter().any(|c: &String| c.contains(&text)) {
                causes.push(text);
            }
            source = s.source();
        }
        let detail = if let Some(go) = refused(url, e) {
            go
        } else if causes.is_empty() {
            e.to_string()
        } else {
            causes.join(": ")
        };
        let method = capitalize(method);
        // Strip any query: token URLs carry scopes and account names, never secrets, but
        // they are long and say nothing useful.
        let url = url.split('?').next().unwrap_or(url);
        RegistryError::Transport(format!("{method} \"{url}\": {detail}"))
    }

    /// Whether this is a connection nothing accepted ([`Self::transport`]'s "connect:
    /// connection refused").
    pub(crate) fn is_refused(&self) -> bool {
        matches!(self, RegistryError::Transport(m) if m.ends_with(REFUSED))
    }

    /// Maps a blob-store failure while storing registry content.
    pub(crate) fn from_blob(e: BlobError) -> RegistryError {
        match e {
            BlobError::Mismatch { expected, actual } => {
                RegistryError::DigestMismatch { expected, actual }
            }
            BlobError::Read(io) => Self::from_io(io),
            other => RegistryError::Store(StoreError::Blob(other)),
        }
    }

    /// Unwraps a `RegistryError` that travelled through an `io::Error` (the blocking
    /// download reader reports registry failures that way).
    pub(crate) fn from_io(e: std::io::Error) -> RegistryError {
        if e.get_ref().is_some_and(|r| r.is::<RegistryError>()) {
            if let Some(inner) = e.into_inner() {
                if let Ok(r) = inner.downcast::<RegistryError>() {
                    return *r;
                }
            }
            return RegistryError::Transport("download failed".into());
        }
        RegistryError::Transport(e.to_string())
    }

    /// Whether trying again may help (a dropped connection or a 5xx, not a 4xx).
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, RegistryError::Transport(_))
    }
}

fn capitalize(method: &str) -> String {
    let lower = method.to_ascii_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Go's words for a refused connection, which dockerd prints.
const REFUSED: &str = ": connect: connection refused";

/// `dial tcp 127.0.0.1:5000: connect: connection refused` (Go's `net.OpError`) when `e`
/// is a connection to `url` that nothing accepted; None otherwise.
fn refused(url: &str, e: &reqwest::Error) -> Option<String> {
    let mut source = e.source();
    let mut is_refused = false;
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            is_refused = true;
        }
        source = s.source();
    }
    if !is_refused {
        return None;
    }
    let u = reqwest::Url::parse(url).ok()?;
    Some(format!(
        "dial tcp {}:{}{REFUSED}",
        u.host_str()?,
        u.port_or_known_default()?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_round_trip_keeps_the_registry_error() {
        let e = std::io::Error::other(RegistryError::NotFound("blob unknown".into()));
        match RegistryError::from_io(e) {
            RegistryError::NotFound(m) => assert_eq!(m, "blob unknown"),
            other => panic!("unexpected {other:?}"),
        }
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(
            RegistryError::from_io(plain),
            RegistryError::Transport(_)
        ));
        assert_eq!(capitalize("GET"), "Get");
    }

    /// dockerd 20.10 against a port nothing listens on: `Get
    /// "http://127.0.0.1:P/v2/": dial tcp 127.0.0.1:P: connect: connection refused`.
    #[tokio::test]
    async fn a_refused_connection_in_gos_words() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/v2/");
        let e = reqwest::get(&url).await.unwrap_err();
        let got = RegistryError::transport("GET", &url, &e);
        assert_eq!(
            got.to_string(),
            format!("Get \"{url}\": dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
        assert!(got.is_refused());
        assert!(!RegistryError::Transport("Get \"x\": tls handshake".into()).is_refused());
    }

    #[test]
    fn blob_mismatch_becomes_digest_mismatch() {
        let e = RegistryError::from_blob(BlobError::Mismatch {
            expected: Digest::of(b"a"),
            actual: Digest::of(b"b"),
        });
        assert!(
            e.to_string().starts_with("digest mismatch for sha256:"),
            "{e}"
        );
    }
}

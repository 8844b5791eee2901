//! berth-tls: the trust material of Berth's TCP endpoint. It owns generating a CA, server
//! and client certificates for `berth tls` ([`generate`]), loading them from PEM files into
//! rustls configurations that *require* a client certificate on the daemon side
//! ([`load_server_config`]) and present one on the client side ([`load_client_config`]),
//! and turning a verified client certificate into an identity for logs ([`peer_subject`]).
//! Revocation: `berth tls revoke` ([`revoke`]) keeps an index of issued certificates and
//! writes the CA's CRL; the daemon refuses the certificates it lists ([`load_server_tls`])
//! and names them by [`CertId`] so that a reload can close their open connections.
//!
//! It does not own sockets, listeners or reloading policy: `berth-server` wraps the
//! returned `ServerConfig` in its acceptor and calls [`load_server_config`] again on SIGHUP.
//! Every config uses the ring crypto provider explicitly; nothing here installs or relies
//! on a process-wide default provider.

#![forbid(unsafe_code)]

mod crl;
mod crl_write;
mod error;
pub mod generate;
mod index;
mod load;
mod revoke;
mod subject;
mod verify;

#[cfg(test)]
mod test_support;

use std::path::{Path, PathBuf};

pub use crl::{CertId, RevokedSet};
pub use error::TlsError;
pub use index::{Index, IssuedCert};
pub use load::{load_client_config, load_server_config, load_server_tls, ServerTls};
pub use revoke::{revoke, revoke_cert, RevokeReport, CRL_VALID_DAYS};
pub use subject::peer_subject;

/// Paths of the daemon's (or client's) trust material.
///
/// `ca` may hold several certificates; each is a trust anchor. `cert` holds the leaf first,
/// then any intermediates. `key` holds the leaf's unencrypted private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The daemon's revocation list (`--tlscrl`): PEM X.509 CRLs, each signed by a
    /// certificate of `ca`. Client certificates they list are refused. Unused by clients.
    pub crl: Option<PathBuf>,
}

impl TlsPaths {
    /// `dir/ca.pem`, `dir/cert.pem`, `dir/key.pem`: the layout of a Docker client's
    /// `DOCKER_CERT_PATH` (and what [`generate::new_client`] writes). The daemon's files
    /// from [`generate::init`] are `server-cert.pem`/`server-key.pem` instead.
    pub fn in_dir(dir: &Path) -> Self {
        TlsPaths {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            crl: None,
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod revoke_tests;

//! A client for the Docker Registry HTTP API v2 (the OCI distribution spec): pull images
//! into the [`ImageStore`](crate::store::ImageStore) and push them back out.
//!
//! What each module owns:
//! - [`auth`]: credentials as Docker sends them (`X-Registry-Auth`), `WWW-Authenticate`
//!   challenges, bearer tokens cached per scope.
//! - [`transport`]: which host and scheme a registry name means, and the TLS set-up for it
//!   (system roots plus `certs.d/<host:port>/` CAs and client certificates).
//! - [`client`]: one repository on one registry: authenticated requests, manifests,
//!   blobs, uploads, the registry's error bodies turned into [`RegistryError`].
//! - [`manifest`]: Docker schema 2 and OCI manifests, indexes and manifest lists, and
//!   platform selection.
//! - [`pull`] and [`push`]: the two operations, with Docker's progress messages.
//! - `silence`: how long a registry may stay silent, and the timeout around each wait.
//! - [`known`]: which repositories of which registry are known to hold a blob (for
//!   cross-repository mounts on push), persisted in a small JSON file.
//!
//! It knows nothing of HTTP servers or daemon state: the engine hands it a store, a
//! reference and credentials, and receives [`Progress`] events to forward to the client.
//! Network I/O is async (reqwest on the caller's tokio runtime); store writes run on the
//! blocking pool, reading the network through [`tokio::runtime::Handle::block_on`].

pub mod auth;
pub mod client;
mod error;
pub mod known;
pub mod manifest;
mod progress;
pub mod pull;
pub mod push;
pub mod search;
mod silence;
pub mod transport;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes of blobs read from registries by this process (the daemon's metrics).
static PULLED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes of blobs downloaded from registries since the process started.
pub fn pulled_bytes() -> u64 {
    PULLED_BYTES.load(Ordering::Relaxed)
}

fn count_pulled(n: usize) {
    PULLED_BYTES.fetch_add(n as u64, Ordering::Relaxed);
}

pub use auth::RegistryAuth;
pub use error::RegistryError;
pub use manifest::Platform;
pub use progress::{Progress, ProgressSink};
pub use pull::{PullOutcome, PullPlan};
pub use push::{PushOutcome, PushPlan};

use crate::Reference;

/// How berthd talks to registries (daemon-wide settings).
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Directories holding `<host:port>/` sub-directories of CAs (`*.crt`) and client
    /// certificates (`*.cert` + `*.key`), searched in order (dockerd reads
    /// `/etc/docker/certs.d`; Berth reads `/etc/berth/certs.d` first).
    pub certs_dirs: Vec<PathBuf>,
    /// Registries reachable over plain HTTP besides loopback: `host[:port]` or CIDRs.
    pub insecure_registries: Vec<String>,
    /// Layers downloaded at once per pull (dockerd's `max-concurrent-downloads`).
    pub max_concurrent_downloads: usize,
    /// Layers uploaded at once per push (dockerd's `max-concurrent-uploads`).
    pub max_concurrent_uploads: usize,
    /// Attempts per blob download after the first one fails mid-way.
    pub download_retries: u32,
    /// gzip level (0–9) for layers compressed on the way out. dockerd uses 6; 1 is about
    /// 5x faster (stored blocks for incompressible data) for blobs ~15% larger on text.
    pub push_gzip_level: u32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            certs_dirs: vec![
                PathBuf::from("/etc/berth/certs.d"),
                PathBuf::from("/etc/docker/certs.d"),
            ],
            insecure_registries: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            download_retries: 4,
            push_gzip_level: 1,
        }
    }
}

/// The registry client shared by every pull and push of a daemon: endpoints (one HTTP
/// client per registry host), the bearer-token cache and the known-blob locations.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    transport: transport::Transport,
    tokens: auth::TokenCache,
    known: Arc<known::KnownBlobs>,
}

impl Registry {
    /// `state_dir` holds the known-blob file (`<data-root>/image` in berthd).
    pub fn new(config: RegistryConfig, state_dir: &Path) -> Arc<Registry> {
        Arc::new(Registry {
            transport: transport::Transport::new(&config),
            tokens: auth::TokenCache::default(),
            known: Arc::new(known::KnownBlobs::open(&state_dir.join("known-blobs.json"))),
            config,
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// A client for `reference`'s repository with `actions` (`pull`, `push`) in its
    /// token scope, plus `pull` on `extra_pull_repos` (mount sources).
    pub(crate) async fn repository(
        self: &Arc<Self>,
        reference: &Reference,
        auth: &RegistryAuth,
        actions: &'static str,
        extra_pull_repos: Vec<String>,
    ) -> Result<client::RepoClient, RegistryError> {
        let endpoint = self.transport.endpoint(reference.domain()).await?;
        Ok(client::RepoClient::new(
            self.clone(),
            endpoint,
            reference.path().to_string(),
            auth.clone(),
            actions,
            extra_pull_repos,
        ))
    }

    /// `POST /auth`: checks `auth` against `server` (a registry host, with or without
    /// scheme; empty means Docker Hub). Fails with [`RegistryError::Unauthorized`] on bad
    /// credentials.
    pub async fn login(
        self: &Arc<Self>,
        server: &str,
        auth: &RegistryAuth,
    ) -> Result<(), RegistryError> {
        let domain = transport::normalize_server_address(server);
        let endpoint = self.transport.endpoint(&domain).await?;
        client::login(self, &endpoint, auth).await
    }

    pub(crate) fn tokens(&self) -> &auth::TokenCache {
        &self.tokens
    }

    pub(crate) fn known(&self) -> &Arc<known::KnownBlobs> {
        &self.known
    }
}

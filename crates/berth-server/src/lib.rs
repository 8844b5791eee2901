//! The HTTP face of Berth: the Docker Engine API over a unix socket and over mutual-TLS TCP.
//!
//! Owns routing, the `/vX.Y` version prefix, error → status mapping, request logging and
//! the listeners. It holds no state of its own: every route is one `Engine` call.
#![forbid(unsafe_code)]

pub mod audit;
mod authz;
mod body;
mod error;
pub mod inflight;
mod internal;
mod listen;
pub mod metrics;
mod peer;
mod revocable;
mod routes;
mod serve;
mod version;
pub mod websocket;

pub use authz::{Authorizer, Policy, PolicyError, Role};
pub use error::{ApiError, ServerError};
pub use listen::{bind_unix, parse_host, Endpoint, ListenerOptions};
pub use serve::{ClientIdentity, PeerCred, Server, TlsReload};

//! Container networking on the host: IPv4 and IPv6 address management, Linux bridges, veth pairs
//! into a container's network namespace, firewall rules in chains berth owns, the
//! userland port proxy, the embedded DNS server, and `/etc/hosts` and `resolv.conf`
//! content.
//!
//! The primitives (`bridge`, `endpoint`, `firewall`, `ipam`, `proxy`, `dns`, `files`) know
//! nothing of containers or records: they take plain values (a subnet, a bridge name, a
//! container's init pid). [`manager`] puts them together: the network records, each
//! container's settings and endpoints, and what a start, a stop, a connect and a
//! disconnect do; the engine reaches it through [`NetworkDriver`].
//!
//! Bridges, veths, addresses and routes are made, and links looked up, over rtnetlink in
//! the daemon's own network namespace (no process per start or per network, no
//! `/sys/class/net`); firewall rules go through `iptables-restore`/`iptables -w`, which every
//! host that runs Docker has, and the host's routes are read with `ip route` to keep new
//! subnets off the ones the host uses.
#![forbid(unsafe_code)]

pub mod bridge;
mod cmd;
pub mod dns;
mod driver;
pub mod endpoint;
pub mod files;
pub mod firewall;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod ipam;
pub mod ipam6;
pub mod manager;
pub mod proxy;
mod rtnl;

pub use driver::NetworkDriver;
pub use ipam::Ipv4Net;
pub use ipam6::Ipv6Net;

/// What went wrong, with the kind a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// Allowed to no one (a pre-defined network, an address pool that overlaps).
    #[error("{0}")]
    Forbidden(String),
    /// Out of something (addresses).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else, with what failed.
    #[error("{0}")]
    Other(String),
    /// A tool (`ip`, `iptables`) failed.
    #[error("{cmd} failed: {msg}")]
    Command { cmd: String, msg: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl NetError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
        let what = what.into();
        move |source| NetError::Io { what, source }
    }
}

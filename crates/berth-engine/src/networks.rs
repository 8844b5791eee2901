//! Networks in the engine: the Docker API over a [`NetworkDriver`] (`networks/api.rs`),
//! the `NetworkSettings` of container inspect and ps (`networks/settings.rs`), and the
//! calls a container's create, start, stop, rename and removal make, handed to the
//! driver. The driver (`berth_network::manager::Manager` in the daemon, a fake in tests)
//! owns the records, IPAM, and the host work (bridges, veths, iptables, proxies, DNS).

mod api;
#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
pub(crate) mod fuzz;
mod settings;

use std::sync::Arc;

use berth_api_types::container::{ContainerConfig, HostConfig};
use berth_api_types::network::NetworkingConfig;
#[cfg(doc)]
use berth_network::manager::Manager;
use berth_network::manager::{Hooks, LinkedPeer, NetEvent, NetNs};
use berth_network::{NetError, NetworkDriver};
use berth_runtime::spec::NamespaceMode;
use berth_sys::pidfd::ProcessHandle;

pub use berth_network::manager::host_route_overlap;

use crate::EngineError;

/// The default bridge network's name.
pub(crate) const DEFAULT: &str = berth_network::manager::DEFAULT;

/// What the runtime needs from the network for one start.
#[derive(Debug, Clone)]
pub(crate) struct NetPlan {
    pub ns: NamespaceMode,
    pub hosts: String,
    pub resolv: String,
    /// The containers its legacy links name (the driver's view).
    pub links: Vec<LinkedPeer>,
    /// The environment those links give (set by the start, from their records).
    pub env: Vec<String>,
}

/// The engine's handle on container networking: the driver, and the event bus its
/// `connect`/`disconnect` events go to.
#[derive(Debug)]
pub(crate) struct Networks {
    driver: Arc<dyn NetworkDriver>,
    events: Arc<crate::events::EventBus>,
}

pub(crate) fn net_err(e: NetError) -> EngineError {
    match e {
        NetError::InvalidArgument(m) => EngineError::InvalidArgument(m),
        NetError::Conflict(m) => EngineError::Conflict(m),
        NetError::NotFound(m) => EngineError::NotFound(m),
        NetError::Forbidden(m) => EngineError::Forbidden(m),
        NetError::Unavailable(m) => EngineError::Unavailable(m),
        other => EngineError::Internal(other.to_string()),
    }
}

pub(crate) fn random_hex(bytes: usize) -> Result<String, EngineError> {
    berth_network::manager::random_hex(bytes).map_err(net_err)
}

/// A driver event as the engine's `network` event.
fn emit(events: &crate::events::EventBus, e: &NetEvent) {
    events.emit(
        "network",
        e.action,
        &e.network_id,
        &[
            ("container", &e.container),
            ("name", &e.network_name),
            ("type", &e.driver),
        ],
    );
}

impl Networks {
    /// The driver `make` builds, its events sent to `events` (see [`Manager::open`] for
    /// the real one).
    pub(crate) fn open(
        make: crate::NetworkFactory,
        events: Arc<crate::events::EventBus>,
    ) -> Result<Arc<Networks>, EngineError> {
        let bus = events.clone();
        let hooks = Hooks {
            now: crate::system::now_rfc3339,
            events: Arc::new(move |e: NetEvent| emit(&bus, &e)),
        };
        let driver = make(hooks).map_err(net_err)?;
        Ok(Arc::new(Networks::new(driver, events)))
    }

    pub(crate) fn new(
        driver: Arc<dyn NetworkDriver>,
        events: Arc<crate::events::EventBus>,
    ) -> Networks {
        Networks { driver, events }
    }

    /// Waits until the start-up set-up of bridges and firewall is done.
    pub(crate) fn wait_host_ready(&self) {
        self.driver.wait_ready();
    }

    /// Step one of a start: addresses for each attached network, the netns to use, and the
    /// `/etc/hosts` and `resolv.conf` content. `peer`: for `container:<id>`, that
    /// container's init pid and its hosts and resolv.conf. The driver's work (state
    /// files) runs on a blocking thread.
    pub(crate) async fn prepare(
        &self,
        cid: &str,
        peer: Option<(i32, String, String)>,
    ) -> Result<NetPlan, EngineError> {
        let (driver, cid) = (self.driver.clone(), cid.to_string());
        let p = off_workers(move || driver.prepare(&cid, peer))
            .await?
            .map_err(net_err)?;
        Ok(NetPlan {
            ns: match p.ns {
                NetNs::Private => NamespaceMode::Private,
                NetNs::Host => NamespaceMode::Host,
                NetNs::Path(path) => NamespaceMode::Path(path),
            },
            hosts: p.hosts,
            resolv: p.resolv,
            links: p.links,
            env: Vec::new(),
        })
    }

    /// Step two, once the container's init (`pid`) exists: interfaces, ports, DNS.
    pub(crate) fn plug(&self, cid: &str, process: &ProcessHandle) -> Result<(), EngineError> {
        self.driver.plug(cid, process).map_err(net_err)
    }

    /// After a daemon restart: the proxies and DNS of a container that still runs.
    pub(crate) fn restore(&self, cid: &str, process: &ProcessHandle) {
        self.driver.restore(cid, process);
    }

    /// Drops endpoints of containers that no longer run (a daemon crash left them).
    pub(crate) fn forget_stale(&self, running: &[String]) {
        self.driver.forget_stale(running);
    }

    /// A container stopped (or its start failed). Safe to call more than once.
    pub(crate) fn unplug(&self, cid: &str) {
        self.driver.unplug(cid);
    }

    /// `docker rename`: the container's name in its settings and on its endpoints (their
    /// files written on a blocking thread).
    pub(crate) async fn rename(&self, cid: &str, name: &str) {
        let (driver, cid, name) = (self.driver.clone(), cid.to_string(), name.to_string());
        let _ = off_workers(move || driver.rename(&cid, &name)).await;
    }

    /// Legacy link `alias` of container `cid` is removed; while it runs, the names of
    /// the link's `/etc/hosts` entry.
    pub(crate) async fn unlink(&self, cid: &str, alias: &str) -> Option<String> {
        let (driver, cid, alias) = (self.driver.clone(), cid.to_string(), alias.to_string());
        off_workers(move || driver.unlink(&cid, &alias))
            .await
            .ok()
            .flatten()
    }

    /// The container is removed: its settings go (unplugged, its file removed on a
    /// blocking thread).
    pub(crate) async fn forget(&self, cid: &str) {
        let (driver, cid) = (self.driver.clone(), cid.to_string());
        let _ = off_workers(move || driver.forget(&cid)).await;
    }

    /// Validates and stores a new container's network settings (`container_create`; the
    /// settings file is written on a blocking thread). `peer_id`: the resolved ID for
    /// `container:<name>`.
    pub(crate) async fn register(
        &self,
        cid: &str,
        name: &str,
        config: &ContainerConfig,
        host_config: &HostConfig,
        networking: &NetworkingConfig,
        peer_id: Option<String>,
    ) -> Result<(), EngineError> {
        let req = settings::container_request(cid, name, config, host_config, networking, peer_id);
        let driver = self.driver.clone();
        off_workers(move || driver.register(&req))
            .await?
            .map_err(net_err)
    }
}

/// Runs driver work (files, netlink, iptables) on a blocking thread.
async fn off_workers<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EngineError> {
    crate::blocking::spawn(f)
        .await
        .map_err(|e| EngineError::Internal(format!("network task failed: {e}")))
}

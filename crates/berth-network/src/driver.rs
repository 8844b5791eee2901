//! The seam between the engine and container networking: [`NetworkDriver`], what the
//! engine calls for a network's life (create, remove) and a container's (register its
//! settings, prepare and plug at start, unplug at stop, connect, disconnect, forget), and
//! the views it reads for the API. [`crate::manager::Manager`] is the real one; engine
//! tests use a fake.

use std::collections::BTreeMap;

use berth_api_types::network::EndpointSettings;
use berth_sys::pidfd::ProcessHandle;

use crate::manager::{
    ContainerRequest, ContainerView, CreateRequest, EndpointStatus, Manager, NetPlan, NetRecord,
    NetworkRef,
};
use crate::NetError;

/// Container networking as the engine uses it. Every method may block (files, netlink,
/// iptables): call them off the async workers.
pub trait NetworkDriver: Send + Sync + std::fmt::Debug {
    /// Returns once the start-up set-up of bridges and firewall is done.
    fn wait_ready(&self);
    /// Every network by ID, with the endpoints of the containers that run on it.
    fn networks(&self) -> BTreeMap<String, NetRecord>;
    /// Makes a network (its address space, bridge, rules, record).
    fn create_network(&self, req: CreateRequest) -> Result<NetRecord, NetError>;
    /// Removes network `id`; once it is gone, what could not be cleaned up comes back with
    /// it.
    fn remove_network(&self, id: &str) -> Result<(NetRecord, Vec<String>), NetError>;
    /// Checks and stores a new container's settings.
    fn register(&self, req: &ContainerRequest) -> Result<(), NetError>;
    /// A container's settings and endpoints.
    fn container(&self, cid: &str) -> Option<ContainerView>;
    /// Start, step one: addresses, the netns, `/etc/hosts` and `resolv.conf`. `peer`: for
    /// `container:<id>`, that container's init pid, hosts and resolv.conf.
    fn prepare(&self, cid: &str, peer: Option<(i32, String, String)>) -> Result<NetPlan, NetError>;
    /// Start, step two, once the container's init exists: interfaces, ports, DNS.
    fn plug(&self, cid: &str, process: &ProcessHandle) -> Result<(), NetError>;
    /// The container stopped: ports, DNS, addresses and interfaces go. Idempotent.
    fn unplug(&self, cid: &str);
    /// After a daemon restart: the ports and DNS of a container that still runs.
    fn restore(&self, cid: &str, process: &ProcessHandle);
    /// Drops the endpoints of containers not in `running`.
    fn forget_stale(&self, running: &[String]);
    /// The container's new name (its DNS name).
    fn rename(&self, cid: &str, name: &str);
    /// The container is removed.
    fn forget(&self, cid: &str);
    /// Its legacy link `alias` is removed (`DELETE /containers/{parent}/{alias}?link=1`);
    /// while it runs, the names of the link's `/etc/hosts` entry (see
    /// [`Manager::unlink`]).
    fn unlink(&self, cid: &str, alias: &str) -> Option<String>;
    /// `network connect` (see [`Manager::connect`]): the new attachment as inspect shows
    /// it.
    fn connect(
        &self,
        cid: &str,
        net: &str,
        ec: &EndpointSettings,
        running: bool,
        process: Option<&ProcessHandle>,
    ) -> Result<EndpointStatus, NetError>;
    /// `network disconnect` (see [`Manager::disconnect`]).
    fn disconnect(&self, cid: &str, net: &str) -> Result<(NetworkRef, bool), NetError>;
}

impl NetworkDriver for Manager {
    fn wait_ready(&self) {
        self.wait_host_ready();
    }
    fn networks(&self) -> BTreeMap<String, NetRecord> {
        Manager::networks(self)
    }
    fn create_network(&self, req: CreateRequest) -> Result<NetRecord, NetError> {
        Manager::create_network(self, req)
    }
    fn remove_network(&self, id: &str) -> Result<(NetRecord, Vec<String>), NetError> {
        Manager::remove_network(self, id)
    }
    fn register(&self, req: &ContainerRequest) -> Result<(), NetError> {
        Manager::register(self, req)
    }
    fn container(&self, cid: &str) -> Option<ContainerView> {
        Manager::container(self, cid)
    }
    fn prepare(&self, cid: &str, peer: Option<(i32, String, String)>) -> Result<NetPlan, NetError> {
        Manager::prepare(self, cid, peer)
    }
    fn plug(&self, cid: &str, process: &ProcessHandle) -> Result<(), NetError> {
        Manager::plug(self, cid, process)
    }
    fn unplug(&self, cid: &str) {
        Manager::unplug(self, cid)
    }
    fn restore(&self, cid: &str, process: &ProcessHandle) {
        Manager::restore(self, cid, process)
    }
    fn forget_stale(&self, running: &[String]) {
        Manager::forget_stale(self, running)
    }
    fn rename(&self, cid: &str, name: &str) {
        Manager::rename(self, cid, name)
    }
    fn forget(&self, cid: &str) {
        Manager::forget(self, cid)
    }
    fn unlink(&self, cid: &str, alias: &str) -> Option<String> {
        Manager::unlink(self, cid, alias)
    }
    fn connect(
        &self,
        cid: &str,
        net: &str,
        ec: &EndpointSettings,
        running: bool,
        process: Option<&ProcessHandle>,
    ) -> Result<EndpointStatus, NetError> {
        Manager::connect(self, cid, net, ec, running, process)
    }
    fn disconnect(&self, cid: &str, net: &str) -> Result<(NetworkRef, bool), NetError> {
        Manager::disconnect(self, cid, net)
    }
}

//! A network driver for engine tests: records in memory, a container's settings checked
//! as the real driver checks them (`berth_network::manager::from_request`), no host work,
//! a log of the container steps it was asked for, and a check that the steps that block
//! in the real driver are called on a blocking thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use berth_api_types::network::EndpointSettings;
use berth_network::manager::{
    create_ipam, find, from_request, ContainerRequest, ContainerView, CreateRequest, CtrNet,
    EndpointStatus, NetNs, NetPlan, NetRecord, NetworkRef,
};
use berth_network::{ipam, NetError, NetworkDriver};
use berth_sys::pidfd::ProcessHandle;

#[derive(Debug, Default)]
pub(crate) struct FakeDriver {
    nets: Mutex<BTreeMap<String, NetRecord>>,
    ctrs: Mutex<HashMap<String, CtrNet>>,
    /// `step container` for each container step (`prepare`, `unplug`, `forget`...).
    calls: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeDriver {
    pub(crate) fn with(nets: BTreeMap<String, NetRecord>) -> FakeDriver {
        FakeDriver {
            nets: Mutex::new(nets),
            ..Default::default()
        }
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// What `register` does, for a test's set-up (on any thread).
    pub(crate) fn seed(&self, req: &ContainerRequest) -> Result<(), NetError> {
        let c = from_request(&lock(&self.nets), req)?;
        lock(&self.ctrs).insert(c.id.clone(), c);
        Ok(())
    }

    fn call(&self, step: &str, cid: &str) {
        lock(&self.calls).push(format!("{step} {cid}"));
    }
}

impl NetworkDriver for FakeDriver {
    fn wait_ready(&self) {}

    fn networks(&self) -> BTreeMap<String, NetRecord> {
        lock(&self.nets).clone()
    }

    fn create_network(&self, req: CreateRequest) -> Result<NetRecord, NetError> {
        crate::blocking::assert_blocking("NetworkDriver::create_network");
        let mut nets = lock(&self.nets);
        if nets.values().any(|r| r.name == req.name) {
            return Err(NetError::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let taken: Vec<_> = nets.values().filter_map(|r| r.subnet).collect();
        let addresses = create_ipam(&req, taken.clone(), || {
            ipam::next_subnet(&ipam::default_pools(), &taken)
        })?;
        let taken6: Vec<_> = nets.values().filter_map(|r| r.subnet6).collect();
        let addresses6 = berth_network::manager::create_ipam6(&req, taken6)?;
        let r = NetRecord::bridge(req, addresses, addresses6);
        nets.insert(r.id.clone(), r.clone());
        Ok(r)
    }

    fn remove_network(&self, id: &str) -> Result<(NetRecord, Vec<String>), NetError> {
        crate::blocking::assert_blocking("NetworkDriver::remove_network");
        let mut nets = lock(&self.nets);
        match nets.get(id) {
            None => Err(NetError::NotFound(format!("network {id} not found"))),
            Some(r) if !r.endpoints.is_empty() => Err(NetError::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                r.name, r.id
            ))),
            Some(_) => Ok((nets.remove(id).expect("present"), Vec::new())),
        }
    }

    fn register(&self, req: &ContainerRequest) -> Result<(), NetError> {
        crate::blocking::assert_blocking("NetworkDriver::register");
        self.seed(req)
    }

    fn container(&self, cid: &str) -> Option<ContainerView> {
        let nets = lock(&self.nets);
        let c = lock(&self.ctrs).get(cid)?.clone();
        let mode_network = nets
            .values()
            .find(|r| (c.mode == "host" || c.mode == "none") && r.name == c.mode)
            .map(|r| r.id.clone());
        let endpoints = (c.attach.iter())
            .map(|a| EndpointStatus::of(&nets, cid, a, false))
            .collect();
        Some(ContainerView {
            settings: c,
            endpoints,
            mode_network,
        })
    }

    fn prepare(&self, cid: &str, _: Option<(i32, String, String)>) -> Result<NetPlan, NetError> {
        crate::blocking::assert_blocking("NetworkDriver::prepare");
        self.call("prepare", cid);
        Ok(NetPlan {
            ns: NetNs::Private,
            hosts: String::new(),
            resolv: String::new(),
            links: Vec::new(),
        })
    }

    fn plug(&self, cid: &str, _: &ProcessHandle) -> Result<(), NetError> {
        crate::blocking::assert_blocking("NetworkDriver::plug");
        self.call("plug", cid);
        Ok(())
    }

    fn unplug(&self, cid: &str) {
        crate::blocking::assert_blocking("NetworkDriver::unplug");
        self.call("unplug", cid);
    }

    fn restore(&self, cid: &str, _: &ProcessHandle) {
        self.call("restore", cid);
    }

    fn forget_stale(&self, _: &[String]) {}

    fn rename(&self, cid: &str, name: &str) {
        crate::blocking::assert_blocking("NetworkDriver::rename");
        if let Some(c) = lock(&self.ctrs).get_mut(cid) {
            c.name = name.trim_start_matches('/').to_string();
        }
    }

    fn unlink(&self, cid: &str, alias: &str) -> Option<String> {
        crate::blocking::assert_blocking("NetworkDriver::unlink");
        if let Some(c) = lock(&self.ctrs).get_mut(cid) {
            c.legacy_links.retain(|(_, a)| a != alias);
        }
        None
    }

    fn forget(&self, cid: &str) {
        crate::blocking::assert_blocking("NetworkDriver::forget");
        self.call("forget", cid);
        lock(&self.ctrs).remove(cid);
    }

    fn connect(
        &self,
        cid: &str,
        net: &str,
        ec: &EndpointSettings,
        running: bool,
        _: Option<&ProcessHandle>,
    ) -> Result<EndpointStatus, NetError> {
        crate::blocking::assert_blocking("NetworkDriver::connect");
        if running {
            return Err(NetError::Conflict("the fake plugs nothing".into()));
        }
        let nets = lock(&self.nets);
        let id = find(&nets, net)?;
        let r = NetworkRef::of(&nets[&id]);
        let mut ctrs = lock(&self.ctrs);
        let c = ctrs.get_mut(cid).ok_or_else(|| {
            NetError::Conflict(format!("container {cid} has no network settings"))
        })?;
        let req = c.connect_request(&id, &r.name, ec)?;
        let added = from_request(&nets, &req)?.attach;
        c.attach.extend(added.iter().cloned());
        let a = added
            .first()
            .ok_or_else(|| NetError::Other("no attachment".into()))?;
        Ok(EndpointStatus::of(&nets, cid, a, false))
    }

    fn disconnect(&self, cid: &str, net: &str) -> Result<(NetworkRef, bool), NetError> {
        crate::blocking::assert_blocking("NetworkDriver::disconnect");
        let nets = lock(&self.nets);
        let id = find(&nets, net)?;
        let r = NetworkRef::of(&nets[&id]);
        let mut ctrs = lock(&self.ctrs);
        match ctrs.get_mut(cid) {
            Some(c) if c.attach.iter().any(|a| a.network_id == id) => {
                c.attach.retain(|a| a.network_id != id);
                Ok((r, false))
            }
            _ => Err(NetError::Forbidden(format!(
                "container {cid} is not connected to network {}",
                r.name
            ))),
        }
    }
}

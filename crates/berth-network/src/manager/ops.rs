//! `network connect` and `disconnect` of one container, and the views the engine reads:
//! the networks with their endpoints, and one container's endpoints.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use berth_api_types::network::EndpointSettings;
use berth_sys::pidfd::ProcessHandle;

use super::settings::{from_request, Attach, CtrNet};
use super::{find, Endpoint, Manager, NetRecord};
use crate::{Ipv4Net, Ipv6Net, NetError};

/// One network of a container, as inspect shows it.
#[derive(Debug, Clone)]
pub struct EndpointStatus {
    /// What the container asked for.
    pub attach: Attach,
    /// The network, `None` when it is gone (or never existed: the start then fails).
    pub network: Option<NetworkRef>,
    /// The endpoint, while the container runs on that network.
    pub endpoint: Option<Endpoint>,
    /// An attachment to the default bridge while the daemon runs without one
    /// (`--bridge=none`): the container runs with its networking disabled.
    pub disabled_default: bool,
}

/// What an endpoint's inspect needs of its network.
#[derive(Debug, Clone)]
pub struct NetworkRef {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 subnet and gateway, with `EnableIPv6`.
    pub v6: Option<(Ipv6Net, Ipv6Addr)>,
}

impl EndpointStatus {
    /// Attachment `a` of container `cid` as `nets` have it now.
    pub fn of(
        nets: &BTreeMap<String, NetRecord>,
        cid: &str,
        a: &Attach,
        disabled_default: bool,
    ) -> EndpointStatus {
        let r = nets.get(&a.network_id);
        EndpointStatus {
            attach: a.clone(),
            network: r.map(NetworkRef::of),
            endpoint: r.and_then(|r| r.endpoints.get(cid)).cloned(),
            disabled_default,
        }
    }
}

impl NetworkRef {
    pub fn of(r: &NetRecord) -> Self {
        NetworkRef {
            id: r.id.clone(),
            name: r.name.clone(),
            driver: r.driver.clone(),
            subnet: r.subnet,
            gateway: r.gateway,
            v6: r.v6(),
        }
    }
}

/// One container's network settings and endpoints.
#[derive(Debug, Clone)]
pub struct ContainerView {
    pub settings: CtrNet,
    /// One per attachment, in order.
    pub endpoints: Vec<EndpointStatus>,
    /// With `--network host` or `none`: that network's ID.
    pub mode_network: Option<String>,
}

impl Manager {
    /// Every network by ID, with the endpoints of the containers that run on it (named by
    /// the containers' current names).
    pub fn networks(&self) -> BTreeMap<String, NetRecord> {
        let st = self.lock();
        st.nets
            .values()
            .map(|r| {
                let mut r = r.clone();
                for (cid, ep) in r.endpoints.iter_mut() {
                    if let Some(c) = st.ctrs.get(cid) {
                        ep.name.clone_from(&c.name);
                    }
                }
                (r.id.clone(), r)
            })
            .collect()
    }

    /// Container `cid`'s settings and endpoints; `None` for a container without settings.
    pub fn container(&self, cid: &str) -> Option<ContainerView> {
        let st = self.lock();
        let c = st.ctrs.get(cid)?;
        let mode_network = match c.mode.as_str() {
            "host" | "none" => st
                .nets
                .values()
                .find(|r| r.name == c.mode)
                .map(|r| r.id.clone()),
            _ => None,
        };
        let endpoints = c
            .attach
            .iter()
            .map(|a| EndpointStatus::of(&st.nets, cid, a, self.disabled_default(a)))
            .collect();
        Some(ContainerView {
            settings: c.clone(),
            endpoints,
            mode_network,
        })
    }

    /// `network connect`: attaches container `cid` to network `net` (ID, name or prefix)
    /// with the endpoint settings `ec`; a container that runs (`process`) gets its
    /// interface now, and the `connect` event is sent (else the engine sends it). Returns
    /// the new attachment as inspect shows it: the network, and for a running container
    /// its endpoint (address, gateway, prefix, MAC, aliases).
    pub fn connect(
        &self,
        cid: &str,
        net: &str,
        ec: &EndpointSettings,
        running: bool,
        process: Option<&ProcessHandle>,
    ) -> Result<EndpointStatus, NetError> {
        let r = {
            let mut st = self.lock();
            let id = find(&st.nets, net)?;
            let Some(r) = st.nets.get(&id).map(NetworkRef::of) else {
                return Err(NetError::NotFound(format!("network {net} not found")));
            };
            let Some(c) = st.ctrs.get(cid).cloned() else {
                return Err(NetError::Conflict(format!(
                    "container {cid} has no network settings"
                )));
            };
            if c.mode == "host" || c.mode == "none" || c.mode.starts_with("container:") {
                return Err(NetError::Forbidden(
                    "container cannot be disconnected from host network or connected to host network"
                        .into(),
                ));
            }
            let req = c.connect_request(&id, &r.name, ec)?;
            let one = from_request(&st.nets, &req)?;
            let mut c = c;
            c.attach.extend(one.attach);
            st.ctrs.insert(c.id.clone(), c.clone());
            drop(st);
            self.save_ctr(&c);
            r
        };
        if running {
            let connected = process
                .ok_or_else(|| NetError::Conflict(format!("container {cid} is not running")))
                .and_then(|p| self.connect_running(cid, &r.id, p));
            if let Err(e) = connected {
                self.drop_attach(cid, &r.id);
                return Err(e);
            }
        }
        let st = self.lock();
        let a = (st.ctrs.get(cid))
            .and_then(|c| c.attach.iter().find(|a| a.network_id == r.id))
            .ok_or_else(|| NetError::Other("attachment vanished".into()))?;
        Ok(EndpointStatus::of(
            &st.nets,
            cid,
            a,
            self.disabled_default(a),
        ))
    }

    /// `network disconnect`: detaches container `cid` from network `net`, removing its
    /// interface if it runs there. Returns the network and whether the container had an
    /// endpoint there (then the `disconnect` event was sent; else the engine sends it).
    pub fn disconnect(&self, cid: &str, net: &str) -> Result<(NetworkRef, bool), NetError> {
        let r = {
            let st = self.lock();
            let id = find(&st.nets, net)?;
            let Some(r) = st.nets.get(&id).map(NetworkRef::of) else {
                return Err(NetError::NotFound(format!("network {net} not found")));
            };
            let attached = st
                .ctrs
                .get(cid)
                .is_some_and(|c| c.attach.iter().any(|a| a.network_id == id));
            if !attached {
                return Err(NetError::Forbidden(format!(
                    "container {cid} is not connected to network {}",
                    r.name
                )));
            }
            r
        };
        let plugged = self.disconnect_running(cid, &r.id);
        self.drop_attach(cid, &r.id);
        Ok((r, plugged))
    }
}

impl Manager {
    fn drop_attach(&self, cid: &str, net_id: &str) {
        let c = {
            let mut st = self.lock();
            let Some(c) = st.ctrs.get_mut(cid) else {
                return;
            };
            c.attach.retain(|a| a.network_id != net_id);
            c.clone()
        };
        self.save_ctr(&c);
    }

    /// Connects a running container to one more network: address, veth (`ethN`).
    fn connect_running(
        &self,
        cid: &str,
        net_id: &str,
        process: &ProcessHandle,
    ) -> Result<(), NetError> {
        let (r, ep, ifindex, link_local) = {
            let mut st = self.lock();
            let Some(c) = st.ctrs.get(cid).cloned() else {
                return Ok(());
            };
            let a = c.attach.iter().find(|a| a.network_id == net_id).cloned();
            let ifindex = st
                .nets
                .values()
                .filter(|r| r.endpoints.contains_key(cid))
                .count();
            let Some(r) = st.nets.get_mut(net_id) else {
                return Ok(());
            };
            let a = a.ok_or_else(|| NetError::Other("attachment vanished".into()))?;
            let ep = Manager::allocate(
                r,
                cid,
                &c.name,
                &a.aliases,
                a.ipv4,
                a.ipv6,
                a.mac.as_deref(),
            )?;
            (r.clone(), ep, ifindex, a.link_local())
        };
        let Some(subnet) = r.subnet else {
            self.save_ctr_endpoints(cid);
            return Ok(());
        };
        let ifname = format!("eth{ifindex}");
        let ns = process.ns("net").map_err(|e| {
            NetError::Conflict(format!("cannot open the network namespace of {cid}: {e}"))
        })?;
        let mut plug = r.plug(&ep, &ifname, subnet, None);
        plug.link_local = link_local;
        let plugged =
            crate::endpoint::Sandbox::open(process.pid(), ns).and_then(|mut sb| sb.plug(&plug));
        match plugged {
            Ok(veth) => {
                self.emit(&r, cid, "connect");
                self.set_veth(net_id, cid, &veth);
                self.save_ctr_endpoints(cid);
                Ok(())
            }
            Err(e) => {
                let _ = self.disconnect_running(cid, net_id);
                Err(e)
            }
        }
    }

    /// Whether the container had an endpoint there (then the event is emitted).
    fn disconnect_running(&self, cid: &str, net_id: &str) -> bool {
        let (r, ep) = {
            let mut st = self.lock();
            let Some(r) = st.nets.get_mut(net_id) else {
                return false;
            };
            let Some(ep) = r.endpoints.remove(cid) else {
                return false;
            };
            (r.clone(), ep)
        };
        // The interface goes now, outside the lock (deleting a veth takes the kernel ms).
        if !ep.veth.is_empty() {
            if let Err(e) = crate::endpoint::unplug(&ep.veth) {
                tracing::warn!(id = cid, error = %e, "cannot remove a veth");
            }
        }
        self.emit(&r, cid, "disconnect");
        self.save_ctr_endpoints(cid);
        true
    }
}

//! A small synchronous rtnetlink client: one `NETLINK_ROUTE` socket, in the namespace it
//! was opened in, and the handful of requests bridges and a container's interfaces need
//! (look a link and its kind up, create a bridge or a veth pair, set a link's MTU or state, delete it,
//! add or replace an IPv4 or IPv6 address, replace the default route). Each request asks for an acknowledgement and waits for it, so every
//! step's error comes back with the step's name; no `ip` process is involved.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::Socket;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

/// The far end of a veth pair: its name, MTU and MAC, made directly in another network
/// namespace (an open nsfs file).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VethPeer<'a> {
    pub name: &'a str,
    pub mtu: u32,
    pub mac: [u8; 6],
    pub netns: std::os::fd::BorrowedFd<'a>,
}

/// A link as [`Rtnl::link`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    pub index: u32,
    /// Its kind is `bridge`.
    pub is_bridge: bool,
}

/// An rtnetlink socket bound in the network namespace of the thread that opened it.
#[derive(Debug)]
pub(crate) struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        // The kernel always answers; the bound only keeps a lost answer from hanging a start.
        setsockopt(
            &sock,
            sockopt::ReceiveTimeout,
            &TimeVal::new(REPLY_TIMEOUT_S, 0),
        )
        .map_err(io::Error::from)?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Opens a socket inside the network namespace `ns` (from a short-lived thread that
    /// joins it; the socket stays there).
    pub(crate) fn open_in(ns: std::os::fd::BorrowedFd<'_>) -> io::Result<Rtnl> {
        berth_sys::netns::run_in(ns, Rtnl::open)?
    }

    /// Sends `msg` and waits for its acknowledgement; the replies that came before it.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        req.finalize();
        let mut out = vec![0u8; req.buffer_len()];
        req.serialize(&mut out);
        self.sock.send(&out, 0)?;
        let mut replies = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut at = 0;
            while at < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[at..n])
                    .map_err(|e| io::Error::other(format!("bad netlink reply: {e}")))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                // Netlink messages are 4-byte aligned within a datagram.
                at += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
            }
        }
    }

    /// The index of link `name`; `None` when there is none.
    pub(crate) fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        Ok(self.link(name)?.map(|l| l.index))
    }

    /// Link `name` in this socket's namespace; `None` when there is none.
    pub(crate) fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link {
                    index: l.header.index,
                    is_bridge: l.attributes.iter().any(|a| {
                        matches!(a, LinkAttribute::LinkInfo(info)
                            if info.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))))
                    }),
                }),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates veth `name` (MTU `mtu`, enslaved to `master`, up) and its `peer` in the
    /// peer's namespace (down: it gets its address first).
    pub(crate) fn add_veth(
        &mut self,
        name: &str,
        mtu: u32,
        master: u32,
        peer: &VethPeer<'_>,
    ) -> io::Result<()> {
        let mut p = LinkMessage::default();
        p.attributes.extend([
            LinkAttribute::IfName(peer.name.to_string()),
            LinkAttribute::Mtu(peer.mtu),
            LinkAttribute::Address(peer.mac.to_vec()),
            LinkAttribute::NetNsFd(peer.netns.as_fd().as_raw_fd()),
        ]);
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.extend([
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::Mtu(mtu),
            LinkAttribute::Controller(master),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
            ]),
        ]);
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    /// Creates bridge `name` (down; `ip link add name NAME type bridge`).
    pub(crate) fn add_bridge(&mut self, name: &str) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.attributes.extend([
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
        ]);
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    /// Sets the MTU of link `name`.
    pub(crate) fn set_mtu(&mut self, name: &str, mtu: u32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.attributes.extend([
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::Mtu(mtu),
        ]);
        self.request(RouteNetlinkMessage::SetLink(m), 0).map(drop)
    }

    /// Sets link `name` up.
    pub(crate) fn set_up(&mut self, name: &str) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.request(RouteNetlinkMessage::SetLink(m), 0).map(drop)
    }

    /// Deletes link `name` (a veth takes its peer along); `false` when there was none.
    pub(crate) fn del_link(&mut self, name: &str) -> io::Result<bool> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::DelLink(m), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds `ip/prefix` to link `index` (as `ip addr add` does: local = address, no
    /// broadcast; an IPv6 one without duplicate address detection, as dockerd adds them,
    /// so it is usable at once).
    pub(crate) fn add_addr(&mut self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        self.new_addr(index, ip, prefix, NLM_F_CREATE | NLM_F_EXCL)
    }

    /// `ip addr replace ip/prefix`: adds it, or updates it when the link already has it.
    pub(crate) fn replace_addr(&mut self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        self.new_addr(index, ip, prefix, NLM_F_CREATE | NLM_F_REPLACE)
    }

    fn new_addr(&mut self, index: u32, ip: IpAddr, prefix: u8, flags: u16) -> io::Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.prefix_len = prefix;
        m.header.index = index;
        if ip.is_ipv6() {
            m.header.flags = AddressHeaderFlags::Nodad;
        }
        m.attributes
            .extend([AddressAttribute::Local(ip), AddressAttribute::Address(ip)]);
        self.request(RouteNetlinkMessage::NewAddress(m), flags)
            .map(drop)
    }

    /// `ip route replace default via gw` (`ip -6` for an IPv6 gateway): main table,
    /// protocol boot.
    pub(crate) fn replace_default_route(&mut self, gw: IpAddr) -> io::Result<()> {
        let mut m = RouteMessage::default();
        m.header.address_family = match gw {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Gateway(match gw {
            IpAddr::V4(a) => RouteAddress::Inet(a),
            IpAddr::V6(a) => RouteAddress::Inet6(a),
        }));
        self.request(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }
}

/// How long a request waits for its answer.
const REPLY_TIMEOUT_S: i64 = 10;

/// What rtnetlink answers for a link name it does not know.
const ENODEV: i32 = nix::errno::Errno::ENODEV as i32;

/// Parses `aa:bb:cc:dd:ee:ff`.
pub(crate) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_macs() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some([0x02, 0x42, 0xac, 0x11, 0, 2])
        );
        assert_eq!(
            parse_mac("2:42:AC:11:0:2"),
            Some([2, 0x42, 0xac, 0x11, 0, 2])
        );
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:00:zz",
            "0242ac110002",
            "02:42:ac:11::02",
            "002:42:ac:11:00:02",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn looks_links_up() {
        // Reading links needs no privilege: lo always exists, a made-up name does not.
        let mut nl = Rtnl::open().unwrap();
        assert!(nl.link_index("lo").unwrap().is_some());
        assert_eq!(nl.link_index("berthnosuch0").unwrap(), None);
    }
}

//! The embedded DNS server of user-defined networks: one UDP socket per container, bound
//! to 127.0.0.11:53 inside the container's network namespace (opened from a short-lived
//! thread that enters the namespace, `berth_sys::netns`), served by tokio in the daemon.
//! It answers A queries for names the engine knows (containers and aliases on the
//! container's networks) and forwards everything else to the upstream resolvers from the
//! host netns.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::NetError;

/// Looks a (lower-case, dot-less) name up; `None` when the name is not ours.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Vec<Ipv4Addr>> + Send + Sync>;

/// A running server (UDP and TCP); dropping it closes the sockets.
#[derive(Debug)]
pub struct DnsServer {
    task: JoinHandle<()>,
    tcp: JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
        self.tcp.abort();
    }
}

/// Binds 127.0.0.11:53 in the network namespace `ns` (a container's, opened by the caller
/// through its process handle) and serves it. Must run inside tokio.
pub fn serve(ns: File, lookup: Lookup, upstreams: Vec<String>) -> Result<DnsServer, NetError> {
    type Sockets = (std::net::UdpSocket, std::net::TcpListener);
    let (sock, tcp) = berth_sys::netns::run_in(ns.as_fd(), || -> Result<Sockets, NetError> {
        let s = std::net::UdpSocket::bind("127.0.0.11:53")
            .map_err(NetError::io("cannot bind 127.0.0.11:53 in the container"))?;
        s.set_nonblocking(true)
            .map_err(NetError::io("cannot set up the DNS socket"))?;
        let t = std::net::TcpListener::bind("127.0.0.11:53").map_err(NetError::io(
            "cannot bind 127.0.0.11:53/tcp in the container",
        ))?;
        t.set_nonblocking(true)
            .map_err(NetError::io("cannot set up the DNS socket"))?;
        Ok((s, t))
    })
    .map_err(NetError::io(
        "cannot enter the container's network namespace",
    ))??;
    let sock = Arc::new(UdpSocket::from_std(sock).map_err(NetError::io("cannot register DNS"))?);
    let upstreams: Vec<SocketAddr> = upstreams
        .iter()
        .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    let tcp =
        tokio::net::TcpListener::from_std(tcp).map_err(NetError::io("cannot register DNS"))?;
    let tcp = tokio::spawn(serve_tcp(tcp, lookup.clone(), upstreams.clone()));
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let q = buf[..n].to_vec();
            let (sock, lookup, upstreams) = (sock.clone(), lookup.clone(), upstreams.clone());
            tokio::spawn(async move {
                if let Some(resp) = answer(&q, &lookup, &upstreams).await {
                    let _ = sock.send_to(&resp, from).await;
                }
            });
        }
    });
    Ok(DnsServer { task, tcp })
}

/// DNS over TCP (RFC 7766): length-prefixed queries, one answer each.
async fn serve_tcp(l: tokio::net::TcpListener, lookup: Lookup, upstreams: Vec<SocketAddr>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut conn, _)) = l.accept().await else {
            continue;
        };
        let (lookup, upstreams) = (lookup.clone(), upstreams.clone());
        tokio::spawn(async move {
            loop {
                let read = tokio::time::timeout(Duration::from_secs(10), conn.read_u16()).await;
                let Ok(Ok(len)) = read else { return };
                let mut q = vec![0u8; usize::from(len)];
                if conn.read_exact(&mut q).await.is_err() {
                    return;
                }
                let Some(resp) = answer(&q, &lookup, &upstreams).await else {
                    return;
                };
                let Ok(n) = u16::try_from(resp.len()) else {
                    return;
                };
                if conn.write_u16(n).await.is_err() || conn.write_all(&resp).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn answer(q: &[u8], lookup: &Lookup, upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let parsed = parse_query(q)?;
    if let Some(ips) = lookup(&parsed.name) {
        let ips = if parsed.qtype == 1 || parsed.qtype == 255 {
            ips
        } else {
            Vec::new()
        };
        return Some(response(q, parsed.end, 0, &ips));
    }
    for up in upstreams {
        if let Some(r) = forward(q, *up).await {
            return Some(r);
        }
    }
    Some(response(q, parsed.end, 2, &[]))
}

async fn forward(q: &[u8], up: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = if up.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let s = UdpSocket::bind(bind).await.ok()?;
    s.connect(up).await.ok()?;
    s.send(q).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// The first question of a query.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Question {
    /// Lower case, no trailing dot.
    pub name: String,
    pub qtype: u16,
    /// Offset just after the question.
    pub end: usize,
}

pub(crate) fn parse_query(q: &[u8]) -> Option<Question> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) == 0 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    q.get(i + 3)?;
    Some(Question {
        name: labels.join("."),
        qtype,
        end: i + 4,
    })
}

/// A response to `q` carrying its first question and `ips` as A records.
pub(crate) fn response(q: &[u8], qend: usize, rcode: u8, ips: &[Ipv4Addr]) -> Vec<u8> {
    let mut r = Vec::with_capacity(qend + ips.len() * 16);
    r.extend_from_slice(&q[..2]);
    r.push(0x80 | (q[2] & 0x79) | (0x04 * u8::from(rcode == 0 && !ips.is_empty())));
    r.push(0x80 | (rcode & 0x0f));
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[12..qend]);
    for ip in ips {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 2, 0x58, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn parses_and_answers() {
        let q = query("Web.Example", 1);
        let p = parse_query(&q).unwrap();
        assert_eq!(
            (p.name.as_str(), p.qtype, p.end),
            ("web.example", 1, q.len())
        );
        let r = response(&q, p.end, 0, &[Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 2]);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_query(&[0; 5]).is_none());
        let mut q = query("a", 1);
        q.truncate(q.len() - 2);
        assert!(parse_query(&q).is_none());
        let mut resp = query("a", 1);
        resp[2] |= 0x80;
        assert!(parse_query(&resp).is_none());
    }
}

//! The embedded DNS server of user-defined networks: one UDP socket per container, bound
//! to 127.0.0.11:53 inside the container's network namespace (opened from a short-lived
//! thread that enters the namespace, `berth_sys::netns`), served by tokio in the daemon.
//! It answers A and AAAA queries for names the engine knows (containers and aliases on the
//! container's networks) and forwards everything else to the upstream resolvers from the
//! host netns.
//!
//! A container is a stranger too: at most [`MAX_INFLIGHT`] queries of one container are
//! answered at once (a query past it is dropped; resolvers retry), at most
//! [`MAX_TCP_CONNS`] TCP connections are open (one more is closed at once), and a TCP
//! connection that does not deliver a whole query within [`TCP_IDLE`] is closed.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::NetError;

/// Looks a (lower-case, dot-less) name up; `None` when the name is not ours.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Vec<IpAddr>> + Send + Sync>;

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
    let inflight = Arc::new(Semaphore::new(MAX_INFLIGHT));
    let limits = TcpLimits {
        conns: Arc::new(Semaphore::new(MAX_TCP_CONNS)),
        idle: TCP_IDLE,
    };
    let tcp = tokio::spawn(serve_tcp(
        tcp,
        lookup.clone(),
        upstreams.clone(),
        limits,
        inflight.clone(),
    ));
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(permit) = inflight.clone().try_acquire_owned() else {
                tracing::debug!("embedded DNS: too many queries in flight, one dropped");
                continue;
            };
            let q = buf.get(..n).unwrap_or_default().to_vec();
            let (sock, lookup, upstreams) = (sock.clone(), lookup.clone(), upstreams.clone());
            tokio::spawn(async move {
                let _permit = permit;
                if let Some(resp) = answer(&q, &lookup, &upstreams).await {
                    let _ = sock.send_to(&resp, from).await;
                }
            });
        }
    });
    Ok(DnsServer { task, tcp })
}

/// Queries of one container answered at once, over UDP and TCP together: each may hold a
/// socket towards an upstream resolver for up to 3 s.
pub const MAX_INFLIGHT: usize = 64;

/// TCP connections one container may hold open to its DNS server.
pub const MAX_TCP_CONNS: usize = 16;

/// How long a TCP connection may take to deliver each whole query (length and message),
/// the first included, and to take its answer.
pub const TCP_IDLE: Duration = Duration::from_secs(10);

/// What bounds the TCP side (values apart so that tests can shrink them).
struct TcpLimits {
    conns: Arc<Semaphore>,
    idle: Duration,
}

/// DNS over TCP (RFC 7766): length-prefixed queries, one answer each.
async fn serve_tcp(
    l: tokio::net::TcpListener,
    lookup: Lookup,
    upstreams: Vec<SocketAddr>,
    limits: TcpLimits,
    inflight: Arc<Semaphore>,
) {
    loop {
        let Ok((conn, _)) = l.accept().await else {
            continue;
        };
        let Ok(slot) = limits.conns.clone().try_acquire_owned() else {
            tracing::debug!("embedded DNS: too many TCP connections, one closed");
            continue;
        };
        let (lookup, upstreams, inflight) = (lookup.clone(), upstreams.clone(), inflight.clone());
        let idle = limits.idle;
        tokio::spawn(async move {
            let _slot = slot;
            serve_tcp_conn(conn, &lookup, &upstreams, idle, &inflight).await;
        });
    }
}

/// Answers one TCP connection's queries until it ends, errs, idles past `idle` or sends
/// something that is not a query.
async fn serve_tcp_conn(
    mut conn: tokio::net::TcpStream,
    lookup: &Lookup,
    upstreams: &[SocketAddr],
    idle: Duration,
    inflight: &Semaphore,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let read = async {
            let len = conn.read_u16().await?;
            let mut q = vec![0u8; usize::from(len)];
            conn.read_exact(&mut q).await?;
            std::io::Result::Ok(q)
        };
        let Ok(Ok(q)) = tokio::time::timeout(idle, read).await else {
            return;
        };
        let Ok(_permit) = inflight.acquire().await else {
            return;
        };
        let Some(resp) = answer(&q, lookup, upstreams).await else {
            return;
        };
        let Ok(n) = u16::try_from(resp.len()) else {
            return;
        };
        let write = async {
            conn.write_u16(n).await?;
            conn.write_all(&resp).await
        };
        if !matches!(tokio::time::timeout(idle, write).await, Ok(Ok(()))) {
            return;
        }
    }
}

async fn answer(q: &[u8], lookup: &Lookup, upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let parsed = parse_query(q)?;
    if let Some(ips) = lookup(&parsed.name) {
        // A (1), AAAA (28), ANY (255): the addresses of that family; others none.
        let ips: Vec<IpAddr> = ips
            .into_iter()
            .filter(|ip| match parsed.qtype {
                1 => ip.is_ipv4(),
                28 => ip.is_ipv6(),
                255 => true,
                _ => false,
            })
            .collect();
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

/// A response to `q` carrying its first question and `ips` as A and AAAA records.
pub(crate) fn response(q: &[u8], qend: usize, rcode: u8, ips: &[IpAddr]) -> Vec<u8> {
    let mut r = Vec::with_capacity(qend + ips.len() * 16);
    r.extend_from_slice(&q[..2]);
    r.push(0x80 | (q[2] & 0x79) | (0x04 * u8::from(rcode == 0 && !ips.is_empty())));
    r.push(0x80 | (rcode & 0x0f));
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[12..qend]);
    for ip in ips {
        match ip {
            IpAddr::V4(a) => {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 2, 0x58, 0, 4]);
                r.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 28, 0, 1, 0, 0, 2, 0x58, 0, 16]);
                r.extend_from_slice(&a.octets());
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

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
        let r = response(
            &q,
            p.end,
            0,
            &[IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2))],
        );
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 2]);
    }

    async fn dns_tcp(conns: usize, idle: Duration) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let lookup: Lookup = Arc::new(|name: &str| {
            (name == "web").then(|| vec![IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2))])
        });
        let limits = TcpLimits {
            conns: Arc::new(Semaphore::new(conns)),
            idle,
        };
        let inflight = Arc::new(Semaphore::new(4));
        tokio::spawn(serve_tcp(l, lookup, Vec::new(), limits, inflight));
        addr
    }

    /// Whether the server closes `c` within a generous bound.
    async fn closed(c: &mut TcpStream) -> bool {
        let mut b = [0u8; 64];
        loop {
            match tokio::time::timeout(Duration::from_secs(20), c.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Asks `c` for `web`'s address; the answer's last 4 bytes, or why not.
    async fn ask(c: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let q = query("web", 1);
        c.write_u16(q.len() as u16).await?;
        c.write_all(&q).await?;
        let mut r = vec![0u8; usize::from(c.read_u16().await?)];
        c.read_exact(&mut r).await?;
        Ok(r.split_off(r.len().saturating_sub(4)))
    }

    #[tokio::test]
    async fn tcp_closes_a_connection_stuck_inside_a_query() {
        let addr = dns_tcp(4, Duration::from_millis(200)).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut half = TcpStream::connect(addr).await.unwrap();
        // A length of 40, then 2 of the 40 bytes.
        half.write_all(&[0, 40, 0x12, 0x34]).await.unwrap();
        let mut good = TcpStream::connect(addr).await.unwrap();
        assert_eq!(ask(&mut good).await.unwrap(), [10, 0, 0, 2]);
        assert!(
            closed(&mut silent).await,
            "a connection that sends nothing is closed"
        );
        assert!(
            closed(&mut half).await,
            "a connection stuck inside a query is closed"
        );
    }

    #[tokio::test]
    async fn tcp_connections_past_the_cap_are_closed() {
        let addr = dns_tcp(2, Duration::from_secs(60)).await;
        let mut a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        ask(&mut a).await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(
            closed(&mut c).await,
            "a third connection past a cap of 2 is closed"
        );
        drop(a);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while ask(&mut TcpStream::connect(addr).await.unwrap())
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the closed connection's slot never came back"
            );
            tokio::task::yield_now().await;
        }
    }

    /// A names the IPv4 address, AAAA the IPv6 one (it was always empty), ANY both.
    #[tokio::test]
    async fn aaaa_answers_the_ipv6_addresses() {
        let v6: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
        let lookup: Lookup = Arc::new(move |_: &str| {
            Some(vec![
                IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)),
                IpAddr::V6(v6),
            ])
        });
        let count = |r: &[u8]| u16::from_be_bytes([r[6], r[7]]);
        let r = answer(&query("web", 28), &lookup, &[]).await.unwrap();
        assert_eq!(count(&r), 1);
        assert_eq!(&r[r.len() - 16..], &v6.octets());
        assert_eq!(&r[r.len() - 26..r.len() - 24], &[0, 28]);
        let r = answer(&query("web", 1), &lookup, &[]).await.unwrap();
        assert_eq!((count(&r), &r[r.len() - 4..]), (1, &[10, 0, 0, 2][..]));
        let r = answer(&query("web", 255), &lookup, &[]).await.unwrap();
        assert_eq!(count(&r), 2);
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

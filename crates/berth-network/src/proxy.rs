//! The userland port proxy (dockerd's `docker-proxy`, in-process): a published port is a
//! listening socket on the host that relays each TCP connection (or UDP flow) to the
//! container's address. Binding the socket is what reserves the host port, so a taken
//! port fails the start with the kernel's answer, and the port answers on every host
//! address, loopback included, and from other containers (hairpin) without NAT rules.
//!
//! TCP bytes never enter user space: each direction splices socket -> pipe -> socket
//! ([`berth_sys::splice`]), as docker-proxy's Go `io.Copy` does.
//!
//! Whoever reaches a published port is a stranger, so every port has a budget: at most
//! [`MAX_TCP_CONNS_PER_PORT`] relayed connections (and [`MAX_TCP_CONNS`] over all ports),
//! at most [`MAX_UDP_FLOWS_PER_PORT`] UDP flows, and a connection's pipes exist only once
//! bytes flow (docker-proxy has no cap: a flood of connections to one port could take all
//! of berthd's descriptors, and with them the API and every other port).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth_sys::splice::Pipe;
use nix::sys::socket::{
    bind, listen, setsockopt, shutdown, socket, sockopt, AddressFamily, Backlog, Shutdown,
    SockFlag, SockType, SockaddrStorage,
};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::NetError;

/// A bound, serving port; dropping it closes the port.
#[derive(Debug)]
pub struct Proxy {
    pub host: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn in_use(proto: &str, host: SocketAddr, e: std::io::Error) -> NetError {
    NetError::Conflict(format!(
        "driver failed programming external connectivity on endpoint: Error starting userland proxy: listen {proto} {host}: bind: {}",
        if e.kind() == std::io::ErrorKind::AddrInUse {
            "address already in use".to_string()
        } else {
            e.to_string()
        }
    ))
}

/// A non-blocking socket of type `ty` bound to `host` (listening, for a stream). An IPv6
/// one answers IPv6 only (`IPV6_V6ONLY`, as docker-proxy's Go listeners), so that
/// `0.0.0.0:P` and `[::]:P` are two bindings of one port, as dockerd publishes a port
/// without a host address.
fn bound_socket(host: SocketAddr, ty: SockType) -> io::Result<OwnedFd> {
    let family = if host.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(
        family,
        ty,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    if host.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    if ty == SockType::Stream {
        // As std's TcpListener: a port whose last connections linger in TIME_WAIT binds.
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(host))?;
    if ty == SockType::Stream {
        listen(&fd, Backlog::MAXCONN)?;
    }
    Ok(fd)
}

/// Whether IPv6 sockets can be bound here (`[::1]` answers): not on a host booted with
/// `ipv6.disable=1` nor where `disable_ipv6` took loopback's `::1` away. dockerd's
/// `netutils.IsV6Listenable`: without it, a port published without a host address binds
/// IPv4 only.
pub(crate) fn ipv6_listenable() -> bool {
    bound_socket(
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
        SockType::Stream,
    )
    .is_ok()
}

/// Binds `host` (port 0: any free port) and relays to `target`. Must run inside tokio.
pub fn start(proto: &str, host: SocketAddr, target: SocketAddr) -> Result<Proxy, NetError> {
    match proto {
        "tcp" => {
            let fd = bound_socket(host, SockType::Stream).map_err(|e| in_use(proto, host, e))?;
            let std = std::net::TcpListener::from(fd);
            let l = TcpListener::from_std(std).map_err(NetError::io("cannot register proxy"))?;
            let bound = l.local_addr().map_err(NetError::io("proxy address"))?;
            let per_port = Arc::new(Semaphore::new(max_tcp_conns_per_port()));
            let task = tokio::spawn(serve_tcp(l, target, per_port, all_tcp_conns()));
            Ok(Proxy { host: bound, task })
        }
        "udp" => {
            let fd = bound_socket(host, SockType::Datagram).map_err(|e| in_use(proto, host, e))?;
            let std = std::net::UdpSocket::from(fd);
            let s = UdpSocket::from_std(std).map_err(NetError::io("cannot register proxy"))?;
            let bound = s.local_addr().map_err(NetError::io("proxy address"))?;
            let task = tokio::spawn(serve_udp(
                Arc::new(s),
                target,
                MAX_UDP_FLOWS_PER_PORT,
                Flows::default(),
            ));
            Ok(Proxy { host: bound, task })
        }
        other => Err(NetError::InvalidArgument(format!(
            "invalid proto '{other}'"
        ))),
    }
}

/// Connections one published TCP port relays at once. One more is accepted and closed at
/// once, rather than left in the listen backlog: the client learns right away, the backlog
/// never fills with connections nobody will serve, and a slot that frees goes to whoever
/// connects next. An idle connection costs 2 descriptors, a busy one 6 (two sockets, two
/// pipes), so a flooded port holds at most ~6k of berthd's descriptors.
pub const MAX_TCP_CONNS_PER_PORT: usize = 1024;

/// Connections all published TCP ports relay at once (at most ~12k descriptors), so that
/// floods on several ports still leave berthd descriptors for the API and containers.
pub const MAX_TCP_CONNS: usize = 2048;

/// UDP flows (client addresses, each with its own socket towards the container) one
/// published port keeps; a new client past this evicts the flow idle the longest.
pub const MAX_UDP_FLOWS_PER_PORT: usize = 256;

/// A UDP flow with no answer from the container for this long is dropped (docker-proxy's
/// 90 s).
const UDP_FLOW_IDLE: Duration = Duration::from_secs(90);

/// Test-only override of [`MAX_TCP_CONNS_PER_PORT`] (a positive integer), read once, so
/// that an end-to-end flood needs tens of connections rather than a thousand.
pub const MAX_TCP_CONNS_ENV: &str = "BERTHD_TEST_PROXY_MAX_CONNS";

fn max_tcp_conns_per_port() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var(MAX_TCP_CONNS_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(MAX_TCP_CONNS_PER_PORT)
    })
}

/// The budget every published TCP port draws from.
fn all_tcp_conns() -> Arc<Semaphore> {
    static ALL: OnceLock<Arc<Semaphore>> = OnceLock::new();
    ALL.get_or_init(|| Arc::new(Semaphore::new(MAX_TCP_CONNS)))
        .clone()
}

/// Bytes one pipe holds, and so moves per splice: what Go's `io.Copy` (docker-proxy) uses.
/// The kernel allocates a pipe's pages as bytes enter it, not at this size.
const PIPE_SIZE: usize = 1 << 20;

/// Accepts connections while `per_port` and `all` have room; one past either is closed.
async fn serve_tcp(
    l: TcpListener,
    target: SocketAddr,
    per_port: Arc<Semaphore>,
    all: Arc<Semaphore>,
) {
    let mut refusing = false;
    loop {
        let (client, peer) = match l.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permits = (
            per_port.clone().try_acquire_owned(),
            all.clone().try_acquire_owned(),
        );
        let (Ok(port_slot), Ok(slot)) = permits else {
            if !refusing {
                tracing::warn!(%target, %peer, "port proxy full: closing new connections until one ends");
            }
            refusing = true;
            drop(client);
            continue;
        };
        refusing = false;
        tokio::spawn(async move {
            let _slots = (port_slot, slot);
            // A container that does not answer the connect keeps it pending for minutes
            // (SYN retries); a client that leaves meanwhile gives its slot back at once.
            let up = tokio::select! {
                up = TcpStream::connect(target) => up,
                () = gone(&client) => return,
            };
            match up {
                Ok(up) => {
                    if let Err(e) = relay(&client, &up).await {
                        tracing::debug!(%target, error = %e, "proxy connection ended");
                    }
                }
                Err(e) => tracing::debug!(%target, error = %e, "proxy cannot reach the container"),
            }
        });
    }
}

/// Resolves when `client` has closed (or reset) before sending anything; never once it
/// has sent bytes (they wait for the relay).
async fn gone(client: &TcpStream) {
    match client.peek(&mut [0u8; 1]).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// Relays one connection both ways, zero-copy through a pipe per direction, until both
/// directions have reached end of stream; the first error in either direction ends both
/// (the caller then drops, so closes, both sockets). Both sockets send at once (no Nagle,
/// as docker-proxy's Go sockets): a request the client writes in pieces would otherwise
/// wait for the container's delayed ACK (40 ms) at the proxy, a stall going direct has not.
async fn relay(client: &TcpStream, up: &TcpStream) -> io::Result<()> {
    client.set_nodelay(true)?;
    up.set_nodelay(true)?;
    tokio::try_join!(pump(client, up), pump(up, client))?;
    Ok(())
}

/// Moves `from`'s bytes to `to` until `from`'s end of stream, then shuts down `to`'s
/// write side (a half-close: the other direction keeps going). The pipe is made when
/// `from` first has something (an idle connection holds no pipe) and drained before each
/// read, so a would-block on the read means `from` has nothing, not a full pipe.
async fn pump(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    // `peek` waits for a byte or the end of stream (`readable` alone may wake for neither).
    from.peek(&mut [0u8; 1]).await?;
    let pipe = Pipe::new(PIPE_SIZE)?;
    loop {
        let n = from
            .async_io(Interest::READABLE, || pipe.fill(from, pipe.capacity()))
            .await?;
        if n == 0 {
            return shutdown(to.as_raw_fd(), Shutdown::Write).map_err(io::Error::from);
        }
        drain(&pipe, to, n).await?;
    }
}

/// Writes the `n` bytes waiting in the pipe to `to`.
async fn drain(pipe: &Pipe, to: &TcpStream, mut n: usize) -> io::Result<()> {
    while n > 0 {
        let sent = to
            .async_io(Interest::WRITABLE, || pipe.drain(to, n))
            .await?;
        if sent == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        n -= sent;
    }
    Ok(())
}

/// One UDP flow: its socket towards the container and the task relaying the answers.
#[derive(Debug)]
struct Flow {
    up: Arc<UdpSocket>,
    task: JoinHandle<()>,
    /// When the client last sent.
    last: Instant,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port's UDP flows by client address.
type Flows = Arc<Mutex<HashMap<SocketAddr, Flow>>>;

fn lock(flows: &Flows) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Flow>> {
    flows.lock().unwrap_or_else(|e| e.into_inner())
}

/// One upstream socket per client address, at most `max_flows` of them (a new client
/// evicts the flow whose client sent least recently); flows idle for 90 s are dropped.
async fn serve_udp(s: Arc<UdpSocket>, target: SocketAddr, max_flows: usize, flows: Flows) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = s.recv_from(&mut buf).await else {
            continue;
        };
        let known = {
            let mut map = lock(&flows);
            map.get_mut(&from).map(|f| {
                f.last = Instant::now();
                f.up.clone()
            })
        };
        let up = match known {
            Some(up) => up,
            None => {
                let Some(up) = open_flow(target).await else {
                    continue;
                };
                let task = tokio::spawn(answers(up.clone(), s.clone(), from, flows.clone()));
                let flow = Flow {
                    up: up.clone(),
                    task,
                    last: Instant::now(),
                };
                let mut map = lock(&flows);
                while map.len() >= max_flows.max(1) {
                    let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a)
                    else {
                        break;
                    };
                    tracing::debug!(%target, client = %oldest, "port proxy: UDP flows full, dropping the oldest");
                    map.remove(&oldest);
                }
                map.insert(from, flow);
                up
            }
        };
        let _ = up.send(buf.get(..n).unwrap_or_default()).await;
    }
}

/// A socket connected to `target`, for one client's flow.
async fn open_flow(target: SocketAddr) -> Option<Arc<UdpSocket>> {
    let bind = match target.ip() {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let u = UdpSocket::bind(bind).await.ok()?;
    u.connect(target).await.ok()?;
    Some(Arc::new(u))
}

/// Relays the container's datagrams on `up` back to `client` until the flow has been idle
/// for [`UDP_FLOW_IDLE`], then removes it (unless it was replaced meanwhile). A buffer
/// exists only while a datagram is read, so an idle flow costs a socket and no more.
async fn answers(up: Arc<UdpSocket>, s: Arc<UdpSocket>, client: SocketAddr, flows: Flows) {
    while let Ok(Ok(())) = tokio::time::timeout(UDP_FLOW_IDLE, up.readable()).await {
        let mut b = vec![0u8; 65536];
        match up.try_recv(&mut b) {
            Ok(n) => {
                let _ = s.send_to(b.get(..n).unwrap_or_default(), client).await;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
    }
    let mut map = lock(&flows);
    if map.get(&client).is_some_and(|f| Arc::ptr_eq(&f.up, &up)) {
        // Dropping the flow aborts this task, which ends here anyway.
        map.remove(&client);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Generous: a bound on waiting for what must happen, never a timing assertion.
    const PATIENCE: Duration = Duration::from_secs(20);

    /// An echo server on loopback that keeps every connection it accepts.
    async fn tcp_echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = c.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn echoes(c: &mut TcpStream) -> bool {
        let mut b = [0u8; 4];
        c.write_all(b"ping").await.is_ok()
            && matches!(
                tokio::time::timeout(PATIENCE, c.read_exact(&mut b)).await,
                Ok(Ok(_))
            )
            && &b == b"ping"
    }

    #[tokio::test]
    async fn tcp_connections_past_the_cap_are_closed_and_slots_come_back() {
        let target = tcp_echo().await;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap();
        let per_port = Arc::new(Semaphore::new(2));
        let all = Arc::new(Semaphore::new(100));
        let task = tokio::spawn(serve_tcp(l, target, per_port.clone(), all.clone()));

        let mut a = TcpStream::connect(port).await.unwrap();
        let mut b = TcpStream::connect(port).await.unwrap();
        assert!(echoes(&mut a).await && echoes(&mut b).await);
        let mut c = TcpStream::connect(port).await.unwrap();
        let mut buf = [0u8; 1];
        let third = tokio::time::timeout(PATIENCE, c.read(&mut buf)).await;
        assert!(
            matches!(third, Ok(Ok(0)) | Ok(Err(_))),
            "a third connection past a cap of 2 is closed: {third:?}"
        );
        assert_eq!(all.available_permits(), 98);

        drop(a);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut d = TcpStream::connect(port).await.unwrap();
            if echoes(&mut d).await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the closed connection's slot never came back"
            );
            tokio::task::yield_now().await;
        }
        assert!(echoes(&mut b).await);
        task.abort();
    }

    #[tokio::test]
    async fn a_client_that_leaves_while_the_container_does_not_answer_frees_its_slot() {
        // A listener that never accepts, its backlog full: connects to it stay pending.
        let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = std.local_addr().unwrap();
        let sock = fill_backlog(&std).await;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap();
        let per_port = Arc::new(Semaphore::new(1));
        let task = tokio::spawn(serve_tcp(
            l,
            target,
            per_port.clone(),
            Arc::new(Semaphore::new(10)),
        ));
        let c = TcpStream::connect(port).await.unwrap();
        let deadline = Instant::now() + PATIENCE;
        while per_port.available_permits() != 0 {
            assert!(
                Instant::now() < deadline,
                "the connection never took its slot"
            );
            tokio::task::yield_now().await;
        }
        drop(c);
        while per_port.available_permits() != 1 {
            assert!(
                Instant::now() < deadline,
                "the slot of a client that left never came back"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(sock);
        task.abort();
    }

    /// Fills `l`'s accept queue (without accepting) until a connect to it stays pending;
    /// returns the connections that filled it.
    async fn fill_backlog(l: &std::net::TcpListener) -> Vec<TcpStream> {
        let target = l.local_addr().unwrap();
        let mut held = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(target)).await
            {
                Ok(Ok(c)) => held.push(c),
                _ => return held,
            }
        }
    }

    #[tokio::test]
    async fn udp_flows_past_the_cap_evict_the_oldest() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let mut b = [0u8; 64];
            while let Ok((n, from)) = echo.recv_from(&mut b).await {
                let _ = echo.send_to(&b[..n], from).await;
            }
        });
        let s = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let port = s.local_addr().unwrap();
        let flows = Flows::default();
        let task = tokio::spawn(serve_udp(s, target, 2, flows.clone()));

        let mut clients = Vec::new();
        for i in 0..3u8 {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            c.connect(port).await.unwrap();
            c.send(&[i]).await.unwrap();
            let mut b = [0u8; 1];
            let n = tokio::time::timeout(PATIENCE, c.recv(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&b[..n], &[i]);
            clients.push(c.local_addr().unwrap());
        }
        let mut kept: Vec<SocketAddr> = lock(&flows).keys().copied().collect();
        kept.sort();
        let mut newest = clients[1..].to_vec();
        newest.sort();
        assert_eq!(kept, newest, "two flows kept, the first client's evicted");
        task.abort();
    }
}

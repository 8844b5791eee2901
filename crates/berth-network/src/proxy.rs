//! The userland port proxy (dockerd's `docker-proxy`, in-process): a published port is a
//! listening socket on the host that relays each TCP connection (or UDP flow) to the
//! container's address. Binding the socket is what reserves the host port, so a taken
//! port fails the start with the kernel's answer, and the port answers on every host
//! address, loopback included, and from other containers (hairpin) without NAT rules.
//!
//! TCP bytes never enter user space: each direction splices socket -> pipe -> socket
//! ([`berth_sys::splice`]), as docker-proxy's Go `io.Copy` does.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use berth_sys::splice::Pipe;
use nix::sys::socket::{shutdown, Shutdown};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
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

/// Binds `host` (port 0: any free port) and relays to `target`. Must run inside tokio.
pub fn start(proto: &str, host: SocketAddr, target: SocketAddr) -> Result<Proxy, NetError> {
    match proto {
        "tcp" => {
            let std = std::net::TcpListener::bind(host).map_err(|e| in_use(proto, host, e))?;
            std.set_nonblocking(true)
                .map_err(NetError::io("cannot set up the proxy socket"))?;
            let l = TcpListener::from_std(std).map_err(NetError::io("cannot register proxy"))?;
            let bound = l.local_addr().map_err(NetError::io("proxy address"))?;
            let task = tokio::spawn(serve_tcp(l, target));
            Ok(Proxy { host: bound, task })
        }
        "udp" => {
            let std = std::net::UdpSocket::bind(host).map_err(|e| in_use(proto, host, e))?;
            std.set_nonblocking(true)
                .map_err(NetError::io("cannot set up the proxy socket"))?;
            let s = UdpSocket::from_std(std).map_err(NetError::io("cannot register proxy"))?;
            let bound = s.local_addr().map_err(NetError::io("proxy address"))?;
            let task = tokio::spawn(serve_udp(Arc::new(s), target));
            Ok(Proxy { host: bound, task })
        }
        other => Err(NetError::InvalidArgument(format!(
            "invalid proto '{other}'"
        ))),
    }
}

/// Bytes one pipe holds, and so moves per splice: what Go's `io.Copy` (docker-proxy) uses.
const PIPE_SIZE: usize = 1 << 20;

async fn serve_tcp(l: TcpListener, target: SocketAddr) {
    loop {
        let (client, _) = match l.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            match TcpStream::connect(target).await {
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

/// Relays one connection both ways, zero-copy through a pipe per direction, until both
/// directions have reached end of stream; the first error in either direction ends both
/// (the caller then drops, so closes, both sockets). Both sockets send at once (no Nagle,
/// as docker-proxy's Go sockets): a request the client writes in pieces would otherwise
/// wait for the container's delayed ACK (40 ms) at the proxy, a stall going direct has not.
async fn relay(client: &TcpStream, up: &TcpStream) -> io::Result<()> {
    client.set_nodelay(true)?;
    up.set_nodelay(true)?;
    let (out, back) = (Pipe::new(PIPE_SIZE)?, Pipe::new(PIPE_SIZE)?);
    tokio::try_join!(pump(client, up, &out), pump(up, client, &back))?;
    Ok(())
}

/// Moves `from`'s bytes to `to` until `from`'s end of stream, then shuts down `to`'s
/// write side (a half-close: the other direction keeps going). The pipe is drained before
/// each read, so a would-block on the read means `from` has nothing, not a full pipe.
async fn pump(from: &TcpStream, to: &TcpStream, pipe: &Pipe) -> io::Result<()> {
    loop {
        let n = from
            .async_io(Interest::READABLE, || pipe.fill(from, pipe.capacity()))
            .await?;
        if n == 0 {
            return shutdown(to.as_raw_fd(), Shutdown::Write).map_err(io::Error::from);
        }
        drain(pipe, to, n).await?;
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

/// One upstream socket per client address; flows idle for 90 s are dropped.
async fn serve_udp(s: Arc<UdpSocket>, target: SocketAddr) {
    let flows: Arc<tokio::sync::Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = s.recv_from(&mut buf).await else {
            continue;
        };
        let up = {
            let mut map = flows.lock().await;
            match map.get(&from) {
                Some(u) => u.clone(),
                None => {
                    let bind: SocketAddr = match target.ip() {
                        IpAddr::V4(_) => "0.0.0.0:0",
                        IpAddr::V6(_) => "[::]:0",
                    }
                    .parse()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                    let Ok(u) = UdpSocket::bind(bind).await else {
                        continue;
                    };
                    if u.connect(target).await.is_err() {
                        continue;
                    }
                    let u = Arc::new(u);
                    map.insert(from, u.clone());
                    let (u2, s2, flows2) = (u.clone(), s.clone(), flows.clone());
                    tokio::spawn(async move {
                        let mut b = vec![0u8; 65536];
                        while let Ok(Ok(n)) =
                            tokio::time::timeout(Duration::from_secs(90), u2.recv(&mut b)).await
                        {
                            let _ = s2.send_to(&b[..n], from).await;
                        }
                        flows2.lock().await.remove(&from);
                    });
                    u
                }
            }
        };
        let _ = up.send(&buf[..n]).await;
    }
}

//! The userland port proxy (dockerd's `docker-proxy`, in-process): a published port is a
//! listening socket on the host that relays each TCP connection (or UDP flow) to the
//! container's address. Binding the socket is what reserves the host port, so a taken
//! port fails the start with the kernel's answer, and the port answers on every host
//! address, loopback included, and from other containers (hairpin) without NAT rules.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

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

/// Bytes moved per read in each direction (tokio's default of 8 KiB halves throughput).
const COPY_BUF: usize = 256 * 1024;

async fn serve_tcp(l: TcpListener, target: SocketAddr) {
    loop {
        let (mut client, _) = match l.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            match TcpStream::connect(target).await {
                Ok(mut up) => {
                    let _ = tokio::io::copy_bidirectional_with_sizes(
                        &mut client,
                        &mut up,
                        COPY_BUF,
                        COPY_BUF,
                    )
                    .await;
                }
                Err(e) => tracing::debug!(%target, error = %e, "proxy cannot reach the container"),
            }
        });
    }
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

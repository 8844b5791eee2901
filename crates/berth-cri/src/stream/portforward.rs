//! `PortForward` over the kubelet's WebSocket port-forward protocol (`v4.channel.k8s.io`):
//! the ports come from the URL's `port` query parameters (else from the request); port `i`
//! has data channel `2i` and error channel `2i+1`, and the first message the server sends
//! on each is the port number, two bytes little-endian. Each port is dialled on
//! 127.0.0.1 inside the pod's network namespace, from a short-lived thread that joined
//! it ([`berth_sys::netns::run_in`], run through `spawn_blocking`); the socket stays in
//! that namespace. The session ends when every port's connection has ended, or the
//! client leaves.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::Engine;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::remote::{send, Writer};

use crate::proto::PortForwardRequest;
use berth_server::websocket as ws;

/// The subprotocols served.
pub(crate) const PROTOCOLS: &[&str] = &["v4.channel.k8s.io"];

/// The most ports one session forwards (two channels each, channel numbers are bytes).
pub(crate) const MAX_PORTS: usize = 127;

/// How long dialling one port inside the pod may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The `port` parameters of a query string, in order (unparsable ones kept as 0, refused
/// later with the others).
pub(crate) fn query_ports(query: &str) -> Vec<i32> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "port")
        .map(|(_, v)| v.parse::<i32>().unwrap_or(0))
        .collect()
}

/// The ports to forward, checked: from the query, else the request; 1 to [`MAX_PORTS`]
/// of them, each in 1..=65535.
pub(crate) fn ports(query: &[i32], request: &[i32]) -> Result<Vec<u16>, String> {
    let ports = if query.is_empty() { request } else { query };
    if ports.is_empty() {
        return Err("at least one port must be given".into());
    }
    if ports.len() > MAX_PORTS {
        return Err(format!(
            "at most {MAX_PORTS} ports may be forwarded at once"
        ));
    }
    ports
        .iter()
        .map(|p| {
            u16::try_from(*p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("invalid port {p}: it must be between 1 and 65535"))
        })
        .collect()
}

/// The infra process of sandbox `id`, whose network namespace the ports are in.
pub(crate) async fn infra_pid(engine: &Engine, id: &str) -> Result<i64, String> {
    let v = engine
        .container_inspect(id)
        .await
        .map_err(|e| e.to_string())?;
    v.pointer("/State/Pid")
        .and_then(Value::as_i64)
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("pod sandbox {id} is not running"))
}

/// Connects to 127.0.0.1:`port` in the network namespace of process `pid`.
pub(crate) async fn dial(pid: i64, port: u16) -> Result<TcpStream, String> {
    let std_stream = tokio::task::spawn_blocking(move || -> Result<std::net::TcpStream, String> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| format!("cannot open the pod's network namespace: {e}"))?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let s = berth_sys::netns::run_in(ns.as_fd(), || {
            std::net::TcpStream::connect_timeout(&addr, DIAL_TIMEOUT)
        })
        .map_err(|e| format!("cannot enter the pod's network namespace: {e}"))?
        .map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(s)
    })
    .await
    .map_err(|e| e.to_string())??;
    TcpStream::from_std(std_stream).map_err(|e| e.to_string())
}

/// Why port `port` of the pod could not be forwarded (the kubelet's words).
pub(crate) fn forward_error(port: u16, sandbox: &str, e: &str) -> String {
    format!("error forwarding port {port} to pod {sandbox}, uid : {e}")
}

/// Serves one port-forward session on an upgraded connection.
pub(crate) async fn serve<C>(engine: Arc<Engine>, req: PortForwardRequest, query: Vec<i32>, conn: C)
where
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut r, w) = tokio::io::split(conn);
    let w = Arc::new(Mutex::new(w));
    let ports = match ports(&query, &req.port) {
        Ok(p) => p,
        Err(e) => {
            let _ = send(&w, 1, e.as_bytes()).await;
            let mut w = w.lock().await;
            let _ = ws::write_close(&mut *w, ws::CLOSE_NORMAL).await;
            return;
        }
    };
    // Each channel opens with its port number.
    for (i, port) in ports.iter().enumerate() {
        let le = port.to_le_bytes();
        for channel in [2 * i, 2 * i + 1] {
            if send(&w, channel as u8, &le).await.is_err() {
                return;
            }
        }
    }
    let pid = infra_pid(&engine, &req.pod_sandbox_id).await;
    let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::new();
    let mut readers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let dialled = match &pid {
            Ok(pid) => dial(*pid, *port).await,
            Err(e) => Err(e.clone()),
        };
        match dialled {
            Ok(s) => {
                let (rd, wr) = s.into_split();
                writers.push(Some(wr));
                readers.push(pump_out(rd, w.clone(), (2 * i) as u8));
            }
            Err(e) => {
                let msg = forward_error(*port, &req.pod_sandbox_id, &e);
                let _ = send(&w, (2 * i + 1) as u8, msg.as_bytes()).await;
                writers.push(None);
            }
        }
    }
    let outputs = futures_util::future::join_all(readers);
    let inputs = async {
        if let Err(e) = client_input(&mut r, &w, &mut writers).await {
            tracing::debug!(error = %e, "CRI port-forward: the client's side ended");
        }
    };
    tokio::select! {
        _ = outputs => {}
        _ = inputs => {}
    }
    let mut w = w.lock().await;
    let _ = ws::write_close(&mut *w, ws::CLOSE_NORMAL).await;
    let _ = w.shutdown().await;
}

/// Copies what the pod's side of one port sends to its data channel.
async fn pump_out<W: AsyncWrite + Unpin>(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    w: Writer<W>,
    channel: u8,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if send(&w, channel, &buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The client's frames: data channels to their port's connection, pings answered.
async fn client_input<R, W>(
    r: &mut R,
    w: &Writer<W>,
    writers: &mut [Option<OwnedWriteHalf>],
) -> Result<(), ws::WsError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = super::remote::ChannelReader::default();
    while let Some(piece) = reader.next(r, w).await? {
        let (c, data) = (piece.channel, piece.data());
        if c % 2 == 0 {
            if let Some(slot) = writers.get_mut(usize::from(c / 2)) {
                if let Some(wr) = slot {
                    if !data.is_empty() && wr.write_all(data).await.is_err() {
                        *slot = None;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_the_query_or_the_request() {
        assert_eq!(query_ports("port=80&port=8080&x=1"), vec![80, 8080]);
        assert_eq!(query_ports("port=abc"), vec![0]);
        assert_eq!(ports(&[80], &[1, 2]), Ok(vec![80]));
        assert_eq!(ports(&[], &[1, 2]), Ok(vec![1, 2]));
        assert!(ports(&[], &[]).is_err());
        for bad in [0, -1, 65536] {
            assert!(ports(&[bad], &[]).is_err(), "{bad}");
        }
        assert!(ports(&vec![80; MAX_PORTS + 1], &[]).is_err());
        assert_eq!(
            ports(&vec![80; MAX_PORTS], &[]).map(|p| p.len()),
            Ok(MAX_PORTS)
        );
    }
}

//! `PortForward` over SPDY/3.1 (client-go's portforward, `portforward.k8s.io`): each
//! forwarded connection is a pair of streams the client opens, `streamType` `error` and
//! `data`, both with the `port` and `requestID` headers (without `requestID`, as older
//! clients send them, the pair is told by stream ids: data is error + 2, as the kubelet
//! reckons). A complete pair is one TCP connection to the port on the pod's loopback,
//! dialled in its network namespace ([`portforward::dial`]); its bytes go both ways until
//! both sides ended, and a failure is written on the error stream. Pairs run
//! concurrently, [`MAX_PAIRS`] at most; one left half-open [`PAIR_WAIT`] is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::portforward;
use super::spdy::{Session, Stream, CHUNK, PROTOCOL_ERROR, REFUSED_STREAM};
use crate::proto::PortForwardRequest;

/// The protocols served.
pub(crate) const PROTOCOLS: &[&str] = &["portforward.k8s.io"];

/// Connections forwarded at once in one session.
pub(crate) const MAX_PAIRS: usize = 128;
/// How long the second stream of a pair may take to come.
const PAIR_WAIT: Duration = Duration::from_secs(30);

/// Which pair a stream belongs to: its `requestID`, else one reckoned from its id.
fn request_id(stream: &Stream, data: bool) -> String {
    match stream.header("requestid") {
        Some(id) => id.to_string(),
        None if data => stream.id.saturating_sub(2).to_string(),
        None => stream.id.to_string(),
    }
}

/// Serves one port-forward session on a connection upgraded to SPDY/3.1.
pub(crate) async fn serve<C>(engine: Arc<Engine>, req: PortForwardRequest, conn: C)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let mut session = match Session::start(conn, 2 * MAX_PAIRS + 2) {
        Ok(s) => s,
        Err(e) => return tracing::warn!(error = %e, "CRI SPDY port-forward"),
    };
    let pid = portforward::infra_pid(&engine, &req.pod_sandbox_id).await;
    // First streams waiting for their other half, by request id.
    let mut waiting: HashMap<String, (Instant, Stream)> = HashMap::new();
    let mut pairs = JoinSet::new();
    loop {
        let oldest = waiting.values().map(|(t, _)| *t).min();
        tokio::select! {
            next = session.streams.recv() => {
                let Some(stream) = next else { break };
                let data = match stream.header("streamtype") {
                    Some("data") => true,
                    Some("error") => false,
                    other => {
                        tracing::debug!(stream_type = ?other, "CRI SPDY port-forward: unexpected stream type");
                        let _ = stream.out.reset(PROTOCOL_ERROR).await;
                        continue;
                    }
                };
                let id = request_id(&stream, data);
                let Some((since, first)) = waiting.remove(&id) else {
                    if waiting.len() >= MAX_PAIRS {
                        let _ = stream.out.reset(REFUSED_STREAM).await;
                    } else {
                        waiting.insert(id, (Instant::now(), stream));
                    }
                    continue;
                };
                let first_is_data = first.header("streamtype") == Some("data");
                if first_is_data == data {
                    // A second stream of one kind for one request.
                    let _ = stream.out.reset(PROTOCOL_ERROR).await;
                    waiting.insert(id, (since, first));
                    continue;
                }
                let (error, data) = if data { (first, stream) } else { (stream, first) };
                if pairs.len() >= MAX_PAIRS {
                    let _ = error.out.write(format!("more than {MAX_PAIRS} connections forwarded at once").as_bytes()).await;
                    let _ = error.out.close().await;
                    let _ = data.out.reset(REFUSED_STREAM).await;
                    continue;
                }
                pairs.spawn(forward(pid.clone(), req.pod_sandbox_id.clone(), error, data));
            }
            Some(_) = pairs.join_next(), if !pairs.is_empty() => {}
            _ = tokio::time::sleep_until(oldest.unwrap_or_else(Instant::now) + PAIR_WAIT), if oldest.is_some() => {
                let now = Instant::now();
                let expired: Vec<String> = waiting
                    .iter()
                    .filter(|(_, (t, _))| *t + PAIR_WAIT <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in expired {
                    if let Some((_, s)) = waiting.remove(&k) {
                        if s.header("streamtype") == Some("error") {
                            let _ = s.out.write(b"timed out waiting for the data stream").await;
                            let _ = s.out.close().await;
                        } else {
                            let _ = s.out.reset(REFUSED_STREAM).await;
                        }
                    }
                }
            }
        }
    }
    // The client left: what it forwarded ends with it.
    pairs.shutdown().await;
    drop(waiting);
    session.finish().await;
}

/// Forwards one connection: the data stream to and from the pod's port.
async fn forward(pid: Result<i64, String>, sandbox: String, error: Stream, mut data: Stream) {
    let port = data
        .header("port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p > 0);
    let dialled = match (port, pid) {
        (None, _) => Err(format!(
            "invalid port {:?}: it must be between 1 and 65535",
            data.header("port").unwrap_or("")
        )),
        (Some(port), Ok(pid)) => portforward::dial(pid, port).await,
        (Some(_), Err(e)) => Err(e),
    };
    match dialled {
        Err(e) => {
            let msg = portforward::forward_error(port.unwrap_or(0), &sandbox, &e);
            let _ = error.out.write(msg.as_bytes()).await;
        }
        Ok(tcp) => {
            let (mut rd, mut wr) = tcp.into_split();
            let (rx, out) = (&mut data.data, &data.out);
            let up = async {
                while let Some(piece) = rx.recv().await {
                    if wr.write_all(&piece).await.is_err() {
                        break;
                    }
                }
                rx.close();
                let _ = wr.shutdown().await;
            };
            let down = async {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if out.write(buf.get(..n).unwrap_or_default()).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = out.close().await;
            };
            tokio::join!(up, down);
        }
    }
    let _ = data.out.close().await;
    let _ = error.out.close().await;
}

//! `Exec` and `Attach` over SPDY/3.1 (client-go's remotecommand: `v4.channel.k8s.io` down
//! to `channel.k8s.io`): the client opens one stream per role, named by its `streamType`
//! header — `error`, `stdin`, `stdout`, `stderr`, and from v3 with a terminal `resize`
//! (JSON sizes, one a line). The session waits for the streams the request implies (as
//! the kubelet does, [`STREAM_WAIT`] at most), then runs the process through
//! [`remote`]'s exec and attach paths. At the end stdout and stderr are closed and the
//! error stream carries the outcome: from v4 a `metav1.Status` (an exit code as its
//! cause, [`remote::status_json`]), before v4 a failure's message only.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::Engine;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::remote::{self, AttachTarget, ExecTarget, Outcome, Sink, Target};
use super::spdy::{Session, Stream, StreamWriter, PROTOCOL_ERROR};
use crate::proto::{AttachRequest, ExecRequest};

/// The protocols served, best first (the kubelet's list for SPDY).
pub(crate) const PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// How long the client has to open its streams.
const STREAM_WAIT: Duration = Duration::from_secs(30);
/// The most streams a session may hold (five roles; a few more are refused one by one).
const MAX_STREAMS: usize = 8;

/// The version number of a negotiated protocol (1 for `channel.k8s.io`).
pub(crate) fn version(protocol: &str) -> u8 {
    match protocol {
        "v4.channel.k8s.io" => 4,
        "v3.channel.k8s.io" => 3,
        "v2.channel.k8s.io" => 2,
        _ => 1,
    }
}

/// The streams by role.
#[derive(Default)]
struct Streams {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

/// Which streams a request implies besides the error stream.
#[derive(Clone, Copy)]
struct Wanted {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    resize: bool,
}

impl Wanted {
    fn new(stdin: bool, stdout: bool, stderr: bool, tty: bool, version: u8) -> Self {
        Wanted {
            stdin,
            stdout,
            stderr: stderr && !tty,
            resize: tty && version >= 3,
        }
    }

    fn count(self) -> usize {
        1 + [self.stdin, self.stdout, self.stderr, self.resize]
            .iter()
            .filter(|w| **w)
            .count()
    }
}

/// Takes the client's streams as they come until those `want` names are there. A stream
/// of no known role, or a second of one role, is reset.
async fn collect(session: &mut Session, want: Wanted) -> (Streams, Result<(), String>) {
    let mut s = Streams::default();
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + STREAM_WAIT;
    while got < want.count() {
        let stream = match tokio::time::timeout_at(deadline, session.streams.recv()).await {
            Ok(Some(stream)) => stream,
            Ok(None) => return (s, Err("the client left before opening its streams".into())),
            Err(_) => {
                return (
                    s,
                    Err("timed out waiting for client to create streams".into()),
                )
            }
        };
        let slot = match stream.header("streamtype").unwrap_or("") {
            "error" => &mut s.error,
            "stdin" => &mut s.stdin,
            "stdout" => &mut s.stdout,
            "stderr" => &mut s.stderr,
            "resize" => &mut s.resize,
            other => {
                tracing::debug!(
                    stream_type = other,
                    "CRI SPDY stream: unexpected stream type"
                );
                let _ = stream.out.reset(PROTOCOL_ERROR).await;
                continue;
            }
        };
        if slot.is_some() {
            let _ = stream.out.reset(PROTOCOL_ERROR).await;
            continue;
        }
        *slot = Some(stream);
        got += 1;
    }
    (s, Ok(()))
}

/// The process's output onto the stdout and stderr streams.
struct StreamSink<'a> {
    stdout: Option<&'a StreamWriter>,
    stderr: Option<&'a StreamWriter>,
}

impl Sink for StreamSink<'_> {
    fn send<'a>(
        &'a self,
        channel: u8,
        data: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, std::io::Result<()>> {
        let to = if channel == remote::STDERR {
            self.stderr
        } else {
            self.stdout
        };
        Box::pin(async move {
            match to {
                Some(w) => w.write(data).await,
                None => Ok(()),
            }
        })
    }
}

/// A session whose client has opened the streams its request implies.
struct Opened {
    session: Session,
    streams: Streams,
    version: u8,
}

/// Starts the SPDY session on `conn` and collects the streams that stdin, stdout, stderr
/// and tty imply. When they do not all come, the session ends with why, and `None`.
async fn open<C>(
    conn: C,
    protocol: &str,
    (stdin, stdout, stderr, tty): (bool, bool, bool, bool),
) -> Option<Opened>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let version = version(protocol);
    let mut session = start(conn)?;
    let want = Wanted::new(stdin, stdout, stderr, tty, version);
    let (streams, ready) = collect(&mut session, want).await;
    if let Err(e) = ready {
        end(session, streams, Err(e), version).await;
        return None;
    }
    Some(Opened {
        session,
        streams,
        version,
    })
}

/// Runs an exec session on a connection upgraded to SPDY/3.1 with `protocol`.
pub(crate) async fn exec<C>(engine: Arc<Engine>, req: ExecRequest, conn: C, protocol: &str)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let roles = (req.stdin, req.stdout, req.stderr, req.tty);
    let Some(mut o) = open(conn, protocol, roles).await else {
        return;
    };
    let outcome = match remote::start_exec(&engine, &req).await {
        Err(e) => Err(e),
        Ok((exec_id, shim)) => {
            let target = ExecTarget {
                engine: engine.clone(),
                exec_id: exec_id.clone(),
            };
            if let Some(shim) = shim {
                pump(&o.session, &mut o.streams, shim, req.tty, &target).await;
            }
            remote::exec_outcome(&engine, &exec_id).await
        }
    };
    end(o.session, o.streams, outcome, o.version).await;
}

/// Runs an attach session on a connection upgraded to SPDY/3.1 with `protocol`.
pub(crate) async fn attach<C>(engine: Arc<Engine>, req: AttachRequest, conn: C, protocol: &str)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let roles = (req.stdin, req.stdout, req.stderr, req.tty);
    let Some(mut o) = open(conn, protocol, roles).await else {
        return;
    };
    let outcome = match remote::start_attach(&engine, &req).await {
        Err(e) => Err(e),
        Ok((tty, shim)) => {
            let target = AttachTarget {
                engine: engine.clone(),
                id: req.container_id.clone(),
            };
            pump(&o.session, &mut o.streams, shim, tty, &target).await;
            Ok(None)
        }
    };
    end(o.session, o.streams, outcome, o.version).await;
}

fn start<C>(conn: C) -> Option<Session>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    Session::start(conn, MAX_STREAMS)
        .map_err(|e| tracing::warn!(error = %e, "CRI SPDY session"))
        .ok()
}

/// Copies stdin and resizes to the process and its output to the client, until the
/// output ends (the process exited, or the attach ended) or the client leaves.
async fn pump(
    session: &Session,
    s: &mut Streams,
    shim: UnixStream,
    tty: bool,
    target: &dyn Target,
) {
    let (mut sr, mut sw) = shim.into_split();
    let Streams {
        stdin,
        stdout,
        stderr,
        resize,
        ..
    } = s;
    let input = async {
        if let Some(stdin) = stdin {
            while let Some(piece) = stdin.data.recv().await {
                if sw.write_all(&piece).await.is_err() {
                    break;
                }
            }
            // The client ended stdin (or the process stopped reading it).
            stdin.data.close();
            let _ = sw.shutdown().await;
        }
        std::future::pending::<()>().await
    };
    let resizes = async {
        if let Some(resize) = resize {
            let mut buf = Vec::new();
            while let Some(piece) = resize.data.recv().await {
                buf.extend_from_slice(&piece);
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    if let Some((width, height)) = remote::parse_resize(&line) {
                        target.resize(width, height).await;
                    }
                }
                if buf.len() > remote::RESIZE_MAX {
                    buf.clear();
                }
            }
        }
        std::future::pending::<()>().await
    };
    let sink = StreamSink {
        stdout: stdout.as_ref().map(|s| &s.out),
        stderr: stderr.as_ref().map(|s| &s.out),
    };
    let output = async {
        if let Err(e) = remote::output(&mut sr, &sink, tty).await {
            tracing::debug!(error = %e, "CRI SPDY stream: output");
        }
    };
    tokio::select! {
        _ = output => {}
        _ = input => {}
        _ = resizes => {}
        _ = session.ended() => {}
    }
}

/// Closes the output streams, reports `outcome` on the error stream and ends the session.
async fn end(session: Session, s: Streams, outcome: Outcome, v: u8) {
    if let Err(e) = &outcome {
        tracing::debug!(error = %e, "CRI SPDY stream session failed");
    }
    for stream in [&s.stdout, &s.stderr].into_iter().flatten() {
        let _ = stream.out.close().await;
    }
    if let Some(error) = &s.error {
        let body = if v >= 4 {
            Some(remote::status_json(&outcome))
        } else {
            remote::status_text(&outcome).map(String::into_bytes)
        };
        if let Some(body) = body {
            let _ = error.out.write(&body).await;
        }
        let _ = error.out.close().await;
    }
    // client-go waits for our end of stdin before it stops copying into it.
    for stream in [&s.stdin, &s.resize].into_iter().flatten() {
        let _ = stream.out.close().await;
    }
    drop(s);
    session.finish().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_the_kubelet_waits_for() {
        assert_eq!(Wanted::new(false, true, true, false, 4).count(), 3);
        // A terminal has no stderr; its resizes have a stream from v3.
        assert_eq!(Wanted::new(true, true, true, true, 4).count(), 4);
        assert_eq!(Wanted::new(true, true, true, true, 2).count(), 3);
        assert_eq!(version("channel.k8s.io"), 1);
        assert_eq!(version(PROTOCOLS[0]), 4);
    }
}

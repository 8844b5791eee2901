//! `Exec` and `Attach` over the Kubernetes remote-command WebSocket protocol
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`): each binary message starts with a channel
//! byte — 0 stdin, 1 stdout, 2 stderr, 3 the error channel (one JSON `metav1.Status` at
//! the end: `Success`, or `Failure` with reason `NonZeroExitCode` and an `ExitCode` cause),
//! 4 terminal resizes (`{"Width":W,"Height":H}`), and with v5, 255 closing the stream
//! named by the next byte (the client's end of stdin). The process runs through the
//! engine's exec and attach paths, as `docker exec` and `docker attach` do; those paths,
//! the output's split by stream ([`output`] into a [`Sink`]) and the final status are
//! shared with SPDY ([`super::spdy_remote`]).

use std::sync::Arc;

use berth_engine::containers::AttachStreams;
use berth_engine::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Mutex;

use crate::proto::{AttachRequest, ExecRequest};
use berth_server::websocket::{self as ws, WsError};

/// The channels.
pub(crate) const STDIN: u8 = 0;
pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;
pub(crate) const ERROR: u8 = 3;
pub(crate) const RESIZE: u8 = 4;
pub(crate) const CLOSE: u8 = 255;

/// The subprotocols served, best first.
pub(crate) const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The largest resize message kept (a JSON object of two numbers).
pub(crate) const RESIZE_MAX: usize = 4096;

/// What a session ended with: `Ok(None)` for an attach, `Ok(Some(code))` for an exec's exit
/// code, `Err` for why it could not run.
pub(crate) type Outcome = Result<Option<i64>, String>;

/// The failure a session ended with, in words (`None` for success): all the error stream
/// carries before `v4.channel.k8s.io`.
pub(crate) fn status_text(result: &Outcome) -> Option<String> {
    match result {
        Ok(None) | Ok(Some(0)) => None,
        Ok(Some(code)) => Some(format!(
            "command terminated with non-zero exit code: exit status {code}"
        )),
        Err(message) => Some(message.clone()),
    }
}

/// The `metav1.Status` the error channel carries at the end.
pub(crate) fn status_json(result: &Outcome) -> Vec<u8> {
    let message = status_text(result);
    let v = match result {
        Ok(None) | Ok(Some(0)) => json!({"metadata": {}, "status": "Success"}),
        Ok(Some(code)) => json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(message) => json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
        }),
    };
    v.to_string().into_bytes()
}

/// A terminal size from one resize message (`None` when it says nothing usable).
pub(crate) fn parse_resize(msg: &[u8]) -> Option<(u16, u16)> {
    let line = msg
        .split(|b| *b == b'\n')
        .rev()
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))?;
    let v: Value = serde_json::from_slice(line).ok()?;
    let w = u16::try_from(v.get("Width")?.as_u64()?).ok()?;
    let h = u16::try_from(v.get("Height")?.as_u64()?).ok()?;
    Some((w, h))
}

/// What the client's messages do to the process.
pub(crate) trait Target: Send + Sync {
    fn resize(&self, width: u16, height: u16) -> futures_util::future::BoxFuture<'_, ()>;
}

pub(crate) struct ExecTarget {
    pub(crate) engine: Arc<Engine>,
    pub(crate) exec_id: String,
}

impl Target for ExecTarget {
    fn resize(&self, width: u16, height: u16) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.engine.exec_resize(&self.exec_id, height, width).await {
                tracing::debug!(exec_id = %self.exec_id, error = %e, "CRI exec: resize");
            }
        })
    }
}

pub(crate) struct AttachTarget {
    pub(crate) engine: Arc<Engine>,
    pub(crate) id: String,
}

impl Target for AttachTarget {
    fn resize(&self, width: u16, height: u16) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.engine.container_resize(&self.id, height, width).await {
                tracing::debug!(container = %self.id, error = %e, "CRI attach: resize");
            }
        })
    }
}

/// The client's side, shared by the tasks that write to it.
pub(crate) type Writer<W> = Arc<Mutex<W>>;

/// One message on `channel`.
pub(crate) async fn send<W: AsyncWrite + Unpin>(
    w: &Writer<W>,
    channel: u8,
    data: &[u8],
) -> std::io::Result<()> {
    ws::write_frame(&mut *w.lock().await, ws::OP_BINARY, &[&[channel], data]).await
}

/// Where the process's output goes: a message on the channel of its stream.
pub(crate) trait Sink: Send + Sync {
    fn send<'a>(
        &'a self,
        channel: u8,
        data: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, std::io::Result<()>>;
}

impl<W: AsyncWrite + Unpin + Send> Sink for Writer<W> {
    fn send<'a>(
        &'a self,
        channel: u8,
        data: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, std::io::Result<()>> {
        Box::pin(send(self, channel, data))
    }
}

/// Starts `req`'s exec: its id, and the stream to the process when it has one.
pub(crate) async fn start_exec(
    engine: &Engine,
    req: &ExecRequest,
) -> Result<(String, Option<UnixStream>), String> {
    let body = crate::pods::into_map(json!({
        "Cmd": req.cmd,
        "Tty": req.tty,
        "AttachStdin": req.stdin,
        "AttachStdout": req.stdout,
        "AttachStderr": req.stderr && !req.tty,
    }));
    let exec_id = engine
        .exec_create(&req.container_id, &body)
        .await
        .map_err(|e| e.to_string())?;
    let start = engine
        .exec_start(&exec_id, false, Some(req.tty))
        .await
        .map_err(|e| e.to_string())?;
    let stream = start.start.await.map_err(|e| e.to_string())?;
    Ok((exec_id, stream))
}

/// An exec's exit code, once its process ended.
pub(crate) async fn exec_outcome(engine: &Arc<Engine>, exec_id: &str) -> Outcome {
    crate::exec_sync::exit_code(engine, exec_id)
        .await
        .map(|c| Some(i64::from(c)))
        .map_err(|s| s.message().to_string())
}

/// Attaches to `req`'s container: whether it has a terminal, and the stream to it.
pub(crate) async fn start_attach(
    engine: &Engine,
    req: &AttachRequest,
) -> Result<(bool, UnixStream), String> {
    let streams = AttachStreams {
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
    };
    let (tty, pending) = engine
        .container_attach(&req.container_id, streams)
        .await
        .map_err(|e| e.to_string())?;
    let stream = pending.await.map_err(|e| e.to_string())?;
    Ok((tty, stream))
}

/// Copies the process's output to `sink` until it ends: raw bytes on stdout with a
/// terminal, else Docker's multiplexed stream split by channel.
pub(crate) async fn output(
    sr: &mut (impl AsyncRead + Unpin),
    sink: &dyn Sink,
    tty: bool,
) -> std::io::Result<()> {
    if tty {
        raw_output(sr, sink).await
    } else {
        muxed_output(sr, sink).await
    }
}

/// Sends the final status and closes the WebSocket.
async fn finish<W: AsyncWrite + Unpin>(w: &Writer<W>, result: Outcome) {
    let mut w = w.lock().await;
    let _ = ws::write_frame(&mut *w, ws::OP_BINARY, &[&[ERROR], &status_json(&result)]).await;
    let _ = ws::write_close(&mut *w, ws::CLOSE_NORMAL).await;
    let _ = w.shutdown().await;
}

/// Runs an exec session on an upgraded connection.
pub(crate) async fn exec<C>(engine: Arc<Engine>, req: ExecRequest, conn: C, v5: bool)
where
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(conn);
    let w = Arc::new(Mutex::new(w));
    let (exec_id, stream) = match start_exec(&engine, &req).await {
        Ok(s) => s,
        Err(e) => return finish(&w, Err(e)).await,
    };
    let target = ExecTarget {
        engine: engine.clone(),
        exec_id: exec_id.clone(),
    };
    if let Some(stream) = stream {
        pump(r, &w, stream, req.tty, v5, &target).await;
    }
    finish(&w, exec_outcome(&engine, &exec_id).await).await;
}

/// Runs an attach session on an upgraded connection.
pub(crate) async fn attach<C>(engine: Arc<Engine>, req: AttachRequest, conn: C, v5: bool)
where
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(conn);
    let w = Arc::new(Mutex::new(w));
    let (tty, stream) = match start_attach(&engine, &req).await {
        Ok(s) => s,
        Err(e) => return finish(&w, Err(e)).await,
    };
    let target = AttachTarget {
        engine: engine.clone(),
        id: req.container_id.clone(),
    };
    pump(r, &w, stream, tty, v5, &target).await;
    finish(&w, Ok(None)).await;
}

/// Copies the client's stdin and resizes to the process, and its output to the client,
/// until the output ends (the process exited, or the attach ended) or the client leaves.
async fn pump<R, W>(
    mut r: R,
    w: &Writer<W>,
    shim: UnixStream,
    tty: bool,
    v5: bool,
    target: &dyn Target,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send,
{
    let (mut sr, mut sw) = shim.into_split();
    let input = async {
        if let Err(e) = client_input(&mut r, w, &mut sw, v5, target).await {
            tracing::debug!(error = %e, "CRI stream: the client's side ended");
        }
        // The client is gone or closed stdin: the process's stdin ends.
        let _ = sw.shutdown().await;
        std::future::pending::<()>().await
    };
    let output = async {
        if let Err(e) = output(&mut sr, w, tty).await {
            tracing::debug!(error = %e, "CRI stream: output");
        }
    };
    tokio::select! {
        _ = input => {}
        _ = output => {}
    }
}

/// One piece of a channel message from the client: the channel its message is on, the
/// bytes of this frame (the channel byte taken off the first one), and whether it ends the
/// message.
pub(crate) struct Piece {
    pub channel: u8,
    pub fin: bool,
    payload: Vec<u8>,
    start: usize,
}

impl Piece {
    pub(crate) fn data(&self) -> &[u8] {
        self.payload.get(self.start..).unwrap_or_default()
    }
}

/// Reads channel messages (the kubelet's `v4`/`v5.channel.k8s.io` and port-forward
/// framing: the first byte of a message names its channel, continuations follow it),
/// answering pings on the way.
#[derive(Default)]
pub(crate) struct ChannelReader {
    channel: Option<u8>,
}

impl ChannelReader {
    /// The next piece; `None` once the client closed (a close frame or the end).
    pub(crate) async fn next<R, W>(
        &mut self,
        r: &mut R,
        w: &Writer<W>,
    ) -> Result<Option<Piece>, WsError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        while let Some(frame) = ws::read_frame(r).await? {
            let start = match frame.opcode {
                ws::OP_PING => {
                    ws::write_frame(&mut *w.lock().await, ws::OP_PONG, &[&frame.payload]).await?;
                    continue;
                }
                ws::OP_CLOSE => return Ok(None),
                ws::OP_TEXT | ws::OP_BINARY => match frame.payload.first() {
                    Some(c) => {
                        self.channel = Some(*c);
                        1
                    }
                    None => {
                        self.channel = None;
                        continue;
                    }
                },
                ws::OP_CONTINUATION => 0,
                _ => continue,
            };
            let Some(channel) = self.channel else {
                continue;
            };
            if frame.fin {
                self.channel = None;
            }
            return Ok(Some(Piece {
                channel,
                fin: frame.fin,
                payload: frame.payload,
                start,
            }));
        }
        Ok(None)
    }
}

/// Reads the client's frames: stdin bytes to the process, resizes to the target, pings
/// answered, until the client closes stdin (v5), closes the connection, or errs.
async fn client_input<R, W>(
    r: &mut R,
    w: &Writer<W>,
    stdin: &mut (impl AsyncWrite + Unpin),
    v5: bool,
    target: &dyn Target,
) -> Result<(), WsError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // A resize message's bytes so far.
    let mut reader = ChannelReader::default();
    let mut resize = Vec::new();
    let mut stdin_open = true;
    while let Some(piece) = reader.next(r, w).await? {
        let data = piece.data();
        match piece.channel {
            STDIN if stdin_open && stdin.write_all(data).await.is_err() => {
                stdin_open = false;
            }
            RESIZE => {
                if resize.len() + data.len() <= RESIZE_MAX {
                    resize.extend_from_slice(data);
                }
                if piece.fin {
                    if let Some((width, height)) = parse_resize(&resize) {
                        target.resize(width, height).await;
                    }
                    resize.clear();
                }
            }
            CLOSE if v5 && stdin_open && data.first() == Some(&STDIN) => {
                stdin_open = false;
                let _ = stdin.shutdown().await;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A tty's output: raw bytes, all on stdout.
async fn raw_output(sr: &mut (impl AsyncRead + Unpin), w: &dyn Sink) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = sr.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        w.send(STDOUT, &buf[..n]).await?;
    }
}

/// Docker's multiplexed output (8-byte headers: stream, 3 zeros, big-endian length), each
/// part sent on its channel.
async fn muxed_output(sr: &mut (impl AsyncRead + Unpin), w: &dyn Sink) -> std::io::Result<()> {
    let mut header = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match sr.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let [stream, _, _, _, a, b, c, d] = header;
        let channel = if stream == 2 { STDERR } else { STDOUT };
        let mut left = u32::from_be_bytes([a, b, c, d]) as usize;
        while left > 0 {
            let want = left.min(buf.len());
            let n = sr.read(&mut buf[..want]).await?;
            if n == 0 {
                return Ok(());
            }
            w.send(channel, &buf[..n]).await?;
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_the_exit_code_as_the_kubelet_does() {
        let ok: Value = serde_json::from_slice(&status_json(&Ok(Some(0)))).unwrap();
        assert_eq!(ok["status"], "Success");
        assert_eq!(
            serde_json::from_slice::<Value>(&status_json(&Ok(None))).unwrap()["status"],
            "Success"
        );
        let failed: Value = serde_json::from_slice(&status_json(&Ok(Some(3)))).unwrap();
        assert_eq!(failed["status"], "Failure");
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(
            failed["details"]["causes"],
            json!([{"reason": "ExitCode", "message": "3"}])
        );
        let err: Value = serde_json::from_slice(&status_json(&Err("no such".into()))).unwrap();
        assert_eq!(
            (err["status"].as_str(), err["message"].as_str()),
            (Some("Failure"), Some("no such"))
        );
    }

    #[test]
    fn resize_messages() {
        assert_eq!(
            parse_resize(b"{\"Width\":80,\"Height\":24}\n"),
            Some((80, 24))
        );
        // Two in one message: the last counts.
        assert_eq!(
            parse_resize(b"{\"Width\":1,\"Height\":2}\n{\"Width\":3,\"Height\":4}\n"),
            Some((3, 4))
        );
        for bad in [
            &b""[..],
            b"{}",
            b"{\"Width\":-1,\"Height\":2}",
            b"{\"Width\":70000,\"Height\":2}",
            b"\xff",
        ] {
            assert_eq!(parse_resize(bad), None, "{bad:?}");
        }
    }

    struct NoTarget;
    impl Target for NoTarget {
        fn resize(&self, _: u16, _: u16) -> futures_util::future::BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    fn client_frame(payload: &[u8], opcode: u8, fin: bool) -> Vec<u8> {
        let mut out = vec![
            opcode | if fin { 0x80 } else { 0 },
            0x80 | payload.len() as u8,
        ];
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn stdin_follows_continuations_and_ends_on_the_close_signal() {
        let mut wire = client_frame(&[STDIN, b'a', b'b'], ws::OP_BINARY, false);
        wire.extend(client_frame(b"cd", ws::OP_CONTINUATION, true));
        wire.extend(client_frame(&[STDOUT, b'x'], ws::OP_BINARY, true));
        wire.extend(client_frame(b"hb", ws::OP_PING, true));
        wire.extend(client_frame(&[CLOSE, STDIN], ws::OP_BINARY, true));
        wire.extend(client_frame(&[STDIN, b'z'], ws::OP_BINARY, true));
        let (mut ours, theirs) = tokio::io::duplex(4096);
        let w = Arc::new(Mutex::new(Vec::new()));
        client_input(&mut &wire[..], &w, &mut ours, true, &NoTarget)
            .await
            .unwrap();
        drop(ours);
        let mut got = Vec::new();
        let mut theirs = theirs;
        theirs.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abcd");
        // The ping was answered with its payload.
        assert_eq!(*w.lock().await, ws::encode_frame(ws::OP_PONG, &[b"hb"]));
    }

    #[tokio::test]
    async fn output_is_split_by_channel() {
        let mut muxed = vec![1, 0, 0, 0, 0, 0, 0, 3];
        muxed.extend_from_slice(b"out");
        muxed.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 3]);
        muxed.extend_from_slice(b"err");
        // A header promising more than comes ends quietly.
        muxed.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0xff, 0xff, b'!']);
        let w = Arc::new(Mutex::new(Vec::new()));
        muxed_output(&mut &muxed[..], &w).await.unwrap();
        let mut want = ws::encode_frame(ws::OP_BINARY, &[&[STDOUT], b"out"]);
        want.extend(ws::encode_frame(ws::OP_BINARY, &[&[STDERR], b"err"]));
        want.extend(ws::encode_frame(ws::OP_BINARY, &[&[STDOUT], b"!"]));
        assert_eq!(*w.lock().await, want);
    }
}

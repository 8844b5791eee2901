//! `ExecSync` through the engine's exec path (`docker exec` without a tty): the process's
//! multiplexed output read to its end, each stream kept up to [`OUTPUT_MAX`], then its exit
//! code. A timeout kills the process (through a pidfd opened while it is known to run) and
//! answers `DeadlineExceeded` once the engine has seen it end, as containerd does: the
//! kubelet and critest look for the process right after the answer.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tonic::Status;

use crate::engine_status;

/// The most of each stream kept (the kubelet's own gRPC message bound is 16 MiB); what
/// comes beyond is read and dropped so that the process never blocks on a full pipe.
pub(crate) const OUTPUT_MAX: usize = 16 << 20;

/// How long the exit code may take to be known once the output has ended.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// One exec's output, split by stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    fn keep(&mut self, stream: u8, data: &[u8]) {
        let buf = match stream {
            2 => &mut self.stderr,
            _ => &mut self.stdout,
        };
        let room = OUTPUT_MAX.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..room.min(data.len())]);
    }
}

/// Reads Docker's multiplexed stream (8-byte headers: stream, 3 zeros, big-endian length)
/// to its end. A stream that ends inside a frame keeps what came.
pub(crate) async fn demux(mut r: impl AsyncRead + Unpin) -> std::io::Result<Output> {
    let mut out = Output::default();
    let mut header = [0u8; 8];
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(out),
            Err(e) => return Err(e),
        }
        let [stream, _, _, _, a, b, c, d] = header;
        let mut left = u32::from_be_bytes([a, b, c, d]) as usize;
        while left > 0 {
            let want = left.min(chunk.len());
            let n = r.read(&mut chunk[..want]).await?;
            if n == 0 {
                return Ok(out);
            }
            out.keep(stream, &chunk[..n]);
            left -= n;
        }
    }
}

/// Runs `cmd` in running container `id`; `timeout` seconds (0: none).
pub(crate) async fn run(
    engine: &Arc<Engine>,
    id: &str,
    cmd: Vec<String>,
    timeout: i64,
) -> Result<(Output, i32), Status> {
    let body = json!({"Cmd": cmd, "AttachStdout": true, "AttachStderr": true});
    let body = crate::pods::into_map(body);
    let exec_id = engine.exec_create(id, &body).await.map_err(engine_status)?;
    let started = engine
        .exec_start(&exec_id, false, Some(false))
        .await
        .map_err(engine_status)?;
    let work = async {
        let stream = started.start.await.map_err(engine_status)?;
        let output = match stream {
            Some(s) => demux(s)
                .await
                .map_err(|e| Status::internal(format!("exec output: {e}")))?,
            None => Output::default(),
        };
        let code = exit_code(engine, &exec_id).await?;
        Ok::<_, Status>((output, code))
    };
    if timeout <= 0 {
        return work.await;
    }
    let limit = Duration::from_secs(u64::try_from(timeout).unwrap_or(0));
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => {
            kill(engine, &exec_id).await;
            // The answer waits for the end (bounded), so no caller sees the process after it.
            if let Err(e) = exit_code(engine, &exec_id).await {
                tracing::warn!(exec_id, error = %e, "CRI ExecSync: the timed-out process did not end");
            }
            Err(Status::deadline_exceeded(format!(
                "command {cmd:?} timed out after {timeout}s"
            )))
        }
    }
}

/// The exit code, once the engine knows the process ended.
pub(crate) async fn exit_code(engine: &Arc<Engine>, exec_id: &str) -> Result<i32, Status> {
    let deadline = tokio::time::Instant::now() + EXIT_WAIT;
    loop {
        let v = engine.exec_inspect(exec_id).await.map_err(engine_status)?;
        if v.get("Running").and_then(Value::as_bool) != Some(true) {
            if let Some(code) = v.get("ExitCode").and_then(Value::as_i64) {
                return Ok(i32::try_from(code).unwrap_or(-1));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Status::internal(format!(
                "exec {exec_id}: output ended but no exit code after {}s",
                EXIT_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills a timed-out exec: its pidfd is opened first and used only if the engine still
/// sees the process running afterwards (so the PID was not reused in between).
async fn kill(engine: &Arc<Engine>, exec_id: &str) {
    let Ok(v) = engine.exec_inspect(exec_id).await else {
        return;
    };
    let Some(pid) = v
        .get("Pid")
        .and_then(Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 0)
    else {
        return;
    };
    let Ok(fd) = berth_sys::pidfd::pidfd_open(pid) else {
        return;
    };
    let running = engine
        .exec_inspect(exec_id)
        .await
        .ok()
        .and_then(|v| v.get("Running").and_then(Value::as_bool))
        == Some(true);
    if running {
        if let Err(e) = berth_sys::pidfd::pidfd_send_signal(
            fd.as_fd(),
            nix::sys::signal::Signal::SIGKILL as i32,
        ) {
            tracing::warn!(exec_id, error = %e, "CRI ExecSync: cannot kill the timed-out process");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(data.len() as u32).to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    #[tokio::test]
    async fn splits_streams_and_survives_truncation() {
        let mut wire = frame(1, b"hi\n");
        wire.extend(frame(2, b"oops\n"));
        wire.extend(frame(1, b"more"));
        let out = demux(&wire[..]).await.unwrap();
        assert_eq!(out.stdout, b"hi\nmore");
        assert_eq!(out.stderr, b"oops\n");
        // A header that promises more than comes, and a cut header.
        let mut cut = frame(1, b"abc");
        cut.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0xff, 0xff, b'x']);
        let out = demux(&cut[..]).await.unwrap();
        assert_eq!(out.stdout, b"abcx");
        assert_eq!(demux(&[1u8, 0, 0][..]).await.unwrap(), Output::default());
    }

    #[test]
    fn output_is_bounded() {
        let mut o = Output::default();
        o.keep(1, &vec![b'a'; OUTPUT_MAX - 1]);
        o.keep(1, b"bcd");
        assert_eq!(o.stdout.len(), OUTPUT_MAX);
        assert_eq!(o.stdout.last(), Some(&b'b'));
    }
}

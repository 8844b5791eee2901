//! Reading the json-file log the shim writes: `tail`, `timestamps`, stream selection,
//! `follow` (until the container stops), multiplexed frames unless the container has a tty.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_shim::{frame_header, LogEntry, Stream};
use bytes::Bytes;
use tokio::sync::mpsc;

/// What `GET /containers/{id}/logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// Last N lines; `None` is all.
    pub tail: Option<usize>,
}

pub(crate) fn log_path(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join(format!("{id}-json.log"))
}

fn render(line: &[u8], tty: bool, opts: &LogsOptions) -> Option<Vec<u8>> {
    let e: LogEntry = serde_json::from_slice(line).ok()?;
    let stream = match e.stream.as_str() {
        "stderr" if opts.stderr => Stream::Stderr,
        "stdout" if opts.stdout => Stream::Stdout,
        _ => return None,
    };
    let mut payload = Vec::new();
    if opts.timestamps {
        payload.extend_from_slice(e.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(e.log.as_bytes());
    if tty {
        return Some(payload);
    }
    let mut out = frame_header(stream, payload.len() as u32).to_vec();
    out.extend_from_slice(&payload);
    Some(out)
}

/// Sends the log's entries; with `follow`, keeps reading until `running()` is false.
pub(crate) fn stream(
    path: PathBuf,
    tty: bool,
    opts: LogsOptions,
    running: impl Fn() -> bool + Send + 'static,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut offset = 0u64;
        let mut partial: Vec<u8> = Vec::new();
        let mut first = true;
        loop {
            let still = running();
            let chunk = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    let mut f = match std::fs::File::open(&path) {
                        Ok(f) => f,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                        Err(e) => return Err(e),
                    };
                    f.seek(SeekFrom::Start(offset))?;
                    let mut buf = Vec::new();
                    f.read_to_end(&mut buf)?;
                    Ok(buf)
                })
                .await
            };
            let data = match chunk {
                Ok(Ok(d)) => d,
                _ => return,
            };
            offset += data.len() as u64;
            partial.extend_from_slice(&data);
            let end = partial
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|i| i + 1)
                .unwrap_or(0);
            let complete: Vec<u8> = partial.drain(..end).collect();
            let mut lines: Vec<&[u8]> = complete
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            if first {
                if let Some(n) = opts.tail {
                    let skip = lines.len().saturating_sub(n);
                    lines.drain(..skip);
                }
                first = false;
            }
            let mut out = Vec::new();
            for l in lines {
                if let Some(b) = render(l, tty, &opts) {
                    out.extend_from_slice(&b);
                }
                if out.len() > 64 * 1024
                    && tx
                        .send(Bytes::from(std::mem::take(&mut out)))
                        .await
                        .is_err()
                {
                    return;
                }
            }
            if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
            if !opts.follow || !still {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_frames_and_raw() {
        let line = br#"{"log":"hi\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#;
        let all = LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        assert_eq!(render(line, true, &all).unwrap(), b"hi\n");
        assert_eq!(
            render(line, false, &all).unwrap(),
            b"\x01\0\0\0\0\0\0\x03hi\n"
        );
        let err_only = LogsOptions {
            stderr: true,
            ..Default::default()
        };
        assert!(render(line, false, &err_only).is_none());
        let ts = LogsOptions {
            timestamps: true,
            ..all
        };
        assert_eq!(
            render(line, true, &ts).unwrap(),
            b"2024-01-01T00:00:00Z hi\n"
        );
    }
}

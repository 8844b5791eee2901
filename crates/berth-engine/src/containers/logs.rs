//! Reading the json-file (or `local`) log the shim writes: `tail`, `since`, `until`, `timestamps`,
//! `details`, stream selection, `follow` (woken by inotify on the container's directory, until the
//! container stops), multiplexed frames unless the container has a tty. The journal is
//! read back in [`journal`].

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_api_types::stdcopy::{frame_header, Stream};

mod config;
mod fastline;
mod files;
mod journal;
pub(crate) use config::settle as settle_log_config;
pub(crate) use config::{journal_readable, log_file, log_options, readable};
pub(crate) use config::{CRI as CRI_LOG_DRIVER, CRI_PATH_OPT};
use files::LogFiles;
pub(crate) use journal::stream as journal_stream;

use bytes::Bytes;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// What `GET /containers/{id}/logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// Last N lines; `None` is all.
    pub tail: Option<usize>,
    /// Only entries at or after this time (ns since the epoch).
    pub since: Option<i64>,
    /// Only entries at or before this time (ns since the epoch); `follow` ends there.
    pub until: Option<i64>,
    /// Each line preceded by its attributes, `k=v,k2=v2 ` (`details`).
    pub details: bool,
}

/// What wakes a follower: inotify on the directory holding the log.
struct Inotified(Inotify);

impl AsRawFd for Inotified {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

fn watch_dir(dir: &Path) -> std::io::Result<AsyncFd<Inotified>> {
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    ino.add_watch(
        dir,
        AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
    )?;
    // `new` is deprecated because a caller could hand it a borrowed fd; `Inotified` owns
    // its fd for the whole life of the `AsyncFd`, which is what `register` asks for.
    #[allow(deprecated)]
    AsyncFd::new(Inotified(ino))
}

/// Waits until the directory changes (then drains the queued events).
async fn changed(fd: &AsyncFd<Inotified>) {
    match fd.readable().await {
        Ok(mut guard) => {
            let _ = guard.get_inner().0.read_events();
            guard.clear_ready();
        }
        // Should not happen; do not spin.
        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// One json-file line, borrowing from the file's bytes where no unescaping is needed.
#[derive(serde::Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    log: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    time: std::borrow::Cow<'a, str>,
    /// json-file's extra attributes (sorted by key, as `details` shows them).
    #[serde(default)]
    attrs: BTreeMap<String, String>,
}

/// Appends `attrs` as dockerd's `details` shows them before a line (moby
/// `httputils.attrsByteSlice`): sorted by key, each `key=value` with both parts escaped as
/// Go's `url.QueryEscape` does, joined by commas, then one space (alone when there are no
/// attributes).
fn push_details<'a>(out: &mut Vec<u8>, attrs: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (i, (k, v)) in attrs.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        query_escape_into(out, k);
        out.push(b'=');
        query_escape_into(out, v);
    }
    out.push(b' ');
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` as they are, a space as `+`,
/// every other byte as `%XX`.
fn query_escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]),
        }
    }
}

/// Appends one entry as the client sees it: a frame header unless `tty`, then the time
/// (with `timestamps`), the attributes (with `details`), and the line.
fn push_entry<'a>(
    out: &mut Vec<u8>,
    tty: bool,
    opts: &LogsOptions,
    stream: Stream,
    time: &str,
    attrs: impl IntoIterator<Item = (&'a str, &'a str)>,
    line: &[u8],
) {
    let mark = out.len();
    if !tty {
        out.extend_from_slice(&[0; 8]);
    }
    let payload = out.len();
    if opts.timestamps {
        out.extend_from_slice(fixed_nanos(time).as_bytes());
        out.push(b' ');
    }
    if opts.details {
        push_details(out, attrs);
    }
    out.extend_from_slice(line);
    if !tty {
        let len = u32::try_from(out.len() - payload).unwrap_or(u32::MAX);
        out[mark..payload].copy_from_slice(&frame_header(stream, len));
    }
}

/// A log time as `logs -t` prints it: RFC 3339 with all nine digits of the fraction
/// (moby's `RFC3339NanoFixed`), where the file keeps Go's `RFC3339Nano` (trailing zeros
/// dropped). A time that does not parse is printed as stored.
fn fixed_nanos(time: &str) -> std::borrow::Cow<'_, str> {
    let nine = time.split_once('.').is_some_and(|(_, f)| {
        let f = f.as_bytes();
        f.len() == 10 && f[9] == b'Z' && f[..9].iter().all(u8::is_ascii_digit)
    });
    if nine {
        return time.into();
    }
    match berth_api_types::timestamp::parse_nanos(time, 0) {
        Ok(n) => berth_api_types::timestamp::format_rfc3339(
            n.div_euclid(1_000_000_000),
            u32::try_from(n.rem_euclid(1_000_000_000)).unwrap_or(0),
        )
        .into(),
        Err(_) => time.into(),
    }
}

/// Appends what the client sees of one log line to `out` (a frame, or raw bytes with a
/// tty); false when the line is filtered out or unreadable.
fn render_into(line: &[u8], tty: bool, opts: &LogsOptions, out: &mut Vec<u8>) -> bool {
    if !opts.timestamps && !opts.details && opts.since.is_none() && opts.until.is_none() {
        let mark = out.len();
        if !tty {
            out.extend_from_slice(&[0; 8]);
        }
        let payload = out.len();
        if let Some(p) = fastline::parse_into(line, out) {
            let stream = match p.stream {
                b"stderr" if opts.stderr => Stream::Stderr,
                b"stdout" if opts.stdout => Stream::Stdout,
                _ => {
                    out.truncate(mark);
                    return false;
                }
            };
            if !tty {
                let header = frame_header(stream, (out.len() - payload) as u32);
                out[mark..payload].copy_from_slice(&header);
            }
            return true;
        }
        out.truncate(mark);
    }
    let Ok(e) = serde_json::from_slice::<Line<'_>>(line) else {
        return false;
    };
    if opts.since.is_some() || opts.until.is_some() {
        // moby `jsonfilelog`: since is inclusive, until is inclusive.
        let Ok(t) = berth_api_types::timestamp::parse_nanos(&e.time, 0) else {
            return false;
        };
        if opts.since.is_some_and(|s| t < s) || opts.until.is_some_and(|u| t > u) {
            return false;
        }
    }
    let stream = match &*e.stream {
        "stderr" if opts.stderr => Stream::Stderr,
        "stdout" if opts.stdout => Stream::Stdout,
        _ => return false,
    };
    let attrs = e.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    push_entry(out, tty, opts, stream, &e.time, attrs, e.log.as_bytes());
    true
}

#[cfg(test)]
fn render(line: &[u8], tty: bool, opts: &LogsOptions) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    render_into(line, tty, opts, &mut out).then_some(out)
}

/// At most this much of the log is read at once (the rest on the next turn).
const READ_CHUNK: u64 = 4 << 20;

/// The longest log line kept while its end is read: the shim writes at most
/// `LOG_LINE_MAX` bytes of output per line, six bytes each once escaped, so a longer line
/// is not one of its own, and is skipped rather than held.
const LINE_MAX: usize = 1 << 20;

/// Sends the log's entries; with `follow`, keeps reading until `running()` is false,
/// woken by changes to the log's directory and by `state` (exits, removal).
pub(crate) fn stream<T: Send + Sync + 'static>(
    path: PathBuf,
    tty: bool,
    opts: LogsOptions,
    running: impl Fn() -> bool + Send + 'static,
    mut state: watch::Receiver<T>,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(16);
    let task = async move {
        // Set up before the first read, so no write between the read and the wait is missed.
        let inotify = match (opts.follow, path.parent()) {
            (true, Some(dir)) => match watch_dir(dir) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "logs: no inotify; polling");
                    None
                }
            },
            _ => None,
        };
        // `tail` places the reader by reading backwards from the end, in bounded steps.
        let placed = match opts.tail {
            Some(n) => {
                let live = path.clone();
                crate::blocking::spawn(move || LogFiles::from_tail(live, n)).await
            }
            None => {
                // Compressed rotated files are decompressed here: off the async workers.
                let live = path.clone();
                crate::blocking::spawn(move || Ok(LogFiles::new(live))).await
            }
        };
        let mut files = match placed {
            Ok(Ok(reader)) => Some(reader),
            Ok(Err(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "logs: tail");
                return;
            }
            Err(_) => return,
        };
        // What was read and not yet rendered: the unfinished last line, then each new
        // chunk read straight after it (no copy of the chunk).
        let mut pending: Vec<u8> = Vec::new();
        // Inside a line longer than any the shim writes: dropped up to its newline.
        let mut skipping = false;
        loop {
            let still = running();
            let chunk = {
                let Some(mut reader) = files.take() else {
                    return;
                };
                let mut buf = std::mem::take(&mut pending);
                crate::blocking::spawn(move || -> std::io::Result<(LogFiles, Vec<u8>, usize)> {
                    let kept = buf.len();
                    buf.reserve(READ_CHUNK as usize);
                    reader.read_into(&mut buf, READ_CHUNK)?;
                    Ok((reader, buf, kept))
                })
                .await
            };
            let (mut data, kept) = match chunk {
                Ok(Ok((reader, d, kept))) => {
                    files = Some(reader);
                    (d, kept)
                }
                _ => return,
            };
            // A full chunk means more is there now: no waiting before the next read.
            let more = (data.len() - kept) as u64 == READ_CHUNK;
            if skipping {
                match data.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        data.drain(..=i);
                        skipping = false;
                    }
                    None => data.clear(),
                }
            }
            let end = data
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|i| i + 1)
                .unwrap_or(0);
            let mut out = Vec::with_capacity(128 * 1024);
            let mut rest = &data[..end];
            while let Some(nl) = fastline::find2(rest, b'\n', b'\n') {
                let (l, after) = rest.split_at(nl);
                rest = after.get(1..).unwrap_or_default();
                if l.is_empty() {
                    continue;
                }
                render_into(l, tty, &opts, &mut out);
                if out.len() > 64 * 1024
                    && tx
                        .send(Bytes::from(std::mem::replace(
                            &mut out,
                            Vec::with_capacity(128 * 1024),
                        )))
                        .await
                        .is_err()
                {
                    return;
                }
            }
            if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
            // The unfinished line is kept for the next turn; a big buffer is not, while
            // a follower waits.
            data.drain(..end);
            if data.len() > LINE_MAX {
                tracing::warn!(path = %path.display(), "logs: a line over {LINE_MAX} bytes skipped");
                data = Vec::new();
                skipping = true;
            }
            if !more {
                data.shrink_to_fit();
            }
            pending = data;
            if more {
                continue;
            }
            if !opts.follow || !still || opts.until.is_some_and(|u| now_nanos() > u) {
                return;
            }
            let until = async {
                match opts.until {
                    Some(u) => {
                        let left = u.saturating_sub(now_nanos()).max(0) as u64;
                        tokio::time::sleep(Duration::from_nanos(left)).await
                    }
                    None => std::future::pending().await,
                }
            };
            let wake = async {
                match &inotify {
                    Some(fd) => changed(fd).await,
                    None => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            tokio::select! {
                _ = wake => {}
                // An exit or removal: read what is left, then stop.
                _ = state.changed() => {}
                _ = until => return,
                _ = tx.closed() => return,
            }
        }
    };
    tokio::spawn(task.in_current_span());
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
        // moby's RFC3339NanoFixed: nine digits whatever the file keeps.
        assert_eq!(
            render(line, true, &ts).unwrap(),
            b"2024-01-01T00:00:00.000000000Z hi\n"
        );
        let frac = br#"{"log":"x\n","stream":"stdout","time":"2024-01-01T00:00:00.12Z"}"#;
        assert_eq!(
            render(frac, true, &ts).unwrap(),
            b"2024-01-01T00:00:00.120000000Z x\n"
        );
        assert_eq!(
            fixed_nanos("2024-01-01T00:00:00.123456789Z"),
            "2024-01-01T00:00:00.123456789Z"
        );
        assert_eq!(fixed_nanos("not a time"), "not a time");
        assert_eq!(
            fixed_nanos("2024-01-01T00:00:00.12345678éZ"),
            "2024-01-01T00:00:00.12345678éZ"
        );
    }

    #[test]
    fn details_show_attrs_as_dockerd() {
        // dockerd 20.10 printed `X=v+w,ZZ=z,a=1+2%26%3Cx%3E,b.c=%C3%A9%2C%3D,tag=n%2Fx hi`
        // for these attributes, and ` plain` for a line without any.
        let line = r#"{"log":"hi\n","stream":"stderr","attrs":{"b.c":"é,=","a":"1 2&<x>","X":"v w","ZZ":"z","tag":"n/x"},"time":"2024-01-01T00:00:00.5Z"}"#;
        let plain = br#"{"log":"plain\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#;
        let all = LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let details = LogsOptions {
            details: true,
            ..all.clone()
        };
        assert_eq!(
            String::from_utf8(render(line.as_bytes(), true, &details).unwrap()).unwrap(),
            "X=v+w,ZZ=z,a=1+2%26%3Cx%3E,b.c=%C3%A9%2C%3D,tag=n%2Fx hi\n"
        );
        assert_eq!(render(plain, true, &details).unwrap(), b" plain\n");
        // Without details the attributes stay hidden; with timestamps they come first.
        assert_eq!(render(line.as_bytes(), true, &all).unwrap(), b"hi\n");
        let both = LogsOptions {
            timestamps: true,
            ..details.clone()
        };
        assert_eq!(
            render(plain, false, &both).unwrap(),
            b"\x01\0\0\0\0\0\0\x262024-01-01T00:00:00.000000000Z  plain\n"
        );
        let mut out = Vec::new();
        push_details(&mut out, [("k~-_.", "A z/+%")]);
        assert_eq!(out, b"k~-_.=A+z%2F%2B%25 ");
    }

    fn entry(log: &str) -> String {
        format!(
            "{}\n",
            serde_json::json!({"log": log, "stream": "stdout", "time": "2024-01-01T00:00:00Z"})
        )
    }

    async fn collect(path: PathBuf, opts: LogsOptions) -> Vec<u8> {
        let (_tx, state) = watch::channel(());
        let mut rx = stream(path, true, opts, || false, state);
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        out
    }

    #[tokio::test]
    async fn lines_cut_by_the_read_chunks_come_out_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        // Past two read chunks, with entries of a length that does not divide them.
        let mut text = String::new();
        let mut want = Vec::new();
        let mut i = 0;
        while text.len() < 2 * READ_CHUNK as usize + 12_345 {
            let log = format!("line {i} {}\n", "y".repeat(i % 97));
            text.push_str(&entry(&log));
            want.extend_from_slice(log.as_bytes());
            i += 1;
        }
        std::fs::write(&path, &text).unwrap();
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let got = collect(path, opts).await;
        assert_eq!(got.len(), want.len());
        assert!(got == want, "lines differ");
    }

    #[tokio::test]
    async fn tail_counts_lines_from_the_end_and_skips_oversized_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&entry(&format!("{i}\n")));
        }
        // Longer than a read and than any line the shim writes: skipped, memory bounded.
        text.push_str(&format!(
            "{{\"log\":\"{}",
            "x".repeat(2 * READ_CHUNK as usize)
        ));
        text.push_str("\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00Z\"}\n");
        text.push_str(&entry("last\n"));
        text.push_str("{\"log\":\"unfinished");
        std::fs::write(&path, &text).unwrap();
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let tail = |n| LogsOptions {
            tail: Some(n),
            ..opts.clone()
        };
        // The skipped line is one of the last three.
        assert_eq!(collect(path.clone(), tail(3)).await, b"999\nlast\n");
        assert_eq!(collect(path.clone(), tail(4)).await, b"998\n999\nlast\n");
        assert_eq!(collect(path.clone(), tail(1)).await, b"last\n");
        assert_eq!(collect(path.clone(), tail(0)).await, b"");
        let all = collect(path.clone(), opts.clone()).await;
        assert!(all.starts_with(b"0\n1\n"));
        assert!(all.ends_with(b"998\n999\nlast\n"));
        assert_eq!(all.len(), collect(path, tail(5000)).await.len());
    }
}

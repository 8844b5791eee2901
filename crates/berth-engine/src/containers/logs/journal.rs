//! The `journald` driver's lines read back for `docker logs`, as dockerd reads them
//! through sd-journal (moby `daemon/logger/journald/read.go`): `journalctl -o json` with
//! a match on CONTAINER_ID_FULL, `--since`, `--until` and `--lines` placing the read as
//! dockerd's seeks do, `--follow` while the container runs. Each entry's stream comes
//! from PRIORITY (3 stderr, 6 stdout, any other is dropped), its time from
//! `__REALTIME_TIMESTAMP`, its line from MESSAGE (a `\n` added unless
//! CONTAINER_PARTIAL_MESSAGE is `true`); `details` shows every field that is neither
//! trusted (`_…`) nor one of dockerd's well-known ones. journalctl is a child of the
//! request: its output is read in bounded lines, and it is killed when the client goes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use berth_api_types::stdcopy::Stream;
use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::{now_nanos, push_entry, LogsOptions, LINE_MAX};
use crate::EngineError;

/// The program that reads the journal.
const JOURNALCTL: &str = "journalctl";

/// Fields dockerd does not show as attributes (moby `wellKnownFields`).
const WELL_KNOWN: &[&str] = &[
    "MESSAGE",
    "MESSAGE_ID",
    "PRIORITY",
    "CODE_FILE",
    "CODE_LINE",
    "CODE_FUNC",
    "ERRNO",
    "SYSLOG_FACILITY",
    "SYSLOG_IDENTIFIER",
    "SYSLOG_PID",
    "SYSLOG_TIMESTAMP",
    "CONTAINER_NAME",
    "CONTAINER_ID",
    "CONTAINER_ID_FULL",
    "CONTAINER_TAG",
    "IMAGE_NAME",
    "CONTAINER_PARTIAL_ID",
    "CONTAINER_PARTIAL_ORDINAL",
    "CONTAINER_PARTIAL_LAST",
    "CONTAINER_PARTIAL_MESSAGE",
    "CONTAINER_LOG_EPOCH",
    "CONTAINER_LOG_ORDINAL",
];

/// After the container stopped, a follower asks journald to write out what it holds
/// (`journalctl --sync` waits until journald processed every message queued before the
/// call), then keeps reading until the journal has been quiet this long (journalctl -f
/// wakes on its own schedule, later on a loaded machine)...
const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// ...but no longer than this after the stop (moby `closedDrainTimeout`).
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// journalctl's arguments for one read; `follow` only while the container runs.
fn args(id: &str, opts: &LogsOptions, follow: bool) -> Vec<String> {
    let mut a: Vec<String> = ["--no-pager", "--quiet", "--output=json", "--all"]
        .map(String::from)
        .into();
    if !opts.details {
        a.push("--output-fields=MESSAGE,PRIORITY,CONTAINER_PARTIAL_MESSAGE".into());
    }
    // The journal counts microseconds: since rounds up, until down, so that both stay
    // inclusive bounds of what the request asked.
    let usec = |n: i64| {
        format!(
            "@{}.{:06}",
            n.div_euclid(1_000_000),
            n.rem_euclid(1_000_000)
        )
    };
    if let Some(s) = opts.since {
        a.push(format!(
            "--since={}",
            usec(s.div_euclid(1000) + i64::from(s % 1000 != 0))
        ));
    }
    // journalctl does not stop following at `--until`: the reader does.
    if let (Some(u), false) = (opts.until, follow) {
        a.push(format!("--until={}", usec(u.div_euclid(1000))));
    }
    a.push(match opts.tail {
        Some(n) => format!("--lines={n}"),
        None => "--lines=all".into(),
    });
    if follow {
        a.push("--follow".into());
    }
    a.push(format!("CONTAINER_ID_FULL={id}"));
    a
}

/// One entry of journalctl's JSON output, as the client sees it (nothing when it has no
/// MESSAGE, a stream other than stdout or stderr, or lies outside since/until).
fn render_entry(line: &[u8], tty: bool, opts: &LogsOptions, out: &mut Vec<u8>) {
    let Ok(fields) = serde_json::from_slice::<BTreeMap<String, Value>>(line) else {
        return;
    };
    let text = |k: &str| fields.get(k).and_then(field_bytes);
    let Some(mut message) = text("MESSAGE") else {
        return;
    };
    let stream = match text("PRIORITY").as_deref() {
        Some(b"3") if opts.stderr => Stream::Stderr,
        Some(b"6") if opts.stdout => Stream::Stdout,
        _ => return,
    };
    let Some(usec) = text("__REALTIME_TIMESTAMP")
        .and_then(|t| std::str::from_utf8(&t).ok()?.parse::<i64>().ok())
    else {
        return;
    };
    let nanos = usec.saturating_mul(1000);
    if opts.since.is_some_and(|s| nanos < s) || opts.until.is_some_and(|u| nanos > u) {
        return;
    }
    if text("CONTAINER_PARTIAL_MESSAGE").as_deref() != Some(b"true") {
        message.push(b'\n');
    }
    // dockerd's fixed nine digits (moby `rfc3339NanoFixed`).
    let time = berth_api_types::timestamp::format_rfc3339(
        nanos.div_euclid(1_000_000_000),
        u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    );
    let attrs: Vec<(String, String)> = if opts.details {
        fields
            .iter()
            .filter(|(k, _)| !k.starts_with('_') && !WELL_KNOWN.contains(&k.as_str()))
            .filter_map(|(k, v)| {
                let v = field_bytes(v)?;
                Some((k.clone(), String::from_utf8_lossy(&v).into_owned()))
            })
            .collect()
    } else {
        Vec::new()
    };
    let attrs = attrs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    push_entry(out, tty, opts, stream, &time, attrs, &message);
}

/// A field's value in journalctl's JSON: a string, an array of bytes (binary or not
/// UTF-8), or an array of those for a field given more than once (the last counts, as in
/// dockerd's map of the entry's data).
fn field_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Array(a) if a.iter().all(Value::is_number) => a
            .iter()
            .map(|n| n.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect(),
        Value::Array(a) => a.last().and_then(field_bytes),
        _ => None,
    }
}

/// `GET /containers/{id}/logs` of a journald container: journalctl started now (so that
/// a journal that cannot be read answers the request), its entries sent as they come.
pub(crate) fn stream<T: Send + Sync + 'static>(
    id: &str,
    tty: bool,
    opts: LogsOptions,
    running: impl Fn() -> bool + Send + 'static,
    state: watch::Receiver<T>,
) -> Result<mpsc::Receiver<Bytes>, EngineError> {
    stream_from(Path::new(JOURNALCTL), id, tty, opts, running, state)
}

fn stream_from<T: Send + Sync + 'static>(
    program: &Path,
    id: &str,
    tty: bool,
    opts: LogsOptions,
    running: impl Fn() -> bool + Send + 'static,
    mut state: watch::Receiver<T>,
) -> Result<mpsc::Receiver<Bytes>, EngineError> {
    // moby `daemon/logs.go`: a container that is not running is not followed.
    let follow = opts.follow && running();
    let mut child = tokio::process::Command::new(program)
        .args(args(id, &opts, follow))
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            // As a dockerd built without journal reading answers.
            std::io::ErrorKind::NotFound => EngineError::NotImplemented(
                "configured logging driver does not support reading".into(),
            ),
            _ => EngineError::Internal(format!("journalctl: {e}")),
        })?;
    let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(EngineError::Internal("journalctl: no output pipe".into()));
    };
    let (tx, rx) = mpsc::channel(16);
    let program = program.to_path_buf();
    let task = async move {
        let errors = tokio::spawn(read_capped(stderr, 4096));
        let mut lines = Lines::default();
        let mut buf = Vec::with_capacity(64 * 1024);
        // Once the container stopped: when to give up on more lines at the latest, the
        // journal sync under way, and (once it is done) when the journal counts as quiet.
        let mut max: Option<Instant> = None;
        let mut sync: Option<tokio::task::JoinHandle<()>> = None;
        let mut quiet_at: Option<Instant> = None;
        let until = opts.until;
        loop {
            let wake_at = max.map(|m| quiet_at.map_or(m, |q| q.min(m)));
            let quiet = async move {
                match wake_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let until_passed = async {
                match until {
                    Some(u) if follow => {
                        let left = u.saturating_sub(now_nanos()).max(0) as u64;
                        tokio::time::sleep(Duration::from_nanos(left)).await
                    }
                    _ => std::future::pending().await,
                }
            };
            buf.clear();
            tokio::select! {
                r = stdout.read_buf(&mut buf) => {
                    match r {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let mut out = Vec::new();
                    lines.push(&buf, |l| render_entry(l, tty, &opts, &mut out));
                    if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                        return;
                    }
                    if quiet_at.is_some() {
                        quiet_at = Some(Instant::now() + DRAIN_QUIET);
                    }
                }
                changed = state.changed(), if follow && max.is_none() => {
                    if changed.is_err() || !running() {
                        max = Some(Instant::now() + DRAIN_MAX);
                        sync = Some(tokio::spawn(sync_journal(program.clone())));
                    }
                }
                _ = async { if let Some(s) = sync.as_mut() { let _ = s.await; } }, if sync.is_some() => {
                    sync = None;
                    quiet_at = Some(Instant::now() + DRAIN_QUIET);
                }
                _ = quiet => return,
                _ = until_passed => return,
                _ = tx.closed() => return,
            }
        }
        // journalctl ended by itself: a failure is told to the client as dockerd tells a
        // reading error, on the stream after stderr ("Error grabbing logs: ...").
        let failed = matches!(child.wait().await, Ok(s) if !s.success());
        if failed {
            let why = errors.await.unwrap_or_default();
            let why = String::from_utf8_lossy(&why);
            let why = why.lines().next().unwrap_or("failed").trim();
            let _ = tx.send(Bytes::from(error_frame(tty, why))).await;
        }
    };
    tokio::spawn(task.in_current_span());
    Ok(rx)
}

/// `journalctl --sync`, bounded by [`DRAIN_MAX`].
async fn sync_journal(program: std::path::PathBuf) {
    let run = tokio::process::Command::new(program)
        .arg("--sync")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    let _ = tokio::time::timeout(DRAIN_MAX, run).await;
}

/// dockerd's `Error grabbing logs: ...` message: a frame of stream 3 (stdcopy's
/// `Systemerr`), or the text itself with a tty.
fn error_frame(tty: bool, why: &str) -> Vec<u8> {
    let text = format!("Error grabbing logs: journalctl: {why}\n");
    let mut out = Vec::new();
    if !tty {
        let len = u32::try_from(text.len()).unwrap_or(u32::MAX).to_be_bytes();
        out.extend_from_slice(&[3, 0, 0, 0, len[0], len[1], len[2], len[3]]);
    }
    out.extend_from_slice(text.as_bytes());
    out
}

/// Reads at most `cap` bytes of `r`, then drains the rest (so the writer never blocks).
async fn read_capped(mut r: impl AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// Splits output into lines; a line longer than [`LINE_MAX`] is skipped up to its end
/// rather than held.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    skipping: bool,
}

impl Lines {
    fn push(&mut self, mut data: &[u8], mut each: impl FnMut(&[u8])) {
        while let Some(i) = data.iter().position(|b| *b == b'\n') {
            let (head, rest) = (&data[..i], &data[i + 1..]);
            data = rest;
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if self.partial.is_empty() {
                each(head);
            } else {
                self.partial.extend_from_slice(head);
                each(&std::mem::take(&mut self.partial));
            }
        }
        if self.skipping {
            return;
        }
        self.partial.extend_from_slice(data);
        if self.partial.len() > LINE_MAX {
            tracing::warn!("logs: a journal entry over {LINE_MAX} bytes skipped");
            self.partial = Vec::new();
            self.skipping = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> LogsOptions {
        LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }
    }

    fn render(line: &str, opts: &LogsOptions) -> String {
        let mut out = Vec::new();
        render_entry(line.as_bytes(), true, opts, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn entries_render_as_dockerd_reads_them() {
        let e = r#"{"MESSAGE":"hi","PRIORITY":"6","__REALTIME_TIMESTAMP":"1700000000123456","_PID":"1","CONTAINER_ID":"abc","TEAM":"blue","A_B":"x y","SYSLOG_TIMESTAMP":"t","__CURSOR":"c"}"#;
        assert_eq!(render(e, &opts()), "hi\n");
        let details = LogsOptions {
            details: true,
            timestamps: true,
            ..opts()
        };
        assert_eq!(
            render(e, &details),
            "2023-11-14T22:13:20.123456000Z A_B=x+y,TEAM=blue hi\n"
        );
        // stderr by priority 3; another priority, or a stream not asked for: nothing.
        let err = r#"{"MESSAGE":"oops","PRIORITY":"3","__REALTIME_TIMESTAMP":"1"}"#;
        let mut framed = Vec::new();
        render_entry(err.as_bytes(), false, &opts(), &mut framed);
        assert_eq!(framed, b"\x02\0\0\0\0\0\0\x05oops\n");
        let stdout_only = LogsOptions {
            stderr: false,
            ..opts()
        };
        assert_eq!(render(err, &stdout_only), "");
        assert_eq!(
            render(
                r#"{"MESSAGE":"x","PRIORITY":"5","__REALTIME_TIMESTAMP":"1"}"#,
                &opts()
            ),
            ""
        );
        // A partial line keeps no newline; bytes that are not UTF-8 come as an array.
        let part = r#"{"MESSAGE":[104,255],"PRIORITY":"6","__REALTIME_TIMESTAMP":"1","CONTAINER_PARTIAL_MESSAGE":"true"}"#;
        let mut out = Vec::new();
        render_entry(part.as_bytes(), true, &opts(), &mut out);
        assert_eq!(out, b"h\xff");
        // Outside since/until (inclusive, in nanoseconds), or not an entry at all.
        let t = 1_700_000_000_123_456_000;
        for (since, until, shown) in [
            (Some(t), None, true),
            (Some(t + 1), None, false),
            (None, Some(t), true),
            (None, Some(t - 1), false),
        ] {
            let o = LogsOptions {
                since,
                until,
                ..opts()
            };
            assert_eq!(render(e, &o) == "hi\n", shown, "{since:?} {until:?}");
        }
        for bad in [
            "",
            "[1]",
            "{\"MESSAGE\":1,\"PRIORITY\":\"6\"}",
            "{\"PRIORITY\":\"6\"}",
        ] {
            assert_eq!(render(bad, &opts()), "", "{bad}");
        }
    }

    #[test]
    fn journalctl_arguments_place_the_read_as_dockerd() {
        let o = LogsOptions {
            since: Some(1_700_000_000_000_000_001),
            until: Some(1_700_000_001_999_999_999),
            tail: Some(5),
            follow: true,
            ..opts()
        };
        let a = args("abc", &o, false);
        assert_eq!(
            a,
            [
                "--no-pager",
                "--quiet",
                "--output=json",
                "--all",
                "--output-fields=MESSAGE,PRIORITY,CONTAINER_PARTIAL_MESSAGE",
                "--since=@1700000000.000001",
                "--until=@1700000001.999999",
                "--lines=5",
                "CONTAINER_ID_FULL=abc",
            ]
        );
        let details = LogsOptions {
            details: true,
            ..opts()
        };
        let a = args("abc", &details, true);
        assert!(!a.iter().any(|a| a.starts_with("--output-fields")));
        assert!(a.contains(&"--lines=all".to_string()) && a.contains(&"--follow".to_string()));
    }

    #[test]
    fn long_lines_are_skipped_not_held() {
        let mut l = Lines::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        l.push(b"a\nb", |x| got.push(x.to_vec()));
        l.push(b"c\n", |x| got.push(x.to_vec()));
        l.push(&vec![b'x'; LINE_MAX + 1], |x| got.push(x.to_vec()));
        assert!(l.partial.is_empty());
        l.push(b"xx\nd\n", |x| got.push(x.to_vec()));
        assert_eq!(got, [b"a".to_vec(), b"bc".to_vec(), b"d".to_vec()]);
    }

    /// A follower ends once the container stopped: after asking journald to sync, and
    /// the journal being quiet; the follow-mode journalctl is killed then.
    #[tokio::test]
    async fn a_follower_ends_after_the_stop_and_a_journal_sync() {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("journalctl");
        std::fs::write(
            &fake,
            "#!/bin/sh
case \"$1\" in --sync) touch \"$(dirname \"$0\")/synced\"; exit 0;; esac
             echo $$ > \"$(dirname \"$0\")/pid\"
             echo '{\"MESSAGE\":\"up\",\"PRIORITY\":\"6\",\"__REALTIME_TIMESTAMP\":\"1\"}'
             exec sleep 1000
",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (tx, state) = watch::channel(0);
        let running = {
            let up = up.clone();
            move || up.load(Ordering::SeqCst)
        };
        let follow = LogsOptions {
            follow: true,
            ..opts()
        };
        let mut rx = stream_from(&fake, "abc", true, follow, running, state).unwrap();
        assert_eq!(rx.recv().await.unwrap(), &b"up\n"[..]);
        assert!(!dir.path().join("synced").exists());
        up.store(false, Ordering::SeqCst);
        tx.send(1).unwrap();
        let end = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
        assert_eq!(end.unwrap(), None);
        assert!(dir.path().join("synced").exists());
        let pid: i32 = std::fs::read_to_string(dir.path().join("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed on drop, and reaped by tokio: gone within the bound.
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
        };
        for _ in 0..300 {
            if !alive() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!alive(), "journalctl {pid} still runs");
    }

    /// A stand-in journalctl (a shell script) shows that the arguments reach it, the
    /// output is read, and a failure is told as dockerd's reading error.
    #[tokio::test]
    async fn runs_journalctl_and_reports_its_failure() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("journalctl");
        std::fs::write(
            &fake,
            "#!/bin/sh\nfor a; do last=$a; done\n\
             echo '{\"MESSAGE\":\"'$last'\",\"PRIORITY\":\"6\",\"__REALTIME_TIMESTAMP\":\"1\"}'\n\
             echo 'Failed to open journal: bad' >&2; exit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (_tx, state) = watch::channel(());
        let mut rx = stream_from(&fake, "abc", true, opts(), || false, state).unwrap();
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CONTAINER_ID_FULL=abc\nError grabbing logs: journalctl: Failed to open journal: bad\n"
        );
        let (_tx, state) = watch::channel(());
        let missing = dir.path().join("none");
        let e = stream_from(&missing, "abc", true, opts(), || false, state).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configured logging driver does not support reading"
        );
    }
}

//! The client's terminal: raw mode while a container's tty is attached (by running
//! `stty raw -echo` on our stdin, since this crate forbids `unsafe`; docker also uses the
//! terminal on stdin, controlling or not), its size, pumping stdin to a container and its
//! output back, and the detach keys.
//!
//! Detaching follows docker/cli (`cli/command/container/hijack.go`): with a tty, the typed
//! input is watched for the detach keys (`--detach-keys`, else config.json's
//! `detachKeys`, else ctrl-p ctrl-q); when they are typed, the connection is dropped
//! without sending them and the command stops waiting. The daemon is sent the same keys,
//! for clients that leave the watching to it.

use std::io::{self, IsTerminal, Read};
use std::process::Stdio;

use std::io::Write;

use berth_api_types::detach::{self, Scan, Scanner};
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::connect::Client;
use crate::endpoint::{config_dir, process_env};
use crate::error::Error;
use crate::Session;

/// docker/cli `EscapeError`: what `attach` and `exec` print (and exit 1 with) when the
/// user detached; `run` and `start` exit 0 quietly instead.
pub(crate) const DETACHED: &str = "read escape sequence";

/// `stty raw -echo` on stdin while alive; the saved settings back on drop.
pub(crate) struct RawTerminal {
    saved: String,
}

impl RawTerminal {
    pub(crate) fn enter() -> Option<RawTerminal> {
        let saved = stty(&["-g"])?;
        stty(&["raw", "-echo"])?;
        Some(RawTerminal {
            saved: saved.trim().to_string(),
        })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = stty(&[&self.saved]);
    }
}

/// Runs `stty` on our stdin when it is a terminal.
fn stty(args: &[&str]) -> Option<String> {
    if !io::stdin().is_terminal() {
        return None;
    }
    let out = std::process::Command::new("stty")
        .args(args)
        .stdin(Stdio::inherit())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// (rows, columns) of the terminal on stdin.
pub(crate) fn terminal_size() -> Option<(u16, u16)> {
    let s = stty(&["size"])?;
    let mut it = s.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// docker/cli `CheckTty`: a container's tty wants a terminal on our stdin.
pub(crate) fn check_tty(attach_stdin: bool, tty: bool) -> Result<(), Error> {
    if attach_stdin && tty && !io::stdin().is_terminal() {
        return Err(Error::client("the input device is not a TTY"));
    }
    Ok(())
}

/// The detach keys to use and send: `flag` when given, else config.json's `detachKeys`
/// (docker/cli `attach.go`, `run.go`, `exec.go`); `None` leaves the default to the daemon.
pub(crate) fn detach_keys(session: &Session, flag: Option<&str>) -> Option<String> {
    if let Some(keys) = flag.filter(|k| !k.is_empty()) {
        return Some(keys.to_string());
    }
    let path = config_dir(session.options(), &process_env).join("config.json");
    config_detach_keys(&std::fs::read_to_string(path).ok()?)
}

/// `detachKeys` of a config.json's text.
fn config_detach_keys(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("detachKeys")?
        .as_str()
        .filter(|k| !k.is_empty())
        .map(String::from)
}

/// The bytes to watch for: `keys`, or docker's default when there are none or they do not
/// parse (docker/cli `setupInput` warns and uses the default; the daemon has refused bad
/// keys before this is reached).
pub(crate) fn escape_bytes(keys: Option<&str>) -> Vec<u8> {
    match keys.map(detach::parse) {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "invalid detach escape keys, using default");
            detach::DEFAULT_KEYS.to_vec()
        }
        None => detach::DEFAULT_KEYS.to_vec(),
    }
}

/// Our stdin on its way to a container: the copying task, and with detach keys, word
/// that they were typed.
pub(crate) struct Input {
    task: tokio::task::JoinHandle<()>,
    detached: Option<oneshot::Receiver<()>>,
}

enum Chunk {
    Data(Vec<u8>),
    Detach,
}

/// Copies our stdin to a container's (a blocking reader thread feeding an async writer);
/// at EOF on our stdin the container's is closed. With `escape`, the input is watched for
/// those keys: they are not sent, and the copy stops there.
pub(crate) fn pump_stdin<W>(mut input: W, escape: Option<Vec<u8>>) -> Input
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(16);
    let watching = escape.is_some();
    std::thread::spawn(move || {
        let mut scanner = escape.map(|k| Scanner::new(&k));
        let mut buf = vec![0u8; 32 * 1024];
        let mut stdin = io::stdin();
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    // Keys held back as the start of the sequence were typed after all.
                    if let Some(held) = scanner.as_ref().map(Scanner::held) {
                        let _ = tx.blocking_send(Chunk::Data(held.to_vec()));
                    }
                    break;
                }
                Ok(n) => n,
            };
            let (data, detach) = match scanner.as_mut().map(|s| s.scan(&buf[..n])) {
                None => (buf[..n].to_vec(), false),
                Some(Scan::Forward(b)) => (b.into_owned(), false),
                Some(Scan::Detach(b)) => (b.into_owned(), true),
            };
            if !data.is_empty() && tx.blocking_send(Chunk::Data(data)).is_err() {
                break;
            }
            if detach {
                let _ = tx.blocking_send(Chunk::Detach);
                break;
            }
        }
    });
    let (detached_tx, detached_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Chunk::Data(bytes) => {
                    if input.write_all(&bytes).await.is_err() {
                        return;
                    }
                    let _ = input.flush().await;
                }
                Chunk::Detach => {
                    let _ = detached_tx.send(());
                    return;
                }
            }
        }
        let _ = input.shutdown().await;
    });
    Input {
        task,
        detached: watching.then_some(detached_rx),
    }
}

/// How an attached session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The stream ended (the process exited, or the daemon closed it).
    Output,
    /// The user typed the detach keys; the container runs on.
    Detached,
}

/// [`copy_output`] until the stream ends or the user detaches; stops copying stdin.
pub(crate) async fn copy_until_detached<S>(
    output: &mut S,
    client: &Client,
    input: Option<Input>,
) -> Result<Ended, Error>
where
    S: Stream<Item = Result<LogOutput, BollardError>> + Unpin,
{
    let (task, detached) = match input {
        Some(i) => (Some(i.task), i.detached),
        None => (None, None),
    };
    let detach = async {
        // An error: the input ended without the keys.
        let typed = match detached {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        if !typed {
            std::future::pending::<()>().await;
        }
    };
    let ended = tokio::select! {
        r = copy_output(output, client) => r.map(|()| Ended::Output),
        () = detach => Ok(Ended::Detached),
    };
    if let Some(t) = task {
        t.abort();
    }
    ended
}

/// Copies an attached stream to our stdout and stderr until it ends. A closed stdout (a
/// pipe into `head`) ends the copy quietly; a daemon error ends it with that error.
pub(crate) async fn copy_output<S>(output: &mut S, client: &Client) -> Result<(), Error>
where
    S: Stream<Item = Result<LogOutput, BollardError>> + Unpin,
{
    while let Some(item) = output.next().await {
        match item {
            Ok(LogOutput::StdErr { message }) => {
                let mut e = io::stderr().lock();
                let _ = e.write_all(&message).and_then(|()| e.flush());
            }
            Ok(
                LogOutput::StdOut { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message },
            ) => {
                let mut o = io::stdout().lock();
                if let Err(e) = o.write_all(&message).and_then(|()| o.flush()) {
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        return Err(Error::client(format!("cannot write output: {e}")));
                    }
                    return Ok(());
                }
            }
            Err(e) => return Err(client.daemon_err(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_detach_keys() {
        assert_eq!(
            config_detach_keys(r#"{"detachKeys": "ctrl-e,e", "auths": {}}"#).as_deref(),
            Some("ctrl-e,e")
        );
        for text in [
            "",
            "{}",
            r#"{"detachKeys": ""}"#,
            r#"{"detachKeys": 3}"#,
            "[1]",
        ] {
            assert_eq!(config_detach_keys(text), None, "{text}");
        }
    }

    #[test]
    fn escape_bytes_fall_back_to_the_default() {
        assert_eq!(escape_bytes(Some("ctrl-a,a")), [1, b'a']);
        assert_eq!(escape_bytes(Some("nope")), detach::DEFAULT_KEYS);
        assert_eq!(escape_bytes(None), detach::DEFAULT_KEYS);
    }
}

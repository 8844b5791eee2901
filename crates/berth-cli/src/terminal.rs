//! The client's terminal: raw mode while a container's tty is attached (by running
//! `stty raw -echo` on our stdin, since this crate forbids `unsafe`; docker also uses the
//! terminal on stdin, controlling or not), its size, and pumping stdin to a container and
//! its output back.

use std::io::{self, IsTerminal, Read};
use std::process::Stdio;

use std::io::Write;

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::connect::Client;
use crate::error::Error;

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

/// Copies our stdin to a container's (a blocking reader thread feeding an async writer);
/// at EOF on our stdin the container's is closed.
pub(crate) fn pump_stdin<W>(mut input: W) -> tokio::task::JoinHandle<()>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        let mut stdin = io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if input.write_all(&chunk).await.is_err() {
                return;
            }
            let _ = input.flush().await;
        }
        let _ = input.shutdown().await;
    })
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

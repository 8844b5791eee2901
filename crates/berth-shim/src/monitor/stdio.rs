//! The container's stdio as the monitor holds it: pipe ends or a pty master, non-blocking,
//! close-on-exec; the other ends go to libcontainer.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::container::ChildStdio;
use super::sys;

/// Our ends of a process's stdio.
pub struct Held {
    /// Write end of stdin (the pty master again with a tty), if stdin is open.
    pub stdin: Option<File>,
    /// Read ends: stdout then stderr, or the pty master alone.
    pub outputs: Vec<File>,
    /// The pty master, for resizing.
    pub pty: Option<File>,
    /// Our own handle on the pty's slave side (see [`super::sys::pty_peer`]):
    /// while we hold it, the master does not hang up when the process exits, so output
    /// still on its way through the tty layer is not lost.
    pub pty_peer: Option<OwnedFd>,
}

pub fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Capacity asked for the stdout and stderr pipes.
const OUTPUT_PIPE_SIZE: i32 = 1 << 20;

/// Our end non-blocking; the child's end stays blocking (a separate open file).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// Pipes for stdout and stderr, and for stdin when `open_stdin` (else `/dev/null`).
pub fn pipes(open_stdin: bool) -> io::Result<(ChildStdio, Held)> {
    let (stdin_child, stdin_ours) = if open_stdin {
        let (r, w) = pipe()?;
        set_nonblocking(&w)?;
        (r, Some(File::from(w)))
    } else {
        (File::open("/dev/null")?.into(), None)
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    set_nonblocking(&out_r)?;
    set_nonblocking(&err_r)?;
    for r in [&out_r, &err_r] {
        // Room for bursts, so a chatty process and the monitor do not take turns every
        // 64 KiB; pages are only used while output waits. Best effort (pipe-max-size).
        let _ = fcntl(r.as_fd(), FcntlArg::F_SETPIPE_SZ(OUTPUT_PIPE_SIZE));
    }
    let child = ChildStdio::Pipes {
        stdin: stdin_child,
        stdout: out_w,
        stderr: err_w,
    };
    let held = Held {
        stdin: stdin_ours,
        outputs: vec![out_r.into(), err_r.into()],
        pty: None,
        pty_peer: None,
    };
    Ok((child, held))
}

/// Receives the pty master libcontainer sent to `listener` (it connects while creating).
pub fn receive_pty(listener: &UnixListener, open_stdin: bool) -> io::Result<Held> {
    listener.set_nonblocking(true)?;
    let (conn, _) = listener.accept()?;
    let mut name = [0u8; 256];
    let master = berth_sys::fdpass::recv_fd(conn.as_fd(), &mut name)?;
    let master = master.ok_or_else(|| io::Error::other("no pty master received"))?;
    set_nonblocking(&master)?;
    let master = File::from(master);
    let stdin = if open_stdin {
        Some(master.try_clone()?)
    } else {
        None
    };
    let pty_peer = sys::pty_peer(master.as_fd())
        .inspect_err(|e| tracing::warn!(error = %e, "no pty peer; late output may be lost"))
        .ok();
    Ok(Held {
        stdin,
        outputs: vec![master.try_clone()?],
        pty: Some(master),
        pty_peer,
    })
}

/// The console socket for a tty process, bound before libcontainer connects to it.
pub fn console_listener(path: &Path) -> io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
}

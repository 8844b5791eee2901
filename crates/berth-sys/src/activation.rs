//! systemd socket activation (`-H fd://`): adopting the listeners that systemd passed in
//! `LISTEN_FDS`, starting at descriptor 3 (sd_listen_fds(3)).

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use nix::sys::socket::{getsockname, AddressFamily, SockaddrLike, SockaddrStorage};

/// First descriptor systemd passes.
const SD_LISTEN_FDS_START: RawFd = 3;

/// A listener inherited from systemd.
#[derive(Debug)]
pub enum ActivatedListener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// Takes the listeners systemd passed to this process. Reads and clears `LISTEN_PID`,
/// `LISTEN_FDS` and `LISTEN_FDNAMES` so children do not inherit them. `only` selects one
/// descriptor number (`fd://3`); `None` takes all (`fd://`).
pub fn take_listeners(only: Option<RawFd>) -> io::Result<Vec<ActivatedListener>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    // Called during start-up, before the tokio runtime (and any thread) exists, so changing
    // the environment races with nothing.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");

    let for_us = pid
        .as_deref()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count: RawFd = fds.as_deref().and_then(|n| n.parse().ok()).unwrap_or(0);
    if !for_us || count <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "fd:// given but systemd passed no sockets (LISTEN_PID/LISTEN_FDS unset); start berthd from a systemd .socket unit or use -H unix:// or tcp://",
        ));
    }
    let range = SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + count;
    if let Some(fd) = only {
        if !range.contains(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "fd://{fd}: systemd passed descriptors {}..{}",
                    range.start,
                    range.end - 1
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for fd in range {
        if only.is_some_and(|o| o != fd) {
            continue;
        }
        // SAFETY: systemd hands this process ownership of descriptors
        // LISTEN_FDS_START..+LISTEN_FDS (we checked LISTEN_PID is us) and the env vars are
        // cleared above, so nothing else adopts the same descriptor.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let addr: SockaddrStorage = getsockname(owned.as_raw_fd()).map_err(io::Error::from)?;
        nix::fcntl::fcntl(
            &owned,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(io::Error::from)?;
        let listener = match addr.family() {
            Some(AddressFamily::Unix) => ActivatedListener::Unix(UnixListener::from(owned)),
            Some(AddressFamily::Inet | AddressFamily::Inet6) => {
                ActivatedListener::Tcp(TcpListener::from(owned))
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("fd://{fd}: unsupported socket family {other:?}"),
                ))
            }
        };
        out.push(listener);
    }
    Ok(out)
}

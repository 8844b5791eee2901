//! systemd socket activation (`-H fd://`): adopting the listeners that systemd passed in
//! `LISTEN_FDS`, starting at descriptor 3 (sd_listen_fds(3)); and telling it when start-up
//! is done (`READY=1`, sd_notify(3)).

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

/// Where to tell the service manager that start-up is done (sd_notify(3)'s
/// `$NOTIFY_SOCKET`), for a `Type=notify` unit.
#[derive(Debug, Default)]
pub struct ServiceNotifier(Option<std::ffi::OsString>);

impl ServiceNotifier {
    /// Takes `$NOTIFY_SOCKET` out of the environment, so that children (the shims, runc,
    /// which forwards it into containers) do not notify in berthd's name. Call it while
    /// the process is single-threaded: it edits the environment.
    pub fn take() -> ServiceNotifier {
        let path = std::env::var_os("NOTIFY_SOCKET");
        std::env::remove_var("NOTIFY_SOCKET");
        ServiceNotifier(path)
    }

    /// Sends `READY=1`; nothing without a notify socket.
    pub fn ready(&self) -> io::Result<()> {
        let Some(path) = &self.0 else { return Ok(()) };
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        if let Some(name) = path.as_encoded_bytes().strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(b"READY=1", &addr)?;
        } else {
            socket.send_to(b"READY=1", std::path::Path::new(path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod notify_tests {
    use super::*;

    #[test]
    fn ready_reaches_the_notify_socket() {
        let dir = std::env::temp_dir().join(format!("berth-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        ServiceNotifier(Some(path.clone().into())).ready().unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        ServiceNotifier(None).ready().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

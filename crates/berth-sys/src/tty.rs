//! Terminals: a pty's window size and a second handle on its slave side.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Sets a terminal's size (`TIOCSWINSZ`).
pub fn set_winsize(tty: BorrowedFd<'_>, width: u16, height: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which outlives the call.
    let rc = unsafe {
        libc::ioctl(
            tty.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new descriptor on the slave side of the pty whose master is `master`
/// (`TIOCGPTPEER`, Linux 4.13), without making it our controlling terminal.
pub fn pty_peer(master: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: an ioctl on a descriptor we borrow, with an integer argument; it returns a
    // new descriptor or -1.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn sizes_a_pty_through_its_peer() {
        let pty = nix::pty::posix_openpt(nix::fcntl::OFlag::O_RDWR).unwrap();
        nix::pty::grantpt(&pty).unwrap();
        nix::pty::unlockpt(&pty).unwrap();
        let peer = pty_peer(pty.as_fd()).unwrap();
        set_winsize(pty.as_fd(), 120, 40).unwrap();
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which outlives it.
        let rc = unsafe { libc::ioctl(peer.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
        assert_eq!(rc, 0);
        assert_eq!((ws.ws_col, ws.ws_row), (120, 40));
    }

    #[test]
    fn a_file_is_not_a_terminal() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(set_winsize(f.as_fd(), 1, 1).is_err());
        assert!(pty_peer(f.as_fd()).is_err());
    }
}

//! Socket facts the kernel keeps: how much of what we sent a unix-socket peer has not
//! read yet.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Bytes written to the stream socket `fd` that its peer has not read yet (`SIOCOUTQ`).
/// For a unix socket this is exact: the count drops as the peer process reads. (For TCP
/// it counts bytes not yet acknowledged by the peer's kernel, which says nothing of the
/// peer process.)
pub fn unread_by_peer(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one c_int through the pointer, which points
    // to a live local; the descriptor is borrowed, so it stays open for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn counts_what_the_peer_has_not_read() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        assert_eq!(unread_by_peer(a.as_fd()).unwrap(), 0);
        a.write_all(b"HTTP/1.1 101\r\n\r\n").unwrap();
        assert!(unread_by_peer(a.as_fd()).unwrap() > 0);
        let mut buf = [0u8; 64];
        let n = b.read(&mut buf).unwrap();
        assert_eq!(n, 16);
        let left = unread_by_peer(a.as_fd()).unwrap();
        assert_eq!(left, 0, "{left}");
    }
}

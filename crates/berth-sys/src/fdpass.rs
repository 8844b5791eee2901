//! Descriptors passed over unix sockets (`SCM_RIGHTS`).

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Receives one message on `sock` into `buf` and the descriptor it carried, if any
/// (close-on-exec), owned by the caller. Room is made for one descriptor only: the kernel
/// discards any more that a hostile peer sends.
pub fn recv_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<OwnedFd>> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut first = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel installed this descriptor in our table for this
                // message; nothing else refers to it, so it is ours to own (and to close
                // when dropped).
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                first.get_or_insert(owned);
            }
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use nix::sys::socket::{sendmsg, ControlMessage};

    #[test]
    fn receives_a_passed_descriptor() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, b"passed").unwrap();
        let fds = [file.as_raw_fd()];
        sendmsg::<()>(
            a.as_raw_fd(),
            &[std::io::IoSlice::new(b"x")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let mut buf = [0u8; 16];
        let got = recv_fd(b.as_fd(), &mut buf).unwrap().unwrap();
        let mut f = std::fs::File::from(got);
        std::io::Seek::rewind(&mut f).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "passed");
    }

    #[test]
    fn a_message_without_descriptors_gives_none() {
        let (a, b) = UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut &a, b"plain").unwrap();
        let mut buf = [0u8; 16];
        assert!(recv_fd(b.as_fd(), &mut buf).unwrap().is_none());
        assert_eq!(&buf[..5], b"plain");
    }
}

//! Zero-copy relaying with splice(2): a [`Pipe`] owns both ends of a non-blocking,
//! close-on-exec pipe that bytes pass through on their way from one socket to another
//! without being copied into user space (what Go's `io.Copy` between TCP sockets does).
//!
//! Every call is non-blocking (`SPLICE_F_NONBLOCK`): a would-block answer comes back as
//! [`io::ErrorKind::WouldBlock`] for the caller's event loop to wait on.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// A pipe used as an in-kernel buffer between two descriptors; both ends close on drop.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// A pipe enlarged to `size` bytes where the kernel allows it (`F_SETPIPE_SZ`; an
    /// unprivileged process is refused past `/proc/sys/fs/pipe-max-size`), else left at
    /// its default size.
    pub fn new(size: usize) -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let wanted = i32::try_from(size).unwrap_or(i32::MAX);
        let capacity = match fcntl(&write, FcntlArg::F_SETPIPE_SZ(wanted)) {
            Ok(n) => n,
            Err(_) => fcntl(&write, FcntlArg::F_GETPIPE_SZ)?,
        };
        let capacity = usize::try_from(capacity).unwrap_or(0).max(1);
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    /// How many bytes the pipe holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Moves up to `len` bytes from `from` into the pipe; `Ok(0)` is `from`'s end of
    /// stream. Would-block means `from` has nothing to read or the pipe is full.
    pub fn fill(&self, from: impl AsFd, len: usize) -> io::Result<usize> {
        splice(from.as_fd(), self.write.as_fd(), len)
    }

    /// Moves up to `len` bytes out of the pipe into `to`. Would-block means `to` cannot
    /// take more now (or the pipe is empty).
    pub fn drain(&self, to: impl AsFd, len: usize) -> io::Result<usize> {
        splice(self.read.as_fd(), to.as_fd(), len)
    }
}

/// One splice(2) of up to `len` bytes at the descriptors' current positions, retried on
/// `EINTR`.
fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    loop {
        // SAFETY: both descriptors are borrowed, so open for the call; null offsets make
        // the kernel use (and advance) the descriptors' own positions, and no user memory
        // is passed.
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                flags,
            )
        };
        match usize::try_from(n) {
            Ok(n) => return Ok(n),
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn moves_bytes_between_sockets() {
        let pipe = Pipe::new(1 << 20).expect("pipe");
        assert!(pipe.capacity() >= 4096);
        let (mut a, b) = UnixStream::pair().expect("pair");
        let (c, mut d) = UnixStream::pair().expect("pair");
        a.write_all(b"hello splice").expect("write");
        let n = pipe.fill(&b, pipe.capacity()).expect("fill");
        assert_eq!(n, 12);
        assert_eq!(pipe.drain(&c, n).expect("drain"), 12);
        let mut got = [0u8; 12];
        d.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"hello splice");
        // Nothing more to read: would-block, not end of stream.
        b.set_nonblocking(true).expect("nonblocking");
        let e = pipe.fill(&b, 10).expect_err("empty");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(pipe.fill(&b, 10).expect("eof"), 0);
    }
}

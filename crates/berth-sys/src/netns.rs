//! Running a little code inside another network namespace (a container's): a dedicated,
//! short-lived thread joins the namespace with `setns(2)`, runs the closure and ends. No
//! thread of the daemon's pools ever changes namespace, so nothing else can run there by
//! accident. Sockets the closure opens stay in that namespace for their whole life, which
//! is how the daemon keeps a netlink or DNS socket inside a container.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Runs `f` on a new thread that has joined the network namespace `ns` (an open
/// `/proc/<pid>/ns/net` or nsfs bind mount) and returns its result once the thread ended.
pub fn run_in<T, F>(ns: BorrowedFd<'_>, f: F) -> io::Result<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("netns".into())
            .spawn_scoped(s, move || -> io::Result<T> {
                // SAFETY: setns(2) only reads the descriptor number, which `ns` keeps open for
                // the whole scope; CLONE_NEWNET moves this thread alone (never the process),
                // and the thread ends right after `f`, so no other code runs in that namespace.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })?;
        worker
            .join()
            .map_err(|_| io::Error::other("the network namespace thread panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn runs_in_own_namespace() {
        // Joining our own namespace needs CAP_SYS_ADMIN; without it the error comes back.
        let ns = File::open("/proc/self/ns/net").unwrap();
        let here = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        match run_in(ns.as_fd(), || {
            std::fs::read_link("/proc/thread-self/ns/net").unwrap()
        }) {
            Ok(there) => assert_eq!(here, there),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}"),
        }
    }

    #[test]
    fn refuses_a_file_that_is_no_namespace() {
        let f = File::open("/proc/self/status").unwrap();
        assert!(run_in(f.as_fd(), || ()).is_err());
    }
}

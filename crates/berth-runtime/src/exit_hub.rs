//! [`ExitHub`]: how the daemon learns that containers exited without holding a descriptor
//! per container (issue 17: no fd count in berthd that grows with the containers).
//!
//! One unix datagram socket, `<exec-root>/exits.sock`, bound on first use. Each shim is
//! started with its path ([`StartOptions::exit_notify`]) and, once its exit record is
//! written, sends the container id there; the hub wakes whoever waits for that id. A
//! shim may find no daemon (it was stopped or crashed): the daemon that comes back
//! registers its waiters and asks each shim for its state first, so an exit it missed is
//! read from the record. A notification the kernel could not queue is caught by a
//! periodic sweep that looks for the exit records of the ids still waited for.
//!
//! [`StartOptions::exit_notify`]: berth_shim_protocol::StartOptions::exit_notify

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use berth_shim_protocol::{EXIT_FILE, EXIT_NOTIFY_SOCKET};
use tokio::net::UnixDatagram;
use tokio::sync::{oneshot, OnceCell};

/// How often the ids still waited for are checked for an exit record, in case their
/// notification was lost.
const SWEEP_EVERY: Duration = Duration::from_secs(20);

/// The longest container id a notification may carry (the runtime's own limit).
const MAX_ID: usize = 128;

#[derive(Debug)]
pub(crate) struct ExitHub {
    exec_root: PathBuf,
    sweep_every: Duration,
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    /// `Some(path)` once bound and read; `None` when the socket cannot be had (the path
    /// is too long for a unix socket, say): callers then wait on a shim connection.
    listening: OnceCell<Option<PathBuf>>,
}

impl ExitHub {
    pub(crate) fn new(exec_root: &Path) -> ExitHub {
        ExitHub {
            exec_root: exec_root.to_path_buf(),
            sweep_every: SWEEP_EVERY,
            waiters: Mutex::default(),
            listening: OnceCell::new(),
        }
    }

    /// The socket's path, bound and read from the first call on; `None` if it cannot be.
    pub(crate) async fn socket(self: &Arc<Self>) -> Option<PathBuf> {
        self.listening
            .get_or_init(|| async {
                let path = self.exec_root.join(EXIT_NOTIFY_SOCKET);
                match bind(&path).await {
                    Ok(sock) => {
                        tokio::spawn(read_loop(sock, Arc::downgrade(self), self.sweep_every));
                        Some(path)
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e,
                            "cannot bind the exit-notification socket; waiting on one shim connection per container");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    /// A receiver that resolves once container `id` is reported gone. Register before
    /// asking the shim for its state, so that no exit falls between the two.
    pub(crate) fn register(&self, id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let list = waiters.entry(id.to_string()).or_default();
        list.retain(|w| !w.is_closed());
        list.push(tx);
        rx
    }

    fn notify(&self, id: &str) {
        let woken = self
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        for tx in woken.into_iter().flatten() {
            let _ = tx.send(());
        }
    }

    /// The ids waited for (dropping those nobody waits for any more).
    fn waited_ids(&self) -> Vec<String> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.retain(|_, list| {
            list.retain(|w| !w.is_closed());
            !list.is_empty()
        });
        waiters.keys().cloned().collect()
    }
}

/// Binds `path` (a socket a previous daemon left is replaced), readable by root only.
async fn bind(path: &Path) -> std::io::Result<UnixDatagram> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        match std::fs::symlink_metadata(&owned) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(&owned)?,
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way",
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = owned.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let sock = std::os::unix::net::UnixDatagram::bind(&owned)?;
        std::fs::set_permissions(&owned, std::fs::Permissions::from_mode(0o600))?;
        sock.set_nonblocking(true)?;
        Ok(sock)
    })
    .await
    .map_err(std::io::Error::other)?
    .and_then(UnixDatagram::from_std)
}

/// Wakes the waiters of each id that arrives, and sweeps for lost notifications; ends
/// with the hub.
async fn read_loop(sock: UnixDatagram, hub: Weak<ExitHub>, sweep_every: Duration) {
    let mut buf = [0u8; MAX_ID + 1];
    let mut sweep = tokio::time::interval(sweep_every);
    sweep.tick().await;
    loop {
        tokio::select! {
            got = sock.recv(&mut buf) => {
                let Some(hub) = hub.upgrade() else { return };
                match got {
                    Ok(n) => match std::str::from_utf8(buf.get(..n).unwrap_or_default()) {
                        Ok(id) if n <= MAX_ID && !id.is_empty() => hub.notify(id),
                        _ => tracing::warn!(len = n, "ignored a malformed exit notification"),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "exit-notification socket");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            _ = sweep.tick() => {
                let Some(hub) = hub.upgrade() else { return };
                let ids = hub.waited_ids();
                if ids.is_empty() {
                    continue;
                }
                let root = hub.exec_root.join("containers");
                let exited = tokio::task::spawn_blocking(move || {
                    ids.into_iter()
                        .filter(|id| root.join(id).join(EXIT_FILE).exists())
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                for id in exited {
                    tracing::debug!(id, "exit found by the sweep");
                    hub.notify(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_notification_wakes_every_waiter_of_its_id_only() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(ExitHub::new(dir.path()));
        let path = hub.socket().await.expect("bound");
        let (a1, a2, b) = (hub.register("a"), hub.register("a"), hub.register("b"));
        let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
        // Hostile or broken senders first: too long, empty, not UTF-8.
        sender.send_to(&[b'x'; MAX_ID + 1], &path).unwrap();
        sender.send_to(b"", &path).unwrap();
        sender.send_to(&[0xff, 0xfe], &path).unwrap();
        sender.send_to(b"a", &path).unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            a1.await.unwrap();
            a2.await.unwrap();
        })
        .await
        .expect("woken");
        let mut b = b;
        assert!(b.try_recv().is_err(), "b was not notified");
        assert_eq!(hub.waited_ids(), vec!["b".to_string()]);
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_another_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let stale = std::os::unix::net::UnixDatagram::bind(dir.path().join(EXIT_NOTIFY_SOCKET));
        drop(stale);
        assert!(Arc::new(ExitHub::new(dir.path())).socket().await.is_some());
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join(EXIT_NOTIFY_SOCKET), b"data").unwrap();
        assert!(Arc::new(ExitHub::new(other.path()))
            .socket()
            .await
            .is_none());
        assert_eq!(
            std::fs::read(other.path().join(EXIT_NOTIFY_SOCKET)).unwrap(),
            b"data"
        );
    }

    #[tokio::test]
    async fn the_sweep_finds_an_exit_whose_notification_was_lost() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(ExitHub {
            sweep_every: Duration::from_millis(50),
            ..ExitHub::new(dir.path())
        });
        hub.socket().await.expect("bound");
        let rx = hub.register("c1");
        let cdir = dir.path().join("containers/c1");
        std::fs::create_dir_all(&cdir).unwrap();
        std::fs::write(cdir.join(EXIT_FILE), b"{}").unwrap();
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("found by the sweep")
            .unwrap();
    }
}

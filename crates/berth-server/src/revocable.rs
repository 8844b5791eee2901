//! The open TLS connections by client certificate, so that a reload whose revocation list
//! now names a certificate closes that certificate's connections: idle keep-alive ones,
//! streaming responses (`events`, `logs -f`) and hijacked ones (attach, exec) alike.
//!
//! Each connection is registered with a duplicate of its socket's descriptor and a
//! cancellation token. Closing cancels the token (the accept task drops the HTTP
//! connection; [`Revocable`] fails every later read and write, including those of an
//! upgraded stream that lives on in an attach task) and shuts the socket down with
//! `shutdown(2)`, which ends the peer's connection at once and wakes every pending read.
//! The duplicate keeps the descriptor number from being reused by another socket while
//! registered; the registration, and so the duplicate, goes when the connection's IO is
//! dropped.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, TcpStream as StdTcpStream};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use berth_tls::{CertId, RevokedSet};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The registry; one per TLS reloader.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Open>,
    revoked: RevokedSet,
}

#[derive(Debug)]
struct Open {
    cert: Option<CertId>,
    /// A duplicate of the connection's socket; `None` if `dup` failed (the token still
    /// closes the connection, only a hijacked stream then waits for its next read or write).
    socket: Option<StdTcpStream>,
    closed: CancellationToken,
}

impl Open {
    fn close(self) {
        self.closed.cancel();
        if let Some(s) = self.socket {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Connections {
    pub(crate) fn new(revoked: RevokedSet) -> Self {
        Connections {
            inner: Mutex::new(Inner {
                revoked,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection that completed its handshake with `cert`. `None` if the
    /// certificate is revoked by now (the handshake began before a reload revoked it).
    pub(crate) fn register(
        self: &Arc<Self>,
        cert: Option<CertId>,
        socket: &TcpStream,
    ) -> Option<Registration> {
        let socket = match socket.as_fd().try_clone_to_owned() {
            Ok(fd) => Some(StdTcpStream::from(fd)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot duplicate a TLS connection's socket; revoking its certificate will close it only on its next read or write");
                None
            }
        };
        let mut inner = self.lock();
        if cert.as_ref().is_some_and(|c| inner.revoked.contains(c)) {
            return None;
        }
        let id = inner.next_id;
        inner.next_id = inner.next_id.wrapping_add(1);
        let closed = CancellationToken::new();
        inner.open.insert(
            id,
            Open {
                cert,
                socket,
                closed: closed.clone(),
            },
        );
        Some(Registration {
            id,
            connections: self.clone(),
            closed,
        })
    }

    /// Makes `revoked` the set new registrations are checked against and closes the open
    /// connections whose certificate it names. Returns how many were closed.
    pub(crate) fn set_revoked(&self, revoked: RevokedSet) -> usize {
        let mut inner = self.lock();
        let ids: Vec<u64> = inner
            .open
            .iter()
            .filter(|(_, o)| o.cert.as_ref().is_some_and(|c| revoked.contains(c)))
            .map(|(id, _)| *id)
            .collect();
        inner.revoked = revoked;
        let closing: Vec<Open> = ids.iter().filter_map(|id| inner.open.remove(id)).collect();
        drop(inner);
        let n = closing.len();
        for open in closing {
            if let Some(cert) = &open.cert {
                tracing::info!(serial = %cert.serial_hex(), "closing a connection: its client certificate is revoked");
            }
            open.close();
        }
        n
    }

    #[cfg(test)]
    fn open_count(&self) -> usize {
        self.lock().open.len()
    }
}

/// One registered connection; unregisters on drop.
#[derive(Debug)]
pub(crate) struct Registration {
    id: u64,
    connections: Arc<Connections>,
    closed: CancellationToken,
}

impl Registration {
    /// Cancelled when the connection's certificate is revoked.
    pub(crate) fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.id);
    }
}

/// A connection's IO that fails every read and write once its certificate is revoked, and
/// keeps the connection registered for as long as it (or the upgraded stream holding it)
/// lives.
pub(crate) struct Revocable<IO> {
    io: IO,
    registration: Registration,
}

impl<IO> Revocable<IO> {
    pub(crate) fn new(io: IO, registration: Registration) -> Self {
        Revocable { io, registration }
    }

    fn check(&self) -> io::Result<()> {
        if self.registration.closed.is_cancelled() {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the client certificate was revoked",
            ))
        } else {
            Ok(())
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Revocable<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Revocable<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair: (server side, client side).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (server, client)
    }

    fn revoked_set(ids: &[CertId]) -> RevokedSet {
        ids.iter().cloned().collect()
    }

    #[tokio::test]
    async fn revoking_closes_a_blocked_reader_and_the_peer_sees_eof() {
        let conns = Arc::new(Connections::default());
        let (server, mut client) = pair().await;
        let bob = CertId::new(b"ca", &[0x4a]);
        let alice = CertId::new(b"ca", &[0x4b]);
        let reg = conns.register(Some(bob.clone()), &server).unwrap();
        let mut io = Revocable::new(server, reg);
        let (server2, mut client2) = pair().await;
        let reg2 = conns.register(Some(alice.clone()), &server2).unwrap();
        let mut io2 = Revocable::new(server2, reg2);
        assert_eq!(conns.open_count(), 2);

        // A read parked on the socket, as an attach task's stdin copy would be.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let r = io.read(&mut buf).await;
            (r.map_err(|e| e.kind()), io)
        });
        assert_eq!(
            conns.set_revoked(revoked_set(std::slice::from_ref(&bob))),
            1
        );
        let (r, mut io) = reader.await.unwrap();
        assert!(
            matches!(r, Ok(0) | Err(io::ErrorKind::ConnectionAborted)),
            "{r:?}"
        );
        assert_eq!(
            io.write_all(b"x").await.unwrap_err().kind(),
            io::ErrorKind::ConnectionAborted
        );
        // The peer's end is closed now, not when the server side is dropped.
        let mut buf = [0u8; 8];
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        drop(io);

        // The other certificate's connection is untouched.
        client2.write_all(b"hi").await.unwrap();
        let n = io2.read(&mut buf).await.unwrap();
        assert_eq!(buf.get(..n), Some(&b"hi"[..]));
        assert_eq!(conns.open_count(), 1);
        drop(io2);
        assert_eq!(conns.open_count(), 0);
    }

    #[tokio::test]
    async fn a_certificate_revoked_before_registration_is_refused() {
        let bob = CertId::new(b"ca", &[1]);
        let conns = Arc::new(Connections::new(revoked_set(std::slice::from_ref(&bob))));
        let (server, _client) = pair().await;
        assert!(conns.register(Some(bob), &server).is_none());
        assert!(conns
            .register(Some(CertId::new(b"other ca", &[1])), &server)
            .is_some());
    }
}

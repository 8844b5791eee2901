//! Waiting, on a hijacked unix-socket connection, until the client has read the `101`
//! answer before the first stream byte goes out, and [`Hijacked`]: the connection an
//! attach or exec continues on.
//!
//! Some clients read the answer's head through a buffered reader and then the stream from
//! the raw socket (docker-py's `exec_run` and `attach`): bytes that arrived together with
//! the head end up in that buffer and are lost. dockerd's slower start hides the race;
//! a 2 ms exec does not, so the stream starts once the kernel says the peer has read
//! everything sent so far (`SIOCOUTQ`), or after [`HEAD_READ_WAIT`].
//!
//! The check needs the connection's own descriptor: hyper's upgrade hands back the unix
//! stream it served ([`Hijacked::of`]), so no connection holds a second descriptor.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;

/// The longest wait for a client to read the `101` answer.
const HEAD_READ_WAIT: Duration = Duration::from_secs(1);
/// How many checks yield to the runtime before the timer paces them. The kernel wakes
/// nobody when a peer reads (a unix socket with room to write stays writable), so this
/// polls; a client on the same machine usually reads the head within microseconds, which
/// tokio's millisecond timer would round up to one or two milliseconds.
const YIELDING_CHECKS: u32 = 64;

/// Returns once the peer has read all that was sent on the unix connection `fd`, or after
/// [`HEAD_READ_WAIT`].
pub async fn until_read(fd: BorrowedFd<'_>) {
    let deadline = Instant::now() + HEAD_READ_WAIT;
    for check in 0u32.. {
        match berth_sys::socket::unread_by_peer(fd) {
            Ok(0) | Err(_) => return,
            Ok(_) if Instant::now() >= deadline => return,
            Ok(_) if check < YIELDING_CHECKS => tokio::task::yield_now().await,
            Ok(_) => tokio::time::sleep(Duration::from_micros(250)).await,
        }
    }
}

/// A connection after its `101`: a unix client's own stream (what hyper had read past
/// the request is served first), or hyper's upgraded connection (TLS).
pub enum Hijacked {
    Unix { early: Bytes, stream: UnixStream },
    Other(TokioIo<hyper::upgrade::Upgraded>),
}

impl Hijacked {
    /// The connection `upgraded` was served on; on a unix socket, once the client has read
    /// the `101` ([`until_read`]). TCP has no such check: the kernel cannot tell.
    pub async fn of(upgraded: hyper::upgrade::Upgraded) -> Hijacked {
        match upgraded.downcast::<TokioIo<UnixStream>>() {
            Ok(parts) => {
                let stream = parts.io.into_inner();
                until_read(stream.as_fd()).await;
                Hijacked::Unix {
                    early: parts.read_buf,
                    stream,
                }
            }
            Err(other) => Hijacked::Other(TokioIo::new(other)),
        }
    }
}

impl AsyncRead for Hijacked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Hijacked::Unix { early, stream } => {
                if early.has_remaining() {
                    let n = early.len().min(buf.remaining());
                    buf.put_slice(&early[..n]);
                    early.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Pin::new(stream).poll_read(cx, buf)
            }
            Hijacked::Other(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Hijacked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Hijacked::Unix { stream, .. } => Pin::new(stream).poll_write(cx, data),
            Hijacked::Other(io) => Pin::new(io).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Hijacked::Unix { stream, .. } => Pin::new(stream).poll_write_vectored(cx, bufs),
            Hijacked::Other(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Hijacked::Unix { stream, .. } => stream.is_write_vectored(),
            Hijacked::Other(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Hijacked::Unix { stream, .. } => Pin::new(stream).poll_flush(cx),
            Hijacked::Other(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Hijacked::Unix { stream, .. } => Pin::new(stream).poll_shutdown(cx),
            Hijacked::Other(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn returns_once_the_peer_has_read_what_was_sent() {
        let (mut server, mut client) = UnixStream::pair().unwrap();
        server.write_all(b"HTTP/1.1 101\r\n\r\n").await.unwrap();
        let mut waiting = Box::pin(until_read(server.as_fd()));
        // Not read yet: the wait must not be over.
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(std::future::Future::poll(waiting.as_mut(), cx)))
                .await;
        assert!(
            polled.is_pending(),
            "returned before the peer read the head"
        );
        let mut head = [0u8; 16];
        client.read_exact(&mut head).await.unwrap();
        waiting.await;
        let unread = berth_sys::socket::unread_by_peer(server.as_fd()).unwrap();
        assert_eq!(unread, 0);
    }

    /// Through hyper's real upgrade: a unix client's hijacked connection is its own
    /// stream (no second descriptor), the bytes it sent right after the request come
    /// first, and the stream starts only once the client has read the `101`.
    #[tokio::test]
    async fn a_unix_upgrade_gives_back_the_stream_with_the_early_bytes() {
        let (server, mut client) = UnixStream::pair().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            let on_upgrade = hyper::upgrade::on(&mut req);
            let tx = tx.lock().unwrap().take();
            tokio::spawn(async move {
                let mut io = Hijacked::of(on_upgrade.await.unwrap()).await;
                let unix = matches!(io, Hijacked::Unix { .. });
                let mut got = [0u8; 5];
                io.read_exact(&mut got).await.unwrap();
                io.write_all(b"out").await.unwrap();
                let _ = tx.unwrap().send((unix, got));
            });
            async {
                hyper::Response::builder()
                    .status(101)
                    .header("Connection", "Upgrade")
                    .header("Upgrade", "tcp")
                    .body(http_body_util::Empty::<Bytes>::new())
            }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), service)
                .with_upgrades(),
        );
        client
            .write_all(
                b"POST /x HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly",
            )
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(client.read_u8().await.unwrap());
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
        let mut out = [0u8; 3];
        client.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, b"out");
        let (unix, got) = rx.await.unwrap();
        assert!(unix, "the upgrade did not give back the unix stream");
        assert_eq!(&got, b"early");
    }
}

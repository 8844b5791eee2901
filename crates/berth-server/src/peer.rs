//! Waiting, on a hijacked unix-socket connection, until the client has read the `101`
//! answer before the first stream byte goes out.
//!
//! Some clients read the answer's head through a buffered reader and then the stream from
//! the raw socket (docker-py's `exec_run` and `attach`): bytes that arrived together with
//! the head end up in that buffer and are lost. dockerd's slower start hides the race;
//! a 2 ms exec does not, so the stream starts once the kernel says the peer has read
//! everything sent so far (`SIOCOUTQ`), or after [`HEAD_READ_WAIT`].

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest wait for a client to read the `101` answer.
const HEAD_READ_WAIT: Duration = Duration::from_secs(1);
/// How many checks yield to the runtime before the timer paces them. The kernel wakes
/// nobody when a peer reads (a unix socket with room to write stays writable), so this
/// polls; a client on the same machine usually reads the head within microseconds, which
/// tokio's millisecond timer would round up to one or two milliseconds.
const YIELDING_CHECKS: u32 = 64;

/// A duplicate of a unix-socket connection's descriptor, carried in each request's
/// extensions, to ask the kernel how much the peer has not read.
#[derive(Clone, Debug)]
pub struct PeerProbe(Arc<OwnedFd>);

impl PeerProbe {
    pub fn of(stream: &tokio::net::UnixStream) -> Option<PeerProbe> {
        stream
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(|fd| PeerProbe(Arc::new(fd)))
    }
}

/// Returns once the peer has read all that was sent on the connection, or after
/// [`HEAD_READ_WAIT`]; at once without a probe (TCP: the kernel cannot tell).
pub async fn until_read(probe: Option<PeerProbe>) {
    let Some(probe) = probe else { return };
    let deadline = Instant::now() + HEAD_READ_WAIT;
    for check in 0u32.. {
        match berth_sys::socket::unread_by_peer(probe.0.as_fd()) {
            Ok(0) | Err(_) => return,
            Ok(_) if Instant::now() >= deadline => return,
            Ok(_) if check < YIELDING_CHECKS => tokio::task::yield_now().await,
            Ok(_) => tokio::time::sleep(Duration::from_micros(250)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn returns_once_the_peer_has_read_what_was_sent() {
        let (mut server, mut client) = tokio::net::UnixStream::pair().unwrap();
        let probe = PeerProbe::of(&server);
        server.write_all(b"HTTP/1.1 101\r\n\r\n").await.unwrap();
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut head = [0u8; 16];
            client.read_exact(&mut head).await.unwrap();
            client
        });
        until_read(probe.clone()).await;
        let unread = berth_sys::socket::unread_by_peer(probe.unwrap().0.as_fd()).unwrap();
        assert_eq!(unread, 0, "returned before the peer read the head");
        drop(reader.await.unwrap());
    }
}

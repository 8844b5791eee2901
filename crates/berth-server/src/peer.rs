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
    loop {
        match berth_sys::socket::unread_by_peer(probe.0.as_fd()) {
            Ok(0) | Err(_) => return,
            Ok(_) if Instant::now() >= deadline => return,
            Ok(_) => tokio::time::sleep(Duration::from_micros(250)).await,
        }
    }
}

//! The sha256 state behind [`crate::DigestReader`] and [`crate::DigestWriter`]: inline for
//! small content, moved to a worker thread once a stream proves large.
//!
//! SHA-256 runs at about 1.4 GB/s on one core of our machines, which made it the ceiling of
//! `docker load`, pull and save: the thread that unpacks or writes also hashed every byte.
//! Past [`OFFLOAD_AFTER`] bytes the running state moves to a worker and the caller only
//! copies data into [`CHUNK`]-sized buffers that the worker hashes beside it and hands back
//! for reuse, so hashing and I/O overlap on two cores. Small blobs (configs, manifests)
//! never start a thread; neither does a machine with one core.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::OnceLock;
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

/// Bytes hashed inline before the state moves to a worker.
const OFFLOAD_AFTER: u64 = 4 << 20;
/// Size of the buffers handed to the worker.
const CHUNK: usize = 512 << 10;
/// Buffers in flight to the worker; bounds the memory a stream holds to about
/// `(QUEUE + 2) * CHUNK`.
const QUEUE: usize = 4;

enum Msg {
    Data(Vec<u8>),
    /// The digest of everything sent so far, without ending the stream.
    Snapshot(mpsc::Sender<[u8; 32]>),
}

struct Worker {
    tx: SyncSender<Msg>,
    spare: Receiver<Vec<u8>>,
    handle: JoinHandle<Sha256>,
    pending: Vec<u8>,
}

enum State {
    Inline { sha: Sha256, seen: u64 },
    Offloaded(Worker),
}

/// A sha256 hasher for streams; see the module docs.
pub(crate) struct StreamHasher {
    // `None` only while moving between states.
    state: Option<State>,
}

impl std::fmt::Debug for StreamHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.state {
            Some(State::Offloaded(_)) => "offloaded",
            _ => "inline",
        };
        f.debug_struct("StreamHasher").field("mode", &mode).finish()
    }
}

fn can_offload() -> bool {
    static MULTI_CORE: OnceLock<bool> = OnceLock::new();
    *MULTI_CORE.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() > 1)
            .unwrap_or(false)
    })
}

impl StreamHasher {
    pub(crate) fn new() -> Self {
        StreamHasher {
            state: Some(State::Inline {
                sha: Sha256::new(),
                seen: 0,
            }),
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        match self.state.as_mut().expect("hasher state") {
            State::Inline { sha, seen } => {
                sha.update(data);
                *seen += data.len() as u64;
                if *seen > OFFLOAD_AFTER && can_offload() {
                    self.offload();
                }
            }
            State::Offloaded(w) => {
                while !data.is_empty() {
                    let room = CHUNK - w.pending.len();
                    let (now, rest) = data.split_at(room.min(data.len()));
                    w.pending.extend_from_slice(now);
                    data = rest;
                    if w.pending.len() == CHUNK {
                        w.send_pending();
                    }
                }
            }
        }
    }

    /// Moves the running state to a worker thread; stays inline if none can be started.
    fn offload(&mut self) {
        let Some(State::Inline { sha, seen }) = self.state.take() else {
            unreachable!("offload from inline state only");
        };
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
        let (back, spare) = mpsc::channel::<Vec<u8>>();
        let shared = sha.clone();
        let spawned = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || hash_worker(shared, rx, back));
        self.state = Some(match spawned {
            Ok(handle) => State::Offloaded(Worker {
                tx,
                spare,
                handle,
                pending: Vec::with_capacity(CHUNK),
            }),
            Err(e) => {
                tracing::debug!(error = %e, "cannot start a hashing thread; hashing inline");
                State::Inline { sha, seen }
            }
        });
    }

    /// The digest of everything hashed so far; the stream may go on.
    pub(crate) fn snapshot(&mut self) -> [u8; 32] {
        match self.state.as_mut().expect("hasher state") {
            State::Inline { sha, .. } => sha.clone().finalize().into(),
            State::Offloaded(w) => {
                w.send_pending();
                let (tx, rx) = mpsc::channel();
                w.send(Msg::Snapshot(tx));
                rx.recv().expect("sha256 worker answers")
            }
        }
    }

    /// The digest of the whole stream.
    pub(crate) fn finish(mut self) -> [u8; 32] {
        match self.state.take().expect("hasher state") {
            State::Inline { sha, .. } => sha.finalize().into(),
            State::Offloaded(mut w) => {
                w.send_pending();
                let Worker { tx, handle, .. } = w;
                drop(tx);
                handle.join().expect("sha256 worker").finalize().into()
            }
        }
    }
}

impl Worker {
    fn send_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let next = match self.spare.try_recv() {
            Ok(mut buf) => {
                buf.clear();
                buf
            }
            Err(_) => Vec::with_capacity(CHUNK),
        };
        let full = std::mem::replace(&mut self.pending, next);
        self.send(Msg::Data(full));
    }

    fn send(&self, msg: Msg) {
        // The worker only stops when `tx` is dropped, or by panicking, which `finish`
        // reports through `join`.
        let _ = self.tx.send(msg);
    }
}

fn hash_worker(mut sha: Sha256, rx: Receiver<Msg>, back: mpsc::Sender<Vec<u8>>) -> Sha256 {
    for msg in rx {
        match msg {
            Msg::Data(buf) => {
                sha.update(&buf);
                let _ = back.send(buf);
            }
            Msg::Snapshot(reply) => {
                let _ = reply.send(sha.clone().finalize().into());
            }
        }
    }
    sha
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn small_streams_stay_inline() {
        let mut h = StreamHasher::new();
        h.update(b"abc");
        assert!(matches!(h.state, Some(State::Inline { .. })));
        assert_eq!(h.finish(), reference(b"abc"));
    }

    #[test]
    fn large_streams_hash_the_same_on_a_worker() {
        // Odd piece sizes, so chunk boundaries fall mid-piece; snapshots mid-stream.
        let data: Vec<u8> = (0..(OFFLOAD_AFTER as usize * 2 + 12_345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let mut h = StreamHasher::new();
        let mut done = 0;
        for (i, piece) in data.chunks(100_003).enumerate() {
            h.update(piece);
            done += piece.len();
            if i % 17 == 0 {
                assert_eq!(h.snapshot(), reference(&data[..done]), "after {done} bytes");
            }
        }
        if can_offload() {
            assert!(matches!(h.state, Some(State::Offloaded(_))));
        }
        assert_eq!(h.finish(), reference(&data));
    }

    #[test]
    fn a_dropped_stream_stops_its_worker() {
        let mut h = StreamHasher::new();
        h.update(&vec![7u8; OFFLOAD_AFTER as usize + CHUNK * 3]);
        drop(h); // must not hang or panic
    }
}

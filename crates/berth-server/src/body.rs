//! Request bodies as readers for the engine's blocking workers (load, import, archive
//! upload), read ahead so that neither side waits on the other for every chunk.
//!
//! hyper reads a request body only when it is asked for the next frame, and an engine
//! worker reading through `SyncIoBridge` asks one chunk (~256 KiB) at a time: every chunk
//! cost two thread switches, which on a 2-core machine took a fifth of a `docker load`.
//! Here a task on the runtime pulls frames into a queue of up to [`HIGH_WATER`] bytes and
//! sleeps until the reader has drained it below [`LOW_WATER`]; a waiting reader is woken
//! once [`WAKE_AT`] bytes are queued, the body ends, or the next frame is not there yet. The queue bounds the memory one
//! upload holds.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use bytes::{Buf, Bytes};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;

/// The most bytes queued ahead of the reader.
const HIGH_WATER: usize = 8 << 20;
/// The producer refills once the queue is below this.
const LOW_WATER: usize = 4 << 20;
/// A waiting reader is woken once this much is queued (or the body ended).
const WAKE_AT: usize = 1 << 20;

#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    /// Set when the body ended: `Ok` at its end, `Err` when reading it failed (shared:
    /// every later read returns it again).
    end: Option<Result<(), Arc<axum::Error>>>,
    reader: Option<Waker>,
    /// The reader went away: stop reading the body.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    drained: Notify,
}

/// An `AsyncRead` over a request body, read ahead by a task of its own.
pub struct BodyReadAhead {
    shared: Arc<Shared>,
}

/// Starts reading `body` ahead; see the module docs.
pub fn read_ahead(body: Body) -> BodyReadAhead {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        drained: Notify::new(),
    });
    tokio::spawn(produce(body, shared.clone()));
    BodyReadAhead { shared }
}

async fn produce(mut body: Body, shared: Arc<Shared>) {
    loop {
        loop {
            let notified = shared.drained.notified();
            {
                let q = shared.queue.lock().expect("body queue");
                if q.closed {
                    return;
                }
                if q.bytes < HIGH_WATER {
                    break;
                }
            }
            notified.await;
        }
        // Batch while frames arrive back to back; when the network makes us wait, hand
        // the reader what is queued first.
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                wake_reader(&shared);
                body.frame().await
            }
        };
        let mut q = shared.queue.lock().expect("body queue");
        let ended = match frame {
            None => Some(Ok(())),
            Some(Err(e)) => Some(Err(Arc::new(e))),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => {
                    q.bytes += data.len();
                    q.chunks.push_back(data);
                    None
                }
                _ => None, // trailers or an empty frame
            },
        };
        let done = ended.is_some();
        if done {
            q.end = ended;
        }
        if done || q.bytes >= WAKE_AT {
            if let Some(w) = q.reader.take() {
                w.wake();
            }
        }
        if done {
            return;
        }
    }
}

/// Wakes a waiting reader when something is queued.
fn wake_reader(shared: &Shared) {
    let mut q = shared.queue.lock().expect("body queue");
    if q.bytes > 0 {
        if let Some(w) = q.reader.take() {
            w.wake();
        }
    }
}

impl AsyncRead for BodyReadAhead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut q = self.shared.queue.lock().expect("body queue");
        if q.chunks.is_empty() {
            return match &q.end {
                Some(Ok(())) => Poll::Ready(Ok(())),
                Some(Err(e)) => Poll::Ready(Err(io::Error::other(e.clone()))),
                None => {
                    q.reader = Some(cx.waker().clone());
                    Poll::Pending
                }
            };
        }
        let was_above = q.bytes >= LOW_WATER;
        while buf.remaining() > 0 {
            let Some(front) = q.chunks.front_mut() else {
                break;
            };
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front[..n]);
            front.advance(n);
            if front.is_empty() {
                q.chunks.pop_front();
            }
            q.bytes -= n;
        }
        if was_above && q.bytes < LOW_WATER {
            self.shared.drained.notify_one();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for BodyReadAhead {
    fn drop(&mut self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.closed = true;
            q.chunks.clear();
        }
        self.shared.drained.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn reads_the_whole_body_in_order() {
        let chunks: Vec<Result<Bytes, io::Error>> = (0..200u32)
            .map(|i| Ok(Bytes::from(vec![(i % 251) as u8; 100_000 + i as usize])))
            .collect();
        let want: Vec<u8> = chunks
            .iter()
            .flat_map(|c| c.as_ref().unwrap().to_vec())
            .collect();
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let mut got = Vec::new();
        read_ahead(body).read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want);
    }

    #[tokio::test]
    async fn a_broken_body_is_a_read_error() {
        let chunks: Vec<Result<Bytes, io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("connection reset")),
        ];
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let mut got = Vec::new();
        let err = read_ahead(body).read_to_end(&mut got).await.unwrap_err();
        assert!(err.to_string().contains("connection reset"), "{err}");
        assert_eq!(got, b"abc");
    }
}

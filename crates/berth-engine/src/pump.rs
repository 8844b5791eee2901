//! A request body handed to a blocking thread in large chunks: [`pump`] reads the body in
//! the request's own task and [`ChunkReceiver`] is its `Read` end on the thread (archive
//! uploads, build contexts). A thread woken for every network frame made context switches
//! the largest cost of a copy on two cores.

use std::io;

use tokio::sync::mpsc;

use crate::images::BodyReader;

/// Size of the chunks the request body is handed to the blocking thread in.
const PUMP_CHUNK: usize = 1 << 20;
/// Chunks in flight between them.
const PUMP_CHUNKS: usize = 8;
/// The most of a refused upload read (and dropped) before answering.
pub(crate) const DRAIN_MAX: u64 = 256 << 20;

/// The two ends: give the receiver to the blocking thread, then run [`Pump::run`].
pub(crate) fn channel() -> (Pump, ChunkReceiver) {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(PUMP_CHUNKS);
    let (spare_tx, spare_rx) = std::sync::mpsc::channel();
    (
        Pump {
            tx,
            spare: spare_rx,
        },
        ChunkReceiver {
            rx,
            spare: spare_tx,
            cur: Vec::new(),
            pos: 0,
        },
    )
}

/// The request task's end.
pub(crate) struct Pump {
    tx: mpsc::Sender<Vec<u8>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Pump {
    /// Reads `body` into `PUMP_CHUNK`-sized chunks for the receiver until it ends or the
    /// receiver is gone (its reading stopped: the caller then drains what is left, see
    /// [`drain`]). Buffers come back for reuse, so that a long upload allocates (and
    /// faults in) a few only.
    pub(crate) async fn run(self, body: &mut BodyReader) -> io::Result<()> {
        use tokio::io::AsyncReadExt;
        loop {
            let mut buf = self
                .spare
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(PUMP_CHUNK));
            buf.clear();
            let mut ended = false;
            while buf.len() < PUMP_CHUNK {
                let room = (PUMP_CHUNK - buf.len()) as u64;
                if (&mut *body).take(room).read_buf(&mut buf).await? == 0 {
                    ended = true;
                    break;
                }
            }
            if !buf.is_empty() && self.tx.send(buf).await.is_err() {
                return Ok(());
            }
            if ended {
                return Ok(());
            }
        }
    }
}

/// Reads (and drops) at most [`DRAIN_MAX`] more of `body`: a client still sending when
/// the request is refused then gets the answer rather than a broken pipe.
pub(crate) async fn drain(body: BodyReader) {
    let _ = tokio::io::copy(
        &mut tokio::io::AsyncReadExt::take(body, DRAIN_MAX),
        &mut tokio::io::sink(),
    )
    .await;
}

/// The blocking thread's end of [`Pump::run`]'s channel.
pub(crate) struct ChunkReceiver {
    rx: mpsc::Receiver<Vec<u8>>,
    spare: std::sync::mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl io::Read for ChunkReceiver {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(b) => {
                    let used = std::mem::replace(&mut self.cur, b);
                    if used.capacity() > 0 {
                        let _ = self.spare.send(used);
                    }
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let left = self.cur.get(self.pos..).unwrap_or_default();
        let n = buf.len().min(left.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_receiver_reads_the_whole_body_in_order() {
        let want: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut body: BodyReader = Box::new(std::io::Cursor::new(want.clone()));
        let (pump, mut rx) = channel();
        let reader = crate::blocking::spawn(move || {
            let mut got = Vec::new();
            io::Read::read_to_end(&mut rx, &mut got).map(|_| got)
        });
        pump.run(&mut body).await.unwrap();
        let got = reader.await.unwrap().unwrap();
        assert!(got == want, "{} bytes of {}", got.len(), want.len());
    }
}

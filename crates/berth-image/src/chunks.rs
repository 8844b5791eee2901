//! Byte streams from a blocking writer (a tar being built: `docker cp` out, export, save;
//! a layer compressed for push) to an async body, in large chunks handed over whole.
//!
//! Owns: the chunk buffers and their reuse. A chunk is a `Bytes` whose owner returns its
//! buffer to the writer's pool once the server has sent it, so a long stream cycles
//! through a few buffers instead of faulting in fresh memory for every megabyte, and each
//! byte is copied once on its way: into the chunk (by `read` straight from a file, or by
//! `write`).

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Size of one chunk, unless the writer is made with another.
pub const CHUNK: usize = 1 << 20;
/// Buffers kept for reuse: the chunks a channel holds, one being sent, one being filled.
const POOL_MAX: usize = 10;

type Pool = Mutex<Vec<Vec<u8>>>;

/// The sending end: fills chunk-sized buffers and sends each when full (and what is
/// left on `flush`). Dropping it without `flush` drops the unsent tail.
pub struct StreamWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    /// Always `chunk` long (initialised once, when first allocated); `filled` bytes used.
    buf: Vec<u8>,
    filled: usize,
    chunk: usize,
    pool: Arc<Pool>,
}

/// A sent chunk: its bytes are `buf[..len]`; the buffer goes back to the pool when the
/// last `Bytes` handle of it is dropped.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    pool: Weak<Pool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let Ok(mut pool) = pool.lock() else {
            return;
        };
        if pool.len() < POOL_MAX {
            pool.push(std::mem::take(&mut self.buf));
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "client went away")
}

impl StreamWriter {
    pub fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> Self {
        Self::with_chunk_size(tx, CHUNK)
    }

    /// A writer sending chunks of `chunk` bytes (at least 1).
    pub fn with_chunk_size(tx: mpsc::Sender<io::Result<Bytes>>, chunk: usize) -> Self {
        let chunk = chunk.max(1);
        StreamWriter {
            tx,
            buf: vec![0; chunk],
            filled: 0,
            chunk,
            pool: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The free part of the current chunk, after sending it if it is full.
    fn room(&mut self) -> io::Result<&mut [u8]> {
        if self.filled == self.chunk {
            self.send()?;
        }
        Ok(&mut self.buf[self.filled..])
    }

    fn send(&mut self) -> io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        let reused = self.pool.lock().ok().and_then(|mut p| p.pop());
        let next = reused.unwrap_or_else(|| vec![0; self.chunk]);
        let chunk = Pooled {
            buf: std::mem::replace(&mut self.buf, next),
            len: std::mem::take(&mut self.filled),
            pool: Arc::downgrade(&self.pool),
        };
        self.tx
            .blocking_send(Ok(Bytes::from_owner(chunk)))
            .map_err(|_| gone())
    }

    /// Appends exactly `len` bytes read from `r` (a file: read straight into the chunk).
    /// A source that ends early is padded with zeros, so that a file shrinking while it
    /// is archived cannot shift the entries after it.
    pub fn read_exact_from(&mut self, r: &mut impl Read, len: u64) -> io::Result<()> {
        let mut left = len;
        let mut eof = false;
        while left > 0 {
            let room = self.room()?;
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(room.len());
            let got = read_or_zeros(r, &mut room[..n], &mut eof)?;
            self.filled += got;
            left -= got as u64;
        }
        Ok(())
    }
}

/// Reads some of `r` into `buf`; once `r` has ended (`eof` set), fills `buf` with zeros
/// instead. How an archiver keeps the size its header promised for a file that shrank.
pub fn read_or_zeros(r: &mut impl Read, buf: &mut [u8], eof: &mut bool) -> io::Result<usize> {
    loop {
        if *eof {
            buf.fill(0);
            return Ok(buf.len());
        }
        match r.read(buf) {
            Ok(0) if !buf.is_empty() => *eof = true,
            Ok(got) => return Ok(got),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl Write for StreamWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.room()?;
        let n = data.len().min(room.len());
        room[..n].copy_from_slice(&data[..n]);
        self.filled += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(mut rx: mpsc::Receiver<io::Result<Bytes>>) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Ok(item) = rx.try_recv() {
            out.push(item.unwrap());
        }
        out
    }

    #[test]
    fn chunks_are_full_and_buffers_come_back() {
        let (tx, rx) = mpsc::channel(16);
        let mut w = StreamWriter::new(tx);
        let data: Vec<u8> = (0..3 * CHUNK + 100).map(|i| (i % 251) as u8).collect();
        w.write_all(&data[..10]).unwrap();
        w.read_exact_from(&mut &data[10..], (data.len() - 10) as u64)
            .unwrap();
        w.flush().unwrap();
        let chunks = collect(rx);
        assert_eq!(
            chunks.iter().map(Bytes::len).collect::<Vec<_>>(),
            [CHUNK, CHUNK, CHUNK, 100]
        );
        assert_eq!(chunks.concat(), data);
        drop(chunks);
        assert_eq!(w.pool.lock().unwrap().len(), 4);
    }

    #[test]
    fn a_short_source_is_padded_with_zeros() {
        let (tx, rx) = mpsc::channel(4);
        let mut w = StreamWriter::new(tx);
        w.read_exact_from(&mut &b"abc"[..], 6).unwrap();
        w.flush().unwrap();
        assert_eq!(collect(rx).concat(), b"abc\0\0\0");
    }

    #[test]
    fn a_gone_reader_is_a_broken_pipe() {
        let (tx, rx) = mpsc::channel(4);
        drop(rx);
        let mut w = StreamWriter::new(tx);
        w.write_all(b"x").unwrap();
        assert_eq!(w.flush().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}

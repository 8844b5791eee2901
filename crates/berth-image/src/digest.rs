//! Streaming hashers: a `Read` and a `Write` that compute the digest of the bytes passing
//! through them (the sha256 state may move to a worker thread, see `hasher`).
//!
//! The [`Digest`] type itself, its parser and its errors live in `berth-api-types` (shared
//! with the CLI); they are re-exported here so that `berth_image::digest::Digest` keeps
//! working.

use std::io::{self, Read, Write};

pub use berth_api_types::digest::{Digest, DigestError, SHORT_ID_LEN};

use crate::hasher::StreamHasher;

/// A `Write` that hashes and counts every byte it passes on to `inner`.
///
/// Use `DigestWriter::new(io::sink())` to only hash.
#[derive(Debug)]
pub struct DigestWriter<W> {
    inner: W,
    hasher: StreamHasher,
    written: u64,
}

impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            hasher: StreamHasher::new(),
            written: 0,
        }
    }

    /// The digest of everything written so far.
    pub fn digest(&mut self) -> Digest {
        Digest::from_bytes(self.hasher.snapshot())
    }

    /// How many bytes were written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks what was written against `expected`.
    pub fn verify(&mut self, expected: &Digest) -> Result<(), DigestError> {
        check(expected, self.digest())
    }

    /// The inner writer, the digest and the byte count.
    pub fn into_parts(self) -> (W, Digest, u64) {
        let digest = Digest::from_bytes(self.hasher.finish());
        (self.inner, digest, self.written)
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Read` that hashes and counts every byte read through it.
#[derive(Debug)]
pub struct DigestReader<R> {
    inner: R,
    hasher: StreamHasher,
    hashing: bool,
    read: u64,
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R) -> Self {
        DigestReader {
            inner,
            hasher: StreamHasher::new(),
            hashing: true,
            read: 0,
        }
    }

    /// Stops hashing (bytes are still counted) when another reader already hashes the
    /// same bytes; `digest` is then meaningless and must not be used.
    pub fn stop_hashing(&mut self) {
        self.hashing = false;
    }

    /// The digest of everything read so far.
    pub fn digest(&mut self) -> Digest {
        Digest::from_bytes(self.hasher.snapshot())
    }

    /// How many bytes were read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Checks what was read against `expected`.
    pub fn verify(&mut self, expected: &Digest) -> Result<(), DigestError> {
        check(expected, self.digest())
    }

    /// The inner reader, the digest and the byte count.
    pub fn into_parts(self) -> (R, Digest, u64) {
        let digest = Digest::from_bytes(self.hasher.finish());
        (self.inner, digest, self.read)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.hashing {
            self.hasher.update(&buf[..n]);
        }
        self.read += n as u64;
        Ok(n)
    }
}

fn check(expected: &Digest, actual: Digest) -> Result<(), DigestError> {
    if *expected == actual {
        Ok(())
    } else {
        Err(DigestError::Mismatch {
            expected: *expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_hashes_counts_and_verifies() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        assert_eq!(w.written(), 11);
        assert_eq!(w.digest(), Digest::of(b"hello world"));
        w.verify(&Digest::of(b"hello world")).unwrap();
        let err = w.verify(&Digest::of(b"x")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("digest mismatch: expected sha256:"));
        let (inner, digest, n) = w.into_parts();
        assert_eq!(inner, b"hello world");
        assert_eq!(digest, Digest::of(b"hello world"));
        assert_eq!(n, 11);
    }

    #[test]
    fn reader_hashes_what_passes_through() {
        let mut r = DigestReader::new(&b"some layer bytes"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.bytes_read(), 16);
        r.verify(&Digest::of(b"some layer bytes")).unwrap();
        let (_, d, n) = r.into_parts();
        assert_eq!((d, n), (Digest::of(b"some layer bytes"), 16));
    }
}

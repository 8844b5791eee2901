//! The gzip encoder of pushes: one gzip member (RFC 1952) whose deflate body keeps
//! incompressible stretches as stored blocks and deflates the rest.
//!
//! Layers kept as plain tar are gzip-compressed on their way to a registry. Most of a real
//! layer (binaries, text) compresses well, but parts of it (and every byte of an image of
//! already-compressed or random data) do not, and a deflate compressor spends as long on
//! those bytes as on any others only to emit them about as large as they came. Like
//! klauspost's `compress` that podman (containers/image) uses, this writer notices such data
//! and skips it: the input is cut into [`SEGMENT`]-sized segments, a sample of each is
//! byte-histogrammed, and a segment whose order-0 entropy is close to 8 bits a byte (deflate
//! could not win more than a percent or so) is written as stored blocks, at the cost of a
//! copy. Other segments go to a raw deflate compressor (flate2, miniz_oxide) at the
//! configured level; consecutive compressed segments share its window and blocks, and it is
//! sync-flushed (byte-aligned, not final) only where a stored run begins, then reset, since
//! its window then no longer matches the output. Level 0 stores everything.
//!
//! Owns the gzip framing (header, CRC-32 and ISIZE trailer), the stored/deflated choice and
//! the deflate block layout; writes only to the `Write` it wraps. The output is a plain
//! single-member gzip that any gzip reader accepts.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Input bytes classified together, and the most input handed to the compressor at once.
pub const SEGMENT: usize = 64 * 1024;
/// Largest payload of one stored deflate block (its LEN field is 16 bits).
const STORED_MAX: usize = 0xffff;
/// Slices of a segment that are byte-histogrammed, spread across it ...
const SAMPLE_SLICES: usize = 4;
/// ... each this long (a sample of 8 KiB for a full segment).
const SAMPLE_SLICE: usize = 2048;
/// Estimated order-0 entropy, in bits a byte, from which a segment is stored. Random data
/// estimates at about 7.98 on an 8 KiB sample (the estimate is biased low by about
/// 255 / (2 n ln 2)); text is near 5, machine code near 6. At the threshold Huffman coding
/// alone could save no more than about 1.5%.
const STORE_ENTROPY: f64 = 7.88;
/// Output buffer of the compressor.
const OUT_CAP: usize = 128 * 1024;

/// Gzip header: magic, CM = deflate, no flags, no mtime; XFL and OS are filled in.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
/// A final, empty stored block (BFINAL = 1, BTYPE = 00, LEN = 0, NLEN = 0xffff).
const FINAL_EMPTY_STORED: [u8; 5] = [0x01, 0x00, 0x00, 0xff, 0xff];

/// A gzip encoder; see the module docs. Call [`GzipWriter::finish`] to end the stream:
/// dropping it leaves the output truncated. After a write error it must not be used again.
pub struct GzipWriter<W: Write> {
    inner: W,
    /// `None` at level 0.
    deflate: Option<Compress>,
    /// The compressor holds input or an open block: flush it before storing.
    deflating: bool,
    /// The compressor has seen input since its last reset.
    used: bool,
    /// Input not yet classified; shorter than [`SEGMENT`].
    pending: Vec<u8>,
    out: Vec<u8>,
    crc: Crc,
    header: [u8; 10],
    header_written: bool,
    stored_bytes: u64,
}

impl<W: Write> std::fmt::Debug for GzipWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipWriter")
            .field("compresses", &self.deflate.is_some())
            .field("stored_bytes", &self.stored_bytes)
            .finish_non_exhaustive()
    }
}

impl<W: Write> GzipWriter<W> {
    /// A writer at `level` (0 to 9; more is taken as 9; 0 stores everything).
    pub fn new(inner: W, level: u32) -> Self {
        let level = level.min(9);
        let mut header = HEADER;
        // XFL as gzip and flate2 write it: 2 for the slowest level, 4 for the fastest.
        header[8] = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        GzipWriter {
            inner,
            deflate: (level > 0).then(|| Compress::new(Compression::new(level), false)),
            deflating: false,
            used: false,
            pending: Vec::new(),
            out: Vec::new(),
            crc: Crc::new(),
            header,
            header_written: false,
            stored_bytes: 0,
        }
    }

    /// How many input bytes went out as stored blocks so far.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    /// Ends the stream (last blocks, CRC-32 and ISIZE) and returns the wrapped writer,
    /// not flushed.
    pub fn finish(mut self) -> io::Result<W> {
        let last = std::mem::take(&mut self.pending);
        self.crc.update(&last);
        self.write_header()?;
        if self.deflating || (!last.is_empty() && self.compressible(&last)) {
            self.deflate(&last, FlushCompress::Finish)?;
        } else {
            self.store(&last, true)?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.inner.write_all(&trailer)?;
        Ok(self.inner)
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.inner.write_all(&self.header)?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Encodes one full segment.
    fn segment(&mut self, data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        self.write_header()?;
        if self.compressible(data) {
            self.deflate(data, FlushCompress::None)
        } else {
            self.store(data, false)
        }
    }

    fn compressible(&self, data: &[u8]) -> bool {
        self.deflate.is_some() && sample_entropy(data) < STORE_ENTROPY
    }

    /// Writes `data` as stored blocks, the last one final when `last` (an empty final block
    /// when `data` is empty).
    fn store(&mut self, data: &[u8], last: bool) -> io::Result<()> {
        if self.deflating {
            // End the compressor's open block byte-aligned and not final.
            self.deflate(&[], FlushCompress::Sync)?;
            self.deflating = false;
        }
        if data.is_empty() {
            if last {
                self.inner.write_all(&FINAL_EMPTY_STORED)?;
            }
            return Ok(());
        }
        let mut blocks = data.chunks(STORED_MAX).peekable();
        while let Some(block) = blocks.next() {
            let len = block.len() as u16;
            let bfinal = u8::from(last && blocks.peek().is_none());
            let [l0, l1] = len.to_le_bytes();
            let [n0, n1] = (!len).to_le_bytes();
            self.inner.write_all(&[bfinal, l0, l1, n0, n1])?;
            self.inner.write_all(block)?;
        }
        self.stored_bytes += data.len() as u64;
        Ok(())
    }

    /// Feeds `data` to the compressor and writes what it gives out; with `Sync` or `Finish`
    /// until it has given everything.
    fn deflate(&mut self, mut data: &[u8], flush: FlushCompress) -> io::Result<()> {
        let Some(c) = self.deflate.as_mut() else {
            return Err(io::Error::other("gzip: no compressor at level 0"));
        };
        if !self.deflating && self.used {
            // Stored bytes went out since it last ran: its window is stale.
            c.reset();
        }
        self.deflating = true;
        self.used = true;
        if self.out.capacity() < OUT_CAP {
            self.out.reserve_exact(OUT_CAP);
        }
        loop {
            self.out.clear();
            let before = c.total_in();
            let status = c
                .compress_vec(data, &mut self.out, flush)
                .map_err(|e| io::Error::other(format!("gzip: deflate failed: {e}")))?;
            let consumed = (c.total_in() - before) as usize;
            data = &data[consumed..];
            let full = self.out.len() == self.out.capacity();
            if !self.out.is_empty() {
                self.inner.write_all(&self.out)?;
            }
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                FlushCompress::None => data.is_empty(),
                _ => data.is_empty() && !full,
            };
            if done {
                break;
            }
            if consumed == 0 && self.out.is_empty() && status == Status::BufError {
                return Err(io::Error::other("gzip: deflate made no progress"));
            }
        }
        if matches!(flush, FlushCompress::Finish) {
            self.deflating = false;
        }
        Ok(())
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        if !self.pending.is_empty() {
            let take = (SEGMENT - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < SEGMENT {
                return Ok(buf.len());
            }
            let seg = std::mem::take(&mut self.pending);
            self.segment(&seg)?;
            self.pending = seg;
            self.pending.clear();
        }
        let mut whole = rest.chunks_exact(SEGMENT);
        for seg in whole.by_ref() {
            self.segment(seg)?;
        }
        let tail = whole.remainder();
        if !tail.is_empty() {
            if self.pending.capacity() < SEGMENT {
                self.pending.reserve_exact(SEGMENT);
            }
            self.pending.extend_from_slice(tail);
        }
        Ok(buf.len())
    }

    /// Flushes the wrapped writer only: buffered input stays until a segment fills or the
    /// stream is finished.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The order-0 entropy, in bits a byte, of a sample of `data`: [`SAMPLE_SLICES`] slices
/// of [`SAMPLE_SLICE`] bytes spread evenly across it, or all of it when shorter.
fn sample_entropy(data: &[u8]) -> f64 {
    // Four tables, so that runs of one byte value do not serialize on one counter.
    let mut counts = [[0u32; 256]; 4];
    let mut count = |slice: &[u8]| {
        let mut quads = slice.chunks_exact(4);
        for q in quads.by_ref() {
            counts[0][usize::from(q[0])] += 1;
            counts[1][usize::from(q[1])] += 1;
            counts[2][usize::from(q[2])] += 1;
            counts[3][usize::from(q[3])] += 1;
        }
        for &b in quads.remainder() {
            counts[0][usize::from(b)] += 1;
        }
    };
    let mut n = 0usize;
    if data.len() <= SAMPLE_SLICES * SAMPLE_SLICE {
        count(data);
        n = data.len();
    } else {
        let stride = (data.len() - SAMPLE_SLICE) / (SAMPLE_SLICES - 1);
        for i in 0..SAMPLE_SLICES {
            let start = i * stride;
            count(&data[start..start + SAMPLE_SLICE]);
            n += SAMPLE_SLICE;
        }
    }
    if n == 0 {
        return 0.0;
    }
    let total = n as f64;
    let mut sum = 0.0;
    let [c0, c1, c2, c3] = &counts;
    for (((a, b), c), d) in c0.iter().zip(c1).zip(c2).zip(c3) {
        let c = a + b + c + d;
        if c > 0 {
            let c = f64::from(c);
            sum += c * c.log2();
        }
    }
    total.log2() - sum / total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A xorshift generator: random-looking, incompressible bytes without a dependency.
    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            v.extend_from_slice(&s.to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// Text-like, compressible bytes.
    fn text(len: usize) -> Vec<u8> {
        let words = [
            "layer", "tar", "usr/bin/", "lib", "the", "registry", "manifest", "config", "\n",
            "sha256", "0755", "root", "ELF", "data", " ", "push",
        ];
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut v = Vec::with_capacity(len + 16);
        while v.len() < len {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            v.extend_from_slice(words[(s % words.len() as u64) as usize].as_bytes());
            if s.is_multiple_of(7) {
                v.extend_from_slice(format!("{}", s % 100_000).as_bytes());
            }
        }
        v.truncate(len);
        v
    }

    fn mixed(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            let n = 10_000 + (i as usize * 37_123) % 300_000;
            if i.is_multiple_of(2) {
                v.extend(text(n));
            } else {
                v.extend(random(n, i));
            }
            i += 1;
        }
        v.truncate(len);
        v
    }

    /// Encodes `data` at `level`, written in pieces of `piece` bytes.
    fn encode(data: &[u8], level: u32, piece: usize) -> Vec<u8> {
        let mut w = GzipWriter::new(Vec::new(), level);
        for p in data.chunks(piece.max(1)) {
            w.write_all(p).unwrap();
        }
        w.finish().unwrap()
    }

    fn decode(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        let mut multi = Vec::new();
        flate2::read::MultiGzDecoder::new(gz)
            .read_to_end(&mut multi)
            .unwrap();
        assert_eq!(out, multi);
        out
    }

    fn check_trailer(gz: &[u8], data: &[u8]) {
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        let n = gz.len();
        let crc = u32::from_le_bytes(gz[n - 8..n - 4].try_into().unwrap());
        let isize = u32::from_le_bytes(gz[n - 4..].try_into().unwrap());
        let mut c = Crc::new();
        c.update(data);
        assert_eq!(crc, c.sum());
        assert_eq!(isize, data.len() as u32);
    }

    fn gzip_cli(gz: &[u8]) -> Option<Vec<u8>> {
        let mut child = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take().unwrap();
        let input = gz.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success(), "gzip -dc failed");
        Some(out.stdout)
    }

    fn inputs() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("empty", Vec::new()),
            ("one byte", vec![42]),
            ("random small", random(1000, 1)),
            ("random", random(3 * SEGMENT + 12_345, 2)),
            ("zeros", vec![0; 2 * SEGMENT + 7]),
            ("text", text(5 * SEGMENT + 999)),
            ("mixed", mixed(3_000_000)),
            ("exact segments", text(4 * SEGMENT)),
            ("long stored run", random(STORED_MAX * 3 + SEGMENT, 3)),
        ]
    }

    #[test]
    fn round_trips_through_flate2() {
        for (name, data) in inputs() {
            for level in [0, 1, 6, 9] {
                for piece in [1 << 20, SEGMENT, 4096, 777] {
                    let gz = encode(&data, level, piece);
                    assert_eq!(decode(&gz), data, "{name} level {level} piece {piece}");
                    check_trailer(&gz, &data);
                }
            }
        }
    }

    #[test]
    fn round_trips_through_gzip_cli() {
        for (name, data) in inputs() {
            for level in [0, 1] {
                let gz = encode(&data, level, 100_000);
                match gzip_cli(&gz) {
                    Some(out) => assert!(out == data, "{name} level {level}: gzip -dc differs"),
                    None => return, // no gzip binary
                }
            }
        }
    }

    #[test]
    fn single_byte_writes() {
        let data = mixed(200_000);
        let gz = encode(&data, 1, 1);
        assert_eq!(decode(&gz), data);
    }

    #[test]
    fn random_data_is_stored() {
        let data = random(1 << 20, 9);
        let mut w = GzipWriter::new(Vec::new(), 1);
        w.write_all(&data).unwrap();
        assert_eq!(w.stored_bytes(), data.len() as u64);
        let gz = w.finish().unwrap();
        // Two stored blocks a segment (64 KiB is one byte over a block), then the final
        // empty one: 5 bytes of block header each.
        let blocks = data.len() / SEGMENT * SEGMENT.div_ceil(STORED_MAX) + 1;
        assert_eq!(gz.len(), 10 + data.len() + 5 * blocks + 8);
        assert_eq!(decode(&gz), data);
    }

    #[test]
    fn level_zero_stores_everything() {
        let data = text(300_000);
        let gz = encode(&data, 0, 1 << 20);
        assert!(gz.len() > data.len());
        assert_eq!(decode(&gz), data);
    }

    /// Compressible data compresses about as well as a plain level-1 gzip, and a mix of
    /// data stores the random part and compresses the rest.
    #[test]
    fn compresses_like_flate2() {
        for (name, data, slack) in [
            ("text", text(2_000_000), 1.01),
            ("zeros", vec![0; 2_000_000], 1.01),
            ("mixed", mixed(4_000_000), 1.02),
        ] {
            let ours = encode(&data, 1, 1 << 20).len();
            let mut plain = flate2::write::GzEncoder::new(Vec::new(), Compression::new(1));
            plain.write_all(&data).unwrap();
            let plain = plain.finish().unwrap().len();
            assert!(
                ours as f64 <= plain as f64 * slack,
                "{name}: {ours} vs flate2 {plain}"
            );
        }
    }

    #[test]
    fn entropy_estimates() {
        assert!(sample_entropy(&random(SEGMENT, 5)) > STORE_ENTROPY);
        assert!(sample_entropy(&text(SEGMENT)) < 6.0);
        assert!(sample_entropy(&[7; SEGMENT]) < 0.01);
        assert_eq!(sample_entropy(&[]), 0.0);
    }
}

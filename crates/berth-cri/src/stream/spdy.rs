//! SPDY/3.1 framing and the server's side of a session, as the kubelet's streaming clients
//! speak it (client-go's remotecommand and portforward over moby/spdystream): frames
//! SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE and
//! DATA; header blocks compressed with one zlib stream per direction and the SPDY/3
//! dictionary. The client opens every stream; [`Session`] answers each SYN_STREAM with a
//! SYN_REPLY and hands the stream over, its data arriving in pieces of at most [`CHUNK`]
//! bytes through a small queue (a slow consumer holds the reading back, as spdystream
//! does, so what is buffered stays bounded).
//!
//! Flow control: the session sends WINDOW_UPDATE for what it took in (for the stream and,
//! as SPDY/3.1 has it, the session), so a client that keeps to its windows never stalls;
//! its own sending is not held to the client's windows, as spdystream neither sends
//! WINDOW_UPDATE nor counts them.
//!
//! Hostile input: a control frame over [`MAX_CONTROL`] bytes, a header block that inflates
//! past [`MAX_HEADER_BLOCK`], bad zlib data, a wrong version or a malformed frame end the
//! session; a stream over [`Session::start`]'s limit is refused with RST_STREAM.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Mutex};

/// The protocol version on the wire (SPDY/3.1 frames say 3).
pub(crate) const VERSION: u16 = 3;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

const FLAG_FIN: u8 = 0x01;
const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes.
pub(crate) const PROTOCOL_ERROR: u32 = 1;
pub(crate) const REFUSED_STREAM: u32 = 3;

/// The largest control frame payload read (header blocks here are a few dozen bytes).
pub(crate) const MAX_CONTROL: usize = 64 * 1024;
/// The most bytes one header block may inflate to.
pub(crate) const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The largest piece of data handed over or sent in one frame.
pub(crate) const CHUNK: usize = 32 * 1024;
/// Pieces queued per stream before reading waits for its consumer.
const QUEUE: usize = 8;
/// The window SPDY/3.1 starts every stream and the session with.
const INITIAL_WINDOW: u32 = 64 * 1024;
/// How long a finished session waits for the client to close before dropping it.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpdyError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("control frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("bad header block: {0}")]
    HeaderBlock(String),
}

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1).
pub(crate) const DICTIONARY: &[u8] = b"\
\0\0\0\x07options\0\0\0\x04head\0\0\0\x04post\0\0\0\x03put\0\0\0\x06delete\0\0\0\x05trac\
e\0\0\0\x06accept\0\0\0\x0eaccept-charset\0\0\0\x0faccept-encoding\0\0\0\x0faccept-langu\
age\0\0\0\x0daccept-ranges\0\0\0\x03age\0\0\0\x05allow\0\0\0\x0dauthorization\0\0\0\x0dc\
ache-control\0\0\0\x0aconnection\0\0\0\x0ccontent-base\0\0\0\x10content-encoding\0\0\0\
\x10content-language\0\0\0\x0econtent-length\0\0\0\x10content-location\0\0\0\x0bcontent-\
md5\0\0\0\x0dcontent-range\0\0\0\x0ccontent-type\0\0\0\x04date\0\0\0\x04etag\0\0\0\x06ex\
pect\0\0\0\x07expires\0\0\0\x04from\0\0\0\x04host\0\0\0\x08if-match\0\0\0\x11if-modified\
-since\0\0\0\x0dif-none-match\0\0\0\x08if-range\0\0\0\x13if-unmodified-since\0\0\0\x0dla\
st-modified\0\0\0\x08location\0\0\0\x0cmax-forwards\0\0\0\x06pragma\0\0\0\x12proxy-authe\
nticate\0\0\0\x13proxy-authorization\0\0\0\x05range\0\0\0\x07referer\0\0\0\x0bretry-afte\
r\0\0\0\x06server\0\0\0\x02te\0\0\0\x07trailer\0\0\0\x11transfer-encoding\0\0\0\x07upgra\
de\0\0\0\x0auser-agent\0\0\0\x04vary\0\0\0\x03via\0\0\0\x07warning\0\0\0\x10www-authenti\
cate\0\0\0\x06method\0\0\0\x03get\0\0\0\x06status\0\0\0\x06200 OK\0\0\0\x07version\0\0\0\
\x08HTTP/1.1\0\0\0\x03url\0\0\0\x06public\0\0\0\x0aset-cookie\0\0\0\x0akeep-alive\0\0\0\
\x06origin100101201202205206300302303304305306307402405406407408409410411412413414415416\
417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad \
Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implem\
ented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mo\
n, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,appl\
ication/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,d\
eflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.\
";

/// A header block's names and values (names lower-case; several values of one name are
/// joined by NUL bytes, as on the wire).
pub(crate) type Headers = Vec<(String, String)>;

/// The first value of header `name`.
pub(crate) fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.split('\0').next())
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(s))
}

/// The client's header blocks, inflated with one zlib stream for the session.
pub(crate) struct Inflater {
    z: Decompress,
    dictionary_set: bool,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater {
            z: Decompress::new(true),
            dictionary_set: false,
        }
    }
}

impl Inflater {
    /// Inflates one header block (the stream goes on: the client flushes, not ends, it).
    pub(crate) fn block(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let bad = |e: &dyn std::fmt::Display| SpdyError::HeaderBlock(e.to_string());
        let mut out = Vec::with_capacity(1024);
        let mut used = 0usize;
        loop {
            if out.capacity() - out.len() < 256 {
                if out.len() > MAX_HEADER_BLOCK {
                    return Err(SpdyError::HeaderBlock(format!(
                        "inflates past {MAX_HEADER_BLOCK} bytes"
                    )));
                }
                out.reserve(4096);
            }
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let rest = input.get(used..).unwrap_or_default();
            let result = self.z.decompress_vec(rest, &mut out, FlushDecompress::Sync);
            let took = usize::try_from(self.z.total_in() - in0).map_err(|e| bad(&e))?;
            used = used.saturating_add(took);
            let gave = self.z.total_out() - out0;
            match result {
                Ok(flate2::Status::StreamEnd) if used < input.len() => {
                    return Err(SpdyError::HeaderBlock(
                        "data after the zlib stream's end".into(),
                    ))
                }
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(_) if !self.dictionary_set => {
                        self.dictionary_set = true;
                        self.z.set_dictionary(DICTIONARY).map_err(|e| bad(&e))?;
                        continue;
                    }
                    _ => return Err(bad(&e)),
                },
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::HeaderBlock(format!(
                    "inflates past {MAX_HEADER_BLOCK} bytes"
                )));
            }
            let room_left = out.len() < out.capacity();
            if used >= input.len() && room_left {
                return Ok(out);
            }
            if took == 0 && gave == 0 && room_left {
                return Err(SpdyError::HeaderBlock("truncated zlib data".into()));
            }
        }
    }
}

/// Our header blocks, deflated with one zlib stream for the session.
pub(crate) struct Deflater {
    z: Compress,
}

impl Deflater {
    pub(crate) fn new() -> Result<Self, SpdyError> {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(DICTIONARY)
            .map_err(|e| SpdyError::HeaderBlock(e.to_string()))?;
        Ok(Deflater { z })
    }

    /// Deflates one header block, flushed so that the client can read it whole.
    pub(crate) fn block(&mut self, raw: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut used = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(1024);
            }
            let in0 = self.z.total_in();
            let rest = raw.get(used..).unwrap_or_default();
            self.z
                .compress_vec(rest, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::HeaderBlock(e.to_string()))?;
            used =
                used.saturating_add(usize::try_from(self.z.total_in() - in0).unwrap_or(usize::MAX));
            if used >= raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// A header block, not yet deflated.
pub(crate) fn encode_headers(h: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    for (n, v) in h {
        for s in [n, v] {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// An inflated header block's pairs.
pub(crate) fn decode_headers(b: &[u8]) -> Result<Headers, SpdyError> {
    let bad = |why: &str| SpdyError::HeaderBlock(why.to_string());
    let count = be32(b, 0).ok_or_else(|| bad("no pair count"))? as usize;
    // Each pair takes at least 8 bytes: a count beyond that is a lie.
    if count > b.len() / 8 {
        return Err(bad("more pairs than bytes"));
    }
    let mut at = 4usize;
    let mut out = Vec::with_capacity(count);
    let field = |at: &mut usize| -> Result<String, SpdyError> {
        let len = be32(b, *at).ok_or_else(|| bad("truncated"))? as usize;
        let start = *at + 4;
        let end = start
            .checked_add(len)
            .ok_or_else(|| bad("length overflows"))?;
        let s = b.get(start..end).ok_or_else(|| bad("truncated"))?;
        *at = end;
        String::from_utf8(s.to_vec()).map_err(|_| bad("not UTF-8"))
    };
    for _ in 0..count {
        let name = field(&mut at)?;
        let value = field(&mut at)?;
        if name.is_empty() {
            return Err(bad("an empty header name"));
        }
        out.push((name.to_ascii_lowercase(), value));
    }
    Ok(out)
}

/// A control frame, header and payload.
pub(crate) fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    let len = (payload.len() as u32) & 0x00ff_ffff;
    out.extend_from_slice(&(u32::from(flags) << 24 | len).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A data frame's header.
pub(crate) fn data_head(id: u32, flags: u8, len: usize) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    let len = (len as u32) & 0x00ff_ffff;
    h[4..].copy_from_slice(&(u32::from(flags) << 24 | len).to_be_bytes());
    h
}

/// What a frame header announces.
#[derive(Debug, PartialEq)]
pub(crate) enum Head {
    /// A data frame: its payload of `len` bytes follows, to be read by the caller.
    Data { id: u32, flags: u8, len: usize },
    /// A control frame, its payload read.
    Control {
        kind: u16,
        flags: u8,
        payload: Vec<u8>,
    },
}

/// Reads the next frame header (and a control frame's payload); `None` at a clean end
/// between frames.
pub(crate) async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Head>, SpdyError> {
    let mut h = [0u8; 8];
    let n = r.read(&mut h).await?;
    if n == 0 {
        return Ok(None);
    }
    r.read_exact(&mut h[n..]).await?;
    let [a, b, c, d, flags, l0, l1, l2] = h;
    let len = u32::from_be_bytes([0, l0, l1, l2]) as usize;
    if a & 0x80 == 0 {
        let id = u32::from_be_bytes([a, b, c, d]);
        return Ok(Some(Head::Data { id, flags, len }));
    }
    let version = u16::from_be_bytes([a & 0x7f, b]);
    if version != VERSION {
        return Err(SpdyError::Version(version));
    }
    if len > MAX_CONTROL {
        return Err(SpdyError::TooLarge(len));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(Head::Control {
        kind: u16::from_be_bytes([c, d]),
        flags,
        payload,
    }))
}

/// A control frame, decoded (header blocks inflated).
#[derive(Debug, PartialEq)]
pub(crate) enum Control {
    SynStream {
        id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Ping(u32),
    GoAway,
    /// SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY from a client, or an unknown type: read
    /// (a header block inflated, to keep the zlib stream in step) and let be.
    Ignored,
}

/// Decodes a control frame's payload.
pub(crate) fn decode_control(
    kind: u16,
    flags: u8,
    p: &[u8],
    inflater: &mut Inflater,
) -> Result<Control, SpdyError> {
    let id_at = |at: usize, what| {
        be32(p, at)
            .map(|v| v & 0x7fff_ffff)
            .ok_or(SpdyError::Malformed(what))
    };
    Ok(match kind {
        SYN_STREAM => {
            let id = id_at(0, "SYN_STREAM")?;
            // Associated stream (4), priority and slot (2): the block follows.
            let block = p.get(10..).ok_or(SpdyError::Malformed("SYN_STREAM"))?;
            let headers = decode_headers(&inflater.block(block)?)?;
            Control::SynStream { id, flags, headers }
        }
        SYN_REPLY | HEADERS => {
            id_at(0, "HEADERS")?;
            inflater.block(p.get(4..).unwrap_or_default())?;
            Control::Ignored
        }
        RST_STREAM => {
            if p.len() != 8 {
                return Err(SpdyError::Malformed("RST_STREAM"));
            }
            Control::RstStream {
                id: id_at(0, "RST_STREAM")?,
                status: be32(p, 4).ok_or(SpdyError::Malformed("RST_STREAM"))?,
            }
        }
        SETTINGS => {
            let n = be32(p, 0).ok_or(SpdyError::Malformed("SETTINGS"))? as usize;
            if n.checked_mul(8).and_then(|b| b.checked_add(4)) != Some(p.len()) {
                return Err(SpdyError::Malformed("SETTINGS"));
            }
            Control::Ignored
        }
        PING => {
            if p.len() != 4 {
                return Err(SpdyError::Malformed("PING"));
            }
            Control::Ping(be32(p, 0).ok_or(SpdyError::Malformed("PING"))?)
        }
        GOAWAY => Control::GoAway,
        WINDOW_UPDATE => {
            if p.len() != 8 {
                return Err(SpdyError::Malformed("WINDOW_UPDATE"));
            }
            Control::Ignored
        }
        _ => Control::Ignored,
    })
}

/// The writing side of a session, shared by its streams.
struct Shared {
    out: Mutex<Out>,
    /// Streams handed over and not yet dropped.
    live: AtomicUsize,
}

struct Out {
    w: Box<dyn AsyncWrite + Send + Unpin>,
    deflater: Deflater,
}

impl Shared {
    async fn write(&self, parts: &[&[u8]]) -> io::Result<()> {
        let mut out = self.out.lock().await;
        for p in parts {
            out.w.write_all(p).await?;
        }
        out.w.flush().await
    }

    async fn reply(&self, id: u32) -> Result<(), SpdyError> {
        let mut out = self.out.lock().await;
        let block = out.deflater.block(&encode_headers(&[]))?;
        let mut payload = id.to_be_bytes().to_vec();
        payload.extend_from_slice(&block);
        out.w.write_all(&control(SYN_REPLY, 0, &payload)).await?;
        out.w.flush().await?;
        Ok(())
    }
}

/// Our side of one stream: data frames to the client.
pub(crate) struct StreamWriter {
    id: u32,
    shared: Arc<Shared>,
    fin: AtomicBool,
    /// Set when the client resets the stream: writing to it fails.
    reset: Arc<AtomicBool>,
}

impl StreamWriter {
    /// Sends `data` in frames of at most [`CHUNK`] bytes.
    pub(crate) async fn write(&self, data: &[u8]) -> io::Result<()> {
        for piece in data.chunks(CHUNK) {
            if self.fin.load(Ordering::Relaxed) || self.reset.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let head = data_head(self.id, 0, piece.len());
            self.shared.write(&[&head, piece]).await?;
        }
        Ok(())
    }

    /// Ends our half of the stream (an empty frame with FIN), once.
    pub(crate) async fn close(&self) -> io::Result<()> {
        if self.fin.swap(true, Ordering::Relaxed) || self.reset.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.shared.write(&[&data_head(self.id, FLAG_FIN, 0)]).await
    }

    /// Resets the stream.
    pub(crate) async fn reset(&self, status: u32) -> io::Result<()> {
        self.fin.store(true, Ordering::Relaxed);
        let mut p = self.id.to_be_bytes().to_vec();
        p.extend_from_slice(&status.to_be_bytes());
        self.shared.write(&[&control(RST_STREAM, 0, &p)]).await
    }
}

/// Counts a handed-over stream until it is dropped.
struct Live {
    shared: Arc<Shared>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shared.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream the client opened.
pub(crate) struct Stream {
    pub(crate) id: u32,
    pub(crate) headers: Headers,
    /// The client's data, in pieces; `None` once it ended its half (FIN) or reset it.
    pub(crate) data: mpsc::Receiver<Bytes>,
    pub(crate) out: StreamWriter,
    _live: Live,
}

impl Stream {
    /// The first value of header `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The server's side of a session.
pub(crate) struct Session {
    /// The streams the client opens, in order.
    pub(crate) streams: mpsc::Receiver<Stream>,
    shared: Arc<Shared>,
    ended: watch::Receiver<bool>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Session {
    /// Serves a session on `conn`, at most `max_streams` streams alive at once.
    pub(crate) fn start<C>(conn: C, max_streams: usize) -> Result<Session, SpdyError>
    where
        C: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(conn);
        let shared = Arc::new(Shared {
            out: Mutex::new(Out {
                w: Box::new(w),
                deflater: Deflater::new()?,
            }),
            live: AtomicUsize::new(0),
        });
        let (tx, streams) = mpsc::channel(max_streams.max(1));
        let (ended_tx, ended) = watch::channel(false);
        let reading = shared.clone();
        let reader = tokio::spawn(async move {
            let mut r = r;
            let mut reader = Reader {
                shared: reading,
                new: tx,
                max_streams,
                open: HashMap::new(),
                resets: HashMap::new(),
                last_id: 0,
                going_away: false,
                unacked: HashMap::new(),
                session_unacked: 0,
            };
            if let Err(e) = reader.run(&mut r).await {
                tracing::debug!(error = %e, "CRI SPDY session: reading ended");
            }
            // Dropping the reader ends every stream's data and the stream queue.
            drop(reader);
            let _ = ended_tx.send(true);
        });
        Ok(Session {
            streams,
            shared,
            ended,
            reader,
        })
    }

    /// Resolves once the client's side has ended (closed, or broke the protocol).
    pub(crate) async fn ended(&self) {
        let mut e = self.ended.clone();
        let _ = e.wait_for(|v| *v).await;
    }

    /// Ends the session: our side closed, then the client's awaited a while, so that
    /// what it sent last does not turn our close into a reset that loses our last bytes.
    pub(crate) async fn finish(self) {
        {
            let mut out = self.shared.out.lock().await;
            let _ = out.w.shutdown().await;
        }
        let _ = tokio::time::timeout(CLOSE_WAIT, self.ended()).await;
    }
}

/// The reading side of a session.
struct Reader {
    shared: Arc<Shared>,
    new: mpsc::Sender<Stream>,
    max_streams: usize,
    /// The client's open halves: where its data goes.
    open: HashMap<u32, mpsc::Sender<Bytes>>,
    /// The reset flags of the streams handed over and still held.
    resets: HashMap<u32, Weak<AtomicBool>>,
    last_id: u32,
    going_away: bool,
    /// Bytes taken in and not yet acknowledged by WINDOW_UPDATE, per stream and in all.
    unacked: HashMap<u32, u32>,
    session_unacked: u32,
}

impl Reader {
    async fn run<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<(), SpdyError> {
        let mut inflater = Inflater::default();
        while let Some(head) = read_head(r).await? {
            match head {
                Head::Data { id, flags, len } => self.data(r, id, flags, len).await?,
                Head::Control {
                    kind,
                    flags,
                    payload,
                } => match decode_control(kind, flags, &payload, &mut inflater)? {
                    Control::SynStream { id, flags, headers } => {
                        self.syn_stream(id, flags, headers).await?
                    }
                    Control::RstStream { id, .. } => {
                        self.open.remove(&id);
                        self.unacked.remove(&id);
                        if let Some(flag) = self.resets.remove(&id).and_then(|w| w.upgrade()) {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                    Control::Ping(id) => {
                        self.shared
                            .write(&[&control(PING, 0, &id.to_be_bytes())])
                            .await?
                    }
                    Control::GoAway => self.going_away = true,
                    Control::Ignored => {}
                },
            }
        }
        Ok(())
    }

    async fn data<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        id: u32,
        flags: u8,
        len: usize,
    ) -> Result<(), SpdyError> {
        let mut tx = self.open.get(&id).cloned();
        let mut left = len;
        while left > 0 {
            let n = left.min(CHUNK);
            let mut buf = vec![0u8; n];
            r.read_exact(&mut buf).await?;
            left -= n;
            if let Some(t) = &tx {
                // A consumer that let go takes no more.
                if t.send(Bytes::from(buf)).await.is_err() {
                    tx = None;
                }
            }
        }
        if len > 0 && self.open.contains_key(&id) {
            self.ack(id, len as u32).await?;
        }
        if flags & FLAG_FIN != 0 {
            self.open.remove(&id);
            self.unacked.remove(&id);
        }
        Ok(())
    }

    /// Sends WINDOW_UPDATE once half a window was taken in.
    async fn ack(&mut self, id: u32, n: u32) -> Result<(), SpdyError> {
        let stream = self.unacked.entry(id).or_insert(0);
        *stream = stream.saturating_add(n);
        self.session_unacked = self.session_unacked.saturating_add(n);
        let mut frames = Vec::new();
        if *stream >= INITIAL_WINDOW / 2 {
            frames.push(window_update(id, *stream));
            *stream = 0;
        }
        if self.session_unacked >= INITIAL_WINDOW / 2 {
            frames.push(window_update(0, self.session_unacked));
            self.session_unacked = 0;
        }
        for f in frames {
            self.shared.write(&[&f]).await?;
        }
        Ok(())
    }

    async fn syn_stream(&mut self, id: u32, flags: u8, headers: Headers) -> Result<(), SpdyError> {
        // Client streams are odd and rising.
        if id == 0 || id.is_multiple_of(2) || id <= self.last_id {
            return self.refuse(id, PROTOCOL_ERROR).await;
        }
        self.last_id = id;
        if self.going_away || self.shared.live.load(Ordering::Relaxed) >= self.max_streams {
            return self.refuse(id, REFUSED_STREAM).await;
        }
        if flags & FLAG_UNIDIRECTIONAL == 0 {
            self.shared.reply(id).await?;
        }
        let (tx, data) = mpsc::channel(QUEUE);
        // Closed halves leave the maps at once; those whose consumer let go, and the
        // flags of dropped streams, when a map is full: none outgrows the stream limit.
        if self.open.len() >= self.max_streams {
            self.open.retain(|_, t| !t.is_closed());
            let open = &self.open;
            self.unacked.retain(|id, _| open.contains_key(id));
        }
        if self.resets.len() >= self.max_streams {
            self.resets.retain(|_, w| w.strong_count() > 0);
        }
        if flags & FLAG_FIN == 0 {
            self.open.insert(id, tx);
        }
        let reset = Arc::new(AtomicBool::new(false));
        self.resets.insert(id, Arc::downgrade(&reset));
        self.shared.live.fetch_add(1, Ordering::Relaxed);
        let stream = Stream {
            id,
            headers,
            data,
            out: StreamWriter {
                id,
                shared: self.shared.clone(),
                fin: AtomicBool::new(flags & FLAG_UNIDIRECTIONAL != 0),
                reset,
            },
            _live: Live {
                shared: self.shared.clone(),
            },
        };
        if let Err(mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s)) =
            self.new.try_send(stream)
        {
            self.open.remove(&id);
            let _ = s.out.reset(REFUSED_STREAM).await;
        }
        Ok(())
    }

    async fn refuse(&mut self, id: u32, status: u32) -> Result<(), SpdyError> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&status.to_be_bytes());
        self.shared.write(&[&control(RST_STREAM, 0, &p)]).await?;
        Ok(())
    }
}

fn window_update(id: u32, delta: u32) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
    control(WINDOW_UPDATE, 0, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANCEL: u32 = 5;

    fn syn_stream(d: &mut Deflater, id: u32, flags: u8, h: &[(&str, &str)]) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        p.extend(d.block(&encode_headers(h)).unwrap());
        control(SYN_STREAM, flags, &p)
    }

    fn data(id: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = data_head(id, flags, payload.len()).to_vec();
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn header_blocks_round_trip_through_one_zlib_stream_each_way() {
        assert_eq!(DICTIONARY.len(), 1423);
        let (mut d, mut i) = (Deflater::new().unwrap(), Inflater::default());
        for h in [
            &[("streamtype", "error"), ("port", "80")][..],
            &[("streamtype", "data"), ("port", "80"), ("requestid", "0")][..],
            &[][..],
        ] {
            let got =
                decode_headers(&i.block(&d.block(&encode_headers(h)).unwrap()).unwrap()).unwrap();
            let want: Headers = h
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want);
        }
        assert_eq!(header(&vec![("a".into(), "1\x002".into())], "A"), Some("1"));
    }

    #[test]
    fn hostile_header_blocks_are_errors() {
        // More pairs than bytes, a length past the end, one that overflows, no count.
        for bad in [
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..],
            &[0, 0, 0, 1, 0, 0, 0, 9, b'a', 0, 0, 0, 0][..],
            &[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..],
            &[0, 0][..],
            &[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0, 0, 0, 0][..],
        ] {
            assert!(decode_headers(bad).is_err(), "{bad:?}");
        }
        // Not zlib at all.
        assert!(Inflater::default().block(b"\x00\x01garbage").is_err());
        // A block that inflates past the limit: refused, not buffered whole.
        let mut d = Deflater::new().unwrap();
        let bomb = d.block(&vec![b'a'; MAX_HEADER_BLOCK * 4]).unwrap();
        assert!(bomb.len() < MAX_CONTROL, "{}", bomb.len());
        let e = Inflater::default().block(&bomb).unwrap_err();
        assert!(e.to_string().contains("inflates past"), "{e}");
        // Cut short: the half that came inflates, the rest never does; no panic.
        let block = Deflater::new()
            .unwrap()
            .block(&encode_headers(&[("a", "b")]))
            .unwrap();
        let mut i = Inflater::default();
        let _ = i.block(&block[..block.len() / 2]);
    }

    #[tokio::test]
    async fn hostile_frame_headers() {
        // Truncated: an error, not a hang or a panic.
        assert!(read_head(&mut &[0x80u8, 3, 0, 1][..]).await.is_err());
        // A control frame claiming 16 MiB is refused before anything is allocated.
        let huge = [0x80u8, 3, 0, 1, 0, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_head(&mut &huge[..]).await,
            Err(SpdyError::TooLarge(_))
        ));
        let v2 = [0x80u8, 2, 0, 1, 0, 0, 0, 0];
        assert!(matches!(
            read_head(&mut &v2[..]).await,
            Err(SpdyError::Version(2))
        ));
        assert!(read_head(&mut &[][..]).await.unwrap().is_none());
        // Malformed control payloads.
        let mut i = Inflater::default();
        for (kind, p) in [
            (RST_STREAM, &[0u8; 3][..]),
            (PING, &[1u8][..]),
            (SETTINGS, &[0, 0, 0, 9][..]),
            (SYN_STREAM, &[0, 0, 0, 1][..]),
        ] {
            assert!(decode_control(kind, 0, p, &mut i).is_err(), "{kind}");
        }
    }

    /// Reads what the server sent, control frames decoded.
    async fn server_frames(wire: &[u8]) -> Vec<String> {
        let (mut r, mut i, mut out) = (wire, Inflater::default(), Vec::new());
        while let Some(h) = read_head(&mut r).await.unwrap() {
            out.push(match h {
                Head::Data { id, flags, len } => {
                    let mut b = vec![0; len];
                    r.read_exact(&mut b).await.unwrap();
                    format!("DATA {id} {flags} {}", String::from_utf8_lossy(&b))
                }
                Head::Control { kind, payload, .. } => {
                    if kind == SYN_REPLY {
                        let h = decode_headers(&i.block(&payload[4..]).unwrap()).unwrap();
                        format!("SYN_REPLY {} {}", be32(&payload, 0).unwrap(), h.len())
                    } else {
                        format!(
                            "{kind} {} {}",
                            be32(&payload, 0).unwrap(),
                            be32(&payload, 4).unwrap_or(0)
                        )
                    }
                }
            });
        }
        out
    }

    #[tokio::test]
    async fn a_session_replies_hands_streams_over_and_refuses_too_many() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let mut session = Session::start(ours, 2).unwrap();
        let mut d = Deflater::new().unwrap();
        let mut wire = syn_stream(&mut d, 1, 0, &[("streamType", "stdin")]);
        wire.extend(data(1, 0, b"hello "));
        wire.extend(data(1, FLAG_FIN, b"world"));
        wire.extend(control(PING, 0, &7u32.to_be_bytes()));
        wire.extend(syn_stream(&mut d, 3, FLAG_FIN, &[("streamType", "error")]));
        // A third stream is over the limit; an even one is the server's to open.
        wire.extend(syn_stream(&mut d, 5, 0, &[]));
        wire.extend(syn_stream(&mut d, 8, 0, &[]));
        // A large frame arrives in pieces.
        wire.extend(data(1, 0, &vec![b'x'; CHUNK + 1]));
        theirs.write_all(&wire).await.unwrap();
        let mut s1 = session.streams.recv().await.unwrap();
        assert_eq!((s1.id, s1.header("streamtype")), (1, Some("stdin")));
        let mut got = Vec::new();
        while let Some(b) = s1.data.recv().await {
            got.extend_from_slice(&b);
        }
        assert_eq!(got, b"hello world");
        let s3 = session.streams.recv().await.unwrap();
        s3.out.write(b"status").await.unwrap();
        s3.out.close().await.unwrap();
        s3.out.close().await.unwrap();
        assert!(s3.out.write(b"more").await.is_err());
        // The client resets stream 1: writing to it fails.
        theirs
            .write_all(&control(
                RST_STREAM,
                0,
                &[0, 0, 0, 1, 0, 0, 0, CANCEL as u8],
            ))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while s1.out.write(b"x").await.is_ok() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        drop(theirs.shutdown().await);
        session.ended().await;
        drop((s1, s3));
        session.finish().await;
        let mut back = Vec::new();
        theirs.read_to_end(&mut back).await.unwrap();
        // The reading task and the streams write at once: compare as sets, the writes to
        // stream 1 before its reset left out.
        let mut frames = server_frames(&back).await;
        frames.retain(|f| !f.starts_with("DATA 1 "));
        frames.sort();
        let mut want = [
            "SYN_REPLY 1 0",
            "6 7 0",
            "SYN_REPLY 3 0",
            "3 5 3",
            "3 8 1",
            "DATA 3 0 status",
            "DATA 3 1 ",
        ];
        want.sort();
        assert_eq!(frames, want, "{frames:?}");
    }

    #[tokio::test]
    async fn what_the_reader_keeps_stays_within_the_stream_limit() {
        let max = 4;
        let shared = Arc::new(Shared {
            out: Mutex::new(Out {
                w: Box::new(tokio::io::sink()),
                deflater: Deflater::new().unwrap(),
            }),
            live: AtomicUsize::new(0),
        });
        let (tx, mut rx) = mpsc::channel(max);
        // The consumer lets every stream go at once.
        let consumer = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let mut reader = Reader {
            shared,
            new: tx,
            max_streams: max,
            open: HashMap::new(),
            resets: HashMap::new(),
            last_id: 0,
            going_away: false,
            unacked: HashMap::new(),
            session_unacked: 0,
        };
        let mut d = Deflater::new().unwrap();
        let mut wire = Vec::new();
        for i in 0..2000u32 {
            let id = 2 * i + 1;
            wire.extend(syn_stream(&mut d, id, 0, &[("streamtype", "data")]));
            wire.extend(data(id, 0, b"bytes"));
            // Resets of streams that never were.
            let mut p = (id + 100_000).to_be_bytes().to_vec();
            p.extend_from_slice(&CANCEL.to_be_bytes());
            wire.extend(control(RST_STREAM, 0, &p));
        }
        reader.run(&mut &wire[..]).await.unwrap();
        assert!(reader.open.len() <= max + 1, "{}", reader.open.len());
        assert!(reader.unacked.len() <= max + 1, "{}", reader.unacked.len());
        assert!(reader.resets.len() <= max + 1, "{}", reader.resets.len());
        drop(reader);
        consumer.await.unwrap();
    }

    #[tokio::test]
    async fn a_broken_header_block_ends_the_session() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let session = Session::start(ours, 4).unwrap();
        let mut p = 1u32.to_be_bytes().to_vec();
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
        theirs.write_all(&control(SYN_STREAM, 0, &p)).await.unwrap();
        session.ended().await;
    }
}

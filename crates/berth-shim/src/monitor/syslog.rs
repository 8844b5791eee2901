//! The `syslog` log driver: each line of output is one message to a syslog server over
//! `unix`, `unixgram`, `tcp` or `udp`, in dockerd's formats (srslog's): the default Unix
//! one, RFC 3164, RFC 5424 and RFC 5424 with microseconds, each ended by a newline.
//! Priority is the facility with severity 6 (info) for stdout, 3 (err) for stderr. A
//! failed send drops the connection; the next line connects again (so a server that
//! restarts gets the lines after it is back), and for [`BACKOFF`] after a failure lines
//! are dropped rather than each waiting on a server that is down (the output loop also
//! serves attached clients and the control socket).

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_shim::{Stream, SyslogFormat};

use super::jsonlog::LineSplitter;
use super::line_sink::LineSink;

const TIMEOUT: Duration = Duration::from_secs(1);
/// How long after a failed connect or send no new connection is tried.
const BACKOFF: Duration = Duration::from_secs(5);

enum Conn {
    Unix(UnixStream),
    Unixgram(UnixDatagram),
    Tcp(TcpStream),
    Udp(UdpSocket),
}

impl Conn {
    fn open(proto: &str, address: &str) -> io::Result<Conn> {
        let resolve = || {
            address
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
        };
        Ok(match proto {
            "unix" => {
                let s = UnixStream::connect(address)?;
                s.set_write_timeout(Some(TIMEOUT))?;
                Conn::Unix(s)
            }
            "unixgram" => {
                let s = UnixDatagram::unbound()?;
                s.connect(address)?;
                s.set_write_timeout(Some(TIMEOUT))?;
                Conn::Unixgram(s)
            }
            "tcp" => {
                let s = TcpStream::connect_timeout(&resolve()?, TIMEOUT)?;
                s.set_write_timeout(Some(TIMEOUT))?;
                Conn::Tcp(s)
            }
            "udp" => {
                let to = resolve()?;
                let bind = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
                let s = UdpSocket::bind(bind)?;
                s.connect(to)?;
                Conn::Udp(s)
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unsupported scheme: '{other}'"),
                ))
            }
        })
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.write_all(msg),
            Conn::Tcp(s) => s.write_all(msg),
            Conn::Unixgram(s) => s.send(msg).map(drop),
            Conn::Udp(s) => s.send(msg).map(drop),
        }
    }
}

/// What every message of one container carries.
pub struct Header {
    pub format: SyslogFormat,
    pub facility: u8,
    pub tag: String,
    pub hostname: String,
    pub pid: u32,
}

/// Lines to a syslog server.
pub struct Syslog {
    proto: String,
    address: String,
    header: Header,
    conn: Option<Conn>,
    /// No connection is tried before then (after a failure).
    retry_at: Option<Instant>,
    splitters: [LineSplitter; 2],
    buf: Vec<u8>,
}

impl Syslog {
    pub fn open(proto: String, address: String, header: Header) -> io::Result<Syslog> {
        let conn = Some(Conn::open(&proto, &address)?);
        Ok(Syslog {
            proto,
            address,
            header,
            conn,
            retry_at: None,
            splitters: Default::default(),
            buf: Vec::new(),
        })
    }
}

/// Appends one message, newline included, for `text` (the line without its newline).
pub fn encode(out: &mut Vec<u8>, h: &Header, stream: Stream, text: &[u8], now: SystemTime) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(0);
    let (y, mo, day, hh, mm, ss) = berth_api_types::timestamp::utc_fields(secs);
    let severity = match stream {
        Stream::Stderr => 3,
        _ => 6,
    };
    let pri = u32::from(h.facility) | severity;
    let month = MONTHS
        .get(usize::from(mo).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    let (tag, host, pid) = (&h.tag, &h.hostname, h.pid);
    out.clear();
    let head = match h.format {
        SyslogFormat::Unix => format!("<{pri}>{month} {day:>2} {hh:02}:{mm:02}:{ss:02} {tag}[{pid}]: "),
        SyslogFormat::Rfc3164 => {
            format!("<{pri}>{month} {day:>2} {hh:02}:{mm:02}:{ss:02} {host} {tag}[{pid}]: ")
        }
        SyslogFormat::Rfc5424 => format!(
            "<{pri}>1 {y:04}-{mo:02}-{day:02}T{hh:02}:{mm:02}:{ss:02}Z {host} {tag} {pid} {tag} - "
        ),
        SyslogFormat::Rfc5424Micro => format!(
            "<{pri}>1 {y:04}-{mo:02}-{day:02}T{hh:02}:{mm:02}:{ss:02}.{:06}Z {host} {tag} {pid} {tag} - ",
            d.subsec_micros()
        ),
    };
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(text);
    out.push(b'\n');
}

impl LineSink for Syslog {
    fn splitters(&mut self) -> &mut [LineSplitter; 2] {
        &mut self.splitters
    }

    fn send(&mut self, stream: Stream, line: &[u8]) -> io::Result<()> {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        encode(&mut self.buf, &self.header, stream, text, SystemTime::now());
        if self.conn.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return Ok(()); // dropped: the server failed moments ago
            }
            match Conn::open(&self.proto, &self.address) {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    self.retry_at = Some(Instant::now() + BACKOFF);
                    return Err(e);
                }
            }
        }
        let sent = match self.conn.as_mut() {
            Some(c) => c.send(&self.buf),
            None => Ok(()),
        };
        if sent.is_err() {
            self.conn = None;
            self.retry_at = Some(Instant::now() + BACKOFF);
        } else {
            self.retry_at = None;
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(format: SyslogFormat) -> Header {
        Header {
            format,
            facility: 3 << 3,
            tag: "abc123".into(),
            hostname: "host".into(),
            pid: 42,
        }
    }

    #[test]
    fn formats_as_dockerd() {
        // 2024-02-29T13:04:05.123456Z
        let t = UNIX_EPOCH + Duration::new(1_709_211_845, 123_456_789);
        let mut out = Vec::new();
        let mut enc = |f, s, text: &[u8]| {
            encode(&mut out, &header(f), s, text, t);
            String::from_utf8(out.clone()).unwrap()
        };
        assert_eq!(
            enc(SyslogFormat::Rfc5424, Stream::Stdout, b"hi"),
            "<30>1 2024-02-29T13:04:05Z host abc123 42 abc123 - hi\n"
        );
        assert_eq!(
            enc(SyslogFormat::Rfc5424Micro, Stream::Stderr, b"oops"),
            "<27>1 2024-02-29T13:04:05.123456Z host abc123 42 abc123 - oops\n"
        );
        assert_eq!(
            enc(SyslogFormat::Rfc3164, Stream::Stdout, b"hi"),
            "<30>Feb 29 13:04:05 host abc123[42]: hi\n"
        );
        assert_eq!(
            enc(SyslogFormat::Unix, Stream::Stdout, b"hi"),
            "<30>Feb 29 13:04:05 abc123[42]: hi\n"
        );
        let t = UNIX_EPOCH + Duration::from_secs(0);
        encode(
            &mut out,
            &header(SyslogFormat::Unix),
            Stream::Stdout,
            b"",
            t,
        );
        assert_eq!(out, b"<30>Jan  1 00:00:00 abc123[42]: \n");
    }

    #[test]
    fn a_server_that_went_away_is_not_waited_on_for_each_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let server = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let p = path.to_str().unwrap().to_string();
        let mut s = Syslog::open("unix".into(), p, header(SyslogFormat::Rfc5424)).unwrap();
        drop(server);
        std::fs::remove_file(&path).unwrap();
        // One send fails (the peer is gone); then, within the back-off, lines are dropped
        // without a connection attempt (which would fail: the socket is gone too).
        let mut failures = 0;
        for _ in 0..10 {
            if s.write(Stream::Stdout, b"line\n").is_err() {
                failures += 1;
            }
        }
        assert!(
            failures == 1 && s.retry_at.is_some() && s.conn.is_none(),
            "{failures} {:?} {}",
            s.retry_at,
            s.conn.is_none()
        );
        assert!(s.write(Stream::Stdout, b"dropped\n").is_ok());
    }

    #[test]
    fn sends_lines_over_udp_and_reconnects_over_tcp() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap().to_string();
        let mut s = Syslog::open("udp".into(), addr, header(SyslogFormat::Rfc5424)).unwrap();
        s.write(Stream::Stdout, b"a\nb\n").unwrap();
        let mut buf = [0u8; 512];
        for want in ["a", "b"] {
            let n = udp.recv(&mut buf).unwrap();
            let m = std::str::from_utf8(&buf[..n]).unwrap();
            assert!(
                m.starts_with("<30>1 ") && m.ends_with(&format!(" - {want}\n")),
                "{m}"
            );
        }
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap().to_string();
        let mut s = Syslog::open("tcp".into(), addr, header(SyslogFormat::Rfc3164)).unwrap();
        s.write(Stream::Stderr, b"x\n").unwrap();
        let (mut c, _) = tcp.accept().unwrap();
        let mut got = String::new();
        use std::io::Read;
        let mut b = [0u8; 256];
        while !got.ends_with('\n') {
            let n = c.read(&mut b).unwrap();
            assert!(n > 0);
            got.push_str(std::str::from_utf8(&b[..n]).unwrap());
        }
        assert!(
            got.starts_with("<27>") && got.ends_with("host abc123[42]: x\n"),
            "{got}"
        );
    }
}

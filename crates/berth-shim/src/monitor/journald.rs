//! The `journald` log driver: each line of output is one datagram of systemd's native
//! journal protocol (`KEY=value\n`, or `KEY\n<u64 LE length><bytes>\n` for a value holding
//! a newline) sent to the journal's socket, with dockerd's fields: the engine's settled
//! ones (CONTAINER_ID, CONTAINER_NAME, CONTAINER_TAG, IMAGE_NAME, SYSLOG_IDENTIFIER, the
//! extra attributes) and per line MESSAGE, PRIORITY (6 stdout, 3 stderr),
//! SYSLOG_TIMESTAMP and CONTAINER_PARTIAL_MESSAGE for a part of a longer line.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use berth_shim::timefmt::rfc3339_nano;
use berth_shim::Stream;

use super::jsonlog::LineSplitter;
use super::line_sink::LineSink;

/// Appends one field in the native protocol's encoding.
pub fn encode_field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value);
    } else {
        out.push(b'=');
        out.extend_from_slice(value);
    }
    out.push(b'\n');
}

/// Lines to the journal.
pub struct Journald {
    socket: PathBuf,
    sock: UnixDatagram,
    /// The fields every datagram carries, encoded once.
    fields: Vec<u8>,
    splitters: [LineSplitter; 2],
    buf: Vec<u8>,
}

impl Journald {
    pub fn open(socket: PathBuf, fields: &[(String, String)]) -> io::Result<Journald> {
        let sock = UnixDatagram::unbound()?;
        // A journal that stops reading must not stop the container's output for long.
        sock.set_write_timeout(Some(Duration::from_secs(1)))?;
        let mut enc = Vec::new();
        for (k, v) in fields {
            encode_field(&mut enc, k, v.as_bytes());
        }
        Ok(Journald {
            socket,
            sock,
            fields: enc,
            splitters: Default::default(),
            buf: Vec::new(),
        })
    }
}

/// One datagram: the common fields, then the line's own. A part without a newline (cut
/// at the line limit, or the output's unfinished end) is a partial message, as dockerd's
/// copier sends both, so that reading it back adds no newline.
fn encode_line(out: &mut Vec<u8>, fields: &[u8], stream: Stream, line: &[u8], time: &str) {
    out.clear();
    let (text, partial) = match line.strip_suffix(b"\n") {
        Some(t) => (t, false),
        None => (line, true),
    };
    encode_field(out, "MESSAGE", text);
    out.extend_from_slice(fields);
    let priority: &[u8] = match stream {
        Stream::Stderr => b"3",
        _ => b"6",
    };
    encode_field(out, "PRIORITY", priority);
    encode_field(out, "SYSLOG_TIMESTAMP", time.as_bytes());
    if partial {
        encode_field(out, "CONTAINER_PARTIAL_MESSAGE", b"true");
    }
}

impl LineSink for Journald {
    fn splitters(&mut self) -> &mut [LineSplitter; 2] {
        &mut self.splitters
    }

    fn send(&mut self, stream: Stream, line: &[u8]) -> io::Result<()> {
        encode_line(
            &mut self.buf,
            &self.fields,
            stream,
            line,
            &rfc3339_nano(SystemTime::now()),
        );
        self.sock.send_to(&self.buf, &self.socket).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a native-protocol datagram back (as journald does).
    fn parse(mut d: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let nl = d.iter().position(|&b| b == b'\n').unwrap();
            let head = &d[..nl];
            if let Some(eq) = head.iter().position(|&b| b == b'=') {
                out.push((
                    String::from_utf8(head[..eq].to_vec()).unwrap(),
                    head[eq + 1..].to_vec(),
                ));
                d = &d[nl + 1..];
            } else {
                let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().unwrap()) as usize;
                let v = d[nl + 9..nl + 9 + len].to_vec();
                assert_eq!(d[nl + 9 + len], b'\n');
                out.push((String::from_utf8(head.to_vec()).unwrap(), v));
                d = &d[nl + 10 + len..];
            }
        }
        out
    }

    #[test]
    fn encodes_dockerds_fields_in_the_native_protocol() {
        let mut common = Vec::new();
        encode_field(&mut common, "CONTAINER_NAME", b"web");
        encode_field(&mut common, "MULTI", b"a\nb");
        let mut out = Vec::new();
        encode_line(&mut out, &common, Stream::Stderr, b"oops\n", "T");
        assert_eq!(
            parse(&out),
            [
                ("MESSAGE".to_string(), b"oops".to_vec()),
                ("CONTAINER_NAME".into(), b"web".to_vec()),
                ("MULTI".into(), b"a\nb".to_vec()),
                ("PRIORITY".into(), b"3".to_vec()),
                ("SYSLOG_TIMESTAMP".into(), b"T".to_vec()),
            ]
        );
        encode_line(&mut out, &[], Stream::Stdout, b"cut", "T");
        let f = parse(&out);
        assert_eq!(f[1], ("PRIORITY".into(), b"6".to_vec()));
        assert_eq!(f[3], ("CONTAINER_PARTIAL_MESSAGE".into(), b"true".to_vec()));
    }

    #[test]
    fn the_unfinished_end_is_sent_as_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut j = Journald::open(path, &[]).unwrap();
        j.write(Stream::Stdout, b"no newline").unwrap();
        j.flush().unwrap();
        let mut buf = [0u8; 4096];
        let n = server.recv(&mut buf).unwrap();
        let f = parse(&buf[..n]);
        assert_eq!(f[0].1, b"no newline");
        assert!(f.contains(&("CONTAINER_PARTIAL_MESSAGE".into(), b"true".to_vec())));
    }

    #[test]
    fn sends_one_datagram_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut j = Journald::open(path, &[("CONTAINER_ID".into(), "abc".into())]).unwrap();
        j.write(Stream::Stdout, b"one\ntw").unwrap();
        j.write(Stream::Stdout, b"o\n").unwrap();
        let mut buf = [0u8; 4096];
        for want in [&b"one"[..], b"two"] {
            let n = server.recv(&mut buf).unwrap();
            let f = parse(&buf[..n]);
            assert_eq!(f[0].1, want);
            assert_eq!(f[1], ("CONTAINER_ID".into(), b"abc".to_vec()));
        }
    }
}

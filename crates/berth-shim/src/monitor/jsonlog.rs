//! Docker's json-file log driver: one `{"log","stream","time"}` object per line of output,
//! lines longer than [`LOG_LINE_MAX`] split into several entries, and size-based rotation
//! (`max-size`, `max-file`: `log`, `log.1`, … as moby `daemon/logger/jsonfilelog`). The
//! same writer writes the Kubernetes CRI format ([`LogFormat::Cri`]) for CRI containers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_shim::timefmt::rfc3339_nano;
use berth_shim::{LogFormat, LogOptions, Stream, LOG_GZ_INO, LOG_LINE_MAX};

/// Splits one stream's bytes into log lines, keeping the unfinished tail.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Calls `emit` with each complete entry of what came before plus `data`: a line
    /// ending in `\n`, or a full [`LOG_LINE_MAX`] chunk. Entries inside `data` are passed
    /// as slices of it; only an unfinished tail is copied (kept for the next call).
    pub fn split(&mut self, data: &[u8], mut emit: impl FnMut(&[u8])) {
        let mut rest = data;
        if !self.pending.is_empty() {
            let need = LOG_LINE_MAX - self.pending.len();
            let window = &rest[..need.min(rest.len())];
            let take = match memchr_nl(window) {
                Some(i) => i + 1,
                None if rest.len() >= need => need,
                None => {
                    self.pending.extend_from_slice(rest);
                    return;
                }
            };
            self.pending.extend_from_slice(&rest[..take]);
            emit(&self.pending);
            self.pending.clear();
            rest = &rest[take..];
        }
        loop {
            let window = &rest[..LOG_LINE_MAX.min(rest.len())];
            let take = match memchr_nl(window) {
                Some(i) => i + 1,
                None if rest.len() >= LOG_LINE_MAX => LOG_LINE_MAX,
                None => break,
            };
            emit(&rest[..take]);
            rest = &rest[take..];
        }
        self.pending.extend_from_slice(rest);
    }

    /// The unfinished tail, at end of stream.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

/// The index of the first `\n` in `b`, eight bytes at a time (the same SWAR zero-byte test
/// as [`word_needs_escape`]): the splitter looks at every byte of the output.
fn memchr_nl(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(w) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        if has_zero_byte(w ^ (ONES * u64::from(b'\n'))) {
            break;
        }
        i += 8;
    }
    let rest = b.get(i..)?;
    rest.iter().position(|&c| c == b'\n').map(|p| p + i)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether one of the 8 bytes of `x` is zero.
fn has_zero_byte(x: u64) -> bool {
    x.wrapping_sub(ONES) & !x & HIGH != 0
}

/// Bytes that JSON strings must escape, with serde_json's spelling (so the file reads the
/// same as before this encoder existed): 0 = as is, `u` = `\u00XX`, else `\<c>`.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any of the 8 bytes in `w` needs escaping (below 0x20, `"` or `\\`): the
/// classic SWAR zero-byte test, so plain text is scanned a word at a time.
fn word_needs_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0;
    below_space
        || has_zero_byte(w ^ (ONES * b'"' as u64))
        || has_zero_byte(w ^ (ONES * b'\\' as u64))
}

/// The index of the first byte of `s` at or after `from` that needs escaping.
fn next_escape(s: &[u8], mut from: usize) -> Option<usize> {
    while from + 8 <= s.len() {
        let w = u64::from_le_bytes(s[from..from + 8].try_into().expect("8 bytes"));
        if word_needs_escape(w) {
            break;
        }
        from += 8;
    }
    (from..s.len()).find(|&i| ESCAPE[s[i] as usize] != 0)
}

/// Appends `s` as the inside of a JSON string.
fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut run = 0;
    while let Some(i) = next_escape(s, run) {
        let b = s[i];
        out.extend_from_slice(&s[run..i]);
        match ESCAPE[b as usize] {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
            e => out.extend_from_slice(&[b'\\', e]),
        }
        run = i + 1;
    }
    out.extend_from_slice(&s[run..]);
}

/// The `,"attrs":{…}` part of every line of a container with extra attributes, as
/// dockerd's json-file writes it (Go's `json.Marshal` of a map: keys sorted, `<`, `>`,
/// `&`, U+2028 and U+2029 escaped too); empty without attributes. Encoded once, at open.
pub fn encode_attrs(attrs: &[(String, String)]) -> Vec<u8> {
    if attrs.is_empty() {
        return Vec::new();
    }
    let mut sorted: Vec<&(String, String)> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut out = b",\"attrs\":{".to_vec();
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        for s in [k, v] {
            out.push(b'"');
            go_escape_into(&mut out, s);
            out.push(b'"');
            out.push(b':');
        }
        out.pop();
    }
    out.push(b'}');
    out
}

/// [`escape_into`] plus the characters Go's encoder escapes for HTML's sake.
fn go_escape_into(out: &mut Vec<u8>, s: &str) {
    let mut run = 0;
    for (i, c) in s.char_indices() {
        let esc: &[u8] = match c {
            '<' => b"\\u003c",
            '>' => b"\\u003e",
            '&' => b"\\u0026",
            '\u{2028}' => b"\\u2028",
            '\u{2029}' => b"\\u2029",
            _ => continue,
        };
        escape_into(out, &s.as_bytes()[run..i]);
        out.extend_from_slice(esc);
        run = i + c.len_utf8();
    }
    escape_into(out, &s.as_bytes()[run..]);
}

/// Appends one `{"log","stream","time"}` line, as serde_json would write a [`LogEntry`];
/// `attrs` (from [`encode_attrs`]) goes between the stream and the time, where dockerd
/// puts it.
fn encode_entry(out: &mut Vec<u8>, line: &[u8], stream: &str, attrs: &[u8], time: &str) {
    out.extend_from_slice(b"{\"log\":\"");
    match std::str::from_utf8(line) {
        Ok(_) => escape_into(out, line),
        // Invalid UTF-8 becomes U+FFFD, as Go's encoder (and `from_utf8_lossy`) do.
        Err(_) => escape_into(out, String::from_utf8_lossy(line).as_bytes()),
    }
    out.extend_from_slice(b"\",\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.push(b'"');
    out.extend_from_slice(attrs);
    out.extend_from_slice(b",\"time\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// Appends one CRI log line, `<time> <stream> <P|F> <text>\n`: a part that ends in `\n` is
/// a line's end (`F`, the newline dropped), a part cut at [`LOG_LINE_MAX`] is `P`; the
/// last unfinished part at the end of output (`end`) is `F` too (containerd's
/// `redirectLogs` writes the same). The text is written as the process wrote it.
fn encode_cri(out: &mut Vec<u8>, line: &[u8], stream: &str, time: &str, end: bool) {
    let (text, tag) = match line.strip_suffix(b"\n") {
        Some(text) => (text, b'F'),
        None if end => (line, b'F'),
        None => (line, b'P'),
    };
    out.extend_from_slice(time.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.push(b' ');
    out.push(tag);
    out.push(b' ');
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// An open json-file (or CRI-format) log.
pub struct JsonLog {
    opts: LogOptions,
    file: File,
    size: u64,
    splitters: [LineSplitter; 2],
    /// Reused for every write: the encoded entries.
    buf: Vec<u8>,
    /// [`encode_attrs`] of the options' attributes.
    attrs: Vec<u8>,
    /// The last rotated file being compressed (`compress`).
    compressing: Option<std::thread::JoinHandle<()>>,
}

impl JsonLog {
    pub fn open(opts: LogOptions) -> io::Result<JsonLog> {
        if let Some(dir) = opts.path.parent() {
            // The `local` driver's `local-logs/` directory.
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&opts.path)?;
        let size = file.metadata()?.len();
        let attrs = encode_attrs(&opts.attrs);
        Ok(JsonLog {
            attrs,
            opts,
            file,
            size,
            splitters: Default::default(),
            buf: Vec::new(),
            compressing: None,
        })
    }

    /// Opens the log's path again, for what comes next: the kubelet renamed the file it
    /// rotates (the old one keeps what was written; a line in progress goes on in the new
    /// one).
    pub fn reopen(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.opts.path)?;
        self.size = file.metadata()?.len();
        self.file = file;
        Ok(())
    }

    /// Logs the bytes a stream produced.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let time = rfc3339_nano(SystemTime::now());
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut splitter = std::mem::take(&mut self.splitters[stream as usize - 1]);
        let mut result = Ok(());
        splitter.split(data, |line| {
            if result.is_ok() {
                result = self.add_entry(&mut buf, stream, line, &time, false);
            }
        });
        self.splitters[stream as usize - 1] = splitter;
        let written = result.and_then(|()| self.file.write_all(&buf));
        self.buf = buf;
        written
    }

    /// Logs whatever unfinished line each stream still holds.
    pub fn flush(&mut self) -> io::Result<()> {
        let time = rfc3339_nano(SystemTime::now());
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(tail) = self.splitters[stream as usize - 1].finish() {
                let mut buf = Vec::new();
                self.add_entry(&mut buf, stream, &tail, &time, true)?;
                self.file.write_all(&buf)?;
            }
        }
        if let Some(job) = self.compressing.take() {
            let _ = job.join();
        }
        Ok(())
    }

    /// Encodes one entry into `buf`, rotating first (after writing out what `buf` holds)
    /// when it would take the file past `max-size`. `end`: the output's unfinished tail.
    fn add_entry(
        &mut self,
        buf: &mut Vec<u8>,
        stream: Stream,
        line: &[u8],
        time: &str,
        end: bool,
    ) -> io::Result<()> {
        let start = buf.len();
        match self.opts.format {
            LogFormat::JsonFile => encode_entry(buf, line, stream.name(), &self.attrs, time),
            LogFormat::Cri => encode_cri(buf, line, stream.name(), time, end),
        }
        let len = (buf.len() - start) as u64;
        if self
            .opts
            .max_size
            .is_some_and(|max| self.size > 0 && self.size + len > max)
        {
            self.file.write_all(&buf[..start])?;
            buf.drain(..start);
            self.rotate()?;
        }
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        // The previous rotation's compression finishes before names shift again.
        if let Some(job) = self.compressing.take() {
            let _ = job.join();
        }
        let path = &self.opts.path;
        let gz = if self.opts.compress { ".gz" } else { "" };
        if self.opts.max_files > 1 {
            for n in (1..self.opts.max_files - 1).rev() {
                let from = numbered(path, n, gz);
                if from.exists() {
                    fs::rename(from, numbered(path, n + 1, gz))?;
                }
            }
            let first = numbered(path, 1, "");
            fs::rename(path, &first)?;
            self.file = OpenOptions::new().create(true).append(true).open(path)?;
            if self.opts.compress {
                // Off the output loop: a 20 MB file takes a while to deflate.
                self.compressing = Some(std::thread::spawn(move || {
                    if let Err(e) = compress_rotated(&first) {
                        tracing::warn!(path = %first.display(), error = %e, "log compression");
                    }
                }));
            }
        } else {
            self.file.set_len(0)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// `path.N` with `suffix` (`.gz` for a compressed one).
fn numbered(path: &Path, n: u32, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}{suffix}"));
    p.into()
}

/// Deflates `path` (a rotated log) to `path.gz` and removes it; a reader sees either
/// the one or the other, never a half-written `.gz` (written aside, then renamed).
fn compress_rotated(path: &Path) -> io::Result<()> {
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    let mut tmp = gz.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut src = File::open(path)?;
    let m = src.metadata()?;
    let mtime = m
        .mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec());
    let out = File::create(&tmp)?;
    // The file's inode and final mtime in the header: a reader following the log finds
    // the files rotated after the one it was reading by them, compressed or not (the
    // inode alone is reused once this file is removed).
    let mut enc = flate2::GzBuilder::new()
        .comment(format!("{LOG_GZ_INO}{}:{mtime}", m.ino()))
        .write(out, flate2::Compression::fast());
    io::copy(&mut src, &mut enc)?;
    enc.finish()?.sync_all()?;
    fs::rename(&tmp, &gz)?;
    fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_entries(p: &std::path::Path) -> Vec<berth_shim::LogEntry> {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn push(s: &mut LineSplitter, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        s.split(data, |l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn splitter_keeps_partial_lines_and_chunks_long_ones() {
        let mut s = LineSplitter::default();
        assert!(push(&mut s, b"").is_empty());
        assert!(push(&mut s, b"ab").is_empty());
        assert_eq!(
            push(&mut s, b"c\nd\n\ne"),
            vec![b"abc\n".to_vec(), b"d\n".to_vec(), b"\n".to_vec()]
        );
        assert_eq!(s.finish(), Some(b"e".to_vec()));
        assert_eq!(s.finish(), None);
        let long = vec![b'x'; LOG_LINE_MAX * 2 + 5];
        let out = push(&mut s, &long);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|l| l.len() == LOG_LINE_MAX));
        assert_eq!(s.finish().unwrap().len(), 5);
        // A pending tail completed by a later write, and one cut at the limit.
        assert!(push(&mut s, &vec![b'y'; LOG_LINE_MAX - 3]).is_empty());
        let out = push(&mut s, b"yyyyz\n");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), LOG_LINE_MAX);
        assert_eq!(out[1], b"yz\n");
        assert_eq!(s.finish(), None);
        assert!(push(&mut s, b"ab").is_empty());
        assert_eq!(push(&mut s, b"c\n"), vec![b"abc\n".to_vec()]);
    }

    #[test]
    fn the_newline_scan_finds_the_first_newline() {
        for len in 0..40 {
            for at in 0..=len {
                // Bytes next to '\n' in value (0x09, 0x0b, 0x8a) must not match.
                let mut b: Vec<u8> = (0..len).map(|i| [b'a', 0x09, 0x0b, 0x8a][i % 4]).collect();
                if at < len {
                    b[at] = b'\n';
                    if at + 3 < len {
                        b[at + 3] = b'\n';
                    }
                }
                let want = b.iter().position(|&c| c == b'\n');
                assert_eq!(memchr_nl(&b), want, "len {len}, newline at {at}");
            }
        }
    }

    #[test]
    fn the_word_scan_finds_every_byte_to_escape() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut w = *b"abcdefgh";
                w[pos] = b;
                let want = ESCAPE[b as usize] != 0;
                assert_eq!(
                    word_needs_escape(u64::from_le_bytes(w)),
                    want,
                    "byte {b:#x} at {pos}"
                );
                let mut long = vec![b'x'; 21];
                long[13 + pos % 8] = b;
                assert_eq!(next_escape(&long, 0), want.then_some(13 + pos % 8));
            }
        }
    }

    #[test]
    fn the_encoder_writes_what_serde_writes() {
        let cases: &[&[u8]] = &[
            b"plain text\n",
            b"\"quotes\" and \\ backslash\n",
            b"tabs\tcr\rff\x0cbs\x08 nul\x00 esc\x1b del\x7f\n",
            "unicode \u{e9}\u{1f600}\n".as_bytes(),
            b"bad \xff utf8 \xc3\n",
            b"",
        ];
        for line in cases {
            let mut ours = Vec::new();
            encode_entry(&mut ours, line, "stdout", b"", "2026-01-02T03:04:05.123Z");
            let entry = berth_shim::LogEntry {
                log: String::from_utf8_lossy(line).into_owned(),
                stream: "stdout".into(),
                time: "2026-01-02T03:04:05.123Z".into(),
            };
            let mut want = serde_json::to_vec(&entry).unwrap();
            want.push(b'\n');
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&want)
            );
        }
    }

    #[test]
    fn attrs_are_written_as_dockerd_writes_them() {
        assert!(encode_attrs(&[]).is_empty());
        let attrs = [
            ("tag".to_string(), "web/x".to_string()),
            ("a".into(), "1 2&<x>".into()),
            ("b.c".into(), "\u{e9},=\"\u{2028}".into()),
            ("a".into(), "dup".into()),
        ];
        let enc = encode_attrs(&attrs);
        // Byte for byte what dockerd 20.10 wrote for the same labels (Go's map encoding).
        assert_eq!(
            String::from_utf8(enc.clone()).unwrap(),
            r#","attrs":{"a":"1 2\u0026\u003cx\u003e","b.c":"é,=\"\u2028","tag":"web/x"}"#
        );
        let mut line = Vec::new();
        encode_entry(&mut line, b"hi\n", "stdout", &enc, "T");
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["attrs"]["a"], "1 2&<x>");
        assert_eq!(v["attrs"]["b.c"], "\u{e9},=\"\u{2028}");
        assert!(String::from_utf8(line)
            .unwrap()
            .starts_with(r#"{"log":"hi\n","stream":"stdout","attrs":{"a""#));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(LogOptions {
            path: path.clone(),
            max_size: None,
            max_files: 1,
            format: LogFormat::JsonFile,
            compress: false,
            sink: None,
            attrs: vec![("k".into(), "v".into())],
        })
        .unwrap();
        log.write(Stream::Stdout, b"one\ntwo\n").unwrap();
        for l in fs::read_to_string(&path).unwrap().lines() {
            assert!(
                l.contains(r#""stream":"stdout","attrs":{"k":"v"},"time":""#),
                "{l}"
            );
        }
    }

    #[test]
    fn writes_docker_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(LogOptions {
            path: path.clone(),
            max_size: None,
            max_files: 1,
            format: LogFormat::JsonFile,
            compress: false,
            sink: None,
            attrs: Vec::new(),
        })
        .unwrap();
        log.write(Stream::Stdout, b"hi\nbad \xff utf8\n\"quoted\"")
            .unwrap();
        log.write(Stream::Stderr, b"oops\n").unwrap();
        log.flush().unwrap();
        let e = read_entries(&path);
        let got: Vec<(&str, &str)> = e
            .iter()
            .map(|e| (e.log.as_str(), e.stream.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("hi\n", "stdout"),
                ("bad \u{fffd} utf8\n", "stdout"),
                ("oops\n", "stderr"),
                ("\"quoted\"", "stdout")
            ]
        );
        assert!(e[0].time.ends_with('Z') && e[0].time.contains('T'));
    }

    #[test]
    fn rotates_by_size_keeping_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let opts = LogOptions {
            path: path.clone(),
            max_size: Some(200),
            max_files: 3,
            format: LogFormat::JsonFile,
            compress: false,
            sink: None,
            attrs: Vec::new(),
        };
        let mut log = JsonLog::open(opts).unwrap();
        for i in 0..40 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let p1 = dir.path().join("l.1");
        assert!(path.exists() && p1.exists() && dir.path().join("l.2").exists());
        assert!(!dir.path().join("l.3").exists());
        for p in [&path, &p1] {
            assert!(fs::metadata(p).unwrap().len() <= 200);
        }
        assert_eq!(read_entries(&path).last().unwrap().log, "line 39\n");
    }

    #[test]
    fn compressed_rotation_gzips_rotated_files() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local-logs").join("container.log");
        let mut log = JsonLog::open(LogOptions {
            path: path.clone(),
            max_size: Some(200),
            max_files: 3,
            format: LogFormat::JsonFile,
            compress: true,
            sink: None,
            attrs: Vec::new(),
        })
        .unwrap();
        for i in 0..40 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        log.flush().unwrap();
        let mut names: Vec<String> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["container.log", "container.log.1.gz", "container.log.2.gz"]
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(
            File::open(dir.path().join("local-logs/container.log.1.gz")).unwrap(),
        )
        .read_to_string(&mut text)
        .unwrap();
        let first: berth_shim::LogEntry =
            serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let live = read_entries(&path);
        assert!(first.log.starts_with("line "));
        assert_eq!(live.last().unwrap().log, "line 39\n");
    }

    #[test]
    fn single_file_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let mut log = JsonLog::open(LogOptions {
            path: path.clone(),
            max_size: Some(150),
            max_files: 1,
            format: LogFormat::JsonFile,
            compress: false,
            sink: None,
            attrs: Vec::new(),
        })
        .unwrap();
        for i in 0..20 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(fs::metadata(&path).unwrap().len() <= 150);
        assert!(!dir.path().join("l.1").exists());
        assert_eq!(read_entries(&path).last().unwrap().log, "line 19\n");
    }

    #[test]
    fn reopen_starts_a_new_file_after_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = JsonLog::open(LogOptions {
            path: path.clone(),
            max_size: None,
            max_files: 1,
            format: LogFormat::Cri,
            compress: false,
            sink: None,
            attrs: Vec::new(),
        })
        .unwrap();
        log.write(Stream::Stdout, b"before\npart").unwrap();
        let rotated = dir.path().join("0.log.1");
        fs::rename(&path, &rotated).unwrap();
        log.reopen().unwrap();
        log.write(Stream::Stdout, b"-rest\nafter\n").unwrap();
        let texts = |p: &Path| -> Vec<String> {
            fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| l.splitn(4, ' ').nth(3).unwrap().to_string())
                .collect()
        };
        assert_eq!(texts(&rotated), ["before"]);
        // The line in progress goes on in the new file.
        assert_eq!(texts(&path), ["part-rest", "after"]);
    }

    #[test]
    fn writes_cri_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = JsonLog::open(LogOptions {
            path: path.clone(),
            max_size: None,
            max_files: 1,
            format: LogFormat::Cri,
            compress: false,
            sink: None,
            attrs: Vec::new(),
        })
        .unwrap();
        let long = vec![b'x'; LOG_LINE_MAX + 3];
        log.write(Stream::Stdout, b"hi\n\"quoted\" \\ text\n")
            .unwrap();
        log.write(Stream::Stderr, b"oops\n").unwrap();
        log.write(Stream::Stdout, &long).unwrap();
        log.write(Stream::Stdout, b"\nno newline").unwrap();
        log.flush().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let got: Vec<(&str, &str, &str)> = text
            .lines()
            .map(|l| {
                let mut f = l.splitn(4, ' ');
                let time = f.next().unwrap();
                assert!(time.ends_with('Z') && time.contains('T'), "{l}");
                (f.next().unwrap(), f.next().unwrap(), f.next().unwrap())
            })
            .collect();
        let x = "x".repeat(LOG_LINE_MAX);
        assert_eq!(
            got,
            [
                ("stdout", "F", "hi"),
                ("stdout", "F", "\"quoted\" \\ text"),
                ("stderr", "F", "oops"),
                ("stdout", "P", x.as_str()),
                ("stdout", "F", "xxx"),
                ("stdout", "F", "no newline"),
            ]
        );
    }
}

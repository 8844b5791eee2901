//! Docker's json-file log driver: one `{"log","stream","time"}` object per line of output,
//! lines longer than [`LOG_LINE_MAX`] split into several entries, and size-based rotation
//! (`max-size`, `max-file`: `log`, `log.1`, … as moby `daemon/logger/jsonfilelog`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use berth_shim::timefmt::rfc3339_nano;
use berth_shim::{LogEntry, LogOptions, Stream, LOG_LINE_MAX};

/// Splits one stream's bytes into log lines, keeping the unfinished tail.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Appends `data` and returns the complete entries (each ends in `\n`, or is a full
    /// [`LOG_LINE_MAX`] chunk).
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            let cut = match self.pending.iter().position(|&b| b == b'\n') {
                Some(i) if i < LOG_LINE_MAX => i + 1,
                _ if self.pending.len() >= LOG_LINE_MAX => LOG_LINE_MAX,
                _ => break,
            };
            let rest = self.pending.split_off(cut);
            out.push(std::mem::replace(&mut self.pending, rest));
        }
        out
    }

    /// The unfinished tail, at end of stream.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

/// An open json-file log.
pub struct JsonLog {
    opts: LogOptions,
    file: File,
    size: u64,
    splitters: [LineSplitter; 2],
}

impl JsonLog {
    pub fn open(opts: LogOptions) -> io::Result<JsonLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&opts.path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog {
            opts,
            file,
            size,
            splitters: Default::default(),
        })
    }

    /// Logs the bytes a stream produced.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let lines = self.splitters[stream as usize - 1].push(data);
        self.write_lines(stream, lines)
    }

    /// Logs whatever unfinished line each stream still holds.
    pub fn flush(&mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(tail) = self.splitters[stream as usize - 1].finish() {
                self.write_lines(stream, vec![tail])?;
            }
        }
        Ok(())
    }

    fn write_lines(&mut self, stream: Stream, lines: Vec<Vec<u8>>) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let time = rfc3339_nano(SystemTime::now());
        let mut buf = Vec::new();
        for line in lines {
            let entry = LogEntry {
                log: String::from_utf8_lossy(&line).into_owned(),
                stream: stream.name().to_string(),
                time: time.clone(),
            };
            let start = buf.len();
            serde_json::to_writer(&mut buf, &entry).map_err(io::Error::other)?;
            buf.push(b'\n');
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
        }
        self.file.write_all(&buf)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let path = &self.opts.path;
        let numbered = |n: u32| -> PathBuf {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{n}"));
            p.into()
        };
        if self.opts.max_files > 1 {
            for n in (1..self.opts.max_files - 1).rev() {
                let from = numbered(n);
                if from.exists() {
                    fs::rename(from, numbered(n + 1))?;
                }
            }
            fs::rename(path, numbered(1))?;
            self.file = OpenOptions::new().create(true).append(true).open(path)?;
        } else {
            self.file.set_len(0)?;
        }
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_entries(p: &std::path::Path) -> Vec<LogEntry> {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn splitter_keeps_partial_lines_and_chunks_long_ones() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"").is_empty());
        assert!(s.push(b"ab").is_empty());
        assert_eq!(
            s.push(b"c\nd\n\ne"),
            vec![b"abc\n".to_vec(), b"d\n".to_vec(), b"\n".to_vec()]
        );
        assert_eq!(s.finish(), Some(b"e".to_vec()));
        assert_eq!(s.finish(), None);
        let long = vec![b'x'; LOG_LINE_MAX * 2 + 5];
        let out = s.push(&long);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|l| l.len() == LOG_LINE_MAX));
        assert_eq!(s.finish().unwrap().len(), 5);
    }

    #[test]
    fn writes_docker_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(LogOptions {
            path: path.clone(),
            max_size: None,
            max_files: 1,
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
    fn single_file_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let mut log = JsonLog::open(LogOptions {
            path: path.clone(),
            max_size: Some(150),
            max_files: 1,
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
}

//! The container's log driver as the output loop sees it: a file (json-file, `local`,
//! CRI: [`JsonLog`]), the journal ([`Journald`]) or a syslog server ([`Syslog`]), chosen
//! by the start options. The file keeps its own fast path; the others split lines the
//! same way and send each.

use std::io;

use berth_shim::{LogOptions, LogSink, Stream};

use super::journald::Journald;
use super::jsonlog::JsonLog;
use super::line_sink::LineSink;
use super::syslog::{Header, Syslog};

pub enum LogWriter {
    File(JsonLog),
    Journald(Journald),
    Syslog(Syslog),
}

impl LogWriter {
    pub fn open(opts: LogOptions) -> io::Result<LogWriter> {
        Ok(match opts.sink {
            None => LogWriter::File(JsonLog::open(opts)?),
            Some(LogSink::Journald { socket, fields }) => {
                LogWriter::Journald(Journald::open(socket, &fields)?)
            }
            Some(LogSink::Syslog {
                proto,
                address,
                format,
                facility,
                tag,
                hostname,
            }) => LogWriter::Syslog(Syslog::open(
                proto,
                address,
                Header {
                    format,
                    facility,
                    tag,
                    hostname,
                    pid: std::process::id(),
                },
            )?),
        })
    }

    /// Logs the bytes a stream produced.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        match self {
            LogWriter::File(f) => f.write(stream, data),
            LogWriter::Journald(j) => j.write(stream, data),
            LogWriter::Syslog(s) => s.write(stream, data),
        }
    }

    /// Closes the log file and opens its path again; `false` when the driver writes no
    /// file (journald, syslog).
    pub fn reopen(&mut self) -> io::Result<bool> {
        match self {
            LogWriter::File(f) => f.reopen().map(|()| true),
            LogWriter::Journald(_) | LogWriter::Syslog(_) => Ok(false),
        }
    }

    /// Logs whatever unfinished line each stream still holds.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            LogWriter::File(f) => f.flush(),
            LogWriter::Journald(j) => j.flush(),
            LogWriter::Syslog(s) => s.flush(),
        }
    }
}

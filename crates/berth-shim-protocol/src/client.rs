//! A blocking client for `shim.sock`: one JSON line out, one JSON line back. Tools and tests
//! use it; the daemon uses `berth-runtime`'s async client, which speaks the same lines.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::protocol::{Request, Response};

/// One connection to a shim.
pub struct Client {
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the socket at `path` (usually `<dir>/shim.sock`).
    pub fn connect(path: &Path) -> io::Result<Client> {
        Ok(Client {
            reader: BufReader::new(UnixStream::connect(path)?),
        })
    }

    /// Sends `req` and reads its response. A connection the shim closed without answering
    /// is `UnexpectedEof` (the container exited meanwhile: read `exit.json`).
    pub fn call(&mut self, req: &Request) -> io::Result<Response> {
        let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
        line.push(b'\n');
        self.reader.get_mut().write_all(&line)?;
        self.read_response()
    }

    /// Reads one response line (the answer to a `Wait` sent earlier).
    pub fn read_response(&mut self) -> io::Result<Response> {
        let mut buf = String::new();
        if self.reader.read_line(&mut buf)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "shim closed the connection",
            ));
        }
        serde_json::from_str(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The connection, for the stream that follows an `Attach` or an attached `Exec`.
    /// Bytes the reader had buffered past the response line come first.
    pub fn into_stream(self) -> (Vec<u8>, UnixStream) {
        let buffered = self.reader.buffer().to_vec();
        (buffered, self.reader.into_inner())
    }
}

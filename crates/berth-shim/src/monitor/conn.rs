//! Client connections on `shim.sock`: their buffers, what each is doing ([`Mode`]), and
//! the writing of answers. What a request does is [`super::control`]'s.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;

use berth_shim::{Response, Stream};

use super::process::Target;

/// A request line longer than this closes the connection.
pub const LINE_MAX: usize = 64 * 1024;

pub enum Mode {
    /// Reading requests.
    Control,
    /// Waiting for the container's exit; answered in `finish`.
    Wait,
    /// Waiting for an exec's exit; answered in `housekeeping`.
    ExecWait(usize),
    /// Waiting for the external runtime to start exec `exec_id` (see [`super::pending`]);
    /// its input waits in `inbuf`.
    ExecPending { exec_id: String, attach: bool },
    /// Waiting for the external runtime's start, pause or resume (see [`super::pending`]);
    /// its input waits in `inbuf`.
    OpPending,
    /// Carrying a process's streams.
    Attach {
        target: Target,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
}

pub struct Conn {
    pub sock: UnixStream,
    pub inbuf: Vec<u8>,
    pub outbuf: Vec<u8>,
    pub mode: Mode,
    pub read_closed: bool,
    pub close_when_flushed: bool,
    pub dead: bool,
}

impl Conn {
    pub fn new(sock: UnixStream) -> Conn {
        Conn {
            sock,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            mode: Mode::Control,
            read_closed: false,
            close_when_flushed: false,
            dead: false,
        }
    }

    pub fn attached_to(&self, t: Target) -> bool {
        matches!(self.mode, Mode::Attach { target, .. } if target == t)
    }

    /// Carries the streams of exec `x`, or waits for its exit.
    pub fn uses_exec(&self, x: usize) -> bool {
        matches!(self.mode, Mode::ExecWait(i) if i == x) || self.attached_to(Target::Exec(x))
    }

    /// Follows the exec records' move (`map`: old index → new) after some were forgot;
    /// those this connection uses are never among them.
    pub fn move_exec(&mut self, map: &[Option<usize>]) {
        let moved = |x: usize| map.get(x).copied().flatten().unwrap_or(x);
        match &mut self.mode {
            Mode::ExecWait(x) => *x = moved(*x),
            Mode::Attach {
                target: Target::Exec(x),
                ..
            } => *x = moved(*x),
            _ => {}
        }
    }

    pub fn wants_stream(&self, t: Target, s: Stream) -> bool {
        match self.mode {
            Mode::Attach {
                target,
                stdout,
                stderr,
                ..
            } if target == t && !self.dead => match s {
                Stream::Stdout => stdout,
                Stream::Stderr => stderr,
            },
            _ => false,
        }
    }

    /// Whether to poll for input: not after EOF, and not while the stdin buffer of the
    /// process it feeds (`stdin_full`) is full.
    pub fn wants_input(&self, stdin_full: impl Fn(Target) -> bool) -> bool {
        if self.read_closed || self.dead {
            return false;
        }
        match self.mode {
            Mode::Attach {
                target,
                stdin: true,
                ..
            } => !stdin_full(target),
            Mode::ExecPending { .. } | Mode::OpPending => false,
            _ => true,
        }
    }

    pub fn send(&mut self, r: &Response) {
        if let Ok(mut line) = serde_json::to_vec(r) {
            line.push(b'\n');
            self.outbuf.extend_from_slice(&line);
        }
        self.flush();
    }

    /// Writes what the socket takes now.
    pub fn flush(&mut self) {
        while !self.outbuf.is_empty() && !self.dead {
            match self.sock.write(&self.outbuf) {
                Ok(0) => self.dead = true,
                Ok(n) => {
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.dead = true,
            }
        }
    }
}

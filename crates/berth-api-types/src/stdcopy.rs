//! Docker's multiplexed stream format (moby `pkg/stdcopy`): the framing of a non-tty
//! attach, exec or logs stream. The shim writes it on attach connections, the engine on
//! log streams, and the server passes it through to the client untouched.

/// An output stream of a container, numbered as in Docker's multiplexed frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 1,
    Stderr = 2,
}

impl Stream {
    /// The name Docker's json-file log gives it.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The 8-byte header Docker puts before each chunk of a non-tty stream: stream number,
/// three zero bytes, payload length big-endian.
pub fn frame_header(stream: Stream, len: u32) -> [u8; 8] {
    let l = len.to_be_bytes();
    [stream as u8, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_is_docker_stdcopy() {
        assert_eq!(frame_header(Stream::Stdout, 3), [1, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(
            frame_header(Stream::Stderr, 0x0102_0304),
            [2, 0, 0, 0, 1, 2, 3, 4]
        );
        assert_eq!(
            (Stream::Stdout.name(), Stream::Stderr.name()),
            ("stdout", "stderr")
        );
    }
}

//! The message stream of a build: dockerd's `stream` lines (`Step N/M : ...`) and the
//! demultiplexing of a RUN container's log frames back into text.

use super::*;

impl Builder<'_> {
    pub(super) fn say(&self, s: impl Into<String>) {
        if !self.quiet {
            let _ = self.tx.send(ProgressMessage::stream(s));
        }
    }

    /// `Step N/M : text`, then the newline in a message of its own, as dockerd sends them.
    pub(super) fn step_line(&self, n: usize, total: usize, text: &str) {
        self.say(format!("Step {n}/{total} : {text}"));
        self.say("\n");
    }
}

/// Splits the log stream's 8-byte-header frames back into text (bounded by the frame
/// sizes the log reader makes).
#[derive(Default)]
pub(super) struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    pub(super) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(h) = self.buf.get(..8) {
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            let Some(payload) = self.buf.get(8..8 + len) else {
                break;
            };
            out.push(String::from_utf8_lossy(payload).into_owned());
            self.buf.drain(..8 + len);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demux_joins_split_frames() {
        let mut d = Demux::default();
        let mut f = vec![1, 0, 0, 0, 0, 0, 0, 3];
        f.extend_from_slice(b"hi\n");
        assert!(d.push(&f[..5]).is_empty());
        assert_eq!(d.push(&f[5..]), ["hi\n"]);
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short("x"), "x");
    }
}

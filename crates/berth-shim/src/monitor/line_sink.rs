//! Log drivers that send each line on its own (journald, syslog): the per-stream line
//! splitting they share, written once. The file driver ([`super::jsonlog`]) keeps its own
//! loop, which stamps one time per read and batches its writes.

use std::io;

use berth_shim::Stream;

use super::jsonlog::LineSplitter;

/// A destination for whole lines, one per message.
pub trait LineSink {
    /// The unfinished line of stdout and of stderr.
    fn splitters(&mut self) -> &mut [LineSplitter; 2];

    /// Sends one line (with its `\n`, or a full-size chunk, or an unfinished tail).
    fn send(&mut self, stream: Stream, line: &[u8]) -> io::Result<()>;

    /// Sends the lines `data` completes; the first failure stops the sending.
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let slot = stream as usize - 1;
        let mut splitter = std::mem::take(&mut self.splitters()[slot]);
        let mut result = Ok(());
        splitter.split(data, |line| {
            if result.is_ok() {
                result = self.send(stream, line);
            }
        });
        self.splitters()[slot] = splitter;
        result
    }

    /// Sends whatever unfinished line each stream still holds.
    fn flush(&mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(tail) = self.splitters()[stream as usize - 1].finish() {
                self.send(stream, &tail)?;
            }
        }
        Ok(())
    }
}

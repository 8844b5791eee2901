//! Progress events of a pull or push, shaped after the JSON lines dockerd streams
//! (`{"status":"Downloading","progressDetail":{...},"id":"a1b2c3d4e5f6"}`). The engine turns
//! them into wire messages; this module only decides what is said and how often.

use std::time::{Duration, Instant};

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A line about the whole operation (`Digest: sha256:…`).
    Status(String),
    /// A line about the whole operation with an id but no progress detail
    /// (`{"status":"Pulling from library/busybox","id":"latest"}`).
    Named { id: String, status: String },
    /// A line about one layer: `id` is the layer's short id; `current`/`total` are set for
    /// `Downloading`, `Extracting` and `Pushing`.
    Layer {
        id: String,
        status: String,
        current: Option<u64>,
        total: Option<u64>,
    },
    /// Push's final machine-readable line (`{"aux":{"Tag":…,"Digest":…,"Size":…}}`).
    PushResult {
        tag: String,
        digest: String,
        size: u64,
    },
}

impl Progress {
    pub(crate) fn layer(id: &str, status: impl Into<String>) -> Progress {
        Progress::Layer {
            id: id.to_string(),
            status: status.into(),
            current: None,
            total: None,
        }
    }

    pub(crate) fn layer_bytes(id: &str, status: &str, current: u64, total: u64) -> Progress {
        Progress::Layer {
            id: id.to_string(),
            status: status.to_string(),
            current: Some(current),
            total: Some(total),
        }
    }
}

/// Where progress goes. Called from async tasks and blocking threads alike, so it must
/// not block.
pub trait ProgressSink: Send + Sync {
    fn send(&self, event: Progress);
    /// Whether the client went away; long operations stop at the next step.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Sends nothing (for callers that do not show progress, such as tests).
impl ProgressSink for () {
    fn send(&self, _event: Progress) {}
}

/// Rate-limits byte progress as dockerd's `progressreader` does: an update after 512 KiB
/// and at least 100 ms, and always the last one.
#[derive(Debug)]
pub(crate) struct Throttle {
    last_bytes: u64,
    last_time: Instant,
}

const UPDATE_BYTES: u64 = 512 * 1024;
const UPDATE_EVERY: Duration = Duration::from_millis(100);

impl Throttle {
    pub(crate) fn new() -> Self {
        Throttle {
            last_bytes: 0,
            // Let the first update through at once.
            last_time: Instant::now() - UPDATE_EVERY,
        }
    }

    /// Whether an update for `current` of `total` should be sent now.
    pub(crate) fn ready(&mut self, current: u64, total: u64) -> bool {
        let done = current >= total;
        let due = current.saturating_sub(self.last_bytes) >= UPDATE_BYTES
            && self.last_time.elapsed() >= UPDATE_EVERY;
        if (done && current != self.last_bytes) || due {
            self.last_bytes = current;
            self.last_time = Instant::now();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_first_big_step_and_last_through() {
        let mut t = Throttle::new();
        assert!(!t.ready(10, 10_000_000));
        assert!(t.ready(600_000, 10_000_000));
        // Too soon after the last update, even with enough bytes.
        assert!(!t.ready(1_200_000, 10_000_000));
        assert!(t.ready(10_000_000, 10_000_000));
        assert!(!t.ready(10_000_000, 10_000_000));
    }
}

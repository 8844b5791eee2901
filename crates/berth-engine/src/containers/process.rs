//! A running container's init process addressed by pidfd ([`ProcessHandle`]), checked
//! against the start time recorded when the container started, so that a stored pid that
//! was reused (the container's process died while berthd was away) is never taken for
//! the container: `/proc/<pid>/root` and `/proc/<pid>/ns/*` are opened through it.

use berth_sys::pidfd::{PidfdError, ProcessHandle};

use super::record::Record;
use crate::EngineError;

/// The init process of `rec`, which must be running.
pub(crate) fn of_record(rec: &Record) -> Result<ProcessHandle, EngineError> {
    if !rec.running() || rec.state.pid <= 0 {
        return Err(not_running(rec));
    }
    ProcessHandle::open(rec.state.pid, rec.state.start_time).map_err(|e| match e {
        PidfdError::Gone(_) | PidfdError::Reused { .. } => {
            tracing::warn!(container_id = %rec.id, error = %e, "the container's process is not the recorded one");
            not_running(rec)
        }
        PidfdError::Io { .. } => EngineError::Internal(format!(
            "cannot address the process of container {}: {e}",
            rec.id
        )),
    })
}

/// The start time to record for the container process `pid` just created (0, which no
/// handle accepts, when it is already gone).
pub(crate) fn start_time(pid: i32) -> u64 {
    berth_sys::pidfd::start_time(pid).unwrap_or(0)
}

fn not_running(rec: &Record) -> EngineError {
    EngineError::Conflict(format!("container {} is not running", rec.id))
}

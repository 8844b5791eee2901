//! `kill` and `stop`: signals, the stop timeout, and the restart policy's end.

use std::time::Duration;

use berth_runtime::RuntimeError;

use super::{libc_sigkill, not_running, rid, rt_err, Containers, Entry};
use crate::{Engine, EngineError};

pub(super) fn parse_signal(s: &str) -> Result<i32, EngineError> {
    if s.is_empty() {
        return Ok(libc_sigkill());
    }
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| EngineError::InvalidArgument(format!("Invalid signal: {s}")))
}

impl Engine {
    /// `POST /containers/{id}/kill`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_kill(&self, name: &str, signal: &str) -> Result<(), EngineError> {
        let sig = parse_signal(signal)?;
        let entry = self.containers.subject(name)?;
        let (id, running, restarting, stop_signal) = {
            let r = entry.rec();
            let stop = r.config.stop_signal.get();
            let stop_signal = stop
                .filter(|s| !s.is_empty())
                .and_then(|s| parse_signal(s).ok());
            (r.id.clone(), r.running(), r.restarting(), stop_signal)
        };
        if !running && !restarting {
            return Err(not_running(&id));
        }
        // moby `killWithSignal`: the stop signal (or any, without one) or SIGKILL ends
        // the restart policy's run.
        if stop_signal.is_none_or(|s| s == sig) || sig == libc_sigkill() {
            self.containers.cancel_restart(&entry).await;
        }
        if restarting {
            return Ok(());
        }
        let seen = entry.events.borrow().exits;
        let r = match self.containers.runtime.kill(rid(&id), sig, false).await {
            Err(RuntimeError::NotRunning(_)) => Err(not_running(&id)),
            other => other.map_err(rt_err),
        };
        if r.is_ok() {
            self.containers
                .emit(&entry.rec(), "kill", &[("signal", &sig.to_string())]);
            if sig == libc_sigkill() {
                Containers::await_killed(&entry, seen).await;
            }
        }
        r
    }

    /// `POST /containers/{id}/stop`; `Ok(false)` when it was not running (304).
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_stop(
        &self,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<bool, EngineError> {
        let c = &self.containers;
        let entry = c.subject(name)?;
        let (id, running, stop_signal, stop_timeout) = {
            let r = entry.rec();
            (
                r.id.clone(),
                r.running(),
                r.config.stop_signal.or_default(),
                r.config.stop_timeout.get().copied(),
            )
        };
        let restarting = entry.rec().restarting();
        if running || restarting {
            c.cancel_restart(&entry).await;
        }
        if restarting {
            c.emit(&entry.rec(), "stop", &[]);
            return Ok(true);
        }
        if !running {
            return Ok(false);
        }
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None if !stop_signal.is_empty() => parse_signal(&stop_signal)?,
            None => nix::sys::signal::Signal::SIGTERM as i32,
        };
        let t = timeout.or(stop_timeout).unwrap_or(10);
        let seen = entry.events.borrow().exits;
        if c.runtime.kill(rid(&id), sig, false).await.is_ok() {
            c.emit(&entry.rec(), "kill", &[("signal", &sig.to_string())]);
        }
        let wait = if t < 0 {
            Duration::from_secs(u64::MAX / 4)
        } else {
            Duration::from_secs(t as u64)
        };
        let stopped = Containers::await_exit(&entry, seen, wait).await
            || c.kill_and_wait(&entry, &id, seen).await;
        if !stopped {
            return Err(EngineError::Internal(format!(
                "container {id} did not stop after SIGKILL"
            )));
        }
        c.emit(&entry.rec(), "stop", &[]);
        Ok(true)
    }
}

impl Containers {
    /// moby `daemon.kill`: a SIGKILL is answered once the exit is recorded (at most 10 s),
    /// so an inspect right after shows the container exited with 137.
    async fn await_killed(entry: &Entry, seen: u64) {
        if !Containers::await_exit(entry, seen, Duration::from_secs(10)).await {
            tracing::warn!("container failed to exit within 10s of SIGKILL");
        }
    }

    /// SIGKILL for container `id`, then at most 30 s for an exit after `seen`: false when
    /// none came (`stop` after its grace time, a forced `rm`).
    pub(super) async fn kill_and_wait(&self, entry: &Entry, id: &str, seen: u64) -> bool {
        if self
            .runtime
            .kill(rid(id), libc_sigkill(), true)
            .await
            .is_ok()
        {
            let sig = libc_sigkill().to_string();
            self.emit(&entry.rec(), "kill", &[("signal", &sig)]);
        }
        Containers::await_exit(entry, seen, Duration::from_secs(30)).await
    }
}

//! `attach` and `wait`: futures the server awaits after it has answered.

use berth_api_types::container::ContainerStatus;
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use super::{rid, rt_err, AttachStreams, Pending};
use crate::{Engine, EngineError};

/// `wait`'s `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl Engine {
    /// `POST /containers/{id}/attach`: whether the container has a tty, and its streams
    /// (once it starts, for a created container).
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_attach(
        &self,
        name: &str,
        streams: AttachStreams,
    ) -> Result<(bool, Pending<UnixStream>), EngineError> {
        let c = self.containers.clone();
        let entry = c.subject(name)?;
        let _guard = entry.op.lock().await;
        let (id, tty, status) = {
            let r = entry.rec();
            (r.id.clone(), r.tty(), r.state.status)
        };
        if matches!(
            status,
            ContainerStatus::Running | ContainerStatus::Created | ContainerStatus::Exited
        ) {
            c.emit(&entry.rec(), "attach", &[]);
        }
        match status {
            ContainerStatus::Running => {
                let fut = async move { c.runtime.attach(rid(&id), streams).await.map_err(rt_err) };
                Ok((tty, Box::pin(fut)))
            }
            ContainerStatus::Created | ContainerStatus::Exited => {
                let (tx, rx) = oneshot::channel();
                entry
                    .pending_attach
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((streams, tx));
                let fut = async move {
                    rx.await
                        .map_err(|_| EngineError::Conflict("container was removed".into()))?
                };
                Ok((tty, Box::pin(fut)))
            }
            _ => Err(EngineError::Conflict(format!(
                "You cannot attach to a stopped container, start it first ({id})"
            ))),
        }
    }

    /// `POST /containers/{id}/wait`: registered now, resolved later with the exit code.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_wait(
        &self,
        name: &str,
        cond: WaitCondition,
    ) -> Result<Pending<i32>, EngineError> {
        let entry = self.containers.subject(name)?;
        let mut rx = entry.events.subscribe();
        let seen = *rx.borrow();
        let (running, code) = {
            let r = entry.rec();
            (r.running() || r.restarting(), r.state.exit_code)
        };
        if cond == WaitCondition::NotRunning && !running {
            return Ok(Box::pin(async move { Ok(code) }));
        }
        Ok(Box::pin(async move {
            let ev = rx
                .wait_for(|e| match cond {
                    WaitCondition::Removed => e.removed,
                    _ => e.exits > seen.exits || e.removed,
                })
                .await
                .map(|e| *e);
            match ev {
                Ok(e) => Ok(e.last_exit),
                // The entry is gone: it was removed.
                Err(_) => Ok(entry.rec().state.exit_code),
            }
        }))
    }
}

//! `docker pause` / `docker unpause`: the shim freezes and thaws the container's cgroup
//! (libcontainer's freezer, v1 or v2); the record keeps `paused` so that inspect and
//! `ps` say so, across daemon restarts too. Killing or stopping a paused container thaws
//! it (the shim does, after the signal), as moby's `daemon/kill.go` does.
//!
//! berthd also freezes a running container for the length of a `cp` or `commit`
//! ([`Frozen`]); if it
//! dies in between, nothing else would thaw it: at start, [`Containers::thaw_at_start`] (in `store`)
//! thaws every running container whose record does not say paused but whose cgroup is
//! frozen.

use std::sync::Arc;

use super::{rid, Containers};
use crate::{Engine, EngineError};

impl Engine {
    /// `POST /containers/{id}/pause`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_pause(&self, name: &str) -> Result<(), EngineError> {
        self.set_paused(name, true).await
    }

    /// `POST /containers/{id}/unpause`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_unpause(&self, name: &str) -> Result<(), EngineError> {
        self.set_paused(name, false).await
    }

    /// Freezes (`pause`) or thaws a running container, with moby's refusals
    /// (`daemon/pause.go`, `daemon/unpause.go`), and records and announces it.
    async fn set_paused(&self, name: &str, pause: bool) -> Result<(), EngineError> {
        let c = &self.containers;
        let entry = c.subject(name)?;
        let _guard = entry.op.lock().await;
        let (id, running, paused) = {
            let r = entry.rec();
            (r.id.clone(), r.running(), r.state.paused)
        };
        let refused = match (pause, running, paused) {
            (true, false, _) => Some("is not running"),
            (true, true, true) => Some("is already paused"),
            (false, true, true) => None,
            (false, _, _) => Some("is not paused"),
            (true, true, false) => None,
        };
        if let Some(why) = refused {
            return Err(EngineError::Conflict(format!("Container {id} {why}")));
        }
        let done = if pause {
            c.runtime.pause(rid(&id)).await
        } else {
            c.runtime.resume(rid(&id)).await
        };
        done.map_err(super::rt_err)?;
        entry.rec().state.paused = pause;
        if pause {
            c.health_stop(&entry);
        } else {
            c.health_resume(&entry);
        }
        c.save_logged(&entry).await;
        let action = if pause { "pause" } else { "unpause" };
        c.emit(&entry.rec(), action, &[]);
        tracing::info!("container {action}d");
        Ok(())
    }
}

/// A running container frozen while its files are walked or written, so that nothing in
/// it can swap a directory for a symlink between our checks and our use (moby's fix for
/// CVE-2018-15664). A container the user paused is left as it is.
pub(super) struct Frozen {
    c: Arc<Containers>,
    rid: Option<String>,
}

impl Frozen {
    pub(super) async fn new(c: &Arc<Containers>, name: &str) -> Result<Frozen, EngineError> {
        let (id, running, paused) = {
            let e = c.get(name)?;
            let r = e.rec();
            (r.id.clone(), r.running(), r.state.paused)
        };
        if !running || paused {
            return Ok(Frozen {
                c: c.clone(),
                rid: None,
            });
        }
        let rid = rid(&id).to_string();
        c.runtime.pause(&rid).await.map_err(super::rt_err)?;
        Ok(Frozen {
            c: c.clone(),
            rid: Some(rid),
        })
    }

    pub(super) async fn thaw(self) {
        if let Some(rid) = &self.rid {
            if let Err(e) = self.c.runtime.resume(rid).await {
                tracing::warn!(id = %rid, error = %e, "cannot thaw the container after a copy");
            }
        }
    }
}

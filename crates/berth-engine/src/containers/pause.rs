//! `docker pause` / `docker unpause`: the shim freezes and thaws the container's cgroup
//! (libcontainer's freezer, v1 or v2); the record keeps `paused` so that inspect and
//! `ps` say so, across daemon restarts too. Killing or stopping a paused container thaws
//! it (the shim does, after the signal), as moby's `daemon/kill.go` does.

use super::rid;
use crate::{Engine, EngineError};

impl Engine {
    /// `POST /containers/{id}/pause`.
    pub async fn container_pause(&self, name: &str) -> Result<(), EngineError> {
        let c = &self.containers;
        let entry = c.get(name)?;
        let _guard = entry.op.lock().await;
        let (id, running, paused) = {
            let r = entry.rec();
            (r.id.clone(), r.running(), r.state.paused)
        };
        // moby `daemon/pause.go`.
        if !running {
            return Err(EngineError::Conflict(format!(
                "Container {id} is not running"
            )));
        }
        if paused {
            return Err(EngineError::Conflict(format!(
                "Container {id} is already paused"
            )));
        }
        c.runtime.pause(rid(&id)).await.map_err(super::rt_err)?;
        entry.rec().state.paused = true;
        c.persist_entry(&entry);
        c.emit(&entry.rec(), "pause", &[]);
        tracing::info!(container_id = %id, "container paused");
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn container_unpause(&self, name: &str) -> Result<(), EngineError> {
        let c = &self.containers;
        let entry = c.get(name)?;
        let _guard = entry.op.lock().await;
        let (id, running, paused) = {
            let r = entry.rec();
            (r.id.clone(), r.running(), r.state.paused)
        };
        // moby `daemon/unpause.go`.
        if !running || !paused {
            return Err(EngineError::Conflict(format!(
                "Container {id} is not paused"
            )));
        }
        c.runtime.resume(rid(&id)).await.map_err(super::rt_err)?;
        entry.rec().state.paused = false;
        c.persist_entry(&entry);
        c.emit(&entry.rec(), "unpause", &[]);
        tracing::info!(container_id = %id, "container unpaused");
        Ok(())
    }
}

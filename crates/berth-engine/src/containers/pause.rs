//! `docker pause` / `docker unpause`: the shim freezes and thaws the container's cgroup
//! (libcontainer's freezer, v1 or v2); the record keeps `paused` so that inspect and
//! `ps` say so, across daemon restarts too. Killing or stopping a paused container thaws
//! it (the shim does, after the signal), as moby's `daemon/kill.go` does.
//!
//! berthd also freezes a running container for the length of a `cp` or `commit`; if it
//! dies in between, nothing else would thaw it: at start, [`Containers::thaw_at_start`]
//! thaws every running container whose record does not say paused but whose cgroup is
//! frozen.

use std::path::Path;
use std::sync::Arc;

use super::cgroup::Dirs;
use super::{rid, Containers};
use crate::{Engine, EngineError};

impl Engine {
    /// `POST /containers/{id}/pause`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_pause(&self, name: &str) -> Result<(), EngineError> {
        let c = &self.containers;
        let entry = c.subject(name)?;
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
        c.save_logged(&entry).await;
        c.emit(&entry.rec(), "pause", &[]);
        tracing::info!("container paused");
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_unpause(&self, name: &str) -> Result<(), EngineError> {
        let c = &self.containers;
        let entry = c.subject(name)?;
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
        c.save_logged(&entry).await;
        c.emit(&entry.rec(), "unpause", &[]);
        tracing::info!("container unpaused");
        Ok(())
    }
}

/// Whether the cgroup at `dirs` is frozen or freezing (v2 `cgroup.freeze`, v1
/// `freezer.state`).
fn frozen(dirs: &Dirs) -> bool {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    match dirs {
        Dirs::V2(d) => read(&d.join("cgroup.freeze")).trim() == "1",
        Dirs::V1(m) => m.get("freezer").is_some_and(|d| {
            matches!(read(&d.join("freezer.state")).trim(), "FROZEN" | "FREEZING")
        }),
    }
}

/// Thaws the cgroup at `dirs` by its files: what the runtime does, for when its shim cannot.
fn thaw_files(dirs: &Dirs) -> std::io::Result<()> {
    match dirs {
        Dirs::V2(d) => std::fs::write(d.join("cgroup.freeze"), "0"),
        Dirs::V1(m) => match m.get("freezer") {
            Some(d) => std::fs::write(d.join("freezer.state"), "THAWED"),
            None => Ok(()),
        },
    }
}

impl Containers {
    /// Thaws the running containers a dead berthd left frozen (mid `cp`/`commit`): those
    /// whose record is not paused but whose cgroup is frozen. Runs in the background;
    /// each container is handled under its operation lock, so a `pause` that comes first
    /// is kept.
    pub(super) fn thaw_at_start(self: &Arc<Self>) {
        for entry in self.entries() {
            let (id, running, paused) = {
                let r = entry.rec();
                (r.id.clone(), r.running(), r.state.paused)
            };
            if !running || paused {
                continue;
            }
            let c = self.clone();
            tokio::spawn(async move {
                let _guard = entry.op.lock().await;
                if entry.rec().state.paused {
                    return;
                }
                let path = c.cgroup_path(&id);
                let dirs = match crate::blocking::spawn(move || {
                    let dirs = Dirs::of(&path);
                    frozen(&dirs).then_some(dirs)
                })
                .await
                {
                    Ok(Some(dirs)) => dirs,
                    _ => return,
                };
                tracing::warn!(container_id = %id, "thawing a container left frozen by an earlier run");
                if let Err(e) = c.runtime.resume(rid(&id)).await {
                    tracing::warn!(container_id = %id, error = %e, "the shim cannot thaw the container; writing its cgroup");
                    let thawed = crate::blocking::spawn(move || thaw_files(&dirs)).await;
                    if let Ok(Err(e)) = thawed {
                        tracing::error!(container_id = %id, error = %e, "cannot thaw the container");
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn frozen_and_thawed_by_files() {
        let tmp = tempfile::tempdir().unwrap();
        let v2 = Dirs::V2(tmp.path().to_path_buf());
        assert!(!frozen(&v2));
        std::fs::write(tmp.path().join("cgroup.freeze"), "1\n").unwrap();
        assert!(frozen(&v2));
        thaw_files(&v2).unwrap();
        assert!(!frozen(&v2));
        let v1 = Dirs::V1(HashMap::from([(
            "freezer".to_string(),
            tmp.path().to_path_buf(),
        )]));
        std::fs::write(tmp.path().join("freezer.state"), "FROZEN\n").unwrap();
        assert!(frozen(&v1));
        std::fs::write(tmp.path().join("freezer.state"), "FREEZING\n").unwrap();
        assert!(frozen(&v1));
        thaw_files(&v1).unwrap();
        assert!(!frozen(&v1));
        assert!(!frozen(&Dirs::V1(HashMap::new())));
    }
}
